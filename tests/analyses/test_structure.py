"""Network structure and the product-form stationary law (THEORY.md section 3).

Reference values are derived by hand in each test's docstring from published networks:

- A <-> B and 0 <-> A <-> B (THEORY.md section 3's examples);
- one layer of the Huang-Ferrell MAPK cascade (Huang and Ferrell, PNAS 93, 10078, 1996):
  the phosphorylation / dephosphorylation futile cycle with Michaelis-Menten mechanisms;
- the Edelstein network A <-> 2A, A + B <-> C <-> B (Edelstein, J. Theor. Biol. 29, 57,
  1970), a reversible network of deficiency one (Feinberg, Foundations of Chemical
  Reaction Network Theory, 2019).

Product-form laws (Anderson, Craciun and Kurtz, Bull. Math. Biol. 72, 1947, 2010) are
compared to closed forms (Binomial, multinomial, Poisson) and to the stationary FSP of
sbml_cme.analyses.cme: the L1 distance must be within the sum of both certified bounds
(+ 1e-9 round-off).
"""

from __future__ import annotations

import csv
import itertools
import math
import pathlib
import warnings

import numpy as np
import pytest
import sympy
from scipy import stats

from sbml_cme import read_sbml
from sbml_cme.analyses import stationary_cme
from sbml_cme.analyses.structure import analyze_structure, product_form_stationary
from sbml_cme.errors import (NotComplexBalancedError, OptionsError, SbmlCmeError,
                             UnsupportedFeatureError)
from sbml_cme.network import Event, Expression, MassAction, Network, Reaction, Species

ROUND_OFF = 1e-9
MODELS = pathlib.Path(__file__).resolve().parents[2] / "models" / "biomodels"


# -- helpers -----------------------------------------------------------------------------------
def network(species: dict, reactions: list, *, fixed=(), falling=True, events=()) -> Network:
    """species: id -> initial count; reactions: (id, {reactant: n}, {product: n}, k), with
    mass-action propensity k * prod (n)_m (k = None: a general law k(A) = A / (1 + A))."""
    built = []
    for rid, reactants, products, k in reactions:
        if k is None:
            a = sympy.Symbol(next(iter(reactants)))
            law = Expression(a / (1 + a))
        else:
            law = MassAction(sympy.Float(k), tuple(reactants.items()), falling_factorial=falling)
        built.append(Reaction(rid, tuple(reactants.items()), tuple(products.items()), law))
    return Network(tuple(Species(s, "cell", float(n), boundary=s in fixed)
                         for s, n in species.items()), tuple(built), id="test",
                   events=tuple(events))


def properties(result) -> dict:
    return dict(zip(result.properties.name, result.properties.value))


def law_set(result) -> set[str]:
    return set(result.tables["conservation_laws"].expression)


def law_of(result) -> dict[tuple, float]:
    """state tuple -> probability of a CMEResult's distribution."""
    states, probabilities = result.distributions[0]
    return {tuple(int(v) for v in s): float(p) for s, p in zip(states, probabilities)}


def l1_distance(first: dict, second: dict) -> float:
    return sum(abs(first.get(k, 0.0) - second.get(k, 0.0)) for k in set(first) | set(second))


def assert_matches_cme(net: Network, tol: float = 1e-12) -> dict:
    """The product form equals the stationary FSP within both certificates."""
    exact = product_form_stationary(net, tol=tol)
    fsp = stationary_cme(net, tol=1e-10)
    distance = l1_distance(law_of(exact), law_of(fsp))
    assert distance <= exact.error_bound + fsp.error_bound + ROUND_OFF, distance
    assert exact.error_bound <= tol
    assert math.isclose(sum(law_of(exact).values()), 1.0 - exact.error_bound, abs_tol=1e-12)
    return law_of(exact)


ISOMERISATION = dict(species={"A": 20, "B": 0},
                     reactions=[("f", {"A": 1}, {"B": 1}, 2.0), ("b", {"B": 1}, {"A": 1}, 3.0)])
