"""comp flattening, Level 3 packages, algebraic rules and stoichiometries fixed at import
(sbml_cme/io/document.py), checked against closed forms: a pure death X -> D with rate
k X has X(t) ~ Binomial(X0, exp(-k t)) exactly, and X0 exp(-k t) as its rate equation."""

from __future__ import annotations

import pathlib

import libsbml
import numpy as np
import pytest
from scipy import stats

import sbml_cme
from sbml_cme.analyses import simulate_deterministic, simulate_ssa, solve_cme
from conftest import make_sbml

K, X0 = 0.5, 40
TIMES = np.array([0.0, 0.5, 1.0, 2.0])
SURVIVAL = np.exp(-K * TIMES)


def death(**extra) -> libsbml.SBMLDocument:
    """X -> D at rate k*X (amounts in molecules), as a libsbml document to edit."""
    return libsbml.readSBMLFromString(make_sbml(
        {"X": X0, "D": 0}, [("death", {"X": 1}, {"D": 1}, "k * X")],
        parameters={"k": K}, **extra))


def text(document: libsbml.SBMLDocument) -> str:
    return libsbml.writeSBMLToString(document)


# -- comp ------------------------------------------------------------------------------------
COMP = "http://www.sbml.org/sbml/level3/version1/comp/version1"


def comp_files(directory: pathlib.Path) -> pathlib.Path:
    """outer.xml with two submodels of the death model, one from an external file
    (parts/death.xml) and one from a model definition inside the file."""
    (directory / "parts").mkdir()
    (directory / "parts" / "death.xml").write_text(text(death()))
    inner = death().getModel().toSBML()
    outer = f"""<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" xmlns:comp="{COMP}"
      level="3" version="1" comp:required="true">
  <model id="outer" substanceUnits="item" extentUnits="item" timeUnits="second">
    <comp:listOfSubmodels>
      <comp:submodel comp:id="A" comp:modelRef="external_death"/>
      <comp:submodel comp:id="B" comp:modelRef="test_model"/>
    </comp:listOfSubmodels>
  </model>
  <comp:listOfExternalModelDefinitions>
    <comp:externalModelDefinition comp:id="external_death" comp:source="parts/death.xml"
                                  comp:modelRef="test_model"/>
  </comp:listOfExternalModelDefinitions>
  <comp:listOfModelDefinitions>{inner.replace("<model ", "<comp:modelDefinition ").replace(
        "</model>", "</comp:modelDefinition>")}</comp:listOfModelDefinitions>
</sbml>"""
    path = directory / "outer.xml"
    path.write_text(outer)
    return path


def test_comp_model_is_flattened_with_external_definitions_beside_the_file(tmp_path):
    network = sbml_cme.read_sbml(comp_files(tmp_path))
    assert sorted(network.species_ids) == ["A__D", "A__X", "B__D", "B__X"]
    assert any("flattened" in note for note in network.notes)
    result = simulate_deterministic(network, TIMES).to_wide("amount")
    for submodel in "AB":
        assert result[f"{submodel}__X"].to_numpy() == pytest.approx(X0 * SURVIVAL, rel=1e-6)
    # The network keeps the flat document: it reads back alone, without the parts folder.
    assert "comp:" not in network.source_sbml
    assert sbml_cme.read_sbml_string(network.source_sbml) == network


def test_comp_string_resolves_external_definitions_in_base_dir(tmp_path, monkeypatch):
    path = comp_files(tmp_path)
    assert sbml_cme.read_sbml_string(path.read_text(), base_dir=tmp_path) == \
        sbml_cme.read_sbml(path)
    monkeypatch.chdir(tmp_path)  # the default base_dir is the current directory
    assert sbml_cme.read_sbml_string(path.read_text()) == sbml_cme.read_sbml(path)


def test_missing_external_model_definition_names_it_and_the_file(tmp_path):
    path = comp_files(tmp_path)
    (tmp_path / "parts" / "death.xml").unlink()
    with pytest.raises(sbml_cme.InvalidSBMLError) as info:
        sbml_cme.read_sbml(path)
    message = str(info.value)
    assert "external_death" in message and "parts/death.xml" in message
    assert str(tmp_path / "parts" / "death.xml") in message


