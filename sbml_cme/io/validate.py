"""Validation at the edge: refuse a document or network that no analysis can trust.

:func:`read_text` reads a file as SBML text or raises :class:`InvalidSBMLError` (a missing
file, a directory, no permission, bytes that are not UTF-8).
Two checks, both called from one place (``sbml_reader._read``):

- :func:`check_document`, on the libsbml document before the import: libsbml's own
  consistency checks (errors, not warnings, with line numbers; unit checks off, since
  the importer does its own unit arithmetic), species in ids that are not compartments,
  species references to ids that are not species, and stoichiometries that are not finite.
- :func:`check_network`, on the imported network: parameters and compartment sizes that
  are NaN or infinite (wherever they came from: an attribute or an initial assignment),
  negative volumes, NaN or infinite constants in the math, and kinetic laws that read an
  id that is not a species or parameter. (Initial counts are
  checked by ``Network`` itself.)

Each refusal is an :class:`InvalidSBMLError` naming the element and saying what to fix.
"""

from __future__ import annotations

import math

import libsbml
import sympy

from ..distributions import RandomDraw
from ..errors import InvalidSBMLError
from ..network import TIME, Network
from .swig_types import all_elements, ast_type

#: libsbml consistency errors left to the importer: unit references it resolves or
#: ignores itself (the SBML test suite has valid cases that libsbml flags, e.g. 00959);
#: a species in a kinetic law not declared as a modifier (21121: common in BioModels and
#: harmless here, the law is read as written); a species set by both reactions and a rule
#: (20610: the importer refuses the rule by name).
_IGNORED_ERRORS = frozenset({10311, 10312, 10313, 20610, 21121})

#: Largest stoichiometry accepted (counts are int64; larger jumps are input errors).
MAX_STOICHIOMETRY = 1e9
#: Magnitude bound of the numbers in kinetic laws (beyond it products overflow).
MAX_NUMBER = 1e250

#: Non-finite sympy constants.
_NOT_FINITE = (sympy.nan, sympy.oo, -sympy.oo, sympy.zoo)


