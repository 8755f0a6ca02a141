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


def test_ssa_method_defaults_to_auto_and_says_what_it_ran(model_file, tmp_path, capsys):
    arguments = ["ssa", str(model_file), "--t-end", "1", "--points", "2", "--trajectories",
                 "20", "--seed", "3", "--no-progress"]
    assert main(arguments + ["--out", str(tmp_path / "auto.csv")]) == 0
    assert "(method direct; auto: 2 channels" in capsys.readouterr().err
    assert main(arguments + ["--method", "direct", "--out", str(tmp_path / "direct.csv")]) == 0
    assert "(method direct; requested)" in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "auto.csv").equals(pd.read_csv(tmp_path / "direct.csv"))
    assert main(arguments + ["--method", "tree", "--out", str(tmp_path / "tree.csv")]) == 0
    assert "(method tree; requested)" in capsys.readouterr().err


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
    rejected = tmp_path / "fast.xml"
    rejected.write_text(make_sbml({"X": 1}, [("r", {"X": 1}, {}, "X")]).replace(
        'fast="false"', 'fast="true"'))
    assert main(["info", str(rejected)]) == 3
    error = capsys.readouterr().err
    assert "fast reaction" in error and "Traceback" not in error
    assert main(["ssa", str(rejected), "--points", "1"]) in (2, 3)
    assert main(["nonsense-command"]) == 2


