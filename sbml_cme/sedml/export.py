"""Write an sbml_cme experiment as a COMBINE archive (``.omex``) with SED-ML L1V4.

The archive holds ``model.xml`` (the SBML as read), ``deterministic.sedml`` (the rate
equations: LSODA KISAO_0000088 with its tolerances, a report and a plot; any SED-ML tool
runs it), ``stochastic.sedml`` (the SSA ensemble as a repeated task of ``N`` runs of a
Gillespie-direct task KISAO_0000029 carrying the seed KISAO_0000488, with mean
KISAO_0000841 and standard deviation KISAO_0000842 data generators over the runs; the
CME and LNA as tasks with the root algorithm KISAO_0000000 and an sbml_cme annotation,
KiSAO having no term for them), ``results/*.csv`` (what was computed), the manifest and
``metadata.rdf`` (creator tool and version, date).

``sbml-cme run`` on the archive gives the SSA statistics bit for bit (the ensemble's
trajectory k is iteration k, stream k of ``SeedSequence(seed)``) and the CME again within
its certified bound. The SBML read options (volumes, substance unit) travel in an
sbml_cme annotation on each SED-ML model.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import OptionsError
from .run import ANNOTATION_NS

SEDML_FORMAT = "http://identifiers.org/combine.specifications/sed-ml"
SBML_FORMAT = "http://identifiers.org/combine.specifications/sbml"
CSV_FORMAT = "http://purl.org/NET/mediatypes/text/csv"
OMEX_METADATA = "http://identifiers.org/combine.specifications/omex-metadata"
MODEL_FILE = "model.xml"
#: SED-ML L1V4 allows the old time symbol, and tellurium reads only that one.
TIME_SYMBOL = "urn:sedml:symbol:time"


def write_omex(path: str | os.PathLike, network, *, deterministic=None, ssa=None, cme=None,
               lna=None, tables: dict | None = None, read_options: dict | None = None) -> Path:
    """Write the experiment behind the given results as a COMBINE archive.

    Parameters
    ----------
    path : path-like
        The ``.omex`` file to write.
    network : Network
        Read from SBML (``network.source_sbml`` is stored as ``model.xml``).
    deterministic, ssa, cme, lna : result, optional
        :class:`DeterministicResult`, the SSA :class:`EnsembleResult` (run with a seed),
        :class:`CMEResult`, :class:`LNAResult` (time-dependent); each becomes a task.
    tables : dict of DataFrame, optional
        Result tables stored as ``results/<name>.csv``.
    read_options : dict, optional
        ``read_sbml`` options (default: those the network was read with).
    """
    import libcombine

    if not network.source_sbml:
        raise OptionsError("to_omex needs a network read from SBML (network.source_sbml is "
                           "empty)")
    if ssa is not None and ssa.run_info.get("seed") is None:
        raise OptionsError("the SSA ensemble was run without a seed: run simulate_ssa(..., "
                           "seed=S) so that the archive reproduces it")
    if read_options is None:
        from ..io.sbml_writer import read_options_dict

        read_options = read_options_dict(network)
    options = {k: v for k, v in read_options.items() if k != "outputs"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    archive = libcombine.CombineArchive()
    with tempfile.TemporaryDirectory(prefix="sbml_cme_omex_") as directory:
        folder = Path(directory)

        def add(name: str, text: str, format_: str, master: bool = False) -> None:
            file = folder / name
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
            archive.addFile(str(file), name, format_, master)

        add(MODEL_FILE, network.source_sbml, SBML_FORMAT)
        if deterministic is not None:
            add("deterministic.sedml", deterministic_sedml(network, deterministic, options),
                SEDML_FORMAT, master=True)
        if ssa is not None or cme is not None or lna is not None:
            add("stochastic.sedml", stochastic_sedml(network, options, ssa=ssa, cme=cme,
                                                     lna=lna), SEDML_FORMAT, master=True)
        for name, table in (tables or {}).items():
            add(f"results/{name}.csv", table.to_csv(index=False), CSV_FORMAT)
        description = libcombine.OmexDescription()
        description.setAbout(".")
        description.setDescription(f"Stochastic analysis of SBML model {network.id!r} by "
                                   f"sbml_cme {__version__}")
        now = libcombine.OmexDescription.getCurrentDateAndTime()
        description.setCreated(now)
        creator = libcombine.VCard()
        creator.setGivenName("sbml_cme")
        creator.setFamilyName(f"version {__version__}")
        creator.setOrganization("sbml_cme (creator tool)")
        description.addCreator(creator)
        archive.addMetadata(".", description)
        with tempfile.NamedTemporaryFile(suffix=".omex", dir=path.parent,
                                         delete=False) as handle:
            temporary = Path(handle.name)
        try:
            if not archive.writeToFile(str(temporary)):
                raise OSError(f"libcombine could not write {path}")
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
            archive.cleanUp()
    return path


# -- SED-ML documents ---------------------------------------------------------------------
def _document():
    import libsedml

    document = libsedml.SedDocument(1, 4)
    document.getSedNamespaces().getNamespaces().add(
        "http://www.sbml.org/sbml/level3/version1/core", "sbml")
    return document


def _model(document, options: dict) -> None:
    model = document.createModel()
    model.setId("model")
    model.setLanguage("urn:sedml:language:sbml")
    model.setSource(MODEL_FILE)
    if options:
        model.setAnnotation(f'<annotation><sbml_cme:read_options xmlns:sbml_cme='
                            f'"{ANNOTATION_NS}" json={_quote(json.dumps(options))}/>'
                            '</annotation>')


def _quote(text: str) -> str:
    from xml.sax.saxutils import quoteattr

    return quoteattr(text)


def _time_course(document, sim_id: str, times: np.ndarray, kisao_id: str,
                 parameters: dict | None = None, method: dict | None = None):
    times = np.asarray(times, dtype=float)
    if len(times) < 2 or not np.allclose(np.diff(times), times[1] - times[0],
                                         rtol=1e-9, atol=0.0):
        raise OptionsError("to_omex writes uniform time courses: the results need equally "
                           "spaced times (linspace), at least two")
    simulation = document.createUniformTimeCourse()
    simulation.setId(sim_id)
    simulation.setInitialTime(float(times[0]))
    simulation.setOutputStartTime(float(times[0]))
    simulation.setOutputEndTime(float(times[-1]))
    simulation.setNumberOfSteps(len(times) - 1)
    algorithm = simulation.createAlgorithm()
    algorithm.setKisaoID(kisao_id)
    for kisao, value in (parameters or {}).items():
        parameter = algorithm.createAlgorithmParameter()
        parameter.setKisaoID(kisao)
        parameter.setValue(str(value))
    if method:
        attributes = " ".join(f"{k}={_quote(str(v))}" for k, v in method.items())
        algorithm.setAnnotation(f'<annotation><sbml_cme:method xmlns:sbml_cme='
                                f'"{ANNOTATION_NS}" {attributes}/></annotation>')
    return simulation


def _task(document, task_id: str, sim_id: str):
    task = document.createTask()
    task.setId(task_id)
    task.setModelReference("model")
    task.setSimulationReference(sim_id)
    return task


def _generator(document, generator_id: str, task_id: str, *, target: str | None = None,
               symbol: str | None = None, remaining: str | None = None, name: str = ""):
    import libsedml

    generator = document.createDataGenerator()
    generator.setId(generator_id)
    generator.setName(name or generator_id)
    variable = generator.createVariable()
    variable.setId(f"v_{generator_id}")
    variable.setTaskReference(task_id)
    if target:
        variable.setTarget(target)
    if symbol:
        variable.setSymbol(symbol)
    if remaining:
        variable.createAppliedDimension().setTarget(remaining)
    generator.setMath(libsedml.parseL3Formula(f"v_{generator_id}"))
    return generator


def _target(network, symbol: str) -> str:
    element = "species" if symbol in network.species_index else "parameter"
    if symbol in network.compartment_map:
        element = "compartment"
    plural = {"species": "listOfSpecies", "parameter": "listOfParameters",
              "compartment": "listOfCompartments"}[element]
    return f"/sbml:sbml/sbml:model/sbml:{plural}/sbml:{element}[@id='{symbol}']"


def _report(document, report_id: str, name: str, columns: list[tuple[str, str]]) -> None:
    report = document.createReport()
    report.setId(report_id)
    report.setName(name)
    for generator_id, label in columns:
        dataset = report.createDataSet()
        dataset.setId(f"ds_{generator_id}")
        dataset.setLabel(label)
        dataset.setDataReference(generator_id)


def _plot(document, plot_id: str, name: str, x: str, ys: list[tuple[str, str]]) -> None:
    plot = document.createPlot2D()
    plot.setId(plot_id)
    plot.setName(name)
    for y, label in ys:
        curve = plot.createCurve()
        curve.setId(f"curve_{y}")
        curve.setName(label)
        curve.setXDataReference(x)
        curve.setYDataReference(y)
        curve.setLogX(False)
        curve.setLogY(False)


def _columns(network) -> list[str]:
    return list(network.species_ids)


def deterministic_sedml(network, result, options: dict) -> str:
    """SED-ML L1V4 of the rate equations (LSODA, its tolerances) with report and plot."""
    import libsedml

    document = _document()
    _model(document, options)
    info = result.run_info
    _time_course(document, "sim_ode", result.times, "KISAO:0000088",
                 {"KISAO:0000209": info.get("rtol", 1e-9),
                  "KISAO:0000211": info.get("atol", 1e-12)})
    _task(document, "task_ode", "sim_ode")
    _generator(document, "time_ode", "task_ode", symbol=TIME_SYMBOL, name="time")
    columns = [("time_ode", "time")]
    for symbol in _columns(network):
        _generator(document, f"ode_{symbol}", "task_ode", target=_target(network, symbol),
                   name=symbol)
        columns.append((f"ode_{symbol}", symbol))
    _report(document, "ode", "Rate equations (model units)", columns)
    _plot(document, "ode_plot", "Rate equations", "time_ode", columns[1:])
    return libsedml.writeSedMLToString(document)


def stochastic_sedml(network, options: dict, *, ssa=None, cme=None, lna=None) -> str:
    """SED-ML L1V4 of the SSA ensemble, the CME and the LNA (see module docstring)."""
    import libsedml

    document = _document()
    _model(document, options)
    if ssa is not None:
        info = ssa.run_info
        n = ssa.n_trajectories
        _time_course(document, "sim_ssa", ssa.times, "KISAO:0000029",
                     {"KISAO:0000488": int(info["seed"])},
                     {"name": "ssa", "algorithm": info.get("algorithm", "auto")})
        _task(document, "task_ssa", "sim_ssa")
        ensemble = document.createRepeatedTask()
        ensemble.setId("ensemble")
        ensemble.setName(f"{n} SSA trajectories")
        ensemble.setResetModel(True)
        ensemble.setRangeId("run")
        runs = ensemble.createUniformRange()
        runs.setId("run")
        runs.setStart(0.0)
        runs.setEnd(float(n - 1))
        runs.setNumberOfSteps(max(n - 1, 0))
        runs.setType("linear")
        subtask = ensemble.createSubTask()
        subtask.setTask("task_ssa")
        subtask.setOrder(1)
        _generator(document, "time_ssa", "task_ssa", symbol=TIME_SYMBOL, name="time")
        columns = [("time_ssa", "time")]
        for symbol in _columns(network):
            target = _target(network, symbol)
            _generator(document, f"ssa_mean_{symbol}", "ensemble", target=target,
                       symbol="KISAO:0000841", remaining="task_ssa", name=f"{symbol} mean")
            _generator(document, f"ssa_sd_{symbol}", "ensemble", target=target,
                       symbol="KISAO:0000842", remaining="task_ssa", name=f"{symbol} sd")
            columns += [(f"ssa_mean_{symbol}", f"{symbol}-mean"),
                        (f"ssa_sd_{symbol}", f"{symbol}-sd")]
        _report(document, "ssa_stats", f"SSA ensemble of {n} trajectories (model units)",
                columns)
        _plot(document, "ssa_plot", "SSA ensemble mean", "time_ssa",
              [c for c in columns[1:] if c[1].endswith("-mean")])
    for name, result, method in (("cme", cme, {"name": "cme", "tol": _cme_tol(cme)}),
                                 ("lna", lna, {"name": "lna"})):
        if result is None:
            continue
        _time_course(document, f"sim_{name}", result.times, "KISAO:0000000", None, method)
        _task(document, f"task_{name}", f"sim_{name}")
        _generator(document, f"time_{name}", f"task_{name}", symbol=TIME_SYMBOL,
                   name="time")
        columns = [(f"time_{name}", "time")]
        for symbol in _columns(network):
            target = _target(network, symbol)
            _generator(document, f"{name}_mean_{symbol}", f"task_{name}", target=target,
                       symbol="KISAO:0000841", name=f"{symbol} mean")
            _generator(document, f"{name}_sd_{symbol}", f"task_{name}", target=target,
                       symbol="KISAO:0000842", name=f"{symbol} sd")
            columns += [(f"{name}_mean_{symbol}", f"{symbol}-mean"),
                        (f"{name}_sd_{symbol}", f"{symbol}-sd")]
        _report(document, f"{name}_stats", f"{name.upper()} moments (model units)", columns)
    return libsedml.writeSedMLToString(document)


def _cme_tol(cme) -> float:
    if cme is None:
        return 1e-6
    return float(cme.run_info.get("tol", 1e-6))
