"""Hybrid (PDMP) speed: jumps per second of sbml_cme.simulate_hybrid on two models.

- ``telegraph``: a gene switching on/off (2 jump channels) whose output Y is continuous
  (2 continuous-flux channels): ODE of 1 variable + the hazard.
- ``genes10``: 10 genes, each switching on/off and making mRNA (discrete, 4 jump
  channels per gene) translated into a continuous protein (2 flux channels per gene):
  40 jump channels, 20 fluxes, an ODE of 10 variables + the hazard.
- ``discrete``: the telegraph gene with Y discrete (Y made at k G, removed at g Y), run
  by simulate_hybrid and by simulate_ssa (same process: the PDMP's overhead over the SSA).

Time is ``run_info["wall_time"]`` (the simulation only), after a warm-up call that loads
the cached numba kernels. Usage: ``python benchmarks/hybrid_speed.py [--quick]``.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import sympy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sbml_cme.analyses import simulate_hybrid, simulate_ssa  # noqa: E402
from sbml_cme.network import MassAction, Network, Parameter, Reaction, Species  # noqa: E402


def _reaction(rid, reactants, products, constant):
    return Reaction(rid, tuple(reactants), tuple(products),
                    MassAction(sympy.Float(constant), tuple(reactants)))


def gene(i: int, continuous: bool, k: float = 100.0) -> tuple[list, list]:
    """Species and reactions of gene ``i`` with protein ``P{i}`` made from mRNA ``M{i}``."""
    on, off, m, p = f"On{i}", f"Off{i}", f"M{i}", f"P{i}"
    species = [Species(on, "cell", 0.0), Species(off, "cell", 1.0), Species(m, "cell", 0.0),
               Species(p, "cell", 0.0, continuous=continuous)]
    reactions = [_reaction(f"on{i}", [(off, 1)], [(on, 1)], 1.0),
                 _reaction(f"off{i}", [(on, 1)], [(off, 1)], 2.0),
                 _reaction(f"tx{i}", [(on, 1)], [(on, 1), (m, 1)], 20.0),
                 _reaction(f"mdeg{i}", [(m, 1)], [], 1.0),
                 _reaction(f"tl{i}", [(m, 1)], [(m, 1), (p, 1)], k),
                 _reaction(f"pdeg{i}", [(p, 1)], [], 0.1)]
    return species, reactions


def telegraph(continuous: bool) -> Network:
    species = (Species("On", "cell", 0.0), Species("Off", "cell", 1.0),
               Species("Y", "cell", 0.0, continuous=continuous))
    reactions = (_reaction("on", [("Off", 1)], [("On", 1)], 1.0),
                 _reaction("off", [("On", 1)], [("Off", 1)], 2.0),
                 _reaction("make", [("On", 1)], [("On", 1), ("Y", 1)], 100.0),
                 _reaction("decay", [("Y", 1)], [], 1.0))
    return Network(species=species, reactions=reactions, parameters=(Parameter("unused", 0),))


def genes(n: int) -> Network:
    parts = [gene(i, True) for i in range(n)]
    return Network(species=tuple(s for sp, _ in parts for s in sp),
                   reactions=tuple(r for _, rs in parts for r in rs))


def run(label, simulate, network, times, n, threads):
    simulate(network, times[:2], n_trajectories=2, seed=0)  # load the kernels
    result = simulate(network, times, n_trajectories=n, seed=1, n_jobs=threads)
    wall = result.run_info["wall_time"]
    steps = result.run_info.get("ode_steps", 0)
    print(f"{label:34s} threads={threads}  jumps={result.total_events:>10,}  "
          f"ode_steps={steps:>10,}  wall={wall:7.2f}s  jumps/s={result.total_events / wall:>10,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    n = 100 if options.quick else 1000
    times = np.linspace(0.0, 50.0, 11)
    print(f"python {platform.python_version()}, {platform.machine()}, n={n}, T=50")
    for threads in (1, 2):
        run("telegraph (hybrid)", simulate_hybrid, telegraph(True), times, n, threads)
        run("genes10 (hybrid)", simulate_hybrid, genes(10), times, max(n // 10, 10), threads)
        run("discrete telegraph (hybrid)", simulate_hybrid, telegraph(False), times, n, threads)
        run("discrete telegraph (simulate_ssa)", simulate_ssa, telegraph(False), times, n,
            threads)


if __name__ == "__main__":
    main()
