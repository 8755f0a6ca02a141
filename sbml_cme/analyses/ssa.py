"""Exact stochastic simulation (Gillespie) of a Network, compiled and parallel.

Methods (``METHODS``):

- ``"direct"``: Gillespie's direct method; propensities updated through the dependency
  graph, total re-summed every step (no drift), linear search. Best for small networks.
- ``"tree"``: optimized direct method: dependency graph plus a binary sum tree, so
  selection and update cost O(log M) per event; per-event cost barely grows with size.
- ``"auto"`` (the default) picks one of the two for the network from the measured
  crossover (:func:`choose_method`, docs/performance.md); the ensemble is then exactly
  that method's.

Both are exact. Events: a trigger is checked after every reaction firing and at every
time at which a comparison of time with constants changes value (``time >= t0``
solved exactly, others such as ``sin(10 time) < 0`` by ``kinetics.trigger_crossings``,
to 1e-13 relative); delays, priorities (document order breaks
ties), persistence and ``useValuesFromTriggerTime`` are honoured. Random numbers come
from xoshiro256+ streams, one per trajectory, seeded from ``numpy.random.SeedSequence``,
so a seed gives the same ensemble whatever the number of threads or blocks.
"""

from __future__ import annotations

import math
import os
import warnings
import time as wallclock
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from ..errors import AnalysisError, OptionsError, UnsupportedFeatureError, WorkLimitError
from ..kinetics import (CompiledNetwork, channel_propensity, check_time_in_triggers,
                        compile_network, mass_action_propensity, refuse_continuous, run_program,
                        with_trigger_crossings)
from ..lawgen import call_law, law_address
from ..network import Network
from ..results import EnsembleResult
from .deterministic import _check_times
from .draws import _xoshiro, sample
from .ensemble import (concatenate, dask_blocks, local_blocks, map_blocks, numba_threads,
                       run_until_interrupted,
                       task_may_use_parallel_kernel, thread_count)

METHODS = {"direct": 0, "tree": 1}

#: ``"auto"`` takes ``tree`` when (d + 1) log2(M) < AUTO_TREE_FACTOR * M, for M channels
#: and a mean fan-out of d propensities updated per firing. Per event, direct costs about
#: c_sum * M (re-sum, linear search) and tree c_tree * (d + 1) log2(M) (one leaf-to-root
#: path per update). benchmarks/ssa_method_crossover.py measured 31 networks of 2 to 5000
#: channels and fan-out 1 to 1250, twice: least squares c_sum / c_tree = 0.68 and 0.52;
#: with 0.5 the rule never lost more than 1.18x against the faster method (the misses are
#: networks of about 100 channels, where the two are within 20 %). Rerun with compiled
#: general laws (issue 17): fitted 0.58, all 27 cases right for 0.34 to 0.64;
#: docs/performance.md.
AUTO_TREE_FACTOR = 0.5

# Status codes returned by the kernel.
_OK, _NEGATIVE_PROPENSITY, _NEGATIVE_COUNT, _EVENT_LOOP, _QUEUE_FULL, _BAD_ASSIGNMENT = range(6)
_BAD_DRAW = 16  # a distrib draw got invalid parameters or impossible truncation bounds
_EVENT_BUDGET = 64  # a trajectory fired more than max_events reaction events
_PENDING_CAPACITY = 256
_BLOCK = 64  # trajectories per parallel block (progress and scale-out granularity)

#: Default work limit of one ensemble, in expected reaction events (a few minutes on one core).
MAX_EVENTS = 1e9
#: Right-hand-side evaluations the rate equations may take to estimate the work.
_ESTIMATE_EVALUATIONS = 20_000


# -- random numbers: xoshiro256+ (sbml_cme.analyses.draws) --------------------------------
@numba.njit(cache=True)
def _burst_size(data, j, u):
    """Burst size of channel ``j`` from one uniform ``u`` in (0, 1], by inversion.

    Geometric: B = floor(log u / log q), so P(B >= k) = P(u <= q^k) = q^k. Finite:
    the smallest k with u <= C_k (binary search of the cumulative table)."""
    start = data.burst_ptr[j]
    end = data.burst_ptr[j + 1]
    if start == end:
        return math.floor(math.log(u) / data.burst_log_ratio[j])
    lo = start
    hi = end - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if u <= data.burst_cumulative[mid]:
            hi = mid
        else:
            lo = mid + 1
    return float(lo - start)


# -- events ---------------------------------------------------------------------------------
@numba.njit(cache=True)
def _evaluate(data, bounds, index, x, p, t, stack):
    return run_program(data.ops, data.args, data.constants, bounds[index, 0],
                       bounds[index, 1], x, p, t, stack)


@numba.njit(cache=True)
def _apply_assignments(data, event, values, assignment_ptr, assignment_target,
                       assignment_is_species, x, p, assignment_whole):
    for k in range(assignment_ptr[event], assignment_ptr[event + 1]):
        value = values[k - assignment_ptr[event]]
        if assignment_is_species[k] and not assignment_whole[k]:
            # A species in no reaction holds any real value (e.g. a distrib draw).
            if value != value:
                return _BAD_ASSIGNMENT
            x[assignment_target[k]] = value
        elif assignment_is_species[k]:
            count = math.floor(value + 0.5)
            if not (count >= 0.0):
                return _BAD_ASSIGNMENT
            x[assignment_target[k]] = count
        else:
            p[assignment_target[k]] = value
    return _OK