# -- packages --------------------------------------------------------------------------------
def with_package(xml: str, package: str, version: int, required: bool, model: str = "") -> str:
    uri = f"http://www.sbml.org/sbml/level3/version1/{package}/version{version}"
    return xml.replace(
        'xmlns="http://www.sbml.org/sbml/level3/version1/core"',
        f'xmlns="http://www.sbml.org/sbml/level3/version1/core" xmlns:{package}="{uri}" '
        f'{package}:required="{str(required).lower()}"').replace("<model ", f"<model {model}")


@pytest.mark.parametrize("required", [False, True])
def test_fbc_is_ignored_with_a_warning(required):
    xml = with_package(text(death()), "fbc", 2, required, model='fbc:strict="true" ')
    with pytest.warns(UserWarning, match="'fbc' is ignored"):
        network = sbml_cme.read_sbml_string(xml)
    assert network == sbml_cme.read_sbml_string(text(death()))
    assert any("fbc" in note for note in network.notes)


def test_diagram_package_not_required_is_a_quiet_note(recwarn):
    network = sbml_cme.read_sbml_string(with_package(text(death()), "layout", 1, False))
    assert any("'layout' is ignored" in note for note in network.notes)
    assert not [w for w in recwarn if "layout" in str(w.message)]


# -- algebraic rules -------------------------------------------------------------------------
def with_algebraic_rules(document: libsbml.SBMLDocument, rules: dict,
                         free: tuple = ()) -> str:
    """Add algebraic rules (metaid -> formula) and non-constant parameters ``free``."""
    model = document.getModel()
    for pid in free:
        parameter = model.createParameter()
        parameter.setId(pid)
        parameter.setConstant(False)
    for metaid, formula in rules.items():
        rule = model.createAlgebraicRule()
        rule.setMetaId(metaid)
        rule.setMath(libsbml.parseL3Formula(formula))
    return text(document)


def test_algebraic_rules_become_assignment_rules_on_every_path():
    # total is conserved: X + D; level = ln(X + 1), the one real solution of the rule.
    network = sbml_cme.read_sbml_string(with_algebraic_rules(
        death(), {"conservation": "total - X - D", "logarithm": "exp(level) - X - 1"},
        free=("total", "level")))
    assert {o.id for o in network.outputs} == {"total", "level"}

    wide = simulate_deterministic(network, TIMES).to_wide("amount")
    assert wide["level"].to_numpy() == pytest.approx(np.log(X0 * SURVIVAL + 1), rel=1e-6)

    ensemble = simulate_ssa(network, TIMES, n_trajectories=50, seed=11)
    columns = list(network.species_ids) + [o.id for o in network.outputs]
    states = {name: ensemble.states[:, :, k] for k, name in enumerate(columns)}
    assert np.all(states["total"] == X0)
    assert np.allclose(states["level"], np.log(states["X"] + 1), rtol=1e-12)

    moments = solve_cme(network, TIMES, tol=1e-9).moments
    level = moments[moments.species == "level"].set_index("time")["mean"]
    counts = np.arange(X0 + 1)
    for t, p in zip(TIMES, SURVIVAL):
        exact = stats.binom.pmf(counts, X0, p) @ np.log(counts + 1)
        assert level[t] == pytest.approx(exact, abs=1e-7)


@pytest.mark.parametrize("rules, free, feature", [
    ({"square": "level^2 - X"}, ("level",), "determines no variable"),
    ({"reactions": "X - 2 * D"}, (), "determines no variable"),
    ({"sum": "a + b - 10"}, ("a", "b"), "either 'a' or 'b'"),
    ({"first": "a - 1", "second": "a - 2"}, ("a",), "other rules already determine"),
])
def test_algebraic_rule_without_one_solution_is_refused_by_name(rules, free, feature):
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match=feature) as info:
        sbml_cme.read_sbml_string(with_algebraic_rules(death(), rules, free))
    assert info.value.element_id in rules


