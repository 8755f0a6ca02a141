"""Compile a Network's propensities, triggers and outputs once into flat arrays.

Mass-action channels are data: reactant indices, orders and constants, evaluated by one
fixed numba kernel. General laws, event triggers and assignments, and rule outputs are
compiled to a small stack-machine bytecode (``ops``, ``args``, ``constants``) that one
fixed numba interpreter evaluates. The kernels are compiled once per machine and cached on
disk (``cache=True``), and importing a 2000-reaction network costs only the array
construction. The SSA additionally runs a network's general laws as one small generated
callback (:mod:`sbml_cme.lawgen`), with the interpreter as its exact fallback. See
docs/design.md for the measurements behind these choices.

Arrays are read-only once built; :func:`compile_network` caches by network hash.
"""

from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import NamedTuple

import numba
import numpy as np
import sympy

from .errors import InvalidNetworkError, UnsupportedFeatureError
from .distributions import RandomDraw, draws_in, has_draws
from .network import TIME, Expression, MassAction, Network

# -- bytecode ---------------------------------------------------------------------------------
OP_CONST, OP_SPECIES, OP_PARAM, OP_TIME = 0, 1, 2, 3
OP_ADD, OP_MUL, OP_POW = 4, 5, 6
OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE = 10, 11, 12, 13, 14, 15
OP_AND, OP_OR, OP_NOT, OP_XOR = 20, 21, 22, 23
OP_PIECEWISE, OP_MAX, OP_MIN, OP_FF = 30, 31, 32, 33
OP_UNARY = 40  # + function code in args

_UNARY_CODES = {
    sympy.exp: 0, sympy.log: 1, sympy.sin: 2, sympy.cos: 3, sympy.tan: 4, sympy.Abs: 5,
    sympy.floor: 6, sympy.ceiling: 7, sympy.factorial: 8, sympy.asin: 9, sympy.acos: 10,
    sympy.atan: 11, sympy.sinh: 12, sympy.cosh: 13, sympy.tanh: 14, sympy.asinh: 15,
    sympy.acosh: 16, sympy.atanh: 17, sympy.sec: 18, sympy.csc: 19, sympy.cot: 20,
    sympy.sign: 21,
}

_RELATIONAL_CODES = {sympy.StrictLessThan: OP_LT, sympy.LessThan: OP_LE,
                     sympy.StrictGreaterThan: OP_GT, sympy.GreaterThan: OP_GE,
                     sympy.Equality: OP_EQ, sympy.Unequality: OP_NE}
_LOGICAL_CODES = {sympy.And: OP_AND, sympy.Or: OP_OR, sympy.Xor: OP_XOR}


class _Assembler:
    """Collects programs for many expressions into shared arrays."""

    def __init__(self, species_index: dict[str, int], parameter_index: dict[str, int]):
        self.species_index = species_index
        self.parameter_index = parameter_index
        self.ops: list[int] = []
        self.args: list[int] = []
        self.constants: list[float] = []
        self.max_depth = 1

    def add(self, expression: sympy.Basic, owner: str) -> tuple[int, int]:
        """Append a program; returns its (start, end) in ``ops``."""
        start = len(self.ops)
        depth = self._emit(sympy.sympify(expression), owner)
        self.max_depth = max(self.max_depth, depth)
        return start, len(self.ops)

    def _push(self, op: int, arg: int = 0) -> None:
        self.ops.append(op)
        self.args.append(arg)

    def _constant(self, value: float) -> int:
        self.constants.append(float(value))
        self._push(OP_CONST, len(self.constants) - 1)
        return 1

    def _nary(self, op: int, children, owner: str) -> int:
        depth = 0
        for position, child in enumerate(children):
            depth = max(depth, position + self._emit(child, owner))
        self._push(op, len(children))
        return max(depth, 1)

    def _emit(self, node: sympy.Basic, owner: str) -> int:
        """Emit ``node``; returns the stack depth it needs."""
        if node is sympy.true or node == sympy.true:
            return self._constant(1.0)
        if node is sympy.false or node == sympy.false:
            return self._constant(0.0)
        if node.is_Number or node in (sympy.pi, sympy.E) or node.is_NumberSymbol:
            value = complex(node)
            if value.imag:
                raise UnsupportedFeatureError(f"a complex value in {node}", owner)
            return self._constant(value.real)
        if node is sympy.nan:
            return self._constant(math.nan)
        if node.is_Symbol:
            if node == TIME:
                self._push(OP_TIME)
            elif node.name in self.species_index:
                self._push(OP_SPECIES, self.species_index[node.name])
            elif node.name in self.parameter_index:
                self._push(OP_PARAM, self.parameter_index[node.name])
            else:
                raise InvalidNetworkError(f"'{owner}' uses the undefined symbol '{node.name}'")
            return 1
        if isinstance(node, sympy.Add):
            return self._nary(OP_ADD, node.args, owner)
        if isinstance(node, sympy.Mul):
            return self._nary(OP_MUL, node.args, owner)
        if isinstance(node, sympy.Pow):
            return self._nary(OP_POW, node.args, owner)
        if isinstance(node, sympy.FallingFactorial):
            return self._nary(OP_FF, node.args, owner)
        if type(node) in _RELATIONAL_CODES:
            return self._nary(_RELATIONAL_CODES[type(node)], node.args, owner)
        if type(node) in _LOGICAL_CODES:
            return self._nary(_LOGICAL_CODES[type(node)], node.args, owner)
        if isinstance(node, sympy.Not):
            return self._nary(OP_NOT, node.args, owner)
        if isinstance(node, sympy.ITE):
            # sympy writes a relation on a Piecewise, piecewise(a, c, b) > 0, as
            # ITE(c, a > 0, b > 0): the same choice as a boolean-valued Piecewise.
            condition, then, otherwise = node.args
            return self._emit(sympy.Piecewise((then, condition), (otherwise, True),
                                              evaluate=False), owner)
        if isinstance(node, sympy.Piecewise):
            children = [part for value, condition in node.args for part in (value, condition)]
            depth = 0
            for position, child in enumerate(children):
                depth = max(depth, position + self._emit(child, owner))
            self._push(OP_PIECEWISE, len(node.args))
            return depth
        if isinstance(node, sympy.Max):
            return self._nary(OP_MAX, node.args, owner)
        if isinstance(node, sympy.Min):
            return self._nary(OP_MIN, node.args, owner)
        function = type(node)
        if function in _UNARY_CODES and len(node.args) == 1:
            depth = self._emit(node.args[0], owner)
            self._push(OP_UNARY, _UNARY_CODES[function])
            return depth
        raise UnsupportedFeatureError(f"the function '{function.__name__}'", owner)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.array(self.ops, dtype=np.int64), np.array(self.args, dtype=np.int64),
                np.array(self.constants if self.constants else [0.0], dtype=np.float64))


