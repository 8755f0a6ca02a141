"""The chemical master equation by finite state projection (Munsky & Khammash 2006).

The state set J is enumerated breadth-first from the initial state(s), so it lies inside
the stoichiometric compatibility class: conservation laws shrink it automatically (a
closed A <-> B with N molecules has N + 1 states). Open systems get per-species upper
bounds, started from the deterministic solution plus a margin and grown until the
probability that leaks out of J is at most ``tol``. Leaving J is recorded in one
absorbing sink per bounded species, so the leaked mass is both the certificate of
THEORY.md section 7 (the L1 error of the returned distribution is at most the leaked
mass) and the signal of which bound to grow.

Transient solutions use a restarted Arnoldi exponential with adaptive steps (``expv``,
Expokit's algorithm; ``method="krylov"``), the same with incomplete orthogonalisation and a
larger basis (``"krylov_iop"``, the default above 2 000 states via ``"auto"``) or a stiff
BDF solver with the sparse generator as Jacobian (``method="ode"``); see docs/cme.md for
the benchmark behind the default.
Stationary solutions use the stationary FSP: the outflow of
J is redirected to the most probable state, making the truncated generator conservative;
the normalisation is part of the linear system (it cannot return zero; sparse LU up to
5 x 10^4 states, AMG-preconditioned GMRES above), and the result is certified by a bound on
the mass the absorbing FSP started from it leaks over several relaxation times (leak rate
x horizon plus a residual term; docs/cme.md gives the argument).
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
import sympy
from numba import prange
from scipy.integrate import solve_ivp

from ..errors import (AnalysisError, ConvergenceError, OptionsError, SbmlCmeError,
                      StateSpaceTooLargeError,
                      TruncationError, UnsupportedFeatureError)
from ..kinetics import (KernelData, channel_propensity, compile_expressions, compile_network,
                       rate_equations, refuse_randomness, run_program, with_trigger_crossings)
from ..network import TIME, Network
from ..results import CMEResult
from .deterministic import _check_times, simulate_deterministic
from .driven import (check_time_driven, generator_is_time_dependent, integrate_drive,
                     is_time_dependent)
from .ssa import whole_initial_counts

#: Transient methods of ``solve_cme`` (name -> what it does); docs/cme.md has the benchmark.
METHODS = {
    "auto": "krylov below 2 000 states, krylov_iop from there on (the default)",
    "krylov": "Expokit's restarted Arnoldi exponential, orthonormal basis of 30 vectors",
    "krylov_iop": "the same with incomplete orthogonalisation (depth 2), 60 vectors",
    "ode": "scipy's BDF with the sparse generator as Jacobian (sparse LU per step size)",
}

#: Bytes per state used by the memory estimate (states, generator, work vectors).
_BYTES_PER_STATE_BASE = 160
#: GMRES iterations of the AMG-preconditioned stationary solve, and the largest AMG
#: operator complexity its memory estimate allows for (Ruge-Stuben measured 4.2 on the
#: 3-species lattice of docs/cme.md).
_AMG_ITERATIONS = 40
_AMG_COMPLEXITY = 4.5
_MAX_GROWTH_ROUNDS = 30


# -- vectorised propensities -----------------------------------------------------------------
@numba.njit(cache=True)
def _program_block(data: KernelData, channels, states, p, t, out, start, end):
    """Propensities of the general-law ``channels`` for states ``start:end``, written into
    the matching columns of ``out`` (n, n_channels)."""
    stack = np.empty(data.stack_size)
    x = np.empty(states.shape[1])
    for i in range(start, end):
        for k in range(states.shape[1]):
            x[k] = states[i, k]
        for j in channels:
            out[i, j] = channel_propensity(data, j, x, p, t, bool(False), stack)  # non-literal


@numba.njit(cache=True, parallel=True)
def _program_propensities(data: KernelData, channels, states, p, t, out):
    """:func:`_program_block` for all states, in parallel blocks."""
    n = states.shape[0]
    n_blocks = min(n, 64)
    for b in prange(n_blocks):
        _program_block(data, channels, states, p, t, out, b * n // n_blocks,
                       (b + 1) * n // n_blocks)


#: Below this many states the time-dependent generator evaluates general laws serially
#: (a parallel launch cost 18 ms per call for 52 states on the loaded 2-core test
#: machine; the whole serial rate evaluation, checks included, 0.46 ms).
_PARALLEL_MIN_STATES = 5_000


def _mass_action_column(data: KernelData, j: int, states: np.ndarray) -> np.ndarray:
    """Propensity of mass-action channel ``j`` at ``states`` (n, n_species), vectorised."""
    value = np.full(len(states), data.rate_constant[j])
    for k in range(data.reactant_ptr[j], data.reactant_ptr[j + 1]):
        count = states[:, data.reactant_species[k]].astype(np.float64)
        for i in range(data.reactant_order[k]):
            value *= np.maximum(count - i, 0.0) if data.falling[j] else count
    return value


def state_propensities(compiled, states: np.ndarray, parameters: np.ndarray,
                       time: float = 0.0) -> np.ndarray:
    """Propensities, shape (n_states, n_channels), for ``states`` (n_states, n_species).

    Mass-action channels are evaluated column-wise with numpy, general laws by the
    compiled bytecode in parallel blocks."""
    data = compiled.data
    n_channels = len(compiled.network.reactions)
    out = np.empty((len(states), n_channels))
    states = np.ascontiguousarray(states, dtype=np.int64)
    programs = np.array([j for j in range(n_channels) if data.kind[j] == 1], dtype=np.int64)
    if len(states):
        for j in range(n_channels):
            if data.kind[j] != 1:  # mass action (kind 0, or 2: falling factorials as written)
                out[:, j] = _mass_action_column(data, j, states)
        if len(programs):
            _program_propensities(data, programs, states, np.asarray(parameters, float),
                                  float(time), out)
    bad = ~(out >= 0)
    if bad.any():
        state, channel = np.argwhere(bad)[0]
        from ..errors import AnalysisError
        raise AnalysisError(
            f"the propensity of reaction '{compiled.network.reactions[channel].id}' is "
            f"negative or NaN at state {dict(zip(compiled.network.species_ids, states[state].tolist()))}")
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
        Mixed-radix code of the key species' counts above ``lower`` (sorted ascending).
    key_species : ndarray of int
        Species whose counts determine a state within the compatibility class.
    radix : ndarray of int64, shape (n_key,)
        Weights of the code's digits.
    bounds : ndarray, shape (n_species,)
        Upper bound per species (``-1`` = unbounded by truncation).
    lower : ndarray, shape (n_species,), optional
        Lower bound per species (0 = none): leaving below it goes to that species' lower
        sink. Default: zeros.
    """

    states: np.ndarray
    keys: np.ndarray
    key_species: np.ndarray
    radix: np.ndarray
    bounds: np.ndarray
    lower: np.ndarray | None = None

    def __post_init__(self):
        if self.lower is None:
            object.__setattr__(self, "lower", np.zeros(len(self.bounds), dtype=np.int64))

    @property
    def n_states(self) -> int:
        return len(self.states)

    @property
    def n_sinks(self) -> int:
        """Absorbing sinks: one per upper bound, one "other", one per lower bound."""
        return int((self.bounds >= 0).sum()) + 1 + int((self.lower > 0).sum())

    def encode(self, states: np.ndarray) -> np.ndarray:
        return (states[:, self.key_species] - self.lower[self.key_species]) @ self.radix

    def index_of(self, states: np.ndarray) -> np.ndarray:
        """Index of each row of ``states`` in this set, or -1 when absent."""
        states = np.atleast_2d(states)
        if not len(self.keys):
            return np.full(len(states), -1, dtype=np.int64)
        keys = self.encode(states)
        position = np.searchsorted(self.keys, keys)
        position = np.minimum(position, len(self.keys) - 1)
        found = (self.keys[position] == keys) & (self.states[position] == states).all(axis=1)
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

    stoichiometry = np.asarray(network.jump_span, dtype=float)  # bursts: every jump
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


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def memory_limit(max_memory: float | None) -> int:
    """Bytes a CME solve may use: ``max_memory``, or 60 % of the available memory."""
    if max_memory is None:
        return int(0.6 * available_memory())
    if not (isinstance(max_memory, (int, float)) and max_memory > 0):
        raise OptionsError(f"max_memory must be a positive number of bytes, got "
                           f"{max_memory!r}")
    return int(max_memory)


def _bytes_per_state(network: Network, n_times: int, stationary: bool = False) -> int:
    """Peak bytes per state of a solve: states, generator (one entry per channel plus
    the diagonal, CSR and its COO assembly), Krylov basis, outputs; for the stationary
    solve the generator and its pinned copy, the AMG hierarchy (Ruge-Stuben operator
    complexity up to ~4.5 on 3-D lattices) and the GMRES basis (Householder: about
    12 B per iteration). Calibrated by tracemalloc in docs/cme.md (limits)."""
    entries = len(network.reactions) + 1
    if stationary:
        matrix = 12 * entries + 8
        gmres_basis = 12 * (_AMG_ITERATIONS + 2)
        return (_BYTES_PER_STATE_BASE + 8 * len(network.species) + 2 * matrix
                + int(_AMG_COMPLEXITY * matrix) + gmres_basis)
    krylov_basis = 8 * (_KRYLOV_DIMENSION + 2)
    return (_BYTES_PER_STATE_BASE + krylov_basis + 8 * len(network.species)
            + 36 * entries + 8 * (n_times + 8))


