"""Compiled general laws (issue 17 item 1, sbml_cme/lawgen.py): the generated callback
gives the interpreter's values bit for bit, so SSA ensembles for a seed are unchanged;
any failure falls back to the interpreter."""

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


def test_generated_laws_match_the_interpreter_bit_for_bit(cache_directory):
    compiled = compile_network(general_network())
    assert lawgen.law_address(compiled) != 0
    assert len(list(cache_directory.glob("sbml_cme_laws_*.py"))) == 1
    rng = np.random.default_rng(7)
    states = np.concatenate([rng.integers(0, 30, (400, 2)).astype(float),
                             rng.uniform(0, 10, (100, 2)), [[0.0, 0.0], [1.0, 0.0]]])
    for time in (0.0, 1.5):
        assert lawgen.check_against_interpreter(compiled, states, compiled.parameter_vector(),
                                                time)


def test_ssa_with_compiled_laws_is_the_interpreter_ensemble(monkeypatch):
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
