"""The chemical Langevin equation (CLE), compiled and parallel over trajectories.

dX = S a(X) dt + S diag(sqrt(a(X))) dW, X in molecules (continuous), one Wiener process
per reaction channel, a = the deterministic limit of each propensity (THEORY.md 5),
evaluated by kinetics' compiled ``channel_propensity``.

Methods (``METHODS``):

- ``"euler"``: Euler–Maruyama, weak order 1.
- ``"weak2"``: the explicit (derivative-free) order 2.0 weak scheme for multi-dimensional
  noise of Kloeden & Platen (1992), eq. 15.1.3: drift by the trapezoidal rule at the
  supporting value Y + a dt + sum_j b^j dW^j; diffusion with supporting values
  R^j = Y + a dt +- b^j sqrt(dt) and U^r = Y +- b^r sqrt(dt); the Levy-area terms use
  two-point random variables V^{r,j} = +-dt (antisymmetric). Channel j's noise
  coefficient b^j(Z) = S_j sqrt(a_j(Z)) changes with U^r only when channel j reads a
  species that channel r changes, so the double sum runs over the kinetics dependency
  graph (cost like a few Euler steps, not quadratic in the number of channels).
  Moments converge with order 2 in dt (versus 1 for Euler).

Negative states. The CLE's Gaussian increments can step below zero. Propensities are
always evaluated at max(X, 0) (so sqrt(a) is real), and after every step each negative
count is set to zero (clipped). ``run_info["clipped_steps"]`` counts the steps in which
any count was clipped, ``run_info["clipped_fraction"]`` their share; clipping biases the
moments upward and can break conservation laws, so a noticeable fraction means the CLE
is the wrong tool (use simulate_ssa).

Step size. ``dt=None`` takes dt = DT_FACTOR / rho with rho the fastest rate along the
rate equations' solution at the output times: the max row sum of |J|
(J = S da/dx, exact Jacobian; bounds its spectral radius), or the turnover
max_i sum_j |S_ij| a_j / max(x_i, 1) where J vanishes (see :func:`default_step`). Output times are hit
exactly (the last step before each is shortened).

Random numbers: the xoshiro256+ per-trajectory streams of the SSA (same seed, same
ensemble whatever the number of threads), Gaussians by Box-Muller.

Refused: events (UnsupportedFeatureError naming the event) and bursts (naming the reaction:
one Wiener process per channel cannot carry a random jump size).
"""

from __future__ import annotations

import math
import time as wallclock

import numba
import numpy as np
from numba import prange

from ..errors import AnalysisError, OptionsError, UnsupportedFeatureError
from ..kinetics import (CompiledNetwork, channel_propensity, compile_network,
                        refuse_continuous, refuse_randomness, run_program)
from ..network import Network
from ..results import EnsembleResult
from .deterministic import _check_times
from .ensemble import (concatenate, dask_blocks, local_blocks, map_blocks, numba_threads,
                       task_may_use_parallel_kernel, thread_count)
from .ssa import _xoshiro, trajectory_streams

METHODS = {"euler": 0, "weak2": 1}

#: dt = DT_FACTOR / (fastest rate at the initial state).
DT_FACTOR = 0.01

_OK, _BAD_PROPENSITY = 0, 1
_BLOCK = 64  # trajectories per local block (progress granularity)


