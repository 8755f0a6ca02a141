"""Delays by the method of phases (THEORY.md section 6; docs/delays.md).

References nobody here wrote: the Erlang law of a sum of k exponential phases
(scipy.stats.gamma), the phase-type law of an exponential initiation followed by the
chain (scipy.linalg.expm on its sub-generator), Poisson laws of linear networks started
empty, the distributed-delay convolution integral (scipy.integrate.quad) and
libroadrunner on the written SBML.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.stats

from sbml_cme import (Network, OptionsError, UnsupportedFeatureError, read_sbml,
                      read_sbml_string, with_delay, write_sbml)
from sbml_cme.analyses import (simulate_cle, simulate_deterministic, simulate_ssa, solve_cme,
                               solve_lna)
from sbml_cme.delays import MAX_PHASES, delay_phases
from sbml_cme.crosscheck import crosscheck
from sbml_cme.io.sbml_writer import read_options_dict

from conftest import make_sbml, pooled_chi_square, standardized_mean, standardized_variance

TOL = 1e-10


def _conversion(a: str = "A", b: str = "B", count: float = 1, **kwargs) -> Network:
    """A -> B at rate c * A (one molecule of A by default)."""
    return read_sbml_string(make_sbml({a: count, b: 0}, [("R", {a: 1}, {b: 1}, f"c * {a}")],
                                      parameters={"c": 0.5}, **kwargs))


def _production(**kwargs) -> Network:
    """0 -> X at kp = 2, X -> 0 at g = 1 (counts)."""
    return read_sbml_string(make_sbml({"X": 0}, [("make", {}, {"X": 1}, "kp"),
                                                 ("decay", {"X": 1}, {}, "g * X")],
                                      parameters={"kp": 2.0, "g": 1.0}, **kwargs))


# -- the phase rule and bad options ---------------------------------------------------------
def test_number_of_phases_is_mean_squared_over_variance_rounded():
    assert delay_phases(2.0, 1.0) == 4
    assert delay_phases(3.0, 9.0) == 1  # exponential
    assert delay_phases(1.0, 0.4) == 3  # 2.5 rounds up
    assert delay_phases(1.0, 1 / 2.49) == 2
    assert delay_phases(1.0, 1.9) == 1  # 0.53 -> 1
    with pytest.raises(OptionsError, match="variance <= 2"):
        delay_phases(1.0, 2.5)  # 0.4 -> 0 phases: more variable than exponential
    with pytest.raises(OptionsError, match="phases"):
        delay_phases(1.0, 1.0 / (MAX_PHASES + 1))


@pytest.mark.parametrize("kwargs, message", [
    ({"reaction": "nope", "mean": 1.0, "phases": 2}, "unknown reaction"),
    ({"mean": 0.0, "phases": 2}, "positive"),
    ({"mean": -1.0, "variance": 1.0}, "positive"),
    ({"mean": float("nan"), "phases": 2}, "positive"),
    ({"mean": float("inf"), "phases": 2}, "positive"),
    ({"mean": "soon", "phases": 2}, "number"),
    ({"mean": 1.0}, "variance or its number of phases"),
    ({"mean": 1.0, "variance": 0.5, "phases": 2}, "not both"),
    ({"mean": 1.0, "variance": 0.0}, "positive"),
    ({"mean": 1.0, "variance": 3.0}, "variance <= 2"),
    ({"mean": 1.0, "phases": 0}, "between 1"),
    ({"mean": 1.0, "phases": MAX_PHASES + 1}, "between 1"),
    ({"mean": 1.0, "phases": 1.5}, "whole number"),
    ({"mean": 1.0, "phases": True}, "whole number"),
])
def test_impossible_options_raise(kwargs, message):
    kwargs = {"reaction": "R", **kwargs}
    with pytest.raises(OptionsError, match=message):
        with_delay(_conversion(), **kwargs)


# -- structure -------------------------------------------------------------------------------
def test_chain_consumes_at_initiation_and_produces_at_completion():
    network = _conversion()
    delayed = with_delay(network, "R", 2.0, variance=1.0)
    phases = [f"R_phase{i}" for i in range(1, 5)]
    assert delayed.species_ids == ("A", "B", *phases)
    assert delayed.reaction_ids == ("R", *(f"{p}_exit" for p in phases))
    initiation = delayed.reactions[0]
    assert initiation.rate_law == network.reactions[0].rate_law  # same propensity
    assert initiation.reactants == (("A", 1),) and initiation.products == (("R_phase1", 1),)
    assert delayed.reactions[-1].reactants == (("R_phase4", 1),)
    assert delayed.reactions[-1].products == (("B", 1),)
    rate = dict((p.id, p.value) for p in delayed.parameters)["R_delay_rate"]
    assert rate == 4 / 2.0
    # Firing the whole chain once is the original reaction.
    assert np.array_equal(delayed.stoichiometry.sum(axis=1)[:2], network.stoichiometry[:, 0])
    assert "Erlang(4, 2)" in delayed.notes[-1] and "variance 1" in delayed.notes[-1]
    table = delayed.conversion_table()
    assert list(table.sbml_kinetic_law[1:]) == [f"R_delay_rate * {p}" for p in phases]


def test_catalysts_are_returned_at_initiation_unless_held():
    network = read_sbml_string(make_sbml(
        {"G": 1, "M": 0}, [("tx", {"G": 1}, {"G": 1, "M": 1}, "k * G")],
        parameters={"k": 1.0}))
    free = with_delay(network, "tx", 1.0, phases=2)
    assert free.reactions[0].products == (("G", 1), ("tx_phase1", 1))
    assert free.reactions[-1].products == (("M", 1),)
    held = with_delay(network, "tx", 1.0, phases=2, hold_catalysts=True)
    assert held.reactions[0].products == (("tx_phase1", 1),)
    assert held.reactions[-1].products == (("G", 1), ("M", 1))


def test_ids_stay_unique_when_delaying_twice():
    once = with_delay(_conversion(), "R", 1.0, phases=2)
    twice = with_delay(once, "R", 1.0, phases=2)
    assert len(set(twice.species_ids)) == len(twice.species_ids)
    assert "R_delay_phase1" in twice.species_ids and "R_delay_delay_rate" in \
        twice.parameter_ids


# -- exact laws by the CME ------------------------------------------------------------------
# The CME's stated accuracy: the FSP certificate plus the Krylov integration's own error
# estimate (run_info["integration_error"], a 2-norm bound on the vector's error); the
# "ode" method (BDF, rtol 1e-10, atol 1e-14) reports none, so it gets its tolerance.
def _accuracy(law) -> float:
    integration = law.run_info.get("integration_error", float("nan"))
    return law.error_bound + (1e-8 if np.isnan(integration) else integration)


def _completion_moments(law, species: str, times: np.ndarray) -> tuple[float, float]:
    """Mean and variance of the completion time T from P(T <= t) = P(species = 1 at t):
    E[T] = int S, E[T^2] = int 2 t S with S = 1 - P (Simpson; S at the horizon < 1e-12)."""
    survival = 1.0 - _probability_of(law, species, 1)
    assert survival[-1] < 1e-12
    first = scipy.integrate.simpson(survival, x=times)
    second = scipy.integrate.simpson(2 * times * survival, x=times)
    return first, second - first**2


@pytest.mark.parametrize("method", ["krylov", "ode"])
def test_completion_time_of_the_chain_is_erlang(method):
    """One molecule already in flight at t = 0: P(B = 1 at t) is the Erlang(k, k/mean)
    CDF, and the completion time's mean and variance are mean and mean**2/k."""
    k, mean = 3, 2.0
    network = with_delay(_conversion(count=0), "R", mean, phases=k).with_initial_counts(
        R_phase1=1)
    times = np.linspace(0.0, 40.0, 4001)
    law = solve_cme(network, times, tol=TOL, method=method)
    erlang = scipy.stats.gamma(k, scale=mean / k)
    done = _probability_of(law, "B", 1)
    assert np.max(np.abs(done - erlang.cdf(times))) <= _accuracy(law)
    if method == "ode":
        moments = _completion_moments(law, "B", times)
        assert moments == pytest.approx((mean, mean**2 / k), rel=1e-6)


