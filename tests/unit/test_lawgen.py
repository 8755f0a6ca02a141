"""Compiled general laws (issue 17 item 1, sbml_cme/lawgen.py): the generated callback
gives the interpreter's values up to the last bit of a power (whole exponents are
evaluated exactly rounded, glibc's run-time pow is not), exactly on whole counts for
integer Hill laws, so SSA ensembles for a seed are unchanged there and equal in law
always; any failure falls back to the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import sbml_cme
from sbml_cme import lawgen
from sbml_cme.analyses import simulate_ssa
from sbml_cme.analyses import ssa as ssa_module
from sbml_cme.kinetics import compile_network
from sbml_cme.network import TIME, Expression, MassAction, Network, Parameter, Reaction, Species

X, Y, k, K, h = sympy.symbols("X Y k K h")

#: Laws that exercise every operation of the bytecode.
LAWS = [
    k * X ** h / (K ** h + X ** h),                                  # Hill
    k * X / (K + X) + Y / 3,                                         # Michaelis-Menten
    sympy.Piecewise((k * X, X > 5), (k * Y, sympy.And(Y >= 2, X < 3)), (0.5, True)),
    sympy.Max(k * X - Y, 0.0) + sympy.Min(X, Y, K),
    sympy.exp(-X / 10) * sympy.log(1 + Y) + sympy.Abs(sympy.sin(X)),
    sympy.sqrt(X) + (X - 3.5) ** sympy.Rational(1, 3) * 0 + X ** -1 * Y,
    sympy.ff(X, 3) * k + sympy.floor(Y / 2) + TIME * k,
    sympy.Piecewise((1.0, sympy.Or(sympy.Not(X > 1), sympy.Xor(Y > 1, X > 4))), (2.0, True)),
]


def general_network(laws=LAWS) -> Network:
    species = (Species("X", "c", 10.0), Species("Y", "c", 7.0))
    parameters = (Parameter("k", 0.7), Parameter("K", 4.0), Parameter("h", 2.0))
    reactions = tuple(Reaction(f"r{i}", (), (("X", 1),) if i % 2 else (("Y", 1),),
                               Expression(law)) for i, law in enumerate(laws))
    decay = (Reaction("dx", (("X", 1),), (), MassAction(sympy.Float(1.0), (("X", 1),))),
             Reaction("dy", (("Y", 1),), (), MassAction(sympy.Float(1.0), (("Y", 1),))))
    return Network(species=species, reactions=reactions + decay, parameters=parameters)


@pytest.fixture(autouse=True)
def cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("SBML_CME_CACHE_DIR", str(tmp_path))
    return tmp_path / "laws"


def test_generated_laws_match_the_interpreter(cache_directory):
    compiled = compile_network(general_network())
    assert lawgen.law_address(compiled) != 0
    assert len(list(cache_directory.glob("sbml_cme_laws_*.py"))) == 1
    source = lawgen.law_source(compiled)
    assert "_ipow(x[0], 2)" in source  # X**h with the fixed Hill coefficient h = 2
    rng = np.random.default_rng(7)
    states = np.concatenate([rng.integers(0, 30, (400, 2)).astype(float),
                             rng.uniform(0, 10, (100, 2)), [[0.0, 0.0], [1.0, 0.0]]])
    for time in (0.0, 1.5):
        ours, interpreted = lawgen.compare_with_interpreter(
            compiled, states, compiled.parameter_vector(), time)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(interpreted))
        np.testing.assert_allclose(ours, interpreted, rtol=1e-14, atol=0)


def test_whole_powers_are_exact_on_whole_counts():
    # k X^h + K^h with h = 2: multiplication and glibc's pow agree where the power is
    # exact; a quotient (pow(s, -1) in the interpreter, 1/s here) may differ in the last
    # bit (the Hill law: 2 of 3000 counts), within rounding
    compiled = compile_network(general_network([k * X ** h + K ** h, LAWS[0]]))
    states = np.stack(np.meshgrid(np.arange(0.0, 3000.0), [0.0]), -1).reshape(-1, 2)
    ours, interpreted = lawgen.compare_with_interpreter(compiled, states,
                                                        compiled.parameter_vector())
    np.testing.assert_array_equal(ours[:, 0], interpreted[:, 0])
    np.testing.assert_allclose(ours[:, 1], interpreted[:, 1], rtol=4.5e-16, atol=0)
    assert np.mean(ours[:, 1] != interpreted[:, 1]) < 0.01


def test_a_changing_exponent_is_read_at_run_time():
    # h assigned by an event: no literal exponent, the live p[h] is used
    network = general_network(LAWS[:1])
    import dataclasses
    from sbml_cme.network import Event
    network = dataclasses.replace(network, events=(
        Event("e", sympy.Symbol("X") > 100, (("h", sympy.Integer(3)),)),))
    source = lawgen.law_source(compile_network(network))
    assert "_ipow(" not in source.split("def law")[1] and "_pow(x[0], p[2])" in source


def test_hill_autorepression_ssa_matches_the_cme():
    # 0 -> X at 30/(1 + (X/K)^h), X -> 0 at X, K = 10, h = 2: the compiled Hill law
    # gives the CME's law (chi-square, fixed seed)
    from conftest import make_sbml, pooled_chi_square
    from sbml_cme.analyses import solve_cme
    network = sbml_cme.read_sbml_string(make_sbml(
        {"X": 0}, [("make", {}, {"X": 1}, "a / (1 + (X / K)^h)"),
                   ("decay", {"X": 1}, {}, "d * X")],
        parameters={"a": 30.0, "K": 10.0, "h": 2.0, "d": 1.0}))
    compiled = compile_network(network)
    assert compiled.data.kind.tolist() == [1, 0] and lawgen.law_address(compiled) != 0
    assert "_ipow(" in lawgen.law_source(compiled).split("def law")[1]
    times = np.array([0.0, 1.5])
    law = solve_cme(network, times, tol=1e-8)
    marginal = law.marginal("X")
    marginal = marginal[marginal.time == 1.5]
    ensemble = simulate_ssa(network, times, n_trajectories=4000, seed=20240607)
    samples = ensemble.states[:, -1, 0].astype(np.int64)
    statistic, dof, p = pooled_chi_square(samples, marginal["count"].to_numpy(),
                                          marginal["probability"].to_numpy())
    assert dof >= 10
    assert p > 1e-3, f"chi-square {statistic:.1f} on {dof} dof, p = {p:.2e}"


def test_ssa_with_compiled_laws_is_the_interpreter_ensemble(monkeypatch):
    # values agree to rounding; on this model (whole counts, KM = 40) no last-bit
    # difference decides a step, so the ensembles for a seed are the same
    network = sbml_cme.read_sbml("models/biomodels/BIOMD0000000012.xml",
                                 substance_unit="item")
    compiled = compile_network(network)
    assert (compiled.data.kind == 1).sum() == 3 and lawgen.law_address(compiled) != 0
    times = np.linspace(0.0, 300.0, 7)
    for method in ("direct", "tree"):
        fast = simulate_ssa(network, times, n_trajectories=20, seed=11, method=method,
                            n_jobs=1)
        with monkeypatch.context() as patch:
            patch.setattr(ssa_module, "law_address", lambda compiled: 0)
            slow = simulate_ssa(network, times, n_trajectories=20, seed=11, method=method,
                                n_jobs=1)
        assert fast.total_events == slow.total_events > 0
        np.testing.assert_array_equal(fast.states, slow.states)


def test_generation_failure_falls_back_to_the_interpreter(monkeypatch):
    network = general_network(LAWS[:2])
    compiled = compile_network(network)
    monkeypatch.setattr(lawgen, "law_source", lambda compiled: "this is not python(")
    assert lawgen.law_address(compiled) == 0
    result = simulate_ssa(network, [0.0, 1.0], n_trajectories=4, seed=1, n_jobs=1)
    assert result.total_events > 0


def test_no_general_law_needs_no_callback(birth_death_network):
    assert lawgen.law_address(compile_network(birth_death_network)) == 0


def test_limits_keep_the_interpreter(monkeypatch):
    monkeypatch.setattr(lawgen, "MAX_CHANNELS", 1)
    assert lawgen.law_source(compile_network(general_network(LAWS[:2]))) is None
