"""The linear noise approximation against exact results (THEORY.md sections 4-5), the
CME of a nonlinear model as the volume grows, tellurium's steady state, and the bundled
BioModels as models/biomodels/index.csv records."""

from __future__ import annotations

import csv
import pathlib
import warnings

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

import sbml_cme
from sbml_cme import ConvergenceError, UnsupportedFeatureError
from sbml_cme.analyses import lna, solve_lna
from sbml_cme.kinetics import compile_network
from conftest import make_sbml

MODELS = pathlib.Path(__file__).resolve().parents[2] / "models" / "biomodels"
ROWS = list(csv.DictReader(open(MODELS / "index.csv", newline="")))


def two_stage(km=10.0, gm=1.0, kp=5.0, gp=0.5):
    return sbml_cme.read_sbml_string(make_sbml(
        {"M": 0, "P": 0},
        [("tm", {}, {"M": 1}, "km"), ("dm", {"M": 1}, {}, "gm * M"),
         ("tp", {"M": 1}, {"M": 1, "P": 1}, "kp * M"), ("dp", {"P": 1}, {}, "gp * P")],
        parameters={"km": km, "gm": gm, "kp": kp, "gp": gp}))


def test_two_stage_exact():
    km, gm, kp, gp = 10.0, 1.0, 5.0, 0.5
    result = solve_lna(two_stage(km, gm, kp, gp))
    mean_m, mean_p = km / gm, km * kp / (gm * gp)
    noise = result.noise.set_index("species")
    covariance = result.covariance.set_index(["species_i", "species_j"])["covariance"]
    assert np.isinf(result.times).all()
    assert noise.loc["M", "mean"] == pytest.approx(mean_m, rel=1e-8)
    assert noise.loc["P", "mean"] == pytest.approx(mean_p, rel=1e-8)
    assert noise.loc["M", "variance"] == pytest.approx(mean_m, rel=1e-8)
    assert covariance["M", "P"] == pytest.approx(kp * mean_m / (gm + gp), rel=1e-8)
    assert noise.loc["P", "fano_factor"] == pytest.approx(1 + kp / (gm + gp), rel=1e-8)
    assert noise.loc["P", "cv_squared"] == pytest.approx(
        (1 + kp / (gm + gp)) / mean_p, rel=1e-8)
    assert result.run_info["max_real_eigenvalue"] == pytest.approx(-gp)
    assert result.run_info["steady_state_relative_residual"] < 1e-8


def test_two_stage_time_dependent_reaches_steady_state():
    network = two_stage()
    stationary = solve_lna(network)
    transient = solve_lna(network, np.linspace(0, 60, 7))
    assert transient.means[0] == pytest.approx([0, 0])
    assert transient.covariances[0] == pytest.approx(np.zeros((2, 2)))
    assert transient.covariances[-1] == pytest.approx(stationary.covariances[0], rel=1e-5)
    # Birth-death of M from zero is Poisson at all times: Var(M)(t) = <M>(t).
    assert transient.variances[:, 0] == pytest.approx(transient.means[:, 0], rel=1e-6,
                                                      abs=1e-9)


def test_closed_isomerisation_binomial_and_anticorrelated():
    n, k1, k2 = 40, 1.0, 3.0
    network = sbml_cme.read_sbml_string(make_sbml(
        {"A": n, "B": 0}, [("f", {"A": 1}, {"B": 1}, "k1 * A"),
                           ("b", {"B": 1}, {"A": 1}, "k2 * B")],
        parameters={"k1": k1, "k2": k2}))
    result = solve_lna(network)
    p = k2 / (k1 + k2)
    covariance = result.covariances[0]
    assert result.means[0] == pytest.approx([n * p, n * (1 - p)], rel=1e-8)
    assert covariance[0, 0] == pytest.approx(n * p * (1 - p), rel=1e-8)
    assert covariance[0, 1] == pytest.approx(-covariance[0, 0], rel=1e-8)
    assert result.correlation_matrices[0, 0, 1] == pytest.approx(-1.0, rel=1e-8)
    assert result.run_info["n_conservation_laws"] == 1


