"""Noise summaries and the extrinsic/intrinsic decomposition, against exact laws.

Birth-death with a Gamma-distributed birth rate k ~ Gamma(shape a, scale s) and death
rate delta (THEORY.md section 4): given k the stationary law is Poisson(k / delta), so
the intrinsic variance is E[k] / delta = a s / delta, the extrinsic variance is
Var(k) / delta^2 = a s^2 / delta^2, the marginal is negative binomial and the Fano factor
is F = 1 + s / delta.
"""

import numpy as np
import pytest
import scipy.stats

import sbml_cme
from conftest import make_sbml
from sbml_cme.analyses import simulate_ssa, solve_cme, solve_lna, stationary_cme
from sbml_cme.analyses.noise import (PAIR_COLUMNS, SUMMARY_COLUMNS, extrinsic_noise,
                                     noise_summary)
from sbml_cme.errors import OptionsError, UnsupportedFeatureError

SHAPE, SCALE, DEATH = 4.0, 2.5, 1.0
GAMMA = scipy.stats.gamma(SHAPE, scale=SCALE)
INTRINSIC = SHAPE * SCALE / DEATH           # E[k] / delta = 10
EXTRINSIC = SHAPE * SCALE**2 / DEATH**2     # Var(k) / delta^2 = 25
GAMMA_KURTOSIS = 3 + 6 / SHAPE