@pytest.mark.parametrize("method", ["krylov", "ode"])
def test_completion_time_with_initiation_is_phase_type(method):
    """A -> B with propensity c A, then the chain: T = Exp(c) + Erlang(k, k/mean)."""
    k, mean, c = 4, 3.0, 0.5
    network = with_delay(_conversion(), "R", mean, variance=mean**2 / k)
    times = np.linspace(0.0, 80.0, 4001)
    law = solve_cme(network, times, tol=TOL, method=method)
    rate = k / mean
    generator = np.diag([-c] + [-rate] * k) + np.diag([c] + [rate] * (k - 1), 1)
    start = np.eye(k + 1)[0]
    reference = np.array([1.0 - start @ scipy.linalg.expm(generator * t) @ np.ones(k + 1)
                          for t in times])
    assert np.max(np.abs(_probability_of(law, "B", 1) - reference)) <= _accuracy(law)
    if method == "ode":
        moments = _completion_moments(law, "B", times)
        assert moments == pytest.approx((1 / c + mean, 1 / c**2 + mean**2 / k), rel=1e-6)


def _probability_of(law, species: str, count: int) -> np.ndarray:
    column = law.network.species_index[species]
    return np.array([p[states[:, column] == count].sum() for states, p in law.distributions])


# -- delayed production: CME, SSA, LNA, CLE, deterministic ---------------------------------
@pytest.fixture(scope="module")
def delayed_production():
    network = with_delay(_production(), "make", 2.0, phases=2)
    times = np.array([0.0, 1.0, 3.0])
    return network, times, solve_cme(network, times, tol=TOL)


