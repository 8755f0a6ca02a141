"""Compiled general propensities: one small numba ``cfunc`` per network.

The bytecode interpreter (:func:`sbml_cme.kinetics.run_program`) evaluates any law with
one fixed kernel, at the cost of a dispatch per operation. For the SSA, the general laws
(``kind == 1`` channels) of a network are printed as Python source, one function
``law(j, x, p, t)`` that returns channel ``j``'s propensity, and compiled by numba as a C
callback. The SSA kernels call it through its address (:func:`call_law`, one indirect
call), so the kernels themselves are compiled once per machine, as before.

Exactness: the printer mirrors the interpreter operation for operation (sums and products
in the interpreter's order, starting from 0.0 and 1.0; the same ``_pow``, ``_unary``,
falling factorial, piecewise, max and min) and numba compiles without fast-math. One
difference is deliberate: a power whose exponent is a whole number, written or a
constant parameter (a Hill coefficient ``n`` that no event or rule changes), is
evaluated with that exponent known: ``_ipow`` multiplies for 0..8, and LLVM turns
``pow(x, -1.0)`` into ``1/x``. glibc's ``pow`` at run time (the interpreter) is not
correctly rounded and differs from these in the last bit for about 0.08 % of real
arguments (never for whole counts whose power is below 2**53). So values agree to
rounding; the ensembles for a seed are the interpreter's unless such a last-bit
difference decides a comparison (not seen on the repressilator), and equal in law
always. The generated source then depends on those exponents' values: a network with
another Hill coefficient compiles its own callback.

Cost: the source is written to a user cache directory (``SBML_CME_CACHE_DIR``, else
platformdirs' user cache, else ``~/.cache/sbml_cme``) under the hash of its text and
numba caches the compiled callback beside it, so a network's laws compile once per
machine (a few tenths of a second for a handful of laws; measured in
benchmarks/ssa_speed.py). Networks with more than :data:`MAX_CHANNELS` general channels
or :data:`MAX_SOURCE` characters of source keep the interpreter, as does any failure to
generate or compile (the address is then 0), and so does every network when the
environment variable ``SBML_CME_INTERPRETER=1`` is set (for comparisons).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import os
import sys
import threading
import weakref
from pathlib import Path

import numba
import numpy as np
import sympy
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .network import TIME
from . import kinetics

#: Largest number of general channels, and of source characters, compiled (beyond
#: them compile time grows past a few seconds; the interpreter is used instead).
MAX_CHANNELS = 400
MAX_SOURCE = 200_000

#: Signature of the generated callback: propensity of channel j at counts x, parameters
#: p, time t.
SIGNATURE = types.float64(types.int64, types.CPointer(types.float64),
                          types.CPointer(types.float64), types.float64)


@intrinsic
def call_law(typingctx, address, j, x, p, t):
    """``law(j, x, p, t)`` of the callback at ``address`` (an int64 from
    :func:`law_address`; ``x``, ``p`` float64 arrays)."""
    signature = types.float64(types.int64, types.int64, x, p, types.float64)

    def codegen(context, builder, sig, args):
        address_value, j_value, x_value, p_value, t_value = args
        x_array = context.make_array(sig.args[2])(context, builder, x_value)
        p_array = context.make_array(sig.args[3])(context, builder, p_value)
        double = ir.DoubleType()
        function_type = ir.FunctionType(double, [ir.IntType(64), double.as_pointer(),
                                                 double.as_pointer(), double])
        function = builder.inttoptr(address_value, function_type.as_pointer())
        return builder.call(function, [j_value, x_array.data, p_array.data, t_value])

    return signature, codegen


@numba.njit(cache=True, inline="always")
def _ff(base, order):
    """The interpreter's OP_FF: base (base - 1) ... (base - order + 1)."""
    value = 1.0
    for i in range(int(order)):
        value *= base - i
    return value


