"""The deterministic limit: the network's own rate equations, with SBML events.

Integrates dy/dt = S a_det(s y) / s in the species' declared model units y = x / s
(x in molecules, s = F for an amount, F V for a concentration), so that tolerances are
those of the model's own units, with a stiff-capable scipy solver.
Events: every relational atom of every trigger is a root function; time thresholds are
hit exactly; delays, priorities, persistence and ``useValuesFromTriggerTime`` follow
SBML Level 3 semantics.
"""

from __future__ import annotations

import heapq
import time as wallclock
from dataclasses import dataclass

import numpy as np
import sympy
from scipy.integrate import solve_ivp

from ..errors import AnalysisError, ConvergenceError, OptionsError, UnsupportedFeatureError
from ..kinetics import (compile_expressions, compile_network, variable_parameters,
                        rate_equations, refuse_randomness)
from ..network import TIME, Network
from ..results import DeterministicResult

METHODS = {"LSODA": "LSODA", "BDF": "BDF", "Radau": "Radau"}

#: Cap on every species' absolute tolerance, in molecules.
ATOL_MOLECULES = 1e-6

#: Default budget of right-hand-side evaluations per run (a few seconds to a minute of
#: work; ordinary models need a few thousand).
MAX_EVALUATIONS = 10**6


def simulate_deterministic(network: Network, times, *, method: str = "LSODA",
                           rtol: float = 1e-9, atol: float = 1e-12,
                           outputs=None,
                           max_evaluations: int = MAX_EVALUATIONS) -> DeterministicResult:
    """Integrate the rate equations (deterministic limit of the propensities).

    Parameters
    ----------
    network : Network
    times : array_like, shape (n_times,)
        Increasing output times, in model time units; the first is the start time.
    method : str
        A scipy ``solve_ivp`` method from ``METHODS`` (stiff-capable by default).
    rtol, atol : float
        Tolerances, relative and in each species' declared model units. The absolute
        tolerance of a species is further capped at ``ATOL_MOLECULES`` molecules, so
        that models whose values are tiny in their own units (nmol in fL) keep
        ``rtol`` accuracy.
    outputs : list of str, optional
        Parameters, compartments or rule targets to report beside the species
        (``network.with_outputs(outputs)``).
        An event-assigned parameter changes at its events.
    max_evaluations : int
        Budget of right-hand-side evaluations: a stiff blow-up or a horizon far beyond
        the model's time scales stops with :class:`ConvergenceError` instead of running
        without limit. A right-hand side that is NaN or infinite stops at once.

    Returns
    -------
    DeterministicResult
        Species in molecules (continuous) and rule outputs at ``times``.
    """
    network = network.with_outputs(outputs)
    times = _check_times(times)
    if method not in METHODS:
        raise OptionsError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    refuse_randomness(network, "simulate_deterministic", clocks=False)
    if not max_evaluations >= 1:
        raise OptionsError(f"max_evaluations must be a positive number, got {max_evaluations!r}")
    started = wallclock.perf_counter()
    integrator = _EventIntegrator(network, METHODS[method], rtol, atol)
    integrator.evaluations_left = max_evaluations
    try:
        states = integrator.run(times)
    except _Stop as stop:
        raise ConvergenceError(str(stop)) from None
    return DeterministicResult(network, times, states, run_info={
        "method": method, "rtol": rtol, "atol": atol,
        "wall_time": wallclock.perf_counter() - started,
        "events_fired": integrator.events_fired,
        "evaluations": max_evaluations - integrator.evaluations_left})


def _check_times(times) -> np.ndarray:
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or len(times) < 1 or not np.all(np.isfinite(times)):
        raise OptionsError("times must be a 1-D array of finite output times")
    if np.any(np.diff(times) <= 0):
        raise OptionsError("times must be strictly increasing")
    return times


@dataclass
class _Pending:
    time: float
    order: int
    event: int
    values: np.ndarray | None


class _Stop(Exception):
    """Raised inside the right-hand side to leave the scipy solver (budget, NaN)."""


