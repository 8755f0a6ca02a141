"""The stochastic reaction network: frozen dataclasses in molecule counts.

A :class:`Network` holds plain values only. Every expression in it (rate laws, event
triggers and assignments, assignment-rule outputs) is a sympy expression in which a
species id stands for that species' *molecule count*, a parameter id for the parameter's
value and :data:`TIME` for simulated time. SBML units and volumes have already been
applied by the importer (``sbml_cme.io``); the record of how is kept per reaction channel
in :class:`Conversion` and shown by :meth:`Network.conversion_table`.

This module imports neither libsbml nor numba.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping

import numpy as np
import pandas as pd
import sympy

from .errors import InvalidNetworkError, OptionsError

#: The symbol for simulated time inside network expressions.
TIME = sympy.Symbol("<time>")

#: Avogadro's number (SBML L3V2 value), molecules per mole.
AVOGADRO = 6.02214076e23


@dataclass(frozen=True)
class Compartment:
    """A compartment of constant size.

    ``size`` is in the model's volume units (``None`` when the model leaves it unset and
    nothing needs it); ``litres_per_unit`` converts it to litres.
    """

    id: str
    name: str = ""
    size: float | None = None
    spatial_dimensions: float | None = 3.0
    litres_per_unit: float = 1.0
    #: False for a variable volume (set by a rule, an event or a rate rule): its size is
    #: then the value of the network parameter (event or rate rule) or output (assignment
    #: rule) with the same id, and ``size`` the initial size.
    constant: bool = True


@dataclass(frozen=True)
class Species:
    """A species, counted in molecules.

    Attributes
    ----------
    initial_count : float
        Initial number of molecules (exact conversion; the SSA rounds it).
    molecules_per_unit : float
        Molecules per model substance unit (N_A for mole, 1 for item).
    has_only_substance_units : bool
        Whether the SBML symbol means the amount (True) or the concentration (False).
    boundary, constant : bool
        Reactions do not change a boundary or constant species.
    continuous : bool
        Part of the continuous partition: a real-valued count changed by the ODE of its
        rate rule and continuous fluxes, and by the jumps that carry it (docs/design.md,
        "Continuous parts").
    """

    id: str
    compartment: str
    initial_count: float
    molecules_per_unit: float = 1.0
    has_only_substance_units: bool = True
    boundary: bool = False
    constant: bool = False
    name: str = ""
    continuous: bool = False

    @property
    def fixed(self) -> bool:
        """True when reactions never change this species' count."""
        return self.boundary or self.constant


@dataclass(frozen=True)
class Parameter:
    """A model parameter (local parameters are renamed ``reaction.parameter``)."""

    id: str
    value: float
    constant: bool = True


@dataclass(frozen=True)
class MassAction:
    """Propensity ``rate_constant * prod_i (n_i)_{m_i}`` (or ``n_i**m_i`` when
    ``falling_factorial`` is False), in events per time.

    ``rate_constant`` is a sympy expression in parameters (usually a number): the
    stochastic constant applied to the falling factorials. The deterministic limit is
    ``rate_constant * prod_i n_i**m_i``.

    ``as_written``: the SBML law itself was written as ``rate_constant * prod_i (n_i)_{m_i}``
    (``k/2*X*(X-1)``, DSMTS style). It is converted by substitution only (THEORY.md §1),
    so its deterministic limit is that same product, the model's own ODE; the propensity
    is unchanged. Requires ``falling_factorial``.
    """

    rate_constant: sympy.Expr
    orders: tuple[tuple[str, int], ...]
    falling_factorial: bool = True
    as_written: bool = False

    def __post_init__(self):
        if self.as_written and not self.falling_factorial:
            raise InvalidNetworkError("a mass-action law written as falling factorials "
                                      "(as_written=True) needs falling_factorial=True")

    def propensity(self) -> sympy.Expr:
        """The propensity as a sympy expression in counts."""
        result = self.rate_constant
        for species_id, order in self.orders:
            n = sympy.Symbol(species_id)
            result *= sympy.ff(n, order) if self.falling_factorial else n**order
        return result

    def deterministic_limit(self) -> sympy.Expr:
        """Rate in molecules per time with continuous counts (``n**m``; the falling
        factorials themselves for a law ``as_written``)."""
        if self.as_written:
            return self.propensity()
        result = self.rate_constant
        for species_id, order in self.orders:
            result *= sympy.Symbol(species_id) ** order
        return result


