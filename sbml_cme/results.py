"""Result types and their DataFrame schemas.

Schemas (all snake_case, long format unless stated):

- moments: ``time, species, mean, variance`` (molecule counts; rule outputs included)
- trajectories (``to_frame``): ``trajectory, time, species, value``
- stats (wide, like SBML test-suite results): ``time, X-mean, X-sd, ...``
- deterministic ``to_wide``: ``time, X, ...`` in the requested units
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import OptionsError
from .network import Network

STAT_UNITS = ("count", "model", "amount", "concentration")


def _columns(network: Network) -> list[str]:
    return list(network.species_ids) + [o.id for o in network.outputs]


def _scales(network: Network, units: str) -> np.ndarray:
    """Molecules per reported unit for each species and output column."""
    if units not in STAT_UNITS:
        raise OptionsError(f"units must be one of {STAT_UNITS}, got {units!r}")
    return np.array([network.species_scale(s, units) for s in network.species_ids] +
                    [network.output_scale(o, units) for o in network.outputs], dtype=float)


@dataclass(frozen=True)
class DeterministicResult:
    """Solution of the network's rate equations.

    Attributes
    ----------
    times : ndarray, shape (n_times,)
    counts : ndarray, shape (n_times, n_species + n_outputs)
        Species in molecules (continuous), then rule outputs (species outputs in
        molecules, parameter outputs in model units).
    """

    network: Network
    times: np.ndarray
    counts: np.ndarray
    run_info: dict = field(default_factory=dict)

    def to_wide(self, units: str = "model") -> pd.DataFrame:
        """``time`` plus one column per species and output, in ``units``
        (``model``, ``amount``, ``concentration`` or ``count``)."""
        values = self.counts / _scales(self.network, units)
        frame = pd.DataFrame(values, columns=_columns(self.network))
        frame.insert(0, "time", self.times)
        return frame

    def _repr_html_(self) -> str:
        return self.to_wide().head(20).to_html()


@dataclass(frozen=True)
class EnsembleResult:
    """An ensemble of stochastic trajectories sampled at fixed times.

    Attributes
    ----------
    times : ndarray, shape (n_times,)
    states : ndarray, shape (n_trajectories, n_times, n_species + n_outputs)
        Molecule counts (outputs as in :class:`DeterministicResult`).
    n_events : ndarray, shape (n_trajectories,)
        Reaction events fired per trajectory.
    """

    network: Network
    times: np.ndarray
    states: np.ndarray
    n_events: np.ndarray
    method: str = "ssa"
    run_info: dict = field(default_factory=dict)

    @property
    def n_trajectories(self) -> int:
        return self.states.shape[0]

    @property
    def total_events(self) -> int:
        """Reaction events fired over the whole ensemble."""
        return int(self.n_events.sum())

    def _mean_variance(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.states.mean(axis=0)
        ddof = 1 if self.n_trajectories > 1 else 0
        return mean, self.states.var(axis=0, ddof=ddof)

    @property
    def moments(self) -> pd.DataFrame:
        """``time, species, mean, variance`` in molecule counts."""
        mean, variance = self._mean_variance()
        columns = _columns(self.network)
        return pd.DataFrame({
            "time": np.repeat(self.times, len(columns)),
            "species": np.tile(columns, len(self.times)),
            "mean": mean.ravel(), "variance": variance.ravel()})

    def stats(self, units: str = "count") -> pd.DataFrame:
        """Wide ``time, X-mean, X-sd`` like SBML test-suite results.

        ``units``: ``"count"`` (molecules, default) or ``"model"`` (each species as
        declared: amount or concentration), ``"amount"``, ``"concentration"``.
        """
        scales = _scales(self.network, units)
        mean, variance = self._mean_variance()
        frame = {"time": self.times}
        for k, column in enumerate(_columns(self.network)):
            frame[f"{column}-mean"] = mean[:, k] / scales[k]
            frame[f"{column}-sd"] = np.sqrt(variance[:, k]) / scales[k]
        return pd.DataFrame(frame)

    def to_frame(self) -> pd.DataFrame:
        """Tidy ``trajectory, time, species, value`` (molecule counts)."""
        columns = _columns(self.network)
        n_traj, n_times, n_cols = self.states.shape
        return pd.DataFrame({
            "trajectory": np.repeat(np.arange(n_traj), n_times * n_cols),
            "time": np.tile(np.repeat(self.times, n_cols), n_traj),
            "species": np.tile(columns, n_traj * n_times),
            "value": self.states.ravel()})

    def _repr_html_(self) -> str:
        head = (f"<p><b>{self.method}</b> ensemble: {self.n_trajectories} trajectories, "
                f"{len(self.times)} time points, {self.total_events} events</p>")
        return head + self.stats().head(20).to_html()