@numba.njit(cache=True, inline="always")
def _ipow(base, exponent):
    """base**exponent for a whole exponent 0..8, by multiplication (exact for counts
    whose power is below 2**53)."""
    value = 1.0
    for _ in range(exponent):
        value *= base
    return value


@numba.njit(cache=True, inline="always")
def _max2(other, value):
    return other if other > value else value


@numba.njit(cache=True, inline="always")
def _min2(other, value):
    return other if other < value else value


class _Printer:
    """Python source of one expression, evaluated as :class:`kinetics._Assembler`'s
    bytecode is."""

    def __init__(self, species_index: dict[str, int], parameter_index: dict[str, int],
                 fixed_values: dict[str, float] | None = None):
        self.species_index = species_index
        self.parameter_index = parameter_index
        self.fixed_values = fixed_values or {}  # parameters no event or rule changes

    def _whole_exponent(self, exponent) -> int | None:
        """The exponent as an int when it is a whole number, written or the value of a
        fixed parameter; ``None`` otherwise."""
        if exponent.is_Integer:
            value = float(exponent)
        elif exponent.is_Symbol and exponent.name in self.fixed_values:
            value = float(self.fixed_values[exponent.name])
        elif exponent.is_Float:
            value = float(exponent)
        else:
            return None
        return int(value) if math.isfinite(value) and value == int(value) and \
            abs(value) <= 64 else None

    def print(self, node: sympy.Basic) -> str:
        node = sympy.sympify(node)
        if node is sympy.true or node == sympy.true:
            return "1.0"
        if node is sympy.false or node == sympy.false:
            return "0.0"
        if node.is_Number or node in (sympy.pi, sympy.E) or node.is_NumberSymbol:
            value = complex(node)
            if value.imag:
                raise ValueError(f"a complex value in {node}")
            return _float(value.real)
        if node is sympy.nan:
            return "math.nan"
        if node.is_Symbol:
            if node == TIME:
                return "t"
            if node.name in self.species_index:
                return f"x[{self.species_index[node.name]}]"
            if node.name in self.parameter_index:
                return f"p[{self.parameter_index[node.name]}]"
            raise ValueError(f"undefined symbol {node.name}")
        args = node.args
        if isinstance(node, (sympy.Add, sympy.Mul)):
            # the interpreter: value = 0.0 (1.0); value op= last, ..., op= first
            symbol, text = ("+", "0.0") if isinstance(node, sympy.Add) else ("*", "1.0")
            for child in reversed(args):
                text = f"({text} {symbol} {self.print(child)})"
            return text
        if isinstance(node, sympy.Pow):
            whole = self._whole_exponent(args[1])
            if whole is not None and 0 <= whole <= 8:
                return f"_ipow({self.print(args[0])}, {whole})"
            exponent = repr(float(whole)) if whole is not None else self.print(args[1])
            return f"_pow({self.print(args[0])}, {exponent})"
        if isinstance(node, sympy.FallingFactorial):
            return f"_ff({self.print(args[0])}, {self.print(args[1])})"
        relation = kinetics._RELATIONAL_CODES.get(type(node))
        if relation is not None:
            operator = {kinetics.OP_LT: "<", kinetics.OP_LE: "<=", kinetics.OP_GT: ">",
                        kinetics.OP_GE: ">=", kinetics.OP_EQ: "==", kinetics.OP_NE: "!="}
            return (f"(1.0 if {self.print(args[0])} {operator[relation]} "
                    f"{self.print(args[1])} else 0.0)")
        if isinstance(node, (sympy.And, sympy.Or)):
            joiner = " and " if isinstance(node, sympy.And) else " or "
            return "(1.0 if " + joiner.join(f"({self.print(a)} != 0.0)" for a in args) + \
                " else 0.0)"
        if isinstance(node, sympy.Xor):
            count = " + ".join(f"(1 if {self.print(a)} != 0.0 else 0)" for a in args)
            return f"(1.0 if ({count}) % 2 == 1 else 0.0)"
        if isinstance(node, sympy.Not):
            return f"(1.0 if {self.print(args[0])} == 0.0 else 0.0)"
        if isinstance(node, sympy.ITE):
            condition, then, otherwise = args
            return self.print(sympy.Piecewise((then, condition), (otherwise, True),
                                              evaluate=False))
        if isinstance(node, sympy.Piecewise):
            text = "math.nan"
            for value, condition in reversed(args):
                text = (f"({self.print(value)} if {self.print(condition)} != 0.0 "
                        f"else {text})")
            return text
        if isinstance(node, (sympy.Max, sympy.Min)):
            pick = "_max2" if isinstance(node, sympy.Max) else "_min2"
            text = self.print(args[-1])
            for child in reversed(args[:-1]):
                text = f"{pick}({self.print(child)}, {text})"
            return text
        function = type(node)
        if function in kinetics._UNARY_CODES and len(args) == 1:
            return f"_unary({kinetics._UNARY_CODES[function]}, {self.print(args[0])})"
        raise ValueError(f"the function {function.__name__}")


