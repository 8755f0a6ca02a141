"""Exact SSA histograms against the CME distribution on nonlinear models.

Two independent exact methods, one statistical verdict: a fixed-seed SSA ensemble is
binned at one transient time and compared with the CME (finite state projection) law by a
chi-square goodness-of-fit test. Neighbouring cells are pooled until every expected count
is at least 5; the FSP's missing mass (at most ``error_bound``) goes to the last cell. The
test rejects at p < 1e-3. The CME law is certified to L1 error <= tol = 1e-8, far below
what 4,000 samples can resolve (1 / sqrt(4000) ~ 0.016).

Models:

- dimerisation 2P <-> P2 with the DSMTS law k1 P (P - 1) / 2 (DSMTS family 003);
- the Schloegl model, bistable: 2X -> 3X, 3X -> 2X, 0 -> X, X -> 0 with the rate laws
  and constants of BioModels BIOMD0000000485 (Cao 2013). That file also lists a species
  ``ES`` as a reactant/product with an initial amount of 1 that no rate law reads (a
  placeholder for the empty set without boundaryCondition), so as written its chemistry
  is not a stochastic model (ES would go negative); the model is rewritten here with
  ``make_sbml`` without ES.
"""

from __future__ import annotations

import numpy as np

import sbml_cme
from sbml_cme.analyses import simulate_ssa, solve_cme
from conftest import make_sbml, pooled_chi_square

N_TRAJECTORIES = 4000
SEED = 20240607
P_VALUE = 1e-3
TOL = 1e-8


def compare(network: sbml_cme.Network, species: str, t: float) -> tuple[float, int, float]:
    times = np.array([0.0, t])
    law = solve_cme(network, times, tol=TOL)
    assert law.error_bound <= TOL
    marginal = law.marginal(species)
    marginal = marginal[marginal.time == t]
    ensemble = simulate_ssa(network, times, n_trajectories=N_TRAJECTORIES, seed=SEED)
    samples = ensemble.states[:, -1, network.species_ids.index(species)].astype(np.int64)
    return pooled_chi_square(samples, marginal["count"].to_numpy(),
                             marginal["probability"].to_numpy())


def test_dimerisation_histogram_matches_the_cme():
    # DSMTS 003 rates with P(0) = 100 (00030); t = 10 is mid-transient (<P2> ~ 2 of ~4.6).
    network = sbml_cme.read_sbml_string(make_sbml(
        {"P": 100, "P2": 0},
        [("dimerisation", {"P": 2}, {"P2": 1}, "k1 * P * (P - 1) / 2"),
         ("dissociation", {"P2": 1}, {"P": 2}, "k2 * P2")],
        parameters={"k1": 0.001, "k2": 0.01}))
    statistic, dof, p = compare(network, "P2", 10.0)
    assert dof >= 4
    assert p > P_VALUE, f"chi-square {statistic:.1f} on {dof} dof, p = {p:.2e}"


def test_schloegl_bimodal_histogram_matches_the_cme():
    # BIOMD0000000485's laws (V = 25): 0.12 X(X-1), 0.00096 X(X-1)(X-2), 12.5, 2.95 X.
    # Deterministic fixed points at X ~ 5.4 and 94 (stable) and 26 (unstable); started
    # at 25 the law splits between both wells by t = 2.
    network = sbml_cme.read_sbml_string(make_sbml(
        {"X": 25},
        [("autocatalysis", {"X": 2}, {"X": 3}, "k1 * A * X * (X - 1) / V"),
         ("reverse", {"X": 3}, {"X": 2}, "k2 * X * (X - 1) * (X - 2) / V^2"),
         ("production", {}, {"X": 1}, "k3 * B * V"),
         ("decay", {"X": 1}, {}, "k4 * X")],
        parameters={"k1": 3.0, "k2": 0.6, "k3": 0.25, "k4": 2.95, "A": 1.0, "B": 2.0,
                    "V": 25.0}))
    statistic, dof, p = compare(network, "X", 2.0)
    assert dof >= 20
    assert p > P_VALUE, f"chi-square {statistic:.1f} on {dof} dof, p = {p:.2e}"
