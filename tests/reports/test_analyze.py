"""analyze(), Report.write and batch: files, verdicts, choices, resumability."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sbml_cme
from sbml_cme.reports.analyze import analyze
from sbml_cme.reports.batch import run_batch, summary_line
from conftest import make_sbml

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def dimerisation_report():
    return analyze(DATA / "dsmts" / "00030" / "00030-sbml-l3v1.xml", t_end=20, points=21,
                   n_trajectories=500, seed=3)


def test_methods_chosen_and_recorded(dimerisation_report):
    choices = dimerisation_report.tables["choices"].set_index("method")
    assert choices.loc[["deterministic", "tellurium", "cme", "lna", "ssa"], "chosen"].all()
    assert not choices.loc["cle", "chosen"]  # 100 molecules: below the CLE threshold
    assert "1000" in choices.loc["cle", "reason"]


def test_cross_checks_use_statistical_tolerances(dimerisation_report):
    table = dimerisation_report.tables["crosscheck"]
    assert set(table.comparison) >= {"ode vs tellurium", "ssa mean vs ode", "cme vs ssa",
                                     "lna vs cme"}
    ode = table[table.comparison == "ode vs tellurium"]
    assert (ode.verdict == "agree").all()
    cme = table[table.comparison == "cme vs ssa"]
    assert (cme.verdict == "agree").all() and (cme.threshold > 3).all()
    assert dimerisation_report.crosscheck_passed()


def test_tables_share_the_moments_schema(dimerisation_report):
    courses = dimerisation_report.tables["timecourses"]
    assert list(courses.columns) == ["time", "species", "mean", "variance", "method"]
    assert set(courses.method) == {"deterministic", "cme", "lna", "ssa"}
    summary = dimerisation_report.tables["species_summary"]
    assert list(summary.columns) == ["species", "method", "time", "mean", "sd", "fano", "cv2"]
    cme = summary[(summary.method == "cme") & (summary.species == "P2")].iloc[0]
    assert cme.fano == pytest.approx(cme.sd**2 / cme["mean"])


def test_write_produces_every_artifact(dimerisation_report, tmp_path):
    dimerisation_report.write(tmp_path)
    for name in ("timecourses.png", "marginals.png", "noise.png", "report.html",
                 "annotated.xml", "crosscheck.csv", "species_summary.csv", "choices.csv"):
        assert (tmp_path / name).exists(), name
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "crosscheck" in html
    again = sbml_cme.read_sbml(tmp_path / "annotated.xml")
    assert again == dimerisation_report.network


def test_unsupported_methods_are_reported_not_raised(tmp_path):
    path = tmp_path / "timed.xml"
    path.write_text(make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k * time")],
                              parameters={"k": 1.0}))
    report = analyze(path, t_end=2, points=3, n_trajectories=10, seed=1)
    steps = report.tables["steps"].set_index("step")
    assert steps.loc["lna", "status"] == "unsupported"  # no steady state: explicit time
    assert "explicitly on time" in steps.loc["lna", "detail"]
    # The SSA integrates the time-dependent hazard (the hybrid kernel).
    assert steps.loc["ssa", "status"] == "ok"
    assert steps.loc["deterministic", "status"] == "ok"


def test_batch_keeps_going_and_resumes(tmp_path, birth_death_sbml):
    good = tmp_path / "models" / "good.xml"
    good.parent.mkdir()
    good.write_text(birth_death_sbml)
    bad = tmp_path / "models" / "bad.xml"
    bad.write_text(make_sbml({"X": 1}, [("r", {"X": 1}, {}, "X")]).replace(
        'fast="false"', 'fast="true"'))
    out = tmp_path / "out"
    table = run_batch([good.parent], out, progress=False, t_end=2, points=3,
                      n_trajectories=20, seed=1)
    status = table.set_index(table.model.map(lambda m: Path(m).stem))["status"]
    assert status["good"] == "ok" and status["bad"] == "unsupported"
    assert summary_line(table) == "2 models: 1 ok, 1 unsupported, 0 failed, 0 timeout"
    marker = json.loads((out / "good" / "status.json").read_text())
    marker["reason"] = "from the first run"
    (out / "good" / "status.json").write_text(json.dumps(marker))
    rerun = run_batch([good.parent], out, progress=False, t_end=2, points=3)
    assert "from the first run" in set(rerun.reason)  # finished models are skipped
    assert pd.read_csv(out / "status.csv").shape[0] == 2


def test_structure_and_product_form_in_analyze(tmp_path):
    """0 <-> A <-> B (deficiency 0, weakly reversible, mass action) is complex balanced:
    analyze adds the structure tables and the exact product of Poissons, which must match
    the stationary CME within their certified bounds."""
    path = tmp_path / "open_chain.xml"
    path.write_text(make_sbml({"A": 0, "B": 0}, [
        ("birth", {}, {"A": 1}, "4"), ("death", {"A": 1}, {}, "1 * A"),
        ("ab", {"A": 1}, {"B": 1}, "2 * A"), ("ba", {"B": 1}, {"A": 1}, "1 * B")]))
    report = analyze(path, t_end=5, points=6, n_trajectories=200, seed=2)
    properties = report.tables["structure"].set_index("name").value
    assert properties["deficiency"] == 0 and properties["complex_balanced"] is True
    choices = report.tables["choices"].set_index("method")
    assert choices.loc[["structure", "product_form"], "chosen"].all()
    product = report.results["product_form"]
    means = product.moments.set_index("species")["mean"]
    # Deterministic equilibrium: A = 4 (birth 4 = death A... plus A<->B balance) so A = 4, B = 8.
    assert means["A"] == pytest.approx(4.0, rel=1e-9) and means["B"] == pytest.approx(8.0, rel=1e-9)
    check = report.tables["crosscheck"]
    row = check[check.comparison == "product form vs stationary cme"].iloc[0]
    assert row.verdict == "agree" and row.value <= row.threshold


def test_product_form_skipped_with_reason_when_not_balanced(dimerisation_report):
    choices = dimerisation_report.tables["choices"].set_index("method")
    assert not choices.loc["product_form", "chosen"]
    assert "complex-balanced" in choices.loc["product_form", "reason"]
    assert "structure" in dimerisation_report.tables


def test_noise_tables_set_methods_side_by_side(dimerisation_report):
    noise = dimerisation_report.tables["noise"]
    assert set(noise.method) == {"cme", "lna", "ssa"}
    assert list(noise.columns) == ["method", "time", "species", "mean", "variance", "sd",
                                   "fano", "cv2"]
    cme = noise[noise.method == "cme"].set_index("species")
    summary = dimerisation_report.tables["species_summary"]
    row = summary[(summary.method == "cme") & (summary.species == "P")].iloc[0]
    assert cme.loc["P", "fano"] == pytest.approx(row.fano, rel=1e-9)
    pairs = dimerisation_report.tables["correlations"]
    # P + 2 P2 = 100: the two counts are perfectly anticorrelated.
    cross = pairs[(pairs.method == "cme") & (pairs.species_i == "P") & (pairs.species_j == "P2")]
    assert cross.correlation.iloc[0] == pytest.approx(-1.0, abs=1e-9)


def test_distrib_model_runs_the_ssa_and_names_what_others_refuse():
    """A distrib draw in an event (test-suite case 00041): only the SSA samples it; the
    rate equations and the CME refuse it by name instead of treating the draw as constant."""
    report = analyze(DATA / "dsmts" / "00041" / "00041-sbml-l3v1.xml", t_end=3, points=4,
                     n_trajectories=200, seed=1)
    steps = report.tables["steps"].set_index("step")
    assert steps.loc["ssa", "status"] == "ok"
    # Both refuse the draw in event E0 by name (the rate equations follow the clock t).
    for refused, analysis, element in (("deterministic", "simulate_deterministic", "'E0'"),
                                       ("cme", "solve_cme", "'E0'")):
        assert steps.loc[refused, "status"] == "unsupported"
        detail = steps.loc[refused, "detail"]
        assert detail.startswith(f"{analysis} does not support") and element in detail
    draws = report.results["ssa"].states[:, 1:, 0] / report.network.species[0].molecules_per_unit
    assert draws.std() > 0  # fresh draws, not a constant


def test_ssa_budget_counts_events_along_the_rate_equations():
    """A -> 2A at rate 5 A from one molecule: the initial propensity (5 per time) hides
    e^25 ~ 7e10 events per trajectory by t = 5; the estimate integrates the propensity
    along the ODE and skips the SSA instead of running for hours."""
    from sbml_cme.analyses import simulate_deterministic
    from sbml_cme.reports.analyze import ssa_ensemble_size

    network = sbml_cme.read_sbml_string(make_sbml({"A": 1}, [("grow", {"A": 1}, {"A": 2},
                                                              "5 * A")]))
    times = np.linspace(0, 5, 51)
    # Without a rate-equation result the estimate solves the rate equations itself.
    for deterministic in (simulate_deterministic(network, times), None):
        size, reason = ssa_ensemble_size(network, times, 1000, deterministic)
        assert size == 0 and "reaction events per trajectory" in reason
        assert float(reason.split()[1]) == pytest.approx(np.exp(25), rel=0.05)


def test_cle_skipped_with_reason_when_its_step_is_too_small(tmp_path):
    """Fast isomerisation (rates 1e6) with 10^4 molecules forces dt ~ 1e-7: not even 20
    CLE trajectories fit the step budget, so analyze says so instead of running for
    minutes."""
    path = tmp_path / "stiff.xml"
    path.write_text(make_sbml({"A": 10000, "B": 0}, [("f", {"A": 1}, {"B": 1}, "1e6 * A"),
                                                     ("r", {"B": 1}, {"A": 1}, "1e6 * B")]))
    report = analyze(path, methods=["cle"], t_end=10, points=3, seed=1)
    step = report.tables["steps"].set_index("step").loc["cle"]
    assert step.status == "skipped" and "fewer than 20 trajectories fit" in step.detail
