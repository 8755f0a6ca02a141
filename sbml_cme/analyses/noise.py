"""Noise summaries of any result, and the intrinsic/extrinsic decomposition of noise.

- :func:`noise_summary`: means, variances, Fano factors, CV^2, covariances and
  correlations in one schema, whatever method produced the result (SSA and CLE
  ensembles, CME, LNA), so methods can be concatenated and compared.
- :func:`extrinsic_noise`: parameters drawn from distributions (extrinsic noise), the
  network solved conditionally on each draw, and the law of total variance
  ``Var(n) = E[Var(n | theta)] + Var(E[n | theta])`` per species (docs/noise.md).

Counts throughout (rule outputs in their own units, as in the moments frames).
"""

from __future__ import annotations

import time as wallclock
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..distributions import RandomDraw
from ..errors import OptionsError, UnsupportedFeatureError
from ..network import Network
from ..results import CMEResult, EnsembleResult, LNAResult, random_columns
from .ensemble import map_blocks

SUMMARY_COLUMNS = ["method", "time", "species", "mean", "variance", "sd", "fano", "cv2"]
PAIR_COLUMNS = ["method", "time", "species_i", "species_j", "covariance", "correlation"]
METHODS = ("cme", "ssa", "lna")
#: Parameter sets per Dask task in :func:`extrinsic_noise`.
SAMPLES_PER_TASK = 64


# -- noise summary ------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoiseSummary:
    """Noise statistics of one result.

    Attributes
    ----------
    species : DataFrame
        ``method, time, species, mean, variance, sd, fano, cv2``: Fano factor
        variance / mean and CV^2 = variance / mean^2 (NaN where the mean is 0).
    pairs : DataFrame
        ``method, time, species_i, species_j, covariance, correlation``, each unordered
        pair once (i <= j in column order, the diagonal included); correlation is NaN
        where a variance is 0.
    """

    species: pd.DataFrame
    pairs: pd.DataFrame


def moment_matrices(result) -> tuple[str, np.ndarray, list[str], np.ndarray, np.ndarray]:
    """(method, times (n_times,), column ids, means (n_times, n_columns), covariances
    (n_times, n_columns, n_columns)) of an SSA/CLE ensemble, CME or LNA result.

    Ensemble covariances are unbiased sample covariances (ddof 1); the CME's are those of
    the FSP law renormalised to 1.
    """
    if isinstance(result, EnsembleResult):
        states = result.states
        means = states.mean(axis=0)
        centred = states - means
        ddof = 1 if states.shape[0] > 1 else 0
        covariances = np.einsum("ntc,ntd->tcd", centred, centred) / (states.shape[0] - ddof)
        ids = list(result.network.species_ids) + [o.id for o in result.network.outputs]
        return result.method, np.asarray(result.times), ids, means, covariances
    if isinstance(result, CMEResult):
        means, covariances = [], []
        for k in range(len(result.times)):
            states, probabilities = result.distributions[k]
            values = states.astype(float)
            if result.outputs and len(result.outputs[k]) and result.outputs[k].shape[1]:
                values = np.hstack([values, result.outputs[k]])
            p = probabilities / probabilities.sum()
            mean = p @ values
            centred = values - mean
            means.append(mean)
            covariances.append(centred.T @ (centred * p[:, None]))
        ids = list(result.network.species_ids)
        if result.outputs and result.outputs[0].shape[1]:
            ids += [o.id for o in result.network.outputs]
        return "cme", np.asarray(result.times), ids, np.array(means), np.array(covariances)
    if isinstance(result, LNAResult):
        ids = list(result.network.species_ids) + [o.id for o in result.network.outputs]
        return (result.method, np.asarray(result.times), ids, np.asarray(result.means),
                np.asarray(result.covariances))
    raise OptionsError(f"noise_summary needs an EnsembleResult, CMEResult or LNAResult, got "
                       f"{type(result).__name__}")


