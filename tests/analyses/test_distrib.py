"""SBML distrib draws and rate-rule clocks: import, exact samplers, exact clock crossings,
per-trajectory reproducibility, and refusal by the analyses that cannot sample them."""

import numpy as np
import pytest
import scipy.stats
import sympy

import sbml_cme
from sbml_cme.analyses import (simulate_cle, simulate_deterministic, simulate_ssa, solve_cme,
                               solve_lna)
from sbml_cme.analyses.draws import sample
from sbml_cme.analyses.ssa import trajectory_streams
from sbml_cme.distributions import DISTRIBUTIONS, RandomDraw
from sbml_cme.errors import AnalysisError, UnsupportedFeatureError

N = 20_000
P_MIN = 1e-3

# (code name, parameters, scipy law) -- parameter conventions of the distrib spec.
CONTINUOUS = [
    ("normal", (1.0, 2.0), scipy.stats.norm(1, 2)),
    ("uniform", (-1.0, 3.0), scipy.stats.uniform(-1, 4)),
    ("cauchy", (1.0, 2.0), scipy.stats.cauchy(1, 2)),
    ("chisquare", (3.0,), scipy.stats.chi2(3)),
    ("exponential", (2.0,), scipy.stats.expon(scale=0.5)),
    ("gamma", (0.5, 2.0), scipy.stats.gamma(0.5, scale=2)),
    ("gamma", (4.0, 2.5), scipy.stats.gamma(4, scale=2.5)),
    ("laplace", (1.0, 2.0), scipy.stats.laplace(1, 2)),
    ("lognormal", (1.0, 0.5), scipy.stats.lognorm(0.5, scale=np.e)),
    ("rayleigh", (2.0,), scipy.stats.rayleigh(scale=2)),
]
DISCRETE = [
    ("bernoulli", (0.3,), scipy.stats.bernoulli(0.3)),
    ("binomial", (100.0, 0.2), scipy.stats.binom(100, 0.2)),
    ("binomial", (5000.0, 0.5), scipy.stats.binom(5000, 0.5)),
    ("poisson", (1.5,), scipy.stats.poisson(1.5)),
    ("poisson", (1234.5,), scipy.stats.poisson(1234.5)),
]


def _draws(name, parameters, bounds=None, seed=1, n=N):
    code = DISTRIBUTIONS[name].code
    arguments = np.zeros(4)
    arguments[:len(parameters)] = parameters
    if bounds is not None:
        arguments[len(parameters):len(parameters) + 2] = bounds
    states = trajectory_streams(seed, 1)
    return np.array([sample(code, len(parameters), arguments, bounds is not None, states[0])
                     for _ in range(n)])


@pytest.mark.parametrize("name, parameters, law", CONTINUOUS,
                         ids=[f"{c[0]}{c[1]}" for c in CONTINUOUS])
def test_continuous_samplers_follow_their_law(name, parameters, law):
    assert scipy.stats.kstest(_draws(name, parameters), law.cdf).pvalue > P_MIN


@pytest.mark.parametrize("name, parameters, law", DISCRETE,
                         ids=[f"{c[0]}{c[1]}" for c in DISCRETE])
def test_discrete_samplers_follow_their_law(name, parameters, law):
    values = _draws(name, parameters).astype(np.int64)
    low, high = int(law.ppf(1e-4)), int(law.ppf(1 - 1e-4))
    edges = np.arange(low, high + 2)
    observed = np.histogram(np.clip(values, low, high), bins=edges)[0]
    expected = np.diff(law.cdf(edges - 1))
    expected[0] += law.cdf(low - 1)
    expected[-1] += law.sf(high)
    keep = expected * N >= 5  # pool sparse cells into the tails
    pooled_observed = np.r_[observed[keep], observed[~keep].sum()]
    pooled_expected = np.r_[expected[keep], expected[~keep].sum()] * N
    if pooled_expected[-1] == 0:
        pooled_observed, pooled_expected = pooled_observed[:-1], pooled_expected[:-1]
    statistic = np.sum((pooled_observed - pooled_expected) ** 2 / pooled_expected)
    assert scipy.stats.chi2.sf(statistic, len(pooled_expected) - 1) > P_MIN


