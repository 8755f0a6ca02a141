"""Bad input ends in a clear SbmlCmeError naming the element and the fix."""

import pytest

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
    (f'<rateRule variable="X"><math {MATHML}><cn>1</cn></math></rateRule>', "rate rule"),
])
def test_rules_without_stochastic_meaning(rule, feature):
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match=feature):
        sbml_cme.read_sbml_string(with_rules(base(), rule))


def test_fast_reaction():
    xml = base().replace('fast="false"', 'fast="true"')
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="fast reaction") as info:
        sbml_cme.read_sbml_string(xml)
    assert info.value.element_id == "conv"


def test_non_integer_stoichiometry():
    xml = make_sbml({"X": 5}, [("half", {"X": 1}, {}, "k * X")], parameters={"k": 1.0})
    xml = xml.replace('stoichiometry="1"', 'stoichiometry="0.5"')
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="non-integer stoichiometry"):
        sbml_cme.read_sbml_string(xml)


def test_law_that_can_turn_negative_is_split_not_refused():
    # Formerly refused; now two non-negative channels (tests/io/test_signed_laws.py).
    xml = make_sbml({"X": 5, "Y": 3}, [("net", {"X": 1}, {"Y": 1}, "k * X - k * X * Y")],
                    parameters={"k": 1.0})
    network = sbml_cme.read_sbml_string(xml)
    assert network.reaction_ids == ("net_forward", "net_backward")
    assert network.reactions[1].reactants == (("Y", 1),)


def test_delay_csymbol():
    xml = make_sbml({"X": 5}, [("d", {"X": 1}, {}, "k * X")], parameters={"k": 1.0})
    delayed = (f'<math {MATHML}><apply><times/><ci>k</ci><apply><csymbol encoding="text" '
               'definitionURL="http://www.sbml.org/sbml/symbols/delay">delay</csymbol>'
               '<ci>X</ci><cn>1</cn></apply></apply></math>')
    start = xml.index("<math", xml.index("<kineticLaw"))
    end = xml.index("</math>", start) + len("</math>")
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="delay"):
        sbml_cme.read_sbml_string(xml[:start] + delayed + xml[end:])


def test_required_package_is_rejected():
    xml = base().replace(
        'xmlns="http://www.sbml.org/sbml/level3/version1/core"',
        'xmlns="http://www.sbml.org/sbml/level3/version1/core" '
        'xmlns:comp="http://www.sbml.org/sbml/level3/version1/comp/version1" '
        'comp:required="true"')
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="comp"):
        sbml_cme.read_sbml_string(xml)


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
