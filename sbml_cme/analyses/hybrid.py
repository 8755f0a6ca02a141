"""Exact hybrid simulation (a piecewise-deterministic Markov process) and the partition.

The state is split by the network's partition (docs/design.md, "Continuous parts"):
discrete species change only by jumps (channels with ``Network.jump_mask`` True);
continuous variables (continuous species and rate-rule parameters) follow an ODE between
jumps, built from the rate rules and the deterministic limits of the continuous-flux
channels. A jump also changes the continuous species it carries by their (real)
stoichiometry.

Between jumps the kernel integrates the continuous state together with the cumulative
hazard Lambda(t) = int sum_j a_j dt of the jump channels. The next jump fires when Lambda
reaches an Exp(1) draw, located by root finding on the integrator's dense output; the
channel is drawn with probabilities a_j / sum a at that time. This is the exact law of
the PDMP up to the ODE tolerance (docs/hybrid.md). The integrator is compiled: an
adaptive Dormand-Prince 5(4) with its 4th-order dense output and Hairer's stiffness
test, switching to Rodas4 (L-stable, stiffly accurate Rosenbrock method of order 4
with a 3rd-order dense output; finite-difference Jacobian by column groups of its
structural pattern) when the problem turns stiff.

Methods (``METHODS``): ``"auto"`` (Dormand-Prince, Rosenbrock once stiff),
``"dopri5"`` (never switch), ``"rosenbrock"`` (stiff method throughout).

Events: triggers are checked after every jump and at every time at which a comparison
of time with constants changes value, exactly as in the SSA; a trigger that reads a continuous
variable is refused. Random streams are xoshiro256+, one per trajectory from
``SeedSequence(seed)``, so the ensemble does not depend on the number of threads.
"""

from __future__ import annotations

import dataclasses
import math
import time as wallclock
from typing import NamedTuple

import numba
import numpy as np
import pandas as pd
import sympy
from numba import prange

from ..errors import AnalysisError, OptionsError, UnsupportedFeatureError
from ..kinetics import (check_time_in_triggers, channel_propensity, compile_expressions,
                        compile_network, run_program, with_trigger_crossings)
from ..network import TIME, Expression, MassAction, Network, Output
from ..results import EnsembleResult
from .deterministic import _check_times, simulate_deterministic
from .draws import uniform as uniform_draw
from .ensemble import local_blocks, numba_threads, run_until_interrupted, thread_count
from .ssa import (_OK, _EVENT_BUDGET, _NEGATIVE_COUNT, _NEGATIVE_PROPENSITY, _PENDING_CAPACITY,
                  MAX_EVENTS, _burst_size, _draw_parameters, _process_events, _raise_failures, _record,
                  check_ensemble_work, trajectory_streams, whole_initial_counts)

METHODS = {"auto": 0, "dopri5": 1, "rosenbrock": 2}

#: Default threshold of ``partition="auto"``, in molecules.
AUTO_THRESHOLD = 1e4

_STEP_FAILED = 32  # the step size underflowed or the state became NaN
_MAX_STEPS = 100_000_000  # ODE steps per trajectory before giving up
_BLOCK = 64  # trajectories per parallel block (progress granularity)


# -- the partition ----------------------------------------------------------------------------
def auto_partition(network: Network, times, threshold: float = AUTO_THRESHOLD
                   ) -> tuple[Network, pd.DataFrame]:
    """Make continuous every species whose deterministic count stays above ``threshold``.

    Parameters
    ----------
    network : Network
    times : array_like, shape (n_times,)
        Times of the deterministic trajectory (``simulate_deterministic``) that decides.
    threshold : float
        Molecules; a non-fixed species is made continuous when its deterministic count
        is at least this at every one of ``times``.

    Returns
    -------
    (Network, DataFrame)
        The partitioned network, and one row per species: ``species, continuous,
        reason``.
    """
    if not (np.isfinite(threshold) and threshold > 0):
        raise OptionsError(f"threshold must be a positive number of molecules, got {threshold}")
    trajectory = simulate_deterministic(network, times).counts
    non_integer = _non_integer_species(network)
    rules = set(network.rate_rule_targets)
    rows, chosen = [], []
    for i, species in enumerate(network.species):
        lowest = float(np.min(trajectory[:, i]))
        if species.fixed:
            continuous, reason = species.continuous, "boundary or constant"
        elif species.id in rules:
            continuous, reason = True, "target of a rate rule"
        elif species.id in non_integer:
            continuous, reason = True, "non-integer stoichiometry"
        elif species.continuous:
            continuous, reason = True, "continuous in the network"
        elif lowest >= threshold:
            continuous, reason = True, f"deterministic count >= {threshold:g} (min {lowest:.4g})"
            chosen.append(species.id)
        else:
            continuous, reason = False, f"deterministic count falls to {lowest:.4g} < {threshold:g}"
        rows.append({"species": species.id, "continuous": continuous, "reason": reason})
    return network.with_partition(chosen), pd.DataFrame(rows)


def _non_integer_species(network: Network) -> set[str]:
    return {species_id for reaction in network.reactions
            for species_id, count in reaction.reactants + reaction.products
            if not float(count).is_integer()}


