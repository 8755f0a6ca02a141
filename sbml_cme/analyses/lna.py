"""The linear noise approximation (LNA): means and covariances of molecule counts.

Owns the rate equations' steady state search, the exact (symbolic) Jacobian of the
deterministic propensities, the conservation-law reduction (link matrix) and the
Lyapunov / covariance-ODE solutions. THEORY.md section 5.

Conventions (molecule counts throughout):

- Rate equations dx/dt = S a(x), a = the deterministic limit of each propensity.
- J = S da/dx, D = S diag(a) S^T.
- Conservation laws: independent species x_r (rows of S that are linearly
  independent), S = L S_r with the link matrix L, x = x0 + L (x_r - x0_r); the conserved
  totals come from the initial state. Boundary and constant species have zero rows in S,
  so they stay at their initial counts with zero variance.
- Steady state (``times=None``): ``times == [inf]``; J_r C_r + C_r J_r^T + D_r = 0,
  C = L C_r L^T. The steady state is found by following the rate equations (BDF, exact
  Jacobian) and polishing with damped Newton iterations (:func:`find_steady_state`).
  Species that no rate law reads and whose net change is not a combination of the read
  species' (sinks, drains, counters) have no stationary law: NaN, with a warning
  (:func:`stationary_reduction`).
- Time-dependent: phi' = S a(phi), C_r' = J_r C_r + C_r J_r^T + D_r from C_r(t0) = 0
  (the initial state is deterministic).

Supported: reversible reactions, general kinetic laws, assignment-rule outputs (delta
method: mean f(phi), covariance G C G^T with G = df/dx), explicitly time-dependent
propensities and rate rules of time on parameters (time-dependent LNA only: the
rate-rule parameters are deterministic functions of time, integrated with the mean by
``driven.integrate_drive``, with zero variance; a rule that reads a discrete species is
refused, docs/lna-cle.md), bursts (drift with E[B], diffusion with the
second moment of each jump: D = S diag(a) S^T + sum_j a_j Var(B_j) e_s e_s^T, S the mean
stoichiometry; docs/bursts.md). Refused: events (an assignment is a
jump of the mean that the LNA's Gaussian does not follow), with an
UnsupportedFeatureError naming the event.
"""

from __future__ import annotations

import math
import time as wallclock
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.linalg
import scipy.sparse
import sympy
from scipy.integrate import BDF, solve_ivp

from ..errors import AnalysisError, ConvergenceError, UnsupportedFeatureError
from ..kinetics import all_propensities, compile_expressions, compile_network, refuse_randomness
from ..network import TIME, Network
from ..results import LNAResult
from .deterministic import _check_times
from .driven import check_time_driven, integrate_drive

#: Relative flux imbalance |S a| / (|S| a) accepted at a steady state.
STEADY_STATE_RTOL = 1e-8
#: Checkpoints of the approach to the steady state: t_k = HORIZON_START * 10**k / rho.
HORIZON_START = 10.0
HORIZON_DECADES = 12
#: Rate evaluations one time-dependent integration may spend (a blow-up stops here).
INTEGRATION_BUDGET = 20_000
#: Right-hand-side evaluations the approach may spend before giving up (oscillators).
APPROACH_BUDGET = 6_000
#: The Newton-polished point must lie this close (relative) to the trajectory's end.
PROXIMITY = 1e-2
#: Tolerances of the approach (BDF): rtol, and atol relative to each count (at least the
#: median non-zero initial count) at the start of a checkpoint interval.
APPROACH_RTOL = 1e-4
APPROACH_ATOL = 1e-6
#: Newton iterations per polish, and the negative count (relative to the largest) that
#: still counts as zero.
NEWTON_ITERATIONS = 30
NEGATIVE_TOLERANCE = 1e-9


# -- exact derivatives, built once per network --------------------------------------------------
class _Programs:
    """Expressions over (counts, parameters, time) compiled to the kinetics bytecode and
    evaluated together by the compiled propensity kernel (one call, no per-model code).

    Evaluation follows the propensities' arithmetic (0**-1 = inf, never an exception).
    """

    def __init__(self, network: Network, expressions, owners):
        self.expressions = tuple(expressions)
        self.size = len(self.expressions)
        if not self.size:
            return
        programs = _compile(network, self.expressions, owners)
        self.kernel = compile_network(network).data._replace(
            kind=np.ones(self.size, dtype=np.int64), program_start=programs.bounds[:, 0].copy(),
            program_end=programs.bounds[:, 1].copy(), ops=programs.ops, args=programs.args,
            constants=programs.constants, stack_size=programs.stack_size)

    def values(self, x: np.ndarray, p: np.ndarray, t: float) -> np.ndarray:
        """Values of every expression, shape (size,)."""
        out = np.empty(self.size)
        if self.size:
            all_propensities(self.kernel, np.ascontiguousarray(x, dtype=float), p, float(t),
                             True, out)
        return out


def _compile(network: Network, expressions, owners):
    try:
        return compile_expressions(network, expressions)
    except UnsupportedFeatureError as error:
        for expression, owner in zip(expressions, owners):  # name the culprit
            try:
                compile_expressions(network, [expression])
            except UnsupportedFeatureError:
                raise UnsupportedFeatureError(
                    f"a kinetic law whose derivative uses {error.feature}", owner,
                    analysis="solve_lna",
                    hint="Use simulate_cle or simulate_ssa instead.") from None
        raise


