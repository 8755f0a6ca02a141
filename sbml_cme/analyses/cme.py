"""The chemical master equation by finite state projection (Munsky & Khammash 2006).

The state set J is enumerated breadth-first from the initial state(s), so it lies inside
the stoichiometric compatibility class: conservation laws shrink it automatically (a
closed A <-> B with N molecules has N + 1 states). Open systems get per-species upper
bounds, started from the deterministic solution plus a margin and grown until the
probability that leaks out of J is at most ``tol``. Leaving J is recorded in one
absorbing sink per bounded species, so the leaked mass is both the certificate of
THEORY.md section 7 (the L1 error of the returned distribution is at most the leaked
mass) and the signal of which bound to grow.

Transient solutions use Krylov ``expm_multiply`` (``method="krylov"``) or a stiff BDF
solver with the sparse generator as Jacobian (``method="ode"``); see docs/cme.md for the
benchmark behind the default. Stationary solutions use the stationary FSP: the outflow of
J is redirected to the most probable state, making the truncated generator conservative;
the normalisation is part of the linear system (it cannot return zero), and the result is
certified by evolving it with the absorbing FSP over several relaxation times.
"""

from __future__ import annotations

import math
import os
import time as wallclock
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sparse
import scipy.sparse.linalg as splinalg
from numba import prange
from scipy.integrate import solve_ivp

from ..errors import (ConvergenceError, OptionsError, StateSpaceTooLargeError, TruncationError,
                      UnsupportedFeatureError)
from ..kinetics import KernelData, channel_propensity, compile_network, compile_expressions
from ..network import TIME, Network
from ..results import CMEResult
from .deterministic import _check_times, simulate_deterministic

METHODS = ("krylov", "ode")

#: Bytes per state used by the memory estimate (states, generator, work vectors).
_BYTES_PER_STATE_BASE = 160
_MAX_GROWTH_ROUNDS = 30


# -- vectorised propensities -----------------------------------------------------------------
@numba.njit(cache=True, parallel=True)
def _propensities_of_states(data: KernelData, states, p, t, out):
    """Propensities for many states: ``states`` (n, n_species) -> ``out`` (n, n_channels)."""
    for i in prange(states.shape[0]):
        stack = np.empty(data.stack_size)
        x = states[i].astype(np.float64)
        for j in range(out.shape[1]):
            out[i, j] = channel_propensity(data, j, x, p, t, False, stack)


def state_propensities(compiled, states: np.ndarray, parameters: np.ndarray,
                       time: float = 0.0) -> np.ndarray:
    """Propensities, shape (n_states, n_channels), for ``states`` (n_states, n_species)."""
    out = np.empty((len(states), len(compiled.network.reactions)))
    if len(states):
        _propensities_of_states(compiled.data, np.ascontiguousarray(states, dtype=np.int64),
                                parameters, float(time), out)
    bad = ~(out >= 0)
    if bad.any():
        state, channel = np.argwhere(bad)[0]
        from ..errors import AnalysisError
        raise AnalysisError(
            f"the propensity of reaction '{compiled.network.reactions[channel].id}' is "
            f"negative or NaN at state {dict(zip(compiled.network.species_ids, states[state]))}")
    return out


# -- the state space ----------------------------------------------------------------------------
@dataclass(frozen=True)
class StateSpace:
    """An enumerated FSP state set.

    Attributes
    ----------
    states : ndarray, shape (n_states, n_species), int64
        Molecule counts of every species (fixed species included), sorted by ``keys``.
    keys : ndarray, shape (n_states,), int64
        Mixed-radix code of the key species' counts (sorted ascending).
    key_species : ndarray of int
        Species whose counts determine a state within the compatibility class.
    bounds : ndarray, shape (n_species,)
        Upper bound per species (``-1`` = unbounded by truncation).
    """

    states: np.ndarray
    keys: np.ndarray
    key_species: np.ndarray
    radix: np.ndarray
    bounds: np.ndarray

    @property
    def n_states(self) -> int:
        return len(self.states)

    def encode(self, states: np.ndarray) -> np.ndarray:
        return states[:, self.key_species] @ self.radix

    def index_of(self, states: np.ndarray) -> np.ndarray:
        """Index of each row of ``states`` in this set, or -1 when absent."""
        keys = self.encode(states)
        position = np.searchsorted(self.keys, keys)
        position = np.minimum(position, len(self.keys) - 1)
        found = self.keys[position] == keys
        return np.where(found, position, -1)