@dataclass(frozen=True)
class Expression:
    """A general propensity, already in molecule counts (substitution only)."""

    formula: sympy.Expr

    def propensity(self) -> sympy.Expr:
        return self.formula

    def deterministic_limit(self) -> sympy.Expr:
        return self.formula


RateLaw = MassAction | Expression


@dataclass(frozen=True)
class RateRule:
    """An ODE ``d(target)/dt = formula`` (an SBML rate rule) on a continuous variable.

    ``target`` is a continuous species (``formula`` in molecules per time) or a parameter
    (model units per time; a variable compartment is the parameter of the same id).
    ``formula`` is a sympy expression in counts, parameters and :data:`TIME`.
    """

    target: str
    formula: sympy.Expr


@dataclass(frozen=True)
class Conversion:
    """How one channel's propensity was derived from its SBML kinetic law.

    Attributes
    ----------
    sbml_law : str
        The kinetic law as written in the SBML file (infix).
    form : str
        ``"mass action"``, ``"mass action (propensity as written)"`` or ``"general"``.
    macroscopic_constant : float or None
        Coefficient K of the law in model units, law = K * prod(species values ** m).
    volume_factor : float or None
        F / prod((F V_i)**m_i): converts K to a count-level rate constant.
    combinatorial : str
        How counts enter: falling factorials, powers or the law as written.
    molecules_per_unit : float
        F, molecules per model extent unit.
    terms : str
        For a channel of a law that can turn negative: which terms of the law went
        forward and which backward ("" for a one-way law).
    """

    sbml_law: str
    form: str
    macroscopic_constant: float | None = None
    volume_factor: float | None = None
    combinatorial: str = ""
    molecules_per_unit: float = 1.0
    terms: str = ""


#: Burst-size laws known to :class:`Burst`.
BURST_DISTRIBUTIONS = ("geometric", "finite")


@dataclass(frozen=True)
class Burst:
    """A random number B of molecules of one species made each time a channel fires.

    ``distribution="geometric"``: P(B = k) = (1 - q) q^k on k = 0, 1, 2, ... with mean
    ``mean_size`` = b and q = b / (1 + b). ``distribution="finite"``: P(B = k) =
    ``probabilities[k]`` for k = 0..K (they must sum to 1 within 1e-9; a table off by
    more than round-off, 1e-12, is divided by its sum; trailing zeros are dropped). Build
    with :meth:`geometric` / :meth:`finite` or :meth:`Network.with_burst`.
    """

    species: str
    distribution: str
    mean_size: float | None = None
    probabilities: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.distribution == "geometric":
            mean = self.mean_size
            if self.probabilities is not None or mean is None or not (
                    np.isfinite(mean) and mean >= 0):
                raise InvalidNetworkError(
                    f"a geometric burst of '{self.species}' needs a finite mean size >= 0 "
                    f"(and no probabilities), got mean_size={mean!r}")
            object.__setattr__(self, "mean_size", float(mean))
        elif self.distribution == "finite":
            values = np.asarray(self.probabilities if self.probabilities is not None else [],
                                dtype=float)
            if (self.mean_size is not None or values.ndim != 1 or not len(values)
                    or not np.all(np.isfinite(values)) or np.any(values < 0)
                    or abs(values.sum() - 1.0) > 1e-9):
                raise InvalidNetworkError(
                    f"a finite burst of '{self.species}' needs probabilities P(B=0..K) that "
                    f"are >= 0 and sum to 1, got {self.probabilities!r}")
            if abs(values.sum() - 1.0) > 1e-12:  # beyond round-off: normalise (once:
                values = values / values.sum()   # a normalised table is kept as it is)
            last = int(np.flatnonzero(values > 0)[-1])
            object.__setattr__(self, "probabilities", tuple(float(v) for v in values[:last + 1]))
        else:
            raise InvalidNetworkError(f"burst distribution must be one of "
                                      f"{BURST_DISTRIBUTIONS}, got {self.distribution!r}")

    @classmethod
    def geometric(cls, species: str, mean: float) -> "Burst":
        """Geometric burst size on {0, 1, 2, ...} with mean ``mean``."""
        return cls(species, "geometric", mean_size=mean)

    @classmethod
    def finite(cls, species: str, probabilities) -> "Burst":
        """Burst size k with probability ``probabilities[k]``, k = 0..K."""
        return cls(species, "finite", probabilities=tuple(float(v) for v in probabilities))

    @property
    def ratio(self) -> float:
        """q = b / (1 + b) of a geometric burst (0 for a finite one)."""
        return self.mean_size / (1.0 + self.mean_size) if self.distribution == "geometric" \
            else 0.0

    @property
    def max_size(self) -> int | None:
        """Largest possible burst size K (``None``: unbounded, geometric with b > 0)."""
        if self.distribution == "finite":
            return len(self.probabilities) - 1
        return None if self.mean_size > 0 else 0

    @property
    def mean(self) -> float:
        """E[B], molecules per firing."""
        if self.distribution == "geometric":
            return self.mean_size
        return float(np.arange(len(self.probabilities)) @ np.array(self.probabilities))

    @property
    def second_moment(self) -> float:
        """E[B^2]; for the geometric law b + 2 b^2."""
        if self.distribution == "geometric":
            return self.mean_size + 2.0 * self.mean_size ** 2
        return float(np.arange(len(self.probabilities)) ** 2 @ np.array(self.probabilities))

    @property
    def variance(self) -> float:
        """Var[B]; for the geometric law b (1 + b)."""
        if self.distribution == "geometric":
            return self.mean_size * (1.0 + self.mean_size)
        return max(self.second_moment - self.mean ** 2, 0.0)

    def pmf(self, sizes) -> np.ndarray:
        """P(B = k) for integer ``sizes`` (any shape); 0 outside the support."""
        sizes = np.asarray(sizes, dtype=np.int64)
        if self.distribution == "geometric":
            q = self.ratio
            return np.where(sizes >= 0, (1.0 - q) * q ** np.maximum(sizes, 0).astype(float),
                            0.0)
        table = np.concatenate([np.array(self.probabilities), [0.0]])
        return table[np.where((sizes >= 0) & (sizes < len(table) - 1), sizes, len(table) - 1)]

    def tail(self, sizes) -> np.ndarray:
        """P(B > k) for integer ``sizes`` (any shape), computed directly (no 1 - cdf)."""
        sizes = np.asarray(sizes, dtype=np.int64)
        if self.distribution == "geometric":
            return np.where(sizes >= 0, self.ratio ** (np.maximum(sizes, 0) + 1.0), 1.0)
        reverse = np.concatenate([np.cumsum(np.array(self.probabilities)[::-1])[::-1][1:],
                                  [0.0]])
        return np.where(sizes < 0, 1.0, reverse[np.clip(sizes, 0, len(reverse) - 1)])

    def describe(self) -> str:
        """Short text, e.g. ``geometric(mean 5)``."""
        if self.distribution == "geometric":
            return f"geometric(mean {self.mean_size:g})"
        return f"finite(P(B=0..{len(self.probabilities) - 1}), mean {self.mean:g})"