def test_birth_death_poisson_and_frames(birth_death_sbml):
    result = solve_lna(sbml_cme.read_sbml_string(birth_death_sbml))
    assert list(result.moments.columns) == ["time", "species", "mean", "variance"]
    assert list(result.covariance.columns) == ["time", "species_i", "species_j", "covariance"]
    assert list(result.stats().columns) == ["time", "X-mean", "X-sd"]
    assert result.moments["variance"].iloc[0] == pytest.approx(10.0, rel=1e-8)
    assert result.stats()["X-sd"].iloc[0] == pytest.approx(np.sqrt(10.0), rel=1e-8)


def test_boundary_species_has_zero_variance():
    sbml = make_sbml({"S": 100, "X": 0}, [("make", {"S": 1}, {"S": 1, "X": 1}, "k * S"),
                                          ("decay", {"X": 1}, {}, "d * X")],
                     parameters={"k": 0.5, "d": 1.0})
    sbml = sbml.replace('id="S" compartment="cell" initialAmount="100" '
                        'hasOnlySubstanceUnits="true" boundaryCondition="false"',
                        'id="S" compartment="cell" initialAmount="100" '
                        'hasOnlySubstanceUnits="true" boundaryCondition="true"')
    network = sbml_cme.read_sbml_string(sbml)
    assert network.species[0].boundary
    result = solve_lna(network)
    assert result.variances[0] == pytest.approx([0.0, 50.0], rel=1e-8)


# -- nonlinear: convergence to the CME as the volume grows ---------------------------------------
def dimer_stationary_moments(birth: float, annihilation: float, n_max: int):
    """Exact stationary mean and variance of 0 -> A (rate ``birth``), 2A -> 0 (propensity
    ``annihilation * n (n - 1)``), from the master equation on {0..n_max}.

    The generator Q (columns sum to zero) is solved for Q pi = 0, sum pi = 1 (one
    redundant balance equation replaced by the normalisation); n_max is chosen by the
    caller so that pi(n_max) is negligible.
    """
    states = np.arange(n_max + 1)
    generator = np.zeros((n_max + 1, n_max + 1))
    for n in states:
        if n < n_max:
            generator[n + 1, n] += birth
            generator[n, n] -= birth
        if n >= 2:
            rate = annihilation * n * (n - 1)
            generator[n - 2, n] += rate
            generator[n, n] -= rate
    generator[-1] = 1.0
    right = np.zeros(n_max + 1)
    right[-1] = 1.0
    pi = scipy.sparse.linalg.spsolve(scipy.sparse.csc_matrix(generator), right)
    mean = pi @ states
    return mean, pi @ (states - mean) ** 2


def test_dimerisation_lna_error_shrinks_like_inverse_volume():
    # Omega scales the birth rate up and the bimolecular constant down (fixed
    # concentrations); the relative LNA error of the variance should fall like 1/Omega.
    omegas = np.array([10.0, 31.6, 100.0])
    errors = []
    for omega in omegas:
        birth, annihilation = 1.0 * omega, 0.5 / omega
        network = sbml_cme.read_sbml_string(make_sbml(
            {"A": 0}, [("b", {}, {"A": 1}, "k"), ("d", {"A": 2}, {}, "c * A * (A - 1)")],
            parameters={"k": birth, "c": annihilation}))
        lna = solve_lna(network)
        exact_mean, exact_variance = dimer_stationary_moments(
            birth, annihilation, n_max=int(10 * omega + 60))
        errors.append(abs(lna.variances[0, 0] - exact_variance) / exact_variance)
    slope = np.polyfit(np.log(omegas), np.log(errors), 1)[0]
    assert -1.3 < slope < -0.7, (errors, slope)


