"""Hybrid PDMP simulation against exact laws: a rate-rule-driven birth rate (Poisson),
a telegraph gene filtered by a continuous species (closed-form mean and variance),
jumps that carry a non-integer amount, agreement with the SSA on discrete networks."""

import numpy as np
import pytest
import sympy
from scipy import integrate, stats

from sbml_cme.analyses import simulate_ssa
from sbml_cme.analyses.hybrid import METHODS, auto_partition, simulate_hybrid
from sbml_cme.errors import OptionsError, UnsupportedFeatureError, InvalidNetworkError
from sbml_cme.network import (TIME, Event, Expression, MassAction, Network, Parameter,
                              RateRule, Reaction, Species)
from conftest import pooled_chi_square, standardized_mean

K0, OMEGA, GAMMA = 20.0, 2.0, 1.0


def _reaction(rid, reactants, products, constant, orders=None):
    orders = reactants if orders is None else orders
    return Reaction(rid, tuple(reactants), tuple(products),
                    MassAction(sympy.sympify(constant), tuple(orders)))


def _periodic_birth_death() -> Network:
    """0 -> X at rate k(t), X -> 0 at gamma X, dk/dt = k0 omega cos(omega t), k(0) = k0:
    k(t) = k0 (1 + sin omega t)."""
    return Network(
        species=(Species("X", "cell", 0.0),),
        reactions=(_reaction("birth", [], [("X", 1)], "k"),
                   _reaction("death", [("X", 1)], [], GAMMA)),
        parameters=(Parameter("k", K0, constant=False),),
        rate_rules=(RateRule("k", K0 * OMEGA * sympy.cos(OMEGA * TIME)),))


def _poisson_mean(t: float) -> float:
    """m(t) = int_0^t k(s) exp(-gamma (t - s)) ds."""
    value, _ = integrate.quad(lambda s: K0 * (1 + np.sin(OMEGA * s)) * np.exp(-GAMMA * (t - s)),
                              0.0, t, epsabs=1e-12, epsrel=1e-12)
    return value


# Every method; the 2nd-order Rosenbrock method takes ~10x more steps, so fewer paths.
@pytest.mark.parametrize("method, n", [("auto", 2000), ("dopri5", 2000), ("rosenbrock", 800)])
def test_rate_rule_birth_rate_gives_the_poisson_law(method, n):
    assert set(METHODS) == {"auto", "dopri5", "rosenbrock"}
    times = np.array([0.0, 0.5, 1.3, 2.0, 3.7])
    result = simulate_hybrid(_periodic_birth_death(), times, n_trajectories=n, seed=3,
                             method=method)
    assert list(result.stats().columns) == ["time", "X-mean", "X-sd", "k-mean", "k-sd"]
    for index, t in enumerate(times[1:], start=1):
        mean = _poisson_mean(t)
        samples = result.states[:, index, 0]
        assert np.all(samples == np.round(samples))
        support = np.arange(0, int(mean + 12 * np.sqrt(mean)))
        _, _, p_value = pooled_chi_square(samples, support, stats.poisson.pmf(support, mean))
        z = standardized_mean(samples.mean(), n, mean, np.sqrt(mean))
        assert p_value > 1e-3 and abs(z) < 4, (t, p_value, z)


def test_explicit_time_in_a_law_runs_exactly_through_simulate_ssa():
    """The same Poisson law with k(t) written into the birth law itself (no rate rule):
    simulate_ssa's default integrates the time-dependent hazard in the hybrid kernel,
    where the direct method refuses."""
    network = Network(
        species=(Species("X", "cell", 0.0),),
        reactions=(Reaction("birth", (), (("X", 1),),
                            Expression(K0 * (1 + sympy.sin(OMEGA * TIME)))),
                   _reaction("death", [("X", 1)], [], GAMMA)))
    times = np.array([0.0, 0.5, 1.3, 2.0, 3.7])
    with pytest.raises(UnsupportedFeatureError, match="depends explicitly on time"):
        simulate_ssa(network, times, n_trajectories=2, seed=1, method="direct")
    n = 2000
    result = simulate_ssa(network, times, n_trajectories=n, seed=5)
    assert result.method == "hybrid"
    for index, t in enumerate(times[1:], start=1):
        mean = _poisson_mean(t)
        samples = result.states[:, index, 0]
        support = np.arange(0, int(mean + 12 * np.sqrt(mean)))
        _, _, p_value = pooled_chi_square(samples, support, stats.poisson.pmf(support, mean))
        z = standardized_mean(samples.mean(), n, mean, np.sqrt(mean))
        assert p_value > 1e-3 and abs(z) < 4, (t, p_value, z)


