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
  C = L C_r L^T.
- Time-dependent: phi' = S a(phi), C_r' = J_r C_r + C_r J_r^T + D_r from C_r(t0) = 0
  (the initial state is deterministic).

Supported: reversible reactions, general kinetic laws, assignment-rule outputs (delta
method: mean f(phi), covariance G C G^T with G = df/dx), explicitly time-dependent
propensities (time-dependent LNA only). Refused: events (an assignment is a
jump of the mean that the LNA's Gaussian does not follow), with an
UnsupportedFeatureError naming the event.
"""

from __future__ import annotations

import time as wallclock
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.linalg
import scipy.sparse
import sympy
from scipy.integrate import solve_ivp
from scipy.optimize import root

from ..errors import ConvergenceError, UnsupportedFeatureError
from ..kinetics import all_propensities, compile_network
from ..network import TIME, Network
from ..results import LNAResult
from .deterministic import _check_times

#: Relative flux imbalance |S a| / (|S| a) accepted at a steady state.
STEADY_STATE_RTOL = 1e-8
#: Checkpoints of the approach to the steady state: t_k = HORIZON_START * 10**k / rho.
HORIZON_START = 10.0
HORIZON_DECADES = 12
#: Right-hand-side evaluations the approach may spend before giving up (oscillators).
APPROACH_BUDGET = 20_000
#: The Newton-polished point must lie this close (relative) to the trajectory's end.
PROXIMITY = 1e-2


# -- symbolic derivatives, built once per network ---------------------------------------------
@dataclass(frozen=True)
class Derivatives:
    """Exact derivatives of a network's deterministic propensities and outputs.

    Attributes
    ----------
    rows, columns : ndarray of int, shape (n_entries,)
        Channel and species index of each non-zero entry of da/dx.
    jacobian_entries : callable
        ``(x, p, t) -> list`` of the entries' values, 1/time.
    outputs : callable or None
        ``(x, p, t) -> list`` of the rule outputs' values.
    output_rows, output_columns : ndarray of int
        Non-zero entries of d(outputs)/dx.
    output_gradient_entries : callable or None
    """

    rows: np.ndarray
    columns: np.ndarray
    jacobian_entries: object
    outputs: object
    output_rows: np.ndarray
    output_columns: np.ndarray
    output_gradient_entries: object

    def propensity_jacobian(self, x, p, t, n_channels: int, n_species: int) -> np.ndarray:
        """da/dx at counts ``x`` (n_species,), shape (n_channels, n_species), 1/time."""
        jacobian = np.zeros((n_channels, n_species))
        if len(self.rows):
            jacobian[self.rows, self.columns] = _evaluate(self.jacobian_entries,
                                                          len(self.rows), x, p, t)
        return jacobian

    def output_gradient(self, x, p, t, n_outputs: int, n_species: int) -> np.ndarray:
        """d(outputs)/dx, shape (n_outputs, n_species)."""
        gradient = np.zeros((n_outputs, n_species))
        if len(self.output_rows):
            gradient[self.output_rows, self.output_columns] = _evaluate(
                self.output_gradient_entries, len(self.output_rows), x, p, t)
        return gradient


def derivatives(network: Network) -> Derivatives:
    """Differentiate the network's deterministic propensities once (cached by hash)."""
    return _derivatives_cached(network)


@lru_cache(maxsize=32)
def _derivatives_cached(network: Network) -> Derivatives:
    species = [sympy.Symbol(s) for s in network.species_ids]
    arguments = [species, [sympy.Symbol(p) for p in network.parameter_ids], TIME]
    rows, columns, entries = _sparse_gradient(
        network, [(r.id, r.rate_law.deterministic_limit()) for r in network.reactions])
    output_rows, output_columns, output_entries = _sparse_gradient(
        network, [(o.id, o.formula) for o in network.outputs])
    outputs = [o.formula for o in network.outputs]
    return Derivatives(
        rows=rows, columns=columns,
        jacobian_entries=_lambdify(arguments, entries),
        outputs=_lambdify(arguments, outputs) if outputs else None,
        output_rows=output_rows, output_columns=output_columns,
        output_gradient_entries=_lambdify(arguments, output_entries))


def _sparse_gradient(network: Network, expressions):
    """Non-zero partial derivatives of ``(owner, expression)`` pairs by species count."""
    index = network.species_index
    rows, columns, entries = [], [], []
    for row, (owner, expression) in enumerate(expressions):
        for symbol in sorted(expression.free_symbols, key=str):
            if symbol.name not in index:
                continue
            derivative = sympy.diff(expression, symbol)
            if derivative.has(sympy.Derivative, sympy.Subs):
                raise UnsupportedFeatureError(
                    "a kinetic law that cannot be differentiated symbolically", owner,
                    analysis="solve_lna", hint="Use simulate_cle or simulate_ssa instead.")
            if derivative != 0:
                rows.append(row)
                columns.append(index[symbol.name])
                entries.append(derivative)
    return np.array(rows, dtype=np.int64), np.array(columns, dtype=np.int64), entries


def _lambdify(arguments, expressions):
    # The math printer writes Piecewise as a conditional expression (numpy's select
    # needs arrays); evaluation errors are turned into NaN by the callers.
    return sympy.lambdify(arguments, list(expressions), modules=[_EXTRA_FUNCTIONS, "math"],
                          cse=True, dummify=True)


_EXTRA_FUNCTIONS = {"sign": np.sign, "Heaviside": lambda x, h=0.5: np.heaviside(x, h),
                    "Max": max, "Min": min}


def _evaluate(function, size: int, x, p, t) -> np.ndarray:
    """Values (size,) of a lambdified list at one state; NaN where undefined."""
    with np.errstate(all="ignore"):
        try:
            return np.asarray(function(x, p, t), dtype=float).reshape(size)
        except (ValueError, ZeroDivisionError, OverflowError, TypeError):
            return np.full(size, np.nan)


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
    """

    independent: np.ndarray
    link: np.ndarray
    reduced_stoichiometry: np.ndarray

    def full_state(self, initial: np.ndarray, reduced: np.ndarray) -> np.ndarray:
        """Counts x = x0 + L (x_r - x0_r), shape (n_species,)."""
        return initial + self.link @ (reduced - initial[self.independent])


def conservation_reduction(network: Network) -> Reduction:
    """Split the species into independent ones and the link matrix (rank-revealing QR)."""
    stoichiometry = np.asarray(network.stoichiometry, dtype=float)
    n_species = stoichiometry.shape[0]
    if stoichiometry.size == 0 or not np.any(stoichiometry):
        return Reduction(np.zeros(0, dtype=np.int64), np.zeros((n_species, 0)),
                         np.zeros((0, stoichiometry.shape[1])))
    _, triangular, pivots = scipy.linalg.qr(stoichiometry.T, pivoting=True, mode="economic")
    diagonal = np.abs(np.diag(triangular))
    rank = int(np.sum(diagonal > diagonal[0] * max(stoichiometry.shape) * 1e-12))
    independent = np.sort(pivots[:rank])
    reduced = stoichiometry[independent]
    link = np.linalg.lstsq(reduced.T, stoichiometry.T, rcond=None)[0].T
    link[np.abs(link) < 1e-12] = 0.0
    link[independent] = np.eye(rank)
    return Reduction(independent, link, reduced)


# -- the reduced rate equations -----------------------------------------------------------------
class RateEquations:
    """Rate equations on the independent species, with exact Jacobian and diffusion."""

    def __init__(self, network: Network):
        self.network = network
        self.compiled = compile_network(network)
        self.derivatives = derivatives(network)
        self.reduction = conservation_reduction(network)
        self.initial = network.initial_counts
        self.parameters = network.parameter_values
        self.n_species = len(network.species)
        self.n_channels = len(network.reactions)
        self.evaluations = 0

    def state(self, reduced: np.ndarray) -> np.ndarray:
        """Full counts from independent counts, shape (n_species,)."""
        return self.reduction.full_state(self.initial, reduced)

    def propensities(self, x: np.ndarray, t: float) -> np.ndarray:
        """Deterministic propensities at counts ``x``, shape (n_channels,), 1/time."""
        rates = np.empty(self.n_channels)
        all_propensities(self.compiled.data, np.ascontiguousarray(x, dtype=float),
                         self.parameters, float(t), True, rates)
        return rates

    def rhs(self, t: float, reduced: np.ndarray) -> np.ndarray:
        """d x_r / dt, shape (n_independent,), molecules/time."""
        self.evaluations += 1
        return self.reduction.reduced_stoichiometry @ self.propensities(self.state(reduced), t)

    def jacobian(self, t: float, reduced: np.ndarray) -> np.ndarray:
        """J_r = S_r (da/dx) L, shape (n_independent, n_independent), 1/time."""
        x = self.state(reduced)
        propensity_jacobian = self.derivatives.propensity_jacobian(
            x, self.parameters, t, self.n_channels, self.n_species)
        undefined = np.isnan(propensity_jacobian)
        stoichiometry, link = self.reduction.reduced_stoichiometry, self.reduction.link
        jacobian = stoichiometry @ np.where(undefined, 0.0, propensity_jacobian) @ link
        if undefined.any():  # NaN only where an undefined derivative really enters
            jacobian[(np.abs(stoichiometry) @ undefined.astype(float) @ np.abs(link)) > 0] = np.nan
        return jacobian

    def integration_jacobian(self, t: float, reduced: np.ndarray) -> np.ndarray:
        """:meth:`jacobian` with undefined entries (0/0 at a boundary) set to zero: an
        implicit integrator uses it only for its Newton iterations."""
        return np.nan_to_num(self.jacobian(t, reduced), nan=0.0, posinf=0.0, neginf=0.0)

    def diffusion(self, t: float, reduced: np.ndarray) -> np.ndarray:
        """D_r = S_r diag(a) S_r^T, shape (n_independent, n_independent), molecules^2/time."""
        rates = self.propensities(self.state(reduced), t)
        weighted = self.reduction.reduced_stoichiometry * rates
        return weighted @ self.reduction.reduced_stoichiometry.T

    def flux_scale(self, t: float, reduced: np.ndarray) -> np.ndarray:
        """|S_r| a: the gross turnover of each independent species, molecules/time."""
        rates = np.abs(self.propensities(self.state(reduced), t))
        return np.abs(self.reduction.reduced_stoichiometry) @ rates


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

    Checkpoints t_k = 10^k * HORIZON_START / rho (rho: spectral-radius bound of J at the
    initial state), k = 0..HORIZON_DECADES, within APPROACH_BUDGET evaluations.

    Raises
    ------
    ConvergenceError
        No stable steady state is approached (an oscillator, or a drift to infinity).
    """
    reduction = equations.reduction
    current = equations.initial[reduction.independent].astype(float)
    if len(current) == 0:
        return SteadyState(current, 0.0, 0.0, -np.inf, 0.0)
    rho = float(np.max(np.sum(np.abs(equations.integration_jacobian(0.0, current)), axis=1)))
    rho = rho if np.isfinite(rho) and rho > 0 else 1.0
    t, last_failure = 0.0, "the rate equations were not integrated"
    checkpoints = [0.0] + [HORIZON_START * 10.0**k / rho for k in range(HORIZON_DECADES + 1)]
    for t_next in checkpoints:
        if t_next > t:
            current = _advance(equations, current, t, t_next)
            t = t_next
        candidate, last_failure = _polish(equations, current)
        if candidate is not None:
            return SteadyState(*candidate, approach_time=t)
        if equations.evaluations > APPROACH_BUDGET:
            break
    raise ConvergenceError(
        f"no stable steady state of the rate equations was reached by t={t:.3g} "
        f"({last_failure}). The model may oscillate, be bistable or grow without bound: use "
        "the time-dependent LNA (solve_lna(network, times)) or simulate_ssa / simulate_cle.")


def _advance(equations: RateEquations, reduced, t0: float, t1: float) -> np.ndarray:
    scale = np.maximum(np.abs(reduced), 1.0)
    try:
        solution = solve_ivp(equations.rhs, (t0, t1), reduced, method="LSODA",
                             rtol=1e-7, atol=1e-9 * scale.max())
    except (ValueError, ZeroDivisionError, OverflowError, FloatingPointError) as error:
        raise ConvergenceError(f"the rate equations could not be integrated: {error}") from None
    # On an integrator failure the last state is still the best start for Newton.
    return solution.y[:, -1]


def _polish(equations: RateEquations, start: np.ndarray):
    """Newton from ``start``; returns ((reduced, residual, relative, max_real), reason)."""
    scale = np.maximum(np.abs(start), 1e-6 * max(np.abs(start).max(), 1.0))
    scale = np.maximum(scale, 1e-12)

    def residual(z):
        return equations.rhs(0.0, z * scale) / scale

    def jacobian(z):
        return equations.jacobian(0.0, z * scale) * scale / scale[:, None]

    with np.errstate(all="ignore"):
        solution = root(residual, start / scale, jac=jacobian, method="hybr",
                        options={"xtol": 1e-13})
        point = solution.x * scale
        if not np.all(np.isfinite(point)):
            return None, "Newton's method diverged"
        x = equations.state(point)
        if np.any(x < -1e-9 * max(np.abs(x).max(), 1.0)):
            return None, "Newton's method found a state with negative counts"
        flux = equations.rhs(0.0, point)
        turnover = equations.flux_scale(0.0, point)
    imbalance = np.abs(flux) / np.maximum(turnover, 1e-300)
    relative = float(np.max(np.where(turnover > 0, imbalance, np.abs(flux) > 0), initial=0.0))
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
    return (point, float(np.max(np.abs(flux))), relative, max_real), ""


# -- public API ----------------------------------------------------------------------------------
def check_lna_support(network: Network, steady_state: bool) -> None:
    """Raise UnsupportedFeatureError for constructs the LNA cannot follow."""
    if network.events:
        raise UnsupportedFeatureError(
            "events", network.events[0].id, analysis="solve_lna",
            hint="An event assignment makes the mean jump, which the LNA's Gaussian "
                 "fluctuations around the rate equations do not describe; use simulate_ssa.")
    if steady_state and network.uses_time:
        reaction = next(r.id for r in network.reactions
                        if TIME in r.rate_law.deterministic_limit().free_symbols)
        raise UnsupportedFeatureError(
            "a propensity that depends explicitly on time (no steady state)", reaction,
            analysis="solve_lna (steady state)",
            hint="Pass times= for the time-dependent LNA.")


def solve_lna(network: Network, times=None, *, rtol: float = 1e-8,
              atol: float = 1e-9) -> LNAResult:
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
        initial count, floor one molecule).

    Returns
    -------
    LNAResult
        Means (molecules) and covariances (molecules^2) of species and rule outputs.

    Raises
    ------
    ConvergenceError
        ``times=None`` and no stable steady state is reached.
    UnsupportedFeatureError
        Events; explicit time dependence in the steady-state LNA.
    """
    started = wallclock.perf_counter()
    check_lna_support(network, steady_state=times is None)
    equations = RateEquations(network)
    if times is None:
        steady = find_steady_state(equations)
        reduced_covariance = _lyapunov(equations, steady.reduced)
        result_times = np.array([np.inf])
        means = equations.state(steady.reduced)[None, :]
        covariances = _map_back(equations, reduced_covariance)[None, :, :]
        info = {"mode": "steady state", "steady_state_residual": steady.residual,
                "steady_state_relative_residual": steady.relative_residual,
                "max_real_eigenvalue": steady.max_real_eigenvalue,
                "approach_time": steady.approach_time}
    else:
        result_times = _check_times(times)
        means, covariances = _time_dependent(equations, result_times, rtol, atol)
        info = {"mode": "time dependent", "rtol": rtol, "atol": atol}
    means, covariances = _with_outputs(equations, result_times, means, covariances)
    info.update({"n_independent_species": int(len(equations.reduction.independent)),
                 "n_conservation_laws": int(len(network.species) -
                                            len(equations.reduction.independent)),
                 "rhs_evaluations": equations.evaluations,
                 "wall_time": wallclock.perf_counter() - started})
    return LNAResult(network, result_times, means, covariances, run_info=info)


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
    scale = max(float(np.abs(equations.initial).max(initial=0.0)), 1.0)

    def rhs(t, y):
        reduced = y[:size]
        covariance = y[size:].reshape(size, size)
        jacobian = equations.jacobian(t, reduced)
        derivative = jacobian @ covariance
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
        values = _evaluate(equations.derivatives.outputs, n_outputs, mean,
                           equations.parameters, t_eval)
        gradient = equations.derivatives.output_gradient(mean, equations.parameters, t_eval,
                                                         n_outputs, n_species)
        embedding = np.vstack([np.eye(n_species), gradient])
        extended_means.append(np.concatenate([mean, values]))
        extended_covariances.append(embedding @ covariance @ embedding.T)
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
