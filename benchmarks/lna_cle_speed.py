"""LNA and CLE speed (issue 4). Prints numbers and ratios; not a timed test.

1. Steady-state LNA of the largest bundled model (BIOMD0000000019) after import
   (first call: exact Jacobian + steady state + Lyapunov; then a second call), and of a
   mid-size model (BIOMD0000000009). Wall-clock and CPU time (time.process_time: the
   machine may be shared).
2. CLE (Euler and weak2, default dt) against the exact SSA on birth-death with mean 1e5
   (0 -> X at 1e5, X -> 0 at 1*X, X(0) = 1e5), same ensemble size and output times.
   Numba kernels are warmed up first (compilation excluded).

Usage: /work/venv/bin/python benchmarks/lna_cle_speed.py [--trajectories N]
"""

from __future__ import annotations

import argparse
import os
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
    """Steady-state LNA of a bundled model: the first call after import (exact
    derivatives, compiled kernels loaded, steady state, Lyapunov) and a second call (the
    per-network caches warm), wall-clock and CPU (time.process_time) seconds."""
    network = sbml_cme.read_sbml(ROOT / "models" / "biomodels" / f"{model_id}.xml")
    for call in ("first", "second"):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            result = solve_lna(network)
            info = result.run_info
            outcome = (f"ok, max Re(eig) {info['max_real_eigenvalue']:.3g}, "
                       f"{info['rhs_evaluations']} rate evaluations")
            if info["undetermined_species"]:
                outcome += f", no stationary law for {', '.join(info['undetermined_species'])}"
        except sbml_cme.SbmlCmeError as error:
            outcome = f"{type(error).__name__}: {str(error)[:120]}"
        print(f"LNA {model_id} ({len(network.species)} species, {len(network.reactions)} "
              f"channels), {call} call: wall {time.perf_counter() - wall:.3f} s, "
              f"CPU {time.process_time() - cpu:.3f} s  [{outcome}]")


def birth_death(mean: float):
    return sbml_cme.read_sbml_string(make_sbml(
        {"X": mean}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
        parameters={"k": mean, "d": 1.0}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trajectories", type=int, default=100)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
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
