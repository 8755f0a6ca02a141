"""Continuous parts at import: rate rules, variable compartments, conversion factors,
non-integer stoichiometry, reaction ids as values and rateOf (docs/design.md,
"Continuous parts"). References: libroadrunner on the same SBML, and exact solutions."""

from __future__ import annotations

import libsbml
import numpy as np
import pytest

import sbml_cme
from sbml_cme.analyses import simulate_deterministic, simulate_ssa, solve_cme, solve_lna

roadrunner = pytest.importorskip("roadrunner")

TIMES = np.linspace(0.0, 5.0, 26)


def _model(level: int = 3, version: int = 2):
    document = libsbml.SBMLDocument(level, version)
    model = document.createModel()
    model.setId("m")
    for attribute in ("setSubstanceUnits", "setExtentUnits"):
        getattr(model, attribute)("mole")
    model.setTimeUnits("second")
    return document, model


def _compartment(model, cid, size, constant=True):
    compartment = model.createCompartment()
    compartment.setId(cid)
    compartment.setSize(size)
    compartment.setSpatialDimensions(3)
    compartment.setConstant(constant)


def _species(model, sid, value, *, concentration=False, boundary=False, compartment="cell"):
    species = model.createSpecies()
    species.setId(sid)
    species.setCompartment(compartment)
    if concentration:
        species.setInitialConcentration(value)
    else:
        species.setInitialAmount(value)
    species.setHasOnlySubstanceUnits(not concentration)
    species.setBoundaryCondition(boundary)
    species.setConstant(False)
    return species


def _parameter(model, pid, value, constant=True):
    parameter = model.createParameter()
    parameter.setId(pid)
    parameter.setValue(value)
    parameter.setConstant(constant)


def _reaction(model, rid, reactants, products, law):
    reaction = model.createReaction()
    reaction.setId(rid)
    reaction.setReversible(False)
    for side, terms in ((reaction.createReactant, reactants), (reaction.createProduct, products)):
        for sid, stoichiometry in terms.items():
            reference = side()
            reference.setSpecies(sid)
            reference.setStoichiometry(stoichiometry)
            reference.setConstant(True)
    reaction.createKineticLaw().setMath(libsbml.parseL3Formula(law))
    return reaction


def _rate_rule(model, variable, formula):
    rule = model.createRateRule()
    rule.setVariable(variable)
    rule.setMath(libsbml.parseL3Formula(formula))


def _roadrunner(sbml: str, selections: list[str]) -> np.ndarray:
    runner = roadrunner.RoadRunner(sbml)
    runner.integrator.relative_tolerance = 1e-10
    runner.integrator.absolute_tolerance = 1e-12
    runner.timeCourseSelections = ["time"] + selections
    return np.asarray(runner.simulate(TIMES[0], TIMES[-1], len(TIMES)))[:, 1:]


def _growing_cell() -> str:
    """A cell growing exponentially by a rate rule, with a reaction-driven concentration
    X and a rate-rule-driven concentration Y inside it (the d[Y]/dt rule must move the
    amount with the volume)."""
    document, model = _model()
    _compartment(model, "cell", 1.0, constant=False)
    _parameter(model, "mu", 0.3)
    _parameter(model, "k", 0.5)
    _parameter(model, "p", 2.0)
    _species(model, "X", 4.0, concentration=True)
    _species(model, "Y", 1.0, concentration=True, boundary=True)
    _reaction(model, "make", {}, {"X": 1}, "p * cell")
    _reaction(model, "decay", {"X": 1}, {}, "k * X * cell")
    _rate_rule(model, "cell", "mu * cell")
    _rate_rule(model, "Y", "1 - 0.2 * Y")
    return libsbml.writeSBMLToString(document)


def test_growing_compartment_matches_roadrunner():
    sbml = _growing_cell()
    network = sbml_cme.read_sbml_string(sbml)
    assert network.variable_compartments == ("cell",)
    assert network.continuous_species == ("Y",)
    result = simulate_deterministic(network, TIMES)
    ours = result.to_wide("concentration")[["X", "Y", "cell"]].to_numpy()
    reference = _roadrunner(sbml, ["[X]", "[Y]", "cell"])
    np.testing.assert_allclose(ours, reference, rtol=1e-6)
    np.testing.assert_allclose(ours[:, 2], np.exp(0.3 * TIMES), rtol=1e-7)


