"""Recovery and coverage of fit_cme on the bursty telegraph model (issue 16).

Truth: kon = 0.3, koff = 1.5 (gene on 17 % of the time), kr = 30 (bursts of ~20 mRNA),
gamma = 1; gene off and no mRNA at t = 0. Each dataset: 1000 cells at each of t = 0.5, 1,
2, 4, simulated by ``simulate_ssa`` (an independent ensemble per time: snapshot data), only
the mRNA M observed. For each of ``--datasets`` (default 20) datasets: ``fit_cme`` in log
space (box 0.01-10, 0.01-100, 1-300, 0.05-20; ``--starts`` starts), then

- recovery: |estimate - truth| / SE (SE from the FSP Fisher information) per parameter,
  all below 3 required;
- coverage of the 95 % intervals (per parameter and pooled);
- FIM vs empirical covariance: T = sum_i (phi_i - phi*)' F_log (phi_i - phi*) over datasets,
  phi = log theta, F_log the FIM at the truth in log coordinates; chi-square with 4 x
  n_datasets degrees of freedom when the FIM is the estimates' inverse covariance; and
  per parameter the ratio empirical variance / FIM variance (chi2_{n}/n);
- the gradient vs central finite differences (step 1e-4 relative) at the truth;
- times per likelihood, per gradient and per fit; and with ``--parallel`` the speed-up
  of the starts on a local Dask cluster (2 workers).

Usage: ``python benchmarks/fit_coverage.py [--datasets 20] [--starts 2] [--parallel]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import sympy
from scipy import stats

from sbml_cme import (MassAction, Network, Parameter, Reaction, Species, fit_cme,
                      fisher_information, simulate_ssa)
from sbml_cme.analyses.inference import LikelihoodProblem

TRUTH = {"kon": 0.3, "koff": 1.5, "kr": 30.0, "gamma": 1.0}
BOX = {"kon": (0.01, 10.0), "koff": (0.01, 100.0), "kr": (1.0, 300.0), "gamma": (0.05, 20.0)}
TIMES = [0.5, 1.0, 2.0, 4.0]


def telegraph(**values) -> Network:
    def law(rid, reactants, products, k):
        return Reaction(rid, tuple(reactants), tuple(products),
                        MassAction(sympy.Symbol(k), tuple(reactants)))

    values = {**TRUTH, **values}
    return Network(
        species=(Species("G", "cell", 0.0), Species("Goff", "cell", 1.0),
                 Species("M", "cell", 0.0)),
        reactions=(law("on", [("Goff", 1)], [("G", 1)], "kon"),
                   law("off", [("G", 1)], [("Goff", 1)], "koff"),
                   law("tx", [("G", 1)], [("G", 1), ("M", 1)], "kr"),
                   law("deg", [("M", 1)], [], "gamma")),
        parameters=tuple(Parameter(k, v) for k, v in values.items()))


def snapshot_data(network: Network, times, n_cells: int, seed: int) -> pd.DataFrame:
    """``time, M``: an independent SSA ensemble of ``n_cells`` per time."""
    frames = []
    for i, t in enumerate(times):
        ensemble = simulate_ssa(network, [0.0, t], n_trajectories=n_cells,
                                seed=seed * 1000 + i)
        frames.append(pd.DataFrame({"time": t, "M": ensemble.states[:, -1, 2]}))
    return pd.concat(frames, ignore_index=True)


def large_model_timing() -> None:
    """Two independent birth-death species X, Y (k = 200, g = 1) observed jointly at
    t = 0.5, 1, 2 (300 cells each): a box of ~1e5 states, 4 parameters."""
    def law(rid, reactants, products, k):
        return Reaction(rid, tuple(reactants), tuple(products),
                        MassAction(sympy.Symbol(k), tuple(reactants)))

    network = Network(
        species=(Species("X", "cell", 0.0), Species("Y", "cell", 0.0)),
        reactions=(law("mx", [], [("X", 1)], "kx"), law("dx", [("X", 1)], [], "gx"),
                   law("my", [], [("Y", 1)], "ky"), law("dy", [("Y", 1)], [], "gy")),
        parameters=(Parameter("kx", 200.0), Parameter("gx", 1.0), Parameter("ky", 200.0),
                    Parameter("gy", 1.0)))
    frames = []
    for i, t in enumerate([0.5, 1.0, 2.0]):
        e = simulate_ssa(network, [0.0, t], n_trajectories=300, seed=i)
        frames.append(pd.DataFrame({"time": t, "X": e.states[:, -1, 0],
                                    "Y": e.states[:, -1, 1]}))
    data = pd.concat(frames, ignore_index=True)
    problem = LikelihoodProblem(network, data, ["kx", "gx", "ky", "gy"], adapt_box=False)
    theta = np.array([200.0, 1.0, 200.0, 1.0])
    started = time.perf_counter()
    problem.evaluate(theta, gradient=False)
    first = time.perf_counter() - started
    started = time.perf_counter()
    r = problem.evaluate(theta, gradient=False)
    t_like = time.perf_counter() - started
    started = time.perf_counter()
    problem.evaluate(theta, gradient=True)
    t_grad = time.perf_counter() - started
    print(f"{r.n_states} FSP states (leaked {r.max_leaked:.1e}): first call (box, "
          f"enumeration) {first:.1f} s, likelihood {t_like:.2f} s, likelihood + 4-parameter "
          f"gradient {t_grad:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", type=int, default=20)
    parser.add_argument("--starts", type=int, default=2)
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--parallel", action="store_true")
    parser.add_argument("--large", action="store_true",
                        help="only time likelihood and gradient on a ~1e5-state model")
    args = parser.parse_args()
    if args.large:
        large_model_timing()
        return
    network = telegraph()
    names = list(TRUTH)
    truth = np.array([TRUTH[n] for n in names])

    data = snapshot_data(network, TIMES, args.cells, 0)
    problem = LikelihoodProblem(network, data, names, adapt_box=False)
    problem.evaluate(truth)  # compile
    started = time.perf_counter()
    for _ in range(10):
        problem.evaluate(truth, gradient=False)
    t_like = (time.perf_counter() - started) / 10
    started = time.perf_counter()
    for _ in range(10):
        result = problem.evaluate(truth, gradient=True)
    t_grad = (time.perf_counter() - started) / 10
    worst = 0.0
    for k in range(len(names)):
        h = 1e-4 * truth[k]
        up, down = truth.copy(), truth.copy()
        up[k] += h
        down[k] -= h
        fd = (problem.evaluate(up, gradient=False).loglik -
              problem.evaluate(down, gradient=False).loglik) / (2 * h)
        worst = max(worst, abs(result.gradient[k] - fd) / abs(fd))
    print(f"{result.n_states} FSP states; likelihood {t_like * 1e3:.1f} ms, likelihood + "
          f"gradient {t_grad * 1e3:.1f} ms; gradient vs central FD: max relative "
          f"difference {worst:.2e}")

    fim = fisher_information(network, TIMES, args.cells, TRUTH, observed=["M"]).to_numpy()
    fim_log = fim * np.outer(truth, truth)  # d/dlog theta = theta d/dtheta
    print("FIM standard errors at the truth (relative):",
          dict(zip(names, np.round(np.sqrt(np.diag(np.linalg.inv(fim_log))), 4))))

    rows = []
    fit_times = []
    for d in range(args.datasets):
        data = snapshot_data(network, TIMES, args.cells, d + 1)
        started = time.perf_counter()
        fit = fit_cme(network, data, BOX, n_starts=args.starts, seed=d)
        fit_times.append(time.perf_counter() - started)
        for _, r in fit.estimates.iterrows():
            rows.append({"dataset": d, "parameter": r.parameter, "estimate": r.estimate,
                         "standard_error": r.standard_error, "ci_low": r.ci_low,
                         "ci_high": r.ci_high, "truth": TRUTH[r.parameter],
                         "at_bound": r.at_bound})
        print(f"dataset {d}: " + ", ".join(f"{r.parameter}={r.estimate:.4g}"
                                          for _, r in fit.estimates.iterrows())
              + f"  ({fit_times[-1]:.1f} s)", flush=True)
    frame = pd.DataFrame(rows)
    frame["z"] = (frame.estimate - frame.truth) / frame.standard_error
    frame["covered"] = (frame.ci_low <= frame.truth) & (frame.truth <= frame.ci_high)
    print("\nrecovery: max |estimate - truth| / SE per parameter:")
    print(frame.groupby("parameter").z.apply(lambda z: z.abs().max()).round(2).to_string())
    print(f"all within 3 SE: {bool((frame.z.abs() < 3).all())}")
    coverage = frame.groupby("parameter").covered.mean()
    print("95 % interval coverage per parameter:", coverage.round(3).to_dict(),
          f"pooled {frame.covered.mean():.3f}")
    phi = np.log(frame.pivot(index="dataset", columns="parameter",
                             values="estimate")[names].to_numpy())
    deviation = phi - np.log(truth)
    statistic = float(np.einsum("ik,kl,il->", deviation, fim_log, deviation))
    dof = deviation.size
    print(f"FIM vs spread: T = sum (phi - phi*)' F (phi - phi*) = {statistic:.1f} on {dof} "
          f"dof, p = {stats.chi2.sf(statistic, dof):.3f} (two-sided "
          f"{2 * min(stats.chi2.sf(statistic, dof), stats.chi2.cdf(statistic, dof)):.3f})")
    variance = np.diag(np.linalg.inv(fim_log))
    empirical = (deviation ** 2).mean(axis=0)
    n = len(deviation)
    lo, hi = stats.chi2.ppf([0.025, 0.975], n) / n
    print("empirical / FIM variance (log theta, about the truth) per parameter:",
          dict(zip(names, np.round(empirical / variance, 3))),
          f"(95 % band for n={n}: [{lo:.2f}, {hi:.2f}])")
    print(f"fit time per dataset: median {np.median(fit_times):.1f} s "
          f"({args.starts} starts)")
    if args.parallel:
        from dask.distributed import Client, LocalCluster

        data = snapshot_data(network, TIMES, args.cells, 1)
        starts = 4
        started = time.perf_counter()
        fit_cme(network, data, BOX, n_starts=starts, seed=0)
        serial = time.perf_counter() - started
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster, \
                Client(cluster) as client:
            fit_cme(network, data, BOX, n_starts=1, seed=0, client=client)  # warm up
            started = time.perf_counter()
            fit_cme(network, data, BOX, n_starts=starts, seed=0, client=client)
            parallel = time.perf_counter() - started
        print(f"{starts} starts: serial {serial:.1f} s, Dask 2 workers {parallel:.1f} s, "
              f"speed-up {serial / parallel:.2f}")


if __name__ == "__main__":
    main()
