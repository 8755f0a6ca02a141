"""Delayed reactions by the method of phases (THEORY.md section 6).

A delay with mean ``tau`` and variance ``s**2`` becomes a chain of ``k = round(tau**2 /
s**2)`` memoryless steps, each at rate ``lambda = k / tau``; the time from initiation to
completion is then Erlang(k, lambda): mean ``tau``, variance ``tau**2 / k``. The result is
a plain :class:`~sbml_cme.network.Network` (extra species and mass-action channels), so
every analysis (CME, SSA, CLE, LNA, deterministic) runs on it unchanged.

Semantics of :func:`with_delay` for a channel ``R: reactants -> products`` with
propensity ``a(n)`` (docs/delays.md has the full statement):

- *initiation*: channel ``R`` keeps its id and propensity ``a(n)``, evaluated on the
  state at initiation. It removes the species the reaction consumes (its net reactants)
  and puts one molecule of the in-flight species ``<R>_phase1`` in place. A species on
  both sides (a catalyst such as the gene in ``G -> G + M``) is returned at once, up to
  its product stoichiometry (``hold_catalysts=True`` holds it until completion instead).
- *phases*: ``<R>_phase<i> -> <R>_phase<i+1>`` at propensity ``lambda * n`` (channel
  ``<R>_phase<i>_exit``), one first-order step per phase, so reactions in flight never
  interact (an infinite-server queue: any number may be in flight at once);
- *completion*: ``<R>_phase<k> -> net products`` at ``lambda * n`` (a burst of ``R``
  moves here too: its molecules are products).

This module owns only network construction; it imports nothing but the core.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import sympy

from .errors import OptionsError
from .network import Conversion, MassAction, Network, Parameter, Reaction, Species

#: Largest number of phases accepted (each phase is one more species for every analysis).
MAX_PHASES = 1000


@dataclass(frozen=True)
class DelayChain:
    """The record of one delayed channel, as kept in ``Network.notes``.

    Attributes
    ----------
    reaction : str
        The delayed channel (it now initiates the chain).
    mean : float
        Mean delay, model time units.
    phases : int
        Number of memoryless phases k.
    rate : float
        Rate of each phase, ``k / mean`` per model time unit.
    requested_variance : float or None
        The variance asked for (``None`` when ``phases`` was given).
    species : tuple of str
        The in-flight species ``phase1 .. phasek``.
    channels : tuple of str
        The phase channels, in chain order (the last one completes the reaction).
    rate_parameter : str
        Id of the parameter holding ``rate``.
    """

    reaction: str
    mean: float
    phases: int
    rate: float
    requested_variance: float | None
    species: tuple[str, ...]
    channels: tuple[str, ...]
    rate_parameter: str

    @property
    def variance(self) -> float:
        """Variance of the Erlang delay, ``mean**2 / phases``."""
        return self.mean**2 / self.phases

    def note(self) -> str:
        """One line for ``Network.notes``."""
        asked = ("" if self.requested_variance is None else
                 f", requested variance {self.requested_variance:g}")
        return (f"delay (method of phases): channel '{self.reaction}' completes after an "
                f"Erlang({self.phases}, {self.rate:g}) delay, mean {self.mean:g}, variance "
                f"{self.variance:g}{asked}; in flight: {self.species[0]}..{self.species[-1]}, "
                f"rate parameter '{self.rate_parameter}'")


def delay_phases(mean: float, variance: float) -> int:
    """Number of phases ``k = round(mean**2 / variance)`` (halves round up).

    Raises
    ------
    OptionsError
        ``mean`` or ``variance`` not positive and finite, ``k < 1`` (a delay more
        variable than exponential, variance > 2 mean**2, which no Erlang law has) or
        ``k > MAX_PHASES``.
    """
    mean = _positive(mean, "mean")
    variance = _positive(variance, "variance")
    ratio = mean**2 / variance
    phases = math.floor(ratio + 0.5)
    if phases < 1:
        raise OptionsError(
            f"a delay with mean {mean:g} and variance {variance:g} has mean**2/variance = "
            f"{ratio:.3g} < 0.5: the method of phases gives Erlang delays, whose variance is "
            f"at most mean**2 (k = 1, exponential). Use variance <= {2 * mean**2:g}.")
    if phases > MAX_PHASES:
        raise OptionsError(
            f"mean {mean:g} and variance {variance:g} need k = {phases} phases (more than "
            f"{MAX_PHASES}); each phase is one more species. Accept a larger variance "
            f"(variance = mean**2 / k) or pass phases=k directly with k <= {MAX_PHASES}.")
    return phases


def with_delay(network: Network, reaction: str, mean: float, variance: float | None = None,
               *, phases: int | None = None, hold_catalysts: bool = False) -> Network:
    """A new network in which channel ``reaction`` completes after an Erlang delay.

    Parameters
    ----------
    network : Network
    reaction : str
        Id of the channel to delay (``network.reaction_ids``).
    mean : float
        Mean delay from initiation to completion, model time units; > 0.
    variance : float, optional
        Variance of the delay, (model time units)**2. The chain gets
        ``k = round(mean**2 / variance)`` phases, so the delay's variance is
        ``mean**2 / k`` (exactly ``variance`` when ``mean**2 / variance`` is whole).
    phases : int, optional
        Give ``k`` directly instead of ``variance`` (variance ``mean**2 / k``). A fixed
        delay would need infinitely many phases, so one of ``variance`` and ``phases``
        is required: there is no silent default.
    hold_catalysts : bool
        Keep species that the reaction gives back (on both sides) out of circulation
        until completion, instead of returning them at initiation.

    Returns
    -------
    Network
        A plain network with ``k`` more species (``<reaction>_phase1..k``, zero initial
        counts, amounts in the reaction's substance unit), ``k`` more first-order
        channels (``<reaction>_phase<i>_exit``), one more parameter
        (``<reaction>_delay_rate = k / mean``, after the global parameters) and a line
        in ``notes`` describing the conversion. If an id is taken, the stem
        ``<reaction>_delay``, ``<reaction>_delay2``, ... replaces ``<reaction>``.

    Raises
    ------
    OptionsError
        Unknown reaction, mean or variance not positive and finite, both or neither of
        ``variance`` and ``phases``, or a number of phases outside 1 .. MAX_PHASES.
    """
    if reaction not in network.reaction_ids:
        raise OptionsError(f"unknown reaction {reaction!r}; channels are "
                           f"{list(network.reaction_ids)}")
    mean = _positive(mean, "mean")
    k = _phase_count(mean, variance, phases)
    original = network.reactions[network.reaction_ids.index(reaction)]
    stem = _free_stem(network, reaction, k)
    rate = k / mean
    chain = DelayChain(
        reaction=reaction, mean=mean, phases=k, rate=rate,
        requested_variance=None if variance is None else float(variance),
        species=tuple(f"{stem}_phase{i}" for i in range(1, k + 1)),
        channels=tuple(f"{stem}_phase{i}_exit" for i in range(1, k + 1)),
        rate_parameter=f"{stem}_delay_rate")

    kept, consumed_products = _split_products(original, hold_catalysts)
    initiation = dataclasses.replace(original, products=_merge(kept, ((chain.species[0], 1),)))
    burst = getattr(original, "burst", None)  # a burst is part of the products: at completion
    if burst is not None:
        initiation = dataclasses.replace(initiation, burst=None)
    molecules_per_unit = (original.conversion.molecules_per_unit
                          if original.conversion is not None else 1.0)
    compartment = _compartment_for(network, original)
    falling = (original.rate_law.falling_factorial
               if isinstance(original.rate_law, MassAction) else True)
    new_species = tuple(
        Species(id=sid, compartment=compartment, initial_count=0.0,
                molecules_per_unit=molecules_per_unit, has_only_substance_units=True,
                name=f"{reaction} in flight, phase {i} of {k}")
        for i, sid in enumerate(chain.species, start=1))
    steps = tuple(
        _phase_channel(chain, i, consumed_products, molecules_per_unit, falling)
        for i in range(k))
    if burst is not None:
        steps = steps[:-1] + (dataclasses.replace(steps[-1], burst=burst),)
    reactions = tuple(initiation if r.id == reaction else r for r in network.reactions)
    return dataclasses.replace(
        network, species=network.species + new_species, reactions=reactions + steps,
        parameters=_insert_global(network.parameters, Parameter(chain.rate_parameter, rate)),
        notes=network.notes + (chain.note(),))


def _positive(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OptionsError(f"the delay {name} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise OptionsError(f"the delay {name} must be positive and finite, got {value!r}")
    return number


def _phase_count(mean: float, variance, phases) -> int:
    if variance is not None and phases is not None:
        raise OptionsError("give either variance or phases for a delay, not both "
                           "(phases=k means variance mean**2/k)")
    if variance is None and phases is None:
        raise OptionsError(
            "a delay needs its variance or its number of phases: a fixed delay would need "
            "infinitely many phases. Pass variance=s2 (k = round(mean**2/s2)) or phases=k "
            "(variance mean**2/k; e.g. phases=10 gives a coefficient of variation of 0.32).")
    if phases is not None:
        whole = isinstance(phases, numbers.Integral) or (
            isinstance(phases, float) and phases.is_integer())
        if isinstance(phases, bool) or not whole:
            raise OptionsError(f"phases must be a whole number, got {phases!r}")
        phases = int(phases)
        if not 1 <= phases <= MAX_PHASES:
            raise OptionsError(f"phases must be between 1 and {MAX_PHASES}, got {phases}")
        return phases
    return delay_phases(mean, variance)


def _free_stem(network: Network, reaction: str, k: int) -> str:
    taken = (set(network.species_ids) | set(network.reaction_ids)
             | set(network.parameter_ids) | {c.id for c in network.compartments}
             | {o.id for o in network.outputs} | {e.id for e in network.events})
    candidates = [reaction, f"{reaction}_delay"] + [f"{reaction}_delay{j}" for j in
                                                     range(2, 1000)]
    for stem in candidates:
        ids = {f"{stem}_delay_rate"} | {f"{stem}_phase{i}" for i in range(1, k + 1)} | {
            f"{stem}_phase{i}_exit" for i in range(1, k + 1)}
        if not ids & taken:
            return stem
    raise OptionsError(f"no free ids for the delay chain of {reaction!r}")  # pragma: no cover


def _insert_global(parameters: tuple[Parameter, ...], parameter: Parameter):
    """``parameters`` with ``parameter`` after the last global one.

    Local parameters (ids ``reaction.parameter``, never valid SBML ids) come last, as
    ``read_sbml`` orders them, so a written network reads back in the same order.
    """
    position = next((i for i, p in enumerate(parameters) if "." in p.id), len(parameters))
    return parameters[:position] + (parameter,) + parameters[position:]


def _split_products(reaction: Reaction, hold_catalysts: bool):
    """(species returned at initiation, species produced at completion)."""
    if hold_catalysts:
        return (), reaction.products
    reactants = dict(reaction.reactants)
    kept, produced = [], []
    for species_id, count in reaction.products:
        back = min(count, reactants.get(species_id, 0))
        if back:
            kept.append((species_id, back))
        if count - back:
            produced.append((species_id, count - back))
    return tuple(kept), tuple(produced)


def _merge(*sides) -> tuple[tuple[str, int], ...]:
    totals: dict[str, int] = {}
    for side in sides:
        for species_id, count in side:
            totals[species_id] = totals.get(species_id, 0) + count
    return tuple(totals.items())


def _compartment_for(network: Network, reaction: Reaction) -> str:
    species = {s.id: s for s in network.species}
    for species_id, _ in reaction.reactants + reaction.products:
        return species[species_id].compartment
    if network.compartments:
        return network.compartments[0].id
    return network.species[0].compartment if network.species else ""


def _phase_channel(chain: DelayChain, i: int, completion_products, molecules_per_unit: float,
                   falling: bool) -> Reaction:
    """Channel leaving phase ``i + 1`` (0-based ``i``): to the next phase or to the products.

    The law and its conversion record are those ``read_sbml`` gives the same channel
    written as SBML (``rate * phase``, phase an amount), so a written network reads back
    equal.
    """
    phase = chain.species[i]
    last = i == chain.phases - 1
    products = completion_products if last else ((chain.species[i + 1], 1),)
    rate = sympy.Symbol(chain.rate_parameter)
    conversion = Conversion(
        sbml_law=f"{chain.rate_parameter} * {phase}", form="mass action",
        macroscopic_constant=chain.rate, volume_factor=1.0,
        combinatorial="none needed (orders <= 1)" if falling else "off (n**m as written)",
        molecules_per_unit=molecules_per_unit)
    return Reaction(chain.channels[i], ((phase, 1),), products,
                    MassAction(rate, ((phase, 1),), falling_factorial=falling),
                    sbml_id=chain.channels[i], conversion=conversion)
