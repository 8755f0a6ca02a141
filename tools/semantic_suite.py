"""Run the SBML Test Suite's semantic (deterministic) cases through sbml_cme and score them.

Every ``TimeCourse`` case goes through :func:`sbml_cme.read_sbml` and
:func:`sbml_cme.analyses.simulate_deterministic` and is scored with the case's own
tolerances: a value ``U`` matches the expected ``C`` when
``|C - U| <= absolute + relative * |C|``. Variables listed under ``amount:`` are compared
as amounts (``to_wide("amount")``), those under ``concentration:`` as concentrations.

Each case is classified as

- ``matched``   every value of every variable matches;
- ``rejected``  the importer or the analysis raised UnsupportedFeatureError or
                InvalidSBMLError (the feature and element are recorded);
- ``MISMATCH``  the simulation ran but some value is off (a silent wrong answer: a bug);
- ``crashed``   any other exception, or the per-case timeout (a bug);
- ``skipped``   not a time course (``FluxBalanceSteadyState``).

Usage::

    python tools/semantic_suite.py [--suite DIR] [--cases 1-100,250] [--processes 2]
                                   [--timeout 30] [--output results.csv]

The suite is the SBML Test Suite (LGPL 2.1, github.com/sbmlteam/sbml-test-suite,
commit 7ab011efe471877987b5d6dcba8cc19a6ff71254), folder ``cases/semantic``.
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing
import os
import re
import signal
import sys
import time
import traceback
import warnings

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

DEFAULT_SUITE = os.path.join(ROOT, "..", "shared", "corpus", "sbml-test-suite", "semantic")
COLUMNS = ["case", "status", "feature", "element", "detail", "worst_variable",
           "worst_error", "seconds"]


class CaseTimeout(Exception):
    """The case ran past its time budget."""


def read_settings(path: str) -> dict:
    """Parse an ``NNNNN-settings.txt`` file into a dict (lists for the id lists)."""
    settings: dict = {}
    with open(path) as handle:
        for line in handle:
            if ":" not in line:
                continue
            key, value = line.split(":", 1)
            settings[key.strip()] = value.strip()
    for key in ("variables", "amount", "concentration"):
        settings[key] = [v.strip() for v in settings.get(key, "").split(",") if v.strip()]
    for key in ("start", "duration", "absolute", "relative"):
        settings[key] = float(settings[key])
    settings["steps"] = int(float(settings["steps"]))
    return settings


def test_type(case_dir: str) -> str:
    """The ``testType`` of a case, from its ``model.m``."""
    for path in glob.glob(os.path.join(case_dir, "*-model.m")):
        with open(path, errors="replace") as handle:
            match = re.search(r"testType:\s*(\S+)", handle.read())
            if match:
                return match.group(1)
    return "TimeCourse"


def model_file(case_dir: str) -> str:
    """The case's SBML file (the highest level and version present)."""
    files = sorted(glob.glob(os.path.join(case_dir, "*-sbml-l*v*.xml")))
    if not files:
        raise FileNotFoundError(f"no SBML file in {case_dir}")
    return files[-1]


def _observed(network, variables):
    """``network`` reporting every requested parameter or compartment too, so that
    event-assigned parameters are reported along the trajectory (observation only)."""
    from sbml_cme.errors import UnsupportedFeatureError

    reactions = {r.sbml_id or r.id for r in network.reactions}
    for variable in variables:
        if variable in reactions:
            raise UnsupportedFeatureError(
                f"the reaction rate symbol '{variable}' as an output", variable,
                analysis="the semantic-suite tool",
                hint="A network reports species, parameters and rule outputs, not fluxes.")
    symbols = set(network.parameter_ids) | set(network.compartment_map)
    return network.with_outputs([v for v in variables if v in symbols])


def simulate_case(case_dir: str, settings: dict) -> dict[str, np.ndarray]:
    """Simulate one case; returns variable -> values at the case's output times."""
    from sbml_cme import read_sbml
    from sbml_cme.analyses import simulate_deterministic

    network = read_sbml(model_file(case_dir))
    network = _observed(network, settings["variables"])
    times = np.linspace(settings["start"], settings["start"] + settings["duration"],
                        settings["steps"] + 1)
    result = simulate_deterministic(network, times)
    frames = {}
    values = {}
    for variable in settings["variables"]:
        if variable in settings["amount"]:
            units = "amount"
        elif variable in settings["concentration"]:
            units = "concentration"
        else:
            units = "model"
        if units not in frames:
            frames[units] = result.to_wide(units)
        frame = frames[units]
        if variable not in frame.columns:
            raise KeyError(f"variable '{variable}' is not reported by the simulation")
        values[variable] = frame[variable].to_numpy(dtype=float)
    return values


def score(expected: pd.DataFrame, simulated: dict[str, np.ndarray], settings: dict):
    """Worst scaled error over all variables: (variable, error), error <= 1 matches."""
    worst_variable, worst = "", 0.0
    for variable, values in simulated.items():
        reference = expected[variable].to_numpy(dtype=float)
        if len(reference) != len(values):
            return variable, np.inf
        both_nan = np.isnan(reference) & np.isnan(values)
        same_inf = np.isinf(reference) & (reference == values)
        with np.errstate(invalid="ignore"):
            error = np.abs(reference - values) / (settings["absolute"] +
                                                  settings["relative"] * np.abs(reference))
        error = np.where(both_nan | same_inf, 0.0, error)
        error = np.where(np.isnan(error), np.inf, error)
        if len(error) and float(np.max(error)) > worst:
            worst_variable, worst = variable, float(np.max(error))
    return worst_variable, worst