def _state_capacity(network: Network, max_states: int, max_memory: int, n_times: int,
                    stationary: bool = False) -> int:
    """Most states a solve may enumerate under both limits."""
    return int(min(max_states, max_memory // _bytes_per_state(network, n_times, stationary)))


def _refuse_size(network: Network, n_states: float, max_states: int, max_memory: int,
                 n_times: int, what: str, where: str = "", stationary: bool = False) -> None:
    """Raise StateSpaceTooLargeError for ``n_states`` states, with the memory estimate."""
    memory = n_states * _bytes_per_state(network, n_times, stationary)
    raise StateSpaceTooLargeError(
        f"the CME needs {what} {n_states:.3g} states{where} (about {memory / 2**30:.3g} GiB"
        f"{' for the stationary solve' if stationary else ''}); "
        f"the limits are {max_states:.3g} states (max_states=) and "
        f"{max_memory / 2**30:.3g} GiB (max_memory=). Use solve_lna for the moments or "
        "simulate_ssa for samples, or reduce volumes/copy numbers.")


def _digit_limits(network: Network, sources: np.ndarray, bounds: np.ndarray, lower,
                  key_species, radix) -> np.ndarray:
    """Largest digit (count above ``lower``) of each key species in the mixed-radix code,
    shape (n_key,)."""
    limits = np.empty(len(key_species), dtype=np.int64)
    if len(key_species) > 1:
        limits[:-1] = radix[1:] // radix[:-1] - 1
    if len(key_species):
        last = key_species[-1]
        if bounds[last] >= 0:
            limits[-1] = bounds[last] - lower[last]
        else:
            cap = conservation_bounds(network, sources[0])[last]
            if not np.isfinite(cap):
                raise TruncationError(
                    f"species '{network.species_ids[last]}' has neither a bound nor a "
                    "conservation law; cannot enumerate its states")
            limits[-1] = int(cap)
    return limits


#: Fibonacci hashing multiplier (2^64 / golden ratio) of the visited-state table.
_GOLDEN = np.uint64(11400714819323198485)


@numba.njit(cache=True)
def _hash_insert(table, key, shift):
    """Insert ``key`` (>= 0) into the open-addressing ``table`` (-1 = empty, size 2^bits,
    ``shift`` = 64 - bits); returns True when it was new."""
    mask = table.shape[0] - 1
    slot = np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(shift))
    while True:
        stored = table[slot]
        if stored == key:
            return False
        if stored < 0:
            table[slot] = key
            return True
        slot = (slot + 1) & mask


@numba.njit(cache=True)
def _hash_grow(table, shift):
    """The same keys in a table twice as large; returns (table, shift)."""
    larger = np.full(2 * table.shape[0], -1, dtype=np.int64)
    for key in table:
        if key >= 0:
            _hash_insert(larger, key, shift - 1)
    return larger, shift - 1


@numba.njit(cache=True)
def _push_state(states, codes, count, state, key):
    """Append ``state`` with code ``key``, doubling the arrays when full."""
    if count == states.shape[0]:
        grown = np.empty((2 * states.shape[0], states.shape[1]), dtype=np.int64)
        grown[:count] = states
        grown_codes = np.empty(2 * codes.shape[0], dtype=np.int64)
        grown_codes[:count] = codes
        states, codes = grown, grown_codes
    states[count] = state
    codes[count] = key
    return states, codes


@numba.njit(cache=True)
def _state_code(state, key_species, lower, radix, digit_limit):
    """Mixed-radix code of ``state``'s key species above ``lower``; -1 outside the box."""
    key = 0
    for k in range(key_species.shape[0]):
        digit = state[key_species[k]] - lower[key_species[k]]
        if digit < 0 or digit > digit_limit[k]:
            return -1
        key += digit * radix[k]
    return key


@numba.njit(cache=True)
def _breadth_first(data: KernelData, sources, change, lower, limit, key_species, radix,
                   digit_limit, parameters, sample_times, capacity):
    """Breadth-first search over the states within ``lower`` <= x <= ``limit``.

    A general-law channel can fire from a state when its propensity is positive for one
    of the samples ``parameters[k]`` (n_samples, n_parameters) at ``sample_times[k]``
    (one sample for a time-independent generator).
    Returns (states in discovery order, their codes, overflow): at most ``capacity``
    states. Linear in states x channels; the visited set is an open-addressing hash of
    the codes, so memory follows the states found, never the box of the bounds."""
    n_species = sources.shape[1]
    initial = 1024
    states = np.empty((initial, n_species), dtype=np.int64)
    codes = np.empty(initial, dtype=np.int64)
    bits = 12
    table = np.full(1 << bits, -1, dtype=np.int64)
    shift = 64 - bits
    count = 0
    moved = np.empty(n_species, dtype=np.int64)
    for s in range(sources.shape[0]):
        key = _state_code(sources[s], key_species, lower, radix, digit_limit)
        if key >= 0 and _hash_insert(table, key, shift):
            if count >= capacity:
                return states[:count], codes[:count], True
            states, codes = _push_state(states, codes, count, sources[s], key)
            count += 1
            if 2 * count > table.shape[0]:
                table, shift = _hash_grow(table, shift)
    stack = np.empty(data.stack_size)
    x = np.empty(n_species)
    head = 0
    while head < count:
        for i in range(n_species):
            x[i] = states[head, i]
        for j in range(change.shape[0]):
            if data.kind[j] != 1:
                active = data.rate_constant[j] > 0
                for k in range(data.reactant_ptr[j], data.reactant_ptr[j + 1]):
                    if x[data.reactant_species[k]] < (data.reactant_order[k]
                                                      if data.falling[j] else 1):
                        active = False
            else:
                active = False
                for sample in range(sample_times.shape[0]):
                    if channel_propensity(data, j, x, parameters[sample], sample_times[sample],
                                          bool(False), stack) > 0:
                        active = True
                        break
            if not active:
                continue
            for i in range(n_species):
                moved[i] = states[head, i] + change[j, i]
            # A burst channel leads to moved + size e_s for every possible size that
            # stays within the bound of s (``_burst_room``).
            burst = data.burst_species[j]
            table_start = data.burst_ptr[j]
            n_sizes = 1
            if burst >= 0:
                n_sizes = _burst_room(data, j, limit[burst] - moved[burst]) + 1
            for size in range(n_sizes):
                if burst >= 0:
                    if (data.burst_ptr[j + 1] > table_start
                            and not data.burst_probability[table_start + size] > 0):
                        continue
                    moved[burst] = states[head, burst] + change[j, burst] + size
                inside = True
                for i in range(n_species):
                    if moved[i] < lower[i] or moved[i] > limit[i]:
                        inside = False
                if not inside:
                    continue
                key = _state_code(moved, key_species, lower, radix, digit_limit)
                if key < 0 or not _hash_insert(table, key, shift):
                    continue
                if count >= capacity:
                    return states[:count], codes[:count], True
                states, codes = _push_state(states, codes, count, moved, key)
                count += 1
                if 2 * count > table.shape[0]:
                    table, shift = _hash_grow(table, shift)
        head += 1
    return states[:count], codes[:count], False


@numba.njit(cache=True)
def _burst_room(data: KernelData, j, room):
    """Largest burst size of channel ``j`` worth trying when ``room`` molecules fit below
    the bound (at least 0): ``room``, or the table's largest size if smaller."""
    largest = room
    if data.burst_ptr[j + 1] > data.burst_ptr[j]:
        largest = min(largest, data.burst_ptr[j + 1] - data.burst_ptr[j] - 1)
    return max(largest, 0)


def _check_burst_bounds(network: Network, bounds: np.ndarray) -> None:
    """Every burst species needs a truncation bound (its sink takes the burst tail)."""
    for reaction in network.reactions:
        if reaction.burst is not None and \
                bounds[network.species_index[reaction.burst.species]] < 0:
            raise TruncationError(
                f"the burst species '{reaction.burst.species}' of reaction '{reaction.id}' "
                "has no truncation bound; cannot enumerate its bursts")


def enumerate_states(compiled, sources: np.ndarray, bounds: np.ndarray, key_species,
                     radix, parameters, max_states: int, n_times: int,
                     sample_times=None, *, lower=None, max_memory: int | None = None,
                     stationary: bool = False
                     ) -> StateSpace:
    """Breadth-first enumeration of the states reachable from ``sources`` (n, n_species)
    within ``lower`` <= x <= ``bounds`` (sources outside are dropped); a compiled search
    with a hashed visited set (memory linear in the states found, not in the box).

    ``parameters``: shape (n_parameters,), or (n_samples, n_parameters) with
    ``sample_times`` (n_samples,) for a time-dependent generator (a channel is followed
    where it is positive at some sample; a state missed between samples only sends its
    inflow to a sink, counted in the certificate). More states than ``max_states`` or
    than fit in ``max_memory`` bytes (:func:`_bytes_per_state` of the transient solve,
    or of the ``stationary`` one) raise StateSpaceTooLargeError."""
    network = compiled.network
    sources = np.ascontiguousarray(np.atleast_2d(sources), dtype=np.int64)
    key_species = np.asarray(key_species, dtype=np.int64)
    radix = np.asarray(radix, dtype=np.int64)
    lower = (np.zeros(len(bounds), dtype=np.int64) if lower is None
             else np.asarray(lower, dtype=np.int64))
    change = np.ascontiguousarray(network.stoichiometry.T, dtype=np.int64)
    _check_burst_bounds(network, bounds)
    limit = np.where(bounds >= 0, bounds, np.iinfo(np.int64).max).astype(np.int64)
    digit_limit = _digit_limits(network, sources, bounds, lower, key_species, radix)
    box = float(np.prod((digit_limit + 1).astype(float)))
    max_memory = memory_limit(max_memory)
    capacity = _state_capacity(network, max_states, max_memory, n_times, stationary)
    parameters = np.atleast_2d(np.asarray(parameters, dtype=np.float64))
    sample_times = (np.zeros(len(parameters)) if sample_times is None
                    else np.asarray(sample_times, dtype=np.float64))
    states, codes, overflow = _breadth_first(compiled.data, sources, change, lower, limit,
                                             key_species, radix, digit_limit,
                                             np.ascontiguousarray(parameters), sample_times,
                                             int(min(box, capacity)))
    if overflow and box > capacity:
        box_memory = box * _bytes_per_state(network, n_times, stationary) / 2**30
        _refuse_size(network, capacity + 1, max_states, max_memory, n_times, "more than",
                     f" inside the bounds (their box holds {box:.3g}, about "
                     f"{box_memory:.3g} GiB)", stationary)
    order = np.argsort(codes, kind="stable")
    return StateSpace(states=states[order], keys=codes[order], key_species=key_species,
                      radix=radix, bounds=bounds, lower=lower)


# -- the generator --------------------------------------------------------------------------------
@numba.njit(cache=True, parallel=True)
def _transitions(states, keys, lookup, rates, change, bounds, lower, key_species, radix,
                 absorbing, redirect_to, rows, values):
    """Target row and rate of every (state, channel) pair: ``rows``/``values`` have
    shape (n_states, n_channels); a zero value marks no transition. ``lookup`` maps a
    key to its row (-1 if absent) when not empty; otherwise ``keys`` is binary-searched.
    A transition that leaves the set goes to sink n + the first upper bound it breaks,
    else n + n_upper + 1 + the first lower bound it breaks, else n + n_upper ("other"),
    or to ``redirect_to`` when not ``absorbing``."""
    n, n_species = states.shape
    n_key = key_species.shape[0]
    n_bounded = 0
    for i in range(n_species):
        if bounds[i] >= 0:
            n_bounded += 1
    for s in prange(n):
        for j in range(change.shape[0]):
            rate = rates[s, j]
            values[s, j] = rate
            rows[s, j] = s
            if rate == 0.0:
                continue
            key = 0
            negative = False
            sink = -1
            low_sink = -1
            position = 0
            low_position = 0
            for i in range(n_species):
                value = states[s, i] + change[j, i]
                if value < 0:
                    negative = True
                if bounds[i] >= 0:
                    if sink < 0 and value > bounds[i]:
                        sink = position
                    position += 1
                if lower[i] > 0:
                    if low_sink < 0 and value < lower[i]:
                        low_sink = low_position
                    low_position += 1
            if sink < 0 and low_sink >= 0:
                sink = n_bounded + 1 + low_sink
            for k in range(n_key):
                key += (states[s, key_species[k]] + change[j, key_species[k]]
                        - lower[key_species[k]]) * radix[k]
            target = -1
            if not negative and sink < 0 and lookup.shape[0] > 0:
                if key < lookup.shape[0]:
                    target = lookup[key]
            elif not negative and sink < 0:
                lo, hi = 0, keys.shape[0]
                while lo < hi:
                    mid = (lo + hi) // 2
                    if keys[mid] < key:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo < keys.shape[0] and keys[lo] == key:
                    target = lo
            if target < 0:
                if absorbing:
                    target = n + (sink if sink >= 0 else n_bounded)
                else:
                    target = redirect_to
            rows[s, j] = target


def _check_counts_stay_whole(network: Network, states, rates, change) -> None:
    """Raise when a channel can fire in a state where it would make a count negative
    (its law does not vanish without its reactants), naming the reaction."""
    for j in range(change.shape[0]):
        consumed = change[j] < 0
        if not consumed.any():
            continue
        firing = rates[:, j] > 0
        if not firing.any():
            continue
        after = states[firing][:, consumed] + change[j, consumed]
        if (after < 0).any():
            state = states[firing][np.argmax((after < 0).any(axis=1))]
            raise AnalysisError(
                f"reaction '{network.reactions[j].id}' can fire without enough reactant "
                f"molecules (at {dict(zip(network.species_ids, state.tolist()))} a count "
                "would go negative); its kinetic law must vanish when its reactants are "
                "absent")


def build_generator(compiled, space: StateSpace, parameters, *, absorbing: bool = True,
                    redirect_to: int | None = None) -> tuple[sparse.csr_matrix, int]:
    """Sparse generator of the truncated CME, shape (n + n_sinks) squared (columns are
    sources, so dp/dt = A p). Transitions leaving J go to the sink of the first bound
    they break (``absorbing``) or to state ``redirect_to``. Returns (A, n_sinks).

    Assembly is one compiled pass over (state, channel) pairs (binary search of the
    target's key), then a single COO -> CSR conversion."""
    network = compiled.network
    n = space.n_states
    rates = state_propensities(compiled, space.states, parameters)
    change = np.ascontiguousarray(network.stoichiometry.T, dtype=np.int64)
    n_sinks = space.n_sinks if absorbing else 0
    if not absorbing and redirect_to is None:
        raise OptionsError("build_generator needs redirect_to when absorbing=False")
    _check_counts_stay_whole(network, space.states, rates, change)
    burst_channels = [j for j, r in enumerate(network.reactions) if r.burst is not None]
    plain_rates = rates
    if burst_channels:  # their transitions come from _burst_transitions below
        plain_rates = rates.copy()
        plain_rates[:, burst_channels] = 0.0
    rows = np.empty(rates.shape, dtype=np.int64)
    values = np.empty(rates.shape)
    keys = np.ascontiguousarray(space.keys, dtype=np.int64)
    lookup = np.empty(0, dtype=np.int64)
    if n and keys[-1] < 8 * n + 1024:  # a dense key -> row table beats binary search
        lookup = np.full(keys[-1] + 1, -1, dtype=np.int64)
        lookup[keys] = np.arange(n)
    _transitions(np.ascontiguousarray(space.states, dtype=np.int64), keys, lookup,
                 plain_rates, change,
                 np.asarray(space.bounds, dtype=np.int64),
                 np.asarray(space.lower, dtype=np.int64),
                 np.asarray(space.key_species, dtype=np.int64),
                 np.asarray(space.radix, dtype=np.int64), bool(absorbing),
                 int(redirect_to if redirect_to is not None else -1), rows, values)
    active = values.ravel() > 0
    source = np.repeat(np.arange(n, dtype=np.int64), rates.shape[1])[active]
    bursts = [_burst_transitions(network, space, rates[:, j], change[j], j, absorbing,
                                 redirect_to) for j in burst_channels]
    all_rows = np.concatenate([rows.ravel()[active], *[b[0] for b in bursts],
                               np.arange(n, dtype=np.int64)])
    all_cols = np.concatenate([source, *[b[1] for b in bursts], np.arange(n, dtype=np.int64)])
    all_values = np.concatenate([values.ravel()[active], *[b[2] for b in bursts],
                                 -rates.sum(axis=1)])
    size = n + n_sinks
    index_type = np.int32 if size < 2**31 - 1 and len(all_values) < 2**31 - 1 else np.int64
    matrix = sparse.coo_matrix((all_values, (all_rows.astype(index_type),
                                             all_cols.astype(index_type))),
                               shape=(size, size)).tocsr()
    matrix.sum_duplicates()
    return matrix, n_sinks


def _burst_transitions(network: Network, space: StateSpace, rate: np.ndarray,
                       change: np.ndarray, channel: int, absorbing: bool,
                       redirect_to: int | None):
    """(target rows, source columns, rates) of burst channel ``channel``.

    From state n the channel leads to n + v + k e_s at rate a(n) P(B = k) for every k
    that keeps n + v + k e_s within the bound of s; the tail a(n) P(B > room) goes to
    the sink of s (absorbing) or to ``redirect_to``, so no probability is dropped and
    the FSP certificate stays valid. When n + v itself breaks a bound (or a count would
    go negative) the whole rate goes where ``_transitions`` would send it.

    ``rate``: a(n), shape (n_states,); ``change``: v, the fixed part, shape (n_species,).
    """
    burst = network.reactions[channel].burst
    s = network.species_index[burst.species]
    n = space.n_states
    bounded = np.nonzero(space.bounds >= 0)[0]
    lower_bounded = np.nonzero(space.lower > 0)[0]
    other_sink = n + len(bounded)
    firing = np.flatnonzero(rate > 0)
    base = space.states[firing] + change
    over = (space.bounds >= 0) & (base > space.bounds)
    under = (space.lower > 0) & (base < space.lower)
    broken = over.any(axis=1) | under.any(axis=1) | (base < 0).any(axis=1)
    targets, sources, values = [], [], []

    def send(rows, columns, amounts):
        if not absorbing:
            rows = np.where(rows >= n, redirect_to, rows)
        targets.append(np.asarray(rows, dtype=np.int64))
        sources.append(np.asarray(columns, dtype=np.int64))
        values.append(np.asarray(amounts, dtype=float))

    if broken.any():
        high, low = over[broken], under[broken]
        sinks = np.where(high.any(axis=1),
                         n + np.searchsorted(bounded, np.argmax(high, axis=1)),
                         np.where(low.any(axis=1),
                                  other_sink + 1 + np.searchsorted(lower_bounded,
                                                                   np.argmax(low, axis=1)),
                                  other_sink))
        send(sinks, firing[broken], rate[firing[broken]])
    firing, base = firing[~broken], base[~broken]
    room = space.bounds[s] - base[:, s]  # >= 0 here: base is within every bound
    largest = int(room.max(initial=-1))
    if burst.max_size is not None:
        largest = min(largest, burst.max_size)
    for size in range(largest + 1):
        probability = float(burst.pmf(size))
        chosen = room >= size
        if probability <= 0 or not chosen.any():
            continue
        moved = base[chosen].copy()
        moved[:, s] += size
        rows = space.index_of(moved)
        send(np.where(rows >= 0, rows, other_sink), firing[chosen],
             rate[firing[chosen]] * probability)
    tail = burst.tail(room)
    keep = tail > 0
    send(np.full(int(keep.sum()), n + int(np.searchsorted(bounded, s))), firing[keep],
         rate[firing[keep]] * tail[keep])
    return np.concatenate(targets), np.concatenate(sources), np.concatenate(values)


def split_propensities(network: Network) -> tuple[list, list]:
    """Each channel's propensity as c_j(p(t), t) h_j(x) when its law allows it.

    ``varying`` symbols are time and the rate-rule targets. A channel whose propensity is
    a product of factors each reading either no species or no varying symbol is split
    into (time factor, state factor); otherwise both entries are None.
    Returns (time factors, state factors), sympy expressions, one per channel."""
    varying = {TIME} | {sympy.Symbol(t) for t in network.rate_rule_targets}
    species = {sympy.Symbol(s) for s in network.species_ids}
    time_factors, state_factors = [], []
    for law in network.propensities():
        time_part, state_part = sympy.S.One, sympy.S.One
        for factor in sympy.Mul.make_args(law):
            symbols = factor.free_symbols
            if not symbols & species:
                time_part *= factor
            elif not symbols & varying:
                state_part *= factor
            else:
                time_part = state_part = None
                break
        time_factors.append(time_part)
        state_factors.append(state_part)
    return time_factors, state_factors


class DrivenGenerator:
    """The truncated generator A(t) of a time-dependent CME (rate rules of time, laws that
    read time): dp/dt = A(t) p on the states of ``space`` plus the absorbing sinks.

    The sparsity pattern is built once (every transition a channel can make, with unit
    rates, by the same passes as :func:`build_generator`); at time t each entry is its
    weight times a_j(x, p(t), t), the propensities evaluated with the drive's parameters,
    summed into the CSR data by one ``bincount``. A propensity that factors as
    c_j(p(t), t) h_j(x) (:func:`split_propensities`: mass action with a driven constant,
    a law times an input signal) has h_j evaluated once on the states and c_j per time;
    any other law is evaluated on every state at every time asked. The matrix of the
    last time asked is cached (the solver asks for A(t) p and the Jacobian A(t) at the
    same t).

    ``offset``: the absolute time of local time 0 (the segment's start).
    """

    def __init__(self, compiled, space: StateSpace, drive, offset: float):
        network = compiled.network
        n, n_channels = space.n_states, len(network.reactions)
        self.compiled, self.space, self.drive, self.offset = compiled, space, drive, offset
        time_factors, state_factors = split_propensities(network)
        self.split = np.array([f is not None for f in time_factors], dtype=bool)
        self.no_counts = np.zeros(len(network.species))  # time factors read no species
        self.unsplit = np.flatnonzero(~self.split).astype(np.int64)
        self.time_factors = compile_expressions(
            network, [f if f is not None else sympy.S.Zero for f in time_factors],
            "time factor")
        self.state_factors = _expression_values(
            compiled, [f if f is not None else sympy.S.Zero for f in state_factors],
            space.states, drive.base, offset)
        self.n_sinks = space.n_sinks
        self.size = n + self.n_sinks
        self.change = np.ascontiguousarray(network.stoichiometry.T, dtype=np.int64)
        unit = np.ones((n, n_channels))
        burst_channels = [j for j, r in enumerate(network.reactions) if r.burst is not None]
        plain = unit.copy()
        plain[:, burst_channels] = 0.0
        rows = np.empty(unit.shape, dtype=np.int64)
        weights = np.empty(unit.shape)
        _transitions(np.ascontiguousarray(space.states, dtype=np.int64),
                     np.ascontiguousarray(space.keys, dtype=np.int64), np.empty(0, np.int64),
                     plain, self.change, np.asarray(space.bounds, dtype=np.int64),
                     np.asarray(space.lower, dtype=np.int64),
                     np.asarray(space.key_species, dtype=np.int64),
                     np.asarray(space.radix, dtype=np.int64), True, -1, rows, weights)
        active = weights.ravel() > 0
        pairs = np.arange(n * n_channels, dtype=np.int64)[active]
        sources, channels = pairs // max(n_channels, 1), pairs % max(n_channels, 1)
        parts = [(rows.ravel()[active], sources, channels, np.ones(len(pairs)))]
        for j in burst_channels:
            targets, columns, amounts = _burst_transitions(network, space, unit[:, j],
                                                           self.change[j], j, True, None)
            parts.append((targets, columns, np.full(len(columns), j), amounts))
        diagonal = np.repeat(np.arange(n, dtype=np.int64), n_channels)
        parts.append((diagonal, diagonal, np.tile(np.arange(n_channels), n),
                      -np.ones(n * n_channels)))
        target, self.source, self.channel, self.weight = (
            np.concatenate(column) for column in zip(*parts))
        keys, self.slot = np.unique(target * self.size + self.source, return_inverse=True)
        self.slot = self.slot.ravel()
        self.indices = (keys % self.size).astype(np.int64)
        self.indptr = np.searchsorted(keys // self.size, np.arange(self.size + 1)).astype(
            np.int64)
        self._cached = (None, None)
        self.assemblies = 0

    def rates(self, local_time: float) -> np.ndarray:
        """Propensities at ``offset + local_time``, shape (n_states, n_channels)."""
        t = self.offset + local_time
        parameters = self.drive.parameters(t)
        factors = self.time_factors.evaluate_all(self.no_counts, parameters, t)
        rates = self.state_factors * np.where(self.split, factors, 0.0)
        if len(self.unsplit) and len(rates):
            states = np.ascontiguousarray(self.space.states, dtype=np.int64)
            if len(states) < _PARALLEL_MIN_STATES:
                _program_block(self.compiled.data, self.unsplit, states, parameters,
                               float(t), rates, 0, len(states))
            else:
                _program_propensities(self.compiled.data, self.unsplit, states, parameters,
                                      float(t), rates)
        bad = ~(rates >= 0)
        if bad.any():
            state, channel = np.argwhere(bad)[0]
            raise AnalysisError(
                f"the propensity of reaction '{self.compiled.network.reactions[channel].id}' "
                f"is negative or NaN at t={t:g}, state "
                f"{dict(zip(self.compiled.network.species_ids, self.space.states[state].tolist()))}")
        _check_counts_stay_whole(self.compiled.network, self.space.states, rates, self.change)
        return rates

    def matrix(self, local_time: float) -> sparse.csr_matrix:
        """A at ``offset + local_time``, shape (size, size), CSR (columns are sources)."""
        if self._cached[0] != local_time:
            self.assemblies += 1
            rates = self.rates(local_time)
            data = np.bincount(self.slot, weights=self.weight * rates[self.source, self.channel],
                               minlength=len(self.indices))
            self._cached = (local_time, sparse.csr_matrix(
                (data, self.indices, self.indptr), shape=(self.size, self.size)))
        return self._cached[1]


def _propagate_driven(generator: DrivenGenerator, p0, times, *, tolerance: float,
                      info: dict):
    """p(t) for every local t in ``times`` (ascending, from 0) under dp/dt = A(t) p: BDF
    with the sparse A(t) as its Jacobian, the tolerances of ``method="ode"``; shape
    (n_times, size)."""
    info.update(method="ode", integration_error=math.nan)
    if len(times) == 1 or times[-1] == times[0]:
        return np.tile(p0, (len(times), 1))
    solution = solve_ivp(lambda t, p: generator.matrix(t) @ p, (times[0], times[-1]), p0,
                         method="BDF", t_eval=times, jac=lambda t, p: generator.matrix(t),
                         rtol=100 * tolerance, atol=0.01 * tolerance)
    if solution.status != 0:
        raise ConvergenceError(f"the CME integration failed: {solution.message}")
    info["generator_assemblies"] = generator.assemblies
    return np.maximum(solution.y.T, 0.0)


# -- transient solves --------------------------------------------------------------------------------
_KRYLOV_DIMENSION = 30
_KRYLOV_TOLERANCE = 1e-12
#: Krylov dimension and orthogonalisation depth of ``"krylov_iop"`` (docs/cme.md).
_IOP_DIMENSION = 60
_IOP_DEPTH = 2
_AUTO_IOP_MIN_STATES = 2_000
#: Estimated Krylov steps (||A||_1 t / _KRYLOV_DIMENSION) beyond which "auto" takes BDF:
#: a stiff span (1,000 P dimerising as P(P-1)/2 over t = 1, 501 states: 6,379 Krylov
#: steps in 70 s, BDF 2.7 s; the docs/cme.md benchmark (b) needs about 150 steps).
_AUTO_STIFF_STEPS = 500
#: Largest state space on which "auto" may pick BDF (a sparse LU per step size).
_AUTO_ODE_MAX_STATES = 200_000
#: Work limits of one transient propagation: Krylov steps, and BDF right-hand sides.
MAX_KRYLOV_STEPS = 20_000
MAX_BDF_EVALUATIONS = 50_000


@numba.njit(cache=True, parallel=True)
def _csr_matvec(indptr, indices, data, vector, out):
    """``out = A @ vector`` for a CSR matrix, rows in parallel."""
    for row in prange(out.shape[0]):
        total = 0.0
        for k in range(indptr[row], indptr[row + 1]):
            total += data[k] * vector[indices[k]]
        out[row] = total


@numba.njit(cache=True, fastmath=True)
def _orthogonalise(basis, j, p):
    """Two passes of classical Gram-Schmidt of ``p`` against ``basis[:j + 1]`` in place;
    returns (coefficients, norm of the result). Compiled, streaming one basis row at a
    time: it neither allocates per vector nor depends on BLAS threading (which thrashes
    on a loaded machine)."""
    n = p.shape[0]
    total = np.zeros(j + 1)
    coefficients = np.empty(j + 1)
    for _ in range(2):
        for i in range(j + 1):
            value = 0.0
            for k in range(n):
                value += basis[i, k] * p[k]
            coefficients[i] = value
        for i in range(j + 1):
            c = coefficients[i]
            for k in range(n):
                p[k] -= c * basis[i, k]
        total += coefficients
    squares = 0.0
    for k in range(n):
        squares += p[k] * p[k]
    return total, math.sqrt(squares)


@numba.njit(cache=True, fastmath=True)
def _orthogonalise_recent(basis, j, p, depth):
    """Incomplete orthogonalisation (IOP): modified Gram-Schmidt of ``p`` against only the
    last ``depth`` basis vectors ``basis[j - depth + 1:j + 1]``, in place; returns
    (coefficients (j + 1,), zero outside the window, norm of the result).

    The Arnoldi relation A V_m = V_m H_m + h v_{m+1} e_m^T still holds exactly (H_m becomes
    banded), only V_m is no longer orthonormal; the cost per vector is ``2 depth`` passes
    over n instead of ~4 (j + 1) for two-pass classical Gram-Schmidt (incomplete
    orthogonalisation for the Krylov FSP: Vo and Sidje, WCECS 2016; Koskela, ENUMATH 2013)."""
    n = p.shape[0]
    coefficients = np.zeros(j + 1)
    for i in range(max(0, j - depth + 1), j + 1):
        value = 0.0
        for k in range(n):
            value += basis[i, k] * p[k]
        for k in range(n):
            p[k] -= value * basis[i, k]
        coefficients[i] = value
    squares = 0.0
    for k in range(n):
        squares += p[k] * p[k]
    return coefficients, math.sqrt(squares)


@numba.njit(cache=True)
def _combine(basis, weights, out):
    """``out = weights @ basis[:len(weights)]``."""
    out[:] = 0.0
    for i in range(weights.shape[0]):
        c = weights[i]
        for k in range(out.shape[0]):
            out[k] += c * basis[i, k]


@numba.njit(cache=True, fastmath=True)
def _norm(vector):
    """Euclidean norm, compiled (no BLAS threads)."""
    total = 0.0
    for k in range(vector.shape[0]):
        total += vector[k] * vector[k]
    return math.sqrt(total)


def _matvec(matrix):
    """A fast ``(v, out) -> out = A v`` for a scipy sparse matrix; returns ``out``.

    CSR uses scipy's own C++ kernel writing into ``out`` (4.3 ms vs 6.3 ms CPU for the
    compiled numba loop ``_csr_matvec`` on 950 625 states, 4.75 M nonzeros; it is
    single-threaded and uses no BLAS); anything else goes through ``matrix @ v``."""
    if sparse.isspmatrix_csr(matrix) or isinstance(matrix, sparse.csr_array):
        indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
        n_rows, n_cols = matrix.shape
        kernel = _scipy_csr_kernel()
        if data.dtype == np.float64 and indptr.dtype == indices.dtype:

            def apply(vector, out=None):
                out = np.empty(n_rows) if out is None else out
                if kernel is None:
                    _csr_matvec(indptr, indices, data, vector, out)
                else:
                    out[:] = 0.0  # the kernel accumulates
                    kernel(n_rows, n_cols, indptr, indices, data, vector, out)
                return out
            return apply

    def apply_any(vector, out=None):
        result = matrix @ vector
        if out is None:
            return np.asarray(result, dtype=np.float64)
        out[:] = result
        return out
    return apply_any


def _scipy_csr_kernel():
    """scipy's ``csr_matvec`` (y += A x) if this scipy exposes it, else None."""
    try:
        from scipy.sparse import _sparsetools
    except ImportError:  # pragma: no cover - older scipy layouts
        return None
    return getattr(_sparsetools, "csr_matvec", None)


def expv(matrix, vector: np.ndarray, t: float, *, dimension: int = _KRYLOV_DIMENSION,
         tolerance: float = _KRYLOV_TOLERANCE, depth: int | None = None,
         counters: dict | None = None) -> tuple[np.ndarray, float]:
    """``exp(t A) v`` by restarted Arnoldi with adaptive time steps (Expokit's ``expv``,
    Sidje, ACM TOMS 24, 130, 1998). Returns (w, estimated 2-norm error).

    Each step builds a Krylov basis of ``dimension`` vectors and takes the largest
    sub-step whose local error estimate is below ``tolerance`` * ||v|| * step. With
    ``depth=None`` the basis is orthonormal (two-pass classical Gram-Schmidt): about
    ``dimension`` products with A plus ``dimension**2`` vector passes per step. With an
    integer ``depth`` each new vector is orthogonalised only against the last ``depth``
    ones (incomplete orthogonalisation, ``_orthogonalise_recent``): ``2 depth dimension``
    vector passes, so a larger ``dimension`` pays off (docs/cme.md). ``counters`` (if
    given) receives the number of steps, rejected step sizes and products with A.
    """
    from scipy.linalg import expm as dense_expm

    n = vector.shape[0]
    w = np.array(vector, dtype=np.float64)
    beta = _norm(w)
    if t == 0 or beta == 0:
        return w, 0.0
    a_norm = float(abs(matrix).sum(axis=0).max()) if n else 0.0
    if a_norm == 0:
        return w, 0.0
    if n <= dimension + 1:
        # the Krylov space would be (nearly) the whole space, with a basis too small for
        # an accurate step (a 3-state chain needed 10^5 steps of m = 2): exponentiate
        # the dense matrix instead, exact up to round-off
        dense = matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix)
        return dense_expm(t * dense) @ w, a_norm * t * np.finfo(float).eps
    m = dimension
    gamma, delta, breakdown = 0.9, 1.2, 1e-7 * beta
    tol = tolerance
    rounding = a_norm * np.finfo(float).eps
    fact = ((m + 1) / math.e) ** (m + 1) * math.sqrt(2 * math.pi * (m + 1))
    t_new = (1.0 / a_norm) * ((fact * tol) / (4.0 * beta * a_norm)) ** (1.0 / m)
    t_new = _round_step(t_new)
    t_now, error = 0.0, 0.0
    basis = np.empty((m + 1, n))
    work = np.empty(n)
    apply = _matvec(matrix)
    counters = {} if counters is None else counters
    for key in ("steps", "rejected", "products"):
        counters.setdefault(key, 0)
    first_step = counters["steps"]
    while t_now < t:
        step = min(t - t_now, t_new)
        counters["steps"] += 1
        if counters["steps"] - first_step > MAX_KRYLOV_STEPS:
            raise ConvergenceError(
                f"the CME integration needed more than {MAX_KRYLOV_STEPS:,} Krylov steps "
                f"by t={t_now:g} of {t:g} (rates up to {a_norm / 2:.3g} per time unit make "
                "the span stiff); shorten the horizon, use method='ode', or check the "
                "rate constants")
        hessenberg = np.zeros((m + 2, m + 2))
        basis[0] = w / beta
        size, extra = m, 2
        for j in range(m):
            p = apply(basis[j], basis[j + 1])
            if depth is None:
                coefficients, norm = _orthogonalise(basis, j, p)
            else:
                coefficients, norm = _orthogonalise_recent(basis, j, p, depth)
            hessenberg[:j + 1, j] = coefficients
            counters["products"] += 1
            if norm < breakdown:  # happy breakdown: the subspace is invariant
                size, extra, step = j + 1, 0, t - t_now
                break
            hessenberg[j + 1, j] = norm
            basis[j + 1] *= 1.0 / norm
        if extra:
            hessenberg[m + 1, m] = 1.0
            av_norm = _norm(apply(basis[m], work))
        exponent_1 = 1.0 / m
        for _ in range(50):
            order = size + extra
            small = dense_expm(step * hessenberg[:order, :order])
            if not extra:
                local = breakdown
                break
            phi1 = abs(beta * small[m, 0])
            phi2 = abs(beta * small[m + 1, 0] * av_norm)
            if phi1 > 10 * phi2:
                local, exponent_1 = phi2, 1.0 / m
            elif phi1 > phi2:
                local, exponent_1 = phi1 * phi2 / (phi1 - phi2), 1.0 / m
            else:
                local, exponent_1 = phi1, 1.0 / max(m - 1, 1)
            if local <= delta * step * tol * beta:
                break
            counters["rejected"] += 1
            step = _round_step(gamma * step * (step * tol * beta / local) ** exponent_1)
        else:
            raise ConvergenceError("the Krylov exponential did not reach its tolerance")
        columns = size + max(0, extra - 1)
        _combine(basis, np.ascontiguousarray(beta * small[:columns, 0]), w)
        beta = _norm(w)
        t_now += step
        t_new = _round_step(gamma * step * (step * tol * beta / max(local, 1e-300))
                            ** exponent_1) if extra else t - t_now
        error += max(local, rounding)
        if beta == 0:
            break
    return w, error


