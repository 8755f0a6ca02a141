"""The analyze() driver: run every analysis that fits a model, compare them, report.

``methods="auto"`` picks what fits and records why in the ``choices`` table:

- the network structure (conservation laws, complexes, deficiency, complex balance), always;
- the deterministic rate equations and tellurium, always;
- the exact product-form stationary law when the network is complex balanced (checked
  against the stationary CME);
- the CME when its state space fits ``CME_STATE_BUDGET`` states;
- the LNA at the stable steady state, or time-dependent when there is none;
- the SSA with an ensemble that fits ``SSA_EVENT_BUDGET`` reaction events;
- the CLE when copy numbers are high (``HIGH_COPY`` molecules).

Comparisons use statistical tolerances from the SSA ensemble's own standard errors
(``crosscheck`` table); the network's ODE must agree with tellurium.
"""

from __future__ import annotations

import os
import time as wallclock
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from .. import __version__
from ..analyses.cle import default_step, simulate_cle
from ..analyses.cme import solve_cme, stationary_cme
from ..analyses.deterministic import simulate_deterministic
from ..analyses.horizon import choose_horizon
from ..analyses.noise import PAIR_COLUMNS, SUMMARY_COLUMNS, noise_summary
from ..analyses.ssa import expected_events, simulate_ssa
from ..analyses.structure import analyze_structure, product_form_stationary
from ..crosscheck import compare_frames, tellurium_reference
from ..errors import OptionsError, SbmlCmeError, StateSpaceTooLargeError, UnsupportedFeatureError
from ..io import read_sbml
from ..network import MassAction, Network
from .files import atomic_path, write_csv, write_text

#: Reaction events the SSA may spend on one report (keeps analyze interactive).
SSA_EVENT_BUDGET = 5e7
#: Largest CME state set analyze attempts (larger ones are skipped with the reason).
CME_STATE_BUDGET = 200_000
#: Copy number from which the CLE is added (its Gaussian increments are then accurate).
HIGH_COPY = 1000.0
#: CLE steps (trajectories x steps) analyze may spend (about 30 s at ~1.3e5 steps/s on a
#: shared core, the repressilator over its automatic horizon of 700).
CLE_STEP_BUDGET = 4e6
#: Smallest CLE ensemble worth reporting; the CLE is skipped when fewer fit the budget.
MIN_CLE_TRAJECTORIES = 20
#: Family-wise false-alarm rate of each statistical comparison over all its time points.
ALPHA = 1e-3

ALL_METHODS = ("structure", "deterministic", "tellurium", "cme", "product_form", "lna", "ssa",
               "cle")
#: Steps that run whatever ``methods`` asks for.
ALWAYS = {"structure", "deterministic", "tellurium"}


