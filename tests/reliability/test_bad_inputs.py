"""Issue 13: every bad input ends in one clear SbmlCmeError (or exit code), never a hang,
a traceback or a silent wrong number."""

import math
import time

import numpy as np
import pytest

import sbml_cme
from sbml_cme.analyses import (simulate_cle, simulate_deterministic, simulate_ssa, solve_cme,
                               solve_lna, stationary_cme)
from conftest import make_sbml

MATHML = 'xmlns="http://www.w3.org/1998/Math/MathML"'


def birth_death(**parameters):
    values = {"k": 10.0, "d": 1.0, **parameters}
    return make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
                     parameters=values)


def replace_law(xml: str, reaction: str, math: str) -> str:
    start = xml.index("<math", xml.index(f'<reaction id="{reaction}"'))
    end = xml.index("</math>", start) + len("</math>")
    return xml[:start] + f"<math {MATHML}>{math}</math>" + xml[end:]


# -- validation at the edge ---------------------------------------------------------------
@pytest.mark.parametrize("xml, element", [
    (birth_death().replace('value="10"', 'value="INF"'), "parameter 'k'"),
    (birth_death().replace('value="10"', 'value="NaN"'), "parameter 'k'"),
    (birth_death().replace('initialAmount="0"', 'initialAmount="INF"'), "species 'X'"),
    (birth_death().replace('size="1"', 'size="NaN"'), "compartment 'cell'"),
    (birth_death().replace('size="1"', 'size="-2"'), "compartment 'cell'"),
    (birth_death().replace('stoichiometry="1"', 'stoichiometry="-INF"', 1), "species 'X'"),
    (replace_law(birth_death(), "birth", "<apply><times/><ci>k</ci><notanumber/></apply>"),
     "'birth'"),
])
def test_non_finite_and_negative_values_are_refused_naming_the_element(xml, element):
    with pytest.raises((sbml_cme.InvalidSBMLError, sbml_cme.InvalidNetworkError)) as info:
        sbml_cme.read_sbml_string(xml)
    assert element in str(info.value)


def test_unused_non_finite_parameter_is_accepted():
    """An INF that no math reads (an FBC flux bound, say) changes no analysis."""
    xml = make_sbml({"X": 1}, [("death", {"X": 1}, {}, "d * X")],
                    parameters={"d": 1.0, "bound": 1.0})
    xml = xml.replace('id="bound" value="1"', 'id="bound" value="INF"')
    assert "bound" in sbml_cme.read_sbml_string(xml).parameter_ids


@pytest.mark.parametrize("xml, text", [
    (birth_death().replace('compartment="cell"', 'compartment="nowhere"'), "nowhere"),
    (birth_death().replace('reaction id="birth"', 'reaction id="X"'), "'X'"),
    (make_sbml({"X": 5}, [("death", {"X": 1}, {}, "q * X")]), "'q'"),
])
def test_libsbml_consistency_errors_carry_line_numbers(xml, text):
    with pytest.raises(sbml_cme.InvalidSBMLError) as info:
        sbml_cme.read_sbml_string(xml)
    assert info.value.errors and info.value.errors[0].startswith("line ")
    assert text in str(info.value)


@pytest.mark.parametrize("math", ["<apply><divide/><ci>k</ci></apply>",
                                  "<apply><power/><ci>k</ci></apply>"])
def test_operator_with_missing_argument_is_invalid_sbml(math):
    with pytest.raises(sbml_cme.InvalidSBMLError):
        sbml_cme.read_sbml_string(replace_law(birth_death(), "birth", math))


def test_mathml_arity_check_names_the_element():
    """Below libsbml's checks (the converter is also used on unchecked documents)."""
    import libsbml
    from sbml_cme.io.mathml import FunctionDefinitions, to_sympy

    document = libsbml.readSBMLFromString(birth_death())
    ast = libsbml.parseL3Formula("k / 2")
    ast.removeChild(1)
    with pytest.raises(sbml_cme.InvalidSBMLError, match="'birth'.*1 argument"):
        to_sympy(ast, "birth", FunctionDefinitions(document.getModel()))


