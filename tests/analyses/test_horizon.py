"""choose_horizon: the default t_end of analyze from the model's own time scales."""

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import find_peaks

import sbml_cme
from sbml_cme.analyses.horizon import (DEFAULT_T_END, N_PERIODS, choose_horizon,
                                       nice_ceiling)
from conftest import make_sbml

REPRESSILATOR = Path(__file__).resolve().parents[2] / "models" / "biomodels" / \
    "BIOMD0000000012.xml"


def _birth_death(death_rate: float):
    return sbml_cme.read_sbml_string(make_sbml(
        {"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
        parameters={"k": 10.0, "d": death_rate}))


def _peaks(network, t_end: float, species: str) -> int:
    """Peaks of 5 % of the range of ``species`` on a fine deterministic run to t_end."""
    result = sbml_cme.simulate_deterministic(network, np.linspace(0, t_end, 2001))
    column = result.counts[:, network.species_index[species]]
    return len(find_peaks(column, prominence=0.05 * np.ptp(column))[0])


def test_repressilator_shows_several_periods_where_the_old_default_showed_none():
    network = sbml_cme.read_sbml(REPRESSILATOR)
    horizon = choose_horizon(network)
    assert horizon.kind == "oscillation" and "period" in horizon.reason
    # The probe's period against an independent fine run: peak spacing of PX late on.
    fine = sbml_cme.simulate_deterministic(network, np.linspace(0, 2000, 20001))
    column = fine.counts[:, network.species_index["PX"]]
    peaks = fine.times[find_peaks(column, prominence=0.05 * np.ptp(column))[0]]
    assert horizon.time_scale == pytest.approx(np.median(np.diff(peaks[-5:])), rel=0.02)
    assert horizon.t_end >= N_PERIODS * horizon.time_scale
    assert _peaks(network, horizon.t_end, "PX") >= N_PERIODS
    assert _peaks(network, DEFAULT_T_END, "PX") == 0  # the old default: before the first
    assert horizon.evaluations < 20_000  # a cheap probe


@pytest.mark.parametrize("death_rate", [1.0, 1e-3, 1e3])
def test_birth_death_horizon_is_a_few_relaxation_times(death_rate):
    horizon = choose_horizon(_birth_death(death_rate))
    relaxation_time = 1 / death_rate  # the Jacobian's only eigenvalue is -d
    assert horizon.kind == "relaxation"
    assert 5 <= horizon.t_end / relaxation_time <= 10
    # settling to 1 %: 10 (1 - exp(-t d)) within 0.1 of 10, t = ln(100) / d (grid: 1 %)
    assert horizon.time_scale * death_rate == pytest.approx(np.log(100), rel=0.02)
    assert horizon.evaluations < 2_000


def test_a_scheduled_event_is_inside_the_horizon():
    network = sbml_cme.read_sbml_string(make_sbml(
        {"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
        parameters={"k": 10.0, "d": 1.0}, events=[("pulse", "time >= 50", {"k": "20"})]))
    horizon = choose_horizon(network)
    # settled at 4.6 before the pulse; after it X goes 10 -> 20, within 1 % by 50 + ln(100)
    assert horizon.kind == "relaxation" and "last scheduled event at t=50" in horizon.reason
    assert horizon.time_scale == pytest.approx(50 + np.log(100), rel=0.02)
    assert horizon.t_end == nice_ceiling(1.5 * horizon.time_scale) == 100


def test_models_without_a_time_scale_fall_back_to_the_default_and_say_why():
    growth = sbml_cme.read_sbml_string(make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k")],
                                                 parameters={"k": 10.0}))
    horizon = choose_horizon(growth)
    assert (horizon.t_end, horizon.kind) == (DEFAULT_T_END, "default")
    assert "neither a steady state nor an oscillation" in horizon.reason
    still = sbml_cme.read_sbml_string(make_sbml({"X": 5}, [], parameters={}))
    assert "does not change" in choose_horizon(still).reason
    starved = choose_horizon(sbml_cme.read_sbml(REPRESSILATOR), max_evaluations=20)
    assert starved.t_end == DEFAULT_T_END and "failed" in starved.reason
    assert "the default" in starved.reason


def test_nice_ceiling():
    values = [4.62 * 1.5, 652.0, 0.00712, 1.0, 10.0, 1.01, 8.5, 123456.0]
    assert [nice_ceiling(v) for v in values] == [7.0, 700.0, 0.008, 1.0, 10.0, 1.2, 10.0,
                                                 150000.0]
