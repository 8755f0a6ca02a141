"""SSA against exact laws (THEORY.md section 2), reproducibility and errors."""

import sys
import numpy as np
import pytest
from scipy import stats

import sbml_cme
from sbml_cme.analyses import simulate_ssa
from sbml_cme.analyses.ssa import METHODS
from conftest import make_sbml, standardized_mean, standardized_variance


@pytest.mark.parametrize("method", sorted(METHODS))
def test_birth_death_transient_poisson(birth_death_sbml, method):
    network = sbml_cme.read_sbml_string(birth_death_sbml)
    times = np.array([0.0, 0.5, 1.0, 2.0, 5.0])
    n = 4000
    result = simulate_ssa(network, times, n_trajectories=n, seed=11, method=method)
    mean = 10.0 * (1 - np.exp(-times[1:]))  # Poisson: variance = mean
    stats_ = result.stats()
    z = standardized_mean(stats_["X-mean"][1:], n, mean, np.sqrt(mean))
    y = standardized_variance(stats_["X-sd"][1:], n, np.sqrt(mean))
    # The test suite's rule: a correct simulator leaves 0-1 points out of range now and then
    # (checked with 40,000 trajectories and three seeds: all |Z| < 1.7, |Y| < 1.3).
    assert np.sum(np.abs(z) >= 3) <= 1 and np.sum(np.abs(y) >= 5) <= 1
    # The whole law at t = 5: chi-square against Poisson.
    counts = result.states[:, -1, 0].astype(int)
    observed = np.bincount(counts, minlength=30)[:30]
    expected = stats.poisson.pmf(np.arange(30), mean[-1]) * n
    keep = expected > 5
    chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3


def test_same_seed_same_ensemble_whatever_threads(birth_death_sbml):
    network = sbml_cme.read_sbml_string(birth_death_sbml)
    times = np.linspace(0, 3, 7)
    one = simulate_ssa(network, times, n_trajectories=150, seed=5, n_jobs=1)
    two = simulate_ssa(network, times, n_trajectories=150, seed=5, n_jobs=2)
    assert np.array_equal(one.states, two.states)
    other = simulate_ssa(network, times, n_trajectories=150, seed=6)
    assert not np.array_equal(one.states, other.states)


def test_result_frames(birth_death_sbml):
    network = sbml_cme.read_sbml_string(birth_death_sbml)
    result = simulate_ssa(network, [0, 1, 2], n_trajectories=3, seed=1)
    assert list(result.moments.columns) == ["time", "species", "mean", "variance"]
    assert list(result.stats().columns) == ["time", "X-mean", "X-sd"]
    frame = result.to_frame()
    assert list(frame.columns) == ["trajectory", "time", "species", "value"]
    assert len(frame) == 3 * 3
    assert result.total_events == result.n_events.sum() > 0


def test_closed_isomerisation_binomial():
    # A <-> B, N = 40: n_A ~ Binomial(40, k2/(k1+k2)), Cov(A, B) = -Var(A).
    sbml = make_sbml({"A": 40, "B": 0}, [("f", {"A": 1}, {"B": 1}, "k1 * A"),
                                         ("b", {"B": 1}, {"A": 1}, "k2 * B")],
                     parameters={"k1": 1.0, "k2": 3.0})
    network = sbml_cme.read_sbml_string(sbml)
    n = 3000
    result = simulate_ssa(network, [0.0, 10.0], n_trajectories=n, seed=3, method="tree")
    a = result.states[:, -1, 0]
    b = result.states[:, -1, 1]
    p = 3.0 / 4.0
    mu, var = 40 * p, 40 * p * (1 - p)
    assert abs(standardized_mean(a.mean(), n, mu, np.sqrt(var))) < 3
    assert abs(standardized_variance(a.std(ddof=1), n, np.sqrt(var))) < 5
    assert np.all(a + b == 40)
    assert np.cov(a, b)[0, 1] == pytest.approx(-np.var(a, ddof=1))


def test_time_event_resets_state():
    sbml = make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k")], parameters={"k": 5.0},
                     events=[("reset", "time >= 2", {"X": "100"})])
    network = sbml_cme.read_sbml_string(sbml)
    result = simulate_ssa(network, [0.0, 1.999, 2.0], n_trajectories=50, seed=2)
    assert np.all(result.states[:, 2, 0] == 100)
    assert np.all(result.states[:, 1, 0] < 100)


def test_state_event_fires_after_crossing():
    sbml = make_sbml({"X": 0, "Y": 0}, [("birth", {}, {"X": 1}, "k")],
                     parameters={"k": 10.0}, events=[("flag", "X >= 5", {"Y": "1"})])
    network = sbml_cme.read_sbml_string(sbml)
    result = simulate_ssa(network, np.linspace(0, 3, 31), n_trajectories=100, seed=4)
    x, y = result.states[:, :, 0], result.states[:, :, 1]
    assert np.all((x >= 5) == (y == 1))


def test_time_dependent_propensity_is_refused_by_direct_and_integrated_by_auto():
    sbml = make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k * time")], parameters={"k": 1.0})
    network = sbml_cme.read_sbml_string(sbml)
    for method in ("direct", "tree"):
        with pytest.raises(sbml_cme.UnsupportedFeatureError, match="birth"):
            simulate_ssa(network, [0, 1], n_trajectories=2, seed=1, method=method)
    # X(2) is Poisson with mean int_0^2 k s ds = 2.
    result = simulate_ssa(network, [0, 2], n_trajectories=4000, seed=1)
    assert result.method == "hybrid"
    samples = result.states[:, 1, 0]
    assert abs(samples.mean() - 2.0) < 4 * np.sqrt(2.0 / 4000)
    assert abs(samples.var() / 2.0 - 1.0) < 0.1