OPEN_CHAIN = dict(species={"A": 0, "B": 0},
                  reactions=[("make", {}, {"A": 1}, 6.0), ("decay", {"A": 1}, {}, 2.0),
                             ("f", {"A": 1}, {"B": 1}, 1.0), ("b", {"B": 1}, {"A": 1}, 0.5)])
MAPK_LAYER = dict(species={"K": 10, "S": 20, "KS": 0, "Sp": 0, "P": 10, "PSp": 0},
                  reactions=[("bind_k", {"K": 1, "S": 1}, {"KS": 1}, 1.0),
                             ("unbind_k", {"KS": 1}, {"K": 1, "S": 1}, 2.0),
                             ("phosphorylate", {"KS": 1}, {"K": 1, "Sp": 1}, 3.0),
                             ("bind_p", {"P": 1, "Sp": 1}, {"PSp": 1}, 1.0),
                             ("unbind_p", {"PSp": 1}, {"P": 1, "Sp": 1}, 2.0),
                             ("dephosphorylate", {"PSp": 1}, {"P": 1, "S": 1}, 3.0)])


def edelstein(k=(2.0, 1.0, 1.0, 1.0, 1.0, 2.0), counts=(5, 3, 2)) -> Network:
    """A -> 2A (k1), 2A -> A (k2), A + B -> C (k3), C -> A + B (k4), C -> B (k5),
    B -> C (k6)."""
    k1, k2, k3, k4, k5, k6 = k
    return network(dict(zip("ABC", counts)), [
        ("k1", {"A": 1}, {"A": 2}, k1), ("k2", {"A": 2}, {"A": 1}, k2),
        ("k3", {"A": 1, "B": 1}, {"C": 1}, k3), ("k4", {"C": 1}, {"A": 1, "B": 1}, k4),
        ("k5", {"C": 1}, {"B": 1}, k5), ("k6", {"B": 1}, {"C": 1}, k6)])


# -- structure ---------------------------------------------------------------------------------
def test_isomerisation_structure():
    """A <-> B (k+ = 2, k- = 3, 20 molecules): complexes {A, B}, one linkage class, rank 1,
    deficiency 2 - 1 - 1 = 0, weakly reversible, so complex balanced (deficiency zero
    theorem); law A + B = 20, 21 states; equilibrium A = 20 * 3/5 = 12, B = 8."""
    result = analyze_structure(network(**ISOMERISATION))
    p = properties(result)
    assert (p["rank"], p["n_complexes"], p["n_linkage_classes"], p["deficiency"]) == (1, 2, 1, 0)
    assert p["weakly_reversible"] and p["reversible"] and p["mass_action"]
    assert p["complex_balanced"] is True and "deficiency zero theorem" in p[
        "complex_balance_reason"]
    assert law_set(result) == {"A + B"}
    assert result.conservation_totals.tolist() == [20.0]
    assert p["class_bounded"] and p["class_size"] == 21 and p["class_size_kind"] == "exact"
    np.testing.assert_allclose(result.equilibrium, [12.0, 8.0], rtol=1e-12)
    assert set(result.tables["complexes"].composition) == {"A", "B"}
    assert result.tables["stoichiometry"].columns.tolist() == [
        "species", "reaction", "reactant", "product", "net_change"]
    assert "A + B = 20" in str(result) and "<table" in result._repr_html_()


def test_open_chain_structure():
    """0 <-> A <-> B: complexes {0, A, B}, one linkage class, rank 2, deficiency 0; no
    conservation law (an infinite class); equilibrium A = 6/2 = 3, B = 3 * 1/0.5 = 6."""
    result = analyze_structure(network(**OPEN_CHAIN))
    p = properties(result)
    assert (p["rank"], p["n_complexes"], p["n_linkage_classes"], p["deficiency"]) == (2, 3, 1, 0)
    assert p["n_conservation_laws"] == 0 and not p["class_bounded"]
    assert p["class_size"] == math.inf and p["class_size_kind"] == "infinite"
    assert p["complex_balanced"] is True
    assert set(result.tables["complexes"].composition) == {"0", "A", "B"}
    np.testing.assert_allclose(result.equilibrium, [3.0, 6.0], rtol=1e-10)


