"""The SBML document around the walk over its core model (:mod:`sbml_cme.io.sbml_reader`).

This module owns what comes before or beside that walk:

- ``comp`` hierarchies, flattened by libsbml's own comp flattening converter
  (:func:`flatten_comp`), external model definitions resolved relative to the file;
- Level 3 packages (:func:`package_notes`): those with no kinetic meaning are ignored
  with a warning, those that change the dynamics in ways sbml_cme does not model are
  refused with the reason;
- algebraic rules (:func:`solve_algebraic_rules`), each solved by sympy for the one
  variable it determines, so that it becomes an assignment rule;
- which symbols of a formula can change during a run (:func:`changing_symbols`), so that
  stoichiometries are evaluated once at import only when they are constant in time.
"""

from __future__ import annotations

import os
import warnings
from urllib.parse import unquote, urlparse

import libsbml
import sympy

from ..errors import InvalidSBMLError, UnsupportedFeatureError
from ..network import TIME
from .mathml import FunctionDefinitions, to_sympy

#: Packages with no kinetic meaning, ignored even when required: what each adds.
IGNORED_PACKAGES = {
    "fbc": "flux bounds and objectives for flux balance analysis, a steady state rather "
           "than a time course; the kinetic laws still define the dynamics",
    "layout": "diagram layout",
    "render": "diagram rendering styles",
    "groups": "groups of elements, which carry no math",
}

#: Packages that change the dynamics in ways sbml_cme does not model: what each adds.
REFUSED_PACKAGES = {
    "multi": "multistate, multicomponent species whose reactions are rules over species "
             "types",
    "spatial": "spatial geometry and transport (partial differential equations)",
    "qual": "qualitative (logical) models, whose transitions replace kinetic laws",
    "arrays": "arrays of elements indexed by dimensions",
    "dyn": "elements created and destroyed during the run",
}

#: Packages read elsewhere: 'l3v2extendedmath' is core math that libsbml attaches to every
#: L3V2 document; distrib draws are read into RandomDraw (uncertainty annotations have no
#: effect on the dynamics); comp is flattened before.
_READ_PACKAGES = {"l3v2extendedmath", "distrib", "comp"}


