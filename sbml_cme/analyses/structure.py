"""Network structure (THEORY.md section 3) and the product-form stationary law.

Owns :func:`analyze_structure` (stoichiometry and its rank, conservation laws, the
compatibility class of the initial state, complexes, linkage classes, weak reversibility,
deficiency and a complex-balance verdict) and :func:`product_form_stationary` (the
Anderson-Craciun-Kurtz stationary law of a complex-balanced mass-action network).

Conventions:

- Boundary and constant ("fixed") species are parameters of the network: their rows of
  the stoichiometry are zero, they are left out of complexes (a boundary source S in
  ``S -> A`` makes the complex ``0``) and of conservation laws; in mass-action rates they
  are folded into the rate constant (``c S^m`` deterministically, ``c (S)_m``
  stochastically).
- Counts, not concentrations: equilibria are in molecules, rate constants are the
  network's stochastic constants, whose deterministic limit ``c prod n^m`` uses the same
  constant (MassAction propensities use falling factorials ``(n)_m``).
- A complex-balance verdict is exact linear algebra on the complex graph (Horn 1972):
  for a weakly reversible mass-action network, with rho the positive kernel vector of
  each linkage class's Laplacian, a positive complex-balanced equilibrium x exists iff
  ``log x . y_eta - log rho_eta`` is constant on every linkage class, a linear system in
  ``log x``. It is then checked directly: inflow = outflow at every complex.

docs/structure.md gives the definitions and references.
"""

from __future__ import annotations

import math
import time as wallclock
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg
import sympy
from scipy.optimize import linprog
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import logsumexp
from scipy.stats import poisson
from sympy import QQ
from sympy.polys.matrices import DomainMatrix

from ..errors import (ConvergenceError, NotComplexBalancedError, OptionsError,
                      StateSpaceTooLargeError, UnsupportedFeatureError)
from ..network import TIME, MassAction, Network
from ..results import CMEResult

#: Largest number of candidate rays the Farkas (double description) step may hold.
MAX_RAYS = 5000
#: Largest (ray pairs x rays) work of one Farkas step before the enumeration gives up.
MAX_RAY_WORK = 50_000_000
#: Largest lattice-point table (product of conserved totals + 1) counted exactly.
MAX_COUNT_TABLE = 2_000_000
#: Largest number of vectorised slab updates the lattice-point count may take.
MAX_COUNT_STEPS = 200_000
#: Accepted residual of the log-linear complex-balance system (natural log units).
LOG_BALANCE_TOL = 1e-7
#: Accepted relative imbalance inflow vs outflow at a complex-balanced equilibrium.
BALANCE_RTOL = 1e-6