class _EventIntegrator:
    """Integrates segment by segment between event times."""

    def __init__(self, network: Network, method: str, rtol: float, atol: float):
        self.network = network
        self.compiled = compile_network(network)
        self.method, self.rtol, self.atol, self.base_atol = method, rtol, atol, atol
        self.scale = np.array([_model_scale(network, s) for s in network.species])
        self.atol = np.minimum(atol, ATOL_MOLECULES / self.scale)
        self.fixed = np.array([s.fixed for s in network.species])
        self.parameters = network.parameter_values.copy()
        self.events = network.events
        self.events_fired = 0
        atoms = sorted({a for e in self.events for a in e.trigger.atoms(sympy.Rel)}, key=str)
        self.atoms = atoms
        self.atom_programs = compile_expressions(network, [a.lhs - a.rhs for a in atoms],
                                                 "event trigger")
        self.time_atoms = np.array([_is_time_threshold_atom(a, network) for a in atoms],
                                   dtype=bool)
        self.trigger_functions = _boolean_functions(self.events, atoms)
        self.time_scale = _trigger_time_scale(
            [a for a, threshold in zip(atoms, self.time_atoms) if not threshold], network)
        self.thresholds = self.compiled.time_thresholds
        self.trigger_state = [e.initial_value for e in self.events]
        self.priority_programs = compile_expressions(
            network, [e.priority if e.priority is not None else sympy.Integer(0)
                      for e in self.events], "event priority")
        self.delay_programs = compile_expressions(
            network, [e.delay if e.delay is not None else sympy.Integer(0)
                      for e in self.events], "event delay")
        self.assignment_programs = [compile_expressions(network, [v for _, v in e.assignments],
                                                        e.id) for e in self.events]
        self.execution_scale_programs = [compile_expressions(
            network, [f for _, f in e.execution_scales], e.id) for e in self.events]
        self.pending: list[tuple] = []
        self.counter = 0
        self.evaluations_left = MAX_EVALUATIONS
        self.rates = np.empty(len(network.reactions))
        self.dxdt = np.empty(len(network.species))
        self._compile_rate_rules()
        self._compile_jumps()

    def _compile_jumps(self) -> None:
        """Arguments of floor/ceiling in the right-hand side: the integration stops where
        one crosses a whole number, so no step straddles the jump of the rate."""
        expressions = [r.rate_law.deterministic_limit() for r in self.network.reactions] + [
            r.formula for r in self.network.rate_rules]
        arguments = sorted({node.args[0] for e in expressions
                            for node in e.atoms(sympy.floor, sympy.ceiling)}, key=str)
        self.jump_programs = compile_expressions(self.network, arguments, "rate law")

    def _compile_rate_rules(self) -> None:
        """Rate rules: species targets add to dx/dt; parameter targets join the state
        vector after the species (``y = [x / scale, p_ode]``)."""
        network = self.network
        parameter_index = {p: i for i, p in enumerate(network.parameter_ids)}
        rules = network.rate_rules
        self.rule_programs = compile_expressions(network, [r.formula for r in rules],
                                                 "rate rule")
        self.species_rules = np.array([k for k, r in enumerate(rules)
                                       if r.target in network.species_index], dtype=int)
        self.species_rule_targets = np.array(
            [network.species_index[rules[k].target] for k in self.species_rules], dtype=int)
        self.parameter_rules = np.array([k for k, r in enumerate(rules)
                                         if r.target in parameter_index], dtype=int)
        self.ode_parameters = np.array(
            [parameter_index[rules[k].target] for k in self.parameter_rules], dtype=int)
        self.atol = np.concatenate([self.atol, np.full(len(self.ode_parameters), self.base_atol)])

    def load(self, y: np.ndarray) -> np.ndarray:
        """Counts ``x`` from the state vector ``y``; rate-rule parameters go to
        ``self.parameters``."""
        n = len(self.scale)
        if len(self.ode_parameters):
            self.parameters[self.ode_parameters] = y[n:]
        return y[:n] * self.scale

    def state(self, x: np.ndarray) -> np.ndarray:
        """The state vector ``y`` for counts ``x`` and the current parameters."""
        return np.concatenate([x / self.scale, self.parameters[self.ode_parameters]])

    # -- right-hand side ------------------------------------------------------------
    def rhs(self, t, y):
        self.evaluations_left -= 1
        if self.evaluations_left < 0:
            raise _Stop(f"the integration used up its budget of right-hand-side evaluations "
                        f"at t={t:g} (a stiff blow-up, or a horizon far beyond the model's "
                        "time scales); shorten the horizon or raise max_evaluations=")
        x = self.load(y)
        rate_equations(self.compiled, x, self.parameters, t, self.rates, self.dxdt)
        if not np.all(np.isfinite(self.dxdt)):
            rates = dict(zip(self.network.reaction_ids, self.rates))
            bad = [rid for rid, rate in rates.items() if not np.isfinite(rate)]
            raise _Stop(f"the rate equations are not finite at t={t:g} (reaction(s) "
                        f"{', '.join(bad[:5]) or 'none'}; a value overflowed or is NaN); "
                        "check the model's parameters and initial values")
        if not len(self.rule_programs.bounds):
            return self.dxdt / self.scale
        values = self.rule_programs.evaluate_all(x, self.parameters, t)
        if not np.all(np.isfinite(values)):
            raise _Stop(f"a rate rule is not finite at t={t:g}; check the model's "
                        "parameters and initial values")
        self.dxdt[self.species_rule_targets] += values[self.species_rules]
        return np.concatenate([self.dxdt / self.scale, values[self.parameter_rules]])

    # -- triggers ---------------------------------------------------------------------
    def atom_values(self, t, x, crossed: dict[int, float] | None = None) -> list[bool]:
        g = self.atom_programs.evaluate_all(x, self.parameters, t) if self.atoms else []
        result = []
        for k, atom in enumerate(self.atoms):
            value = g[k]
            if crossed and k in crossed:
                value = crossed[k]
            result.append(_relation_holds(atom, value))
        return result

    def trigger_values(self, t, x, crossed=None) -> list[bool]:
        values = self.atom_values(t, x, crossed)
        return [bool(function(*values)) for function in self.trigger_functions]

    # -- events -----------------------------------------------------------------------
    def _assignment_values(self, index: int, t: float, x: np.ndarray) -> np.ndarray:
        return self.assignment_programs[index].evaluate_all(x, self.parameters, t)

    def _apply(self, index: int, values: np.ndarray, x: np.ndarray) -> np.ndarray:
        event = self.events[index]
        if event.execution_scales:
            factors = dict(zip((target for target, _ in event.execution_scales),
                               self.execution_scale_programs[index].evaluate_all(
                                   x, self.parameters, self.now)))
            values = np.array([value * factors.get(target, 1.0) for (target, _), value
                               in zip(event.assignments, values)])
        x = x.copy()
        species_index = self.network.species_index
        parameter_index = {p: i for i, p in enumerate(self.network.parameter_ids)}
        for (target, _), value in zip(self.events[index].assignments, values):
            if target in species_index:
                x[species_index[target]] = value
            else:
                self.parameters[parameter_index[target]] = value
        self.events_fired += 1
        return x

    def _priority(self, index: int, t: float, x: np.ndarray) -> float:
        if self.events[index].priority is None:
            return -np.inf
        return self.priority_programs.evaluate(index, x, self.parameters, t)

    def process_events(self, t: float, x: np.ndarray, crossed=None) -> np.ndarray:
        """Fire every event whose trigger turned true at ``t``; cascade; run due ones."""
        self.now = t
        # A crossed atom sits on its root (g == 0): it keeps the side it crossed to for
        # as long as no assignment moves it off the root.
        at_root = {k: self.atom_programs.evaluate(k, x, self.parameters, t)
                   for k in (crossed or {})}
        for _ in range(10_000):
            if crossed:
                crossed = {k: side for k, side in crossed.items()
                           if self.atom_programs.evaluate(k, x, self.parameters, t)
                           == at_root[k]}
            now = self.trigger_values(t, x, crossed)
            fired = [i for i, (before, after) in enumerate(zip(self.trigger_state, now))
                     if after and not before]
            for i, (before, after) in enumerate(zip(self.trigger_state, now)):
                if before and not after and not self.events[i].persistent:
                    self.pending = [p for p in self.pending if p[3] != i]
                    heapq.heapify(self.pending)
            self.trigger_state = now
            for i in fired:
                delay = self.delay_programs.evaluate(i, x, self.parameters, t) \
                    if self.events[i].delay is not None else 0.0
                if delay < 0:
                    raise AnalysisError(f"event '{self.events[i].id}' has a negative delay")
                values = self._assignment_values(i, t, x) \
                    if self.events[i].use_values_from_trigger_time else None
                self.counter += 1
                heapq.heappush(self.pending, (t + delay, -self._priority(i, t, x),
                                              self.counter, i, values))
            due = [p for p in self.pending if p[0] <= t]
            if not due:
                return x
            # Execute the highest-priority due event, then re-check everything.
            due.sort(key=lambda p: (p[0], -self._priority(p[3], t, x), p[2]))
            chosen = due[0]
            self._check_priority_tie(due, t, x)
            self.pending.remove(chosen)
            heapq.heapify(self.pending)
            values = chosen[4] if chosen[4] is not None else \
                self._assignment_values(chosen[3], t, x)
            x = self._apply(chosen[3], values, x)
        raise ConvergenceError("more than 10000 events at one time: an event loop")

    def _check_priority_tie(self, due, t, x) -> None:
        """SBML executes simultaneous events of equal priority in random order: a
        deterministic run cannot reproduce that, so it refuses instead of choosing."""
        if len(due) < 2:
            return
        first, second = due[0][3], due[1][3]
        if self.events[first].priority is None or self.events[second].priority is None:
            return
        if self._priority(first, t, x) == self._priority(second, t, x):
            raise UnsupportedFeatureError(
                "simultaneous events of equal priority (random execution order)",
                self.events[first].id, analysis="deterministic",
                hint=f"Events '{self.events[first].id}' and '{self.events[second].id}' are "
                     f"due at t={t:g} with the same priority; give them distinct "
                     "priorities.")

    # -- integration -------------------------------------------------------------------
    def run(self, times: np.ndarray) -> np.ndarray:
        n_out = len(self.network.outputs)
        states = np.empty((len(times), len(self.scale) + n_out))
        t = float(times[0])
        x = self.network.initial_counts
        x = self.process_events(t, x)
        next_output = 0
        tolerance = 1e-12 * max(1.0, abs(times[-1]))

        def record(t_now, x_now, parameters=None):
            nonlocal next_output
            parameters = self.parameters if parameters is None else parameters
            while next_output < len(times) and times[next_output] <= t_now + tolerance:
                states[next_output, :len(x_now)] = x_now
                if n_out:
                    states[next_output, len(x_now):] = self.compiled.outputs(
                        x_now, parameters, times[next_output])
                next_output += 1

        record(t, x)
        end = float(times[-1])
        last_crossing = None
        ignored: set[int] = set()  # atoms identically on their root (no progress)
        while next_output < len(times):
            stops = [end] + [p[0] for p in self.pending[:1]] + [
                th for th in self.thresholds if th > t + tolerance][:1]
            t_stop = min(stops)
            t_eval = times[(times > t + tolerance) & (times < t_stop - tolerance)]
            x_end, t_end, outputs = self._segment(t, t_stop, x, t_eval, last_crossing, ignored)
            crossed_atom, direction, last_crossing = None, 0, None
            stalled = isinstance(t_end, tuple) and t_end[0] <= t
            for t_out, y_out in outputs:
                x_out = self.load(y_out)
                record(t_out, x_out)
            x_end = self.load(x_end)
            if isinstance(t_end, tuple):  # stopped at a root
                t_end, crossed_atom, direction = t_end
                last_crossing = {crossed_atom: direction,
                                 **self._also_at_root(crossed_atom, t_end, x_end)}
            t, x = t_end, x_end
            crossed = {k: side * 1e-300 for k, side in last_crossing.items()} \
                if last_crossing else None
            if crossed is None and np.any(np.isclose(self.thresholds, t, rtol=0,
                                                     atol=tolerance)):
                crossed = self._time_crossings(t, x)
            parameters_before = self.parameters.copy()
            x_after = self.process_events(t, x, crossed)
            if last_crossing is not None and (
                    not np.array_equal(x_after, x) or
                    not np.array_equal(parameters_before, self.parameters)):
                # An assignment moved the state: an atom may no longer sit on its root.
                last_crossing = {
                    k: side for k, side in last_crossing.items()
                    if self.atom_programs.evaluate(k, x_after, self.parameters, t) ==
                    self.atom_programs.evaluate(k, x, parameters_before, t)} or None
            if stalled and np.array_equal(x_after, x) and np.array_equal(
                    parameters_before, self.parameters, equal_nan=True) and \
                    self._atom_slope(crossed_atom, t, self.state(x),
                                     self.rhs(t, self.state(x))) == 0:
                # A root at the very start that changed nothing: the atom sits on its
                # root without crossing (e.g. |Q - R| - maxdiff == 0 identically); stop
                # watching it until the integration makes progress. (An atom that leaves
                # its root stays watched, for crossing back only: last_crossing.)
                ignored.add(crossed_atom)
            elif not stalled:
                ignored.clear()
            x = x_after
            record(t, x)
        return states

    def _time_crossings(self, t, x) -> dict[int, float]:
        g_after = self.atom_programs.evaluate_all(x, self.parameters, t + 1e-9 * max(1, t)) \
            if self.atoms else []
        return {k: float(np.sign(g_after[k])) * 1e-300 for k in range(len(self.atoms))
                if self.time_atoms[k]}

    def _also_at_root(self, atom: int, t: float, x: np.ndarray) -> dict[int, float]:
        """Other watched atoms that reach their root at the same instant as ``atom``
        (e.g. three clocks crossing one threshold): atom -> side it crosses to."""
        others = {}
        y = self.state(x)
        dydt = self.rhs(t, y)
        level = abs(self.atom_programs.evaluate(atom, x, self.parameters, t)) + 1e-14
        for k in range(len(self.atoms)):
            if k == atom or self.time_atoms[k]:
                continue
            if abs(self.atom_programs.evaluate(k, x, self.parameters, t)) <= level:
                slope = self._atom_slope(k, t, y, dydt)
                if slope != 0:
                    others[k] = float(np.sign(slope))
        return others

    def _segment(self, t0, t1, x0, t_eval, last_crossing=None, ignored=frozenset()):
        """Integrate from t0 to t1 or the first trigger root; returns (x, t, outputs)."""
        if t1 <= t0:
            return self.state(x0), t0, []
        root_atoms = [k for k in range(len(self.atoms))
                      if not self.time_atoms[k] and k not in ignored]
        functions = []
        for k in root_atoms:
            def g(t, y, k=k):
                return self.atom_programs.evaluate(k, self.load(y), self.parameters, t)
            g.terminal = True
            # The atom that just crossed sits on its root: it may only cross back.
            g.direction = -last_crossing[k] if last_crossing and k in last_crossing else 0
            functions.append(g)
        jumps = self._jump_functions(t0, x0)
        y0 = self.state(x0)
        t_eval = np.append(t_eval, t1)
        # A trigger that reads time itself can cross between two long steps of a quiet
        # state (semantic 00936: sin(10 t) < 0 under d/dt = 0): bound the step by the
        # trigger's own time scale so that every sign change is seen.
        max_step = min(self.time_scale, (t1 - t0) / 200) if self.time_scale else np.inf
        try:
            solution = solve_ivp(self.rhs, (t0, t1), y0, method=self.method, t_eval=t_eval,
                                 events=(functions + jumps) or None, rtol=self.rtol,
                                 atol=self.atol, max_step=max_step)
        except (ValueError, ZeroDivisionError, OverflowError) as error:
            raise ConvergenceError(f"the rate equations could not be integrated from t={t0}: "
                                   f"{error}") from None
        if solution.status == -1:  # solution.t holds only the t_eval points reached
            reached = solution.t[-1] if len(solution.t) else t0
            raise ConvergenceError(f"integration failed after t={reached:g}: "
                                   f"{solution.message}. Try method='BDF' or 'Radau'.")
        outputs = [(tt, solution.y[:, i]) for i, tt in enumerate(solution.t) if tt < t1]
        if solution.status == 1:
            for position, k in enumerate(root_atoms):
                if len(solution.t_events[position]):
                    t_root = float(solution.t_events[position][0])
                    y_root = solution.y_events[position][0]
                    after = self.rhs(t_root, y_root)
                    slope = self._atom_slope(k, t_root, y_root, after)
                    outputs = [(tt, yy) for tt, yy in outputs if tt <= t_root]
                    return y_root, (t_root, k, np.sign(slope) or 1.0), outputs
            hits = [(float(times[0]), position) for position, times in enumerate(
                solution.t_events) if position >= len(root_atoms) and len(times)]
            if hits:  # a floor/ceiling jump: restart there
                t_jump, position = min(hits)
                return solution.y_events[position][0], t_jump, [
                    (tt, yy) for tt, yy in outputs if tt < t_jump]
        return solution.y[:, -1], t1, outputs

    def _jump_functions(self, t0: float, x0: np.ndarray) -> list:
        """Terminal roots at the whole numbers next to each floor/ceiling argument."""
        functions = []
        values = self.jump_programs.evaluate_all(x0, self.parameters, t0) \
            if len(self.jump_programs.bounds) else []
        for k, value in enumerate(values):
            if not np.isfinite(value):
                continue
            nearest = round(value)
            on_boundary = abs(value - nearest) <= 1e-9 * max(1.0, abs(value))
            below = nearest - 1 if on_boundary else np.floor(value)
            for level in (below, below + (2 if on_boundary else 1)):
                def g(t, y, k=k, level=level):
                    return self.jump_programs.evaluate(k, self.load(y), self.parameters,
                                                       t) - level
                g.terminal = True
                functions.append(g)
        return functions

    def _atom_slope(self, k, t, y, dydt) -> float:
        step = 1e-7 * max(1.0, abs(t))
        ahead = self.atom_programs.evaluate(k, self.load(y + dydt * step), self.parameters,
                                            t + step)
        behind = self.atom_programs.evaluate(k, self.load(y - dydt * step), self.parameters,
                                             t - step)
        self.load(y)
        return ahead - behind


