"""Result types and their DataFrame schemas.

Schemas (all snake_case, long format unless stated):

- moments: ``time, species, mean, variance`` (molecule counts; rule outputs included,
  except parameter outputs that are fixed functions of time and parameters: they are not
  random variables; see :func:`random_columns`)
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


def random_columns(network: Network) -> list[str]:
    """The columns (species, then rule outputs) that are random variables: every species,
    and each output unless it is a parameter or compartment output whose formula reads no
    species in a network without events (a fixed function of time and parameters,
    variance exactly 0)."""
    species = set(network.species_ids)
    return list(network.species_ids) + [
        o.id for o in network.outputs
        if o.kind not in ("parameter", "compartment") or network.events
        or {symbol.name for symbol in o.formula.free_symbols} & species]


def _random_rows(frame: pd.DataFrame, network: Network) -> pd.DataFrame:
    """``frame`` (with a ``species`` column) without the non-random outputs."""
    keep = frame["species"].isin(random_columns(network))
    return frame if keep.all() else frame[keep].reset_index(drop=True)


def _scales(network: Network, units: str) -> np.ndarray:
    """Molecules per reported unit for each species and output column."""
    if units not in STAT_UNITS:
        raise OptionsError(f"units must be one of {STAT_UNITS}, got {units!r}")
    return np.array([network.species_scale(s, units) for s in network.species_ids] +
                    [network.output_scale(o, units) for o in network.outputs], dtype=float)


def _live_scales(network: Network, units: str, values: np.ndarray) -> np.ndarray:
    """Like :func:`_scales` for values of shape (n_times, n_columns) whose columns include
    each variable compartment's size: concentrations divide by the size at each time.
    Shape (n_times, n_columns), or (n_columns,) when every compartment is constant."""
    scales = _scales(network, units)
    if not network.variable_compartments or units not in ("concentration", "model"):
        return scales
    columns = _columns(network)
    live = np.tile(scales, (len(values), 1))
    for cid in network.variable_compartments:
        size = values[:, columns.index(cid)]
        initial = network.compartment_map[cid].size
        for position, column in enumerate(columns):
            species = network.species[network.species_index[column]] if \
                column in network.species_index else None
            output = next((o for o in network.outputs if o.id == column), None)
            compartment = species.compartment if species is not None else (
                output.compartment if output is not None and output.kind == "species" else None)
            declared = species.has_only_substance_units if species is not None else (
                output.has_only_substance_units if output is not None else True)
            if compartment != cid or (units == "model" and declared):
                continue
            live[:, position] = scales[position] * size / initial
    return live


def _format_times(times: np.ndarray) -> str:
    if len(times) == 1 and np.isinf(times[0]):
        return "stationary"
    return f"{times[0]:g} to {times[-1]:g} ({len(times)} points)"


def _format_value(value, quote: bool = False) -> str:
    """A fact for display: 4 significant digits, thousands separated (not in a repr)."""
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value)) if quote else f"{int(value):,}"
    return repr(value) if quote and isinstance(value, str) else str(value)


class Displayed:
    """Concise ``repr`` and a Jupyter summary (``_repr_html_``) for result classes.

    A subclass (declared with ``@dataclass(repr=False)``) implements ``_summary()``,
    returning (title, facts, table): a heading, an ordered dict of the run's key facts
    and the table whose first rows are shown (with the accessor that gives all of it).
    """

    #: Rows of the table shown in a notebook.
    DISPLAY_ROWS = 10
    #: Keyword of :func:`~sbml_cme.sedml.export.write_omex` this result fills.
    OMEX_ROLE = ""

    def to_omex(self, path) -> "Path":
        """Write this result's experiment as a COMBINE archive: the SBML model, SED-ML L1V4
        (KiSAO method and parameters, seed, time course, mean/sd data generators,
        reports, plots), the result table, manifest and metadata (docs/sedml.md).
        ``sbml-cme run -i`` reproduces it (SSA: bit for bit for the seed)."""
        # The one import of the SED-ML layer from the core, deferred to this call.
        from .sedml.export import write_omex

        if getattr(self, "method", self.OMEX_ROLE) not in (self.OMEX_ROLE, "lna"):
            raise OptionsError(f"to_omex writes SSA, CME, LNA and rate-equation results, "
                               f"not a {self.method} ensemble")
        table = self.to_wide() if self.OMEX_ROLE == "deterministic" else self.stats()
        return write_omex(path, self.network, **{self.OMEX_ROLE: self},
                          tables={f"{self.OMEX_ROLE}_stats": table})

    def _summary(self) -> tuple[str, dict, pd.DataFrame, str]:
        """(title, facts, table, name of the method giving the whole table)."""
        raise NotImplementedError

    def _common_facts(self) -> dict:
        network = self.network
        facts = {"n_species": len(network.species)}
        if network.outputs:
            facts["n_outputs"] = len(network.outputs)
        facts["times"] = _format_times(np.asarray(self.times))
        return facts

    def __repr__(self) -> str:
        _, facts, _, _ = self._summary()
        items = ", ".join(f"{key}={_format_value(value, quote=True)}"
                          for key, value in facts.items())
        return f"{type(self).__name__}({items})"

    def _repr_html_(self) -> str:
        import html

        title, facts, table, accessor = self._summary()
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(key)}</th>"
                       f"<td style='text-align:left'>{html.escape(_format_value(value))}</td></tr>"
                       for key, value in facts.items())
        shown = table.head(self.DISPLAY_ROWS)
        more = (f"<p>first {len(shown)} of {len(table)} rows; all of them: "
                f"<code>.{html.escape(accessor)}</code></p>" if len(table) > len(shown) else "")
        return (f"<div><p><b>{html.escape(title)}</b> "
                f"<code>{html.escape(type(self).__name__)}</code></p>"
                f"<table>{rows}</table>{shown.to_html(index=False)}{more}</div>")


@dataclass(frozen=True, repr=False)
class DeterministicResult(Displayed):
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
    OMEX_ROLE = "deterministic"

    def to_wide(self, units: str = "model") -> pd.DataFrame:
        """``time`` plus one column per species and output, in ``units``
        (``model``, ``amount``, ``concentration`` or ``count``)."""
        values = self.counts / _live_scales(self.network, units, self.counts)
        frame = pd.DataFrame(values, columns=_columns(self.network))
        # A model variable may be called "time" (SBML ids are not reserved): the first
        # column is the simulated time, like the SBML test-suite results.
        frame.insert(0, "time", self.times, allow_duplicates=True)
        return frame

    def _summary(self):
        facts = {"method": "ode", **self._common_facts(),
                 "solver": self.run_info.get("method", ""),
                 "wall_time_s": self.run_info.get("wall_time", float("nan"))}
        return "Rate equations (deterministic)", facts, self.to_wide(), "to_wide()"


@dataclass(frozen=True, repr=False)
class EnsembleResult(Displayed):
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
    OMEX_ROLE = "ssa"

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
        return _random_rows(pd.DataFrame({
            "time": np.repeat(self.times, len(columns)),
            "species": np.tile(columns, len(self.times)),
            "mean": mean.ravel(), "variance": variance.ravel()}), self.network)

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

    def _summary(self):
        info = self.run_info
        steps = "total_steps" if self.method == "cle" else "total_events"
        facts = {"method": self.method, **self._common_facts(),
                 "n_trajectories": self.n_trajectories, steps: self.total_events}
        for key in ("algorithm", "method_reason", "seed", "dt", "clipped_fraction", "threads",
                    "dask"):
            if key in info:
                facts[key] = info[key]
        facts["wall_time_s"] = info.get("wall_time", float("nan"))
        title = {"ssa": "SSA ensemble (exact)", "cle": "Chemical Langevin ensemble"}.get(
            self.method, f"{self.method} ensemble")
        return title, facts, self.stats(), "stats()"


@dataclass(frozen=True, repr=False)
class CMEResult(Displayed):
    """Distributions from the chemical master equation (finite state projection).

    Attributes
    ----------
    times : ndarray, shape (n_times,)
        Output times (``[inf]`` for a stationary result).
    distributions : tuple of (states, probabilities)
        Per time: ``states`` (n_states, n_species) molecule counts and ``probabilities``
        (n_states,), the FSP lower bound of the exact law (sums to 1 - leaked mass).
    error_bounds : ndarray, shape (n_times,)
        Certified L1 error of each distribution (THEORY.md section 7).
    outputs : tuple of ndarray
        Per time, the assignment-rule outputs of every state, shape (n_states, n_outputs).
    """

    network: Network
    times: np.ndarray
    distributions: tuple
    error_bounds: np.ndarray
    run_info: dict = field(default_factory=dict)
    outputs: tuple = ()
    OMEX_ROLE = "cme"

    @property
    def error_bound(self) -> float:
        """The largest certified L1 error over all times."""
        return float(np.max(self.error_bounds))

    @property
    def n_states(self) -> int:
        """Size of the largest state set used."""
        return int(self.run_info.get("n_states", max(len(s) for s, _ in self.distributions)))

    def _normalised(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        states, probabilities = self.distributions[k]
        return states.astype(float), probabilities / probabilities.sum()

    def _columns_at(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(values per state of every species and output column, normalised probabilities)."""
        states, p = self._normalised(k)
        if self.outputs and len(self.outputs[k]):
            states = np.hstack([states, self.outputs[k]])
        return states, p

    def _column_ids(self) -> list[str]:
        ids = list(self.network.species_ids)
        if self.outputs and self.outputs[0].shape[1]:
            ids += [o.id for o in self.network.outputs]
        return ids

    @property
    def moments(self) -> pd.DataFrame:
        """``time, species, mean, variance`` (counts; the FSP law renormalised to 1), with
        assignment-rule outputs as extra ``species`` like the SSA's moments."""
        return _random_rows(self._every_moment(), self.network)

    def _every_moment(self) -> pd.DataFrame:
        rows = []
        ids = self._column_ids()
        for k, t in enumerate(self.times):
            values, p = self._columns_at(k)
            mean = p @ values
            variance = p @ (values - mean) ** 2
            rows.extend({"time": t, "species": s, "mean": mean[i], "variance": variance[i]}
                        for i, s in enumerate(ids))
        return pd.DataFrame(rows, columns=["time", "species", "mean", "variance"])

    def covariance(self) -> pd.DataFrame:
        """``time, species_i, species_j, covariance`` for every ordered pair."""
        rows = []
        ids = self.network.species_ids
        for k, t in enumerate(self.times):
            states, p = self._normalised(k)
            centred = states - p @ states
            matrix = centred.T @ (centred * p[:, None])
            rows.extend({"time": t, "species_i": a, "species_j": b, "covariance": matrix[i, j]}
                        for i, a in enumerate(ids) for j, b in enumerate(ids))
        return pd.DataFrame(rows, columns=["time", "species_i", "species_j", "covariance"])

    def marginal(self, species: str) -> pd.DataFrame:
        """``time, count, probability`` of one species (unnormalised FSP values)."""
        if species not in self.network.species_index:
            raise OptionsError(f"unknown species {species!r}")
        column = self.network.species_index[species]
        frames = []
        for k, t in enumerate(self.times):
            states, probabilities = self.distributions[k]
            counts = states[:, column].astype(np.int64)
            totals = np.bincount(counts, weights=probabilities)
            support = np.nonzero(totals)[0]
            frames.append(pd.DataFrame({"time": t, "count": support,
                                        "probability": totals[support]}))
        return pd.concat(frames, ignore_index=True)

    def distribution(self, time: float | None = None) -> pd.DataFrame:
        """The joint law at ``time`` (default: the last): one column per species plus
        ``probability``."""
        k = len(self.times) - 1 if time is None else int(np.argmin(np.abs(self.times - time)))
        if time is not None and not np.isclose(self.times[k], time):
            raise OptionsError(f"no output at time {time}; times are {list(self.times)}")
        states, probabilities = self.distributions[k]
        frame = pd.DataFrame(states, columns=list(self.network.species_ids))
        frame["probability"] = probabilities
        return frame

    def stats(self) -> pd.DataFrame:
        """Wide ``time, X-mean, X-sd`` in molecule counts (like the SSA's ``stats()``)."""
        moments = self._every_moment()
        frame = {"time": self.times}
        for s in self._column_ids():
            rows = moments[moments.species == s]
            frame[f"{s}-mean"] = rows["mean"].to_numpy()
            frame[f"{s}-sd"] = np.sqrt(np.maximum(rows["variance"].to_numpy(), 0.0))
        return pd.DataFrame(frame)

    def _summary(self):
        facts = {"method": "cme", **self._common_facts(), "n_states": self.n_states,
                 "error_bound_l1": self.error_bound,
                 "solver": self.run_info.get("method", ""),
                 "wall_time_s": self.run_info.get("wall_time", float("nan"))}
        return ("CME (finite state projection, certified L1 error bound)", facts,
                self.stats(), "stats()")


