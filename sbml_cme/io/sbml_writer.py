"""Write the original SBML document back with sbml_cme's results as annotations.

This module owns the annotation schema of the namespace :data:`NAMESPACE` (prefix
``sbmlcme``), documented in ``docs/annotations.md``:

- on the model: package version, date, read options, one ``run`` per method (seed, times,
  run settings) and any report-level settings;
- on each SBML reaction: one ``channel`` per stochastic channel (a reversible reaction
  gives ``<id>_forward`` and ``<id>_backward``) with its propensity in molecule counts and
  the constants of its conversion (``Network.conversion_table()``);
- on each species (and each parameter or compartment reported as an output): per method, the
  mean, standard deviation and Fano factor at the last output time (or stationary);
- reserved: ``burst`` and ``delay`` declarations, written only when the network has some.

Nothing of the original document is removed or changed: our annotation is added as one
more top-level element of an element's ``<annotation>`` (which SBML allows for any
namespace other than SBML's own), existing RDF/MIRIAM and other tools' annotations are
kept byte for byte in content, and a previous ``sbmlcme`` annotation is replaced, so
writing twice never duplicates it. The annotations are plain XML (not RDF), so no
``metaid`` is needed and none is created.

:func:`read_annotations` reads the annotations back as plain dicts.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import libsbml
import numpy as np
import pandas as pd

from ..errors import InvalidSBMLError, OptionsError, SBMLError
from ..network import Burst, Network
from .sbml_reader import ReadOptions, read_sbml_string

#: The XML namespace URI of sbml_cme annotations (version 1 of the schema).
NAMESPACE = "https://sbml-cme.org/annotations/1"
#: The prefix used for :data:`NAMESPACE` in written documents.
PREFIX = "sbmlcme"

#: Network fields that must match the network re-read from ``source_sbml``.
_CORE_FIELDS = ("species", "reactions", "parameters", "compartments", "outputs", "events")

#: ``channel`` attributes (camelCase in XML) <- ``conversion_table()`` columns.
_CHANNEL_COLUMNS = {
    "id": "reaction", "form": "form", "propensity": "propensity",
    "deterministicRate": "deterministic_rate", "stochasticConstant": "stochastic_constant",
    "macroscopicConstant": "macroscopic_constant", "volumeFactor": "volume_factor",
    "moleculesPerUnit": "molecules_per_unit", "combinatorialFactor": "combinatorial_factor",
    "orders": "orders", "signedTerms": "signed_terms",
}

#: Attributes read back as numbers by :func:`read_annotations`.
_NUMERIC = {"stochasticConstant", "macroscopicConstant", "volumeFactor", "moleculesPerUnit",
            "time", "mean", "sd", "fanoFactor", "tStart", "tEnd", "litres"}
_INTEGER = {"nTimes"}


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------
def write_annotated_sbml(network: Network, report_or_results: Any,
                         path: str | os.PathLike) -> Path:
    """Write ``network``'s original SBML with sbml_cme annotations to ``path``.

    Parameters
    ----------
    network : Network
        A network read from SBML (``read_sbml`` / ``read_sbml_string``): its
        ``source_sbml`` is the document written, and it must be unchanged since reading
        (no ``with_parameters`` / ``with_initial_counts``), so that the annotations
        describe the model in the file.
    report_or_results : Report, result, list or dict of results, or None
        Where the per-species statistics come from. A ``Report`` (from ``analyze``)
        contributes each ``<method>_moments`` table (and a ``deterministic`` wide table
        in model units) plus its ``run_info``; a result contributes its ``moments``
        frame (``time, species, mean, variance`` in molecule counts) and ``run_info``.
        The method name is ``result.method`` (``"ssa"``, ``"cle"``, ``"lna"``), ``"cme"``
        for a CME result, ``"deterministic"`` for a deterministic one, or the dict key.
        ``None`` writes only the reaction and model annotations.
    path : path-like
        Output file; parent directories are created.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    OptionsError
        The network was not read from SBML, was changed after reading, or a result
        belongs to another network or has no moments.
    InvalidSBMLError
        ``network.source_sbml`` cannot be read by libsbml.
    SBMLError
        libsbml refused an annotation (a bug: please report it).
    """
    if not network.source_sbml:
        raise OptionsError(
            "write_annotated_sbml needs the SBML the network was read from, and this "
            "network has none (it was built in Python, not read with read_sbml). Read the "
            "model with sbml_cme.read_sbml(path) and pass that network.")
    options = read_options_dict(network)
    _check_network_matches_source(network, options)
    runs = _collect_runs(network, report_or_results)
    methods = [run["method"] for run in runs]
    if len(set(methods)) != len(methods):
        raise OptionsError(f"two results have the same method name ({methods}); pass a dict "
                           "{name: result} to name them apart")
    document = _parse(network.source_sbml)
    model = document.getModel()

    _annotate(model, _model_node(network, options, runs, report_or_results))
    for sbml_id, node in _reaction_nodes(network).items():
        reaction = model.getReaction(sbml_id)
        if reaction is None:  # the importer names channels after SBML reactions
            raise SBMLError(f"channel(s) of SBML reaction '{sbml_id}' have no reaction "
                            "element in the source document")
        _annotate(reaction, node)
    for element_id, node in _statistics_nodes(network, runs).items():
        element = (model.getSpecies(element_id) or model.getParameter(element_id)
                   or model.getCompartment(element_id))
        if element is not None:
            _annotate(element, node)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(libsbml.writeSBMLToString(document), encoding="utf-8")
    return path


def read_options_dict(network: Network) -> dict:
    """The ``read_sbml`` keyword arguments the network was read with.

    ``read_sbml(path, **read_options_dict(network))`` reproduces the network.
    """
    options = ReadOptions(*network.read_options) if network.read_options else ReadOptions()
    result: dict = {"falling_factorials": bool(options.falling_factorials)}
    if options.volumes:
        result["volumes"] = {str(k): float(v) for k, v in options.volumes}
    if options.substance_unit is not None:
        result["substance_unit"] = options.substance_unit
    if getattr(options, "delays", None) is not None:
        result["delays"] = options.delays
        result["delay_phases"] = options.delay_phases
    if options.outputs:
        result["outputs"] = list(options.outputs)
    return result


def _check_network_matches_source(network: Network, options: dict) -> None:
    reread = _observed_like(network, _with_bursts_of(
        network, read_sbml_string(network.source_sbml, **options)))
    changed = [name for name in _CORE_FIELDS
               if getattr(reread, name) != getattr(network, name)]
    if changed:
        raise OptionsError(
            f"the network's {', '.join(changed)} differ from its source SBML (changed "
            "after reading, e.g. by with_parameters or with_initial_counts), so the "
            "annotations would not describe the model in the file. Write the changed "
            "values into the SBML model and read it again, or annotate the network as read.")


def _with_bursts_of(network: Network, reread: Network) -> Network:
    """``reread`` with ``network``'s burst declarations: bursts are not part of SBML but
    of our annotations (written with the network), so they are no change to the model."""
    declared = getattr(network, "bursts", None)
    for channel, burst in (declared.items() if isinstance(declared, Mapping) else ()):
        if isinstance(burst, Burst) and channel in reread.reaction_ids:
            reread = reread.with_burst(channel, burst.species, mean=burst.mean_size,
                                       distribution=burst.probabilities)
    return reread


def _observed_like(network: Network, reread: Network) -> Network:
    """``reread`` reporting the parameters and compartments that ``network`` reports
    (``with_outputs``): what is observed is no change to the model."""
    symbols = set(reread.parameter_ids) | set(reread.compartment_map)
    return reread.with_outputs([o.id for o in network.outputs if o.id in symbols])


def _parse(text: str) -> libsbml.SBMLDocument:
    document = libsbml.readSBMLFromString(text)
    errors = [document.getError(i) for i in range(document.getNumErrors())
              if document.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if errors or document.getModel() is None:
        raise InvalidSBMLError("libsbml cannot read the network's source SBML",
                               [e.getMessage().strip() for e in errors])
    return document


# -- XML helpers ---------------------------------------------------------------------------
def _text(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # round-trips exactly; nan and inf as 'nan', 'inf'
    return str(value)


def _node(name: str, attributes: Mapping[str, Any] = (), children: Iterable = (),
          top: bool = False) -> libsbml.XMLNode:
    """An ``sbmlcme:<name>`` element; ``None`` attributes are left out."""
    xml_attributes = libsbml.XMLAttributes()
    for key, value in dict(attributes).items():
        if value is None:
            continue
        xml_attributes.add(key, _text(value))
    namespaces = libsbml.XMLNamespaces()
    if top:
        namespaces.add(NAMESPACE, PREFIX)
    node = libsbml.XMLNode(libsbml.XMLTriple(name, NAMESPACE, PREFIX), xml_attributes,
                           namespaces)
    for child in children:
        node.addChild(child)
    return node


def _annotate(element: libsbml.SBase, node: libsbml.XMLNode) -> None:
    """Add ``node`` as a top-level annotation element of ``element``, in place.

    An existing annotation is edited in place rather than through ``setAnnotation`` /
    ``appendAnnotation``: those make libsbml regenerate the element's RDF from its parsed
    model history on writing, which rewrites the original MIRIAM annotation (for
    example ``dc:creator`` becomes ``dcterms:creator``).
    """
    if element.isSetAnnotation():
        annotation = element.getAnnotation()
        for index in reversed(range(annotation.getNumChildren())):
            if annotation.getChild(index).getURI() == NAMESPACE:
                annotation.removeChild(index)
        status = annotation.addChild(node)
    else:
        status = element.appendAnnotation(node)
    if status != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise SBMLError(
            f"libsbml refused the sbml_cme annotation on {element.getElementName()} "
            f"'{element.getId()}': {libsbml.OperationReturnValue_toString(status)}")


# -- model -----------------------------------------------------------------------------------
def _model_node(network: Network, options: dict, runs: list[dict],
                report_or_results: Any) -> libsbml.XMLNode:
    volumes = [_node("volume", {"compartment": k, "litres": v})
               for k, v in options.get("volumes", {}).items()]
    outputs = [_node("output", {"id": i}) for i in options.get("outputs", [])]
    children = [_node("readOptions", {"substanceUnit": options.get("substance_unit"),
                                      "fallingFactorials": options["falling_factorials"],
                                      "delays": options.get("delays"),
                                      "delayPhases": options.get("delay_phases")},
                      volumes + outputs)]
    for run in runs:
        settings = [_setting(k, v) for k, v in sorted(run["run_info"].items())
                    if _is_scalar(v)]
        times = run["times"]
        children.append(_node("run", {
            "method": run["method"], "seed": run["run_info"].get("seed"),
            "tStart": float(times.min()) if len(times) else None,
            "tEnd": float(times.max()) if len(times) else None,
            "nTimes": len(times)}, settings))
    report_info = getattr(report_or_results, "run_info", None)
    if _is_report(report_or_results) and isinstance(report_info, Mapping):
        children.extend(_setting(k, v) for k, v in sorted(report_info.items())
                        if _is_scalar(v))
    children.extend(_declaration_nodes(network, channel=None))
    from .. import __version__  # the package root imports io: defer
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return _node("model", {"packageVersion": __version__, "date": date}, children, top=True)


def _setting(name: str, value: Any) -> libsbml.XMLNode:
    return _node("setting", {"name": name, "value": "None" if value is None else value})


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float, np.integer,
                                               np.floating, np.bool_))


# -- reactions -------------------------------------------------------------------------------
def _reaction_nodes(network: Network) -> dict[str, libsbml.XMLNode]:
    """One ``sbmlcme:reaction`` per SBML reaction id, with its channels."""
    table = network.conversion_table()
    channels: dict[str, list] = {}
    for row in table.to_dict("records"):
        attributes = {key: _clean(row[column]) for key, column in _CHANNEL_COLUMNS.items()}
        children = _declaration_nodes(network, channel=row["reaction"])
        channels.setdefault(row["sbml_reaction"], []).append(
            _node("channel", attributes, children))
    return {sbml_id: _node("reaction", {}, nodes, top=True)
            for sbml_id, nodes in channels.items()}


def _clean(value: Any) -> Any:
    """``None`` for missing table values (NaN, None, empty strings)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return value


