"""Run SED-ML documents and COMBINE archives, following the BioSimulators conventions.

Reading is libsedml's and libcombine's; model changes are applied to the SBML document by
:mod:`sbml_cme.io.changes`; each task runs one sbml_cme analysis chosen from its KiSAO id
(:mod:`.kisao_map`). Outputs (:func:`write_outputs`): one CSV per report (a column per
data set headed by its label), ``reports.h5`` in the BioSimulators layout, one PNG per
2-D plot and ``log.yml``.

Data of a task carry axes with owners: a time course is (time,) owned by its task; an
ensemble task (``number of runs`` > 1) adds a runs axis in front; a repeated task adds
its iteration axis in front of its subtask's. An aggregate variable (SED-ML L1V4:
``symbol`` or ``term`` a KiSAO aggregation function such as mean KISAO_0000841, with
``appliedDimension`` children naming what remains) reduces every axis not kept:
remaining dimension = the task keeps its time axis (the ensemble mean time course);
= the repeated task keeps its iterations; none gives a single number.

An ensemble written as a repeated task over a plain stochastic task, with no set values,
runs as one ensemble whose trajectory k is iteration k: the same numbers as
``simulate_ssa(..., n_trajectories=N, seed=seed)``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time as wallclock
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import SbmlCmeError, SedmlError
from ..io.changes import apply_changes, model_value, parse_target
from . import kisao_map
from .outputs import write_outputs

SEDML_FORMAT = "sed-ml"
SBML_LANGUAGE = "sbml"
#: Namespace of the sbml_cme annotation on algorithms (methods without a KiSAO term).
ANNOTATION_NS = "https://github.com/sbml-cme/sbml_cme/sedml"
_TIME_SYMBOLS = {"KISAO:0000832", "KISAO_0000832", "urn:sedml:symbol:time"}
_STOCHASTIC = {"ssa", "cle", "hybrid"}


@dataclass
class Data:
    """Values of one variable: ``values`` with one owner name per axis."""

    values: np.ndarray
    owners: tuple[str, ...]
    #: Divide by it for model units (stochastic states stay in molecules, so that
    #: aggregates equal the ensemble statistics bit for bit: mean(counts) / scale).
    scale: float = 1.0


@dataclass
class TaskResult:
    """What one task produced: per model symbol (and ``"time"``) a :class:`Data`;
    ``moments`` for distribution methods (CME, LNA): symbol -> (mean, variance)."""

    data: dict[str, Data] = field(default_factory=dict)
    moments: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    owners: tuple[str, ...] = ()


@dataclass
class DocumentRun:
    """Results of one SED-ML document: reports (DataFrames and raw arrays), plots, log."""

    location: str
    reports: dict[str, pd.DataFrame] = field(default_factory=dict)
    report_arrays: dict[str, list] = field(default_factory=dict)
    report_names: dict[str, str] = field(default_factory=dict)
    plots: dict[str, dict] = field(default_factory=dict)
    log: dict = field(default_factory=dict)


def run_sedml(path: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
              substitution_policy: str | None = None, n_jobs: int | None = None
              ) -> dict[str, pd.DataFrame]:
    """Run a SED-ML file or a COMBINE archive (``.omex``).

    Parameters
    ----------
    path : path-like
        A ``.sedml``/``.xml`` SED-ML document (models relative to it) or a COMBINE
        archive (its master SED-ML documents, else all of them).
    out_dir : path-like, optional
        Write the outputs there (:func:`write_outputs`).
    substitution_policy : str, optional
        Let KiSAO replace an algorithm sbml_cme does not implement, at this
        ``AlgorithmSubstitutionPolicy`` (e.g. ``"SIMILAR_APPROXIMATIONS"``); default:
        refuse it with :class:`~sbml_cme.errors.UnsupportedAlgorithmError`.
    n_jobs : int, optional
        Threads of the stochastic ensembles.

    Returns
    -------
    dict of DataFrame
        Report id -> a column per data set (headed by its label; the id when it has
        none), one row per value; data sets of repeated tasks are flattened in
        (iteration, ..., time) order. In archives with several SED-ML documents the keys
        are ``location/report_id``.
    """
    started = wallclock.perf_counter()
    runs: list[DocumentRun] = []
    error: BaseException | None = None
    with _documents(Path(path)) as documents:
        for location, file in documents:
            run = DocumentRun(location)
            runs.append(run)
            try:
                _Executor(file, run, substitution_policy, n_jobs).execute()
            except SbmlCmeError as failure:
                error = failure
                break
    log = _log(runs, error, wallclock.perf_counter() - started)
    if out_dir is not None:
        write_outputs(runs, log, out_dir)
    if error is not None:
        raise error
    prefix = len(runs) > 1
    return {(f"{run.location}/{key}" if prefix else key): frame
            for run in runs for key, frame in run.reports.items()}


# -- documents ----------------------------------------------------------------------------
@contextmanager
def _documents(path: Path):
    """Yield [(location, SED-ML file)]: the file itself, or an archive's SED-ML entries."""
    if not path.exists():
        raise SedmlError(f"no such SED-ML file or COMBINE archive: {path}")
    if path.suffix.lower() not in (".omex", ".zip", ".sedx"):
        yield [(path.name, path)]
        return
    import libcombine

    archive = libcombine.CombineArchive()
    if not archive.initializeFromArchive(str(path)):
        raise SedmlError(f"{path} is not a COMBINE archive libcombine can read")
    with tempfile.TemporaryDirectory(prefix="sbml_cme_omex_") as directory:
        archive.extractTo(directory)
        entries = [archive.getEntry(i) for i in range(archive.getNumEntries())]
        sedml = [e for e in entries if SEDML_FORMAT in e.getFormat().lower()]
        masters = [e for e in sedml if e.getMaster()]
        locations = [_location(e.getLocation()) for e in (masters or sedml)]
        archive.cleanUp()
        if not locations:
            raise SedmlError(f"the COMBINE archive {path} has no SED-ML document in its "
                             "manifest")
        yield [(location, Path(directory) / location) for location in locations]


