"""Every failure the fuzzer found is a regression test (tests/data/fuzz/README.md)."""

import re
from pathlib import Path

import numpy as np
import pytest

import sbml_cme
from sbml_cme.analyses import solve_lna

DATA = Path(__file__).resolve().parents[1] / "data" / "fuzz"


@pytest.mark.parametrize("name, text", [
    ("huge_stoichiometry", "stoichiometry of species 'X' in reaction 'Birth' is 1e+308"),
    ("tiny_number_in_law", "number 1e-308"),
    ("huge_number_in_law", "number -1e+308"),
    ("law_reads_unit_id", "uses 'k1', which is not a species"),
    ("reference_to_model_id", "refers to 'S2'"),
    ("species_in_unit_id", "is in 'compartment'.*which is not a compartment"),
    ("huge_unit_scale", "unit definition 'volume'.*scale 2147483647"),
    ("concentration_in_empty_compartment", "species 'X' is a concentration.*of size 0"),
    ("infinite_rate_constant", "parameter '.*' is -inf"),
    ("overflowing_power", "'reaction2' contains a NaN or infinite number, or one beyond"),
    ("huge_conversion_factor", "'S1' by 1e+308 per firing .*conversion factor"),
    ("infinite_parameter_in_law", "parameter 'v9.Kin' is inf"),
    ("huge_compartment", "reaction 'v1': the conversion .* beyond double precision"),
    ("minus_infinite_parameter", "parameter 'reaction2.kd' is -inf"),
    ("numeric_trigger", "trigger of event '_E1' is <time> + 0.99, a number"),
])
def test_mutant_is_refused_at_import(name, text):
    with pytest.raises(sbml_cme.InvalidSBMLError, match=text.replace("+", r"\+")):
        sbml_cme.read_sbml(DATA / f"{name}.xml")


def test_negative_rate_constant_stops_the_lna_on_its_budget():
    """A death law with a negative constant never turns positive: it is read as its
    backward channel (production, docs/conversion-rules.md), whose exponential blow-up
    the LNA stops on its evaluation budget instead of running for minutes."""
    network = sbml_cme.read_sbml(DATA / "negative_death_rate.xml")
    assert network.reaction_ids == ("Birth", "Death_backward")
    with pytest.raises(sbml_cme.AnalysisError, match="rate evaluations"):
        solve_lna(network, np.linspace(0, 1, 5))


def test_a_relation_on_a_boolean_reads_it_as_a_number():
    """L3V2: true is 1 in numeric context, so gt(true, x) is a valid comparison."""
    sbml_cme.read_sbml(DATA / "relation_of_booleans.xml")