@pytest.mark.parametrize("method", ["dopri5", "rosenbrock"])
def test_rate_rule_parameter_column_is_its_ode_solution(method):
    # k(t) = k0 (1 + sin omega t) through ~150 steps cut by jumps: the global error of a
    # step-size controller is at most (steps) x (local tolerance), here <= 150 x 1e-10.
    times = np.array([0.0, 0.5, 1.3, 2.0, 3.7])
    result = simulate_hybrid(_periodic_birth_death(), times, n_trajectories=10, seed=3,
                             method=method, rtol=1e-10, atol=1e-10)
    k = result.states[:, :, 1]
    exact = np.broadcast_to(K0 * (1 + np.sin(OMEGA * times)), k.shape)
    steps = result.run_info["ode_steps"] / 10
    np.testing.assert_allclose(k, exact, rtol=0, atol=2 * steps * 1e-10 * 2 * K0)


def _telegraph_filter(form: str, k: float = 100.0, g: float = 1.0) -> Network:
    """Gene G on/off (discrete), Y continuous with dY/dt = k G_on - g Y, as continuous
    flux channels or as a rate rule."""
    species = (Species("Gon", "cell", 0.0), Species("Goff", "cell", 1.0),
               Species("Y", "cell", 0.0, continuous=True))
    switches = (_reaction("on", [("Goff", 1)], [("Gon", 1)], "kon"),
                _reaction("off", [("Gon", 1)], [("Goff", 1)], "koff"))
    parameters = (Parameter("kon", 1.0), Parameter("koff", 2.0), Parameter("k", k),
                  Parameter("g", g))
    if form == "flux":
        fluxes = (_reaction("make", [("Gon", 1)], [("Gon", 1), ("Y", 1)], "k"),
                  _reaction("decay", [("Y", 1)], [], "g"))
        return Network(species=species, reactions=switches + fluxes, parameters=parameters)
    rule = RateRule("Y", sympy.Symbol("k") * sympy.Symbol("Gon") -
                    sympy.Symbol("g") * sympy.Symbol("Y"))
    return Network(species=species, reactions=switches, parameters=parameters,
                   rate_rules=(rule,))


@pytest.mark.parametrize("form", ["flux", "rate rule"])
def test_telegraph_filter_stationary_mean_and_variance(form):
    # Stationary G is a telegraph process with P(on) = p, correlation exp(-lambda |tau|),
    # lambda = kon + koff; Y = k int exp(-g (t - s)) G(s) ds has
    #   E[Y] = k p / g,   Var[Y] = k^2 p (1 - p) / (g (g + lambda)).
    network = _telegraph_filter(form)
    assert list(network.jump_mask) == ([True, True, False, False] if form == "flux"
                                       else [True, True])
    kon, koff, k, g = 1.0, 2.0, 100.0, 1.0
    p, rate = kon / (kon + koff), kon + koff
    mean, variance = k * p / g, k**2 * p * (1 - p) / (g * (g + rate))
    times = np.array([0.0, 15.0, 25.0, 35.0])  # transients ~ exp(-15); samples ~ exp(-10) apart
    n = 2000
    result = simulate_hybrid(network, times, n_trajectories=n, seed=8)
    samples = result.states[:, 1:, 2].ravel()
    size = samples.size
    z_mean, z_variance = _z_mean_variance(samples, mean, variance)
    assert abs(z_mean) < 4 and abs(z_variance) < 4, (z_mean, z_variance)
    # The discrete part is the exact two-state chain: P(on) = p at every sample time.
    on = result.states[:, 1:, 0].ravel()
    assert abs((on.mean() - p) / np.sqrt(p * (1 - p) / size)) < 4


