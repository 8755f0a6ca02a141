"""Turn libsbml ASTs (MathML) into sympy expressions over SBML ids.

Names become ``sympy.Symbol(id)`` (after optional renaming, used for local parameters),
the time csymbol becomes :data:`sbml_cme.network.TIME`, Avogadro's csymbol its value, and
function definitions are expanded in place. ``rateOf(x)`` becomes :data:`RATE_OF` and a
reaction id its symbol, for the importer to replace. ``delay`` raises
:class:`UnsupportedFeatureError` naming the element; on request (``delays=True``) it is
kept as :data:`DELAY` for the importer to convert.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import libsbml
import sympy

from ..distributions import make_draw
from ..errors import InvalidSBMLError, UnsupportedFeatureError
from ..network import TIME
from .swig_types import ast_type

#: Value of the ``avogadro`` csymbol fixed by the SBML Level 3 specifications.
SBML_AVOGADRO_CSYMBOL = 6.02214179e23

_UNARY = {
    libsbml.AST_FUNCTION_ABS: sympy.Abs,
    libsbml.AST_FUNCTION_EXP: sympy.exp,
    libsbml.AST_FUNCTION_LN: sympy.log,
    libsbml.AST_FUNCTION_FLOOR: sympy.floor,
    libsbml.AST_FUNCTION_CEILING: sympy.ceiling,
    libsbml.AST_FUNCTION_FACTORIAL: sympy.factorial,
    libsbml.AST_FUNCTION_SIN: sympy.sin,
    libsbml.AST_FUNCTION_COS: sympy.cos,
    libsbml.AST_FUNCTION_TAN: sympy.tan,
    libsbml.AST_FUNCTION_SEC: sympy.sec,
    libsbml.AST_FUNCTION_CSC: sympy.csc,
    libsbml.AST_FUNCTION_COT: sympy.cot,
    libsbml.AST_FUNCTION_SINH: sympy.sinh,
    libsbml.AST_FUNCTION_COSH: sympy.cosh,
    libsbml.AST_FUNCTION_TANH: sympy.tanh,
    libsbml.AST_FUNCTION_SECH: sympy.sech,
    libsbml.AST_FUNCTION_CSCH: sympy.csch,
    libsbml.AST_FUNCTION_COTH: sympy.coth,
    libsbml.AST_FUNCTION_ARCSIN: sympy.asin,
    libsbml.AST_FUNCTION_ARCCOS: sympy.acos,
    libsbml.AST_FUNCTION_ARCTAN: sympy.atan,
    libsbml.AST_FUNCTION_ARCSEC: sympy.asec,
    libsbml.AST_FUNCTION_ARCCSC: sympy.acsc,
    libsbml.AST_FUNCTION_ARCCOT: sympy.acot,
    libsbml.AST_FUNCTION_ARCSINH: sympy.asinh,
    libsbml.AST_FUNCTION_ARCCOSH: sympy.acosh,
    libsbml.AST_FUNCTION_ARCTANH: sympy.atanh,
    libsbml.AST_FUNCTION_ARCSECH: sympy.asech,
    libsbml.AST_FUNCTION_ARCCSCH: sympy.acsch,
    libsbml.AST_FUNCTION_ARCCOTH: sympy.acoth,
}

_RELATIONAL = {
    libsbml.AST_RELATIONAL_EQ: sympy.Eq,
    libsbml.AST_RELATIONAL_NEQ: sympy.Ne,
    libsbml.AST_RELATIONAL_GT: sympy.Gt,
    libsbml.AST_RELATIONAL_GEQ: sympy.Ge,
    libsbml.AST_RELATIONAL_LT: sympy.Lt,
    libsbml.AST_RELATIONAL_LEQ: sympy.Le,
}

#: SBML L3 distrib csymbols (libsbml AST types) by distribution name.
_DISTRIB = {getattr(libsbml, f"AST_DISTRIB_FUNCTION_{name.upper()}"): name
            for name in ("normal", "uniform", "bernoulli", "binomial", "cauchy", "chisquare",
                         "exponential", "gamma", "laplace", "lognormal", "poisson", "rayleigh")
            if hasattr(libsbml, f"AST_DISTRIB_FUNCTION_{name.upper()}")}

#: The SBML delay csymbol, ``DELAY(value, delay)``, kept only when the importer asks.
DELAY = sympy.Function("delay")

#: The SBML L3V2 rateOf csymbol, ``RATE_OF(symbol)``: the importer replaces it by the
#: symbol's rate of change.
RATE_OF = sympy.Function("rateOf")

_LOGICAL = {
    libsbml.AST_LOGICAL_AND: sympy.And,
    libsbml.AST_LOGICAL_OR: sympy.Or,
    libsbml.AST_LOGICAL_XOR: sympy.Xor,
}


class FunctionDefinitions:
    """SBML function definitions by id: (argument names, body AST)."""

    def __init__(self, model: libsbml.Model):
        self.bodies: dict[str, tuple[list[str], libsbml.ASTNode]] = {}
        for fd in model.getListOfFunctionDefinitions():
            math_ = fd.getMath()
            if math_ is None:
                continue
            args = [fd.getArgument(i).getName() for i in range(fd.getNumArguments())]
            self.bodies[fd.getId()] = (args, fd.getBody())
        #: Each random draw gets a new id, so independent draws never merge in sympy.
        self.draw_count = 0

    def next_draw_id(self) -> int:
        self.draw_count += 1
        return self.draw_count - 1


def to_sympy(ast: libsbml.ASTNode, element_id: str, functions: FunctionDefinitions,
             rename: Mapping[str, sympy.Basic] | None = None, *,
             numeric: bool = True, delays: bool = False) -> sympy.Basic:
    """Convert ``ast`` to sympy.

    Parameters
    ----------
    ast : libsbml.ASTNode
        The math to convert.
    element_id : str
        Id of the SBML element that owns the math (named in errors).
    functions : FunctionDefinitions
        Function definitions to expand.
    rename : mapping, optional
        Name -> sympy expression replacements (local parameters, lambda arguments).
    numeric : bool
        The math is a value (true/false become 1/0); False for trigger conditions.
    delays : bool
        Keep the delay csymbol as :data:`DELAY` ``(value, delay)`` (the importer converts
        it, ``read_sbml(..., delays="phases")``) instead of refusing it.
    """
    if ast is None:
        raise UnsupportedFeatureError("missing math", element_id)
    converter = _Converter(element_id, functions)
    converter.keep_delays = delays
    result = converter.convert(ast, dict(rename or {}))
    return _as_number(result) if numeric else result


class _Converter:
    def __init__(self, element_id: str, functions: FunctionDefinitions):
        self.element_id = element_id
        self.functions = functions
        self.keep_delays = False

    def unsupported(self, what: str, hint: str = "") -> UnsupportedFeatureError:
        return UnsupportedFeatureError(what, self.element_id, hint=hint)

    def convert(self, ast, names: dict) -> sympy.Basic:
        kind = ast_type(ast)
        children = [ast.getChild(i) for i in range(ast.getNumChildren())]
        sub: Callable = lambda node: self.convert(node, names)  # noqa: E731

        if kind == libsbml.AST_INTEGER:
            return sympy.Integer(ast.getValue())
        if kind in (libsbml.AST_REAL, libsbml.AST_REAL_E, libsbml.AST_RATIONAL):
            value = ast.getValue()
            if math.isinf(value):
                return sympy.oo if value > 0 else -sympy.oo
            if math.isnan(value):
                return sympy.nan
            if kind == libsbml.AST_RATIONAL:
                return sympy.Rational(ast.getNumerator(), ast.getDenominator())
            return sympy.Float(value)
        if kind == libsbml.AST_NAME:
            name = ast.getName()
            if name in names:
                return names[name]
            # A reaction id stands for its rate; the importer inlines the kinetic law.
            return sympy.Symbol(name)
        if kind == libsbml.AST_NAME_TIME:
            return TIME
        if kind == libsbml.AST_NAME_AVOGADRO:
            # The value SBML Level 3 defines for the csymbol (not the 2019 SI value).
            return sympy.Float(SBML_AVOGADRO_CSYMBOL)
        if kind == libsbml.AST_CONSTANT_E:
            return sympy.E
        if kind == libsbml.AST_CONSTANT_PI:
            return sympy.pi
        if kind == libsbml.AST_CONSTANT_TRUE:
            return sympy.true
        if kind == libsbml.AST_CONSTANT_FALSE:
            return sympy.false
        if kind == libsbml.AST_FUNCTION_DELAY:
            if self.keep_delays and len(children) == 2:
                return DELAY(*(_as_number(sub(child)) for child in children))
            raise self.unsupported(
                "the delay csymbol", "read_sbml(path, delays='phases', delay_phases=k) turns a "
                "kinetic law C*delay(f, tau) into a chain of k memoryless phases "
                "(docs/delays.md); delay() elsewhere (rules, events) has no stochastic form.")
        if kind == getattr(libsbml, "AST_FUNCTION_RATE_OF", -999):
            if len(children) != 1 or ast_type(children[0]) != libsbml.AST_NAME:
                raise self.unsupported("a rateOf csymbol whose argument is not an identifier")
            return RATE_OF(sympy.Symbol(children[0].getName()))
        number = lambda node: _as_number(sub(node))  # noqa: E731
        _check_arity(kind, len(children), ast, self.element_id)
        if kind == libsbml.AST_PLUS:
            return sympy.Add(*map(number, children)) if children else sympy.Integer(0)
        if kind == libsbml.AST_TIMES:
            return sympy.Mul(*map(number, children)) if children else sympy.Integer(1)
        if kind == libsbml.AST_MINUS:
            if len(children) == 1:
                return -number(children[0])
            return number(children[0]) - number(children[1])
        if kind == libsbml.AST_DIVIDE:
            return number(children[0]) / number(children[1])
        if kind in (libsbml.AST_POWER, libsbml.AST_FUNCTION_POWER):
            return number(children[0]) ** number(children[1])
        if kind == libsbml.AST_FUNCTION_ROOT:
            if len(children) == 1:
                return sympy.sqrt(number(children[0]))
            return number(children[1]) ** (1 / number(children[0]))
        if kind == libsbml.AST_FUNCTION_LOG:
            if len(children) == 1:
                return sympy.log(number(children[0]), 10)
            return sympy.log(number(children[1]), number(children[0]))
        if kind in _UNARY:
            return _UNARY[kind](number(children[0]))
        if kind in _RELATIONAL:
            values = [_as_number(sub(child)) for child in children]  # L3V2: true is 1
            pairs = [_RELATIONAL[kind](a, b) for a, b in zip(values, values[1:])]
            return sympy.And(*pairs) if len(pairs) > 1 else pairs[0]
        if kind in _LOGICAL:
            values = [_as_boolean(v) for v in map(sub, children)]
            if not values:
                return sympy.true if kind == libsbml.AST_LOGICAL_AND else sympy.false
            return _LOGICAL[kind](*values)
        if kind == libsbml.AST_LOGICAL_NOT:
            return sympy.Not(_as_boolean(sub(children[0])))
        if kind == libsbml.AST_FUNCTION_PIECEWISE:
            values = list(map(sub, children))
            pieces = [(_as_number(values[i]), _as_boolean(values[i + 1]))
                      for i in range(0, len(values) - 1, 2)]
            otherwise = _as_number(values[-1]) if len(values) % 2 == 1 else sympy.nan
            return sympy.Piecewise(*pieces, (otherwise, True))
        if kind == getattr(libsbml, "AST_FUNCTION_MAX", -999):
            return sympy.Max(*map(sub, children))
        if kind == getattr(libsbml, "AST_FUNCTION_MIN", -999):
            return sympy.Min(*map(sub, children))
        if kind == getattr(libsbml, "AST_FUNCTION_QUOTIENT", -999):
            a, b = map(sub, children)
            return sympy.floor(a / b)
        if kind == getattr(libsbml, "AST_FUNCTION_REM", -999):
            a, b = map(sub, children)
            return a - b * sympy.floor(a / b)
        if kind == libsbml.AST_FUNCTION:
            return self.call(ast.getName(), list(map(sub, children)))
        if kind in _DISTRIB:
            return make_draw(_DISTRIB[kind], self.functions.next_draw_id(),
                             list(map(number, children)), self.element_id)
        raise self.unsupported(f"the MathML construct '{ast.getName() or kind}'")

    def call(self, name: str, arguments: list) -> sympy.Basic:
        if name not in self.functions.bodies:
            raise self.unsupported(f"a call to the undefined function '{name}'")
        parameters, body = self.functions.bodies[name]
        if len(parameters) != len(arguments):
            raise self.unsupported(f"a call to '{name}' with {len(arguments)} arguments "
                                   f"(it takes {len(parameters)})")
        return self.convert(body, dict(zip(parameters, arguments)))


#: Numbers of arguments each fixed-arity MathML operator takes.
_ARITY = {
    libsbml.AST_MINUS: (1, 2), libsbml.AST_DIVIDE: (2,), libsbml.AST_POWER: (2,),
    libsbml.AST_FUNCTION_POWER: (2,), libsbml.AST_FUNCTION_ROOT: (1, 2),
    libsbml.AST_FUNCTION_LOG: (1, 2), libsbml.AST_LOGICAL_NOT: (1,),
    **{kind: (1,) for kind in _UNARY},
    **{getattr(libsbml, name): (2,) for name in ("AST_FUNCTION_QUOTIENT", "AST_FUNCTION_REM")
       if hasattr(libsbml, name)},
}


def _check_arity(kind: int, n_arguments: int, ast, element_id: str) -> None:
    """Malformed math (``<divide/>`` with one argument, ...) is an InvalidSBMLError."""
    allowed = _ARITY.get(kind)
    if kind in _RELATIONAL and n_arguments < 2 or allowed and n_arguments not in allowed:
        expected = "at least 2" if allowed is None else " or ".join(map(str, allowed))
        raise InvalidSBMLError(f"the math of '{element_id}' applies '{ast.getName() or kind}' "
                               f"to {n_arguments} argument(s), where it takes {expected}")


def _as_number(value):
    """SBML L3V2 lets booleans stand for numbers in arithmetic (true is 1)."""
    if value is sympy.true or value is sympy.false:
        return sympy.Integer(1 if value is sympy.true else 0)
    if _is_logical(value):
        return sympy.Piecewise((1, value), (0, True))
    return value


def _is_logical(value) -> bool:
    """A truth value (sympy's Symbol also subclasses Boolean, so test the kinds)."""
    return value is sympy.true or value is sympy.false or isinstance(
        value, (sympy.logic.boolalg.BooleanFunction, sympy.core.relational.Relational))


def _as_boolean(value):
    """SBML lets numbers stand for booleans in logical context (non-zero is true)."""
    if _is_logical(value):
        return value
    return sympy.Ne(value, 0)