class _SparseGradient:
    """Exact non-zero partial derivatives d f_row / d x_column of general expressions.

    Each derivative is taken by sympy with the count as a positive symbol and
    simplified (powers of the count combined), so that a law such as
    x^n / (K^n + x^n) has the derivative n K^n x^(n-1) / (K^n + x^n)^2, defined at x = 0,
    instead of n K^n x^n / (x (K^n + x^n)^2) = 0/0. An entry that still evaluates to NaN
    (an undefined quotient at zero counts) is replaced by its limit as the zero counts
    tend to 0 from above, one at a time (:func:`_limit_at`); it stays NaN if sympy
    finds none.
    """

    def __init__(self, network: Network, expressions):
        index = network.species_index
        rows, columns, entries, owners = [], [], [], []
        for row, (owner, expression) in enumerate(expressions):
            for species, derivative in _species_derivatives(expression, index):
                if derivative.has(sympy.Derivative, sympy.Subs):
                    raise UnsupportedFeatureError(
                        "a kinetic law that cannot be differentiated symbolically", owner,
                        analysis="solve_lna", hint="Use simulate_cle or simulate_ssa instead.")
                rows.append(row)
                columns.append(species)
                entries.append(derivative)
                owners.append(owner)
        self.network = network
        self.rows = np.array(rows, dtype=np.int64)
        self.columns = np.array(columns, dtype=np.int64)
        self.programs = _Programs(network, entries, owners)

    def values(self, x: np.ndarray, p: np.ndarray, t: float) -> np.ndarray:
        """Entry values, shape (n_entries,); limits where the direct value is NaN."""
        values = self.programs.values(x, p, t)
        undefined = np.flatnonzero(np.isnan(values)) if np.all(np.isfinite(x)) else ()
        for k in undefined:
            values[k] = _limit_at(self.programs.expressions[k], self.network, x, p, t)
        return values


def _species_derivatives(expression: sympy.Expr, index):
    """Non-zero (species index, d expression / d count) pairs, with x**n / x combined to
    x**(n - 1) (counts are taken positive, so the result holds at x >= 0 by continuity)."""
    linear = _linear_coefficients(expression, index)
    if linear is not None:
        return linear
    fractional = any(not power.exp.is_Integer for power in expression.atoms(sympy.Pow))
    counts = {symbol: sympy.Dummy(symbol.name, positive=True) if fractional else symbol
              for symbol in expression.free_symbols if symbol.name in index}
    positive = expression.xreplace(counts)
    back = {dummy: symbol for symbol, dummy in counts.items()}
    pairs = []
    for symbol, dummy in sorted(counts.items(), key=lambda item: index[item[0].name]):
        derivative = _diff(positive, dummy)
        if derivative == 0:
            continue
        if fractional:
            derivative = sympy.powsimp(sympy.expand_power_base(derivative)).xreplace(back)
        pairs.append((index[symbol.name], derivative))
    return pairs


def _linear_coefficients(expression: sympy.Expr, index):
    """[(species index, coefficient)] when ``expression`` is a constant plus numbers times
    counts (sums of species, the commonest rule output); otherwise None."""
    pairs = []
    for term in sympy.Add.make_args(expression):
        coefficient, rest = term.as_coeff_Mul()
        if rest.is_Symbol and rest.name in index:
            pairs.append((index[rest.name], coefficient))
        elif not (rest.free_symbols & {sympy.Symbol(s) for s in index}) and rest.is_number:
            continue
        else:
            return None
    return sorted(pairs)


def _diff(expression: sympy.Expr, symbol) -> sympy.Expr:
    """d expression / d symbol; a Piecewise is differentiated piece by piece (chain rule)
    without sympy re-deriving its conditions, which is slow and changes nothing."""
    pieces = {piece: sympy.Dummy() for piece in expression.atoms(sympy.Piecewise)
              if symbol in piece.free_symbols}
    if not pieces:
        return expression.diff(symbol)
    outer = expression.xreplace(pieces)
    derivative = outer.diff(symbol)
    for piece, dummy in pieces.items():
        inner = sympy.Piecewise(*[(_diff(value, symbol), condition)
                                  for value, condition in piece.args], evaluate=False)
        derivative += outer.diff(dummy) * inner
    return derivative.xreplace({dummy: piece for piece, dummy in pieces.items()})


def _limit_at(expression: sympy.Expr, network: Network, x, p, t) -> float:
    """The value of ``expression`` at counts ``x`` as the limit from positive counts."""
    values = {sympy.Symbol(pid): float(v) for pid, v in zip(network.parameter_ids, p)}
    values[TIME] = float(t)
    zeros = []
    for sid, count in zip(network.species_ids, x):
        if count == 0.0:
            zeros.append(sympy.Symbol(sid))
        else:
            values[sympy.Symbol(sid)] = float(count)
    try:
        value = expression.xreplace(values)
        for symbol in zeros:
            if symbol in value.free_symbols:
                value = sympy.limit(value, symbol, 0, "+")
        value = complex(value)
    except (TypeError, ValueError, NotImplementedError, ZeroDivisionError):
        return math.nan
    return value.real if value.imag == 0 else math.nan


class _MassActionGradient:
    """da/dx of the mass-action channels from the kernel's arrays, without sympy:
    d/dx_s (c prod_i x_i^m_i) = c m_s x_s^(m_s - 1) prod_{i != s} x_i^m_i."""

    def __init__(self, network: Network):
        data = compile_network(network).data
        n_species = len(network.species)
        rows, columns, coefficients, others = [], [], [], []
        for j in np.flatnonzero(data.kind == 0):
            orders: dict[int, int] = {}
            for k in range(data.reactant_ptr[j], data.reactant_ptr[j + 1]):
                species = int(data.reactant_species[k])
                orders[species] = orders.get(species, 0) + int(data.reactant_order[k])
            for species, order in orders.items():
                rows.append(j)
                columns.append(species)
                coefficients.append(data.rate_constant[j] * order)
                others.append([(i, m) for i, m in orders.items() if i != species] +
                              [(species, order - 1)])
        width = max((len(o) for o in others), default=1)
        self.rows = np.array(rows, dtype=np.int64)
        self.columns = np.array(columns, dtype=np.int64)
        self.coefficients = np.array(coefficients, dtype=float)
        # Factors padded with the extra slot n_species, which holds 1.0.
        self.factor_species = np.full((len(rows), width), n_species, dtype=np.int64)
        self.factor_orders = np.zeros((len(rows), width))
        for e, factors in enumerate(others):
            for position, (i, m) in enumerate(factors):
                self.factor_species[e, position], self.factor_orders[e, position] = i, m

    def values(self, x: np.ndarray) -> np.ndarray:
        """Entry values, shape (n_entries,), 1/time (0**0 = 1)."""
        extended = np.append(np.asarray(x, dtype=float), 1.0)
        return self.coefficients * np.prod(extended[self.factor_species] ** self.factor_orders,
                                           axis=1)