def test_mapk_layer_structure():
    """One Huang-Ferrell layer: K + S <-> KS -> K + Sp, P + Sp <-> PSp -> P + S.

    By hand: 6 complexes (K+S, KS, K+Sp, P+Sp, PSp, P+S) in 2 linkage classes; the four
    reaction vectors sum to zero, so rank 3 and deficiency 6 - 2 - 3 = 1, while each
    linkage class has deficiency 3 - 1 - 2 = 0. Strong linkage classes: {K+S, KS},
    {K+Sp}, {P+Sp, PSp}, {P+S}; the singletons are the 2 terminal ones; not weakly
    reversible, hence not complex balanced (Horn 1972). Laws: total kinase K + KS, total
    phosphatase P + PSp, total substrate S + KS + Sp + PSp. With totals (10, 10, 20) the
    class has sum_{a,b=0..10} (21 - a - b) = 1331 states."""
    result = analyze_structure(network(**MAPK_LAYER))
    p = properties(result)
    assert (p["n_complexes"], p["n_linkage_classes"], p["rank"], p["deficiency"]) == (6, 2, 3, 1)
    assert p["n_strong_linkage_classes"] == 4 and p["n_terminal_strong_linkage_classes"] == 2
    assert not p["weakly_reversible"] and p["complex_balanced"] is False
    assert "not weakly reversible" in p["complex_balance_reason"]
    assert law_set(result) == {"K + KS", "P + PSp", "S + KS + Sp + PSp"}
    assert p["nonnegative_conservation_basis"]
    assert p["class_size"] == 1331 and p["class_size_kind"] == "exact"
    classes = result.tables["linkage_classes"]
    assert classes.deficiency.tolist() == [0, 0] and classes.n_complexes.tolist() == [3, 3]
    terminal = result.tables["complexes"].query("terminal").composition
    assert set(terminal) == {"K + Sp", "S + P"}  # species order


def test_edelstein_deficiency_one():
    """Edelstein's network, deficiency one: complexes A, 2A, A+B, C, B (5) in 2 linkage
    classes; reaction vectors A, C - A - B, B - C span a plane (rank 2): 5 - 2 - 2 = 1.
    Law B + C. Complex balance: A = k1/k2 from the first class, and the tree A+B <-> C <-> B
    needs k3 A B = k4 C, k5 C = k6 B, i.e. A = k4 k6 / (k3 k5): complex balanced iff
    k1 k3 k5 = k2 k4 k6."""
    balanced = analyze_structure(edelstein())
    p = properties(balanced)
    assert (p["n_complexes"], p["n_linkage_classes"], p["rank"], p["deficiency"]) == (5, 2, 2, 1)
    assert p["weakly_reversible"] and p["reversible"]
    assert law_set(balanced) == {"B + C"} and not p["class_bounded"]
    assert p["complex_balanced"] is True and "deficiency 1" in p["complex_balance_reason"]
    # equilibrium in the class B + C = 5: A = 2, C / B = k6 / k5 = 2
    np.testing.assert_allclose(balanced.equilibrium, [2.0, 5 / 3, 10 / 3], rtol=1e-10)
    unbalanced = properties(analyze_structure(edelstein(k=(3.0, 1.0, 1.0, 1.0, 1.0, 2.0))))
    assert unbalanced["complex_balanced"] is False
    assert "no complex-balanced equilibrium" in unbalanced["complex_balance_reason"]


def test_boundary_species_leave_complexes_and_laws():
    """S (boundary, 3 molecules) -> S + A, A -> 0: the complexes are 0 and A (S is a
    parameter), no conservation law on the free species, deficiency 2 - 1 - 1 = 0."""
    net = network({"S": 3, "A": 0}, [("make", {"S": 1}, {"S": 1, "A": 1}, 2.0),
                                      ("decay", {"A": 1}, {}, 1.5)], fixed={"S"})
    result = analyze_structure(net)
    p = properties(result)
    assert set(result.tables["complexes"].composition) == {"0", "A"}
    assert (p["n_fixed_species"], p["n_conservation_laws"], p["deficiency"]) == (1, 0, 0)
    assert p["complex_balanced"] is True
    np.testing.assert_allclose(result.equilibrium, [3.0, 2.0 * 3 / 1.5], rtol=1e-10)


