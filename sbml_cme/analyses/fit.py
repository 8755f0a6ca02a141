"""Fit rate constants to single-cell data by maximum FSP likelihood, profile them, and
design the next experiment by D-optimal Fisher information (docs/inference.md)."""

from __future__ import annotations

import math
import time as wallclock
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..errors import OptionsError
from ..network import Network
from .inference import LikelihoodProblem, _chain_kernel, _design_problem

ESTIMATE_COLUMNS = ["parameter", "estimate", "standard_error", "ci_low", "ci_high",
                    "lower_bound", "upper_bound", "at_bound"]
HISTOGRAM_COLUMNS = ["experiment", "time", "species", "count", "n_cells",
                     "observed_fraction", "model_probability"]


@dataclass
class FitResult:
    """Maximum-likelihood fit of a network to single-cell data.

    Attributes
    ----------
    estimates : DataFrame
        ``parameter, estimate, standard_error, ci_low, ci_high, lower_bound, upper_bound,
        at_bound`` (natural units; standard errors from the inverse FSP Fisher
        information at the estimate; the interval is built in log space when the fit is,
        so it is asymmetric there).
    loglik : float
        FSP log-likelihood at the estimate; the exact one lies in ``loglik_interval``.
    fim : DataFrame
        Expected Fisher information of the data's design at the estimate (natural units).
    starts : DataFrame
        One row per start: ``start, loglik, converged, iterations`` and the end point.
    network : Network
        The network with the fitted values.
    """

    estimates: pd.DataFrame
    loglik: float
    loglik_interval: tuple[float, float]
    fim: pd.DataFrame
    covariance: pd.DataFrame
    starts: pd.DataFrame
    network: Network
    problem: LikelihoodProblem = field(repr=False)
    log_space: bool = True
    level: float = 0.95
    run_info: dict = field(default_factory=dict)

    @property
    def values(self) -> dict:
        return dict(zip(self.estimates["parameter"], self.estimates["estimate"]))

    def histograms(self) -> pd.DataFrame:
        """Data vs model, one row per (experiment, time, species, count): the observed
        fraction of cells and the fitted model's marginal probability (counts observed
        exactly or through a discrete measurement model)."""
        problem = self.problem
        theta = self.estimates["estimate"].to_numpy(float)
        rows = []
        for eid in problem.experiments:
            groups = [g for g in problem.groups if g.experiment == eid]
            times = np.unique([g.time for g in groups])
            model, p, _, _ = problem._solve(eid, theta, times, False)
            for g in groups:
                k = int(np.searchsorted(times, g.time))
                for c, sp in enumerate(g.species):
                    stages = problem.measurement.get(sp)
                    if stages and stages[-1].continuous:
                        continue
                    i = problem.network.species_index[sp]
                    size = int(model.bounds[i]) + 1
                    marginal = np.bincount(model.states[:, i], weights=p[k, :-1],
                                           minlength=size)
                    if stages:
                        n_out = size
                        for st in stages:
                            n_out = st.output_size(n_out)
                        marginal = _chain_kernel(stages, np.arange(n_out), size) @ marginal
                    counts = np.round(g.values[:, c]).astype(int)
                    observed = np.bincount(counts, weights=g.weights,
                                           minlength=len(marginal))
                    top = max(len(marginal), len(observed))
                    marginal = np.pad(marginal, (0, top - len(marginal)))
                    observed = np.pad(observed, (0, top - len(observed)))
                    keep = (observed > 0) | (marginal > 1e-6)
                    x = np.arange(top)[keep]
                    rows.append(pd.DataFrame({
                        "experiment": eid, "time": g.time, "species": sp, "count": x,
                        "n_cells": observed[keep], "observed_fraction":
                            observed[keep] / g.n_cells, "model_probability": marginal[keep]}))
        return pd.concat(rows, ignore_index=True)[HISTOGRAM_COLUMNS]

    def profile(self, parameter: str, *, n_points: int = 11, width: float = 3.0,
                ) -> pd.DataFrame:
        """Profile log-likelihood of ``parameter``: the other fitted parameters
        re-optimised on a grid of ``n_points`` values within ``width`` standard errors
        (in log space when the fit is). Columns ``parameter, value, loglik,
        delta_deviance`` (``2 (loglik_max - loglik)``; below 3.84 is inside the
        likelihood-ratio 95 % interval)."""
        names = list(self.problem.names)
        if parameter not in names:
            raise OptionsError(f"'{parameter}' was not fitted; fitted: {names}")
        k = names.index(parameter)
        row = self.estimates.iloc[k]
        est, se = float(row["estimate"]), float(row["standard_error"])
        lo, hi = float(row["lower_bound"]), float(row["upper_bound"])
        if self.log_space:
            s = se / est
            grid = np.exp(np.linspace(math.log(est) - width * s, math.log(est) + width * s,
                                      n_points))
        else:
            grid = np.linspace(est - width * se, est + width * se, n_points)
        grid = np.clip(grid, lo, hi)
        others = [n for n in names if n != parameter]
        bounds = {n: (float(self.estimates.iloc[names.index(n)]["lower_bound"]),
                      float(self.estimates.iloc[names.index(n)]["upper_bound"]))
                  for n in others}
        start = {n: self.values[n] for n in others}
        out = []
        for value in grid:
            if others:
                best = _maximise(self.problem, names, {parameter: value}, bounds, [start],
                                 self.log_space)
                ll = best["loglik"]
            else:
                ll = self.problem.evaluate(np.array([value]), gradient=False).loglik
            out.append((parameter, float(value), float(ll)))
        frame = pd.DataFrame(out, columns=["parameter", "value", "loglik"])
        frame["delta_deviance"] = 2 * (self.loglik - frame["loglik"])
        return frame

    def sample_posterior(self, n_steps: int = 2000, *, n_walkers: int | None = None,
                         burn: int | None = None, seed: int | None = 0,
                         progress: bool = True) -> "PosteriorResult":
        """Bayesian posterior of the fitted parameters by affine-invariant ensemble MCMC
        (emcee; ``pip install 'sbml_cme[mcmc]'``) on the exact FSP likelihood.

        The prior is uniform on the fit's search box in the fit's coordinates: log-uniform
        when the fit was in log space, else uniform. ``n_walkers`` (default
        ``max(8, 4 K)`` for K parameters) start from the Laplace approximation at the
        estimate (its Fisher covariance), clipped into the box. Each step costs one FSP
        likelihood per walker. The first ``burn`` steps (default ``n_steps // 4``) are
        dropped. Convergence is judged by emcee's rule: at least 50 integrated
        autocorrelation times after burn-in."""
        try:
            import emcee
        except ImportError:
            raise OptionsError("sample_posterior needs emcee (pip install "
                               "'sbml_cme[mcmc]' or pip install emcee)") from None
        names = list(self.problem.names)
        K = len(names)
        n_walkers = max(8, 4 * K) if n_walkers is None else int(n_walkers)
        burn = n_steps // 4 if burn is None else int(burn)
        if n_walkers < 2 * K or n_steps < 2 or not 0 <= burn < n_steps:
            raise OptionsError(f"sample_posterior: need n_walkers >= {2 * K} (2 per "
                               f"parameter), n_steps >= 2 and 0 <= burn < n_steps; got "
                               f"n_walkers={n_walkers}, n_steps={n_steps}, burn={burn}")
        to_fit, to_theta = _transform(self.log_space)
        lo = to_fit(self.estimates["lower_bound"].to_numpy(float))
        hi = to_fit(self.estimates["upper_bound"].to_numpy(float))
        theta = self.estimates["estimate"].to_numpy(float)
        covariance = self.covariance.to_numpy(float)
        if self.log_space:
            covariance = covariance / np.outer(theta, theta)

        def log_probability(phi):
            if np.any(phi < lo) or np.any(phi > hi):
                return -np.inf
            return self.problem.evaluate(to_theta(phi), gradient=False).loglik

        rng = np.random.default_rng(seed)
        start = rng.multivariate_normal(to_fit(theta), covariance, size=n_walkers,
                                        method="eigh")
        width = hi - lo
        start = np.clip(start, lo + 1e-9 * width, hi - 1e-9 * width)
        sampler = emcee.EnsembleSampler(n_walkers, K, log_probability)
        if seed is not None:
            sampler.random_state = np.random.RandomState(seed).get_state()
        sampler.run_mcmc(start, n_steps, progress=progress)
        chain = sampler.get_chain()[burn:]  # (steps, walkers, K), fit coordinates
        tau = emcee.autocorr.integrated_time(chain, quiet=True) if len(chain) > 1 else \
            np.full(K, np.inf)
        draws = to_theta(chain.reshape(-1, K))
        samples = pd.DataFrame(draws, columns=names)
        samples.insert(0, "walker", np.tile(np.arange(n_walkers), len(chain)))
        samples.insert(0, "step", np.repeat(np.arange(burn, n_steps), n_walkers))
        samples["log_likelihood"] = sampler.get_log_prob()[burn:].reshape(-1)
        q = np.quantile(draws, [0.5 - self.level / 2, 0.5, 0.5 + self.level / 2], axis=0)
        summary = pd.DataFrame({
            "parameter": names, "mean": draws.mean(axis=0), "sd": draws.std(axis=0, ddof=1),
            "median": q[1], "ci_low": q[0], "ci_high": q[2], "autocorrelation_time": tau,
            "effective_samples": chain.shape[0] * n_walkers / tau,
            "mle": theta})
        return PosteriorResult(
            samples=samples, summary=summary,
            acceptance_fraction=float(np.mean(sampler.acceptance_fraction)),
            converged=bool(np.all(len(chain) >= 50 * tau)), level=self.level,
            run_info={"n_steps": n_steps, "n_walkers": n_walkers, "burn": burn,
                      "seed": seed, "prior": "log-uniform" if self.log_space else "uniform"})

    def figures(self) -> dict:
        """``{"fit_histograms": Figure}`` (matplotlib, through sbml_cme.reports)."""
        from ..reports.plots import plot_fit_histograms

        return {"fit_histograms": plot_fit_histograms(self.histograms())}

    def to_sbml(self, path):
        """Write the source SBML with the fitted values set and their uncertainty as
        sbml_cme annotations (network must have been read from SBML)."""
        from ..io.fit_writer import write_fitted_sbml

        return write_fitted_sbml(self.problem.network, self.estimates, path,
                                 loglik=self.loglik, run_info=self.run_info)

    def summary(self) -> str:
        lines = [f"FSP maximum likelihood: loglik {self.loglik:.6g} (exact in "
                 f"[{self.loglik_interval[0]:.6g}, {self.loglik_interval[1]:.6g}]), "
                 f"{self.run_info.get('n_cells', 0):g} cells"]
        for _, r in self.estimates.iterrows():
            lines.append(f"  {r.parameter:>12s} = {r.estimate:.5g} +/- {r.standard_error:.3g}"
                         f"  [{r.ci_low:.5g}, {r.ci_high:.5g}]"
                         + ("  (at a bound)" if r.at_bound else ""))
        return "\n".join(lines)