@dataclass(frozen=True)
class Derivatives:
    """Exact derivatives of a network's deterministic propensities and rule outputs.

    Attributes
    ----------
    mass_action : _MassActionGradient
        Entries of da/dx of the mass-action channels (numeric, from the kernel arrays).
    general : _SparseGradient
        Entries of da/dx of the general kinetic laws (symbolic, compiled).
    outputs : _Programs
        The rule outputs' formulas.
    output_gradient_entries : _SparseGradient
        Entries of d(outputs)/dx.
    """

    mass_action: _MassActionGradient
    general: _SparseGradient
    outputs: _Programs
    output_gradient_entries: _SparseGradient

    @property
    def species_read(self) -> np.ndarray:
        """Indices of the species some deterministic propensity depends on."""
        return np.union1d(self.mass_action.columns, self.general.columns)

    @property
    def entry_rows(self) -> np.ndarray:
        """Channel of each entry of :meth:`propensity_entries`, shape (n_entries,)."""
        return np.concatenate([self.mass_action.rows, self.general.rows])

    @property
    def entry_columns(self) -> np.ndarray:
        """Species of each entry of :meth:`propensity_entries`, shape (n_entries,)."""
        return np.concatenate([self.mass_action.columns, self.general.columns])

    def propensity_entries(self, x, p, t) -> np.ndarray:
        """The non-zero entries of da/dx at counts ``x``, shape (n_entries,), 1/time, at
        (:attr:`entry_rows`, :attr:`entry_columns`); each pair occurs once."""
        with np.errstate(all="ignore"):
            return np.concatenate([self.mass_action.values(x), self.general.values(x, p, t)])

    def propensity_jacobian(self, x, p, t, n_channels: int, n_species: int) -> np.ndarray:
        """da/dx at counts ``x`` (n_species,), shape (n_channels, n_species), 1/time."""
        jacobian = np.zeros((n_channels, n_species))
        jacobian[self.entry_rows, self.entry_columns] = self.propensity_entries(x, p, t)
        return jacobian

    def output_values(self, x, p, t) -> np.ndarray:
        """Rule outputs at counts ``x``, shape (n_outputs,)."""
        with np.errstate(all="ignore"):
            return self.outputs.values(x, p, t)

    def output_gradient(self, x, p, t, n_outputs: int, n_species: int) -> np.ndarray:
        """d(outputs)/dx, shape (n_outputs, n_species)."""
        gradient = np.zeros((n_outputs, n_species))
        entries = self.output_gradient_entries
        with np.errstate(all="ignore"):
            gradient[entries.rows, entries.columns] = entries.values(x, p, t)
        return gradient


def derivatives(network: Network) -> Derivatives:
    """Differentiate the network's deterministic propensities once (cached by hash)."""
    return _derivatives_cached(network)


@lru_cache(maxsize=32)
def _derivatives_cached(network: Network) -> Derivatives:
    kind = compile_network(network).data.kind
    # kind 2 (falling factorials as written) is differentiated symbolically, like kind 1.
    general = [(r.id, r.rate_law.deterministic_limit()) if kind[j] != 0 else (r.id, sympy.S.Zero)
               for j, r in enumerate(network.reactions)]
    return Derivatives(
        mass_action=_MassActionGradient(network),
        general=_SparseGradient(network, general),
        outputs=_Programs(network, [o.formula for o in network.outputs],
                          [o.id for o in network.outputs]),
        output_gradient_entries=_SparseGradient(network, [(o.id, o.formula)
                                                          for o in network.outputs]))


# -- conservation laws --------------------------------------------------------------------------
@dataclass(frozen=True)
class Reduction:
    """Independent species and the link matrix of a network.

    Attributes
    ----------
    independent : ndarray of int, shape (n_independent,)
        Species indices whose rows of S are linearly independent.
    link : ndarray, shape (n_species, n_independent)
        L with S = L S_r; L restricted to ``independent`` is the identity.
    reduced_stoichiometry : ndarray, shape (n_independent, n_reactions)
        S_r, the rows ``independent`` of S.
    undetermined : ndarray of int, shape (n_undetermined,)
        Species whose rows of S are not combinations of the rows ``independent`` (only
        when the independent species were chosen among some candidates); their link rows
        are zero and their counts are not followed.
    """

    independent: np.ndarray
    link: np.ndarray
    reduced_stoichiometry: np.ndarray
    undetermined: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def full_state(self, initial: np.ndarray, reduced: np.ndarray) -> np.ndarray:
        """Counts x = x0 + L (x_r - x0_r), shape (n_species,)."""
        return initial + self.link @ (reduced - initial[self.independent])


def conservation_reduction(network: Network, candidates=None) -> Reduction:
    """Split the species into independent ones and the link matrix (Gram-Schmidt with
    pivoting, :func:`_independent_rows`).

    With bursts, S is the mean stoichiometry and the reduction is taken on the span of
    every possible jump (``Network.jump_span``), so each jump J satisfies J = L J_r.

    Parameters
    ----------
    candidates : array_like of int, optional
        Choose the independent species among these (default: all). Species whose rows of
        S are not combinations of the candidates' rows are returned as ``undetermined``.
    """
    span = np.asarray(network.jump_span, dtype=float)
    n_species = span.shape[0]
    rows = np.arange(n_species) if candidates is None else np.asarray(candidates, dtype=np.int64)
    independent, basis = _independent_rows(span[rows])
    independent = np.sort(rows[independent])
    reduced = span[independent]
    # Coordinates in the orthonormal basis Q of span(reduced): span Q^T = L (reduced Q^T).
    coordinates = np.einsum("ij,kj->ik", span, basis)
    square = np.einsum("ij,kj->ik", reduced, basis)
    link = (np.linalg.solve(square.T, coordinates.T).T if len(independent)
            else np.zeros((n_species, 0)))
    residual = np.abs(span - np.einsum("ik,kj->ij", link, reduced)).max(axis=1, initial=0.0)
    undetermined = np.flatnonzero(residual > 1e-9 * max(1.0, np.abs(span).max(initial=0.0)))
    link[np.abs(link) < 1e-12] = 0.0
    link[undetermined] = 0.0
    link[independent] = np.eye(len(independent))
    mean = np.asarray(network.mean_stoichiometry, dtype=float)
    return Reduction(independent, link, mean[independent], undetermined)