def _location(location: str) -> str:
    return location[2:] if location.startswith("./") else location.lstrip("/")


def read_document(file: Path):
    """The libsedml document of ``file``; SedmlError listing libsedml's errors."""
    import libsedml

    document = libsedml.readSedMLFromFile(str(file))
    errors = [document.getError(i) for i in range(document.getNumErrors())]
    serious = [e.getMessage().strip() for e in errors
               if e.getSeverity() >= libsedml.LIBSEDML_SEV_ERROR]
    if serious:
        raise SedmlError(f"libsedml reported {len(serious)} error(s) in {file.name}: "
                         + "; ".join(serious[:5]))
    return document


# -- execution ----------------------------------------------------------------------------
class _Executor:
    def __init__(self, file: Path, run: DocumentRun, policy: str | None, n_jobs):
        self.file, self.run, self.policy, self.n_jobs = file, run, policy, n_jobs
        self.base = file.parent
        self.document = read_document(file)
        self.model_texts: dict[str, str] = {}
        self.model_options: dict[str, dict] = {}
        self.results: dict[str, TaskResult] = {}
        self.run.log = {"location": run.location, "status": "RUNNING", "tasks": [],
                        "outputs": []}

    # models ------------------------------------------------------------------------
    def model_text(self, model_id: str) -> str:
        if model_id in self.model_texts:
            return self.model_texts[model_id]
        model = self.document.getModel(model_id)
        if model is None:
            raise SedmlError(f"SED-ML refers to model {model_id!r}, which the document "
                             "does not define")
        if SBML_LANGUAGE not in (model.getLanguage() or SBML_LANGUAGE).lower():
            raise SedmlError(f"SED-ML model {model_id!r} is in language "
                             f"{model.getLanguage()!r}; sbml_cme reads SBML only")
        source = model.getSource()
        options = _annotation(model, "read_options").get("json")
        self.model_options[model_id] = json.loads(options) if options else {}
        if self.document.getModel(source) is not None and source != model_id:
            text = self.model_text(source)
            self.model_options[model_id] = self.model_options[model_id] or \
                self.model_options[source]
        else:
            text = self._source_text(source, model_id)
        changes = []
        for change in model.getListOfChanges():
            changes.append((change.getTarget(), self._change_value(change, text)))
            text = apply_changes(text, changes[-1:])
        self.model_texts[model_id] = text
        return text

    def _source_text(self, source: str, model_id: str) -> str:
        if source.startswith(("urn:", "http:", "https:")):
            raise SedmlError(f"SED-ML model {model_id!r} has source {source!r}: sbml_cme "
                             "never downloads; put the SBML file beside the SED-ML (or in "
                             "the archive) and refer to it by a relative path")
        file = (self.base / source.replace("file:", "")).resolve()
        if not file.is_file():
            raise SedmlError(f"SED-ML model {model_id!r}: no SBML file {source!r} next to "
                             f"the SED-ML document")
        return file.read_text(encoding="utf-8")

    def _change_value(self, change, text: str) -> float:
        kind = change.getElementName()
        if kind == "changeAttribute":
            try:
                return float(change.getNewValue())
            except ValueError:
                raise SedmlError(f"SED-ML changeAttribute of {change.getTarget()!r}: new "
                                 f"value {change.getNewValue()!r} is not a number") from None
        if kind == "computeChange":
            values = {v.getId(): model_value(text, v.getTarget())
                      for v in change.getListOfVariables()}
            values.update({p.getId(): p.getValue() for p in change.getListOfParameters()})
            return float(evaluate(change.getMath(), values, f"computeChange of "
                                  f"{change.getTarget()!r}"))
        raise SedmlError(f"SED-ML model change '{kind}' (target {change.getTarget()!r}) is "
                         "not supported: sbml_cme applies changeAttribute and computeChange; "
                         "write XML changes into the SBML file instead")

    # tasks -------------------------------------------------------------------------
    def execute(self) -> None:
        for task in self.document.getListOfTasks():
            self.task_result(task.getId())
        self.outputs()
        self.run.log["status"] = "SUCCEEDED"

    def task_result(self, task_id: str) -> TaskResult:
        if task_id not in self.results:
            task = self.document.getTask(task_id)
            if task is None:
                raise SedmlError(f"SED-ML refers to task {task_id!r}, which the document "
                                 "does not define")
            entry = {"id": task_id, "status": "RUNNING"}
            self.run.log["tasks"].append(entry)
            started = wallclock.perf_counter()
            try:
                if task.getElementName() == "repeatedTask":
                    result = self.repeated(task, entry)
                elif task.getElementName() == "task":
                    result = self.simple(task, self.model_text(task.getModelReference()),
                                         entry)
                else:
                    raise SedmlError(f"SED-ML task {task_id!r} is a "
                                     f"{task.getElementName()}; sbml_cme runs task and "
                                     "repeatedTask")
            except SbmlCmeError as error:
                entry.update(status="FAILED", exception=f"{type(error).__name__}: {error}")
                raise
            entry["status"] = "SUCCEEDED"
            entry["duration"] = round(wallclock.perf_counter() - started, 4)
            self.results[task_id] = result
        return self.results[task_id]

    def simple(self, task, text: str, entry: dict, seed_override=None,
               runs_override: int | None = None) -> TaskResult:
        """One task on the SBML ``text`` (a model with every change applied)."""
        from ..io import read_sbml_string

        simulation = self.document.getSimulation(task.getSimulationReference())
        if simulation is None:
            raise SedmlError(f"SED-ML task {task.getId()!r} refers to simulation "
                             f"{task.getSimulationReference()!r}, which does not exist")
        kind = simulation.getElementName()
        algorithm = simulation.getAlgorithm()
        if algorithm is None or not algorithm.getKisaoID():
            raise SedmlError(f"SED-ML simulation {simulation.getId()!r} has no algorithm")
        method = kisao_map.method_for(algorithm.getKisaoID(),
                                      steady_state=kind == "steadyState",
                                      substitution_policy=self.policy,
                                      annotation=_annotated_method(algorithm),
                                      where=f"simulation {simulation.getId()!r}")
        parameters = {kisao_map.normalize(p.getKisaoID()): p.getValue()
                      for p in algorithm.getListOfAlgorithmParameters()}
        network = read_sbml_string(text, base_dir=str(self.base),
                                   **self.model_options.get(task.getModelReference(), {}))
        annotation = _annotation(algorithm, "method")
        symbols = self.symbols_of(task.getId())
        entry.update(algorithm=method.kisao_id, method=method.analysis,
                     algorithm_name=kisao_map.term_name(method.kisao_id))
        if method.substituted_from:
            entry["substituted_from"] = method.substituted_from
        return run_method(network, method, parameters, simulation, symbols, task.getId(),
                          entry, self.n_jobs, seed_override, runs_override, annotation)

    def repeated(self, task, entry: dict) -> TaskResult:
        ranges = {r.getId(): r for r in task.getListOfRanges()}
        master = ranges.get(task.getRangeId())
        if master is None:
            raise SedmlError(f"SED-ML repeatedTask {task.getId()!r} has no range "
                             f"{task.getRangeId()!r}")
        master_values = self.range_values(master, {})
        subtasks = sorted(task.getListOfSubTasks(), key=lambda s: s.getOrder())
        if not subtasks:
            raise SedmlError(f"SED-ML repeatedTask {task.getId()!r} has no subtask")
        changes = list(task.getListOfTaskChanges())
        n = len(master_values)
        if len(subtasks) == 1 and not changes:
            inner = self.document.getTask(subtasks[0].getTask())
            ensemble = self._ensemble(task, inner, n, entry)
            if ensemble is not None:
                return ensemble
        if not task.getResetModel() and n > 1:
            raise SedmlError(f"SED-ML repeatedTask {task.getId()!r} has resetModel=false: "
                             "sbml_cme cannot continue a simulation from the state the "
                             "previous iteration left; set resetModel=\"true\"")
        iterations = []
        for index, value in enumerate(master_values):
            current = {task.getRangeId(): value}
            for range_id, other in ranges.items():
                if range_id != task.getRangeId():
                    current[range_id] = self.range_value(other, current, index)
            parts = []
            for subtask in subtasks:
                inner = self.document.getTask(subtask.getTask())
                if inner is None:
                    raise SedmlError(f"SED-ML subtask refers to task {subtask.getTask()!r}, "
                                     "which does not exist")
                parts.append(self._iteration(inner, changes, current, index, n, entry))
            iterations.append(parts[-1])
        entry["iterations"] = n
        return _stack(iterations, task.getId())

    def _iteration(self, inner, changes, current: dict, index: int, n: int,
                   entry: dict) -> TaskResult:
        if inner.getElementName() == "repeatedTask":
            return self.repeated(inner, {})
        text = self.model_text(inner.getModelReference())
        edits = []
        for change in changes:
            if change.getModelReference() not in ("", inner.getModelReference()):
                continue
            values = dict(current)
            values.update({v.getId(): model_value(text, v.getTarget())
                           for v in change.getListOfVariables()})
            values.update({p.getId(): p.getValue() for p in change.getListOfParameters()})
            edits.append((change.getTarget(), float(evaluate(
                change.getMath(), values, f"setValue of {change.getTarget()!r}"))))
        inner_entry: dict = {}
        seed = _iteration_seed(self._algorithm_seed(inner), index, n)
        result = self.simple(inner, apply_changes(text, edits), inner_entry, seed)
        for key in ("algorithm", "method", "algorithm_name", "substituted_from"):
            if key in inner_entry:
                entry[key] = inner_entry[key]
        return result

    def _algorithm_seed(self, task):
        simulation = self.document.getSimulation(task.getSimulationReference())
        algorithm = simulation.getAlgorithm() if simulation is not None else None
        if algorithm is None:
            return None
        for parameter in algorithm.getListOfAlgorithmParameters():
            if kisao_map.normalize(parameter.getKisaoID()) == kisao_map.SEED:
                return int(float(parameter.getValue()))
        return None

    def _ensemble(self, task, inner, n: int, entry: dict) -> TaskResult | None:
        """A repeated task of ``n`` identical runs of a stochastic task: one ensemble."""
        if inner is None or inner.getElementName() != "task":
            return None
        simulation = self.document.getSimulation(inner.getSimulationReference())
        if simulation is None or simulation.getAlgorithm() is None:
            return None
        try:
            method = kisao_map.method_for(simulation.getAlgorithm().getKisaoID(),
                                          steady_state=simulation.getElementName() ==
                                          "steadyState", substitution_policy=self.policy,
                                          annotation=_annotated_method(
                                              simulation.getAlgorithm()))
        except SbmlCmeError:
            return None
        if method.analysis not in _STOCHASTIC:
            return None
        result = self.simple(inner, self.model_text(inner.getModelReference()), entry,
                             runs_override=n)
        entry["iterations"] = n
        entry["ensemble"] = ("one ensemble of the iterations: trajectory k is iteration k "
                             "(streams of SeedSequence(seed))")
        data = {symbol: Data(value.values, (task.getId(),) + value.owners[1:], value.scale)
                for symbol, value in result.data.items()}
        return TaskResult(data, owners=(task.getId(),) + result.owners[1:])

    def range_values(self, range_, current: dict) -> list[float]:
        """Values of a uniform or vector range; a functional range's value at ``current``
        (the values of the other ranges in this iteration) as a one-element list."""
        kind = range_.getElementName()
        if kind == "uniformRange":
            steps = _steps(range_)
            start, end = range_.getStart(), range_.getEnd()
            if (range_.getType() or "linear").lower() == "log":
                return list(np.logspace(np.log10(start), np.log10(end), steps + 1))
            return list(np.linspace(start, end, steps + 1))
        if kind == "vectorRange":
            return [float(v) for v in range_.getValues()]
        if kind == "functionalRange":
            variables = dict(current)
            variables.update({p.getId(): p.getValue() for p in range_.getListOfParameters()})
            return [float(evaluate(range_.getMath(), variables,
                                   f"functionalRange {range_.getId()!r}"))]
        raise SedmlError(f"SED-ML range {range_.getId()!r} of type {kind} is not supported")

    def range_value(self, range_, current: dict, index: int) -> float:
        values = self.range_values(range_, current)
        return values[0] if range_.getElementName() == "functionalRange" else values[index]

    def symbols_of(self, task_id: str) -> set[str]:
        """Model symbols the document's data generators read (reported by every task, so
        that a repeated task's subtasks report them too)."""
        symbols = set()
        for generator in self.document.getListOfDataGenerators():
            for variable in generator.getListOfVariables():
                if variable.getTarget():
                    symbols.add(parse_target(variable.getTarget())[0])
        return symbols

    # outputs -----------------------------------------------------------------------
    def generator_value(self, generator_id: str) -> np.ndarray:
        generator = self.document.getDataGenerator(generator_id)
        if generator is None:
            raise SedmlError(f"SED-ML output refers to data generator {generator_id!r}, "
                             "which does not exist")
        values = {p.getId(): p.getValue() for p in generator.getListOfParameters()}
        arrays = [self.variable_value(v, generator_id) for v in generator.getListOfVariables()]
        for variable, array in zip(generator.getListOfVariables(), arrays):
            values[variable.getId()] = array
        result = evaluate(generator.getMath(), values, f"dataGenerator {generator_id!r}")
        shape = np.broadcast_shapes(*(np.shape(a) for a in arrays)) if arrays else ()
        return np.broadcast_to(np.asarray(result, dtype=float), shape).copy()

    def variable_value(self, variable, where: str) -> np.ndarray:
        task_id = variable.getTaskReference()
        result = self.task_result(task_id)
        symbol = variable.getSymbol() or ""
        term = variable.getTerm() if variable.isSetTerm() else ""
        aggregate = next((kisao_map.normalize(s) for s in (term, symbol)
                          if s and kisao_map.normalize(s) in kisao_map.AGGREGATES), None)
        if symbol in _TIME_SYMBOLS:
            key = "time"
        elif variable.getTarget():
            key = parse_target(variable.getTarget())[0]
        else:
            raise SedmlError(f"SED-ML variable {variable.getId()!r} in {where} has neither "
                             "a target nor the time symbol; sbml_cme reads model elements "
                             "and time")
        keep = {d.getTarget() for d in variable.getListOfAppliedDimensions()}
        keep |= {self._subtask_task(t) for t in keep}
        if key in result.moments and key != "time":
            if aggregate is None:
                raise SedmlError(f"SED-ML variable {variable.getId()!r} in {where} reads "
                                 f"{key!r} of task {task_id!r}, a distribution method: ask "
                                 "for its mean (KISAO:0000841), standard deviation "
                                 "(KISAO:0000842) or variance (KISAO:0000859)")
            mean, variance = result.moments[key]
            name = kisao_map.AGGREGATES[aggregate].replace("nan", "")
            if name not in ("mean", "std", "var"):
                raise SedmlError(f"SED-ML variable {variable.getId()!r}: the aggregate "
                                 f"{aggregate} of a distribution is not available; use "
                                 "mean, standard deviation or variance")
            return {"mean": mean, "std": np.sqrt(np.maximum(variance, 0.0)),
                    "var": variance}[name]
        if key not in result.data:
            raise SedmlError(f"SED-ML variable {variable.getId()!r} in {where}: task "
                             f"{task_id!r} has no values of {key!r}")
        data = result.data[key]
        if aggregate is None:
            return data.values / data.scale
        axes = tuple(i for i, owner in enumerate(data.owners) if owner not in keep)
        if key == "time":
            # Every run shares the output times: take them, do not average them.
            return data.values[tuple(0 if i in axes else slice(None)
                                     for i in range(data.values.ndim))]
        name = kisao_map.AGGREGATES[aggregate]
        power = {"var": 2, "prod": 0, "count": 0}.get(name.replace("nan", ""), 1)
        return _reduce(data.values, axes, name) / data.scale**power

    def _subtask_task(self, target: str) -> str:
        for task in self.document.getListOfTasks():
            if task.getElementName() == "repeatedTask":
                for subtask in task.getListOfSubTasks():
                    if subtask.getId() == target:
                        return subtask.getTask()
        return target

    def outputs(self) -> None:
        for output in self.document.getListOfOutputs():
            kind = output.getElementName()
            entry = {"id": output.getId(), "type": kind, "status": "SUCCEEDED"}
            self.run.log["outputs"].append(entry)
            if kind == "report":
                self.report(output)
            elif kind == "plot2D":
                self.plot(output)
            else:
                entry.update(status="SKIPPED", skip_reason=f"sbml_cme writes reports and "
                             f"2-D plots, not {kind}")

    def report(self, report) -> None:
        columns, arrays = {}, []
        for dataset in report.getListOfDataSets():
            value = self.generator_value(dataset.getDataReference())
            arrays.append(({"id": dataset.getId(), "label": dataset.getLabel(),
                            "name": dataset.getName()}, value))
            label = dataset.getLabel() or dataset.getId()
            columns[label if label not in columns else dataset.getId()] = value.ravel()
        length = max((len(v) for v in columns.values()), default=0)
        frame = pd.DataFrame({k: np.pad(v.astype(float), (0, length - len(v)),
                                        constant_values=np.nan) for k, v in columns.items()})
        self.run.reports[report.getId()] = frame
        self.run.report_arrays[report.getId()] = arrays
        self.run.report_names[report.getId()] = report.getName()

    def plot(self, plot) -> None:
        curves = []
        for curve in plot.getListOfCurves():
            x = self.generator_value(curve.getXDataReference())
            y = self.generator_value(curve.getYDataReference())
            curves.append({"id": curve.getId(), "name": curve.getName() or curve.getId(),
                           "x": x, "y": y, "log_x": curve.getLogX(), "log_y": curve.getLogY()})
        self.run.plots[plot.getId()] = {"name": plot.getName() or plot.getId(),
                                        "curves": curves}