def _declaration_nodes(network: Network, channel: str | None) -> list[libsbml.XMLNode]:
    """Reserved ``burst`` / ``delay`` elements for one channel (or the unattached ones).

    The network may carry ``bursts`` and ``delays`` (a later issue adds them): each a
    sequence of declarations (dataclasses or mappings) naming their channel in a
    ``reaction`` or ``channel`` field, or a mapping channel id -> declaration. Every other
    field is written as an attribute. Nothing is written when there are none.
    """
    nodes = []
    known = set(network.reaction_ids)
    for kind, attribute in (("burst", "bursts"), ("delay", "delays")):
        for owner, fields in _declarations(getattr(network, attribute, None)):
            attached = owner if owner in known else None
            if attached == channel:
                nodes.append(_node(kind, {"channel": owner, **fields}))
    return nodes


def _declarations(declared: Any) -> list[tuple[str | None, dict]]:
    if not declared:
        return []
    if isinstance(declared, Mapping):
        items = [(key, value) for key, value in declared.items()]
    else:
        items = [(None, value) for value in declared]
    result = []
    for key, value in items:
        if dataclasses.is_dataclass(value):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        elif isinstance(value, Mapping):
            fields = dict(value)
        else:
            fields = {"value": value}
        owner = fields.pop("reaction", None) or fields.pop("channel", None) or key
        result.append((owner, {_camel(k): _declaration_value(v) for k, v in fields.items()}))
    return result