@dataclass
class Report:
    """What :func:`analyze` produced.

    Attributes
    ----------
    tables : dict of DataFrame
        ``conversion``, ``species``, ``choices``, ``steps``, ``timecourses`` (``time,
        species, mean, variance, method``), ``species_summary`` (``species, method, mean,
        sd, fano, cv2`` at the last time), ``crosscheck`` (``comparison, species,
        statistic, value, threshold, verdict``), ``marginals`` (``method, species, count,
        probability`` at the last time), per-method ``<method>_moments`` and ``*_stats``.
    results : dict
        Method -> result object (EnsembleResult, CMEResult, LNAResult, ...).
    """

    model: str
    network: Network
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    run_info: dict = field(default_factory=dict)

    # -- output ---------------------------------------------------------------------
    def write(self, directory: str | os.PathLike) -> list[Path]:
        """Write tables (CSV, and Parquet when pyarrow is installed), PNG figures,
        ``report.html`` and ``annotated.xml`` into ``directory``; returns the paths."""
        from ..io.sbml_writer import write_annotated_sbml

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        parquet = _has_pyarrow()
        for name, table in self.tables.items():
            paths.append(write_csv(table, directory / f"{name}.csv"))
            if parquet:
                paths.append(directory / f"{name}.parquet")
                with atomic_path(paths[-1]) as temporary:
                    _to_parquet(table, temporary)
        info = pd.DataFrame(sorted((k, _plain(v)) for k, v in self.run_info.items()),
                            columns=["name", "value"])
        paths.append(write_csv(info, directory / "run_info.csv"))
        figures = self.figures()
        for name, figure in figures.items():
            paths.append(directory / f"{name}.png")
            with atomic_path(paths[-1]) as temporary:
                figure.savefig(temporary, dpi=110)
        paths.append(write_text(directory / "report.html", self.to_html(figures)))
        _close(figures)
        if self.network.source_sbml:
            paths.append(directory / "annotated.xml")
            with atomic_path(paths[-1]) as temporary:
                write_annotated_sbml(self.network, self, temporary)
        return paths

    def to_omex(self, path: str | os.PathLike) -> Path:
        """Write the experiment as a COMBINE archive (docs/sedml.md): the SBML model,
        SED-ML L1V4 for the rate equations, the SSA ensemble (seed, number of
        trajectories, mean/sd), the CME and the time-dependent LNA that ran, the result
        tables, manifest and metadata. ``sbml-cme run -i`` reruns it."""
        from ..sedml.export import write_omex

        lna = self.results.get("lna")
        if lna is not None and not np.all(np.isfinite(lna.times)):
            lna = None  # the stationary LNA is no time course
        tables = {name: self.tables[name] for name in ("deterministic", "ssa_stats",
                                                       "crosscheck") if name in self.tables}
        cme = self.results.get("cme")
        if cme is not None:
            tables["cme_stats"] = cme.stats()
        return write_omex(path, self.network, deterministic=self.results.get("deterministic"),
                          ssa=self.results.get("ssa"), cme=cme, lna=lna, tables=tables,
                          read_options=dict(self.run_info.get("read_options") or {}))

    def figures(self) -> dict:
        """Matplotlib figures: ``timecourses``, ``marginals``, ``noise``."""
        from . import plots

        figures = {}
        reference = self._reference_counts()
        if not self.tables["timecourses"].empty:
            figures["timecourses"] = plots.plot_time_courses(
                self.tables["timecourses"], reference, species=list(self.network.species_ids))
        if "marginals" in self.tables and not self.tables["marginals"].empty:
            figures["marginals"] = plots.plot_marginals(self.tables["marginals"])
        summary = self.tables.get("species_summary")
        if summary is not None and not summary.empty:
            figures["noise"] = plots.plot_noise(summary)
        return figures

    def to_html(self, figures: dict | None = None) -> str:
        """A self-contained HTML page of the report."""
        import io

        from .html import image_html, render_page, table_html

        own = figures is None
        figures = self.figures() if own else figures
        sections = []
        captions = {"timecourses": "Mean ± sd per method over the tellurium ODE",
                    "marginals": "Distributions at the last time: CME, SSA histogram, LNA",
                    "noise": "Fano factor and CV² per species and method"}
        for name, figure in figures.items():
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=100)
            sections.append((captions.get(name, name), image_html(buffer.getvalue(),
                                                                  captions.get(name, name))))
        if own:
            _close(figures)
        for name in ("crosscheck", "choices", "species_summary", "noise", "structure",
                     "conservation_laws", "complexes", "steps", "conversion", "species"):
            if name in self.tables:
                sections.append((name.replace("_", " "), table_html(self.tables[name], name)))
        return render_page(f"sbml_cme report: {Path(self.model).name}",
                           self.summary().splitlines(), sections)

    def _repr_html_(self) -> str:
        summary = "<br>".join(self.summary().splitlines())
        table = self.tables.get("species_summary", pd.DataFrame()).head(30).to_html(index=False)
        return f"<p>{summary}</p>{table}"

    def _reference_counts(self) -> pd.DataFrame | None:
        reference = self.tables.get("tellurium")
        if reference is None:
            return None
        counts = reference.copy()
        for column in counts.columns:
            if column in self.network.species_index:
                counts[column] = counts[column] * self.network.species_scale(column, "model")
        return counts

    def summary(self) -> str:
        """A few lines for the terminal: steps, slowest step, cross-check verdicts."""
        steps = self.tables["steps"]
        lines = [f"{self.model}: {len(self.network.species)} species, "
                 f"{len(self.network.reactions)} reaction channels"]
        if "t_end" in self.run_info:
            lines.append(f"  t_end = {self.run_info['t_end']:g}: "
                         f"{self.run_info.get('t_end_reason', '')}")
        for row in steps.itertuples():
            lines.append(f"  {row.step:<14} {row.status:<11} {row.seconds:7.2f} s  {row.detail}")
        ran = steps[steps.status == "ok"]
        if len(ran):
            slowest = ran.loc[ran.seconds.idxmax()]
            lines.append(f"  slowest step: {slowest.step} ({slowest.seconds:.2f} s)")
        table = self.tables.get("crosscheck")
        if table is not None and len(table):
            for comparison, rows in table.groupby("comparison", sort=False):
                verdicts = rows.verdict.value_counts()
                lines.append(f"  {comparison}: " + ", ".join(
                    f"{count} {verdict}" for verdict, count in verdicts.items()))
        return "\n".join(lines)

    def crosscheck_passed(self) -> bool | None:
        """Whether the network's ODE agrees with tellurium (None if not compared)."""
        table = self.tables.get("crosscheck")
        if table is None:
            return None
        rows = table[table.comparison == "ode vs tellurium"]
        return None if rows.empty else bool((rows.verdict == "agree").all())


