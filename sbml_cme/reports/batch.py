"""Run analyze() over many models: per-model time limits, keep going past failures,
resumable, with a status table.

Each model runs in its own process (so a time limit can stop it cleanly and a crash cannot
take the batch down) and writes its report to ``OUT/<model name>/``. A model is finished
when ``OUT/<model name>/status.json`` exists; a rerun skips finished models. The status
table ``OUT/status.csv`` has one row per model: ``model, status, element, reason,
seconds`` with status ``ok``, ``unsupported`` (with the SBML element and the reason),
``failed`` (with the error) or ``timeout``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time as wallclock
import traceback
from pathlib import Path

import pandas as pd

from ..errors import OptionsError, SbmlCmeError, UnsupportedFeatureError

STATUS_COLUMNS = ["model", "status", "element", "reason", "seconds"]


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


def _run_one(model: str, directory: str, options: dict, queue) -> None:
    """Child process: analyze one model, write its report, report the status."""
    started = wallclock.perf_counter()
    row = {"model": model, "status": "ok", "element": "", "reason": ""}
    try:
        from .analyze import analyze

        report = analyze(model, progress=False, **options)
        report.write(directory)
        row["reason"] = report.summary().splitlines()[-1].strip()
    except UnsupportedFeatureError as error:
        row.update(status="unsupported", element=error.element_id or "", reason=str(error))
    except SbmlCmeError as error:
        row.update(status="failed", reason=f"{type(error).__name__}: {error}")
    except Exception as error:  # noqa: BLE001 - a batch keeps going; the row keeps the error
        row.update(status="failed", reason=f"{type(error).__name__}: {error}; "
                   + traceback.format_exc(limit=2).replace("\n", " | "))
    row["seconds"] = wallclock.perf_counter() - started
    queue.put(row)


def run_batch(inputs, out: str | os.PathLike, *, time_limit: float = 600.0,
              progress: bool = True, **analyze_options) -> pd.DataFrame:
    """Analyze every model; returns (and writes) the status table.

    Parameters
    ----------
    inputs : list of path-like
        SBML files or directories of them.
    out : path-like
        Output directory (one sub-directory per model, plus ``status.csv``).
    time_limit : float
        Seconds per model; a model over the limit is stopped and marked ``timeout``.
    **analyze_options
        Passed to :func:`~sbml_cme.reports.analyze.analyze` (t_end, n_trajectories, ...).
    """
    if not time_limit > 0:
        raise OptionsError("time_limit must be positive seconds")
    models = collect_models(list(inputs))
    curated = index_read_options(models)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    context = multiprocessing.get_context("spawn")
    iterator = models
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(models, desc="batch", unit="model")
    for model in iterator:
        directory = out / model.stem
        marker = directory / "status.json"
        if marker.exists():
            rows.append(json.loads(marker.read_text()))
            continue
        directory.mkdir(parents=True, exist_ok=True)
        options = {**curated.get(model, {}), **analyze_options}
        queue = context.Queue()
        process = context.Process(target=_run_one,
                                  args=(str(model), str(directory), options, queue))
        started = wallclock.perf_counter()
        process.start()
        process.join(time_limit)
        if process.is_alive():
            process.terminate()
            process.join()
            row = {"model": str(model), "status": "timeout", "element": "",
                   "reason": f"over the {time_limit:g} s limit",
                   "seconds": wallclock.perf_counter() - started}
        elif queue.empty():
            row = {"model": str(model), "status": "failed", "element": "",
                   "reason": f"the worker process died (exit code {process.exitcode})",
                   "seconds": wallclock.perf_counter() - started}
        else:
            row = queue.get()
        if row["status"] != "timeout":  # a timeout may succeed with a larger limit
            marker.write_text(json.dumps(row))
        rows.append(row)
    table = pd.DataFrame(rows, columns=STATUS_COLUMNS)
    table.to_csv(out / "status.csv", index=False)
    return table


def summary_line(table: pd.DataFrame) -> str:
    """``N models: a ok, b unsupported, c failed, d timeout``."""
    counts = table["status"].value_counts()
    parts = [f"{counts.get(s, 0)} {s}" for s in ("ok", "unsupported", "failed", "timeout")]
    return f"{len(table)} models: " + ", ".join(parts)