def read_text(path: str) -> str:
    """The text of the SBML file ``path`` (SBML files are UTF-8)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise InvalidSBMLError(f"SBML file '{path}' does not exist") from None
    except IsADirectoryError:
        raise InvalidSBMLError(f"'{path}' is a directory, not an SBML file") from None
    except OSError as error:
        raise InvalidSBMLError(f"cannot read SBML file '{path}': {error.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidSBMLError(f"'{path}' is not UTF-8 text, which SBML requires ({error}); "
                               "save it as UTF-8") from None


def check_document(document: libsbml.SBMLDocument, source: str) -> None:
    """Refuse ``document`` when libsbml's consistency checks find errors or a
    stoichiometry is not finite. Documents libsbml could not even read are left to the
    importer, which reports those read errors."""
    if document.getNumErrors(libsbml.LIBSBML_SEV_ERROR) or \
            document.getNumErrors(libsbml.LIBSBML_SEV_FATAL) or document.getModel() is None:
        return
    # Units: the importer does its own unit arithmetic. Overdetermination: an algebraic
    # rule is refused by name by the importer, which says more than libsbml here.
    document.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    document.setConsistencyChecks(libsbml.LIBSBML_CAT_OVERDETERMINED_MODEL, False)
    _refuse_malformed_math(document, source)  # libsbml's validator crashes on some of it
    document.checkConsistency()
    errors = [document.getError(i) for i in range(document.getNumErrors())]
    # The lines are read before the log is cleared: its errors die with it.
    severe = [f"line {error.getLine()}: {_specific(error.getMessage())}" for error in errors
              if error.getSeverity() >= libsbml.LIBSBML_SEV_ERROR
              and error.getErrorId() < 100000  # core; packages (7-digit ids) are the importer's
              and error.getErrorId() not in _IGNORED_ERRORS]
    # The importer reads the log again for read errors: leave only what it read.
    document.getErrorLog().clearLog()
    if severe:
        raise InvalidSBMLError(
            f"'{source}' is not valid SBML (libsbml consistency check; fix these lines)",
            severe)
    model = document.getModel()
    species = {s.getId() for s in model.getListOfSpecies()}
    compartments = {c.getId() for c in model.getListOfCompartments()}
    for definition in model.getListOfUnitDefinitions():
        for unit in definition.getListOfUnits():
            if not (math.isfinite(unit.getMultiplier()) and abs(unit.getScale()) <= 300
                    and abs(unit.getExponentAsDouble()) <= 100):
                raise InvalidSBMLError(
                    f"unit definition '{definition.getId()}' (line {unit.getLine()}) has "
                    f"multiplier {unit.getMultiplier()}, scale {unit.getScale()}, exponent "
                    f"{unit.getExponentAsDouble()}: beyond double precision; fix the unit")
    sizes = {c.getId(): c.getSize() for c in model.getListOfCompartments() if c.isSetSize()}
    for element in model.getListOfSpecies():
        in_concentration = element.isSetInitialConcentration() or \
            not element.getHasOnlySubstanceUnits()
        if in_concentration and sizes.get(element.getCompartment()) == 0:
            raise InvalidSBMLError(
                f"species '{element.getId()}' is a concentration in compartment "
                f"'{element.getCompartment()}' of size 0 (line {element.getLine()}); give "
                "the compartment a positive size")
        if element.getCompartment() not in compartments:  # libsbml accepts a unit id
            raise InvalidSBMLError(
                f"species '{element.getId()}' is in '{element.getCompartment()}' (line "
                f"{element.getLine()}), which is not a compartment of the model")
    for reaction in model.getListOfReactions():
        for reference in (list(reaction.getListOfReactants()) + list(reaction.getListOfProducts())
                          + list(reaction.getListOfModifiers())):
            if reference.getSpecies() not in species:  # libsbml accepts any SId here
                raise InvalidSBMLError(
                    f"reaction '{reaction.getId()}' refers to '{reference.getSpecies()}' "
                    f"(line {reference.getLine()}), which is not a species of the model")
            if reference.getTypeCode() == libsbml.SBML_MODIFIER_SPECIES_REFERENCE:
                continue
            value = reference.getStoichiometry()
            if reference.isSetStoichiometry() and not abs(value) <= MAX_STOICHIOMETRY:
                raise InvalidSBMLError(
                    f"the stoichiometry of species '{reference.getSpecies()}' in reaction "
                    f"'{reaction.getId()}' is {value} (line {reference.getLine()}); "
                    f"give a whole number up to {MAX_STOICHIOMETRY:g}")
        if reaction.isSetKineticLaw() and reaction.getKineticLaw().isSetMath():
            read = _check_law(reaction, _model_ids(model))
            for parameter in model.getListOfParameters():  # before the law is classified
                if parameter.getId() in read and parameter.isSetValue() and not \
                        math.isfinite(parameter.getValue()) and \
                        model.getInitialAssignment(parameter.getId()) is None:
                    raise InvalidSBMLError(
                        f"parameter '{parameter.getId()}' is {parameter.getValue()} (line "
                        f"{parameter.getLine()}); every analysis needs a finite value: fix "
                        "it in the SBML")


def _model_ids(model) -> set[str]:
    """Ids a kinetic law may name (libsbml also accepts unit ids, which have no value)."""
    ids = {e.getId() for kind in (model.getListOfSpecies(), model.getListOfCompartments(),
                                  model.getListOfParameters(), model.getListOfReactions())
           for e in kind}
    for reaction in model.getListOfReactions():
        for reference in list(reaction.getListOfReactants()) + list(reaction.getListOfProducts()):
            if reference.isSetId():
                ids.add(reference.getId())
    return ids


def _check_law(reaction, ids: set[str]) -> set[str]:
    """Names in the kinetic law of ``reaction`` exist and its numbers can be computed with;
    returns the names it reads."""
    law = reaction.getKineticLaw()
    local = {p.getId() for p in law.getListOfParameters()} | {
        p.getId() for p in law.getListOfLocalParameters()}
    stack, read = [law.getMath()], set()
    while stack:
        node = stack.pop()
        stack.extend(node.getChild(i) for i in range(node.getNumChildren()))
        if ast_type(node) == libsbml.AST_NAME:
            read.add(node.getName())
        if ast_type(node) == libsbml.AST_NAME and node.getName() not in ids | local:
            raise InvalidSBMLError(
                f"the kinetic law of '{reaction.getId()}' (line {law.getLine()}) uses "
                f"'{node.getName()}', which is not a species, compartment, parameter or "
                "reaction of the model")
        if node.isNumber() and not node.isInteger() and ast_type(node) != libsbml.AST_RATIONAL:
            value = abs(node.getValue())
            if value > MAX_NUMBER or 0 < value < 1 / MAX_NUMBER:
                raise InvalidSBMLError(
                    f"the kinetic law of '{reaction.getId()}' (line {law.getLine()}) contains "
                    f"the number {node.getValue():g}, beyond what double precision can "
                    f"compute with (use numbers between {1 / MAX_NUMBER:g} and {MAX_NUMBER:g})")
    return read


def _refuse_malformed_math(document: libsbml.SBMLDocument, source: str) -> None:
    """Refuse math with a wrong number of arguments (``rateOf()``, ``<power/>`` of one) or
    an empty ``<math/>``, anywhere in the document, ``comp`` model definitions included:
    libsbml 5.21's consistency check dereferences the missing arguments and crashes the
    process (fuzz mutants of semantic 01145, 01248, 01380)."""
    for element in all_elements(document):
        math = element.getMath() if hasattr(element, "getMath") else None
        if math is None:
            continue
        if ast_type(math) == libsbml.AST_UNKNOWN and math.getNumChildren() == 0:
            problem = "an empty <math>"
        else:
            bad = _wrong_arity_node(math)
            if bad is None:
                continue
            name = bad.getName() or libsbml.formulaToL3String(bad)
            problem = f"'{name}' with {bad.getNumChildren()} argument(s), which it cannot take"
        owner = element if element.isSetId() else element.getParentSBMLObject()
        label = owner.getId() if owner is not None and owner.isSetId() else "?"
        raise InvalidSBMLError(
            f"'{source}' is not valid SBML: the {element.getElementName()} of '{label}' "
            f"(line {element.getLine()}) has {problem}; fix the MathML")


#: distrib draws: their arities are checked, with a better message, by io/mathml.py.
_DISTRIB_TYPES = frozenset(getattr(libsbml, name) for name in dir(libsbml)
                           if name.startswith("AST_DISTRIB_FUNCTION_"))


def _wrong_arity_node(node: libsbml.ASTNode) -> libsbml.ASTNode | None:
    """The first node under ``node`` (itself included) with a wrong number of arguments."""
    pending = [node]
    while pending:
        current = pending.pop()
        if ast_type(current) not in _DISTRIB_TYPES and not current.hasCorrectNumberArguments():
            return current
        pending.extend(current.getChild(i) for i in range(current.getNumChildren()))
    return None


def _specific(message: str) -> str:
    """The line of a libsbml message about this document (after the rule and its
    ``Reference:`` line), else the rule itself."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    about = [line for line in lines[1:] if not line.startswith("Reference:")]
    return about[-1] if about else lines[0] if lines else "(no message)"


