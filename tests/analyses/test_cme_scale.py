"""CME at scale (issue 14): hashed state index, windows with lower bounds, extended-
precision refinement of the stationary solve, memory limits.

References nobody here wrote: the product of Poisson laws (independent birth-death,
THEORY.md section 2), the multinomial law of a closed first-order ring (product form,
THEORY.md), and the transient of birth-death from x0: Binomial(x0, e^-gt) convolved with
Poisson(k/g (1 - e^-gt)).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import stats

import sbml_cme
from sbml_cme.analyses.cme import _bytes_per_state
from sbml_cme.errors import StateSpaceTooLargeError
from conftest import make_sbml


def two_birth_death(mean_a: float, mean_b: float, a0: int = 0, b0: int = 0):
    return sbml_cme.read_sbml_string(make_sbml({"A": a0, "B": b0}, [
        ("bA", {}, {"A": 1}, "kA"), ("dA", {"A": 1}, {}, "g * A"),
        ("bB", {}, {"B": 1}, "kB"), ("dB", {"B": 1}, {}, "g * B")],
        parameters={"kA": mean_a, "kB": mean_b, "g": 1.0}))


def test_stationary_window_follows_the_mass():
    """Means 5000 and 4000: the lattice box from zero holds 2.4e7 states, the window
    around the mass < 1e6; L1 to Poisson x Poisson <= 2e-6 and the means to 1e-3."""
    result = sbml_cme.stationary_cme(two_birth_death(5000.0, 4000.0), tol=1e-6)
    states, p = result.distributions[0]
    assert len(p) <= 1_000_000
    assert result.error_bounds[0] <= 1e-6
    assert np.all(result.run_info["lower"] > 3000)  # the empty tails near 0 are not kept
    exact = stats.poisson.pmf(states[:, 0], 5000.0) * stats.poisson.pmf(states[:, 1], 4000.0)
    l1 = np.abs(p - exact).sum() + (1.0 - exact.sum())
    assert l1 <= 2e-6
    assert l1 <= result.error_bounds[0]
    np.testing.assert_allclose(p @ states, [5000.0, 4000.0], rtol=1e-3)


def test_ring_beyond_any_dense_box_has_the_multinomial_law():
    """A closed ring A1 -> ... -> A10 -> A1 with 12 molecules: box 13^9 ~ 1e10 codes,
    C(21, 9) = 293 930 reachable states; stationary law multinomial(12, p_i ~ 1/k_i)."""
    n = 10
    rates = {f"k{i}": 1.0 + 0.25 * i for i in range(1, n + 1)}
    network = sbml_cme.read_sbml_string(make_sbml(
        {f"A{i}": (12 if i == 1 else 0) for i in range(1, n + 1)},
        [(f"r{i}", {f"A{i}": 1}, {f"A{i % n + 1}": 1}, f"k{i} * A{i}")
         for i in range(1, n + 1)], parameters=rates))
    result = sbml_cme.stationary_cme(network, tol=1e-8)
    states, p = result.distributions[0]
    assert len(p) == 293_930
    weights = 1.0 / np.array(list(rates.values()))
    exact = stats.multinomial.pmf(states, 12, weights / weights.sum())
    assert np.abs(p - exact).sum() + (1.0 - exact.sum()) <= 1e-8


def test_transient_window_has_a_lower_bound():
    """From A = 3000 decaying towards 100 by t = 2: the window keeps no states near 0
    and the law is the exact binomial-Poisson convolution within the certificate."""
    network = two_birth_death(100.0, 1.0, a0=3000, b0=0)
    t = 2.0
    result = sbml_cme.solve_cme(network, [0.0, t], tol=1e-6)
    states, p = result.distributions[1]
    survive = np.exp(-t)
    a = np.arange(states[:, 0].max() + 1)
    law_a = np.convolve(stats.binom.pmf(a, 3000, survive),
                        stats.poisson.pmf(a, 100.0 * (1 - survive)))[:len(a)]
    law_b = stats.poisson.pmf(states[:, 1], 1.0 - survive)
    exact = law_a[states[:, 0]] * law_b
    assert states[:, 0].min() > 100  # the deterministic low 505 minus the margin
    l1 = np.abs(p - exact).sum() + (1.0 - exact.sum())
    assert l1 <= result.error_bounds[1] + 1e-9


def test_memory_limit_refuses_before_building_the_generator():
    """max_memory caps the enumeration: a clear refusal with the estimate in GiB."""
    with pytest.raises(StateSpaceTooLargeError, match=r"GiB.*max_memory"):
        sbml_cme.stationary_cme(two_birth_death(5000.0, 4000.0), max_memory=50e6)
    with pytest.raises(sbml_cme.OptionsError, match="max_memory"):
        sbml_cme.solve_cme(two_birth_death(5.0, 4.0), [0, 1], max_memory=-1)


def two_stage_two_proteins(km: float):
    """0 -> M, M -> 0, M -> M + P, P -> 0, M -> M + Q, Q -> 0: a 3-D lattice."""
    return sbml_cme.read_sbml_string(make_sbml({"M": 0, "P": 0, "Q": 0}, [
        ("tx", {}, {"M": 1}, "km"), ("mdeg", {"M": 1}, {}, "gm * M"),
        ("tlP", {"M": 1}, {"M": 1, "P": 1}, "kp * M"), ("pdeg", {"P": 1}, {}, "gp * P"),
        ("tlQ", {"M": 1}, {"M": 1, "Q": 1}, "kq * M"), ("qdeg", {"Q": 1}, {}, "gq * Q")],
        parameters={"km": km, "gm": 1.0, "kp": 2.0, "gp": 0.1, "kq": 1.0, "gq": 0.1}))


def test_stationary_memory_estimate_bounds_the_measured_peak():
    """The per-state estimate that max_memory is checked against covers the arrays the
    stationary solve allocates (tracemalloc: numpy, scipy and pyamg buffers) on a 3-D
    lattice of ~2e5 states, the Ruge-Stuben path; and the means are exact (M ~ Poisson(km),
    E[P] = km kp / (gm gp), E[Q] = km kq / (gm gq))."""
    network = two_stage_two_proteins(2.0)
    sbml_cme.stationary_cme(network, tol=1e-3)  # compile outside the measurement
    tracemalloc.start()
    try:
        result = sbml_cme.stationary_cme(network, tol=1e-6)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    states, p = result.distributions[0]
    assert len(p) > 100_000  # the iterative (AMG) solve, not the LU
    assert peak <= len(p) * _bytes_per_state(network, 2, stationary=True)
    np.testing.assert_allclose(p @ states, [2.0, 40.0, 20.0], rtol=1e-5)


def test_progress_bar_shows_rounds(capsys):
    sbml_cme.stationary_cme(two_birth_death(20.0, 10.0), progress=True)
    assert "stationary FSP" in capsys.readouterr().err