def test_algebraic_rule_on_a_compartment_that_changes_in_time_is_a_variable_volume():
    document = death()
    document.getModel().getCompartment("cell").setConstant(False)
    network = sbml_cme.read_sbml_string(with_algebraic_rules(document,
                                                             {"growth": "cell - 1 - time"}))
    assert network.variable_compartments == ("cell",)
    frame = simulate_deterministic(network, TIMES).to_wide("model")
    np.testing.assert_allclose(frame["cell"], 1 + TIMES, rtol=1e-12)
    document.getModel().getRule(0).setMath(libsbml.parseL3Formula("cell - 3 * k"))
    assert sbml_cme.read_sbml_string(text(document)).compartment_map["cell"].size == 3 * K


# -- stoichiometry fixed at import -------------------------------------------------------------
def stoichiometry_of_d(network) -> int:
    (reaction,) = network.reactions
    return dict(reaction.products)["D"]


def test_constant_stoichiometry_math_is_evaluated_once():
    document = death(level=2, version=4)
    model = document.getModel()
    model.getParameter("k").setValue(K)
    extra = model.createParameter()
    extra.setId("n")
    extra.setValue(1.5)
    product = model.getReaction("death").getProduct(0)
    product.createStoichiometryMath().setMath(libsbml.parseL3Formula("2 * n"))
    network = sbml_cme.read_sbml_string(text(document))
    assert stoichiometry_of_d(network) == 3
    wide = simulate_deterministic(network, TIMES).to_wide("amount")
    assert wide["D"].to_numpy() == pytest.approx(3 * X0 * (1 - SURVIVAL), rel=1e-6, abs=1e-9)

    product.getStoichiometryMath().setMath(libsbml.parseL3Formula("1 + X"))
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="stoichiometryMath") as info:
        sbml_cme.read_sbml_string(text(document))
    assert "'X'" in str(info.value)


def reference_document(stoichiometry: str, **extra_elements) -> libsbml.SBMLDocument:
    """The death model whose product reference 'd_ref' (constant=false) gets its
    stoichiometry from an initial assignment."""
    document = death()
    model = document.getModel()
    product = model.getReaction("death").getProduct(0)
    product.setId("d_ref")
    product.setConstant(False)
    product.unsetStoichiometry()
    assignment = model.createInitialAssignment()
    assignment.setSymbol("d_ref")
    assignment.setMath(libsbml.parseL3Formula(stoichiometry))
    return document


def test_stoichiometry_from_an_initial_assignment_is_evaluated_once():
    network = sbml_cme.read_sbml_string(text(reference_document("k * 6")))
    assert stoichiometry_of_d(network) == 3
    ensemble = simulate_ssa(network, TIMES, n_trajectories=20, seed=3)
    x, d = (ensemble.states[:, :, network.species_index[s]] for s in ("X", "D"))
    assert np.all(d == 3 * (X0 - x))


def test_stoichiometry_that_changes_in_time_is_refused():
    document = reference_document("2")
    rule = document.getModel().createAssignmentRule()
    rule.setVariable("d_ref")
    rule.setMath(libsbml.parseL3Formula("1 + floor(time)"))
    document.getModel().removeInitialAssignment("d_ref")
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="a rule on a species ref"):
        sbml_cme.read_sbml_string(text(document))

    document = reference_document("2")
    event = document.getModel().createEvent()
    event.setId("bump")
    event.setUseValuesFromTriggerTime(True)
    trigger = event.createTrigger()
    trigger.setMath(libsbml.parseL3Formula("time > 1"))
    trigger.setPersistent(True)
    trigger.setInitialValue(False)
    assignment = event.createEventAssignment()
    assignment.setVariable("d_ref")
    assignment.setMath(libsbml.parseL3Formula("4"))
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="event assignment") as info:
        sbml_cme.read_sbml_string(text(document))
    assert info.value.element_id == "d_ref"


def test_non_integer_assigned_stoichiometry_makes_a_continuous_species():
    network = sbml_cme.read_sbml_string(text(reference_document("1.5")))
    assert network.continuous_species == ("D",)
    assert stoichiometry_of_d(network) == 1.5
