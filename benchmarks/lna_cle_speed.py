"""LNA and CLE speed (issue 4). Prints numbers and ratios; not a timed test.

1. Steady-state LNA of the largest bundled model (BIOMD0000000019) after import
   (first call: symbolic Jacobian + steady state + Lyapunov), and of a mid-size model
   (BIOMD0000000009).
2. CLE (Euler and weak2, default dt) against the exact SSA on birth-death with mean 1e5
   (0 -> X at 1e5, X -> 0 at 1*X, X(0) = 1e5), same ensemble size and output times.
   Numba kernels are warmed up first (compilation excluded).

Usage: /work/venv/bin/python benchmarks/lna_cle_speed.py [--trajectories N]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
import warnings

import numpy as np

import sbml_cme
from sbml_cme.analyses import simulate_cle, simulate_ssa, solve_lna

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import make_sbml  # noqa: E402


def time_lna(model_id: str) -> None:
    network = sbml_cme.read_sbml(ROOT / "models" / "biomodels" / f"{model_id}.xml")
    started = time.perf_counter()
    try:
        result = solve_lna(network)
        outcome = f"ok, max Re(eig) {result.run_info['max_real_eigenvalue']:.3g}"
    except sbml_cme.SbmlCmeError as error:
        outcome = f"{type(error).__name__}: {str(error)[:120]}"
    print(f"LNA {model_id} ({len(network.species)} species, {len(network.reactions)} "
          f"channels): {time.perf_counter() - started:.3f} s  [{outcome}]")


def birth_death(mean: float):
    return sbml_cme.read_sbml_string(make_sbml(
        {"X": mean}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
        parameters={"k": mean, "d": 1.0}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trajectories", type=int, default=100)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    time_lna("BIOMD0000000009")
    time_lna("BIOMD0000000019")

    network = birth_death(1e5)
    times = np.linspace(0.0, 5.0, 11)
    small = birth_death(10.0)
    simulate_ssa(small, times, n_trajectories=2, seed=0)  # warm-up (compilation)
    for method in ("euler", "weak2"):
        simulate_cle(small, times, n_trajectories=2, seed=0, method=method)
    n = args.trajectories
    ssa = simulate_ssa(network, times, n_trajectories=n, seed=1)
    ssa_time = ssa.run_info["wall_time"]
    print(f"SSA birth-death mean 1e5, {n} trajectories, t=0..5: {ssa_time:.3f} s "
          f"({ssa.total_events:.3g} events)")
    for method in ("euler", "weak2"):
        cle = simulate_cle(network, times, n_trajectories=n, seed=1, method=method)
        cle_time = cle.run_info["wall_time"]
        print(f"CLE {method:<6} dt={cle.run_info['dt']:.3g}: {cle_time:.3f} s, "
              f"{ssa_time / cle_time:.0f}x faster than the SSA; "
              f"final sd {cle.stats()['X-sd'].iloc[-1]:.1f} (SSA "
              f"{ssa.stats()['X-sd'].iloc[-1]:.1f}, exact {np.sqrt(1e5):.1f})")


if __name__ == "__main__":
    main()