def _declaration_value(value: Any) -> Any:
    """A declaration field as an attribute: scalars as they are, a sequence of numbers
    space-separated (``repr``, exact), anything else as text."""
    if _is_scalar(value):
        return value
    if isinstance(value, (tuple, list)) and all(_is_scalar(v) for v in value):
        return " ".join(_text(v) for v in value)
    return str(value)


# -- species statistics -------------------------------------------------------------------
def _statistics_nodes(network: Network, runs: list[dict]) -> dict[str, libsbml.XMLNode]:
    """One ``sbmlcme:species`` per moments column with the last-time statistics."""
    units = {s: "molecules" for s in network.species_ids}
    units.update({o.id: ("molecules" if o.kind == "species" else "model units")
                  for o in network.outputs})
    per_element: dict[str, list] = {}
    for run in runs:
        for row in last_time_statistics(run["moments"]).to_dict("records"):
            per_element.setdefault(row["species"], []).append(_node("statistics", {
                "method": run["method"], "time": float(row["time"]),
                "mean": float(row["mean"]), "sd": float(row["sd"]),
                "fanoFactor": float(row["fano_factor"])}))
    return {element_id: _node("species", {"units": units.get(element_id, "molecules")},
                              nodes, top=True)
            for element_id, nodes in per_element.items()}


