"""models/biomodels/index.csv against its files: one row per bundled SBML file, sources
recorded as repo@commit:path, and the descriptive columns exactly what
tools/biomodels_index.py computes from the file with libsbml (so a hand edit or a
changed file shows)."""

from __future__ import annotations

import csv
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "models" / "biomodels"
ROWS = list(csv.DictReader(open(MODELS / "index.csv", newline="")))


@pytest.fixture(scope="module")
def tool():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "tools"))
        yield importlib.import_module("biomodels_index")


def test_one_row_per_file_and_sources_name_their_commit():
    assert sorted(row["id"] for row in ROWS) == sorted(p.stem for p in MODELS.glob("*.xml"))
    for row in ROWS:
        model = row["id"]
        assert re.fullmatch(rf"github\.com/biomodels/{model}@[0-9a-f]{{12}}:{model}/{model}\.xml",
                            row["source"]), row["source"]


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_descriptive_columns_match_the_file(tool, row):
    described = {key: tool.cell_text(value) for key, value in tool.describe(row["id"]).items()}
    assert described == {key: row[key] for key in described}