def analyze(model: str | os.PathLike, *, methods="auto", t_end: float | None = None,
            points: int = 51, n_trajectories: int = 1000, seed: int | None = None,
            progress: bool = False, client=None, **read_options) -> Report:
    """Run every analysis that fits ``model`` (an SBML file) and compare them.

    Parameters
    ----------
    model : path-like
        SBML file.
    methods : "auto" or iterable of str
        Methods to try, from ``ALL_METHODS``; "auto" chooses (recorded in ``choices``).
    t_end, points : float or None, int
        Output times ``linspace(0, t_end, points)`` in model time units. ``t_end=None``
        picks the horizon from the model's time scales
        (:func:`~sbml_cme.analyses.horizon.choose_horizon`: the relaxation to steady
        state or a few periods of an oscillation, else 10); the choice and its reason
        are in ``run_info`` (``t_end``, ``t_end_reason``) and the ``horizon`` step.
    n_trajectories : int
        Ensemble size of the SSA and CLE (the SSA's is reduced to fit the event budget).
    seed : int, optional
        Seed of the ensembles; a fresh one is drawn and recorded when omitted.
    client : dask.distributed.Client, optional
        Run the SSA and CLE ensembles on a Dask cluster.
    **read_options
        Passed to :func:`~sbml_cme.io.read_sbml` (``volumes``, ``substance_unit``, ...).
    """
    wanted = _wanted_methods(methods)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    output_times(1.0 if t_end is None else t_end, points)  # bad options fail before work
    started = wallclock.perf_counter()
    network = read_sbml(model, **read_options)  # an import failure is the caller's error
    runner = _Runner(wanted)
    runner.steps.append({"step": "import", "status": "ok",
                         "seconds": wallclock.perf_counter() - started,
                         "detail": f"{len(network.species)} species, "
                                   f"{len(network.reactions)} channels"})
    t_end, t_end_reason = _horizon(network, t_end, runner)
    times = output_times(t_end, points)
    report = Report(model=str(model), network=network)
    report.tables["conversion"] = network.conversion_table()
    report.tables["species"] = network.summary_frames()["species"]
    structure = runner.step("structure", "always", lambda: analyze_structure(network),
                            describe=_describe_structure)
    if structure is not None:
        report.tables["structure"] = structure.properties
        report.tables["conservation_laws"] = structure.tables["conservation_laws"]
        report.tables["complexes"] = structure.tables["complexes"]

    deterministic = runner.step("deterministic", "always",
                                lambda: simulate_deterministic(network, times))
    reference = runner.step("tellurium", "always (reference on the original SBML)",
                            lambda: tellurium_reference(model, times, network=network))
    if deterministic is not None:
        report.results["deterministic"] = deterministic
        report.tables["deterministic"] = deterministic.to_wide("model")
    if reference is not None:
        report.tables["tellurium"] = reference

    report.results["cme"] = runner.step(
        "cme", f"when the state space fits {CME_STATE_BUDGET:,} states",
        lambda: solve_cme(network, times, max_states=CME_STATE_BUDGET),
        describe=lambda r: f"{r.n_states} states, certified L1 error {r.error_bound:.3g}")
    balanced = structure is not None and structure.complex_balanced is True
    report.results["product_form"] = runner.step(
        "product_form", "complex-balanced mass-action network: exact stationary law"
        if balanced else "applies to complex-balanced mass-action networks only; here: "
        + (structure.complex_balance_reason if structure is not None else "no structure"),
        (lambda: product_form_stationary(network, max_states=CME_STATE_BUDGET))
        if balanced else None,
        describe=lambda r: f"{r.n_states} states, tail mass {r.error_bound:.3g}")
    report.results["lna"] = runner.step("lna", "steady state, else time-dependent",
                                        lambda: _lna(network, times),
                                        describe=_describe_lna)
    size, reason = ssa_ensemble_size(network, times, n_trajectories, deterministic)
    report.results["ssa"] = runner.step(
        "ssa", reason, (lambda: simulate_ssa(network, times, n_trajectories=size, seed=seed,
                                             progress=progress, client=client))
        if size else None, describe=lambda r: f"{r.n_trajectories} trajectories, "
                                              f"{r.total_events:,} events, method "
                                              f"{r.run_info['algorithm']}")
    high, why = _high_copy(network, deterministic)
    run_cle = high or "cle" in wanted and methods != "auto"
    size, dt, budget = _cle_plan(network, times, n_trajectories) if run_cle else (0, None, "")
    report.results["cle"] = runner.step(
        "cle", why if size or not run_cle else budget,
        (lambda: simulate_cle(network, times, n_trajectories=size, seed=seed, dt=dt,
                              progress=progress, client=client)) if run_cle and size else None,
        describe=lambda r: f"{r.n_trajectories} trajectories, dt={r.run_info['dt']:.3g}")
    report.results = {k: v for k, v in report.results.items() if v is not None}

    for name, result in report.results.items():
        if name != "deterministic":
            report.tables[f"{name}_moments"] = result.moments
    if "ssa" in report.results:
        report.tables["ssa_stats"] = report.results["ssa"].stats()
    report.tables["timecourses"] = timecourses(report.results)
    report.tables["species_summary"] = species_summary(report.tables["timecourses"])
    report.tables["noise"], report.tables["correlations"] = noise_tables(report.results)
    report.tables["crosscheck"] = compare_methods(network, report, times)
    report.tables["marginals"] = marginals(network, report.results)
    report.tables["choices"] = pd.DataFrame(runner.choices,
                                            columns=["method", "chosen", "reason"])
    report.tables["steps"] = pd.DataFrame(runner.steps)
    report.run_info = {"package_version": __version__, "model": str(model), "seed": seed,
                       "t_end": t_end, "t_end_reason": t_end_reason, "points": points,
                       "n_trajectories_requested": n_trajectories,
                       "read_options": read_options, "methods": methods,
                       "wall_time": wallclock.perf_counter() - started}
    return report