def _round_step(step: float) -> float:
    """Round a step up to two significant digits (Expokit's convention)."""
    if not np.isfinite(step) or step <= 0:
        return step
    scale = 10.0 ** (math.floor(math.log10(step)) - 1)
    return math.ceil(step / scale) * scale


def resolve_method(method: str, n_states: int, norm_times_span: float = 0.0) -> str:
    """The concrete transient method for ``method`` (a key of ``METHODS``) on a set of
    ``n_states`` states: ``"auto"`` is ``"krylov"`` below ``_AUTO_IOP_MIN_STATES`` states
    and ``"krylov_iop"`` from there on (docs/cme.md, benchmark section (e)), except on a
    stiff span, ``norm_times_span`` = ||A||_1 t above ``_AUTO_STIFF_STEPS`` Krylov
    dimensions, where it is ``"ode"`` (up to ``_AUTO_ODE_MAX_STATES`` states)."""
    if method != "auto":
        return method
    if norm_times_span > _AUTO_STIFF_STEPS * _KRYLOV_DIMENSION and \
            n_states <= _AUTO_ODE_MAX_STATES:
        return "ode"
    return "krylov" if n_states < _AUTO_IOP_MIN_STATES else "krylov_iop"


def _integration_tolerance(tol: float) -> float:
    """Local error tolerance of the Krylov steps (2-norm error per unit time relative to
    ||p||) for an FSP tolerance ``tol``: 1e-6 tol, within [1e-14, 1e-12]."""
    return min(_KRYLOV_TOLERANCE, max(1e-6 * tol, 1e-14))