def test_law_that_does_not_vanish_without_reactants_is_caught():
    # X -> 0 at constant rate k: counts would go negative.
    sbml = make_sbml({"X": 2}, [("leak", {"X": 1}, {}, "k")], parameters={"k": 5.0})
    network = sbml_cme.read_sbml_string(sbml)
    with pytest.raises(sbml_cme.AnalysisError, match="leak"):
        simulate_ssa(network, [0, 10], n_trajectories=5, seed=1)


@pytest.mark.parametrize("options", [dict(n_trajectories=0), dict(method="nope"),
                                     dict(n_jobs=0)])
def test_bad_options(birth_death_sbml, options):
    network = sbml_cme.read_sbml_string(birth_death_sbml)
    with pytest.raises(sbml_cme.OptionsError):
        simulate_ssa(network, [0, 1], **{"n_trajectories": 2, "seed": 1, **options})
    with pytest.raises(sbml_cme.OptionsError):
        simulate_ssa(network, [1, 0], n_trajectories=2, seed=1)


# -- method="auto": the faster exact method, from the measured crossover ------------------
def _ring(n_channels: int) -> sbml_cme.Network:
    """X_i -> X_{i+-1}, k = 1, 20 molecules each: fan-out 4 (benchmarks' ring)."""
    import sympy
    n = n_channels // 2
    species = tuple(sbml_cme.Species(f"X{i}", "cell", 20.0) for i in range(n))
    reactions = tuple(
        sbml_cme.Reaction(f"R{i}_{step}", ((f"X{i}", 1),), ((f"X{(i + step) % n}", 1),),
                          sbml_cme.MassAction(sympy.Integer(1), ((f"X{i}", 1),)))
        for i in range(n) for step in (1, -1))
    return sbml_cme.Network(species, reactions,
                            compartments=(sbml_cme.Compartment("cell", size=1.0),))


def _dense(n_channels: int) -> sbml_cme.Network:
    """Conversions among 2 species: every firing changes every propensity."""
    import sympy
    reactions = tuple(
        sbml_cme.Reaction(f"R{j}", ((f"X{j % 2}", 1),), ((f"X{1 - j % 2}", 1),),
                          sbml_cme.MassAction(sympy.Float(1 + j / n_channels),
                                              ((f"X{j % 2}", 1),)))
        for j in range(n_channels))
    return sbml_cme.Network(tuple(sbml_cme.Species(f"X{i}", "cell", 50.0) for i in (0, 1)),
                            reactions,
                            compartments=(sbml_cme.Compartment("cell", size=1.0),))


@pytest.mark.parametrize("network, expected", [
    (lambda sbml: sbml_cme.read_sbml_string(sbml), "direct"),  # 2 channels
    (lambda sbml: _ring(2000), "tree"),                          # the issue's ring
    (lambda sbml: _dense(400), "direct"),                        # fan-out = M
], ids=["birth_death", "ring2000", "dense400"])
def test_auto_is_bit_identical_to_the_method_it_picks(birth_death_sbml, network, expected):
    network = network(birth_death_sbml)
    times = [0.0, 0.05, 0.1]
    auto = simulate_ssa(network, times, n_trajectories=3, seed=21)
    chosen = simulate_ssa(network, times, n_trajectories=3, seed=21, method=expected)
    assert auto.run_info["algorithm"] == expected
    assert auto.run_info["method_reason"].startswith("auto: ")
    assert chosen.run_info["method_reason"] == "requested"
    assert np.array_equal(auto.states, chosen.states)
    assert np.array_equal(auto.n_events, chosen.n_events) and auto.total_events > 0


def test_auto_rule_follows_the_cost_model():
    from sbml_cme.analyses.ssa import AUTO_TREE_FACTOR, choose_method
    from sbml_cme.kinetics import compile_network
    for n_channels in (10, 100, 300, 1000, 5000):
        method, reason = choose_method(compile_network(_ring(n_channels)))
        tree = 5 * np.log2(n_channels) < AUTO_TREE_FACTOR * n_channels
        assert method == ("tree" if tree else "direct"), reason
        assert f"{n_channels} channels, mean fan-out 4.0" in reason
    assert choose_method(compile_network(_ring(10)))[0] == "direct"
    assert choose_method(compile_network(_ring(1000)))[0] == "tree"


@pytest.mark.parametrize("method", ["direct", "hybrid"])
def test_interrupt_keeps_the_finished_trajectories(monkeypatch, method):
    """A Ctrl-C between blocks returns the blocks that finished, marked partial: the
    first trajectories of the full run, bit for bit."""
    import sbml_cme.analyses.ensemble as ensemble
    sbml = make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "g * X")],
                     parameters={"k": 10.0, "g": 1.0})
    network = sbml_cme.read_sbml_string(sbml)
    full = simulate_ssa(network, [0, 1, 2], n_trajectories=200, seed=4, method=method)
    original = ensemble.run_until_interrupted

    def interrupted(bounds, run, n):
        def run_then_stop(start, stop):
            if start >= 128:
                raise KeyboardInterrupt
            run(start, stop)
        return original(bounds, run_then_stop, n)

    monkeypatch.setattr(sys.modules[f"sbml_cme.analyses.{'ssa' if method == 'direct' else 'hybrid'}"],
                        "run_until_interrupted", interrupted)
    with pytest.warns(UserWarning, match="128 of 200 trajectories"):
        partial = simulate_ssa(network, [0, 1, 2], n_trajectories=200, seed=4, method=method)
    assert partial.run_info["partial"] and partial.n_trajectories == 128
    assert not full.run_info["partial"]
    np.testing.assert_array_equal(partial.states, full.states[:128])
