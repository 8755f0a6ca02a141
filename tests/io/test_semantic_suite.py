"""SBML Test Suite semantic cases through read_sbml + simulate_deterministic.

A fixed subset (tests/data/semantic, LGPL 2.1, see its LICENSE.md) covering events
(delays, priorities, persistence, t0 firing), rules, initial assignments, units, local
parameters, function definitions, boundary species, comp models (ports, replacements,
deletions, conversion factors), algebraic rules and constant stoichiometryMath or
assigned stoichiometries must be classified exactly as tools/semantic_suite.py recorded
in expected.csv. The whole suite, when the corpus is
present, must show no mismatch and no crash (marked slow).
"""

from __future__ import annotations

import pathlib
import sys

import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import semantic_suite  # noqa: E402

DATA = ROOT / "tests" / "data" / "semantic"
EXPECTED = pd.read_csv(DATA / "expected.csv", dtype=str).fillna("")
CORPUS = ROOT.parent / "shared" / "corpus" / "sbml-test-suite" / "semantic"


@pytest.mark.parametrize("case", EXPECTED.to_dict("records"), ids=list(EXPECTED.case))
def test_semantic_case_as_recorded(case):
    row = semantic_suite.run_case(str(DATA / case["case"]), timeout=60)
    assert row["status"] == case["status"], row
    if case["status"] in ("rejected", "skipped"):
        assert row["feature"] == case["feature"]
        assert row["element"] == case["element"]


def test_subset_covers_the_main_constructs():
    counts = EXPECTED.status.value_counts()
    assert counts.get("matched", 0) >= 40
    assert counts.get("rejected", 0) >= 15


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason="the SBML Test Suite corpus is not present")
def test_whole_semantic_suite_has_no_mismatch():
    frame = semantic_suite.run_suite(semantic_suite.case_dirs(str(CORPUS)), processes=2,
                                     timeout=30)
    mismatched = frame[frame.status == "MISMATCH"]
    assert mismatched.empty, mismatched.to_string()