def test_delayed_production_cme_is_poisson_with_the_rate_equation_means(delayed_production):
    """A linear network started empty keeps independent Poisson counts (means from the
    rate equations), chain species included."""
    network, times, law = delayed_production
    means = simulate_deterministic(network, times).to_wide("count")
    for species in network.species_ids:
        marginal = law.marginal(species)
        for t in times[1:]:
            rows = marginal[marginal.time == t]
            poisson = scipy.stats.poisson.pmf(rows["count"], means.loc[means.time == t,
                                                                       species].item())
            assert np.abs(rows["probability"].to_numpy() - poisson).sum() <= \
                law.error_bound + 1e-6


def test_delayed_production_ssa_matches_the_cme(delayed_production):
    network, times, law = delayed_production
    n = 4000
    ensemble = simulate_ssa(network, times, n_trajectories=n, seed=20261127)
    moments = law.moments[law.moments.time == times[-1]].set_index("species")
    for species in network.species_ids:
        samples = ensemble.states[:, -1, network.species_index[species]]
        mu, sigma = moments.loc[species, "mean"], np.sqrt(moments.loc[species, "variance"])
        assert abs(standardized_mean(samples.mean(), n, mu, sigma)) < 3, species
        assert abs(standardized_variance(samples.std(ddof=1), n, sigma)) < 5, species
    marginal = law.marginal("X")
    marginal = marginal[marginal.time == times[-1]]
    samples = ensemble.states[:, -1, network.species_index["X"]].astype(np.int64)
    _, _, p_value = pooled_chi_square(samples, marginal["count"].to_numpy(),
                                      marginal["probability"].to_numpy())
    assert p_value > 1e-3