# -- random numbers: the SSA's xoshiro256+ generator and per-trajectory streams -------------
@numba.njit(cache=True)
def _fill_random(state, gaussians, signs):
    """Fill ``gaussians`` with standard normals (Box-Muller) and ``signs`` with +-1,
    advancing the stream ``state`` (4 uint64) in place."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    n = gaussians.shape[0]
    k = 0
    while k < n:
        u1, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
        u2, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
        radius = math.sqrt(-2.0 * math.log(u1))
        gaussians[k] = radius * math.cos(2.0 * math.pi * u2)
        if k + 1 < n:
            gaussians[k + 1] = radius * math.sin(2.0 * math.pi * u2)
        k += 2
    for k in range(signs.shape[0]):
        u, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
        signs[k] = 1.0 if u <= 0.5 else -1.0
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3


# -- propensities at clipped states --------------------------------------------------------------
@numba.njit(cache=True)
def _clipped_propensities(data, x, work, p, t, stack, a):
    """a(max(x, 0)) into ``a``; returns the first channel with a negative/NaN value or -1."""
    for i in range(x.shape[0]):
        work[i] = max(x[i], 0.0)
    for j in range(a.shape[0]):
        a[j] = channel_propensity(data, j, work, p, t, bool(True), stack)  # non-literal
        if not (a[j] >= 0.0):
            return j
    return -1


@numba.njit(cache=True)
def _shifted_root(data, j, r, sign, scale, base, work, p, t, stack):
    """sqrt(a_j) at max(base + sign * scale * S_r, 0); ``work`` holds max(base, 0) and is
    restored."""
    for q in range(data.change_ptr[r], data.change_ptr[r + 1]):
        species = data.change_species[q]
        work[species] = max(base[species] + sign * scale * data.change_amount[q], 0.0)
    value = channel_propensity(data, j, work, p, t, bool(True), stack)
    for q in range(data.change_ptr[r], data.change_ptr[r + 1]):
        species = data.change_species[q]
        work[species] = max(base[species], 0.0)
    return math.sqrt(max(value, 0.0))


@numba.njit(cache=True)
def _add_channels(data, x, coefficients):
    """x += S coefficients."""
    for j in range(coefficients.shape[0]):
        for q in range(data.change_ptr[j], data.change_ptr[j + 1]):
            x[data.change_species[q]] += data.change_amount[q] * coefficients[j]


@numba.njit(cache=True)
def _record(data, output_program, x, p, t, row):
    """Counts, then rule outputs, into ``row``."""
    n = x.shape[0]
    row[:n] = x
    stack = np.empty(data.stack_size)
    for k in range(output_program.shape[0]):
        row[n + k] = run_program(data.ops, data.args, data.constants, output_program[k, 0],
                                 output_program[k, 1], x, p, t, stack)


# -- steps ---------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _euler_step(data, x, p, t, h, state, a, noise, work, stack):
    bad = _clipped_propensities(data, x, work, p, t, stack, a)
    if bad >= 0:
        return bad
    _fill_random(state, noise, noise[:0])
    root_h = math.sqrt(h)
    for j in range(a.shape[0]):
        noise[j] = a[j] * h + math.sqrt(a[j]) * root_h * noise[j]
    _add_channels(data, x, noise)
    return -1


@numba.njit(cache=True)
def _weak2_step(data, pair_index, pair_orientation, x, p, t, h, state, a, noise, work,
                stack, a_bar, roots, increment, base, signs):
    """Kloeden & Platen's explicit order 2.0 weak scheme (module docstring)."""
    m = a.shape[0]
    bad = _clipped_propensities(data, x, work, p, t, stack, a)
    if bad >= 0:
        return bad
    _fill_random(state, noise, signs)
    root_h = math.sqrt(h)
    for j in range(m):
        roots[j] = math.sqrt(a[j])
        noise[j] *= root_h  # dW_j
    # Supporting value for the drift: Y + a h + sum_j b^j dW^j.
    base[:] = x
    for j in range(m):
        increment[j] = a[j] * h
    _add_channels(data, base, increment)
    bar = x.copy()
    for j in range(m):
        increment[j] = a[j] * h + roots[j] * noise[j]
    _add_channels(data, bar, increment)
    bad = _clipped_propensities(data, bar, work, p, t + h, stack, a_bar)
    if bad >= 0:
        return bad
    for j in range(m):
        increment[j] = 0.5 * (a[j] + a_bar[j]) * h
    # R^j terms at base = Y + a h.
    for i in range(base.shape[0]):
        work[i] = max(base[i], 0.0)
    for j in range(m):
        plus = _shifted_root(data, j, j, 1.0, roots[j] * root_h, base, work, p, t + h, stack)
        minus = _shifted_root(data, j, j, -1.0, roots[j] * root_h, base, work, p, t + h,
                              stack)
        increment[j] += 0.25 * (plus + minus + 2.0 * roots[j]) * noise[j]
        increment[j] += 0.25 * (plus - minus) * (noise[j] * noise[j] - h) / root_h
    # U^r terms at Y, over the dependency graph (j reads a species that r changes).
    for i in range(x.shape[0]):
        work[i] = max(x[i], 0.0)
    for r in range(m):
        for q in range(data.dependents_ptr[r], data.dependents_ptr[r + 1]):
            j = data.dependents[q]
            if j == r:
                continue
            plus = _shifted_root(data, j, r, 1.0, roots[r] * root_h, x, work, p, t, stack)
            minus = _shifted_root(data, j, r, -1.0, roots[r] * root_h, x, work, p, t, stack)
            levy = h * pair_orientation[q] * signs[pair_index[q]]
            increment[j] += 0.25 * (plus + minus - 2.0 * roots[j]) * noise[j]
            increment[j] += 0.25 * (plus - minus) * (noise[j] * noise[r] + levy) / root_h
    _add_channels(data, x, increment)
    return -1