@numba.njit(cache=True)
def _draw_group(data, random, group, x, p, t, stack, state):
    """Sample the distrib draws of ``group`` (0: parameters, 1 + e: event e) into their
    parameter slots, from the trajectory's stream ``state``."""
    if random.draw_ptr[group] == random.draw_ptr[group + 1]:
        return _OK
    arguments = np.zeros(4)
    for d in range(random.draw_ptr[group], random.draw_ptr[group + 1]):
        n_parameters = random.draw_n_parameters[d]
        truncated = random.draw_truncated[d]
        for k in range(n_parameters + (2 if truncated else 0)):
            arguments[k] = run_program(data.ops, data.args, data.constants,
                                       random.draw_argument[d, k, 0],
                                       random.draw_argument[d, k, 1], x, p, t, stack)
        value = sample(random.draw_code[d], n_parameters, arguments, truncated, state)
        if value != value:
            return _BAD_DRAW
        p[random.draw_slot[d]] = value
    return _OK


@numba.njit(cache=True)
def _draw_parameters(data, random, x, p, t, stack, state):
    """Draw the per-trajectory parameters (distrib initial assignments)."""
    status = _draw_group(data, random, int(0), x, p, t, stack, state)  # non-literal 0
    if status != _OK:
        return status
    for i in range(random.initial_target.shape[0]):
        p[random.initial_target[i]] = run_program(
            data.ops, data.args, data.constants, random.initial_program[i, 0],
            random.initial_program[i, 1], x, p, t, stack)
    return _OK


@numba.njit(cache=True)
def _advance_clocks(random, p, elapsed):
    """Clock parameters (rate rules) advance by rate * elapsed."""
    for c in range(random.clock_index.shape[0]):
        p[random.clock_index[c]] += random.clock_rate[c] * elapsed


@numba.njit(cache=True)
def _next_crossing(data, random, x, p, t, stack):
    """(time, index) of the next trigger comparison on a clock to reach zero, if the
    state does not change before: difference + slope * (time - t) = 0."""
    best = math.inf
    which = -1
    for k in range(random.crossing_clock.shape[0]):
        difference = run_program(data.ops, data.args, data.constants,
                                 random.crossing_difference[k, 0],
                                 random.crossing_difference[k, 1], x, p, t, stack)
        slope = run_program(data.ops, data.args, data.constants, random.crossing_slope[k, 0],
                            random.crossing_slope[k, 1], x, p, t, stack)
        if slope != 0.0:
            wait = -difference / slope
            if wait > 0.0 and t + wait < best:
                best = t + wait
                which = k
    return best, which


@numba.njit(cache=True)
def _reach_crossing(data, random, k, x, p, t, stack):
    """Round-off guard at a clock crossing: move the clock by a few ulps, forward in its
    own direction, until comparison ``k`` has strictly passed zero (so ``>=`` and ``>``
    alike see the crossing)."""
    c = random.crossing_clock[k]
    index = random.clock_index[c]
    step = max(abs(p[index]), 1.0) * 2.0 ** -52
    if random.clock_rate[c] < 0.0:
        step = -step
    for _ in range(64):
        difference = run_program(data.ops, data.args, data.constants,
                                 random.crossing_difference[k, 0],
                                 random.crossing_difference[k, 1], x, p, t, stack)
        slope = run_program(data.ops, data.args, data.constants, random.crossing_slope[k, 0],
                            random.crossing_slope[k, 1], x, p, t, stack)
        if difference * slope > 0.0:
            return
        p[index] += step
        step *= 2.0


@numba.njit(cache=True)
def _process_events(data, trigger, delay, priority, flags, assignment_ptr, assignment_target,
                    assignment_is_species, assignment_program, x, p, t, t_check,
                    trigger_state, pending_time, pending_event, pending_values, n_pending,
                    stack, values, random, state):
    """Fire events whose trigger turned true; execute due pending events. Returns
    (status, changed, n_pending)."""
    n_events = trigger.shape[0]
    changed = False
    for _ in range(10000):
        for e in range(n_events):
            now = _evaluate(data, trigger, e, x, p, t_check, stack) != 0.0
            if now and not trigger_state[e]:
                if flags[e, 2]:  # values (and draws) from the trigger time
                    status = _draw_group(data, random, 1 + e, x, p, t, stack, state)
                    if status != _OK:
                        return status, changed, n_pending
                for k in range(assignment_ptr[e], assignment_ptr[e + 1]):
                    values[k - assignment_ptr[e]] = _evaluate(data, assignment_program, k, x,
                                                              p, t, stack)
                wait = 0.0
                if delay[e, 1] > delay[e, 0]:
                    wait = _evaluate(data, delay, e, x, p, t, stack)
                if n_pending >= pending_time.shape[0]:
                    return _QUEUE_FULL, changed, n_pending
                pending_time[n_pending] = t + wait
                pending_event[n_pending] = e
                for k in range(assignment_ptr[e + 1] - assignment_ptr[e]):
                    pending_values[n_pending, k] = values[k] if flags[e, 2] else math.nan
                n_pending += 1
            elif not now and trigger_state[e] and not flags[e, 0]:
                # A non-persistent event is cancelled when its trigger turns false.
                kept = 0
                for i in range(n_pending):
                    if pending_event[i] != e:
                        pending_time[kept] = pending_time[i]
                        pending_event[kept] = pending_event[i]
                        pending_values[kept] = pending_values[i]
                        kept += 1
                n_pending = kept
            trigger_state[e] = now
        # Execute the due event with the highest priority (document order on ties).
        chosen = -1
        best = -math.inf
        for i in range(n_pending):
            if pending_time[i] <= t:
                e = pending_event[i]
                rank = -math.inf
                if priority[e, 1] > priority[e, 0]:
                    rank = _evaluate(data, priority, e, x, p, t, stack)
                if chosen < 0 or rank > best or (rank == best and e < pending_event[chosen]):
                    chosen = i
                    best = rank
        if chosen < 0:
            return _OK, changed, n_pending
        e = pending_event[chosen]
        count = assignment_ptr[e + 1] - assignment_ptr[e]
        if not flags[e, 2]:  # values (and draws) from the execution time
            status = _draw_group(data, random, 1 + e, x, p, t, stack, state)
            if status != _OK:
                return status, changed, n_pending
        for k in range(count):
            if flags[e, 2]:
                values[k] = pending_values[chosen, k]
            else:
                values[k] = _evaluate(data, assignment_program, assignment_ptr[e] + k, x, p,
                                      t, stack)
        for i in range(chosen, n_pending - 1):
            pending_time[i] = pending_time[i + 1]
            pending_event[i] = pending_event[i + 1]
            pending_values[i] = pending_values[i + 1]
        n_pending -= 1
        status = _apply_assignments(data, e, values, assignment_ptr, assignment_target,
                                    assignment_is_species, x, p, random.assignment_whole)
        if status != _OK:
            return status, changed, n_pending
        changed = True
    return _EVENT_LOOP, changed, n_pending


