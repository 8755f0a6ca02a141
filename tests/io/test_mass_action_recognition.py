"""Laws recognised as mass action (issue 17 item 2, THEORY.md §1, docs/conversion-rules.md):
falling factorials written out (``k/2*X*(X-1)``) become mass-action channels whose
propensity and deterministic limit are the law as written; a constant times a boundary
or modifier species at order 1 (``k3*B``) is mass action; ambiguous laws stay general.
The propensities are the same numbers as before, so the ensembles are equal in law
(checked against the CME) and, on these models, for the same seed bit for bit."""

from __future__ import annotations

import dataclasses

import libsbml
import numpy as np
import pytest
import sympy

import sbml_cme
from sbml_cme.analyses import simulate_ssa, solve_cme
from sbml_cme.kinetics import compile_network
from sbml_cme.network import Expression, MassAction
from conftest import make_sbml, pooled_chi_square

AS_WRITTEN = "mass action (propensity as written)"


def with_boundary(sbml: str, *species: str) -> str:
    """``sbml`` with ``species`` made boundary species."""
    document = libsbml.readSBMLFromString(sbml)
    for sid in species:
        document.getModel().getSpecies(sid).setBoundaryCondition(True)
    return libsbml.writeSBMLToString(document)


def schloegl(**options) -> sbml_cme.Network:
    """Schloegl with A and B boundary species and the laws of BIOMD0000000485 written as
    propensities (V = 25): 0.12 X(X-1) A, 0.00096 X(X-1)(X-2), 12.5 B / 2, 2.95 X."""
    sbml = make_sbml(
        {"X": 25, "A": 1, "B": 2},
        [("autocatalysis", {"A": 1, "X": 2}, {"X": 3}, "k1 * A * X * (X - 1) / V"),
         ("reverse", {"X": 3}, {"A": 1, "X": 2}, "k2 * X * (X - 1) * (X - 2) / V^2"),
         ("production", {}, {"X": 1}, "k3 * B * V"),
         ("decay", {"X": 1}, {}, "k4 * X")],
        parameters={"k1": 3.0, "k2": 0.6, "k3": 0.25, "k4": 2.95, "V": 25.0})
    return sbml_cme.read_sbml_string(with_boundary(sbml, "A", "B"), **options)


def forms(network: sbml_cme.Network) -> list[str]:
    return network.conversion_table()["form"].tolist()


def test_schloegl_laws_are_mass_action_as_written():
    network = schloegl()
    assert forms(network) == [AS_WRITTEN, AS_WRITTEN, "mass action", "mass action"]
    table = network.conversion_table().set_index("reaction")
    assert table.loc["autocatalysis", "orders"] == "A:1, X:2"
    assert table.loc["reverse", "orders"] == "X:3"
    assert table.loc["production", "orders"] == "B:1"
    assert table.loc["autocatalysis", "stochastic_constant"] == pytest.approx(0.12)
    assert table.loc["reverse", "stochastic_constant"] == pytest.approx(0.00096)
    assert table.loc["production", "stochastic_constant"] == pytest.approx(6.25)
    assert table.loc["reverse", "combinatorial_factor"] == \
        "law substituted as written: (X)_3 = X(X-1)(X-2)"
    assert compile_network(network).data.kind.tolist() == [2, 2, 0, 0]


@pytest.mark.parametrize("falling_factorials", [True, False])
def test_written_falling_factorials_keep_the_law_as_written(falling_factorials):
    # THEORY.md §1: an explicit k*P*(P-1)/2 is substitution only, so the propensity and
    # the deterministic limit are that law, whatever the falling_factorials option says.
    network = sbml_cme.read_sbml_string(make_sbml(
        {"P": 20, "Q": 30, "D": 0, "T": 0},
        [("dimerise", {"P": 2}, {"D": 1}, "k / 2 * P * (P - 1)"),
         ("trimerise", {"Q": 3}, {"T": 1}, "k / 6 * Q * (Q - 1) * (Q - 2)")],
        parameters={"k": 0.3}), falling_factorials=falling_factorials)
    assert forms(network) == [AS_WRITTEN, AS_WRITTEN]
    for reaction, written in zip(network.reactions, ("k/2*P*(P - 1)",
                                                     "k/6*Q*(Q - 1)*(Q - 2)")):
        law = reaction.rate_law
        assert isinstance(law, MassAction) and law.as_written and law.falling_factorial
        formula = sympy.sympify(written, locals={"Q": sympy.Symbol("Q")})
        assert sympy.expand(sympy.expand_func(law.propensity()) - formula) == 0
        assert sympy.expand(sympy.expand_func(law.deterministic_limit()) - formula) == 0
    compiled = compile_network(network)
    k = 0.3
    for p_count, q_count in ((0, 0), (1, 2), (2, 3), (20, 30), (7, 11)):
        x = np.array([p_count, q_count, 0.0, 0.0])
        expected = [k / 2 * p_count * (p_count - 1),
                    k / 6 * q_count * (q_count - 1) * (q_count - 2)]
        assert compiled.propensities(x) == pytest.approx(expected, rel=1e-15, abs=0)
    # rate equations at real counts: the law as written, negative between 0 and 1
    x = np.array([0.5, 1.5, 0.0, 0.0])
    assert compiled.propensities(x, deterministic=True) == pytest.approx(
        [k / 2 * 0.5 * -0.5, k / 6 * 1.5 * 0.5 * -0.5], rel=1e-15)