@numba.njit(cache=True, inline="always")
def _unary(code, x):
    if code == 0:
        return math.exp(x)
    if code == 1:
        return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)
    if code == 2:
        return math.sin(x)
    if code == 3:
        return math.cos(x)
    if code == 4:
        return math.tan(x)
    if code == 5:
        return abs(x)
    if code == 6:
        return math.floor(x)
    if code == 7:
        return math.ceil(x)
    if code == 8:
        return math.gamma(x + 1.0)
    if code == 9:
        return math.asin(x)
    if code == 10:
        return math.acos(x)
    if code == 11:
        return math.atan(x)
    if code == 12:
        return math.sinh(x)
    if code == 13:
        return math.cosh(x)
    if code == 14:
        return math.tanh(x)
    if code == 15:
        return math.asinh(x)
    if code == 16:
        return math.acosh(x)
    if code == 17:
        return math.atanh(x)
    if code == 18:
        return 1.0 / math.cos(x)
    if code == 19:
        return 1.0 / math.sin(x)
    if code == 20:
        return 1.0 / math.tan(x)
    if code == 21:
        return 0.0 if x == 0 else (1.0 if x > 0 else -1.0)
    return math.nan


@numba.njit(cache=True)
def _pow(base, exponent):
    if base < 0 and exponent != math.floor(exponent):
        return math.nan
    if base == 0.0 and exponent < 0:
        return math.inf
    return base ** exponent


@numba.njit(cache=True)
def run_program(ops, args, constants, start, end, x, p, t, stack):
    """Evaluate one bytecode program; ``x`` counts (n_species,), ``p`` parameters."""
    top = 0
    for k in range(start, end):
        op = ops[k]
        arg = args[k]
        if op == OP_CONST:
            stack[top] = constants[arg]
            top += 1
        elif op == OP_SPECIES:
            stack[top] = x[arg]
            top += 1
        elif op == OP_PARAM:
            stack[top] = p[arg]
            top += 1
        elif op == OP_TIME:
            stack[top] = t
            top += 1
        elif op == OP_ADD:
            value = 0.0
            for i in range(arg):
                value += stack[top - 1 - i]
            top -= arg
            stack[top] = value
            top += 1
        elif op == OP_MUL:
            value = 1.0
            for i in range(arg):
                value *= stack[top - 1 - i]
            top -= arg
            stack[top] = value
            top += 1
        elif op == OP_POW:
            value = _pow(stack[top - 2], stack[top - 1])
            top -= 2
            stack[top] = value
            top += 1
        elif op == OP_FF:
            base = stack[top - 2]
            order = int(stack[top - 1])
            value = 1.0
            for i in range(order):
                value *= base - i
            top -= 2
            stack[top] = value
            top += 1
        elif OP_LT <= op <= OP_NE:
            a = stack[top - 2]
            b = stack[top - 1]
            if op == OP_LT:
                result = a < b
            elif op == OP_LE:
                result = a <= b
            elif op == OP_GT:
                result = a > b
            elif op == OP_GE:
                result = a >= b
            elif op == OP_EQ:
                result = a == b
            else:
                result = a != b
            top -= 2
            stack[top] = 1.0 if result else 0.0
            top += 1
        elif op == OP_AND or op == OP_OR or op == OP_XOR:
            count = 0
            for i in range(arg):
                if stack[top - 1 - i] != 0.0:
                    count += 1
            top -= arg
            if op == OP_AND:
                stack[top] = 1.0 if count == arg else 0.0
            elif op == OP_OR:
                stack[top] = 1.0 if count > 0 else 0.0
            else:
                stack[top] = 1.0 if count % 2 == 1 else 0.0
            top += 1
        elif op == OP_NOT:
            stack[top - 1] = 1.0 if stack[top - 1] == 0.0 else 0.0
        elif op == OP_PIECEWISE:
            base = top - 2 * arg
            value = math.nan
            for i in range(arg):
                if stack[base + 2 * i + 1] != 0.0:
                    value = stack[base + 2 * i]
                    break
            top = base
            stack[top] = value
            top += 1
        elif op == OP_MAX or op == OP_MIN:
            value = stack[top - 1]
            for i in range(1, arg):
                other = stack[top - 1 - i]
                if (op == OP_MAX and other > value) or (op == OP_MIN and other < value):
                    value = other
            top -= arg
            stack[top] = value
            top += 1
        else:
            stack[top - 1] = _unary(arg, stack[top - 1])
    return stack[0]