# -- the trajectory kernel ---------------------------------------------------------------------
@numba.njit(cache=True)
def _refresh_all(data, laws, x, p, t, a, tree, leaves, stack):
    for j in range(a.shape[0]):
        if laws is not None:
            if laws != 0 and data.kind[j] == 1:
                a[j] = call_law(laws, j, x, p, t)
            else:  # bool(False), not False: one specialisation (see kinetics.net_rates)
                a[j] = channel_propensity(data, j, x, p, t, bool(False), stack)
        else:  # no general channel: numba prunes the interpreter (see _ensemble)
            a[j] = mass_action_propensity(data, j, x, bool(False))
        if not (a[j] >= 0.0):
            return j
    if tree is not None:
        tree[:] = 0.0
        for j in range(a.shape[0]):  # a loop, not a slice copy: see _record
            tree[leaves + j] = a[j]
        for i in range(leaves - 1, 0, -1):
            tree[i] = tree[2 * i] + tree[2 * i + 1]
    return -1


@numba.njit(cache=True)
def _record(data, output_program, x, p, t, row):
    n = x.shape[0]
    # A loop, not ``row[:n] = x``: an array-to-slice copy makes numba compile its
    # shape-mismatch error message (string formatting), seconds of a cold start.
    for i in range(n):
        row[i] = x[i]
    if output_program is not None:  # None: no outputs (numba prunes the branch)
        if output_program.shape[0] > 0:
            stack = np.empty(data.stack_size)
            for k in range(output_program.shape[0]):
                row[n + k] = _evaluate(data, output_program, k, x, p, t, stack)