def test_truncation_keeps_lower_inclusive_upper_exclusive_bounds():
    values = _draws("normal", (0.0, 1.5), bounds=(0.5, np.inf))
    law = scipy.stats.truncnorm(0.5 / 1.5, np.inf, 0, 1.5)
    assert values.min() >= 0.5
    assert scipy.stats.kstest(values, law.cdf).pvalue > P_MIN
    counts = _draws("poisson", (1.5,), bounds=(2.0, 4.0))
    assert set(np.unique(counts)) == {2.0, 3.0}  # 4 is excluded
    p2, p3 = scipy.stats.poisson(1.5).pmf([2, 3])
    assert -3 < np.sqrt(N) * (np.mean(counts == 2) - p2 / (p2 + p3)) / np.sqrt(
        p2 * p3) * (p2 + p3) < 3


def test_invalid_parameters_give_nan():
    assert np.isnan(_draws("normal", (0.0, -1.0), n=1)[0])
    assert np.isnan(_draws("bernoulli", (1.5,), n=1)[0])
    assert np.isnan(_draws("normal", (0.0, 1.0), bounds=(2.0, 1.0), n=1)[0])


# -- SBML import ----------------------------------------------------------------------------
def _model(assignment: str, trigger: str = "<apply><geq/><ci>t</ci><cn>0.5</cn></apply>",
           rate: str = "<cn>1</cn>", extra_species: str = "", reactions: str = "") -> str:
    """The distrib test-suite layout: X drawn at every crossing of the clock t."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core"
      xmlns:distrib="http://www.sbml.org/sbml/level3/version1/distrib/version1"
      level="3" version="1" distrib:required="true">
  <model id="m" substanceUnits="item" extentUnits="item">
    <listOfCompartments>
      <compartment id="C" spatialDimensions="3" size="1" constant="true"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="X" compartment="C" initialAmount="0" hasOnlySubstanceUnits="true"
               boundaryCondition="false" constant="false"/>{extra_species}
    </listOfSpecies>
    <listOfParameters>
      <parameter id="t" value="0" constant="false"/>
      <parameter id="k" value="3" constant="true"/>
    </listOfParameters>
    <listOfRules>
      <rateRule variable="t"><math xmlns="http://www.w3.org/1998/Math/MathML">{rate}</math>
      </rateRule>
    </listOfRules>{reactions}
    <listOfEvents>
      <event id="E0" useValuesFromTriggerTime="true">
        <trigger initialValue="true" persistent="true">
          <math xmlns="http://www.w3.org/1998/Math/MathML">{trigger}</math>
        </trigger>
        <listOfEventAssignments>
          <eventAssignment variable="X">
            <math xmlns="http://www.w3.org/1998/Math/MathML">{assignment}</math>
          </eventAssignment>
          <eventAssignment variable="t">
            <math xmlns="http://www.w3.org/1998/Math/MathML"><cn>-0.5</cn></math>
          </eventAssignment>
        </listOfEventAssignments>
      </event>
    </listOfEvents>
  </model>
</sbml>"""


def _draw(name: str, *arguments: str) -> str:
    url = f"http://www.sbml.org/sbml/symbols/distrib/{name}"
    return (f'<apply><csymbol encoding="text" definitionURL="{url}">{name}</csymbol>'
            + "".join(arguments) + "</apply>")


def test_import_reads_draws_and_the_clock():
    network = sbml_cme.read_sbml_string(_model(_draw("normal", "<ci>k</ci>", "<cn>1.5</cn>")))
    assert network.clocks == (("t", 1.0),)
    (target, value), _ = network.events[0].assignments
    (draw,) = value.atoms(RandomDraw)
    assert target == "X" and draw.sbml_name == "normal" and draw.bounds is None
    assert draw.parameters == (sympy.Symbol("k"), sympy.Float(1.5))