# -- compiled data of the continuous part -----------------------------------------------------
class HybridData(NamedTuple):
    """Arrays of the continuous part, beside :class:`~sbml_cme.kinetics.KernelData`.

    Continuous variable c (c = 0..n_variables-1) is species ``variable_index[c]`` when
    ``variable_is_species[c]``, else parameter ``variable_index[c]``; its rate rule is
    program ``rule_bounds[c]`` of ``rule_ops/args/constants`` (start == end: none).
    ``species_position[i]`` is the variable of species i (-1: not continuous). The ODE
    state is the variables followed by the cumulative hazard Lambda.

    A jump propensity that reads a continuous variable is taken as max(a, 0): the ODE
    error (within the tolerances) can push a rate that touches zero, such as
    k0 (1 + sin t), a rounding below it. Propensities of the discrete state alone must
    be non-negative, as in the SSA.
    """

    jump_channels: np.ndarray       # (n_jumps,) channel indices
    reads_continuous: np.ndarray    # (n_channels,) bool: the propensity reads a variable
    flux_channels: np.ndarray       # (n_fluxes,) channel indices
    variable_is_species: np.ndarray
    variable_index: np.ndarray
    species_position: np.ndarray
    discrete: np.ndarray            # (n_species,) bool: whole counts, checked >= 0
    rule_ops: np.ndarray
    rule_args: np.ndarray
    rule_constants: np.ndarray
    rule_bounds: np.ndarray         # (n_variables, 2)
    rule_stack_size: int
    rtol: float
    atol: float
    method: int
    jacobian_group: np.ndarray      # (n_variables,) column group of the Jacobian, -1: zero
    n_jacobian_groups: int
    jacobian_pattern: np.ndarray    # (m, m) bool: dy'_r/dy_c can be nonzero (m = n_variables + 1)
    autonomous: bool                # no law or rule reads time: df/dt = 0


def _rate_rules(network: Network) -> dict[str, sympy.Expr]:
    """Every ODE of a continuous variable by target id (clocks included)."""
    rules = {rule.target: rule.formula for rule in network.rate_rules}
    for parameter_id, rate in network.clocks:
        rules.setdefault(parameter_id, sympy.Float(rate))
    return rules


def _variables(network: Network) -> list[tuple[bool, str]]:
    """(is_species, id) of the continuous variables, species first."""
    rules = _rate_rules(network)
    return [(True, s) for s in network.continuous_species] + [
        (False, p) for p in network.parameter_ids if p in rules]


def _hybrid_data(network: Network, rtol: float, atol: float, method: int) -> HybridData:
    variables = _variables(network)
    rules = _rate_rules(network)
    with_rule = [c for c, (_, target) in enumerate(variables) if target in rules]
    programs = compile_expressions(network, [rules[variables[c][1]] for c in with_rule],
                                   owner="rate rule")
    bounds = np.zeros((len(variables), 2), dtype=np.int64)
    bounds[with_rule] = programs.bounds
    position = np.full(len(network.species), -1, dtype=np.int64)
    index = np.array([network.species_index[v] if is_species else
                      network.parameter_ids.index(v) for is_species, v in variables],
                     dtype=np.int64)
    for c, (is_species, _) in enumerate(variables):
        if is_species:
            position[index[c]] = c
    mask = network.jump_mask
    live = {v for _, v in variables}
    reads = [bool(live & {s.name for s in r.rate_law.propensity().free_symbols})
             for r in network.reactions]
    pattern, autonomous = _jacobian_pattern(network, variables, rules)
    group, n_groups = _column_groups(pattern)
    return HybridData(
        jump_channels=np.nonzero(mask)[0].astype(np.int64),
        reads_continuous=np.array(reads, dtype=np.bool_),
        flux_channels=np.nonzero(~mask)[0].astype(np.int64),
        variable_is_species=np.array([v[0] for v in variables], dtype=np.bool_),
        variable_index=index, species_position=position,
        discrete=np.array([not s.continuous for s in network.species], dtype=np.bool_),
        rule_ops=programs.ops, rule_args=programs.args, rule_constants=programs.constants,
        rule_bounds=bounds, rule_stack_size=programs.stack_size, rtol=float(rtol),
        atol=float(atol), method=int(method), jacobian_group=group,
        n_jacobian_groups=n_groups, jacobian_pattern=pattern, autonomous=autonomous)


def _jacobian_pattern(network: Network, variables, rules) -> tuple[np.ndarray, bool]:
    """Structural nonzeros of the ODE's Jacobian, (m, m) bool with m = n_variables + 1
    (row/column n_variables: Lambda), from the symbols each right-hand side reads: the
    rate rule of a variable, the deterministic limit of each continuous flux into the
    species it changes, the jump propensities into Lambda. Also whether any of them reads
    time."""
    position = {v: c for c, (_, v) in enumerate(variables)}
    m = len(variables) + 1
    pattern = np.zeros((m, m), dtype=np.bool_)
    reads_time = False

    def mark(row, expression):
        nonlocal reads_time
        names = {symbol.name for symbol in expression.free_symbols}
        reads_time = reads_time or TIME.name in names
        for name in names & position.keys():
            pattern[row, position[name]] = True

    for c, (_, target) in enumerate(variables):
        if target in rules:
            mark(c, sympy.sympify(rules[target]))
    for reaction, jump in zip(network.reactions, network.jump_mask):
        law = reaction.rate_law
        if jump:
            mark(m - 1, law.propensity())
            continue
        changed = {species for species, _ in reaction.reactants + reaction.products}
        for row in sorted(position[s] for s in changed if s in position):
            mark(row, law.propensity())
            mark(row, law.deterministic_limit())
    return pattern, not reads_time


def _column_groups(pattern: np.ndarray) -> tuple[np.ndarray, int]:
    """Greedy Curtis-Powell-Reid grouping of the Jacobian's columns (Lambda's excluded):
    columns of one group share no structural row, so one perturbed right-hand side
    gives them all. Returns (group per column, -1 for an all-zero column; n_groups)."""
    n_variables = pattern.shape[0] - 1
    group = np.full(n_variables, -1, dtype=np.int64)
    rows: list[np.ndarray] = []
    for c in range(n_variables):
        if not pattern[:, c].any():
            continue
        for g, taken in enumerate(rows):
            if not (taken & pattern[:, c]).any():
                group[c] = g
                taken |= pattern[:, c]
                break
        else:
            group[c] = len(rows)
            rows.append(pattern[:, c].copy())
    return group, len(rows)


# -- the ODE of the continuous part -------------------------------------------------------------
# The right-hand side runs ~7 times per step; passing the KernelData tuple to a compiled
# (not inlined) function costs an atomic reference-count update per array, which
# dominated the step time (30 us per step). So the hot functions, and the kernels'
# channel_propensity, are inlined into the step functions.
_channel = numba.njit(cache=True, inline="always")(channel_propensity.py_func)