def _propagate(matrix, p0, times, method, *, tolerance: float = _KRYLOV_TOLERANCE,
               info: dict | None = None):
    """p(t) for every t in ``times`` (relative to 0, ascending), shape (n_times, n).

    ``method`` is a key of ``METHODS``; ``info`` (if given) receives the concrete method,
    the summed local error estimates of the time integration (``integration_error``, a
    2-norm estimate; NaN for ``"ode"``, whose scipy solver does not report one) and, for
    the Krylov methods, the number of steps, rejected steps and products with A."""
    span = float(times[-1]) if len(times) else 0.0
    norm = float(abs(matrix).sum(axis=0).max()) if method == "auto" and len(p0) else 0.0
    method = resolve_method(method, len(p0), norm * span)
    info = {} if info is None else info
    info["method"] = method
    if method in ("krylov", "krylov_iop"):
        options = ({"dimension": _IOP_DIMENSION, "depth": _IOP_DEPTH}
                   if method == "krylov_iop" else {})
        result = np.empty((len(times), len(p0)))
        current, now = np.asarray(p0, dtype=np.float64), 0.0
        error = 0.0
        for k, t in enumerate(times):
            if t > now:
                current, estimate = expv(matrix, current, t - now, tolerance=tolerance,
                                         counters=info, **options)
                error += estimate
                np.maximum(current, 0.0, out=current)  # Krylov round-off (~1e-20) below 0
                now = t
            result[k] = current
        info["integration_error"] = error
        return result
    info["integration_error"] = math.nan
    # rtol 1e-10 / atol 1e-14 at the default tol; 100x tighter for tol <= 1e-8 (BDF's
    # L1 error reached 1.7e-9 with the fixed 1e-10 / 1e-14, tests/analyses/test_cme_methods)
    evaluations = 0

    def rhs(t, p):
        nonlocal evaluations
        evaluations += 1
        if evaluations > MAX_BDF_EVALUATIONS:
            raise _BdfBudget(t)
        return matrix @ p

    try:
        solution = solve_ivp(rhs, (0.0, times[-1]), p0, method="BDF",
                             t_eval=times, jac=matrix, rtol=100 * tolerance,
                             atol=0.01 * tolerance)
    except _BdfBudget as stop:
        raise ConvergenceError(
            f"the CME integration (BDF) needed more than {MAX_BDF_EVALUATIONS:,} evaluations "
            f"by t={stop.args[0]:g} of {times[-1]:g}: rates up to "
            f"{float(abs(matrix).sum(axis=0).max()) / 2:.3g} per time unit are beyond what "
            "its tolerances resolve; shorten the horizon or check the rate constants") \
            from None
    except (RuntimeError, ValueError) as error:  # e.g. a singular LU at rates near 1e308
        raise ConvergenceError(f"the CME integration (BDF) failed: {error}; check the "
                               "model's rate constants") from None
    if solution.status != 0:
        raise ConvergenceError(f"the CME integration failed: {solution.message}")
    return np.maximum(solution.y.T, 0.0)