def _independent_rows(matrix: np.ndarray):
    """Linearly independent rows of ``matrix`` (n_rows, n_columns) by Gram-Schmidt with
    pivoting (the row with the largest remaining norm first: QR with column pivoting of
    the transpose). Returns (row indices, orthonormal basis (rank, n_columns) of their
    span). Plain numpy arithmetic, no LAPACK: see RateEquations on threads."""
    residual = matrix.astype(float).copy()
    tolerance = 1e-10 * max(1.0, np.abs(matrix).max(initial=0.0)) * max(matrix.shape, default=1)
    chosen, basis = [], []
    for _ in range(min(matrix.shape)):
        norms = np.sqrt(np.einsum("ij,ij->i", residual, residual))
        best = int(np.argmax(norms))
        if not norms[best] > tolerance:
            break
        direction = residual[best] / norms[best]
        chosen.append(best)
        basis.append(direction)
        residual -= np.multiply.outer(np.einsum("ij,j->i", residual, direction), direction)
        residual[best] = 0.0
    basis = np.array(basis) if basis else np.zeros((0, matrix.shape[1]))
    return np.array(chosen, dtype=np.int64), basis


def stationary_reduction(network: Network, species_read: np.ndarray) -> Reduction:
    """The reduction for the steady state: the rate equations of the species the
    propensities read (``species_read``, indices) are autonomous, and a species no
    propensity reads whose row of S is outside their span (a sink that accumulates, a
    source that drains, a counter) has no steady state of its own: it is left
    ``undetermined``. Without such species this is :func:`conservation_reduction`."""
    restricted = conservation_reduction(network, species_read)
    return restricted if len(restricted.undetermined) else conservation_reduction(network)


# -- the reduced rate equations -----------------------------------------------------------------
class RateEquations:
    """Rate equations on the independent species, with exact Jacobian and diffusion.

    ``stationary=True`` uses :func:`stationary_reduction` (for the steady state). ``drive``
    (:class:`~sbml_cme.analyses.driven.Drive`) gives the rate-rule parameters as functions
    of time; without one the parameters are the network's values."""

    def __init__(self, network: Network, stationary: bool = False, drive=None):
        self.network = network
        self.compiled = compile_network(network)
        self.derivatives = derivatives(network)
        self.reduction = (stationary_reduction(network, self.derivatives.species_read)
                          if stationary else conservation_reduction(network))
        self.initial = network.initial_counts
        self.parameters = network.parameter_values
        self.drive = drive
        self.n_species = len(network.species)
        self.n_channels = len(network.reactions)
        self.evaluations = 0
        self.burst_noise = _burst_noise(network, self.reduction)
        # Sparse matrix products (the Jacobian, the diffusion): no multithreaded BLAS for
        # these small, sparse matrices (on a loaded machine its threads cost more than the
        # arithmetic). Matrix-vector products stay dense (single-threaded, cheaper).
        self._stoichiometry = scipy.sparse.csr_matrix(self.reduction.reduced_stoichiometry)
        self._turnover = np.abs(self.reduction.reduced_stoichiometry)
        self._link = scipy.sparse.csr_matrix(self.reduction.link)
        self._entries = (self.derivatives.entry_rows, self.derivatives.entry_columns)

    def state(self, reduced: np.ndarray) -> np.ndarray:
        """Full counts from independent counts, shape (n_species,)."""
        return self.reduction.full_state(self.initial, reduced)

    def parameters_at(self, t: float) -> np.ndarray:
        """Parameter values at time ``t`` (model units), shape (n_parameters,)."""
        return self.parameters if self.drive is None else self.drive.parameters(t)

    def propensities(self, x: np.ndarray, t: float) -> np.ndarray:
        """Deterministic propensities at counts ``x``, shape (n_channels,), 1/time."""
        rates = np.empty(self.n_channels)
        all_propensities(self.compiled.data, np.ascontiguousarray(x, dtype=float),
                         self.parameters_at(t), float(t), True, rates)
        return rates

    def rhs(self, t: float, reduced: np.ndarray) -> np.ndarray:
        """d x_r / dt, shape (n_independent,), molecules/time."""
        self.evaluations += 1
        return self.reduction.reduced_stoichiometry @ self.propensities(self.state(reduced), t)

    def jacobian(self, t: float, reduced: np.ndarray) -> np.ndarray:
        """J_r = S_r (da/dx) L, shape (n_independent, n_independent), 1/time; NaN where
        an undefined derivative enters."""
        values = self.derivatives.propensity_entries(self.state(reduced),
                                                     self.parameters_at(t), t)
        undefined = np.isnan(values)
        shape = (self.n_channels, self.n_species)
        propensity_jacobian = scipy.sparse.csr_matrix(
            (np.where(undefined, 0.0, values), self._entries), shape=shape)
        jacobian = (self._stoichiometry @ propensity_jacobian @ self._link).toarray()
        if undefined.any():  # NaN only where an undefined derivative really enters
            rows, columns = self._entries
            mask = scipy.sparse.csr_matrix(
                (np.ones(undefined.sum()), (rows[undefined], columns[undefined])), shape=shape)
            touched = abs(self._stoichiometry) @ mask @ abs(self._link)
            jacobian[touched.toarray() > 0] = np.nan
        return jacobian

    def integration_jacobian(self, t: float, reduced: np.ndarray) -> np.ndarray:
        """:meth:`jacobian` with undefined entries (0/0 at a boundary) set to zero: an
        implicit integrator uses it only for its Newton iterations."""
        return np.nan_to_num(self.jacobian(t, reduced), nan=0.0, posinf=0.0, neginf=0.0)

    def diffusion(self, t: float, reduced: np.ndarray) -> np.ndarray:
        """D_r = S_r diag(a) S_r^T, shape (n_independent, n_independent), molecules^2/time."""
        rates = self.propensities(self.state(reduced), t)
        weighted = self._stoichiometry @ scipy.sparse.diags(rates)
        diffusion = (weighted @ self._stoichiometry.T).toarray()
        if self.burst_noise is not None:  # + sum_j a_j Var(B_j) e_s e_s^T (reduced)
            diffusion += (self.burst_noise * rates) @ self.burst_noise.T
        return diffusion

    def flux_scale(self, t: float, reduced: np.ndarray) -> np.ndarray:
        """|S_r| a: the gross turnover of each independent species, molecules/time."""
        rates = np.abs(self.propensities(self.state(reduced), t))
        return self._turnover @ rates