@dataclass
class PosteriorResult:
    """MCMC draws from the posterior of a fit (:meth:`FitResult.sample_posterior`).

    ``samples``: ``step, walker``, one column per parameter (natural units) and
    ``log_likelihood``, one row per retained draw. ``summary``: ``parameter, mean, sd,
    median, ci_low, ci_high`` (equal-tailed credible interval at the fit's level),
    ``autocorrelation_time`` (steps, in the fit's coordinates), ``effective_samples``
    and the ``mle``. ``converged``: every chain is at least 50 autocorrelation times
    long after burn-in (emcee's rule)."""

    samples: pd.DataFrame
    summary: pd.DataFrame
    acceptance_fraction: float
    converged: bool
    level: float
    run_info: dict = field(default_factory=dict)


def _transform(log_space):
    if log_space:
        return np.log, np.exp
    return (lambda x: np.asarray(x, float)), (lambda x: np.asarray(x, float))


def _maximise(problem: LikelihoodProblem, names, fixed: dict, bounds: dict, starts,
              log_space: bool) -> dict:
    """Best L-BFGS-B run over ``starts`` (list of dicts) for the free parameters."""
    free = [n for n in names if n not in fixed]
    to_fit, to_theta = _transform(log_space)
    scale = 1.0 / max(sum(g.n_cells for g in problem.groups), 1.0)
    cache = {}

    def full(phi):
        theta = np.empty(len(names))
        values = dict(fixed)
        values.update(zip(free, to_theta(phi)))
        for i, n in enumerate(names):
            theta[i] = values[n]
        return theta

    def objective(phi):
        key = phi.tobytes()
        if key not in cache:
            theta = full(phi)
            r = problem.evaluate(theta)
            g = np.array([r.gradient[names.index(n)] for n in free])
            if log_space:
                g = g * to_theta(phi)
            cache.clear()
            cache[key] = (-r.loglik * scale, -g * scale)
        return cache[key]

    box = [tuple(to_fit(np.array(bounds[n], float))) for n in free]
    best = None
    runs = []
    for i, start in enumerate(starts):
        x0 = to_fit(np.array([start[n] for n in free], float))
        x0 = np.clip(x0, [b[0] for b in box], [b[1] for b in box])
        res = optimize.minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=box,
                                options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 500})
        run = {"start": i, "loglik": -res.fun / scale, "converged": bool(res.success),
               "iterations": int(res.nit), "message": str(res.message),
               **dict(zip(free, to_theta(res.x)))}
        runs.append(run)
        if best is None or run["loglik"] > best["loglik"]:
            best = run
    best = dict(best)
    best["runs"] = runs
    return best