class KernelData(NamedTuple):
    """Flat arrays describing a network's propensities (all read-only).

    Channels j = 0..n_channels-1. ``kind[j]`` is 0 for mass action with constant
    ``rate_constant[j]`` and reactants ``reactant_species[reactant_ptr[j]:reactant_ptr[j+1]]``
    (orders ``reactant_order``), 1 for a bytecode program ``program_start[j]:program_end[j]``,
    2 for mass action written as falling factorials (``MassAction.as_written``: the
    deterministic limit keeps ``(n)_m``; otherwise as kind 0).
    ``falling[j]`` selects ``(n)_m`` over ``n**m``. Net changes are CSR in ``change_*``;
    ``dependents_*`` lists, per channel, the channels to update after it fires.

    Bursts: ``burst_species[j]`` is the species a firing of ``j`` adds a random B to (-1:
    no burst; ``change_*`` hold only the fixed part), ``burst_mean[j]`` = E[B]. A finite
    law has P(B=k) = ``burst_probability[burst_ptr[j] + k]`` (cumulative sums in
    ``burst_cumulative``, last entry exactly 1); an empty range means geometric with
    log q = ``burst_log_ratio[j]`` (q = b / (1 + b) > 0).
    """

    kind: np.ndarray
    rate_constant: np.ndarray
    reactant_ptr: np.ndarray
    reactant_species: np.ndarray
    reactant_order: np.ndarray
    falling: np.ndarray
    program_start: np.ndarray
    program_end: np.ndarray
    change_ptr: np.ndarray
    change_species: np.ndarray
    change_amount: np.ndarray
    dependents_ptr: np.ndarray
    dependents: np.ndarray
    ops: np.ndarray
    args: np.ndarray
    constants: np.ndarray
    burst_species: np.ndarray
    burst_mean: np.ndarray
    burst_log_ratio: np.ndarray
    burst_ptr: np.ndarray
    burst_probability: np.ndarray
    burst_cumulative: np.ndarray
    stack_size: int


@numba.njit(cache=True)
def channel_propensity(data, j, x, p, t, deterministic, stack):
    """Propensity of channel ``j`` (events per time); the deterministic limit if asked."""
    if data.kind[j] == 1:
        return run_program(data.ops, data.args, data.constants, data.program_start[j],
                           data.program_end[j], x, p, t, stack)
    return mass_action_propensity(data, j, x, deterministic)


@numba.njit(cache=True)
def mass_action_propensity(data, j, x, deterministic):
    """Propensity of mass-action channel ``j`` (kind 0 or 2) at counts ``x``, or its
    deterministic limit: ``n**m`` for kind 0, the falling factorial as written at real
    counts for kind 2. Without the bytecode interpreter, for the kernels of networks
    with no general channel (cold start: they do not compile it)."""
    value = data.rate_constant[j]
    for k in range(data.reactant_ptr[j], data.reactant_ptr[j + 1]):
        n = x[data.reactant_species[k]]
        order = data.reactant_order[k]
        if (deterministic and data.kind[j] == 0) or not data.falling[j]:
            for _ in range(order):
                value *= n
        elif deterministic:  # the law as written, at real counts (kind 2)
            for i in range(order):
                value *= n - i
        else:
            for i in range(order):
                value *= max(n - i, 0.0)
    return value


@numba.njit(cache=True)
def all_propensities(data, x, p, t, deterministic, out):
    """Fill ``out`` (n_channels,) with every channel's propensity."""
    stack = np.empty(data.stack_size)
    for j in range(out.shape[0]):
        out[j] = channel_propensity(data, j, x, p, t, deterministic, stack)


@numba.njit(cache=True)
def _net_change(data, rates, n_species, dxdt):
    """dxdt = S rates (n_species,), bursts at their mean size."""
    for i in range(n_species):
        dxdt[i] = 0.0
    for j in range(rates.shape[0]):
        for k in range(data.change_ptr[j], data.change_ptr[j + 1]):
            dxdt[data.change_species[k]] += data.change_amount[k] * rates[j]
        if data.burst_species[j] >= 0:
            dxdt[data.burst_species[j]] += data.burst_mean[j] * rates[j]


@numba.njit(cache=True)
def net_rates(data, x, p, t, n_species, rates, dxdt):
    """Deterministic rate equations in counts: dxdt = S a(x), shape (n_species,)."""
    # bool(True), not True: numba compiles a separate specialisation of a jitted callee
    # for each literal argument (Literal[bool](True) besides bool), which doubled the
    # compile time of the propensity kernels on a cold start.
    all_propensities(data, x, p, t, bool(True), rates)
    _net_change(data, rates, n_species, dxdt)