def test_lna_and_deterministic_solutions_of_the_chain_are_exact_for_a_linear_network(
        delayed_production):
    """THEORY 5: for linear networks the LNA means and variances are exact."""
    network, times, law = delayed_production
    exact = law.moments.set_index(["time", "species"])
    lna = solve_lna(network, times).moments.set_index(["time", "species"])
    deterministic = simulate_deterministic(network, times).to_wide("count")
    for t in times:
        for species in network.species_ids:
            assert lna.loc[(t, species), "mean"] == pytest.approx(
                exact.loc[(t, species), "mean"], rel=1e-6, abs=1e-9)
            assert lna.loc[(t, species), "variance"] == pytest.approx(
                exact.loc[(t, species), "variance"], rel=1e-6, abs=1e-9)
            assert deterministic.loc[deterministic.time == t, species].item() == \
                pytest.approx(exact.loc[(t, species), "mean"], rel=1e-6, abs=1e-9)


def test_cle_runs_on_the_chain(delayed_production):
    network, times, _ = delayed_production
    result = simulate_cle(network, times, n_trajectories=50, seed=3)
    assert result.states.shape == (50, len(times), len(network.species_ids))
    assert np.all(np.isfinite(result.states))


# -- writing the chain as SBML ---------------------------------------------------------------
@pytest.mark.parametrize("level, version, units, amounts", [
    (3, 1, "item", True), (3, 2, "mole", False), (2, 4, "item", False)])
def test_written_chain_reads_back_equal_and_runs_in_roadrunner(tmp_path, level, version, units,
                                                               amounts):
    source = make_sbml({"G": 1, "X": 0}, [("tx", {"G": 1}, {"G": 1, "X": 1}, "kp * G"),
                                          ("decay", {"X": 1}, {}, "g * X")],
                       parameters={"kp": 2.0, "g": 1.0}, level=level, version=version,
                       substance_units=units, has_only_substance_units=amounts)
    path = tmp_path / "model.xml"
    path.write_text(source)
    delayed = with_delay(read_sbml(path), "tx", 2.0, phases=3)
    written = write_sbml(delayed, tmp_path / "delayed.xml")
    assert read_sbml(written) == delayed
    verdicts = crosscheck(written, np.linspace(0.0, 10.0, 21), network=delayed)
    assert set(verdicts.species) == set(delayed.species_ids)
    assert (verdicts.verdict == "agree").all(), verdicts


def test_write_refuses_what_sbml_cannot_state(tmp_path):
    delayed = with_delay(_conversion(), "R", 1.0, phases=2)
    with pytest.raises(OptionsError, match="with_initial_counts or with_parameters"):
        write_sbml(delayed.with_parameters(c=2.0), tmp_path / "x.xml")
    built = dataclasses.replace(delayed, source_sbml="")
    with pytest.raises(OptionsError, match="read_sbml"):
        write_sbml(built, tmp_path / "x.xml")
    reversible = read_sbml_string(make_sbml({"A": 5, "B": 0},
                                            [("R", {"A": 1}, {"B": 1}, "c * A - d * B")],
                                            parameters={"c": 1.0, "d": 0.5}))
    assert reversible.reaction_ids == ("R_forward", "R_backward")
    with pytest.raises(OptionsError, match="reversible"):
        write_sbml(with_delay(reversible, "R_forward", 1.0, phases=2), tmp_path / "x.xml")


# -- delay() in an SBML kinetic law -------------------------------------------------------------
TRANSCRIPTION = make_sbml(
    {"P": 100, "M": 0}, [("tx", {}, {"M": 1}, "k * delay(P, tau)"),
                         ("deg", {"P": 1}, {}, "g * P")],
    parameters={"k": 0.5, "g": 0.2, "tau": 3.0})


def test_delay_in_a_kinetic_law_needs_the_read_option():
    with pytest.raises(UnsupportedFeatureError, match="delays='phases'") as error:
        read_sbml_string(TRANSCRIPTION)
    assert error.value.feature == "the delay csymbol" and error.value.element_id == "tx"


