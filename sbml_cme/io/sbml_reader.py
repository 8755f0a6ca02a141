"""Read SBML (L2V1 to L3V2) into a :class:`~sbml_cme.network.Network` in molecule counts.

The conversion follows THEORY.md section 1: a propensity is ``F * v`` where ``v`` is the
kinetic law (substance per time) evaluated with every species symbol replaced by its
value computed from molecule counts, ``n / (F V)`` for a concentration and ``n / F`` for
an amount, and ``F`` is molecules per substance unit. A law that is a mass-action
monomial in the reactants (orders equal to reactant stoichiometries) gets exact
combinatorics, ``n**m -> (n)_m``. A law that is the difference of two such monomials,
forward in the reactants and backward in the products, becomes two channels.
Everything else is substituted as is, and must be provably non-negative.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import libsbml
import numpy as np
import sympy

from ..delays import MAX_PHASES, with_delay
from ..distributions import RandomDraw, has_draws
from ..errors import InvalidNetworkError, InvalidSBMLError, OptionsError, UnsupportedFeatureError
from ..network import (AVOGADRO, TIME, Compartment, Conversion, Event, Expression, MassAction,
                       Network, Output, Parameter, Reaction, Species)
from .mathml import DELAY, FunctionDefinitions, to_sympy
from .validate import check_document, check_network, read_text

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
    """

    volumes: tuple = ()
    substance_unit: str | float | None = None
    falling_factorials: bool = True
    delays: str | None = None
    delay_phases: int | None = None


def read_sbml(path: str | os.PathLike, **options) -> Network:
    """Read an SBML file into a :class:`Network` in molecule counts.

    Parameters
    ----------
    path : path-like
        SBML file, Level 2 Version 1 to Level 3 Version 2.
    **options
        ``volumes={"cell": 1e-15}`` (litres), ``substance_unit="item"``,
        ``falling_factorials=True``, ``delays="phases", delay_phases=k``; see
        :class:`ReadOptions`.

    Raises
    ------
    InvalidSBMLError
        The file is unreadable or libsbml reports errors.
    UnsupportedFeatureError
        A construct with no exact stochastic meaning; names the element.
    """
    path = os.fspath(path)
    return _read(read_text(path), path, options)


def read_sbml_string(text: str, **options) -> Network:
    """Read SBML from a string; same options and errors as :func:`read_sbml`."""
    return _read(text, "<string>", options)


def _read(text: str, source: str, options: dict) -> Network:
    """The one path from SBML text to a validated network (see ``io/validate.py``)."""
    read_options = _options(options)
    document = libsbml.readSBMLFromString(text)
    check_document(document, source)
    network = _Importer(document, read_options, source=source, text=text).network()
    check_network(network)
    return network


def _options(options: dict) -> ReadOptions:
    unknown = set(options) - {"volumes", "substance_unit", "falling_factorials", "delays",
                              "delay_phases"}
    if unknown:
        raise OptionsError(f"unknown read_sbml option(s) {sorted(unknown)}; known: volumes, "
                           "substance_unit, falling_factorials, delays, delay_phases")
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
                       **_delay_options(options))


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