def _starts(names, bounds, network: Network, n_starts: int, seed, initial=None,
            log_space: bool = True):
    """The network's values (or ``initial``; the box centre when outside), then draws
    uniform in the box (in log space when the fit is)."""
    rng = np.random.default_rng(seed)
    values = dict(zip(network.parameter_ids, network.parameter_values))
    first = {}
    for n in names:
        lo, hi = bounds[n]
        v = (initial or {}).get(n, values[n])
        centre = math.sqrt(lo * hi) if log_space else 0.5 * (lo + hi)
        first[n] = v if lo <= v <= hi and (v > 0 or not log_space) else centre
    starts = [first]
    for _ in range(n_starts - 1):
        if log_space:
            starts.append({n: float(np.exp(rng.uniform(math.log(bounds[n][0]),
                                                       math.log(bounds[n][1]))))
                           for n in names})
        else:
            starts.append({n: float(rng.uniform(*bounds[n])) for n in names})
    return starts


def fit_cme(network: Network, data, parameters: dict, *, log_space: bool = True,
            experiments=None, measurement=None, n_starts: int = 4, seed: int | None = 0,
            initial: dict | None = None, tol: float = 1e-8, level: float = 0.95,
            client=None) -> FitResult:
    """Maximum-likelihood fit of ``parameters`` to single-cell data with the exact FSP
    likelihood.

    Parameters
    ----------
    network : Network
    data : DataFrame
        See :func:`sbml_cme.analyses.inference.tidy_observations`.
    parameters : dict
        ``{parameter id: (low, high)}`` search box (natural units; ``low > 0`` in
        log space).
    log_space : bool
        Optimise log(theta) (the rates' natural scale); intervals are then built in log
        space and mapped back.
    experiments, measurement, tol
        See :class:`~sbml_cme.analyses.inference.LikelihoodProblem`.
    n_starts : int
        L-BFGS-B starts: the network's values (or ``initial``) and ``n_starts - 1`` log-
        uniform draws in the box (``seed``).
    level : float
        Confidence level of ``ci_low, ci_high`` (Wald, from the FSP Fisher information).
    client : dask.distributed.Client, optional
        Run the starts as tasks on this cluster.

    Returns
    -------
    FitResult
    """
    started = wallclock.perf_counter()
    if not parameters:
        raise OptionsError("fit_cme needs parameters={'id': (low, high), ...}")
    bounds = {}
    for n, box in parameters.items():
        lo, hi = (float(b) for b in box)
        if not lo < hi or (log_space and lo <= 0):
            raise OptionsError(f"parameter '{n}': bounds ({lo}, {hi}) must satisfy "
                               f"{'0 < ' if log_space else ''}low < high")
        bounds[n] = (lo, hi)
    names = list(bounds)
    problem = LikelihoodProblem(network, data, names, experiments=experiments,
                                measurement=measurement, tol=tol)
    starts = _starts(names, bounds, network, n_starts, seed, initial, log_space)
    if client is not None:
        futures = [client.submit(_maximise, problem, names, {}, bounds, [s], log_space,
                                 pure=False) for s in starts]
        results = client.gather(futures)
        best = max(results, key=lambda r: r["loglik"])
        best = dict(best, runs=[dict(r["runs"][0], start=i) for i, r in enumerate(results)])
    else:
        best = _maximise(problem, names, {}, bounds, starts, log_space)
    theta = np.array([best[n] for n in names])
    final = problem.evaluate(theta, gradient=True, fisher=True)
    fim = final.fim
    try:
        covariance = np.linalg.inv(fim)
    except np.linalg.LinAlgError:
        covariance = np.linalg.pinv(fim)
    se = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    z = stats.norm.ppf(0.5 + level / 2)
    if log_space:
        s = se / theta
        ci = (theta * np.exp(-z * s), theta * np.exp(z * s))
    else:
        ci = (theta - z * se, theta + z * se)
    lo = np.array([bounds[n][0] for n in names])
    hi = np.array([bounds[n][1] for n in names])
    at_bound = (np.abs(theta - lo) <= 1e-6 * np.abs(lo) + 1e-300) | \
        (np.abs(theta - hi) <= 1e-6 * np.abs(hi))
    estimates = pd.DataFrame({"parameter": names, "estimate": theta, "standard_error": se,
                              "ci_low": ci[0], "ci_high": ci[1], "lower_bound": lo,
                              "upper_bound": hi, "at_bound": at_bound})
    runs = pd.DataFrame(best["runs"]).drop(columns=["message"])
    fitted = network.with_parameters(**dict(zip(names, theta.tolist())))
    info = {"n_cells": final.n_cells, "n_floored": final.n_floored,
            "max_leaked": final.max_leaked, "n_states": final.n_states, "tol": tol,
            "log_space": log_space, "n_starts": n_starts, "seed": seed,
            "wall_time": wallclock.perf_counter() - started,
            "converged": bool(any(r["converged"] for r in best["runs"]))}
    return FitResult(estimates=estimates, loglik=final.loglik,
                     loglik_interval=(final.loglik_low, final.loglik_high),
                     fim=pd.DataFrame(fim, index=names, columns=names),
                     covariance=pd.DataFrame(covariance, index=names, columns=names),
                     starts=runs, network=fitted, problem=problem, log_space=log_space,
                     level=level, run_info=info)