def _horizon(network: Network, t_end: float | None, runner: "_Runner") -> tuple[float, str]:
    """(t_end, why): the one given, or the probe's choice, recorded as the horizon step."""
    if t_end is not None:
        return float(t_end), "given (t_end)"
    started = wallclock.perf_counter()
    horizon = choose_horizon(network)
    reason = f"auto: {horizon.reason}"
    runner.steps.append({"step": "horizon", "status": "ok",
                         "seconds": wallclock.perf_counter() - started,
                         "detail": f"t_end = {horizon.t_end:g} ({horizon.kind}; probe of "
                                   f"{horizon.evaluations} evaluations)"})
    return horizon.t_end, reason


def output_times(t_end: float, points: int) -> np.ndarray:
    """``linspace(0, t_end, points)``; ``t_end = 0`` is the initial state alone, shape (1,)."""
    if not (np.isfinite(t_end) and t_end >= 0 and int(points) >= 1):
        raise OptionsError(f"t_end must be a finite number >= 0 and points at least 1, got "
                           f"t_end={t_end!r}, points={points!r}")
    if t_end > 0 and int(points) < 2:
        raise OptionsError("points=1 is the start time alone: use t_end=0 for the initial "
                           "state, or points >= 2")
    return np.linspace(0.0, float(t_end), int(points)) if t_end > 0 else np.zeros(1)