def noise_summary(result) -> NoiseSummary:
    """Means, variances, Fano factors, CV^2, covariances and correlations of ``result``.

    Parameters
    ----------
    result : EnsembleResult, CMEResult or LNAResult
        From ``simulate_ssa``, ``simulate_cle``, ``solve_cme``, ``stationary_cme`` or
        ``solve_lna``.

    Returns
    -------
    NoiseSummary
        ``species`` and ``pairs`` frames with the same schema for every method (rule
        outputs that are not random variables left out: see ``results.random_columns``).
    """
    method, times, ids, means, covariances = moment_matrices(result)
    random = set(random_columns(result.network))
    keep = [k for k, column in enumerate(ids) if column in random]
    ids, means = [ids[k] for k in keep], means[:, keep]
    covariances = covariances[:, keep][:, :, keep]
    variances = np.clip(np.diagonal(covariances, axis1=1, axis2=2), 0.0, None)
    n_times, n_columns = means.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        fano = np.where(means != 0, variances / means, np.nan)
        cv2 = np.where(means != 0, variances / means**2, np.nan)
        sd = np.sqrt(variances)
        correlations = covariances / (sd[:, :, None] * sd[:, None, :])
    correlations = np.where(np.isfinite(correlations), correlations, np.nan)
    species = pd.DataFrame({
        "method": method, "time": np.repeat(times, n_columns),
        "species": np.tile(np.array(ids, dtype=object), n_times),
        "mean": means.ravel(), "variance": variances.ravel(), "sd": sd.ravel(),
        "fano": fano.ravel(), "cv2": cv2.ravel()}, columns=SUMMARY_COLUMNS)
    first, second = np.triu_indices(n_columns)
    columns = np.array(ids, dtype=object)
    pairs = pd.DataFrame({
        "method": method, "time": np.repeat(times, len(first)),
        "species_i": np.tile(columns[first], n_times),
        "species_j": np.tile(columns[second], n_times),
        "covariance": covariances[:, first, second].ravel(),
        "correlation": correlations[:, first, second].ravel()}, columns=PAIR_COLUMNS)
    return NoiseSummary(species, pairs)


# -- extrinsic noise ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtrinsicNoiseResult:
    """The law-of-total-variance decomposition of each species' noise.

    Attributes
    ----------
    frame : DataFrame
        ``method, time, species, mean, variance, intrinsic_variance, extrinsic_variance,
        fano, intrinsic_fano, extrinsic_fano, cv2, intrinsic_cv2, extrinsic_cv2`` with
        variance = intrinsic E[Var(n|theta)] + extrinsic Var(E[n|theta]), Fano factors
        part / mean and CV^2 part / mean^2 (counts; time ``inf`` for stationary laws).
    samples : DataFrame
        ``sample`` plus one column per drawn parameter: the parameter sets used.
    conditional_means, conditional_variances : ndarray, shape (n_samples, n_times, n_columns)
        E[n | theta_i] and Var(n | theta_i) (SSA: sample estimates).
    run_info : dict
        ``method``, ``n_samples``, ``seed``, ``distributions``, ``times``, ``dask``,
        ``wall_time`` (and ``n_trajectories`` for the SSA).
    """

    frame: pd.DataFrame
    samples: pd.DataFrame
    conditional_means: np.ndarray = field(repr=False)
    conditional_variances: np.ndarray = field(repr=False)
    run_info: dict = field(default_factory=dict)


def model_distributions(network: Network) -> dict:
    """The network's own parameter distributions (SBML distrib initial assignments) as
    frozen scipy.stats laws; each must be a single untruncated draw."""
    values = {p.id: p.value for p in network.parameters}
    laws = {}
    for parameter_id, expression in network.parameter_distributions:
        if not isinstance(expression, RandomDraw):
            raise UnsupportedFeatureError(
                f"a parameter distribution that is an expression of draws ({expression})",
                parameter_id, analysis="extrinsic_noise",
                hint="Pass distributions= with a scipy.stats law for this parameter.")
        laws[parameter_id] = expression.scipy_distribution(values)
    return laws


def draw_parameter_sets(distributions: dict, n_samples: int,
                        seed) -> tuple[list[str], np.ndarray, list[np.random.SeedSequence]]:
    """(parameter ids, values (n_samples, n_parameters), one child SeedSequence per
    sample for the conditional solves), all from ``SeedSequence(seed)``."""
    ids = sorted(distributions)
    for parameter_id in ids:
        if not callable(getattr(distributions[parameter_id], "rvs", None)):
            raise OptionsError(
                f"the distribution of parameter '{parameter_id}' must be a frozen "
                f"scipy.stats distribution (e.g. scipy.stats.gamma(4, scale=2.5)), got "
                f"{distributions[parameter_id]!r}")
    children = np.random.SeedSequence(seed).spawn(n_samples)
    values = np.empty((n_samples, len(ids)))
    solver_seeds = []
    for i, child in enumerate(children):
        draw_sequence, solver_sequence = child.spawn(2)
        generator = np.random.default_rng(draw_sequence)
        for j, parameter_id in enumerate(ids):
            values[i, j] = float(np.asarray(distributions[parameter_id].rvs(
                random_state=generator)))
        solver_seeds.append(solver_sequence)
    return ids, values, solver_seeds


