"""Kinetic laws that can turn negative become two non-negative channels (issue 11 item 1,
docs/conversion-rules.md): v = N/D with D > 0, the sign-definite terms of N split into
N+/D (forward, reactants -> products) and |N-|/D (backward); without such a split
max(v, 0) and max(-v, 0). Forward minus backward is always v, and no channel's
propensity is ever negative."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy
from hypothesis import assume, given, settings, strategies as st

import sbml_cme
from sbml_cme.io.classify import SIGN_SPLIT_FORMS
from sbml_cme.kinetics import compile_network
from sbml_cme.network import AVOGADRO, MassAction
from conftest import make_sbml

S, P, Vf, Vr, Ks, Kp = sympy.symbols("S P Vf Vr Ks Kp")
RMM = "(Vf * S / Ks - Vr * P / Kp) / (1 + S / Ks + P / Kp)"
RMM_PARAMETERS = {"Vf": 3.0, "Vr": 1.0, "Ks": 2.0, "Kp": 5.0}


def read(sbml: str) -> sbml_cme.Network:
    """Read, failing on any warning (a sign-definite split warns about nothing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return sbml_cme.read_sbml_string(sbml)


def test_reversible_michaelis_menten_is_exactly_two_channels():
    network = read(make_sbml({"S": 10, "P": 5}, [("r", {"S": 1}, {"P": 1}, RMM)],
                             parameters=RMM_PARAMETERS))
    forward, backward = network.reactions
    assert (forward.id, backward.id) == ("r_forward", "r_backward")
    assert (forward.reactants, forward.products) == ((("S", 1),), (("P", 1),))
    assert (backward.reactants, backward.products) == ((("P", 1),), (("S", 1),))
    denominator = 1 + S / Ks + P / Kp
    assert sympy.simplify(forward.rate_law.propensity() - Vf * S / Ks / denominator) == 0
    assert sympy.simplify(backward.rate_law.propensity() - Vr * P / Kp / denominator) == 0
    table = network.conversion_table().set_index("reaction")
    assert table.loc["r_forward", "form"] == "general (forward part of a signed law)"
    assert table.loc["r_backward", "form"] == "general (backward part of a signed law)"
    terms = table.loc["r_forward", "signed_terms"]
    assert terms == table.loc["r_backward", "signed_terms"]
    forward_text, backward_text, denominator_text = terms.split("; ")

    def parse(text, prefix):
        return sympy.parse_expr(text.removeprefix(prefix), local_dict={"S": S, "P": P})
    shown = parse(denominator_text, "denominator ")
    assert sympy.simplify(parse(forward_text, "forward ") / shown
                          - Vf * S / Ks / denominator) == 0
    assert sympy.simplify(parse(backward_text, "backward ") / shown
                          - Vr * P / Kp / denominator) == 0
    assert not network.notes


def test_split_in_concentrations_is_converted_like_a_one_way_law():
    # 1 fL, mole: each channel is F * (its part of the law) with [X] = n / (F V).
    volume = 1e-15
    omega = AVOGADRO * volume
    network = read(make_sbml({"S": 30 / AVOGADRO, "P": 20 / AVOGADRO},
                             [("r", {"S": 1}, {"P": 1}, f"cell * {RMM}")],
                             parameters={"Vf": 3e-9, "Vr": 1e-9, "Ks": 2e-8, "Kp": 5e-8},
                             compartment_size=volume, substance_units="mole",
                             has_only_substance_units=False))
    compiled = compile_network(network)
    for counts in ([30.0, 20.0], [0.0, 7.0], [12.0, 0.0], [400.0, 900.0]):
        s, p = np.array(counts) / omega
        denominator = 1 + s / 2e-8 + p / 5e-8
        expected = [omega * 3e-9 * s / 2e-8 / denominator,
                    omega * 1e-9 * p / 5e-8 / denominator]
        assert compiled.propensities(np.array(counts)) == pytest.approx(expected, rel=1e-12)


def test_terms_of_one_monomial_give_mass_action_channels():
    # A -> B with kf*A - kr*B - kd*B: backward (kr + kd) B, both sides mass action.
    network = read(make_sbml({"A": 10, "B": 5},
                             [("r", {"A": 1}, {"B": 1}, "kf * A - kr * B - kd * B")],
                             parameters={"kf": 2.0, "kr": 3.0, "kd": 0.5}))
    assert network.reaction_ids == ("r_forward", "r_backward")
    assert all(isinstance(r.rate_law, MassAction) for r in network.reactions)
    assert compile_network(network).propensities(np.array([10.0, 5.0])) == pytest.approx(
        [20.0, 17.5])
    assert all(network.conversion_table().signed_terms != "")


def test_mass_action_difference_keeps_falling_factorials():
    # 2A -> B with kf*A^2 - kr*B: the existing rule, exact combinatorics (A)_2.
    network = read(make_sbml({"A": 10, "B": 5},
                             [("r", {"A": 2}, {"B": 1}, "kf * A^2 - kr * B")],
                             parameters={"kf": 2.0, "kr": 3.0}))
    assert compile_network(network).propensities(np.array([10.0, 5.0])) == pytest.approx(
        [2.0 * 10 * 9, 15.0])
    table = network.conversion_table().set_index("reaction")
    assert table.loc["r_forward", "combinatorial_factor"] == "(A)_2 = A(A-1)"
    assert table.loc["r_forward", "signed_terms"] == "forward A**2*kf; backward B*kr"


def test_piecewise_term_of_known_sign_is_split_by_terms():
    network = read(make_sbml({"A": 3, "B": 0}, [("flip", {"A": 1}, {"B": 1},
                                                 "c * (piecewise(2, A > 5, 1) - B)")],
                             parameters={"c": 0.5}))
    assert network.conversion_table().form.tolist() == [
        "general (forward part of a signed law)", "mass action"]
    compiled = compile_network(network)
    assert compiled.propensities(np.array([3.0, 4.0])) == pytest.approx([0.5, 2.0])
    assert compiled.propensities(np.array([7.0, 4.0])) == pytest.approx([1.0, 2.0])


def test_state_dependent_sign_falls_back_to_max_with_one_warning():
    # Goldbeter-Koshland style: the denominator J + T - A changes sign with A, and the
    # sign of the piecewise term depends on A too. Both reactions: one warning, one note.
    law_1 = "k * (T - A) / (J + T - A)"
    law_2 = "c * (piecewise(2, A > 5, -1) - B)"
    sbml = make_sbml({"A": 3, "B": 0}, [("make", {}, {"A": 1}, law_1),
                                        ("flip", {"A": 1}, {"B": 1}, law_2)],
                     parameters={"k": 2.0, "T": 10.0, "J": 1.0, "c": 0.5})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        network = sbml_cme.read_sbml_string(sbml)
    assert len(caught) == 1 and "flip, make can turn negative" in str(caught[0].message)
    assert len(network.notes) == 1 and "max(v, 0)" in network.notes[0]
    assert network.reaction_ids == ("make_forward", "make_backward", "flip_forward",
                                    "flip_backward")
    forms = network.conversion_table().form.tolist()
    assert forms == list(SIGN_SPLIT_FORMS) * 2
    compiled = compile_network(network)
    for a, b in [(3, 0), (10, 0), (12, 0), (20, 4), (6, 1), (6, 3), (2, 1)]:
        v1 = 2.0 * (10 - a) / (1 + 10 - a)
        v2 = 0.5 * ((2 if a > 5 else -1) - b)
        assert compiled.propensities(np.array([a, b], dtype=float)) == pytest.approx(
            [max(v1, 0), max(-v1, 0), max(v2, 0), max(-v2, 0)])


def test_undecided_law_is_split_only_in_a_reversible_reaction():
    # k*A*(1 + sin(B)) is >= 0, but sympy cannot prove it: an irreversible reaction keeps
    # one channel checked during simulation; a reversible one gets the max split.
    sbml = make_sbml({"A": 3, "B": 1}, [("r", {"A": 1}, {"B": 1}, "k * A * (1 + sin(B))")],
                     parameters={"k": 2.0})
    one_way = read(sbml)
    assert one_way.reaction_ids == ("r",)
    assert one_way.conversion_table().form[0] == "general (sign checked during simulation)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reversible = sbml_cme.read_sbml_string(sbml.replace('reversible="false"',
                                                            'reversible="true"'))
    assert len(caught) == 1
    assert reversible.reaction_ids == ("r_forward", "r_backward")
    assert compile_network(reversible).propensities(np.array([3.0, 1.0])) == pytest.approx(
        [6.0 * (1 + np.sin(1.0)), 0.0])