# -- experiment design -----------------------------------------------------------------------
@dataclass
class DesignResult:
    """D-optimal allocation of cells to measurement times.

    ``allocation``: ``time, weight, n_cells``; ``expected_errors``: ``parameter, value,
    standard_error, relative_error, uniform_standard_error`` (the uniform design spreads
    the same cells evenly over all candidate times); ``fim`` of the chosen design."""

    allocation: pd.DataFrame
    expected_errors: pd.DataFrame
    fim: pd.DataFrame
    log_det: float
    uniform_log_det: float


def design_experiment(network: Network, candidate_times, n_cells_total: int,
                      parameters=None, *, n_times: int | None = None, observed=None,
                      measurement=None, tol: float = 1e-8,
                      iterations: int = 2000) -> DesignResult:
    """Choose how many of ``n_cells_total`` cells to measure at each candidate time so
    that det(FIM) is largest (D-optimal; Fox & Munsky 2019), at ``parameters`` (dict
    id -> value, the current guess; default: the network's values of the parameters in
    propensities). ``n_times`` restricts the design to that many distinct times (the
    largest weights of the free optimum, then re-optimised). ``observed``: the species
    measured (default all). Per-cell FIMs come from FSP sensitivities; the weights from
    the multiplicative algorithm ``w_t <- w_t tr(M^-1 F_t) / K`` (concave in w)."""
    times = np.unique(np.asarray(candidate_times, dtype=float))
    if n_cells_total < 1 or len(times) == 0:
        raise OptionsError("design_experiment needs candidate times and n_cells_total >= 1")
    problem, theta = _design_problem(network, times, 1.0, parameters, observed,
                                     measurement, None, tol)
    r = problem.evaluate(theta, gradient=False, fisher=True)
    F = np.array(r.group_fims)  # (T, K, K) per cell, in time order
    K = F.shape[1]

    def optimum(active):
        w = np.zeros(len(times))
        w[active] = 1.0 / len(active)
        for _ in range(iterations):
            M = np.tensordot(w, F, axes=1)
            Minv = np.linalg.pinv(M)
            d = np.einsum("kl,tlk->t", Minv, F)
            w_new = np.where(np.isin(np.arange(len(times)), active), w * d / K, 0.0)
            w_new /= w_new.sum()
            if np.abs(w_new - w).max() < 1e-10:
                w = w_new
                break
            w = w_new
        return w

    w = optimum(np.arange(len(times)))
    if n_times is not None and n_times < np.count_nonzero(w > 1e-6):
        w = optimum(np.sort(np.argsort(-w)[:n_times]))
    raw = w * n_cells_total
    cells = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - cells))[:n_cells_total - cells.sum()]:
        cells[i] += 1

    def logdet(M):
        sign, value = np.linalg.slogdet(M)
        return float(value) if sign > 0 else -math.inf

    M = np.tensordot(cells.astype(float), F, axes=1)
    uniform = np.tensordot(np.full(len(times), n_cells_total / len(times)), F, axes=1)
    se = np.sqrt(np.maximum(np.diag(np.linalg.pinv(M)), 0))
    se_u = np.sqrt(np.maximum(np.diag(np.linalg.pinv(uniform)), 0))
    names = list(problem.names)
    return DesignResult(
        allocation=pd.DataFrame({"time": times, "weight": w, "n_cells": cells}),
        expected_errors=pd.DataFrame({"parameter": names, "value": theta,
                                      "standard_error": se, "relative_error": se / theta,
                                      "uniform_standard_error": se_u}),
        fim=pd.DataFrame(M, index=names, columns=names), log_det=logdet(M),
        uniform_log_det=logdet(uniform))