@numba.njit(cache=True, nogil=True)
def _ensemble(data, trigger, delay, priority, flags, assignment_ptr, assignment_target,
              assignment_is_species, assignment_program, output_program, thresholds, random,
              laws, bursts, x0, p0, times, states, tree, out, report, max_fired):
    """Simulate ``states.shape[0]`` trajectories one after the other, trajectory ``i``
    from stream ``states[i]`` into ``out[i]`` (n_times, n_species + n_outputs), with
    ``report[i]`` = (status, n_fired, failing channel or species, failure time). A
    trajectory stops with ``_EVENT_BUDGET`` once more than ``max_fired`` reactions have
    fired.

    ``laws`` (the address of the compiled general laws, 0 for the interpreter) is None
    for a network without general channels, ``tree`` (the sum tree, :func:`_sum_tree`)
    None for the direct method, ``bursts`` (``data.burst_species``) None for
    one without bursts, ``trigger`` None for one without events, ``random`` None for one
    without events, draws, clocks or crossings, ``output_program`` None without outputs:
    numba prunes the ``is None`` branches at compile time, so the plain specialisation
    (most networks) compiles none of the event, draw, burst and crossing machinery (cold
    start, docs/performance.md). The code run is otherwise the same.

    Serial and ``nogil``: :func:`run_block` runs slices of a block on Python threads.
    One kernel, with the loop over trajectories inside, rather than a parallel layer or
    a per-trajectory callee: each numba layer re-optimises and re-emits all the code
    below it (docs/performance.md, cold start). A failure ends its trajectory by
    ``break`` with ``status`` set, where a per-trajectory function would ``return``.
    """
    n_channels = data.kind.shape[0]
    n_events = 0
    if trigger is not None:
        n_events = trigger.shape[0]
    x = np.empty(x0.shape[0])
    p = np.empty(p0.shape[0])
    a = np.zeros(n_channels)
    leaves = 1
    while leaves < max(n_channels, 1):
        leaves *= 2
    stack = np.empty(data.stack_size)
    max_assignments = 1
    if trigger is not None:
        for e in range(n_events):
            max_assignments = max(max_assignments, assignment_ptr[e + 1] - assignment_ptr[e])
    values = np.empty(max_assignments)
    pending_time = np.empty(_PENDING_CAPACITY)
    pending_event = np.empty(_PENDING_CAPACITY, dtype=np.int64)
    pending_values = np.empty((_PENDING_CAPACITY, max_assignments))
    trigger_state = np.empty(n_events, dtype=np.bool_)
    # Arrays of the hot loop, bound once: calling a function with arrays (or the
    # KernelData tuple) per event costs atomic reference-count updates that dominated
    # the per-event time, so the loop below inlines the propensity, the random number
    # generator and the sum-tree operations by hand.
    kind = data.kind
    rate_constant = data.rate_constant
    reactant_ptr = data.reactant_ptr
    reactant_species = data.reactant_species
    reactant_order = data.reactant_order
    falling = data.falling
    program_start = data.program_start
    program_end = data.program_end
    ops = data.ops
    args = data.args
    constants = data.constants
    change_ptr = data.change_ptr
    change_species = data.change_species
    change_amount = data.change_amount
    dependents_ptr = data.dependents_ptr
    dependents = data.dependents
    n_thresholds = thresholds.shape[0]
    if random is not None:
        clock_index = random.clock_index
        clock_rate = random.clock_rate
    else:
        clock_index = np.empty(0, dtype=np.int64)
        clock_rate = np.empty(0)
    n_clocks = clock_index.shape[0]
    n_times = times.shape[0]
    t_end = times[-1]
    for trajectory in range(states.shape[0]):
        state = states[trajectory]
        row = out[trajectory]
        for i in range(x0.shape[0]):
            x[i] = x0[i]
        for i in range(p0.shape[0]):
            p[i] = p0[i]
        n_pending = int(0)  # not a literal: one _process_events specialisation
        if trigger is not None:
            for e in range(n_events):
                trigger_state[e] = flags[e, 1]
        t = times[0]
        n_fired = 0
        status = _OK
        failing = -1
        threshold_index = 0
        while threshold_index < thresholds.shape[0] and thresholds[threshold_index] < t:
            threshold_index += 1
        n_crossings = 0
        if random is not None:
            if random.initial_target.shape[0] > 0:
                status = _draw_parameters(data, random, x, p, t, stack, state)
            n_crossings = random.crossing_clock.shape[0]
        if trigger is not None:
            if n_events > 0 and status == _OK:
                status, changed, n_pending = _process_events(
                    data, trigger, delay, priority, flags, assignment_ptr, assignment_target,
                    assignment_is_species, assignment_program, x, p, t, t, trigger_state,
                    pending_time, pending_event, pending_values, n_pending, stack, values,
                    random, state)
        if status == _OK:
            failing = _refresh_all(data, laws, x, p, t, a, tree, leaves, stack)
            if failing >= 0:
                status = _NEGATIVE_PROPENSITY
        k = 0
        if status != _OK:
            k = n_times  # the trajectory failed before its first step
        s0 = state[0]
        s1 = state[1]
        s2 = state[2]
        s3 = state[3]
        while k < n_times and times[k] <= t:
            _record(data, output_program, x, p, times[k], row[k])
            k += 1
        while k < n_times:
            if tree is not None:
                total = tree[1]
            else:
                total = 0.0
                for j in range(n_channels):
                    total += a[j]
            u, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
            state[0] = s0
            state[1] = s1
            state[2] = s2
            state[3] = s3
            tau = -math.log(u) / total if total > 0.0 else math.inf
            t_next = t + tau
            t_discrete = math.inf
            if threshold_index < n_thresholds:
                t_discrete = thresholds[threshold_index]
            for i in range(n_pending):
                t_discrete = min(t_discrete, pending_time[i])
            crossing = -1
            if random is not None:
                if n_crossings > 0:
                    t_crossing, crossing = _next_crossing(data, random, x, p, t, stack)
                    if t_crossing < t_discrete:
                        t_discrete = t_crossing
                    else:
                        crossing = -1
            if t_discrete <= t_next and t_discrete <= t_end:
                # Memoryless: advance to the discrete time and discard the sampled tau.
                while k < n_times and times[k] < t_discrete:
                    _record(data, output_program, x, p, times[k], row[k])
                    k += 1
                if random is not None:
                    _advance_clocks(random, p, t_discrete - t)
                t = t_discrete
                if random is not None:
                    if crossing >= 0:
                        _reach_crossing(data, random, crossing, x, p, t, stack)
                while threshold_index < thresholds.shape[0] and thresholds[threshold_index] <= t:
                    threshold_index += 1
                if trigger is not None:
                    for t_check in (t, np.nextafter(t, math.inf)):
                        status, changed, n_pending = _process_events(
                            data, trigger, delay, priority, flags, assignment_ptr,
                            assignment_target, assignment_is_species, assignment_program, x,
                            p, t, t_check, trigger_state, pending_time, pending_event,
                            pending_values, n_pending, stack, values, random, state)
                        if status != _OK:
                            break
                    if status != _OK:
                        break
                s0 = state[0]  # event assignments may have drawn from the stream
                s1 = state[1]
                s2 = state[2]
                s3 = state[3]
                failing = _refresh_all(data, laws, x, p, t, a, tree, leaves, stack)
                if failing >= 0:
                    status = _NEGATIVE_PROPENSITY
                    break
                while k < n_times and times[k] <= t:
                    _record(data, output_program, x, p, times[k], row[k])
                    k += 1
                continue
            if t_next > t_end:
                while k < n_times:
                    _record(data, output_program, x, p, times[k], row[k])
                    k += 1
                break
            while k < n_times and times[k] < t_next:
                _record(data, output_program, x, p, times[k], row[k])
                k += 1
            for c in range(n_clocks):  # = _advance_clocks(random, p, t_next - t), inlined
                p[clock_index[c]] += clock_rate[c] * (t_next - t)
            t = t_next
            u, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
            state[0] = s0
            state[1] = s1
            state[2] = s2
            state[3] = s3
            r = u * total
            if tree is not None:
                i = 1
                while i < leaves:
                    left = 2 * i
                    if r < tree[left]:
                        i = left
                    else:
                        r -= tree[left]
                        i = left + 1
                j = i - leaves
                if j >= n_channels or a[j] <= 0.0:
                    j = n_channels - 1
                    while j > 0 and a[j] <= 0.0:
                        j -= 1
            else:
                j = 0
                while j < n_channels - 1 and r >= a[j]:
                    r -= a[j]
                    j += 1
                while a[j] <= 0.0 and j > 0:  # rounding at the end of the list
                    j -= 1
            for q in range(change_ptr[j], change_ptr[j + 1]):
                species = change_species[q]
                x[species] += change_amount[q]
                if x[species] < 0.0:
                    status = _NEGATIVE_COUNT
                    failing = j
                    break
            if status != _OK:
                break
            if bursts is not None:  # None: no bursts (pruned at compile time)
                if bursts[j] >= 0:
                    u, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
                    state[0] = s0
                    state[1] = s1
                    state[2] = s2
                    state[3] = s3
                    x[bursts[j]] += _burst_size(data, j, u)
            n_fired += 1
            if n_fired > max_fired:
                status = _EVENT_BUDGET
                break
            for q in range(dependents_ptr[j], dependents_ptr[j + 1]):
                d = dependents[q]
                # = channel_propensity(data, d, x, p, t, False, stack), inlined
                mass_action = True
                value = 0.0
                if laws is not None:  # None: no general channel (pruned at compile time)
                    if kind[d] == 1:
                        mass_action = False
                        if laws != 0:  # the network's compiled general laws (sbml_cme.lawgen)
                            value = call_law(laws, d, x, p, t)
                        else:
                            value = run_program(ops, args, constants, program_start[d],
                                                program_end[d], x, p, t, stack)
                if mass_action:
                    value = rate_constant[d]
                    for m in range(reactant_ptr[d], reactant_ptr[d + 1]):
                        n = x[reactant_species[m]]
                        order = reactant_order[m]
                        if not falling[d]:
                            for _ in range(order):
                                value *= n
                        else:
                            for i in range(order):
                                value *= max(n - i, 0.0)
                a[d] = value
                if not (value >= 0.0):
                    status = _NEGATIVE_PROPENSITY
                    failing = d
                    break
                if tree is not None:  # update the leaf and its ancestors
                    i = leaves + d
                    tree[i] = value
                    i //= 2
                    while i >= 1:
                        tree[i] = tree[2 * i] + tree[2 * i + 1]
                        i //= 2
            if status != _OK:
                break
            if trigger is not None:
                if n_events > 0:
                    status, changed, n_pending = _process_events(
                        data, trigger, delay, priority, flags, assignment_ptr,
                        assignment_target, assignment_is_species, assignment_program, x, p, t,
                        t, trigger_state, pending_time, pending_event, pending_values,
                        n_pending, stack, values, random, state)
                    if status != _OK:
                        break
                    s0 = state[0]  # event assignments may have drawn from the stream
                    s1 = state[1]
                    s2 = state[2]
                    s3 = state[3]
                    if changed:
                        failing = _refresh_all(data, laws, x, p, t, a, tree, leaves, stack)
                        if failing >= 0:
                            status = _NEGATIVE_PROPENSITY
                            break
        report[trajectory, 0] = status
        report[trajectory, 1] = n_fired
        report[trajectory, 2] = failing
        report[trajectory, 3] = t