class _BdfBudget(Exception):
    """Leaves scipy's BDF solver once it has used up ``MAX_BDF_EVALUATIONS``."""


@dataclass
class _Segment:
    space: StateSpace
    probabilities: np.ndarray  # (n_times, n_states)
    leaked: np.ndarray         # (n_times,) cumulative leaked mass
    info: dict | None = None   # time-integration statistics of the accepted round


def _deterministic_range(network: Network, times: np.ndarray, x0: np.ndarray):
    """(lowest, highest) count of each species along the rate equations over ``times``
    (x0 included), shape (n_species,) each; x0 for both when they cannot be solved."""
    horizon = times if len(times) > 1 else np.array([times[0], times[0] + 1.0])
    try:
        counts = simulate_deterministic(network, horizon).counts[:, :len(network.species)]
    except Exception:  # noqa: BLE001 - a rough guess is enough here
        counts = x0[None, :].astype(float)
    return (np.minimum(counts.min(axis=0), x0), np.maximum(counts.max(axis=0), x0))


def _margin(level: np.ndarray) -> np.ndarray:
    """Poisson-like margin of a window around ``level`` counts: 6 sqrt(level + 1) + 10."""
    return 6.0 * np.sqrt(np.maximum(level, 0.0) + 1.0) + 10.0