def check_network(network: Network) -> None:
    """Refuse ``network`` when a value it uses is NaN or infinite, or a volume is
    negative."""
    used = set()
    for expression in _expressions(network):
        used |= {symbol.name for symbol in _without_draws(expression).free_symbols}
    for parameter in network.parameters:
        if parameter.id in used and not math.isfinite(parameter.value):
            raise InvalidSBMLError(
                f"parameter '{parameter.id}' is {parameter.value}; every analysis needs a "
                "finite value: fix it in the SBML")
    holding = {species.compartment for species in network.species}
    for compartment in network.compartments:
        size = compartment.size
        if size is None or compartment.id not in holding | used:
            continue
        if not math.isfinite(size) or size < 0:
            raise InvalidSBMLError(
                f"compartment '{compartment.id}' has size {size}; give it a finite, "
                "non-negative size (or override it: read_sbml(..., volumes={...}), "
                "--volume ID=LITRES)")
    known = set(network.species_ids) | set(network.parameter_ids)
    for reaction in network.reactions:
        unknown = sorted(symbol.name for symbol in reaction.rate_law.propensity().free_symbols
                         if symbol != TIME and symbol.name not in known)
        if unknown:
            raise InvalidSBMLError(
                f"the kinetic law of '{reaction.id}' uses {', '.join(map(repr, unknown))}, "
                "which is not a species, parameter or compartment of the model")
    for element_id, expression in _named_expressions(network):
        expression = _without_draws(expression)
        if any(expression.has(constant) for constant in _NOT_FINITE) or any(
                not math.isfinite(float(number)) for number in expression.atoms(sympy.Float)):
            raise InvalidSBMLError(
                f"the math of '{element_id}' contains a NaN or infinite number, or one "
                f"beyond double precision ({str(expression)[:200]}); use finite values")


def _named_expressions(network: Network):
    """(element id, sympy expression) of every rate law, rule output and event."""
    for reaction in network.reactions:
        yield reaction.id, reaction.rate_law.propensity()
    for output in network.outputs:
        yield output.id, output.formula
    for event in network.events:
        yield event.id, event.trigger
        for _, assignment in event.assignments:
            yield event.id, assignment
        for extra in (event.delay, event.priority):
            if extra is not None:
                yield event.id, extra


def _expressions(network: Network):
    return (expression for _, expression in _named_expressions(network)
            if isinstance(expression, sympy.Basic))


def _without_draws(expression: sympy.Basic) -> sympy.Basic:
    """``expression`` with each distrib draw replaced by a symbol: a draw's arguments
    (infinite truncation bounds included) are checked by its sampler, not here."""
    draws = expression.atoms(RandomDraw)
    if not draws:
        return expression
    return expression.xreplace({draw: sympy.Dummy("draw") for draw in draws})