@numba.njit(cache=True, inline="always")
def _write_state(hybrid, y, x, p):
    """Copy the continuous variables ``y[:n_variables]`` into counts ``x`` / parameters ``p``."""
    for c in range(hybrid.variable_index.shape[0]):
        if hybrid.variable_is_species[c]:
            x[hybrid.variable_index[c]] = y[c]
        else:
            p[hybrid.variable_index[c]] = y[c]


@numba.njit(cache=True, inline="always")
def _read_state(hybrid, x, p, y):
    """Inverse of :func:`_write_state` (``y[n_variables]``, Lambda, is left alone)."""
    for c in range(hybrid.variable_index.shape[0]):
        if hybrid.variable_is_species[c]:
            y[c] = x[hybrid.variable_index[c]]
        else:
            y[c] = p[hybrid.variable_index[c]]


@numba.njit(cache=True, inline="always")
def _derivatives(data, hybrid, x, p, t, y, dy, stack, rule_stack):
    """dy/dt: rate rules plus continuous fluxes (deterministic limits through the
    stoichiometry), and the total jump propensity for Lambda (last entry)."""
    n_variables = hybrid.variable_index.shape[0]
    _write_state(hybrid, y, x, p)
    for c in range(n_variables):
        start = hybrid.rule_bounds[c, 0]
        end = hybrid.rule_bounds[c, 1]
        dy[c] = 0.0
        if end > start:
            dy[c] = run_program(hybrid.rule_ops, hybrid.rule_args, hybrid.rule_constants,
                                start, end, x, p, t, rule_stack)
    for q in range(hybrid.flux_channels.shape[0]):
        j = hybrid.flux_channels[q]
        rate = _channel(data, j, x, p, t, True, stack)
        for k in range(data.change_ptr[j], data.change_ptr[j + 1]):
            c = hybrid.species_position[data.change_species[k]]
            if c >= 0:
                dy[c] += data.change_amount[k] * rate
    hazard = 0.0
    for q in range(hybrid.jump_channels.shape[0]):
        hazard += _jump_propensity(data, hybrid, hybrid.jump_channels[q], x, p, t, stack)
    dy[n_variables] = hazard


@numba.njit(cache=True, inline="always")
def _jump_propensity(data, hybrid, j, x, p, t, stack):
    """Propensity of jump channel ``j`` (clipped at 0 when it reads a continuous
    variable, see :class:`HybridData`)."""
    value = _channel(data, j, x, p, t, False, stack)
    if hybrid.reads_continuous[j] and value < 0.0:
        return 0.0
    return value


@numba.njit(cache=True, inline="always")
def _error_norm(hybrid, error, y0, y1):
    """RMS of error / (atol + rtol max(|y0|, |y1|)); below 1 accepts a step."""
    total = 0.0
    for c in range(error.shape[0]):
        scale = hybrid.atol + hybrid.rtol * max(abs(y0[c]), abs(y1[c]))
        total += (error[c] / scale) ** 2
    return math.sqrt(total / error.shape[0])


@numba.njit(cache=True)
def _initial_step(data, hybrid, x, p, t, y0, f0, span, ytmp, f1, stack, rule_stack):
    """Hairer's starting step (Solving ODEs I, II.4) for a 5th-order method."""
    d0 = _error_norm(hybrid, y0, y0, y0)
    d1 = _error_norm(hybrid, f0, y0, y0)
    h0 = 0.01 * d0 / d1 if d0 > 1e-5 and d1 > 1e-5 else 1e-6 * max(span, 1e-300)
    if not h0 > 0.0:  # an infinite derivative norm: start small, the step control decides
        h0 = 1e-6 * max(span, 1e-300)
    h0 = min(h0, span)
    for c in range(y0.shape[0]):
        ytmp[c] = y0[c] + h0 * f0[c]
    _derivatives(data, hybrid, x, p, t + h0, ytmp, f1, stack, rule_stack)
    for c in range(y0.shape[0]):
        f1[c] -= f0[c]
    d2 = _error_norm(hybrid, f1, y0, y0) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, 1e-3 * h0)
    else:
        h1 = (0.01 / max(d1, d2)) ** 0.2
    return min(100.0 * h0, h1, span)


# Dormand-Prince 5(4): nodes, stages (the last row is the 5th-order solution), error
# weights (5th minus 4th order) and the dense-output weights of Hairer's DOPRI5.
_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0])
_A = np.array([
    [0, 0, 0, 0, 0, 0],
    [1 / 5, 0, 0, 0, 0, 0],
    [3 / 40, 9 / 40, 0, 0, 0, 0],
    [44 / 45, -56 / 15, 32 / 9, 0, 0, 0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0, 0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0],
    [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]])
_E = np.array([71 / 57600, 0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40])
_D = np.array([-12715105075 / 11282082432, 0, 87487479700 / 32700410799,
               -10690763975 / 1880347072, 701980252875 / 199316789632,
               -1453857185 / 822651844, 69997945 / 29380423])
# Rodas4 (Hairer and Wanner, Solving ODEs II, VI.4; the coefficients of RODAS, METH=1)
# in the form without matrix-vector products: stage s solves
# (I / (h gamma) - J) k_s = f(t + c_s h, y0 + sum_q A[s, q] k_q) + h D[s] df/dt
# + sum_q CC[s, q] / h k_q, with stage 6 at y0 + sum A[4, q] k_q + k_5 and
# y1 = that + k_6 (stiffly accurate; k_6 is the error estimate). Dense output:
# y(s) = (1 - s) y0 + s (y1 + (1 - s) (H[0] . k + s H[1] . k)).
_RODAS_GAMMA = 0.25
_RODAS_C = np.array([0.0, 0.386, 0.21, 0.63, 1.0, 1.0])
_RODAS_D = np.array([0.25, -0.1043, 0.1035, -0.0362, 0.0, 0.0])
_RODAS_A = np.zeros((6, 5))
_RODAS_A[1, :1] = [1.544]
_RODAS_A[2, :2] = [0.9466785280815826, 0.2557011698983284]
_RODAS_A[3, :3] = [3.314825187068521, 2.896124015972201, 0.9986419139977817]
_RODAS_A[4, :4] = [1.221224509226641, 6.019134481288629, 12.53708332932087,
                   -0.6878860361058950]
