"""Result objects display concisely (repr) and as a summary in Jupyter (_repr_html_);
progress bars can be switched on and off."""

from html.parser import HTMLParser

import numpy as np
import pytest

from sbml_cme.analyses import (simulate_cle, simulate_deterministic, simulate_ssa, solve_cme,
                               solve_lna, stationary_cme)
from sbml_cme.results import Displayed

TIMES = np.linspace(0, 10, 21)  # 21 rows: more than a notebook shows


@pytest.fixture(scope="module")
def network(birth_death_network):
    return birth_death_network


@pytest.fixture(scope="module")
def results(network):
    return {
        "ode": simulate_deterministic(network, TIMES),
        "ssa": simulate_ssa(network, TIMES, n_trajectories=50, seed=1),
        "cle": simulate_cle(network, TIMES, n_trajectories=50, seed=1, dt=0.01),
        "cme": solve_cme(network, TIMES),
        "stationary_cme": stationary_cme(network),
        "lna": solve_lna(network),
        "lna_time": solve_lna(network, TIMES),
    }


class _Cells(HTMLParser):
    """Collects the text of every table cell and checks that tags are balanced."""

    def __init__(self):
        super().__init__()
        self.open: list[str] = []
        self.cells: list[str] = []
        self.rows = 0

    def handle_starttag(self, tag, attrs):
        self.open.append(tag)
        if tag in ("td", "th"):
            self.cells.append("")
        if tag == "tr":
            self.rows += 1

    def handle_endtag(self, tag):
        assert self.open and self.open.pop() == tag, f"unbalanced </{tag}>"

    def handle_data(self, data):
        if self.open and self.open[-1] in ("td", "th"):
            self.cells[-1] += data


def _parse(markup: str) -> _Cells:
    parser = _Cells()
    parser.feed(markup)
    parser.close()
    assert not parser.open
    return parser


@pytest.mark.parametrize("name", ["ode", "ssa", "cle", "cme", "stationary_cme", "lna",
                                  "lna_time"])
def test_repr_is_one_short_line_with_the_key_facts(results, name):
    result = results[name]
    text = repr(result)
    assert isinstance(result, Displayed)
    assert text.startswith(type(result).__name__ + "(") and text.endswith(")")
    assert "\n" not in text and len(text) < 300
    assert "Network(" not in text and "array(" not in text  # no dump of the data
    assert "n_species=1" in text


def test_repr_facts_are_the_results_own_numbers(results):
    ssa, cle, cme = results["ssa"], results["cle"], results["cme"]
    assert "n_trajectories=50" in repr(ssa) and f"total_events={ssa.total_events}" in repr(ssa)
    assert "method='ssa'" in repr(ssa) and "seed=1" in repr(ssa)
    assert f"total_steps={cle.total_events}" in repr(cle) and "dt=0.01" in repr(cle)
    assert f"n_states={cme.n_states}" in repr(cme)
    assert f"error_bound_l1={cme.error_bound:.4g}" in repr(cme)
    assert "times='0 to 10 (21 points)'" in repr(cme)
    assert "times='stationary'" in repr(results["stationary_cme"])
    assert "mode='steady state'" in repr(results["lna"])


@pytest.mark.parametrize("name, accessor, columns", [
    ("ode", "to_wide()", ["time", "X"]),
    ("ssa", "stats()", ["time", "X-mean", "X-sd"]),
    ("cle", "stats()", ["time", "X-mean", "X-sd"]),
    ("cme", "stats()", ["time", "X-mean", "X-sd"]),
    ("lna_time", "noise", ["time", "species", "mean", "variance", "fano_factor",
                           "cv_squared"])])
def test_html_shows_a_summary_and_the_head_of_the_table(results, name, accessor, columns):
    result = results[name]
    markup = result._repr_html_()
    cells = _parse(markup)
    _, facts, table, _ = result._summary()
    assert len(table) == len(TIMES) > Displayed.DISPLAY_ROWS
    # The facts table, then the header and DISPLAY_ROWS rows of the data table.
    assert cells.rows == len(facts) + 1 + Displayed.DISPLAY_ROWS
    for column in columns:
        assert column in cells.cells
    assert f"first {Displayed.DISPLAY_ROWS} of {len(TIMES)} rows" in markup
    assert f".{accessor}" in markup
    first_time = table["time"].iloc[Displayed.DISPLAY_ROWS - 1]
    assert f"{first_time:g}" in " ".join(cells.cells)


def test_html_of_the_cme_states_its_error_bound(results):
    cme = results["cme"]
    cells = _parse(cme._repr_html_()).cells
    row = cells.index("error_bound_l1")
    assert float(cells[row + 1]) == pytest.approx(cme.error_bound, rel=1e-3)
    assert cells[cells.index("n_states") + 1] == f"{cme.n_states:,}"


def test_short_tables_have_no_more_rows_note(results):
    markup = results["lna"]._repr_html_()  # steady state: one time
    assert "rows; all of them" not in markup
    _parse(markup)


@pytest.mark.parametrize("simulate, label", [(simulate_ssa, "SSA"), (simulate_cle, "CLE")])
def test_progress_bars_switch_on_and_off(network, capsys, simulate, label):
    kwargs = {"dt": 0.01} if simulate is simulate_cle else {}
    quiet = simulate(network, TIMES[:3], n_trajectories=130, seed=2, progress=False, **kwargs)
    assert label not in capsys.readouterr().err
    shown = simulate(network, TIMES[:3], n_trajectories=130, seed=2, progress=True, **kwargs)
    err = capsys.readouterr().err
    assert f"{label}: 100%" in err and "3/3" in err  # 130 trajectories: three blocks of 64
    assert np.array_equal(quiet.states, shown.states)


def test_cli_no_progress(tmp_path, capsys, birth_death_sbml):
    from sbml_cme.cli import main

    model = tmp_path / "model.xml"
    model.write_text(birth_death_sbml)
    arguments = ["cle", str(model), "--t-end", "1", "--points", "3", "--trajectories", "70",
                 "--seed", "1", "--dt", "0.01", "--out", str(tmp_path / "out.csv")]
    assert main(arguments + ["--no-progress"]) == 0
    assert "CLE:" not in capsys.readouterr().err
    assert main(arguments) == 0
    assert "CLE: 100%" in capsys.readouterr().err


def test_batch_progress_bar(tmp_path, capsys):
    from sbml_cme.reports.batch import run_batch

    broken = tmp_path / "models" / "broken.xml"
    broken.parent.mkdir()
    broken.write_text("<sbml>not a model")
    table = run_batch([broken.parent], tmp_path / "out", progress=True, t_end=1, points=2,
                      n_trajectories=10, seed=1)
    assert list(table.status) == ["failed"]
    assert "batch: 100%" in capsys.readouterr().err
    again = run_batch([broken.parent], tmp_path / "out", progress=False)  # resumed
    assert list(again.status) == ["failed"] and "batch" not in capsys.readouterr().err