def test_console_script_runs_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "sbml_cme.cli", "ssa",
                             str(tmp_path / "missing.xml")], capture_output=True, text=True)
    assert result.returncode == 3
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_structure_prints_and_writes_tables(tmp_path, capsys):
    """A <-> B with 7 molecules: one law A + B = 7, 8 states, deficiency 0, complex balanced."""
    path = tmp_path / "isomerisation.xml"
    path.write_text(make_sbml({"A": 7, "B": 0}, [("f", {"A": 1}, {"B": 1}, "2 * A"),
                                                  ("r", {"B": 1}, {"A": 1}, "3 * B")]))
    out = tmp_path / "structure"
    assert main(["structure", str(path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "A + B = 7" in text and "deficiency: 0" in text
    properties = pd.read_csv(out / "properties.csv").set_index("name").value
    assert properties["class_size"] in ("8", "8.0")
    assert properties["complex_balanced"] == "True"
    assert (out / "complexes.csv").exists() and (out / "linkage_classes.csv").exists()


def test_delay_phases_option_reads_delay_csymbol(tmp_path, capsys):
    """Without --delay-phases a delay() law is rejected (exit 3, the fix named); with it
    the reaction becomes a chain of K phases."""
    path = tmp_path / "delayed.xml"
    path.write_text(make_sbml({"P": 100, "M": 0},
                              [("tx", {}, {"M": 1}, "k * delay(P, tau)"),
                               ("deg", {"P": 1}, {}, "g * P")],
                              parameters={"k": 0.5, "g": 0.2, "tau": 3.0}))
    assert main(["info", str(path)]) == 3
    assert "delay" in capsys.readouterr().err
    assert main(["info", str(path), "--delay-phases", "3"]) == 0
    text = capsys.readouterr().out
    assert "phase3" in text


def test_cme_methods_agree_from_the_command_line(model_file, tmp_path):
    frames = []
    for method in ("krylov", "krylov_iop", "ode"):
        out = tmp_path / f"{method}.csv"
        assert main(["cme", str(model_file), "--t-end", "3", "--points", "4", "--tol", "1e-8",
                     "--method", method, "--out", str(out)]) == 0
        frames.append(pd.read_csv(out))
    for frame in frames[1:]:
        assert frame["X-mean"].to_numpy() == pytest.approx(frames[0]["X-mean"].to_numpy(),
                                                           rel=1e-6)
    assert main(["cme", str(model_file), "--method", "magic"]) == 2


def test_bad_inputs_exit_with_documented_codes_and_one_line(tmp_path, capsys, model_file):
    """Issue 13: a directory is exit 3 like a missing file; an undefined symbol is exit 3;
    an SSA beyond its work limit is exit 4 with the estimate; never a traceback."""
    undefined = tmp_path / "undefined.xml"
    undefined.write_text(make_sbml({"X": 5}, [("death", {"X": 1}, {}, "q * X")]))
    cases = [(["info", str(tmp_path)], 3, "directory"),
             (["info", str(undefined)], 3, "line "),
             (["ssa", str(model_file), "--t-end", "1e12", "--no-progress"], 4,
              "reaction events"),
             (["ode", str(model_file), "--t-end", "-1"], 2, "--t-end")]
    for argv, code, text in cases:
        assert main(argv) == code, argv
        error = capsys.readouterr().err
        assert text in error and "Traceback" not in error


def test_an_internal_error_is_one_line_and_exit_5(model_file, capsys, monkeypatch):
    import sbml_cme.analyses

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(sbml_cme.analyses, "simulate_deterministic", broken)
    assert main(["ode", str(model_file)]) == 5
    error = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in error and "Traceback" not in error


def test_analyze_names_its_report_and_writes_plain_run_info(model_file, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["analyze", str(model_file), "--t-end", "2", "--points", "3",
                 "--trajectories", "20", "--seed", "1", "--out", str(out),
                 "--no-progress"]) == 0
    assert capsys.readouterr().out.strip().endswith(str(out / "report.html"))
    info = pd.read_csv(out / "run_info.csv").set_index("name").value
    assert info["methods"] == "auto" and info["read_options"] != info["read_options"]  # NaN
    assert not any(str(v).startswith(("'", '"', "{", "[")) for v in info.dropna())
    assert not list(out.glob(".*partial*"))  # no temporary file left behind


def test_analyze_picks_its_horizon_and_an_explicit_t_end_wins(model_file, tmp_path, capsys,
                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --out: the report is still named in full
    assert main(["analyze", str(model_file), "--points", "3", "--trajectories", "20",
                 "--seed", "1", "--out", "auto", "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].endswith(f"open the report: {tmp_path / 'auto' / 'report.html'}")
    # birth-death, d = 1: settles to 1 % by ln(100) = 4.6, horizon 1.5 x that rounded up
    assert any(line.strip().startswith("t_end = 7: auto: the deterministic state settles")
               for line in lines)
    info = pd.read_csv(tmp_path / "auto" / "run_info.csv").set_index("name").value
    assert float(info["t_end"]) == 7 and info["t_end_reason"].startswith("auto: ")
    steps = pd.read_csv(tmp_path / "auto" / "steps.csv").set_index("step")
    assert steps.loc["horizon", "detail"].startswith("t_end = 7 (relaxation")
    assert pd.read_csv(tmp_path / "auto" / "deterministic.csv").time.max() == 7
    assert "t_end = 7: auto" in (tmp_path / "auto" / "report.html").read_text()

    assert main(["analyze", str(model_file), "--t-end", "2", "--points", "3",
                 "--trajectories", "20", "--seed", "1", "--out", "given",
                 "--no-progress"]) == 0
    assert "t_end = 2: given" in capsys.readouterr().out
    info = pd.read_csv(tmp_path / "given" / "run_info.csv").set_index("name").value
    assert float(info["t_end"]) == 2 and info["t_end_reason"] == "given (t_end)"
    assert "horizon" not in set(pd.read_csv(tmp_path / "given" / "steps.csv").step)
    assert pd.read_csv(tmp_path / "given" / "deterministic.csv").time.max() == 2


def test_fit_writes_estimates_plots_html_and_sbml(tmp_path, capsys):
    from sbml_cme import read_sbml, simulate_ssa

    model = REPO / "tests" / "data" / "inference" / "telegraph.xml"
    network = read_sbml(model)
    frames = []
    for i, t in enumerate([1.0, 3.0]):
        ensemble = simulate_ssa(network, [0.0, t], n_trajectories=300, seed=10 + i)
        frames.append(pd.DataFrame({"time": t, "M": ensemble.states[:, -1, 2]}))
    data = tmp_path / "cells.csv"
    pd.concat(frames).to_csv(data, index=False)
    out = tmp_path / "fit"
    code = main(["fit", str(model), str(data), "--param", "kr=1:300", "--param",
                 "gamma=0.05:20", "--starts", "1", "--mcmc", "40", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    estimates = pd.read_csv(out / "estimates.csv")
    assert estimates.parameter.tolist() == ["kr", "gamma"]
    posterior = pd.read_csv(out / "posterior_summary.csv")
    assert posterior.parameter.tolist() == ["kr", "gamma"]
    assert len(pd.read_csv(out / "posterior_samples.csv")) == 8 * 30  # 8 walkers, burn 10
    assert "Posterior (emcee" in (out / "report.html").read_text()
    for name in ("histograms.csv", "starts.csv", "fit_histograms.png", "report.html",
                 "fitted.xml"):
        assert (out / name).exists(), name
    assert main(["fit", str(model), str(data), "--param", "kr=1-300",
                 "--out", str(out)]) == 2


def test_batch_gives_each_model_its_own_horizon(model_file, tmp_path):
    """Without --t-end, batch analyses every model over its own horizon (birth-death with
    d = 1: t_end = 7, as analyze picks), not a fixed one."""
    out = tmp_path / "batch"
    assert main(["batch", str(model_file), "--out", str(out), "--points", "3",
                 "--trajectories", "20", "--seed", "1", "--no-progress"]) == 0
    info = pd.read_csv(next(out.glob("*/run_info.csv"))).set_index("name").value
    assert float(info["t_end"]) == 7 and info["t_end_reason"].startswith("auto: ")
