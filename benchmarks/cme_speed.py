"""CME speed and scale: finite state projection sizes, rates and ratios (issue 3, item 7).

Prints sizes, states per second, wall and CPU seconds, peak memory and ratios; it is not a
timed test. Usage::

    /work/venv/bin/python benchmarks/cme_speed.py              # full: ~10^6 states
    /work/venv/bin/python benchmarks/cme_speed.py --mean 100   # ~3 x 10^4 states, quick
    /work/venv/bin/python benchmarks/cme_speed.py --skip-large # only (c)-(e)
    /work/venv/bin/python benchmarks/cme_speed.py --skip-transient --skip-methods  # (c), (a)
    /work/venv/bin/python benchmarks/cme_speed.py --skip-stationary --skip-methods # (c), (b)
    /work/venv/bin/python benchmarks/cme_speed.py --skip-large --implicit          # + (f)

Model (SBML, item units, written below): two independent birth-death species,
0 -> A at kA, A -> 0 at dA*A, 0 -> B at kB, B -> 0 at dB*B, with kA = kB = ``--mean`` and
dA = dB = 1. The stationary law is Poisson(mean) x Poisson(mean), the transient from
A = B = 0 is Poisson(mean (1 - e^-t)) x Poisson(mean (1 - e^-t)); with mean 800 the FSP box
is 981 x 981 ~ 0.96 x 10^6 states.

Sections:
(a) ``stationary_cme`` on the large model: wall, CPU, peak RSS, error vs the exact law.
(b) ``solve_cme`` (default method ``"auto"``) from 0 to ``--t-end``: same, plus the
    method used, Krylov steps, products with A, the integration error estimate and
    states x products per CPU second. The horizon t = 5 is five relaxation times
    (relaxation time 1 / d = 1): the law travels from (0, 0) to within e^-5 of
    stationarity.
(c) states per second of ``enumerate_states`` and of ``build_generator``, separately.
(d) a dense ``scipy.linalg.expm`` baseline on a small model (a few hundred states):
    max abs difference of the distributions and the speed ratio.
(e) every transient method (``cme.METHODS``: Krylov with full and incomplete
    orthogonalisation, BDF) and scipy ``expm_multiply`` on the small and a medium model:
    time, CPU ratio to ``krylov_iop``, max abs difference and L1 distance to the exact law.
(g) mat-vec with the generator: states/s and GB/s, scipy's kernel and the numba-parallel
    CSR kernel, against a STREAM-like copy bandwidth measured in the same run.
(h) the mass-following stationary window: means 5000 and 4000, tol 1e-6 (issue 14).
(f) (``--implicit``) fixed-step TR-BDF2 (one sparse LU, reused) on the medium model: the
    number of implicit steps, and their CPU time, needed for a given accuracy.

Wall times on a shared machine are inflated by other load; CPU seconds of this process
(``time.process_time``) are printed next to them and are the like-for-like figure.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import scipy.linalg  # noqa: E402
import scipy.sparse  # noqa: E402
import scipy.sparse.linalg as splinalg  # noqa: E402
from scipy import stats  # noqa: E402

from sbml_cme.analyses import cme  # noqa: E402
from sbml_cme.io.sbml_reader import read_sbml_string  # noqa: E402

_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">
  <model id="two_birth_death" substanceUnits="item" extentUnits="item" timeUnits="second">
    <listOfCompartments>
      <compartment id="cell" spatialDimensions="3" size="1" constant="true"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="A" compartment="cell" initialAmount="0" hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>
      <species id="B" compartment="cell" initialAmount="0" hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="kA" value="{mean:g}" constant="true"/>
      <parameter id="kB" value="{mean:g}" constant="true"/>
      <parameter id="dA" value="1" constant="true"/>
      <parameter id="dB" value="1" constant="true"/>
    </listOfParameters>
    <listOfReactions>
"""


def _reaction(rid: str, reactant: str | None, product: str | None, law: str) -> str:
    text = f'      <reaction id="{rid}" reversible="false" fast="false">\n'
    for tag, sid in (("listOfReactants", reactant), ("listOfProducts", product)):
        if sid:
            text += (f'        <{tag}><speciesReference species="{sid}" stoichiometry="1" '
                     f'constant="true"/></{tag}>\n')
    return text + ('        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">'
                   f'{law}</math></kineticLaw>\n      </reaction>\n')