def _check_document(document: libsbml.SBMLDocument, source: str) -> libsbml.Model:
    severe = [document.getError(i) for i in range(document.getNumErrors())
              if document.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if severe:
        raise InvalidSBMLError(f"libsbml could not read '{source}'",
                               [f"line {e.getLine()}: {e.getMessage().strip()}" for e in severe])
    model = document.getModel()
    if model is None:
        raise InvalidSBMLError(f"'{source}' contains no SBML model")
    packages = set()
    if document.getLevel() >= 3:
        # libsbml attaches 'l3v2extendedmath' to every L3V2 document: it is core math.
        # distrib adds random draws (read into RandomDraw) and uncertainty annotations
        # (no effect on the dynamics).
        packages = {document.getPlugin(i).getPackageName()
                    for i in range(document.getNumPlugins())} - {"l3v2extendedmath",
                                                                  "distrib"}
    for package in sorted(packages):
        if document.isSetPackageRequired(package) and document.getPackageRequired(package):
            raise UnsupportedFeatureError(
                f"the SBML package '{package}' (required=true)", model.getId() or source,
                hint="Flatten or remove the package constructs (e.g. comp flattening in "
                     "libsbml) and read the core model.")
    return model


class _Importer:
    """One pass over a libsbml model; :meth:`network` builds the result."""

    def __init__(self, document: libsbml.SBMLDocument, options: ReadOptions, source: str,
                 text: str = ""):
        self.text = text
        self.document = document
        self.options = options
        self.source = source
        self.model = _check_document(document, source)
        self.level = self.model.getLevel()
        self.functions = FunctionDefinitions(self.model)
        self.notes: list[str] = []
        #: Reactions whose law had delay() (delays="phases"): id -> mean delay tau.
        self.delayed: dict[str, float] = {}
        #: Rate rules accepted as clocks: parameter id -> rate formula.
        self.clock_rules: dict[str, sympy.Basic] = {}
        #: Parameters drawn per realisation: id -> formula with RandomDraw (SBML symbols).
        self.parameter_draws: dict[str, sympy.Basic] = {}

    # -- the whole conversion ---------------------------------------------------------
    def network(self) -> Network:
        self._reject_unsupported_model_constructs()
        self.compartments = self._compartments()
        self.rule_formulas = self._assignment_rules()
        self.extent_factor = self._extent_factor()
        self.values = self._initial_values()
        for cid, compartment in list(self.compartments.items()):
            if cid in self.values and self.values[cid] != compartment.size:
                # An initial assignment sets the (constant) size.
                self.compartments[cid] = dataclasses.replace(compartment,
                                                             size=self.values[cid])
        self.species = self._species()
        self.species_ids = {s.id for s in self.species}
        self.count_subs = self._count_substitutions()
        self.parameters = self._parameters()
        reactions = [channel for reaction in self.model.getListOfReactions()
                     for channel in self._channels(reaction)]
        network = Network(
            species=tuple(self.species), reactions=tuple(reactions),
            parameters=tuple(self.parameters), compartments=tuple(self.compartments.values()),
            outputs=tuple(self._outputs()), events=tuple(self._events()),
            id=self.model.getId(), name=self.model.getName(), notes=tuple(self.notes),
            source_sbml=self.text, read_options=dataclasses.astuple(self.options),
            clocks=self._clocks(), parameter_distributions=tuple(
                (pid, self.to_counts(formula)) for pid, formula in self.parameter_draws.items()))
        return _with_annotated_bursts(self._delay_chains(network), self.model)

    def _reject_unsupported_model_constructs(self) -> None:
        for rule in self.model.getListOfRules():
            variable = rule.getVariable() if not rule.isAlgebraic() else None
            if rule.isAlgebraic():
                raise UnsupportedFeatureError("an algebraic rule", rule.getId() or rule.getMetaId()
                                              or "algebraic rule",
                                              hint="Solve the constraint by hand into an "
                                                   "assignment rule.")
            if rule.isRate() and self._is_clock(rule):
                self.clock_rules[variable] = to_sympy(rule.getMath(), variable, self.functions)
                continue
            if rule.isRate():
                kind = "species" if self.model.getSpecies(variable) else "variable"
                raise UnsupportedFeatureError(
                    f"a rate rule on {kind} '{variable}'", variable,
                    hint="Only reactions can change molecule counts in a stochastic "
                         "model; express the rate rule as reactions.")
            if self.model.getCompartment(variable) is not None:
                raise UnsupportedFeatureError(f"an assignment rule on compartment '{variable}' "
                                              "(variable volume)", variable)
            if self._species_reference(variable) is not None:
                raise UnsupportedFeatureError("variable stoichiometry (a rule on a species "
                                              "reference)", variable)
        for reaction in self.model.getListOfReactions():
            if reaction.isSetFast() and reaction.getFast():
                raise UnsupportedFeatureError(
                    "a fast reaction", reaction.getId(),
                    hint="Replace it by its quasi-steady-state or make it an ordinary reaction.")
        for constraint in self.model.getListOfConstraints():
            self.notes.append("constraints are ignored (they do not change the dynamics)")
            break
        for species in self.model.getListOfSpecies():
            if species.isSetConversionFactor():
                self._require_unit_conversion_factor(species.getConversionFactor(),
                                                     species.getId())
        if self.level >= 3 and self.model.isSetConversionFactor():
            self._require_unit_conversion_factor(self.model.getConversionFactor(),
                                                 self.model.getId())

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

    def _require_unit_conversion_factor(self, parameter_id: str, element_id: str) -> None:
        parameter = self.model.getParameter(parameter_id)
        if parameter is None or parameter.getValue() != 1.0 or self._is_assigned(parameter_id):
            raise UnsupportedFeatureError(
                f"a conversion factor ('{parameter_id}') other than 1", element_id,
                hint="It makes the change per reaction event non-integer in molecules.")

    def _is_assigned(self, element_id: str) -> bool:
        if self.model.getInitialAssignment(element_id) is not None:
            return True
        if self.model.getRule(element_id) is not None:
            return True
        return any(ea.getVariable() == element_id for event in self.model.getListOfEvents()
                   for ea in event.getListOfEventAssignments())

    def _species_reference(self, element_id: str):
        if not element_id:
            return None
        for reaction in self.model.getListOfReactions():
            for reference in list(reaction.getListOfReactants()) + list(
                    reaction.getListOfProducts()):
                if reference.isSetId() and reference.getId() == element_id:
                    return reference
        return None

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
            result[compartment.getId()] = Compartment(
                id=compartment.getId(), name=compartment.getName(), size=size,
                spatial_dimensions=_spatial_dimensions(compartment, self.level),
                litres_per_unit=litres)
        return result

    def _assignment_rules(self) -> dict[str, sympy.Basic]:
        """Assignment-rule formulas over raw SBML symbols, by variable."""
        rules = {}
        for rule in self.model.getListOfRules():
            if rule.isAssignment():
                rules[rule.getVariable()] = to_sympy(rule.getMath(), rule.getVariable(),
                                                     self.functions)
        return rules

    def _initial_values(self) -> dict[str, float]:
        """Values of every SBML symbol at t = 0 (species as their symbols mean)."""
        values: dict[str, float] = {}
        overridden = {cid for cid, _ in self.options.volumes}
        for cid, compartment in self.compartments.items():
            if compartment.size is not None and (
                    cid in overridden or self.model.getInitialAssignment(cid) is None):
                values[cid] = compartment.size
        for parameter in self.model.getListOfParameters():
            if parameter.isSetValue():
                values[parameter.getId()] = parameter.getValue()
        for reaction in self.model.getListOfReactions():
            for reference in list(reaction.getListOfReactants()) + list(
                    reaction.getListOfProducts()):
                if reference.isSetId():
                    values[reference.getId()] = reference.getStoichiometry()
        pending_species = {}
        for species in self.model.getListOfSpecies():
            pending_species[species.getId()] = species
        definitions = dict(self.rule_formulas)
        for assignment in self.model.getListOfInitialAssignments():
            symbol = assignment.getSymbol()
            if symbol in overridden:
                continue
            formula = to_sympy(assignment.getMath(), symbol, self.functions)
            if has_draws(formula):
                self._record_parameter_draw(symbol, formula)
                continue
            definitions[symbol] = formula
        drawn = {sympy.Symbol(pid) for pid in self.parameter_draws}
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
                name=species.getName()))
        return result

    def _count_substitutions(self) -> dict[sympy.Symbol, sympy.Basic]:
        """SBML symbol -> expression in counts, parameters and time."""
        subs: dict[sympy.Symbol, sympy.Basic] = {}
        for cid, compartment in self.compartments.items():
            if compartment.size is not None:
                subs[sympy.Symbol(cid)] = number(compartment.size)
        for species in self.species:
            n = sympy.Symbol(species.id)
            if species.has_only_substance_units:
                subs[n] = n / number(species.molecules_per_unit)
            else:
                size = self.compartments[species.compartment].size
                subs[n] = n / number(species.molecules_per_unit * size)
        for reaction in self.model.getListOfReactions():
            for reference in list(reaction.getListOfReactants()) + list(
                    reaction.getListOfProducts()):
                if reference.isSetId():
                    subs[sympy.Symbol(reference.getId())] = number(
                        self.values[reference.getId()])
        # Assignment rules are inlined, innermost first.
        resolved: dict[sympy.Symbol, sympy.Basic] = {}
        pending = dict(self.rule_formulas)
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
        return subs

    def to_counts(self, formula: sympy.Basic) -> sympy.Basic:
        """Rewrite an SBML formula (model units) in counts, parameters and time."""
        return formula.xreplace(self.count_subs)

    def _parameters(self) -> list[Parameter]:
        result = []
        for parameter in self.model.getListOfParameters():
            pid = parameter.getId()
            if pid in self.rule_formulas:
                continue
            if pid not in self.values:
                raise InvalidNetworkError(f"parameter '{pid}' has no value")
            result.append(Parameter(pid, float(self.values[pid]), parameter.getConstant()))
        return result

    # -- reactions -----------------------------------------------------------------------
    def _stoichiometry(self, reaction, references) -> tuple[tuple[str, int], ...]:
        totals: dict[str, int] = {}
        for reference in references:
            sid = reference.getSpecies()
            if reference.isSetStoichiometryMath() if self.level == 2 else False:
                raise UnsupportedFeatureError("variable stoichiometry (stoichiometryMath)",
                                              reaction.getId())
            if self.level >= 3 and reference.isSetId() and not reference.getConstant() and \
                    self._is_assigned(reference.getId()):
                raise UnsupportedFeatureError("variable stoichiometry", reference.getId())
            value = self.values.get(reference.getId(), reference.getStoichiometry()) \
                if reference.isSetId() else reference.getStoichiometry()
            if self.level >= 3 and not reference.isSetStoichiometry() and not (
                    reference.isSetId() and reference.getId() in self.values):
                value = 1.0
            if value != round(value) or value < 0:
                raise UnsupportedFeatureError(
                    f"non-integer stoichiometry {value:g} of '{sid}'", reaction.getId(),
                    hint="Molecule counts change by whole numbers; rescale the reaction.")
            if sid in self.rule_formulas:
                continue  # a rule-determined species is not changed by reactions
            if value > 0:
                totals[sid] = totals.get(sid, 0) + int(round(value))
        return tuple(totals.items())

    def _channels(self, reaction: libsbml.Reaction) -> list[Reaction]:
        rid = reaction.getId()
        law = reaction.getKineticLaw()
        if law is None or law.getMath() is None:
            raise UnsupportedFeatureError("a reaction without a kinetic law", rid)
        reactants = self._stoichiometry(reaction, reaction.getListOfReactants())
        products = self._stoichiometry(reaction, reaction.getListOfProducts())
        local = {}
        local_parameters = list(law.getListOfLocalParameters()) if self.level >= 3 else \
            list(law.getListOfParameters())
        for parameter in local_parameters:
            new_id = f"{rid}.{parameter.getId()}"
            local[parameter.getId()] = sympy.Symbol(new_id)
            self.parameters.append(Parameter(new_id, float(parameter.getValue())))
        formula = to_sympy(law.getMath(), rid, self.functions, rename=local,
                           delays=self.options.delays == "phases")
        if formula.has(DELAY):
            formula = self._undelayed_law(rid, formula, reactants, products)
        if has_draws(formula):
            raise UnsupportedFeatureError(
                "a random draw (distrib) in a kinetic law", rid,
                hint="Draw a parameter once (an initial assignment) or in an event instead.")
        propensity = number(self.extent_factor) * self.to_counts(formula)
        sbml_law = libsbml.formulaToL3String(law.getMath())
        return _classify(rid, sbml_law, propensity, reactants, products, self)

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
        return outputs

    def _events(self) -> list[Event]:
        events = []
        for event in self.model.getListOfEvents():
            eid = event.getId() or event.getMetaId() or f"event{len(events)}"
            trigger = event.getTrigger()
            if trigger is None or trigger.getMath() is None:
                raise InvalidSBMLError(f"event '{eid}' has no trigger")
            assignments = []
            for assignment in event.getListOfEventAssignments():
                target = assignment.getVariable()
                value = self.to_counts(to_sympy(assignment.getMath(), eid, self.functions))
                if target in self.species_ids:
                    species = next(s for s in self.species if s.id == target)
                    size = self.compartments[species.compartment].size
                    scale = species.molecules_per_unit * (
                        1.0 if species.has_only_substance_units else size)
                    value = number(scale) * value
                elif self.model.getCompartment(target) is not None:
                    raise UnsupportedFeatureError(
                        f"an event assignment to compartment '{target}' (variable volume)", eid)
                elif self.model.getParameter(target) is None:
                    raise UnsupportedFeatureError(
                        f"an event assignment to '{target}' (not a species or parameter)", eid)
                elif target in self.rule_formulas:
                    raise InvalidSBMLError(f"event '{eid}' assigns '{target}', which has an "
                                           "assignment rule")
                assignments.append((target, value))
            delay = event.getDelay()
            priority = event.getPriority() if self.level >= 3 else None
            events.append(Event(
                id=eid, trigger=self.to_counts(to_sympy(trigger.getMath(), eid, self.functions,
                                                 numeric=False)),
                assignments=tuple(assignments),
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


# -- classification of a propensity ----------------------------------------------------------
def _classify(rid: str, sbml_law: str, propensity: sympy.Expr,
              reactants: tuple[tuple[str, int], ...], products: tuple[tuple[str, int], ...],
              importer: _Importer) -> list[Reaction]:
    """Decide the propensity form of one SBML reaction; returns its channel(s)."""
    propensity = _snap_round_floats(propensity)
    species = [s for s in propensity.free_symbols if s.name in importer.species_ids]
    # Reactants and products absent from the law still count: order 0 is not order 1.
    species = sorted(set(species) | {sympy.Symbol(sid) for sid, _ in reactants + products},
                     key=lambda symbol: symbol.name)
    F = importer.extent_factor
    falling = importer.options.falling_factorials
    terms = _polynomial_terms(propensity, species)
    if terms is not None:
        reactant_orders = _orders_vector(reactants, species)
        product_orders = _orders_vector(products, species)
        parameter_values = {sympy.Symbol(p.id): p.value for p in importer.parameters}
        if len(terms) == 1:
            (exponents, coefficient), = terms.items()
            if exponents == reactant_orders:
                return [_mass_action_channel(rid, rid, sbml_law, coefficient, reactants,
                                             reactants, products, importer, falling)]
        if len(terms) == 2 and reactant_orders != product_orders:
            forward = terms.get(reactant_orders)
            backward = terms.get(product_orders)
            if forward is not None and backward is not None:
                forward_value = float(forward.xreplace(parameter_values))
                backward_value = float(backward.xreplace(parameter_values))
                if forward_value >= 0 and backward_value <= 0:
                    return [
                        _mass_action_channel(f"{rid}_forward", rid, sbml_law, forward,
                                             reactants, reactants, products, importer, falling),
                        _mass_action_channel(f"{rid}_backward", rid, sbml_law, -backward,
                                             products, products, reactants, importer, falling)]
    form = "general"
    if not _provably_non_negative(propensity, species, importer):
        if _is_falling_factorial_form(propensity, species, importer):
            form = "general (falling factorial as written)"
        elif _non_negative_on_counts(propensity, species, importer):
            form = "general (non-negative on whole-number counts)"
        elif _is_signed_difference(propensity, importer):
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
        if not np.isfinite(float(value)):
            continue  # an overflowed constant: io/validate.py refuses it by name
        nearest = round(float(value))
        if nearest != 0 and abs(float(value) - nearest) <= 4e-16 * abs(nearest):
            snapped[value] = sympy.Integer(nearest)
    return expression.xreplace(snapped) if snapped else expression


def _mass_action_channel(channel_id, rid, sbml_law, coefficient, orders, reactants, products,
                         importer: _Importer, falling: bool) -> Reaction:
    species = {s.id: s for s in importer.species}
    volume_factor = importer.extent_factor
    for sid, order in orders:
        s = species[sid]
        scale = s.molecules_per_unit * (1.0 if s.has_only_substance_units else
                                        importer.compartments[s.compartment].size)
        volume_factor /= scale ** order
    try:
        macroscopic = float(coefficient.xreplace(
            {sympy.Symbol(p.id): p.value for p in importer.parameters})) / volume_factor
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
                            molecules_per_unit=importer.extent_factor)
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


def _provably_non_negative(propensity, species, importer: _Importer) -> bool:
    """True when sympy can prove the law >= 0 for all counts >= 0 and the given parameters."""
    values = {sympy.Symbol(p.id): sympy.Float(p.value) for p in importer.parameters}
    nonneg = {s: sympy.Symbol(s.name, nonnegative=True) for s in species}
    nonneg[TIME] = sympy.Symbol("t", nonnegative=True)
    expression = propensity.xreplace(values).xreplace(nonneg)
    try:
        if expression.is_nonnegative:
            return True
        return sympy.count_ops(expression) < 60 and bool(sympy.factor(expression).is_nonnegative)
    except (TypeError, AttributeError, sympy.PolynomialError):
        return False


def _is_signed_difference(propensity, importer: _Importer) -> bool:
    """True when the law is a sum with terms of both signs (a net rate, not a propensity)."""
    values = {sympy.Symbol(p.id): p.value for p in importer.parameters}
    expression = propensity.xreplace(values)
    if isinstance(expression, sympy.Mul):
        expression = sympy.expand_mul(expression, deep=False)
    if not isinstance(expression, sympy.Add):
        return False
    return any(term.could_extract_minus_sign() for term in expression.args)


#: Largest number of whole-number counts checked one by one by _non_negative_on_counts.
_COUNT_CHECK_LIMIT = 100_000


def _non_negative_on_counts(propensity, species, importer: _Importer) -> bool:
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
    values = {sympy.Symbol(p.id): sympy.Rational(Fraction(p.value)) for p in importer.parameters}
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


def _is_falling_factorial_form(propensity, species, importer: _Importer) -> bool:
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
    values = {sympy.Symbol(p.id): p.value for p in importer.parameters}
    try:
        return float(coefficient.xreplace(values)) >= 0
    except TypeError:
        return False