# -- running steps ------------------------------------------------------------------------
class _Runner:
    """Runs steps, recording status, time, choices and reasons."""

    def __init__(self, wanted):
        self.wanted = wanted
        self.steps: list[dict] = []
        self.choices: list[dict] = []

    def step(self, name, reason, function, describe=None):
        if name not in self.wanted or function is None:
            why = "not requested" if name not in self.wanted else reason
            self.choices.append({"method": name, "chosen": False, "reason": why})
            self.steps.append({"step": name, "status": "skipped", "seconds": 0.0,
                               "detail": why})
            return None
        started = wallclock.perf_counter()
        detail, value = "", None
        try:
            value = function()
            status = "ok"
            detail = describe(value) if describe else ""
        except StateSpaceTooLargeError as error:
            status, detail = "skipped", str(error)
        except UnsupportedFeatureError as error:
            status, detail = "unsupported", str(error)
        except SbmlCmeError as error:
            status, detail = "failed", str(error)
        self.steps.append({"step": name, "status": status,
                           "seconds": wallclock.perf_counter() - started, "detail": detail})
        self.choices.append({"method": name, "chosen": status == "ok",
                             "reason": reason if status == "ok" else detail})
        return value


def _wanted_methods(methods) -> set[str]:
    if methods == "auto":
        return set(ALL_METHODS)
    wanted = {methods} if isinstance(methods, str) else set(methods)
    unknown = wanted - set(ALL_METHODS)
    if unknown:
        raise OptionsError(f"unknown method(s) {sorted(unknown)}; choose from {ALL_METHODS}")
    return wanted | ALWAYS


def _lna(network: Network, times: np.ndarray):
    from ..analyses.lna import lna_with_fallback

    return lna_with_fallback(network, times)


def _describe_structure(result) -> str:
    return (f"rank {result.rank}, {len(result.conservation_totals)} conservation laws, "
            f"deficiency {result.deficiency}, complex balanced: {result.complex_balanced}")


def _describe_lna(result) -> str:
    if bool(np.all(np.isinf(result.times))):
        undetermined = result.run_info.get("undetermined_species") or {}
        return "stationary (stable steady state)" + (
            f"; no stationary law for {', '.join(list(undetermined)[:5])} (never read by a "
            "rate law, they grow or drain for ever: NaN)" if undetermined else "")
    reason = result.run_info.get("fallback_reason", "")
    return "time-dependent" + (f" ({reason})" if reason else "")