def test_non_constant_parameter_sign_is_not_assumed():
    # kr can be changed by an event: its term's sign is unknown, so max(v, 0) is used.
    sbml = make_sbml({"A": 10, "B": 5}, [("r", {"A": 1}, {"B": 1},
                                         "(kf * A - kr * B) / (1 + A)")],
                     parameters={"kf": 2.0, "kr": 3.0},
                     events=[("flip", "time > 1", {"kr": "-1"})])
    sbml = sbml.replace('id="kr" value="3" constant="true"', 'id="kr" value="3" '
                        'constant="false"')
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        network = sbml_cme.read_sbml_string(sbml)
    assert network.conversion_table().form.tolist() == list(SIGN_SPLIT_FORMS)


# Property: random signed laws over positive denominators, and over denominators whose
# sign depends on the state: every channel is >= 0 at non-negative counts, and the
# deterministic limits of the channels add up to the law.
SPECIES = ("A", "B", "C")
PARAMETERS = {"p0": 0.7, "p1": 2.5, "p2": 1.3}


@st.composite
def signed_laws(draw):
    def monomial():
        factors = [draw(st.sampled_from(["1", "A", "B", "C", "A^2", "B*C"]))
                   for _ in range(draw(st.integers(1, 2)))]
        factors.append(draw(st.sampled_from(list(PARAMETERS) + ["1", "0.5"])))
        return " * ".join(factors)

    signs = ["+", "-"] + [draw(st.sampled_from(["+", "-"]))
                          for _ in range(draw(st.integers(0, 2)))]
    terms = [f"{sign} {monomial()}" for sign in signs]
    denominator = " + ".join([draw(st.sampled_from(["1", "p0", "p1"]))] +
                             [monomial() for _ in range(draw(st.integers(0, 2)))])
    numerator = " ".join(terms)
    values = {sympy.Symbol(k): v for k, v in PARAMETERS.items()}
    expanded = sympy.expand(sympy.sympify(numerator.replace("^", "**")).xreplace(values))
    # Terms of opposite sign may cancel: keep the laws that are still signed.
    assume(any(term.could_extract_minus_sign() for term in sympy.Add.make_args(expanded)))
    law = f"({numerator}) / ({denominator})"
    if draw(st.booleans()):
        # A denominator whose sign depends on A (never 0 at whole counts): the
        # max(v, 0) fallback.
        law = f"{law} / (p1 + 1 - A)"
    return law