def _annotation(element, name: str) -> dict:
    """Attributes of the sbml_cme annotation ``name`` on a SED-ML element ({} if none)."""
    annotation = element.getAnnotation()
    if annotation is None:
        return {}
    for i in range(annotation.getNumChildren()):
        child = annotation.getChild(i)
        if child.getURI() == ANNOTATION_NS and child.getName() == name:
            attributes = child.getAttributes()
            return {attributes.getName(k): attributes.getValue(k)
                    for k in range(attributes.getLength())}
    return {}


def _annotated_method(algorithm) -> str | None:
    """The method named by an sbml_cme annotation on an algorithm, if any."""
    return _annotation(algorithm, "method").get("name")


def _steps(element) -> int:
    """Intervals of a uniform time course or range (L1V4 numberOfSteps, else points)."""
    if element.isSetNumberOfSteps():
        return int(element.getNumberOfSteps())
    return int(element.getNumberOfPoints())


def _iteration_seed(seed: int | None, index: int, n: int) -> int | None:
    if seed is None:
        return None
    return int(np.random.SeedSequence(seed).spawn(n)[index].generate_state(1, np.uint64)[0]
               >> np.uint64(1))


def _stack(iterations: list[TaskResult], owner: str) -> TaskResult:
    """Stack iteration results along a new leading axis owned by ``owner``."""
    first = iterations[0]
    data = {}
    for symbol, value in first.data.items():
        arrays = [it.data[symbol].values for it in iterations]
        if any(a.shape != arrays[0].shape for a in arrays):
            raise SedmlError(f"SED-ML repeated task {owner!r}: iterations gave values of "
                             f"{symbol!r} with different shapes")
        data[symbol] = Data(np.stack(arrays), (owner,) + value.owners, value.scale)
    moments = {symbol: tuple(np.stack([it.moments[symbol][k] for it in iterations])
                             for k in range(2)) for symbol in first.moments}
    return TaskResult(data, moments, (owner,) + first.owners)


