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
- ``--teusink --gillespy2``: both on teusink+gene over T = ``--peer-horizon`` (default 1:
  one GillesPy2 trajectory to T = 10 takes over 15 minutes), 100 trajectories of ours,
  ``--peer-n`` (default 2) of GillesPy2's; the function definitions are expanded with
  libsbml first (:func:`expanded_sbml`), which GillesPy2's importer needs. Prints
  trajectories/s, the ratio and the means at T side by side.

Time is ``run_info["wall_time"]`` (the simulation only), after a warm-up call that loads
the cached numba kernels. Usage:
``python benchmarks/hybrid_speed.py [--quick] [--teusink [--rtol 1e-5]] [--gillespy2]
[--peer-horizon T] [--peer-n N]``.
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


def expanded_sbml(path: Path) -> str:
    """The SBML text of ``path`` with every function definition expanded in place.

    libsbml's "expandFunctionDefinitions" converter refuses a document its consistency
    check finds invalid, as BIOMD0000000064 is for its units (error 10541, a kinetic law
    not in substance per time); then each formula is expanded with
    ``SBMLTransforms.replaceFD``, the call the converter makes. Initial assignments are
    expanded by the converter too (064 has none)."""
    import libsbml

    document = libsbml.readSBMLFromFile(str(path))
    model = document.getModel()
    properties = libsbml.ConversionProperties()
    properties.addOption("expandFunctionDefinitions", True)
    if document.convert(properties) != libsbml.LIBSBML_OPERATION_SUCCESS:
        definitions = model.getListOfFunctionDefinitions()
        elements = ([r.getKineticLaw() for r in model.getListOfReactions() if r.isSetKineticLaw()]
                    + list(model.getListOfRules()) + list(model.getListOfInitialAssignments()))
        for element in elements:
            math = element.getMath().deepCopy()
            libsbml.SBMLTransforms.replaceFD(math, definitions)
            element.setMath(math)
        while model.getNumFunctionDefinitions():
            model.removeFunctionDefinition(0)
    if model.getNumInitialAssignments():
        properties = libsbml.ConversionProperties()
        properties.addOption("expandInitialAssignments", True)
        if document.convert(properties) != libsbml.LIBSBML_OPERATION_SUCCESS:
            raise RuntimeError("libsbml could not expand the initial assignments")
    return libsbml.writeSBMLToString(document)


def gillespy2_teusink(times):
    """BIOMD0000000064 + gene 0 in GillesPy2: metabolites continuous (mM, the model's
    units; both compartments have volume 1), On0/Off0/M0 discrete, P0 continuous, the
    gene's constants as in :func:`gene`."""
    import tempfile

    import gillespy2

    path = Path(__file__).resolve().parent.parent / "models/biomodels/BIOMD0000000064.xml"
    with tempfile.TemporaryDirectory() as folder:
        expanded = Path(folder) / "BIOMD0000000064-expanded.xml"
        expanded.write_text(expanded_sbml(path))
        model, errors = gillespy2.import_SBML(str(expanded))
    if model is None:
        raise RuntimeError(f"gillespy2.import_SBML failed: {errors}")
    for species in model.listOfSpecies.values():
        species.mode = "continuous"
    names = ["kon0", "koff0", "ktx0", "kmdeg0", "ktl0", "kpdeg0"]
    model.add_parameter([gillespy2.Parameter(name=name, expression=value) for name, value in
                         zip(names, [1.0, 2.0, 20.0, 1.0, 100.0, 0.1])])
    model.add_species([gillespy2.Species(name="On0", initial_value=0, mode="discrete"),
                       gillespy2.Species(name="Off0", initial_value=1, mode="discrete"),
                       gillespy2.Species(name="M0", initial_value=0, mode="discrete"),
                       gillespy2.Species(name="P0", initial_value=0.0, mode="continuous")])
    reaction = gillespy2.Reaction
    model.add_reaction([
        reaction(name="on0", reactants={"Off0": 1}, products={"On0": 1}, rate="kon0"),
        reaction(name="off0", reactants={"On0": 1}, products={"Off0": 1}, rate="koff0"),
        reaction(name="tx0", reactants={"On0": 1}, products={"On0": 1, "M0": 1}, rate="ktx0"),
        reaction(name="mdeg0", reactants={"M0": 1}, products={}, rate="kmdeg0"),
        reaction(name="tl0", reactants={"M0": 1}, products={"M0": 1, "P0": 1}, rate="ktl0"),
        reaction(name="pdeg0", reactants={"P0": 1}, products={}, rate="kpdeg0")])
    model.timespan(np.asarray(times))
    return model


