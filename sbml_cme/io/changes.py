"""Model changes asked by SED-ML, applied to the SBML document (libsbml, never by hand).

A change names an SBML element by id and optionally an attribute (SED-ML
``changeAttribute``: ``.../sbml:parameter[@id='k1']/@value``; ``setValue`` and
``computeChange``: the element itself, meaning its value). Changing an initial value
removes the initial assignment that would otherwise override it, as SED-ML tools do.
"""

from __future__ import annotations

import re

import libsbml

from ..errors import SedmlError

#: ``...[@id='X']`` optionally followed by ``/@attribute``.
_TARGET = re.compile(r"\[@(?:id|sbml:id)\s*=\s*['\"]([^'\"]+)['\"]\]\s*(?:/@(?:sbml:)?(\w+))?\s*$")
_SETTERS = {"value": "setValue", "initialAmount": "setInitialAmount",
            "initialConcentration": "setInitialConcentration", "size": "setSize"}


def parse_target(target: str) -> tuple[str, str | None]:
    """(element id, attribute or None) of a SED-ML XPath target into an SBML model."""
    match = _TARGET.search(target or "")
    if not match:
        raise SedmlError(f"SED-ML target {target!r} is not of the form "
                         ".../sbml:ELEMENT[@id='ID'] or .../sbml:ELEMENT[@id='ID']/@ATTRIBUTE; "
                         "sbml_cme reads only such targets")
    return match.group(1), match.group(2)


def _document(text: str) -> libsbml.SBMLDocument:
    document = libsbml.readSBMLFromString(text)
    if document.getModel() is None:
        raise SedmlError("the SED-ML model source is not an SBML model libsbml can read")
    return document


def _element(model: libsbml.Model, element_id: str, target: str):
    element = model.getElementBySId(element_id)
    if element is None:
        raise SedmlError(f"SED-ML target {target!r}: the model has no element with id "
                         f"{element_id!r}")
    return element


def _default_attribute(element) -> str:
    code = element.getTypeCode()
    if code == libsbml.SBML_SPECIES:
        return "initialConcentration" if element.isSetInitialConcentration() else "initialAmount"
    if code == libsbml.SBML_COMPARTMENT:
        return "size"
    if code in (libsbml.SBML_PARAMETER, libsbml.SBML_LOCAL_PARAMETER):
        return "value"
    raise SedmlError(f"SED-ML cannot change the value of SBML element {element.getId()!r} "
                     f"(a {element.getElementName()}); change a parameter, species or "
                     "compartment")


def apply_changes(text: str, changes: list[tuple[str, float]]) -> str:
    """The SBML document ``text`` with ``changes`` (SED-ML target, new value) applied."""
    if not changes:
        return text
    document = _document(text)
    model = document.getModel()
    for target, value in changes:
        element_id, attribute = parse_target(target)
        element = _element(model, element_id, target)
        attribute = attribute or _default_attribute(element)
        setter = _SETTERS.get(attribute)
        if setter is None or not hasattr(element, setter):
            raise SedmlError(f"SED-ML change of {target!r}: sbml_cme changes only the "
                             f"attributes {sorted(_SETTERS)} of SBML elements")
        if attribute == "initialAmount" and element.isSetInitialConcentration():
            element.unsetInitialConcentration()
        if attribute == "initialConcentration" and element.isSetInitialAmount():
            element.unsetInitialAmount()
        getattr(element, setter)(float(value))
        if model.getInitialAssignmentBySymbol(element_id) is not None:
            model.removeInitialAssignment(element_id)
    return libsbml.writeSBMLToString(document)


def model_value(text: str, target: str) -> float:
    """The current (initial) value of a SED-ML target in the SBML document ``text``."""
    model = _document(text).getModel()
    element_id, attribute = parse_target(target)
    element = _element(model, element_id, target)
    attribute = attribute or _default_attribute(element)
    getter = "get" + attribute[0].upper() + attribute[1:]
    if not hasattr(element, getter):
        raise SedmlError(f"SED-ML target {target!r}: no attribute {attribute!r}")
    return float(getattr(element, getter)())


def element_kind(text: str, element_id: str) -> str:
    """``species``, ``parameter``, ``compartment``, ``reaction`` or another element name."""
    model = _document(text).getModel()
    element = model.getElementBySId(element_id)
    return "" if element is None else element.getElementName()