def two_birth_death(mean: float):
    """The benchmark Network (two independent birth-death species, stationary mean ``mean``)."""
    text = _HEADER.format(mean=mean)
    for s in "AB":
        text += _reaction(f"birth_{s}", None, s, f"<ci>k{s}</ci>")
        text += _reaction(f"death_{s}", s, None,
                          f"<apply><times/><ci>d{s}</ci><ci>{s}</ci></apply>")
    return read_sbml_string(text + "    </listOfReactions>\n  </model>\n</sbml>\n")


# -- helpers ----------------------------------------------------------------------------------
def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Timer:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def exact_l1(states: np.ndarray, probabilities: np.ndarray, mean: float) -> float:
    """L1 distance to Poisson(mean) x Poisson(mean) on the set plus the exact mass off it."""
    exact = stats.poisson(mean).pmf(states[:, 0]) * stats.poisson(mean).pmf(states[:, 1])
    return float(np.abs(probabilities - exact).sum() + (1.0 - exact.sum()))


def fsp_problem(mean: float, t_end: float):
    """(compiled, space, generator, p0) of the absorbing FSP used by solve_cme at t_end."""
    network = two_birth_death(mean)
    compiled, space, matrix, p0 = cme.initial_fsp_problem(network, t_end)
    return (compiled, space, matrix, p0, space.key_species, space.radix, space.bounds,
            network.parameter_values.copy())


# -- sections ---------------------------------------------------------------------------------
def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def section_stationary(mean: float) -> None:
    network = two_birth_death(mean)
    print(f"\n(a) stationary_cme, two birth-death species, mean {mean:g}  ({load()})")
    with Timer() as timer:
        result = cme.stationary_cme(network)
    states, p = result.distributions[0]
    print(f"    states {result.n_states:,}  wall {timer.wall:.1f} s  cpu {timer.cpu:.1f} s  "
          f"peak RSS {peak_rss_gib():.2f} GiB  certificate {result.error_bound:.2e}  "
          f"L1 to exact {exact_l1(states, p, mean):.2e}  horizon {result.run_info['horizon']:.3g}"
          f"  (target: 60 s, 4 GB; {load()})")


def section_transient(mean: float, t_end: float) -> None:
    network = two_birth_death(mean)
    print(f"\n(b) solve_cme (method='auto'), two birth-death species, mean {mean:g}, from "
          f"(0, 0), times 0, {t_end / 2:g}, {t_end:g}  ({load()})")
    with Timer() as timer:
        result = cme.solve_cme(network, [0.0, t_end / 2, t_end])
    states, p = result.distributions[-1]
    level = mean * (1 - np.exp(-t_end))
    info = result.run_info
    print(f"    states {result.n_states:,}  wall {timer.wall:.1f} s  cpu {timer.cpu:.1f} s  "
          f"peak RSS {peak_rss_gib():.2f} GiB  bound {result.error_bound:.2e}  "
          f"L1 to exact {exact_l1(states, p, level):.2e}")
    print(f"    method {info['method']}  Krylov steps {info['krylov_steps']}  products with A "
          f"{info['matrix_products']:,}  integration error estimate "
          f"{info['integration_error']:.2e}  FSP rounds {info['fsp_rounds']}")
    print(f"    {result.n_states * info['matrix_products'] / timer.cpu:,.0f} state-products per "
          f"cpu s  (target: 120 s; cpu/target {timer.cpu / 120:.2f}, wall/target "
          f"{timer.wall / 120:.2f}; {load()})")


def section_assembly(mean: float) -> None:
    print(f"\n(c) assembly rates, mean {mean:g}")
    compiled, space, _, _, key_species, radix, bounds, parameters = fsp_problem(mean, 10.0)
    x0 = np.zeros((1, 2), dtype=np.int64)
    with Timer() as enum_timer:
        space = cme.enumerate_states(compiled, x0, bounds, key_species, radix, parameters,
                                     10**8, 2)
    with Timer() as build_timer:
        matrix, _ = cme.build_generator(compiled, space, parameters)
    n = space.n_states
    print(f"    states {n:,}  nnz {matrix.nnz:,}")
    print(f"    enumeration  {n / enum_timer.wall:,.0f} states/s wall  "
          f"({enum_timer.wall:.2f} s wall, {enum_timer.cpu:.2f} s cpu)")
    print(f"    generator    {n / build_timer.wall:,.0f} states/s wall  "
          f"({build_timer.wall:.2f} s wall, {build_timer.cpu:.2f} s cpu)")


def _timed(function):
    with Timer() as timer:
        value = function()
    return value, timer


