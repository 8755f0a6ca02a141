"""SBML Test Suite stochastic cases (DSMTS + distrib), scored with the suite's Z and Y.

Every vendored case in tests/data/dsmts/ is simulated with ``simulate_ssa`` at a fixed seed
and scored by tests/statistical/dsmts.py: a case passes when each requested statistic has
at most 2 points outside the suite's ``meanRange`` / ``sdRange`` and every sigma_t = 0 point
matches exactly. The 41 distrib cases (SBML L3 distrib draws at every crossing of a
rate-rule clock) are scored the same way, with three notes at ``_check_distrib``. The target of the suite is n = 10,000 trajectories (``-m slow``, also
benchmarks/dsmts_full.py); the default run uses n = 2,000 (fewer for the two cases with
~10^5 reaction events per trajectory). Z and Y are standardized, so a smaller n keeps the
same ranges; they are never widened.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import scipy.stats

import dsmts
import sbml_cme
from sbml_cme.analyses import simulate_ssa
from sbml_cme.errors import UnsupportedFeatureError

SEED = 20080101
MAX_OUT_OF_RANGE = 2
CI_TRAJECTORIES = 2_000
FULL_TRAJECTORIES = 10_000
# ~8e4 (00005: X0 = 10,000) and ~9e4 (00023: immigration 1,000) reaction events per
# trajectory: n = 2,000 would take ~2 min each on 2 cores, so the default run uses fewer.
CI_TRAJECTORIES_HEAVY = {"00005": 200, "00023": 200}

CASES = dsmts.list_cases()
DSMTS_CASES = [case for case in CASES if case.is_dsmts]
DISTRIB_CASES = [case for case in CASES if not case.is_dsmts]

# Known package problems: the test must fail in exactly this way until the bug is fixed.
KNOWN_IMPORT_FAILURES: dict[str, str] = {}
# The Y statistic assumes S^2 is close to normal with variance 2 sigma^4 / n, i.e. a
# mesokurtic law. 00003 (birth-death, lambda = 1, mu = 1.1, X0 = 100) is mostly extinct
# after t = 30 (P(X = 0) = 0.62 -> 0.94); the kurtosis of X_t grows from 15 to 106, so
# Var(Y) ~ (kurtosis - 1) / 2 = 7 to 53 and a correct (even an exact, independent) sampler
# puts several late points outside (-5, 5). The distribution itself is checked exactly by
# test_00003_matches_the_exact_birth_death_law.
HEAVY_TAILED_Y = {
    "00003": "Y is not N(0, 1) here: X_t has kurtosis 15-106 for t >= 30 (extinction), so "
             "Var(Y) ~ (kurtosis - 1)/2 >> 1; checked instead against the exact law",
    # 00033 (dimerisation reset to P = 100 when P2 > 30): between t = 9 and 13 part of the
    # ensemble has just been reset to P2 = 0 while the rest sits near 25-30, so the exact
    # law of P2 is bimodal with kurtosis 8-17 and Var(Y) ~ 3.5-8. Checked against the exact
    # law by test_00033_matches_the_exact_law_with_reset.
    "00033": "Y is not N(0, 1) here: P2 has kurtosis 8-17 for t in 9..13 (resets), so "
             "Var(Y) ~ (kurtosis - 1)/2 >> 1; checked instead against the exact law",
}


# Cases whose results.csv has no X-sd column (Cauchy distribution, median as "mean").
NO_EXPECTED_SD = {"00049", "00059"}


def _method(case: dsmts.Case, version: str) -> str:
    """Alternate "direct" / "tree" over the cases; extra SBML levels use the other one."""
    index = DSMTS_CASES.index(case)
    flip = version != case.sbml.stem.rsplit("-", 1)[-1]
    return ["direct", "tree"][(index + flip) % 2]


def _dsmts_params():
    params = []
    for case in DSMTS_CASES:
        marks = []
        if case.id in KNOWN_IMPORT_FAILURES:
            marks.append(pytest.mark.xfail(strict=True, raises=UnsupportedFeatureError,
                                           reason=KNOWN_IMPORT_FAILURES[case.id]))
        for version in case.sbml_files:
            if version == "l3v2" and "l3v1" in case.sbml_files:
                continue
            params.append(pytest.param(case, version, _method(case, version), marks=marks,
                                       id=f"{case.id}-{version}-{_method(case, version)}"))
    return params


DSMTS_PARAMS = _dsmts_params()


@functools.lru_cache(maxsize=None)
def _ensemble(case_id: str, version: str, method: str, n_trajectories: int):
    case = next(case for case in CASES if case.id == case_id)
    network = sbml_cme.read_sbml(case.sbml_files[version])
    return simulate_ssa(network, case.settings.times, n_trajectories=n_trajectories,
                        seed=SEED, method=method)


def _check(case: dsmts.Case, result) -> None:
    scores = dsmts.score_ensemble(case, result)
    report = f"case {case.id} ({case.synopsis}), n = {result.n_trajectories}:\n" + \
        dsmts.describe(scores)
    for score in scores:
        assert score.exact_mismatches == 0, report
    z_failed = [s for s in scores if s.kind == "Z" and s.n_out > MAX_OUT_OF_RANGE]
    y_failed = [s for s in scores if s.kind == "Y" and s.n_out > MAX_OUT_OF_RANGE]
    assert not z_failed, report
    if y_failed and case.id in HEAVY_TAILED_Y:
        pytest.xfail(HEAVY_TAILED_Y[case.id])
    assert not y_failed, report


# -- the vendored data --------------------------------------------------------------------
def test_vendored_cases_are_complete():
    assert len(CASES) == 68
    assert len(DSMTS_CASES) == 27 and len(DISTRIB_CASES) == 41
    assert {case.family.split()[0] for case in DSMTS_CASES} == {"001", "002", "003", "004"}
    assert sum("l2v4" in case.sbml_files for case in DSMTS_CASES) >= 3
    for case in CASES:
        times = case.results["time"].to_numpy(float)
        np.testing.assert_allclose(times, case.settings.times, rtol=0, atol=1e-9)
        assert case.settings.variables
        for column in case.settings.output:
            variable, statistic = column.rsplit("-", 1)
            assert statistic in {"mean", "sd"}
            assert f"{variable}-mean" in case.results
            # Cauchy draws have no mean or sd: the median is given and no sd, so no Z.
            assert f"{variable}-sd" in case.results or case.id in NO_EXPECTED_SD


# -- the scoring itself -------------------------------------------------------------------
def _synthetic_case(mean, sd, output=("X-mean", "X-sd")) -> dsmts.Case:
    case = DSMTS_CASES[0]
    times = case.settings.times
    results = case.results.iloc[:, :1].copy()
    results["X-mean"] = np.broadcast_to(mean, times.shape).astype(float)
    results["X-sd"] = np.broadcast_to(sd, times.shape).astype(float)
    settings = dsmts.Settings(case.settings.start, case.settings.duration, case.settings.steps,
                              ("X",), ("X",), (), tuple(output), (-3.0, 3.0), (-5.0, 5.0))
    return dsmts.Case("synthetic", case.directory, settings, results, "StochasticTimeCourse",
                      (), "synthetic", "")


def test_scores_of_an_exact_sample_are_in_range():
    case = _synthetic_case(10.0, 2.0)
    sample = np.random.default_rng(1).normal(10.0, 2.0, size=(10_000, 51))
    scores = dsmts.score_samples(case, {"X": sample})
    assert [s.column for s in scores] == ["X-mean", "X-sd"]
    assert all(s.n_out <= MAX_OUT_OF_RANGE for s in scores)
    z = scores[0].values
    np.testing.assert_allclose(z, np.sqrt(10_000) * (sample.mean(0) - 10.0) / 2.0)


def test_scores_detect_a_shifted_mean_and_a_wrong_variance():
    sample = np.random.default_rng(2).normal(10.1, 2.2, size=(10_000, 51))
    z, y = dsmts.score_samples(_synthetic_case(10.0, 2.0), {"X": sample})
    assert z.n_out > 40 and y.n_out > 40


def test_sigma_zero_points_are_compared_exactly():
    sd = np.ones(51)
    sd[0] = 0.0
    case = _synthetic_case(5.0, sd)
    sample = np.random.default_rng(3).normal(5.0, 1.0, size=(2_000, 51))
    sample[:, 0] = 5.0
    z, y = dsmts.score_samples(case, {"X": sample})
    assert z.exact_points == y.exact_points == 1
    assert z.exact_mismatches == y.exact_mismatches == 0 and z.values[0] == 0
    sample[0, 0] = 6.0  # one trajectory off at a deterministic point
    z, y = dsmts.score_samples(case, {"X": sample})
    assert z.exact_mismatches == y.exact_mismatches == 1
    assert z.out_of_range[0] and y.out_of_range[0] and np.isinf(z.values[0])


def test_log_columns_use_the_log_of_the_states():
    case = _synthetic_case(0.0, 1.0, output=("ln(X)-mean", "ln(X)-sd"))
    case.results["ln(X)-mean"] = 1.0
    case.results["ln(X)-sd"] = 0.5
    states = np.exp(np.random.default_rng(4).normal(1.0, 0.5, size=(10_000, 51, 1)))
    scores = dsmts.score_states(case, states, ["X"])
    assert [s.kind for s in scores] == ["Z", "Y"]
    assert all(s.n_out <= MAX_OUT_OF_RANGE for s in scores)
    states[:, 3, 0] = 0.0  # ln 0 = -inf is never in range
    assert dsmts.score_states(case, states, ["X"])[0].out_of_range[3]


def test_settings_parser_reads_ranges_and_times():
    settings = dsmts.read_settings(DISTRIB_CASES[0].directory /
                                   f"{DISTRIB_CASES[0].id}-settings.txt")
    assert settings.sd_range == (-3.0, 3.0) and settings.mean_range == (-3.0, 3.0)
    np.testing.assert_allclose(settings.times, np.linspace(0, 50, 51))


# -- the cases ------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "version", "method"), DSMTS_PARAMS)
def test_dsmts_case(case, version, method):
    n = CI_TRAJECTORIES_HEAVY.get(case.id, CI_TRAJECTORIES)
    _check(case, _ensemble(case.id, version, method, n))


#: The suite's protocol (corpus README): "0-1 failing points per case is normal; 2-3
#: warrant a rerun with another seed; consistent failures at the same times indicate a
#: bug". A case with at most RERUN_AT points out per statistic is rerun once at RERUN_SEED
#: and must then pass, with no out-of-range time shared by the two runs.
RERUN_AT = 3
RERUN_SEED = SEED + 1


@pytest.mark.slow
@pytest.mark.parametrize(("case", "version", "method"), DSMTS_PARAMS)
def test_dsmts_case_full(case, version, method):
    result = _ensemble(case.id, version, method, FULL_TRAJECTORIES)
    scores = [score for score in dsmts.score_ensemble(case, result)
              if score.kind == "Z" or case.id not in HEAVY_TAILED_Y]
    worst = max(score.n_out for score in scores)
    if worst <= MAX_OUT_OF_RANGE or worst > RERUN_AT:
        _check(case, result)
        return
    network = sbml_cme.read_sbml(case.sbml_files[version])
    rerun = simulate_ssa(network, case.settings.times, n_trajectories=FULL_TRAJECTORIES,
                         seed=RERUN_SEED, method=method)
    second_scores = {(score.column, score.kind): score
                     for score in dsmts.score_ensemble(case, rerun)}
    for first in scores:  # before _check, which may end the test as an expected failure
        second = second_scores[(first.column, first.kind)]
        shared = np.flatnonzero(first.out_of_range & second.out_of_range)
        assert not len(shared), (f"case {case.id}: {first.column} out of range at the same "
                                 f"times {case.settings.times[shared]} with two seeds")
    _check(case, rerun)


# -- the distrib cases (00040-00100) --------------------------------------------------------
# Cauchy draws (00049) have no mean and no sd: the suite lists the median as "mean" and
# no sd, so the case is scored on the sample median instead. It is asymptotically normal
# with sd 1 / (2 f(m) sqrt(n)) (f the density at the median m), which gives the
# standardized Z = 2 f(m) sqrt(n) (median - m), judged against the same meanRange.
MEDIAN_SCORED = {"00049": scipy.stats.cauchy(1, 2)}
# A truncated Cauchy draw (00059, bounds [1.1, 10)) has a mean and an sd. The suite lists
# the mean (3.348; exactly 3.3452) but no sd, so sigma_t comes from the exact law
# (2.04 for t >= 1, 0 at t = 0) and Z is computed as for every other case.
SD_FROM_LAW = {"00059": (scipy.stats.cauchy(1, 2), 1.1, 10.0)}
# ln(X) at t = 0: the model starts at X = 0, so ln X(0) = -inf for every trajectory, but
# results.csv lists ln(X)-mean = 0 and sd = 0 at t = 0 (an artefact of the analytic
# generator). The start is checked directly (X(0) = 0 exactly) and scored from t = 1 on.
LOG_OF_ZERO_AT_START = {"00056"}


def _distrib_ensemble(case, n_trajectories):
    network = sbml_cme.read_sbml(case.sbml)
    return simulate_ssa(network, case.settings.times, n_trajectories=n_trajectories,
                        seed=SEED, method=["direct", "tree"][DISTRIB_CASES.index(case) % 2])


def _check_distrib(case, result):
    if case.id in MEDIAN_SCORED:
        law = MEDIAN_SCORED[case.id]
        median = law.median()
        np.testing.assert_allclose(case.results["X-mean"].to_numpy(float)[1:], median)
        values = result.states[:, :, 0] / result.network.species_scale("X", "amount")
        assert np.all(values[:, 0] == 0)
        z = 2 * law.pdf(median) * np.sqrt(values.shape[0]) * (
            np.median(values[:, 1:], axis=0) - median)
        low, high = case.settings.mean_range
        assert np.sum(~((z > low) & (z < high))) <= MAX_OUT_OF_RANGE, np.round(z, 2)
        return
    if case.id in SD_FROM_LAW:
        law, lower, upper = SD_FROM_LAW[case.id]
        mean = law.expect(lambda x: x, lb=lower, ub=upper, conditional=True)
        second = law.expect(lambda x: x * x, lb=lower, ub=upper, conditional=True)
        results = case.results.copy()
        results["X-sd"] = np.where(case.settings.times > 0, np.sqrt(second - mean**2), 0.0)
        case = dataclasses.replace(case, results=results)
    scores = dsmts.score_ensemble(case, result)
    first = 0
    if case.id in LOG_OF_ZERO_AT_START:
        assert np.all(result.states[:, 0, 0] == 0)
        first = 1
    report = f"case {case.id} ({case.synopsis}), n = {result.n_trajectories}:\n" + \
        dsmts.describe(scores)
    for score in scores:
        assert np.sum(score.out_of_range[first:]) <= MAX_OUT_OF_RANGE, report
        assert not np.any(np.isinf(score.values[first:])), report


DISTRIB_PARAMS = [pytest.param(case, id=f"{case.id}-{case.synopsis.split()[0]}")
                  for case in DISTRIB_CASES]


@pytest.mark.parametrize("case", DISTRIB_PARAMS)
def test_distrib_case(case):
    # ~50 event firings per trajectory: n = 10,000 costs ~2.5 s CPU per case (41 cases),
    # so the default run uses n = 2,000 with the same ranges (Z and Y are standardized).
    _check_distrib(case, _distrib_ensemble(case, CI_TRAJECTORIES))


@pytest.mark.slow
@pytest.mark.parametrize("case", DISTRIB_PARAMS)
def test_distrib_case_full(case):
    _check_distrib(case, _distrib_ensemble(case, FULL_TRAJECTORIES))


# -- an exact check where Y is not informative ----------------------------------------------
def _birth_death_pmf(time, birth, death, x0, k_max):
    """Exact law of a linear birth-death process at ``time`` from X(0) = x0, shape
    (k_max + 1,): the x0-fold convolution of the one-ancestor law (Bailey 1964)."""
    growth = np.exp((birth - death) * time)
    alpha = death * (growth - 1) / (birth * growth - death)
    beta = birth * (growth - 1) / (birth * growth - death)
    single = np.empty(k_max + 1)
    single[0] = alpha
    single[1:] = (1 - alpha) * (1 - beta) * beta ** np.arange(k_max)
    size = 2 * (k_max + 1)
    pmf = np.fft.irfft(np.fft.rfft(single, size) ** x0, size)[:k_max + 1]
    return np.clip(pmf, 0, None)


def _chi_square_pvalue(counts, pmf, n_bins=12):
    """Pearson chi-square of integer ``counts`` against ``pmf``, bins of equal expected mass."""
    cdf = np.cumsum(pmf)
    edges = np.unique(np.searchsorted(cdf, np.linspace(0, 1, n_bins + 1)[1:-1]))
    starts = np.r_[0, edges + 1]
    starts = starts[starts < len(pmf)]
    observed = np.add.reduceat(np.bincount(counts, minlength=len(pmf))[:len(pmf)], starts)
    observed[-1] += np.sum(counts >= len(pmf))
    expected = np.add.reduceat(pmf, starts)
    expected[-1] += max(0.0, 1 - pmf.sum())
    expected *= len(counts)
    statistic = np.sum((observed - expected) ** 2 / expected)
    return scipy.stats.chi2.sf(statistic, len(expected) - 1)


def _dimerisation_with_reset_law(times, k1=0.001, k2=0.01, total=100, reset_above=30):
    """Exact law of P2 in DSMTS 00033 (2P <-> P2 at k1 P (P-1)/2 and k2 P2, P + 2 P2 = 100,
    and the event P2 > 30 -> P = 100, P2 = 0), from the model's description alone: the
    31-state chain P2 = 0..30 in which the dimerisation out of P2 = 30 lands on P2 = 0.
    Shape (n_times, 31)."""
    import scipy.linalg

    n = reset_above + 1
    generator = np.zeros((n, n))
    for j in range(n):
        p = total - 2 * j
        dimerisation, dissociation = k1 * p * (p - 1) / 2, k2 * j
        generator[j + 1 if j + 1 < n else 0, j] += dimerisation
        generator[j, j] -= dimerisation + dissociation
        if j:
            generator[j - 1, j] += dissociation
    start = np.zeros(n)
    start[0] = 1.0
    return np.array([scipy.linalg.expm(generator * t) @ start for t in times])


def test_00033_matches_the_exact_law_with_reset():
    case = next(case for case in DSMTS_CASES if case.id == "00033")
    law = _dimerisation_with_reset_law(case.settings.times)
    # The published means are this law's (so the law is the suite's reference).
    np.testing.assert_allclose(law @ np.arange(law.shape[1]), case.results["P2-mean"],
                               rtol=1e-8, atol=1e-8)
    version = case.sbml.stem.rsplit("-", 1)[-1]
    result = _ensemble(case.id, version, _method(case, version), CI_TRAJECTORIES)
    column = result.network.species_index["P2"]
    for index in (5, 9, 10, 11, 12, 13, 20, 50):
        counts = result.states[:, index, column].astype(np.int64)
        assert _chi_square_pvalue(counts, law[index]) > 1e-3, f"t = {case.settings.times[index]}"


def test_00003_matches_the_exact_birth_death_law():
    case = next(case for case in DSMTS_CASES if case.id == "00003")
    version = case.sbml.stem.rsplit("-", 1)[-1]
    result = _ensemble(case.id, version, _method(case, version), CI_TRAJECTORIES)
    for index in (10, 20, 30, 40, 50):
        pmf = _birth_death_pmf(case.settings.times[index], 1.0, 1.1, 100, k_max=4_000)
        counts = result.states[:, index, 0].astype(np.int64)
        assert _chi_square_pvalue(counts, pmf) > 1e-3, f"t = {case.settings.times[index]}"
