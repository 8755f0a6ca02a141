"""Record how the LNA fares on every bundled BioModels model: the ``lna_status`` and
``lna_reason`` columns of models/biomodels/index.csv (tests/analyses/test_lna.py checks
them).

Status, tried in this order:

- ``not imported``   the model does not import (``sbml_cme_status`` is not ``ok``);
- ``unsupported``    solve_lna refuses the model (UnsupportedFeatureError, e.g. events);
- ``steady state``   the steady-state LNA succeeds; the reason gives the largest real
                     part of a Jacobian eigenvalue (1/time) and names the species left
                     without a stationary law (NaN), if any;
- ``time dependent`` no stable steady state is reached (the reason says why) and the
                     time-dependent LNA on 0..10 (11 points) succeeds;
- ``failed``         both fail.

Only the two ``lna_*`` columns are written; the file is re-read just before writing, so
concurrent edits of other columns are kept.

Usage::

    python tools/lna_index.py [--check] [MODEL_ID ...]

``--check`` prints the rows that would change and writes nothing.
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import warnings

import numpy as np

import sbml_cme
from sbml_cme import ConvergenceError, SbmlCmeError, UnsupportedFeatureError
from sbml_cme.analyses import solve_lna

INDEX = pathlib.Path(__file__).resolve().parents[1] / "models" / "biomodels" / "index.csv"
TIMES = np.linspace(0.0, 10.0, 11)


def read_options(text: str) -> dict:
    """``key=value;key=value`` -> dict (the index's ``read_options`` column)."""
    return dict(item.split("=", 1) for item in filter(None, (text or "").split(";")))


def lna_outcome(row: dict) -> tuple[str, str]:
    """(lna_status, lna_reason) of one index row."""
    if row["sbml_cme_status"] != "ok":
        return "not imported", row["sbml_cme_reason"]
    network = sbml_cme.read_sbml(INDEX.parent / f"{row['id']}.xml",
                                 **read_options(row["read_options"]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = solve_lna(network)
    except UnsupportedFeatureError as error:
        return "unsupported", str(error).split(". ")[0]
    except ConvergenceError as error:
        reason = str(error).split(". The model")[0].split(". Use the")[0]
        try:
            solve_lna(network, TIMES)
        except SbmlCmeError as second:
            return "failed", f"{reason}; time-dependent: {str(second).split('. ')[0]}"
        return "time dependent", reason
    reason = f"max real eigenvalue {result.run_info['max_real_eigenvalue']:.3g}"
    undetermined = result.run_info["undetermined_species"]
    if undetermined:
        reason += ("; no stationary law (NaN) for " + ", ".join(
            f"{name} (net change {rate:.3g}/time)" for name, rate in undetermined.items())
            + ": no rate law reads them")
    return "steady state", reason


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="model ids (default: all)")
    parser.add_argument("--check", action="store_true", help="print changes, write nothing")
    args = parser.parse_args()
    with open(INDEX, newline="") as handle:
        rows = list(csv.DictReader(handle))
    outcomes = {row["id"]: lna_outcome(row) for row in rows
                if not args.models or row["id"] in args.models}
    for model_id, (status, reason) in outcomes.items():
        print(f"{model_id}: {status}: {reason}")
    if args.check:
        return
    with open(INDEX, newline="") as handle:  # re-read: others may edit other columns
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    for row in rows:
        if row["id"] in outcomes:
            row["lna_status"], row["lna_reason"] = outcomes[row["id"]]
    with open(INDEX, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