def severe_errors(document: libsbml.SBMLDocument) -> list[libsbml.SBMLError]:
    """libsbml's errors in the document as read, without those on packages that
    :func:`package_notes` decides: an unknown package that is required (refused there,
    naming it) and ``required="true"`` on a package without kinetic meaning (ignored)."""
    errors = [document.getError(i) for i in range(document.getNumErrors())
              if document.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    return [e for e in errors if e.getErrorId() != libsbml.RequiredPackagePresent and not (
        e.getPackage() in IGNORED_PACKAGES and e.getErrorId() % 100000 == _MUST_NOT_BE_REQUIRED)]


#: Error id (within each package's range) of "'<package>:required' must be 'false'".
_MUST_NOT_BE_REQUIRED = 20103


def flatten_comp(document: libsbml.SBMLDocument, source: str, base_dir: str) -> bool:
    """Flatten a ``comp`` document in place with libsbml's comp flattening converter.

    Parameters
    ----------
    document : libsbml.SBMLDocument
        The document as read; replaced in place by its flat core model.
    source : str
        Where it came from (named in errors).
    base_dir : str
        Directory against which relative external model definition sources resolve.

    Returns
    -------
    bool
        True when the document used ``comp`` and is now flat.

    Raises
    ------
    InvalidSBMLError
        An external model definition's file is missing, or libsbml cannot flatten.
    """
    if document.getLevel() < 3 or not document.isPackageEnabled("comp"):
        return False
    for definition in document.getPlugin("comp").getListOfExternalModelDefinitions():
        path = _external_path(definition.getSource(), base_dir)
        if path is None or not os.path.isfile(path):
            raise InvalidSBMLError(
                f"the external model definition '{definition.getId()}' of '{source}' refers "
                f"to '{definition.getSource()}', which is not a file"
                f"{f' ({path})' if path else ''}; put it beside the model, or pass "
                "base_dir= to read_sbml_string")
    properties = libsbml.ConversionProperties()
    properties.addOption("flatten comp", True)
    properties.addOption("basePath", base_dir)
    status = document.convert(properties)
    errors = [document.getError(i) for i in range(document.getNumErrors())
              if document.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if status != libsbml.LIBSBML_OPERATION_SUCCESS or errors:
        raise InvalidSBMLError(f"libsbml could not flatten the comp model '{source}'",
                               [e.getMessage().strip() for e in errors])
    return True


def _external_path(uri: str, base_dir: str) -> str | None:
    """The local file an external model definition's ``source`` URI names (None: not
    a local file, e.g. an http URI)."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file") and len(parsed.scheme) > 1:  # 'C:' is a drive
        return None
    path = unquote(parsed.path) if parsed.scheme == "file" else uri
    return os.path.normpath(os.path.join(base_dir, path))


def package_notes(document: libsbml.SBMLDocument, element_id: str) -> list[str]:
    """Notes on the Level 3 packages that the import ignores.

    An ignored package is also a warning when it is required or is ``fbc`` (whose
    model may be meant for flux balance analysis rather than a time course); diagrams
    and groups with ``required="false"`` are ignored quietly.

    Raises
    ------
    UnsupportedFeatureError
        A package that changes the dynamics is required (``required="true"``).
    """
    if document.getLevel() < 3:
        return []
    packages = {document.getPlugin(i).getPackageName()
                for i in range(document.getNumPlugins())}
    packages |= {document.getUnknownPackagePrefix(i)
                 for i in range(document.getNumUnknownPackages())}
    notes = []
    for package in sorted(packages - _READ_PACKAGES):
        required = _required(document, package)
        if package in IGNORED_PACKAGES:
            notes.append(f"the SBML package '{package}' is ignored: it adds "
                         f"{IGNORED_PACKAGES[package]}")
            if required or package == "fbc":
                warnings.warn(notes[-1], UserWarning, stacklevel=5)
        elif required and package in REFUSED_PACKAGES:
            raise UnsupportedFeatureError(
                f"the SBML package '{package}' ({REFUSED_PACKAGES[package]})", element_id,
                hint="It changes the dynamics, and sbml_cme reads the core model only.")
        elif required:
            raise UnsupportedFeatureError(
                f"the SBML package '{package}' (required=true)", element_id,
                hint="sbml_cme does not know this package; remove its constructs and read "
                     "the core model.")
        else:
            notes.append(f"the SBML package '{package}' is ignored (required=false: it "
                         "does not change the core model's math)")
    return notes


def _required(document: libsbml.SBMLDocument, package: str) -> bool:
    if document.isSetPackageRequired(package):
        return bool(document.getPackageRequired(package))
    for i in range(document.getNumUnknownPackages()):
        if document.getUnknownPackagePrefix(i) == package:
            return bool(document.getPackageRequired(document.getUnknownPackageURI(i)))
    return False


# -- algebraic rules ----------------------------------------------------------------------
def solve_algebraic_rules(model: libsbml.Model,
                          functions: FunctionDefinitions) -> dict[str, sympy.Basic]:
    """Each algebraic rule ``0 = f`` as an assignment rule ``variable = g``.

    A rule may determine a variable that appears in it and that nothing else determines:
    a non-constant parameter, compartment or species reference, or a non-constant species
    that no reaction changes, not set by an assignment or rate rule or by an event. Rules and variables
    are matched one to one (the bipartite matching of SBML's overdetermination check);
    the matching must be the only one, and sympy must find exactly one solution
    ``variable = g`` of its rule.

    Returns
    -------
    dict
        Variable id -> formula over SBML symbols, like an assignment rule's math.

    Raises
    ------
    UnsupportedFeatureError
        A rule with no such variable, or with a choice between several; names the rule.
    """
    rules = [rule for rule in model.getListOfRules() if rule.isAlgebraic()]
    if not rules:
        return {}
    free = _undetermined_variables(model)
    names, options = [], []
    for position, rule in enumerate(rules):
        name = rule.getId() or rule.getMetaId() or f"algebraic rule {position + 1}"
        expression = to_sympy(rule.getMath(), name, functions)
        candidates = sorted((s for s in expression.free_symbols if s.name in free), key=str)
        solved = {symbol.name: solution for symbol in candidates
                  if (solution := _unique_solution(expression, symbol)) is not None}
        if not solved:
            tried = f" (sympy finds no unique solution for {[s.name for s in candidates]})" \
                if candidates else ""
            raise UnsupportedFeatureError(
                f"an algebraic rule that determines no variable{tried}", name,
                hint="An algebraic rule must be solvable for exactly one non-constant "
                     "parameter, compartment or species reference, or species that no "
                     "reaction changes, that no other rule sets. Solve it by hand into an "
                     "assignment rule.")
        names.append(name)
        options.append(solved)
    matching = _matching(options)
    for index, name in enumerate(names):
        if index not in matching:
            raise UnsupportedFeatureError(
                "an algebraic rule whose variables other rules already determine "
                f"({sorted(options[index])})", name,
                hint="The model is overdetermined: remove one of the rules.")
        alternative = _matching(options, without=(index, matching[index]))
        if len(alternative) == len(options):
            raise UnsupportedFeatureError(
                f"an algebraic rule that may determine either '{matching[index]}' or "
                f"'{alternative[index]}'", name,
                hint="Write the rule as an assignment rule for the variable it sets.")
    return {variable: options[index][variable] for index, variable in matching.items()}


def _undetermined_variables(model: libsbml.Model) -> set[str]:
    """Ids that an algebraic rule may determine (SBML's overdetermination check)."""
    # An event target is not determined by a rule at all times (the event sets it).
    set_by_rules = {rule.getVariable() for rule in model.getListOfRules()
                    if not rule.isAlgebraic()} | event_targets(model)
    references = [reference for reaction in model.getListOfReactions()
                  for reference in list(reaction.getListOfReactants()) +
                  list(reaction.getListOfProducts())]
    changed_by_reactions = {reference.getSpecies() for reference in references}
    free = {s.getId() for s in model.getListOfSpecies() if not s.getConstant() and (
        s.getBoundaryCondition() or s.getId() not in changed_by_reactions)}
    free |= {c.getId() for c in model.getListOfCompartments() if not c.getConstant()}
    free |= {p.getId() for p in model.getListOfParameters() if not p.getConstant()}
    if model.getLevel() >= 3:
        free |= {r.getId() for r in references if r.isSetId() and not r.getConstant()}
    return free - set_by_rules


def _unique_solution(expression: sympy.Expr, symbol: sympy.Symbol) -> sympy.Expr | None:
    """``g`` with ``expression = 0`` exactly when ``symbol = g``, or None."""
    slope = sympy.diff(expression, symbol)
    if slope != 0 and not slope.has(symbol):  # linear: the usual conservation law
        return -expression.subs(symbol, 0) / slope
    try:
        solutions = sympy.solve(expression, symbol)
    except (NotImplementedError, TypeError, ValueError):
        return None
    return solutions[0] if len(solutions) == 1 and not solutions[0].has(symbol) else None


def _matching(options: list[dict], without: tuple[int, str] | None = None) -> dict[int, str]:
    """A maximum matching of rules (indices) to variables (Kuhn's augmenting paths),
    optionally without one rule-variable edge."""
    owner: dict[str, int] = {}

    def augment(index: int, visited: set[str]) -> bool:
        for variable in options[index]:
            if (index, variable) == without or variable in visited:
                continue
            visited.add(variable)
            if variable not in owner or augment(owner[variable], visited):
                owner[variable] = index
                return True
        return False

    for index in range(len(options)):
        augment(index, set())
    return {index: variable for variable, index in owner.items()}


# -- formulas constant in time ------------------------------------------------------------
def changing_symbols(formula: sympy.Basic, model: libsbml.Model,
                     rule_formulas: dict[str, sympy.Basic]) -> list[str]:
    """The symbols of ``formula`` whose value can change during a run (sorted).

    Time, species that reactions may change, rate-rule and event targets change; an
    assignment-rule target changes when its formula does; other parameters,
    compartments and species references are constants.
    """
    targets = {rule.getVariable() for rule in model.getListOfRules() if rule.isRate()}
    changing = _changing(formula, model, rule_formulas, targets | event_targets(model),
                         frozenset())
    return sorted("time" if name == TIME.name else name for name in changing)


def event_targets(model: libsbml.Model) -> set[str]:
    """Ids that some event assigns."""
    return {assignment.getVariable() for event in model.getListOfEvents()
            for assignment in event.getListOfEventAssignments()}


def _changing(formula, model, rule_formulas, targets, seen) -> set[str]:
    changing = set()
    for symbol in formula.free_symbols:
        name = symbol.name
        if symbol == TIME or name in targets or name in seen:
            changing.add(name)
        elif name in rule_formulas:
            if _changing(rule_formulas[name], model, rule_formulas, targets, seen | {name}):
                changing.add(name)
        elif model.getSpecies(name) is not None:
            species = model.getSpecies(name)
            if not (species.getConstant() or species.getBoundaryCondition()):
                changing.add(name)
        elif model.getParameter(name) is None and model.getCompartment(name) is None and \
                not _is_species_reference(model, name):
            changing.add(name)  # e.g. a reaction id: its flux
    return changing


def _is_species_reference(model: libsbml.Model, element_id: str) -> bool:
    element = model.getElementBySId(element_id)
    return element is not None and element.getTypeCode() == libsbml.SBML_SPECIES_REFERENCE