def _float(value: float) -> str:
    if math.isnan(value):
        return "math.nan"
    if math.isinf(value):
        return "math.inf" if value > 0 else "(-math.inf)"
    return repr(float(value))


def law_source(compiled) -> str | None:
    """Source of the module defining ``law`` for ``compiled``'s general channels;
    ``None`` when there are none, or more than the limits allow."""
    network = compiled.network
    kind = compiled.data.kind
    general = [j for j in range(len(kind)) if kind[j] == 1]
    if not general or len(general) > MAX_CHANNELS:
        return None
    changing = kinetics.variable_parameters(network) | {
        pid for pid, _ in network.parameter_distributions}
    fixed = {p.id: p.value for p in network.parameters if p.id not in changing}
    printer = _Printer(dict(network.species_index),
                       {pid: i for i, pid in enumerate(network.parameter_ids)}, fixed)
    bodies = {j: printer.print(network.reactions[j].rate_law.propensity()) for j in general}
    lines = ["import math", "import numba",
             "from sbml_cme.kinetics import _pow, _unary",
             "from sbml_cme.lawgen import SIGNATURE, _ff, _ipow, _max2, _min2", "",
             "", "@numba.cfunc(SIGNATURE, cache=True)", "def law(j, x, p, t):"]
    _dispatch(general, bodies, lines, "    ")
    lines.append("    return math.nan")
    source = "\n".join(lines) + "\n"
    return source if len(source) <= MAX_SOURCE else None


def _dispatch(channels: list[int], bodies: dict[int, str], lines: list[str],
              indent: str) -> None:
    """``if j == ...: return ...`` for ``channels``, bisected so that a call makes
    O(log n) comparisons."""
    if len(channels) <= 4:
        for j in channels:
            lines.append(f"{indent}if j == {j}:")
            lines.append(f"{indent}    return {bodies[j]}")
        return
    middle = len(channels) // 2
    lines.append(f"{indent}if j < {channels[middle]}:")
    _dispatch(channels[:middle], bodies, lines, indent + "    ")
    _dispatch(channels[middle:], bodies, lines, indent)


def cache_directory() -> Path:
    """Where generated law modules (and numba's cache of them) are kept."""
    configured = os.environ.get("SBML_CME_CACHE_DIR")
    if configured:
        return Path(configured) / "laws"
    try:
        import platformdirs
        return Path(platformdirs.user_cache_dir("sbml_cme")) / "laws"
    except ImportError:
        return Path.home() / ".cache" / "sbml_cme" / "laws"


def _generator_key() -> str:
    """Hash of the code the generated modules call, so that a change to it makes new
    modules (numba's cache does not see changes in the functions a callback calls)."""
    parts = [inspect.getsource(f) for f in (kinetics._pow.py_func, kinetics._unary.py_func,
                                           _ff.py_func, _ipow.py_func, _max2.py_func,
                                           _min2.py_func)]
    parts.append(numba.__version__)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