def _reduce(values: np.ndarray, axes: tuple[int, ...], name: str) -> np.ndarray:
    if not axes:
        return values
    if name in ("count",):
        return np.sum(np.isfinite(values), axis=axes).astype(float)
    if name in ("sem", "nansem"):
        function = np.nanstd if name.startswith("nan") else np.std
        n = np.prod([values.shape[a] for a in axes])
        return function(values, axis=axes, ddof=1) / np.sqrt(n)
    function = getattr(np, name)
    if name.replace("nan", "") in ("std", "var"):
        size = np.prod([values.shape[a] for a in axes])
        return function(values, axis=axes, ddof=1 if size > 1 else 0)
    return function(values, axis=axes)


# -- one simulation -----------------------------------------------------------------------
def simulation_times(simulation) -> tuple[np.ndarray, slice]:
    """(times to simulate, the slice of them that are output) of a uniform time course."""
    start = simulation.getInitialTime()
    output_start, end = simulation.getOutputStartTime(), simulation.getOutputEndTime()
    output = np.linspace(output_start, end, _steps(simulation) + 1)
    if output_start > start:
        return np.concatenate([[start], output]), slice(1, None)
    return output, slice(None)


def run_method(network, method, parameters: dict, simulation, symbols: set[str],
               task_id: str, entry: dict, n_jobs=None, seed_override=None,
               runs_override: int | None = None, annotation: dict | None = None
               ) -> TaskResult:
    """Run ``method`` (a :class:`~.kisao_map.Method`) for one SED-ML task."""
    from ..analyses import (simulate_cle, simulate_deterministic, simulate_ssa, solve_cme,
                            solve_lna)
    from ..analyses.hybrid import simulate_hybrid

    kind = simulation.getElementName()
    options = dict(method.options)
    seed = parameters.pop(kisao_map.SEED, None)
    seed = int(float(seed)) if seed is not None else None
    seed = seed_override if seed_override is not None else seed
    runs = int(float(parameters.pop(kisao_map.NUMBER_OF_RUNS, 1)))
    runs = runs_override or runs
    rtol = parameters.pop(kisao_map.RELATIVE_TOLERANCE, None)
    atol = parameters.pop(kisao_map.ABSOLUTE_TOLERANCE, None)
    extra = _outputs(network, symbols)
    parameters = {k: v for k, v in parameters.items() if k != kisao_map.KISAO_ROOT}
    if parameters:
        entry["ignored_parameters"] = {k: f"{v} ({kisao_map.term_name(k)})"
                                       for k, v in parameters.items()}
    if kind == "steadyState":
        return _steady_state(network, method, extra, task_id, entry)
    if kind != "uniformTimeCourse":
        raise SedmlError(f"SED-ML simulation {simulation.getId()!r} is a {kind}; sbml_cme "
                         "runs uniformTimeCourse and steadyState")
    times, keep = simulation_times(simulation)
    analysis = method.analysis
    if analysis in _STOCHASTIC:
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        entry.update(seed=seed, n_trajectories=runs)
        common = dict(n_trajectories=runs, seed=seed, n_jobs=n_jobs)
        if analysis == "ssa":
            result = simulate_ssa(network, times, outputs=extra,
                                  method=(annotation or {}).get("algorithm", "auto"), **common)
            entry["sbml_cme_algorithm"] = result.run_info.get("algorithm")
        elif analysis == "cle":
            result = simulate_cle(network, times, outputs=extra, **common, **options)
        else:
            net = network.with_outputs(extra)
            result = simulate_hybrid(net, times, partition="auto", **common,
                                     **_tolerances(rtol, atol))
        columns = _model_columns(result.network)
        values = result.states[:, keep, :]
        scales = _model_scales(result.network)
        owners = (f"{task_id}.runs", task_id)
        data = {c: Data(values[:, :, k] if runs > 1 else values[0, :, k],
                        owners if runs > 1 else (task_id,), float(scales[k]))
                for k, c in enumerate(columns)}
        data["time"] = Data(np.broadcast_to(times[keep], values.shape[:2]).copy()
                            if runs > 1 else times[keep].copy(), data[columns[0]].owners)
        return TaskResult(data, owners=data["time"].owners)
    if analysis == "ode":
        result = simulate_deterministic(network, times, outputs=extra,
                                        method=options.get("method", "LSODA"),
                                        **_tolerances(rtol, atol))
        wide = result.to_wide("model").iloc[keep]
        data = {c: Data(wide.iloc[:, k + 1].to_numpy(), (task_id,))
                for k, c in enumerate(_model_columns(result.network))}
        data["time"] = Data(times[keep].copy(), (task_id,))
        entry["integrator"] = options.get("method", "LSODA")
        return TaskResult(data, owners=(task_id,))
    if analysis in ("cme", "lna"):
        if analysis == "cme":
            tol = float((annotation or {}).get("tol", 1e-6))
            result = solve_cme(network, times, outputs=extra, tol=tol)
            entry["error_bound_l1"] = float(result.error_bound)
            moments = result.moments
        else:
            result = solve_lna(network, times, outputs=extra)
            moments = result.moments
        return _moments_result(result.network, moments, times, keep, task_id)
    raise SedmlError(f"SED-ML task {task_id!r}: method {analysis!r} cannot run a time course")