_RODAS_A[5, :4] = _RODAS_A[4, :4]
_RODAS_CC = np.zeros((6, 5))
_RODAS_CC[1, :1] = [-5.6688]
_RODAS_CC[2, :2] = [-2.430093356833875, -0.2063599157091915]
_RODAS_CC[3, :3] = [-0.1073529058151375, -9.594562251023355, -20.47028614809616]
_RODAS_CC[4, :4] = [7.496443313967647, -10.24680431464352, -33.99990352819905,
                    11.70890893206160]
_RODAS_CC[5, :5] = [8.083246795921522, -7.981132988064893, -31.52159432874371,
                    16.31930543123136, -6.058818238834054]
_RODAS_H = np.array([
    [10.12623508344586, -7.487995877610167, -34.80091861555747, -7.992771707568823,
     1.025137723295662],
    [-0.6762803392801253, 6.087714651680015, 16.43084320892478, 24.76722511418386,
     -6.594389125716872]])


@numba.njit(cache=True)
def _dopri_step(data, hybrid, x, p, t, h, y0, k, ytmp, ystage, y1, error, dense, stack,
                rule_stack):
    """One Dormand-Prince step from (t, y0) with ``k[0]`` = f(t, y0). Fills ``y1``,
    ``k[6]`` = f(t + h, y1) and the dense output; returns (error norm, h |lambda|
    estimate of Hairer's stiffness test)."""
    m = y0.shape[0]
    for s in range(1, 7):
        for c in range(m):
            value = y0[c]
            for r in range(s):
                value += h * _A[s, r] * k[r, c]
            ytmp[c] = value
        if s == 5:
            ystage[:] = ytmp
        if s == 6:
            y1[:] = ytmp
        _derivatives(data, hybrid, x, p, t + _C[s] * h, ytmp, k[s], stack, rule_stack)
    numerator = 0.0
    denominator = 0.0
    for c in range(m):
        value = 0.0
        for s in range(7):
            value += _E[s] * k[s, c]
        error[c] = h * value
        numerator += (k[6, c] - k[5, c]) ** 2
        denominator += (y1[c] - ystage[c]) ** 2
        difference = y1[c] - y0[c]
        bspl = h * k[0, c] - difference
        dense[0, c] = y0[c]
        dense[1, c] = difference
        dense[2, c] = bspl
        dense[3, c] = difference - h * k[6, c] - bspl
        value = 0.0
        for s in range(7):
            value += _D[s] * k[s, c]
        dense[4, c] = h * value
    stiffness = h * math.sqrt(numerator / denominator) if denominator > 0.0 else 0.0
    return _error_norm(hybrid, error, y0, y1), stiffness


@numba.njit(cache=True)
def _lu_factor(a, pivots):
    """In-place LU with partial pivoting of the square ``a``; False when singular."""
    n = a.shape[0]
    for col in range(n):
        best = col
        for row in range(col + 1, n):
            if abs(a[row, col]) > abs(a[best, col]):
                best = row
        pivots[col] = best
        if a[best, col] == 0.0:
            return False
        if best != col:
            for c in range(n):
                a[col, c], a[best, c] = a[best, c], a[col, c]
        for row in range(col + 1, n):
            a[row, col] /= a[col, col]
            for c in range(col + 1, n):
                a[row, c] -= a[row, col] * a[col, c]
    return True


@numba.njit(cache=True)
def _lu_solve(a, pivots, b):
    """Solve in place ``a x = b`` with the factors of :func:`_lu_factor`."""
    n = a.shape[0]
    for i in range(n):
        j = pivots[i]
        b[i], b[j] = b[j], b[i]
    for i in range(n):
        for c in range(i):
            b[i] -= a[i, c] * b[c]
    for i in range(n - 1, -1, -1):
        for c in range(i + 1, n):
            b[i] -= a[i, c] * b[c]
        b[i] /= a[i, i]


@numba.njit(cache=True)
def _jacobian(data, hybrid, x, p, t, h, y0, f0, jac, dfdt, ytmp, f1, stack, rule_stack):
    """Forward-difference Jacobian ``jac`` (m, m) = df/dy and ``dfdt`` (m,) = df/dt at
    (t, y0) with ``f0`` = f(t, y0); ``h`` (the coming step) scales the time increment.
    One right-hand side per column group of ``hybrid.jacobian_group`` (the structural
    zeros stay 0), none for df/dt when the ODE is autonomous."""
    m = y0.shape[0]
    n_variables = m - 1  # nothing depends on Lambda: its Jacobian column is zero
    for c in range(m):
        jac[:, c] = 0.0
    for g in range(hybrid.n_jacobian_groups):
        ytmp[:] = y0
        for c in range(n_variables):
            if hybrid.jacobian_group[c] == g:
                ytmp[c] += 1.5e-8 * max(abs(y0[c]), 1.0)
        _derivatives(data, hybrid, x, p, t, ytmp, f1, stack, rule_stack)
        for c in range(n_variables):
            if hybrid.jacobian_group[c] == g:
                delta = ytmp[c] - y0[c]
                for r in range(m):
                    if hybrid.jacobian_pattern[r, c]:
                        jac[r, c] = (f1[r] - f0[r]) / delta
    if hybrid.autonomous:
        dfdt[:] = 0.0
        return
    delta = 1.5e-8 * max(abs(t), abs(h))
    _derivatives(data, hybrid, x, p, t + delta, y0, f1, stack, rule_stack)
    for r in range(m):
        dfdt[r] = (f1[r] - f0[r]) / delta