@dataclass(frozen=True)
class Reaction:
    """One stochastic reaction channel (a reversible SBML reaction may give two).

    Stoichiometries are positive whole numbers for discrete species; a continuous
    species may change by any positive real amount (non-integer stoichiometry, a
    conversion factor).

    ``burst``: when set, each firing also adds a random number B of molecules of
    ``burst.species`` (drawn afresh per firing), on top of ``products`` (which then do
    not list that species; see :meth:`Network.with_burst`).
    """

    id: str
    reactants: tuple[tuple[str, int], ...]
    products: tuple[tuple[str, int], ...]
    rate_law: RateLaw
    sbml_id: str = ""
    conversion: Conversion | None = None
    burst: Burst | None = None

    def net_change(self) -> dict[str, float]:
        """Net change of each species' count when the channel fires once."""
        change: dict[str, int] = {}
        for species_id, count in self.reactants:
            change[species_id] = change.get(species_id, 0) - count
        for species_id, count in self.products:
            change[species_id] = change.get(species_id, 0) + count
        return {k: v for k, v in change.items() if v != 0}


@dataclass(frozen=True)
class Output:
    """A quantity reported alongside species: an SBML assignment-rule target, or a
    parameter or compartment asked for with :meth:`Network.with_outputs`.

    ``formula`` is in counts and parameters. For a species output it gives the
    species' molecule count; otherwise the value in model units.
    """

    id: str
    formula: sympy.Expr
    kind: str  # "species", "parameter" or "compartment"
    compartment: str | None = None
    molecules_per_unit: float = 1.0
    has_only_substance_units: bool = True