@dataclass(frozen=True)
class _ConditionalSolve:
    """What every block of parameter sets shares (one object, scattered once to Dask)."""

    network: Network
    method: str
    times: np.ndarray | None
    n_trajectories: int
    options: tuple
    parameter_ids: tuple


def _conditional_moments(spec: _ConditionalSolve, values, solver_seeds):
    """One block of parameter sets: (means, variances), each (n_block, n_times, n_columns),
    and the column ids. A module-level function, so it can run as a Dask task."""
    from .cme import solve_cme, stationary_cme
    from .lna import solve_lna
    from .ssa import simulate_ssa

    method, times, options = spec.method, spec.times, dict(spec.options)
    means, variances, ids = [], [], []
    for row, sequence in zip(values, solver_seeds):
        conditional = spec.network.with_parameters(**dict(zip(spec.parameter_ids, row)))
        if method == "cme":
            result = (stationary_cme(conditional, **options) if times is None
                      else solve_cme(conditional, times, **options))
        elif method == "lna":
            result = solve_lna(conditional, times, **options)
        else:
            seed = int.from_bytes(sequence.generate_state(4, dtype=np.uint32).tobytes(),
                                  "little")
            result = simulate_ssa(conditional, times, n_trajectories=spec.n_trajectories,
                                  seed=seed, n_jobs=1, **options)
        _, _, ids, mean, covariance = moment_matrices(result)
        means.append(mean)
        variances.append(np.clip(np.diagonal(covariance, axis1=1, axis2=2), 0.0, None))
    return np.array(means), np.array(variances), ids


