"""Continuous variables driven by time alone: the inputs of a time-dependent generator.

When every rate rule (docs/design.md, "Continuous parts") reads only time, constants and
other rate-rule targets, the continuous variables are the same deterministic functions
of time in every realisation: the CME becomes a linear ODE dp/dt = A(t) p and the LNA a
non-autonomous one. :func:`check_time_driven` says whether a network is of that kind
(refusing feedback from the discrete species, with the hint to use ``simulate_hybrid``)
and :func:`integrate_drive` integrates those variables once, tightly, with a dense
output that the analyses read at any time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy
from scipy.integrate import solve_ivp

from ..errors import ConvergenceError, UnsupportedFeatureError
from ..kinetics import compile_expressions
from ..network import TIME, Network

#: Tolerances of the drive's integration (relative; absolute relative to each variable's
#: initial magnitude, floor 1): far below what the CME's certificate or the LNA need.
DRIVE_RTOL = 1e-12
DRIVE_ATOL = 1e-12
#: Most (parameter, time) samples the CME's state enumeration tries per segment.
_MAX_SAMPLES = 129
#: Right-hand-side evaluations of the drive before it is refused as a blow-up.
MAX_DRIVE_EVALUATIONS = 100_000


def is_time_dependent(network: Network) -> bool:
    """Whether the rates change with time: a rate rule (clocks included) or a
    propensity that reads time."""
    return bool(network.rate_rules) or network.uses_time


def generator_is_time_dependent(network: Network) -> bool:
    """Whether some propensity reads time or a rate-rule target (otherwise the rate rules
    change only reported variables and the generator is constant)."""
    varying = {TIME} | {sympy.Symbol(t) for t in network.rate_rule_targets}
    return any(law.free_symbols & varying for law in network.propensities())


def check_time_driven(network: Network, analysis: str) -> None:
    """Raise UnsupportedFeatureError unless the continuous variables are functions of
    time only: rate rules on parameters (variable compartment sizes included) whose
    formulas read time, constants, fixed species and other rate-rule parameters.

    Refused, naming the element: deterministic-only constructs, continuous species, and
    a rate rule that reads a discrete species (feedback: the continuous variable is
    then random, and the process a PDMP).
    """
    for element, construct in network.deterministic_only:
        raise UnsupportedFeatureError(
            construct, element, analysis=analysis,
            hint="Its value is the deterministic drift, which a stochastic process does "
                 "not have; simulate_deterministic runs it.")
    for species_id in network.continuous_species:
        raise UnsupportedFeatureError(
            f"the continuous species '{species_id}'", species_id, analysis=analysis,
            hint="Its count is a real number, not a state of the master equation: "
                 "simulate_hybrid (exact PDMP) or simulate_deterministic run it.")
    discrete = {s.id for s in network.species if not (s.fixed or s.continuous)}
    for rule in network.rate_rules:
        read = sorted(discrete & {symbol.name for symbol in rule.formula.free_symbols})
        if read:
            raise UnsupportedFeatureError(
                f"a rate rule on '{rule.target}' that reads the discrete species "
                f"{', '.join(repr(s) for s in read)} (feedback from the molecule counts to "
                "a continuous variable)", rule.target, analysis=analysis,
                hint="The variable is then random, so the process is not a master equation "
                     "with a time-dependent generator; simulate_hybrid (exact PDMP) "
                     "samples it.")


@dataclass(frozen=True)
class Drive:
    """The rate-rule parameters as functions of time on ``[t0, t1]``.

    Attributes
    ----------
    base : ndarray, shape (n_parameters,)
        Parameter values in model units; entries ``targets`` are replaced by the
        integrated values.
    targets : ndarray of int
        Indices of the rate-rule parameters.
    solution : scipy OdeSolution or None
        Dense output of the targets (None without rate rules).
    sample_times : ndarray
        Times at which :meth:`samples` evaluates the parameters (the integrator's steps
        and a uniform grid).
    """

    base: np.ndarray
    targets: np.ndarray
    solution: object
    sample_times: np.ndarray

    def parameters(self, t: float) -> np.ndarray:
        """Parameter values at time ``t``, shape (n_parameters,)."""
        values = self.base.copy()
        if self.solution is not None:
            values[self.targets] = self.solution(float(t))
        return values

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(parameters (n_samples, n_parameters), times (n_samples,)) along the drive."""
        return (np.array([self.parameters(t) for t in self.sample_times]),
                self.sample_times.copy())


class _DriveStop(Exception):
    """Leaves the drive's solver: its rules blew up or used up their budget."""


def integrate_drive(network: Network, parameters: np.ndarray, counts: np.ndarray,
                    t0: float, t1: float) -> Drive:
    """Integrate the rate-rule parameters from their values in ``parameters`` at ``t0``
    to ``t1`` (LSODA, rtol ``DRIVE_RTOL``); ``counts`` (n_species,) supplies the fixed
    species the rules may read. Call :func:`check_time_driven` first."""
    base = np.asarray(parameters, dtype=float).copy()
    grid = np.linspace(t0, t1, _MAX_SAMPLES // 2 + 1)
    index = {pid: i for i, pid in enumerate(network.parameter_ids)}
    rules = network.rate_rules
    if not rules or t1 <= t0:
        return Drive(base, np.zeros(0, dtype=np.int64), None, grid)
    targets = np.array([index[r.target] for r in rules], dtype=np.int64)
    programs = compile_expressions(network, [r.formula for r in rules], "rate rule")
    x = np.asarray(counts, dtype=float)

    evaluations = 0

    def rhs(t, y):
        nonlocal evaluations
        evaluations += 1
        p = base.copy()
        p[targets] = y
        values = programs.evaluate_all(x, p, t)
        if evaluations > MAX_DRIVE_EVALUATIONS or not np.all(np.isfinite(values)):
            raise _DriveStop(t)
        return values

    y0 = base[targets]
    try:
        solution = solve_ivp(rhs, (t0, t1), y0, method="LSODA", dense_output=True,
                             rtol=DRIVE_RTOL, atol=DRIVE_ATOL * np.maximum(np.abs(y0), 1.0))
    except _DriveStop as stop:
        raise ConvergenceError(
            f"the rate rules ({', '.join(r.target for r in rules)}) could not be integrated "
            f"past t={stop.args[0]:g}: not finite, or more than {MAX_DRIVE_EVALUATIONS:,} "
            "evaluations (a blow-up); check the model's parameters") from None
    if solution.status != 0:
        raise ConvergenceError(f"the rate rules could not be integrated on [{t0:g}, {t1:g}]: "
                               f"{solution.message}")
    steps = solution.t
    if len(steps) > _MAX_SAMPLES - len(grid):
        steps = steps[np.linspace(0, len(steps) - 1, _MAX_SAMPLES - len(grid)).astype(int)]
    return Drive(base, targets, solution.sol, np.union1d(grid, steps))