def test_rate_rules_are_refused_by_stochastic_analyses_with_the_way_out():
    network = sbml_cme.read_sbml_string(_growing_cell())
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="simulate_hybrid"):
        simulate_ssa(network, TIMES, n_trajectories=2, seed=1, method="direct")
    for analysis in (lambda: solve_cme(network, TIMES), lambda: solve_lna(network)):
        with pytest.raises(sbml_cme.UnsupportedFeatureError):
            analysis()


def _conversion_model(factor: float) -> str:
    document, model = _model()
    _compartment(model, "cell", 1.0)
    _parameter(model, "k", 1.0)
    _parameter(model, "cf", factor)
    _species(model, "A", 10.0)
    _species(model, "B", 0.0).setConversionFactor("cf")
    _reaction(model, "r", {"A": 1}, {"B": 1}, "k * A")
    return libsbml.writeSBMLToString(document)


def test_whole_conversion_factor_keeps_the_species_discrete():
    network = sbml_cme.read_sbml_string(_conversion_model(2.0), substance_unit="item")
    assert network.continuous_species == ()
    assert network.stoichiometry[network.species_index["B"], 0] == 2
    ssa = simulate_ssa(network, np.array([0.0, 50.0]), n_trajectories=20, seed=3)
    final = ssa.moments[(ssa.moments.time == 50.0) & (ssa.moments.species == "B")]
    assert float(final["mean"].iloc[0]) == 20.0  # every A became two B


@pytest.mark.parametrize("factor", [2.0, 0.25])
def test_conversion_factor_matches_roadrunner(factor):
    sbml = _conversion_model(factor)
    network = sbml_cme.read_sbml_string(sbml)
    assert network.continuous_species == (() if factor == 2.0 else ("B",))
    ours = simulate_deterministic(network, TIMES).to_wide("amount")[["A", "B"]].to_numpy()
    np.testing.assert_allclose(ours, _roadrunner(sbml, ["A", "B"]), rtol=1e-7, atol=1e-12)


def test_non_integer_stoichiometry_is_a_continuous_species():
    document, model = _model()
    _compartment(model, "cell", 1.0)
    _species(model, "A", 3.0)
    _species(model, "B", 0.0)
    _reaction(model, "r", {"A": 1}, {"B": 0.5}, "A")
    sbml = libsbml.writeSBMLToString(document)
    network = sbml_cme.read_sbml_string(sbml)
    assert network.continuous_species == ("B",)
    assert network.stoichiometry[network.species_index["B"], 0] == 0.5
    ours = simulate_deterministic(network, TIMES).to_wide("amount")[["A", "B"]].to_numpy()
    np.testing.assert_allclose(ours[:, 1], 1.5 * (1 - np.exp(-TIMES)), rtol=1e-7)
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="continuous species 'B'"):
        simulate_ssa(network, TIMES, n_trajectories=2, seed=1, method="direct")


def test_reaction_id_and_rate_of_in_rules():
    document, model = _model()
    _compartment(model, "cell", 2.0)
    _parameter(model, "k", 0.7)
    _parameter(model, "flux", 0.0, constant=False)
    _parameter(model, "drift", 0.0, constant=False)
    _species(model, "A", 5.0, concentration=True)
    _reaction(model, "decay", {"A": 1}, {}, "k * A * cell")
    for variable, formula in (("flux", "decay"), ("drift", "rateOf(A)")):
        rule = model.createAssignmentRule()
        rule.setVariable(variable)
        rule.setMath(libsbml.parseL3Formula(formula))
    network = sbml_cme.read_sbml_string(libsbml.writeSBMLToString(document))
    frame = simulate_deterministic(network, TIMES).to_wide("concentration")
    concentration = 5.0 * np.exp(-0.7 * TIMES)
    np.testing.assert_allclose(frame["flux"], 0.7 * concentration * 2.0, rtol=1e-7)
    np.testing.assert_allclose(frame["drift"], -0.7 * concentration, rtol=1e-7)
    assert network.deterministic_only
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="rateOf"):
        simulate_ssa(network, TIMES, n_trajectories=2, seed=1, method="direct")

