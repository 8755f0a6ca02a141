"""Run analyze() over many models: per-model time limits, keep going past failures,
resumable, with a status table; locally or as Dask tasks.

Each model runs in its own Python process (so a time limit can stop it cleanly and a
crash cannot take the batch down) and writes its report to ``OUT/<model name>/``. With a
Dask client every model is one task; the task starts that process on a worker, so the
time limit holds there too (``OUT`` and the models must then be on a file system the
workers share). A model is finished when ``OUT/<model name>/status.json`` exists; a rerun
skips finished models. The status table ``OUT/status.csv`` (rewritten after every model)
has one row per model: ``model, status, element, reason, seconds`` with status ``ok``,
``unsupported`` (with the SBML element and the reason), ``failed`` (with the error) or
``timeout``; a timeout is not marked finished (it may succeed with a larger limit).
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import time as wallclock
import traceback
from pathlib import Path

import pandas as pd

from ..errors import OptionsError, SbmlCmeError, UnsupportedFeatureError
from .files import write_csv, write_text

STATUS_COLUMNS = ["model", "status", "element", "reason", "seconds"]

#: Prefix of the line on which the child process reports its status row.
_ROW_MARKER = "SBML_CME_BATCH_ROW "


def collect_models(inputs: list[str | os.PathLike]) -> list[Path]:
    """SBML files named directly or found (``*.xml``, ``*.sbml``) in directories."""
    models: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            models.extend(sorted(p for p in path.iterdir()
                                 if p.suffix.lower() in (".xml", ".sbml")))
        elif path.exists():
            models.append(path)
        else:
            raise OptionsError(f"'{path}' is neither an SBML file nor a directory")
    if not models:
        raise OptionsError("no SBML files (*.xml, *.sbml) found in the given inputs")
    return models


def index_read_options(models: list[Path]) -> dict[Path, dict]:
    """Read options from an ``index.csv`` beside the models (column ``read_options``,
    e.g. ``substance_unit=item``), as curated in models/biomodels/."""
    options: dict[Path, dict] = {}
    for folder in {m.parent for m in models}:
        index = folder / "index.csv"
        if not index.exists():
            continue
        table = pd.read_csv(index, dtype=str).fillna("")
        if "read_options" not in table.columns or "id" not in table.columns:
            continue
        for row in table.itertuples():
            parsed = {}
            for item in filter(None, row.read_options.split(";")):
                key, _, value = item.partition("=")
                parsed[key.strip()] = value.strip()
            options[folder / f"{row.id}.xml"] = parsed
    return options


def _child_main() -> None:
    """Child process: analyze the model described on stdin, write its report, print the
    status row."""
    job = pickle.loads(base64.b64decode(sys.stdin.read()))
    started = wallclock.perf_counter()
    row = {"model": job["model"], "status": "ok", "element": "", "reason": ""}
    try:
        from .analyze import analyze

        report = analyze(job["model"], progress=False, **job["options"])
        report.write(job["directory"])
        row["reason"] = report.summary().splitlines()[-1].strip()
    except UnsupportedFeatureError as error:
        row.update(status="unsupported", element=error.element_id or "", reason=str(error))
    except SbmlCmeError as error:
        row.update(status="failed", reason=f"{type(error).__name__}: {error}")
    except Exception as error:  # noqa: BLE001 - a batch keeps going; the row keeps the error
        row.update(status="failed", reason=f"{type(error).__name__}: {error}; "
                   + traceback.format_exc(limit=2).replace("\n", " | "))
    row["seconds"] = wallclock.perf_counter() - started
    print(_ROW_MARKER + json.dumps(row), flush=True)


def analyze_in_process(model: str, directory: str, options: dict, time_limit: float,
                       threads: int | None = None) -> dict:
    """Analyze one model in a fresh Python process, stopped after ``time_limit`` seconds.

    Parameters
    ----------
    model, directory : str
        The SBML file and the directory its report goes to.
    options : dict
        Keyword arguments of :func:`~sbml_cme.reports.analyze.analyze`.
    threads : int, optional
        Numba threads of the child (``NUMBA_NUM_THREADS``); all cores when omitted.

    Returns
    -------
    dict
        The status row (``STATUS_COLUMNS``).
    """
    environment = dict(os.environ)
    if threads is not None:
        environment["NUMBA_NUM_THREADS"] = str(int(threads))
    job = base64.b64encode(pickle.dumps({"model": model, "directory": directory,
                                         "options": options})).decode()
    started = wallclock.perf_counter()
    try:
        completed = subprocess.run(
            [sys.executable, "-c", "from sbml_cme.reports.batch import _child_main; "
                                   "_child_main()"],
            input=job, capture_output=True, text=True, timeout=time_limit, env=environment)
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        return {"model": model, "status": "timeout", "element": "",
                "reason": f"over the {time_limit:g} s limit",
                "seconds": wallclock.perf_counter() - started}
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(_ROW_MARKER):
            return json.loads(line[len(_ROW_MARKER):])
    last_error = (completed.stderr.strip().splitlines() or [""])[-1]
    return {"model": model, "status": "failed", "element": "",
            "reason": f"the worker process died (exit code {completed.returncode}) "
                      f"{last_error}".strip(),
            "seconds": wallclock.perf_counter() - started}


def run_batch(inputs, out: str | os.PathLike, *, time_limit: float = 600.0,
              progress: bool = True, client=None, **analyze_options) -> pd.DataFrame:
    """Analyze every model; returns (and writes) the status table.

    Parameters
    ----------
    inputs : list of path-like
        SBML files or directories of them.
    out : path-like
        Output directory (one sub-directory per model, plus ``status.csv``).
    time_limit : float
        Seconds per model; a model over the limit is stopped and marked ``timeout``.
    progress : bool
        Show a progress bar over models.
    client : dask.distributed.Client, optional
        Run each model as a task on this Dask cluster (one numba thread per task, so
        start workers with one thread per core); ``out`` and the models must be on a
        file system the workers share.
    **analyze_options
        Passed to :func:`~sbml_cme.reports.analyze.analyze` (t_end, n_trajectories, ...).
    """
    if not time_limit > 0:
        raise OptionsError("time_limit must be positive seconds")
    models = collect_models(list(inputs))
    curated = index_read_options(models)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[Path, dict] = {}
    jobs = {}
    for model in models:
        marker = out / model.stem / "status.json"
        if marker.exists():
            rows[model] = json.loads(marker.read_text())
        else:
            (out / model.stem).mkdir(parents=True, exist_ok=True)
            jobs[model] = (str(model.resolve()), str((out / model.stem).resolve()),
                           {**curated.get(model, {}), **analyze_options}, float(time_limit))
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(models), initial=len(rows), desc="batch", unit="model")

    def finish(model: Path, row: dict) -> None:
        row = {**row, "model": str(model)}
        if row["status"] != "timeout":  # a timeout may succeed with a larger limit
            write_text(out / model.stem / "status.json", json.dumps(row))
        rows[model] = row
        write_csv(_status_table(models, rows), out / "status.csv")
        if bar is not None:
            bar.update()

    try:
        if client is None:
            for model, job in jobs.items():
                finish(model, analyze_in_process(*job))
        else:
            _run_on_dask(client, jobs, finish)
    finally:
        if bar is not None:
            bar.close()
    table = _status_table(models, rows)
    write_csv(table, out / "status.csv")
    return table


def _run_on_dask(client, jobs: dict, finish) -> None:
    """One task per model (one numba thread each); ``finish(model, row)`` as they end."""
    from distributed import as_completed

    futures = {client.submit(analyze_in_process, *job, 1, pure=False): model
               for model, job in jobs.items()}
    for future in as_completed(futures):
        model = futures[future]
        try:
            row = future.result()
        except Exception as error:  # noqa: BLE001 - e.g. KilledWorker: the worker was lost
            row = {"status": "failed", "element": "", "seconds": float("nan"),
                   "reason": f"Dask task failed: {type(error).__name__}: {error}"}
        finish(model, row)


def _status_table(models: list[Path], rows: dict) -> pd.DataFrame:
    """Rows of the finished models, in input order."""
    return pd.DataFrame([rows[m] for m in models if m in rows], columns=STATUS_COLUMNS)


def summary_line(table: pd.DataFrame) -> str:
    """``N models: a ok, b unsupported, c failed, d timeout``."""
    counts = table["status"].value_counts()
    parts = [f"{counts.get(s, 0)} {s}" for s in ("ok", "unsupported", "failed", "timeout")]
    return f"{len(table)} models: " + ", ".join(parts)