def teusink_side_by_side(horizon: float, n_ours: int, n_peer: int) -> None:
    """Both solvers on 064 + gene over [0, horizon]: trajectories/s, the ratio, and the
    means at ``horizon`` (metabolites in mM, P0 in molecules)."""
    import gillespy2

    times = np.linspace(0.0, horizon, 11)
    ours = simulate_hybrid(teusink_gene(), times[:2], n_trajectories=2, seed=0,
                           partition="auto", continuous=["BPG"])
    ours = simulate_hybrid(teusink_gene(), times, n_trajectories=n_ours, seed=1,
                           partition="auto", continuous=["BPG"])
    wall = ours.run_info["wall_time"]
    print(f"{'teusink+gene (hybrid)':34s} T={horizon:g}  n={n_ours:>4}  "
          f"jumps={ours.total_events:>8,}  wall={wall:7.2f}s  "
          f"jumps/s={ours.total_events / wall:>8,.0f}  trajectories/s={n_ours / wall:8.2f}")
    try:
        solver = gillespy2.TauHybridSolver(model=gillespy2_teusink(times))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            results = solver.run(number_of_trajectories=n_peer, seed=1)
            peer_wall = time.perf_counter() - started
    except Exception as error:  # report why GillesPy2 cannot run it, and stop
        print(f"GillesPy2 TauHybridSolver cannot run teusink+gene: {type(error).__name__}: "
              f"{error}")
        return
    print(f"{'teusink+gene (GillesPy2 TauHybrid)':34s} T={horizon:g}  n={n_peer:>4}  "
          f"wall={peer_wall:7.2f}s  trajectories/s={n_peer / peer_wall:8.4f}  "
          "(no event count reported)")
    ratio = (n_ours / wall) / (n_peer / peer_wall)
    print(f"ratio sbml_cme / GillesPy2 (trajectories/s): {ratio:,.0f}")
    model_units = ours.stats("model").iloc[-1]
    counts = ours.stats("count").iloc[-1]
    names = ["GLCi", "G6P", "F16P", "PYR", "ACE", "NADH", "P"]
    reference = dict.fromkeys(names, float("nan"))
    try:  # the metabolites do not feel the gene: the rate equations are their law
        import roadrunner

        runner = roadrunner.RoadRunner(str(Path(__file__).resolve().parent.parent /
                                           "models/biomodels/BIOMD0000000064.xml"))
        runner.integrator.relative_tolerance = 1e-10
        runner.integrator.absolute_tolerance = 1e-14
        last = runner.simulate(0.0, horizon, 11, [f"[{name}]" for name in names])[-1]
        reference = dict(zip(names, map(float, last)))
    except ImportError:
        pass
    print(f"means at T={horizon:g}: species, sbml_cme mean (sd), GillesPy2 mean of {n_peer} "
          "and its relative difference, libroadrunner (CVODE rtol 1e-10) for the metabolites")
    for name in names + ["P0"]:
        source = counts if name == "P0" else model_units
        mean, sd = source[f"{name}-mean"], source[f"{name}-sd"]
        peer = float(np.mean([trajectory[name][-1] for trajectory in results]))
        print(f"  {name:5s} {mean:12.7g} ({sd:.2g})  {peer:12.7g} "
              f"{(peer - mean) / abs(mean) if mean else float('nan'):+9.2e}  "
              f"{reference.get(name, float('nan')):12.7g}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--teusink", action="store_true",
                        help="only BIOMD0000000064 + a gene module, 100 trajectories")
    parser.add_argument("--rtol", type=float, default=1e-7,
                        help="simulate_hybrid's relative ODE tolerance for --teusink")
    parser.add_argument("--gillespy2", action="store_true",
                        help="the telegraph (with --teusink: 064 + gene) beside GillesPy2's "
                             "TauHybridSolver")
    parser.add_argument("--peer-horizon", type=float, default=1.0,
                        help="T of the --teusink --gillespy2 side-by-side run")
    parser.add_argument("--peer-n", type=int, default=2,
                        help="GillesPy2 trajectories of the --teusink --gillespy2 run")
    options = parser.parse_args()
    n = 100 if options.quick else 1000
    times = np.linspace(0.0, 50.0, 11)
    print(f"python {platform.python_version()}, {platform.machine()}, n={n}, T=50")
    if options.teusink and options.gillespy2:
        teusink_side_by_side(options.peer_horizon, 100, options.peer_n)
        return
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