@dataclass(frozen=True, repr=False)
class LNAResult(Displayed):
    """Linear noise approximation: Gaussian means and covariances of molecule counts.

    Attributes
    ----------
    times : ndarray, shape (n_times,)
        Model time units; ``[inf]`` for the steady-state LNA.
    means : ndarray, shape (n_times, n_species + n_outputs)
        Rate-equation solution in molecules (outputs as in :class:`DeterministicResult`).
    covariances : ndarray, shape (n_times, n_columns, n_columns)
        Covariance matrices in molecules^2 (outputs by the delta method).
    run_info : dict
        ``mode``, and for the steady state ``steady_state_residual`` (molecules/time),
        ``steady_state_relative_residual``, ``max_real_eigenvalue`` (1/time); ``wall_time``.

    Frames: ``moments`` (``time, species, mean, variance``, as every method),
    ``covariance`` (``time, species_i, species_j, covariance``, each unordered pair once,
    i <= j in column order), ``correlations`` (same layout, ``correlation``), ``noise``
    (``time, species, mean, variance, fano_factor, cv_squared``) and ``stats()``.
    """

    network: Network
    times: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    method: str = "lna"
    run_info: dict = field(default_factory=dict)
    OMEX_ROLE = "lna"

    @property
    def variances(self) -> np.ndarray:
        """Variances, shape (n_times, n_columns), molecules^2."""
        return np.clip(np.diagonal(self.covariances, axis1=1, axis2=2), 0.0, None)

    @property
    def moments(self) -> pd.DataFrame:
        """``time, species, mean, variance`` in molecule counts."""
        columns = _columns(self.network)
        return _random_rows(pd.DataFrame({
            "time": np.repeat(self.times, len(columns)),
            "species": np.tile(columns, len(self.times)),
            "mean": self.means.ravel(), "variance": self.variances.ravel()}), self.network)

    def _pairs(self, values: np.ndarray, name: str) -> pd.DataFrame:
        columns = np.array(_columns(self.network), dtype=object)
        first, second = np.triu_indices(len(columns))
        return pd.DataFrame({
            "time": np.repeat(self.times, len(first)),
            "species_i": np.tile(columns[first], len(self.times)),
            "species_j": np.tile(columns[second], len(self.times)),
            name: values[:, first, second].ravel()})

    @property
    def covariance(self) -> pd.DataFrame:
        """``time, species_i, species_j, covariance`` (molecules^2), pairs i <= j."""
        return self._pairs(self.covariances, "covariance")

    @property
    def correlation_matrices(self) -> np.ndarray:
        """Correlation coefficients, shape (n_times, n_columns, n_columns); NaN where a
        variance is zero."""
        sd = np.sqrt(self.variances)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.covariances / (sd[:, :, None] * sd[:, None, :])

    @property
    def correlations(self) -> pd.DataFrame:
        """``time, species_i, species_j, correlation``, pairs i <= j."""
        return self._pairs(self.correlation_matrices, "correlation")

    @property
    def noise(self) -> pd.DataFrame:
        """``time, species, mean, variance, fano_factor, cv_squared``.

        Fano factor Var/mean and CV^2 = Var/mean^2 (NaN for a zero mean).
        """
        frame = self.moments
        mean = frame["mean"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["fano_factor"] = np.where(mean != 0, frame["variance"] / mean, np.nan)
            frame["cv_squared"] = np.where(mean != 0, frame["variance"] / mean**2, np.nan)
        return frame

    def stats(self, units: str = "count") -> pd.DataFrame:
        """Wide ``time, X-mean, X-sd`` like SBML test-suite results (see
        :meth:`EnsembleResult.stats` for ``units``)."""
        scales = _scales(self.network, units)
        frame = {"time": self.times}
        sd = np.sqrt(self.variances)
        for k, column in enumerate(_columns(self.network)):
            frame[f"{column}-mean"] = self.means[:, k] / scales[k]
            frame[f"{column}-sd"] = sd[:, k] / scales[k]
        return pd.DataFrame(frame)

    def _summary(self):
        facts = {"method": "lna", "mode": self.run_info.get("mode", ""),
                 **self._common_facts()}
        if "max_real_eigenvalue" in self.run_info:
            facts["max_real_eigenvalue"] = self.run_info["max_real_eigenvalue"]
        facts["wall_time_s"] = self.run_info.get("wall_time", float("nan"))
        return "Linear noise approximation", facts, self.noise, "noise"