@numba.njit(cache=True)
def _rodas_step(data, hybrid, x, p, t, h, y0, f0, jac, dfdt, w, pivots, rk, ytmp, y1, f1,
                error, dense, stack, rule_stack):
    """One step of Rodas4 (Hairer and Wanner's RODAS: L-stable, stiffly accurate,
    order 4 with an embedded order-3 solution and a 3rd-order dense output) from (t, y0)
    with ``f0`` = f(t, y0) and ``jac``, ``dfdt`` of :func:`_jacobian` at (t, y0).
    ``rk`` (6, m) holds the stages. Fills ``y1`` and the dense output; returns the error
    norm (inf when the iteration matrix is singular)."""
    m = y0.shape[0]
    scale = 1.0 / (h * _RODAS_GAMMA)
    for r in range(m):
        for c in range(m):
            w[r, c] = -jac[r, c]
        w[r, r] += scale
    if not _lu_factor(w, pivots):
        return math.inf
    for s in range(6):
        if s == 0:
            for r in range(m):
                f1[r] = f0[r]
        else:
            for r in range(m):
                value = y0[r]
                for q in range(min(s, 5)):
                    value += _RODAS_A[s, q] * rk[q, r]
                if s == 5:
                    value += rk[4, r]
                ytmp[r] = value
            _derivatives(data, hybrid, x, p, t + _RODAS_C[s] * h, ytmp, f1, stack, rule_stack)
        for r in range(m):
            value = f1[r] + h * _RODAS_D[s] * dfdt[r]
            for q in range(s):
                value += _RODAS_CC[s, q] / h * rk[q, r]
            rk[s, r] = value
        _lu_solve(w, pivots, rk[s])
    for r in range(m):
        y1[r] = ytmp[r] + rk[5, r]
        error[r] = rk[5, r]
        dense[0, r] = y0[r]
        dense[1, r] = y1[r]
        first = 0.0
        second = 0.0
        for q in range(5):
            first += _RODAS_H[0, q] * rk[q, r]
            second += _RODAS_H[1, q] * rk[q, r]
        dense[2, r] = first
        dense[3, r] = second
    return _error_norm(hybrid, error, y0, y1)


@numba.njit(cache=True, inline="always")
def _dense_value(stiff, dense, c, s):
    """Component ``c`` of the dense output at the fraction ``s`` in [0, 1] of the step."""
    r = 1.0 - s
    if stiff:
        return dense[0, c] * r + s * (dense[1, c] + r * (dense[2, c] + s * dense[3, c]))
    return dense[0, c] + s * (dense[1, c] + r * (dense[2, c] + s * (dense[3, c] +
                                                                   r * dense[4, c])))


@numba.njit(cache=True)
def _hazard_root(stiff, dense, c, target):
    """The fraction s of the step where the dense Lambda (component ``c``) first reaches
    ``target`` (Lambda(0) < target <= Lambda(1)), by Illinois regula falsi to within
    1e-15 relative in Lambda or in s."""
    lo = 0.0
    hi = 1.0
    g_lo = _dense_value(stiff, dense, c, 0.0) - target
    g_hi = _dense_value(stiff, dense, c, 1.0) - target
    if g_lo >= 0.0:
        return 0.0
    side = 0
    for _ in range(200):
        s = (lo * g_hi - hi * g_lo) / (g_hi - g_lo)
        if not (lo < s < hi):
            s = 0.5 * (lo + hi)
        g = _dense_value(stiff, dense, c, s) - target
        if abs(g) <= 1e-15 * (1.0 + abs(target)):
            return s
        if g > 0.0:
            hi = s
            g_hi = g
            if side == 1:
                g_lo *= 0.5
            side = 1
        else:
            lo = s
            g_lo = g
            if side == -1:
                g_hi *= 0.5
            side = -1
        if hi - lo <= 1e-15:
            break
    return hi


# -- the trajectory kernel ----------------------------------------------------------------------
@numba.njit(cache=True)
def _record_dense(data, hybrid, output_program, stiff, dense, s, x, p, xs, ps, ys, t, row):
    """Record the state at fraction ``s`` of the current step into ``row``."""
    for c in range(ys.shape[0]):
        ys[c] = _dense_value(stiff, dense, c, s)
    xs[:] = x
    ps[:] = p
    _write_state(hybrid, ys, xs, ps)
    _record(data, output_program, xs, ps, t, row)


@numba.njit(cache=True)
def _discrete_stop(data, trigger, delay, priority, flags, assignment_ptr, assignment_target,
                   assignment_is_species, assignment_program, thresholds, threshold_index,
                   x, p, t, trigger_state, pending_time, pending_event, pending_values,
                   n_pending, stack, values, random, state):
    """Events at a time threshold or a pending event's time (checked at t and just
    after, as the SSA does). Returns (status, threshold_index, n_pending, changed)."""
    while threshold_index < thresholds.shape[0] and thresholds[threshold_index] <= t:
        threshold_index += 1
    changed = False
    for t_check in (t, np.nextafter(t, math.inf)):
        status, changed_now, n_pending = _process_events(
            data, trigger, delay, priority, flags, assignment_ptr, assignment_target,
            assignment_is_species, assignment_program, x, p, t, t_check, trigger_state,
            pending_time, pending_event, pending_values, n_pending, stack, values, random,
            state)
        if status != _OK:
            return status, threshold_index, n_pending, changed
        changed = changed or changed_now
    return _OK, threshold_index, n_pending, changed