def _alarm(signum, frame):
    raise CaseTimeout()


def run_case(case_dir: str, timeout: float = 30.0) -> dict:
    """Run and classify one case; never raises."""
    from sbml_cme.errors import InvalidSBMLError, UnsupportedFeatureError

    case = os.path.basename(os.path.normpath(case_dir))
    row = dict.fromkeys(COLUMNS, "")
    row.update(case=case, worst_error=np.nan)
    started = time.perf_counter()
    kind = test_type(case_dir)
    if kind != "TimeCourse":
        row.update(status="skipped", feature="not a time course", detail=kind)
        return row
    if timeout and hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            settings = read_settings(glob.glob(os.path.join(case_dir, "*-settings.txt"))[0])
            expected = pd.read_csv(glob.glob(os.path.join(case_dir, "*-results.csv"))[0])
            expected.columns = [c.strip() for c in expected.columns]
            simulated = simulate_case(case_dir, settings)
        variable, worst = score(expected, simulated, settings)
        row.update(worst_variable=variable, worst_error=worst,
                   status="matched" if worst <= 1.0 else "MISMATCH")
    except UnsupportedFeatureError as error:
        row.update(status="rejected", feature=error.feature, element=error.element_id or "",
                   detail=str(error)[:300])
    except InvalidSBMLError as error:
        row.update(status="rejected", feature="invalid SBML", detail=str(error)[:300])
    except CaseTimeout:
        row.update(status="crashed", feature="timeout", detail=f"over {timeout:g} s")
    except Exception as error:  # noqa: BLE001 - every other exception is a bug to report
        last = traceback.extract_tb(error.__traceback__)[-1]
        row.update(status="crashed", feature=type(error).__name__,
                   detail=f"{error} ({os.path.basename(last.filename)}:{last.lineno})"[:300])
    finally:
        if timeout and hasattr(signal, "SIGALRM"):
            signal.setitimer(signal.ITIMER_REAL, 0)
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def _run_star(arguments):
    return run_case(*arguments)


def case_dirs(suite: str, selection: str | None = None) -> list[str]:
    """Case folders of ``suite``, optionally filtered by ``1-100,250`` style numbers."""
    dirs = sorted(d for d in glob.glob(os.path.join(suite, "[0-9]" * 5)) if os.path.isdir(d))
    if not selection:
        return dirs
    wanted = set()
    for part in selection.split(","):
        if "-" in part:
            low, high = part.split("-")
            wanted.update(range(int(low), int(high) + 1))
        elif part.strip():
            wanted.add(int(part))
    return [d for d in dirs if int(os.path.basename(d)) in wanted]


def run_suite(dirs: list[str], processes: int = 2, timeout: float = 30.0,
              progress: bool = False) -> pd.DataFrame:
    """Run ``dirs`` in ``processes`` worker processes; one row per case."""
    arguments = [(d, timeout) for d in dirs]
    rows = []
    if processes <= 1:
        iterator = map(_run_star, arguments)
        for k, row in enumerate(iterator):
            rows.append(row)
            _report(progress, k, len(dirs), row)
    else:
        context = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
        with context.Pool(processes, maxtasksperchild=100) as pool:
            for k, row in enumerate(pool.imap(_run_star, arguments, chunksize=4)):
                rows.append(row)
                _report(progress, k, len(dirs), row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _report(progress, k, total, row):
    if progress and (row["status"] in ("MISMATCH", "crashed") or (k + 1) % 100 == 0):
        print(f"[{k + 1}/{total}] {row['case']} {row['status']} {row['feature']} "
              f"{row['detail']}", file=sys.stderr, flush=True)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts per status and, for rejections and crashes, per feature."""
    keyed = frame.assign(reason=np.where(frame.status.isin(["rejected", "crashed", "skipped"]),
                                         frame.feature.map(_generic_reason), ""))
    return (keyed.groupby(["status", "reason"]).size().rename("cases").reset_index()
            .sort_values(["status", "cases"], ascending=[True, False]))


def _generic_reason(feature: str) -> str:
    """Strip element-specific names from a feature text (quoted ids, numbers)."""
    text = re.sub(r"'[^']*'", "'…'", str(feature))
    return re.sub(r"\b\d+(\.\d+)?(e[-+]?\d+)?\b", "N", text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default=DEFAULT_SUITE)
    parser.add_argument("--cases", default=None, help="e.g. 1-100,250")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--output", default=None, help="write one row per case (CSV)")
    args = parser.parse_args(argv)
    dirs = case_dirs(args.suite, args.cases)
    if not dirs:
        print(f"no cases found under {args.suite}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    frame = run_suite(dirs, args.processes, args.timeout, progress=True)
    if args.output:
        frame.to_csv(args.output, index=False)
    counts = frame.status.value_counts()
    print(summary(frame).to_string(index=False))
    print(f"\n{len(frame)} cases in {time.perf_counter() - started:.0f} s: " +
          ", ".join(f"{status} {counts.get(status, 0)}" for status in
                    ("matched", "rejected", "skipped", "MISMATCH", "crashed")))
    return 1 if counts.get("MISMATCH", 0) or counts.get("crashed", 0) else 0


if __name__ == "__main__":
    sys.exit(main())