# -- trajectories --------------------------------------------------------------------------------
@numba.njit(cache=True)
def _trajectory(data, output_program, pair_index, pair_orientation, n_pairs, x0, p, times,
                dt, method, state, out):
    """One CLE path; fills ``out`` (n_times, n_columns). Returns (status, steps,
    clipped steps, failing channel, failure time)."""
    n_species = x0.shape[0]
    m = data.kind.shape[0]
    x = x0.copy()
    a = np.zeros(m)
    noise = np.zeros(m)
    work = np.zeros(n_species)
    stack = np.empty(data.stack_size)
    a_bar = np.zeros(m)
    roots = np.zeros(m)
    increment = np.zeros(m)
    base = np.zeros(n_species)
    signs = np.zeros(n_pairs)
    t = times[0]
    steps = 0
    clipped = 0
    _record(data, output_program, x, p, t, out[0])
    for k in range(1, times.shape[0]):
        target = times[k]
        while t < target:
            h = dt
            if t + h >= target - 1e-9 * dt:
                h = target - t
            if method == 0:
                bad = _euler_step(data, x, p, t, h, state, a, noise, work, stack)
            else:
                bad = _weak2_step(data, pair_index, pair_orientation, x, p, t, h, state, a,
                                  noise, work, stack, a_bar, roots, increment, base, signs)
            if bad >= 0:
                return _BAD_PROPENSITY, steps, clipped, bad, t
            t = target if h == target - t else t + h
            steps += 1
            negative = False
            for i in range(n_species):
                if x[i] < 0.0:
                    x[i] = 0.0
                    negative = True
            if negative:
                clipped += 1
        _record(data, output_program, x, p, t, out[k])
    return _OK, steps, clipped, -1, t


@numba.njit(cache=True)
def _run_trajectory(data, output_program, pair_index, pair_orientation, n_pairs, x0, p, times,
                    dt, method, states, out, report, i):
    """Trajectory ``i`` of a block into ``out[i]`` and ``report[i]``."""
    status, steps, clipped, channel, when = _trajectory(
        data, output_program, pair_index, pair_orientation, n_pairs, x0, p, times, dt,
        method, states[i], out[i])
    report[i, 0] = status
    report[i, 1] = steps
    report[i, 2] = clipped
    report[i, 3] = channel
    report[i, 4] = when


@numba.njit(cache=True, parallel=True)
def _ensemble(data, output_program, pair_index, pair_orientation, n_pairs, x0, p, times, dt,
              method, states, out, report):
    for i in prange(states.shape[0]):
        _run_trajectory(data, output_program, pair_index, pair_orientation, n_pairs, x0, p,
                        times, dt, method, states, out, report, i)


@numba.njit(cache=True)
def _ensemble_serial(data, output_program, pair_index, pair_orientation, n_pairs, x0, p, times,
                     dt, method, states, out, report):
    """:func:`_ensemble` on the calling thread only, for Dask tasks where numba's threading
    layer is not thread-safe (see ``ensemble.task_may_use_parallel_kernel``)."""
    for i in range(states.shape[0]):
        _run_trajectory(data, output_program, pair_index, pair_orientation, n_pairs, x0, p,
                        times, dt, method, states, out, report, i)


# -- set-up --------------------------------------------------------------------------------------
def levy_pairs(dependents_ptr: np.ndarray, dependents: np.ndarray):
    """Index the unordered channel pairs {r, j} of the dependency graph.

    Returns
    -------
    pair_index : ndarray of int, shape (n_dependency_entries,)
        Pair of each entry r -> j (-1 when j == r).
    pair_orientation : ndarray, shape (n_dependency_entries,)
        +1 when r < j, -1 otherwise, so that V^{r,j} = -V^{j,r}.
    n_pairs : int
    """
    pair_index = np.full(len(dependents), -1, dtype=np.int64)
    orientation = np.zeros(len(dependents))
    pairs: dict[tuple[int, int], int] = {}
    for r in range(len(dependents_ptr) - 1):
        for q in range(dependents_ptr[r], dependents_ptr[r + 1]):
            j = int(dependents[q])
            if j == r:
                continue
            key = (min(r, j), max(r, j))
            pair_index[q] = pairs.setdefault(key, len(pairs))
            orientation[q] = 1.0 if r < j else -1.0
    return pair_index, orientation, len(pairs)


