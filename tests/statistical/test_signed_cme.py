"""Split signed laws through the SSA and the CME: a fixed-seed SSA histogram against the
certified FSP law (chi-square, p < 1e-3 rejects), on reversible Michaelis-Menten (the
backward channel fires) and on BioModels BIOMD0000000003 (Goldbeter 1991; its two laws
(1 - M) / (K + 1 - M) have no sign-definite split and run as max(v, 0), max(-v, 0)).
BIOMD0000000003 is read with ``substance_unit=100`` (100 molecules per model unit instead
of a mole) so that its copy numbers fit the CME."""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pytest

import sbml_cme
from sbml_cme.analyses import simulate_ssa, solve_cme
from conftest import make_sbml, pooled_chi_square

MODELS = pathlib.Path(__file__).resolve().parents[2] / "models" / "biomodels"
N_TRAJECTORIES = 4000
SEED = 20261207
P_VALUE = 1e-3
TOL = 1e-8


def chi_square(network: sbml_cme.Network, species: str, t: float):
    times = np.array([0.0, t])
    law = solve_cme(network, times, tol=TOL)
    assert law.error_bound <= TOL
    marginal = law.marginal(species)
    marginal = marginal[marginal.time == t]
    ensemble = simulate_ssa(network, times, n_trajectories=N_TRAJECTORIES, seed=SEED)
    samples = ensemble.states[:, -1, network.species_ids.index(species)].astype(np.int64)
    return pooled_chi_square(samples, marginal["count"].to_numpy(),
                             marginal["probability"].to_numpy())


def test_reversible_michaelis_menten_histogram_matches_the_cme():
    network = sbml_cme.read_sbml_string(make_sbml(
        {"S": 0, "P": 30},
        [("make", {}, {"S": 1}, "k0"),
         ("convert", {"S": 1}, {"P": 1}, "(Vf * S / Ks - Vr * P / Kp) / (1 + S / Ks + P / Kp)"),
         ("decay", {"P": 1}, {}, "d * P")],
        parameters={"k0": 5.0, "Vf": 30.0, "Vr": 20.0, "Ks": 10.0, "Kp": 10.0, "d": 0.2}))
    assert network.reaction_ids == ("make", "convert_forward", "convert_backward", "decay")
    statistic, dof, p = chi_square(network, "S", 2.0)
    assert dof >= 5
    assert p > P_VALUE, f"chi-square {statistic:.1f} on {dof} dof, p = {p:.2e}"


@pytest.mark.parametrize("species", ["C", "M"])
def test_biomd0000000003_histogram_matches_the_cme(species):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the max(v, 0) note
        network = sbml_cme.read_sbml(MODELS / "BIOMD0000000003.xml", substance_unit=100)
    assert "reaction4_backward" in network.reaction_ids
    statistic, dof, p = chi_square(network, species, 2.0)
    assert dof >= 2
    assert p > P_VALUE, f"chi-square {statistic:.1f} on {dof} dof, p = {p:.2e}"