def _key_species(stoichiometry: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Species whose stoichiometry rows span the row space, smallest ranges first."""
    order = np.argsort(ranges, kind="stable")
    chosen: list[int] = []
    rank = 0
    for i in order:
        if not stoichiometry[i].any():
            continue
        trial = np.linalg.matrix_rank(stoichiometry[chosen + [i]].astype(float))
        if trial > rank:
            chosen.append(int(i))
            rank = trial
    return np.array(sorted(chosen), dtype=np.int64)


def conservation_bounds(network: Network, totals_from: np.ndarray) -> np.ndarray:
    """Upper bounds implied by non-negative conservation laws (inf when none), shape
    (n_species,). ``totals_from`` is any reachable state (n_species,)."""
    from scipy.optimize import linprog

    stoichiometry = network.stoichiometry.astype(float)
    n_species = len(network.species)
    bounds = np.full(n_species, np.inf)
    free = np.array([not s.fixed for s in network.species])
    for i in np.nonzero(free)[0]:
        # Find w >= 0 with w^T S = 0 and w_i = 1 minimising w . x0: then n_i <= w . x0.
        cost = totals_from.astype(float)
        equality = np.vstack([stoichiometry.T, np.eye(n_species)[i]])
        rhs = np.concatenate([np.zeros(stoichiometry.shape[1]), [1.0]])
        result = linprog(cost, A_eq=equality, b_eq=rhs, bounds=[(0, None)] * n_species,
                         method="highs")
        if result.status == 0:
            bounds[i] = math.floor(result.fun + 1e-9)
    return bounds


def default_max_states() -> int:
    """States that fit in a quarter of the machine's physical memory."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 4 * 2**30
    return int(memory * 0.25 / (_BYTES_PER_STATE_BASE * 4))


def _bytes_per_state(network: Network, n_times: int) -> int:
    return _BYTES_PER_STATE_BASE + 8 * len(network.species) + 12 * (
        len(network.reactions) + 1) + 8 * (n_times + 8)


def _guard(network: Network, n_states: int, max_states: int, n_times: int, what: str) -> None:
    if n_states > max_states:
        memory = n_states * _bytes_per_state(network, n_times)
        raise StateSpaceTooLargeError(
            f"the CME needs {what} {n_states:.3g} states (about {memory / 2**30:.3g} GiB); "
            f"the limit is {max_states:.3g} states (max_states=). Use solve_lna for the "
            "moments or simulate_ssa for samples, or reduce volumes/copy numbers.")


def enumerate_states(compiled, sources: np.ndarray, bounds: np.ndarray, key_species,
                     radix, parameters, max_states: int, n_times: int) -> StateSpace:
    """Breadth-first enumeration of the states reachable from ``sources`` (n, n_species)
    that respect ``bounds``; vectorised per layer."""
    network = compiled.network
    change = network.stoichiometry.T.astype(np.int64)  # (n_channels, n_species)
    limit = np.where(bounds >= 0, bounds, np.iinfo(np.int64).max)
    frontier = np.unique(sources, axis=0)
    keys = np.unique(frontier[:, key_species] @ radix)
    all_states = [frontier]
    total = len(frontier)
    while len(frontier):
        rates = state_propensities(compiled, frontier, parameters)
        candidates = []
        for j in range(change.shape[0]):
            active = rates[:, j] > 0
            if not active.any():
                continue
            moved = frontier[active] + change[j]
            inside = np.all(moved <= limit, axis=1) & np.all(moved >= 0, axis=1)
            candidates.append(moved[inside])
        if not candidates:
            break
        candidates = np.concatenate(candidates)
        candidate_keys = candidates[:, key_species] @ radix
        candidate_keys, first = np.unique(candidate_keys, return_index=True)
        new = ~np.isin(candidate_keys, keys, assume_unique=True)
        frontier = candidates[first[new]]
        keys = np.union1d(keys, candidate_keys[new])
        total += len(frontier)
        _guard(network, total, max_states, n_times, "at least")
        all_states.append(frontier)
    states = np.concatenate(all_states)
    order = np.argsort(states[:, key_species] @ radix, kind="stable")
    states = states[order]
    return StateSpace(states=states, keys=states[:, key_species] @ radix,
                      key_species=key_species, radix=radix, bounds=bounds)


# -- the generator --------------------------------------------------------------------------------
def build_generator(compiled, space: StateSpace, parameters, *, absorbing: bool = True,
                    redirect_to: int | None = None) -> tuple[sparse.csr_matrix, int]:
    """Sparse generator of the truncated CME, shape (n + n_sinks) squared (columns are
    sources, so dp/dt = A p). Transitions leaving J go to the sink of the first bound
    they break (``absorbing``) or to state ``redirect_to``. Returns (A, n_sinks)."""
    network = compiled.network
    n = space.n_states
    rates = state_propensities(compiled, space.states, parameters)
    change = network.stoichiometry.T.astype(np.int64)
    bounded = np.nonzero(space.bounds >= 0)[0]
    n_sinks = len(bounded) + 1 if absorbing else 0  # + 1: leaving for any other reason
    rows, cols, values = [], [], []
    source = np.arange(n)
    for j in range(change.shape[0]):
        active = rates[:, j] > 0
        if not active.any():
            continue
        moved = space.states[active] + change[j]
        target = space.index_of(moved)
        outside = target < 0
        if outside.any():
            if absorbing:
                broken = moved[outside][:, bounded] > space.bounds[bounded]
                sink = np.where(broken.any(axis=1), np.argmax(broken, axis=1), len(bounded))
                target[outside] = n + sink
            else:
                target[outside] = redirect_to
        rows.append(target)
        cols.append(source[active])
        values.append(rates[active, j])
    diagonal = -rates.sum(axis=1)
    rows.append(source)
    cols.append(source)
    values.append(diagonal)
    size = n + n_sinks
    matrix = sparse.coo_matrix((np.concatenate(values), (np.concatenate(rows),
                                                          np.concatenate(cols))),
                               shape=(size, size)).tocsr()
    matrix.sum_duplicates()
    return matrix, n_sinks


# -- transient solves --------------------------------------------------------------------------------
def _propagate(matrix, p0, times, method):
    """p(t) for every t in ``times`` (relative to 0), shape (n_times, n)."""
    if method == "krylov":
        result = np.empty((len(times), len(p0)))
        current, now = p0, 0.0
        uniform = len(times) > 2 and np.allclose(np.diff(times), times[1] - times[0],
                                                 rtol=1e-12) and times[0] == 0
        if uniform:
            return np.asarray(splinalg.expm_multiply(matrix, p0, start=0.0, stop=times[-1],
                                                     num=len(times), endpoint=True))
        for k, t in enumerate(times):
            if t > now:
                current = splinalg.expm_multiply(matrix * (t - now), current)
                now = t
            result[k] = current
        return result
    solution = solve_ivp(lambda t, p: matrix @ p, (0.0, times[-1]), p0, method="BDF",
                         t_eval=times, jac=matrix, rtol=1e-10, atol=1e-14)
    if solution.status != 0:
        raise ConvergenceError(f"the CME integration failed: {solution.message}")
    return solution.y.T


@dataclass
class _Segment:
    space: StateSpace
    probabilities: np.ndarray  # (n_times, n_states)
    leaked: np.ndarray         # (n_times,) cumulative leaked mass


def _initial_bounds(network: Network, times: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """Per-species bounds from the deterministic solution plus a Poisson-like margin;
    -1 for fixed species and those capped by conservation laws."""
    bounds = np.full(len(network.species), -1, dtype=np.int64)
    caps = conservation_bounds(network, x0)
    horizon = times if len(times) > 1 else np.array([times[0], times[0] + 1.0])
    try:
        peak = simulate_deterministic(network, horizon).counts[:, :len(network.species)].max(
            axis=0)
    except Exception:  # noqa: BLE001 - a rough guess is enough here
        peak = x0.astype(float)
    for i, s in enumerate(network.species):
        if s.fixed or np.isfinite(caps[i]):
            continue
        level = max(float(peak[i]), float(x0[i]))
        bounds[i] = int(math.ceil(level + 6.0 * math.sqrt(level + 1.0) + 10))
    return bounds


def _key_layout(network, bounds, conservation, x0):
    ranges = np.where(bounds >= 0, bounds, np.where(np.isfinite(conservation), conservation,
                                                    0)).astype(np.int64)
    key_species = _key_species(network.stoichiometry, ranges)
    radix = np.cumprod(np.concatenate([[1], ranges[key_species][:-1] + 1])).astype(np.int64)
    estimate = int(np.prod((ranges[key_species] + 1).astype(float))) if len(key_species) else 1
    return key_species, radix, estimate


def _solve_transient_segment(compiled, sources, probabilities, times, bounds, tol, max_states,
                             method, parameters) -> _Segment:
    """Adaptive FSP from a distribution on ``sources`` over ``times`` (starting at 0)."""
    network = compiled.network
    conservation = conservation_bounds(network, sources[0])
    for _ in range(_MAX_GROWTH_ROUNDS):
        key_species, radix, estimate = _key_layout(network, bounds, conservation, sources[0])
        _guard(network, estimate, max_states, len(times), "up to")
        space = enumerate_states(compiled, sources, bounds, key_species, radix, parameters,
                                 max_states, len(times))
        matrix, n_sinks = build_generator(compiled, space, parameters)
        p0 = np.zeros(matrix.shape[0])
        np.add.at(p0, space.index_of(sources), probabilities)
        solution = _propagate(matrix, p0, times, method)
        leaked = solution[:, space.n_states:].sum(axis=1)
        if leaked[-1] <= tol:
            return _Segment(space, solution[:, :space.n_states], leaked)
        bounded = np.nonzero(bounds >= 0)[0]
        sink_mass = solution[-1, space.n_states:space.n_states + len(bounded)]
        grow = bounded[sink_mass > tol / (2 * max(len(bounded), 1))]
        if not len(grow):
            grow = bounded
        if not len(grow):
            raise TruncationError(
                f"probability {leaked[-1]:.3g} leaves the reachable set without breaking a "
                "bound; cannot certify the FSP")
        bounds = bounds.copy()
        bounds[grow] = np.ceil(bounds[grow] * 1.5 + 10).astype(np.int64)
    raise TruncationError(f"the FSP did not reach tol={tol:g} after {_MAX_GROWTH_ROUNDS} "
                          f"enlargements (leaked {leaked[-1]:.3g})")


def check_cme_support(network: Network) -> None:
    """Raise UnsupportedFeatureError for what the CME solver cannot express exactly."""
    if network.uses_time:
        reaction = next(r.id for r in network.reactions
                        if TIME in r.rate_law.propensity().free_symbols)
        raise UnsupportedFeatureError("a propensity that depends explicitly on time", reaction,
                                      analysis="solve_cme")
    species = {sym for s in network.species_ids for sym in [s]}
    for event in network.events:
        names = {str(s) for s in event.trigger.free_symbols}
        if names & species or (event.delay is not None and {
                str(s) for s in event.delay.free_symbols} & species):
            raise UnsupportedFeatureError(
                "a state-triggered event", event.id, analysis="solve_cme",
                hint="The CME solver handles time-triggered events only; use simulate_ssa.")
        if event.priority is not None:
            raise UnsupportedFeatureError("an event priority", event.id, analysis="solve_cme")


def _event_schedule(network: Network, compiled, t0: float, t_end: float):
    """(time, event index) of every time-triggered event firing in (t0, t_end], sorted."""
    if not network.events:
        return []
    triggers = compile_expressions(network, [e.trigger for e in network.events], "trigger")
    delays = compile_expressions(network, [e.delay if e.delay is not None else 0
                                           for e in network.events], "delay")
    p = network.parameter_values
    x = network.initial_counts
    checkpoints = sorted({t0, *[t for t in compiled.time_thresholds if t0 <= t <= t_end]})
    state = [bool(e.initial_value) for e in network.events]
    schedule = []
    for t in checkpoints:
        after = np.nextafter(t, math.inf)
        for k, event in enumerate(network.events):
            now = triggers.evaluate(k, x, p, t) != 0 or triggers.evaluate(k, x, p, after) != 0
            if now and not state[k]:
                fire = t + delays.evaluate(k, x, p, t)
                if fire <= t_end:
                    schedule.append((fire, k))
            state[k] = now
    return sorted(schedule)


def _apply_event(compiled, event_index, states, probabilities, parameters, t):
    """Map a distribution through an event's assignments; returns (states, probs)."""
    network = compiled.network
    event = network.events[event_index]
    programs = compile_expressions(network, [v for _, v in event.assignments], event.id)
    new_states = states.copy()
    new_parameters = parameters.copy()
    parameter_index = {p: i for i, p in enumerate(network.parameter_ids)}
    for k, (target, _) in enumerate(event.assignments):
        if target in network.species_index:
            values = np.array([programs.evaluate(k, s, parameters, t) for s in states])
            new_states[:, network.species_index[target]] = np.floor(values + 0.5)
        else:
            new_parameters[parameter_index[target]] = programs.evaluate(k, states[0],
                                                                        parameters, t)
    if np.any(new_states < 0):
        raise UnsupportedFeatureError("an event that assigns a negative count", event.id,
                                      analysis="solve_cme")
    unique, inverse = np.unique(new_states, axis=0, return_inverse=True)
    merged = np.zeros(len(unique))
    np.add.at(merged, inverse.ravel(), probabilities)
    keep = merged > 0
    return unique[keep].astype(np.int64), merged[keep], new_parameters


def solve_cme(network: Network, times, *, tol: float = 1e-6, max_states: int | None = None,
              method: str = "krylov") -> CMEResult:
    """Transient distribution of the CME by adaptive finite state projection.

    Parameters
    ----------
    network : Network
    times : array_like, shape (n_times,)
        Output times; the first is the start time (initial counts are exact there).
    tol : float
        Bound on the total probability that leaves the state set (the L1 error).
    max_states : int, optional
        Refuse larger state sets (default: what fits in a quarter of the memory).
    method : {"krylov", "ode"}

    Returns
    -------
    CMEResult
        Distributions at ``times`` with ``error_bound`` <= ``tol``.

    Raises
    ------
    StateSpaceTooLargeError, TruncationError, UnsupportedFeatureError
    """
    times = _check_times(times)
    _check_options(tol, method)
    max_states = int(max_states or default_max_states())
    check_cme_support(network)
    started = wallclock.perf_counter()
    compiled = compile_network(network)
    parameters = network.parameter_values.copy()
    x0 = np.floor(network.initial_counts + 0.5).astype(np.int64)
    bounds = _initial_bounds(network, times, x0)
    sources, probabilities = x0[None, :], np.array([1.0])
    t_now = times[0]
    schedule = _event_schedule(network, compiled, times[0], times[-1])
    leaked_before = 0.0
    distributions: list[tuple[np.ndarray, np.ndarray]] = [None] * len(times)
    errors = np.zeros(len(times))
    largest = 0
    for stop, event_index in schedule + [(times[-1], None)]:
        outputs = [k for k, t in enumerate(times) if t_now <= t <= stop and
                   distributions[k] is None and not (event_index is not None and t == stop)]
        local = np.array([0.0] + [times[k] - t_now for k in outputs] + [stop - t_now])
        local = np.unique(local)
        segment = _solve_transient_segment(compiled, sources, probabilities, local, bounds,
                                           tol - leaked_before, max_states, method, parameters)
        largest = max(largest, segment.space.n_states)
        for k in outputs:
            row = int(np.searchsorted(local, times[k] - t_now))
            distributions[k] = (segment.space.states, segment.probabilities[row])
            errors[k] = leaked_before + segment.leaked[row]
        final = segment.probabilities[-1]
        leaked_before += segment.leaked[-1]
        keep = final > 0
        sources, probabilities = segment.space.states[keep], final[keep]
        bounds = segment.space.bounds
        if event_index is not None:
            sources, probabilities, parameters = _apply_event(
                compiled, event_index, sources, probabilities, parameters, stop)
            for k, t in enumerate(times):
                if t == stop and distributions[k] is None:
                    distributions[k] = (sources, probabilities)
                    errors[k] = leaked_before
        t_now = stop
    return CMEResult(network=network, times=times, distributions=tuple(distributions),
                     error_bounds=errors, run_info={
                         "method": method, "tol": tol, "max_states": max_states,
                         "n_states": largest, "wall_time": wallclock.perf_counter() - started,
                         "stationary": False})


def stationary_cme(network: Network, *, tol: float = 1e-6, max_states: int | None = None,
                   horizon: float | None = None) -> CMEResult:
    """Stationary distribution by the stationary FSP, with a certificate.

    The truncated generator with its outflow redirected to the most probable state is
    solved with the normalisation built into the sparse system. The answer ``pi_J`` is
    then evolved by the absorbing FSP over ``horizon`` (default: ten relaxation times of
    the truncated chain); ``error_bound`` = leaked mass + ||p(horizon) - pi_J||_1 bounds
    how far the exact CME started from ``pi_J`` moves away from it (zero for the exact
    stationary law). The set grows until that certificate is below ``tol``.
    """
    _check_options(tol, "krylov")
    max_states = int(max_states or default_max_states())
    check_cme_support(network)
    if network.events:
        raise UnsupportedFeatureError("events", network.events[0].id,
                                      analysis="stationary_cme",
                                      hint="A stationary law ignores transients; remove events.")
    started = wallclock.perf_counter()
    compiled = compile_network(network)
    parameters = network.parameter_values.copy()
    x0 = np.floor(network.initial_counts + 0.5).astype(np.int64)
    bounds = _stationary_bounds(network, x0)
    conservation = conservation_bounds(network, x0)
    for _ in range(_MAX_GROWTH_ROUNDS):
        key_species, radix, estimate = _key_layout(network, bounds, conservation, x0)
        _guard(network, estimate, max_states, 2, "up to")
        space = enumerate_states(compiled, x0[None, :], bounds, key_species, radix,
                                 parameters, max_states, 2)
        anchor = int(space.index_of(x0[None, :])[0])
        pi, _ = _stationary_solve(compiled, space, parameters, anchor)
        pi, conservative = _stationary_solve(compiled, space, parameters, int(np.argmax(pi)))
        tau = horizon if horizon is not None else 10.0 * _relaxation_time(conservative)
        certificate, leaked, drift = _certify(compiled, space, parameters, pi, tau)
        if certificate <= tol:
            return CMEResult(network=network, times=np.array([np.inf]),
                             distributions=((space.states, pi),),
                             error_bounds=np.array([certificate]), run_info={
                                 "method": "stationary FSP", "tol": tol,
                                 "max_states": max_states, "n_states": space.n_states,
                                 "horizon": tau, "leaked": leaked, "drift": drift,
                                 "wall_time": wallclock.perf_counter() - started,
                                 "stationary": True})
        bounded = np.nonzero(bounds >= 0)[0]
        if not len(bounded):
            raise TruncationError(f"the stationary certificate {certificate:.3g} exceeds "
                                  f"tol={tol:g} on the whole reachable set")
        bounds = bounds.copy()
        bounds[bounded] = np.ceil(bounds[bounded] * 1.5 + 10).astype(np.int64)
    raise TruncationError(f"the stationary FSP did not reach tol={tol:g}")


def _stationary_bounds(network: Network, x0: np.ndarray) -> np.ndarray:
    """Bounds around the deterministic long-time level."""
    horizon = np.array([0.0, 1e3, 1e4])
    return _initial_bounds(network, horizon, x0)


def _stationary_solve(compiled, space, parameters, anchor: int):
    """Stationary law of the truncated chain with outflow sent to ``anchor``; returns
    (pi, that conservative generator)."""
    matrix, _ = build_generator(compiled, space, parameters, absorbing=False,
                                redirect_to=anchor)
    n = space.n_states
    system = matrix.tolil()
    system[anchor, :] = np.ones(n)  # replace one balance equation by the normalisation
    rhs = np.zeros(n)
    rhs[anchor] = 1.0
    try:
        pi = splinalg.spsolve(system.tocsc(), rhs)
    except RuntimeError as error:
        raise ConvergenceError(f"the stationary system is singular: {error}. The chain may "
                               "have several closed classes; start from a different state.") \
            from None
    if not np.all(np.isfinite(pi)):
        raise ConvergenceError("the stationary system is singular (no unique stationary law "
                               "on the reachable set)")
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum(), matrix


def _certify(compiled, space, parameters, pi, horizon):
    """(leaked + drift, leaked, drift) of the absorbing FSP started from ``pi``."""
    matrix, _ = build_generator(compiled, space, parameters)
    n = space.n_states
    p0 = np.concatenate([pi, np.zeros(matrix.shape[0] - n)])
    evolved = _propagate(matrix, p0, np.array([0.0, horizon]), "krylov")[-1]
    leaked = float(evolved[n:].sum())
    drift = float(np.abs(evolved[:n] - pi).sum())
    return leaked + drift, leaked, drift


def _relaxation_time(matrix) -> float:
    """1 / spectral gap of a conservative generator (its slowest non-stationary mode)."""
    n = matrix.shape[0]
    if n <= 2:
        return 1.0 / max(abs(matrix.diagonal()).max(), 1e-12)
    try:
        if n <= 400:
            values = np.linalg.eigvals(matrix.toarray())
        else:
            values = splinalg.eigs(matrix.tocsc(), k=min(3, n - 2), sigma=1e-9,
                                   return_eigenvectors=False, maxiter=2000, tol=1e-6)
        decay = np.sort(np.abs(values.real))
        gap = decay[decay > 1e-10 * max(decay.max(), 1e-300)]
        return 1.0 / gap[0] if len(gap) else 1.0
    except (splinalg.ArpackNoConvergence, RuntimeError, ValueError):
        return 1.0 / max(np.abs(matrix.diagonal()).min(), 1e-12)


def _check_options(tol: float, method: str) -> None:
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise OptionsError(f"tol must be between 0 and 1, got {tol!r}")
    if method not in METHODS:
        raise OptionsError(f"method must be one of {METHODS}, got {method!r}")