class MassActionRates:
    """Propensities and rate equations of a network without general channels, in numpy.

    The same arithmetic in the same order as :func:`mass_action_propensity` and
    :func:`_net_change` (so the same numbers, bit for bit), without a numba compilation:
    the work estimate before an SSA run and the rate equations of a mass-action network
    cost no compile on a cold start (docs/performance.md). ``steps`` holds, for each
    reactant position e and factor i (in the kernel's loop order), the channels with an
    e-th reactant of order > i, that reactant's species, and whether the factor is the
    plain count n (``n**m``) or the falling ``n - i`` (stochastic: ``max(n - i, 0)``).
    """

    def __init__(self, data: KernelData):
        n_channels = len(data.kind)
        per_channel = np.diff(data.reactant_ptr)
        channel = np.repeat(np.arange(n_channels), per_channel)
        position = np.arange(len(data.reactant_species)) - np.repeat(data.reactant_ptr[:-1],
                                                                     per_channel)
        order = data.reactant_order
        self.rate_constant = np.asarray(data.rate_constant, dtype=float)
        self.steps = []
        for e in range(int(per_channel.max(initial=0))):
            at = position == e
            for i in range(int(order[at].max(initial=0))):
                chosen = at & (order > i)
                channels = channel[chosen]
                falling = data.falling[channels]
                self.steps.append((channels, data.reactant_species[chosen], float(i),
                                   _selector(~falling),
                                   _selector(~falling | (data.kind[channels] == 0))))
        # dxdt = S rates: per channel its net changes, then its burst at the mean size.
        species, weight, source = [], [], []
        for j in range(n_channels):
            for k in range(data.change_ptr[j], data.change_ptr[j + 1]):
                species.append(data.change_species[k])
                weight.append(data.change_amount[k])
                source.append(j)
            if data.burst_species[j] >= 0:
                species.append(data.burst_species[j])
                weight.append(data.burst_mean[j])
                source.append(j)
        self.change_species = np.array(species, dtype=np.int64)
        self.change_weight = np.array(weight, dtype=float)
        self.change_channel = np.array(source, dtype=np.int64)

    def propensities(self, x: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Propensities at counts ``x`` (..., n_species), shape (..., n_channels)."""
        x = np.asarray(x, dtype=float)
        if x.ndim == 1:
            value = self.rate_constant.copy()
        else:
            value = np.tile(self.rate_constant, x.shape[:-1] + (1,))
        for channels, species, i, plain, plain_deterministic in self.steps:
            n = x[..., species]
            plain = plain_deterministic if deterministic else plain
            if plain is not True and i > 0:  # the falling factor n - i
                falling = n - i if deterministic else np.maximum(n - i, 0.0)
                n = falling if plain is False else np.where(plain, n, falling)
            elif plain is not True and not deterministic:
                falling = np.maximum(n, 0.0)  # max(n - 0, 0), as the kernel
                n = falling if plain is False else np.where(plain, n, falling)
            value[..., channels] *= n
        return value

    def net_rates(self, x: np.ndarray, rates: np.ndarray, dxdt: np.ndarray) -> None:
        """Rate equations in counts: ``rates`` = deterministic propensities at ``x``
        (n_species,), ``dxdt`` = S rates (bursts at their mean size), in place."""
        rates[:] = self.propensities(x, deterministic=True)
        dxdt[:] = np.bincount(self.change_species,
                              weights=self.change_weight * rates[self.change_channel],
                              minlength=dxdt.shape[0])


def _selector(mask: np.ndarray):
    """``mask`` as True or False when it is uniform (no ``np.where`` needed), else as is."""
    if mask.all():
        return True
    if not mask.any():
        return False
    return mask


def has_general_channels(data: KernelData) -> bool:
    """Whether any channel is a bytecode program (kind 1), i.e. needs the interpreter."""
    return bool(np.any(data.kind == 1))


def rate_equations(compiled: "CompiledNetwork", x, p, t: float, rates, dxdt) -> None:
    """dxdt = S a(x) in counts (:func:`net_rates`); for a network without general
    channels through :class:`MassActionRates` (numpy, the same numbers, no compile)."""
    if compiled.mass_action is None:
        net_rates(compiled.data, x, p, t, dxdt.shape[0], rates, dxdt)
    else:
        compiled.mass_action.net_rates(x, rates, dxdt)


@dataclass(frozen=True)
class CompiledNetwork:
    """A network's kernel arrays plus programs for events and outputs.

    ``event_*`` hold per-event program bounds; ``assignment_*`` per assignment.
    """

    network: Network
    data: KernelData
    event_trigger: np.ndarray        # (n_events, 2) program bounds
    event_delay: np.ndarray          # (n_events, 2); start == end means no delay
    event_priority: np.ndarray       # (n_events, 2); start == end means none
    event_flags: np.ndarray          # (n_events, 3): persistent, initial_value, use_trigger_values
    assignment_ptr: np.ndarray       # (n_events + 1,)
    assignment_target: np.ndarray    # (n_assignments,) index
    assignment_is_species: np.ndarray
    assignment_program: np.ndarray   # (n_assignments, 2)
    output_program: np.ndarray       # (n_outputs, 2)
    time_thresholds: np.ndarray      # times at which time-dependent triggers can change
    random: "RandomData | None" = None  # distrib draws and clocks (simulate_ssa only)

    @property
    def n_species(self) -> int:
        return len(self.network.species)

    def parameter_vector(self) -> np.ndarray:
        return self.network.parameter_values.copy()

    def propensities(self, counts: np.ndarray, time: float = 0.0,
                     deterministic: bool = False) -> np.ndarray:
        """Every channel's propensity at ``counts`` (n_species,), shape (n_channels,)."""
        counts = np.asarray(counts, dtype=float)
        if self.mass_action is not None:
            return self.mass_action.propensities(counts, bool(deterministic))
        out = np.empty(len(self.network.reactions))
        all_propensities(self.data, counts, self.parameter_vector(), float(time),
                         deterministic, out)
        return out

    @cached_property
    def mass_action(self) -> "MassActionRates | None":
        """The numpy propensities of a network without general channels, else None."""
        return None if has_general_channels(self.data) else MassActionRates(self.data)

    def outputs(self, counts: np.ndarray, parameters: np.ndarray, time: float) -> np.ndarray:
        """Values of the assignment-rule outputs, shape (n_outputs,)."""
        stack = np.empty(self.data.stack_size)
        return np.array([run_program(self.data.ops, self.data.args, self.data.constants,
                                     start, end, counts, parameters, time, stack)
                         for start, end in self.output_program])


@dataclass(frozen=True)
class Programs:
    """Bytecode for a list of expressions: evaluate item i with :meth:`evaluate`."""

    ops: np.ndarray
    args: np.ndarray
    constants: np.ndarray
    bounds: np.ndarray  # (n_expressions, 2)
    stack_size: int

    def evaluate(self, i: int, counts: np.ndarray, parameters: np.ndarray,
                 time: float) -> float:
        stack = np.empty(self.stack_size)
        start, end = self.bounds[i]
        return run_program(self.ops, self.args, self.constants, start, end,
                           np.asarray(counts, dtype=float), parameters, float(time), stack)

    def evaluate_all(self, counts, parameters, time) -> np.ndarray:
        return np.array([self.evaluate(i, counts, parameters, time)
                         for i in range(len(self.bounds))])


def compile_expressions(network: Network, expressions, owner: str = "expression") -> Programs:
    """Compile sympy expressions over the network's species, parameters and time."""
    assembler = _Assembler(dict(network.species_index),
                           {pid: i for i, pid in enumerate(network.parameter_ids)})
    bounds = np.array([assembler.add(e, owner) for e in expressions], dtype=np.int64)
    ops, args, constants = assembler.arrays()
    return Programs(ops, args, constants, bounds.reshape(-1, 2), assembler.max_depth + 4)


def variable_parameters(network: Network) -> set[str]:
    """Ids of parameters that change during a run: assigned by an event or following a
    rate rule (clocks, continuous variables, variable compartment sizes)."""
    ids = set(network.parameter_ids)
    return {target for event in network.events for target, _ in event.assignments
            if target in ids} | {rule.target for rule in network.rate_rules
                                 if rule.target in ids}


def compile_network(network: Network, *, random_draws: bool = False) -> CompiledNetwork:
    """Compile ``network`` once (cached by the network's hash).

    Random draws (SBML distrib) and clock parameters (rate rules) are compiled only when
    ``random_draws`` is True (the SSA samples them); otherwise a network that has them
    is refused with :class:`UnsupportedFeatureError`, so no analysis silently treats a
    draw or a clock as a constant.
    """
    if not random_draws:
        refuse_randomness(network, clocks=False)
    return _compile_cached(network)


def refuse_randomness(network: Network, analysis: str | None = None, *,
                      clocks: bool = True) -> None:
    """Raise UnsupportedFeatureError naming the first random draw or (with ``clocks``)
    clock parameter: the rate equations follow clocks like any rate rule."""
    analysis = analysis or "this analysis (only simulate_ssa)"
    hint = ("Only simulate_ssa samples SBML distrib draws and follows rate-rule clocks; "
            "for parameter distributions use sbml_cme.analyses.noise.extrinsic_noise.")
    for parameter_id, _ in network.parameter_distributions:
        raise UnsupportedFeatureError("a parameter drawn from a distribution (distrib)",
                                      parameter_id, analysis=analysis, hint=hint)
    for parameter_id, _ in (network.clocks if clocks else ()):
        raise UnsupportedFeatureError(f"a rate rule on variable '{parameter_id}'",
                                      parameter_id, analysis=analysis, hint=hint)
    for event in network.events:
        if any(has_draws(value) for _, value in event.assignments):
            raise UnsupportedFeatureError("a random draw (distrib) in an event assignment",
                                          event.id, analysis=analysis, hint=hint)


def refuse_continuous(network: Network, analysis: str) -> None:
    """Raise UnsupportedFeatureError for a continuous part (continuous species, rate
    rules other than clocks) or a deterministic-only construct, naming the element."""
    for element, construct in network.deterministic_only:
        raise UnsupportedFeatureError(
            construct, element, analysis=analysis,
            hint="Its value is the deterministic drift, which a stochastic process does "
                 "not have; simulate_deterministic runs it.")
    clock_ids = {pid for pid, _ in network.clocks}
    for rule in network.rate_rules:
        if rule.target not in clock_ids:
            kind = "species" if rule.target in network.species_index else "variable"
            raise UnsupportedFeatureError(
                f"a rate rule on {kind} '{rule.target}'", rule.target, analysis=analysis,
                hint="A continuous variable: simulate_hybrid (exact PDMP) or "
                     "simulate_deterministic run it.")
    for species_id in network.continuous_species:
        raise UnsupportedFeatureError(
            f"the continuous species '{species_id}' (non-integer change per firing)",
            species_id, analysis=analysis,
            hint="Molecule counts change by whole numbers here: simulate_hybrid or "
                 "simulate_deterministic run it.")


@lru_cache(maxsize=32)
def _compile_cached(network: Network) -> CompiledNetwork:
    species_index = dict(network.species_index)
    parameter_index = {pid: i for i, pid in enumerate(network.parameter_ids)}
    assembler = _Assembler(species_index, parameter_index)
    changing = {sympy.Symbol(p) for p in variable_parameters(network)} | {
        sympy.Symbol(p) for p, _ in network.parameter_distributions}
    parameter_values = {sympy.Symbol(p.id): p.value for p in network.parameters}

    n_channels = len(network.reactions)
    kind = np.zeros(n_channels, dtype=np.int64)
    rate_constant = np.zeros(n_channels)
    falling = np.zeros(n_channels, dtype=np.bool_)
    program_start = np.zeros(n_channels, dtype=np.int64)
    program_end = np.zeros(n_channels, dtype=np.int64)
    reactant_ptr = [0]
    reactant_species: list[int] = []
    reactant_order: list[int] = []
    reads: list[set[int]] = []  # species each channel's propensity reads
    for j, reaction in enumerate(network.reactions):
        law = reaction.rate_law
        if isinstance(law, MassAction) and not (law.rate_constant.free_symbols & changing):
            value = law.rate_constant.xreplace(parameter_values)
            try:
                rate_constant[j] = float(value)
            except TypeError:
                raise InvalidNetworkError(
                    f"rate constant of '{reaction.id}' is not a number: {value}") from None
            falling[j] = law.falling_factorial
            kind[j] = 2 if law.as_written else 0
            for species_id, order in law.orders:
                reactant_species.append(species_index[species_id])
                reactant_order.append(order)
            reads.append({species_index[s] for s, _ in law.orders})
        else:
            kind[j] = 1
            program_start[j], program_end[j] = assembler.add(law.propensity(), reaction.id)
            reads.append({species_index[s.name] for s in law.propensity().free_symbols
                          if s.name in species_index})
        reactant_ptr.append(len(reactant_species))

    stoichiometry = network.stoichiometry
    change_ptr, change_species, change_amount = [0], [], []
    for j in range(n_channels):
        rows = np.nonzero(stoichiometry[:, j])[0]
        change_species.extend(rows.tolist())
        change_amount.extend(stoichiometry[rows, j].tolist())
        change_ptr.append(len(change_species))

    bursts = _burst_arrays(network)
    readers: dict[int, list[int]] = {}
    for j, species_read in enumerate(reads):
        for i in species_read:
            readers.setdefault(i, []).append(j)
    dependents_ptr, dependents = [0], []
    for j in range(n_channels):
        changed = set(change_species[change_ptr[j]:change_ptr[j + 1]])
        if bursts["burst_species"][j] >= 0:
            changed.add(int(bursts["burst_species"][j]))
        affected = sorted({k for i in changed for k in readers.get(i, [])})
        dependents.extend(affected)
        dependents_ptr.append(len(dependents))

    events = network.events
    random = _RandomCompiler(network, assembler, parameter_index)
    trigger = np.array([assembler.add(e.trigger, e.id) for e in events], dtype=np.int64)
    delay = np.array([assembler.add(e.delay, e.id) if e.delay is not None else (0, 0)
                      for e in events], dtype=np.int64)
    priority = np.array([assembler.add(e.priority, e.id) if e.priority is not None else (0, 0)
                         for e in events], dtype=np.int64)
    flags = np.array([(e.persistent, e.initial_value, e.use_values_from_trigger_time)
                      for e in events], dtype=np.bool_)
    assignment_ptr, target, is_species, program = [0], [], [], []
    for event in events:
        for target_id, value in event.assignments:
            species = target_id in species_index
            target.append(species_index[target_id] if species else parameter_index[target_id])
            is_species.append(species)
            program.append(assembler.add(random.slotted(value), event.id))
        assignment_ptr.append(len(target))
    outputs = np.array([assembler.add(o.formula, o.id) for o in network.outputs],
                       dtype=np.int64)
    random_data = random.data(target, is_species)
    ops, args, constants = assembler.arrays()

    def ints(values):
        return np.array(values, dtype=np.int64)

    data = KernelData(
        kind=kind, rate_constant=rate_constant, reactant_ptr=ints(reactant_ptr),
        reactant_species=ints(reactant_species), reactant_order=ints(reactant_order),
        falling=falling, program_start=program_start, program_end=program_end,
        change_ptr=ints(change_ptr), change_species=ints(change_species),
        change_amount=np.array(change_amount, dtype=np.float64),
        dependents_ptr=ints(dependents_ptr), dependents=ints(dependents),
        ops=ops, args=args, constants=constants, **bursts,
        stack_size=assembler.max_depth + 4)
    for array in data[:-1]:
        array.setflags(write=False)
    return CompiledNetwork(
        network=network, data=data,
        event_trigger=trigger.reshape(-1, 2), event_delay=delay.reshape(-1, 2),
        event_priority=priority.reshape(-1, 2), event_flags=flags.reshape(-1, 3),
        assignment_ptr=ints(assignment_ptr), assignment_target=ints(target),
        assignment_is_species=np.array(is_species, dtype=np.bool_),
        assignment_program=np.array(program, dtype=np.int64).reshape(-1, 2),
        output_program=outputs.reshape(-1, 2),
        time_thresholds=_time_thresholds(network, parameter_values), random=random_data)


def _burst_arrays(network: Network) -> dict[str, np.ndarray]:
    """The ``burst_*`` fields of :class:`KernelData` (see there)."""
    n_channels = len(network.reactions)
    species = np.full(n_channels, -1, dtype=np.int64)
    mean = np.zeros(n_channels)
    log_ratio = np.zeros(n_channels)
    pointer = [0]
    probability: list[float] = []
    cumulative: list[float] = []
    for j, reaction in enumerate(network.reactions):
        burst = reaction.burst
        if burst is not None:
            species[j] = network.species_index[burst.species]
            mean[j] = burst.mean
            if burst.distribution == "geometric" and burst.mean_size > 0:
                log_ratio[j] = math.log(burst.ratio)
            else:  # a finite table (a geometric law of mean 0 is B = 0)
                table = np.array(burst.probabilities if burst.distribution == "finite"
                                 else [1.0])
                sums = np.cumsum(table)
                sums[-1] = 1.0  # so a uniform u in (0, 1] always finds its size
                probability.extend(table.tolist())
                cumulative.extend(sums.tolist())
        pointer.append(len(probability))
    return {"burst_species": species, "burst_mean": mean, "burst_log_ratio": log_ratio,
            "burst_ptr": np.array(pointer, dtype=np.int64),
            "burst_probability": np.array(probability or [0.0]),
            "burst_cumulative": np.array(cumulative or [0.0])}


def _time_thresholds(network: Network, parameter_values: dict) -> np.ndarray:
    """Times at which some event trigger's time comparisons can flip, sorted."""
    thresholds = set()
    for event in network.events:
        for relation in event.trigger.atoms(sympy.Rel):
            if TIME not in relation.free_symbols:
                continue
            difference = sympy.expand(relation.lhs - relation.rhs)
            solution = sympy.solve(difference, TIME) if difference.is_polynomial(TIME) else []
            for value in solution:
                try:
                    thresholds.add(float(value.xreplace(parameter_values)))
                except TypeError:
                    pass
    return np.array(sorted(t for t in thresholds if t >= 0), dtype=float)


def check_time_in_triggers(network: Network, analysis: str) -> None:
    """Raise unless every trigger comparison that reads time reads nothing else that
    changes: only time and constant parameters.

    Such a comparison can change value only at fixed times (``_time_thresholds`` solves
    polynomial ones exactly, :func:`trigger_crossings` finds the others), and the rest of
    the trigger only when the state changes, so checking triggers at reaction firings
    and at those times is exact.
    """
    fixed = set(network.parameter_ids) - variable_parameters(network)
    for event in network.events:
        timed = {r: sympy.true for r in event.trigger.atoms(sympy.Rel)
                 if _reads_only_time(r, fixed)}
        if TIME in event.trigger.xreplace(timed).free_symbols:
            raise UnsupportedFeatureError(
                "an event trigger comparison that reads both time and the state (or a "
                "parameter that changes)", event.id, analysis=analysis,
                hint="simulate_deterministic runs it; or rewrite the trigger so that each "
                     "comparison reads either time and constants, or the state.")


def _reads_only_time(relation, fixed_parameters: set[str]) -> bool:
    symbols = relation.free_symbols
    return TIME in symbols and all(s == TIME or s.name in fixed_parameters for s in symbols)


#: Grid of the scan for trigger crossings: start, and the finest before refusing.
_SCAN_POINTS, _SCAN_LIMIT = 2 ** 12, 2 ** 22


def trigger_crossings(network: Network, t_start: float, t_end: float) -> np.ndarray:
    """Times in (t_start, t_end] at which a trigger comparison on a non-polynomial
    function of time (``sin(10 time) < 0``, a piecewise rule of time) changes value, sorted.

    Each time is the first at which the comparison has its new value, to 1e-13 relative,
    so that a trigger evaluated there sees the change. The comparison's truth is scanned on
    a grid that is refined 4-fold until the number of changes is the same on two
    successive grids, then each change is bisected. Polynomial comparisons are solved
    exactly by ``_time_thresholds``. Raises UnsupportedFeatureError when a comparison
    changes faster than a grid of 4 million points resolves.
    """
    fixed = set(network.parameter_ids) - variable_parameters(network)
    values = {sympy.Symbol(p.id): p.value for p in network.parameters}
    crossings: set[float] = set()
    for event in network.events:
        for relation in event.trigger.atoms(sympy.Rel):
            if not _reads_only_time(relation, fixed) or \
                    sympy.expand(relation.lhs - relation.rhs).is_polynomial(TIME):
                continue
            crossings.update(_truth_changes(relation.xreplace(values), float(t_start),
                                            float(t_end), event.id))
    return np.array(sorted(crossings), dtype=float)


def _truth_changes(relation, t_start: float, t_end: float, element: str) -> list[float]:
    """Where the truth of ``relation`` (a function of time only) changes in (t_start, t_end]."""
    clock = sympy.Dummy("t")  # '<time>' is not a Python name
    function = sympy.lambdify(clock, relation.xreplace({TIME: clock}), "numpy")

    def truth(t):
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(function(t), dtype=bool), np.shape(t))

    points, counted = _SCAN_POINTS, -1
    while True:
        grid = np.linspace(t_start, t_end, points + 1)
        value = truth(grid)
        changes = np.flatnonzero(value[1:] != value[:-1])
        if len(changes) == counted:
            break
        if points >= _SCAN_LIMIT:
            raise UnsupportedFeatureError(
                f"a trigger comparison on time ({relation}) that changes more often than a "
                f"scan of {_SCAN_LIMIT:,} points over [{t_start:g}, {t_end:g}] resolves",
                element, hint="Shorten the time span or use simulate_deterministic.")
        points, counted = 4 * points, len(changes)
    low, high = grid[changes], grid[changes + 1]
    before = value[changes]
    for _ in range(200):
        middle = 0.5 * (low + high)
        open_ = (high - low > 1e-13 * np.maximum(np.abs(high), 1.0)) & (middle > low) & \
            (middle < high)
        if not open_.any():
            break
        unchanged = truth(middle) == before
        low = np.where(open_ & unchanged, middle, low)
        high = np.where(open_ & ~unchanged, middle, high)
    return high.tolist()