def test_more_extreme_laws_than_dimensions():
    """A + B <-> C + D: the laws are w_A + w_B = w_C + w_D (dimension 3) and the
    semipositive cone has 4 extreme rays A + C, A + D, B + C, B + D; the basis is 3 of
    them."""
    result = analyze_structure(network({"A": 2, "B": 1, "C": 0, "D": 0}, [
        ("f", {"A": 1, "B": 1}, {"C": 1, "D": 1}, 1.0),
        ("b", {"C": 1, "D": 1}, {"A": 1, "B": 1}, 1.0)]))
    p = properties(result)
    assert p["n_conservation_laws"] == 3 and p["n_semipositive_extreme_laws"] == 4
    assert law_set(result) < {"A + C", "A + D", "B + C", "B + D"}
    assert not np.any(result.conservation_matrix @ result.stoichiometry)
    assert p["class_size"] == 2 and p["class_size_kind"] == "exact"  # (2,1,0,0), (1,0,1,1)


def _brute_force_extreme_rays(matrix: np.ndarray) -> set[tuple[int, ...]]:
    """Extreme rays of {w >= 0 : w^T matrix = 0} by their supports: Z supports one iff the
    rows Z have a one-dimensional left null space spanned by a vector positive on Z."""
    n = matrix.shape[0]
    rays = set()
    for size in range(1, n + 1):
        for support in itertools.combinations(range(n), size):
            null = sympy.Matrix(matrix[list(support)].T.tolist()).nullspace()
            if len(null) != 1:
                continue
            vector = null[0] * math.lcm(*[int(sympy.Rational(v).q) for v in null[0]])
            if all(v < 0 for v in vector):
                vector = -vector
            if all(v > 0 for v in vector):
                divisor = math.gcd(*[int(v) for v in vector])
                full = [0] * n
                for i, v in zip(support, vector):
                    full[i] = int(v) // divisor
                rays.add(tuple(full))
    return rays


def test_extreme_rays_match_brute_force_on_random_networks():
    """The double description (Farkas) enumeration finds exactly the extreme rays of the
    semipositive conservation cone, checked by brute force over supports on random
    stoichiometries (fixed seed) built to conserve random positive masses."""
    from sbml_cme.analyses.structure import _extreme_rays

    rng = np.random.default_rng(20261127)
    non_trivial = 0
    for _ in range(40):
        n_species, n_reactions = int(rng.integers(3, 7)), int(rng.integers(1, 5))
        matrix = rng.integers(-2, 3, size=(n_species, n_reactions))
        masses = rng.integers(1, 3, size=n_species)
        # make each column conserve the masses by adjusting one species with mass 1
        masses[0] = 1
        matrix[0] -= masses @ matrix
        found = {tuple(int(v) for v in ray) for ray in _extreme_rays(matrix)}
        assert found == _brute_force_extreme_rays(matrix), matrix.tolist()
        non_trivial += len(found) >= 2
    assert non_trivial >= 10


def test_no_nonnegative_basis_falls_back_to_integers():
    """A + B -> 0: the only law is A - B, which no non-negative vector spans."""
    result = analyze_structure(network({"A": 3, "B": 1}, [("r", {"A": 1, "B": 1}, {}, 1.0)]))
    p = properties(result)
    assert not p["nonnegative_conservation_basis"] and p["n_semipositive_extreme_laws"] == 0
    assert law_set(result) == {"A - B"} and result.conservation_totals.tolist() == [2.0]
    assert not p["class_bounded"]


def test_class_size_counts_lattice_points():
    """2A <-> B, B + C <-> D: laws A + 2B + 2D and C + D; the count is checked against a
    brute-force enumeration of the non-negative solutions."""
    result = analyze_structure(network({"A": 7, "B": 2, "C": 3, "D": 1}, [
        ("dimerise", {"A": 2}, {"B": 1}, 1.0), ("split", {"B": 1}, {"A": 2}, 1.0),
        ("bind", {"B": 1, "C": 1}, {"D": 1}, 1.0), ("unbind", {"D": 1}, {"B": 1, "C": 1}, 1.0)]))
    matrix, totals = result.conservation_matrix, result.conservation_totals
    assert (matrix >= 0).all() and len(matrix) == 2
    ranges = [range(int(min(t / w for w, t in zip(matrix[:, i], totals) if w)) + 1)
              for i in range(4)]
    brute = sum(1 for n in itertools.product(*ranges) if np.all(matrix @ n == totals))
    assert properties(result)["class_size"] == brute > 1