def extrinsic_noise(network: Network, distributions: dict | None = None, *,
                    method: str = "cme", n_samples: int = 1000, seed: int | None = None,
                    times=None, n_trajectories: int = 100, client=None,
                    **options) -> ExtrinsicNoiseResult:
    """Split each species' variance into intrinsic and extrinsic parts.

    Parameter sets theta_i (i = 1..n_samples) are drawn from ``distributions``; the
    network with theta_i is solved by ``method``, giving E[n | theta_i] and
    Var(n | theta_i); then, over the samples (law of total variance),

    - intrinsic variance E[Var(n | theta)] = mean of Var(n | theta_i),
    - extrinsic variance Var(E[n | theta]) = sample variance of E[n | theta_i]
      (for the SSA, minus intrinsic / n_trajectories: the spread of each estimated
      conditional mean),
    - total variance = intrinsic + extrinsic, with Fano factors and CV^2 of each part.

    Parameters
    ----------
    network : Network
    distributions : dict, optional
        Parameter id -> frozen ``scipy.stats`` distribution (``rvs``). Default: the
        network's own ``parameter_distributions`` (SBML distrib initial assignments).
    method : str
        ``"cme"`` (exact conditional moments; stationary_cme or solve_cme), ``"lna"``
        (solve_lna) or ``"ssa"`` (``n_trajectories`` per parameter set; needs ``times``).
    n_samples : int
        Parameter sets drawn.
    seed : int, optional
        Seed of the ``SeedSequence`` giving one child per parameter set (its draw and
        its SSA stream): the same seed gives the same numbers with or without Dask.
    times : array_like, shape (n_times,), optional
        Output times; None for the stationary laws (CME and LNA).
    n_trajectories : int
        SSA trajectories per parameter set (at least 2).
    client : dask.distributed.Client, optional
        Solve blocks of parameter sets as Dask tasks.
    **options
        Passed to the conditional solver (e.g. ``tol`` for the CME).

    Returns
    -------
    ExtrinsicNoiseResult
    """
    started = wallclock.perf_counter()
    if method not in METHODS:
        raise OptionsError(f"method must be one of {list(METHODS)}, got {method!r}")
    if not (isinstance(n_samples, (int, np.integer)) and n_samples >= 2):
        raise OptionsError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if method == "ssa" and times is None:
        raise OptionsError("method='ssa' needs times= (the SSA has no stationary mode); "
                           "use times long after the initial transient")
    if method == "ssa" and not (isinstance(n_trajectories, (int, np.integer)) and
                                n_trajectories >= 2):
        raise OptionsError(f"n_trajectories must be an integer >= 2, got {n_trajectories!r}")
    if distributions is None:
        distributions = model_distributions(network)
    if not distributions:
        raise OptionsError("no parameter distributions: pass distributions={parameter id: "
                           "scipy.stats law} or read a model with distrib initial assignments")
    unknown = set(distributions) - set(network.parameter_ids)
    if unknown:
        raise OptionsError(f"unknown parameter(s) {sorted(unknown)}; known: "
                           f"{list(network.parameter_ids)}")
    if times is not None:
        times = np.asarray(times, dtype=float)
    # Conditional on theta the parameters are fixed: the model's own draws are replaced.
    conditional = replace(network, parameter_distributions=())
    parameter_ids, values, solver_seeds = draw_parameter_sets(distributions, int(n_samples),
                                                              seed)
    blocks = [(values[a:a + SAMPLES_PER_TASK], solver_seeds[a:a + SAMPLES_PER_TASK])
              for a in range(0, int(n_samples), SAMPLES_PER_TASK)]
    spec = _ConditionalSolve(conditional, method, times, int(n_trajectories),
                             tuple(sorted(options.items())), tuple(parameter_ids))
    parts = map_blocks(_conditional_moments, (spec,), blocks, client=client,
                       description="extrinsic")
    means = np.concatenate([part[0] for part in parts])
    variances = np.concatenate([part[1] for part in parts])
    result_times = np.array([np.inf]) if times is None else times
    frame = decompose(means, variances, method, result_times, parts[0][2],
                      n_trajectories if method == "ssa" else None)
    samples = pd.DataFrame(values, columns=parameter_ids)
    samples.insert(0, "sample", np.arange(int(n_samples)))
    return ExtrinsicNoiseResult(frame, samples, means, variances, run_info={
        "method": method, "n_samples": int(n_samples), "seed": seed,
        "distributions": {k: _describe(v) for k, v in distributions.items()},
        "times": None if times is None else times.tolist(), "dask": client is not None,
        "n_trajectories": int(n_trajectories) if method == "ssa" else None,
        "options": dict(options), "wall_time": wallclock.perf_counter() - started})


def decompose(means: np.ndarray, variances: np.ndarray, method: str, times: np.ndarray,
              ids: list[str], n_trajectories: int | None = None) -> pd.DataFrame:
    """The law of total variance from conditional moments, shape (n_samples, n_times,
    n_columns) each; ``n_trajectories`` when they are sample estimates from that many
    trajectories (removes the estimation noise of the conditional means)."""
    intrinsic = variances.mean(axis=0)
    extrinsic = means.var(axis=0, ddof=1)
    if n_trajectories is not None:
        extrinsic = extrinsic - intrinsic / n_trajectories
    mean = means.mean(axis=0)
    total = intrinsic + extrinsic
    n_times, n_columns = mean.shape
    frame = {"method": method, "time": np.repeat(times, n_columns),
             "species": np.tile(np.array(ids, dtype=object), n_times),
             "mean": mean.ravel(), "variance": total.ravel(),
             "intrinsic_variance": intrinsic.ravel(), "extrinsic_variance": extrinsic.ravel()}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, part in (("", total), ("intrinsic_", intrinsic), ("extrinsic_", extrinsic)):
            frame[f"{name}fano"] = np.where(mean != 0, part / mean, np.nan).ravel()
        for name, part in (("", total), ("intrinsic_", intrinsic), ("extrinsic_", extrinsic)):
            frame[f"{name}cv2"] = np.where(mean != 0, part / mean**2, np.nan).ravel()
    return pd.DataFrame(frame)


def _describe(law) -> str:
    name = getattr(getattr(law, "dist", None), "name", type(law).__name__)
    return f"{name}(args={tuple(getattr(law, 'args', ()))}, kwds={dict(getattr(law, 'kwds', {}))})"
