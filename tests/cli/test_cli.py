"""The command line: outputs, exit codes, error messages without tracebacks."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sbml_cme.cli import main
from conftest import make_sbml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_file(tmp_path, birth_death_sbml):
    path = tmp_path / "birth_death.xml"
    path.write_text(birth_death_sbml)
    return path


def test_ssa_writes_stats(model_file, tmp_path):
    out = tmp_path / "stats.csv"
    code = main(["ssa", str(model_file), "--t-end", "4", "--points", "5", "--trajectories",
                 "200", "--seed", "3", "--out", str(out), "--no-progress"])
    assert code == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["time", "X-mean", "X-sd"]
    assert frame.time.tolist() == [0, 1, 2, 3, 4]


def test_ode_writes_model_units(model_file, tmp_path):
    out = tmp_path / "ode.csv"
    assert main(["ode", str(model_file), "--t-end", "2", "--points", "3", "--out",
                 str(out)]) == 0
    frame = pd.read_csv(out)
    import numpy as np
    assert frame["X"].to_numpy() == pytest.approx(10 * (1 - np.exp(-frame.time.to_numpy())),
                                                  rel=1e-6)


def test_crosscheck_and_analyze(model_file, tmp_path):
    assert main(["crosscheck", str(model_file), "--t-end", "3", "--points", "7"]) == 0
    out = tmp_path / "report"
    assert main(["analyze", str(model_file), "--t-end", "3", "--points", "7",
                 "--trajectories", "100", "--seed", "1", "--out", str(out),
                 "--no-progress"]) == 0
    for name in ("conversion", "crosscheck", "ssa_stats", "deterministic", "steps"):
        assert (out / f"{name}.csv").exists(), name


def test_info_prints_conversion_table(model_file, capsys):
    assert main(["info", str(model_file)]) == 0
    text = capsys.readouterr().out
    assert "Conversion table" in text and "birth" in text


def test_exit_codes(tmp_path, capsys):
    assert main(["ssa", str(tmp_path / "missing.xml")]) == 3
    bad = tmp_path / "bad.xml"
    bad.write_text("<sbml>not really</sbml>")
    assert main(["info", str(bad)]) == 3
    rejected = tmp_path / "rate_rule.xml"
    rejected.write_text(make_sbml({"X": 1}, [], rules=None).replace(
        "</model>", "<listOfRules><rateRule variable=\"X\"><math xmlns=\"http://www.w3.org/"
        "1998/Math/MathML\"><cn>1</cn></math></rateRule></listOfRules></model>"))
    assert main(["info", str(rejected)]) == 3
    error = capsys.readouterr().err
    assert "rate rule" in error and "Traceback" not in error
    assert main(["ssa", str(rejected), "--points", "1"]) in (2, 3)
    assert main(["nonsense-command"]) == 2


def test_console_script_runs_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "sbml_cme.cli", "ssa",
                             str(tmp_path / "missing.xml")], capture_output=True, text=True)
    assert result.returncode == 3
    assert "error:" in result.stderr and "Traceback" not in result.stderr
