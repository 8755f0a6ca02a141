"""Files of a fit (``sbml-cme fit``): estimates, starts and data-vs-model tables as CSV,
the histogram figure as PNG, one self-contained HTML page, and the fitted SBML."""

from __future__ import annotations

import io
import os
from pathlib import Path

from .files import write_csv, write_text
from .html import image_html, render_page, table_html


def write_fit_report(fit, directory: str | os.PathLike, *, profiles=None, posterior=None,
                     title: str = "CME fit") -> list[Path]:
    """Write ``fit`` (a :class:`~sbml_cme.analyses.fit.FitResult`) to ``directory``:
    ``estimates.csv, starts.csv, histograms.csv, fit_histograms.png, report.html`` and,
    for a network read from SBML, ``fitted.xml``. ``profiles``: ids whose profile
    likelihood is also computed (``profile_<id>.csv`` and a table). ``posterior``: a
    :class:`~sbml_cme.analyses.fit.PosteriorResult`, written as
    ``posterior_summary.csv`` and ``posterior_samples.csv`` with a table."""
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tables = {"estimates": fit.estimates, "starts": fit.starts,
              "histograms": fit.histograms()}
    for parameter in profiles or ():
        tables[f"profile_{parameter}"] = fit.profile(parameter)
    if posterior is not None:
        tables["posterior_summary"] = posterior.summary
        tables["posterior_samples"] = posterior.samples
    paths = [write_csv(frame, directory / f"{name}.csv") for name, frame in tables.items()]
    from .plots import plot_fit_histograms

    figure = plot_fit_histograms(tables["histograms"])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    png = buffer.getvalue()
    (directory / "fit_histograms.png").write_bytes(png)
    paths.append(directory / "fit_histograms.png")
    if fit.problem.network.source_sbml:
        paths.append(fit.to_sbml(directory / "fitted.xml"))
    sections = [("Estimates", table_html(fit.estimates, "estimates")),
                ("Data vs fitted model", image_html(png, "observed fraction of cells (bars) "
                                                         "and fitted CME marginal (line)")),
                ("Starts (L-BFGS-B)", table_html(fit.starts, "starts"))]
    sections += [(name.replace("_", " "), table_html(frame, name))
                 for name, frame in tables.items() if name.startswith("profile_")]
    if posterior is not None:
        verdict = "converged" if posterior.converged else \
            "NOT converged (fewer than 50 autocorrelation times): run more steps"
        sections.append((f"Posterior (emcee, {verdict}, acceptance "
                         f"{posterior.acceptance_fraction:.2f})",
                         table_html(posterior.summary, "posterior_summary")))
    info = fit.run_info
    lines = fit.summary().splitlines()[:1] + [
        f"{info['n_states']} FSP states, leaked mass <= {info['max_leaked']:.2g}, "
        f"{info['n_floored']:g} cells below the probability floor, "
        f"{info['wall_time']:.1f} s"]
    paths.append(write_text(directory / "report.html", render_page(title, lines, sections)))
    return paths