def _burst_noise(network: Network, reduction: Reduction) -> np.ndarray | None:
    """N, shape (n_independent, n_reactions), with column j = sqrt(Var B_j) e_s restricted
    to the independent species for a burst channel j (zero otherwise); None without
    bursts. A firing's jump is J = v + B e_s, so E[J J^T] = m m^T + Var(B) e_s e_s^T with
    m = v + E[B] e_s: D = S diag(a) S^T + N diag(a) N^T, S the mean stoichiometry (for a
    pure burst, the e_s e_s^T entry is E[B^2])."""
    if not network.bursts:
        return None
    noise = np.zeros((len(network.species), len(network.reactions)))
    for j, reaction in enumerate(network.reactions):
        if reaction.burst is not None:
            noise[network.species_index[reaction.burst.species], j] = math.sqrt(
                reaction.burst.variance)
    return noise[reduction.independent]


# -- steady state --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SteadyState:
    """A stable steady state of the reduced rate equations."""

    reduced: np.ndarray
    residual: float
    relative_residual: float
    max_real_eigenvalue: float
    approach_time: float


def find_steady_state(equations: RateEquations) -> SteadyState:
    """Follow the rate equations from the initial state until Newton's method, started
    from the trajectory, lands on a stable steady state next to it.

    The trajectory is integrated by BDF with the exact Jacobian. At checkpoints
    t_k = 10^k * HORIZON_START / rho (rho: row-sum bound of |J| at the initial state),
    k = 0..HORIZON_DECADES, within APPROACH_BUDGET right-hand-side evaluations, damped
    Newton iterations (:func:`_newton`) start from the trajectory; the point is accepted
    when its relative flux imbalance is below STEADY_STATE_RTOL, no count is negative,
    the reduced Jacobian is stable, and it lies within PROXIMITY of the trajectory
    (so a bistable model gets the state its trajectory approaches).

    Raises
    ------
    ConvergenceError
        No stable steady state is approached (an oscillator, a slow drift, a drift to
        infinity), naming the last obstacle.
    """
    reduction = equations.reduction
    current = equations.initial[reduction.independent].astype(float)
    if len(current) == 0:
        return SteadyState(current, 0.0, 0.0, -np.inf, 0.0)
    with np.errstate(all="ignore"):
        bound = np.abs(equations.integration_jacobian(0.0, current)).sum(axis=1).max()
    rho = float(bound) if np.isfinite(bound) and bound > 0 else 1.0
    typical = _typical_count(equations.initial)
    t, failures = 0.0, ["the rate equations were not integrated"]
    unstable = ""  # the most telling obstacle: an unstable steady state met on the way
    checkpoints = [0.0] + [HORIZON_START * 10.0**k / rho for k in range(HORIZON_DECADES + 1)]
    for t_next in checkpoints:
        integration_failure = ""
        if t_next > t:
            current, t, integration_failure = _advance(equations, current, t, t_next,
                                                       typical)
        candidate, reason = _polish(equations, current)
        if candidate is not None:
            return SteadyState(*candidate, approach_time=t)
        failures = [reason]
        unstable = reason if "not stable" in reason else unstable
        if integration_failure:
            failures.append(integration_failure)
            break
    if unstable and unstable not in failures:
        failures.insert(0, f"earlier, {unstable}")
    raise ConvergenceError(
        f"no stable steady state of the rate equations was reached by t={t:.3g} "
        f"({'; '.join(failures)}). The model may oscillate, be bistable or grow without "
        "bound: use the time-dependent LNA (solve_lna(network, times)) or simulate_ssa / "
        "simulate_cle.")


def _advance(equations: RateEquations, reduced, t0: float, t1: float, typical: float):
    """Integrate from t0 to t1 (BDF, exact Jacobian) within APPROACH_BUDGET; returns
    (state, time reached, failure message or ""). ``typical``: see :func:`_typical_count`."""
    # Per species, floored at the typical count: a reservoir of 10^17 must not set the
    # tolerance of counts of 10^3, nor a count near zero stall the integrator of a
    # model whose counts are 10^17.
    atol = APPROACH_ATOL * np.maximum(np.abs(reduced), typical)
    try:
        with np.errstate(all="ignore"):
            solver = BDF(equations.rhs, t0, reduced, t1, jac=equations.integration_jacobian,
                         rtol=APPROACH_RTOL, atol=atol)
            message = ""
            while solver.status == "running" and equations.evaluations <= APPROACH_BUDGET:
                message = solver.step()
    except (ValueError, ZeroDivisionError, OverflowError, FloatingPointError,
            np.linalg.LinAlgError) as error:
        return reduced, t0, f"the rate equations could not be integrated: {error}"
    state, reached = solver.y, float(solver.t)
    if not np.all(np.isfinite(state)):
        return reduced, t0, "the rate equations diverged"
    if solver.status == "failed":
        return state, reached, f"integrating the rate equations failed: {message}"
    if solver.status == "running":
        return state, reached, (f"the approach stopped after {equations.evaluations} rate "
                                "evaluations (APPROACH_BUDGET)")
    return state, reached, ""


def _typical_count(counts: np.ndarray) -> float:
    """The median non-zero initial count (1 if there is none), molecules."""
    magnitude = np.abs(counts[np.isfinite(counts)])
    return float(np.median(magnitude[magnitude > 0])) if np.any(magnitude > 0) else 1.0


