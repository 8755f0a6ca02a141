"""Network invariants, conversion and immutability."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import sbml_cme
from sbml_cme.analyses import simulate_ssa
from sbml_cme.kinetics import compile_network
from conftest import make_sbml


def test_network_is_frozen_hashable_and_picklable(birth_death_sbml):
    network = sbml_cme.read_sbml_string(birth_death_sbml)
    with pytest.raises(Exception):
        network.species = ()
    assert hash(network) == hash(pickle.loads(pickle.dumps(network)))
    assert network == sbml_cme.read_sbml_string(birth_death_sbml)
    with pytest.raises(ValueError):
        network.stoichiometry[0, 0] = 5


def test_with_parameters_returns_new_network(birth_death_sbml):
    network = sbml_cme.read_sbml_string(birth_death_sbml)
    faster = network.with_parameters(k=20.0)
    assert faster.parameter_values[0] == 20.0 and network.parameter_values[0] == 10.0
    assert compile_network(faster).propensities([0.0])[0] == 20.0
    with pytest.raises(sbml_cme.OptionsError):
        network.with_parameters(unknown=1.0)


def test_dimerisation_uses_falling_factorial():
    sbml = make_sbml({"A": 10, "B": 0}, [("dim", {"A": 2}, {"B": 1}, "k * A^2")],
                     parameters={"k": 0.5})
    network = sbml_cme.read_sbml_string(sbml)
    row = network.conversion_table().iloc[0]
    assert row.form == "mass action" and row.orders == "A:2"
    rates = compile_network(network).propensities([10.0, 0.0])
    assert rates[0] == pytest.approx(0.5 * 10 * 9)
    assert compile_network(network).propensities([1.0, 0.0])[0] == 0.0
    plain = sbml_cme.read_sbml_string(sbml, falling_factorials=False)
    assert compile_network(plain).propensities([10.0, 0.0])[0] == pytest.approx(50.0)


def test_reversible_difference_is_split():
    sbml = make_sbml({"A": 10, "B": 5}, [("r", {"A": 1}, {"B": 1}, "kf * A - kr * B")],
                     parameters={"kf": 2.0, "kr": 3.0})
    network = sbml_cme.read_sbml_string(sbml)
    assert network.reaction_ids == ("r_forward", "r_backward")
    assert compile_network(network).propensities([10.0, 5.0]) == pytest.approx([20.0, 15.0])
    assert network.stoichiometry.tolist() == [[-1, 1], [1, -1]]


# Property: conservation laws hold along every SSA path of random closed networks.
@st.composite
def closed_networks(draw):
    n_species = draw(st.integers(2, 4))
    names = [f"S{i}" for i in range(n_species)]
    reactions = []
    for j in range(draw(st.integers(1, 4))):
        a, b = draw(st.permutations(names))[:2]
        rate = draw(st.floats(0.1, 5.0))
        reactions.append((f"R{j}", {a: 1}, {b: 1}, f"{rate} * {a}"))
    counts = {s: draw(st.integers(0, 20)) for s in names}
    return make_sbml(counts, reactions)


@settings(max_examples=15, deadline=None)
@given(closed_networks(), st.integers(0, 2**32 - 1))
def test_conversion_law_holds_on_every_path(sbml, seed):
    network = sbml_cme.read_sbml_string(sbml)
    result = simulate_ssa(network, np.linspace(0, 2, 11), n_trajectories=5, seed=seed)
    totals = result.states[:, :, :len(network.species)].sum(axis=2)
    assert np.all(totals == network.initial_counts.sum())
    rates = compile_network(network).propensities(np.zeros(len(network.species)))
    assert np.all(rates == 0)  # no reactants, no propensity


# -- with_outputs: any SBML symbol as an output (like roadrunner selections) ---------------
def _reversible_with_local_parameter():
    sbml = make_sbml({"A": 5, "B": 0}, [("conv", {"A": 1}, {"B": 1}, "k * A")],
                     parameters={"k": 2.0}, rules={"total": "A + B"})
    return sbml_cme.read_sbml_string(sbml)


def test_with_outputs_adds_parameters_and_compartments_in_order():
    network = _reversible_with_local_parameter()
    observed = network.with_outputs(["cell", "k", "A", "total", "k"])
    assert [o.id for o in observed.outputs] == ["total", "cell", "k"]
    kinds = {o.id: o.kind for o in observed.outputs}
    assert kinds == {"total": "parameter", "cell": "compartment", "k": "parameter"}
    values = compile_network(observed).outputs(network.initial_counts,
                                               observed.parameter_values, 0.0)
    assert list(values) == [5.0, 1.0, 2.0]
    assert network.with_outputs(["A", "total"]) is network
    assert network.with_outputs(None) is network
    assert network.with_outputs("k") == network.with_outputs(["k"])


def test_with_outputs_reports_local_parameters_by_reaction_dot_name():
    sbml = make_sbml({"A": 5}, [("decay", {"A": 1}, {}, "A")])
    import libsbml
    document = libsbml.readSBMLFromString(sbml)
    law = document.getModel().getReaction("decay").getKineticLaw()
    local = law.createLocalParameter()
    local.setId("kd")
    local.setValue(0.3)
    law.setMath(libsbml.parseL3Formula("kd * A"))
    network = sbml_cme.read_sbml_string(libsbml.writeSBMLToString(document),
                                        outputs=["decay.kd"])
    assert network.outputs[-1].id == "decay.kd"
    assert compile_network(network).outputs(network.initial_counts,
                                            network.parameter_values, 0.0)[-1] == 0.3


def test_with_outputs_refuses_unknown_ids_and_lists_the_known_ones():
    network = _reversible_with_local_parameter()
    with pytest.raises(sbml_cme.OptionsError, match=r"unknown output\(s\) \['nope'\].*'k'.*"
                                                    r"'cell'"):
        network.with_outputs(["k", "nope"])
    with pytest.raises(sbml_cme.OptionsError, match="strings"):
        network.with_outputs([1])


def test_read_option_outputs_is_recorded_and_reproduced():
    from sbml_cme.io.sbml_writer import read_options_dict
    sbml = make_sbml({"A": 5, "B": 0}, [("conv", {"A": 1}, {"B": 1}, "k * A")],
                     parameters={"k": 2.0})
    network = sbml_cme.read_sbml_string(sbml, outputs=["k", "cell"])
    assert [o.id for o in network.outputs] == ["k", "cell"]
    assert sbml_cme.read_sbml_string(sbml, **read_options_dict(network)) == network
    with pytest.raises(sbml_cme.OptionsError, match="unknown output"):
        sbml_cme.read_sbml_string(sbml, outputs=["conv"])
