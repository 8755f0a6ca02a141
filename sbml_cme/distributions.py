"""Random draws from SBML Level 3 ``distrib`` distributions, as sympy functions.

A draw such as ``normal(0, 1.5)`` in an event assignment or an initial assignment becomes
a :class:`RandomDraw` expression. Its arguments are ``(draw id, *parameters)`` or
``(draw id, *parameters, lower, upper)`` for a truncated draw. The draw id is a whole
number unique within the model: two draws with the same parameters are independent random
variables, so sympy must never merge them (``normal(0, 1) + normal(0, 1)`` is not
``2 normal(0, 1)``).

Parameter conventions follow the distrib specification (csymbols
``http://www.sbml.org/sbml/symbols/distrib/<name>``):

============  ==========================  =================================================
name          parameters                  law
============  ==========================  =================================================
normal        mean, standard deviation    N(mean, sd^2)
uniform       minimum, maximum            U[min, max)
bernoulli     probability                 1 with probability p, else 0
binomial      trials, probability         Binomial(n, p)
cauchy        location, scale             Cauchy (one-argument form: scale, location 0)
chisquare     degrees of freedom          chi-square(k)
exponential   rate                        density rate exp(-rate x)
gamma         shape, scale                density x^(a-1) exp(-x/s) / (Gamma(a) s^a)
laplace       location, scale             density exp(-|x-m|/s) / (2 s) (one-argument
                                          form: scale, location 0)
lognormal     mean, sd of ln X            ln X ~ N(mean, sd^2)
poisson       rate                        Poisson(rate)
rayleigh      scale                       density x/s^2 exp(-x^2/(2 s^2))
============  ==========================  =================================================

Every distribution except uniform and bernoulli takes two optional trailing arguments,
the truncation bounds: the draw is conditioned on ``lower <= X < upper`` (lower bound
inclusive, upper exclusive, as the specification states; ``INF`` leaves a side open).

This module imports neither libsbml nor numba; the samplers live in
``sbml_cme.analyses.draws``.
"""

from __future__ import annotations

import math

import numpy as np
import sympy

from .errors import UnsupportedFeatureError


class RandomDraw(sympy.Function):
    """A draw from a named distribution; ``args = (draw id, *parameters[, lower, upper])``.

    Subclasses set ``code`` (the sampler's number), ``parameter_names`` and
    ``truncatable``. The expression never evaluates to a number.
    """

    code: int = -1
    parameter_names: tuple[str, ...] = ()
    truncatable: bool = True

    @classmethod
    def eval(cls, *args):  # noqa: D401 - sympy hook: stay unevaluated
        return None

    @property
    def draw_id(self) -> int:
        return int(self.args[0])

    @property
    def parameters(self) -> tuple[sympy.Expr, ...]:
        return self.args[1:1 + len(self.parameter_names)]

    @property
    def bounds(self) -> tuple[sympy.Expr, sympy.Expr] | None:
        """``(lower, upper)`` of a truncated draw, else None."""
        rest = self.args[1 + len(self.parameter_names):]
        return (rest[0], rest[1]) if rest else None

    def _sympystr(self, printer) -> str:
        return f"{self.sbml_name}({', '.join(printer.doprint(a) for a in self.args[1:])})"

    @property
    def sbml_name(self) -> str:
        return type(self).__name__

    def scipy_distribution(self, values: dict[str, float]):
        """The law as a frozen scipy.stats distribution, arguments evaluated at ``values``
        (symbol name -> number). Truncated draws are refused (no frozen scipy law)."""
        import scipy.stats as st

        arguments = [_number(a, values, self.sbml_name) for a in self.parameters]
        if self.bounds is not None:
            lower, upper = (_number(b, values, self.sbml_name) for b in self.bounds)
            if not (math.isinf(lower) and math.isinf(upper)):
                raise UnsupportedFeatureError(
                    f"a truncated {self.sbml_name} draw as a parameter distribution",
                    self.sbml_name, hint="Pass distributions= explicitly.")
        return _SCIPY[self.sbml_name](st, *arguments)


    def nominal(self, values: dict[str, float]) -> float:
        """A representative value: the mean (conditional on the bounds when truncated),
        the median when the mean is undefined (Cauchy)."""
        import scipy.stats as st

        arguments = [_number(a, values, self.sbml_name) for a in self.parameters]
        law = _SCIPY[self.sbml_name](st, *arguments)
        if self.bounds is not None:
            lower, upper = (_number(b, values, self.sbml_name) for b in self.bounds)
            if self.sbml_name == "cauchy":
                low, high = law.cdf(lower), law.cdf(upper)
                return float(law.ppf(0.5 * (low + high)))
            return float(law.expect(lambda x: x, lb=lower, ub=upper, conditional=True))
        mean = float(law.mean())
        return mean if math.isfinite(mean) else float(law.median())