@numba.njit(cache=True)
def _fire(data, hybrid, x, p, t, a, stack, state):
    """Draw the jump channel at time t (probabilities a_j / sum a) and apply it.
    Returns (status, channel index or -1 when every propensity is 0)."""
    total = 0.0
    for q in range(a.shape[0]):
        j = hybrid.jump_channels[q]
        a[q] = _jump_propensity(data, hybrid, j, x, p, t, stack)
        if not (a[q] >= 0.0):
            return _NEGATIVE_PROPENSITY, j
        total += a[q]
    if total <= 0.0:  # Lambda crossed on a rounding error of a vanishing hazard
        return _OK, -1
    r = uniform_draw(state) * total
    q = 0
    while q < a.shape[0] - 1 and r >= a[q]:
        r -= a[q]
        q += 1
    while a[q] <= 0.0 and q > 0:  # rounding at the end of the list
        q -= 1
    j = hybrid.jump_channels[q]
    for k in range(data.change_ptr[j], data.change_ptr[j + 1]):
        species = data.change_species[k]
        x[species] += data.change_amount[k]
        if hybrid.discrete[species] and x[species] < 0.0:
            return _NEGATIVE_COUNT, j
    if data.burst_species[j] >= 0:
        x[data.burst_species[j]] += _burst_size(data, j, uniform_draw(state))
    return _OK, j


@numba.njit(cache=True)
def _trajectory(data, hybrid, trigger, delay, priority, flags, assignment_ptr,
                assignment_target, assignment_is_species, assignment_program, output_program,
                thresholds, random, x0, p0, times, state, out, report, max_fired):
    """Simulate one PDMP trajectory into ``out`` (n_times, n_columns), stopping with
    ``_EVENT_BUDGET`` after ``max_fired`` jumps; ``report`` gets (status, jumps, failing
    channel, failure time, ODE steps)."""
    x = x0.copy()
    p = p0.copy()
    n_variables = hybrid.variable_index.shape[0]
    m = n_variables + 1
    n_events = trigger.shape[0]
    stack = np.empty(data.stack_size)
    rule_stack = np.empty(hybrid.rule_stack_size)
    max_assignments = 1
    for e in range(n_events):
        max_assignments = max(max_assignments, assignment_ptr[e + 1] - assignment_ptr[e])
    values = np.empty(max_assignments)
    pending_time = np.empty(_PENDING_CAPACITY)
    pending_event = np.empty(_PENDING_CAPACITY, dtype=np.int64)
    pending_values = np.empty((_PENDING_CAPACITY, max_assignments))
    n_pending = 0
    trigger_state = np.empty(n_events, dtype=np.bool_)
    for e in range(n_events):
        trigger_state[e] = flags[e, 1]
    y0 = np.zeros(m)
    y1 = np.zeros(m)
    f0 = np.zeros(m)
    k = np.zeros((7, m))
    ytmp = np.zeros(m)
    ystage = np.zeros(m)
    error = np.zeros(m)
    dense = np.zeros((5, m))
    w = np.zeros((m, m))
    jac = np.zeros((m, m))
    jacobian_ready = False  # jac, dfdt are those at (t, y0)
    rk = np.zeros((6, m))
    pivots = np.zeros(m, dtype=np.int64)
    f1 = np.zeros(m)
    dfdt = np.zeros(m)
    a = np.zeros(hybrid.jump_channels.shape[0])
    xs = x.copy()
    ps = p.copy()
    t = times[0]
    t_end = times[-1]
    n_times = times.shape[0]
    report[1] = 0.0
    report[2] = -1.0
    report[4] = 0.0
    threshold_index = 0
    while threshold_index < thresholds.shape[0] and thresholds[threshold_index] < t:
        threshold_index += 1
    status = _OK
    if random.initial_target.shape[0] > 0:
        status = _draw_parameters(data, random, x, p, t, stack, state)
    if status == _OK and n_events > 0:
        status, _, n_pending = _process_events(
            data, trigger, delay, priority, flags, assignment_ptr, assignment_target,
            assignment_is_species, assignment_program, x, p, t, t, trigger_state,
            pending_time, pending_event, pending_values, n_pending, stack, values, random,
            state)
    if status != _OK:
        report[0] = status
        report[3] = t
        return
    _read_state(hybrid, x, p, y0)
    target = -math.log(uniform_draw(state))
    stiff = hybrid.method == 2
    stiff_count = 0
    calm_count = 0
    fresh = True
    h = 0.0
    n_fired = 0
    n_steps = 0
    row = 0
    while row < n_times and times[row] <= t:
        _record(data, output_program, x, p, times[row], out[row])
        row += 1
    while row < n_times:
        t_discrete = math.inf
        if threshold_index < thresholds.shape[0]:
            t_discrete = thresholds[threshold_index]
        for i in range(n_pending):
            t_discrete = min(t_discrete, pending_time[i])
        if t_discrete <= t:
            status, threshold_index, n_pending, changed = _discrete_stop(
                data, trigger, delay, priority, flags, assignment_ptr, assignment_target,
                assignment_is_species, assignment_program, thresholds, threshold_index, x, p,
                t, trigger_state, pending_time, pending_event, pending_values, n_pending,
                stack, values, random, state)
            if status != _OK:
                break
            if changed:
                _read_state(hybrid, x, p, y0)
                fresh = True
            continue
        t_stop = min(t_discrete, t_end)
        if t_stop <= t:  # a jump at the end time
            while row < n_times:
                _record(data, output_program, x, p, times[row], out[row])
                row += 1
            break
        if fresh:
            _derivatives(data, hybrid, x, p, t, y0, f0, stack, rule_stack)
            jacobian_ready = False
            if h <= 0.0:
                h = _initial_step(data, hybrid, x, p, t, y0, f0, t_stop - t, ytmp, f1, stack,
                                  rule_stack)
            fresh = False
        clipped = h >= t_stop - t
        step = t_stop - t if clipped else h
        if not clipped and not t + step > t:  # no progress (a zero or NaN step)
            status = _STEP_FAILED
            break
        used_stiff = stiff
        stiffness = 0.0
        if stiff:
            if not jacobian_ready:  # a rejected step retries on the same point's
                _jacobian(data, hybrid, x, p, t, step, y0, f0, jac, dfdt, ytmp, f1, stack,
                          rule_stack)
                jacobian_ready = True
            norm = _rodas_step(data, hybrid, x, p, t, step, y0, f0, jac, dfdt, w, pivots, rk,
                               ytmp, y1, f1, error, dense, stack, rule_stack)
            exponent, largest = 0.25, 6.0
        else:
            k[0, :] = f0
            norm, stiffness = _dopri_step(data, hybrid, x, p, t, step, y0, k, ytmp, ystage, y1,
                                          error, dense, stack, rule_stack)
            exponent, largest = 0.2, 10.0
        n_steps += 1
        if n_steps > _MAX_STEPS:
            status = _STEP_FAILED
            break
        if not (norm <= 1.0):  # rejected (NaN included)
            factor = 0.2 if norm != norm else max(0.2, 0.9 * norm ** -exponent)
            h = step * factor
            if h <= 1e-14 * max(abs(t), 1.0):
                status = _STEP_FAILED
                break
            continue
        h = step * (largest if norm == 0.0 else min(largest, max(0.2, 0.9 * norm ** -exponent)))
        if hybrid.method == 0 and not stiff:  # Hairer's stiffness test
            if stiffness > 3.25:
                calm_count = 0
                stiff_count += 1
                stiff = stiff_count >= 15
            else:
                calm_count += 1
                if calm_count == 6:
                    stiff_count = 0
        t1 = t_stop if clipped else t + step
        if y1[n_variables] >= target:  # the next jump falls in this step
            s = _hazard_root(used_stiff, dense, n_variables, target)
            t_jump = t + s * step if s < 1.0 else t1
            while row < n_times and times[row] < t_jump:
                _record_dense(data, hybrid, output_program, used_stiff, dense,
                              (times[row] - t) / step, x, p, xs, ps, ytmp, times[row], out[row])
                row += 1
            for c in range(m):
                y0[c] = _dense_value(used_stiff, dense, c, s)
            _write_state(hybrid, y0, x, p)
            t = t_jump
            status, channel = _fire(data, hybrid, x, p, t, a, stack, state)
            if status != _OK:
                report[2] = channel
                break
            if channel >= 0:
                n_fired += 1
                if n_fired > max_fired:
                    status = _EVENT_BUDGET
                    break
            if n_events > 0:
                status, _, n_pending = _process_events(
                    data, trigger, delay, priority, flags, assignment_ptr, assignment_target,
                    assignment_is_species, assignment_program, x, p, t, t, trigger_state,
                    pending_time, pending_event, pending_values, n_pending, stack, values,
                    random, state)
                if status != _OK:
                    break
            _read_state(hybrid, x, p, y0)
            y0[n_variables] = 0.0
            target = -math.log(uniform_draw(state))
            fresh = True
            continue
        stop = clipped and t_discrete <= t_end  # an event time, not only the end
        while row < n_times and (times[row] < t1 or (times[row] == t1 and not stop)):
            _record_dense(data, hybrid, output_program, used_stiff, dense,
                          min((times[row] - t) / step, 1.0), x, p, xs, ps, ytmp, times[row],
                          out[row])
            row += 1
        y0[:] = y1
        jacobian_ready = False
        if used_stiff:  # Rodas has no first-same-as-last stage
            _derivatives(data, hybrid, x, p, t1, y0, f0, stack, rule_stack)
        else:
            f0[:] = k[6]
        _write_state(hybrid, y0, x, p)
        t = t1
        if stop:
            status, threshold_index, n_pending, changed = _discrete_stop(
                data, trigger, delay, priority, flags, assignment_ptr, assignment_target,
                assignment_is_species, assignment_program, thresholds, threshold_index, x, p,
                t, trigger_state, pending_time, pending_event, pending_values, n_pending,
                stack, values, random, state)
            if status != _OK:
                break
            if changed:
                _read_state(hybrid, x, p, y0)
                fresh = True
            while row < n_times and times[row] <= t:
                _record(data, output_program, x, p, times[row], out[row])
                row += 1
    report[0] = status
    report[1] = n_fired
    report[3] = t
    report[4] = n_steps


