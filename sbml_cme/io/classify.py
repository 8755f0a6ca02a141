"""Classification of a kinetic law already rewritten in molecule counts.

:func:`classify` decides the propensity form of one SBML reaction (docs/conversion-rules.md):
a mass-action monomial in the reactants (times order-1 boundary or modifier species) gets
exact combinatorics ``n**m -> (n)_m``; a law written as falling factorials
(``k/2*X*(X-1)``) is a mass-action channel as written; the difference of two such monomials, forward in the reactants and backward in the products,
becomes two channels; any other law that can turn negative becomes two non-negative
channels, N+/D and |N-|/D (or max(v, 0) and max(-v, 0)); everything else is kept as
written and is non-negative on counts (proved, recognised as falling factorials, or
checked during simulation).

The importer (:mod:`sbml_cme.io.sbml_reader`) walks the SBML document and hands over what
the classification needs as a :class:`LawContext`; nothing here reads libsbml.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Mapping

import numpy as np
import sympy

from ..errors import InvalidSBMLError
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
    def constant_parameter_ids(self) -> frozenset[str]:
        return frozenset(p.id for p in self.parameters if p.constant)

    @cached_property
    def parameter_values(self) -> Mapping[sympy.Symbol, float]:
        """Parameter symbol -> value (model units)."""
        return {sympy.Symbol(p.id): p.value for p in self.parameters}


def classify(rid: str, sbml_law: str, propensity: sympy.Expr,
             reactants: tuple[tuple[str, int], ...], products: tuple[tuple[str, int], ...],
             context: LawContext, reversible: bool = False) -> list[Reaction]:
    """Decide the propensity form of one SBML reaction; returns its channel(s).

    ``propensity`` is the law already in counts (``F * v(n)``). A law that can turn
    negative (a sum with terms of both signs, or any law of undecided sign in a
    ``reversible`` SBML reaction) becomes ``<rid>_forward`` (reactants -> products) and
    ``<rid>_backward`` (products -> reactants), each non-negative, whose difference is
    the law.
    """
    propensity = _snap_round_floats(propensity)
    species = [s for s in propensity.free_symbols if s.name in context.species_ids]
    # Reactants and products absent from the law still count: order 0 is not order 1.
    species = sorted(set(species) | {sympy.Symbol(sid) for sid, _ in reactants + products},
                     key=lambda symbol: symbol.name)
    reaction = _SbmlReaction(rid, sbml_law, reactants, products)
    mass_action = _mass_action_channels(reaction, propensity, species, context)
    if mass_action is not None:
        return mass_action
    form = _general_form(propensity, species, context)
    if form is None or (reversible and form == _UNDECIDED_FORM):
        return _signed_channels(reaction, propensity, context)
    return [_general_channel(rid, reaction, propensity, reactants, products, form, "",
                             context)]


@dataclass(frozen=True)
class _SbmlReaction:
    """The SBML reaction whose channels are being built."""

    id: str
    sbml_law: str
    reactants: tuple[tuple[str, int], ...]
    products: tuple[tuple[str, int], ...]


def _mass_action_channels(reaction: _SbmlReaction, propensity, species,
                          context: LawContext) -> list[Reaction] | None:
    """The mass-action channel (a monomial, or falling factorials as written, in the
    orders :func:`_law_orders` accepts), or the forward/backward pair of a difference of
    two mass-action monomials (forward in the reactants, backward in the products);
    ``None`` when the law is none of these."""
    terms = _polynomial_terms(propensity, species)
    rid, reactants, products = reaction.id, reaction.reactants, reaction.products
    if terms is not None and len(terms) == 1:
        (exponents, coefficient), = terms.items()
        orders = _law_orders(exponents, species, reactants)
        if orders is not None and not _negative_value(coefficient, context):
            return [_mass_action_channel(rid, reaction, coefficient, reactants, products, "",
                                         context, orders=orders)]
    written = _falling_factorial_channel(reaction, propensity, species, context)
    if written is not None:
        return [written]
    if terms is None:
        return None
    reactant_orders = _orders_vector(reactants, species)
    product_orders = _orders_vector(products, species)
    if len(terms) == 2 and reactant_orders != product_orders:
        forward = terms.get(reactant_orders)
        backward = terms.get(product_orders)
        if forward is not None and backward is not None:
            forward_value = float(forward.xreplace(context.parameter_values))
            backward_value = float(backward.xreplace(context.parameter_values))
            if forward_value >= 0 and backward_value <= 0:
                split = (f"forward {_show(forward * _monomial(reactants))}; "
                         f"backward {_show(-backward * _monomial(products))}")
                return [_mass_action_channel(f"{rid}_forward", reaction, forward, reactants,
                                             products, split, context),
                        _mass_action_channel(f"{rid}_backward", reaction, -backward,
                                             products, reactants, split, context)]
    return None


def _law_orders(exponents, species, reactants) -> tuple[tuple[str, int], ...] | None:
    """The mass-action orders of a monomial with ``exponents`` (over ``species``) in a
    reaction with ``reactants``, or ``None`` when they are not mass action.

    Every reactant must enter at its stoichiometry. A species that is not a reactant (a
    boundary species such as Schloegl's B in ``k3*B``, a modifier such as the mRNA in
    ``k*mRNA`` for 0 -> protein) may enter at order 1, where (n)_1 = n leaves no
    combinatorics to decide; at a higher order it is ambiguous (n**2 or (n)_2?) and the
    law stays general. Orders are the reactants', then the other species by id.
    """
    stoichiometry = dict(reactants)
    law = {s.name: m for s, m in zip(species, exponents)}
    if any(law.get(sid, 0) != m for sid, m in stoichiometry.items()):
        return None
    others = sorted(sid for sid, m in law.items() if m and sid not in stoichiometry)
    if any(law[sid] > 1 for sid in others):
        return None
    return tuple(reactants) + tuple((sid, 1) for sid in others)


#: Highest power of a species a falling-factorial law may hold (no chemistry goes beyond).
_MAX_FALLING_ORDER = 8


def _has_high_power(propensity, species) -> bool:
    """True when a power of an expression in the species has an exponent that is not a
    whole number up to ``_MAX_FALLING_ORDER`` (``X**1e12`` would make sympy build a dense
    polynomial of that degree)."""
    names = set(species)
    return any(power.base.free_symbols & names and
               not (power.exp.is_Integer and 0 < power.exp <= _MAX_FALLING_ORDER)
               for power in propensity.atoms(sympy.Pow))


def _falling_factorial_channel(reaction: _SbmlReaction, propensity, species,
                               context: LawContext) -> Reaction | None:
    """The mass-action channel of a law written as ``c * prod_i (n_i)_{m_i}`` with some
    m_i >= 2 (``k/2*X*(X-1)``, ``k/6*X*(X-1)*(X-2)``), orders as :func:`_law_orders`
    accepts and c >= 0: its propensity is the law as written (substitution only,
    THEORY.md §1) and so is its deterministic limit (``MassAction.as_written``), with or
    without the ``falling_factorials`` option. ``None`` for any other law."""
    if TIME in propensity.free_symbols:
        return None
    form = _falling_factorial_terms(propensity, species, context)
    if form is None or max(form[1], default=0) < 2:
        return None
    coefficient, exponents = form
    orders = _law_orders(exponents, species, reaction.reactants)
    if orders is None:
        return None
    return _mass_action_channel(reaction.id, reaction, coefficient, reaction.reactants,
                                reaction.products, "", context, orders=orders,
                                as_written=True)


def _negative_value(coefficient, context: LawContext) -> bool:
    """True when a mass-action coefficient is negative for the parameter values (such a
    law is a backward rate, split by :func:`_signed_channels`)."""
    try:
        return float(coefficient.xreplace(context.parameter_values)) < 0
    except TypeError:
        return False


def _general_form(propensity, species, context: LawContext) -> str | None:
    """The form of a law kept as written, saying how its sign is known; ``None`` for a
    signed difference (a net rate) or a law that is never positive, which must be split."""
    if _provably_non_negative(propensity, species, context):
        return "general"
    if _is_falling_factorial_form(propensity, species, context):
        return "general (falling factorial as written)"
    if _non_negative_on_counts(propensity, species, context):
        return "general (non-negative on whole-number counts)"
    if _is_signed_difference(propensity, context) or _sign(propensity, context) == -1:
        return None
    return _UNDECIDED_FORM


#: A one-way law whose sign sympy cannot decide: every evaluation is checked.
_UNDECIDED_FORM = "general (sign checked during simulation)"


def _general_channel(channel_id, reaction: _SbmlReaction, propensity, reactants, products,
                     form: str, terms: str, context: LawContext) -> Reaction:
    conversion = Conversion(sbml_law=reaction.sbml_law, form=form,
                            combinatorial="law substituted as written",
                            molecules_per_unit=context.extent_factor, terms=terms)
    return Reaction(channel_id, reactants, products, Expression(propensity),
                    sbml_id=reaction.id, conversion=conversion)


# -- laws that can turn negative ---------------------------------------------------------
#: Form of the two channels of a law with no sign-definite split (docs/conversion-rules.md).
SIGN_SPLIT_FORMS = ("general (signed law: max(v, 0), no sign-definite split)",
                    "general (signed law: max(-v, 0), no sign-definite split)")


def _signed_channels(reaction: _SbmlReaction, propensity,
                     context: LawContext) -> list[Reaction]:
    """Forward and backward channels of a law v that can turn negative.

    v = N/D with D > 0 on the non-negative orthant: the terms of N that are >= 0 for the
    parameter values go forward (N+/D), the others backward (|N-|/D). Without such a split
    the channels are max(v, 0) and max(-v, 0). Either way forward - backward = v.
    """
    rid, reactants, products = reaction.id, reaction.reactants, reaction.products
    split = _sign_definite_split(propensity, context)
    if split is not None and (
            _max_vanishes_where_split_does_not(split[0] / split[2], propensity, reactants,
                                               context) or
            _max_vanishes_where_split_does_not(split[1] / split[2], -propensity, products,
                                               context)):
        # A term filed under the wrong side (BIOMD0000000007: kwee = Vw'(1 - Wee1) + Vw
        # Wee1 puts -Vw' Wee1 G2K backward, where PG2 -> G2K must stop at PG2 = 0): the
        # channel would fire without its reactants, where max(-v, 0) does not.
        split = None
    if split is None:
        v = propensity
        terms = (f"v = {_show(v)}: no sign-definite split (the sign of D or of a term of N "
                 "in v = N/D depends on the counts, time or a parameter that can change)")
        # v >= 0 (not v > 0) forward: where v = 0 the piece taken is v itself, so the
        # derivative of forward - backward (rate-equation Jacobian, LNA) is v' there too.
        return [
            _general_channel(f"{rid}_forward", reaction,
                             sympy.Piecewise((v, v >= 0), (0, True)), reactants, products,
                             SIGN_SPLIT_FORMS[0], terms, context),
            _general_channel(f"{rid}_backward", reaction,
                             sympy.Piecewise((-v, v < 0), (0, True)), products, reactants,
                             SIGN_SPLIT_FORMS[1], terms, context)]
    positive, negative, denominator = split
    if negative == 0:  # every term is non-negative: a one-way law after all
        return [_general_channel(rid, reaction, propensity, reactants, products, "general",
                                 "", context)]
    terms = (f"forward {_show(positive)}; backward {_show(negative)}; "
             f"denominator {_show(denominator)}")
    channels = []
    for direction, numerator, side, other in (("forward", positive, reactants, products),
                                              ("backward", negative, products, reactants)):
        if numerator != 0:
            channels.append(_one_way_channel(f"{rid}_{direction}", reaction,
                                             numerator / denominator, side, other, terms,
                                             f"general ({direction} part of a signed law)",
                                             context))
    return channels


def _max_vanishes_where_split_does_not(channel, law, side, context: LawContext,
                                       n_probes: int = 64) -> bool:
    """Whether the split ``channel`` fires without the species consumed on ``side``
    (a list of (species id, stoichiometry)) at some probed state where ``max(law, 0)``
    does not, and ``max(law, 0)`` vanishes at every probe (random counts 0..50, the
    side's consumed species at 0, fixed seed; boundary and constant species never run
    out). Then the max fallback is the channel that stops when its reactants run out."""
    fixed = {sp.id for sp in context.species if sp.boundary or sp.constant}
    empty = [sid for sid, stoichiometry in side if stoichiometry > 0 and sid not in fixed]
    if not empty:
        return False
    values = {symbol: sympy.Float(value) for symbol, value in context.parameter_values.items()
              if symbol.name in context.constant_parameter_ids}
    symbols = [sympy.Symbol(sid) for sid in context.species_ids]
    try:
        functions = [sympy.lambdify(symbols, f.xreplace(values), "numpy")
                     for f in (channel, law)]
    except (TypeError, ValueError, SyntaxError):
        return False
    rng = np.random.default_rng(0)
    index = {sid: k for k, sid in enumerate(context.species_ids)}
    split_fires = False
    with np.errstate(all="ignore"):
        for _ in range(n_probes):
            counts = rng.integers(0, 51, len(symbols)).astype(float)
            counts[[index[sid] for sid in empty if sid in index]] = 0.0
            try:
                split_value, law_value = (float(f(*counts)) for f in functions)
            except (TypeError, ValueError, ZeroDivisionError, OverflowError, NameError):
                return False
            if law_value > 0:
                return False
            split_fires |= split_value > 0
    return split_fires


def _sign_definite_split(propensity, context: LawContext):
    """``(N+, |N-|, D)`` with ``propensity = (N+ - |N-|) / D``, every term of N+ and N-
    sign-definite for the parameter values and D > 0 for counts >= 0; ``None`` when
    no such split is found."""
    numerator, denominator = sympy.fraction(sympy.together(propensity))
    if _sign(denominator, context) != 1:
        if _sign(-denominator, context) != 1:
            return None
        numerator, denominator = -numerator, -denominator
    positive, negative = [], []
    for term in sympy.Add.make_args(sympy.expand(numerator)):
        sign = _sign(term, context)
        if sign is None:
            return None
        (positive if sign >= 0 else negative).append(term if sign >= 0 else -term)
    return sympy.Add(*positive), sympy.Add(*negative), denominator


def _sign(expression, context: LawContext) -> int | None:
    """1 when ``expression`` > 0, 0 when >= 0, -1 when <= 0 (and not >= 0), for every
    count >= 0 and the current values of the constant parameters; ``None`` when unknown.

    A parameter that is not constant (events may change it) keeps an unknown sign, so
    does time.
    """
    values = {symbol: sympy.Float(value) for symbol, value in context.parameter_values.items()
              if symbol.name in context.constant_parameter_ids}
    counts = {sympy.Symbol(sid): sympy.Symbol(sid, nonnegative=True)
              for sid in context.species_ids}
    value = expression.xreplace(values).xreplace(counts)
    if value.is_positive:
        return 1
    if value.is_nonnegative:
        return 0
    if value.is_nonpositive:
        return -1
    return None


def _one_way_channel(channel_id, reaction: _SbmlReaction, law, reactants, products,
                     terms: str, form: str, context: LawContext) -> Reaction:
    """One direction of a split law, converted as a one-way law is: a mass-action
    monomial in its reactants gets exact combinatorics, anything else is kept as written."""
    species = sorted({s for s in law.free_symbols if s.name in context.species_ids}
                     | {sympy.Symbol(sid) for sid, _ in reactants + products},
                     key=lambda symbol: symbol.name)
    monomials = _polynomial_terms(law, species)
    if monomials is not None and len(monomials) == 1:
        (exponents, coefficient), = monomials.items()
        if exponents == _orders_vector(reactants, species):
            return _mass_action_channel(channel_id, reaction, coefficient, reactants,
                                        products, terms, context)
    return _general_channel(channel_id, reaction, law, reactants, products, form, terms,
                            context)


def sign_split_note(reactions) -> str | None:
    """The note (and warning) for a model with laws split as max(v, 0) and max(-v, 0)."""
    split = sorted({r.sbml_id for r in reactions
                    if r.conversion is not None and r.conversion.form in SIGN_SPLIT_FORMS})
    if not split:
        return None
    return (f"the kinetic law(s) of {', '.join(split)} can turn negative and have no "
            "sign-definite split into forward and backward terms: each fires forward at "
            "max(v, 0) and backward at max(-v, 0) (exact rate equations; the noise of "
            "opposing fluxes that cancel inside v is lost; docs/conversion-rules.md)")


def _monomial(side) -> sympy.Expr:
    return sympy.Mul(*[sympy.Symbol(sid) ** order for sid, order in side])


def _show(expression) -> str:
    return str(expression).replace("<time>", "time")


def _snap_round_floats(expression: sympy.Expr) -> sympy.Expr:
    """Replace floats within a few ulps of a whole number by that number, so that unit
    factors that cancel (F * V / (F * V)) show as 1, not 1.0000000000000002."""
    snapped = {}
    for value in expression.atoms(sympy.Float):
        if not np.isfinite(float(value)):
            continue  # an overflowed constant: io/validate.py refuses it by name
        nearest = round(float(value))
        if nearest != 0 and abs(float(value) - nearest) <= 4e-16 * abs(nearest):
            snapped[value] = sympy.Integer(nearest)
    return expression.xreplace(snapped) if snapped else expression


def _mass_action_channel(channel_id, reaction: _SbmlReaction, coefficient, reactants, products,
                         terms: str, context: LawContext, orders=None,
                         as_written: bool = False) -> Reaction:
    """A channel ``coefficient * prod (n)_m`` with orders m (species id, m) ``orders``,
    by default equal to ``reactants``. ``as_written``: the law was written with the
    falling factorials (``MassAction.as_written``), which are then kept whatever the
    ``falling_factorials`` option says."""
    orders = tuple(reactants) if orders is None else tuple(orders)
    falling = context.falling_factorials or as_written
    volume_factor = context.extent_factor
    for sid, order in orders:
        s = context.species_by_id[sid]
        scale = s.molecules_per_unit * (1.0 if s.has_only_substance_units else
                                        context.compartment_sizes[s.compartment])
        volume_factor /= scale ** order
    if not 0 < abs(volume_factor) < math.inf:
        raise InvalidSBMLError(
            f"reaction '{channel_id}': the conversion of its law to molecule counts (extent "
            f"x N_A V per reactant order) is {volume_factor:g}, beyond double precision; "
            "fix the compartment sizes or units")
    try:
        macroscopic = float(coefficient.xreplace(context.parameter_values)) / volume_factor
    except TypeError:
        macroscopic = None
    if falling and any(order > 1 for _, order in orders):
        combinatorial = ", ".join(f"({s})_{m} = {_falling_text(s, m)}" for s, m in orders
                                  if m > 1)
        if as_written:
            combinatorial = f"law substituted as written: {combinatorial}"
    else:
        combinatorial = "none needed (orders <= 1)" if falling else "off (n**m as written)"
    form = "mass action (propensity as written)" if as_written else "mass action"
    conversion = Conversion(sbml_law=reaction.sbml_law, form=form,
                            macroscopic_constant=macroscopic, volume_factor=volume_factor,
                            combinatorial=combinatorial,
                            molecules_per_unit=context.extent_factor, terms=terms)
    law = MassAction(rate_constant=coefficient, orders=orders, falling_factorial=falling,
                     as_written=as_written)
    return Reaction(channel_id, reactants, products, law, sbml_id=reaction.id,
                    conversion=conversion)


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
    if any(not abs(number) < 1e100 for number in expression.atoms(sympy.Float)):
        return False  # factor() turns floats into rationals: inf or 1e300 exhaust memory
    try:
        if expression.is_nonnegative:
            return True
        return sympy.count_ops(expression) < 60 and bool(sympy.factor(expression).is_nonnegative)
    except (TypeError, AttributeError, sympy.PolynomialError):
        return False


def _is_signed_difference(propensity, context: LawContext) -> bool:
    """True when the law, put over a common denominator N/D with the parameter values
    substituted, has a negative term in N or in D: a net rate (or a law whose
    denominator can change sign), not a propensity."""
    expression = propensity.xreplace(context.parameter_values)
    numerator, denominator = sympy.fraction(sympy.together(expression))
    return any(term.could_extract_minus_sign() for part in (numerator, denominator)
               for term in sympy.Add.make_args(sympy.expand_mul(part)))


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

    if len(species) != 1 or not all(math.isfinite(value)
                                    for value in context.parameter_values.values()):
        return False
    symbol = species[0]
    values = {symbol: sympy.Rational(Fraction(value))
              for symbol, value in context.parameter_values.items()}
    expression = propensity.xreplace(values)
    if expression.free_symbols - {symbol} or not expression.is_polynomial(symbol):
        return False
    expression = sympy.nsimplify(expression, rational=True)
    polynomial = sympy.Poly(expression, symbol)
    if not all(c.is_Rational for c in polynomial.all_coeffs()):
        return False  # e.g. sqrt(2) from nsimplify: no exact rational check
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
    return _falling_factorial_terms(propensity, species, context) is not None


def _falling_factorial_terms(propensity, species, context: LawContext):
    """(c, exponents m_i) when ``propensity`` is exactly ``c * prod_i (n_i)_{m_i}`` with
    c >= 0 at the parameter values, else ``None``."""
    if not species or sympy.count_ops(propensity) > 60 or \
            _has_high_power(propensity, species) or not propensity.is_polynomial(*species):
        return None
    terms = {tuple(e): c.as_expr() for e, c in sympy.Poly(propensity, *species).terms()}
    exponents = max(terms, key=sum)
    coefficient = terms[exponents]
    target = coefficient
    for s, m in zip(species, exponents):
        target *= sympy.ff(s, m)
    if sympy.expand(sympy.expand_func(target) - propensity) != 0:
        return None
    try:
        if not float(coefficient.xreplace(context.parameter_values)) >= 0:
            return None
    except TypeError:
        return None
    return coefficient, exponents
