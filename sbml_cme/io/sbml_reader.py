"""Read SBML (L2V1 to L3V2) into a :class:`~sbml_cme.network.Network` in molecule counts.

The conversion follows THEORY.md section 1: a propensity is ``F * v`` where ``v`` is the
kinetic law (substance per time) evaluated with every species symbol replaced by its
value computed from molecule counts, ``n / (F V)`` for a concentration and ``n / F`` for
an amount, and ``F`` is molecules per substance unit. A law that is a mass-action
monomial in the reactants (orders equal to reactant stoichiometries) gets exact
combinatorics, ``n**m -> (n)_m``. A law that is the difference of two such monomials,
forward in the reactants and backward in the products, becomes two channels.
Everything else is substituted as is; a law that can turn negative becomes two
non-negative channels. That classification lives in :mod:`sbml_cme.io.classify`; this
module walks the document.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass

import libsbml
import numpy as np
import sympy

from ..delays import MAX_PHASES, with_delay
from ..distributions import RandomDraw, has_draws
from ..errors import InvalidNetworkError, InvalidSBMLError, OptionsError, UnsupportedFeatureError
from ..network import (AVOGADRO, TIME, Compartment, Event, Network, Output, Parameter, RateRule,
                       Reaction, Species, output_ids)
from .classify import LawContext, classify, sign_split_note
from .document import (changing_symbols, event_targets, flatten_comp, package_notes,
                       severe_errors, solve_algebraic_rules)
from .mathml import DELAY, RATE_OF, FunctionDefinitions, to_sympy
from .validate import MAX_STOICHIOMETRY, check_document, check_network, read_text

#: Molecules per unit for the ``substance_unit`` option.
SUBSTANCE_UNITS = {
    "item": 1.0, "molecule": 1.0, "mole": AVOGADRO, "millimole": AVOGADRO * 1e-3,
    "micromole": AVOGADRO * 1e-6, "nanomole": AVOGADRO * 1e-9, "picomole": AVOGADRO * 1e-12,
}

_LITRES_PER = {libsbml.UNIT_KIND_LITRE: 1.0, libsbml.UNIT_KIND_LITER: 1.0}


@dataclass(frozen=True)
class ReadOptions:
    """Options of :func:`read_sbml`.

    Attributes
    ----------
    volumes : dict
        Compartment id -> size in litres, overriding the model's sizes.
    substance_unit : str or float or None
        Override of what one model substance unit is: a name of ``SUBSTANCE_UNITS``
        (``"item"`` for models whose amounts are molecule counts) or molecules per unit.
    falling_factorials : bool
        Apply exact combinatorics ``(n)_m`` to mass-action laws (turn off for models
        whose laws are already propensities).
    delays : str or None
        ``"phases"``: a kinetic law ``C * delay(f, tau)`` becomes a chain of
        ``delay_phases`` memoryless phases (docs/delays.md); ``None`` refuses delay().
    delay_phases : int or None
        Phases per delay (``delays="phases"`` only): an Erlang delay with mean tau and
        variance tau**2 / delay_phases stands for the fixed delay tau.
    outputs : tuple of str
        SBML symbols reported beside the species (:meth:`Network.with_outputs`).
    """

    volumes: tuple = ()
    substance_unit: str | float | None = None
    falling_factorials: bool = True
    delays: str | None = None
    delay_phases: int | None = None
    outputs: tuple = ()


def read_sbml(path: str | os.PathLike, **options) -> Network:
    """Read an SBML file into a :class:`Network` in molecule counts.

    Parameters
    ----------
    path : path-like
        SBML file, Level 2 Version 1 to Level 3 Version 2.
    **options
        ``volumes={"cell": 1e-15}`` (litres), ``substance_unit="item"``,
        ``falling_factorials=True``, ``delays="phases", delay_phases=k``,
        ``outputs=["k1", "cell"]`` (parameters, compartments or rule targets to report
        beside the species, like roadrunner's selections); see :class:`ReadOptions`.

    Raises
    ------
    InvalidSBMLError
        The file is unreadable or libsbml reports errors.
    UnsupportedFeatureError
        A construct with no exact stochastic meaning; names the element.
    """
    path = os.fspath(path)
    return _read(read_text(path), path, options,
                 base_dir=os.path.dirname(os.path.abspath(path)))


def read_sbml_string(text: str, *, base_dir: str | os.PathLike | None = None,
                     **options) -> Network:
    """Read SBML from a string; same options and errors as :func:`read_sbml`.

    ``base_dir`` is where the external model definitions of a ``comp`` model are found
    (default: the current directory; :func:`read_sbml` uses the file's directory).
    """
    return _read(text, "<string>", options, base_dir=os.path.abspath(base_dir or os.curdir))


def _read(text: str, source: str, options: dict, base_dir: str) -> Network:
    """The one path from SBML text to a validated network (see ``io/validate.py``)."""
    read_options = _options(options)
    document = libsbml.readSBMLFromString(text)
    check_document(document, source)
    network = _Importer(document, read_options, source=source, text=text,
                        base_dir=base_dir).network()
    check_network(network)
    return network.with_outputs(read_options.outputs)


def _options(options: dict) -> ReadOptions:
    unknown = set(options) - {"volumes", "substance_unit", "falling_factorials", "delays",
                              "delay_phases", "outputs"}
    if unknown:
        raise OptionsError(f"unknown read_sbml option(s) {sorted(unknown)}; known: volumes, "
                           "substance_unit, falling_factorials, delays, delay_phases, "
                           "outputs")
    volumes = options.get("volumes") or {}
    for key, value in volumes.items():
        if not (isinstance(value, (int, float)) and value > 0):
            raise OptionsError(f"volume of compartment '{key}' must be a positive number of "
                               f"litres, got {value!r}")
    unit = options.get("substance_unit")
    if isinstance(unit, str) and unit not in SUBSTANCE_UNITS:
        raise OptionsError(f"substance_unit {unit!r} unknown; use one of "
                           f"{sorted(SUBSTANCE_UNITS)} or molecules per unit as a number")
    if isinstance(unit, (int, float)) and not unit > 0:
        raise OptionsError("substance_unit as a number must be positive molecules per unit")
    return ReadOptions(volumes=tuple(sorted(volumes.items())), substance_unit=unit,
                       falling_factorials=bool(options.get("falling_factorials", True)),
                       **_delay_options(options), outputs=output_ids(options.get("outputs")))


def _delay_options(options: dict) -> dict:
    """Checked ``delays`` and ``delay_phases`` (docs/delays.md)."""
    delays, phases = options.get("delays"), options.get("delay_phases")
    if delays not in (None, "phases"):
        raise OptionsError(f"delays={delays!r} unknown; use delays='phases' (with "
                           "delay_phases=k) or leave it out to refuse delay()")
    if delays is None:
        if phases is not None:
            raise OptionsError("delay_phases needs delays='phases'")
        return {"delays": None, "delay_phases": None}

    if delays == "phases" and (isinstance(phases, bool) or not isinstance(
            phases, (int, np.integer)) or not 1 <= phases <= MAX_PHASES):
        raise OptionsError(f"delays='phases' needs delay_phases=k, a whole number from 1 to "
                           f"{MAX_PHASES} (the fixed delay tau becomes an Erlang delay with "
                           f"variance tau**2/k), got {phases!r}")
    return {"delays": delays, "delay_phases": int(phases)}


def _check_document(document: libsbml.SBMLDocument, source: str,
                    base_dir: str) -> tuple[libsbml.Model, list[str], bool]:
    """The document's model (``comp`` flattened), notes on ignored packages, and whether
    it was flattened."""
    severe = severe_errors(document)
    if severe:
        raise InvalidSBMLError(f"libsbml could not read '{source}'",
                               [f"line {e.getLine()}: {e.getMessage().strip()}" for e in severe])
    if document.getModel() is None:
        raise InvalidSBMLError(f"'{source}' contains no SBML model")
    notes = package_notes(document, document.getModel().getId() or source)
    flat = flatten_comp(document, source, base_dir)
    if flat:
        notes.append("a comp model, flattened by libsbml's comp flattening converter "
                     "(submodel ids carry their submodel's prefix; source_sbml is the flat "
                     "document)")
    return document.getModel(), notes, flat


class _Importer:
    """One pass over a libsbml model; :meth:`network` builds the result."""

    def __init__(self, document: libsbml.SBMLDocument, options: ReadOptions, source: str,
                 text: str = "", base_dir: str = os.curdir):
        self.document = document
        self.options = options
        self.source = source
        self.model, self.notes, flat = _check_document(document, source, base_dir)
        # A flattened comp model is kept as its flat document: self-contained, and the
        # model the network describes (annotations go onto its reactions).
        self.text = libsbml.writeSBMLToString(document) if flat else text
        self.level = self.model.getLevel()
        self.functions = FunctionDefinitions(self.model)
        #: Reactions whose law had delay() (delays="phases"): id -> mean delay tau.
        self.delayed: dict[str, float] = {}
        #: Rate rules accepted as clocks: parameter id -> rate formula.
        self.clock_rules: dict[str, sympy.Basic] = {}
        #: Parameters drawn per realisation: id -> formula with RandomDraw (SBML symbols).
        self.parameter_draws: dict[str, sympy.Basic] = {}
        #: Every rate rule: variable id -> d(variable)/dt over SBML symbols (model units).
        self.rate_rule_formulas: dict[str, sympy.Basic] = {}
        #: Species id -> conversion factor (set once initial values are known).
        self.conversion_factors: dict[str, float] | None = None
        #: Constructs only the deterministic limit evaluates: (element id, construct).
        self.deterministic_only: list[tuple[str, str]] = []

    # -- the whole conversion ---------------------------------------------------------
    def network(self) -> Network:
        self._reject_unsupported_model_constructs()
        self.rule_formulas = self._assignment_rules()
        self.variable_sizes = self._variable_compartments()
        self.compartments = self._compartments()
        self.extent_factor = self._extent_factor()
        self.law_formulas = self._kinetic_law_formulas()
        self.values = self._initial_values()
        for cid, compartment in list(self.compartments.items()):
            if cid in self.values and self.values[cid] != compartment.size:
                # An initial assignment or rule sets the (initial) size.
                self.compartments[cid] = dataclasses.replace(compartment,
                                                             size=self.values[cid])
        self.conversion_factors = self._conversion_factors()
        self.continuous_ids = self._continuous_species()
        self.species = self._species()
        self.species_ids = {s.id for s in self.species}
        self.count_subs = self._count_substitutions()
        self.parameters = self._parameters()
        reactions = [channel for reaction in self.model.getListOfReactions()
                     for channel in self._channels(reaction)]
        signed_note = sign_split_note(reactions)
        if signed_note is not None:
            self.notes.append(signed_note)
            warnings.warn(f"{self.source}: {signed_note}", stacklevel=3)
        network = Network(
            species=tuple(self.species), reactions=tuple(reactions),
            parameters=tuple(self.parameters), compartments=tuple(self.compartments.values()),
            outputs=tuple(self._outputs()), events=tuple(self._events()),
            id=self.model.getId(), name=self.model.getName(), notes=tuple(self.notes),
            source_sbml=self.text, read_options=dataclasses.astuple(self.options),
            clocks=self._clocks(), parameter_distributions=tuple(
                (pid, self.to_counts(formula)) for pid, formula in self.parameter_draws.items()),
            rate_rules=tuple(self._rate_rules()),
            deterministic_only=tuple(dict.fromkeys(self.deterministic_only)))
        return _with_annotated_bursts(self._delay_chains(network), self.model)

    def _reject_unsupported_model_constructs(self) -> None:
        for rule in self.model.getListOfRules():
            variable = rule.getVariable() if not rule.isAlgebraic() else None
            if rule.isAlgebraic():
                continue  # solved into an assignment rule (_assignment_rules)
            if rule.isRate():
                self._record_rate_rule(rule)
                continue
        for reaction in self.model.getListOfReactions():
            if reaction.isSetFast() and reaction.getFast():
                raise UnsupportedFeatureError(
                    "a fast reaction", reaction.getId(),
                    hint="Replace it by its quasi-steady-state or make it an ordinary reaction.")
        for constraint in self.model.getListOfConstraints():
            self.notes.append("constraints are ignored (they do not change the dynamics)")
            break

    def _record_rate_rule(self, rule: libsbml.Rule) -> None:
        """Keep a rate rule's formula; a constant rate on a parameter is also a clock."""
        variable = rule.getVariable()
        if self.model.getSpecies(variable) is None and self.model.getParameter(
                variable) is None and self.model.getCompartment(variable) is None:
            raise UnsupportedFeatureError("variable stoichiometry (a rate rule on a species "
                                          "reference)", variable)
        formula = to_sympy(rule.getMath(), variable, self.functions)
        if has_draws(formula):
            raise UnsupportedFeatureError("a random draw (distrib) in a rate rule", variable)
        self.rate_rule_formulas[variable] = formula
        if self._is_clock(rule):
            self.clock_rules[variable] = formula

    def _is_clock(self, rule: libsbml.Rule) -> bool:
        """A rate rule ``d(parameter)/dt = constant``: the parameter advances with time."""
        parameter = self.model.getParameter(rule.getVariable())
        if parameter is None or rule.getMath() is None:
            return False
        formula = to_sympy(rule.getMath(), rule.getVariable(), self.functions)
        for symbol in formula.free_symbols:
            other = self.model.getParameter(symbol.name)
            constant_size = self.model.getCompartment(symbol.name)
            if symbol == TIME or has_draws(formula) or not (
                    (other is not None and other.getConstant()) or
                    (constant_size is not None and constant_size.getConstant())):
                return False
        return True

    def _clocks(self) -> tuple[tuple[str, float], ...]:
        return tuple((pid, _evaluate(formula, self.values, pid))
                     for pid, formula in self.clock_rules.items())

    def _conversion_factors(self) -> dict[str, float]:
        """Species id -> its conversion factor (the species' own, else the model's; 1
        without): each firing changes the species by factor x stoichiometry."""
        model_factor = self.model.getConversionFactor() if (
            self.level >= 3 and self.model.isSetConversionFactor()) else ""
        factors = {}
        for species in self.model.getListOfSpecies():
            parameter_id = species.getConversionFactor() if \
                species.isSetConversionFactor() else model_factor
            if not parameter_id:
                continue
            parameter = self.model.getParameter(parameter_id)
            if parameter is None or not parameter.getConstant() or \
                    parameter_id in self.rate_rule_formulas or self._is_event_target(parameter_id):
                raise UnsupportedFeatureError(
                    f"a conversion factor ('{parameter_id}') that is not a constant parameter",
                    species.getId(), hint="Make the conversion factor a constant parameter.")
            value = self.values.get(parameter_id)
            if value is None or not np.isfinite(value):
                raise InvalidSBMLError(f"conversion factor '{parameter_id}' of species "
                                       f"'{species.getId()}' has no finite value")
            factors[species.getId()] = float(value)
        return factors

    def _is_event_target(self, element_id: str) -> bool:
        return any(ea.getVariable() == element_id for event in self.model.getListOfEvents()
                   for ea in event.getListOfEventAssignments())

    def _variable_compartments(self) -> set[str]:
        """Compartments whose size a rate rule or an event changes (they become parameters);
        a compartment with an assignment rule is inlined like any rule variable."""
        return {c.getId() for c in self.model.getListOfCompartments()
                if c.getId() in self.rate_rule_formulas or self._is_event_target(c.getId())}

    def _continuous_species(self) -> set[str]:
        """Species in the continuous partition: rate-rule targets and species that some
        reaction changes by a non-integer amount (stoichiometry x conversion factor)."""
        continuous = {sid for sid in self.rate_rule_formulas
                      if self.model.getSpecies(sid) is not None}
        for reaction in self.model.getListOfReactions():
            for reference in list(reaction.getListOfReactants()) + list(
                    reaction.getListOfProducts()):
                sid = reference.getSpecies()
                change = self._stoichiometry_value(reaction, reference) * \
                    self.conversion_factors.get(sid, 1.0)
                if np.isfinite(change) and change != round(change):
                    continuous.add(sid)
        return continuous

    def _is_assigned(self, element_id: str) -> bool:
        if self.model.getInitialAssignment(element_id) is not None:
            return True
        if self.model.getRule(element_id) is not None:
            return True
        return any(ea.getVariable() == element_id for event in self.model.getListOfEvents()
                   for ea in event.getListOfEventAssignments())

    # -- units ---------------------------------------------------------------------
    def _molecules_per(self, unit_ref: str, element_id: str) -> float | None:
        """Molecules per unit of ``unit_ref`` (a base unit or unit definition id)."""
        if not unit_ref:
            return None
        if libsbml.UnitKind_isValidUnitKindString(unit_ref, self.level,
                                                  self.model.getVersion()):
            units = [(libsbml.UnitKind_forName(unit_ref), 1.0, 0, 1.0)]
        else:
            definition = self.model.getUnitDefinition(unit_ref)
            if definition is None:
                if unit_ref == "substance":
                    return AVOGADRO
                raise InvalidSBMLError(f"unit '{unit_ref}' used by '{element_id}' is not "
                                       "defined")
            units = [(u.getKind(), u.getMultiplier(), u.getScale(), u.getExponentAsDouble())
                     for u in definition.getListOfUnits()]
        factor = 1.0
        has_substance = False
        for kind, multiplier, scale, exponent in units:
            magnitude = (multiplier * 10.0 ** scale) ** exponent
            if kind == libsbml.UNIT_KIND_MOLE:
                factor *= AVOGADRO ** exponent * magnitude
                has_substance = True
            elif kind == libsbml.UNIT_KIND_ITEM:
                factor *= magnitude
                has_substance = True
            elif kind == libsbml.UNIT_KIND_DIMENSIONLESS:
                factor *= magnitude
            else:
                raise UnsupportedFeatureError(
                    f"substance units '{unit_ref}' that are not mole or item "
                    f"({libsbml.UnitKind_toString(kind)})", element_id,
                    hint="Pass substance_unit='item' or 'mole' to read_sbml.")
        return factor if has_substance or factor != 1.0 else 1.0

    def _model_substance_factor(self) -> tuple[float, str]:
        """Molecules per model substance unit and how it was decided."""
        override = self.options.substance_unit
        if override is not None:
            value = SUBSTANCE_UNITS[override] if isinstance(override, str) else float(override)
            return value, f"substance_unit={override!r} option"
        if self.level >= 3:
            unit = self.model.getExtentUnits() or self.model.getSubstanceUnits()
            if not unit:
                self.notes.append("the model declares no substance units: assumed mole "
                                  "(pass substance_unit='item' if its amounts are molecule "
                                  "counts)")
                return AVOGADRO, "undeclared, assumed mole"
            return self._molecules_per(unit, self.model.getId()), f"model unit '{unit}'"
        if self.model.getUnitDefinition("substance") is not None:
            return self._molecules_per("substance", self.model.getId()), "unit 'substance'"
        return AVOGADRO, "SBML Level 2 default (mole)"

    def _extent_factor(self) -> float:
        factor, how = self._model_substance_factor()
        self.substance_note = how
        return factor

    def _species_factor(self, species: libsbml.Species) -> float:
        if self.options.substance_unit is not None:
            return self.extent_factor
        unit = species.getSubstanceUnits() if species.isSetSubstanceUnits() else ""
        if not unit or (self.level < 3 and unit == "substance"):
            return self.extent_factor
        factor = self._molecules_per(unit, species.getId())
        if not np.isclose(factor, self.extent_factor, rtol=1e-12):
            raise UnsupportedFeatureError(
                f"substance units '{unit}' that differ from the reaction extent units",
                species.getId(), hint="Use one substance unit throughout the model.")
        return self.extent_factor

    def _litres_per_unit(self, compartment: libsbml.Compartment) -> float:
        unit = compartment.getUnits() if compartment.isSetUnits() else ""
        if not unit:
            if self.level >= 3:
                unit = self.model.getVolumeUnits() if compartment.getSpatialDimensionsAsDouble(
                ) == 3 else ""
            elif compartment.getSpatialDimensions() == 3:
                unit = "volume"
        if not unit or compartment.getSpatialDimensionsAsDouble() != 3:
            return 1.0
        if libsbml.UnitKind_isValidUnitKindString(unit, self.level, self.model.getVersion()):
            units = [(libsbml.UnitKind_forName(unit), 1.0, 0, 1.0)]
        else:
            definition = self.model.getUnitDefinition(unit)
            if definition is None:
                return 1.0  # L2 built-in 'volume' = litre
            units = [(u.getKind(), u.getMultiplier(), u.getScale(), u.getExponentAsDouble())
                     for u in definition.getListOfUnits()]
        litres = 1.0
        for kind, multiplier, scale, exponent in units:
            magnitude = (multiplier * 10.0 ** scale) ** exponent
            if kind in _LITRES_PER:
                litres *= magnitude
            elif kind == libsbml.UNIT_KIND_METRE and exponent == 3:
                litres *= magnitude * 1000.0
            elif kind == libsbml.UNIT_KIND_DIMENSIONLESS:
                litres *= magnitude
            else:
                return 1.0  # not a volume unit: volumes= overrides are then taken as given
        return litres

    # -- elements --------------------------------------------------------------------
    def _compartments(self) -> dict[str, Compartment]:
        overrides = dict(self.options.volumes)
        unknown = set(overrides) - {c.getId() for c in self.model.getListOfCompartments()}
        if unknown:
            raise OptionsError(f"volumes given for unknown compartment(s) {sorted(unknown)}")
        result = {}
        for compartment in self.model.getListOfCompartments():
            litres = self._litres_per_unit(compartment)
            size = compartment.getSize() if compartment.isSetSize() else None
            if compartment.getId() in overrides:
                size = overrides[compartment.getId()] / litres
            elif size is None and (compartment.getSpatialDimensionsAsDouble() == 0
                                   if self.level >= 3 else
                                   compartment.getSpatialDimensions() == 0):
                size = 1.0  # a point has no size: its species' values are amounts
            variable = compartment.getId() in self.variable_sizes or \
                compartment.getId() in self.rule_formulas
            result[compartment.getId()] = Compartment(
                id=compartment.getId(), name=compartment.getName(), size=size,
                spatial_dimensions=_spatial_dimensions(compartment, self.level),
                litres_per_unit=litres, constant=not variable)
        return result

    def _assignment_rules(self) -> dict[str, sympy.Basic]:
        """Assignment-rule formulas over raw SBML symbols, by variable, with each
        algebraic rule solved for the variable it determines."""
        rules = {}
        for rule in self.model.getListOfRules():
            if rule.isAssignment():
                rules[rule.getVariable()] = to_sympy(rule.getMath(), rule.getVariable(),
                                                     self.functions)
        solved = solve_algebraic_rules(self.model, self.functions)
        for variable in solved:
            self.notes.append(f"an algebraic rule is read as the assignment rule "
                              f"{variable} = {solved[variable]}")
        return {**rules, **solved}

    def _kinetic_law_formulas(self) -> dict[str, sympy.Basic]:
        """Reaction id -> kinetic law over SBML symbols (substance per time; local
        parameters renamed ``reaction.parameter``): the value of the reaction's id in math."""
        formulas = {}
        for reaction in self.model.getListOfReactions():
            law = reaction.getKineticLaw()
            if law is None or law.getMath() is None:
                continue
            formulas[reaction.getId()] = to_sympy(
                law.getMath(), reaction.getId(), self.functions,
                rename=self._local_parameter_symbols(reaction),
                delays=self.options.delays == "phases")
        return formulas

    def _local_parameter_symbols(self, reaction: libsbml.Reaction) -> dict[str, sympy.Symbol]:
        law = reaction.getKineticLaw()
        local = list(law.getListOfLocalParameters()) if self.level >= 3 else \
            list(law.getListOfParameters())
        return {p.getId(): sympy.Symbol(f"{reaction.getId()}.{p.getId()}") for p in local}

    def _initial_values(self) -> dict[str, float]:
        """Values of every SBML symbol at t = 0 (species as their symbols mean)."""
        values: dict[str, float] = {}
        overridden = {cid for cid, _ in self.options.volumes}
        for cid, compartment in self.compartments.items():
            if compartment.size is not None and (cid in overridden or (
                    self.model.getInitialAssignment(cid) is None and
                    cid not in self.rule_formulas)):
                values[cid] = compartment.size
        for parameter in self.model.getListOfParameters():
            if parameter.isSetValue():
                values[parameter.getId()] = parameter.getValue()
        for reaction in self.model.getListOfReactions():
            for reference in list(reaction.getListOfReactants()) + list(
                    reaction.getListOfProducts()):
                if reference.isSetId():
                    values[reference.getId()] = reference.getStoichiometry()
            law = reaction.getKineticLaw()
            for parameter in (() if law is None else law.getListOfLocalParameters()
                              if self.level >= 3 else law.getListOfParameters()):
                values[f"{reaction.getId()}.{parameter.getId()}"] = parameter.getValue()
        pending_species = {}
        for species in self.model.getListOfSpecies():
            pending_species[species.getId()] = species
        # Rules with rateOf are evaluated along the run only; a reaction id is its law
        # (evaluated only where a rule or an initial assignment reads it).
        readers = list(self.rule_formulas.values()) + [
            to_sympy(assignment.getMath(), assignment.getSymbol(), self.functions)
            for assignment in self.model.getListOfInitialAssignments()
            if assignment.getMath() is not None]
        read = {symbol.name for formula in readers for symbol in formula.free_symbols}
        rate_of = any(formula.has(RATE_OF) for formula in readers)  # may read any flux
        laws = {rid: law for rid, law in self.law_formulas.items() if rid in read or rate_of}
        definitions = {variable: formula for variable, formula in
                       {**laws, **self.rule_formulas}.items()
                       if not formula.has(RATE_OF, DELAY)}
        for assignment in self.model.getListOfInitialAssignments():
            symbol = assignment.getSymbol()
            if symbol in overridden:
                continue
            formula = to_sympy(assignment.getMath(), symbol, self.functions)
            if formula.has(RATE_OF):
                formula = self.expand_rate_of(formula, symbol)
            if has_draws(formula):
                self._record_parameter_draw(symbol, formula)
                continue
            definitions[symbol] = formula
        drawn = {sympy.Symbol(pid) for pid in self.parameter_draws}
        definitions = {symbol: formula for symbol, formula in definitions.items()
                       if symbol not in self.law_formulas or not formula.free_symbols & drawn}
        for symbol, formula in definitions.items():
            if formula.free_symbols & drawn:
                raise UnsupportedFeatureError(
                    f"an initial value that depends on the randomly drawn parameter(s) "
                    f"{sorted(s.name for s in formula.free_symbols & drawn)}", symbol,
                    hint="Only reactions, events and kinetic laws may read a drawn parameter.")

        def species_value(species) -> float | None:
            sid = species.getId()
            size = values.get(species.getCompartment())
            amount_symbol = species.getHasOnlySubstanceUnits()
            if species.isSetInitialAmount():
                amount = species.getInitialAmount()
                if amount_symbol:
                    return amount
                return None if size is None else amount / size
            if species.isSetInitialConcentration():
                concentration = species.getInitialConcentration()
                if not amount_symbol:
                    return concentration
                return None if size is None else concentration * size
            if sid not in definitions:
                raise InvalidNetworkError(f"species '{sid}' has no initial amount, "
                                          "concentration or assignment")
            return None

        # Evaluate in dependency order: repeat until nothing changes.
        for _ in range(len(definitions) + len(pending_species) + 2):
            progress = False
            for sid, species in list(pending_species.items()):
                if sid in definitions:
                    del pending_species[sid]
                    continue
                value = species_value(species)
                if value is not None:
                    values[sid] = value
                    del pending_species[sid]
                    progress = True
            for symbol, formula in list(definitions.items()):
                if symbol in values and symbol not in self.rule_formulas and \
                        self.model.getInitialAssignment(symbol) is None:
                    continue
                needed = {str(s) for s in formula.free_symbols} - {str(TIME)}
                if needed <= set(values):
                    values[symbol] = _evaluate(formula, values, symbol)
                    del definitions[symbol]
                    progress = True
            if not progress:
                break
        for pid, formula in self.parameter_draws.items():
            nominal = {draw: sympy.Float(draw.nominal(values))
                       for draw in formula.atoms(RandomDraw)}
            values[pid] = _evaluate(formula.xreplace(nominal), values, pid)
        missing = [s for s in pending_species] + list(definitions)
        if missing:
            raise InvalidNetworkError(
                f"cannot compute initial values of {sorted(missing)}: a compartment has no "
                "size or an assignment depends on an unknown symbol; pass volumes={...}")
        return values

    def _record_parameter_draw(self, symbol: str, formula: sympy.Basic) -> None:
        parameter = self.model.getParameter(symbol)
        if parameter is None:
            raise UnsupportedFeatureError(
                f"a random initial value (distrib) of '{symbol}', which is not a parameter",
                symbol, hint="Draw a parameter and use it as the initial value's source.")
        self.parameter_draws[symbol] = formula

    def _species(self) -> list[Species]:
        result = []
        for species in self.model.getListOfSpecies():
            sid = species.getId()
            if sid in self.rule_formulas:
                continue  # an output, not a state variable
            compartment = self.compartments[species.getCompartment()]
            factor = self._species_factor(species)
            value = self.values[sid]
            if species.getHasOnlySubstanceUnits():
                count = value * factor
            else:
                if compartment.size is None:
                    raise InvalidNetworkError(
                        f"species '{sid}' is a concentration but compartment "
                        f"'{compartment.id}' has no size; pass volumes={{'{compartment.id}': "
                        "litres}")
                count = value * factor * compartment.size
            if count < 0:
                raise InvalidNetworkError(f"species '{sid}' starts at a negative amount")
            result.append(Species(
                id=sid, compartment=compartment.id, initial_count=float(count),
                molecules_per_unit=factor,
                has_only_substance_units=species.getHasOnlySubstanceUnits(),
                boundary=species.getBoundaryCondition(), constant=species.getConstant(),
                name=species.getName(), continuous=sid in self.continuous_ids))
        return result

    def size_symbol(self, compartment_id: str) -> sympy.Basic:
        """A compartment's size in expressions: a number, or its own symbol when it
        changes (a parameter, or an assignment-rule variable inlined later)."""
        compartment = self.compartments[compartment_id]
        if compartment.constant:
            return number(compartment.size)
        return sympy.Symbol(compartment_id)

    def molecules_per_value(self, species: Species) -> sympy.Basic:
        """Molecules per unit of the species' SBML value (F, or F V for a concentration)."""
        if species.has_only_substance_units:
            return number(species.molecules_per_unit)
        if self.compartments[species.compartment].size is None:
            raise InvalidNetworkError(f"species '{species.id}' is a concentration but its "
                                      "compartment has no size; pass volumes={...}")
        return number(species.molecules_per_unit) * self.size_symbol(species.compartment)

    def _count_substitutions(self) -> dict[sympy.Symbol, sympy.Basic]:
        """SBML symbol -> expression in counts, parameters and time."""
        subs: dict[sympy.Symbol, sympy.Basic] = {}
        for cid, compartment in self.compartments.items():
            if compartment.size is not None and compartment.constant:
                subs[sympy.Symbol(cid)] = number(compartment.size)
        for species in self.species:
            n = sympy.Symbol(species.id)
            subs[n] = n / self.molecules_per_value(species)
        for reaction in self.model.getListOfReactions():
            for reference in list(reaction.getListOfReactants()) + list(
                    reaction.getListOfProducts()):
                if reference.isSetId():
                    subs[sympy.Symbol(reference.getId())] = number(
                        self.values[reference.getId()])
        # Assignment rules and reaction ids (their kinetic laws) are inlined, innermost first.
        resolved: dict[sympy.Symbol, sympy.Basic] = {}
        pending = {variable: self.expand_rate_of(formula, variable) for variable, formula in
                   {**self.law_formulas, **self.rule_formulas}.items()}
        while pending:
            progress = False
            for variable, formula in list(pending.items()):
                if any(str(s) in pending for s in formula.free_symbols):
                    continue
                resolved[sympy.Symbol(variable)] = formula.xreplace(resolved)
                del pending[variable]
                progress = True
            if not progress:
                raise UnsupportedFeatureError("a cycle of assignment rules",
                                              sorted(pending)[0])
        final = {symbol: formula.xreplace(subs) for symbol, formula in resolved.items()}
        subs.update(final)
        ruled_sizes = {sympy.Symbol(c) for c in self.rule_formulas if c in self.compartments}
        for _ in range(len(ruled_sizes)):  # sizes given by rules inside species symbols
            if not any(expression.free_symbols & ruled_sizes for expression in subs.values()):
                break
            sizes = {size: subs[size] for size in ruled_sizes}
            subs = {symbol: expression.xreplace(sizes) for symbol, expression in subs.items()}
        if any(expression.free_symbols & ruled_sizes for expression in subs.values()):
            raise UnsupportedFeatureError("an assignment rule on a compartment size that "
                                          "depends on itself", sorted(map(str, ruled_sizes))[0])
        return subs

    def expand_rate_of(self, formula: sympy.Basic, element_id: str) -> sympy.Basic:
        """``formula`` with every ``rateOf(x)`` replaced by the rate of change of x
        (SBML symbols and units)."""
        if not formula.has(RATE_OF):
            return formula
        return formula.replace(RATE_OF, lambda symbol: self._rate_of(symbol.name, element_id))

    def _rate_of(self, variable: str, element_id: str) -> sympy.Basic:
        """d(variable)/dt over SBML symbols: a rate rule, the net reaction flux of a
        species (deterministic limit only), d/dt of a rule of time, or 0 for a value
        that changes only at events."""
        if variable in self.rate_rule_formulas:
            return self.rate_rule_formulas[variable]
        if variable in self.rule_formulas:
            formula = self.rule_formulas[variable]
            if formula.free_symbols - {TIME} - {sympy.Symbol(c) for c in self._constants()}:
                raise UnsupportedFeatureError(
                    f"rateOf('{variable}') of an assignment rule that is not a function of "
                    "time", element_id)
            return sympy.diff(formula, TIME)
        species = self.model.getSpecies(variable)
        if species is None or species.getBoundaryCondition() or species.getConstant():
            return sympy.Integer(0)
        flux = sympy.Integer(0)
        for reaction in self.model.getListOfReactions():
            for sign, references in ((-1, reaction.getListOfReactants()),
                                     (1, reaction.getListOfProducts())):
                for reference in references:
                    if reference.getSpecies() == variable:
                        flux += sign * number(self._stoichiometry_value(reaction, reference)) * \
                            sympy.Symbol(reaction.getId())
        if flux == 0:
            return flux
        if self.conversion_factors is None:  # initial values come first
            factor = self.model.getConversionFactor() if self.level >= 3 else ""
            if species.isSetConversionFactor() or factor:
                raise UnsupportedFeatureError(
                    f"rateOf('{variable}') in an initial value of a model with conversion "
                    "factors", element_id)
        else:
            flux *= number(self.conversion_factors.get(variable, 1.0))
        self.deterministic_only.append((element_id, f"rateOf of species '{variable}', "
                                                    "which reactions change"))
        if species.getHasOnlySubstanceUnits():
            return flux
        compartment = species.getCompartment()
        if not self.compartments[compartment].constant:
            raise UnsupportedFeatureError(
                f"rateOf of the concentration '{variable}' in the variable compartment "
                f"'{compartment}'", element_id)
        return flux / sympy.Symbol(compartment)

    def _constants(self) -> set[str]:
        """Ids of parameters and compartments that never change."""
        ids = {p.getId() for p in self.model.getListOfParameters() if p.getConstant()}
        ids |= {c.getId() for c in self.model.getListOfCompartments() if c.getConstant()}
        return ids - set(self.rate_rule_formulas) - set(self.rule_formulas)

    def to_counts(self, formula: sympy.Basic, element_id: str = "") -> sympy.Basic:
        """Rewrite an SBML formula (model units) in counts, parameters and time."""
        return self.expand_rate_of(formula, element_id).xreplace(self.count_subs)

    def _parameters(self) -> list[Parameter]:
        result = []
        for parameter in self.model.getListOfParameters():
            pid = parameter.getId()
            if pid in self.rule_formulas:
                continue
            if pid not in self.values:
                raise InvalidNetworkError(f"parameter '{pid}' has no value")
            result.append(Parameter(pid, float(self.values[pid]), parameter.getConstant()
                                    and pid not in self.rate_rule_formulas))
        for cid in sorted(self.variable_sizes):
            size = self.compartments[cid].size
            if size is None:
                raise InvalidNetworkError(f"the variable compartment '{cid}' has no initial "
                                          "size; pass volumes={...}")
            result.append(Parameter(cid, float(size), constant=False))
        return result

    def _rate_rules(self) -> list[RateRule]:
        """Rate rules in counts: species targets in molecules per time, parameter and
        compartment targets in model units per time."""
        rules = []
        for variable, formula in self.rate_rule_formulas.items():
            rate = self.to_counts(formula, variable)
            species = next((s for s in self.species if s.id == variable), None)
            if species is not None:
                rate = self._species_rate(species, rate)
            rules.append(RateRule(variable, rate))
        return rules

    def _species_rate(self, species: Species, rate: sympy.Basic) -> sympy.Basic:
        """dn/dt in molecules per time from d(value)/dt: F d(amount)/dt, or for a
        concentration F V d[S]/dt + n dV/dt / V (the amount moves with the volume)."""
        if species.has_only_substance_units:
            return number(species.molecules_per_unit) * rate
        size = self.size_symbol(species.compartment)
        size_rate = sympy.Integer(0)
        if species.compartment in self.rate_rule_formulas:
            size_rate = self.to_counts(self.rate_rule_formulas[species.compartment],
                                       species.id)
        elif species.compartment in self.rule_formulas:
            size_rate = sympy.diff(self.to_counts(size), TIME)
            if size.free_symbols and (self.to_counts(size).free_symbols - {TIME} -
                                      {sympy.Symbol(p.id) for p in self.parameters
                                       if p.constant}):
                raise UnsupportedFeatureError(
                    f"a rate rule on the concentration '{species.id}' in a compartment "
                    "whose assignment rule depends on the state", species.id)
        n = sympy.Symbol(species.id)
        return self.to_counts(number(species.molecules_per_unit) * size) * rate + \
            n * size_rate / self.to_counts(size)

    # -- reactions -----------------------------------------------------------------------
    def _stoichiometry(self, reaction, references) -> tuple[tuple[str, float], ...]:
        """Species -> stoichiometry as written (a law's orders; conversion factors are
        applied by :meth:`_converted`)."""
        totals: dict[str, float] = {}
        for reference in references:
            sid = reference.getSpecies()
            value = self._stoichiometry_value(reaction, reference)
            if not np.isfinite(value):
                raise InvalidSBMLError(f"reaction '{reaction.getId()}' has stoichiometry "
                                       f"{value} of '{sid}'")
            if value < 0:
                raise UnsupportedFeatureError(
                    f"a negative stoichiometry {value:g} of '{sid}'", reaction.getId(),
                    hint="Move the species to the other side of the reaction.")
            if sid in self.rule_formulas:
                continue  # a rule-determined species is not changed by reactions
            if value > 0:
                totals[sid] = totals.get(sid, 0) + value
        return tuple((sid, int(v) if float(v).is_integer() else v) for sid, v in totals.items())

    def _converted(self, channel: Reaction) -> Reaction:
        """``channel`` with each species' change multiplied by its conversion factor."""
        if not self.conversion_factors:
            return channel

        def side(terms):
            scaled = [(sid, count * self.conversion_factors.get(sid, 1.0)) for sid, count in terms]
            for sid, c in scaled:
                if not abs(c) <= MAX_STOICHIOMETRY:
                    raise InvalidSBMLError(
                        f"reaction '{channel.id}' changes species '{sid}' by {c:g} per firing "
                        f"(stoichiometry x conversion factor "
                        f"{self.conversion_factors[sid]:g}): beyond {MAX_STOICHIOMETRY:g}; "
                        "fix the conversion factor")
            return tuple((sid, int(c) if float(c).is_integer() else c)
                         for sid, c in scaled if c != 0)
        return dataclasses.replace(channel, reactants=side(channel.reactants),
                                   products=side(channel.products))

    def _stoichiometry_value(self, reaction, reference) -> float:
        """A reference's stoichiometry, evaluated once: it must be constant in time
        (a stoichiometryMath, initial assignment or assignment rule of constants)."""
        if self.level == 2 and reference.isSetStoichiometryMath():
            formula = to_sympy(reference.getStoichiometryMath().getMath(), reaction.getId(),
                               self.functions)
            self._require_constant_stoichiometry(formula, "stoichiometryMath",
                                                 reaction.getId())
            return _evaluate(formula, self.values, reaction.getId())
        if not reference.isSetId():
            return reference.getStoichiometry() if (
                self.level < 3 or reference.isSetStoichiometry()) else 1.0
        rid = reference.getId()
        if rid in self.rule_formulas:
            self._require_constant_stoichiometry(self.rule_formulas[rid],
                                                 "a rule on a species reference", rid)
        elif self.model.getRule(rid) is not None:
            raise UnsupportedFeatureError(
                "variable stoichiometry (a rate rule on a species reference)", rid,
                hint="Molecule counts change by fixed whole numbers per reaction event.")
        elif rid in event_targets(self.model):
            raise UnsupportedFeatureError(
                "variable stoichiometry (an event assignment to a species reference)", rid,
                hint="Molecule counts change by fixed whole numbers per reaction event.")
        if self.level >= 3 and not reference.isSetStoichiometry() and rid not in self.values:
            return 1.0
        return self.values.get(rid, reference.getStoichiometry())

    def _require_constant_stoichiometry(self, formula, how: str, element_id: str) -> None:
        changing = changing_symbols(formula, self.model, self.rule_formulas)
        if changing:
            raise UnsupportedFeatureError(
                f"variable stoichiometry ({how})", element_id,
                hint=f"It reads {changing}, which change in time, whereas molecule counts "
                     "change by fixed whole numbers per reaction event.")

    def _channels(self, reaction: libsbml.Reaction) -> list[Reaction]:
        rid = reaction.getId()
        law = reaction.getKineticLaw()
        if law is None or law.getMath() is None:
            raise UnsupportedFeatureError("a reaction without a kinetic law", rid)
        reactants = self._stoichiometry(reaction, reaction.getListOfReactants())
        products = self._stoichiometry(reaction, reaction.getListOfProducts())
        local = self._local_parameter_symbols(reaction)
        local_parameters = list(law.getListOfLocalParameters()) if self.level >= 3 else \
            list(law.getListOfParameters())
        for parameter in local_parameters:
            self.parameters.append(Parameter(f"{rid}.{parameter.getId()}",
                                             float(parameter.getValue())))
        formula = self.law_formulas[rid]
        if formula.has(DELAY):
            formula = self._undelayed_law(rid, formula, reactants, products)
        if has_draws(formula):
            raise UnsupportedFeatureError(
                "a random draw (distrib) in a kinetic law", rid,
                hint="Draw a parameter once (an initial assignment) or in an event instead.")
        propensity = number(self.extent_factor) * self.to_counts(formula)
        sbml_law = libsbml.formulaToL3String(law.getMath())
        context = LawContext(
            species=tuple(self.species), parameters=tuple(self.parameters),
            compartments=tuple(self.compartments.values()), extent_factor=self.extent_factor,
            falling_factorials=self.options.falling_factorials)
        return [self._converted(channel) for channel in classify(
            rid, sbml_law, propensity, reactants, products, context,
            reversible=reaction.getReversible())]

    # -- delay() in kinetic laws (delays="phases", docs/delays.md) ------------------------
    def _undelayed_law(self, rid: str, formula: sympy.Basic, reactants, products) -> sympy.Basic:
        """``C * f`` for a law ``C * delay(f, tau)``; records tau for :meth:`_delay_chains`.

        The reaction then starts (propensity from the state at initiation) and completes
        one Erlang delay later with its whole state change, which is only a chemical
        process when it consumes nothing: SBML's rate ``C f(t - tau)`` removes reactants at
        completion, when they may be gone. Anything else is refused.
        """
        delays = formula.atoms(DELAY)
        factors = sympy.Mul.make_args(formula)
        (delayed,) = delays if len(delays) == 1 else (None,)
        outside = [f for f in factors if f != delayed]
        constant = sympy.Mul(*outside)
        if delayed is None or delayed not in factors or delayed.args[0].has(DELAY) or any(
                not self._is_constant(symbol) for symbol in constant.free_symbols):
            raise UnsupportedFeatureError(
                "a kinetic law with delay() that is not C*delay(f, tau)", rid,
                hint="delays='phases' converts a law C*delay(f, tau) with one delay() and "
                     "constant C and tau: the whole rate must come from one past time.")
        value, tau_formula = delayed.args
        if any(not self._is_constant(symbol) for symbol in tau_formula.free_symbols):
            raise UnsupportedFeatureError("a delay() whose delay time is not constant", rid,
                                          hint="The method of phases needs a fixed mean delay.")
        tau = _evaluate(tau_formula, {**self.values, **{p.id: p.value for p in
                                                        self.parameters}}, rid)
        if not (np.isfinite(tau) and tau >= 0):
            raise InvalidSBMLError(f"reaction '{rid}' has delay() with delay time {tau}")
        fixed = {s.id for s in self.species if s.fixed}
        change = dict(reactants)
        for species_id, count in products:
            change[species_id] = change.get(species_id, 0) - count
        consumed = sorted(sid for sid, count in change.items() if count > 0 and sid not in fixed)
        if consumed:
            raise UnsupportedFeatureError(
                f"delay() in the kinetic law of a reaction that consumes {consumed}", rid,
                hint="SBML's delayed rate removes the reactants at completion, when they may "
                     "be gone (counts could turn negative), so no chain of reactions "
                     "reproduces it. Delay a reaction that only produces (reactants that "
                     "are also products are fine), or read the model without delay() and "
                     "use with_delay, which consumes the reactants at initiation.")
        if tau > 0:
            self.delayed[rid] = tau
        return constant * value

    def _is_constant(self, symbol: sympy.Symbol) -> bool:
        """A number that cannot change during a run (constant parameter or compartment)."""
        name = symbol.name
        if "." in name:  # a local parameter
            return True
        element = self.model.getParameter(name) or self.model.getCompartment(name)
        if element is None or name in self.rule_formulas:
            return False
        return bool(element.getConstant())

    def _delay_chains(self, network: Network) -> Network:
        """The network with each recorded delayed reaction made a chain of phases."""
        if not self.delayed:
            return network

        k = self.options.delay_phases
        for rid, tau in self.delayed.items():
            index = network.reaction_ids.index(rid)
            channel = network.reactions[index]
            form = (f"{channel.conversion.form}; SBML delay({tau:g}) read as an "
                    f"Erlang({k}, {k / tau:g}) delay (delays='phases', delay_phases={k})")
            marked = dataclasses.replace(channel, conversion=dataclasses.replace(
                channel.conversion, form=form))
            network = dataclasses.replace(network, reactions=network.reactions[:index] + (
                marked,) + network.reactions[index + 1:])
            before = set(network.reaction_ids)
            network = with_delay(network, rid, tau, phases=k)
            # The phase channels come from SBML reaction rid, as both channels of a
            # reversible reaction do: annotations go there.
            network = dataclasses.replace(network, reactions=tuple(
                r if r.id in before else dataclasses.replace(r, sbml_id=rid)
                for r in network.reactions))
        return dataclasses.replace(network, notes=network.notes + (
            "delay() chains start empty: no reaction is in flight at the start time, whereas "
            "SBML's ODE semantics also counts reactions started before it (docs/delays.md)",))

    # -- outputs and events ---------------------------------------------------------------
    def _outputs(self) -> list[Output]:
        outputs = []
        for variable, formula in self.rule_formulas.items():
            value = self.to_counts(sympy.Symbol(variable))
            species = self.model.getSpecies(variable)
            if species is not None:
                factor = self._species_factor(species)
                hosu = species.getHasOnlySubstanceUnits()
                size = self.compartments[species.getCompartment()].size
                scale = factor if hosu else factor * (size if size is not None else np.nan)
                outputs.append(Output(variable, number(scale) * value, "species",
                                      species.getCompartment(), factor, hosu))
            else:
                outputs.append(Output(variable, value, "parameter"))
        ruled = set(self.rule_formulas) | set(self.clock_rules)
        for variable in list(self.rate_rule_formulas) + sorted(self.variable_sizes):
            if self.model.getSpecies(variable) is None and variable not in ruled and \
                    variable not in {o.id for o in outputs}:
                outputs.append(Output(variable, sympy.Symbol(variable), "parameter"))
        return outputs

    def _events(self) -> list[Event]:
        events = []
        for event in self.model.getListOfEvents():
            eid = event.getId() or event.getMetaId() or f"event{len(events)}"
            trigger = event.getTrigger()
            if trigger is None or trigger.getMath() is None:
                raise InvalidSBMLError(f"event '{eid}' has no trigger")
            assignments, execution_scales = [], []
            delayed = event.getDelay() is not None and (
                event.getUseValuesFromTriggerTime() if (
                    self.level >= 3 or event.isSetUseValuesFromTriggerTime()) else True)
            for assignment in event.getListOfEventAssignments():
                target = assignment.getVariable()
                value = self.to_counts(to_sympy(assignment.getMath(), eid, self.functions), eid)
                if target in self.species_ids:
                    species = next(s for s in self.species if s.id == target)
                    scale = self.to_counts(self.molecules_per_value(species), eid)
                    if delayed and scale.free_symbols:  # the volume at execution counts
                        execution_scales.append((target, scale))
                    else:
                        value = scale * value
                elif target in self.variable_sizes:
                    pass
                elif self.model.getParameter(target) is None:
                    raise UnsupportedFeatureError(
                        f"an event assignment to '{target}' (not a species or parameter)", eid)
                elif target in self.rule_formulas:
                    raise InvalidSBMLError(f"event '{eid}' assigns '{target}', which has an "
                                           "assignment rule")
                assignments.append((target, value))
            delay = event.getDelay()
            priority = event.getPriority() if self.level >= 3 else None
            condition = self.to_counts(to_sympy(trigger.getMath(), eid, self.functions,
                                                numeric=False))
            if not isinstance(condition, sympy.logic.boolalg.Boolean):
                raise InvalidSBMLError(f"the trigger of event '{eid}' is {condition}, a number "
                                       "rather than a condition; fix its MathML")
            events.append(Event(
                id=eid, trigger=condition,
                assignments=tuple(assignments), execution_scales=tuple(execution_scales),
                delay=self.to_counts(to_sympy(delay.getMath(), eid, self.functions))
                if delay is not None and delay.getMath() is not None else None,
                priority=self.to_counts(to_sympy(priority.getMath(), eid, self.functions))
                if priority is not None and priority.getMath() is not None else None,
                persistent=trigger.getPersistent() if self.level >= 3 else True,
                initial_value=trigger.getInitialValue() if self.level >= 3 else True,
                use_values_from_trigger_time=event.getUseValuesFromTriggerTime()
                if (self.level >= 3 or event.isSetUseValuesFromTriggerTime()) else True))
        return events


#: sbml_cme's annotation namespace (``sbml_writer.NAMESPACE``; the writer imports this
#: module, so the URI is repeated here and a test checks the two agree).
ANNOTATION_NAMESPACE = "https://sbml-cme.org/annotations/1"


def _with_annotated_bursts(network: Network, model: libsbml.Model) -> Network:
    """Apply the ``sbmlcme:burst`` declarations found in reaction annotations
    (``reaction/channel/burst``, docs/annotations.md and docs/bursts.md)."""
    for reaction in model.getListOfReactions():
        for burst in _annotated_bursts(reaction):
            channel = burst.getAttrValue("channel")
            species = burst.getAttrValue("species")
            distribution = burst.getAttrValue("distribution")
            try:
                if distribution == "geometric":
                    network = network.with_burst(
                        channel, species, mean=float(burst.getAttrValue("meanSize")))
                elif distribution == "finite":
                    network = network.with_burst(channel, species, distribution=[
                        float(v) for v in burst.getAttrValue("probabilities").split()])
                else:
                    raise OptionsError(f"unknown burst distribution {distribution!r} (use "
                                       "'geometric' or 'finite')")
            except (OptionsError, InvalidNetworkError, ValueError) as error:
                raise InvalidSBMLError(
                    f"reaction '{reaction.getId()}': the sbml_cme burst annotation is "
                    f"invalid: {error}") from None
    return network


def _annotated_bursts(reaction: libsbml.Reaction) -> list:
    """The ``sbmlcme:burst`` nodes of a reaction's annotation."""
    def ours(node, name):
        return [node.getChild(i) for i in range(node.getNumChildren())
                if node.getChild(i).getName() == name
                and node.getChild(i).getURI() == ANNOTATION_NAMESPACE]
    if not reaction.isSetAnnotation():
        return []
    return [burst for top in ours(reaction.getAnnotation(), "reaction")
            for channel in ours(top, "channel") for burst in ours(channel, "burst")]


def _spatial_dimensions(compartment: libsbml.Compartment, level: int) -> float | None:
    """Dimensions as a number, None when an L3 model leaves them unset (never NaN,
    which would break network equality and hashing)."""
    if level < 3:
        return float(compartment.getSpatialDimensions())
    return compartment.getSpatialDimensionsAsDouble() if compartment.isSetSpatialDimensions() \
        else None


def number(value: float) -> sympy.Number:
    """A sympy number, exact when ``value`` is a whole number (keeps formulas readable)."""
    if float(value).is_integer() and abs(value) < 2**53:
        return sympy.Integer(int(value))
    return sympy.Float(value)


def _evaluate(formula: sympy.Basic, values: dict[str, float], element_id: str) -> float:
    # Constants become floats first, so that P1 == pi holds when P1 was set to pi.
    substituted = sympy.sympify(formula).xreplace(
        {sympy.pi: sympy.Float(np.pi), sympy.E: sympy.Float(np.e)}).xreplace(
        {s: sympy.Float(values[str(s)]) for s in formula.free_symbols if str(s) in values}
    ).xreplace({TIME: sympy.Integer(0)})
    if substituted is sympy.true or substituted is sympy.false:
        return 1.0 if substituted is sympy.true else 0.0  # SBML L3V2: booleans are 1/0
    try:
        return float(substituted)
    except (TypeError, ValueError):
        raise UnsupportedFeatureError(
            f"an initial value that does not evaluate to a number ({substituted})",
            element_id) from None
