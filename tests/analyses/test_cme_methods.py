"""The transient CME methods (``sbml_cme.analyses.cme.METHODS``) against exact laws and
against each other.

References: the dense matrix exponential (``scipy.linalg.expm``) of the same generator;
THEORY.md section 2 (birth-death from 0: Poisson(k/d (1 - e^-dt))) and section 3 (two
independent birth-death species: a product of Poissons). Every method must return a law
whose L1 distance to the exact one, over all states, is at most its certified
``error_bound`` plus floating-point round-off; the time-integration error each method
reports must be far below ``tol``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sparse
import scipy.stats

import sbml_cme
from sbml_cme.analyses import solve_cme
from sbml_cme.analyses import cme
from sbml_cme.analyses.cme import METHODS, expv, resolve_method
from sbml_cme.errors import OptionsError
from conftest import make_sbml

ROUND_OFF = 1e-9  # floating-point slack added to the certified L1 bound


def two_birth_death(mean_a: float, mean_b: float) -> sbml_cme.Network:
    """0 -> A at kA, A -> 0 at A, 0 -> B at kB, B -> 0 at 2 B, from A = B = 0."""
    return sbml_cme.read_sbml_string(make_sbml(
        {"A": 0, "B": 0},
        [("birth_a", {}, {"A": 1}, "kA"), ("death_a", {"A": 1}, {}, "A"),
         ("birth_b", {}, {"B": 1}, "kB"), ("death_b", {"B": 1}, {}, "2 * B")],
        parameters={"kA": mean_a, "kB": 2.0 * mean_b}))


def annihilation(ka: float = 30.0, kb: float = 20.0) -> sbml_cme.Network:
    """0 -> A, 0 -> B, A + B -> 0, A -> 0, B -> 0: nonlinear, two open species."""
    return sbml_cme.read_sbml_string(make_sbml(
        {"A": 0, "B": 5},
        [("in_a", {}, {"A": 1}, "ka"), ("in_b", {}, {"B": 1}, "kb"),
         ("pair", {"A": 1, "B": 1}, {}, "c * A * B"), ("out_a", {"A": 1}, {}, "A"),
         ("out_b", {"B": 1}, {}, "B")],
        parameters={"ka": ka, "kb": kb, "c": 0.05}))


def product_poisson_l1(result, index: int, level_a: float, level_b: float) -> float:
    """L1 distance over all states between the result at ``times[index]`` and
    Poisson(level_a) x Poisson(level_b) (the exact mass off the FSP set counts in full)."""
    states, p = result.distributions[index]
    a, b = (result.network.species_ids.index(s) for s in ("A", "B"))
    exact = (scipy.stats.poisson.pmf(states[:, a], level_a)
             * scipy.stats.poisson.pmf(states[:, b], level_b))
    return float(np.abs(p - exact).sum() + max(0.0, 1.0 - exact.sum()))


def absorbing_problem(network, t_end: float):
    """(generator with sinks, p0 on the initial state) as solve_cme builds them."""
    _, _, matrix, p0 = cme.initial_fsp_problem(network, t_end, max_states=10**7)
    return matrix, p0


# -- the exponential kernels against the dense matrix exponential ---------------------------------
@pytest.fixture(scope="module")
def dense_reference():
    """(generator, p0, exp(2 A) p0 by the dense scipy.linalg.expm) of a 2-D nonlinear
    network with a few hundred states: far more than one Krylov basis (restarts happen)."""
    matrix, p0 = absorbing_problem(annihilation(3.0, 2.5), 2.0)
    assert 100 < matrix.shape[0] < 1000
    return matrix, p0, scipy.linalg.expm(matrix.toarray() * 2.0) @ p0


@pytest.mark.parametrize("depth", [None, 2, 1])
def test_expv_matches_dense_expm(depth, dense_reference):
    matrix, p0, exact = dense_reference
    counters = {}
    w, estimate = expv(matrix, p0, 2.0, dimension=40, depth=depth, counters=counters)
    actual = float(np.linalg.norm(w - exact))
    assert actual <= 1e-11
    assert actual <= estimate  # the reported 2-norm estimate is not optimistic here
    assert counters["steps"] >= 2 and counters["products"] >= 40 * counters["steps"] - 40


def test_expv_handles_other_sparse_formats_and_invariant_subspaces():
    matrix, p0 = absorbing_problem(two_birth_death(3.0, 2.0), 1.5)
    reference, _ = expv(matrix, p0, 1.5, depth=2, dimension=60)
    for other in (matrix.tocsc(), matrix.tocoo(), sparse.csr_matrix(matrix, dtype=np.float64)):
        w, _ = expv(other, p0, 1.5, depth=2, dimension=60)
        np.testing.assert_allclose(w, reference, rtol=0, atol=1e-14)
    # a 3-state chain: the Krylov space is invariant after 3 vectors (happy breakdown)
    chain = sparse.csr_matrix(np.array([[-1.0, 0, 0], [1.0, -2.0, 0], [0, 2.0, 0]]))
    start = np.array([1.0, 0, 0])
    exact = scipy.linalg.expm(chain.toarray() * 3.0) @ start
    for depth in (None, 2):
        w, _ = expv(chain, start, 3.0, depth=depth)
        np.testing.assert_allclose(w, exact, rtol=0, atol=1e-14)


# -- every method against exact laws ------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_two_independent_species_are_a_product_of_poissons(method):
    # ~ 40 x 30 = 1 200 (tight tol: ~ 60 x 45) states: auto picks krylov_iop above 2 000
    mean_a, mean_b = 15.0, 8.0
    times = np.array([0.0, 0.05, 0.5, 2.0, 6.0])
    for tol in (1e-6, 1e-10):
        result = solve_cme(two_birth_death(mean_a, mean_b), times, tol=tol, method=method)
        assert result.error_bound <= tol
        for k, t in enumerate(times):
            distance = product_poisson_l1(result, k, mean_a * (1 - math.exp(-t)),
                                          mean_b * (1 - math.exp(-2 * t)))
            assert distance <= result.error_bounds[k] + ROUND_OFF, (
                f"{method}, tol {tol:g}, t = {t}: L1 {distance:.3g} above the bound "
                f"{result.error_bounds[k]:.3g}")


@pytest.mark.parametrize("method", METHODS)
def test_birth_death_from_a_large_count_is_binomial_plus_poisson(method):
    # 0 -> X at k, X -> 0 at d X from n0: Binomial(n0, e^-dt) * Poisson(k/d (1 - e^-dt))
    k, d, n0 = 5.0, 0.5, 300
    network = sbml_cme.read_sbml_string(make_sbml(
        {"X": n0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
        parameters={"k": k, "d": d}))
    times = np.array([0.0, 0.3, 1.0, 3.0])
    result = solve_cme(network, times, tol=1e-9, method=method)
    for index, t in enumerate(times):
        states, p = result.distributions[index]
        survive = math.exp(-d * t)
        counts = states[:, 0]
        top = int(counts.max()) + 1
        law = np.convolve(scipy.stats.binom.pmf(np.arange(n0 + 1), n0, survive),
                          scipy.stats.poisson.pmf(np.arange(top), k / d * (1 - survive)))
        exact = law[:top][counts]
        distance = float(np.abs(p - exact).sum() + max(0.0, 1.0 - exact.sum()))
        assert distance <= result.error_bounds[index] + ROUND_OFF, (method, t, distance)


# -- methods against each other ------------------------------------------------------------------
def test_methods_agree_on_a_nonlinear_two_species_network():
    network = annihilation()
    times = np.array([0.0, 0.2, 1.0, 3.0])
    results = {method: solve_cme(network, times, tol=1e-9, method=method)
               for method in METHODS}
    reference = results["krylov"]
    for method, result in results.items():
        for k, t in enumerate(times):
            a = reference.distribution(t).set_index(["A", "B"])["probability"]
            b = result.distribution(t).set_index(["A", "B"])["probability"]
            a, b = a.align(b, fill_value=0.0)
            distance = float(np.abs(a - b).sum())
            assert distance <= (reference.error_bounds[k] + result.error_bounds[k]
                                + ROUND_OFF), f"{method} at t = {t}: L1 {distance:.3g}"


@pytest.mark.parametrize("method", METHODS)
def test_probabilities_stay_nonnegative_and_mass_is_conserved(method):
    matrix, p0 = absorbing_problem(annihilation(), 3.0)
    info = {}
    solution = cme._propagate(matrix, p0, np.array([0.0, 0.1, 1.0, 3.0]), method,
                              tolerance=1e-12, info=info)
    assert solution.min() >= 0.0
    # the sinks are part of the system: probability inside + leaked adds up to one
    np.testing.assert_allclose(solution.sum(axis=1), 1.0, rtol=0, atol=1e-9)
    assert info["method"] == resolve_method(method, matrix.shape[0])


# -- method selection and reporting ---------------------------------------------------------------
def test_auto_chooses_by_size_and_run_info_reports_the_integration():
    assert set(METHODS) >= {"auto", "krylov", "krylov_iop", "ode"}
    assert resolve_method("auto", 100) == "krylov"
    assert resolve_method("auto", 10**6) == "krylov_iop"
    assert resolve_method("ode", 10**6) == "ode"
    stiff = cme._AUTO_STIFF_STEPS * cme._KRYLOV_DIMENSION * 2.0
    assert resolve_method("auto", 501, stiff) == "ode"
    assert resolve_method("auto", 10**6, stiff) == "krylov_iop"  # no LU of 10^6 states
    small = solve_cme(two_birth_death(2.0, 1.0), [0.0, 1.0])
    large = solve_cme(two_birth_death(40.0, 40.0), [0.0, 1.0])
    assert small.n_states < cme._AUTO_IOP_MIN_STATES <= large.n_states
    assert small.run_info["method"] == "krylov" and large.run_info["method"] == "krylov_iop"
    for result in (small, large):
        info = result.run_info
        assert info["requested_method"] == "auto"
        assert 0.0 < info["integration_error"] <= 1e-3 * info["tol"]
        assert info["krylov_steps"] >= 1 and info["matrix_products"] >= info["krylov_steps"]
    ode = solve_cme(two_birth_death(2.0, 1.0), [0.0, 1.0], method="ode")
    assert ode.run_info["method"] == "ode" and math.isnan(ode.run_info["integration_error"])


def test_integration_tolerance_follows_tol():
    assert cme._integration_tolerance(1e-6) == pytest.approx(1e-12)
    assert cme._integration_tolerance(1e-8) == pytest.approx(1e-14)
    assert cme._integration_tolerance(1e-3) == pytest.approx(1e-12)
    assert cme._integration_tolerance(1e-12) == pytest.approx(1e-14)


def test_unknown_method_is_refused():
    with pytest.raises(OptionsError, match="krylov_iop"):
        solve_cme(two_birth_death(2.0, 1.0), [0.0, 1.0], method="uniformisation")