@pytest.fixture(scope="module")
def birth_death():
    return sbml_cme.read_sbml_string(make_sbml(
        {"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
        parameters={"k": INTRINSIC, "d": DEATH}))


def _distrib_birth_death(shape=SHAPE, scale=SCALE) -> str:
    """Birth-death whose birth rate k is drawn by an SBML distrib initial assignment."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core"
      xmlns:distrib="http://www.sbml.org/sbml/level3/version1/distrib/version1"
      level="3" version="1" distrib:required="true">
  <model id="gamma_birth_death" substanceUnits="item" extentUnits="item" timeUnits="second">
    <listOfCompartments>
      <compartment id="cell" spatialDimensions="3" size="1" constant="true"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="X" compartment="cell" initialAmount="0" hasOnlySubstanceUnits="true"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="k" value="1" constant="true"/>
      <parameter id="d" value="{DEATH}" constant="true"/>
    </listOfParameters>
    <listOfInitialAssignments>
      <initialAssignment symbol="k">
        <math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply>
            <csymbol encoding="text"
                     definitionURL="http://www.sbml.org/sbml/symbols/distrib/gamma">gamma</csymbol>
            <cn>{shape}</cn> <cn>{scale}</cn>
          </apply>
        </math>
      </initialAssignment>
    </listOfInitialAssignments>
    <listOfReactions>
      <reaction id="birth" reversible="false" fast="false">
        <listOfProducts>
          <speciesReference species="X" stoichiometry="1" constant="true"/>
        </listOfProducts>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML"><ci>k</ci></math></kineticLaw>
      </reaction>
      <reaction id="death" reversible="false" fast="false">
        <listOfReactants>
          <speciesReference species="X" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci>d</ci><ci>X</ci></apply></math></kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>"""


# -- noise_summary --------------------------------------------------------------------------
def test_summary_schema_is_the_same_for_every_method(birth_death):
    results = [stationary_cme(birth_death), solve_lna(birth_death),
               simulate_ssa(birth_death, [0.0, 10.0], n_trajectories=200, seed=1)]
    for result in results:
        summary = noise_summary(result)
        assert list(summary.species.columns) == SUMMARY_COLUMNS
        assert list(summary.pairs.columns) == PAIR_COLUMNS
    methods = {noise_summary(r).species["method"].iloc[0] for r in results}
    assert methods == {"cme", "lna", "ssa"}


def test_poisson_fano_factor_is_one_for_cme_and_lna(birth_death):
    for result in (stationary_cme(birth_death, tol=1e-9), solve_lna(birth_death)):
        row = noise_summary(result).species.iloc[0]
        assert row["mean"] == pytest.approx(10.0, rel=1e-6)
        assert row["fano"] == pytest.approx(1.0, rel=1e-6)
        assert row["cv2"] == pytest.approx(0.1, rel=1e-6)
        assert row["sd"] == pytest.approx(np.sqrt(10.0), rel=1e-6)


def test_ssa_summary_matches_poisson_law_by_z_and_y(birth_death):
    # From X(0) = 0 the law at time t is exactly Poisson(k (1 - exp(-d t)) / d).
    n = 4000
    result = simulate_ssa(birth_death, [0.0, 1.0, 3.0], n_trajectories=n, seed=11)
    species = noise_summary(result).species
    for t in (1.0, 3.0):
        row = species[species.time == t].iloc[0]
        lam = 10.0 * (1 - np.exp(-t))
        assert -3 < np.sqrt(n) * (row["mean"] - lam) / np.sqrt(lam) < 3
        # Poisson kurtosis 3 + 1/lam: Var(s^2) ~ (2 lam^2 + lam) / n.
        assert -3 < (row["variance"] - lam) / np.sqrt((2 * lam**2 + lam) / n) < 3
        assert row["fano"] == pytest.approx(row["variance"] / row["mean"])
    first = species[species.time == 0.0].iloc[0]
    assert first["variance"] == 0 and np.isnan(first["fano"])


def test_ensemble_summary_is_the_sample_moments(birth_death):
    result = simulate_ssa(birth_death, [0.0, 2.0], n_trajectories=300, seed=3)
    values = result.states[:, 1, 0]
    summary = noise_summary(result)
    row = summary.species[summary.species.time == 2.0].iloc[0]
    assert row["mean"] == pytest.approx(values.mean())
    assert row["variance"] == pytest.approx(values.var(ddof=1))
    pair = summary.pairs[summary.pairs.time == 2.0].iloc[0]
    assert pair["covariance"] == pytest.approx(values.var(ddof=1))
    assert pair["correlation"] == pytest.approx(1.0)


def test_isomerisation_covariance_is_multinomial():
    # A <-> B with N = 12 molecules: stationary A ~ Binomial(N, p), p = kb / (kf + kb),
    # so Var(A) = Var(B) = N p q, Cov(A, B) = -N p q and the correlation is -1.
    network = sbml_cme.read_sbml_string(make_sbml(
        {"A": 12, "B": 0}, [("forward", {"A": 1}, {"B": 1}, "kf * A"),
                            ("backward", {"B": 1}, {"A": 1}, "kb * B")],
        parameters={"kf": 2.0, "kb": 1.0}))
    summary = noise_summary(stationary_cme(network, tol=1e-10))
    p = 1.0 / 3.0
    pairs = summary.pairs.set_index(["species_i", "species_j"])
    assert pairs.loc[("A", "A"), "covariance"] == pytest.approx(12 * p * (1 - p), rel=1e-8)
    assert pairs.loc[("A", "B"), "covariance"] == pytest.approx(-12 * p * (1 - p), rel=1e-8)
    assert pairs.loc[("A", "B"), "correlation"] == pytest.approx(-1.0, rel=1e-8)
    assert ("B", "A") not in pairs.index  # each unordered pair once
    row = summary.species.set_index("species").loc["A"]
    assert row["fano"] == pytest.approx(1 - p, rel=1e-8)


def test_summary_refuses_other_objects():
    with pytest.raises(OptionsError, match="EnsembleResult"):
        noise_summary(object())


# -- extrinsic_noise ------------------------------------------------------------------------
def test_cme_decomposition_is_exact_for_the_drawn_parameters(birth_death):
    n = 30
    result = extrinsic_noise(birth_death, {"k": GAMMA}, method="cme", n_samples=n, seed=5,
                             tol=1e-8)
    k = result.samples["k"].to_numpy()
    # Given k the stationary law is Poisson(k / delta): mean = variance = k / delta.
    np.testing.assert_allclose(result.conditional_means[:, 0, 0], k / DEATH, rtol=1e-6)
    np.testing.assert_allclose(result.conditional_variances[:, 0, 0], k / DEATH, rtol=1e-6)
    row = result.frame.iloc[0]
    assert row["intrinsic_variance"] == pytest.approx(np.mean(k) / DEATH, rel=1e-6)
    assert row["extrinsic_variance"] == pytest.approx(np.var(k, ddof=1) / DEATH**2, rel=1e-5)
    assert row["variance"] == pytest.approx(row["intrinsic_variance"] +
                                            row["extrinsic_variance"])
    assert row["fano"] == pytest.approx(row["variance"] / row["mean"])
    assert row["intrinsic_fano"] == pytest.approx(1.0, rel=1e-6)
    assert row["cv2"] == pytest.approx(row["intrinsic_cv2"] + row["extrinsic_cv2"])
    # Monte Carlo error of n draws, from the Gamma law: the intrinsic part is a sample
    # mean of k / delta (Z), the extrinsic part a sample variance (kurtosis 3 + 6 / a).
    z = np.sqrt(n) * (row["intrinsic_variance"] - INTRINSIC) / (GAMMA.std() / DEATH)
    y = np.sqrt(n / (GAMMA_KURTOSIS - 1)) * (row["extrinsic_variance"] / EXTRINSIC - 1)
    assert -3 < z < 3 and -5 < y < 5


def test_lna_decomposition_gives_the_gamma_fano_factor(birth_death):
    # The LNA is exact for this linear network (Poisson conditional laws).
    n = 60
    result = extrinsic_noise(birth_death, {"k": GAMMA}, method="lna", n_samples=n, seed=8)
    row = result.frame.iloc[0]
    k = result.samples["k"].to_numpy()
    assert row["intrinsic_variance"] == pytest.approx(k.mean() / DEATH, rel=1e-6)
    assert row["extrinsic_variance"] == pytest.approx(k.var(ddof=1) / DEATH**2, rel=1e-5)
    z = np.sqrt(n) * (row["mean"] - INTRINSIC) / (GAMMA.std() / DEATH)
    y = np.sqrt(n / (GAMMA_KURTOSIS - 1)) * (row["extrinsic_variance"] / EXTRINSIC - 1)
    assert -3 < z < 3 and -5 < y < 5


def _ssa_moments_of_estimators(m):
    """Sampling variance of the SSA estimators with m trajectories per draw, for lambda =
    k / delta ~ Gamma(a, s / delta) and X | lambda ~ Poisson(lambda).

    Intrinsic: s_i^2 (sample variance of m Poisson draws) has Var(s^2 | lambda) =
    lambda / m + 2 lambda^2 / (m - 1), so Var(s_i^2) = E[that] + Var(lambda).
    Extrinsic: the sample mean xbar_i = lambda + e (Var(e | lambda) = lambda / m, central
    third and fourth moments lambda / m^2 and lambda / m^3 + 3 lambda^2 / m^2); the
    sample variance of xbar has Var ~ (mu4 - sigma^4) / n.
    """
    scale = SCALE / DEATH
    lam = scipy.stats.gamma(SHAPE, scale=scale)
    mean, var = lam.mean(), lam.var()
    second = lam.moment(2)
    var_s2 = mean / m + 2 * second / (m - 1) + var
    mu4_lambda = lam.expect(lambda x: (x - mean) ** 4)
    sigma2 = var + mean / m
    mu4 = mu4_lambda + 6 * lam.expect(lambda x: (x - mean) ** 2 * x) / m + \
        4 * lam.expect(lambda x: (x - mean) * x) / m**2 + mean / m**3 + 3 * second / m**2
    return var_s2, sigma2, mu4


def test_ssa_decomposition_by_z_statistics(birth_death):
    n, m = 400, 20
    result = extrinsic_noise(birth_death, {"k": GAMMA}, method="ssa", n_samples=n, seed=21,
                             times=[0.0, 20.0], n_trajectories=m)
    row = result.frame[result.frame.time == 20.0].iloc[0]
    var_s2, sigma2, mu4 = _ssa_moments_of_estimators(m)
    z_intrinsic = (row["intrinsic_variance"] - INTRINSIC) / np.sqrt(var_s2 / n)
    # extrinsic = var(xbar) - intrinsic / m; var(xbar) estimates sigma2.
    spread = row["extrinsic_variance"] + row["intrinsic_variance"] / m
    z_spread = (spread - sigma2) / np.sqrt((mu4 - sigma2**2) / n)
    z_mean = np.sqrt(n) * (row["mean"] - INTRINSIC) / np.sqrt(sigma2)
    assert -3 < z_intrinsic < 3 and -3 < z_mean < 3 and -5 < z_spread < 5
    fano = 1 + SCALE / DEATH
    assert row["fano"] == pytest.approx(row["variance"] / row["mean"])
    assert 0.6 * fano < row["fano"] < 1.4 * fano  # coarse sanity; the Z above are sharp


def test_model_states_its_own_parameter_distribution():
    network = sbml_cme.read_sbml_string(_distrib_birth_death())
    assert [pid for pid, _ in network.parameter_distributions] == ["k"]
    assert network.parameters[0].value == pytest.approx(SHAPE * SCALE)  # the law's mean
    own = extrinsic_noise(network, method="cme", n_samples=4, seed=2)
    given = extrinsic_noise(network, {"k": GAMMA}, method="cme", n_samples=4, seed=2)
    np.testing.assert_array_equal(own.samples["k"], given.samples["k"])
    np.testing.assert_allclose(own.frame["variance"], given.frame["variance"])
    # Other analyses must not treat the drawn k as a constant.
    with pytest.raises(UnsupportedFeatureError, match="'k'"):
        solve_cme(network, [0.0, 1.0])
    with pytest.raises(UnsupportedFeatureError, match="'k'"):
        solve_lna(network)


def test_ssa_draws_the_parameter_per_trajectory():
    # Each trajectory draws its own k: at t = 20 (20 relaxation times) X is negative
    # binomial with mean a s / delta = 10 and variance 10 + 25 = 35.
    network = sbml_cme.read_sbml_string(_distrib_birth_death())
    n = 4000
    result = simulate_ssa(network, [0.0, 20.0], n_trajectories=n, seed=7)
    x = result.states[:, 1, 0]
    total = INTRINSIC + EXTRINSIC
    law = scipy.stats.nbinom(SHAPE, 1 / (1 + SCALE / DEATH))
    assert law.var() == pytest.approx(total)
    assert -3 < np.sqrt(n) * (x.mean() - law.mean()) / law.std() < 3
    kurtosis = law.stats(moments="k") + 3
    assert -5 < np.sqrt(n / (kurtosis - 1)) * (x.var(ddof=1) / total - 1) < 5
    same = simulate_ssa(network, [0.0, 20.0], n_trajectories=n, seed=7, n_jobs=1)
    np.testing.assert_array_equal(result.states, same.states)


def test_options_are_checked(birth_death):
    with pytest.raises(OptionsError, match="method"):
        extrinsic_noise(birth_death, {"k": GAMMA}, method="magic")
    with pytest.raises(OptionsError, match="unknown parameter"):
        extrinsic_noise(birth_death, {"nope": GAMMA})
    with pytest.raises(OptionsError, match="times"):
        extrinsic_noise(birth_death, {"k": GAMMA}, method="ssa")
    with pytest.raises(OptionsError, match="no parameter distributions"):
        extrinsic_noise(birth_death)
    with pytest.raises(OptionsError, match="frozen scipy.stats distribution"):
        extrinsic_noise(birth_death, {"k": 3.0})


def test_same_numbers_with_dask(birth_death):
    distributed = pytest.importorskip("distributed")
    local = extrinsic_noise(birth_death, {"k": GAMMA}, method="ssa", n_samples=70, seed=4,
                            times=[0.0, 5.0], n_trajectories=5)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = extrinsic_noise(birth_death, {"k": GAMMA}, method="ssa", n_samples=70,
                                 seed=4, times=[0.0, 5.0], n_trajectories=5, client=client)
    np.testing.assert_array_equal(local.conditional_means, remote.conditional_means)
    np.testing.assert_array_equal(local.conditional_variances, remote.conditional_variances)
    assert remote.run_info["dask"] and not local.run_info["dask"]