# -- public API -------------------------------------------------------------------------------
def check_ssa_support(network: Network) -> None:
    """Raise UnsupportedFeatureError when the SSA cannot be exact for ``network``."""
    refuse_continuous(network, "simulate_ssa")
    for event in network.events:
        if event.execution_scales:
            raise UnsupportedFeatureError(
                "a delayed concentration assignment in a variable compartment", event.id,
                analysis="simulate_ssa", hint="simulate_deterministic runs it.")
    if network.uses_time:
        reaction = next(r.id for r in network.reactions
                        if "<time>" in {s.name for s in r.rate_law.propensity().free_symbols})
        raise UnsupportedFeatureError(
            "a propensity that depends explicitly on time", reaction, analysis="simulate_ssa",
            hint="The direct and tree methods need propensities that change only when the "
                 "state does; method='auto' or 'hybrid' integrates the time-dependent "
                 "hazard exactly.")
    check_time_in_triggers(network, "simulate_ssa")
    check_clock_readers(network)


def needs_hybrid(network: Network) -> bool:
    """True when the exact simulation of ``network`` integrates between jumps: a
    continuous part, or propensities that change with time itself (an explicit ``time``
    or a rate-rule parameter), whose hazard the hybrid kernel integrates exactly."""
    if network.has_continuous_part or network.uses_time:
        return True
    try:
        check_clock_readers(network)
    except UnsupportedFeatureError:
        return True
    return False


def check_clock_readers(network: Network) -> None:
    """Refuse propensities and rule outputs that read a clock parameter (a rate rule):
    they would change between reaction events, which the SSA cannot follow exactly."""
    clocks = {pid for pid, _ in network.clocks}
    readers = [(r.id, r.rate_law.propensity()) for r in network.reactions] + [
        (o.id, o.formula) for o in network.outputs]
    for element, expression in readers:
        read = clocks & {s.name for s in expression.free_symbols}
        if read:
            raise UnsupportedFeatureError(
                f"a kinetic law, assignment rule or output that reads the rate-rule parameter "
                f"'{sorted(read)[0]}'", element, analysis="simulate_ssa",
                hint="The direct and tree methods read rate-rule parameters in event triggers "
                     "and assignments only; method='auto' or 'hybrid' follows them.")


