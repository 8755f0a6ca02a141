"""Every curated BioModels entry either imports and reproduces tellurium's trajectories
(relative 1e-4 of each column's maximum, t = 0..10), or is refused with an
UnsupportedFeatureError, exactly as models/biomodels/index.csv records."""

from __future__ import annotations

import csv
import pathlib

import numpy as np
import pytest

from sbml_cme import UnsupportedFeatureError, read_sbml

pytest.importorskip("roadrunner")
from sbml_cme.crosscheck import crosscheck  # noqa: E402

MODELS = pathlib.Path(__file__).resolve().parents[2] / "models" / "biomodels"
ROWS = list(csv.DictReader(open(MODELS / "index.csv", newline="")))


def _options(text: str) -> dict:
    options = {}
    for item in filter(None, (text or "").split(";")):
        key, value = item.split("=", 1)
        options[key.strip()] = value.strip()
    return options


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_biomodel_matches_index(row):
    path = MODELS / f"{row['id']}.xml"
    options = _options(row["read_options"])
    if row["sbml_cme_status"] == "unsupported":
        with pytest.raises(UnsupportedFeatureError) as caught:
            read_sbml(path, **options)
        assert caught.value.feature in row["sbml_cme_reason"]
        return
    assert row["sbml_cme_status"] == "ok"
    network = read_sbml(path, **options)
    table = crosscheck(path, np.linspace(0, 10, 51), network=network)
    assert len(table) > 0
    disagreeing = table[table.verdict != "agree"]
    assert disagreeing.empty, disagreeing.to_string()