def with_trigger_crossings(compiled: "CompiledNetwork", times) -> "CompiledNetwork":
    """``compiled`` with the :func:`trigger_crossings` of ``times``' span added to its
    ``time_thresholds`` (the times at which the kernels check triggers)."""
    crossings = trigger_crossings(compiled.network, times[0], times[-1])
    if not len(crossings):
        return compiled
    return dataclasses.replace(
        compiled, time_thresholds=np.union1d(compiled.time_thresholds, crossings))


# -- random draws and clocks (simulate_ssa) ------------------------------------------------------
class RandomData(NamedTuple):
    """SBML distrib draws, clock parameters and clock crossings, for the SSA kernel.

    Draw d samples distribution ``draw_code[d]`` (``sbml_cme.distributions``) with
    ``draw_n_parameters[d]`` parameters and, if ``draw_truncated[d]``, two bounds; argument
    k is program ``draw_argument[d, k]`` (start, end). The value is stored in the parameter
    slot ``p[draw_slot[d]]`` (slots follow the model's parameters) that the assignment
    programs read. Group g's draws are ``draw_ptr[g]:draw_ptr[g + 1]``: group 0 holds the
    per-trajectory parameter draws, group 1 + e those of event e.

    ``initial_target[i]`` is a parameter drawn once per trajectory, its value program
    ``initial_program[i]``. Clock c is parameter ``clock_index[c]``, advancing at
    ``clock_rate[c]`` per time unit. Crossing k is a trigger comparison on clock
    ``crossing_clock[k]`` whose difference (lhs - rhs) has program
    ``crossing_difference[k]`` and constant time derivative ``crossing_slope[k]`` between
    state changes. ``assignment_whole[a]`` is True when assignment a sets a species that
    takes part in reactions (whole non-negative counts); other species take any real value.
    """

    draw_code: np.ndarray
    draw_n_parameters: np.ndarray
    draw_truncated: np.ndarray
    draw_argument: np.ndarray
    draw_slot: np.ndarray
    draw_ptr: np.ndarray
    initial_target: np.ndarray
    initial_program: np.ndarray
    clock_index: np.ndarray
    clock_rate: np.ndarray
    crossing_clock: np.ndarray
    crossing_difference: np.ndarray
    crossing_slope: np.ndarray
    assignment_whole: np.ndarray
    n_slots: int


