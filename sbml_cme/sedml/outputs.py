"""Write what a SED-ML run produced, in the BioSimulators layout.

``OUT/<location>/<report id>.csv`` (a column per data set headed by its label),
``OUT/reports.h5`` (group per SED-ML location, dataset per report of shape (n_data_sets,
...) with the attributes BioSimulators reads: ``_type``, ``uri``, ``sedmlId``,
``sedmlName``, ``sedmlDataSetIds``, ``sedmlDataSetLabels``, ``sedmlDataSetNames``,
``sedmlDataSetDataTypes``, ``sedmlDataSetShapes``), ``OUT/<location>/<plot id>.png`` and
``OUT/log.yml``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..reports.files import atomic_path, write_csv, write_text


def write_outputs(runs, log: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Write CSVs, ``reports.h5``, PNGs and ``log.yml`` of ``runs``; returns the paths."""
    import yaml

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for run in runs:
        folder = out / run.location
        folder.mkdir(parents=True, exist_ok=True)
        for report_id, frame in run.reports.items():
            paths.append(write_csv(frame, folder / f"{report_id}.csv"))
        paths += _plots(run, folder)
    if any(run.report_arrays for run in runs):
        paths.append(_reports_h5(runs, out / "reports.h5"))
    paths.append(write_text(out / "log.yml", yaml.safe_dump(log, sort_keys=False)))
    return paths


def _plots(run, folder: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    from ..reports.plots import plot_curves

    paths = []
    for plot_id, plot in run.plots.items():
        figure = plot_curves(plot["name"], plot["curves"])
        paths.append(folder / f"{plot_id}.png")
        with atomic_path(paths[-1]) as temporary:
            figure.savefig(temporary, dpi=100, format="png")
        plt.close(figure)
    return paths


def _reports_h5(runs, path: Path) -> Path:
    import h5py

    with atomic_path(path) as temporary:
        with h5py.File(temporary, "w") as file:
            for run in runs:
                group = file.require_group(run.location)
                group.attrs["uri"] = run.location
                group.attrs["combineArchiveLocation"] = run.location
                for report_id, arrays in run.report_arrays.items():
                    values = [np.asarray(v, dtype=float) for _, v in arrays]
                    shape = np.broadcast_shapes(*(v.shape for v in values)) if values else (0,)
                    data = np.stack([np.broadcast_to(v, shape) for v in values]) \
                        if values else np.zeros((0,))
                    dataset = group.create_dataset(report_id, data=data)
                    datasets = [d for d, _ in arrays]
                    dataset.attrs["_type"] = "SedReport"
                    dataset.attrs["uri"] = f"{run.location}/{report_id}"
                    dataset.attrs["sedmlId"] = report_id
                    dataset.attrs["sedmlName"] = run.report_names.get(report_id, "")
                    dataset.attrs["sedmlDataSetIds"] = [d["id"] for d in datasets]
                    dataset.attrs["sedmlDataSetLabels"] = [d["label"] for d in datasets]
                    dataset.attrs["sedmlDataSetNames"] = [d["name"] for d in datasets]
                    dataset.attrs["sedmlDataSetDataTypes"] = ["float64"] * len(datasets)
                    dataset.attrs["sedmlDataSetShapes"] = [
                        ",".join(map(str, np.shape(v))) for v in values]
    return path
