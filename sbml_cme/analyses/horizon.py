"""A time horizon from the model's own time scales: a cheap deterministic probe.

:func:`choose_horizon` integrates the rate equations on growing horizons (``DEFAULT_T_END``
times 4, 16, ... up to ``MAX_T_END``, within ``PROBE_EVALUATIONS`` right-hand-side
evaluations in all) and stops at the first that shows either

- relaxation: every species stays within ``SETTLE_TOLERANCE`` (relative to its largest
  value) of its final value over the second half. The horizon is 1.5 times the settling
  time (about 7 relaxation times 1/|Re λ| for an exponential approach to 1 %);
- a sustained oscillation: at least four peaks of one species, each with a prominence of
  5 % of its range. The horizon is the first peak plus ``N_PERIODS`` periods (the median
  of the last three peak spacings).

Scheduled event times (triggers on ``time``) are covered: probes start at twice the last
one, and the settling time is at least the last one.
Horizons are rounded up to 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7 or 8 times a power of ten.
When the probe fails (no deterministic limit, a solver error, the budget spent, a state
that never changes, neither behaviour by ``MAX_T_END``) the horizon is ``DEFAULT_T_END``
and the reason says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SbmlCmeError
from ..network import Network
from ..kinetics import compile_network
from .deterministic import simulate_deterministic

#: The horizon used when the probe cannot choose one (the old fixed default).
DEFAULT_T_END = 10.0
#: Largest horizon the probe tries, in model time units.
MAX_T_END = 1e6
#: Right-hand-side evaluations the probe may spend over all its runs.
PROBE_EVALUATIONS = 50_000
#: Output points of each probe run.
PROBE_POINTS = 401
#: Settled: within this fraction of each species' largest value of its final value.
SETTLE_TOLERANCE = 0.01
#: Periods shown for an oscillating model, after its first peak.
N_PERIODS = 5
#: A peak counts when its prominence is this fraction of the species' range.
PEAK_PROMINENCE = 0.05

_NICE = np.array([1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0])


@dataclass(frozen=True)
class Horizon:
    """What :func:`choose_horizon` picked.

    Attributes
    ----------
    t_end : float
        The horizon, in model time units.
    kind : str
        ``relaxation``, ``oscillation`` or ``default`` (the probe could not choose).
    time_scale : float
        The settling time (relaxation) or the period (oscillation); NaN for ``default``.
    reason : str
        One sentence for the user: what was found and how the horizon follows.
    evaluations : int
        Right-hand-side evaluations the probe spent.
    """

    t_end: float
    kind: str
    time_scale: float
    reason: str
    evaluations: int = 0


def choose_horizon(network: Network, *, max_evaluations: int = PROBE_EVALUATIONS,
                   max_t_end: float = MAX_T_END) -> Horizon:
    """A horizon showing the relaxation to steady state or a few periods of an oscillation.

    Parameters
    ----------
    network : Network
    max_evaluations : int
        Budget of right-hand-side evaluations over all probe runs.
    max_t_end : float
        Largest horizon probed, in model time units.

    Returns
    -------
    Horizon
        Never raises for a model the probe cannot read: it falls back to
        ``DEFAULT_T_END`` with the reason.
    """
    try:
        switches = compile_network(network).time_thresholds
    except SbmlCmeError as error:
        return _default(f"the deterministic probe cannot compile the model ({error})", 0)
    switches = switches[switches <= max_t_end]
    last_switch = float(switches[-1]) if len(switches) else 0.0
    horizon = min(max(DEFAULT_T_END, 2 * last_switch), max_t_end)
    spent, refinements = 0, 0
    while True:
        try:
            result = simulate_deterministic(network, np.linspace(0.0, horizon, PROBE_POINTS),
                                            rtol=1e-6, atol=1e-9,
                                            max_evaluations=max(max_evaluations - spent, 1))
        except SbmlCmeError as error:
            return _default(f"the deterministic probe to t={horizon:g} failed ({error})",
                            spent + max(max_evaluations - spent, 1))
        spent += int(result.run_info.get("evaluations", 0))
        counts = result.counts[:, :len(network.species)]
        if not np.all(np.isfinite(counts)):
            return _default(f"the deterministic probe to t={horizon:g} is not finite", spent)
        settle = settling_time(result.times, counts)
        if settle is not None:
            if settle == 0.0 and last_switch == 0.0:
                return _default("the deterministic state does not change", spent)
            closer = max(4 * settle, 2 * last_switch)
            if closer < horizon / 2 and refinements < 3:  # grid too coarse: probe closer
                horizon, refinements = closer, refinements + 1
                continue
            settle = max(settle, last_switch)  # the last scheduled event is shown
            t_end = nice_ceiling(1.5 * settle)
            return Horizon(t_end, "relaxation", settle,
                           f"the deterministic state settles within {SETTLE_TOLERANCE:.0%} "
                           f"of its steady state by t={settle:.3g}"
                           + (f" (last scheduled event at t={last_switch:.3g})"
                              if last_switch else "")
                           + f"; t_end = 1.5 x that, rounded up: {t_end:g}", spent)
        oscillation = oscillation_period(result.times, counts)
        if oscillation is not None:
            first, period = oscillation
            t_end = nice_ceiling(first + N_PERIODS * period)
            return Horizon(t_end, "oscillation", period,
                           f"the deterministic state oscillates with period {period:.3g} "
                           f"(first peak at t={first:.3g}); t_end = first peak + "
                           f"{N_PERIODS} periods, rounded up: {t_end:g}", spent)
        if horizon >= max_t_end:
            return _default(f"neither a steady state nor an oscillation by t={horizon:g}",
                            spent)
        if spent >= max_evaluations:
            return _default(f"the probe's budget of {max_evaluations} evaluations was spent "
                            f"by t={horizon:g}", spent)
        horizon = min(4 * horizon, max_t_end)


def settling_time(times: np.ndarray, counts: np.ndarray) -> float | None:
    """First time after which every species stays within ``SETTLE_TOLERANCE`` of its last
    value (relative to its largest absolute value); None unless that is within the first
    half of ``times``. ``counts`` has shape (n_times, n_species)."""
    scale = np.max(np.abs(counts), axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    deviation = np.max(np.abs(counts - counts[-1]) / scale, axis=1)
    outside = np.flatnonzero(deviation > SETTLE_TOLERANCE)
    settle = 0.0 if len(outside) == 0 else float(times[min(outside[-1] + 1, len(times) - 1)])
    return settle if settle <= times[-1] / 2 else None


def oscillation_period(times: np.ndarray, counts: np.ndarray) -> tuple[float, float] | None:
    """(first peak time, period) of the species with the largest relative swing that has
    at least four peaks of ``PEAK_PROMINENCE`` of its range; None when none has.
    The period is the median of its last three peak spacings."""
    from scipy.signal import find_peaks

    best, swing = None, 0.0
    for column in counts.T:
        spread = float(np.ptp(column))
        relative = spread / max(float(np.max(np.abs(column))), 1e-300)
        if spread <= 0 or relative < 1e-6:
            continue
        peaks, _ = find_peaks(column, prominence=PEAK_PROMINENCE * spread)
        if len(peaks) >= 4 and relative > swing:
            best, swing = times[peaks], relative
    if best is None:
        return None
    return float(best[0]), float(np.median(np.diff(best[-4:])))


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8 times a power of ten that is
    >= ``value`` (> 0)."""
    exponent = np.floor(np.log10(value))
    mantissa = value / 10**exponent
    factor = _NICE[np.searchsorted(_NICE, mantissa * (1 - 1e-12))]
    return float(f"{factor * 10**exponent:.12g}")


def _default(why: str, evaluations: int) -> Horizon:
    return Horizon(DEFAULT_T_END, "default", float("nan"),
                   f"{why}; t_end = {DEFAULT_T_END:g} (the default)", evaluations)