def _number(expression, values: dict[str, float], owner: str) -> float:
    value = sympy.sympify(expression).xreplace(
        {s: sympy.Float(values[s.name]) for s in expression.free_symbols if s.name in values})
    try:
        return float(value)
    except TypeError:
        raise UnsupportedFeatureError(f"a {owner} argument that is not a number ({value})",
                                      owner) from None


def _make(name: str, code: int, parameters: tuple[str, ...], truncatable: bool = True):
    return type(name, (RandomDraw,), {"code": code, "parameter_names": parameters,
                                      "truncatable": truncatable,
                                      "__module__": __name__})


normal = _make("normal", 0, ("mean", "sd"))
uniform = _make("uniform", 1, ("minimum", "maximum"), truncatable=False)
bernoulli = _make("bernoulli", 2, ("probability",), truncatable=False)
binomial = _make("binomial", 3, ("trials", "probability"))
cauchy = _make("cauchy", 4, ("location", "scale"))
chisquare = _make("chisquare", 5, ("degrees_of_freedom",))
exponential = _make("exponential", 6, ("rate",))
gamma = _make("gamma", 7, ("shape", "scale"))
laplace = _make("laplace", 8, ("location", "scale"))
lognormal = _make("lognormal", 9, ("mean", "sd"))
poisson = _make("poisson", 10, ("rate",))
rayleigh = _make("rayleigh", 11, ("scale",))

#: Every distribution by its SBML name.
DISTRIBUTIONS: dict[str, type[RandomDraw]] = {
    cls.__name__: cls for cls in (normal, uniform, bernoulli, binomial, cauchy, chisquare,
                                  exponential, gamma, laplace, lognormal, poisson, rayleigh)}

#: Distributions whose one-argument form means (scale) with location 0.
_LOCATION_DEFAULTS = {"cauchy", "laplace"}

_SCIPY = {
    "normal": lambda st, m, s: st.norm(m, s),
    "uniform": lambda st, a, b: st.uniform(a, b - a),
    "bernoulli": lambda st, p: st.bernoulli(p),
    "binomial": lambda st, n, p: st.binom(int(round(n)), p),
    "cauchy": lambda st, m, s: st.cauchy(m, s),
    "chisquare": lambda st, k: st.chi2(k),
    "exponential": lambda st, rate: st.expon(scale=1.0 / rate),
    "gamma": lambda st, a, s: st.gamma(a, scale=s),
    "laplace": lambda st, m, s: st.laplace(m, s),
    "lognormal": lambda st, m, s: st.lognorm(s, scale=np.exp(m)),
    "poisson": lambda st, rate: st.poisson(rate),
    "rayleigh": lambda st, s: st.rayleigh(scale=s),
}


def make_draw(name: str, draw_id: int, arguments: list, element_id: str) -> RandomDraw:
    """The draw ``name(*arguments)`` with its argument count checked and the one-argument
    forms of cauchy and laplace completed with location 0."""
    cls = DISTRIBUTIONS[name]
    n = len(cls.parameter_names)
    if name in _LOCATION_DEFAULTS and len(arguments) in (1, 3):
        arguments = [sympy.Integer(0), *arguments]
    allowed = (n, n + 2) if cls.truncatable else (n,)
    if len(arguments) not in allowed:
        raise UnsupportedFeatureError(
            f"a {name} draw with {len(arguments)} arguments (it takes "
            f"{' or '.join(map(str, allowed))})", element_id)
    return cls(sympy.Integer(draw_id), *arguments)


def draws_in(expression) -> list[RandomDraw]:
    """The draws inside ``expression``, innermost first (post-order)."""
    found: list[RandomDraw] = []

    def visit(node):
        for child in node.args:
            visit(child)
        if isinstance(node, RandomDraw) and node not in found:
            found.append(node)

    if expression is not None:
        visit(sympy.sympify(expression))
    return found


def has_draws(expression) -> bool:
    """Whether ``expression`` contains a random draw."""
    return expression is not None and bool(sympy.sympify(expression).atoms(RandomDraw))
