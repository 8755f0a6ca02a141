"""Translational bursts: a channel that makes a random number B of molecules per firing.

References (THEORY.md section 4): bursty birth at rate k with burst size B and degradation
gamma n has the stationary Fano factor F = (E[B] + E[B^2]) / (2 E[B]); for a geometric B
with mean b (P(B=k) = (1-q) q^k, q = b/(1+b)) F = 1 + b and the stationary law is negative
binomial with r = k/gamma, p = 1/(1+b) (scipy's nbinom(r, p): P(n) ~ p^r (1-p)^n).
The two-stage model (0 -> M at k_m, M -> 0 at g_m, M -> M + P at k_p, P -> 0 at g_p)
tends to bursty birth with rate k_m and geometric bursts of mean b = k_p / g_m as
g_m -> infinity at fixed k_p / g_m.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from scipy import stats

from sbml_cme import (Burst, InvalidNetworkError, InvalidSBMLError, OptionsError,
                      UnsupportedFeatureError, read_sbml, read_sbml_string,
                      write_annotated_sbml)
from sbml_cme.analyses.cle import simulate_cle
from sbml_cme.analyses.cme import solve_cme, stationary_cme
from sbml_cme.analyses.deterministic import simulate_deterministic
from sbml_cme.analyses.lna import solve_lna
from sbml_cme.analyses.ssa import simulate_ssa
from sbml_cme.io import read_annotations
from sbml_cme.io import sbml_reader, sbml_writer
from sbml_cme.network import MassAction, Network, Reaction, Species

from conftest import make_sbml, pooled_chi_square

K_BIRTH, GAMMA = 2.0, 0.5


def birth_death(k: float = K_BIRTH, gamma: float = GAMMA) -> Network:
    """0 -> X at k, X -> 0 at gamma n, X(0) = 0, built in Python."""
    return Network(
        species=(Species("X", "cell", 0.0),),
        reactions=(Reaction("birth", (), (("X", 1),), MassAction(sympy.Float(k), ())),
                   Reaction("death", (("X", 1),), (), MassAction(sympy.Float(gamma),
                                                                 (("X", 1),)))))


def law(rate: float, *reactants: str) -> MassAction:
    """Mass action with first-order reactants ``reactants``."""
    return MassAction(sympy.Float(rate), tuple((s, 1) for s in reactants))


def fano_reference(burst: Burst) -> float:
    return (burst.mean + burst.second_moment) / (2.0 * burst.mean)


def moments(states: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    mean = float(probabilities @ states)
    return mean, float(probabilities @ states ** 2) - mean ** 2


FINITE = (0.1, 0.2, 0.3, 0.4)  # E[B] = 2, E[B^2] = 5, F = 7/4


# -- the core representation --------------------------------------------------------------------
def test_burst_laws_moments_and_tails():
    geometric = Burst.geometric("X", 3.0)
    sizes = np.arange(400)
    pmf = geometric.pmf(sizes)
    assert geometric.ratio == pytest.approx(0.75)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert pmf @ sizes == pytest.approx(geometric.mean, rel=1e-12)
    assert pmf @ sizes ** 2 == pytest.approx(geometric.second_moment, rel=1e-12)
    assert geometric.second_moment == pytest.approx(3.0 + 2 * 9.0)
    assert fano_reference(geometric) == pytest.approx(1.0 + 3.0)
    # the tail is P(B > k), exactly what the pmf leaves beyond k
    for k in (0, 1, 7, 30):
        assert geometric.tail(k) == pytest.approx(1.0 - pmf[:k + 1].sum(), abs=1e-14)
    finite = Burst.finite("X", FINITE)
    assert (finite.mean, finite.second_moment) == pytest.approx((2.0, 5.0))
    assert fano_reference(finite) == pytest.approx(1.75)
    assert finite.max_size == 3
    np.testing.assert_allclose(finite.tail([-1, 0, 1, 2, 3, 9]), [1, 0.9, 0.7, 0.4, 0, 0],
                               atol=1e-15)
    np.testing.assert_allclose(finite.pmf([-1, 0, 3, 4]), [0, 0.1, 0.4, 0])


def test_with_burst_replaces_the_product_term_and_checks_its_input():
    network = birth_death()
    bursty = network.with_burst("birth", "X", mean=3.0)
    birth = bursty.reactions[0]
    assert birth.products == () and birth.burst == Burst.geometric("X", 3.0)
    assert network.reactions[0].burst is None  # a new network; the old one is unchanged
    assert bursty.bursts == {"birth": Burst.geometric("X", 3.0)}
    np.testing.assert_array_equal(bursty.stoichiometry, [[0, -1]])  # fixed part only
    np.testing.assert_allclose(bursty.mean_stoichiometry, [[3.0, -1.0]])
    assert "B X" in bursty.summary_frames()["reactions"]["equation"][0]
    # replacing a burst, a finite table
    finite = bursty.with_burst("birth", "X", distribution=FINITE)
    assert finite.reactions[0].burst == Burst.finite("X", FINITE)
    assert finite.with_burst("birth", "X", distribution=FINITE) == finite
    with pytest.raises(OptionsError, match="exactly one"):
        network.with_burst("birth", "X")
    with pytest.raises(OptionsError, match="exactly one"):
        network.with_burst("birth", "X", mean=1.0, distribution=[1.0])
    with pytest.raises(OptionsError, match="unknown reaction"):
        network.with_burst("nope", "X", mean=1.0)
    with pytest.raises(OptionsError, match="unknown species"):
        network.with_burst("birth", "Y", mean=1.0)
    with pytest.raises(InvalidNetworkError, match="mean size"):
        network.with_burst("birth", "X", mean=-1.0)
    with pytest.raises(InvalidNetworkError, match="sum to 1"):
        network.with_burst("birth", "X", distribution=[0.5, 0.4])


# -- CME ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("burst_mean", [1.0, 3.0])
def test_stationary_cme_is_the_negative_binomial(burst_mean):
    network = birth_death().with_burst("birth", "X", mean=burst_mean)
    result = stationary_cme(network, tol=1e-8)
    states, pi = result.distributions[0]
    counts = states[:, 0]
    reference = stats.nbinom.pmf(counts, K_BIRTH / GAMMA, 1.0 / (1.0 + burst_mean))
    bound = float(result.error_bounds[0])
    assert bound <= 1e-8
    # L1 distance to the exact law on the whole line: on J plus the mass outside J
    distance = np.abs(pi - reference).sum() + (1.0 - reference.sum())
    assert distance <= max(bound, 1e-12) + 1e-9
    assert distance < 1e-6
    mean, variance = moments(counts, pi)
    assert mean == pytest.approx(K_BIRTH * burst_mean / GAMMA, rel=1e-6)
    assert variance / mean == pytest.approx(1.0 + burst_mean, rel=1e-6)


def test_stationary_cme_fano_factor_of_a_finite_burst():
    network = birth_death().with_burst("birth", "X", distribution=FINITE)
    result = stationary_cme(network, tol=1e-8)
    mean, variance = moments(result.distributions[0][0][:, 0], result.distributions[0][1])
    burst = network.reactions[0].burst
    assert mean == pytest.approx(K_BIRTH * burst.mean / GAMMA, rel=1e-6)
    assert variance / mean == pytest.approx(fano_reference(burst), rel=1e-6)


def test_transient_cme_keeps_its_certificate_and_generator_columns_sum_to_zero():
    from sbml_cme.analyses.cme import build_generator, enumerate_states, _key_layout
    from sbml_cme.kinetics import compile_network
    network = birth_death().with_burst("birth", "X", mean=3.0)
    times = np.array([0.0, 0.5, 2.0, 8.0])
    result = solve_cme(network, times, tol=1e-7)
    assert np.all(result.error_bounds <= 1e-7)
    # the mean follows the rate equations exactly (linear network): k b (1 - e^{-g t})/g
    for k, t in enumerate(times):
        states, p = result.distributions[k]
        mean, _ = moments(states[:, 0], p)
        exact = K_BIRTH * 3.0 / GAMMA * (1.0 - np.exp(-GAMMA * t))
        assert abs(mean - exact) <= 1e-5 * max(exact, 1.0)
    # a tight bound: the burst tail must go to the sink, so every column still sums to 0
    compiled = compile_network(network)
    bounds = np.array([5])
    x0 = np.array([0])
    key_species, radix, _ = _key_layout(network, bounds, np.array([np.inf]), x0)
    space = enumerate_states(compiled, x0[None, :], bounds, key_species, radix,
                             network.parameter_values, 10_000, 2)
    assert space.n_states == 6  # 0..5: one burst reaches every count up to the bound
    matrix, n_sinks = build_generator(compiled, space, network.parameter_values)
    np.testing.assert_allclose(np.asarray(matrix.sum(axis=0)).ravel(), 0.0, atol=1e-12)
    # from state n the sink gets k P(B > 5 - n)
    q = 0.75
    sink = matrix.toarray()[space.n_states]
    np.testing.assert_allclose(sink[:6], K_BIRTH * q ** (6 - np.arange(6)), rtol=1e-12)


def test_two_stage_model_tends_to_the_bursty_law():
    """Two-stage expression at fixed k_p / g_m = b: the protein law tends to the
    negative binomial (r = k_m / g_p, p = 1/(1+b)) as g_m grows."""
    k_m, g_p, b = 1.0, 1.0, 2.0
    target_counts = np.arange(0, 400)
    target = stats.nbinom.pmf(target_counts, k_m / g_p, 1.0 / (1.0 + b))
    distances = []
    for g_m in (2.0, 10.0, 50.0):
        k_p = b * g_m
        network = Network(
            species=(Species("M", "cell", 0.0), Species("P", "cell", 0.0)),
            reactions=(Reaction("transcription", (), (("M", 1),), law(k_m)),
                       Reaction("mrna_decay", (("M", 1),), (), law(g_m, "M")),
                       Reaction("translation", (("M", 1),), (("M", 1), ("P", 1)),
                                law(k_p, "M")),
                       Reaction("protein_decay", (("P", 1),), (), law(g_p, "P"))))
        result = stationary_cme(network, tol=1e-6)
        states, pi = result.distributions[0]
        marginal = np.bincount(states[:, 1], weights=pi, minlength=len(target_counts))
        marginal = marginal[:len(target_counts)]
        distances.append(np.abs(marginal - target).sum() + float(result.error_bounds[0]))
    # measured 0.100, 0.020, 0.0040: the distance shrinks like 1/g_m
    assert distances[0] > 3 * distances[1] > 9 * distances[2]
    assert distances[2] < 0.01
    # and the bursty model itself is that law (to the CME's bound)
    bursty = birth_death(k_m, g_p).with_burst("birth", "X", mean=b)
    states, pi = stationary_cme(bursty, tol=1e-8).distributions[0]
    assert np.abs(pi - stats.nbinom.pmf(states[:, 0], k_m / g_p, 1 / (1 + b))).sum() < 1e-6


# -- SSA ----------------------------------------------------------------------------------------
def _stationary_sample(network: Network, seed: int, n: int = 4000) -> np.ndarray:
    result = simulate_ssa(network, [0.0, 40.0], n_trajectories=n, seed=seed)
    return result.states[:, -1, 0]


@pytest.mark.parametrize("burst", [dict(mean=3.0), dict(distribution=FINITE)],
                         ids=["geometric", "finite"])
def test_ssa_mean_and_fano_factor(burst):
    """Z and Y statistics of the stationary mean and variance (t = 40 = 20 relaxation
    times, exactly stationary to 2e-9)."""
    network = birth_death().with_burst("birth", "X", **burst)
    law = network.reactions[0].burst
    sample = _stationary_sample(network, seed=11)
    n = len(sample)
    mu = K_BIRTH * law.mean / GAMMA
    variance = mu * fano_reference(law)
    z = np.sqrt(n) * (sample.mean() - mu) / np.sqrt(variance)
    assert -3 < z < 3
    # Var(s^2) = sigma^4 (2/(n-1) + kappa/n), kappa the excess kurtosis of the exact law
    if "mean" in burst:
        r, p = K_BIRTH / GAMMA, 1.0 / (1.0 + law.mean)
        kurtosis = float(stats.nbinom.stats(r, p, moments="k"))
    else:
        states, pi = stationary_cme(network, tol=1e-10).distributions[0]
        centred = states[:, 0] - pi @ states[:, 0]
        kurtosis = float(pi @ centred ** 4) / float(pi @ centred ** 2) ** 2 - 3.0
    y = (sample.var(ddof=1) / variance - 1.0) / np.sqrt(2.0 / (n - 1) + kurtosis / n)
    assert -5 < y < 5


def test_ssa_law_is_negative_binomial_by_chi_square():
    network = birth_death().with_burst("birth", "X", mean=3.0)
    sample = _stationary_sample(network, seed=5, n=6000)
    r, p = K_BIRTH / GAMMA, 1.0 / 4.0
    support = np.arange(int(sample.max()) + 1)  # the law's tail joins the last cell
    _, dof, p_value = pooled_chi_square(sample, support, stats.nbinom.pmf(support, r, p))
    assert dof > 15
    assert p_value > 1e-3
    # the same test rejects the Poisson law of the same mean (the test can fail)
    _, _, p_poisson = pooled_chi_square(sample, support, stats.poisson.pmf(support, r * 3.0))
    assert p_poisson < 1e-10


def test_ssa_is_reproducible_and_independent_of_threads():
    network = birth_death().with_burst("birth", "X", distribution=FINITE)
    times = np.linspace(0.0, 10.0, 6)
    first = simulate_ssa(network, times, n_trajectories=130, seed=42, n_jobs=1)
    second = simulate_ssa(network, times, n_trajectories=130, seed=42, n_jobs=2)
    third = simulate_ssa(network, times, n_trajectories=130, seed=43, n_jobs=2)
    np.testing.assert_array_equal(first.states, second.states)
    assert not np.array_equal(first.states, third.states)
    for method in ("direct", "tree"):
        run = simulate_ssa(network, times, n_trajectories=130, seed=42, method=method)
        np.testing.assert_array_equal(run.states, first.states)


def test_burst_species_read_by_other_channels_updates_their_propensities():
    """X -> 0 reads X: after a burst its propensity must be refreshed (dependency graph),
    so a large stationary sample still has the exact mean."""
    network = birth_death(k=0.5, gamma=1.0).with_burst("birth", "X", mean=10.0)
    sample = _stationary_sample(network, seed=3)
    mu, variance = 0.5 * 10.0, 0.5 * 10.0 * 11.0
    z = np.sqrt(len(sample)) * (sample.mean() - mu) / np.sqrt(variance)
    assert -3 < z < 3


# -- deterministic limit and LNA --------------------------------------------------------------------
def test_deterministic_limit_uses_the_mean_burst():
    network = birth_death().with_burst("birth", "X", distribution=FINITE)
    times = np.array([0.0, 1.0, 4.0])
    result = simulate_deterministic(network, times)
    exact = K_BIRTH * 2.0 / GAMMA * (1.0 - np.exp(-GAMMA * times))
    np.testing.assert_allclose(result.counts[:, 0], exact, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("burst", [dict(mean=3.0), dict(distribution=FINITE)],
                         ids=["geometric", "finite"])
def test_lna_is_exact_for_bursty_birth_death(burst):
    network = birth_death().with_burst("birth", "X", **burst)
    law = network.reactions[0].burst
    moments_frame = solve_lna(network).moments
    mean = float(moments_frame["mean"].iloc[0])
    variance = float(moments_frame["variance"].iloc[0])
    assert mean == pytest.approx(K_BIRTH * law.mean / GAMMA, rel=1e-8)
    assert variance / mean == pytest.approx(fano_reference(law), rel=1e-8)
    # time-dependent LNA against the CME's exact transient moments (linear network)
    times = np.array([0.0, 1.0, 3.0])
    lna = solve_lna(network, times).moments
    cme = solve_cme(network, times, tol=1e-9)
    for k in range(1, len(times)):
        exact_mean, exact_variance = moments(cme.distributions[k][0][:, 0],
                                             cme.distributions[k][1])
        row = lna[lna["time"] == times[k]]
        assert float(row["mean"].iloc[0]) == pytest.approx(exact_mean, rel=1e-6)
        assert float(row["variance"].iloc[0]) == pytest.approx(exact_variance, rel=1e-6)


def test_lna_is_exact_for_bursty_translation():
    """M -> M + B P: a burst of a species that is not the reactant; the LNA (linear
    network) must match the CME moments, the burst direction e_P being independent."""
    network = Network(
        species=(Species("M", "cell", 0.0), Species("P", "cell", 0.0)),
        reactions=(Reaction("transcription", (), (("M", 1),), law(1.0)),
                   Reaction("mrna_decay", (("M", 1),), (), law(2.0, "M")),
                   Reaction("translation", (("M", 1),), (("M", 1),), law(3.0, "M")),
                   Reaction("protein_decay", (("P", 1),), (), law(1.0, "P")))
    ).with_burst("translation", "P", mean=2.0)
    frame = solve_lna(network).moments
    p_mean = float(frame[frame["species"] == "P"]["mean"].iloc[0])
    # <M> = 1/2; <P> = <M> 3 E[B] / 1 = 3
    assert p_mean == pytest.approx(3.0, rel=1e-8)
    states, pi = stationary_cme(network, tol=1e-7).distributions[0]
    exact_mean, exact_variance = moments(states[:, 1], pi)
    p_variance = float(frame[frame["species"] == "P"]["variance"].iloc[0])
    assert p_mean == pytest.approx(exact_mean, rel=1e-5)
    assert p_variance == pytest.approx(exact_variance, rel=1e-5)  # linear: LNA exact


# -- unsupported ------------------------------------------------------------------------------------
def test_cle_refuses_bursts_naming_the_reaction():
    network = birth_death().with_burst("birth", "X", mean=2.0)
    with pytest.raises(UnsupportedFeatureError, match="burst") as raised:
        simulate_cle(network, [0.0, 1.0], n_trajectories=4, seed=1)
    assert raised.value.element_id == "birth"


# -- annotated SBML round trip ---------------------------------------------------------------------
def _sbml() -> str:
    return make_sbml({"M": 0, "P": 0},
                     [("tx", {}, {"M": 1}, "k_m"), ("md", {"M": 1}, {}, "g_m * M"),
                      ("tl", {"M": 1}, {"M": 1, "P": 1}, "k_p * M"),
                      ("pd", {"P": 1}, {}, "g_p * P")],
                     parameters={"k_m": 1.0, "g_m": 2.0, "k_p": 3.0, "g_p": 1.0})


@pytest.mark.parametrize("burst", [dict(mean=2.5), dict(distribution=(0.125, 0.5, 0.0, 0.375))],
                         ids=["geometric", "finite"])
def test_annotation_round_trip(tmp_path, burst):
    network = read_sbml_string(_sbml()).with_burst("tl", "P", **burst)
    path = write_annotated_sbml(network, None, tmp_path / "bursty.xml")
    annotations = read_annotations(path)
    declared = annotations["reactions"]["tl"][0]["bursts"]
    assert len(declared) == 1 and declared[0]["channel"] == "tl"
    assert declared[0]["species"] == "P"
    back = read_sbml(path)
    assert back == network
    assert back.reactions[2].burst == network.reactions[2].burst
    # an annotated file reads back bursty and can be annotated again (idempotent)
    again = write_annotated_sbml(back, None, tmp_path / "again.xml")
    assert read_sbml(again) == network
    assert sbml_reader.ANNOTATION_NAMESPACE == sbml_writer.NAMESPACE


def test_a_bad_burst_annotation_is_an_sbml_error(tmp_path):
    network = read_sbml_string(_sbml()).with_burst("tl", "P", mean=2.0)
    text = write_annotated_sbml(network, None, tmp_path / "b.xml").read_text()
    broken = text.replace('meanSize="2.0"', 'meanSize="-1.0"')
    assert broken != text
    with pytest.raises(InvalidSBMLError, match="burst"):
        read_sbml_string(broken)


def test_burst_of_a_reactant_species_by_cme_ssa_and_rate_equations():
    """X -> B X at c n (net change B - 1), with 0 -> X at k and X -> 0 at g n. The mean
    obeys m' = k + (c (E[B] - 1) - g) m exactly (linear network): the CME, the
    deterministic limit and the SSA (Z statistic) must all follow it."""
    k, c, g, table = 4.0, 0.5, 1.0, (0.3, 0.2, 0.5)
    network = Network(
        species=(Species("X", "cell", 3.0),),
        reactions=(Reaction("birth", (), (("X", 1),), law(k)),
                   Reaction("split", (("X", 1),), (("X", 2),), law(c, "X")),
                   Reaction("death", (("X", 1),), (), law(g, "X")))
    ).with_burst("split", "X", distribution=table)
    assert network.reactions[1].reactants == (("X", 1),) and network.reactions[1].products == ()
    rate = c * (Burst.finite("X", table).mean - 1.0) - g
    times = np.array([0.0, 0.5, 2.0])
    exact = k / -rate + (3.0 - k / -rate) * np.exp(rate * times)
    cme = solve_cme(network, times, tol=1e-8)
    cme_moments = [moments(states[:, 0], p) for states, p in cme.distributions]
    np.testing.assert_allclose([m for m, _ in cme_moments], exact, rtol=1e-6)
    np.testing.assert_allclose(simulate_deterministic(network, times).counts[:, 0], exact,
                               rtol=1e-7)
    sample = simulate_ssa(network, times, n_trajectories=4000, seed=8).states[:, -1, 0]
    z = np.sqrt(len(sample)) * (sample.mean() - exact[-1]) / np.sqrt(cme_moments[-1][1])
    assert -3 < z < 3