class _RandomCompiler:
    """Replaces draws by parameter slots and compiles their arguments, clocks and clock
    crossings into the shared assembler (see :class:`RandomData`)."""

    def __init__(self, network: Network, assembler: _Assembler, parameter_index: dict):
        self.network = network
        self.assembler = assembler
        self.parameter_index = parameter_index
        self.replacements: dict[RandomDraw, sympy.Symbol] = {}
        self.draws: list[RandomDraw] = []
        self.draw_ptr = [0]
        self.needed = bool(network.clocks or network.parameter_distributions or any(
            has_draws(value) for event in network.events for _, value in event.assignments))
        for _, expression in network.parameter_distributions:
            self._register(expression)
        self.draw_ptr.append(len(self.draws))
        for event in network.events:
            for _, value in event.assignments:
                self._register(value)
            self.draw_ptr.append(len(self.draws))

    def _register(self, expression) -> None:
        for draw in draws_in(expression):
            if draw in self.replacements:
                continue
            name = f"<draw {len(self.draws)}>"
            self.parameter_index[name] = len(self.network.parameters) + len(self.draws)
            self.replacements[draw] = sympy.Symbol(name)
            self.draws.append(draw)

    def slotted(self, expression):
        """``expression`` with every draw replaced by its slot symbol."""
        return sympy.sympify(expression).xreplace(self.replacements)

    def data(self, targets: list[int], is_species: list[bool]) -> RandomData:
        network = self.network
        arguments = np.zeros((max(len(self.draws), 1), 4, 2), dtype=np.int64)
        for d, draw in enumerate(self.draws):
            for k, argument in enumerate(draw.args[1:]):
                arguments[d, k] = self.assembler.add(self.slotted(argument), draw.sbml_name)
        initial_program = [self.assembler.add(self.slotted(expression), pid)
                           for pid, expression in network.parameter_distributions]
        clock_position = {pid: c for c, (pid, _) in enumerate(network.clocks)}
        crossing_clock, difference, slope = [], [], []
        for event in network.events:
            for relation in sorted(event.trigger.atoms(sympy.Rel), key=str):
                clocks = {s.name for s in relation.free_symbols} & set(clock_position)
                if not clocks:
                    continue
                clock, lhs_minus_rhs, rate_of_change = _clock_crossing(
                    relation, clocks, dict(network.clocks), event.id)
                crossing_clock.append(clock_position[clock])
                difference.append(self.assembler.add(lhs_minus_rhs, event.id))
                slope.append(self.assembler.add(rate_of_change, event.id))
        whole = _whole_species(network)
        assignment_whole = [bool(species and network.species_ids[target] in whole)
                            for target, species in zip(targets, is_species)]
        return RandomData(
            draw_code=np.array([d.code for d in self.draws], dtype=np.int64),
            draw_n_parameters=np.array([len(d.parameter_names) for d in self.draws],
                                       dtype=np.int64),
            draw_truncated=np.array([d.bounds is not None for d in self.draws],
                                    dtype=np.bool_),
            draw_argument=arguments,
            draw_slot=np.array([len(network.parameters) + d for d in range(len(self.draws))],
                               dtype=np.int64),
            draw_ptr=np.array(self.draw_ptr, dtype=np.int64),
            initial_target=np.array([self.parameter_index[pid] for pid, _ in
                                     network.parameter_distributions], dtype=np.int64),
            initial_program=np.array(initial_program, dtype=np.int64).reshape(-1, 2),
            clock_index=np.array([self.parameter_index[pid] for pid, _ in network.clocks],
                                 dtype=np.int64),
            clock_rate=np.array([rate for _, rate in network.clocks], dtype=np.float64),
            crossing_clock=np.array(crossing_clock, dtype=np.int64),
            crossing_difference=np.array(difference, dtype=np.int64).reshape(-1, 2),
            crossing_slope=np.array(slope, dtype=np.int64).reshape(-1, 2),
            assignment_whole=np.array(assignment_whole, dtype=np.bool_),
            n_slots=len(self.draws))