@numba.njit(cache=True, parallel=True)
def _ensemble(data, hybrid, trigger, delay, priority, flags, assignment_ptr, assignment_target,
              assignment_is_species, assignment_program, output_program, thresholds, random,
              x0, p0, times, states, out, report, max_fired):
    """Run ``states.shape[0]`` trajectories in parallel (see :func:`_trajectory`)."""
    for i in prange(states.shape[0]):
        _trajectory(data, hybrid, trigger, delay, priority, flags, assignment_ptr,
                    assignment_target, assignment_is_species, assignment_program,
                    output_program, thresholds, random, x0, p0, times, states[i], out[i],
                    report[i], max_fired)


# -- public API -------------------------------------------------------------------------------
def check_hybrid_support(network: Network) -> None:
    """Raise UnsupportedFeatureError when the hybrid simulation cannot be exact."""
    for element, construct in network.deterministic_only:
        raise UnsupportedFeatureError(
            construct, element, analysis="simulate_hybrid",
            hint="Only simulate_deterministic evaluates this construct.")
    check_time_in_triggers(network, "simulate_hybrid")
    continuous = {target for _, target in _variables(network)}
    for event in network.events:
        read = continuous & {s.name for s in event.trigger.free_symbols}
        if read:
            raise UnsupportedFeatureError(
                f"an event trigger that reads the continuous variable '{sorted(read)[0]}'",
                event.id, analysis="simulate_hybrid",
                hint="Triggers may read discrete species, constant parameters and "
                     "comparisons of time with constants; make the variable discrete or use "
                     "simulate_deterministic.")


def _reported(network: Network) -> Network:
    """``network`` with each rate-rule parameter as an output column (model units)."""
    known = {o.id for o in network.outputs}
    extra = tuple(Output(v, sympy.Symbol(v), "parameter")
                  for is_species, v in _variables(network) if not is_species and v not in known)
    return dataclasses.replace(network, outputs=network.outputs + extra)