def test_one_argument_laplace_and_cauchy_have_location_zero():
    network = sbml_cme.read_sbml_string(_model(_draw("laplace", "<cn>2</cn>")))
    (draw,) = network.events[0].assignments[0][1].atoms(RandomDraw)
    assert [float(p) for p in draw.parameters] == [0.0, 2.0]


def test_wrong_argument_count_is_refused():
    with pytest.raises(UnsupportedFeatureError, match="normal draw with 3 arguments"):
        sbml_cme.read_sbml_string(_model(_draw("normal", "<cn>0</cn>", "<cn>1</cn>",
                                               "<cn>2</cn>")))


def test_two_draws_in_one_formula_are_independent():
    # normal(0, 1) + normal(0, 1) has variance 2 (not 4, as 2 normal(0, 1) would).
    twice = _draw("normal", "<cn>0</cn>", "<cn>1</cn>")
    network = sbml_cme.read_sbml_string(_model(f"<apply><plus/>{twice}{twice}</apply>"))
    assert len(network.events[0].assignments[0][1].atoms(RandomDraw)) == 2
    n = 4000
    x = simulate_ssa(network, [0.0, 1.0], n_trajectories=n, seed=3).states[:, 1, 0]
    assert -5 < np.sqrt(n / 2) * (x.var(ddof=1) / 2 - 1) < 5


def test_species_outside_reactions_hold_real_values():
    network = sbml_cme.read_sbml_string(_model(_draw("normal", "<cn>0</cn>", "<cn>1</cn>")))
    x = simulate_ssa(network, np.arange(4.0), n_trajectories=200, seed=1).states[:, 1:, 0]
    assert (x < 0).any() and (x != np.round(x)).any()


def test_draws_are_reproducible_and_independent_of_threads():
    network = sbml_cme.read_sbml_string(_model(_draw("gamma", "<cn>2</cn>", "<cn>1</cn>")))
    times = np.arange(6.0)
    one = simulate_ssa(network, times, n_trajectories=300, seed=5, n_jobs=1)
    two = simulate_ssa(network, times, n_trajectories=300, seed=5, n_jobs=2)
    np.testing.assert_array_equal(one.states, two.states)
    other = simulate_ssa(network, times, n_trajectories=300, seed=6)
    assert not np.array_equal(one.states, other.states)
    # Successive draws of one trajectory are independent: lag-1 correlation ~ 0.
    x = one.states[:, 1:, 0]
    r = np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1]
    assert abs(r) * np.sqrt(x[:, :-1].size) < 4


def test_clock_crossings_fire_at_the_exact_times():
    # The clock runs at rate 4 from t = 0: it reaches 0.5 at time 0.125, is reset to -0.5
    # and crosses again every 0.25 time units, while a birth-death process runs between.
    # X counts the firings: X(time) = floor((time - 0.125) / 0.25) + 1.
    count = "<apply><plus/><ci>X</ci><cn>1</cn></apply>"
    species = ('\n      <species id="Y" compartment="C" initialAmount="5" '
               'hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>')
    reactions = """
    <listOfReactions>
      <reaction id="birth" reversible="false" fast="false">
        <listOfProducts><speciesReference species="Y" stoichiometry="1" constant="true"/>
        </listOfProducts>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML"><cn>20</cn></math>
        </kineticLaw>
      </reaction>
      <reaction id="death" reversible="false" fast="false">
        <listOfReactants><speciesReference species="Y" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML"><ci>Y</ci></math>
        </kineticLaw>
      </reaction>
    </listOfReactions>"""
    network = sbml_cme.read_sbml_string(_model(count, rate="<cn>4</cn>",
                                               extra_species=species, reactions=reactions))
    times = np.array([0.0, 0.12, 0.13, 0.37, 0.38, 1.0, 2.0, 10.01])
    result = simulate_ssa(network, times, n_trajectories=50, seed=2)
    expected = np.where(times < 0.125, 0, np.floor((times - 0.125) / 0.25) + 1)
    np.testing.assert_array_equal(result.states[:, :, 0], np.broadcast_to(
        expected, (50, len(times))))
    assert result.n_events.min() > 100  # reactions fired in between