_LOCK = threading.Lock()
_LOADED: dict[str, object] = {}   # module name -> callback (kept alive: its address is used)
_ADDRESSES: dict[int, int] = {}   # id(compiled.data.kind) -> address (0: the interpreter)


def law_address(compiled) -> int:
    """Address of the compiled ``law`` callback of ``compiled``'s general channels, or 0
    (no general channel, beyond the limits, or generation failed: the SSA then runs the
    bytecode interpreter). Generated and compiled once per machine and network."""
    # keyed by an array of the kernel data, which copies made by dataclasses.replace
    # (with_trigger_crossings) share, and forgotten with it
    owner = compiled.data.kind
    key = id(owner)
    address = _ADDRESSES.get(key)
    if address is not None:
        return address
    with _LOCK:
        address = _ADDRESSES.get(key)
        if address is None:
            try:
                address = _build(compiled)
            except Exception:  # noqa: BLE001 -- any failure: the interpreter is exact too
                address = 0
            _ADDRESSES[key] = address
            weakref.finalize(owner, _ADDRESSES.pop, key, None)
    return address


def _build(compiled) -> int:
    if os.environ.get("SBML_CME_INTERPRETER") == "1":
        return 0
    source = law_source(compiled)
    if source is None:
        return 0
    digest = hashlib.sha256((_generator_key() + source).encode()).hexdigest()[:20]
    name = f"sbml_cme_laws_{digest}"
    callback = _LOADED.get(name)
    if callback is None:
        directory = cache_directory()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.py"
        if not path.exists() or path.read_text() != source:
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(source)
            os.replace(temporary, path)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        callback = module.law
        _LOADED[name] = callback
    return int(callback.address)


def laws_cached(compiled) -> bool:
    """False when the next :func:`law_address` of ``compiled`` generates or compiles its
    law module (no generated module, or no numba cache of it, under
    :func:`cache_directory` or ``NUMBA_CACHE_DIR``); True when it loads from disk or
    needs no module. Used by ``sbml-cme info`` to say a compile is pending."""
    if os.environ.get("SBML_CME_INTERPRETER") == "1" or id(compiled.data.kind) in _ADDRESSES:
        return True
    source = law_source(compiled)
    if source is None:
        return True
    digest = hashlib.sha256((_generator_key() + source).encode()).hexdigest()[:20]
    name = f"sbml_cme_laws_{digest}"
    if name in _LOADED:
        return True
    if not (cache_directory() / f"{name}.py").exists():
        return False
    roots = [cache_directory()] + ([Path(numba.config.CACHE_DIR)]
                                   if numba.config.CACHE_DIR else [])
    return any(any(root.rglob(f"{name}.law-*.nbi")) for root in roots if root.exists())


def compare_with_interpreter(compiled, states: np.ndarray, parameters: np.ndarray,
                             time: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(callback values, interpreter values), each (n_states, n_general), of the general
    channels at ``states`` (n_states, n_species) (used by the tests and benchmarks)."""
    address = law_address(compiled)
    if address == 0:
        raise RuntimeError("no compiled laws for this network")
    data = compiled.data
    channels = np.flatnonzero(data.kind == 1)
    states = np.ascontiguousarray(states, dtype=np.float64)
    compiled_values = np.empty((len(states), len(channels)))
    interpreted = np.empty_like(compiled_values)
    _compare(address, data, channels, states,
             np.ascontiguousarray(parameters, dtype=np.float64), float(time),
             compiled_values, interpreted)
    return compiled_values, interpreted


@numba.njit(cache=True)
def _compare(address, data, channels, states, p, t, compiled_values, interpreted):
    stack = np.empty(data.stack_size)
    for s in range(states.shape[0]):
        x = states[s].copy()
        for c in range(channels.shape[0]):
            j = channels[c]
            compiled_values[s, c] = call_law(address, j, x, p, t)
            interpreted[s, c] = kinetics.run_program(
                data.ops, data.args, data.constants, data.program_start[j],
                data.program_end[j], x, p, t, stack)