def test_hybrid_run_on_mole_counts_is_refused_by_its_work_guard():
    """Fuzz mutant 24 of seed 20261207 (semantic 00052: a rate-rule compartment and
    species of 6e23 molecules) ran the hybrid simulation for hours: it now estimates the
    jumps first and refuses, as the SSA does."""
    import time
    network = sbml_cme.read_sbml(Path(__file__).resolve().parents[1] / "data" / "semantic"
                                 / "00052" / "00052-sbml-l3v2.xml")
    assert network.has_continuous_part
    started = time.perf_counter()
    with pytest.raises(sbml_cme.WorkLimitError, match=r"about 4\.\d+e\+24"):
        sbml_cme.simulate_ssa(network, np.linspace(0, 1, 5), n_trajectories=4, seed=1,
                              max_events=20_000)
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("name, text", [
    ("rateof_without_argument", "initialAssignment of 'p2' .*'rateOf' with 0 argument"),
    ("empty_math_in_model_definition", "kineticLaw of 'J0' .*an empty <math>"),
    ("empty_math_in_comp_submodel", "kineticLaw of 'J0' .*an empty <math>"),
    ("rule_cycle_in_comp_model", "'t3' creates a cycle"),
])
def test_math_that_crashed_libsbml_validator_is_refused(name, text):
    """libsbml's consistency check segfaulted on these; the read runs in a subprocess so
    that a regression fails this test instead of killing the test session."""
    import subprocess
    import sys
    script = ("import sbml_cme, sys\n"
              "try:\n"
              f"    sbml_cme.read_sbml({str(DATA / (name + '.xml'))!r})\n"
              "except sbml_cme.InvalidSBMLError as error:\n"
              "    print(error)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(text, done.stdout), done.stdout


def test_hybrid_step_that_cannot_progress_fails_cleanly():
    """BIOMD0000000252 with a concentration of 1e308: the hybrid kernel divided by a zero
    starting step (ZeroDivisionError inside a parallel numba loop: SystemError)."""
    network = sbml_cme.read_sbml(DATA / "huge_concentration_hybrid.xml")
    with pytest.raises(sbml_cme.AnalysisError, match="step size underflowed"):
        sbml_cme.simulate_ssa(network, np.linspace(0, 1, 5), n_trajectories=2, seed=1,
                              max_events=20_000)


def test_integration_failure_before_the_first_output_is_reported():
    """An LSODA failure before the first output time indexed an empty solution.t."""
    network = sbml_cme.read_sbml(DATA / "lsoda_fails_at_start.xml")
    with pytest.raises(sbml_cme.AnalysisError, match="integration failed after t=0"):
        sbml_cme.simulate_deterministic(network, np.linspace(0, 1, 5), max_evaluations=20_000)


def test_lna_drive_that_blows_up_is_refused():
    network = sbml_cme.read_sbml(DATA / "huge_rate_rule_lna.xml")
    with pytest.raises(sbml_cme.ConvergenceError, match="rate rules .* could not be integrated"):
        solve_lna(network, np.linspace(0, 1, 5))


def test_ssa_trajectory_stops_at_max_events():
    """The work guard's estimate cannot see an exponential blow-up (the rate equations
    fail); each trajectory stops once it has fired max_events reactions."""
    network = sbml_cme.read_sbml(DATA / "exploding_ssa.xml")
    with pytest.raises(sbml_cme.AnalysisError, match="fired more than max_events=2e\\+04"):
        sbml_cme.simulate_ssa(network, np.linspace(0, 1, 5), n_trajectories=4, seed=1,
                              max_events=20_000, method="direct")


def test_hybrid_trajectory_stops_at_max_events():
    """DSMTS-style dimerisation with a stoichiometry of 793233.67 (P continuous): each jump
    drives P further below zero and the quadratic law keeps growing, an explosion in
    finite time that the hybrid kernel followed without end."""
    network = sbml_cme.read_sbml(DATA / "exploding_hybrid.xml")
    assert network.has_continuous_part
    with pytest.raises(sbml_cme.AnalysisError, match="fired more than max_events=2e\\+04"):
        sbml_cme.simulate_ssa(network, np.linspace(0, 1, 5), n_trajectories=4, seed=1,
                              max_events=20_000)


@pytest.mark.parametrize("name, text", [
    ("badly_scaled_cme", "more than 50,000 evaluations"),
    ("singular_cme_bdf", "CME integration"),
])
def test_cme_integration_that_cannot_finish_is_refused(name, text):
    network = sbml_cme.read_sbml(DATA / f"{name}.xml")
    with pytest.raises(sbml_cme.SbmlCmeError, match=text):
        sbml_cme.solve_cme(network, np.linspace(0, 1, 5), max_states=2_000)


def test_huge_power_of_a_species_is_not_expanded():
    """X**1e12 in a law: the falling-factorial recognition built a polynomial of degree
    1e12 and hung the import; now the law reads (as a general law) at once."""
    import time
    started = time.perf_counter()
    network = sbml_cme.read_sbml(DATA / "huge_power_in_law.xml")
    assert time.perf_counter() - started < 30
    assert network.reactions[0].conversion.form.startswith("general")


def test_root_of_a_boolean_reads_it_as_a_number():
    """root(true, x) after a swapped operator: a clean refusal (the mutant also holds an
    'implies'), not a TypeError from sympy."""
    with pytest.raises(sbml_cme.UnsupportedFeatureError, match="implies"):
        sbml_cme.read_sbml(DATA / "root_of_boolean.xml")