def section_methods(mean: float, t_end: float, dense: bool) -> None:
    _, space, matrix, p0, *_ = fsp_problem(mean, t_end)
    n = matrix.shape[0]
    print(f"\n({'d' if dense else 'e'}) transient methods, mean {mean:g}, t = {t_end:g}, "
          f"{space.n_states:,} states + {n - space.n_states} sinks, nnz {matrix.nnz:,}  "
          f"({load()})")
    grid = np.array([0.0, t_end])
    runs = {f"{name}": (lambda name=name: cme._propagate(matrix, p0, grid, name)[-1])
            for name in cme.METHODS if name != "auto"}
    runs["expm_multiply"] = lambda: splinalg.expm_multiply(matrix * t_end, p0)
    if dense:
        runs["dense expm"] = lambda: scipy.linalg.expm(matrix.toarray() * t_end) @ p0
    results = {name: _timed(run) for name, run in runs.items()}
    reference_name = "dense expm" if dense else "krylov"
    reference, reference_timer = results[reference_name]
    level = mean * (1 - np.exp(-t_end))
    print(f"    {'method':<15} {'wall s':>8} {'cpu s':>8} {'cpu/iop':>8} "
          f"{'max|dp| vs ' + reference_name:>26} {'L1 to exact':>12}")
    iop_cpu = results["krylov_iop"][1].cpu
    for name, (p, timer) in results.items():
        print(f"    {name:<15} {timer.wall:8.2f} {timer.cpu:8.2f} "
              f"{timer.cpu / iop_cpu:8.2f} {np.abs(p - reference).max():26.2e} "
              f"{exact_l1(space.states, p[:space.n_states], level):12.2e}")


def section_implicit(mean: float, t_end: float, steps_list=(500, 1667, 5000)) -> None:
    """Fixed-step TR-BDF2 (Bank et al. 1985; gamma = 2 - sqrt 2, both stages share the
    matrix I - (gamma / 2) h A, factorised once by SuperLU): L1 distance to ``krylov_iop``
    at t_end, so the step count an implicit integrator needs for a given accuracy."""
    _, space, matrix, p0, *_ = fsp_problem(mean, t_end)
    n = matrix.shape[0]
    grid = np.array([0.0, t_end])
    reference, timer = _timed(lambda: cme._propagate(matrix, p0, grid, "krylov_iop",
                                                     tolerance=1e-13)[-1])
    print(f"\n(f) fixed-step TR-BDF2 vs krylov_iop ({timer.cpu:.2f} s cpu), mean {mean:g}, "
          f"t = {t_end:g}, {n:,} states  ({load()})")
    gamma = 2.0 - np.sqrt(2.0)
    half = gamma / 2.0
    csc = matrix.tocsc()
    identity = scipy.sparse.identity(n, format="csc")
    print(f"    {'steps':>6} {'h':>9} {'LU fill':>10} {'cpu s':>8} {'cpu/iop':>8} "
          f"{'L1 vs iop':>10}")
    for steps in steps_list:
        h = t_end / steps
        with Timer() as run:
            lu = splinalg.splu((identity - half * h * csc).tocsc(), permc_spec="COLAMD")
            y = p0.copy()
            for _ in range(steps):
                stage = lu.solve(y + half * h * (csc @ y))          # trapezoid to t + gamma h
                y = lu.solve((stage - (1 - gamma) ** 2 * y) / (gamma * (2 - gamma)))  # BDF2
        print(f"    {steps:6d} {h:9.2e} {lu.L.nnz + lu.U.nnz:10,} {run.cpu:8.2f} "
              f"{run.cpu / timer.cpu:8.1f} {np.abs(y - reference).sum():10.2e}")


def stream_copy_gbs(n: int = 2**25, repeats: int = 5) -> float:
    """STREAM-like copy bandwidth, GB/s: the best of ``repeats`` copies of n doubles
    (read + write, 16 n bytes)."""
    source, target = np.random.default_rng(0).random(n), np.empty(n)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return 16 * n / best / 1e9


