"""Bad input ends in a clear SbmlCmeError naming the element and the fix."""

import pytest
import sympy

import sbml_cme
from conftest import make_sbml

MATHML = 'xmlns="http://www.w3.org/1998/Math/MathML"'


def with_rules(xml: str, rules: str) -> str:
    return xml.replace("</model>", f"<listOfRules>{rules}</listOfRules></model>")


def base():
    return make_sbml({"X": 5, "Y": 0}, [("conv", {"X": 1}, {"Y": 1}, "k * X")],
                     parameters={"k": 1.0})


def test_invalid_sbml_carries_libsbml_messages():
    with pytest.raises(sbml_cme.InvalidSBMLError) as info:
        sbml_cme.read_sbml_string("<sbml xmlns='x'><model></sbml>")
    assert info.value.errors


@pytest.mark.parametrize("rule, feature", [
    (f'<algebraicRule><math {MATHML}><apply><minus/><ci>X</ci><ci>Y</ci></apply></math>'
     '</algebraicRule>', "algebraic rule"),
])
def test_rules_without_stochastic_meaning(rule, feature):
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match=feature):
        sbml_cme.read_sbml_string(with_rules(base(), rule))


def test_fast_reaction():
    xml = base().replace('fast="false"', 'fast="true"')
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="fast reaction") as info:
        sbml_cme.read_sbml_string(xml)
    assert info.value.element_id == "conv"


def test_non_integer_stoichiometry_makes_a_continuous_species_the_cme_refuses():
    xml = make_sbml({"X": 5}, [("half", {"X": 1}, {}, "k * X")], parameters={"k": 1.0})
    xml = xml.replace('stoichiometry="1"', 'stoichiometry="0.5"')
    network = sbml_cme.read_sbml_string(xml)
    assert network.continuous_species == ("X",)
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="continuous species 'X'"):
        sbml_cme.analyses.solve_cme(network, [0.0, 1.0])


def test_law_that_can_turn_negative_splits_by_the_sign_of_its_terms():
    xml = make_sbml({"X": 5, "Y": 3}, [("net", {"X": 1}, {"Y": 1}, "k * X - k * X * Y")],
                    parameters={"k": 1.0})
    network = sbml_cme.read_sbml_string(xml)
    forward, backward = network.reactions
    assert (forward.reactants, forward.products) == ((("X", 1),), (("Y", 1),))
    assert (backward.reactants, backward.products) == ((("Y", 1),), (("X", 1),))
    k, x, y = sympy.symbols("k X Y")
    assert sympy.simplify(forward.rate_law.propensity() - k * x) == 0
    assert sympy.simplify(backward.rate_law.propensity() - k * x * y) == 0


def test_delay_csymbol():
    xml = make_sbml({"X": 5}, [("d", {"X": 1}, {}, "k * X")], parameters={"k": 1.0})
    delayed = (f'<math {MATHML}><apply><times/><ci>k</ci><apply><csymbol encoding="text" '
               'definitionURL="http://www.sbml.org/sbml/symbols/delay">delay</csymbol>'
               '<ci>X</ci><cn>1</cn></apply></apply></math>')
    start = xml.index("<math", xml.index("<kineticLaw"))
    end = xml.index("</math>", start) + len("</math>")
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="delay"):
        sbml_cme.read_sbml_string(xml[:start] + delayed + xml[end:])


@pytest.mark.parametrize("package, reason", [("qual", "qualitative"), ("arrays", "arrays"),
                                             ("multi", "multistate")])
def test_required_package_that_changes_the_dynamics_is_rejected(package, reason):
    xml = base().replace(
        'xmlns="http://www.sbml.org/sbml/level3/version1/core"',
        'xmlns="http://www.sbml.org/sbml/level3/version1/core" '
        f'xmlns:{package}="http://www.sbml.org/sbml/level3/version1/{package}/version1" '
        f'{package}:required="true"')
    if package == "multi":  # valid multi: every compartment says whether it is a type
        xml = xml.replace("<compartment ", '<compartment multi:isType="false" ')
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match=reason) as info:
        sbml_cme.read_sbml_string(xml)
    assert package in info.value.feature


def test_bad_options():
    with pytest.raises(sbml_cme.OptionsError):
        sbml_cme.read_sbml_string(base(), volumes={"nowhere": 1e-15})
    with pytest.raises(sbml_cme.OptionsError):
        sbml_cme.read_sbml_string(base(), volumes={"cell": -1})
    with pytest.raises(sbml_cme.OptionsError):
        sbml_cme.read_sbml_string(base(), substance_unit="furlong")
    with pytest.raises(sbml_cme.OptionsError):
        sbml_cme.read_sbml_string(base(), colour="blue")


def test_assignment_rule_output_is_reported():
    xml = make_sbml({"X": 5, "Y": 0}, [("conv", {"X": 1}, {"Y": 1}, "k * X")],
                    parameters={"k": 1.0}, rules={"total": "X + Y"})
    network = sbml_cme.read_sbml_string(xml)
    assert [o.id for o in network.outputs] == ["total"]