def test_strict_comparison_on_a_clock_fires_too():
    count = "<apply><plus/><ci>X</ci><cn>1</cn></apply>"
    network = sbml_cme.read_sbml_string(_model(
        count, trigger="<apply><gt/><ci>t</ci><cn>0.5</cn></apply>"))
    result = simulate_ssa(network, [0.0, 0.6, 1.6, 2.6], n_trajectories=3, seed=1)
    np.testing.assert_array_equal(result.states[0, :, 0], [0, 1, 2, 3])


def test_bad_draw_parameters_stop_with_an_error():
    network = sbml_cme.read_sbml_string(_model(_draw("normal", "<cn>0</cn>", "<cn>-1</cn>")))
    with pytest.raises(AnalysisError, match="random draw"):
        simulate_ssa(network, [0.0, 1.0], n_trajectories=2, seed=1)


@pytest.mark.parametrize("analysis", [
    lambda network: simulate_deterministic(network, [0.0, 1.0]),
    lambda network: solve_cme(network, [0.0, 1.0]),
    lambda network: solve_lna(network, [0.0, 1.0]),
    lambda network: simulate_cle(network, [0.0, 1.0], n_trajectories=2, seed=1, dt=0.1),
], ids=["deterministic", "cme", "lna", "cle"])
def test_other_analyses_refuse_draws_and_clocks(analysis):
    network = sbml_cme.read_sbml_string(_model(_draw("normal", "<cn>0</cn>", "<cn>1</cn>")))
    with pytest.raises(UnsupportedFeatureError) as error:
        analysis(network)
    assert error.value.element_id in {"t", "E0"}


def test_rate_rules_other_than_clocks_are_a_continuous_part():
    network = sbml_cme.read_sbml_string(_model(_draw("normal", "<cn>0</cn>", "<cn>1</cn>"),
                                               rate="<ci>X</ci>"))
    assert network.clocks == () and network.has_continuous_part
    with pytest.raises(UnsupportedFeatureError, match="rate rule on variable 't'"):
        sbml_cme.kinetics.refuse_continuous(network, "solve_cme")


def test_propensity_reading_a_clock_is_refused_by_direct_and_handed_to_hybrid():
    species = ('\n      <species id="Y" compartment="C" initialAmount="0" '
               'hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>')
    reactions = """
    <listOfReactions>
      <reaction id="clocked" reversible="false" fast="false">
        <listOfProducts><speciesReference species="Y" stoichiometry="1" constant="true"/>
        </listOfProducts>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><abs/><ci>t</ci></apply></math></kineticLaw>
      </reaction>
    </listOfReactions>"""
    network = sbml_cme.read_sbml_string(_model(_draw("normal", "<cn>0</cn>", "<cn>1</cn>"),
                                               extra_species=species, reactions=reactions))
    with pytest.raises(UnsupportedFeatureError, match="rate-rule parameter 't'") as error:
        simulate_ssa(network, [0.0, 1.0], n_trajectories=2, seed=1, method="direct")
    assert error.value.element_id == "clocked"
    # The default method hands the clock-driven hazard to the hybrid kernel, which
    # refuses this model's trigger on the clock by name.
    with pytest.raises(UnsupportedFeatureError, match="simulate_hybrid.*'t'") as error:
        simulate_ssa(network, [0.0, 1.0], n_trajectories=2, seed=1)
    assert error.value.element_id == "E0"
