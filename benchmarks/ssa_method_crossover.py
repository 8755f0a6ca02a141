"""Where does the SSA's ``tree`` method beat ``direct``? The measurement behind ``"auto"``.

Runs ``simulate_ssa(method="direct")`` and ``method="tree"`` one after the other on one
thread, on the same network and horizon, and prints events per second of each and their
ratio, as a function of the number of channels M and of the dependency-graph fan-out d
(the mean number of propensities updated per firing, ``KernelData.dependents``). It then
fits the per-event cost of each method,

    direct:  c_sum * M + c_update * d          (re-sum and linear search over M channels)
    tree:    c_tree * (d + 1) * log2(M)        (one leaf-to-root path per update, one search)

and prints the crossover rule that ``simulate_ssa(method="auto")`` applies,
tree when (d + 1) log2(M) < F M: the fitted F = c_sum / c_tree, the range of F that picks
the faster method in the most cases, and how the current ``ssa.AUTO_TREE_FACTOR`` does. Usage::

    nice -n 10 python benchmarks/ssa_method_crossover.py            # about 5 minutes
    nice -n 10 python benchmarks/ssa_method_crossover.py --quick    # about 1 minute

Networks (built in Python, first-order conversions ``X_r -> X_p`` unless noted):

- ``ring``: M/2 species in a ring, X_i -> X_{i+-1}, k = 1, 100 molecules each (d = 4);
- ``random-d``: M channels between S = 2M/d species chosen at random (fan-out about d;
  d = M/4 and S = 2 are dense networks in which almost every propensity changes);
- ``ring-hill``: the ring with general laws k X / (50 + X) (bytecode propensities);
- ``birth_death`` (benchmarks/models) and ``vilar`` (models/biomodels/BIOMD0000000035.xml).

Each timed run lasts about ``--seconds`` for the slower method; the machine is shared, so
compare the ratios (both methods run back to back), not the absolute rates.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import sympy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import sbml_cme  # noqa: E402
from sbml_cme import Compartment, Expression, MassAction, Network, Reaction, Species  # noqa: E402
from sbml_cme.analyses import ssa  # noqa: E402
from sbml_cme.kinetics import compile_network  # noqa: E402


# -- networks -------------------------------------------------------------------------------
def conversion_network(name: str, pairs, n_species: int, rates, count: float = 100.0,
                       hill: bool = False) -> Network:
    """Channels X_r -> X_p for (r, p) in ``pairs``, ``count`` molecules of each species."""
    species = tuple(Species(f"X{i}", "cell", count) for i in range(n_species))
    reactions = []
    for j, ((r, p), k) in enumerate(zip(pairs, rates)):
        x = f"X{r}"
        law = (Expression(sympy.Float(k) * sympy.Symbol(x) / (50 + sympy.Symbol(x))) if hill
               else MassAction(sympy.Float(k), ((x, 1),)))
        reactions.append(Reaction(f"R{j}", ((x, 1),), ((f"X{p}", 1),), law))
    return Network(species, tuple(reactions), compartments=(Compartment("cell", size=1.0),),
                   id=name)


def ring(n_channels: int, hill: bool = False) -> Network:
    n = n_channels // 2
    pairs = [(i, (i + step) % n) for i in range(n) for step in (1, -1)]
    return conversion_network(f"ring{'-hill' if hill else ''}{n_channels}", pairs, n,
                              np.ones(len(pairs)), hill=hill)


def random_network(n_channels: int, fan_out: float, seed: int = 0) -> Network:
    n_species = max(2, int(round(2 * n_channels / fan_out)))
    rng = np.random.default_rng(seed)
    reactant = rng.integers(0, n_species, n_channels)
    product = (reactant + rng.integers(1, n_species, n_channels)) % n_species
    return conversion_network(f"random{n_channels}-d{fan_out:g}",
                              list(zip(reactant.tolist(), product.tolist())), n_species,
                              rng.uniform(0.5, 1.5, n_channels))


def bundled(name: str) -> Network:
    path = {"birth_death": ROOT / "benchmarks" / "models" / "birth_death.xml",
            "vilar": ROOT / "models" / "biomodels" / "BIOMD0000000035.xml"}[name]
    return sbml_cme.read_sbml(path, substance_unit="item")


def cases(quick: bool) -> list[tuple[str, Network]]:
    sizes = [10, 30, 100, 300, 1000, 3000] if quick else [10, 30, 100, 300, 1000, 3000,
                                                          5000]
    result = [("birth_death", bundled("birth_death")), ("vilar", bundled("vilar"))]
    for m in sizes:
        result.append(("ring", ring(m)))
        result.append(("random-d8", random_network(m, 8)))
        if m >= 30:
            result.append(("random-dM/4", random_network(m, m / 4)))
        if m <= 1000:
            result.append(("random-S2", random_network(m, m)))
    for m in ([30, 300, 3000] if quick else [30, 300, 1000, 5000]):
        result.append(("ring-hill", ring(m, hill=True)))
    return result


# -- measurement ------------------------------------------------------------------------------
def fan_out(network: Network) -> float:
    """Mean number of propensities updated per firing (dependency graph)."""
    data = compile_network(network, random_draws=True).data
    return len(data.dependents) / max(len(network.reactions), 1)


def events_per_second(network: Network, method: str, t_end: float, n: int, seed: int):
    result = ssa.simulate_ssa(network, [0.0, t_end], n_trajectories=n, seed=seed,
                              method=method, n_jobs=1)
    return result.total_events / result.run_info["wall_time"], result.total_events


def horizon(network: Network, seconds: float, n: int) -> float:
    """End time at which n trajectories of the slower method take about ``seconds``."""
    t = 1e-3
    while True:
        slowest, events = min(events_per_second(network, m, t, n, 0) for m in ssa.METHODS)
        if events >= 2e4 or t > 1e6:
            break
        t *= 10
    return t * seconds * slowest / max(events, 1)


def measure(network: Network, seconds: float, repeats: int, n: int = 4) -> dict:
    t_end = horizon(network, seconds, n)
    rates = {m: [] for m in ssa.METHODS}
    events = 0
    for r in range(repeats):  # alternate, so load changes hit both methods alike
        for method in ssa.METHODS:
            rate, events = events_per_second(network, method, t_end, n, 1 + r)
            rates[method].append(rate)
    return {m: float(np.median(v)) for m, v in rates.items()} | {"events": events,
                                                                 "t_end": t_end}


def fit(rows: list[dict]) -> dict:
    """Least-squares costs (ns per event) of the two cost models, on the mass-action rows."""
    rows = [r for r in rows if r["family"] != "ring-hill"]
    m = np.array([r["channels"] for r in rows], dtype=float)
    d = np.array([r["fan_out"] for r in rows])
    direct = 1e9 / np.array([r["direct"] for r in rows])
    tree = 1e9 / np.array([r["tree"] for r in rows])
    # Relative least squares (each row weighted by 1/cost): small networks count as much
    # as large ones.
    design = np.column_stack([m, d, np.ones_like(m)]) / direct[:, None]
    c_sum, c_update, c0_direct = np.linalg.lstsq(design, np.ones_like(m), rcond=None)[0]
    log_m = np.log2(np.maximum(m, 2))
    design = np.column_stack([(d + 1) * log_m, np.ones_like(m)]) / tree[:, None]
    c_tree, c0_tree = np.linalg.lstsq(design, np.ones_like(m), rcond=None)[0]
    return {"c_sum": c_sum, "c_update": c_update, "c0_direct": c0_direct,
            "c_tree": c_tree, "c0_tree": c0_tree}


def n_correct(rows: list[dict], factor: float) -> int:
    """Cases in which the rule with ``factor`` picks the faster method."""
    return sum(((r["fan_out"] + 1) * np.log2(max(r["channels"], 2)) < factor * r["channels"])
               == (r["tree"] > r["direct"]) for r in rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, shorter runs")
    parser.add_argument("--seconds", type=float, default=None,
                        help="wall time per timed run of the slower method")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.15 if args.quick else 0.3)
    repeats = args.repeats or (2 if args.quick else 3)

    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
          f"python {platform.python_version()}, 1 thread, {repeats} alternating repeats, "
          f"~{seconds:g} s per run")
    warm = ring(10)
    for method in ssa.METHODS:  # load the cached numba kernels before timing
        ssa.simulate_ssa(warm, [0.0, 1.0], n_trajectories=2, seed=0, method=method, n_jobs=1)

    rows = []
    header = (f"{'family':<12} {'channels':>8} {'fan_out':>8} {'events':>9} "
              f"{'direct ev/s':>12} {'tree ev/s':>12} {'tree/direct':>11} {'auto':>7}")
    print(header)
    for family, network in cases(args.quick):
        result = measure(network, seconds, repeats)
        row = {"family": family, "channels": len(network.reactions),
               "fan_out": fan_out(network), **result}
        row["auto"] = ssa.choose_method(compile_network(network, random_draws=True))[0]
        rows.append(row)
        print(f"{family:<12} {row['channels']:>8d} {row['fan_out']:>8.1f} "
              f"{row['events']:>9.2e} {row['direct']:>12.3e} {row['tree']:>12.3e} "
              f"{row['tree'] / row['direct']:>11.2f} {row['auto']:>7}", flush=True)

    costs = fit(rows)
    print("\nfitted cost per event (ns): direct = "
          f"{costs['c_sum']:.3f}*M + {costs['c_update']:.2f}*d + {costs['c0_direct']:.0f}; "
          f"tree = {costs['c_tree']:.2f}*(d+1)*log2(M) + {costs['c0_tree']:.0f}")
    print(f"crossover: tree when (d+1)*log2(M) < {costs['c_sum'] / costs['c_tree']:.3f}*M "
          f"(ssa.AUTO_TREE_FACTOR = {ssa.AUTO_TREE_FACTOR})")
    correct = {f: n_correct(rows, f) for f in np.round(np.arange(0.05, 2.0, 0.01), 2)}
    best = max(correct.values())
    print(f"factors classifying the most cases ({best} of {len(rows)}) correctly: "
          f"{min(f for f, n in correct.items() if n == best):g} to "
          f"{max(f for f, n in correct.items() if n == best):g}")
    wrong = [r for r in rows if (r["tree"] > r["direct"]) != (r["auto"] == "tree")]
    loss = [max(r["direct"], r["tree"]) / r[r["auto"]] for r in rows]
    print(f"auto picks the faster method in {len(rows) - len(wrong)} of {len(rows)} cases; "
          f"worst slowdown against the faster method {max(loss):.2f}x"
          + "".join(f"\n  {r['family']} M={r['channels']}: tree/direct "
                    f"{r['tree'] / r['direct']:.2f}, auto {r['auto']}" for r in wrong))


if __name__ == "__main__":
    main()