@settings(max_examples=40, deadline=None)
@given(law=signed_laws(), counts=st.lists(st.lists(st.integers(0, 40), min_size=3,
                                                   max_size=3), min_size=5, max_size=5))
def test_random_signed_laws_give_non_negative_channels_that_add_up(law, counts):
    sbml = make_sbml({"A": 1, "B": 1, "C": 1}, [("r", {"A": 1}, {"B": 1}, law)],
                     parameters=PARAMETERS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = sbml_cme.read_sbml_string(sbml)
    values = {sympy.Symbol(k): v for k, v in PARAMETERS.items()}
    original = sympy.sympify(law.replace("^", "**")).xreplace(values)
    compiled = compile_network(network)
    signs = {"r": 1, "r_forward": 1, "r_backward": -1}
    net = sympy.Add(*[signs[r.id] * r.rate_law.deterministic_limit()
                      for r in network.reactions])
    for state in counts:
        point = dict(zip(map(sympy.Symbol, SPECIES), state))
        propensities = compiled.propensities(np.array(state, dtype=float))
        assert np.all(propensities >= 0), (network.conversion_table().to_string(), state)
        expected = float(sympy.sympify(original).xreplace(point))
        value = float(net.xreplace(values).xreplace(point))
        assert value == pytest.approx(expected, rel=1e-9, abs=1e-12)
