"""Add BioModels entries to models/biomodels/index.csv and recompute its status columns.

Columns, by who computes them:

- descriptive (libsbml, from the file alone): ``name``, ``sbml_level``, ``sbml_version``,
  ``n_species``, ``n_reactions``, ``n_compartments``, ``compartment_volumes`` (``id=size``
  joined by ``;``, ``NA`` if unset), ``n_rules`` (assignment + rate + algebraic),
  ``n_events``, ``n_function_definitions``, ``has_non_mass_action`` (heuristic: a kinetic
  law calls a function definition, divides by an expression containing a species, raises
  a species to a non-integer or symbolic power, or applies exp/log/piecewise/... to a
  species), ``species_units`` (``amount`` / ``concentration`` when every species that
  gives an initial value gives an initialAmount / initialConcentration, else ``mixed``), ``n_initial_assignments``,
  ``n_rate_rules``;
- ``tellurium_ok``: libroadrunner loads the file and ``simulate(0, 10, 11)`` is finite;
- ``sbml_cme_status`` / ``sbml_cme_reason`` (today's ``read_sbml`` + ``crosscheck`` on
  t = 0..10, 51 points, as tests/io/test_biomodels_crosscheck.py runs them):
  ``ok`` / ``crosscheck agree``; ``unsupported`` / ``<feature> in '<element>'``;
  ``failed`` / the error or the columns that disagree;
- ``lna_status`` / ``lna_reason``: ``tools/lna_index.py``'s ``lna_outcome``.

``source`` and ``read_options`` are given by the caller. Rows of entries already in the
index are never changed, except their four status columns with ``--update-status``.

Usage::

    python tools/biomodels_index.py --add ID SOURCE [--read-options ID 'k=v;k=v'] ...
    python tools/biomodels_index.py --update-status [ID ...]
    python tools/biomodels_index.py --check [ID ...]

``--add`` appends a row for ``models/biomodels/ID.xml`` (SOURCE as in the ``source``
column: ``github.com/biomodels/ID@commit:path``); ``--update-status`` rewrites the status
columns of the given (default: all) rows; ``--check`` recomputes every computed column of
the given (default: all) rows and prints the differences, writing nothing.
"""

from __future__ import annotations

import argparse
import csv
import warnings

import libsbml
import numpy as np

import sbml_cme
from sbml_cme import UnsupportedFeatureError
from sbml_cme.crosscheck import crosscheck
from lna_index import INDEX, lna_outcome, read_options

MODELS = INDEX.parent
CROSSCHECK_TIMES = np.linspace(0.0, 10.0, 51)
_NON_ALGEBRAIC = {  # AST types that make a law non-mass-action when applied to a species
    getattr(libsbml, name) for name in dir(libsbml)
    if name.startswith(("AST_FUNCTION_", "AST_LOGICAL_", "AST_RELATIONAL_"))
    and name != "AST_FUNCTION_POWER"}


def _names(node: libsbml.ASTNode) -> set[str]:
    """Identifiers read anywhere in ``node``."""
    found = {node.getName()} if node.isName() else set()
    for i in range(node.getNumChildren()):
        found |= _names(node.getChild(i))
    return found


def _constant(node: libsbml.ASTNode) -> float | None:
    """The value of a numeric literal, possibly negated; None otherwise."""
    if node.isNumber():
        return node.getValue()
    if node.getType() == libsbml.AST_MINUS and node.getNumChildren() == 1:
        inner = _constant(node.getChild(0))
        return None if inner is None else -inner
    return None


def _non_mass_action(node: libsbml.ASTNode, species: set[str]) -> bool:
    """The index's heuristic for one kinetic-law subtree (see the module docstring)."""
    kind = node.getType()
    children = [node.getChild(i) for i in range(node.getNumChildren())]
    if kind == libsbml.AST_FUNCTION:
        return True
    if kind == libsbml.AST_DIVIDE and _names(children[1]) & species:
        return True
    if kind in (libsbml.AST_POWER, libsbml.AST_FUNCTION_POWER) and _names(children[0]) & species:
        exponent = _constant(children[1])
        if exponent is None or exponent != int(exponent):
            return True
    if kind in _NON_ALGEBRAIC and _names(node) & species:
        return True
    return any(_non_mass_action(child, species) for child in children)


def _size(compartment: libsbml.Compartment) -> str:
    if not compartment.isSetSize():
        return "NA"
    size = compartment.getSize()
    short = f"{size:g}"
    return short if float(short) == size else repr(size)


def _species_units(model: libsbml.Model) -> str:
    species = [s for s in model.getListOfSpecies()  # rule-assigned ones may give neither
               if s.isSetInitialAmount() or s.isSetInitialConcentration()]
    if species and all(s.isSetInitialAmount() for s in species):
        return "amount"
    if species and all(s.isSetInitialConcentration() for s in species):
        return "concentration"
    return "mixed"