def _steady_state(network, method, extra, task_id: str, entry: dict) -> TaskResult:
    from ..analyses import solve_lna, stationary_cme

    if method.analysis in ("ssa", "cme"):
        result = stationary_cme(network.with_outputs(extra))
        entry["error_bound_l1"] = float(result.error_bound)
        entry["method"] = "stationary_cme"
        return _moments_result(result.network, result.moments, np.array([np.inf]),
                               slice(None), task_id)
    result = solve_lna(network, None, outputs=extra)
    entry["method"] = "rate-equation steady state (solve_lna)"
    columns = _model_columns(result.network)
    values = result.means[0] / _model_scales(result.network)
    data = {c: Data(np.array([values[k]]), (task_id,)) for k, c in enumerate(columns)}
    data["time"] = Data(np.array([np.nan]), (task_id,))
    return TaskResult(data, owners=(task_id,))


def _moments_result(network, moments: pd.DataFrame, times, keep, task_id) -> TaskResult:
    scales = dict(zip(_model_columns(network), _model_scales(network)))
    result = TaskResult(owners=(task_id,))
    for species, rows in moments.groupby("species", sort=False):
        scale = scales.get(species, 1.0)
        mean = rows["mean"].to_numpy()[keep] / scale
        variance = rows["variance"].to_numpy()[keep] / scale**2
        result.moments[species] = (mean, variance)
        result.data[species] = Data(mean, (task_id,))
    result.data["time"] = Data(np.asarray(times)[keep].copy(), (task_id,))
    return result


