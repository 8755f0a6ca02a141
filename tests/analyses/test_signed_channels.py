"""The LNA sees both channels of a split signed law: its diffusion has a+ + a-, not
|a+ - a-| (issue 11 item 1). Checked against the stationary CME: exactly for a reversible
law that is linear in the counts (the LNA is exact for linear propensities), and for
reversible Michaelis-Menten by the relative error falling like 1/Omega."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sbml_cme
from sbml_cme.analyses import solve_lna, stationary_cme
from conftest import make_sbml

RMM = "(Vf * S / Ks - Vr * P / Kp) / (1 + S / Ks + P / Kp)"


def open_reversible(law: str, parameters: dict) -> sbml_cme.Network:
    """0 -> S (k0), S <-> P with ``law``, P -> 0 (d P), counts (item units)."""
    return sbml_cme.read_sbml_string(make_sbml(
        {"S": 0, "P": 0},
        [("make", {}, {"S": 1}, "k0"), ("convert", {"S": 1}, {"P": 1}, law),
         ("decay", {"P": 1}, {}, "d * P")], parameters=parameters))


def cme_moments(network: sbml_cme.Network, tol: float):
    """Stationary means (S, P), covariance matrix from the CME's joint law, and the
    bound the certificate puts on each covariance entry (L1 error x the largest
    |centred product| on the set, twice: the law and its renormalisation)."""
    result = stationary_cme(network, tol=tol)
    assert result.error_bound <= tol
    states, probabilities = result.distributions[0]
    probabilities = probabilities / probabilities.sum()
    mean = probabilities @ states
    centred = states - mean
    entry_bound = 2.0 * result.error_bound * float((np.abs(centred).max(axis=0) ** 2).max())
    return mean, (centred * probabilities[:, None]).T @ centred, entry_bound


def test_lna_of_a_linear_reversible_law_equals_the_cme():
    # (a S - b P) / (1 + c): forward 2 S, backward (2/3) P, both channels mass action.
    network = open_reversible("(a * S - b * P) / (1 + c)",
                              {"k0": 20.0, "a": 3.0, "b": 1.0, "c": 0.5, "d": 1.0})
    assert network.reaction_ids == ("make", "convert_forward", "convert_backward", "decay")
    lna = solve_lna(network)
    mean, covariance, entry_bound = cme_moments(network, tol=1e-9)
    assert lna.means[0] == pytest.approx(mean, rel=1e-6)
    # zero entries (S and P are independent) are compared within the certificate's bound
    assert lna.covariances[0] == pytest.approx(covariance, rel=1e-5,
                                               abs=entry_bound)
    # An open first-order network has a product-Poisson stationary law (THEORY.md
    # section 3), which the two channels reproduce; one net channel at |v| could not.
    assert np.diag(covariance) == pytest.approx(mean, rel=1e-5)
    assert covariance[0, 1] == pytest.approx(0.0, abs=1e-5 * mean.max())


def test_lna_of_reversible_michaelis_menten_converges_to_the_cme():
    # Concentrations fixed while Omega grows: k0, Vf, Vr, Ks, Kp scale with Omega.
    # At the steady state P = Omega, S = 1.5 Omega (flux 1 per unit concentration).
    omegas = np.array([10.0, 20.0, 40.0])
    errors = []
    for omega in omegas:
        network = open_reversible(RMM, {"k0": omega, "Vf": 3 * omega, "Vr": omega,
                                        "Ks": omega, "Kp": omega, "d": 1.0})
        lna = solve_lna(network)
        mean, covariance, _ = cme_moments(network, tol=1e-7)
        assert lna.means[0] == pytest.approx([1.5 * omega, omega], rel=1e-8)
        errors.append(np.abs(np.diag(lna.covariances[0]) - np.diag(covariance)).max()
                      / np.diag(covariance).max())
    slope = np.polyfit(np.log(omegas), np.log(errors), 1)[0]
    assert -1.3 < slope < -0.7, (errors, slope)


def test_jacobian_of_a_max_split_is_the_laws_at_zero_flux():
    # R -> 0 with d R / (J - A), A a boundary species: D = J - A has no known sign, so the
    # channels are max(v, 0) and max(-v, 0). At the steady state R = 0 the flux is 0; the
    # rate equations' Jacobian must still be dv/dR = d / (J - A).
    sbml = make_sbml({"R": 5, "A": 2}, [("decay", {"R": 1}, {}, "d * R / (J - A)")],
                     parameters={"d": 3.0, "J": 8.0})
    sbml = sbml.replace('id="A" compartment="cell" initialAmount="2" '
                        'hasOnlySubstanceUnits="true" boundaryCondition="false"',
                        'id="A" compartment="cell" initialAmount="2" '
                        'hasOnlySubstanceUnits="true" boundaryCondition="true"')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = sbml_cme.read_sbml_string(sbml)
    assert network.reaction_ids == ("decay_forward", "decay_backward")
    result = solve_lna(network)
    assert result.means[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert result.run_info["max_real_eigenvalue"] == pytest.approx(-3.0 / 6.0, rel=1e-9)
