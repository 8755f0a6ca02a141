"""``outputs=[...]``: parameters and compartments reported by every analysis.

Reference: SBML Test Suite case 00944 (tests/data/semantic, LGPL 2.1): 0 -> S1 at rate
k1*C/S1, and an event ``S1 > 2.1`` that sets the parameter k1 from 1 to 10. Its expected
results list k1 over time.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from sbml_cme import (OptionsError, read_sbml, read_sbml_string, simulate_cle,
                      simulate_deterministic, simulate_ssa, solve_cme, solve_lna,
                      stationary_cme)
from conftest import make_sbml

CASE = pathlib.Path(__file__).resolve().parents[1] / "data" / "semantic" / "00944"
SETTINGS = dict(line.split(":", 1) for line in (CASE / "00944-settings.txt").read_text()
                .splitlines() if ":" in line)


def test_deterministic_reports_the_event_assigned_parameter_as_the_suite_expects():
    expected = pd.read_csv(CASE / "00944-results.csv")
    network = read_sbml(CASE / "00944-sbml-l3v2.xml")
    result = simulate_deterministic(network, expected.time.to_numpy(), outputs=["k1", "C"])
    wide = result.to_wide("amount")
    absolute, relative = float(SETTINGS["absolute"]), float(SETTINGS["relative"])
    for column in ("S1", "k1"):
        error = np.abs(wide[column] - expected[column]) / (absolute + relative *
                                                           np.abs(expected[column]))
        assert error.max() <= 1.0, column
    assert set(expected.k1) == {1.0, 10.0}  # the parameter does change in the reference
    assert (wide.C == 1.0).all()


def test_ssa_reports_the_event_assigned_parameter_along_each_trajectory():
    """In counts (item units) S1 only grows, so the event has fired by time t exactly
    when S1(t) >= 3: k1 must read 10 there and 1 before, trajectory by trajectory."""
    network = read_sbml(CASE / "00944-sbml-l3v2.xml", substance_unit="item",
                        outputs=["k1"])
    times = np.linspace(0.0, 3.0, 31)
    result = simulate_ssa(network, times, n_trajectories=200, seed=11)
    s1 = result.states[:, :, network.species_ids.index("S1")]
    k1 = result.states[:, :, len(network.species)]
    assert np.array_equal(k1, np.where(s1 >= 3, 10.0, 1.0))
    assert 0 < (k1[:, -1] == 10.0).sum() < len(k1)  # it changes, at random times
    assert "k1" in set(result.moments.species)


def _pure_birth_with_flag():
    """0 -> X at rate k; an event X >= 5 sets the parameter flag to 1 and k to 2*k."""
    text = make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k")],
                     parameters={"k": 1.0, "flag": 0.0},
                     events=[("reach5", "X >= 5", {"flag": "1", "k": "2 * k"})])
    return read_sbml_string(text)


def test_ssa_parameter_output_has_the_exact_first_passage_law():
    """flag(t) = 1{X reached 5 by t}; with rate 1 before the event that is
    P(Poisson(t) >= 5). A Z score on the ensemble mean at t = 4."""
    network = _pure_birth_with_flag()
    times = np.array([0.0, 2.0, 4.0])
    n = 4000
    result = simulate_ssa(network, times, n_trajectories=n, seed=5, outputs=["flag", "k"])
    flag = result.states[:, :, len(network.species)]
    k = result.states[:, :, len(network.species) + 1]
    assert np.array_equal(k, 1.0 + flag)
    p = scipy.stats.poisson.sf(4, times[2])
    z = (flag[:, 2].mean() - p) / np.sqrt(p * (1 - p) / n)
    assert abs(z) < 4.0, z


@pytest.mark.parametrize("method", ["direct", "tree"])
def test_both_ssa_methods_report_event_assigned_parameters(method):
    network = _pure_birth_with_flag()
    times = np.array([0.0, 3.0])
    ssa = simulate_ssa(network, times, n_trajectories=50, seed=2, method=method,
                       outputs="flag")
    x = ssa.states[:, -1, 0]
    assert np.array_equal(ssa.states[:, -1, 1], (x >= 5).astype(float))


def test_cme_reports_a_parameter_set_by_a_timed_event():
    """0 -> X at k = 1, then k = 3 from t = 1: k reads 1, 1, 3 and X(2) ~ Poisson(4)."""
    text = make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k")], parameters={"k": 1.0},
                     events=[("speed_up", "time >= 1", {"k": "3"})])
    result = solve_cme(read_sbml_string(text), [0.0, 0.5, 2.0], outputs=["k"])
    moments = result.moments.set_index(["species", "time"])
    assert list(moments.loc["k", "mean"]) == pytest.approx([1.0, 1.0, 3.0])
    assert list(moments.loc["k", "variance"]) == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert moments.loc[("X", 2.0), "mean"] == pytest.approx(4.0, abs=1e-4)


def test_every_analysis_accepts_outputs_and_refuses_unknown_ids():
    text = make_sbml({"X": 10}, [("birth", {}, {"X": 1}, "k"),
                                 ("death", {"X": 1}, {}, "d * X")],
                     parameters={"k": 10.0, "d": 1.0})
    network = read_sbml_string(text)
    times = np.linspace(0.0, 1.0, 3)
    results = {
        "ssa": simulate_ssa(network, times, n_trajectories=10, seed=1, outputs=["k"]),
        "ode": simulate_deterministic(network, times, outputs=["k"]),
        "cme": solve_cme(network, times, outputs=["k"]),
        "stationary": stationary_cme(network, outputs=["k"]),
        "lna": solve_lna(network, times, outputs=["k"]),
        "cle": simulate_cle(network, times, n_trajectories=10, seed=1, outputs=["k"]),
    }
    for name, result in results.items():
        assert [o.id for o in result.network.outputs] == ["k"], name
    for name in ("ssa", "cme", "stationary", "lna", "cle"):
        row = results[name].moments.query("species == 'k'")
        assert np.allclose(row["mean"], 10.0) and np.allclose(row["variance"], 0.0), name
    assert (results["ode"].to_wide("model").k == 10.0).all()
    for run in (lambda: simulate_ssa(network, times, outputs=["kk"]),
                lambda: simulate_deterministic(network, times, outputs=["kk"]),
                lambda: solve_cme(network, times, outputs=["kk"]),
                lambda: solve_lna(network, times, outputs=["kk"]),
                lambda: simulate_cle(network, times, outputs=["kk"])):
        with pytest.raises(OptionsError, match="unknown output.*known"):
            run()