@dataclass(frozen=True)
class Event:
    """An SBML event in counts.

    ``trigger`` is a sympy boolean; ``assignments`` are ``(target id, value)`` with
    species targets given in molecules and parameter targets in model units.
    ``execution_scales`` are ``(target id, factor)`` for species whose value is computed
    at trigger time but converted to molecules at execution (a delayed concentration
    assignment in a variable compartment): the count is value x factor, the factor
    evaluated when the event executes.
    """

    id: str
    trigger: sympy.Basic
    assignments: tuple[tuple[str, sympy.Expr], ...]
    delay: sympy.Expr | None = None
    priority: sympy.Expr | None = None
    persistent: bool = True
    initial_value: bool = True
    use_values_from_trigger_time: bool = True
    execution_scales: tuple[tuple[str, sympy.Expr], ...] = ()


@dataclass(frozen=True)
class Network:
    """An immutable stochastic reaction network in molecule counts.

    Orientation is species x reactions everywhere. Boundary and constant species keep
    their counts; the stoichiometry matrices still list them (they never change).
    """

    species: tuple[Species, ...]
    reactions: tuple[Reaction, ...]
    parameters: tuple[Parameter, ...] = ()
    compartments: tuple[Compartment, ...] = ()
    outputs: tuple[Output, ...] = ()
    events: tuple[Event, ...] = ()
    id: str = ""
    name: str = ""
    notes: tuple[str, ...] = field(default=(), compare=False)
    #: The SBML text the network was read from (for annotated output), and the options.
    source_sbml: str = field(default="", compare=False, repr=False)
    read_options: tuple = field(default=(), compare=False, repr=False)
    #: Parameters that advance with time at a constant rate (SBML rate rules
    #: ``d(parameter)/dt = rate``): ``(parameter id, rate per time unit)``.
    #: They are also listed in :attr:`rate_rules`; the SSA advances them exactly.
    clocks: tuple[tuple[str, float], ...] = ()
    #: Parameters drawn at random once per realisation (SBML distrib initial
    #: assignments): ``(parameter id, expression with RandomDraw)``; the parameter's
    #: ``value`` is the law's nominal value (mean, or median when the mean is undefined).
    parameter_distributions: tuple[tuple[str, sympy.Basic], ...] = ()
    #: ODEs of the continuous variables (SBML rate rules), see :class:`RateRule`.
    rate_rules: tuple[RateRule, ...] = ()
    #: Constructs that only the deterministic limit can evaluate (e.g. ``rateOf`` of a
    #: species changed by reactions): ``(SBML element id, construct)``. Stochastic
    #: analyses refuse the network naming them.
    deterministic_only: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        species_ids = [s.id for s in self.species]
        if len(set(species_ids)) != len(species_ids):
            raise InvalidNetworkError("species ids must be unique")
        known = set(species_ids)
        continuous = {s.id for s in self.species if s.continuous}
        for reaction in self.reactions:
            for species_id, count in reaction.reactants + reaction.products:
                if species_id not in known:
                    raise InvalidNetworkError(
                        f"reaction '{reaction.id}' uses unknown species '{species_id}'")
                whole = species_id not in continuous
                if not (np.isfinite(count) and count > 0) or (whole and int(count) != count):
                    raise InvalidNetworkError(
                        f"reaction '{reaction.id}': stoichiometry of '{species_id}' must be "
                        f"a positive {'integer' if whole else 'number'}, got {count}")
            if reaction.burst is not None:
                _check_burst(reaction, known, {s.id for s in self.species if s.fixed})
        parameter_ids = {p.id for p in self.parameters}
        for parameter_id, _ in self.clocks + self.parameter_distributions:
            if parameter_id not in parameter_ids:
                raise InvalidNetworkError(f"clock or parameter distribution of unknown "
                                          f"parameter '{parameter_id}'")
        for rule in self.rate_rules:
            if rule.target not in parameter_ids and rule.target not in continuous:
                raise InvalidNetworkError(
                    f"rate rule on '{rule.target}', which is neither a parameter nor a "
                    "continuous species")
        sizes = parameter_ids | {o.id for o in self.outputs}
        for compartment in self.compartments:
            if not compartment.constant and compartment.id not in sizes:
                raise InvalidNetworkError(
                    f"variable compartment '{compartment.id}' needs a parameter or an "
                    "output of the same id holding its size")
        for s in self.species:
            if not np.isfinite(s.initial_count) or s.initial_count < 0:
                raise InvalidNetworkError(
                    f"species '{s.id}' has initial count {s.initial_count}; counts must be "
                    "finite and non-negative")

    # -- lookups -----------------------------------------------------------------
    @cached_property
    def species_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.species)

    @cached_property
    def reaction_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.reactions)

    @cached_property
    def parameter_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.parameters)

    @cached_property
    def species_index(self) -> Mapping[str, int]:
        return {s: i for i, s in enumerate(self.species_ids)}

    @cached_property
    def compartment_map(self) -> Mapping[str, Compartment]:
        return {c.id: c for c in self.compartments}

    @property
    def initial_counts(self) -> np.ndarray:
        """Initial molecule counts, shape (n_species,)."""
        return np.array([s.initial_count for s in self.species], dtype=float)

    # -- the partition into discrete and continuous parts ----------------------------
    @cached_property
    def continuous_species(self) -> tuple[str, ...]:
        """Ids of the species in the continuous partition."""
        return tuple(s.id for s in self.species if s.continuous)

    @cached_property
    def rate_rule_targets(self) -> tuple[str, ...]:
        """Ids of the variables that follow a rate rule (species and parameters)."""
        return tuple(rule.target for rule in self.rate_rules)

    @property
    def has_continuous_part(self) -> bool:
        """Whether the state has a continuous part (continuous species or rate rules
        other than constant-rate clocks)."""
        clock_ids = {pid for pid, _ in self.clocks}
        return bool(self.continuous_species) or any(
            rule.target not in clock_ids for rule in self.rate_rules)

    @cached_property
    def jump_mask(self) -> np.ndarray:
        """Shape (n_reactions,), bool: True for a jump (the channel changes a discrete
        species or carries a burst), False for a continuous flux."""
        discrete = np.array([not (s.continuous or s.fixed) for s in self.species], dtype=bool)
        changes = self.stoichiometry != 0
        mask = (changes & discrete[:, None]).any(axis=0) | np.array(
            [r.burst is not None for r in self.reactions], dtype=bool)
        mask.setflags(write=False)
        return mask

    @cached_property
    def variable_compartments(self) -> tuple[str, ...]:
        """Ids of compartments whose size changes during a run."""
        return tuple(c.id for c in self.compartments if not c.constant)

    @property
    def parameter_values(self) -> np.ndarray:
        """Parameter values in model units, shape (n_parameters,)."""
        return np.array([p.value for p in self.parameters], dtype=float)

    # -- stoichiometry -------------------------------------------------------------
    def _matrix(self, side: str) -> np.ndarray:
        whole = all(float(count).is_integer() for r in self.reactions
                    for _, count in r.reactants + r.products)
        matrix = np.zeros((len(self.species), len(self.reactions)),
                          dtype=np.int64 if whole else float)
        for j, reaction in enumerate(self.reactions):
            for species_id, count in getattr(reaction, side):
                matrix[self.species_index[species_id], j] += count
        matrix.setflags(write=False)
        return matrix

    @cached_property
    def reactant_stoichiometry(self) -> np.ndarray:
        """Reactant stoichiometry, shape (n_species, n_reactions), read-only."""
        return self._matrix("reactants")

    @cached_property
    def product_stoichiometry(self) -> np.ndarray:
        """Product stoichiometry, shape (n_species, n_reactions), read-only."""
        return self._matrix("products")

    @cached_property
    def stoichiometry(self) -> np.ndarray:
        """Net change in counts per firing, shape (n_species, n_reactions), read-only.

        Rows of boundary and constant species are zero. A burst channel's random burst
        is *not* included (only its fixed part); see :attr:`mean_stoichiometry`.
        """
        net = self.product_stoichiometry - self.reactant_stoichiometry
        for i, s in enumerate(self.species):
            if s.fixed:
                net[i, :] = 0
        net.setflags(write=False)
        return net

    # -- bursts ----------------------------------------------------------------------
    @cached_property
    def bursts(self) -> Mapping[str, Burst]:
        """Burst declarations by channel id (empty when the network has none)."""
        return {r.id: r.burst for r in self.reactions if r.burst is not None}

    @cached_property
    def mean_stoichiometry(self) -> np.ndarray:
        """Mean change per firing, shape (n_species, n_reactions), float, read-only:
        :attr:`stoichiometry` plus E[B] for each burst. Equal to it without bursts."""
        mean = self.stoichiometry.astype(float)
        for j, reaction in enumerate(self.reactions):
            if reaction.burst is not None:
                mean[self.species_index[reaction.burst.species], j] += reaction.burst.mean
        mean.setflags(write=False)
        return mean

    @cached_property
    def jump_span(self) -> np.ndarray:
        """Columns spanning every possible jump, shape (n_species, n_reactions + n_bursts),
        float, read-only: :attr:`mean_stoichiometry` then the unit vector of each burst's
        species. Conservation laws of a bursty network are the w >= 0 with w^T (this) = 0.
        """
        columns = [self.mean_stoichiometry]
        for reaction in self.reactions:
            if reaction.burst is not None:
                unit = np.zeros((len(self.species), 1))
                unit[self.species_index[reaction.burst.species], 0] = 1.0
                columns.append(unit)
        span = np.hstack(columns)
        span.setflags(write=False)
        return span

    # -- expressions -------------------------------------------------------------
    def propensities(self) -> tuple[sympy.Expr, ...]:
        """Each channel's propensity as a sympy expression in counts."""
        return tuple(r.rate_law.propensity() for r in self.reactions)

    @cached_property
    def uses_time(self) -> bool:
        """Whether any propensity depends explicitly on time."""
        return any(TIME in law.free_symbols for law in self.propensities())

    def species_scale(self, species_id: str, units: str) -> float:
        """Molecules per model unit of the species in ``units``.

        ``units`` is ``"amount"``, ``"concentration"`` or ``"model"`` (as declared).
        Divide a count by it to get the value in those units.
        """
        s = self.species[self.species_index[species_id]]
        return unit_scale(s.molecules_per_unit, s.has_only_substance_units,
                          self._compartment_size(s.compartment, s.id), units)

    def output_scale(self, output: Output, units: str) -> float:
        """Like :meth:`species_scale` for an assignment-rule output (1 for parameters)."""
        if output.kind != "species" or units == "count":
            return 1.0
        return unit_scale(output.molecules_per_unit, output.has_only_substance_units,
                          self._compartment_size(output.compartment, output.id), units)

    def _compartment_size(self, compartment_id: str | None, species_id: str) -> float | None:
        compartment = self.compartment_map.get(compartment_id)
        return None if compartment is None else compartment.size

    # -- derived networks ------------------------------------------------------------
    def with_parameters(self, **values: float) -> "Network":
        """A new network with some parameter values replaced (model units)."""
        unknown = set(values) - set(self.parameter_ids)
        if unknown:
            raise OptionsError(f"unknown parameter(s) {sorted(unknown)}; known: "
                               f"{list(self.parameter_ids)}")
        parameters = tuple(dataclasses.replace(p, value=float(values[p.id]))
                           if p.id in values else p for p in self.parameters)
        return dataclasses.replace(self, parameters=parameters)

    def with_burst(self, reaction_id: str, species_id: str, *, mean: float | None = None,
                   distribution=None) -> "Network":
        """A new network in which channel ``reaction_id`` makes a random burst of
        ``species_id``.

        Exactly one of ``mean`` (geometric burst size on {0, 1, 2, ...} with that mean:
        P(B=k) = (1-q) q^k, q = mean / (1 + mean)) or ``distribution`` (P(B=k) for
        k = 0..K, summing to 1) must be given. The burst *replaces* the channel's product
        stoichiometry of ``species_id``: every firing removes the reactants as before,
        makes the other products as before, and adds B molecules of ``species_id``
        (B drawn afresh per firing; B = 0 is allowed). Any product term of
        ``species_id`` is dropped, so ``0 -> X`` with a burst of mean b makes B molecules
        per firing, not 1 + B; reactant terms of ``species_id`` stay. A burst already on
        the channel is replaced.
        """
        if reaction_id not in self.reaction_ids:
            raise OptionsError(f"unknown reaction channel {reaction_id!r}; known: "
                               f"{list(self.reaction_ids)}")
        if species_id not in self.species_index:
            raise OptionsError(f"unknown species {species_id!r}")
        if (mean is None) == (distribution is None):
            raise OptionsError("with_burst needs exactly one of mean= (geometric) or "
                               "distribution= (P(B=0..K))")
        burst = (Burst.geometric(species_id, mean) if mean is not None
                 else Burst.finite(species_id, distribution))
        reactions = tuple(
            dataclasses.replace(r, burst=burst,
                                products=tuple(p for p in r.products if p[0] != species_id))
            if r.id == reaction_id else r for r in self.reactions)
        return dataclasses.replace(self, reactions=reactions)

    def with_outputs(self, ids) -> "Network":
        """A new network that also reports the SBML symbols ``ids`` beside the species.

        Like roadrunner's selections: a parameter (also an event-assigned one, whose value
        then changes along each trajectory; local parameters as ``reaction.parameter``)
        or a compartment (its size in model units) becomes an :class:`Output` evaluated
        by every analysis with that analysis' current parameter values. Species and
        assignment-rule targets are reported already: asking for them changes nothing.

        Raises
        ------
        OptionsError
            An id that names no species, parameter, compartment or rule target.
        """
        ids = output_ids(ids)
        reported = set(self.species_ids) | {o.id for o in self.outputs}
        parameters = set(self.parameter_ids)
        unknown = [i for i in ids if i not in reported | parameters
                   and i not in self.compartment_map]
        if unknown:
            known = list(self.species_ids) + [o.id for o in self.outputs] + list(
                self.parameter_ids) + [c.id for c in self.compartments]
            raise OptionsError(f"unknown output(s) {unknown}; known: {known}")
        added = []
        for i in dict.fromkeys(ids):  # in order, once each
            if i in reported:
                continue
            if i in parameters:
                added.append(Output(i, sympy.Symbol(i), "parameter"))
            else:
                size = self.compartment_map[i].size
                added.append(Output(i, sympy.Float(np.nan if size is None else size),
                                    "compartment"))
        if not added:
            return self
        return dataclasses.replace(self, outputs=self.outputs + tuple(added))

    def with_initial_counts(self, **counts: float) -> "Network":
        """A new network with some initial molecule counts replaced."""
        unknown = set(counts) - set(self.species_ids)
        if unknown:
            raise OptionsError(f"unknown species {sorted(unknown)}")
        species = tuple(dataclasses.replace(s, initial_count=float(counts[s.id]))
                        if s.id in counts else s for s in self.species)
        return dataclasses.replace(self, species=species)

    def with_partition(self, continuous) -> "Network":
        """A new network in which the species ``continuous`` (ids) are continuous.

        Species already continuous stay so; a fixed (boundary or constant) species cannot
        be made continuous. The network's validation still refuses a discrete species with
        a non-integer stoichiometry.
        """
        chosen = set(continuous)
        unknown = chosen - set(self.species_ids)
        if unknown:
            raise OptionsError(f"unknown species {sorted(unknown)}; known: "
                               f"{list(self.species_ids)}")
        fixed = sorted(s.id for s in self.species if s.id in chosen and s.fixed)
        if fixed:
            raise OptionsError(f"boundary or constant species {fixed} cannot be made "
                               "continuous (reactions never change them)")
        species = tuple(dataclasses.replace(s, continuous=True) if s.id in chosen else s
                        for s in self.species)
        return dataclasses.replace(self, species=species)

    # -- reports ----------------------------------------------------------------------
    def conversion_table(self) -> pd.DataFrame:
        """One row per channel: how its SBML law became a propensity in counts.

        Columns: ``reaction, sbml_reaction, sbml_kinetic_law, form, orders,
        macroscopic_constant, molecules_per_unit, volume_factor, stochastic_constant,
        combinatorial_factor, signed_terms, propensity, deterministic_rate, channel``
        (``signed_terms``: for the channels of a law that can turn negative, which terms
        went forward and which backward; ``channel``: ``jump`` or ``continuous flux``,
        see :attr:`jump_mask`).
        """
        rows = []
        for reaction in self.reactions:
            law = reaction.rate_law
            conversion = reaction.conversion or Conversion(sbml_law="", form=(
                "mass action" if isinstance(law, MassAction) else "general"))
            is_mass_action = isinstance(law, MassAction)
            rows.append({
                "reaction": reaction.id,
                "sbml_reaction": reaction.sbml_id or reaction.id,
                "sbml_kinetic_law": conversion.sbml_law,
                "form": conversion.form,
                "orders": (", ".join(f"{s}:{m}" for s, m in law.orders)
                           if is_mass_action else ""),
                "macroscopic_constant": conversion.macroscopic_constant,
                "molecules_per_unit": conversion.molecules_per_unit,
                "volume_factor": conversion.volume_factor,
                "stochastic_constant": (float(law.rate_constant.subs(self._parameter_subs()))
                                        if is_mass_action else None),
                "combinatorial_factor": conversion.combinatorial,
                "signed_terms": conversion.terms,
                "propensity": _show(law.propensity()),
                "deterministic_rate": _show(law.deterministic_limit()),
                "channel": "jump" if self.jump_mask[len(rows)] else "continuous flux",
            })
        return pd.DataFrame(rows)

    def _parameter_subs(self) -> dict[sympy.Symbol, float]:
        return {sympy.Symbol(p.id): p.value for p in self.parameters}

    def summary_frames(self) -> dict[str, pd.DataFrame]:
        """Species and reaction tables for display (``info``)."""
        species = pd.DataFrame([{
            "species": s.id, "compartment": s.compartment,
            "initial_count": s.initial_count,
            "molecules_per_unit": s.molecules_per_unit,
            "declared_as": "amount" if s.has_only_substance_units else "concentration",
            "boundary": s.boundary, "constant": s.constant,
            "continuous": s.continuous} for s in self.species])
        reactions = pd.DataFrame([{
            "reaction": r.id,
            "equation": _equation(r)} for r in self.reactions])
        frames = {"species": species, "reactions": reactions}
        if self.rate_rules or self.continuous_species:
            frames["partition"] = self.partition()
        return frames

    def partition(self) -> pd.DataFrame:
        """The state's partition: one row per species and rate-rule parameter.

        Columns: ``variable, kind`` (species or parameter), ``partition`` (discrete,
        continuous or fixed), ``reason``, ``rate_rule`` (d/dt in counts per time for
        species, model units per time for parameters; empty without one).
        """
        rules = {rule.target: _show(rule.formula) for rule in self.rate_rules}
        whole = {sid for r in self.reactions for sid, count in r.reactants + r.products
                 if not float(count).is_integer()}
        rows = []
        for s in self.species:
            if s.fixed and s.id not in rules:
                partition, reason = "fixed", "boundary or constant species"
            elif not s.continuous:
                partition, reason = "discrete", "molecule counts changed by jumps"
            elif s.id in rules:
                partition, reason = "continuous", "rate rule"
            elif s.id in whole:
                partition, reason = "continuous", "non-integer change per firing"
            else:
                partition, reason = "continuous", "chosen"
            rows.append({"variable": s.id, "kind": "species", "partition": partition,
                         "reason": reason, "rate_rule": rules.get(s.id, "")})
        clocks = {pid for pid, _ in self.clocks}
        for rule in self.rate_rules:
            if rule.target in self.species_index:
                continue
            reason = "constant-rate clock" if rule.target in clocks else "rate rule"
            rows.append({"variable": rule.target, "kind": "parameter",
                         "partition": "continuous", "reason": reason,
                         "rate_rule": rules[rule.target]})
        return pd.DataFrame(rows, columns=["variable", "kind", "partition", "reason",
                                           "rate_rule"])