def test_directory_missing_and_undecodable_files(tmp_path):
    with pytest.raises(sbml_cme.InvalidSBMLError, match="directory"):
        sbml_cme.read_sbml(tmp_path)
    with pytest.raises(sbml_cme.InvalidSBMLError, match="does not exist"):
        sbml_cme.read_sbml(tmp_path / "missing.xml")
    latin = tmp_path / "latin.xml"
    latin.write_bytes(birth_death().replace('id="test_model"', 'id="test_model" name="\xe9"')
                      .encode("latin-1"))
    with pytest.raises(sbml_cme.InvalidSBMLError, match="UTF-8"):
        sbml_cme.read_sbml(latin)


# -- degenerate models through every analysis --------------------------------------------
DEGENERATE = {
    "no reactions": make_sbml({"X": 5}, []),
    "no species": make_sbml({}, []),
    "only boundary species": make_sbml({"X": 5}, [("b", {}, {"X": 1}, "k")],
                                       parameters={"k": 1.0}).replace(
        'boundaryCondition="false"', 'boundaryCondition="true"'),
    "all rates zero": make_sbml({"X": 5}, [("death", {"X": 1}, {}, "d * X")],
                                parameters={"d": 0.0}),
}


@pytest.mark.parametrize("times", [np.linspace(0, 2, 5), np.zeros(1)], ids=["span", "t0"])
@pytest.mark.parametrize("name", list(DEGENERATE))
def test_degenerate_models_keep_their_initial_state(name, times):
    network = sbml_cme.read_sbml_string(DEGENERATE[name])
    x0 = network.initial_counts
    results = [simulate_deterministic(network, times),
               simulate_ssa(network, times, n_trajectories=8, seed=1),
               solve_cme(network, times), solve_lna(network, times),
               simulate_cle(network, times, n_trajectories=8, seed=1, dt=0.5)]
    for result in results:
        moments = result.moments if hasattr(result, "moments") else None
        if moments is not None and len(x0):
            assert np.allclose(moments["mean"], np.tile(x0, len(times)))
            assert np.allclose(moments["variance"], 0.0)
    assert np.allclose(results[0].counts[:, :len(x0)], x0)
    assert stationary_cme(network).error_bound == 0 if name == "no reactions" else True
    sbml_cme.noise_summary(results[1])
    sbml_cme.analyze_structure(network)


def test_analyze_on_a_model_without_reactions_and_at_t_end_zero(tmp_path):
    from sbml_cme.cli import main

    path = tmp_path / "empty.xml"
    path.write_text(DEGENERATE["no reactions"])
    for t_end in ("2", "0"):
        out = tmp_path / f"report{t_end}"
        assert main(["analyze", str(path), "--t-end", t_end, "--points", "3",
                     "--trajectories", "20", "--seed", "1", "--out", str(out),
                     "--no-progress"]) == 0
        assert (out / "report.html").exists()


# -- work guards ---------------------------------------------------------------------------
def test_ssa_refuses_a_horizon_of_1e12_quickly_with_the_estimate():
    network = sbml_cme.read_sbml_string(birth_death())
    simulate_ssa(network, [0.0, 1.0], n_trajectories=2, seed=1)  # compile first
    started = time.perf_counter()
    with pytest.raises(sbml_cme.WorkLimitError, match="max_events") as info:
        simulate_ssa(network, np.linspace(0, 1e12, 51), n_trajectories=1000, seed=1)
    assert time.perf_counter() - started < 2.0
    # 10 births per unit time plus as many deaths at steady state: 2e13 per trajectory.
    assert "2e+16" in str(info.value) or "1.99e+16" in str(info.value)


