"""The chemical Langevin equation against the LNA (high copy numbers, where the CLE is
Gaussian with the LNA's moments) and against the SSA, by the SBML test suite's Z and Y
statistics with fixed seeds; reproducibility; negative states; refusals."""

from __future__ import annotations

import numpy as np
import pytest

import sbml_cme
from sbml_cme import UnsupportedFeatureError
from sbml_cme.analyses import simulate_cle, simulate_ssa, solve_lna
from sbml_cme.analyses.cle import METHODS
from conftest import make_sbml, standardized_mean, standardized_variance


def birth_death(mean: float, start: float):
    return sbml_cme.read_sbml_string(make_sbml(
        {"X": start}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
        parameters={"k": mean, "d": 1.0}))


def _z_y(result, times_index, mu, sigma):
    n = result.n_trajectories
    stats = result.stats().iloc[times_index]
    return (standardized_mean(stats["X-mean"], n, mu, sigma),
            standardized_variance(stats["X-sd"], n, sigma))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_high_copy_birth_death_matches_lna(method):
    network = birth_death(1e4, 1e4)
    times = np.array([0.0, 2.0, 4.0, 6.0])
    lna = solve_lna(network, times)
    n = 2000
    result = simulate_cle(network, times, n_trajectories=n, seed=7, method=method)
    z, y = _z_y(result, slice(1, None), lna.means[1:, 0], np.sqrt(lna.variances[1:, 0]))
    assert np.all(np.abs(z) < 3) and np.all(np.abs(y) < 5), (z, y)
    assert result.method == "cle" and result.run_info["clipped_steps"] == 0


def test_moderate_birth_death_matches_ssa():
    network = birth_death(50.0, 50.0)
    times = np.array([0.0, 3.0, 6.0])
    n = 2000
    ssa = simulate_ssa(network, times, n_trajectories=n, seed=3)
    cle = simulate_cle(network, times, n_trajectories=n, seed=3, method="weak2")
    # Two independent samples of the same law: Z on the difference of means; the SSA's
    # stationary law is Poisson(50), so sigma^2 = 50.
    ssa_stats, cle_stats = ssa.stats().iloc[1:], cle.stats().iloc[1:]
    z = (cle_stats["X-mean"] - ssa_stats["X-mean"]) / np.sqrt(2 * 50.0 / n)
    y = standardized_variance(cle_stats["X-sd"], n, np.sqrt(50.0))
    assert np.all(np.abs(z) < 3) and np.all(np.abs(y) < 5), (z, y)


def test_same_seed_same_ensemble_whatever_threads():
    network = birth_death(100.0, 100.0)
    times = np.linspace(0, 2, 5)
    one = simulate_cle(network, times, n_trajectories=40, seed=5, n_jobs=1, method="weak2")
    two = simulate_cle(network, times, n_trajectories=40, seed=5, n_jobs=2, method="weak2")
    assert np.array_equal(one.states, two.states)
    other = simulate_cle(network, times, n_trajectories=40, seed=6, method="weak2")
    assert not np.array_equal(one.states, other.states)


def test_negative_states_are_clipped_and_counted():
    # Mean 0.5 molecules: Gaussian steps often cross zero.
    network = birth_death(0.5, 0.0)
    result = simulate_cle(network, np.linspace(0, 5, 6), n_trajectories=200, seed=1,
                          dt=0.01)
    assert result.states.min() >= 0.0
    assert result.run_info["clipped_steps"] > 0
    assert 0 < result.run_info["clipped_fraction"] <= 1


def test_default_step_follows_the_fastest_rate():
    result = simulate_cle(birth_death(1e4, 1e4), [0.0, 1.0], n_trajectories=2, seed=1)
    assert result.run_info["dt"] == pytest.approx(0.01 / 1.0)  # |J| = d = 1
    assert result.n_events.tolist() == [100, 100]


def test_events_refused():
    sbml = make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "X")],
                     parameters={"k": 10.0}, events=[("reset", "time > 5", {"X": "0"})])
    with pytest.raises(UnsupportedFeatureError, match="reset"):
        simulate_cle(sbml_cme.read_sbml_string(sbml), [0, 1], n_trajectories=2, seed=1)
