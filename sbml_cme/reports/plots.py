"""Figures of a report, from its tidy tables. The only module that imports matplotlib.

Every function takes DataFrames with the documented report schemas and returns a
matplotlib Figure (Agg backend; nothing is shown), so a notebook, a script and
``Report.write`` draw the same pictures.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: Most species drawn in one figure (the report lists the rest in its tables).
MAX_PANELS = 12

_COLOURS = {"ssa": "tab:blue", "cme": "tab:orange", "lna": "tab:green", "cle": "tab:purple",
            "deterministic": "black", "tellurium": "tab:red"}


def _grid(n: int):
    columns = min(3, max(n, 1))
    rows = math.ceil(max(n, 1) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows),
                                squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return figure, axes.ravel()


def plot_time_courses(timecourses: pd.DataFrame, reference: pd.DataFrame | None = None,
                      species: list[str] | None = None):
    """Mean +- sd bands per method, over the tellurium ODE when given.

    Parameters
    ----------
    timecourses : DataFrame
        ``time, species, mean, variance, method`` (molecule counts).
    reference : DataFrame, optional
        Wide ``time, X, ...`` in molecule counts (the tellurium/ODE solution).
    """
    species = list(species or pd.unique(timecourses["species"]))[:MAX_PANELS]
    figure, axes = _grid(len(species))
    for ax, name in zip(axes, species):
        rows = timecourses[timecourses.species == name]
        for method, part in rows.groupby("method", sort=False):
            part = part[np.isfinite(part["time"])]
            if part.empty:
                continue
            colour = _COLOURS.get(method)
            sd = np.sqrt(np.maximum(part["variance"].to_numpy(dtype=float), 0.0))
            mean = part["mean"].to_numpy(dtype=float)
            ax.plot(part["time"], mean, color=colour, label=method, lw=1.4)
            ax.fill_between(part["time"], mean - sd, mean + sd, color=colour, alpha=0.18,
                            lw=0)
        if reference is not None and name in reference.columns:
            ax.plot(reference["time"], reference[name], color=_COLOURS["tellurium"], ls="--",
                    lw=1.0, label="tellurium ODE")
        ax.set_title(name)
        ax.set_xlabel("time")
        ax.set_ylabel("molecules")
    if len(species):
        axes[0].legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_marginals(marginals: pd.DataFrame, species: list[str] | None = None):
    """Distributions at one time, one panel per species.

    ``marginals``: ``method, species, count, probability``; methods ``cme`` (bars),
    ``ssa`` (histogram, step) and ``lna`` (Gaussian density at whole counts, line).
    """
    species = list(species or pd.unique(marginals["species"]))[:MAX_PANELS]
    figure, axes = _grid(len(species))
    for ax, name in zip(axes, species):
        rows = marginals[marginals.species == name]
        for method, part in rows.groupby("method", sort=False):
            colour = _COLOURS.get(method)
            if method == "cme":
                ax.bar(part["count"], part["probability"], width=1.0, color=colour,
                       alpha=0.5, label="CME")
            elif method == "lna":
                ax.plot(part["count"], part["probability"], color=colour, label="LNA")
            else:
                ax.step(part["count"], part["probability"], where="mid", color=colour,
                        label=method.upper())
        ax.set_title(name)
        ax.set_xlabel("molecules")
        ax.set_ylabel("probability")
    if len(species):
        axes[0].legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_noise(summary: pd.DataFrame):
    """Fano factor and CV^2 per species and method (``species, method, fano, cv2``)."""
    figure, (fano_ax, cv_ax) = plt.subplots(1, 2, figsize=(11, 3.6))
    table = summary[summary.method != "deterministic"]
    species = list(pd.unique(table["species"]))[:40]
    methods = list(pd.unique(table["method"]))
    width = 0.8 / max(len(methods), 1)
    positions = np.arange(len(species))
    for k, method in enumerate(methods):
        part = table[table.method == method].set_index("species").reindex(species)
        offset = positions + (k - (len(methods) - 1) / 2) * width
        fano_ax.bar(offset, part["fano"], width, color=_COLOURS.get(method), label=method)
        cv_ax.bar(offset, part["cv2"], width, color=_COLOURS.get(method), label=method)
    for ax, label in ((fano_ax, "Fano factor (var / mean)"), (cv_ax, "CV² (var / mean²)")):
        ax.set_xticks(positions, species, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(label)
    fano_ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    cv2 = table["cv2"].to_numpy(dtype=float)
    if np.any(np.isfinite(cv2) & (cv2 > 0)):
        cv_ax.set_yscale("log")
    fano_ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_curves(title: str, curves: list[dict]):
    """A SED-ML 2-D plot: each curve ``{"name", "x", "y", "log_x", "log_y"}`` with arrays of
    the same shape; 2-D arrays (iterations x time) draw one line per iteration."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for k, curve in enumerate(curves):
        x, y = np.atleast_1d(curve["x"]), np.atleast_1d(curve["y"])
        if x.ndim > 1 or y.ndim > 1:
            x, y = np.broadcast_arrays(x, y)
            x = x.reshape(-1, x.shape[-1]).T
            y = y.reshape(-1, y.shape[-1]).T
        lines = axes.plot(x, y, color=f"C{k % 10}", lw=1.2)
        lines[0].set_label(curve["name"])
        if curve.get("log_x"):
            axes.set_xscale("log")
        if curve.get("log_y"):
            axes.set_yscale("log")
    axes.set_title(title)
    if curves:
        axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_fit_histograms(histograms: pd.DataFrame):
    """Data vs fitted model: one panel per (experiment, time, species) of
    ``FitResult.histograms()`` (bars: observed fraction of cells; line: model
    probability)."""
    keys = list(histograms.groupby(["experiment", "time", "species"], sort=True).groups)
    keys = keys[:MAX_PANELS]
    figure, axes = _grid(len(keys))
    for ax, (experiment, t, species) in zip(axes, keys):
        rows = histograms[(histograms.experiment == experiment) & (histograms.time == t) &
                          (histograms.species == species)].sort_values("count")
        ax.bar(rows["count"], rows["observed_fraction"], width=1.0, color="0.75",
               label="data")
        ax.plot(rows["count"], rows["model_probability"], color="tab:orange", lw=1.5,
                label="fitted CME")
        label = f"{species}, t={t:g}" + ("" if experiment == "default" else f" ({experiment})")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("count")
        ax.set_ylabel("fraction of cells")
    if keys:
        axes[0].legend(fontsize=8)
    figure.tight_layout()
    return figure