def default_step(network: Network, times: np.ndarray) -> float:
    """dt = DT_FACTOR / rho, model time units.

    rho is the fastest relaxation rate along the rate equations' solution at ``times``
    (n_times,): the largest row sum of |J| (J = S da/dx, exact), an upper bound of J's
    spectral radius; only when J vanishes at every output time the turnover
    sum_j |S_ij| a_j / max(x_i, 1) is used.
    """
    from .deterministic import simulate_deterministic
    from .lna import derivatives

    p = network.parameter_values
    compiled = compile_network(network)
    stoichiometry = np.asarray(network.stoichiometry, dtype=float)
    n_species = len(network.species)
    states = simulate_deterministic(network, times).counts[:, :n_species]
    fastest = {"jacobian": 0.0, "turnover": 0.0}
    with np.errstate(all="ignore"):
        for t, x in zip(times, states):
            rates = compiled.propensities(x, t, deterministic=True)
            jacobian = derivatives(network).propensity_jacobian(x, p, t, len(rates), n_species)
            turnover = (np.abs(stoichiometry) @ np.abs(rates)) / np.maximum(np.abs(x), 1.0)
            for name, value in (("jacobian", np.abs(stoichiometry @ jacobian).sum(axis=1)),
                                ("turnover", turnover)):
                value = float(np.nanmax(value, initial=0.0))
                if np.isfinite(value):
                    fastest[name] = max(fastest[name], value)
    rho = fastest["jacobian"] or fastest["turnover"]
    if not rho > 0:
        raise OptionsError("no reaction is active along the rate equations, so no step size "
                           "can be derived: pass dt= explicitly")
    return DT_FACTOR / rho


def check_cle_support(network: Network) -> None:
    """Raise UnsupportedFeatureError for constructs the CLE does not simulate."""
    refuse_randomness(network, "simulate_cle")
    refuse_continuous(network, "simulate_cle")
    if network.events:
        raise UnsupportedFeatureError(
            "events", network.events[0].id, analysis="simulate_cle",
            hint="Use simulate_ssa (exact events) or simulate_deterministic.")
    for reaction in network.reactions:
        if reaction.burst is not None:
            raise UnsupportedFeatureError(
                "a translational burst", reaction.id, analysis="simulate_cle",
                hint="The CLE's one Wiener process per channel cannot carry a random burst "
                     "size; use simulate_ssa or solve_cme (exact), or solve_lna (its "
                     "diffusion uses E[B^2]).")