# -- tellurium ----------------------------------------------------------------------------------
def test_steady_state_means_equal_tellurium():
    roadrunner = pytest.importorskip("roadrunner")
    path = MODELS / "BIOMD0000000283.xml"
    network = sbml_cme.read_sbml(path)
    result = solve_lna(network)
    runner = roadrunner.RoadRunner(str(path))
    runner.simulate(0, 1000, 2)
    runner.steadyState()
    stats = result.stats(units="model")
    for species in runner.model.getFloatingSpeciesIds():
        declared = network.species[network.species_index[species]].has_only_substance_units
        value = runner[species] if declared else runner[f"[{species}]"]
        ours = stats[f"{species}-mean"].iloc[0]
        # Scaled error below one: |ours - ref| / (atol + rtol |ref|).
        assert abs(ours - value) / (1e-12 + 1e-6 * abs(value)) < 1, species


def test_steady_state_with_conservation_laws_equals_roadrunner():
    # BIOMD0000000009 (MAPK cascade, conservation laws, non-zero steady state). roadrunner's
    # steadyState() (NLEQ) fails here (singular Jacobian: moieties, and a rule-defined
    # species prevents moiety conversion), so its reference is a long, tight simulation.
    roadrunner = pytest.importorskip("roadrunner")
    path = MODELS / "BIOMD0000000009.xml"
    network = sbml_cme.read_sbml(path)
    stats = solve_lna(network).stats(units="model")
    runner = roadrunner.RoadRunner(str(path))
    runner.integrator.relative_tolerance = 1e-10
    runner.integrator.absolute_tolerance = 1e-14
    runner.simulate(0, 1e5, 2)
    compared = 0
    for species in runner.model.getFloatingSpeciesIds():
        if species not in network.species_index:
            continue  # defined by an assignment rule
        declared = network.species[network.species_index[species]].has_only_substance_units
        value = runner[species] if declared else runner[f"[{species}]"]
        ours = stats[f"{species}-mean"].iloc[0]
        assert abs(ours - value) / (1e-12 + 1e-6 * abs(value)) < 1, species
        compared += 1
    assert compared >= 20


def test_biomd0019_steady_state_equals_long_roadrunner_run():
    # Schoeberl 2002 EGF-MAPK (94 species, 13 conservation laws among the rest): three
    # sinks (x13, x86, x87) that no rate law reads accumulate for ever, so roadrunner's
    # steadyState() fails; the other species settle. Reference: a long, tight simulation.
    roadrunner = pytest.importorskip("roadrunner")
    path = MODELS / "BIOMD0000000019.xml"
    network = sbml_cme.read_sbml(path)
    with pytest.warns(UserWarning, match="x13.*x86.*x87"):
        result = solve_lna(network)
    stats = result.stats(units="model")
    runner = roadrunner.RoadRunner(str(path))
    runner.integrator.relative_tolerance = 1e-10
    runner.integrator.absolute_tolerance = 1e-14
    runner.simulate(0, 1e5, 2)
    rates = dict(zip(runner.model.getFloatingSpeciesIds(), runner.getRatesOfChange()))
    sinks = result.run_info["undetermined_species"]
    assert sorted(sinks) == ["x13", "x86", "x87"]
    compared = 0
    for species in runner.model.getFloatingSpeciesIds():
        if species not in network.species_index:
            continue
        declared = network.species[network.species_index[species]].has_only_substance_units
        value = runner[species] if declared else runner[f"[{species}]"]
        ours = stats[f"{species}-mean"].iloc[0]
        if species in sinks:  # no stationary law; its net change is roadrunner's rate
            assert np.isnan(ours)
            scale = network.species_scale(species, "model")
            assert sinks[species] / scale == pytest.approx(rates[species], rel=1e-6)
            continue
        assert abs(ours - value) / (1e-12 + 1e-6 * abs(value)) < 1, species
        compared += 1
    assert compared == 90
    determined = ~np.isnan(result.means[0])
    assert np.all(np.isfinite(result.covariances[0][np.ix_(determined, determined)]))
    assert result.run_info["max_real_eigenvalue"] < 0