def _z_mean_variance(samples, mean, variance):
    """Z scores of the sample mean and variance (the latter with the sample's 4th moment)."""
    centred = samples - samples.mean()
    s2 = centred.var(ddof=1)
    z_mean = (samples.mean() - mean) / np.sqrt(s2 / samples.size)
    z_variance = (s2 - variance) / np.sqrt((np.mean(centred**4) - s2**2) / samples.size)
    return z_mean, z_variance


def test_stiff_filter_switches_to_rosenbrock():
    # g = 1e5: Y relaxes 1e5 times faster than G switches. Dormand-Prince is held to
    # h |lambda| < 3.3 (3e4 steps per time unit); "auto" detects it and steps over.
    kon, koff, k, g = 1.0, 2.0, 1e7, 1e5
    network = _telegraph_filter("flux", k=k, g=g)
    p, rate = kon / (kon + koff), kon + koff
    mean, variance = k * p / g, k**2 * p * (1 - p) / (g * (g + rate))
    times = np.array([0.0, 5.0, 10.0, 15.0])
    n = 250
    result = simulate_hybrid(network, times, n_trajectories=n, seed=21, rtol=1e-6)
    auto_steps = result.run_info["ode_steps"] / (n * times[-1])  # per trajectory and time
    explicit = simulate_hybrid(network, [0.0, 1.0], n_trajectories=2, seed=21, rtol=1e-6,
                               method="dopri5")
    assert explicit.run_info["ode_steps"] / 2 > 10 * auto_steps
    z_mean, z_variance = _z_mean_variance(result.states[:, 1:, 2].ravel(), mean, variance)
    assert abs(z_mean) < 4 and abs(z_variance) < 4, (z_mean, z_variance)


def test_jump_carries_a_non_integer_amount_of_a_continuous_species():
    # Each birth of X also adds 2.5 of the continuous Z: Z(t) / 2.5 ~ Poisson(k t).
    network = Network(
        species=(Species("X", "cell", 0.0), Species("Z", "cell", 0.0, continuous=True)),
        reactions=(_reaction("birth", [], [("X", 1), ("Z", 2.5)], 4.0),
                   _reaction("death", [("X", 1)], [], 1.0)))
    n = 2000
    result = simulate_hybrid(network, [0.0, 2.0], n_trajectories=n, seed=4)
    births = result.states[:, -1, 1] / 2.5
    np.testing.assert_allclose(births, np.round(births), atol=1e-9)
    support = np.arange(0, 30)
    _, _, p_value = pooled_chi_square(np.round(births), support, stats.poisson.pmf(support, 8.0))
    assert p_value > 1e-3


def test_discrete_species_refuse_non_integer_stoichiometry():
    with pytest.raises(InvalidNetworkError, match="positive integer"):
        Network(species=(Species("X", "cell", 0.0),),
                reactions=(_reaction("birth", [], [("X", 2.5)], 1.0),))


def _dimerisation() -> Network:
    return Network(
        species=(Species("A", "cell", 30.0), Species("B", "cell", 0.0)),
        reactions=(_reaction("bind", [("A", 2)], [("B", 1)], 0.02),
                   _reaction("unbind", [("B", 1)], [("A", 2)], 0.5),
                   _reaction("make", [], [("A", 1)], 3.0)))


def test_discrete_network_follows_the_ssa_path_for_path():
    # Without a continuous part the hazard is linear between jumps, and the PDMP draws
    # the same uniforms in the same order as the direct method (a waiting time, then a
    # channel): the trajectories coincide, not only their law.
    times = np.linspace(0.0, 4.0, 9)
    hybrid = simulate_hybrid(_dimerisation(), times, n_trajectories=200, seed=12)
    ssa = simulate_ssa(_dimerisation(), times, n_trajectories=200, seed=12)
    np.testing.assert_array_equal(hybrid.states, ssa.states)
    np.testing.assert_array_equal(hybrid.n_events, ssa.n_events)


def test_same_seed_same_ensemble_whatever_threads():
    times = np.linspace(0.0, 5.0, 6)
    network = _telegraph_filter("flux")
    one = simulate_hybrid(network, times, n_trajectories=150, seed=5, n_jobs=1)
    two = simulate_hybrid(network, times, n_trajectories=150, seed=5, n_jobs=2)
    np.testing.assert_array_equal(one.states, two.states)
    other = simulate_hybrid(network, times, n_trajectories=150, seed=6)
    assert not np.array_equal(one.states, other.states)


