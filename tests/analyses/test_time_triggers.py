"""Event triggers on functions of time (issue 13, item 4) in the SSA, the hybrid
simulation and the CME, against exact answers.

- Semantic case 00936: ``S1 < 0`` with S1 = piecewise(sin(10 t), t < 2, 1), delay 2.
  Its expected results (tests/data/semantic/00936) are the SBML Test Suite's.
- A birth-death process (0 -> X at k = 10, X -> 0 at g X, g = 1) whose count is reset
  to 0 whenever ``sin(pi t / 2) < 0`` becomes true (t = 2, 6, 10, ...). Started from 0,
  X is Poisson with mean k/g (1 - exp(-g s)), s the time since the last reset
  (THEORY.md section 2, the birth-death transient).
"""

from __future__ import annotations

import dataclasses
import glob
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import sympy

import sbml_cme
from sbml_cme.kinetics import trigger_crossings
from sbml_cme.network import TIME
from conftest import make_sbml, pooled_chi_square, standardized_mean

CASE = Path(__file__).resolve().parents[1] / "data" / "semantic" / "00936"
K, G = 10.0, 1.0


def case_00936() -> tuple[sbml_cme.Network, pd.DataFrame]:
    network = sbml_cme.read_sbml(glob.glob(str(CASE / "*-sbml-l3v1.xml"))[0],
                                 substance_unit="item")
    return network, pd.read_csv(CASE / "00936-results.csv")


def test_crossings_of_a_sine_are_its_roots():
    network, _ = case_00936()
    crossings = trigger_crossings(network, 0.0, 10.0)
    # sin(10 t) < 0 turns true at pi/10, 3pi/10, 5pi/10 and false at 2pi/10, ...
    # before the piecewise switches to 1 at t = 2 (a polynomial threshold, not listed).
    roots = np.arange(1, 7) * np.pi / 10
    assert crossings == pytest.approx(roots, rel=1e-12, abs=1e-12)
    assert np.all(crossings >= roots)  # each is where the comparison already changed
    assert np.all(np.sin(10 * crossings[::2]) < 0)


@pytest.mark.parametrize("method", ["direct", "tree", "hybrid"])
def test_semantic_00936_in_the_ssa(method):
    network, expected = case_00936()
    times = expected["time"].to_numpy()
    result = sbml_cme.simulate_ssa(network, times, n_trajectories=3, seed=1, method=method)
    s2 = result.states[:, :, network.species_index["S2"]]
    assert np.array_equal(s2, np.broadcast_to(expected["S2"].to_numpy(), s2.shape))


def test_semantic_00936_in_the_cme():
    network, expected = case_00936()
    times = expected["time"].to_numpy()
    stats = sbml_cme.solve_cme(network, times).stats()
    assert np.array_equal(stats["S2-mean"].to_numpy(), expected["S2"].to_numpy())


def test_cme_refuses_an_event_count_beyond_exact_integers():
    network = sbml_cme.read_sbml(glob.glob(str(CASE / "*-sbml-l3v1.xml"))[0])  # moles
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="count of 6.02e"):
        sbml_cme.solve_cme(network, [0.0, 5.0])


def reset_model() -> sbml_cme.Network:
    sbml = make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "g * X")],
                     parameters={"k": K, "g": G},
                     events=[("reset", "sin(pi * time / 2) < 0", {"X": "0"})])
    return sbml_cme.read_sbml_string(sbml)


TIMES = np.array([0.0, 1.9, 3.0, 6.5, 9.0])
SINCE_RESET = np.array([1.9, 1.0, 0.5, 3.0])


@pytest.mark.parametrize("method", ["direct", "hybrid"])
def test_reset_on_a_sine_gives_the_poisson_law_since_the_reset(method):
    n = 4000
    result = sbml_cme.simulate_ssa(reset_model(), TIMES, n_trajectories=n, seed=7,
                                   method=method)
    for column, since in enumerate(SINCE_RESET, start=1):
        mean = K / G * (1 - np.exp(-G * since))
        samples = result.states[:, column, 0]
        assert abs(standardized_mean(samples.mean(), n, mean, np.sqrt(mean))) < 4
        support = np.arange(0, 40)
        _, _, p_value = pooled_chi_square(samples, support,
                                          scipy.stats.poisson.pmf(support, mean))
        assert p_value > 1e-3, (TIMES[column], p_value)


def test_reset_on_a_sine_in_the_cme():
    result = sbml_cme.solve_cme(reset_model(), TIMES, tol=1e-8)
    for column, since in enumerate(SINCE_RESET, start=1):
        states, probabilities = result.distributions[column]
        exact = scipy.stats.poisson.pmf(states[:, 0], K / G * (1 - np.exp(-G * since)))
        assert np.abs(probabilities - exact).sum() + (1 - exact.sum()) <= 1e-6


def test_a_comparison_of_time_with_the_state_is_still_refused():
    sbml = make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k")], parameters={"k": K},
                     events=[("late", "X < sin(time)", {"X": "0"})])
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="both time and the state"):
        sbml_cme.simulate_ssa(sbml_cme.read_sbml_string(sbml), [0.0, 1.0], n_trajectories=2,
                              seed=1, method="direct")


def test_a_trigger_too_fast_to_resolve_is_refused():
    network = reset_model()
    fast = dataclasses.replace(network.events[0], trigger=sympy.sin(1e7 * TIME) < 0)
    network = dataclasses.replace(network, events=(fast,))
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="changes more often"):
        trigger_crossings(network, 0.0, 10.0)