# -- the result ------------------------------------------------------------------------------
@dataclass(frozen=True)
class StructureResult:
    """Structure of a network (THEORY.md section 3).

    Attributes
    ----------
    stoichiometry : ndarray, shape (n_species, n_reactions), int64
        Net change per firing; rows of fixed (boundary/constant) species are zero.
    rank : int
        Rank of ``stoichiometry`` (dimension of the stoichiometric subspace).
    conservation_matrix : ndarray, shape (n_laws, n_species), int64
        A basis of the conservation laws w (w^T S = 0, fixed species' columns zero),
        non-negative when ``nonnegative_basis``.
    conservation_totals : ndarray, shape (n_laws,)
        w . n0 for the initial counts n0 (molecules).
    nonnegative_basis : bool
        Whether the non-negative conservation laws span all of them.
    complex_matrix : ndarray, shape (n_species, n_complexes), int64
        Composition of each complex (fixed species' rows zero).
    source_complex, target_complex : ndarray, shape (n_reactions,), int64
        Complex index of each reaction's reactants and products.
    linkage_class, strong_linkage_class : ndarray, shape (n_complexes,), int64
        Component of each complex in the (undirected / directed) complex graph.
    terminal : ndarray, shape (n_complexes,), bool
        Whether the complex's strong linkage class has no reaction leaving it.
    deficiency : int
        n_complexes - n_linkage_classes - rank.
    weakly_reversible, mass_action : bool
    complex_balanced : bool or None
        None when the question does not apply (a non-mass-action law).
    complex_balance_reason : str
    class_bounded : bool
        Whether the compatibility class of n0 is finite.
    class_size : float
        Lattice points of the class (``inf`` when unbounded).
    class_size_kind : str
        ``"exact"``, ``"upper bound"`` or ``"infinite"``.
    equilibrium : ndarray, shape (n_species,), or None
        The complex-balanced equilibrium in the class of n0 (molecules; fixed species at
        their counts), when there is one.
    tables : dict of DataFrame
        ``stoichiometry``, ``conservation_laws``, ``complexes``, ``reactions``,
        ``linkage_classes`` and, for complex-balanced networks, ``equilibrium``.
    properties : DataFrame
        ``name, value``: the scalar verdicts.
    """

    network: Network
    stoichiometry: np.ndarray
    rank: int
    conservation_matrix: np.ndarray
    conservation_totals: np.ndarray
    nonnegative_basis: bool
    complex_matrix: np.ndarray
    source_complex: np.ndarray
    target_complex: np.ndarray
    linkage_class: np.ndarray
    strong_linkage_class: np.ndarray
    terminal: np.ndarray
    deficiency: int
    weakly_reversible: bool
    mass_action: bool
    complex_balanced: bool | None
    complex_balance_reason: str
    class_bounded: bool
    class_size: float
    class_size_kind: str
    equilibrium: np.ndarray | None
    tables: dict = field(default_factory=dict, compare=False)
    properties: pd.DataFrame = field(default=None, compare=False)
    run_info: dict = field(default_factory=dict, compare=False)

    @property
    def n_complexes(self) -> int:
        return self.complex_matrix.shape[1]

    @property
    def n_linkage_classes(self) -> int:
        return int(self.linkage_class.max(initial=-1) + 1)

    def property(self, name: str):
        """The value of one row of :attr:`properties`."""
        rows = self.properties[self.properties.name == name]
        if rows.empty:
            raise OptionsError(f"unknown property {name!r}; known: "
                               f"{list(self.properties.name)}")
        return rows.value.iloc[0]

    def __str__(self) -> str:
        lines = [f"Structure of {self.network.id or 'the network'}:"]
        lines += [f"  {row.name}: {row.value}" for row in self.properties.itertuples()]
        laws = self.tables["conservation_laws"]
        if len(laws):
            lines.append("  conservation laws:")
            lines += [f"    {row.expression} = {row.total:g}" for row in laws.itertuples()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        laws = self.tables["conservation_laws"]
        return ("<p><b>Network structure</b></p>" + self.properties.to_html(index=False)
                + ("<p>Conservation laws</p>" + laws.to_html(index=False) if len(laws) else "")
                + "<p>Complexes</p>" + self.tables["complexes"].to_html(index=False))


# -- exact integer linear algebra --------------------------------------------------------------
def _integer_rank(matrix: np.ndarray) -> int:
    if matrix.size == 0:
        return 0
    return int(DomainMatrix.from_list(matrix.astype(int).tolist(), QQ).rank())


def _integer_left_nullspace(matrix: np.ndarray) -> np.ndarray:
    """Integer basis of {w : w^T matrix = 0}, shape (n_laws, n_rows), each row primitive."""
    n_rows = matrix.shape[0]
    if n_rows == 0:
        return np.zeros((0, 0), dtype=np.int64)
    if matrix.shape[1] == 0:
        return np.eye(n_rows, dtype=np.int64)
    basis = DomainMatrix.from_list(matrix.T.astype(int).tolist(), QQ).nullspace().to_Matrix()
    rows = []
    for k in range(basis.rows):
        row = [sympy.Rational(v) for v in basis.row(k)]
        scale = math.lcm(*[int(v.q) for v in row]) if row else 1
        integers = [int(v * scale) for v in row]
        divisor = math.gcd(*integers) or 1
        first = next((v for v in integers if v), 1)
        sign = 1 if first > 0 else -1
        rows.append([sign * v // divisor for v in integers])
    return np.array(rows, dtype=np.int64).reshape(len(rows), n_rows)


def _extreme_rays(matrix: np.ndarray) -> np.ndarray | None:
    """Extreme rays of {w >= 0 : w^T matrix = 0} (minimal semipositive invariants), shape
    (n_rays, n_rows), primitive integers; ``None`` when there are more than MAX_RAYS, the
    work exceeds MAX_RAY_WORK or the integers grow beyond 2^30.

    The double description method on one equality at a time (Farkas' algorithm for
    Petri-net P-invariants) with the combinatorial adjacency test, which keeps exactly
    the extreme rays of each intermediate cone."""
    n_rows = matrix.shape[0]
    rays = np.eye(n_rows, dtype=np.int64)
    residual = matrix.astype(np.int64).copy()  # rays @ matrix, rows follow ``rays``
    remaining = list(range(matrix.shape[1]))
    while remaining:
        # cheapest column first: fewest positive x negative pairs
        costs = [int((residual[:, j] > 0).sum()) * int((residual[:, j] < 0).sum())
                 for j in remaining]
        j = remaining.pop(int(np.argmin(costs)))
        values = residual[:, j]
        zero, positive, negative = (np.flatnonzero(values == 0), np.flatnonzero(values > 0),
                                    np.flatnonzero(values < 0))
        if len(positive) * len(negative) * len(rays) > MAX_RAY_WORK:
            return None
        if max(np.abs(rays).max(), np.abs(residual).max()) > 2**30:
            return None  # keep the products below in int64
        support = rays > 0
        new_rays, new_residuals = [rays[zero]], [residual[zero]]
        count = len(zero)
        for p in positive:
            for q in negative:
                union = support[p] | support[q]
                inside = ~(support & ~union).any(axis=1)
                if inside.sum() > 2:  # another ray's support lies in the union: not adjacent
                    continue
                ray = -values[q] * rays[p] + values[p] * rays[q]
                res = -values[q] * residual[p] + values[p] * residual[q]
                divisor = np.gcd.reduce(np.concatenate([ray, np.abs(res)]))
                ray, res = ray // divisor, res // divisor
                new_rays.append(ray[None, :])
                new_residuals.append(res[None, :])
                count += 1
                if count > MAX_RAYS:
                    return None
        rays = np.vstack(new_rays)
        residual = np.vstack(new_residuals)
    return rays


def _independent_subset(rays: np.ndarray) -> np.ndarray:
    """A maximal linearly independent subset of ``rays`` (smallest supports first),
    chosen greedily in floating point and confirmed in exact arithmetic."""
    order = sorted(range(len(rays)), key=lambda k: ((rays[k] > 0).sum(), tuple(-rays[k])))
    target = _integer_rank(rays)
    chosen: list[int] = []
    for k in order:
        if len(chosen) == target:
            break
        if np.linalg.matrix_rank(rays[chosen + [k]].astype(float)) > len(chosen):
            chosen.append(k)
    if _integer_rank(rays[chosen]) != target:  # pragma: no cover - float rank misjudged
        chosen = []
        for k in order:
            if _integer_rank(rays[chosen + [k]]) > len(chosen):
                chosen.append(k)
    return rays[chosen]


@dataclass(frozen=True)
class _Laws:
    """Conservation laws on the free (non-fixed) species."""

    basis: np.ndarray          # (n_laws, n_free) int64
    nonnegative: bool
    n_extreme_rays: int | None  # None when the enumeration was abandoned


def _conservation_laws(free_stoichiometry: np.ndarray) -> _Laws:
    """A basis of the left null space of ``free_stoichiometry`` (n_free, n_columns),
    non-negative when the semipositive laws span it, else the integer basis."""
    integer_basis = _integer_left_nullspace(free_stoichiometry)
    if len(integer_basis) == 0:
        return _Laws(integer_basis, True, 0)
    rays = _extreme_rays(free_stoichiometry)
    if rays is not None and len(rays) and _integer_rank(rays) == len(integer_basis):
        return _Laws(_independent_subset(rays), True, len(rays))
    return _Laws(integer_basis, False, None if rays is None else len(rays))


def _class_bounded(basis: np.ndarray, n_free: int) -> bool:
    """Whether a conservation law is positive on every free species (then every
    compatibility class is finite)."""
    if n_free == 0:
        return True
    if len(basis) == 0:
        return False
    # w = basis^T lambda with w >= 1 componentwise
    result = linprog(np.zeros(len(basis)), A_ub=-basis.T.astype(float), b_ub=-np.ones(n_free),
                     bounds=[(None, None)] * len(basis), method="highs")
    return result.status == 0


# -- counting the class ------------------------------------------------------------------------
def _count_lattice_points(basis: np.ndarray, totals: np.ndarray) -> float | None:
    """Number of n >= 0 (integers) with basis n = totals, for a non-negative integer
    ``basis`` (n_laws, n_free) covering every species; ``None`` when too large to count.

    A dynamic programme over partial totals: adding species i with column w multiplies
    the generating function by 1/(1 - z^w), i.e. new[t] = old[t] + new[t - w]."""
    if np.any(np.asarray(totals, dtype=float) < 0):
        return 0.0
    if float(np.log(np.asarray(totals, dtype=float) + 1.0).sum()) > math.log(MAX_COUNT_TABLE):
        return None
    totals = np.asarray(totals, dtype=np.int64)
    shape = tuple(int(t) + 1 for t in totals)
    table = np.zeros(shape)
    table[(0,) * len(shape)] = 1.0
    steps = 0
    for column in basis.T:
        nonzero = np.flatnonzero(column)
        if not len(nonzero):  # a species in no law: infinitely many points
            return None
        k = nonzero[np.argmin(totals[nonzero])]
        w = int(column[k])
        if np.any(column > totals):  # one molecule already exceeds a total
            continue
        if len(shape) == 1:
            for r in range(w):
                table[r::w] = np.cumsum(table[r::w])
            continue
        steps += shape[k]
        if steps > MAX_COUNT_STEPS:
            return None
        for s in range(w, shape[k]):
            target, source = [], []
            for axis, width in enumerate(shape):
                if axis == k:
                    target.append(s)
                    source.append(s - w)
                else:
                    shift = int(column[axis])
                    target.append(slice(shift, width))
                    source.append(slice(0, width - shift))
            table[tuple(target)] += table[tuple(source)]
    return float(table[tuple(int(t) for t in totals)])


def _class_size_bound(basis: np.ndarray, totals: np.ndarray) -> float:
    """Upper bound on the lattice points: prod of (cap + 1) over species that determine
    the state, cap = the smallest total / coefficient over the laws containing the
    species. The laws fix one "pivot" species each (chosen with the largest caps, columns
    of ``basis`` that are independent); the others determine the state."""
    caps = np.full(basis.shape[1], np.inf)
    for law, total in zip(basis, totals):
        inside = law > 0
        caps[inside] = np.minimum(caps[inside], np.floor(total / law[inside]))
    pivots: list[int] = []
    for i in np.argsort(-caps, kind="stable"):
        if len(pivots) < len(basis) and _integer_rank(basis[:, pivots + [int(i)]]) > len(pivots):
            pivots.append(int(i))
    others = np.setdiff1d(np.arange(basis.shape[1]), pivots)
    log_bound = float(np.log(caps[others] + 1.0).sum())
    return math.exp(log_bound) if log_bound < 700 else math.inf  # inf: beyond floats


# -- complexes and their graph -----------------------------------------------------------------
@dataclass(frozen=True)
class _ComplexGraph:
    complexes: np.ndarray  # (n_species, n_complexes)
    source: np.ndarray     # (n_reactions,)
    target: np.ndarray
    linkage: np.ndarray    # (n_complexes,)
    strong: np.ndarray
    terminal: np.ndarray


def _side_vector(network: Network, side, free: np.ndarray) -> tuple[int, ...]:
    vector = np.zeros(len(network.species), dtype=np.int64)
    for species_id, count in side:
        vector[network.species_index[species_id]] += count
    vector[~free] = 0
    return tuple(int(v) for v in vector)


def _complex_graph(network: Network, free: np.ndarray) -> _ComplexGraph:
    index: dict[tuple[int, ...], int] = {}

    def complex_of(side):
        key = _side_vector(network, side, free)
        return index.setdefault(key, len(index))

    pairs = [(complex_of(r.reactants), complex_of(r.products)) for r in network.reactions]
    source = np.array([s for s, _ in pairs], dtype=np.int64).reshape(-1)
    target = np.array([t for _, t in pairs], dtype=np.int64).reshape(-1)
    n = len(index)
    complexes = np.array(list(index), dtype=np.int64).reshape(n, len(network.species)).T
    linkage, strong, terminal = _components(n, source, target)
    return _ComplexGraph(complexes, source, target, linkage, strong, terminal)


def _components(n: int, source: np.ndarray, target: np.ndarray):
    """(linkage class, strong linkage class, terminal flag) of each of ``n`` nodes."""
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=bool)
    graph = coo_matrix((np.ones(len(source)), (source, target)), shape=(n, n)).tocsr()
    _, linkage = connected_components(graph, directed=True, connection="weak")
    _, strong = connected_components(graph, directed=True, connection="strong")
    leaving = np.zeros(strong.max() + 1, dtype=bool)
    crossing = strong[source] != strong[target]
    leaving[strong[source[crossing]]] = True
    return linkage.astype(np.int64), strong.astype(np.int64), ~leaving[strong]


def _composition(vector, species_ids) -> str:
    terms = [f"{int(v)} {s}" if v != 1 else s for v, s in zip(vector, species_ids) if v]
    return " + ".join(terms) or "0"


# -- mass action and complex balance -----------------------------------------------------------
def _effective_constants(network: Network, *, stochastic: bool) -> tuple[np.ndarray | None, str]:
    """Rate constant of each reaction with fixed species folded in, shape (n_reactions,);
    ``(None, reason)`` when some law is not mass action in the reactant complex.

    ``stochastic``: fold fixed species in as (S)_m (what the CME sees) and require
    falling factorials of free species of order > 1 (Anderson-Craciun-Kurtz); otherwise
    as S^m (the rate equations)."""
    values = {sympy.Symbol(p.id): p.value for p in network.parameters}
    fixed_counts = {s.id: s.initial_count for s in network.species if s.fixed}
    constants = np.empty(len(network.reactions))
    for j, reaction in enumerate(network.reactions):
        law = reaction.rate_law
        if getattr(reaction, "burst", None) is not None:
            return None, f"reaction '{reaction.id}' makes a random burst"
        if not isinstance(law, MassAction):
            return None, f"reaction '{reaction.id}' has a general (non-mass-action) law"
        if law.as_written and not stochastic:
            return None, (f"reaction '{reaction.id}' has a law written as falling "
                          "factorials: its rate equation is not mass action")
        orders = dict(law.orders)
        reactants: dict[str, int] = {}
        for species_id, count in reaction.reactants:
            reactants[species_id] = reactants.get(species_id, 0) + count
        if {s: m for s, m in orders.items() if m} != reactants:
            return None, (f"reaction '{reaction.id}' has mass-action orders {orders} that "
                          f"differ from its reactants {reactants}")
        rate = law.rate_constant
        if TIME in rate.free_symbols:
            return None, f"the rate constant of reaction '{reaction.id}' depends on time"
        try:
            value = float(rate.xreplace(values))
        except (TypeError, ValueError):
            return None, f"the rate constant of reaction '{reaction.id}' is not a number"
        if not (np.isfinite(value) and value >= 0):
            return None, f"reaction '{reaction.id}' has rate constant {value}"
        for species_id, order in orders.items():
            if species_id in fixed_counts:
                count = fixed_counts[species_id]
                value *= (float(sympy.ff(round(count), order)) if stochastic and
                          law.falling_factorial else count ** order)
            elif stochastic and not law.falling_factorial and order > 1:
                return None, (f"reaction '{reaction.id}' uses powers n**{order} of "
                              f"'{species_id}', not falling factorials (stochastic mass "
                              "action)")
        constants[j] = value
    return constants, ""


@dataclass(frozen=True)
class _Balance:
    balanced: bool
    reason: str
    equilibrium: np.ndarray | None  # positive complex-balanced equilibrium (n_free,)


def _laplacian_kernel(nodes: np.ndarray, source, target, rates) -> np.ndarray:
    """Positive kernel vector of the Laplacian of one strongly connected class of
    ``nodes`` (edges source -> target with ``rates``), normalised to sum 1."""
    position = {int(c): k for k, c in enumerate(nodes)}
    laplacian = np.zeros((len(nodes), len(nodes)))
    for s, t, k in zip(source, target, rates):
        if int(s) in position:
            laplacian[position[int(t)], position[int(s)]] += k
            laplacian[position[int(s)], position[int(s)]] -= k
    if len(nodes) == 1:
        return np.ones(1)
    scale = np.abs(np.diag(laplacian)).max()
    system = laplacian / scale
    system[0] = 1.0
    rhs = np.zeros(len(nodes))
    rhs[0] = 1.0
    return np.linalg.solve(system, rhs)


def _complex_balance(graph: _ComplexGraph, free: np.ndarray, constants: np.ndarray,
                     deficiency: int) -> _Balance:
    """Whether the mass-action network with ``constants`` admits a positive
    complex-balanced equilibrium, and one such equilibrium (free species)."""
    active = (constants > 0) & (graph.source != graph.target)
    source, target, rates = graph.source[active], graph.target[active], constants[active]
    n_complexes = graph.complexes.shape[1]
    linkage, strong, _ = _components(n_complexes, source, target)
    if len(np.unique(strong)) != len(np.unique(linkage)):
        return _Balance(False, "not weakly reversible (with the reactions of positive rate "
                        "constant): no positive complex-balanced equilibrium exists "
                        "(Horn 1972)", None)
    log_rho = np.empty(n_complexes)
    for component in np.unique(linkage):
        nodes = np.flatnonzero(linkage == component)
        kernel = _laplacian_kernel(nodes, source, target, rates)
        if not np.all(kernel > 0):
            return _Balance(False, "the Laplacian kernel is not positive (numerically "
                            "singular rate constants)", None)
        log_rho[nodes] = np.log(kernel)
    # log x . y_eta - beta_L = log rho_eta for every complex eta in linkage class L
    species = graph.complexes[free].T.astype(float)  # (n_complexes, n_free)
    membership = np.eye(linkage.max() + 1)[linkage] if n_complexes else np.zeros((0, 0))
    system = np.hstack([species, -membership])
    solution, *_ = np.linalg.lstsq(system, log_rho, rcond=None)
    residual = float(np.abs(system @ solution - log_rho).max(initial=0.0))
    if residual > LOG_BALANCE_TOL * max(1.0, float(np.abs(log_rho).max(initial=0.0))):
        theorem = (" (deficiency 0 should make this impossible: numerically extreme rate "
                   "constants?)" if deficiency == 0 else "")
        return _Balance(False, f"weakly reversible with deficiency {deficiency}, but the "
                        f"rate constants admit no complex-balanced equilibrium (the "
                        f"log-linear balance system has residual {residual:.3g}){theorem}",
                        None)
    equilibrium = np.exp(solution[:species.shape[1]])
    if deficiency == 0:
        reason = ("weakly reversible with deficiency 0: complex balanced for all rate "
                  "constants (deficiency zero theorem, Horn 1972, Feinberg 1972)")
    else:
        reason = (f"weakly reversible with deficiency {deficiency}; these rate constants "
                  "admit a complex-balanced equilibrium (checked: inflow = outflow at "
                  "every complex)")
    return _Balance(True, reason, equilibrium)


def _complex_imbalance(graph: _ComplexGraph, free: np.ndarray, constants: np.ndarray,
                       x_free: np.ndarray) -> float:
    """max over complexes of |inflow - outflow| / (inflow + outflow) at ``x_free``."""
    monomials = np.exp(graph.complexes[free].T.astype(float) @ np.log(x_free)) \
        if len(x_free) else np.ones(graph.complexes.shape[1])
    flux = constants * monomials[graph.source]
    n = graph.complexes.shape[1]
    inflow = np.bincount(graph.target, weights=flux, minlength=n)
    outflow = np.bincount(graph.source, weights=flux, minlength=n)
    total = inflow + outflow
    return float(np.max(np.where(total > 0, np.abs(inflow - outflow) / np.where(
        total > 0, total, 1.0), 0.0), initial=0.0))


def _class_equilibrium(anchor: np.ndarray, basis: np.ndarray, initial: np.ndarray
                       ) -> np.ndarray:
    """The point c = anchor * exp(basis^T lambda) with basis c = basis initial, shape
    (n_free,): the complex-balanced equilibrium in the class of ``initial`` (Horn and
    Jackson 1972: one per positive class). Species the class pins at zero get c = 0.

    Minimises the strictly convex f(lambda) = sum anchor exp(basis^T lambda) - lambda .
    totals by damped Newton."""
    c = anchor.astype(float).copy()
    if len(basis) == 0:
        return c
    pinned = _pinned_species(basis, initial)
    keep = ~pinned
    c[pinned] = 0.0
    if not keep.any():
        return c
    rows = scipy.linalg.orth(basis[:, keep].T.astype(float)).T  # orthonormal, same span
    if len(rows) == 0:
        return c
    totals = rows @ initial[keep]
    log_anchor = np.log(anchor[keep])
    start = np.log(np.maximum(initial[keep], 0.5))
    lam = np.linalg.lstsq(rows.T, start - log_anchor, rcond=None)[0]

    def objective(lam):
        return float(np.exp(log_anchor + rows.T @ lam).sum() - lam @ totals)

    scale = max(float(np.abs(totals).max()), 1.0)
    for _ in range(500):
        values = np.exp(log_anchor + rows.T @ lam)
        gradient = rows @ values - totals
        if np.abs(gradient).max() <= 1e-11 * scale:
            break
        hessian = (rows * values) @ rows.T
        step = np.linalg.solve(hessian, -gradient)
        t, current = 1.0, objective(lam)
        # Near the minimum the decrease is below round-off of f: allow that much.
        noise = 1e-13 * max(abs(current), float(values.sum()))
        while objective(lam + t * step) > current + 1e-4 * t * (gradient @ step) + noise \
                and t > 1e-12:
            t *= 0.5
        lam = lam + t * step
    else:
        raise ConvergenceError(f"Newton's method for the equilibrium in the class of the "
                               f"initial state stalled (conservation residual "
                               f"{np.abs(gradient).max():.3g} molecules)")
    c[keep] = np.exp(log_anchor + rows.T @ lam)
    return c


@dataclass(frozen=True)
class _Verdict:
    balanced: bool
    reason: str
    equilibrium: np.ndarray | None  # complex-balanced equilibrium in the class (n_free,)
    imbalance: float                # relative inflow/outflow imbalance checked there


def _balance_verdict(graph: _ComplexGraph, free: np.ndarray, constants: np.ndarray,
                     deficiency: int, basis: np.ndarray, initial: np.ndarray) -> _Verdict:
    """Complex balance (:func:`_complex_balance`), the equilibrium in the class of
    ``initial`` (free species' counts) and the direct check inflow = outflow there."""
    balance = _complex_balance(graph, free, constants, deficiency)
    if not balance.balanced:
        return _Verdict(False, balance.reason, None, math.nan)
    note = ""
    try:
        c = _class_equilibrium(balance.equilibrium, basis, initial)
    except ConvergenceError as error:
        c, note = None, f"; the equilibrium in the class of n0 was not found ({error})"
    # the class's own equilibrium unless the class pins a species at zero
    point = c if c is not None and np.all(c > 0) else balance.equilibrium
    imbalance = _complex_imbalance(graph, free, constants, point)
    if not imbalance <= BALANCE_RTOL:
        return _Verdict(False, f"{balance.reason}; but inflow and outflow differ by a "
                        f"relative {imbalance:.3g} at the computed equilibrium", None,
                        imbalance)
    return _Verdict(True, balance.reason + note, c, imbalance)


def _pinned_species(basis: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """Species that are zero everywhere on {n >= 0 : basis n = basis initial}."""
    pinned = np.zeros(basis.shape[1], dtype=bool)
    totals = basis @ initial
    for i in np.flatnonzero(initial == 0):
        result = linprog(-np.eye(basis.shape[1])[i], A_eq=basis.astype(float), b_eq=totals,
                         bounds=[(0, None)] * basis.shape[1], method="highs")
        pinned[i] = result.status == 0 and -result.fun <= 1e-9
    return pinned


# -- the analysis ------------------------------------------------------------------------------
def _whole_counts(network: Network) -> np.ndarray:
    return np.floor(network.initial_counts + 0.5)


def _burst_directions(network: Network) -> np.ndarray:
    """One column per burst reaction: the unit vector of its burst species."""
    columns = [network.species_index[r.burst.species] for r in network.reactions
               if getattr(r, "burst", None) is not None]
    directions = np.zeros((len(network.species), len(columns)), dtype=np.int64)
    directions[columns, np.arange(len(columns))] = 1
    return directions


def analyze_structure(network: Network) -> StructureResult:
    """Stoichiometry, conservation laws, the compatibility class of the initial state,
    complexes and linkage classes, deficiency and a complex-balance verdict.

    Parameters
    ----------
    network : Network

    Returns
    -------
    StructureResult
        Arrays, ``tables`` (DataFrames) and ``properties`` (``name, value``).
    """
    started = wallclock.perf_counter()
    species_ids = list(network.species_ids)
    free = np.array([not s.fixed for s in network.species], dtype=bool)
    stoichiometry = np.asarray(network.stoichiometry, dtype=np.int64)
    rank = _integer_rank(stoichiometry)
    moves = np.hstack([stoichiometry, _burst_directions(network)])
    laws = _conservation_laws(moves[free])
    # the deterministic quantities use the initial counts as given, the lattice whole ones
    n0 = network.initial_counts
    totals = laws.basis @ n0[free] if len(laws.basis) else np.zeros(0)
    whole_totals = laws.basis @ _whole_counts(network)[free] if len(laws.basis) else totals
    bounded = _class_bounded(laws.basis, int(free.sum()))
    size, kind = _class_size(laws, whole_totals, bounded)

    graph = _complex_graph(network, free)
    n_complexes = graph.complexes.shape[1]
    n_linkage = int(graph.linkage.max(initial=-1) + 1)
    deficiency = n_complexes - n_linkage - rank
    weakly_reversible = (len(np.unique(graph.strong)) == n_linkage)
    mass_action = all(isinstance(r.rate_law, MassAction) for r in network.reactions)
    constants, not_mass_action = _effective_constants(network, stochastic=False)
    equilibrium, imbalance = None, math.nan
    if constants is None:
        balanced, reason = None, f"not applicable: {not_mass_action}"
    else:
        verdict = _balance_verdict(graph, free, constants, deficiency, laws.basis, n0[free])
        balanced, reason, imbalance = verdict.balanced, verdict.reason, verdict.imbalance
        if verdict.equilibrium is not None:
            equilibrium = n0.astype(float).copy()
            equilibrium[free] = verdict.equilibrium
    result_tables = _tables(network, stoichiometry, laws, totals, graph, constants,
                            equilibrium)
    properties = pd.DataFrame([
        ("n_species", len(species_ids)), ("n_fixed_species", int((~free).sum())),
        ("n_reactions", len(network.reactions)), ("rank", rank),
        ("n_conservation_laws", len(laws.basis)),
        ("nonnegative_conservation_basis", laws.nonnegative),
        ("n_semipositive_extreme_laws", laws.n_extreme_rays),
        ("class_bounded", bounded), ("class_size", size), ("class_size_kind", kind),
        ("n_complexes", n_complexes), ("n_linkage_classes", n_linkage),
        ("n_strong_linkage_classes", len(np.unique(graph.strong))),
        ("n_terminal_strong_linkage_classes", len(np.unique(graph.strong[graph.terminal]))),
        ("deficiency", deficiency), ("weakly_reversible", weakly_reversible),
        ("reversible", _reversible(graph)), ("mass_action", mass_action),
        ("n_events", len(network.events)),
        ("complex_balanced", balanced), ("complex_balance_reason", reason),
        ("complex_imbalance", imbalance),
    ], columns=["name", "value"])
    full_basis = np.zeros((len(laws.basis), len(species_ids)), dtype=np.int64)
    full_basis[:, free] = laws.basis
    return StructureResult(
        network=network, stoichiometry=stoichiometry, rank=rank,
        conservation_matrix=full_basis, conservation_totals=np.asarray(totals, dtype=float),
        nonnegative_basis=laws.nonnegative, complex_matrix=graph.complexes,
        source_complex=graph.source, target_complex=graph.target,
        linkage_class=graph.linkage, strong_linkage_class=graph.strong,
        terminal=graph.terminal, deficiency=deficiency, weakly_reversible=weakly_reversible,
        mass_action=mass_action, complex_balanced=balanced, complex_balance_reason=reason,
        class_bounded=bounded, class_size=size, class_size_kind=kind,
        equilibrium=equilibrium, tables=result_tables, properties=properties,
        run_info={"wall_time": wallclock.perf_counter() - started})


def _class_size(laws: _Laws, totals: np.ndarray, bounded: bool) -> tuple[float, str]:
    if not bounded:
        return math.inf, "infinite"
    if laws.basis.shape[1] == 0:
        return 1.0, "exact"
    exact = _count_lattice_points(laws.basis, totals) if laws.nonnegative else None
    if exact is not None and exact < 2.0**53:
        return exact, "exact"
    return _class_size_bound(laws.basis, totals) if laws.nonnegative else math.nan, \
        "upper bound"


def _reversible(graph: _ComplexGraph) -> bool:
    edges = {(int(s), int(t)) for s, t in zip(graph.source, graph.target) if s != t}
    return all((t, s) in edges for s, t in edges)


def _tables(network, stoichiometry, laws, totals, graph, constants, equilibrium):
    species_ids = np.array(network.species_ids, dtype=object)
    free_ids = species_ids[[not s.fixed for s in network.species]]
    reactant, product = network.reactant_stoichiometry, network.product_stoichiometry
    i, j = np.nonzero((reactant != 0) | (product != 0) | (stoichiometry != 0))
    reaction_ids = np.array(network.reaction_ids, dtype=object)
    stoichiometry_frame = pd.DataFrame({
        "species": species_ids[i], "reaction": reaction_ids[j],
        "reactant": reactant[i, j], "product": product[i, j],
        "net_change": stoichiometry[i, j]})
    laws_frame = pd.DataFrame({
        "law": [f"L{k + 1}" for k in range(len(laws.basis))],
        "expression": [_law_text(w, free_ids) for w in laws.basis],
        "total": np.asarray(totals, dtype=float),
        "non_negative": [bool(np.all(w >= 0)) for w in laws.basis],
        "n_species": [int(np.count_nonzero(w)) for w in laws.basis]})
    complex_ids = np.array([f"C{k + 1}" for k in range(graph.complexes.shape[1])], dtype=object)
    complexes_frame = pd.DataFrame({
        "complex": complex_ids,
        "composition": [_composition(v, network.species_ids) for v in graph.complexes.T],
        "linkage_class": graph.linkage + 1, "strong_linkage_class": graph.strong + 1,
        "terminal": graph.terminal})
    reactions_frame = pd.DataFrame({
        "reaction": reaction_ids, "source_complex": complex_ids[graph.source],
        "target_complex": complex_ids[graph.target],
        "equation": [f"{_composition(graph.complexes[:, s], network.species_ids)} -> "
                     f"{_composition(graph.complexes[:, t], network.species_ids)}"
                     for s, t in zip(graph.source, graph.target)],
        "mass_action": [isinstance(r.rate_law, MassAction) for r in network.reactions],
        "rate_constant": constants if constants is not None else np.nan})
    tables = {"stoichiometry": stoichiometry_frame, "conservation_laws": laws_frame,
              "complexes": complexes_frame, "reactions": reactions_frame,
              "linkage_classes": _linkage_frame(graph, complex_ids)}
    if equilibrium is not None:
        tables["equilibrium"] = pd.DataFrame({"species": species_ids, "count": equilibrium})
    return tables


def _linkage_frame(graph: _ComplexGraph, complex_ids) -> pd.DataFrame:
    rows = []
    for component in range(graph.linkage.max(initial=-1) + 1):
        nodes = np.flatnonzero(graph.linkage == component)
        edges = np.flatnonzero(np.isin(graph.source, nodes) & (graph.source != graph.target))
        differences = (graph.complexes[:, graph.target[edges]]
                       - graph.complexes[:, graph.source[edges]]).T
        rank = _integer_rank(differences) if len(edges) else 0
        rows.append({"linkage_class": component + 1, "n_complexes": len(nodes),
                     "complexes": ", ".join(complex_ids[nodes]),
                     "n_strong_linkage_classes": len(np.unique(graph.strong[nodes])),
                     "strongly_connected": len(np.unique(graph.strong[nodes])) == 1,
                     "rank": rank, "deficiency": len(nodes) - 1 - rank})
    return pd.DataFrame(rows, columns=["linkage_class", "n_complexes", "complexes",
                                       "n_strong_linkage_classes", "strongly_connected",
                                       "rank", "deficiency"])


def _law_text(law, species_ids) -> str:
    terms = []
    for coefficient, species_id in zip(law, species_ids):
        if coefficient == 0:
            continue
        sign = "-" if coefficient < 0 else "+"
        size = abs(int(coefficient))
        terms.append(f"{sign} {size} {species_id}" if size != 1 else f"{sign} {species_id}")
    text = " ".join(terms)
    return text[2:] if text.startswith("+ ") else text


# -- the product-form stationary law -----------------------------------------------------------
def product_form_stationary(network: Network, *, tol: float = 1e-12,
                            max_states: int | None = None) -> CMEResult:
    """Exact stationary law of a complex-balanced mass-action network (Anderson, Craciun
    and Kurtz 2010): pi(n) = M prod_i c_i^{n_i} / n_i! on the states reachable from the
    initial state, with c the complex-balanced equilibrium (molecules) of the rate
    equations ``c_j prod n^m`` with the network's own stochastic constants c_j.

    Parameters
    ----------
    network : Network
        Every law mass action (falling factorials); no events, no bursts.
    tol : float
        For an infinite compatibility class: the bound on the probability outside the
        returned (truncated) states. A finite class is returned whole (error 0).
    max_states : int, optional
        Refuse larger state sets (default: what fits in a quarter of the memory).

    Returns
    -------
    CMEResult
        Like :func:`~sbml_cme.analyses.cme.stationary_cme`: ``times == [inf]``, one
        distribution (states (n_states, n_species), probabilities (n_states,), lower
        bounds of the exact law summing to 1 - ``error_bound``).

    Raises
    ------
    UnsupportedFeatureError
        A law that is not stochastic mass action, events or bursts.
    NotComplexBalancedError
        The network with these rate constants has no complex-balanced equilibrium.
    StateSpaceTooLargeError
        More than ``max_states`` states.
    """
    from .cme import default_max_states

    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise OptionsError(f"tol must be between 0 and 1, got {tol!r}")
    started = wallclock.perf_counter()
    max_states = int(max_states or default_max_states())
    _check_product_form_support(network)
    constants, reason = _effective_constants(network, stochastic=True)
    if constants is None:
        element = reason.split("'")[1] if "'" in reason else None
        raise UnsupportedFeatureError(
            "a law that is not stochastic mass action", element,
            analysis="product_form_stationary",
            hint=f"{reason[0].upper()}{reason[1:]}; use stationary_cme instead.")
    free = np.array([not s.fixed for s in network.species], dtype=bool)
    rank = _integer_rank(np.asarray(network.stoichiometry))
    graph = _complex_graph(network, free)
    deficiency = graph.complexes.shape[1] - int(graph.linkage.max(initial=-1) + 1) - rank
    n0 = _whole_counts(network).astype(np.int64)
    laws = _conservation_laws(np.asarray(network.stoichiometry)[free])
    verdict = _balance_verdict(graph, free, constants, deficiency, laws.basis,
                               n0[free].astype(float))
    if not verdict.balanced:
        raise NotComplexBalancedError(
            f"the product-form stationary law needs a complex-balanced network: "
            f"{verdict.reason}. Use stationary_cme instead.")
    if verdict.equilibrium is None:
        raise ConvergenceError(f"{verdict.reason.split('; ')[-1]}; use stationary_cme "
                               "instead.")
    means = n0.astype(float)
    means[free] = verdict.equilibrium
    states, probabilities, error = _product_form_law(network, means, free, n0, tol,
                                                     max_states)
    from ..kinetics import compile_network
    from .cme import output_values

    compiled = compile_network(network)
    outputs = output_values(compiled, states, network.parameter_values, np.inf)
    return CMEResult(network=network, times=np.array([np.inf]),
                     distributions=((states, probabilities),), error_bounds=np.array([error]),
                     outputs=(outputs,), run_info={
                         "method": "product form (Anderson-Craciun-Kurtz)", "tol": tol,
                         "max_states": max_states, "n_states": len(states),
                         "equilibrium": dict(zip(network.species_ids, means.tolist())),
                         "complex_balance_reason": verdict.reason,
                         "complex_imbalance": verdict.imbalance, "tail_mass": error,
                         "wall_time": wallclock.perf_counter() - started,
                         "stationary": True})


def _check_product_form_support(network: Network) -> None:
    if network.events:
        raise UnsupportedFeatureError("events", network.events[0].id,
                                      analysis="product_form_stationary",
                                      hint="A stationary law ignores transients; remove events.")


def _product_form_law(network: Network, means: np.ndarray, free: np.ndarray, n0: np.ndarray,
                      tol: float, max_states: int):
    """(states, probabilities, error bound) of the product of Poissons with ``means``
    restricted to the states reachable from ``n0``.

    A finite class is enumerated whole and normalised (error 0). Otherwise species
    without a conservation cap are truncated at b_i with P(Poisson(c_i) > b_i) small;
    with mu the unrestricted product measure, Z its mass on the reachable class and
    T = sum_i P(N_i > b_i) >= mu(class outside the box), the returned mu / (Z_box + T)
    are lower bounds of the exact law whose missing mass is at most T / (Z_box + T)."""
    from ..kinetics import compile_network
    from .cme import _key_layout, conservation_bounds, enumerate_states

    compiled = compile_network(network)
    caps = conservation_bounds(network, n0)
    truncated = free & ~np.isfinite(caps)
    bounds = np.full(len(network.species), -1, dtype=np.int64)
    target = tol / max(int(truncated.sum()), 1)
    for _ in range(30):
        tails = np.zeros(len(network.species))
        limits = poisson.isf(target, means[truncated]).astype(np.int64)
        limits = np.maximum(limits, n0[truncated])
        bounds[truncated] = limits
        tails[truncated] = poisson.sf(limits, means[truncated])
        # enumerate a little beyond the box, so that states of the box reached through an
        # excursion outside it are found
        search = bounds.copy()
        search[truncated] = np.ceil(limits * 1.25 + 10).astype(np.int64)
        key_species, radix, estimate = _key_layout(network, search, caps, n0)
        if radix is None:  # beyond int64 codes; otherwise only the states found count
            _guard_states(estimate, 0)
        space = enumerate_states(compiled, n0[None, :], search, key_species, radix,
                                 network.parameter_values, max_states, 1)
        inside = np.all(space.states[:, truncated] <= limits, axis=1)
        states = space.states[inside]
        log_weights = poisson.logpmf(states[:, free], means[free]).sum(axis=1)
        log_box = logsumexp(log_weights)
        tail = float(tails.sum())
        if tail == 0.0:
            return states, np.exp(log_weights - log_box), 0.0
        log_total = np.logaddexp(log_box, math.log(tail))
        error = float(math.exp(math.log(tail) - log_total))
        if error <= tol:
            return states, np.exp(log_weights - log_total), error
        target *= max(math.exp(log_box), 1e-300) * 0.5
    raise StateSpaceTooLargeError(f"the product-form law could not be truncated to "
                                  f"tol={tol:g}")


def _guard_states(estimate: float, max_states: int) -> None:
    if estimate > max_states:
        raise StateSpaceTooLargeError(
            f"the product-form law needs up to {estimate:.3g} states; the limit is "
            f"{max_states:.3g} (max_states=). Its marginals are Poisson (or multinomial "
            "on a conservation law): use analyze_structure(...).equilibrium for the means.")


__all__ = ["StructureResult", "analyze_structure", "product_form_stationary"]
