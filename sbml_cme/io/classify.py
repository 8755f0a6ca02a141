"""Classification of a kinetic law already rewritten in molecule counts.

:func:`classify` decides the propensity form of one SBML reaction (docs/conversion-rules.md):
a mass-action monomial in the reactants gets exact combinatorics ``n**m -> (n)_m``; the
difference of two such monomials, forward in the reactants and backward in the products,
becomes two channels; everything else is kept as written and must be non-negative on
counts (proved, recognised as falling factorials, or checked during simulation).

The importer (:mod:`sbml_cme.io.sbml_reader`) walks the SBML document and hands over what
the classification needs as a :class:`LawContext`; nothing here reads libsbml.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Mapping

import numpy as np
import sympy

from ..errors import UnsupportedFeatureError
from ..network import TIME, Compartment, Conversion, Expression, MassAction, Parameter, Reaction, Species


@dataclass(frozen=True)
class LawContext:
    """What the classification of one kinetic law needs from the model.

    Attributes
    ----------
    species : tuple of Species
        Every species of the network (state variables, not rule outputs).
    parameters : tuple of Parameter
        Every parameter known when the law is read, local ones (``reaction.parameter``)
        included; values in model units.
    compartments : tuple of Compartment
        Every compartment (sizes in model volume units).
    extent_factor : float
        F, molecules per model extent unit.
    falling_factorials : bool
        Apply exact combinatorics ``(n)_m`` to mass-action laws.
    """

    species: tuple[Species, ...]
    parameters: tuple[Parameter, ...]
    compartments: tuple[Compartment, ...]
    extent_factor: float
    falling_factorials: bool = True

    @cached_property
    def species_ids(self) -> frozenset[str]:
        return frozenset(s.id for s in self.species)

    @cached_property
    def species_by_id(self) -> Mapping[str, Species]:
        return {s.id: s for s in self.species}

    @cached_property
    def compartment_sizes(self) -> Mapping[str, float | None]:
        return {c.id: c.size for c in self.compartments}

    @cached_property
    def parameter_values(self) -> Mapping[sympy.Symbol, float]:
        """Parameter symbol -> value (model units)."""
        return {sympy.Symbol(p.id): p.value for p in self.parameters}


def classify(rid: str, sbml_law: str, propensity: sympy.Expr,
             reactants: tuple[tuple[str, int], ...], products: tuple[tuple[str, int], ...],
             context: LawContext) -> list[Reaction]:
    """Decide the propensity form of one SBML reaction; returns its channel(s)."""
    propensity = _snap_round_floats(propensity)
    species = [s for s in propensity.free_symbols if s.name in context.species_ids]
    # Reactants and products absent from the law still count: order 0 is not order 1.
    species = sorted(set(species) | {sympy.Symbol(sid) for sid, _ in reactants + products},
                     key=lambda symbol: symbol.name)
    F = context.extent_factor
    falling = context.falling_factorials
    terms = _polynomial_terms(propensity, species)
    if terms is not None:
        reactant_orders = _orders_vector(reactants, species)
        product_orders = _orders_vector(products, species)
        parameter_values = context.parameter_values
        if len(terms) == 1:
            (exponents, coefficient), = terms.items()
            if exponents == reactant_orders:
                return [_mass_action_channel(rid, rid, sbml_law, coefficient, reactants,
                                             reactants, products, context, falling)]
        if len(terms) == 2 and reactant_orders != product_orders:
            forward = terms.get(reactant_orders)
            backward = terms.get(product_orders)
            if forward is not None and backward is not None:
                forward_value = float(forward.xreplace(parameter_values))
                backward_value = float(backward.xreplace(parameter_values))
                if forward_value >= 0 and backward_value <= 0:
                    return [
                        _mass_action_channel(f"{rid}_forward", rid, sbml_law, forward,
                                             reactants, reactants, products, context, falling),
                        _mass_action_channel(f"{rid}_backward", rid, sbml_law, -backward,
                                             products, products, reactants, context, falling)]
    form = "general"
    if not _provably_non_negative(propensity, species, context):
        if _is_falling_factorial_form(propensity, species, context):
            form = "general (falling factorial as written)"
        elif _non_negative_on_counts(propensity, species, context):
            form = "general (non-negative on whole-number counts)"
        elif _is_signed_difference(propensity, context):
            hint = ("Write reversible reactions as a difference of two mass-action terms "
                    "(forward in the reactants, backward in the products) or as two "
                    "irreversible reactions.")
            if F != 1:
                hint += (f" (Substance is counted as {F:g} molecules per unit; if the law "
                         "counts molecules, e.g. X*(X-1), pass substance_unit='item'.)")
            raise UnsupportedFeatureError("a kinetic law that can turn negative", rid,
                                          hint=hint)
        else:
            form = "general (sign checked during simulation)"
    conversion = Conversion(sbml_law=sbml_law, form=form,
                            combinatorial="law substituted as written", molecules_per_unit=F)
    return [Reaction(rid, reactants, products, Expression(propensity), sbml_id=rid,
                     conversion=conversion)]


def _snap_round_floats(expression: sympy.Expr) -> sympy.Expr:
    """Replace floats within a few ulps of a whole number by that number, so that unit
    factors that cancel (F * V / (F * V)) show as 1, not 1.0000000000000002."""
    snapped = {}
    for value in expression.atoms(sympy.Float):
        nearest = round(float(value))
        if nearest != 0 and abs(float(value) - nearest) <= 4e-16 * abs(nearest):
            snapped[value] = sympy.Integer(nearest)
    return expression.xreplace(snapped) if snapped else expression


def _mass_action_channel(channel_id, rid, sbml_law, coefficient, orders, reactants, products,
                         context: LawContext, falling: bool) -> Reaction:
    species = context.species_by_id
    volume_factor = context.extent_factor
    for sid, order in orders:
        s = species[sid]
        scale = s.molecules_per_unit * (1.0 if s.has_only_substance_units else
                                        context.compartment_sizes[s.compartment])
        volume_factor /= scale ** order
    try:
        macroscopic = float(coefficient.xreplace(
            context.parameter_values)) / volume_factor
    except TypeError:
        macroscopic = None
    if falling and any(order > 1 for _, order in orders):
        combinatorial = ", ".join(f"({s})_{m} = {_falling_text(s, m)}" for s, m in orders
                                  if m > 1)
    else:
        combinatorial = "none needed (orders <= 1)" if falling else "off (n**m as written)"
    conversion = Conversion(sbml_law=sbml_law, form="mass action",
                            macroscopic_constant=macroscopic, volume_factor=volume_factor,
                            combinatorial=combinatorial,
                            molecules_per_unit=context.extent_factor)
    law = MassAction(rate_constant=coefficient, orders=tuple(orders), falling_factorial=falling)
    return Reaction(channel_id, reactants, products, law, sbml_id=rid, conversion=conversion)


def _falling_text(species: str, order: int) -> str:
    return species + "".join(f"({species}-{k})" for k in range(1, order))


def _orders_vector(side, species) -> tuple[int, ...]:
    orders = dict(side)
    return tuple(orders.get(s.name, 0) for s in species)


def _polynomial_terms(expression, species) -> dict[tuple[int, ...], sympy.Expr] | None:
    """Monomial exponents -> coefficient when ``expression`` is a sum of at most two
    monomials in ``species`` (after distributing products); ``None`` otherwise.

    Works structurally (no full expansion), so large rational laws are cheap to reject.
    """
    if TIME in expression.free_symbols:
        return None
    expanded = sympy.expand_mul(expression, deep=False) if isinstance(expression, sympy.Mul) \
        else expression
    terms = sympy.Add.make_args(expanded)
    if len(terms) > 2:
        return None
    result: dict[tuple[int, ...], sympy.Expr] = {}
    for term in terms:
        exponents = dict.fromkeys(species, 0)
        coefficient = sympy.Integer(1)
        for factor in sympy.Mul.make_args(term):
            base, exponent = factor.as_base_exp()
            if base in exponents and exponent.is_Integer and exponent > 0:
                exponents[base] += int(exponent)
            elif factor.free_symbols & set(species):
                return None
            else:
                coefficient *= factor
        key = tuple(exponents[s] for s in species)
        result[key] = result.get(key, 0) + coefficient
    return result


def _provably_non_negative(propensity, species, context: LawContext) -> bool:
    """True when sympy can prove the law >= 0 for all counts >= 0 and the given parameters."""
    values = {symbol: sympy.Float(value) for symbol, value in context.parameter_values.items()}
    nonneg = {s: sympy.Symbol(s.name, nonnegative=True) for s in species}
    nonneg[TIME] = sympy.Symbol("t", nonnegative=True)
    expression = propensity.xreplace(values).xreplace(nonneg)
    try:
        if expression.is_nonnegative:
            return True
        return sympy.count_ops(expression) < 60 and bool(sympy.factor(expression).is_nonnegative)
    except (TypeError, AttributeError, sympy.PolynomialError):
        return False


def _is_signed_difference(propensity, context: LawContext) -> bool:
    """True when the law is a sum with terms of both signs (a net rate, not a propensity)."""
    values = context.parameter_values
    expression = propensity.xreplace(values)
    if isinstance(expression, sympy.Mul):
        expression = sympy.expand_mul(expression, deep=False)
    if not isinstance(expression, sympy.Add):
        return False
    return any(term.could_extract_minus_sign() for term in expression.args)


#: Largest number of whole-number counts checked one by one by _non_negative_on_counts.
_COUNT_CHECK_LIMIT = 100_000


def _non_negative_on_counts(propensity, species, context: LawContext) -> bool:
    """Proof that a one-species polynomial law is >= 0 at every count n = 0, 1, 2, ...

    Beyond its largest real root a polynomial keeps the sign of its leading coefficient,
    so checking every whole number up to that root, in exact rational arithmetic, is a
    proof. Covers laws such as ``k*(100 - 2*P2)*(99 - 2*P2)/2`` (DSMTS 00034), which
    are negative between integers but never at one.
    """
    from fractions import Fraction

    if len(species) != 1:
        return False
    symbol = species[0]
    values = {symbol: sympy.Rational(Fraction(value))
              for symbol, value in context.parameter_values.items()}
    expression = propensity.xreplace(values)
    if expression.free_symbols - {symbol} or not expression.is_polynomial(symbol):
        return False
    expression = sympy.nsimplify(expression, rational=True)
    polynomial = sympy.Poly(expression, symbol)
    coefficients = [Fraction(int(c.p), int(c.q)) for c in polynomial.all_coeffs()]
    if not coefficients or coefficients[0] < 0:
        return False
    roots = [r.real for r in np.roots([float(c) for c in coefficients])
             if abs(r.imag) <= 1e-9 * max(1.0, abs(r))] if len(coefficients) > 1 else []
    last = int(np.ceil(max(roots, default=0.0))) + 2
    if last > _COUNT_CHECK_LIMIT:
        return False
    for n in range(0, last + 1):
        value = Fraction(0)
        for c in coefficients:
            value = value * n + c
        if value < 0:
            return False
    return True


def _is_falling_factorial_form(propensity, species, context: LawContext) -> bool:
    """True for laws written as ``c * n*(n-1)*...`` (DSMTS style), which are >= 0 on
    integer counts even though sympy cannot prove it for reals."""
    if not species or sympy.count_ops(propensity) > 60 or not propensity.is_polynomial(*species):
        return False
    terms = {tuple(e): c.as_expr() for e, c in sympy.Poly(propensity, *species).terms()}
    exponents = max(terms, key=lambda e: sum(e))
    coefficient = terms[exponents]
    target = coefficient
    for s, m in zip(species, exponents):
        target *= sympy.ff(s, m)
    if sympy.expand(sympy.expand_func(target) - propensity) != 0:
        return False
    values = context.parameter_values
    try:
        return float(coefficient.xreplace(values)) >= 0
    except TypeError:
        return False
