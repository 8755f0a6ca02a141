"""Unit-conversion battery: hand-made SBML models with answers derived by hand.

The SBML stochastic test suite (DSMTS) counts everything in items in a unit volume. These
models exercise what it never does: concentration units, mole and nanomole substance,
unit definitions with multiplier/scale/exponent, non-unit (femtolitre) volumes and
bimolecular reactions in small volumes. Each model's derivation is written in its XML
header comment and in tests/data/battery/README.md.

Every model is checked three ways:

(a) exactly (rel 1e-12): initial counts, stochastic constants, volume factors and
    compiled propensities at a few count vectors against the hand-derived numbers;
(b) statistically: a fixed-seed SSA ensemble against the exact law of the CME
    (Poisson / Binomial / their convolution in closed form, or the matrix exponential
    of a small pure-birth chain), by standardized statistics: Z for the mean, Z for the
    sample variance with its exact standard error (from the law's fourth central
    moment), |Z| < 3, and a chi-square goodness-of-fit at p > 0.001;
(c) the deterministic limit against tellurium/libroadrunner on the original file
    (``sbml_cme.crosscheck.crosscheck``, with atol=0 so tiny molar values are compared
    relatively).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

import sbml_cme
from sbml_cme.analyses import simulate_ssa
from sbml_cme.crosscheck import crosscheck
from sbml_cme.kinetics import compile_network
from conftest import pooled_chi_square

BATTERY = Path(__file__).resolve().parents[1] / "data" / "battery"
N_A = 6.02214076e23  # molecules per mole (exact, SI 2019)
EXACT = 1e-12        # relative tolerance of hand-derived conversion numbers
Z_BOUND = 3.0        # |Z| bound of standardized statistics (DSMTS convention)
CHI2_P = 1e-3        # goodness-of-fit rejects below this p-value

# -- exact laws (plain functions) -------------------------------------------------------
def poisson_law(mean: float, support: np.ndarray) -> np.ndarray:
    """Poisson(mean) probabilities on ``support``."""
    return scipy.stats.poisson.pmf(support, mean)


def binomial_plus_poisson_law(n0: int, survive: float, immigrants: float,
                              support: np.ndarray) -> np.ndarray:
    """Birth-death from a fixed n0: Binomial(n0, survive) + Poisson(immigrants)."""
    survivors = scipy.stats.binom.pmf(np.arange(n0 + 1), n0, survive)
    newcomers = scipy.stats.poisson.pmf(np.arange(support.max() + 1), immigrants)
    return np.convolve(survivors, newcomers)[:support.max() + 1][support]


def birth_death_moments(n0: int, birth: float, death: float, t: float):
    """Mean, variance and 4th central moment of birth-death at t from n0 (cumulants add)."""
    survive = math.exp(-death * t)
    immigrants = birth / death * (1.0 - survive)
    binomial_k2 = n0 * survive * (1 - survive)
    binomial_k4 = binomial_k2 * (1 - 6 * survive * (1 - survive))
    mean = n0 * survive + immigrants
    variance = binomial_k2 + immigrants
    mu4 = binomial_k4 + immigrants + 3 * variance**2
    return mean, variance, mu4


def law_moments(probabilities: np.ndarray, support: np.ndarray):
    """Mean, variance and 4th central moment of a law given on ``support``."""
    mean = float(np.sum(probabilities * support))
    centred = support - mean
    return (mean, float(np.sum(probabilities * centred**2)),
            float(np.sum(probabilities * centred**4)))


def pure_chain_law(rates: np.ndarray, t: float) -> np.ndarray:
    """Law at time t of a chain 0 -> 1 -> ... -> M (state m leaves at rates[m]), from 0.

    rates has shape (M + 1,) with rates[M] == 0; the CME is p' = p Q with a bidiagonal
    generator, solved exactly by the matrix exponential.
    """
    size = len(rates)
    generator = np.zeros((size, size))
    generator[np.arange(size), np.arange(size)] = -rates
    generator[np.arange(size - 1), np.arange(1, size)] = rates[:-1]
    start = np.zeros(size)
    start[0] = 1.0
    return start @ scipy.linalg.expm(generator * t)


# -- standardized statistics ---------------------------------------------------------------
def z_mean(samples: np.ndarray, mean: float, variance: float) -> float:
    """Z = (sample mean - mean) / sqrt(variance / N)."""
    return (samples.mean() - mean) / math.sqrt(variance / len(samples))


def z_variance(samples: np.ndarray, variance: float, mu4: float) -> float:
    """Z of the unbiased sample variance, with its exact standard error
    Var(s^2) = (mu4 - variance^2 (N - 3) / (N - 1)) / N."""
    n = len(samples)
    spread = (mu4 - variance**2 * (n - 3) / (n - 1)) / n
    return (samples.var(ddof=1) - variance) / math.sqrt(spread)


def assert_matches_moments(samples, mean, variance, mu4, label=""):
    samples = np.asarray(samples, dtype=float)
    zm = z_mean(samples, mean, variance)
    zv = z_variance(samples, variance, mu4)
    assert abs(zm) < Z_BOUND, f"{label}: mean {samples.mean():.4f} vs {mean:.4f}, Z = {zm:.2f}"
    assert abs(zv) < Z_BOUND, (f"{label}: variance {samples.var(ddof=1):.4f} vs {variance:.4f}, "
                               f"Z = {zv:.2f}")


def assert_matches_law(samples, probabilities, support, label=""):
    _, _, p = pooled_chi_square(np.asarray(samples), support, probabilities)
    assert p > CHI2_P, f"{label}: chi-square goodness-of-fit p = {p:.2e}"


# -- helpers ---------------------------------------------------------------------------------
def read(name: str, **options) -> sbml_cme.Network:
    return sbml_cme.read_sbml(BATTERY / name, **options)


def table_row(network, reaction: str):
    table = network.conversion_table().set_index("reaction")
    return table.loc[reaction]


def assert_channel(network, reaction, *, stochastic_constant, volume_factor=None,
                   macroscopic_constant=None, form="mass action", orders=None):
    row = table_row(network, reaction)
    assert row["form"] == form
    assert row["stochastic_constant"] == pytest.approx(stochastic_constant, rel=EXACT)
    if volume_factor is not None:
        assert row["volume_factor"] == pytest.approx(volume_factor, rel=EXACT)
    if macroscopic_constant is not None:
        assert row["macroscopic_constant"] == pytest.approx(macroscopic_constant, rel=EXACT)
        # the table's own bookkeeping: c = K * volume factor
        assert row["stochastic_constant"] == pytest.approx(
            row["macroscopic_constant"] * row["volume_factor"], rel=EXACT)
    if orders is not None:
        assert row["orders"] == orders


def assert_counts(network, **expected):
    counts = {s.id: s.initial_count for s in network.species}
    for species_id, value in expected.items():
        assert counts[species_id] == pytest.approx(value, rel=EXACT, abs=1e-12)


def assert_propensities(network, cases):
    """cases: list of ({species: count}, [expected propensity per channel])."""
    compiled = compile_network(network)
    for counts, expected in cases:
        vector = np.array([counts.get(s, 0) for s in network.species_ids], dtype=float)
        np.testing.assert_allclose(compiled.propensities(vector), expected, rtol=EXACT,
                                   atol=0, err_msg=f"propensities at {counts}")


def assert_agrees_with_tellurium(name, times, **options):
    table = crosscheck(BATTERY / name, times, atol=0.0, **options)
    assert len(table) > 0
    assert (table.verdict == "agree").all(), table.to_string()


def column(result, species_id):
    return result.states[:, :, result.network.species_ids.index(species_id)]


# -- 1. birth-death in molar concentrations, 1 fL -------------------------------------------
OMEGA_1FL = N_A * 1e-15          # molecules per molar in 1 fL
K_BD = 1.6605390671738467e-08    # M/s, chosen so that k * Omega = 10 /s


def test_birth_death_mole_fL_conversion():
    network = read("birth_death_mole_fL.xml")
    assert_counts(network, X=1.6605390671738467e-07 * OMEGA_1FL)
    assert network.species[0].initial_count == pytest.approx(100, rel=EXACT)
    assert network.species[0].molecules_per_unit == N_A
    # birth: law k*cell = K (mol/s); a = N_A K = k Omega
    assert_channel(network, "birth", stochastic_constant=K_BD * OMEGA_1FL,
                   macroscopic_constant=K_BD * 1e-15, volume_factor=N_A)
    assert K_BD * OMEGA_1FL == pytest.approx(10.0, rel=EXACT)
    # death: law d*X*cell = K [X] with K = d V; a = N_A d V n/(N_A V) = d n
    assert_channel(network, "death", stochastic_constant=0.1,
                   macroscopic_constant=0.1 * 1e-15, volume_factor=1e15, orders="X:1")
    assert_propensities(network, [({"X": 0}, [10.0, 0.0]), ({"X": 1}, [10.0, 0.1]),
                                  ({"X": 137}, [10.0, 13.7])])


def test_birth_death_mole_fL_stationary_poisson():
    network = read("birth_death_mole_fL.xml")
    times = [0.0, 5.0, 60.0]
    result = simulate_ssa(network, times, n_trajectories=4000, seed=20240601)
    x = column(result, "X")
    assert np.all(x[:, 0] == 100)
    for index, t in enumerate(times[1:], start=1):
        mean, variance, mu4 = birth_death_moments(100, 10.0, 0.1, t)
        assert_matches_moments(x[:, index], mean, variance, mu4, f"X at t={t}")
    support = np.arange(0, 200)
    assert_matches_law(x[:, 2], binomial_plus_poisson_law(100, math.exp(-6.0), 100 * (
        1 - math.exp(-6.0)), support), support, "X at t=60")
    # model units: counts / (N_A V), in molar
    stats = result.stats(units="model")
    np.testing.assert_allclose(stats["X-mean"], x.mean(axis=0) / OMEGA_1FL, rtol=EXACT)


def test_birth_death_mole_fL_deterministic():
    assert_agrees_with_tellurium("birth_death_mole_fL.xml", np.linspace(0, 60, 13))


# -- 2. nanomole substance, femtolitre volume unit; volumes= override -------------------------
F_NANOMOLE = N_A * 1e-9


def test_birth_death_nanomole_fL_conversion():
    network = read("birth_death_nanomole_fL.xml")
    omega = F_NANOMOLE * 1.5   # cell = 1.5 fL, concentration unit nmol/fL
    assert network.species[0].molecules_per_unit == pytest.approx(F_NANOMOLE, rel=EXACT)
    assert network.compartment_map["cell"].litres_per_unit == pytest.approx(1e-15, rel=EXACT)
    assert_counts(network, X=0.0)
    k = 2.214052089565129e-14
    assert_channel(network, "birth", stochastic_constant=k * omega,
                   macroscopic_constant=k * 1.5, volume_factor=F_NANOMOLE)
    assert k * omega == pytest.approx(20.0, rel=EXACT)
    assert_channel(network, "death", stochastic_constant=0.2, volume_factor=1 / 1.5)
    assert_propensities(network, [({"X": 0}, [20.0, 0.0]), ({"X": 55}, [20.0, 11.0])])


def test_birth_death_nanomole_fL_transient_poisson():
    network = read("birth_death_nanomole_fL.xml")
    times = [0.0, 5.0, 40.0]
    result = simulate_ssa(network, times, n_trajectories=4000, seed=7)
    x = column(result, "X")
    assert np.all(x[:, 0] == 0)
    support = np.arange(0, 200)
    for index, t in enumerate(times[1:], start=1):
        mean = 100 * (1 - math.exp(-0.2 * t))
        assert_matches_moments(x[:, index], mean, mean, mean + 3 * mean**2, f"X at t={t}")
        assert_matches_law(x[:, index], poisson_law(mean, support), support, f"X at t={t}")


def test_volume_override_changes_omega():
    # 3e-15 L in a femtolitre-unit compartment is size 3: Omega and the birth rate double
    network = read("birth_death_nanomole_fL.xml", volumes={"cell": 3e-15})
    assert network.compartment_map["cell"].size == pytest.approx(3.0, rel=EXACT)
    assert_channel(network, "birth", stochastic_constant=40.0)
    assert_channel(network, "death", stochastic_constant=0.2)
    result = simulate_ssa(network, [0.0, 30.0], n_trajectories=2000, seed=11)
    mean = 200 * (1 - math.exp(-6.0))
    assert_matches_moments(column(result, "X")[:, 1], mean, mean, mean + 3 * mean**2,
                           "X at t=30 with V = 3 fL")

    # molar model, 1 fL -> 2 fL: initial concentration fixed, so the initial count doubles too
    doubled = read("birth_death_mole_fL.xml", volumes={"cell": 2e-15})
    assert_counts(doubled, X=200.0)
    assert_channel(doubled, "birth", stochastic_constant=20.0)
    assert_channel(doubled, "death", stochastic_constant=0.1)
    result = simulate_ssa(doubled, [0.0, 40.0], n_trajectories=2000, seed=12)
    mean, variance, mu4 = birth_death_moments(200, 20.0, 0.1, 40.0)
    assert_matches_moments(column(result, "X")[:, 1], mean, variance, mu4,
                           "X at t=40 with V = 2 fL")


def test_birth_death_nanomole_fL_deterministic():
    times = np.linspace(0, 40, 9)
    assert_agrees_with_tellurium("birth_death_nanomole_fL.xml", times)


# -- 3. units from multiplier / scale / exponent ----------------------------------------------
def test_multiplier_exponent_conversion():
    network = read("birth_death_multiplier_exponent.xml")
    # mole x multiplier 1e-3 x 10^-6 = 1 nmol; metre^3 at scale -6 = 1e-18 m^3 = 1e-15 L
    assert network.species[0].molecules_per_unit == pytest.approx(F_NANOMOLE, rel=EXACT)
    assert network.compartment_map["cell"].litres_per_unit == pytest.approx(1e-15, rel=EXACT)
    assert_counts(network, X=8.302695335869233e-14 * F_NANOMOLE)
    assert network.species[0].initial_count == pytest.approx(50.0, rel=EXACT)
    k = 4.1513476679346165e-15
    assert_channel(network, "birth", stochastic_constant=k * F_NANOMOLE * 2.0,
                   volume_factor=F_NANOMOLE)
    assert k * F_NANOMOLE * 2.0 == pytest.approx(5.0, rel=EXACT)
    assert_channel(network, "death", stochastic_constant=0.05, volume_factor=0.5)
    assert_propensities(network, [({"X": 50}, [5.0, 2.5]), ({"X": 3}, [5.0, 0.15])])


def test_multiplier_exponent_ssa():
    network = read("birth_death_multiplier_exponent.xml")
    result = simulate_ssa(network, [0.0, 10.0, 80.0], n_trajectories=4000, seed=3)
    x = column(result, "X")
    assert np.all(x[:, 0] == 50)
    for index, t in ((1, 10.0), (2, 80.0)):
        mean, variance, mu4 = birth_death_moments(50, 5.0, 0.05, t)
        assert_matches_moments(x[:, index], mean, variance, mu4, f"X at t={t}")


def test_multiplier_exponent_deterministic():
    assert_agrees_with_tellurium("birth_death_multiplier_exponent.xml", np.linspace(0, 80, 9))


# -- 4. dimerisation 2A -> B in 1 fL ----------------------------------------------------------
K_DIMER = 6022140.76   # /(M s) = 0.01 Omega


def test_dimerisation_conversion():
    network = read("dimerisation_mole_fL.xml")
    assert_counts(network, A=20.0, B=0.0)
    # a = N_A k V (n / Omega)^2 -> (k / Omega) (n)_2; Gillespie: c = 2k/Omega on n(n-1)/2
    assert_channel(network, "dimerisation", stochastic_constant=K_DIMER / OMEGA_1FL,
                   macroscopic_constant=K_DIMER * 1e-15, volume_factor=1 / (N_A * 1e-30),
                   orders="A:2")
    assert K_DIMER / OMEGA_1FL == pytest.approx(0.01, rel=EXACT)
    gillespie_c = 2 * K_DIMER / OMEGA_1FL
    assert_propensities(network, [
        ({"A": 0}, [0.0]), ({"A": 1}, [0.0]), ({"A": 2}, [gillespie_c * 1]),
        ({"A": 20}, [gillespie_c * 20 * 19 / 2]), ({"A": 7, "B": 3}, [0.01 * 42])])
    # without exact combinatorics the propensity is the deterministic limit (k/Omega) n^2
    powers = read("dimerisation_mole_fL.xml", falling_factorials=False)
    assert_propensities(powers, [({"A": 1}, [0.01]), ({"A": 20}, [0.01 * 400])])


def test_dimerisation_waiting_time_from_two_molecules():
    # From A = 2 the first (only) firing waits Exp(2k/Omega = 0.02 /s); B(t) = 1{T <= t}.
    network = read("dimerisation_mole_fL.xml").with_initial_counts(A=2)
    rate = 2 * K_DIMER / OMEGA_1FL
    times = np.array([0.0, 10.0, 25.0, 50.0, 75.0, 100.0, 150.0, 200.0])
    result = simulate_ssa(network, times, n_trajectories=4000, seed=42)
    b = column(result, "B")
    assert set(np.unique(b)) <= {0.0, 1.0}
    # Z for P(T <= 50) = 1 - e^{-1}
    fired = b[:, 3]
    p = 1 - math.exp(-rate * 50.0)
    assert abs(z_mean(fired, p, p * (1 - p))) < Z_BOUND
    # chi-square on the interval containing T: P(t_{i-1} < T <= t_i) = e^{-r t_{i-1}} - e^{-r t_i}
    bucket = np.where(b[:, -1] == 1, np.argmax(b == 1, axis=1), len(times))
    survival = np.exp(-rate * times)
    cells = np.append(-np.diff(survival), survival[-1])    # buckets 1..len-1, then T > 200
    assert_matches_law(bucket, cells, np.arange(1, len(times) + 1), "first firing time")


def test_dimerisation_pure_death_chain():
    network = read("dimerisation_mole_fL.xml")
    result = simulate_ssa(network, [0.0, 2.0, 10.0], n_trajectories=3000, seed=5)
    a = column(result, "A")
    b = column(result, "B")
    assert np.all(a + 2 * b == 20)
    # m = number of firings; state m has n = 20 - 2m molecules, leaving at 0.01 n (n-1)
    n = 20 - 2 * np.arange(11)
    rates = 0.01 * n * (n - 1)
    for index, t in ((1, 2.0), (2, 10.0)):
        law = pure_chain_law(rates, t)
        support = np.arange(11)
        assert_matches_moments(b[:, index], *law_moments(law, support), f"B at t={t}")
        assert_matches_law(b[:, index], law, support, f"B at t={t}")


def test_dimerisation_deterministic():
    assert_agrees_with_tellurium("dimerisation_mole_fL.xml", np.linspace(0, 20, 11))


# -- 5. A + B -> C in 2 fL --------------------------------------------------------------------
def test_heterodimer_conversion():
    network = read("heterodimer_2fL.xml")
    omega = N_A * 2e-15
    assert_counts(network, A=40.0, B=25.0, C=0.0)
    assert_channel(network, "binding", stochastic_constant=6022140.76 / omega,
                   macroscopic_constant=6022140.76 * 2e-15, volume_factor=1 / (N_A * 4e-30),
                   orders="A:1, B:1")
    assert 6022140.76 / omega == pytest.approx(0.005, rel=EXACT)
    assert_propensities(network, [({"A": 40, "B": 25}, [5.0]), ({"A": 1, "B": 1}, [0.005]),
                                  ({"A": 0, "B": 9}, [0.0]), ({"A": 3, "B": 7, "C": 4},
                                                             [0.105])])


def test_heterodimer_ssa():
    network = read("heterodimer_2fL.xml")
    result = simulate_ssa(network, [0.0, 0.1, 0.5], n_trajectories=3000, seed=9)
    c = column(result, "C")
    m = np.arange(26)
    rates = 0.005 * (40 - m) * (25 - m)
    for index, t in ((1, 0.1), (2, 0.5)):
        law = pure_chain_law(rates, t)
        assert_matches_moments(c[:, index], *law_moments(law, m), f"C at t={t}")
        assert_matches_law(c[:, index], law, m, f"C at t={t}")


def test_heterodimer_deterministic():
    assert_agrees_with_tellurium("heterodimer_2fL.xml", np.linspace(0, 2, 11))


# -- 6. hasOnlySubstanceUnits in a non-unit compartment -----------------------------------------
def test_hosu_amounts_ignore_volume():
    network = read("hosu_amounts_3fL.xml")
    assert_counts(network, A=50.0, B=30.0, C=0.0)
    assert_channel(network, "binding", stochastic_constant=1.204428152e21 / N_A,
                   volume_factor=1 / N_A, orders="A:1, B:1")
    assert 1.204428152e21 / N_A == pytest.approx(0.002, rel=EXACT)
    assert_channel(network, "decay", stochastic_constant=0.5, volume_factor=1.0)
    cases = [({"A": 50, "B": 30, "C": 0}, [3.0, 0.0]), ({"A": 2, "B": 5, "C": 7}, [0.02, 3.5])]
    assert_propensities(network, cases)
    # amounts: the compartment size enters nowhere
    for litres in (1e-15, 1.0):
        other = read("hosu_amounts_3fL.xml", volumes={"cell": litres})
        assert_counts(other, A=50.0, B=30.0, C=0.0)
        assert_propensities(other, cases)


def test_hosu_amounts_ssa():
    network = read("hosu_amounts_3fL.xml")
    result = simulate_ssa(network, [0.0, 0.2, 1.0], n_trajectories=3000, seed=13)
    a = column(result, "A")
    b = column(result, "B")
    assert np.all(a - b == 20)
    m = np.arange(31)
    rates = 0.002 * (50 - m) * (30 - m)
    for index, t in ((1, 0.2), (2, 1.0)):
        law = pure_chain_law(rates, t)
        assert_matches_moments(50 - a[:, index], *law_moments(law, m), f"50 - A at t={t}")
        assert_matches_law(50 - a[:, index], law, m, f"50 - A at t={t}")


def test_hosu_amounts_deterministic():
    assert_agrees_with_tellurium("hosu_amounts_3fL.xml", np.linspace(0, 5, 11))


# -- 7. initialConcentration vs initialAmount ---------------------------------------------------
def test_initial_concentration_equals_initial_amount():
    by_concentration = read("init_concentration_0p5fL.xml")
    by_amount = read("init_amount_0p5fL.xml")
    for network in (by_concentration, by_amount):
        assert_counts(network, A=60.0, B=0.0)
        assert_channel(network, "conversion", stochastic_constant=0.3,
                       macroscopic_constant=0.3 * 5e-16, volume_factor=2e15)
        assert_propensities(network, [({"A": 60}, [18.0]), ({"A": 1, "B": 59}, [0.3])])
    assert by_concentration.initial_counts == pytest.approx(by_amount.initial_counts, rel=EXACT)
    columns = ["stochastic_constant", "volume_factor", "propensity"]
    assert by_concentration.conversion_table()[columns].equals(
        by_amount.conversion_table()[columns])


@pytest.mark.parametrize("name", ["init_concentration_0p5fL.xml", "init_amount_0p5fL.xml"])
def test_initial_value_forms_ssa_binomial(name):
    network = read(name)
    result = simulate_ssa(network, [0.0, 2.0], n_trajectories=2000, seed=17)
    a = column(result, "A")[:, 1]
    assert np.all(column(result, "A")[:, 0] == 60)
    q = math.exp(-0.3 * 2.0)
    variance = 60 * q * (1 - q)
    mu4 = variance * (1 - 6 * q * (1 - q)) + 3 * variance**2
    assert_matches_moments(a, 60 * q, variance, mu4, "A at t=2")
    support = np.arange(61)
    assert_matches_law(a, scipy.stats.binom.pmf(support, 60, q), support, "A at t=2")


@pytest.mark.parametrize("name", ["init_concentration_0p5fL.xml", "init_amount_0p5fL.xml"])
def test_initial_value_forms_deterministic(name):
    assert_agrees_with_tellurium(name, np.linspace(0, 10, 11))


# -- 8. substance_unit="item" on a unit-less L3 model --------------------------------------------
def test_item_override_conversion():
    network = read("item_override_l3.xml", substance_unit="item")
    assert_counts(network, X=0.0, Y=10.0, Z=0.0)
    assert all(s.molecules_per_unit == 1.0 for s in network.species)
    assert_channel(network, "birth", stochastic_constant=8.0, volume_factor=1.0)
    assert_channel(network, "death", stochastic_constant=0.1, volume_factor=1.0)
    assert table_row(network, "pairing")["form"] == "mass action (propensity as written)"
    assert_propensities(network, [({"X": 0, "Y": 10}, [8.0, 0.0, 0.04 * 10 * 9 / 2]),
                                  ({"X": 12, "Y": 1}, [8.0, 1.2, 0.0]),
                                  ({"X": 3, "Y": 2}, [8.0, 0.3, 0.04])])


def test_item_model_read_as_mole_splits_the_signed_law():
    # undeclared L3 substance defaults to mole: c*Y*(Y-1)/2 becomes N_A c y (y - 1)/2 with
    # y = n/N_A < 1, negative for 1 <= n < N_A: split into two non-negative channels whose
    # difference is that law (the mole model's own ODE); read as item it is one channel.
    network = read("item_override_l3.xml")
    table = network.conversion_table().set_index("reaction")
    assert table.loc["pairing_forward", "signed_terms"].endswith("backward 0.5*Y*c; "
                                                                 "denominator 1")
    assert list(table.loc[["pairing_forward", "pairing_backward"], "form"]) == [
        "mass action", "general (backward part of a signed law)"]
    assert "pairing" in read("item_override_l3.xml", substance_unit="item").reaction_ids


def test_item_override_ssa():
    network = read("item_override_l3.xml", substance_unit="item")
    result = simulate_ssa(network, [0.0, 10.0, 50.0], n_trajectories=3000, seed=23)
    x = column(result, "X")
    support = np.arange(0, 160)
    for index, t in ((1, 10.0), (2, 50.0)):
        mean = 80 * (1 - math.exp(-0.1 * t))
        assert_matches_moments(x[:, index], mean, mean, mean + 3 * mean**2, f"X at t={t}")
        assert_matches_law(x[:, index], poisson_law(mean, support), support, f"X at t={t}")
    # Y: pure-death chain 10 -> 8 -> ... -> 0 at 0.02 n (n - 1)
    y = column(result, "Y")[:, 1]
    n = 10 - 2 * np.arange(6)
    law = pure_chain_law(0.02 * n * (n - 1), 10.0)
    fired = (10 - y) / 2
    assert_matches_moments(fired, *law_moments(law, np.arange(6)), "pairings at t=10")


def test_item_override_deterministic():
    assert_agrees_with_tellurium("item_override_l3.xml", np.linspace(0, 50, 11),
                                 substance_unit="item")


# -- 9. reversible A <-> B as one net law --------------------------------------------------------
def test_reversible_split_into_two_channels():
    network = read("reversible_closed_fL.xml")
    assert_counts(network, A=100.0, B=0.0)
    assert network.reaction_ids == ("isomerisation_forward", "isomerisation_backward")
    assert_channel(network, "isomerisation_forward", stochastic_constant=0.3,
                   macroscopic_constant=0.3e-15, volume_factor=1e15, orders="A:1")
    assert_channel(network, "isomerisation_backward", stochastic_constant=0.2,
                   macroscopic_constant=0.2e-15, volume_factor=1e15, orders="B:1")
    forward, backward = network.reactions
    assert forward.net_change() == {"A": -1, "B": 1}
    assert backward.net_change() == {"A": 1, "B": -1}
    assert_propensities(network, [({"A": 100, "B": 0}, [30.0, 0.0]),
                                  ({"A": 40, "B": 60}, [12.0, 12.0]),
                                  ({"A": 0, "B": 100}, [0.0, 20.0])])


def test_reversible_binomial_law():
    network = read("reversible_closed_fL.xml")
    times = [0.0, 1.0, 30.0]
    result = simulate_ssa(network, times, n_trajectories=4000, seed=31)
    a = column(result, "A")
    b = column(result, "B")
    assert np.all(a + b == 100)
    support = np.arange(101)
    for index, t in ((1, 1.0), (2, 30.0)):
        q = 0.4 + 0.6 * math.exp(-0.5 * t)    # P(a molecule starting as A is A at t)
        variance = 100 * q * (1 - q)
        mu4 = variance * (1 - 6 * q * (1 - q)) + 3 * variance**2
        assert_matches_moments(a[:, index], 100 * q, variance, mu4, f"A at t={t}")
        assert_matches_law(a[:, index], scipy.stats.binom.pmf(support, 100, q), support,
                           f"A at t={t}")
    # perfect anticorrelation: Cov(nA, nB) = -Var(nA) (exactly, sample by sample)
    covariance = np.cov(a[:, 2], b[:, 2])
    assert covariance[0, 1] == pytest.approx(-covariance[0, 0], rel=1e-12)


def test_reversible_deterministic():
    assert_agrees_with_tellurium("reversible_closed_fL.xml", np.linspace(0, 20, 11))


# -- deterministic limit against closed-form rate equations (no tellurium) ---------------------
def _heterodimer_formed(a0, b0, k, t):
    """dC/dt = k (a0 - C)(b0 - C), C(0) = 0, a0 != b0 (counts)."""
    decay = np.exp(-(a0 - b0) * k * t)
    return a0 * b0 * (1 - decay) / (a0 - b0 * decay)


CLOSED_FORMS = [
    pytest.param("birth_death_mole_fL.xml", {}, "X", lambda t: 100 + 0 * t, 60, id="mole_fL"),
    pytest.param("birth_death_nanomole_fL.xml", {}, "X",
                 lambda t: 100 * (1 - np.exp(-0.2 * t)), 40, id="nanomole_fL"),
    pytest.param("birth_death_multiplier_exponent.xml", {}, "X",
                 lambda t: 100 - 50 * np.exp(-0.05 * t), 80, id="multiplier_exponent"),
    pytest.param("dimerisation_mole_fL.xml", {}, "A",
                 lambda t: 20 / (1 + 2 * 0.01 * 20 * t), 20, id="dimerisation"),
    pytest.param("heterodimer_2fL.xml", {}, "C",
                 lambda t: _heterodimer_formed(40, 25, 0.005, t), 2, id="heterodimer"),
    pytest.param("hosu_amounts_3fL.xml", {}, "A",
                 lambda t: 50 - _heterodimer_formed(50, 30, 0.002, t), 5, id="hosu"),
    pytest.param("init_amount_0p5fL.xml", {}, "A", lambda t: 60 * np.exp(-0.3 * t), 10,
                 id="init_amount"),
    pytest.param("item_override_l3.xml", {"substance_unit": "item"}, "X",
                 lambda t: 80 * (1 - np.exp(-0.1 * t)), 50, id="item"),
    pytest.param("reversible_closed_fL.xml", {}, "A",
                 lambda t: 100 * (0.4 + 0.6 * np.exp(-0.5 * t)), 20, id="reversible"),
]


@pytest.mark.parametrize("name, options, species_id, exact, t_end", CLOSED_FORMS)
def test_deterministic_limit_closed_form(name, options, species_id, exact, t_end):
    """The rate equations in counts (deterministic limit, n^m) solved by hand; judged by
    the crosscheck's own criterion: max deviation <= RTOL x max |exact|."""
    from sbml_cme.analyses import simulate_deterministic
    from sbml_cme.crosscheck import RTOL

    network = read(name, **options)
    times = np.linspace(0, t_end, 11)
    counts = simulate_deterministic(network, times).counts[
        :, network.species_ids.index(species_id)]
    reference = exact(times)
    deviation = np.max(np.abs(counts - reference))
    assert deviation <= RTOL * np.max(np.abs(reference)), (
        f"{species_id}: max deviation {deviation:.3g} molecules on a scale of "
        f"{np.max(np.abs(reference)):.3g}")