def test_degenerate_networks():
    """No reactions: every species is its own law and the class is the initial state.
    One species made and degraded: no law, an infinite class."""
    still = analyze_structure(network({"A": 3}, []))
    p = properties(still)
    assert law_set(still) == {"A"} and p["class_size"] == 1 and p["n_complexes"] == 0
    assert p["deficiency"] == 0 and p["complex_balanced"] is True
    assert law_of(product_form_stationary(network({"A": 3}, []))) == {(3,): 1.0}
    single = properties(analyze_structure(network({"A": 0}, [("make", {}, {"A": 1}, 1.0)])))
    assert single["n_conservation_laws"] == 0 and single["class_size_kind"] == "infinite"
    assert single["complex_balanced"] is False  # 0 -> A alone is not weakly reversible


def test_bursts_break_conservation_and_the_product_form():
    """A <-> B with B -> (burst of A, mean 2): A + B is no longer conserved (a firing
    adds a random number of A), and the product form does not apply."""
    net = network(**ISOMERISATION).with_burst("b", "A", mean=2.0)
    p = properties(analyze_structure(net))
    assert p["n_conservation_laws"] == 0 and not p["class_bounded"]
    assert p["complex_balanced"] is None and "burst" in p["complex_balance_reason"]
    with pytest.raises(UnsupportedFeatureError, match="burst"):
        product_form_stationary(net)


def test_general_law_has_no_complex_balance_verdict():
    result = analyze_structure(network({"A": 1}, [("make", {}, {"A": 1}, 1.0),
                                                  ("decay", {"A": 1}, {}, None)]))
    p = properties(result)
    assert not p["mass_action"] and p["complex_balanced"] is None
    assert "decay" in p["complex_balance_reason"]
    assert result.tables["reactions"].mass_action.tolist() == [True, False]


def _read_options(text: str) -> dict:
    return dict(item.split("=", 1) for item in filter(None, (text or "").split(";")))