def whole_initial_counts(network: Network) -> np.ndarray:
    """Initial counts rounded to whole molecules, shape (n_species,); warns when the
    model's initial values are not whole numbers of molecules. Continuous species keep
    their real values."""
    counts = network.initial_counts
    continuous = np.array([s.continuous for s in network.species], dtype=bool)
    rounded = np.where(continuous, counts, np.floor(counts + 0.5))
    off = np.abs(counts - rounded) > 1e-6 * np.maximum(counts, 1.0)
    if off.any():
        names = ", ".join(np.array(network.species_ids)[off][:5])
        warnings.warn(f"initial counts of {names} are not whole numbers of molecules; "
                      "rounded to the nearest whole number", stacklevel=3)
    return rounded


def trajectory_streams(seed: int | None, n_trajectories: int) -> np.ndarray:
    """Independent xoshiro256+ states, shape (n_trajectories, 4) uint64, from ``seed``."""
    children = np.random.SeedSequence(seed).spawn(n_trajectories)
    states = np.array([child.generate_state(4, dtype=np.uint64) for child in children])
    states[np.all(states == 0, axis=1), 0] = 1  # the all-zero state is forbidden
    return states.reshape(n_trajectories, 4)


def choose_method(compiled: CompiledNetwork) -> tuple[str, str]:
    """The faster exact method for a compiled network, and why: ``(method, reason)``.

    ``tree`` when (d + 1) log2(M) < ``AUTO_TREE_FACTOR`` * M, for M channels and d the
    mean number of propensities the dependency graph updates per firing; else ``direct``.
    """
    n_channels = len(compiled.data.kind)
    fan_out = len(compiled.data.dependents) / max(n_channels, 1)
    tree_cost = (fan_out + 1) * math.log2(max(n_channels, 2))
    method = "tree" if tree_cost < AUTO_TREE_FACTOR * n_channels else "direct"
    relation = "<" if method == "tree" else ">="
    return method, (f"auto: {n_channels} channels, mean fan-out {fan_out:.1f}: "
                    f"(d+1)*log2(M) = {tree_cost:.3g} {relation} {AUTO_TREE_FACTOR:g}*M = "
                    f"{AUTO_TREE_FACTOR * n_channels:.3g}")


def pending_compilation(network: Network | None = None) -> list[str]:
    """The numba kernels that the next ``simulate_ssa`` (default path) would compile
    rather than load from numba's disk cache (missing or stale: a new install, a new numba
    or changed sources), and ``"general laws of <id>"`` when ``network``'s compiled laws
    (:mod:`sbml_cme.lawgen`) are not cached. Without ``network``, the kernels of a
    mass-action network; with one that has general laws, also the interpreter's kernels
    (work estimate). Empty when the call starts at once."""
    from .. import kinetics
    from ..lawgen import laws_cached

    compiled = None if network is None else compile_network(network, random_draws=True)
    kernels = [_ensemble]  # mass action: the work estimate runs in numpy (MassActionRates)
    if compiled is not None and kinetics.has_general_channels(compiled.data):
        kernels = [_ensemble, kinetics.all_propensities, kinetics.net_rates]
    pending = []
    for kernel in kernels:
        try:
            cached = bool(kernel._cache._cache_file._load_index())
        except Exception:  # noqa: BLE001 -- numba internals moved: say nothing is cached
            cached = False
        if not cached and not kernel.signatures:
            pending.append(f"{kernel.py_func.__module__}.{kernel.py_func.__name__}")
    if compiled is not None and not laws_cached(compiled):
        pending.append(f"general laws of {network.id or 'the model'}")
    return pending