def describe(model_id: str) -> dict:
    """The descriptive columns of ``models/biomodels/<model_id>.xml`` (libsbml only)."""
    document = libsbml.readSBMLFromFile(str(MODELS / f"{model_id}.xml"))
    model = document.getModel()
    species = {s.getId() for s in model.getListOfSpecies()}
    rules = list(model.getListOfRules())
    laws = [r.getKineticLaw() for r in model.getListOfReactions() if r.isSetKineticLaw()]
    return {
        "name": model.getName(),
        "sbml_level": document.getLevel(), "sbml_version": document.getVersion(),
        "n_species": model.getNumSpecies(), "n_reactions": model.getNumReactions(),
        "n_compartments": model.getNumCompartments(),
        "compartment_volumes": ";".join(f"{c.getId()}={_size(c)}"
                                        for c in model.getListOfCompartments()),
        "n_rules": len(rules), "n_events": model.getNumEvents(),
        "n_function_definitions": model.getNumFunctionDefinitions(),
        "has_non_mass_action": any(law.isSetMath() and _non_mass_action(law.getMath(), species)
                                   for law in laws),
        "species_units": _species_units(model),
        "n_initial_assignments": model.getNumInitialAssignments(),
        "n_rate_rules": sum(rule.isRate() for rule in rules),
    }


def tellurium_ok(model_id: str) -> bool:
    """libroadrunner loads the file and ``simulate(0, 10, 11)`` returns finite values."""
    import roadrunner  # heavy import, deferred

    try:
        result = roadrunner.RoadRunner(str(MODELS / f"{model_id}.xml")).simulate(0, 10, 11)
    except Exception:  # roadrunner raises bare RuntimeError
        return False
    return bool(np.all(np.isfinite(np.asarray(result))))


def sbml_cme_outcome(model_id: str, options: str) -> tuple[str, str]:
    """(sbml_cme_status, sbml_cme_reason): today's ``read_sbml`` and ``crosscheck``."""
    path = MODELS / f"{model_id}.xml"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            network = sbml_cme.read_sbml(path, **read_options(options))
            table = crosscheck(path, CROSSCHECK_TIMES, network=network)
    except UnsupportedFeatureError as error:
        where = f" in '{error.element_id}'" if error.element_id else ""
        return "unsupported", f"{error.feature}{where}"
    except Exception as error:  # anything else is a bug to record, not to hide
        return "failed", f"{type(error).__name__}: {str(error).split('. ')[0]}"
    if not len(table):
        return "failed", "crosscheck compared nothing"
    disagreeing = table[table.verdict != "agree"]
    if disagreeing.empty:
        return "ok", "crosscheck agree"
    return "failed", "crosscheck disagrees on " + ", ".join(
        f"{row.species} (max rel deviation {row.max_rel_deviation:.3g})"
        for row in disagreeing.itertuples())


def cell_text(value) -> str:
    """A column value as the index writes it (booleans as ``true``/``false``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def computed_row(row: dict) -> dict:
    """Every computed column of one index row (``id``, ``source``, ``read_options`` given)."""
    new = dict(row)
    new.update({key: cell_text(value) for key, value in describe(row["id"]).items()})
    new["tellurium_ok"] = cell_text(tellurium_ok(row["id"]))
    new.update(status_columns(new))
    return new


def status_columns(row: dict) -> dict:
    """The four status columns of one index row, recomputed."""
    status, reason = sbml_cme_outcome(row["id"], row["read_options"])
    staged = {**row, "sbml_cme_status": status, "sbml_cme_reason": reason}
    lna_status, lna_reason = lna_outcome(staged)
    return {"sbml_cme_status": status, "sbml_cme_reason": reason,
            "lna_status": lna_status, "lna_reason": lna_reason}


def _read() -> tuple[list[str], list[dict]]:
    with open(INDEX, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def _write(fields: list[str], rows: list[dict]) -> None:
    with open(INDEX, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="model ids for --update-status / --check")
    parser.add_argument("--add", nargs=2, action="append", default=[],
                        metavar=("ID", "SOURCE"), help="append a row for models/biomodels/ID.xml")
    parser.add_argument("--read-options", nargs=2, action="append", default=[],
                        metavar=("ID", "OPTIONS"), help="read_options of an added row")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--update-status", action="store_true",
                      help="recompute the status columns of existing rows")
    mode.add_argument("--check", action="store_true",
                      help="print differences of every computed column, write nothing")
    args = parser.parse_args()
    fields, rows = _read()
    known = {row["id"] for row in rows}
    selected = [row for row in rows if not args.models or row["id"] in args.models]
    if args.check:
        for row in selected:
            new = computed_row(row)
            for key in fields:
                if new[key] != row[key]:
                    print(f"{row['id']}: {key}: {row[key]!r} -> {new[key]!r}")
        return
    options = dict(args.read_options)
    added = []
    for model_id, source in args.add:
        if model_id in known:
            parser.error(f"{model_id} is already in {INDEX.name}; use --update-status")
        row = computed_row({"id": model_id, "source": source,
                            "read_options": options.get(model_id, "")})
        print(f"{model_id}: {row['sbml_cme_status']}: {row['sbml_cme_reason']}; "
              f"LNA {row['lna_status']}")
        added.append({key: row[key] for key in fields})
    updates = {}
    if args.update_status:
        for row in selected:
            updates[row["id"]] = status_columns(row)
            print(f"{row['id']}: {updates[row['id']]['sbml_cme_status']}: "
                  f"{updates[row['id']]['sbml_cme_reason']}")
    fields, rows = _read()  # re-read: others may have edited the file meanwhile
    for row in rows:
        row.update(updates.get(row["id"], {}))
    _write(fields, rows + added)


if __name__ == "__main__":
    main()
