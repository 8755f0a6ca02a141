"""Shared test helpers: small SBML models built with libsbml, and analytic references."""

from __future__ import annotations

import libsbml
import numpy as np
import pytest
import scipy.stats


def make_sbml(species: dict, reactions: list, *, parameters: dict | None = None,
              compartment_size: float = 1.0, substance_units: str = "item", level: int = 3,
              version: int = 1, rules: dict | None = None, events: list | None = None,
              has_only_substance_units: bool = True) -> str:
    """An SBML document as a string.

    species: id -> initial amount; reactions: (id, {reactant: n}, {product: n}, law);
    rules: variable -> formula (assignment rules); events: (id, trigger, {var: formula}).
    """
    document = libsbml.SBMLDocument(level, version)
    model = document.createModel()
    model.setId("test_model")
    if level >= 3:
        model.setSubstanceUnits(substance_units)
        model.setExtentUnits(substance_units)
        model.setTimeUnits("second")
    compartment = model.createCompartment()
    compartment.setId("cell")
    compartment.setSize(compartment_size)
    compartment.setConstant(True)
    for sid, amount in species.items():
        s = model.createSpecies()
        s.setId(sid)
        s.setCompartment("cell")
        s.setInitialAmount(amount)
        s.setHasOnlySubstanceUnits(has_only_substance_units)
        s.setBoundaryCondition(False)
        s.setConstant(False)
    for pid, value in (parameters or {}).items():
        p = model.createParameter()
        p.setId(pid)
        p.setValue(value)
        assigned = {v for _, _, assignments in events or [] for v in assignments}
        p.setConstant(pid not in (rules or {}) and pid not in assigned)
    for variable, formula in (rules or {}).items():
        if model.getParameter(variable) is None and model.getSpecies(variable) is None:
            p = model.createParameter()
            p.setId(variable)
            p.setConstant(False)
        rule = model.createAssignmentRule()
        rule.setVariable(variable)
        rule.setMath(libsbml.parseL3Formula(formula))
    for rid, reactants, products, law in reactions:
        r = model.createReaction()
        r.setId(rid)
        r.setReversible(False)
        if level >= 3:
            r.setFast(False)
        for side, create in ((reactants, r.createReactant), (products, r.createProduct)):
            for sid, n in side.items():
                reference = create()
                reference.setSpecies(sid)
                reference.setStoichiometry(n)
                if level >= 3:
                    reference.setConstant(True)
        kinetic_law = r.createKineticLaw()
        kinetic_law.setMath(libsbml.parseL3Formula(law))
    for eid, trigger, assignments in events or []:
        event = model.createEvent()
        event.setId(eid)
        event.setUseValuesFromTriggerTime(True)
        t = event.createTrigger()
        t.setMath(libsbml.parseL3Formula(trigger))
        if level >= 3:
            t.setPersistent(True)
            t.setInitialValue(False)
        for variable, formula in assignments.items():
            a = event.createEventAssignment()
            a.setVariable(variable)
            a.setMath(libsbml.parseL3Formula(formula))
    return libsbml.writeSBMLToString(document)


@pytest.fixture
def birth_death_sbml():
    """0 -> X at k = 10, X -> 0 at 1 * X, counts (item units); stationary Poisson(10)."""
    return make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k"),
                                ("death", {"X": 1}, {}, "d * X")],
                     parameters={"k": 10.0, "d": 1.0})


@pytest.fixture(scope="module")
def birth_death_network():
    """The birth_death_sbml model as a Network (module scope: compiled once per file)."""
    import sbml_cme
    return sbml_cme.read_sbml_string(make_sbml(
        {"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
        parameters={"k": 10.0, "d": 1.0}))


def standardized_mean(sample_mean, n, mu, sigma):
    """The SBML test suite's Z statistic: sqrt(n) (mean - mu) / sigma."""
    return np.sqrt(n) * (np.asarray(sample_mean) - mu) / sigma


def standardized_variance(sample_sd, n, sigma):
    """The SBML test suite's Y statistic: sqrt(n/2) (s^2 / sigma^2 - 1)."""
    return np.sqrt(n / 2) * (np.asarray(sample_sd) ** 2 / sigma**2 - 1)


def pooled_chi_square(samples: np.ndarray, counts: np.ndarray,
                      probabilities: np.ndarray) -> tuple[float, int, float]:
    """(statistic, degrees of freedom, p-value) of integer ``samples`` against the law
    ``probabilities`` on the sorted integer support ``counts``.

    Cells are pooled left to right until each expected count is >= 5 (a short remainder
    joins the last cell); samples outside the support and the law's missing mass join the
    last cell too.
    """
    n = len(samples)
    observed_all = np.array([np.sum(samples == value) for value in counts], dtype=float)
    expected_all = probabilities * n
    observed_all[-1] += n - observed_all.sum()
    expected_all[-1] += n - expected_all.sum()
    observed, expected = [], []
    o_cell = e_cell = 0.0
    for o, e in zip(observed_all, expected_all):
        o_cell += o
        e_cell += e
        if e_cell >= 5:
            observed.append(o_cell)
            expected.append(e_cell)
            o_cell = e_cell = 0.0
    observed[-1] += o_cell
    expected[-1] += e_cell
    observed, expected = np.array(observed), np.array(expected)
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    dof = len(observed) - 1
    return statistic, dof, float(scipy.stats.chi2.sf(statistic, dof))