def simulate_cle(network: Network, times, *, n_trajectories: int = 1000,
                 seed: int | None = None, dt: float | None = None, method: str = "euler",
                 n_jobs: int | None = None, progress: bool = False,
                 client=None, outputs=None) -> EnsembleResult:
    """Simulate the chemical Langevin equation for an ensemble of trajectories.

    Parameters
    ----------
    network : Network
    times : array_like, shape (n_times,)
        Output times (model time units); the first is the start time.
    n_trajectories : int
    seed : int, optional
        Seed of the ``SeedSequence`` giving one stream per trajectory.
    dt : float, optional
        Step size (model time units); default in the module docstring.
    method : str
        ``"euler"`` or ``"weak2"`` (see ``METHODS``).
    n_jobs : int, optional
        Threads (default: all cores); results do not depend on it.
    progress : bool
        Show a progress bar over blocks of trajectories.
    client : dask.distributed.Client, optional
        Run blocks of trajectories as tasks on this Dask cluster; the same seed gives
        the same ensemble whatever the number of workers.
    outputs : list of str, optional
        Parameters, compartments or rule targets to report beside the species
        (``network.with_outputs(outputs)``).
        Values in model units.

    Returns
    -------
    EnsembleResult
        ``method="cle"``; continuous molecule counts at ``times``, shape
        (n_trajectories, n_times, n_columns). ``n_events`` holds the steps taken per
        trajectory; ``run_info`` has ``dt``, ``clipped_steps`` and ``clipped_fraction``.
    """
    network = network.with_outputs(outputs)
    times = _check_times(times)
    if method not in METHODS:
        raise OptionsError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if not (isinstance(n_trajectories, (int, np.integer)) and n_trajectories >= 1):
        raise OptionsError(f"n_trajectories must be a positive integer, got {n_trajectories!r}")
    check_cle_support(network)
    if dt is None:
        dt = default_step(network, times)
    if not (np.isfinite(dt) and dt > 0):
        raise OptionsError(f"dt must be a positive number of time units, got {dt!r}")
    compiled = compile_network(network)
    started = wallclock.perf_counter()
    streams = trajectory_streams(seed, int(n_trajectories))
    threads = thread_count(n_jobs)
    data = compiled.data
    shared = (compiled, levy_pairs(data.dependents_ptr, data.dependents),
              network.initial_counts, times, float(dt), METHODS[method])
    if client is not None:
        parts = map_blocks(_cle_task, shared,
                           [(streams[a:b],) for a, b in dask_blocks(n_trajectories, client)],
                           client=client, progress=progress, description="CLE")
        out, report = concatenate(parts)
    else:
        n_columns = len(network.species) + len(network.outputs)
        out = np.zeros((n_trajectories, len(times), n_columns))
        report = np.zeros((n_trajectories, 5))
        with numba_threads(threads):
            for start, stop in local_blocks(n_trajectories, _BLOCK, progress, "CLE"):
                run_block(*shared, streams[start:stop], out[start:stop], report[start:stop])
    _raise_failures(network, report)
    steps = report[:, 1].astype(np.int64)
    clipped = int(report[:, 2].sum())
    return EnsembleResult(network, times, out, steps, method="cle", run_info={
        "algorithm": method, "seed": seed, "n_trajectories": int(n_trajectories),
        "dt": float(dt), "threads": threads, "dask": client is not None,
        "clipped_steps": clipped,
        "clipped_fraction": clipped / max(int(steps.sum()), 1),
        "wall_time": wallclock.perf_counter() - started})


def run_block(compiled: CompiledNetwork, pairs: tuple, x0: np.ndarray, times: np.ndarray,
              dt: float, method_code: int, streams: np.ndarray, out: np.ndarray,
              report: np.ndarray, parallel: bool = True) -> None:
    """Simulate one trajectory per stream into ``out``/``report`` (views).

    Parameters
    ----------
    pairs : tuple
        :func:`levy_pairs` of the network's dependency graph.
    streams : ndarray of uint64, shape (n, 4)
        xoshiro256+ states, one per trajectory (not modified).
    out : ndarray, shape (n, n_times, n_species + n_outputs)
    report : ndarray, shape (n, 5)
        (status, steps, clipped steps, failing channel, failure time) per trajectory.
    parallel : bool
        Spread the block over numba's threads; False runs it on the calling thread.
    """
    pair_index, orientation, n_pairs = pairs
    kernel = _ensemble if parallel else _ensemble_serial
    kernel(compiled.data, compiled.output_program, pair_index, orientation, n_pairs, x0,
           compiled.parameter_vector(), times, dt, method_code, streams.copy(), out, report)


def _cle_task(compiled: CompiledNetwork, pairs, x0, times, dt, method_code, streams):
    """One Dask task: a block of trajectories on one worker thread (the unit of
    parallelism on a cluster); returns (out, report)."""
    n_columns = len(compiled.network.species) + len(compiled.network.outputs)
    out = np.zeros((len(streams), len(times), n_columns))
    report = np.zeros((len(streams), 5))
    run_block(compiled, pairs, x0, times, dt, method_code, streams, out, report,
              parallel=task_may_use_parallel_kernel())
    return out, report


def _raise_failures(network: Network, report: np.ndarray) -> None:
    failed = np.nonzero(report[:, 0] != _OK)[0]
    if not len(failed):
        return
    channel, when = int(report[failed[0], 3]), report[failed[0], 4]
    reaction = network.reactions[channel].id if 0 <= channel < len(network.reactions) else "?"
    raise AnalysisError(
        f"CLE stopped in {len(failed)} of {len(report)} trajectories: the propensity of "
        f"reaction '{reaction}' was negative or NaN at t={when:g} on a non-negative state; "
        "its kinetic law is not a valid propensity there.")