def test_counter_species_left_undetermined():
    # Birth-death X plus a counter Y of births that no rate law reads: X is Poisson at
    # its steady state, Y has no stationary law (it grows at rate k for ever).
    network = sbml_cme.read_sbml_string(make_sbml(
        {"X": 0, "Y": 0}, [("birth", {}, {"X": 1, "Y": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
        parameters={"k": 20.0, "d": 2.0}))
    with pytest.warns(UserWarning, match="Y"):
        result = solve_lna(network)
    assert result.means[0, 0] == pytest.approx(10.0, rel=1e-8)
    assert result.variances[0, 0] == pytest.approx(10.0, rel=1e-8)
    assert np.isnan(result.means[0, 1]) and np.isnan(result.covariances[0, 1]).all()
    assert result.run_info["undetermined_species"] == pytest.approx({"Y": 20.0})


def test_sink_in_a_conservation_law_is_determined():
    # A <-> B -> C with C read by no rate law: C = total - A - B, so it has a steady state.
    network = sbml_cme.read_sbml_string(make_sbml(
        {"A": 50, "B": 0, "C": 0},
        [("f", {"A": 1}, {"B": 1}, "k1 * A"), ("b", {"B": 1}, {"A": 1}, "k2 * B"),
         ("out", {"B": 1}, {"C": 1}, "k3 * B")],
        parameters={"k1": 1.0, "k2": 1.0, "k3": 0.5}))
    result = solve_lna(network)
    assert result.run_info["undetermined_species"] == {}
    assert result.means[0, :3] == pytest.approx([0.0, 0.0, 50.0], abs=1e-6)


def hill_network(hill: float):
    return sbml_cme.read_sbml_string(make_sbml(
        {"R": 0, "P": 0},
        [("make", {}, {"P": 1}, "v * K^n / (K^n + R^n)"), ("decay", {"P": 1}, {}, "d * P"),
         ("act", {}, {"R": 1}, "v * P^n / (K^n + P^n)"), ("rdecay", {"R": 1}, {}, "d * R")],
        parameters={"v": 50.0, "K": 10.0, "n": hill, "d": 1.0}))


@pytest.mark.parametrize("hill", [2.5, 1.0, 4.0])
def test_hill_jacobian_exact_at_zero_counts(hill):
    # d/dx x^n/(K^n + x^n) = n K^n x^(n-1) / (K^n + x^n)^2: 0 at x = 0 for n > 1, 1/K for
    # n = 1 (sympy's own form n x^n / (x (...)) is 0/0 there).
    network = hill_network(hill)
    derivatives = lna.derivatives(network)
    jacobian = derivatives.propensity_jacobian(np.zeros(2), network.parameter_values, 0.0,
                                               4, 2)
    expected = 50.0 / 10.0 if hill == 1.0 else 0.0
    assert jacobian[2, 1] == pytest.approx(expected, abs=1e-12)
    assert np.all(np.isfinite(jacobian))
    # Away from zero, the same entries agree with central differences of the kernel.
    x = np.array([3.0, 7.0])
    jacobian = derivatives.propensity_jacobian(x, network.parameter_values, 0.0, 4, 2)
    compiled = compile_network(network)
    for i in range(2):
        step = np.eye(2)[i] * 1e-6
        column = (compiled.propensities(x + step, 0.0, True) -
                  compiled.propensities(x - step, 0.0, True)) / 2e-6
        assert jacobian[:, i] == pytest.approx(column, rel=1e-6, abs=1e-9)


def test_undefined_derivative_replaced_by_its_limit():
    # a = k X^2 / (X + X^2) (= k X / (1 + X)): da/dX = k X^2 / (X + X^2)^2 is 0/0 at
    # X = 0, limit k.
    network = sbml_cme.read_sbml_string(make_sbml(
        {"X": 0}, [("make", {}, {"X": 1}, "k * X^2 / (X + X^2)"),
                   ("decay", {"X": 1}, {}, "d * X")], parameters={"k": 3.0, "d": 1.0}))
    jacobian = lna.derivatives(network).propensity_jacobian(
        np.zeros(1), network.parameter_values, 0.0, 2, 1)
    assert jacobian[0, 0] == pytest.approx(3.0, rel=1e-12)


def test_time_dependent_lna_from_zero_counts_with_hill_laws():
    # The Jacobian at the all-zero start is exact (no 0/0), so the covariance ODE starts.
    result = solve_lna(hill_network(2.5), np.linspace(0.0, 5.0, 6))
    assert np.all(np.isfinite(result.covariances))
    assert np.all(result.variances[1:, 1] > 0)


def test_oscillator_refused_naming_the_unstable_steady_state():
    # Brusselator with b > 1 + a^2 (in concentrations): a limit cycle around an unstable
    # focus. The steady-state LNA must refuse and point to the time-dependent LNA.
    omega = 100.0
    network = sbml_cme.read_sbml_string(make_sbml(
        {"X": 100, "Y": 300},
        [("in", {}, {"X": 1}, "a * omega"), ("conv", {"X": 1}, {"Y": 1}, "b * X"),
         ("auto", {"X": 2, "Y": 1}, {"X": 3}, "X * X * Y / omega^2"),
         ("out", {"X": 1}, {}, "X")],
        parameters={"a": 1.0, "b": 3.0, "omega": omega}))
    with pytest.raises(ConvergenceError, match="not stable.*time-dependent LNA"):
        solve_lna(network)


# -- refusals -----------------------------------------------------------------------------------
def test_events_refused_naming_the_event(birth_death_sbml):
    sbml = make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "X")],
                     parameters={"k": 10.0}, events=[("reset", "time > 5", {"X": "0"})])
    with pytest.raises(UnsupportedFeatureError, match="reset"):
        solve_lna(sbml_cme.read_sbml_string(sbml))