def _relative_imbalance(equations: RateEquations, reduced: np.ndarray) -> float:
    """max_i |S a|_i / (|S| a)_i over the independent species (1 where a species has a
    net change but no turnover)."""
    with np.errstate(all="ignore"):
        flux = equations.rhs(0.0, reduced)
        turnover = equations.flux_scale(0.0, reduced)
        imbalance = np.where(turnover > 0, np.abs(flux) / turnover, np.abs(flux) > 0)
    return float(np.nan_to_num(imbalance, nan=np.inf).max(initial=0.0))


def _newton(equations: RateEquations, start: np.ndarray) -> np.ndarray | None:
    """Damped Newton iterations on S_r a(x(z)) = 0 from ``start`` (n_independent,).

    Exact Jacobian; steps are cut so that no count falls below -tolerance (fraction to
    the boundary, 0.99) and then halved until the flux, weighted by the turnover at
    ``start``, decreases (Armijo). Returns the last iterate, or None when the Jacobian is
    undefined or the iterates leave the finite numbers."""
    reduction = equations.reduction
    with np.errstate(all="ignore"):
        turnover = equations.flux_scale(0.0, start)
    floor = max(float(np.nanmax(turnover, initial=0.0)) * 1e-12, 1e-300)
    weights = 1.0 / np.maximum(np.nan_to_num(turnover), floor)
    tolerance = NEGATIVE_TOLERANCE * max(float(np.abs(equations.state(start)).max()), 1.0)

    def merit(z):
        with np.errstate(all="ignore"):
            value = float(np.linalg.norm(equations.rhs(0.0, z) * weights))
        return value if np.isfinite(value) else np.inf

    z, current, damped = start.copy(), merit(start), 0
    for _ in range(NEWTON_ITERATIONS):
        if _relative_imbalance(equations, z) <= STEADY_STATE_RTOL:
            return z
        with np.errstate(all="ignore"):
            jacobian = equations.jacobian(0.0, z)
            flux = equations.rhs(0.0, z)
        if not (np.all(np.isfinite(jacobian)) and np.all(np.isfinite(flux))):
            return None
        try:
            step = np.linalg.solve(jacobian, -flux)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(jacobian, -flux, rcond=None)[0]
        counts, change = equations.state(z), reduction.link @ step
        with np.errstate(all="ignore"):
            room = np.where(change < 0, (counts + tolerance) / -change, np.inf)
        length = min(1.0, 0.99 * float(room.min(initial=np.inf)))
        while length > 1e-3:
            trial = merit(z + length * step)
            if trial <= (1.0 - 1e-4 * length) * current:
                break
            length *= 0.5
        else:
            return z  # no descent: Newton is stuck here
        damped = damped + 1 if length < 0.1 else 0
        if damped == 3:
            return z  # far from any root: let the trajectory come closer first
        z, current = z + length * step, trial
    return z


def _polish(equations: RateEquations, start: np.ndarray):
    """Newton from ``start``; returns ((reduced, residual, relative, max_real), reason)."""
    point = _newton(equations, start)
    if point is None or not np.all(np.isfinite(point)):
        return None, "Newton's method diverged or met an undefined Jacobian"
    x = equations.state(point)
    if np.any(x < -NEGATIVE_TOLERANCE * max(np.abs(x).max(), 1.0)):
        return None, "Newton's method found a state with negative counts"
    relative = _relative_imbalance(equations, point)
    if relative > STEADY_STATE_RTOL:
        return None, f"Newton's method stopped with relative flux imbalance {relative:.2g}"
    distance = np.abs(point - start) / (np.abs(point) + 1e-3 * np.abs(point).max() + 1e-9)
    eigenvalues = np.linalg.eigvals(equations.jacobian(0.0, point))
    max_real = float(np.max(eigenvalues.real))
    if not max_real < -1e-12 * max(1.0, float(np.max(np.abs(eigenvalues)))):
        return None, (f"the steady state near the trajectory is not stable (largest real part "
                      f"of a Jacobian eigenvalue {max_real:.3g})")
    if np.max(distance) > PROXIMITY:
        return None, "the trajectory had not yet reached the steady state"
    residual = float(np.max(np.abs(equations.rhs(0.0, point))))
    return (point, residual, relative, max_real), ""


# -- public API ----------------------------------------------------------------------------------
def check_lna_support(network: Network, steady_state: bool) -> None:
    """Raise UnsupportedFeatureError for constructs the LNA cannot follow."""
    refuse_randomness(network, "solve_lna", clocks=False)
    check_time_driven(network, "solve_lna")
    if network.events:
        raise UnsupportedFeatureError(
            "events", network.events[0].id, analysis="solve_lna",
            hint="An event assignment makes the mean jump, which the LNA's Gaussian "
                 "fluctuations around the rate equations do not describe; use simulate_ssa.")
    if steady_state and network.rate_rules:
        target = network.rate_rules[0].target
        raise UnsupportedFeatureError(
            f"a rate rule on '{target}' (a continuous variable that changes with time: the "
            "rate equations are not autonomous, so there is no steady state)", target,
            analysis="solve_lna (steady state)",
            hint="Pass times= for the time-dependent LNA, which integrates it with the mean.")
    if steady_state and network.uses_time:
        reaction = next(r.id for r in network.reactions
                        if TIME in r.rate_law.deterministic_limit().free_symbols)
        raise UnsupportedFeatureError(
            "a propensity that depends explicitly on time (no steady state)", reaction,
            analysis="solve_lna (steady state)",
            hint="Pass times= for the time-dependent LNA.")


