"""Full DSMTS run: every stochastic time-course case of the SBML Test Suite, scored.

Runs each DSMTS case vendored in tests/data/dsmts/ with ``simulate_ssa`` (default
n = 10,000 trajectories) and prints a Markdown table of the test suite's standardized
statistics: out-of-range Z (mean) and Y (variance) points, the largest |Z| and |Y|, pass/fail
(at most 2 out-of-range points per statistic and no mismatch at sigma_t = 0 points), wall
time and reaction events fired.

Usage::

    python benchmarks/dsmts_full.py [--n 10000] [--seed 20080101] [--method direct|tree|both]
                                    [--cases 00002 00030 ...] [--n-jobs K]

Exit status 1 when some case fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "statistical"))

import dsmts  # noqa: E402
import sbml_cme  # noqa: E402
from sbml_cme.analyses import simulate_ssa  # noqa: E402
from sbml_cme.errors import SbmlCmeError  # noqa: E402

MAX_OUT_OF_RANGE = 2


def run_case(case: dsmts.Case, method: str, n: int, seed: int, n_jobs: int | None) -> dict:
    row = {"case": case.id, "family": case.family, "description": case.synopsis,
           "method": method}
    started = time.perf_counter()
    try:
        network = sbml_cme.read_sbml(case.sbml)
        result = simulate_ssa(network, case.settings.times, n_trajectories=n, seed=seed,
                              method=method, n_jobs=n_jobs)
    except SbmlCmeError as error:
        row.update(species=", ".join(case.settings.variables), error=str(error).split(".")[0],
                   time=time.perf_counter() - started)
        return row
    scores = dsmts.score_ensemble(case, result)
    z = [s for s in scores if s.kind == "Z"]
    y = [s for s in scores if s.kind == "Y"]
    passed = all(s.n_out <= MAX_OUT_OF_RANGE and s.exact_mismatches == 0 for s in scores)
    row.update(species=", ".join(case.settings.variables),
               z_out=sum(s.n_out for s in z), z_total=sum(s.n_points for s in z),
               z_max=max((s.max_abs for s in z), default=float("nan")),
               y_out=sum(s.n_out for s in y), y_total=sum(s.n_points for s in y),
               y_max=max((s.max_abs for s in y), default=float("nan")),
               passed=passed, time=time.perf_counter() - started,
               events=result.total_events, details=dsmts.describe(scores))
    return row


def format_row(row: dict) -> str:
    if "error" in row:
        return (f"| {row['case']} | {row['family']}: {row['description']} | {row['species']} | "
                f"{row['method']} | - | - | - | - | **import error**: {row['error']} | "
                f"{row['time']:.1f} | - |")
    verdict = "pass" if row["passed"] else "**FAIL**"
    return (f"| {row['case']} | {row['family']}: {row['description']} | {row['species']} | "
            f"{row['method']} | {row['z_out']}/{row['z_total']} | {row['z_max']:.2f} | "
            f"{row['y_out']}/{row['y_total']} | {row['y_max']:.2f} | {verdict} | "
            f"{row['time']:.1f} | {row['events']:,} |")


HEADER = ("| case | family: description | species | method | Z out | max abs Z | Y out | "
          "max abs Y | result | time (s) | events |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="trajectories per case")
    parser.add_argument("--seed", type=int, default=20080101)
    parser.add_argument("--method", choices=["direct", "tree", "both"], default="direct")
    parser.add_argument("--cases", nargs="*", help="case ids (default: every DSMTS case)")
    parser.add_argument("--n-jobs", type=int, default=None, help="threads (default: all)")
    parser.add_argument("--details", action="store_true",
                        help="print out-of-range times of failing cases")
    args = parser.parse_args(argv)

    cases = [case for case in dsmts.list_cases() if case.is_dsmts
             and (not args.cases or case.id in args.cases)]
    methods = ["direct", "tree"] if args.method == "both" else [args.method]
    print(f"DSMTS, n = {args.n:,} trajectories, seed {args.seed}, "
          f"sbml_cme {getattr(sbml_cme, '__version__', '?')}\n")
    print(HEADER, flush=True)
    rows = []
    for case in cases:
        for method in methods:
            row = run_case(case, method, args.n, args.seed, args.n_jobs)
            rows.append(row)
            print(format_row(row), flush=True)
    failed = [row for row in rows if not row.get("passed")]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} runs pass "
          f"(at most {MAX_OUT_OF_RANGE} out-of-range points per statistic); "
          f"total time {sum(row['time'] for row in rows):.0f} s.")
    if args.details:
        for row in failed:
            print(f"\n{row['case']} ({row['method']}):\n{row.get('details', row.get('error'))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