@pytest.mark.parametrize("k", [1, 4])
def test_read_option_makes_a_chain_whose_rate_equations_are_the_erlang_convolution(k):
    """M'(t) = k_tx * int_0^t P(s) erlang(t - s) ds, P(s) = P0 exp(-g s): the distributed
    delay of the chain (no reaction in flight at t = 0)."""
    network = read_sbml_string(TRANSCRIPTION, delays="phases", delay_phases=k)
    assert network.species_ids == ("P", "M", *(f"tx_phase{i}" for i in range(1, k + 1)))
    assert read_options_dict(network) == {"falling_factorials": True, "delays": "phases",
                                          "delay_phases": k}
    assert "Erlang" in network.conversion_table().form[0]
    assert any("start empty" in note for note in network.notes)
    times = np.array([0.0, 1.0, 3.0, 6.0, 12.0])
    result = simulate_deterministic(network, times).to_wide("count")
    erlang = scipy.stats.gamma(k, scale=3.0 / k)

    def produced(t):  # int_0^t k P(s) F(t - s) ds
        return scipy.integrate.quad(lambda s: 0.5 * 100 * np.exp(-0.2 * s) * erlang.cdf(t - s),
                                    0.0, t, epsabs=1e-12, epsrel=1e-12)[0]

    expected = np.array([produced(t) for t in times])
    assert np.allclose(result["M"], expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("law, reactants, products, feature", [
    ("k * delay(P, tau)", {"P": 1}, {"M": 1}, "consumes ['P']"),
    ("k * P * delay(P, tau)", {}, {"M": 1}, "not C*delay"),
    ("k * delay(P, tau) + k", {}, {"M": 1}, "not C*delay"),
    ("k * delay(P, P)", {}, {"M": 1}, "not constant"),
    ("k * delay(P, time)", {}, {"M": 1}, "not constant"),
])
def test_read_option_refuses_delays_it_cannot_convert_faithfully(law, reactants, products,
                                                                  feature):
    text = make_sbml({"P": 100, "M": 0}, [("tx", reactants, products, law)],
                     parameters={"k": 0.5, "tau": 3.0})
    with pytest.raises(UnsupportedFeatureError, match=feature.replace("*", r"\*").replace(
            "[", r"\[")) as error:
        read_sbml_string(text, delays="phases", delay_phases=2)
    assert error.value.element_id == "tx"


def test_delay_outside_kinetic_laws_is_refused_even_with_the_option():
    text = make_sbml({"P": 100}, [("deg", {"P": 1}, {}, "g * P")],
                     parameters={"g": 0.2}, rules={"y": "delay(P, 1)"})
    with pytest.raises(UnsupportedFeatureError, match="delay csymbol"):
        read_sbml_string(text, delays="phases", delay_phases=2)


@pytest.mark.parametrize("options, message", [
    ({"delays": "phases"}, "delay_phases=k"),
    ({"delays": "phases", "delay_phases": 0}, "delay_phases=k"),
    ({"delays": "phases", "delay_phases": 2.0}, "delay_phases=k"),
    ({"delays": "fixed", "delay_phases": 2}, "unknown"),
    ({"delay_phases": 2}, "needs delays='phases'"),
])
def test_bad_read_options_raise(options, message):
    with pytest.raises(OptionsError, match=message):
        read_sbml_string(TRANSCRIPTION, **options)


def test_delay_read_options_are_recorded_in_annotations(tmp_path):
    from sbml_cme import write_annotated_sbml
    from sbml_cme.io.sbml_writer import read_annotations

    network = read_sbml_string(TRANSCRIPTION, delays="phases", delay_phases=np.int64(3))
    path = write_annotated_sbml(network, None, tmp_path / "annotated.xml")
    options = read_annotations(path)["model"]["read_options"]
    assert options == {"falling_factorials": True, "delays": "phases", "delay_phases": 3}
    assert read_sbml(path, **options) == network