def simulate_ssa(network: Network, times, *, n_trajectories: int = 1000, seed: int | None = None,
                 method: str = "auto", n_jobs: int | None = None,
                 progress: bool = False, client=None, outputs=None,
                 max_events: float = MAX_EVENTS) -> EnsembleResult:
    """Exact stochastic simulation of an ensemble of trajectories.

    Parameters
    ----------
    network : Network
    times : array_like, shape (n_times,)
        Output times (model time units); the first is the start time.
    n_trajectories : int
        Ensemble size.
    seed : int, optional
        Seed of the ``SeedSequence`` that gives one stream per trajectory; the same seed
        gives the same ensemble whatever ``n_jobs``.
    method : str
        ``"auto"`` (the faster of the two for this network, :func:`choose_method`, or
        ``"hybrid"`` when the network has a continuous part), ``"direct"`` or ``"tree"``
        (see module docstring), or ``"hybrid"``:
        :func:`~sbml_cme.analyses.hybrid.simulate_hybrid`. ``run_info["algorithm"]`` is
        the method run and ``run_info["method_reason"]`` why.
    n_jobs : int, optional
        Threads (default: all cores).
    progress : bool
        Show a progress bar over blocks of trajectories.
    client : dask.distributed.Client, optional
        Run blocks of trajectories as tasks on this Dask cluster (same numbers for the
        same seed, whatever the number of workers).
    outputs : list of str, optional
        Parameters, compartments or rule targets to report beside the species
        (``network.with_outputs(outputs)``).
        An event-assigned parameter changes along each trajectory.
    max_events : float
        Work limit: when :func:`expected_events` times ``n_trajectories`` exceeds it, the
        run is refused with :class:`WorkLimitError` before any simulation (raise it to
        take the run on knowingly). The output array must also fit in memory.

    Returns
    -------
    EnsembleResult
        States in molecule counts at ``times``, shape (n_trajectories, n_times, n_columns).
    """
    network = network.with_outputs(outputs)
    if method == "hybrid" or (method == "auto" and needs_hybrid(network)):
        return _simulate_hybrid(network, times, n_trajectories, seed, n_jobs, progress, client,
                                max_events)
    times = _check_times(times)
    if method not in {"auto", *METHODS}:
        raise OptionsError(f"method must be 'auto' or one of {sorted(METHODS)}, got "
                           f"{method!r}")
    if not (isinstance(n_trajectories, (int, np.integer)) and n_trajectories >= 1):
        raise OptionsError(f"n_trajectories must be a positive integer, got {n_trajectories!r}")
    check_ssa_support(network)
    compiled = with_trigger_crossings(compile_network(network, random_draws=True), times)
    method, reason = choose_method(compiled) if method == "auto" else (method, "requested")
    x0 = whole_initial_counts(network)
    check_ensemble_work(network, times, int(n_trajectories), max_events)
    started = wallclock.perf_counter()
    streams = trajectory_streams(seed, int(n_trajectories))
    n_columns = len(network.species) + len(network.outputs)
    out = np.zeros((n_trajectories, len(times), n_columns))
    report = np.zeros((n_trajectories, 4))
    threads = thread_count(n_jobs)
    if client is not None:
        parts = map_blocks(_ssa_task, (compiled, x0, times, METHODS[method], max_events),
                           [(streams[a:b],) for a, b in dask_blocks(n_trajectories, client)],
                           client=client, progress=progress, description="SSA")
        out, report = concatenate(parts)
    else:
        with numba_threads(threads):
            done = run_until_interrupted(
                local_blocks(n_trajectories, _BLOCK, progress, "SSA"),
                lambda start, stop: run_block(compiled, x0, times, streams[start:stop],
                                              METHODS[method], out[start:stop],
                                              report[start:stop], max_events),
                int(n_trajectories))
        out, report = out[:done], report[:done]
    _raise_failures(network, report, max_events)
    return EnsembleResult(network, times, out, report[:, 1].astype(np.int64), method="ssa",
                          run_info={"algorithm": method, "method_reason": reason,
                                    "seed": seed, "partial": len(out) < n_trajectories,
                                    "n_trajectories": len(out), "threads": threads,
                                    "dask": client is not None,
                                    "wall_time": wallclock.perf_counter() - started})


def _simulate_hybrid(network, times, n_trajectories, seed, n_jobs, progress, client,
                     max_events):
    """``simulate_ssa`` of a network with a continuous part: the exact PDMP."""
    from .hybrid import simulate_hybrid  # hybrid builds on this module

    if client is not None:
        raise OptionsError("the hybrid simulation (a network with a continuous part, or "
                           "method='hybrid') runs locally only; drop client=")
    return simulate_hybrid(network, times, n_trajectories=n_trajectories, seed=seed,
                           n_jobs=n_jobs, progress=progress, max_events=max_events)


def expected_events(network: Network, times, deterministic=None) -> float:
    """Expected reaction events of one SSA trajectory over ``times`` (n_times,): the total
    propensity (of the jump channels, when the network has a continuous part) integrated
    along the rate equations, and never less than the initial
    total propensity times the time span (a model that starts quiet can fire millions of
    events once its species build up).

    ``deterministic`` is a :class:`DeterministicResult` at ``times`` when the caller has
    one; otherwise the rate equations are solved here on a small evaluation budget (the
    initial-rate estimate stands when they cannot be). Returns ``inf`` when the
    propensities are not finite.
    """
    from .deterministic import simulate_deterministic

    times = np.asarray(times, dtype=float)
    compiled = compile_network(network, random_draws=True)
    span = float(times[-1] - times[0])
    jumps = network.jump_mask if network.has_continuous_part else slice(None)
    with np.errstate(all="ignore"):
        estimate = float(np.sum(
            compiled.propensities(network.initial_counts, float(times[0]))[jumps]))
        estimate *= span
    if not np.isfinite(estimate):
        return math.inf
    if deterministic is None and len(times) > 1 and span > 0:
        try:
            deterministic = simulate_deterministic(network, times,
                                                   max_evaluations=_ESTIMATE_EVALUATIONS)
        except (AnalysisError, UnsupportedFeatureError):
            deterministic = None
    if deterministic is not None and len(times) > 1:
        n_species = len(network.species)
        with np.errstate(all="ignore"):
            along = [np.sum(compiled.propensities(counts[:n_species], float(t))[jumps])
                     for t, counts in zip(times, deterministic.counts)]
            estimate = max(estimate, float(np.trapezoid(along, times)))
    return estimate if np.isfinite(estimate) else math.inf


def check_ensemble_work(network: Network, times: np.ndarray, n_trajectories: int,
                        max_events: float) -> None:
    """Refuse an SSA ensemble whose expected events exceed ``max_events`` or whose
    output array (trajectories x points x columns) would not fit in memory."""
    if not max_events > 0:
        raise OptionsError(f"max_events must be positive, got {max_events!r}")
    n_columns = len(network.species) + len(network.outputs)
    needed = 8.0 * n_trajectories * len(times) * n_columns
    if needed > memory_limit():
        raise WorkLimitError(
            f"the SSA output would take {needed / 2**30:.3g} GiB ({n_trajectories} "
            f"trajectories x {len(times)} points x {n_columns} columns x 8 bytes), more "
            f"than the {memory_limit() / 2**30:.3g} GiB allowed; use fewer trajectories or "
            "output points")
    per_trajectory = expected_events(network, times)
    total = per_trajectory * n_trajectories
    if total > max_events:
        raise WorkLimitError(
            f"the SSA would fire about {total:.3g} reaction events ({per_trajectory:.3g} per "
            f"trajectory x {n_trajectories} trajectories: the total propensity integrated "
            f"along the rate equations), more than max_events={max_events:.3g}. Shorten "
            "the horizon, use fewer trajectories or the LNA/CLE for large copy numbers, "
            "or raise the limit (max_events=, --max-events) to run it anyway.")