def _clock_crossing(relation, clocks: set[str], rates: dict[str, float], owner: str):
    """(clock, lhs - rhs, its time derivative) of a trigger comparison on one clock;
    refuses comparisons the SSA cannot time exactly."""
    difference = sympy.expand(relation.lhs - relation.rhs)
    clock = sympy.Symbol(next(iter(clocks)))
    coefficient = sympy.diff(difference, clock)
    others = {s.name for s in coefficient.free_symbols} | {
        s.name for s in difference.free_symbols if s == TIME}
    if len(clocks) > 1 or TIME in difference.free_symbols or others & set(rates) or \
            coefficient.has(RandomDraw):
        raise UnsupportedFeatureError(
            f"an event trigger comparison '{relation}' that is not linear in one rate-rule "
            "parameter", owner, analysis="simulate_ssa",
            hint="Compare one rate-rule parameter (times a constant) with a value that "
                 "changes only at events or reactions.")
    return clock.name, difference, coefficient * rates[clock.name]


def _whole_species(network: Network) -> set[str]:
    """Species that reactions change or read: they hold whole non-negative counts."""
    whole = set()
    for reaction in network.reactions:
        whole |= {s for s, _ in reaction.reactants + reaction.products}
        whole |= {s.name for s in reaction.rate_law.propensity().free_symbols}
        burst = getattr(reaction, "burst", None)
        if burst is not None:
            whole.add(burst.species)
    return whole & set(network.species_ids)