def _boolean_functions(events, atoms) -> list:
    """Each trigger as a Python function of its relational atoms' truth values
    (compiled once, so no sympy runs while events fire)."""
    flags = [sympy.Symbol(f"atom{k}") for k in range(len(atoms))]
    replace = dict(zip(atoms, flags))
    return [sympy.lambdify(flags, event.trigger.xreplace(replace), modules="math")
            for event in events]


def _model_scale(network: Network, species) -> float:
    """Molecules per declared model unit of ``species`` (amount or concentration).

    Integrating in the model's own units keeps ``atol`` meaningful: amounts of
    1e-16 mole in a 1e-15 litre compartment are concentrations of order one.
    """
    try:
        scale = network.species_scale(species.id, "model")
    except OptionsError:
        scale = species.molecules_per_unit
    return scale if np.isfinite(scale) and scale > 0 else 1.0


def _trigger_time_scale(atoms, network: Network) -> float:
    """The step bound that root-finding on trigger atoms reading ``time`` needs: an
    eighth of the shortest half-period of a sine, cosine or tangent of time in them,
    ``inf`` when they hold none (the segment's 1/200 bounds the step), and 0 when no
    atom reads time (no bound)."""
    timed = [a for a in atoms if TIME in a.free_symbols]
    if not timed:
        return 0.0
    values = {sympy.Symbol(p): v for p, v in zip(network.parameter_ids,
                                                  network.parameter_values)}
    scale = np.inf
    for atom in timed:
        for node in atom.atoms(sympy.sin, sympy.cos, sympy.tan):
            rate = sympy.diff(node.args[0], TIME).subs(values)
            if rate.is_number and TIME not in rate.free_symbols and rate != 0:
                scale = min(scale, np.pi / (8 * abs(float(rate))))
    return scale


def _is_time_threshold_atom(atom, network: Network) -> bool:
    """True for ``time <op> c`` atoms (c fixed): they flip only at the precomputed
    thresholds. Atoms on event-assigned parameters, or not polynomial in time (so
    without precomputed thresholds), are located by root finding instead."""
    if TIME not in atom.free_symbols:
        return False
    constant = {sympy.Symbol(p) for p in network.parameter_ids} - {
        sympy.Symbol(p) for p in variable_parameters(network)}
    if not atom.free_symbols <= {TIME} | constant:
        return False
    difference = sympy.expand(atom.lhs - atom.rhs)
    return bool(difference.is_polynomial(TIME))


def _relation_holds(atom, g: float) -> bool:
    if isinstance(atom, sympy.StrictGreaterThan):
        return g > 0
    if isinstance(atom, sympy.GreaterThan):
        return g >= 0
    if isinstance(atom, sympy.StrictLessThan):
        return g < 0
    if isinstance(atom, sympy.LessThan):
        return g <= 0
    if isinstance(atom, sympy.Equality):
        return g == 0 or abs(g) == 1e-300
    return g != 0
