"""Hybrid (PDMP) speed: jumps per second of sbml_cme.simulate_hybrid on two models.

- ``telegraph``: a gene switching on/off (2 jump channels) whose output Y is continuous
  (2 continuous-flux channels): ODE of 1 variable + the hazard.
- ``genes10``: 10 genes, each switching on/off and making mRNA (discrete, 4 jump
  channels per gene) translated into a continuous protein (2 flux channels per gene):
  40 jump channels, 20 fluxes, an ODE of 10 variables + the hazard.
- ``discrete``: the telegraph gene with Y discrete (Y made at k G, removed at g Y), run
  by simulate_hybrid and by simulate_ssa (same process: the PDMP's overhead over the SSA).

- ``teusink+gene`` (``--teusink``): BIOMD0000000064 (Teusink glycolysis, mole units,
  ~1e20 molecules; every metabolite continuous by ``partition="auto"`` plus BPG, which
  starts at 0 and so fails the auto threshold) with gene 0 of ``genes10`` added (On, Off,
  mRNA discrete, protein continuous), T = 10 (model time units).
- ``--gillespy2``: GillesPy2's TauHybridSolver on the continuous telegraph (On, Off
  ``mode="discrete"``, Y ``mode="continuous"``), side by side; trajectories/s and the
  ratio. GillesPy2 is not a dependency (``pip install gillespy2``).

Time is ``run_info["wall_time"]`` (the simulation only), after a warm-up call that loads
the cached numba kernels. Usage:
``python benchmarks/hybrid_speed.py [--quick] [--teusink [--rtol 1e-5]] [--gillespy2]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
import warnings
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


def teusink_gene() -> Network:
    """BIOMD0000000064 (mole units) with gene 0 of ``genes10`` in the cytosol."""
    from sbml_cme.io import read_sbml

    path = Path(__file__).resolve().parent.parent / "models/biomodels/BIOMD0000000064.xml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = read_sbml(path)
    species, reactions = gene(0, True)
    species = [dataclasses.replace(s, compartment="cytosol") for s in species]
    return dataclasses.replace(network, species=network.species + tuple(species),
                               reactions=network.reactions + tuple(reactions))


def run(label, simulate, network, times, n, threads, **options):
    simulate(network, times[:2], n_trajectories=2, seed=0, **options)  # load the kernels
    result = simulate(network, times, n_trajectories=n, seed=1, n_jobs=threads, **options)
    wall = result.run_info["wall_time"]
    steps = result.run_info.get("ode_steps", 0)
    print(f"{label:34s} threads={threads}  n={n:>5}  jumps={result.total_events:>10,}  "
          f"ode_steps={steps:>10,}  wall={wall:7.2f}s  jumps/s={result.total_events / wall:>10,.0f}"
          f"  trajectories/s={n / wall:>9,.1f}")
    return n / wall


def gillespy2_telegraph(times):
    """The continuous telegraph as a GillesPy2 model (Y continuous, the gene discrete)."""
    import gillespy2

    model = gillespy2.Model(name="telegraph")
    model.add_parameter([gillespy2.Parameter(name=name, expression=value) for name, value in
                         [("kon", 1.0), ("koff", 2.0), ("k", 100.0), ("g", 1.0)]])
    model.add_species([gillespy2.Species(name="On", initial_value=0, mode="discrete"),
                       gillespy2.Species(name="Off", initial_value=1, mode="discrete"),
                       gillespy2.Species(name="Y", initial_value=0.0, mode="continuous")])
    reaction = gillespy2.Reaction
    model.add_reaction([
        reaction(name="on", reactants={"Off": 1}, products={"On": 1}, rate="kon"),
        reaction(name="off", reactants={"On": 1}, products={"Off": 1}, rate="koff"),
        reaction(name="make", reactants={"On": 1}, products={"On": 1, "Y": 1}, rate="k"),
        reaction(name="decay", reactants={"Y": 1}, products={}, rate="g")])
    model.timespan(np.asarray(times))
    return model


def run_gillespy2(times, n) -> float:
    """TauHybridSolver trajectories/s on the telegraph (after a 2-trajectory warm-up)."""
    import gillespy2

    solver = gillespy2.TauHybridSolver(model=gillespy2_telegraph(times))
    solver.run(number_of_trajectories=2, seed=3)
    started = time.perf_counter()
    results = solver.run(number_of_trajectories=n, seed=1)
    wall = time.perf_counter() - started
    mean_y = np.mean([trajectory["Y"][-1] for trajectory in results])
    print(f"{'telegraph (GillesPy2 TauHybrid)':34s} threads=1  n={n:>5}  wall={wall:7.2f}s  "
          f"trajectories/s={n / wall:>9,.2f}  mean Y(T)={mean_y:.1f} (exact 33.3)")
    return n / wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--teusink", action="store_true",
                        help="only BIOMD0000000064 + a gene module, 100 trajectories")
    parser.add_argument("--rtol", type=float, default=1e-7,
                        help="simulate_hybrid's relative ODE tolerance for --teusink")
    parser.add_argument("--gillespy2", action="store_true",
                        help="only the telegraph beside GillesPy2's TauHybridSolver")
    options = parser.parse_args()
    n = 100 if options.quick else 1000
    times = np.linspace(0.0, 50.0, 11)
    print(f"python {platform.python_version()}, {platform.machine()}, n={n}, T=50")
    if options.teusink:
        run("teusink+gene (hybrid)", simulate_hybrid, teusink_gene(), np.linspace(0, 10, 11),
            100, None, partition="auto", continuous=["BPG"], rtol=options.rtol)
        return
    if options.gillespy2:
        ours = run("telegraph (hybrid)", simulate_hybrid, telegraph(True), times, n, 1)
        peer = run_gillespy2(times, max(n // 10, 10))
        print(f"ratio sbml_cme / GillesPy2 (trajectories/s): {ours / peer:,.0f}")
        return
    for threads in (1, 2):
        run("telegraph (hybrid)", simulate_hybrid, telegraph(True), times, n, threads)
        run("genes10 (hybrid)", simulate_hybrid, genes(10), times, max(n // 10, 10), threads)
        run("discrete telegraph (hybrid)", simulate_hybrid, telegraph(False), times, n, threads)
        run("discrete telegraph (simulate_ssa)", simulate_ssa, telegraph(False), times, n,
            threads)


if __name__ == "__main__":
    main()