def section_bandwidth(mean: float, repeats: int = 20) -> None:
    """(g) mat-vec with the FSP generator: states/s and GB/s (CSR data + indices +
    indptr + x + y bytes per product) for scipy's kernel and the numba-parallel one,
    against the machine's STREAM-like copy bandwidth."""
    import numba
    _, space, matrix, *_ = fsp_problem(mean, 5.0)
    x, y = np.random.default_rng(1).random(matrix.shape[0]), np.empty(matrix.shape[0])
    moved = (matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
             + x.nbytes + y.nbytes)
    copy = stream_copy_gbs()
    print(f"\n(g) mat-vec, {matrix.shape[0]:,} states, {matrix.nnz:,} nonzeros, "
          f"{moved / 1e6:.0f} MB per product; STREAM-like copy {copy:.1f} GB/s  ({load()})")
    scipy_kernel = cme._matvec(matrix)
    kernels = {"scipy csr_matvec (1 thread)": lambda: scipy_kernel(x, y)}
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        def run(threads=threads):
            numba.set_num_threads(threads)
            cme._csr_matvec(matrix.indptr, matrix.indices, matrix.data, x, y)
        kernels[f"numba parallel CSR ({threads} threads)"] = run
    for name, kernel in kernels.items():
        kernel()
        start = time.perf_counter()
        for _ in range(repeats):
            kernel()
        seconds = (time.perf_counter() - start) / repeats
        print(f"    {name:32s} {seconds * 1e3:7.2f} ms  {matrix.shape[0] / seconds:.3g} states/s  "
              f"{moved / seconds / 1e9:5.1f} GB/s = {moved / seconds / 1e9 / copy:.2f} x copy")


def section_window(mean_a: float = 5000.0, mean_b: float = 4000.0) -> None:
    """(h) the mass-following stationary window (issue 14): two birth-death species with
    means 5000 and 4000, tol 1e-6 (the box from zero would hold 2.4e7 states)."""
    text = _HEADER.format(mean=mean_a).replace(f'id="kB" value="{mean_a:g}"',
                                                f'id="kB" value="{mean_b:g}"')
    for s in "AB":
        text += _reaction(f"birth_{s}", None, s, f"<ci>k{s}</ci>")
        text += _reaction(f"death_{s}", s, None,
                          f"<apply><times/><ci>d{s}</ci><ci>{s}</ci></apply>")
    network = read_sbml_string(text + "    </listOfReactions>\n  </model>\n</sbml>\n")
    means = network.parameter_values[[network.parameter_ids.index("kA"),
                                      network.parameter_ids.index("kB")]]
    print(f"\n(h) stationary window, means {means[0]:g} and {means[1]:g}, tol 1e-6  ({load()})")
    with Timer() as timer:
        result = cme.stationary_cme(network, tol=1e-6)
    states, p = result.distributions[0]
    exact = stats.poisson(means[0]).pmf(states[:, 0]) * stats.poisson(means[1]).pmf(states[:, 1])
    print(f"    states {result.n_states:,}  rounds {result.run_info['fsp_rounds']}  wall "
          f"{timer.wall:.1f} s  cpu {timer.cpu:.1f} s  peak RSS {peak_rss_gib():.2f} GiB  "
          f"certificate {result.error_bound:.2e}  L1 to exact "
          f"{np.abs(p - exact).sum() + 1 - exact.sum():.2e}  (targets: 10 s, 1e6 states, 2e-6)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mean", type=float, default=800.0,
                        help="stationary mean of each species (800: ~10^6 states)")
    parser.add_argument("--t-end", type=float, default=5.0)
    parser.add_argument("--medium", type=float, default=100.0,
                        help="mean of the medium model of section (e)")
    parser.add_argument("--skip-large", action="store_true", help="skip (a) and (b)")
    parser.add_argument("--skip-methods", action="store_true", help="skip (d) and (e)")
    parser.add_argument("--skip-transient", action="store_true", help="skip (b)")
    parser.add_argument("--skip-stationary", action="store_true", help="skip (a)")
    parser.add_argument("--skip-scale", action="store_true", help="skip (g) and (h)")
    parser.add_argument("--implicit", action="store_true",
                        help="also run (f), fixed-step TR-BDF2 on the medium model")
    arguments = parser.parse_args()
    print(f"sbml_cme CME benchmark, {datetime.date.today()}, {platform.machine()}, "
          f"{os.cpu_count()} cores, {load()}")
    # warm the numba caches so compile time is not charged to the first section
    cme.stationary_cme(two_birth_death(3.0))
    cme.solve_cme(two_birth_death(3.0), [0.0, 1.0])
    section_assembly(arguments.mean)
    if not arguments.skip_scale:
        section_bandwidth(arguments.mean)
        section_window()
    if not arguments.skip_large and not arguments.skip_stationary:
        section_stationary(arguments.mean)
    if not arguments.skip_large and not arguments.skip_transient:
        section_transient(arguments.mean, arguments.t_end)
    if not arguments.skip_methods:
        section_methods(3.0, 1.0, dense=True)
        section_methods(arguments.medium, arguments.t_end, dense=False)
    if arguments.implicit:
        section_implicit(arguments.medium, arguments.t_end)


if __name__ == "__main__":
    main()