def _initial_bounds(network: Network, times: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """Per-species upper bounds from the deterministic solution plus a Poisson-like margin;
    -1 for fixed species and those capped by conservation laws."""
    bounds = np.full(len(network.species), -1, dtype=np.int64)
    caps = conservation_bounds(network, x0)
    peak = _deterministic_range(network, times, x0)[1]
    for i, s in enumerate(network.species):
        if s.fixed or np.isfinite(caps[i]):
            continue
        level = float(peak[i])
        if not np.isfinite(level):
            raise StateSpaceTooLargeError(
                f"the copy number of '{s.id}' diverges in the rate equations; the CME has no "
                "finite truncation here. Use simulate_ssa or solve_lna.")
        # Capped far below int64 overflow; such sizes fail the state-count guard anyway.
        bounds[i] = int(min(math.ceil(level + _margin(level)), 2**60))
    return bounds


def _initial_lower(network: Network, times: np.ndarray, x0: np.ndarray,
                   bounds: np.ndarray) -> np.ndarray:
    """Per-species lower bounds of the transient window: the lowest deterministic count
    minus the margin (0 where that is below 0, and for unbounded species)."""
    low = _deterministic_range(network, times, x0)[0]
    lower = np.floor(np.where(np.isfinite(low), low - _margin(low), 0.0))
    return np.where(bounds >= 0, np.clip(lower, 0, x0), 0).astype(np.int64)


def _window_holding(lower, upper, states):
    """(lower, upper) widened to hold every row of ``states``."""
    bounded = upper >= 0
    lower = np.where(lower > 0, np.minimum(lower, states.min(axis=0)), 0)
    upper = np.where(bounded, np.maximum(upper, states.max(axis=0)), upper)
    return lower.astype(np.int64), upper.astype(np.int64)


def _initial_state(network: Network) -> np.ndarray:
    """Initial counts as int64 (n_species,); refuses counts beyond exact integers."""
    counts = whole_initial_counts(network)
    too_large = counts >= 2.0**53
    if too_large.any():
        name = network.species_ids[int(np.argmax(too_large))]
        raise StateSpaceTooLargeError(
            f"species '{name}' starts with {counts.max():.3g} molecules: far beyond what a "
            "CME can enumerate. Use solve_lna or simulate_ssa, or set volumes= / "
            "substance_unit='item' if the model means small copy numbers.")
    return counts.astype(np.int64)


def _key_layout(network, bounds, conservation, x0, lower=None):
    """(key species, mixed-radix weights, box size): the codes of states within
    ``lower`` <= x <= ``bounds`` (conservation caps for unbounded species).

    The box is computed in floating point first: when it exceeds what int64 codes can
    hold, no radix is built (``None``) and the caller refuses (``_refuse_codes``). The
    box only sizes the codes; memory follows the states actually reachable."""
    lower = np.zeros(len(bounds)) if lower is None else np.asarray(lower, dtype=float)
    ranges = np.where(bounds >= 0, bounds.astype(float) - lower,
                      np.where(np.isfinite(conservation), conservation, 0.0))
    key_species = _key_species(network.jump_span, ranges)
    box = float(np.prod(ranges[key_species] + 1.0)) if len(key_species) else 1.0
    if box >= 2.0**62:
        return key_species, None, box
    widths = ranges[key_species].astype(np.int64) + 1
    radix = np.cumprod(np.concatenate([[1], widths]))[:-1].astype(np.int64)  # () if no key
    return key_species, radix, int(box)


def _refuse_codes(network: Network, box: float) -> None:
    """The bounds' box does not fit int64 codes: refuse, naming the widest species."""
    raise StateSpaceTooLargeError(
        f"the truncation box of the CME holds {box:.3g} states, beyond the 2^62 codes "
        "of the state index; the species ranges are too wide for a finite state "
        "projection. Use solve_lna for the moments or simulate_ssa for samples.")


def initial_fsp_problem(network: Network, t_end: float, *, max_states: int = 10**8):
    """The first FSP that :func:`solve_cme` builds for ``[0, t_end]``, for benchmarks and
    tests of the propagators: the states reachable from the initial state inside the
    initial bounds, and the generator with its sink rows.

    Returns
    -------
    (compiled, space, matrix, p0)
        ``space`` a :class:`StateSpace` (its ``key_species``, ``radix`` and ``bounds``
        reproduce the enumeration), ``matrix`` the sparse generator, shape
        (n_states + n_sinks,) * 2, and ``p0`` the initial point mass, shape (n_states + n_sinks,).
    """
    compiled = compile_network(network)
    x0 = _initial_state(network)
    bounds = _initial_bounds(network, np.array([0.0, float(t_end)]), x0)
    lower = _initial_lower(network, np.array([0.0, float(t_end)]), x0, bounds)
    key_species, radix, _ = _key_layout(network, bounds, conservation_bounds(network, x0), x0,
                                        lower)
    parameters = network.parameter_values.copy()
    space = enumerate_states(compiled, x0[None, :], bounds, key_species, radix, parameters,
                             max_states, 2, lower=lower)
    matrix, _ = build_generator(compiled, space, parameters)
    p0 = np.zeros(matrix.shape[0])
    p0[space.index_of(x0[None, :])[0]] = 1.0
    return compiled, space, matrix, p0


def _solve_transient_segment(compiled, sources, probabilities, times, bounds, tol, max_states,
                             method, parameters, drive=None, offset: float = 0.0, *,
                             lower=None, max_memory=None, bar=None) -> _Segment:
    """Adaptive FSP from a distribution on ``sources`` over ``times`` (starting at 0),
    on the window ``lower`` <= x <= ``bounds`` (grown side by side until the mass that
    leaves it is at most ``tol``).

    ``drive`` (a :class:`~sbml_cme.analyses.driven.Drive`, absolute times) makes the
    generator time-dependent (:class:`DrivenGenerator`, local time 0 = ``offset``)."""
    network = compiled.network
    conservation = conservation_bounds(network, sources[0])
    samples, sample_times = (parameters, None) if drive is None else drive.samples()
    lower = np.zeros(len(bounds), dtype=np.int64) if lower is None else lower
    for rounds in range(1, _MAX_GROWTH_ROUNDS + 1):
        key_species, radix, box = _key_layout(network, bounds, conservation, sources[0],
                                              lower)
        if radix is None:
            _refuse_codes(network, box)
        space = enumerate_states(compiled, sources, bounds, key_species, radix, samples,
                                 max_states, len(times), sample_times, lower=lower,
                                 max_memory=max_memory)
        info = {"fsp_rounds": rounds}
        tolerance = _integration_tolerance(tol)
        if drive is None:
            matrix, _ = build_generator(compiled, space, parameters)
            size = matrix.shape[0]
        else:
            generator = DrivenGenerator(compiled, space, drive, offset)
            size = generator.size
        p0 = np.zeros(size)
        np.add.at(p0, space.index_of(sources), probabilities)
        if drive is None:
            solution = _propagate(matrix, p0, times, method, tolerance=tolerance, info=info)
        else:
            solution = _propagate_driven(generator, p0, times, tolerance=tolerance, info=info)
        leaked = solution[:, space.n_states:].sum(axis=1)
        _report_round(bar, rounds, space.n_states, float(leaked[-1]))
        if leaked[-1] <= tol:
            return _Segment(space, solution[:, :space.n_states], leaked, info)
        lower, bounds = _grow_transient_window(space, solution[-1, space.n_states:], tol,
                                               leaked[-1])
    raise TruncationError(f"the FSP did not reach tol={tol:g} after {_MAX_GROWTH_ROUNDS} "
                          f"enlargements (leaked {leaked[-1]:.3g})")


def _grow_transient_window(space: StateSpace, sink_mass: np.ndarray, tol: float,
                           leaked: float):
    """(lower, upper) with every side whose sink caught more than tol / (2 n_sides)
    moved out: an upper bound to x1.5 + 10, a lower bound down by half the width + 10
    (every side when none stands out)."""
    upper, lower = space.bounds.copy(), space.lower.copy()
    bounded = np.nonzero(upper >= 0)[0]
    lower_bounded = np.nonzero(lower > 0)[0]
    share = tol / (2 * max(len(bounded) + len(lower_bounded), 1))
    grow = bounded[sink_mass[:len(bounded)] > share]
    drop = lower_bounded[sink_mass[len(bounded) + 1:] > share]
    if not len(grow) and not len(drop):
        grow, drop = bounded, lower_bounded
    if not len(grow) and not len(drop):
        raise TruncationError(
            f"probability {leaked:.3g} leaves the reachable set without breaking a "
            "bound; cannot certify the FSP")
    upper[grow] = np.ceil(upper[grow] * 1.5 + 10).astype(np.int64)
    lower[drop] = np.maximum(lower[drop] - (upper[drop] - lower[drop]) // 2 - 10, 0)
    return lower, upper


def check_cme_support(network: Network, analysis: str = "solve_cme") -> None:
    """Raise UnsupportedFeatureError for what the CME solver cannot express exactly.

    Continuous variables are accepted when they are functions of time only (rate rules
    that read no discrete species: a time-dependent generator, ``driven``);
    ``stationary_cme`` refuses any time dependence (there is no stationary law)."""
    refuse_randomness(network, analysis, clocks=False)
    check_time_driven(network, analysis)
    if analysis == "stationary_cme" and is_time_dependent(network):
        element = (network.rate_rules[0].target if network.rate_rules else next(
            r.id for r in network.reactions if TIME in r.rate_law.propensity().free_symbols))
        what = (f"the rate rule on '{element}'" if network.rate_rules
                else "a propensity that depends explicitly on time")
        raise UnsupportedFeatureError(
            f"time dependence ({what})", element, analysis=analysis,
            hint="The rates or the reported variables change with time, so there is no "
                 "stationary law; solve_cme(network, times) gives the transient "
                 "distribution.")
    watched = set(network.species_ids) | set(network.rate_rule_targets)
    for event in network.events:
        names = {str(s) for s in event.trigger.free_symbols}
        if names & watched or (event.delay is not None and {
                str(s) for s in event.delay.free_symbols} & watched):
            raise UnsupportedFeatureError(
                "an event triggered by the state or by a rate-rule variable", event.id,
                analysis=analysis,
                hint="The CME solver handles time-triggered events only; use simulate_ssa "
                     "or simulate_hybrid.")
        if event.priority is not None:
            raise UnsupportedFeatureError("an event priority", event.id, analysis=analysis)


def _event_schedule(network: Network, compiled, t0: float, t_end: float):
    """(time, event index) of every time-triggered event firing in (t0, t_end], sorted."""
    if not network.events:
        return []
    triggers = compile_expressions(network, [e.trigger for e in network.events], "trigger")
    delays = compile_expressions(network, [e.delay if e.delay is not None else 0
                                           for e in network.events], "delay")
    p = network.parameter_values
    x = network.initial_counts
    switches = with_trigger_crossings(compiled, [t0, t_end]).time_thresholds
    checkpoints = sorted({t0, *[t for t in switches if t0 <= t <= t_end]})
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
            if not np.all(np.abs(values) < 2.0 ** 53):
                raise UnsupportedFeatureError(
                    f"an event that assigns '{target}' a count of {np.max(np.abs(values)):.3g}"
                    " molecules, beyond the exact integers of the state space", event.id,
                    analysis="solve_cme", hint="Use simulate_deterministic, or read the "
                    "model with substance_unit= so that counts stay small.")
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


def _expression_values(compiled, expressions, states: np.ndarray, parameters: np.ndarray,
                       time: float) -> np.ndarray:
    """Sympy ``expressions`` over counts and parameters at every state, shape
    (n_states, n_expressions)."""
    programs = compile_expressions(compiled.network, expressions, "expression")
    data = compiled.data._replace(ops=programs.ops, args=programs.args,
                                  constants=programs.constants,
                                  stack_size=programs.stack_size)
    out = np.empty((len(states), len(expressions)))
    if out.size:
        _outputs_of_states(data, programs.bounds, np.ascontiguousarray(states, np.int64),
                           np.asarray(parameters, dtype=float), float(time), out)
    return out


@numba.njit(cache=True, parallel=True)
def _outputs_of_states(data: KernelData, output_program, states, p, t, out):
    for i in prange(states.shape[0]):
        stack = np.empty(data.stack_size)
        x = states[i].astype(np.float64)
        for k in range(output_program.shape[0]):
            out[i, k] = run_program(data.ops, data.args, data.constants, output_program[k, 0],
                                    output_program[k, 1], x, p, t, stack)


def output_values(compiled, states: np.ndarray, parameters: np.ndarray,
                  time: float) -> np.ndarray:
    """Assignment-rule outputs per state, shape (n_states, n_outputs)."""
    out = np.empty((len(states), len(compiled.output_program)))
    if out.size:
        _outputs_of_states(compiled.data, compiled.output_program,
                           np.ascontiguousarray(states, dtype=np.int64), parameters,
                           float(time), out)
    return out


def solve_cme(network: Network, times, *, tol: float = 1e-6, max_states: int | None = None,
              method: str = "auto", outputs=None, max_memory: float | None = None,
              progress: bool = False) -> CMEResult:
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
    max_memory : float, optional
        Bytes the solve may use (default 60 % of the available memory): larger state
        sets are refused while they are enumerated, before the generator is built.
    progress : bool
        Show the FSP rounds with their state counts and leaked mass (tqdm).
    method : {"auto", "krylov", "krylov_iop", "ode"}
        Time integration (``METHODS``). When a propensity reads time or a rate-rule
        variable (rate rules of time only, ``driven.check_time_driven``), the generator
        A(t) depends on time and only ``"ode"`` (what ``"auto"`` picks) applies; the
        certificate is the same (docs/cme.md, "Time-dependent generators"). ``run_info["method"]`` is the method that ran
        (``"auto"`` resolved; ``methods_used`` lists them per segment); it also holds the
        summed local error estimates of the time integration (``integration_error``, a
        2-norm estimate held far below ``tol``; not part of ``error_bounds``, which
        certify the truncation) and the Krylov step counts.
    outputs : list of str, optional
        Parameters, compartments or rule targets to report beside the species
        (``network.with_outputs(outputs)``).
        Each is reported per state; an event-assigned parameter follows its events, a
        rate-rule parameter its rule.

    Returns
    -------
    CMEResult
        Distributions at ``times`` with ``error_bound`` <= ``tol``.

    Raises
    ------
    StateSpaceTooLargeError, TruncationError, UnsupportedFeatureError
    """
    network = network.with_outputs(outputs)
    times = _check_times(times)
    _check_options(tol, method)
    max_states = int(max_states or default_max_states())
    max_memory = memory_limit(max_memory)
    check_cme_support(network)
    driven = generator_is_time_dependent(network)
    if driven and method not in ("auto", "ode"):
        raise OptionsError(f"method={method!r} exponentiates a constant generator; this "
                           "network's rates change with time (rate rules or laws that read "
                           "time): use method='ode' or 'auto'")
    started = wallclock.perf_counter()
    compiled = compile_network(network)
    parameters = network.parameter_values.copy()
    x0 = _initial_state(network)
    bounds = _initial_bounds(network, times, x0)
    lower = _initial_lower(network, times, x0, bounds)
    sources, probabilities = x0[None, :], np.array([1.0])
    t_now = times[0]
    bar = _progress_bar(progress, "FSP")
    schedule = _event_schedule(network, compiled, times[0], times[-1])
    leaked_before = 0.0
    distributions: list[tuple[np.ndarray, np.ndarray]] = [None] * len(times)
    snapshots: list[np.ndarray] = [parameters] * len(times)  # parameters at each output
    errors = np.zeros(len(times))
    largest = 0
    integration = {"methods_used": [], "integration_error": 0.0, "krylov_steps": 0,
                   "krylov_rejected": 0, "matrix_products": 0, "fsp_rounds": 0}
    try:
        for stop, event_index in schedule + [(times[-1], None)]:
            outputs = [k for k, t in enumerate(times) if t_now <= t <= stop and
                       distributions[k] is None and not (event_index is not None and t == stop)]
            local = np.array([0.0] + [times[k] - t_now for k in outputs] + [stop - t_now])
            local = np.unique(local)
            drive = integrate_drive(network, parameters, sources[0], t_now, stop) \
                if driven or network.rate_rules else None
            lower, bounds = _window_holding(lower, bounds, sources)
            segment = _solve_transient_segment(compiled, sources, probabilities, local, bounds,
                                               tol - leaked_before, max_states, method, parameters,
                                               drive if driven else None, t_now, lower=lower,
                                               max_memory=max_memory, bar=bar)
            largest = max(largest, segment.space.n_states)
            _add_integration_info(integration, segment.info)
            for k in outputs:
                row = int(np.searchsorted(local, times[k] - t_now))
                distributions[k] = (segment.space.states, segment.probabilities[row])
                snapshots[k] = parameters if drive is None else drive.parameters(times[k])
                errors[k] = leaked_before + segment.leaked[row]
            final = segment.probabilities[-1]
            leaked_before += segment.leaked[-1]
            keep = final > 0
            sources, probabilities = segment.space.states[keep], final[keep]
            lower, bounds = segment.space.lower, segment.space.bounds
            if drive is not None:
                parameters = drive.parameters(stop)
            if event_index is not None:
                sources, probabilities, parameters = _apply_event(
                    compiled, event_index, sources, probabilities, parameters, stop)
                for k, t in enumerate(times):
                    if t == stop and distributions[k] is None:
                        distributions[k] = (sources, probabilities)
                        snapshots[k] = parameters
                        errors[k] = leaked_before
            t_now = stop
    finally:
        if bar is not None:
            bar.close()
    outputs = tuple(output_values(compiled, states, snapshots[k], times[k])
                    for k, (states, _) in enumerate(distributions))
    return CMEResult(network=network, times=times, distributions=tuple(distributions),
                     error_bounds=errors, outputs=outputs, run_info={
                         "tol": tol, "max_states": max_states, "max_memory": max_memory,
                         "n_states": largest, "wall_time": wallclock.perf_counter() - started,
                         "stationary": False, **integration,
                         "method": "+".join(integration["methods_used"]),
                         "requested_method": method})


def _add_integration_info(total: dict, segment: dict) -> None:
    """Accumulate one segment's time-integration statistics into ``total``."""
    if segment["method"] not in total["methods_used"]:
        total["methods_used"].append(segment["method"])
    total["integration_error"] += segment["integration_error"]
    total["krylov_steps"] += segment.get("steps", 0)
    total["krylov_rejected"] += segment.get("rejected", 0)
    total["matrix_products"] += segment.get("products", 0)
    total["fsp_rounds"] += segment["fsp_rounds"]
    if "generator_assemblies" in segment:
        total["generator_assemblies"] = (total.get("generator_assemblies", 0)
                                         + segment["generator_assemblies"])


def stationary_cme(network: Network, *, tol: float = 1e-6, max_states: int | None = None,
                   horizon: float | None = None, outputs=None, max_memory: float | None = None,
                   progress: bool = False) -> CMEResult:
    """Stationary distribution by the stationary FSP, with a certificate.

    The state set is a window lower <= x <= upper per species that follows the mass: it
    starts at the stationary LNA's mean +- k sd (k from ``tol``) and each side whose
    outflow dominates the certificate is moved out, by the distance the Gaussian tail
    predicts (``_grow_stationary_window``). The truncated generator with its outflow
    redirected to the most probable state is solved with the normalisation built into
    the sparse system. For the answer ``pi_J`` and ``horizon`` (default: ten relaxation
    times of the truncated chain), ``error_bound`` = an upper bound of leaked mass +
    ||p(horizon) - pi_J||_1 of the absorbing FSP started from pi_J (``_certify``; no time
    integration needed), bounding how far the exact CME started from ``pi_J`` moves
    away from it (zero for the exact stationary law); docs/cme.md proves it.

    ``outputs``: SBML symbols to report beside the species, as in :func:`solve_cme`.
    ``max_states``/``max_memory`` (bytes; default 60 % of the available memory) refuse
    larger sets before they are allocated; ``progress`` shows the FSP rounds (tqdm).
    """
    network = network.with_outputs(outputs)
    _check_options(tol, "krylov")
    max_states = int(max_states or default_max_states())
    max_memory = memory_limit(max_memory)
    check_cme_support(network, "stationary_cme")
    if network.events:
        raise UnsupportedFeatureError("events", network.events[0].id,
                                      analysis="stationary_cme",
                                      hint="A stationary law ignores transients; remove events.")
    started = wallclock.perf_counter()
    compiled = compile_network(network)
    parameters = network.parameter_values.copy()
    x0 = _initial_state(network)
    conservation = conservation_bounds(network, x0)
    window = _stationary_window(network, x0, tol)
    source = _source_in_window(compiled, x0, window)
    lower, bounds = window.lower, window.upper
    bar = _progress_bar(progress, "stationary FSP")
    try:
        for rounds in range(1, _MAX_GROWTH_ROUNDS + 1):
            key_species, radix, box = _key_layout(network, bounds, conservation, x0, lower)
            if radix is None:
                _refuse_codes(network, box)
            space = enumerate_states(compiled, source[None, :], bounds, key_species, radix,
                                     parameters, max_states, 2, lower=lower,
                                     max_memory=max_memory, stationary=True)
            anchor = int(space.index_of(source[None, :])[0])
            solution = _stationary_solve(compiled, space, parameters, anchor)
            mode = int(np.argmax(solution.pi))
            if mode != anchor and space.n_states <= _ITERATIVE_MIN_STATES:
                # re-anchor at the mode (more accurate for the LU); the certificate holds
                # for any anchor, and for the iterative solve a second solve only cost
                # time and, at 10^6 states, gave a larger residual (docs/cme.md)
                solution = _stationary_solve(compiled, space, parameters, mode,
                                             guess=solution.pi)
            pi = solution.pi
            tau = horizon if horizon is not None else 10.0 * _relaxation_time(
                solution.conservative, compiled, pi @ space.states, parameters)
            certificate, leaked, drift, outflow = _certify(compiled, space, parameters, pi,
                                                           tau, solution)
            _report_round(bar, rounds, space.n_states, certificate)
            if certificate <= tol:
                return CMEResult(network=network, times=np.array([np.inf]),
                                 distributions=((space.states, pi),),
                                 outputs=(output_values(compiled, space.states, parameters,
                                                        np.inf),),
                                 error_bounds=np.array([certificate]), run_info={
                                     "method": "stationary FSP", "tol": tol,
                                     "max_states": max_states, "max_memory": max_memory,
                                     "n_states": space.n_states, "fsp_rounds": rounds,
                                     "lower": lower, "upper": bounds,
                                     "horizon": tau, "leaked": leaked, "drift": drift,
                                     "wall_time": wallclock.perf_counter() - started,
                                     "stationary": True})
            if not (bounds >= 0).any():
                raise TruncationError(f"the stationary certificate {certificate:.3g} exceeds "
                                      f"tol={tol:g} on the whole reachable set")
            lower, bounds = _grow_stationary_window(window, lower, bounds,
                                                    outflow * 2.0 * tau, tol)
    finally:
        if bar is not None:
            bar.close()
    raise TruncationError(f"the stationary FSP did not reach tol={tol:g}")


@dataclass
class _Window:
    """A box lower <= x <= upper (upper -1: unbounded) and the Gaussian guess it came
    from (mean, sd per species; None without an LNA)."""

    lower: np.ndarray
    upper: np.ndarray
    mean: np.ndarray | None = None
    sd: np.ndarray | None = None


def _tail_quantile(tol: float) -> float:
    """Standard deviations k with a Gaussian tail flux small against ``tol``."""
    return math.sqrt(2.0 * math.log(1.0 / tol)) + 1.0


def _stationary_window(network: Network, x0: np.ndarray, tol: float) -> _Window:
    """The first window: the stationary LNA's mean +- k sd for every bounded species
    (k = :func:`_tail_quantile`, at least 6), widened to the deterministic box
    (level +- 6 sqrt(level + 1) + 10) where that is wider; without an LNA, [0, the
    deterministic long-time level + 6 sqrt + 10]."""
    upper = _stationary_bounds(network, x0)
    lower = np.zeros(len(upper), dtype=np.int64)
    bounded = upper >= 0
    try:
        from .lna import solve_lna
        lna = solve_lna(network)
        mean = np.asarray(lna.means[0, :len(network.species)], dtype=float)
        sd = np.sqrt(np.clip(np.diagonal(lna.covariances[0])[:len(network.species)], 0, None))
    except Exception:  # noqa: BLE001 - no stable LNA: the box from zero
        return _Window(lower, upper)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(sd))):
        return _Window(lower, upper)
    k = max(6.0, _tail_quantile(tol))
    margin = k * np.maximum(sd, 1.0) + 3.0
    # never tighter than the deterministic box (level +- 6 sqrt(level + 1) + 10)
    upper = upper.copy()
    upper[bounded] = np.maximum(upper[bounded], np.ceil(mean[bounded] + margin[bounded]))
    low = np.minimum(mean - margin, mean - _margin(mean))
    lower[bounded] = np.floor(np.maximum(low[bounded], 0.0)).astype(np.int64)
    return _Window(lower, upper, mean, sd)