def _tolerances(rtol, atol) -> dict:
    out = {}
    if rtol is not None:
        out["rtol"] = float(rtol)
    if atol is not None:
        out["atol"] = float(atol)
    return out


def _outputs(network, symbols: set[str]) -> list[str]:
    """Symbols to report beside the species: parameters, compartments, rule targets."""
    known = set(network.parameter_ids) | set(network.compartment_map) | {
        o.id for o in network.outputs}
    return sorted(s for s in symbols if s in known and s not in network.species_index
                  and s not in {o.id for o in network.outputs})


def _model_columns(network) -> list[str]:
    return list(network.species_ids) + [o.id for o in network.outputs]


def _model_scales(network) -> np.ndarray:
    """Molecules per model unit of each column (species as declared; parameters 1)."""
    return np.array([network.species_scale(s, "model") for s in network.species_ids] +
                    [network.output_scale(o, "model") for o in network.outputs], dtype=float)


# -- math ---------------------------------------------------------------------------------
def evaluate(ast, values: dict, where: str):
    """Evaluate a libsedml MathML AST with numpy over ``values`` (id -> number or array).

    SED-ML L1V1-L1V3 aggregate functions of one vector argument (``max(v)``, ``min``,
    ``sum``, ``product``, and ``mean``, ``stdev``, ``variance``) reduce over all of it.
    """
    import libsbml
    import libsedml
    import sympy

    from ..io.mathml import to_sympy

    if ast is None:
        raise SedmlError(f"SED-ML {where} has no math")
    formula = libsedml.formulaToL3String(ast)
    tree = libsbml.parseL3Formula(formula)
    if tree is None:
        raise SedmlError(f"SED-ML {where}: cannot read the math {formula!r}")
    values = dict(values)
    _replace_aggregates(tree, values, where)

    class _NoFunctions:
        bodies: dict = {}
        draw_count = 0

        def next_draw_id(self):
            raise SedmlError(f"SED-ML {where}: random draws are not allowed in SED-ML math")

    try:
        expression = to_sympy(tree, where, _NoFunctions())
    except SbmlCmeError as error:
        raise SedmlError(f"SED-ML {where}: {error}") from None
    names = sorted(str(s) for s in expression.free_symbols)
    missing = [n for n in names if n not in values]
    if missing:
        raise SedmlError(f"SED-ML {where}: the math reads {missing}, which are neither "
                         "variables nor parameters of it")
    function = sympy.lambdify([sympy.Symbol(n) for n in names], expression, "numpy")
    with np.errstate(all="ignore"):
        return function(*(np.asarray(values[n], dtype=float) for n in names))