def memory_limit() -> float:
    """Bytes one result array may take: half the machine's physical memory."""
    try:
        return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2.0 * 2**30


def _ssa_task(compiled: CompiledNetwork, x0, times, method_code, max_fired, streams):
    """One Dask task: simulate the trajectories of ``streams`` on one worker thread (the
    unit of parallelism on a cluster); returns (out, report)."""
    n_columns = len(compiled.network.species) + len(compiled.network.outputs)
    out = np.zeros((len(streams), len(times), n_columns))
    report = np.zeros((len(streams), 4))
    run_block(compiled, x0, times, streams, method_code, out, report, max_fired,
              parallel=task_may_use_parallel_kernel())
    return out, report


def _sum_tree(compiled, method_code: int):
    """The tree method's sum-tree array (2 x the channel count rounded up to a power of
    two; filled by the kernel), or None for the direct method: numba then compiles each
    method without the other's branches, and a direct-only user compiles one kernel."""
    if method_code == 0:
        return None
    leaves = 1
    while leaves < max(len(compiled.network.reactions), 1):
        leaves *= 2
    return np.zeros(2 * leaves)


def run_block(compiled: CompiledNetwork, x0, times, streams, method_code, out, report,
              max_fired: float = MAX_EVENTS, parallel: bool = True):
    """Run trajectories with the given streams into ``out``/``report`` (views), each
    stopped after ``max_fired`` reactions; split over ``numba.get_num_threads()`` Python
    threads (the kernel releases the GIL), or on the calling thread only when not
    ``parallel``. Every trajectory owns its stream, so the split cannot change the numbers.
    """
    has_events = len(compiled.event_trigger) > 0
    arguments = (compiled.data, compiled.event_trigger if has_events else None,
                 compiled.event_delay, compiled.event_priority, compiled.event_flags,
                 compiled.assignment_ptr, compiled.assignment_target,
                 compiled.assignment_is_species, compiled.assignment_program,
                 compiled.output_program if len(compiled.output_program) else None,
                 compiled.time_thresholds,
                 compiled.random if has_events or uses_random(compiled.random) else None,
                 law_address(compiled) if np.any(compiled.data.kind == 1) else None,
                 compiled.data.burst_species if np.any(compiled.data.burst_species >= 0)
                 else None, x0, _parameters_with_slots(compiled), times)
    streams = streams.copy()
    threads = min(numba.get_num_threads() if parallel else 1, len(streams))

    def run(start, stop):
        _ensemble(*arguments, streams[start:stop], _sum_tree(compiled, method_code),
                  out[start:stop], report[start:stop], float(max_fired))

    if threads <= 1:
        run(0, len(streams))
        return
    cuts = np.linspace(0, len(streams), threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(run, a, b) for a, b in zip(cuts[:-1], cuts[1:])]:
            future.result()


def uses_random(random) -> bool:
    """True when a network's RandomData has draws, clocks or clock crossings."""
    return bool(random.draw_ptr[-1] > 0 or len(random.initial_target)
                or len(random.clock_index) or len(random.crossing_clock))


def _parameters_with_slots(compiled: CompiledNetwork) -> np.ndarray:
    """Parameter values followed by one slot per distrib draw, shape
    (n_parameters + n_draws,)."""
    return np.concatenate([compiled.parameter_vector(), np.zeros(compiled.random.n_slots)])


def _raise_failures(network: Network, report: np.ndarray,
                    max_events: float = MAX_EVENTS) -> None:
    failed = np.nonzero(report[:, 0] != _OK)[0]
    if not len(failed):
        return
    status, _, index, when = report[failed[0]]
    status, index = int(status), int(index)
    reaction = network.reactions[index].id if 0 <= index < len(network.reactions) else "?"
    messages = {
        _NEGATIVE_PROPENSITY: f"the propensity of reaction '{reaction}' became negative or "
                              f"NaN at t={when:g}; its kinetic law is not a valid propensity "
                              "on this state",
        _NEGATIVE_COUNT: f"reaction '{reaction}' fired at t={when:g} without enough reactant "
                         "molecules (a count went negative); its kinetic law must vanish when "
                         "its reactants are absent",
        _EVENT_LOOP: f"events kept firing at t={when:g} (more than 10000 at one time)",
        _QUEUE_FULL: f"more than {_PENDING_CAPACITY} delayed events pending at t={when:g}",
        _BAD_ASSIGNMENT: f"an event assigned a negative or NaN count at t={when:g}",
        _BAD_DRAW: f"a random draw (distrib) at t={when:g} got invalid parameters or "
                   "truncation bounds that hold (almost) none of the distribution",
        _EVENT_BUDGET: f"a trajectory fired more than max_events={max_events:.3g} reactions "
                       f"by t={when:g}, far beyond the estimate made before the run (the "
                       "model may blow up: check the signs and sizes of its parameters); "
                       "raise max_events= to let it run",
    }
    raise AnalysisError(f"SSA stopped in {len(failed)} of {len(report)} trajectories: "
                        f"{messages.get(status, 'unknown failure')}.")