def _source_in_window(compiled, x0: np.ndarray, window: _Window) -> np.ndarray:
    """A state inside ``window`` reachable from ``x0``: x0 itself, or the end of one
    exact SSA trajectory of a few relaxation times (it lies in x0's compatibility
    class); when that also misses the window, the window is widened to hold x0."""
    inside = lambda x: bool(np.all(x >= window.lower) and np.all(
        (window.upper < 0) | (x <= window.upper)))
    if inside(x0):
        return x0
    network = compiled.network
    try:
        from .ssa import simulate_ssa
        gap = _linearised_gap(compiled, window.mean if window.mean is not None
                              else x0.astype(float), network.parameter_values)
        t_end = 5.0 / gap if gap > 0 else 100.0
        walk = simulate_ssa(network, [0.0, t_end], n_trajectories=1, seed=20261207,
                            method="direct", max_events=1e7)
        end = walk.states[0, -1, :len(network.species)].astype(np.int64)
        if inside(end):
            return end
    except SbmlCmeError:
        pass
    window.lower = np.minimum(window.lower, x0)
    window.upper = np.where(window.upper >= 0, np.maximum(window.upper, x0), window.upper)
    return x0


def _grow_stationary_window(window: _Window, lower, upper, contribution, tol):
    """Move out each side of the window whose share of the certificate
    (``contribution``, per sink: 2 x horizon x outflow rate) exceeds tol / (4 n_sides).

    With an LNA the side moves by the distance at which a Gaussian tail's flux has
    fallen by the needed factor (z' = sqrt(z^2 + 2 ln(factor)), plus 20 %); otherwise
    (or when the side is already far out) by half the current width + 10."""
    bounded = np.nonzero(upper >= 0)[0]
    lower_bounded = np.nonzero(lower > 0)[0]
    n_sides = max(len(bounded) + len(lower_bounded), 1)
    target = tol / (4.0 * n_sides)
    lower, upper = lower.copy(), upper.copy()
    grew = False
    for position, i in enumerate(bounded):
        if contribution[position] > target:
            upper[i] += _side_step(window, i, upper[i], upper[i] - lower[i],
                                   contribution[position] / target)
            grew = True
    offset = len(bounded) + 1
    for position, i in enumerate(lower_bounded):
        if contribution[offset + position] > target:
            lower[i] = max(0, lower[i] - _side_step(window, i, lower[i], upper[i] - lower[i],
                                                    contribution[offset + position] / target))
            grew = True
    if not grew:  # the other sink or round-off: widen every side a little
        upper[bounded] += np.maximum((upper[bounded] - lower[bounded]) // 4, 10)
        lower[lower_bounded] = np.maximum(
            lower[lower_bounded] - np.maximum((upper[lower_bounded] - lower[lower_bounded]) // 4,
                                              10), 0)
    return lower, upper


def _side_step(window: _Window, i: int, edge: int, width: int, factor: float) -> int:
    """Molecules to move one side of species ``i`` out for its outflow to fall by
    ``factor`` (> 1)."""
    if window.mean is None or not window.sd[i] > 0:
        return int(width // 2 + 10)
    sd = float(window.sd[i])
    z = abs(edge - float(window.mean[i])) / sd
    needed = math.sqrt(z * z + 2.0 * math.log(factor))
    return int(math.ceil(1.2 * (needed - z) * sd)) + 2


def _progress_bar(progress: bool, description: str):
    """A tqdm bar over FSP rounds, or None."""
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(desc=description, unit="round")


def _report_round(bar, rounds: int, n_states: int, bound: float) -> None:
    """One FSP round done: states and the current error bound on the bar."""
    if bar is not None:
        bar.update(1)
        bar.set_postfix(states=f"{n_states:.3g}", bound=f"{bound:.2g}")


def _stationary_bounds(network: Network, x0: np.ndarray) -> np.ndarray:
    """Bounds around the deterministic long-time level."""
    horizon = np.array([0.0, 1e3, 1e4])
    return _initial_bounds(network, horizon, x0)


#: Above this many states the stationary system is solved by AMG-preconditioned GMRES
#: instead of a sparse LU (whose fill grows superlinearly on 2-D state grids).
_ITERATIVE_MIN_STATES = 50_000
#: ||A x||_1 (long double) at which the refinement of the iterative solve stops.
_STATIONARY_TARGET = 1e-15
#: Largest accepted ||A pi||_1 of the iterative stationary solution (A conservative).
_STATIONARY_RESIDUAL = 1e-9


def _stationary_system(matrix, anchor: int):
    """-A with row ``anchor`` replaced by e_anchor, in CSR: one copy of ``matrix``, no COO
    assembly (which took 4 times the matrix's memory at 10^7 states)."""
    system = (-matrix).tocsr()
    system.sort_indices()
    start, stop = system.indptr[anchor], system.indptr[anchor + 1]
    row = system.indices[start:stop]
    system.data[start:stop] = 0.0
    diagonal = np.searchsorted(row, anchor)
    if diagonal < len(row) and row[diagonal] == anchor:
        system.data[start + diagonal] = 1.0
    else:  # no stored diagonal (a state without exit): insert it
        system = system.tolil()
        system[anchor, anchor] = 1.0
        system = system.tocsr()
    system.eliminate_zeros()
    return system


@dataclass
class _StationarySolution:
    """A stationary FSP answer: ``pi`` (n,), the conservative generator it solves, the
    certified residual ``residual`` >= ||A_r x||_1 of a vector x, and ``rounding``
    >= ||pi - x||_1 (x = pi and rounding = 0 unless refined in extended precision)."""

    pi: np.ndarray
    conservative: sparse.csr_matrix
    residual: float
    rounding: float = 0.0


def _stationary_solve(compiled, space, parameters, anchor: int, guess=None
                      ) -> _StationarySolution:
    """Stationary law of the truncated chain with outflow sent to ``anchor``.

    Up to ``_ITERATIVE_MIN_STATES`` states the balance equation of ``anchor`` is replaced
    by the normalisation sum(pi) = 1 (non-singular on an irreducible set, so the solution
    cannot be zero) and the system is factorised by SuperLU with a minimum-degree ordering
    on A^T + A. Larger sets pin pi(anchor) = 1 instead (row ``anchor`` of -A becomes the
    unit row: a non-singular M-matrix system whose solution is nonzero by construction),
    solve it by GMRES preconditioned with classical (Ruge-Stuben) AMG, starting from
    ``guess`` when given, refine it in extended precision and normalise
    (:func:`_stationary_iterative`). The certificate accounts for the residual
    (``_certify``)."""
    matrix, _ = build_generator(compiled, space, parameters, absorbing=False,
                                redirect_to=anchor)
    n = space.n_states
    if n > _ITERATIVE_MIN_STATES:
        return _stationary_iterative(matrix, anchor, guess, len(space.key_species))
    coo = matrix.tocoo()
    keep = coo.row != anchor
    system = sparse.csc_matrix(
        (np.concatenate([coo.data[keep], np.ones(n)]),
         (np.concatenate([coo.row[keep], np.full(n, anchor, dtype=coo.row.dtype)]),
          np.concatenate([coo.col[keep], np.arange(n, dtype=coo.col.dtype)]))),
        shape=(n, n))
    rhs = np.zeros(n)
    rhs[anchor] = 1.0
    try:
        pi = splinalg.splu(system, permc_spec="MMD_AT_PLUS_A").solve(rhs)
    except RuntimeError as error:
        raise ConvergenceError(f"the stationary system is singular: {error}. The chain "
                               "may have several closed classes; start from a different "
                               "state.") from None
    pi = _normalised(pi)
    return _StationarySolution(pi, matrix, float(np.abs(matrix @ pi).sum()))


def _normalised(pi: np.ndarray) -> np.ndarray:
    """``pi`` clipped at 0 and scaled to sum 1; ConvergenceError when that is impossible."""
    if not np.all(np.isfinite(pi)) or not pi.sum() > 0:
        raise ConvergenceError("the stationary system is singular (no unique stationary law "
                               "on the reachable set)")
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


#: Largest lattice dimension (key species) solved with Ruge-Stuben AMG first.
_RUGE_STUBEN_MAX_DIMENSION = 3
#: Extended-precision refinement steps of the iterative stationary solve.
_REFINEMENT_STEPS = 4


def _stationary_iterative(matrix, anchor: int, guess=None, dimension: int = 2
                          ) -> _StationarySolution:
    """Solve A pi = 0 with pi(anchor) = 1 by Ruge-Stuben AMG-preconditioned GMRES, then
    refine in extended precision.

    In double precision ||A pi||_1 cannot fall below ~ eps x sum_x |A_xx| pi(x) (1e-12
    at 7 x 10^5 states with exit rates ~10^4), and the certificate charges it E h^2 / 2
    (docs/cme.md). So the residual of the pinned system is computed in ``np.longdouble``
    (eps 1.1e-19), the correction solved by the same AMG hierarchy in double, and the
    long-double vector x updated (mixed-precision iterative refinement). The certified
    residual is ||A x||_1 in long double plus its round-off bound; the returned double
    vector is within ``rounding`` = ||pi - x||_1 of x."""
    try:
        import pyamg
    except ImportError as error:  # pragma: no cover - pyamg is a dependency
        raise ConvergenceError("the stationary solve of a large state set needs pyamg") \
            from error
    n = matrix.shape[0]
    system = _stationary_system(matrix, anchor)
    rhs = np.zeros(n)
    rhs[anchor] = 1.0
    x0 = None
    if guess is not None and guess[anchor] > 0:
        x0 = np.asarray(guess, dtype=float) / guess[anchor]
    hierarchy, x = _amg_solve(pyamg, system, rhs, x0, dimension)
    exact = x.astype(np.longdouble)
    best, residual = None, np.inf
    for _ in range(_REFINEMENT_STEPS):
        trial = np.clip(exact, 0, None)
        trial = trial / trial.sum()
        value, floor = _wide_residual(matrix, trial)
        improved = value < 0.1 * residual
        if value < residual:
            best, residual = trial, value
        if residual <= max(_STATIONARY_TARGET, 4.0 * floor) or not improved:
            break  # small enough, or at the round-off level
        correction = _wide_product(matrix, exact)  # rhs - system @ exact, system = -A pinned
        correction[anchor] = rhs[anchor] - exact[anchor]
        scale = float(np.abs(correction).max())
        if not scale > 0:
            break
        step = hierarchy.solve((correction / scale).astype(float), tol=1e-7, maxiter=20,
                               accel="gmres")
        exact = exact + np.longdouble(scale) * step.astype(np.longdouble)
    if not residual <= _STATIONARY_RESIDUAL:
        raise ConvergenceError(f"the AMG-preconditioned stationary solve stalled at "
                               f"||A pi||_1 = {residual:.3g}")
    pi = best.astype(float)
    rounding = float(np.abs(pi.astype(np.longdouble) - best).sum())
    return _StationarySolution(pi, matrix, residual, rounding)


def _amg_solve(pyamg, system, rhs, x0, dimension: int):
    """(hierarchy, x) with system @ x ~ rhs to 1e-9 relative. On lattices of at most
    ``_RUGE_STUBEN_MAX_DIMENSION`` key species classical Ruge-Stuben AMG (fastest on the
    2-D birth-death grids of docs/cme.md), then or otherwise nonsymmetric smoothed
    aggregation (on the 9-D lattice of a 10-species ring the Ruge-Stuben setup took 180 s
    and divided by zero; smoothed aggregation solved it in 12 s)."""
    import warnings
    builders = [lambda: pyamg.smoothed_aggregation_solver(system, symmetry="nonsymmetric",
                                                          max_coarse=500)]
    if dimension <= _RUGE_STUBEN_MAX_DIMENSION:
        builders.insert(0, lambda: pyamg.ruge_stuben_solver(system, max_coarse=500))
    for build in builders:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                hierarchy = build()
                x = hierarchy.solve(rhs, x0=x0, tol=1e-9, maxiter=_AMG_ITERATIONS,
                                     accel="gmres")
            except (ValueError, ArithmeticError, np.linalg.LinAlgError):
                continue
        if np.all(np.isfinite(x)) and x.sum() > 0:
            return hierarchy, x
    raise ConvergenceError("the AMG-preconditioned stationary solve failed")


#: Rows per block of the long-double products (a block's long-double copy is ~20 B per
#: stored entry: 150 MB at 7 entries per row), so no long-double copy of the matrix.
_WIDE_BLOCK_ROWS = 2**20


def _wide_blocks(matrix):
    """(rows slice, block of ``matrix`` in long double) over blocks of rows (CSR)."""
    for start in range(0, matrix.shape[0], _WIDE_BLOCK_ROWS):
        rows = slice(start, min(start + _WIDE_BLOCK_ROWS, matrix.shape[0]))
        yield rows, matrix[rows].astype(np.longdouble)


def _wide_product(matrix, x) -> np.ndarray:
    """``matrix @ x`` (n,) in long double, block by block."""
    out = np.empty(matrix.shape[0], dtype=np.longdouble)
    for rows, block in _wide_blocks(matrix):
        out[rows] = block @ x
    return out


def _wide_residual(generator, x) -> tuple[float, float]:
    """(bound, floor): ||A x||_1 computed in long double plus ``floor``, the bound of its
    round-off (a row of k terms is off by at most k eps sum_j |A_ij x_j|; doubled)."""
    eps = float(np.finfo(np.longdouble).eps)
    total, floor = np.longdouble(0.0), np.longdouble(0.0)
    magnitude_x = np.abs(x)
    for rows, block in _wide_blocks(generator):
        total += np.abs(block @ x).sum()
        terms = np.diff(block.indptr).astype(np.longdouble)
        block.data = np.abs(block.data)
        floor += (terms * (block @ magnitude_x)).sum()
    floor = float(2.0 * eps * floor)
    return float(total) + floor, floor


def _certify(compiled, space, parameters, pi, horizon, solution: _StationarySolution):
    """(certificate, leaked, drift, outflow per sink) for ``pi`` over ``horizon``: bounds
    on how far the exact CME started from pi moves in that time (leaked + drift). See
    docs/cme.md.

    The cheap bound needs no time integration. With r = sum_x pi(x) exit(x) (the rate
    at which pi leaves J), E = max exit rate and rho >= ||A_r x||_1 (A_r the conservative,
    redirected generator, x the vector it was solved for, within ``rounding`` = d of pi),
    the absorbing FSP from x satisfies leaked(h) <= h (r + E d) + E h^2 rho / 2 and
    ||p_J(h) - x||_1 <= leaked(h) + h rho; pi adds 2 d. On sets of at most
    ``_ITERATIVE_MIN_STATES`` states the absorbing FSP is also evolved by Krylov
    (affordable there) and the smaller of the two true bounds is returned."""
    matrix, _ = build_generator(compiled, space, parameters)
    n = space.n_states
    outflow = matrix[n:, :n] @ pi  # (n_sinks,) rate into each sink
    exit_rate = np.asarray(matrix[n:, :n].sum(axis=0)).ravel()
    largest = float(exit_rate.max(initial=0.0))
    rate = float(exit_rate @ pi) + largest * solution.rounding
    residual = solution.residual
    leaked = horizon * rate + 0.5 * largest * horizon ** 2 * residual
    drift = leaked + horizon * residual + 2.0 * solution.rounding
    if n <= _ITERATIVE_MIN_STATES and leaked + drift > 0:
        p0 = np.concatenate([pi, np.zeros(matrix.shape[0] - n)])
        evolved = _propagate(matrix, p0, np.array([0.0, horizon]), "krylov")[-1]
        exact_leaked = float(evolved[n:].sum())
        exact_drift = float(np.abs(evolved[:n] - pi).sum())
        if exact_leaked + exact_drift < leaked + drift:
            leaked, drift = exact_leaked, exact_drift
    return leaked + drift, leaked, drift, outflow


#: Above this many states the relaxation time comes from the linearised rate equations.
_EIGS_MAX_STATES = 20_000


def _relaxation_time(matrix, compiled=None, mean=None, parameters=None) -> float:
    """1 / spectral gap of a conservative generator (its slowest non-stationary mode).

    Up to ``_EIGS_MAX_STATES`` states the gap is computed (dense eigenvalues, or ARPACK
    shift-invert, which needs a second sparse LU). Larger sets use the slowest decay rate
    of the rate equations linearised at the stationary mean: exact for networks of
    zeroth- and first-order reactions (the CME spectrum is then made of sums of the
    Jacobian's eigenvalues), an estimate for nonlinear ones (it misses the slow switching
    of multistable systems; pass ``horizon=`` there). See docs/cme.md."""
    n = matrix.shape[0]
    if n <= 2:
        return 1.0 / max(abs(matrix.diagonal()).max(), 1e-12)
    if n > _EIGS_MAX_STATES and compiled is not None:
        rate = _linearised_gap(compiled, np.asarray(mean, dtype=float), parameters)
        if rate > 0:
            return 1.0 / rate
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


def _linearised_gap(compiled, mean: np.ndarray, parameters) -> float:
    """Slowest non-zero decay rate of the rate equations' Jacobian at ``mean`` (central
    differences); 0 when there is none (then the caller computes the gap)."""
    n_species = len(mean)
    rates = np.empty(len(compiled.network.reactions))
    plus, minus = np.empty(n_species), np.empty(n_species)
    jacobian = np.empty((n_species, n_species))
    p = np.asarray(parameters, dtype=float)
    for i in range(n_species):
        step = 1e-4 * max(1.0, abs(mean[i]))
        up, down = mean.copy(), mean.copy()
        up[i] += step
        down[i] = max(down[i] - step, 0.0)
        rate_equations(compiled, up, p, 0.0, rates, plus)
        rate_equations(compiled, down, p, 0.0, rates, minus)
        jacobian[:, i] = (plus - minus) / (up[i] - down[i])
    decay = np.abs(np.linalg.eigvals(jacobian).real)
    decay = decay[decay > 1e-9 * max(decay.max(initial=0.0), 1e-300)]
    return float(decay.min()) if len(decay) else 0.0


def _check_options(tol: float, method: str) -> None:
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise OptionsError(f"tol must be between 0 and 1, got {tol!r}")
    if method not in METHODS:
        raise OptionsError(f"method must be one of {sorted(METHODS)}, got {method!r}")