def _biomodel_rows(ids=None):
    with open(MODELS / "index.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["sbml_cme_status"] == "ok"]
    return [row for row in rows if ids is None or row["id"] in ids]


def _check_biomodel(row):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = read_sbml(MODELS / f"{row['id']}.xml", **_read_options(row["read_options"]))
    result = analyze_structure(net)
    p = properties(result)
    free = np.array([not s.fixed for s in net.species], dtype=bool)  # 020 has no species
    assert not np.any(result.conservation_matrix @ result.stoichiometry)
    assert not np.any(result.conservation_matrix[:, ~free])
    assert p["rank"] + p["n_conservation_laws"] == free.sum()
    assert p["deficiency"] >= 0  # a theorem (Feinberg)
    assert result.tables["linkage_classes"].deficiency.sum() <= p["deficiency"]
    assert p["class_size_kind"] in ("exact", "upper bound", "infinite")
    assert (p["class_size_kind"] == "infinite") == (not p["class_bounded"])
    assert p["class_size"] >= 1  # the initial state is in its class
    return p


@pytest.mark.parametrize("model", ["BIOMD0000000001", "BIOMD0000000009", "BIOMD0000000019",
                                   "BIOMD0000000483", "BIOMD0000000220"])
def test_biomodels_structure_is_consistent(model):
    """Nothing crashes on bundled models; laws annihilate S, rank-nullity holds and the
    deficiency is non-negative. BIOMD0000000001 (Edelstein 1996, nicotinic receptor) is
    reversible with deficiency zero, so complex balanced."""
    row, = _biomodel_rows({model})
    p = _check_biomodel(row)
    if model == "BIOMD0000000001":
        assert p["reversible"] and p["deficiency"] == 0 and p["complex_balanced"] is True


def test_complex_balanced_equilibrium_is_the_rate_equations_steady_state():
    """BIOMD0000000001 (Edelstein 1996, nicotinic receptor; 12 species, 34 channels,
    reversible, deficiency 0): the equilibrium from the log-linear balance system equals
    the stable steady state the LNA reaches by integrating and polishing the rate
    equations (independent machinery), to relative 1e-8. Events are dropped: the rate
    equations alone are compared."""
    import dataclasses

    from sbml_cme.analyses import solve_lna

    row, = _biomodel_rows({"BIOMD0000000001"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = read_sbml(MODELS / f"{row['id']}.xml", **_read_options(row["read_options"]))
    net = dataclasses.replace(net, events=())
    result = analyze_structure(net)
    steady = solve_lna(net).means[0, :len(net.species)]
    np.testing.assert_allclose(result.equilibrium, steady, rtol=1e-8)
    assert properties(result)["complex_imbalance"] <= 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("row", _biomodel_rows(), ids=lambda row: row["id"])
def test_every_biomodel_structure_is_consistent(row):
    _check_biomodel(row)


# -- the product-form stationary law -----------------------------------------------------------
def test_product_form_isomerisation_is_binomial():
    """A <-> B with 20 molecules: Binomial(20, 3/5) for A (THEORY.md section 3)."""
    net = network(**ISOMERISATION)
    law = assert_matches_cme(net)
    a = np.arange(21)
    expected = stats.binom.pmf(a, 20, 0.6)
    np.testing.assert_allclose([law[(k, 20 - k)] for k in a], expected, rtol=1e-12, atol=1e-300)
    result = product_form_stationary(net)
    assert result.error_bound == 0.0 and result.n_states == 21
    assert list(result.moments.columns) == ["time", "species", "mean", "variance"]
    assert result.times.tolist() == [np.inf]
    np.testing.assert_allclose(result.moments["mean"], [12.0, 8.0], rtol=1e-12)


def test_product_form_cycle_is_multinomial():
    """A -> B -> C -> A (k = 1, 2, 4), 12 molecules: deficiency 3 - 1 - 2 = 0 and weakly
    reversible; equilibrium k1 a = k2 b = k3 c, so Multinomial(12; 4/7, 2/7, 1/7)."""
    net = network({"A": 12, "B": 0, "C": 0}, [("ab", {"A": 1}, {"B": 1}, 1.0),
                                              ("bc", {"B": 1}, {"C": 1}, 2.0),
                                              ("ca", {"C": 1}, {"A": 1}, 4.0)])
    law = assert_matches_cme(net)
    assert len(law) == 91  # C(14, 2)
    multinomial = stats.multinomial(12, [4 / 7, 2 / 7, 1 / 7])
    for state, probability in law.items():
        assert math.isclose(probability, multinomial.pmf(state), rel_tol=1e-10)


def test_product_form_open_chain_is_product_of_poissons():
    """0 <-> A <-> B: independent Poisson(3) and Poisson(6) (THEORY.md section 3); the
    truncated law misses at most error_bound <= tol."""
    net = network(**OPEN_CHAIN)
    law = assert_matches_cme(net, tol=1e-12)
    for (a, b), probability in law.items():
        expected = stats.poisson.pmf(a, 3.0) * stats.poisson.pmf(b, 6.0)
        assert abs(probability - expected) <= 1e-12 + 1e-10 * expected
    loose = product_form_stationary(net, tol=1e-4)
    assert 0 < loose.error_bound <= 1e-4 and loose.n_states < len(law)


def test_product_form_edelstein_mixes_poisson_and_binomial():
    """Edelstein's network with k1 k3 k5 = k2 k4 k6: A ~ Poisson(k1/k2 = 2) independent of
    B ~ Binomial(5, k5 / (k5 + k6) = 1/3) on the class B + C = 5."""
    net = edelstein()
    assert_matches_cme(net)
    result = product_form_stationary(net)
    a = result.marginal("A")
    expected = stats.poisson.pmf(a["count"], 2.0)
    np.testing.assert_allclose(a.probability, expected, atol=1e-12)
    b = result.marginal("B")
    np.testing.assert_allclose(b.probability, stats.binom.pmf(b["count"], 5, 1 / 3),
                               atol=1e-12)


def test_product_form_dimerisation_uses_falling_factorials():
    """2A <-> B (deficiency 0) with the CME's falling factorials: the law on A + 2B = 9
    equals the stationary FSP (with powers n^2 instead it would not)."""
    net = network({"A": 9, "B": 0}, [("dimerise", {"A": 2}, {"B": 1}, 0.3),
                                     ("split", {"B": 1}, {"A": 2}, 2.0)])
    law = assert_matches_cme(net)
    assert len(law) == 5
    # by hand: pi(a, b) proportional to c_A^a / a! c_B^b / b! with c_B / c_A^2 = 0.3 / 2
    weights = {(9 - 2 * b, b): 0.15 ** b / (math.factorial(9 - 2 * b) * math.factorial(b))
               for b in range(5)}
    total = sum(weights.values())
    for state, weight in weights.items():
        assert math.isclose(law[state], weight / total, rel_tol=1e-10)


def test_product_form_boundary_species_use_their_falling_factorial():
    """2S -> 2S + A with S fixed at 3 (stochastic rate k (3)_2 = 6k), A -> 0: the law of A
    is Poisson(6 k / d), not Poisson(9 k / d)."""
    net = network({"S": 3, "A": 0}, [("make", {"S": 2}, {"S": 2, "A": 1}, 0.5),
                                      ("decay", {"A": 1}, {}, 1.0)], fixed={"S"})
    law = assert_matches_cme(net)
    for (s, a), probability in law.items():
        assert s == 3
        assert abs(probability - stats.poisson.pmf(a, 3.0)) <= 1e-12


def test_product_form_restricts_to_reachable_states():
    """A + B <-> 2A (deficiency 0, weakly reversible) from (0, 2): nothing can fire, so the
    law is the point mass, although A + B = 2 has 3 lattice points; A + B <-> C from
    (5, 0, 0) pins B = C = 0."""
    stuck = network({"A": 0, "B": 2}, [("f", {"A": 1, "B": 1}, {"A": 2}, 1.0),
                                       ("b", {"A": 2}, {"A": 1, "B": 1}, 1.0)])
    assert law_of(product_form_stationary(stuck)) == {(0, 2): 1.0}
    assert properties(analyze_structure(stuck))["class_size"] == 3
    pinned = network({"A": 5, "B": 0, "C": 0}, [("f", {"A": 1, "B": 1}, {"C": 1}, 1.0),
                                                ("b", {"C": 1}, {"A": 1, "B": 1}, 1.0)])
    assert law_of(product_form_stationary(pinned)) == {(5, 0, 0): 1.0}


def test_product_form_refuses_networks_without_complex_balance():
    with pytest.raises(NotComplexBalancedError, match="not weakly reversible"):
        product_form_stationary(network(**MAPK_LAYER))
    with pytest.raises(NotComplexBalancedError, match="deficiency 1"):
        product_form_stationary(edelstein(k=(3.0, 1.0, 1.0, 1.0, 1.0, 2.0)))


def test_product_form_refuses_what_is_not_stochastic_mass_action():
    general = network({"A": 1}, [("make", {}, {"A": 1}, 1.0), ("decay", {"A": 1}, {}, None)])
    with pytest.raises(UnsupportedFeatureError, match="decay") as caught:
        product_form_stationary(general)
    assert caught.value.analysis == "product_form_stationary"
    powers = network({"A": 4, "B": 0}, [("dimerise", {"A": 2}, {"B": 1}, 1.0),
                                        ("split", {"B": 1}, {"A": 2}, 1.0)], falling=False)
    with pytest.raises(UnsupportedFeatureError, match="falling factorials"):
        product_form_stationary(powers)
    timed = network(**ISOMERISATION, events=[Event("e", sympy.Symbol("A") > 1, ())])
    with pytest.raises(UnsupportedFeatureError, match="events"):
        product_form_stationary(timed)
    with pytest.raises(OptionsError):
        product_form_stationary(network(**ISOMERISATION), tol=0)
    assert issubclass(NotComplexBalancedError, SbmlCmeError)