def last_time_statistics(moments: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd and Fano factor of each species at the last time of a moments frame.

    Parameters
    ----------
    moments : DataFrame
        ``time, species, mean, variance`` (molecule counts; time ``inf`` = stationary).

    Returns
    -------
    DataFrame
        ``species, time, mean, sd, fano_factor``: sd = sqrt(variance) in molecules, Fano
        factor = variance / mean (dimensionless for counts; NaN when the mean is 0).
    """
    last = moments[moments["time"] == moments["time"].max()]
    mean = last["mean"].to_numpy(dtype=float)
    variance = np.clip(last["variance"].to_numpy(dtype=float), 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        fano = np.where(mean != 0, variance / np.where(mean != 0, mean, 1.0), np.nan)
    return pd.DataFrame({"species": last["species"].to_numpy(),
                         "time": last["time"].to_numpy(dtype=float), "mean": mean,
                         "sd": np.sqrt(variance), "fano_factor": fano})


# -- gathering results ------------------------------------------------------------------------
_MOMENT_COLUMNS = {"time", "species", "mean", "variance"}


def _is_report(value: Any) -> bool:
    return hasattr(value, "tables") and isinstance(getattr(value, "tables"), Mapping)


def _collect_runs(network: Network, given: Any) -> list[dict]:
    """``[{method, moments, times, run_info}]`` from a Report or results."""
    if given is None:
        return []
    if _is_report(given):
        _check_same_network(network, getattr(given, "network", None), "the report")
        return _runs_from_tables(network, given.tables, dict(getattr(given, "run_info", {})))
    if isinstance(given, Mapping):
        return [_run_from_result(network, result, str(method))
                for method, result in given.items()]
    if isinstance(given, (list, tuple)):
        return [_run_from_result(network, result, None) for result in given]
    return [_run_from_result(network, given, None)]


def _method_name(result: Any) -> str:
    method = getattr(result, "method", None)
    if method:
        return str(method)
    name = type(result).__name__
    if name == "CMEResult":
        return "cme"
    if name == "DeterministicResult":
        return "deterministic"
    return re.sub(r"Result$", "", name).lower() or "result"


def _run_from_result(network: Network, result: Any, method: str | None) -> dict:
    method = method or _method_name(result)
    _check_same_network(network, getattr(result, "network", None), f"the {method} result")
    if hasattr(result, "moments"):
        moments = result.moments
    elif hasattr(result, "to_wide"):  # deterministic: counts, no variance
        moments = _wide_to_moments(result.to_wide("count"), scales=None)
    else:
        raise OptionsError(f"{type(result).__name__} has no moments: pass results of "
                           "sbml_cme analyses (simulate_ssa, solve_cme, solve_lna, "
                           "simulate_deterministic, ...) or an analyze() report")
    return {"method": method, "moments": moments,
            "times": np.asarray(getattr(result, "times", moments["time"].unique()), float),
            "run_info": dict(getattr(result, "run_info", {}) or {})}


def _runs_from_tables(network: Network, tables: Mapping[str, pd.DataFrame],
                      run_info: dict) -> list[dict]:
    runs = []
    for name, table in tables.items():
        if not isinstance(table, pd.DataFrame) or not _MOMENT_COLUMNS <= set(table.columns):
            continue
        if "method" in table.columns:
            runs.extend(_table_run(method, part.drop(columns="method"), run_info)
                        for method, part in table.groupby("method", sort=False))
        else:
            runs.append(_table_run(re.sub(r"_moments$", "", name), table, run_info))
    if "deterministic" in tables and not any(r["method"] == "deterministic" for r in runs):
        scales = _model_scales(network)
        runs.append(_table_run("deterministic",
                               _wide_to_moments(tables["deterministic"], scales), run_info))
    # A report holds each method twice (its <method>_moments table and the combined
    # timecourses table): keep the first of each.
    unique: dict[str, dict] = {}
    for run in runs:
        unique.setdefault(run["method"], run)
    return list(unique.values())


def _table_run(method: str, moments: pd.DataFrame, run_info: dict) -> dict:
    # Report-level settings go on the model once; a run keeps only its seed.
    info = {"seed": run_info["seed"]} if method in ("ssa", "cle") and "seed" in run_info else {}
    return {"method": str(method), "moments": moments[["time", "species", "mean", "variance"]],
            "times": np.asarray(moments["time"].unique(), float), "run_info": info}


def _model_scales(network: Network) -> dict[str, float]:
    """Molecules per model unit of each species and output column."""
    scales = {s: network.species_scale(s, "model") for s in network.species_ids}
    scales.update({o.id: network.output_scale(o, "model") for o in network.outputs})
    return scales


def _wide_to_moments(wide: pd.DataFrame, scales: Mapping[str, float] | None) -> pd.DataFrame:
    """A wide ``time, X, ...`` frame as moments in counts with zero variance."""
    columns = [c for c in wide.columns if c != "time"]
    values = wide[columns].to_numpy(dtype=float)
    if scales is not None:
        values = values * np.array([scales.get(c, 1.0) for c in columns])
    return pd.DataFrame({
        "time": np.repeat(wide["time"].to_numpy(dtype=float), len(columns)),
        "species": np.tile(columns, len(wide)),
        "mean": values.ravel(), "variance": np.zeros(values.size)})


def _check_same_network(network: Network, other: Network | None, what: str) -> None:
    if other is None or other is network:
        return
    if any(getattr(other, name) != getattr(network, name) for name in _CORE_FIELDS):
        raise OptionsError(f"{what} was computed on a different network than the one "
                           "being annotated; pass the network the analysis ran on")


# ---------------------------------------------------------------------------------------
# reading back
# ---------------------------------------------------------------------------------------
def read_annotations(path: str | os.PathLike) -> dict:
    """The sbml_cme annotations of an SBML file as plain dicts.

    Returns
    -------
    dict
        ``{"model": {"package_version", "date", "read_options", "runs", "settings",
        "bursts", "delays"}, "reactions": {sbml_id: [channel dict, ...]},
        "species": {id: {method: {"time", "mean", "sd", "fano_factor", "units"}}}}``.
        ``read_options`` are keyword arguments for ``read_sbml``; numbers are floats
        (``nan`` where undefined), keys snake_case. Empty dicts when the file has no
        sbml_cme annotations.

    Raises
    ------
    InvalidSBMLError
        libsbml cannot read the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InvalidSBMLError(f"SBML file '{path}' does not exist")
    model = _parse(Path(path).read_text(encoding="utf-8", errors="replace")).getModel()
    result: dict = {"model": {}, "reactions": {}, "species": {}}
    top = _ours(model)
    if top is not None:
        result["model"] = _model_dict(top)
    for reaction in model.getListOfReactions():
        node = _ours(reaction)
        if node is not None:
            result["reactions"][reaction.getId()] = [
                _channel_dict(child) for child in _children(node, "channel")]
    for element in (list(model.getListOfSpecies()) + list(model.getListOfParameters())
                    + list(model.getListOfCompartments())):
        node = _ours(element)
        if node is not None:
            units = node.getAttrValue("units")
            result["species"][element.getId()] = {
                stats["method"]: {**{k: v for k, v in stats.items() if k != "method"},
                                  "units": units}
                for stats in (_attributes(child) for child in _children(node, "statistics"))}
    return result


def _ours(element: libsbml.SBase) -> libsbml.XMLNode | None:
    if not element.isSetAnnotation():
        return None
    annotation = element.getAnnotation()
    for index in range(annotation.getNumChildren()):
        child = annotation.getChild(index)
        if child.getURI() == NAMESPACE:
            return child
    return None


def _children(node: libsbml.XMLNode, name: str) -> list[libsbml.XMLNode]:
    return [node.getChild(i) for i in range(node.getNumChildren())
            if node.getChild(i).getName() == name and node.getChild(i).getURI() == NAMESPACE]


def _attributes(node: libsbml.XMLNode) -> dict:
    values = {}
    for index in range(node.getAttributesLength()):
        name = node.getAttrName(index)
        values[_snake(name)] = _value(name, node.getAttrValue(index))
    return values


def _value(name: str, text: str) -> Any:
    if name in _NUMERIC:
        return float(text)
    if name in _INTEGER:
        return int(text)
    return text


def _setting_value(text: str) -> Any:
    """Best-effort type of a setting written with :func:`_text`."""
    if text in ("true", "false"):
        return text == "true"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _settings(node: libsbml.XMLNode) -> dict:
    return {child.getAttrValue("name"): _setting_value(child.getAttrValue("value"))
            for child in _children(node, "setting")}


def _model_dict(node: libsbml.XMLNode) -> dict:
    model = _attributes(node)
    options_nodes = _children(node, "readOptions")
    options: dict = {}
    if options_nodes:
        raw = _attributes(options_nodes[0])
        options["falling_factorials"] = raw.get("falling_factorials", "true") == "true"
        if "substance_unit" in raw:
            options["substance_unit"] = _setting_value(raw["substance_unit"])
        if "delays" in raw:
            options["delays"] = raw["delays"]
            options["delay_phases"] = int(raw["delay_phases"])
        volumes = {v["compartment"]: v["litres"]
                   for v in map(_attributes, _children(options_nodes[0], "volume"))}
        if volumes:
            options["volumes"] = volumes
        outputs = [o["id"] for o in map(_attributes, _children(options_nodes[0], "output"))]
        if outputs:
            options["outputs"] = outputs
    model["read_options"] = options
    runs = []
    for run in _children(node, "run"):
        values = _attributes(run)
        if "seed" in values:
            values["seed"] = _setting_value(values["seed"])
        values["settings"] = _settings(run)
        runs.append(values)
    model["runs"] = runs
    model["settings"] = _settings(node)
    model["bursts"] = [_declaration_dict(c) for c in _children(node, "burst")]
    model["delays"] = [_declaration_dict(c) for c in _children(node, "delay")]
    return model


def _channel_dict(node: libsbml.XMLNode) -> dict:
    channel = _attributes(node)
    channel["bursts"] = [_declaration_dict(c) for c in _children(node, "burst")]
    channel["delays"] = [_declaration_dict(c) for c in _children(node, "delay")]
    return channel


def _declaration_dict(node: libsbml.XMLNode) -> dict:
    return {key: (_setting_value(value) if isinstance(value, str) else value)
            for key, value in _attributes(node).items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


# ---------------------------------------------------------------------------------------
# writing a changed network as SBML (delay chains)
# ---------------------------------------------------------------------------------------
def write_sbml(network: Network, path: str | os.PathLike) -> Path:
    """Write ``network`` as SBML: its source document plus what was added since reading.

    For a network read with ``read_sbml`` and then extended, e.g. by
    :func:`sbml_cme.delays.with_delay`: species, global parameters and
    first-order mass-action channels that the source lacks are added as SBML species
    (amounts, ``hasOnlySubstanceUnits="true"``, in the model's substance unit), parameters
    and irreversible reactions with the kinetic law ``rate * species`` (substance per
    time); a source reaction whose channel now has other reactants or products gets them.
    Everything else of the document is kept. The text is checked before it is written:
    ``read_sbml`` with the network's read options gives back an equal network.

    Parameters
    ----------
    network : Network
        Read from SBML, then changed only by additions (and changed products or
        reactants of existing irreversible reactions).
    path : path-like
        Output file; parent directories are created.

    Returns
    -------
    Path

    Raises
    ------
    OptionsError
        No source SBML, or a change that this function cannot state in SBML (a changed
        initial count or parameter value, a channel of a reversible reaction, a law that
        is not first-order mass action in an amount); the message names it.
    SBMLError
        The written document would not read back to an equal network (a bug: report it).
    """
    text = sbml_string(network)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def sbml_string(network: Network) -> str:
    """The SBML text :func:`write_sbml` writes (same checks and errors)."""
    if not network.source_sbml:
        raise OptionsError("write_sbml needs the SBML the network was read from; this "
                           "network was built in Python. Read the model with read_sbml first.")
    options = read_options_dict(network)
    source = _observed_like(network, read_sbml_string(network.source_sbml, **options))
    document = _parse(network.source_sbml)
    model = document.getModel()
    _check_only_additions(source, network)
    _add_species(model, source, network)
    _add_parameters(model, source, network)
    _rewrite_reactions(model, source, network)
    text = libsbml.writeSBMLToString(document)
    reread = _observed_like(network, read_sbml_string(text, **options))
    changed = [name for name in _CORE_FIELDS if getattr(reread, name) != getattr(network, name)]
    if changed:
        raise SBMLError(f"the written SBML reads back with different {', '.join(changed)}; "
                        "this network cannot be written exactly (please report it)")
    return text


def _check_only_additions(source: Network, network: Network) -> None:
    for name in ("compartments", "outputs", "events"):
        if getattr(source, name) != getattr(network, name):
            raise OptionsError(f"write_sbml writes added species, parameters and reactions; "
                               f"this network's {name} differ from its source SBML")
    for kind in ("species", "parameters"):
        known = {item.id: item for item in getattr(network, kind)}
        for item in getattr(source, kind):
            if known.get(item.id) != item:
                raise OptionsError(
                    f"{kind[:-1]} '{item.id}' differs from its source SBML (changed by "
                    "with_initial_counts or with_parameters?); write_sbml writes additions "
                    "only. Change the value in the SBML model instead.")


def _add_species(model: libsbml.Model, source: Network, network: Network) -> None:
    known = set(source.species_ids)
    for species in network.species:
        if species.id in known:
            continue
        if not species.has_only_substance_units:
            raise OptionsError(f"added species '{species.id}' must be an amount "
                               "(has_only_substance_units) to be written")
        element = model.createSpecies()
        element.setId(species.id)
        if species.name:
            element.setName(species.name)
        element.setCompartment(species.compartment)
        element.setInitialAmount(species.initial_count / species.molecules_per_unit)
        element.setHasOnlySubstanceUnits(True)
        element.setBoundaryCondition(species.boundary)
        element.setConstant(species.constant)


def _add_parameters(model: libsbml.Model, source: Network, network: Network) -> None:
    known = set(source.parameter_ids)
    for parameter in network.parameters:
        if parameter.id in known:
            continue
        if not libsbml.SyntaxChecker.isValidSBMLSId(parameter.id):
            raise OptionsError(f"added parameter '{parameter.id}' is not a valid SBML id")
        element = model.createParameter()
        element.setId(parameter.id)
        element.setValue(parameter.value)
        element.setConstant(parameter.constant)


def _rewrite_reactions(model: libsbml.Model, source: Network, network: Network) -> None:
    before = {r.id: r for r in source.reactions}
    for channel in network.reactions:
        old = before.get(channel.id)
        if old is None:
            _add_reaction(model, network, channel)
        elif old != channel:
            if dataclasses.replace(old, reactants=channel.reactants,
                                   products=channel.products) != channel:
                raise OptionsError(f"channel '{channel.id}' has another rate law than its "
                                   "source SBML; write_sbml writes only changed reactants "
                                   "and products of an existing reaction")
            reaction = model.getReaction(channel.id)
            if reaction is None:
                raise OptionsError(f"channel '{channel.id}' is one direction of a reversible "
                                   f"SBML reaction ('{channel.sbml_id}'): it cannot be "
                                   "changed alone in SBML")
            _set_side(reaction, reaction.getListOfReactants(), reaction.createReactant,
                      channel.reactants)
            _set_side(reaction, reaction.getListOfProducts(), reaction.createProduct,
                      channel.products)
    ids = set(network.reaction_ids)
    for old in source.reactions:
        if old.id not in ids:
            raise OptionsError(f"channel '{old.id}' of the source SBML is missing")


def _set_side(reaction: libsbml.Reaction, references, create, side) -> None:
    while references.size():
        references.remove(0)
    for species_id, count in side:
        reference = create()
        reference.setSpecies(species_id)
        reference.setStoichiometry(count)
        if reaction.getLevel() >= 3:
            reference.setConstant(True)


def _add_reaction(model: libsbml.Model, network: Network, channel) -> None:
    law = channel.rate_law
    species = {s.id: s for s in network.species}
    extent = channel.conversion.molecules_per_unit if channel.conversion else None
    orders = getattr(law, "orders", ())
    if not (hasattr(law, "orders") and len(orders) == 1 and orders[0][1] == 1
            and species[orders[0][0]].has_only_substance_units
            and species[orders[0][0]].molecules_per_unit == extent):
        raise OptionsError(f"added channel '{channel.id}' is not first-order mass action in "
                           "an amount species; write_sbml cannot state its law exactly")
    if getattr(channel, "burst", None) is not None:
        raise OptionsError(f"added channel '{channel.id}' has a burst, which SBML core "
                           "cannot state")
    reaction = model.createReaction()
    reaction.setId(channel.id)
    reaction.setReversible(False)
    if reaction.getLevel() >= 3 and reaction.getVersion() < 2:
        reaction.setFast(False)
    _set_side(reaction, reaction.getListOfReactants(), reaction.createReactant,
              channel.reactants)
    _set_side(reaction, reaction.getListOfProducts(), reaction.createProduct, channel.products)
    formula = f"{law.rate_constant} * {orders[0][0]}"
    math = libsbml.parseL3Formula(formula)
    if math is None:
        raise OptionsError(f"cannot write the law '{formula}' of channel '{channel.id}'")
    reaction.createKineticLaw().setMath(math)