def output_ids(ids) -> tuple[str, ...]:
    """``outputs=`` of the readers and analyses (an id, a list of ids, or None) as a
    tuple of ids."""
    result = (ids,) if isinstance(ids, str) else tuple(ids or ())
    if not all(isinstance(i, str) for i in result):
        raise OptionsError(f"outputs must be SBML ids (strings), got {ids!r}")
    return result


def unit_scale(molecules_per_unit: float, has_only_substance_units: bool,
               size: float | None, units: str) -> float:
    """Molecules per unit of a quantity reported in ``units``.

    ``units``: ``"count"`` (1), ``"amount"`` (F), ``"concentration"`` (F V) or
    ``"model"`` (amount or concentration as the species is declared).
    """
    if units == "count":
        return 1.0
    if units == "model":
        units = "amount" if has_only_substance_units else "concentration"
    if units == "amount":
        return molecules_per_unit
    if units == "concentration":
        if size is None or size == 0:
            raise OptionsError("a concentration needs a compartment with a non-zero size; "
                               "pass volumes={...} to read_sbml")
        return molecules_per_unit * size
    raise OptionsError(f"unknown units {units!r}: use count, model, amount or concentration")


def _show(expression: sympy.Expr) -> str:
    return str(expression).replace("<time>", "time")


def _equation(reaction: Reaction) -> str:
    def side(terms):
        return " + ".join(f"{n} {s}" if n != 1 else s for s, n in terms) or "0"
    products = side(reaction.products)
    if reaction.burst is not None:
        burst = f"B {reaction.burst.species}, B ~ {reaction.burst.describe()}"
        products = burst if products == "0" else f"{products} + {burst}"
    return f"{side(reaction.reactants)} -> {products}"


def _check_burst(reaction: Reaction, known: set[str], fixed: set[str]) -> None:
    burst = reaction.burst
    if not isinstance(burst, Burst):
        raise InvalidNetworkError(f"reaction '{reaction.id}': burst must be a Burst")
    if burst.species not in known:
        raise InvalidNetworkError(
            f"reaction '{reaction.id}' bursts the unknown species '{burst.species}'")
    if burst.species in fixed:
        raise InvalidNetworkError(
            f"reaction '{reaction.id}' bursts '{burst.species}', a boundary or constant "
            "species that reactions never change")
    if any(s == burst.species for s, _ in reaction.products):
        raise InvalidNetworkError(
            f"reaction '{reaction.id}' lists '{burst.species}' both as a product and as its "
            "burst species; the burst replaces the product term (use Network.with_burst)")