def _cle_plan(network: Network, times: np.ndarray, n_trajectories: int):
    """(ensemble size, dt, reason) of the CLE within ``CLE_STEP_BUDGET`` steps.

    The size is 0, with the reason, when fewer than ``MIN_CLE_TRAJECTORIES`` fit (stiff
    models whose fastest rate forces a tiny step). When the step cannot even be chosen,
    the size is the one requested and dt None, so the CLE step itself reports the error.
    """
    try:
        dt = default_step(network, times)
    except SbmlCmeError:
        return n_trajectories, None, ""
    steps = (times[-1] - times[0]) / dt
    size = int(min(n_trajectories, CLE_STEP_BUDGET // max(steps, 1.0)))
    if size < MIN_CLE_TRAJECTORIES:
        return 0, dt, (f"{steps:.3g} steps per trajectory (dt={dt:.3g}, set by the fastest "
                       f"rate): fewer than {MIN_CLE_TRAJECTORIES} trajectories fit the budget "
                       f"of {CLE_STEP_BUDGET:.3g} steps")
    return size, dt, ""


def _high_copy(network: Network, deterministic) -> tuple[bool, str]:
    peak = float(np.max(network.initial_counts, initial=0.0))
    if deterministic is not None:
        peak = max(peak, float(np.nanmax(deterministic.counts[:, :len(network.species)],
                                         initial=0.0)))
    if peak >= HIGH_COPY:
        return True, f"copy numbers reach {peak:.3g} >= {HIGH_COPY:g} molecules"
    return False, f"copy numbers stay below {HIGH_COPY:g} molecules (peak {peak:.3g})"


def ssa_ensemble_size(network: Network, times: np.ndarray, requested: int,
                      deterministic=None) -> tuple[int, str]:
    """Ensemble size that fits :data:`SSA_EVENT_BUDGET`, and the reason for the choice.

    Events per trajectory are estimated by :func:`~sbml_cme.analyses.ssa.expected_events`
    along ``deterministic`` (counts at ``times``) when there is one.
    """
    try:
        per_trajectory = expected_events(network, times, deterministic)
    except SbmlCmeError as error:
        return 0, f"propensities cannot be evaluated: {error}"
    if not np.isfinite(per_trajectory):
        return 0, "initial propensities are not finite"
    if per_trajectory * min(requested, 10) > SSA_EVENT_BUDGET:
        return 0, (f"about {per_trajectory:.3g} reaction events per trajectory: copy numbers "
                   "too large for exact SSA (set volumes= or substance_unit=, or use the "
                   "LNA/CLE results)")
    size = int(min(requested, max(10, SSA_EVENT_BUDGET // max(per_trajectory, 1.0))))
    reason = f"{size} trajectories" + ("" if size == requested else
                                       f" (reduced from {requested} to fit the event budget)")
    return size, reason


# -- tables -------------------------------------------------------------------------------
def timecourses(results: dict) -> pd.DataFrame:
    """All methods' moments in one frame with a ``method`` column (molecule counts)."""
    frames = []
    for method, result in results.items():
        if method == "deterministic":
            wide = result.to_wide("count")
            long = wide.melt(id_vars="time", var_name="species", value_name="mean")
            long["variance"] = 0.0
        else:
            long = result.moments.copy()
        long["method"] = method
        frames.append(long[["time", "species", "mean", "variance", "method"]])
    if not frames:
        return pd.DataFrame(columns=["time", "species", "mean", "variance", "method"])
    return pd.concat(frames, ignore_index=True)


def species_summary(courses: pd.DataFrame) -> pd.DataFrame:
    """Per species and method at each method's last time: mean, sd, Fano, CV^2."""
    if courses.empty:
        return pd.DataFrame(columns=["species", "method", "time", "mean", "sd", "fano", "cv2"])
    last = courses.loc[courses.groupby(["method", "species"])["time"].idxmax()].copy()
    mean = last["mean"].to_numpy(dtype=float)
    variance = np.maximum(last["variance"].to_numpy(dtype=float), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        last["sd"] = np.sqrt(variance)
        last["fano"] = np.where(mean != 0, variance / mean, np.nan)
        last["cv2"] = np.where(mean != 0, variance / mean**2, np.nan)
    return last[["species", "method", "time", "mean", "sd", "fano", "cv2"]].sort_values(
        ["species", "method"]).reset_index(drop=True)


def noise_tables(results: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`~sbml_cme.analyses.noise.noise_summary` of every stochastic result at its
    last time, side by side: (``method, time, species, mean, variance, sd, fano, cv2``,
    ``method, time, species_i, species_j, covariance, correlation``)."""
    species, pairs = [], []
    for method, result in results.items():
        if method == "deterministic":
            continue
        summary = noise_summary(result)
        for frame, into in ((summary.species, species), (summary.pairs, pairs)):
            last = frame[frame.time == frame.time.max()].assign(method=method)
            into.append(last)
    if not species:
        return (pd.DataFrame(columns=SUMMARY_COLUMNS), pd.DataFrame(columns=PAIR_COLUMNS))
    return (pd.concat(species, ignore_index=True), pd.concat(pairs, ignore_index=True))


def _is_linear(network: Network) -> bool:
    """Mass action of order <= 1 throughout: the SSA mean then equals the ODE exactly."""
    return all(isinstance(r.rate_law, MassAction) and sum(m for _, m in r.rate_law.orders) <= 1
               for r in network.reactions) and not network.events


def compare_methods(network: Network, report: Report, times: np.ndarray) -> pd.DataFrame:
    """Verdicts: ODE vs tellurium, SSA mean vs ODE, CME vs SSA, LNA vs CME.

    Statistical comparisons use the largest standardized deviation over time,
    |mean_a - mean_b| / standard error, against the Bonferroni threshold for
    ``ALPHA`` over the time points (standard errors from the SSA ensemble).
    """
    rows = []
    tables = report.tables
    if "deterministic" in tables and "tellurium" in tables:
        table = compare_frames(tables["deterministic"], tables["tellurium"])
        rows += [{"comparison": "ode vs tellurium", "species": r.species,
                  "statistic": "max relative deviation", "value": r.max_rel_deviation,
                  "threshold": 1e-4, "verdict": r.verdict} for r in table.itertuples()]
    results = report.results
    threshold = float(scipy_stats.norm.isf(ALPHA / (2 * max(len(times) - 1, 1))))
    ssa = results.get("ssa")
    if ssa is not None:
        mean, variance = ssa._mean_variance()
        error = np.sqrt(variance / ssa.n_trajectories)
        columns = list(network.species_ids) + [o.id for o in network.outputs]
        linear = _is_linear(network)
        if "deterministic" in results:
            ode = results["deterministic"].counts
            rows += _z_rows("ssa mean vs ode", columns, mean, ode, error, threshold,
                            on_fail="disagree" if linear else "deviates (nonlinear network)")
        if "cme" in results:
            cme = _moment_matrix(results["cme"].moments, columns)
            rows += _z_rows("cme vs ssa", columns, mean, cme, error, threshold,
                            on_fail="disagree")
    if "lna" in results and "cme" in results:
        lna, cme = results["lna"].moments, results["cme"].moments
        last_cme = cme[cme.time == cme.time.max()].set_index("species")
        last_lna = lna[lna.time == lna.time.max()].set_index("species")
        for species in last_cme.index.intersection(last_lna.index):
            reference = last_cme.loc[species, "variance"]
            value = abs(last_lna.loc[species, "variance"] - reference) / max(abs(reference),
                                                                             1e-12)
            rows.append({"comparison": "lna vs cme", "species": species,
                         "statistic": "relative variance difference (last time)",
                         "value": value, "threshold": np.nan,
                         "verdict": "exact" if value < 1e-6 else "approximation"})
    if "product_form" in results:
        rows += _product_form_rows(network, results["product_form"])
    return pd.DataFrame(rows, columns=["comparison", "species", "statistic", "value",
                                       "threshold", "verdict"])


def _product_form_rows(network: Network, product_form) -> list[dict]:
    """The exact product-form law against the stationary CME: their L1 distance must
    stay within the sum of the two certified error bounds."""
    try:
        cme = stationary_cme(network, max_states=CME_STATE_BUDGET)
    except SbmlCmeError as error:
        return [{"comparison": "product form vs stationary cme", "species": "all",
                 "statistic": "L1 distance", "value": np.nan, "threshold": np.nan,
                 "verdict": f"not checked: {error}"}]
    distance = distribution_distance(product_form, cme)
    bound = product_form.error_bound + cme.error_bound + 1e-9
    return [{"comparison": "product form vs stationary cme", "species": "all",
             "statistic": "L1 distance", "value": distance, "threshold": bound,
             "verdict": "agree" if distance <= bound else "disagree"}]


def distribution_distance(first, second) -> float:
    """L1 distance between the last-time joint distributions of two CME-like results."""
    def as_series(result):
        states, probabilities = result.distributions[-1]
        index = pd.MultiIndex.from_arrays(np.asarray(states, dtype=np.int64).T)
        return pd.Series(probabilities, index=index).groupby(level=list(
            range(index.nlevels))).sum()

    a, b = as_series(first), as_series(second)
    a, b = a.align(b, fill_value=0.0)
    return float(np.abs(a - b).sum())


def _moment_matrix(moments: pd.DataFrame, columns: list[str]) -> np.ndarray:
    wide = moments.pivot(index="time", columns="species", values="mean")
    return wide.reindex(columns=columns).to_numpy(dtype=float)


def _z_rows(comparison, columns, mean, other, error, threshold, on_fail):
    rows = []
    for k, column in enumerate(columns):
        if k >= other.shape[1] or np.all(np.isnan(other[:, k])):
            continue
        difference = np.abs(mean[:, k] - other[:, k])
        # Constant outputs have round-off spread (~1e-15): never below float precision.
        spread = np.maximum(error[:, k], 1e-9 * np.abs(other[:, k]))
        # Where the ensemble has no spread (e.g. t = 0) the means must agree up to the
        # rounding of initial amounts to whole molecules (at most half a molecule).
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(spread > 0, difference / spread,
                         np.where(difference > 0.5 + 1e-9 * np.abs(other[:, k]), np.inf, 0.0))
        worst = float(np.nanmax(z)) if len(z) else 0.0
        rows.append({"comparison": comparison, "species": column,
                     "statistic": "max |mean difference| / standard error", "value": worst,
                     "threshold": threshold,
                     "verdict": "agree" if worst <= threshold else on_fail})
    return rows


def marginals(network: Network, results: dict) -> pd.DataFrame:
    """``method, species, count, probability`` at the last time: CME (exact), SSA
    (histogram), LNA (Gaussian density at whole counts)."""
    frames = []
    cme = results.get("cme")
    for species in network.species_ids[:12]:
        if cme is not None:
            table = cme.marginal(species)
            table = table[table.time == table.time.max()]
            frames.append(pd.DataFrame({"method": "cme", "species": species,
                                        "count": table["count"],
                                        "probability": table["probability"]}))
        ssa = results.get("ssa")
        if ssa is not None:
            values = ssa.states[:, -1, network.species_index[species]]
            frames.append(_histogram("ssa", species, values))
        lna = results.get("lna")
        if lna is not None:
            moments = lna.moments
            row = moments[(moments.species == species) & (moments.time == moments.time.max())]
            if len(row) and row["variance"].iloc[0] > 0:
                mean, sd = row["mean"].iloc[0], np.sqrt(row["variance"].iloc[0])
                # Whole counts when few; otherwise 200 points of the density per count.
                grid = np.arange(max(0, int(mean - 4 * sd)), int(mean + 4 * sd) + 2) \
                    if sd < 25 else np.linspace(max(0.0, mean - 4 * sd), mean + 4 * sd, 200)
                frames.append(pd.DataFrame({"method": "lna", "species": species,
                                            "count": grid,
                                            "probability": scipy_stats.norm.pdf(grid, mean,
                                                                                sd)}))
    if not frames:
        return pd.DataFrame(columns=["method", "species", "count", "probability"])
    return pd.concat(frames, ignore_index=True)


def _histogram(method: str, species: str, values: np.ndarray) -> pd.DataFrame:
    """Probability per whole count (at most 200 bins; wider ranges are binned and the
    probability is per count, so it stays comparable with the CME's)."""
    low, high = float(values.min()), float(values.max())
    bins = int(min(high - low + 1, 200))
    counts, edges = np.histogram(values, bins=max(bins, 1), range=(low - 0.5, high + 0.5))
    width = edges[1] - edges[0]
    keep = counts > 0
    return pd.DataFrame({"method": method, "species": species,
                         "count": (0.5 * (edges[:-1] + edges[1:]))[keep],
                         "probability": counts[keep] / len(values) / width})


def _plain(value) -> str:
    """A run-info value as plain text: ``auto``, not ``'auto'``; options as ``k=v``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in sorted(value.items()))
    if isinstance(value, (set, frozenset)):
        value = sorted(value, key=str)
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _to_parquet(table: pd.DataFrame, path: Path) -> None:
    frame = table.copy()
    for column in frame.columns:  # mixed-type object columns (e.g. None and float) as text
        if frame[column].dtype == object:
            frame[column] = frame[column].astype(str)
    frame.to_parquet(path, index=False)


def _close(figures: dict) -> None:
    import matplotlib.pyplot as plt

    for figure in figures.values():
        plt.close(figure)