def test_time_threshold_event_on_a_hybrid_network():
    # Birth-death (birth rate k(t) from a rate rule); the event empties X at t = 1, so
    # X(1.6) ~ Poisson(int_1^1.6 k(s) exp(-gamma (1.6 - s)) ds).
    network = _periodic_birth_death()
    event = Event("reset", sympy.Ge(TIME, 1.0), (("X", sympy.Integer(0)),))
    network = Network(species=network.species, reactions=network.reactions,
                      parameters=network.parameters, rate_rules=network.rate_rules,
                      events=(event,))
    n = 2000
    result = simulate_hybrid(network, [0.0, 1.6], n_trajectories=n, seed=9)
    mean, _ = integrate.quad(lambda s: K0 * (1 + np.sin(OMEGA * s)) * np.exp(-(1.6 - s)), 1.0,
                             1.6)
    support = np.arange(0, 40)
    _, _, p_value = pooled_chi_square(result.states[:, -1, 0], support,
                                      stats.poisson.pmf(support, mean))
    assert p_value > 1e-3


def test_trigger_on_a_continuous_variable_is_refused():
    network = _telegraph_filter("flux")
    event = Event("high", sympy.Gt(sympy.Symbol("Y"), 50), (("Gon", sympy.Integer(0)),))
    network = Network(species=network.species, reactions=network.reactions,
                      parameters=network.parameters, events=(event,))
    with pytest.raises(UnsupportedFeatureError, match="continuous variable 'Y'") as error:
        simulate_hybrid(network, [0.0, 1.0], n_trajectories=2, seed=1)
    assert error.value.element_id == "high"


def test_with_partition_and_auto_partition():
    # A: production 1e5 / degradation 1 from 1e5 (stays at 1e5); X: birth-death at 10.
    network = Network(
        species=(Species("A", "cell", 1e5), Species("X", "cell", 0.0)),
        reactions=(_reaction("makeA", [], [("A", 1)], 1e5),
                   _reaction("loseA", [("A", 1)], [], 1.0),
                   _reaction("makeX", [("A", 1)], [("A", 1), ("X", 1)], 1e-4),
                   _reaction("loseX", [("X", 1)], [], 1.0)))
    partitioned, table = auto_partition(network, np.linspace(0, 5, 11))
    assert partitioned.continuous_species == ("A",)
    assert list(table.columns) == ["species", "continuous", "reason"]
    assert table.set_index("species")["continuous"].to_dict() == {"A": True, "X": False}
    assert list(partitioned.jump_mask) == [False, False, True, True]
    assert partitioned == network.with_partition(["A"])
    assert network.with_partition([]) == network
    with pytest.raises(OptionsError, match="unknown species"):
        network.with_partition(["nope"])
    # X ~ Poisson(10 (1 - e^-t)) as in the fully discrete model (A stays at 1e5).
    n = 2000
    result = simulate_hybrid(network, [0.0, 2.0], n_trajectories=n, seed=2, partition="auto")
    assert result.run_info["continuous"] == ["A"]
    mean = 10 * (1 - np.exp(-2.0))
    support = np.arange(0, 30)
    _, _, p_value = pooled_chi_square(result.states[:, -1, 1], support,
                                      stats.poisson.pmf(support, mean))
    assert p_value > 1e-3
    np.testing.assert_allclose(result.states[:, -1, 0], 1e5, rtol=1e-6)


def test_simulate_ssa_delegates_to_the_hybrid_simulation():
    times = [0.0, 1.0, 2.0]
    network = _telegraph_filter("flux")
    automatic = simulate_ssa(network, times, n_trajectories=20, seed=4)
    assert automatic.method == "hybrid"
    direct = simulate_hybrid(network, times, n_trajectories=20, seed=4)
    np.testing.assert_array_equal(automatic.states, direct.states)
    asked = simulate_ssa(_dimerisation(), times, n_trajectories=20, seed=4, method="hybrid")
    assert asked.method == "hybrid"
    with pytest.raises(OptionsError, match="locally"):
        simulate_ssa(network, times, n_trajectories=2, seed=1, client=object())