def solve_lna(network: Network, times=None, *, rtol: float = 1e-8,
              atol: float = 1e-9, outputs=None) -> LNAResult:
    """Linear noise approximation of the molecule counts.

    Parameters
    ----------
    network : Network
    times : array_like, shape (n_times,), optional
        ``None``: the stationary LNA around the stable steady state reached from the
        initial state (result times ``[inf]``). Otherwise increasing output times (model
        time units, the first is the start): the time-dependent LNA along the rate
        equations from the (deterministic) initial state.
    rtol, atol : float
        Time-dependent LNA only: integrator tolerances (``atol`` relative to the largest
        count along the rate equations at ``times``, floor one molecule).
    outputs : list of str, optional
        Parameters, compartments or rule targets to report beside the species
        (``network.with_outputs(outputs)``).
        Moments by the delta method, like rule outputs.

    Returns
    -------
    LNAResult
        Means (molecules) and covariances (molecules^2) of species and rule outputs.

    Raises
    ------
    ConvergenceError
        ``times=None`` and no stable steady state is reached.
    UnsupportedFeatureError
        Events; explicit time dependence or rate rules in the steady-state LNA; a rate
        rule that reads a discrete species (feedback).
    """
    network = network.with_outputs(outputs)
    started = wallclock.perf_counter()
    check_lna_support(network, steady_state=times is None)
    if times is None:
        equations = RateEquations(network, stationary=True)
        _check_initial_propensities(equations)
        result_times = np.array([np.inf])
        means, covariances, info = _steady_state_lna(equations)
    else:
        result_times = _check_times(times)
        drive = integrate_drive(network, network.parameter_values, network.initial_counts,
                                result_times[0], result_times[-1]) if network.rate_rules \
            else None
        equations = RateEquations(network, drive=drive)
        _check_initial_propensities(equations)
        means, covariances = _time_dependent(equations, result_times, rtol, atol)
        info = {"mode": "time dependent", "rtol": rtol, "atol": atol}
    means, covariances = _with_outputs(equations, result_times, means, covariances)
    reduction = equations.reduction
    info.update({"n_independent_species": int(len(reduction.independent)),
                 "n_conservation_laws": int(len(network.species) - len(reduction.independent)
                                            - len(reduction.undetermined)),
                 "rhs_evaluations": equations.evaluations,
                 "wall_time": wallclock.perf_counter() - started})
    return LNAResult(network, result_times, means, covariances, run_info=info)


def _check_initial_propensities(equations: RateEquations) -> None:
    """A propensity that is negative or NaN at the initial state has no noise (and makes
    the integration blow up slowly): refuse it by name."""
    with np.errstate(all="ignore"):
        rates = equations.compiled.propensities(equations.initial)
    bad = np.nonzero(~(rates >= 0))[0]
    if len(bad):
        reaction = equations.network.reactions[bad[0]].id
        raise AnalysisError(f"the propensity of reaction '{reaction}' is {rates[bad[0]]:.3g} "
                            "at the initial state; a propensity must be a non-negative "
                            "number (check the signs of the model's parameters)")


def _steady_state_lna(equations: RateEquations):
    """Means (1, n_species), covariances (1, n_species, n_species) and run info at the
    stable steady state. Species the reduction leaves undetermined (no propensity reads
    them and their net change is not a combination of the others') have no stationary
    law: NaN, named in ``run_info["undetermined_species"]`` and in a warning."""
    undetermined = equations.reduction.undetermined
    names = [equations.network.species_ids[i] for i in undetermined]
    if len(undetermined) and not len(equations.reduction.independent):
        raise ConvergenceError(
            f"no species has a steady state: no rate law reads {', '.join(names)}, so their "
            "counts change without bound (or drift). Use the time-dependent LNA "
            "(solve_lna(network, times)) or simulate_ssa / simulate_cle.")
    steady = find_steady_state(equations)
    means = equations.state(steady.reduced)
    covariances = _map_back(equations, _lyapunov(equations, steady.reduced))
    info = {"mode": "steady state", "steady_state_residual": steady.residual,
            "steady_state_relative_residual": steady.relative_residual,
            "max_real_eigenvalue": steady.max_real_eigenvalue,
            "approach_time": steady.approach_time, "undetermined_species": {}}
    if len(undetermined):
        network = equations.network
        net_change = (np.asarray(network.mean_stoichiometry, dtype=float)[undetermined]
                      @ equations.propensities(means, 0.0))
        info["undetermined_species"] = {network.species_ids[i]: float(rate)
                                        for i, rate in zip(undetermined, net_change)}
        means[undetermined] = np.nan
        covariances[undetermined, :] = np.nan
        covariances[:, undetermined] = np.nan
        listing = ", ".join(f"{name} ({rate:.3g} molecules/time)"
                            for name, rate in info["undetermined_species"].items())
        warnings.warn(
            f"steady-state LNA: no stationary law for {listing}: no rate law reads these "
            "species and their net change is not balanced by the others', so they "
            "accumulate, drain or drift (their net change at the steady state is shown); "
            "their means and covariances are NaN. Use solve_lna(network, times) for their "
            "transient.", stacklevel=3)
    return means[None, :], covariances[None, :, :], info


def _lyapunov(equations: RateEquations, reduced: np.ndarray) -> np.ndarray:
    if len(reduced) == 0:
        return np.zeros((0, 0))
    jacobian = equations.jacobian(0.0, reduced)
    diffusion = equations.diffusion(0.0, reduced)
    covariance = scipy.linalg.solve_continuous_lyapunov(jacobian, -diffusion)
    covariance = 0.5 * (covariance + covariance.T)
    if not np.all(np.isfinite(covariance)):
        raise ConvergenceError("the Lyapunov equation of the LNA has no finite solution; the "
                               "steady state is too close to instability")
    return covariance


def _map_back(equations: RateEquations, reduced_covariance: np.ndarray) -> np.ndarray:
    link = equations.reduction.link
    return link @ reduced_covariance @ link.T


