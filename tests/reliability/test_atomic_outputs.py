"""Outputs are written atomically: a failed write leaves the old file whole."""

import pandas as pd
import pytest

from sbml_cme.reports.files import atomic_path, write_csv


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "table.csv"
    write_csv(pd.DataFrame({"a": [1, 2]}), path)
    with pytest.raises(RuntimeError):
        with atomic_path(path) as temporary:
            temporary.write_text("a\n3\n")
            raise RuntimeError("killed half-way")
    assert pd.read_csv(path)["a"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    write_csv(pd.DataFrame({"a": [4]}), path)
    assert pd.read_csv(path)["a"].tolist() == [4]