def test_no_steady_state_suggests_time_dependent_lna():
    growth = sbml_cme.read_sbml_string(make_sbml({"X": 1}, [("birth", {}, {"X": 1}, "k")],
                                                 parameters={"k": 1.0}))
    with pytest.raises(ConvergenceError, match="time-dependent LNA"):
        solve_lna(growth)
    result = solve_lna(growth, [0.0, 2.0, 4.0])
    assert result.variances[:, 0] == pytest.approx([0.0, 2.0, 4.0])


# -- the bundled BioModels ----------------------------------------------------------------------
def _options(text: str) -> dict:
    return dict(item.split("=", 1) for item in filter(None, (text or "").split(";")))


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_biomodel_lna_status_matches_index(row):
    status = row["lna_status"]
    if status == "not imported":
        assert row["sbml_cme_status"] != "ok"
        return
    network = sbml_cme.read_sbml(MODELS / f"{row['id']}.xml", **_options(row["read_options"]))
    if status == "steady state":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the warning names the undetermined species
            result = solve_lna(network)
        undetermined = result.run_info["undetermined_species"]
        determined = [i for i, s in enumerate(network.species_ids) if s not in undetermined]
        assert np.all(np.isfinite(result.covariances[0][np.ix_(determined, determined)]))
        assert np.all(np.isnan(result.means[0, [network.species_index[s]
                                                for s in undetermined]]))
        assert all(species in row["lna_reason"] for species in undetermined)
        assert result.run_info["max_real_eigenvalue"] < 0
    elif status == "unsupported":
        with pytest.raises(UnsupportedFeatureError) as caught:
            solve_lna(network)
        assert caught.value.element_id in row["lna_reason"]
    else:
        assert status in ("time dependent", "failed")
        with pytest.raises(ConvergenceError):
            solve_lna(network)
        if status == "time dependent":
            result = solve_lna(network, np.linspace(0, 10, 11))
            assert np.all(np.isfinite(result.covariances))
        else:
            with pytest.raises(ConvergenceError):
                solve_lna(network, np.linspace(0, 10, 11))