def _time_dependent(equations: RateEquations, times: np.ndarray, rtol: float, atol: float):
    """Integrate (phi_r, C_r) together; returns means (n_times, n_species) and
    covariances (n_times, n_species, n_species)."""
    size = len(equations.reduction.independent)
    start = equations.initial[equations.reduction.independent].astype(float)
    scale = _count_scale(equations, times) if size and len(times) > 1 else 1.0

    budget = equations.evaluations + INTEGRATION_BUDGET

    def rhs(t, y):
        _check_progress(equations, budget, t, y)
        reduced = y[:size]
        covariance = y[size:].reshape(size, size)
        jacobian = scipy.sparse.csr_matrix(equations.jacobian(t, reduced))
        derivative = np.asarray(jacobian @ covariance)
        covariance_rate = derivative + derivative.T + equations.diffusion(t, reduced)
        return np.concatenate([equations.rhs(t, reduced), covariance_rate.ravel()])

    def jacobian(t, y):
        # Exact in C, without the second derivatives of a in the mean block (allowed:
        # the implicit solver uses the Jacobian only for its Newton iterations).
        block = scipy.sparse.csr_matrix(equations.integration_jacobian(t, y[:size]))
        identity = scipy.sparse.identity(size, format="csr")
        lyapunov = scipy.sparse.kron(block, identity) + scipy.sparse.kron(identity, block)
        return scipy.sparse.block_diag([block, lyapunov], format="csc")

    y0 = np.concatenate([start, np.zeros(size * size)])
    if size == 0 or len(times) == 1:
        states = np.tile(y0, (len(times), 1))
    else:
        try:
            solution = solve_ivp(rhs, (times[0], times[-1]), y0, method="BDF", t_eval=times,
                                 jac=jacobian, rtol=rtol, atol=atol * scale)
        except (ValueError, ZeroDivisionError, OverflowError, RuntimeError) as error:
            raise ConvergenceError(f"the LNA equations could not be integrated: {error}. "
                                   "Check the rate equations with simulate_deterministic, "
                                   "or use simulate_ssa / simulate_cle.") from None
        if solution.status != 0 or solution.y.shape[1] != len(times):
            reached = solution.t[-1] if len(solution.t) else times[0]
            raise ConvergenceError(f"integrating the time-dependent LNA failed near "
                                   f"t={reached:.3g}: {solution.message}")
        states = solution.y.T
    means = np.array([equations.state(row[:size]) for row in states])
    covariances = np.array([_map_back(equations, _symmetric(row[size:].reshape(size, size)))
                            for row in states])
    return means, covariances


def _check_progress(equations: RateEquations, budget: int, t: float, y: np.ndarray) -> None:
    """Stop a blow-up (non-finite state, or more than the budget of rate evaluations)
    with a RuntimeError, which the callers turn into ConvergenceError."""
    if not np.all(np.isfinite(y)):
        raise RuntimeError(f"the state is not finite at t={t:.3g} (a blow-up)")
    if equations.evaluations > budget:
        raise RuntimeError(f"more than {INTEGRATION_BUDGET} rate evaluations by t={t:.3g} "
                           "(a stiff blow-up, or a horizon far beyond the model's time scales)")


def _count_scale(equations: RateEquations, times: np.ndarray) -> float:
    """The largest count along the rate equations at ``times`` (n_times,) (a quick BDF
    run with the exact Jacobian), floor one molecule: the unit of the time-dependent
    LNA's absolute tolerance, so that it means the same for counts of 10 and of 10^15."""
    start = equations.initial[equations.reduction.independent].astype(float)
    largest = float(np.abs(equations.initial).max(initial=0.0))
    budget = equations.evaluations + INTEGRATION_BUDGET

    def rhs(t, y):
        _check_progress(equations, budget, t, y)
        return equations.rhs(t, y)

    try:
        with np.errstate(all="ignore"):
            solution = solve_ivp(rhs, (times[0], times[-1]), start, method="BDF",
                                 t_eval=times, jac=equations.integration_jacobian,
                                 rtol=1e-4, atol=1e-6 * max(largest, 1.0))
        if solution.success:  # a failed run may leave no array; the LNA run reports it
            trajectory = np.array([equations.state(y) for y in solution.y.T])
            largest = max(largest, float(np.nanmax(np.abs(trajectory), initial=0.0)))
    except (ValueError, ZeroDivisionError, OverflowError, RuntimeError,
            np.linalg.LinAlgError):
        pass  # the LNA integration below reports the failure
    return max(largest, 1.0) if np.isfinite(largest) else 1.0


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    return 0.5 * (matrix + matrix.T)


def _with_outputs(equations: RateEquations, times, means, covariances):
    """Append rule outputs by the delta method: mean f(phi), covariance G C G^T."""
    network = equations.network
    n_outputs = len(network.outputs)
    if n_outputs == 0:
        return means, covariances
    n_species = equations.n_species
    extended_means, extended_covariances = [], []
    for t, mean, covariance in zip(times, means, covariances):
        t_eval = 0.0 if not np.isfinite(t) else float(t)
        parameters = equations.parameters_at(t_eval)
        values = equations.derivatives.output_values(mean, parameters, t_eval)
        gradient = equations.derivatives.output_gradient(mean, parameters, t_eval,
                                                         n_outputs, n_species)
        # Species without a value (NaN: no stationary law) leave NaN only in the
        # outputs that depend on them.
        unknown = np.isnan(mean)
        extended_mean = np.concatenate([mean, values])
        unknown_columns = np.concatenate([unknown, np.isnan(values) | np.any(
            gradient[:, unknown] != 0, axis=1)])
        embedding = np.vstack([np.eye(n_species), np.nan_to_num(gradient)])
        extended = embedding @ np.where(np.isnan(covariance), 0.0, covariance) @ embedding.T
        extended[unknown_columns, :] = np.nan
        extended[:, unknown_columns] = np.nan
        extended_mean[unknown_columns] = np.nan
        extended_means.append(extended_mean)
        extended_covariances.append(extended)
    return np.array(extended_means), np.array(extended_covariances)


def lna_with_fallback(network: Network, times) -> LNAResult:
    """The steady-state LNA, or the time-dependent LNA at ``times`` (n_times,) when the
    rate equations reach no stable steady state. ``run_info["fallback_reason"]`` holds
    why the fallback was taken ("" when not)."""
    try:
        result = solve_lna(network)
        reason = ""
    except ConvergenceError as error:
        result = solve_lna(network, times)
        reason = f"time-dependent LNA: {str(error).split('. The model')[0]}"
    result.run_info["fallback_reason"] = reason
    return result
