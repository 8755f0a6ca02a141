"""The analyze() driver: run every analysis that fits a model and collect tidy tables.

Each step records what ran, why (or why not) and how long it took, in the ``steps``
table, so a report never hides a skipped method.
"""

from __future__ import annotations

import os
import time as wallclock
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..analyses.cme import solve_cme
from ..analyses.deterministic import simulate_deterministic
from ..analyses.ssa import simulate_ssa
from ..crosscheck import compare_frames, tellurium_reference
from ..errors import SbmlCmeError, StateSpaceTooLargeError, UnsupportedFeatureError
from ..io import read_sbml
from ..kinetics import compile_network
from ..network import Network

#: Reaction events the SSA may spend on one report (keeps analyze interactive).
SSA_EVENT_BUDGET = 5e7

#: Largest CME state set analyze attempts (larger ones are skipped with the reason).
CME_STATE_BUDGET = 200_000


@dataclass
class Report:
    """Tables produced by :func:`analyze`, keyed by name (tidy DataFrames)."""

    model: str
    network: Network
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    run_info: dict = field(default_factory=dict)

    def write(self, directory: str | os.PathLike) -> list[Path]:
        """Write every table as ``<name>.csv`` into ``directory``; returns the paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, table in self.tables.items():
            path = directory / f"{name}.csv"
            table.to_csv(path, index=False)
            paths.append(path)
        info = pd.DataFrame(sorted(self.run_info.items()), columns=["name", "value"])
        info.to_csv(directory / "run_info.csv", index=False)
        paths.append(directory / "run_info.csv")
        return paths

    def summary(self) -> str:
        """A few lines for the terminal: steps, slowest step, cross-check verdicts."""
        steps = self.tables["steps"]
        lines = [f"{self.model}: {len(self.network.species)} species, "
                 f"{len(self.network.reactions)} reaction channels"]
        for row in steps.itertuples():
            lines.append(f"  {row.step:<14} {row.status:<11} {row.seconds:7.2f} s  {row.detail}")
        ran = steps[steps.status == "ok"]
        if len(ran):
            slowest = ran.loc[ran.seconds.idxmax()]
            lines.append(f"  slowest step: {slowest.step} ({slowest.seconds:.2f} s)")
        if "crosscheck" in self.tables:
            table = self.tables["crosscheck"]
            bad = table[table.verdict != "agree"]
            lines.append(f"  tellurium cross-check: {len(table) - len(bad)}/{len(table)} "
                         "columns agree" + (f"; DISAGREE: {', '.join(bad.species)}"
                                            if len(bad) else ""))
        return "\n".join(lines)

    def crosscheck_passed(self) -> bool | None:
        table = self.tables.get("crosscheck")
        return None if table is None else bool((table.verdict == "agree").all())


def analyze(model: str | os.PathLike, *, t_end: float = 10.0, points: int = 51,
            n_trajectories: int = 1000, seed: int | None = None, progress: bool = False,
            **read_options) -> Report:
    """Run every analysis that fits ``model`` (an SBML file).

    Parameters
    ----------
    model : path-like
        SBML file.
    t_end, points : float, int
        Output times ``linspace(0, t_end, points)`` in model time units.
    n_trajectories : int
        SSA ensemble size (reduced to fit ``SSA_EVENT_BUDGET`` events, recorded).
    seed : int, optional
        SSA seed; a fresh one is drawn and recorded when omitted.
    **read_options
        Passed to :func:`~sbml_cme.io.read_sbml` (``volumes``, ``substance_unit``, ...).
    """
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    times = np.linspace(0.0, float(t_end), int(points))
    steps = []

    def step(name, function, detail=""):
        started = wallclock.perf_counter()
        try:
            value = function()
            status = "ok"
        except UnsupportedFeatureError as error:
            value, status, detail = None, "unsupported", str(error)
        except StateSpaceTooLargeError as error:
            value, status, detail = None, "skipped", str(error)
        except SbmlCmeError as error:
            value, status, detail = None, "failed", str(error)
        steps.append({"step": name, "status": status,
                      "seconds": wallclock.perf_counter() - started, "detail": detail})
        return value

    started = wallclock.perf_counter()
    network = read_sbml(model, **read_options)  # an import failure is the caller's error
    import_seconds = wallclock.perf_counter() - started
    steps.append({"step": "import", "status": "ok", "seconds": import_seconds,
                  "detail": f"{len(network.species)} species, {len(network.reactions)} channels"})
    report = Report(model=str(model), network=network)
    report.tables["conversion"] = network.conversion_table()
    report.tables["species"] = network.summary_frames()["species"]

    deterministic = step("deterministic", lambda: simulate_deterministic(network, times))
    if deterministic is not None:
        report.tables["deterministic"] = deterministic.to_wide("model")
        reference = step("tellurium", lambda: tellurium_reference(model, times, network=network))
        if reference is not None:
            report.tables["tellurium"] = reference
            report.tables["crosscheck"] = compare_frames(report.tables["deterministic"],
                                                         reference)

    cme = step("cme", lambda: solve_cme(network, times, max_states=CME_STATE_BUDGET))
    if cme is not None:
        report.tables["cme_stats"] = cme.stats()
        report.tables["cme_moments"] = cme.moments
        steps[-1]["detail"] = (f"{cme.n_states} states, certified L1 error "
                               f"{cme.error_bound:.3g}")

    size, reason = ssa_ensemble_size(network, t_end, n_trajectories)
    if size == 0:
        steps.append({"step": "ssa", "status": "skipped", "seconds": 0.0, "detail": reason})
    else:
        ensemble = step("ssa", lambda: simulate_ssa(network, times, n_trajectories=size,
                                                    seed=seed, progress=progress), reason)
        if ensemble is not None:
            report.tables["ssa_stats"] = ensemble.stats()
            report.tables["ssa_moments"] = ensemble.moments
    report.tables["steps"] = pd.DataFrame(steps)
    report.run_info = {"package_version": __version__, "model": str(model), "seed": seed,
                       "t_end": t_end, "points": points, "n_trajectories_requested":
                       n_trajectories, "read_options": repr(read_options)}
    return report


def ssa_ensemble_size(network: Network, t_end: float, requested: int) -> tuple[int, str]:
    """Ensemble size that fits :data:`SSA_EVENT_BUDGET`, and the reason for the choice.

    The expected number of events is estimated from the initial total propensity.
    """
    try:
        rates = compile_network(network).propensities(network.initial_counts)
    except SbmlCmeError as error:
        return 0, f"propensities cannot be evaluated: {error}"
    per_trajectory = float(np.sum(rates)) * t_end
    if not np.isfinite(per_trajectory):
        return 0, "initial propensities are not finite"
    if per_trajectory * min(requested, 10) > SSA_EVENT_BUDGET:
        return 0, (f"about {per_trajectory:.3g} reaction events per trajectory: copy numbers "
                   "too large for exact SSA (set volumes= or substance_unit=, or use the "
                   "deterministic/LNA results)")
    size = int(min(requested, max(10, SSA_EVENT_BUDGET // max(per_trajectory, 1.0))))
    reason = f"{size} trajectories" + ("" if size == requested else
                                       f" (reduced from {requested} to fit the event budget)")
    return size, reason