def _live_rate_constants(network: Network) -> Network:
    """Mass-action laws whose constant reads a continuous variable become expressions
    (the compiled kernel folds constants of mass action into numbers): the stochastic
    propensity for a jump, the deterministic limit for a continuous flux."""
    live = {v for is_species, v in _variables(network) if not is_species}
    reactions = []
    for reaction, jump in zip(network.reactions, network.jump_mask):
        law = reaction.rate_law
        if isinstance(law, MassAction) and {s.name for s in law.rate_constant.free_symbols} & live:
            formula = law.propensity() if jump else law.deterministic_limit()
            reaction = dataclasses.replace(reaction, rate_law=Expression(formula))
        reactions.append(reaction)
    return dataclasses.replace(network, reactions=tuple(reactions))


def simulate_hybrid(network: Network, times, *, n_trajectories: int = 1000,
                    seed: int | None = None, method: str = "auto", continuous=(),
                    partition: str | None = None, threshold: float = AUTO_THRESHOLD,
                    rtol: float = 1e-7, atol: float = 1e-9, n_jobs: int | None = None,
                    progress: bool = False, max_events: float = MAX_EVENTS) -> EnsembleResult:
    """Exact hybrid (PDMP) simulation: jumps on the discrete species, ODEs in between.

    Parameters
    ----------
    network : Network
    times : array_like, shape (n_times,)
        Output times (model time units); the first is the start time.
    n_trajectories : int
    seed : int, optional
        Seed of the ``SeedSequence`` giving one stream per trajectory; the same seed
        gives the same ensemble whatever ``n_jobs``.
    method : str
        ODE integrator, a key of ``METHODS`` (see module docstring).
    continuous : sequence of str
        Species to make continuous on top of the network's partition.
    partition : {None, "auto"}
        ``"auto"``: also make continuous every species whose deterministic count stays
        above ``threshold`` molecules on ``times`` (:func:`auto_partition`).
    rtol, atol : float
        ODE tolerances: relative, and absolute in molecules (model units for parameters;
        the cumulative hazard is dimensionless). Jump times are exact up to them.
    n_jobs : int, optional
        Threads (default: all cores).
    progress : bool
        Show a progress bar over blocks of trajectories.
    max_events : float
        Work limit on jumps, as in :func:`~sbml_cme.analyses.ssa.simulate_ssa`: the
        expected jumps (jump-channel propensities integrated along the rate equations)
        times ``n_trajectories`` above it is refused with :class:`WorkLimitError`.

    Returns
    -------
    EnsembleResult
        ``method == "hybrid"``. States at ``times``, shape (n_trajectories, n_times,
        n_species + n_outputs): counts (real for continuous species), then the network's
        outputs and each rate-rule parameter (model units). ``n_events`` counts jumps.
    """
    times = _check_times(times)
    if method not in METHODS:
        raise OptionsError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if not (isinstance(n_trajectories, (int, np.integer)) and n_trajectories >= 1):
        raise OptionsError(f"n_trajectories must be a positive integer, got {n_trajectories!r}")
    if not (0 < rtol < 1 and atol > 0):
        raise OptionsError(f"need 0 < rtol < 1 and atol > 0, got rtol={rtol}, atol={atol}")
    if partition not in (None, "auto"):
        raise OptionsError(f"partition must be None or 'auto', got {partition!r}")
    if continuous:
        network = network.with_partition(continuous)
    if partition == "auto":
        network, _ = auto_partition(network, times, threshold)
    check_hybrid_support(network)
    check_ensemble_work(_live_rate_constants(network), times, int(n_trajectories), max_events)
    reported = _reported(network)
    compiled = with_trigger_crossings(
        compile_network(_live_rate_constants(reported), random_draws=True), times)
    hybrid = _hybrid_data(network, rtol, atol, METHODS[method])
    whole = [bool(is_species and hybrid.discrete[target]) and whole_target
             for target, is_species, whole_target in zip(
                 compiled.assignment_target, compiled.assignment_is_species,
                 compiled.random.assignment_whole)]
    random = compiled.random._replace(assignment_whole=np.array(whole, dtype=np.bool_))
    x0 = whole_initial_counts(network)
    p0 = np.concatenate([compiled.parameter_vector(), np.zeros(random.n_slots)])
    started = wallclock.perf_counter()
    streams = trajectory_streams(seed, int(n_trajectories))
    n_columns = len(reported.species) + len(reported.outputs)
    out = np.zeros((n_trajectories, len(times), n_columns))
    report = np.zeros((n_trajectories, 5))
    threads = thread_count(n_jobs)

    def run(start, stop):
        _ensemble(compiled.data, hybrid, compiled.event_trigger, compiled.event_delay,
                  compiled.event_priority, compiled.event_flags, compiled.assignment_ptr,
                  compiled.assignment_target, compiled.assignment_is_species,
                  compiled.assignment_program, compiled.output_program,
                  compiled.time_thresholds, random, x0, p0, times,
                  streams[start:stop].copy(), out[start:stop], report[start:stop],
                  float(max_events))

    with numba_threads(threads):
        done = run_until_interrupted(local_blocks(n_trajectories, _BLOCK, progress, "hybrid"),
                                     run, int(n_trajectories))
    out, report = out[:done], report[:done]
    _raise_hybrid_failures(network, report, max_events)
    return EnsembleResult(reported, times, out, report[:, 1].astype(np.int64), method="hybrid",
                          run_info={"algorithm": method, "seed": seed,
                                    "partial": done < n_trajectories,
                                    "n_trajectories": done, "threads": threads,
                                    "rtol": rtol, "atol": atol,
                                    "ode_steps": int(report[:, 4].sum()),
                                    "continuous": list(network.continuous_species),
                                    "wall_time": wallclock.perf_counter() - started})


def _raise_hybrid_failures(network: Network, report: np.ndarray, max_events: float) -> None:
    failed = np.nonzero(report[:, 0] == _STEP_FAILED)[0]
    if len(failed):
        raise AnalysisError(
            f"hybrid simulation stopped in {len(failed)} of {len(report)} trajectories: the "
            f"ODE step size underflowed or the state became NaN at t={report[failed[0], 3]:g} "
            "(a rate rule or flux that blows up, or tolerances too tight)")
    _raise_failures(network, report[:, :4], max_events)