_AGGREGATE_FUNCTIONS = {"max": np.max, "min": np.min, "sum": np.sum, "product": np.prod,
                        "mean": np.mean, "stdev": lambda v: np.std(v, ddof=1),
                        "variance": lambda v: np.var(v, ddof=1)}


def _replace_aggregates(tree, values: dict, where: str) -> None:
    """Replace one-argument aggregate calls on a variable by a computed name, in place."""
    import libsbml

    for i in range(tree.getNumChildren()):
        _replace_aggregates(tree.getChild(i), values, where)
    name = (tree.getName() or "").strip()
    from ..io.swig_types import ast_type, set_ast_type

    aggregate = ast_type(tree) in (libsbml.AST_FUNCTION, libsbml.AST_FUNCTION_MAX,
                                   libsbml.AST_FUNCTION_MIN) and name in _AGGREGATE_FUNCTIONS
    if not aggregate or tree.getNumChildren() != 1:
        return
    child = tree.getChild(0)
    if ast_type(child) != libsbml.AST_NAME or child.getName() not in values:
        raise SedmlError(f"SED-ML {where}: {name}() takes one variable")
    computed = f"__{name}_{child.getName()}"
    values[computed] = _AGGREGATE_FUNCTIONS[name](np.asarray(values[child.getName()],
                                                             dtype=float))
    while tree.getNumChildren():
        tree.removeChild(0)
    set_ast_type(tree, libsbml.AST_NAME)
    tree.setName(computed)


# -- log ----------------------------------------------------------------------------------
def _log(runs: list[DocumentRun], error, duration: float) -> dict:
    return {"status": "FAILED" if error is not None else "SUCCEEDED",
            "exception": None if error is None else {"type": type(error).__name__,
                                                     "message": str(error)},
            "duration": round(duration, 4),
            "simulator": {"name": "sbml_cme", "version": __version__},
            "sedDocuments": [run.log for run in runs]}