def test_order_one_boundary_and_modifier_species_are_mass_action():
    # 0 -> P at k*M (M an mRNA read as a modifier), 0 -> X at c*B (B boundary)
    network = sbml_cme.read_sbml_string(with_boundary(make_sbml(
        {"M": 5, "P": 0, "B": 40, "X": 0},
        [("translation", {}, {"P": 1}, "k * M"), ("inflow", {}, {"X": 1}, "c * B"),
         ("catalysis", {"X": 1}, {"P": 1}, "k * M * X")],
        parameters={"k": 2.0, "c": 0.5}), "B"))
    assert forms(network) == ["mass action"] * 3
    orders = [r.rate_law.orders for r in network.reactions]
    assert orders == [(("M", 1),), (("B", 1),), (("X", 1), ("M", 1))]
    compiled = compile_network(network)
    assert compiled.propensities(np.array([5.0, 0.0, 40.0, 3.0])) == pytest.approx(
        [10.0, 20.0, 30.0], rel=1e-15)
    # the dependency graph: translation's rate changes only with M (never), inflow's
    # never; catalysis after anything that changes X
    data = compiled.data
    dependents = [data.dependents[data.dependents_ptr[j]:data.dependents_ptr[j + 1]].tolist()
                  for j in range(3)]
    assert dependents == [[], [2], [2]]


@pytest.mark.parametrize("reactants, law, species", [
    ({"X": 1}, "k * X * (X - 1)", {"X": 10, "Y": 0}),        # order 2, stoichiometry 1
    ({}, "k * B^2", {"B": 10, "X": 0}),                       # boundary species squared
    ({}, "k * B * (B - 1)", {"B": 10, "X": 0}),               # not a reactant, order 2
    ({"X": 2}, "k * X * (X - 1) / (1 + X)", {"X": 10, "Y": 0}),  # not a polynomial
    ({"X": 2}, "k * X * (X - 1) * time", {"X": 10, "Y": 0}),     # reads time
])
def test_ambiguous_laws_stay_general(reactants, law, species):
    products = {"Y": 1} if "Y" in species else {"X": 1}
    sbml = make_sbml(species, [("r", reactants, products, law)], parameters={"k": 0.1})
    network = sbml_cme.read_sbml_string(with_boundary(sbml, "B") if "B" in species else sbml)
    assert all(isinstance(r.rate_law, Expression) for r in network.reactions)
    assert all(form.startswith("general") for form in forms(network))


def test_a_written_falling_factorial_is_not_split_as_a_difference():
    # 2X -> X at k X(X-1) = k X^2 - k X looks like forward k X^2 minus backward k X, but
    # it is one law written as a propensity: one channel at k X (X - 1).
    network = sbml_cme.read_sbml_string(make_sbml(
        {"X": 10}, [("r", {"X": 2}, {"X": 1}, "k * X * (X - 1)")], parameters={"k": 0.1}))
    assert network.reaction_ids == ("r",)
    assert forms(network) == [AS_WRITTEN]
    assert compile_network(network).propensities(np.array([10.0])) == pytest.approx([9.0])


def test_schloegl_with_boundary_species_matches_the_cme():
    # bimodal at t = 2 from X = 25 (test_cme_vs_ssa.py's Schloegl, with A, B species)
    network = schloegl()
    times = np.array([0.0, 2.0])
    law = solve_cme(network, times, tol=1e-8)
    marginal = law.marginal("X")
    marginal = marginal[marginal.time == 2.0]
    ensemble = simulate_ssa(network, times, n_trajectories=4000, seed=20240607)
    samples = ensemble.states[:, -1, network.species_ids.index("X")].astype(np.int64)
    statistic, dof, p = pooled_chi_square(samples, marginal["count"].to_numpy(),
                                          marginal["probability"].to_numpy())
    assert dof >= 20
    assert p > 1e-3, f"chi-square {statistic:.1f} on {dof} dof, p = {p:.2e}"


def test_mass_action_path_gives_the_same_ensemble_as_the_interpreter():
    # The same laws as general Expressions (the bytecode interpreter): the same numbers,
    # so for one seed the same ensemble, event for event.
    network = schloegl()
    general = dataclasses.replace(network, reactions=tuple(
        dataclasses.replace(r, rate_law=Expression(r.rate_law.propensity()))
        for r in network.reactions))
    assert compile_network(general).data.kind.tolist() == [1, 1, 1, 1]
    times = np.linspace(0.0, 2.0, 5)
    for method in ("direct", "tree"):
        fast = simulate_ssa(network, times, n_trajectories=200, seed=3, method=method,
                            n_jobs=1)
        slow = simulate_ssa(general, times, n_trajectories=200, seed=3, method=method,
                            n_jobs=1)
        assert fast.total_events == slow.total_events
        np.testing.assert_array_equal(fast.states, slow.states)