def test_max_events_is_the_users_choice():
    network = sbml_cme.read_sbml_string(birth_death())
    times = np.linspace(0, 50, 11)  # about 20 * 50 = 1000 events per trajectory
    with pytest.raises(sbml_cme.WorkLimitError):
        simulate_ssa(network, times, n_trajectories=10, seed=1, max_events=5000)
    result = simulate_ssa(network, times, n_trajectories=10, seed=1, max_events=20000)
    assert 5000 < result.total_events < 20000


def test_ssa_refuses_a_species_with_1e12_molecules():
    network = sbml_cme.read_sbml_string(make_sbml(
        {"X": 1e12}, [("death", {"X": 1}, {}, "d * X")], parameters={"d": 1.0}))
    with pytest.raises(sbml_cme.WorkLimitError, match="1e\\+1[25]"):
        simulate_ssa(network, np.linspace(0, 1, 11), n_trajectories=10, seed=1)


def test_ssa_refuses_an_output_that_does_not_fit_in_memory(monkeypatch):
    from sbml_cme.analyses import ssa

    monkeypatch.setattr(ssa, "memory_limit", lambda: 1000.0)
    network = sbml_cme.read_sbml_string(birth_death())
    with pytest.raises(sbml_cme.WorkLimitError, match="GiB"):
        simulate_ssa(network, np.linspace(0, 1, 11), n_trajectories=100, seed=1)


def test_ode_refuses_an_overflowing_rate_and_a_spent_budget():
    xml = make_sbml({"X": 5}, [("death", {"X": 1}, {}, "kl * X")]).replace(
        "</kineticLaw>", '<listOfLocalParameters><localParameter id="kl" value="1e308"/>'
        "</listOfLocalParameters></kineticLaw>")
    with pytest.raises(sbml_cme.ConvergenceError, match="not finite.*death"):
        simulate_deterministic(sbml_cme.read_sbml_string(xml), np.linspace(0, 1, 3))
    network = sbml_cme.read_sbml_string(birth_death())
    with pytest.raises(sbml_cme.ConvergenceError, match="max_evaluations"):
        simulate_deterministic(network, np.linspace(0, 10, 3), max_evaluations=5)


# -- result schemas ----------------------------------------------------------------------
def test_a_species_called_time_keeps_its_column_in_to_wide():
    network = sbml_cme.read_sbml_string(make_sbml(
        {"time": 3}, [("death", {"time": 1}, {}, "d")], parameters={"d": 1.0}))
    frame = simulate_deterministic(network, np.linspace(0, 1, 3)).to_wide()
    assert list(frame.columns) == ["time", "time"]
    assert frame.iloc[:, 0].tolist() == [0.0, 0.5, 1.0]
    assert frame.iloc[:, 1].to_numpy() == pytest.approx([3.0, 2.5, 2.0], rel=1e-6)


def test_parameter_outputs_that_are_not_random_are_not_listed_as_species():
    """q = k d / 3 is a constant: not a random variable in moments or noise_summary (its
    variance is exactly 0), but still a column of the test-suite layout stats()."""
    xml = make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
                    parameters={"k": 10.0, "d": 1.0}, rules={"q": "k * d / 3", "twice": "2 * X"})
    network = sbml_cme.read_sbml_string(xml)
    times = np.linspace(0, 2, 3)
    for result in (simulate_ssa(network, times, n_trajectories=50, seed=2),
                   solve_cme(network, times), solve_lna(network, times)):
        assert set(result.moments.species) == {"X", "twice"}
        assert set(sbml_cme.noise_summary(result).species.species) == {"X", "twice"}
        assert result.stats()["q-mean"].to_numpy() == pytest.approx(10 / 3)


def test_no_reactions_cme_is_the_point_mass():
    network = sbml_cme.read_sbml_string(DEGENERATE["no reactions"])
    result = solve_cme(network, np.linspace(0, 1, 3))
    assert result.n_states == 1 and result.error_bound == 0
    assert math.isclose(result.stats()["X-mean"].iloc[-1], 5.0)
