"""Exact CME likelihood of single-cell snapshot data: FSP log-likelihood with a certified
interval, forward sensitivities, Fisher information (docs/inference.md).

The data are independent cells measured once each (smFISH, flow cytometry): a tidy frame
``time, <species...>`` with one row per cell (optionally ``n_cells`` per row and an
``experiment`` column), or a histogram ``time, species, count, n_cells``. A cell with
observed counts ``y`` at time ``t`` contributes ``log P(y, t; theta)``, where ``P`` is the
law of the observed species (a marginal when only some are measured) after an optional
measurement model (:class:`BinomialCapture`, :class:`GaussianNoise`,
:class:`DistortionMatrix`).

Certificate. On a finite state set J the FSP gives ``p_J(t) <= p(t)`` entrywise with
``1 - sum p_J(t) = eps(t)`` (THEORY.md section 7). Every observation probability is a
non-negative kernel applied to ``p``, so ``P_J(y) <= P(y) <= P_J(y) + eps(t) * sup L(y|.)``
(``sup L = 1`` for counts). Summing logs gives the certified interval
``[loglik_low, loglik_high]`` on the exact log-likelihood; ``loglik`` is the lower end.

Sensitivities. ``s_k = dp/dtheta_k`` solves ``ds_k/dt = A s_k + (dA/dtheta_k) p``; the
augmented block-triangular system is exponentiated by uniformization (a compiled
Poisson series of ``I + M / rate``, exact up to a 1e-17 tail). ``dA/dtheta_k`` is exact:
the propensities are differentiated symbolically (mass action: ``dc/dtheta * h(x)``).

All uses of the CME solver's internals sit in :func:`_starting_bounds` (the initial
truncation box) and :func:`_check_support`; the state set (a box, reachable part), the
generator and its derivatives are built here, so the solver's state index can change
freely.
"""

from __future__ import annotations

import math
import time as wallclock
from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd
import sympy
from scipy import sparse
from scipy.special import gammaln

from ..errors import AnalysisError, OptionsError, TruncationError, UnsupportedFeatureError
from ..network import MassAction, Network

#: Observations whose FSP probability falls below this floor count as ``log(FLOOR)``
#: (and contribute no gradient); their number is reported as ``n_floored``.
FLOOR = 1e-300
_RESERVED = ("time", "experiment", "n_cells")


# -- measurement models -------------------------------------------------------------------
@dataclass(frozen=True)
class BinomialCapture:
    """Each molecule is detected independently with probability ``efficiency``:
    ``P(y | x) = C(x, y) q^y (1 - q)^(x - y)``."""

    efficiency: float
    continuous = False

    def __post_init__(self):
        if not 0.0 < self.efficiency <= 1.0:
            raise OptionsError(f"BinomialCapture efficiency must be in (0, 1], got "
                               f"{self.efficiency}")

    def output_size(self, n_in: int) -> int:
        return n_in

    def kernel(self, y: np.ndarray, n_in: int) -> np.ndarray:
        """``P(y_i | x)`` for x = 0..n_in-1, shape (len(y), n_in)."""
        q = self.efficiency
        x = np.arange(n_in, dtype=float)[None, :]
        y = np.asarray(y, dtype=float)[:, None]
        ok = y <= x
        with np.errstate(divide="ignore", invalid="ignore"):
            log = (gammaln(x + 1) - gammaln(y + 1) - gammaln(np.maximum(x - y, 0) + 1)
                   + y * math.log(q) + (x - y) * (math.log1p(-q) if q < 1 else 0.0))
        out = np.where(ok, np.exp(np.where(ok, log, 0.0)), 0.0)
        if q == 1.0:
            out = (y == x).astype(float)
        return out

    sup = 1.0


@dataclass(frozen=True)
class GaussianNoise:
    """Observed intensity ``y = offset + scale * x + N(0, sigma^2)`` (a density in y)."""

    sigma: float
    scale: float = 1.0
    offset: float = 0.0
    continuous = True

    def __post_init__(self):
        if not self.sigma > 0:
            raise OptionsError(f"GaussianNoise sigma must be > 0, got {self.sigma}")

    def output_size(self, n_in: int) -> int:
        return n_in

    def kernel(self, y: np.ndarray, n_in: int) -> np.ndarray:
        x = np.arange(n_in, dtype=float)[None, :]
        z = (np.asarray(y, dtype=float)[:, None] - self.offset - self.scale * x) / self.sigma
        return np.exp(-0.5 * z * z) / (self.sigma * math.sqrt(2 * math.pi))

    @property
    def sup(self) -> float:
        return 1.0 / (self.sigma * math.sqrt(2 * math.pi))


@dataclass(frozen=True)
class DistortionMatrix:
    """SSIT's probabilistic distortion operator: ``matrix[y, x] = P(observe y | true x)``
    (columns sum to at most 1); true counts beyond its columns are never observed."""

    matrix: np.ndarray
    continuous = False

    def __post_init__(self):
        m = np.asarray(self.matrix, dtype=float)
        if m.ndim != 2 or (m < 0).any() or (m.sum(axis=0) > 1 + 1e-9).any():
            raise OptionsError("DistortionMatrix needs a 2-D non-negative matrix whose "
                               "columns (true counts) sum to at most 1")
        object.__setattr__(self, "matrix", m)

    def output_size(self, n_in: int) -> int:
        return self.matrix.shape[0]

    def kernel(self, y: np.ndarray, n_in: int) -> np.ndarray:
        y = np.asarray(y, dtype=np.int64)
        out = np.zeros((len(y), n_in))
        cols = min(n_in, self.matrix.shape[1])
        inside = (y >= 0) & (y < self.matrix.shape[0])
        out[inside, :cols] = self.matrix[y[inside], :cols]
        return out

    sup = 1.0


def _chain_kernel(stages, y: np.ndarray, n_in: int) -> np.ndarray:
    """Kernel of stages applied in order (first acts on the true count), (len(y), n_in)."""
    sizes = [n_in]
    for stage in stages[:-1]:
        sizes.append(stage.output_size(sizes[-1]))
    result = stages[-1].kernel(y, sizes[-1])
    for stage, size_in, size_out in zip(reversed(stages[:-1]), reversed(sizes[:-1]),
                                        reversed(sizes[1:])):
        result = result @ stage.kernel(np.arange(size_out), size_in)
    return result


def _normalise_measurement(measurement, observed: tuple[str, ...]) -> dict:
    """``{species: tuple of stages}``; a single model applies to every observed species."""
    if measurement is None:
        return {}
    if not isinstance(measurement, dict):
        measurement = {s: measurement for s in observed}
    out = {}
    for species, stages in measurement.items():
        stages = tuple(stages) if isinstance(stages, (list, tuple)) else (stages,)
        if any(s.continuous for s in stages[:-1]):
            raise OptionsError(f"measurement of '{species}': a continuous (Gaussian) stage "
                               "must come last")
        out[species] = stages
    return out


# -- data ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObservationGroup:
    """Cells of one experiment at one time that observed the same species.

    ``values`` (n_rows, n_observed) distinct observed values; ``weights`` (n_rows,) the
    number of cells with them."""

    experiment: str
    time: float
    species: tuple[str, ...]
    values: np.ndarray
    weights: np.ndarray

    @property
    def n_cells(self) -> float:
        return float(self.weights.sum())


def tidy_observations(data: pd.DataFrame, species_ids) -> list[ObservationGroup]:
    """Group a data frame into :class:`ObservationGroup` (see module docstring).

    Wide form: ``time``, optional ``experiment`` and ``n_cells``, one column per observed
    species (NaN = not measured in that cell). Histogram form: ``time, species, count,
    n_cells`` (each species' rows are a marginal histogram)."""
    if not isinstance(data, pd.DataFrame) or "time" not in data.columns:
        raise OptionsError("data must be a DataFrame with a 'time' column")
    frame = data.copy()
    if "experiment" not in frame.columns:
        frame["experiment"] = "default"
    frame["experiment"] = frame["experiment"].astype(str)
    if {"species", "count", "n_cells"} <= set(frame.columns):
        unknown = set(frame["species"]) - set(species_ids)
        if unknown:
            raise OptionsError(f"histogram rows name unknown species {sorted(unknown)}; "
                               f"the model has {list(species_ids)}")
        groups = []
        for (experiment, t, s), rows in frame.groupby(["experiment", "time", "species"],
                                                      sort=True):
            groups.append(_group(experiment, t, (s,), rows[["count"]].to_numpy(float),
                                 rows["n_cells"].to_numpy(float)))
        return groups
    columns = [c for c in frame.columns if c not in _RESERVED]
    unknown = [c for c in columns if c not in species_ids]
    if unknown:
        raise OptionsError(f"data columns {unknown} are not species of the model "
                           f"({list(species_ids)}); drop them or rename them to species ids")
    if not columns:
        raise OptionsError("data has no species column")
    weights = frame["n_cells"].to_numpy(float) if "n_cells" in frame else np.ones(len(frame))
    values = frame[columns].to_numpy(float)
    measured = ~np.isnan(values)
    groups = []
    keys = pd.DataFrame({"experiment": frame["experiment"].to_numpy(),
                         "time": frame["time"].to_numpy(float),
                         "mask": [m.tobytes() for m in measured]})
    for (experiment, t, _), index in keys.groupby(["experiment", "time", "mask"],
                                                  sort=True).indices.items():
        mask = measured[index[0]]
        if not mask.any():
            continue
        observed = tuple(c for c, m in zip(columns, mask) if m)
        groups.append(_group(experiment, t, observed, values[np.ix_(index, mask)],
                             weights[index]))
    return groups


def _group(experiment, t, species, values, weights) -> ObservationGroup:
    if not float(t) >= 0:
        raise OptionsError(f"observation time {t} must be >= 0 (time 0 is the initial state)")
    unique, inverse = np.unique(values, axis=0, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=weights, minlength=len(unique))
    return ObservationGroup(str(experiment), float(t), tuple(species), unique, summed)


# -- the FSP model of one experiment ------------------------------------------------------
def _starting_bounds(network: Network, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(initial counts, upper bound per species) for the truncation box: the CME
    solver's deterministic bound, capped by conservation laws. The only place this module
    reads the CME solver's internals (adapt here when they change)."""
    from .cme import _initial_bounds, _initial_state, conservation_bounds

    x0 = _initial_state(network)
    bounds = _initial_bounds(network, np.concatenate([[0.0], times]), x0).astype(float)
    caps = conservation_bounds(network, x0)
    for i, s in enumerate(network.species):
        if s.fixed:
            bounds[i] = x0[i]
        elif bounds[i] < 0:
            bounds[i] = caps[i] if np.isfinite(caps[i]) else 10.0 * (x0[i] + 10)
    return x0, bounds.astype(np.int64)


def _check_support(network: Network) -> None:
    from .cme import check_cme_support
    from .driven import generator_is_time_dependent

    check_cme_support(network, "fsp_log_likelihood")
    if network.events:
        raise UnsupportedFeatureError("an event", network.events[0].id,
                                      analysis="fsp_log_likelihood",
                                      hint="The likelihood uses a constant generator.")
    if generator_is_time_dependent(network) or network.rate_rules:
        raise UnsupportedFeatureError("a time-dependent generator (rate rule or time)",
                                      network.id or "model", analysis="fsp_log_likelihood")
    for r in network.reactions:
        if r.burst is not None:
            raise UnsupportedFeatureError("a burst channel", r.id,
                                          analysis="fsp_log_likelihood")


class _Channels:
    """Propensities a_j(x; theta) and exact derivatives da_j/dtheta_k, vectorised over
    states. Mass action: ``c_j(theta) h_j(x)``; general laws: numpy-lambdified sympy."""

    def __init__(self, network: Network, names: tuple[str, ...]):
        self.network = network
        self.names = names
        self.pids = network.parameter_ids
        psyms = [sympy.Symbol(p) for p in self.pids]
        ssyms = [sympy.Symbol(s) for s in network.species_ids]
        self.kinds = []
        for r in network.reactions:
            law = r.rate_law
            if isinstance(law, MassAction):
                c = law.rate_constant
                fns = [sympy.lambdify(psyms, e, "numpy") for e in
                       [c] + [sympy.diff(c, sympy.Symbol(n)) for n in names]]
                self.kinds.append(("ma", law, fns))
            else:
                f = law.propensity()
                f = f.replace(lambda e: isinstance(e, sympy.FallingFactorial),
                              lambda e: sympy.expand_func(e))
                fns = [sympy.lambdify(ssyms + psyms, e, "numpy") for e in
                       [f] + [sympy.diff(f, sympy.Symbol(n)) for n in names]]
                self.kinds.append(("expr", law, fns))

    def _h(self, law: MassAction, states: np.ndarray) -> np.ndarray:
        value = np.ones(len(states))
        index = self.network.species_index
        for sid, order in law.orders:
            x = states[:, index[sid]].astype(float)
            for i in range(order):
                value = value * (np.maximum(x - i, 0.0) if law.falling_factorial else x)
        return value

    def evaluate(self, states: np.ndarray, pvec: np.ndarray, derivatives: bool):
        """(rates (n, J), drates (K, n, J) or None)."""
        n, J, K = len(states), len(self.kinds), len(self.names)
        rates = np.empty((n, J))
        drates = np.zeros((K, n, J)) if derivatives else None
        cols = [states[:, i].astype(float) for i in range(states.shape[1])]
        for j, (kind, law, fns) in enumerate(self.kinds):
            upto = fns if derivatives else fns[:1]
            if kind == "ma":
                h = self._h(law, states)
                for m, f in enumerate(upto):
                    v = float(f(*pvec)) * h
                    (rates[:, j] if m == 0 else drates[m - 1][:, j])[:] = v
            else:
                for m, f in enumerate(upto):
                    v = np.broadcast_to(np.asarray(f(*cols, *pvec), dtype=float), (n,))
                    (rates[:, j] if m == 0 else drates[m - 1][:, j])[:] = v
        if not (rates >= 0).all():
            s, j = np.argwhere(~(rates >= 0))[0]
            raise AnalysisError(f"the propensity of reaction '{self.network.reactions[j].id}'"
                                f" is negative or NaN at {states[s].tolist()} with the "
                                "parameters tried; bound the parameters so it stays >= 0")
        return rates, drates


class _FSPModel:
    """State set (a box, reachable part) and generator of one experiment."""

    def __init__(self, network: Network, bounds: np.ndarray, x0: np.ndarray,
                 channels: _Channels, pvec: np.ndarray):
        self.network, self.bounds, self.x0, self.channels = network, bounds, x0, channels
        change = network.stoichiometry.T.astype(np.int64)  # (J, n_species)
        self.change = change
        self.radix = np.cumprod(np.concatenate([[1], bounds[:-1] + 1])).astype(np.int64)
        states = self._reachable(pvec)
        self.states = states
        self.keys = states @ self.radix
        order = np.argsort(self.keys)
        self.states, self.keys = states[order], self.keys[order]
        n = len(self.states)
        targets = []
        for j in range(len(change)):
            new = self.states + change[j]
            inside = ((new >= 0) & (new <= bounds)).all(axis=1)
            pos = np.searchsorted(self.keys, new @ self.radix)
            pos = np.minimum(pos, n - 1)
            found = inside & (self.keys[pos] == new @ self.radix)
            targets.append(np.where(found, pos, n))  # n: the sink
        self.targets = np.array(targets)  # (J, n)
        self.x0_index = int(np.searchsorted(self.keys, x0 @ self.radix))

    def _reachable(self, pvec) -> np.ndarray:
        """Breadth-first search from x0 inside the box along channels that can fire
        (structurally: positive propensity at the parameters given)."""
        seen = {int(self.x0 @ self.radix)}
        frontier = self.x0[None, :].astype(np.int64)
        found = [frontier]
        limit = 5_000_000
        while len(frontier):
            rates, _ = self.channels.evaluate(frontier, pvec, False)
            new = []
            for j in range(len(self.change)):
                fire = rates[:, j] > 0
                cand = frontier[fire] + self.change[j]
                cand = cand[((cand >= 0) & (cand <= self.bounds)).all(axis=1)]
                new.append(cand)
            cand = np.unique(np.concatenate(new), axis=0)
            keys = cand @ self.radix
            fresh = np.array([int(k) not in seen for k in keys], dtype=bool)
            cand = cand[fresh]
            seen.update(int(k) for k in keys[fresh])
            if len(seen) > limit:
                raise AnalysisError(f"the FSP state set exceeds {limit:,} states")
            found.append(cand)
            frontier = cand
        return np.concatenate(found)

    @property
    def n_states(self) -> int:
        return len(self.states)

    def generators(self, pvec: np.ndarray, derivatives: bool):
        """(A, [dA/dtheta_k]) as CSR matrices of shape (n + 1,)*2 (last row: the sink)."""
        n = self.n_states
        rates, drates = self.channels.evaluate(self.states, pvec, derivatives)
        rows = np.concatenate([self.targets.ravel(), np.arange(n)])
        cols = np.concatenate([np.tile(np.arange(n), len(self.change)), np.arange(n)])

        def matrix(r):
            data = np.concatenate([r.T.ravel(), -r.sum(axis=1)])
            return sparse.csr_matrix((data, (rows, cols)), shape=(n + 1, n + 1))

        return matrix(rates), ([matrix(d) for d in drates] if derivatives else [])

    def propagate(self, pvec, times, derivatives: bool):
        """p (n_times, n + 1) and s (n_times, K, n + 1) at ``times`` (ascending, >= 0):
        the augmented system ``d/dt [p; s_k] = [A p; A s_k + dA_k p]`` by uniformization
        (all terms of ``p`` non-negative; Poisson weights summed to 1 - 1e-16)."""
        A, dA = self.generators(pvec, derivatives)
        n1 = self.n_states + 1
        K = len(dA)
        D = (sparse.vstack(dA, format="csr") if K else
             sparse.csr_matrix((0, n1)))
        rate = float(max(-A.diagonal().min(), 1e-300)) * 1.02
        p = np.zeros(n1)
        p[self.x0_index] = 1.0
        S = np.zeros((K, n1))
        out_p = np.empty((len(times), n1))
        out_s = np.empty((len(times), K, n1))
        now = 0.0
        for i, t in enumerate(times):
            if t > now:
                p, S = _uniformize(A.indptr, A.indices, A.data, D.indptr, D.indices,
                                   D.data, rate, rate * (t - now), p, S)
                now = t
            out_p[i], out_s[i] = p, S
        return np.maximum(out_p, 0.0), out_s


@numba.njit(cache=True)
def _csr_apply(indptr, indices, data, x, out):
    for r in range(len(indptr) - 1):
        acc = 0.0
        for q in range(indptr[r], indptr[r + 1]):
            acc += data[q] * x[indices[q]]
        out[r] = acc


@numba.njit(cache=True)
def _uniformize(indptr, indices, data, dptr, dind, ddata, rate, big, p, S):
    """``exp(t M) [p; S]`` for the augmented block matrix M (A on the diagonal blocks,
    dA_k below), ``big = rate * t``: sum_k Pois(k; big) (I + M / rate)^k [p; S]."""
    K, n1 = S.shape
    rp = np.zeros(n1)
    rS = np.zeros((K, n1))
    cp = p.copy()
    cS = S.copy()
    tmp = np.empty(n1)
    dtmp = np.empty(K * n1)
    log_big = math.log(big) if big > 0 else 0.0
    k = 0
    total = 0.0
    while True:
        w = math.exp(-big + k * log_big - math.lgamma(k + 1.0))
        if w > 0:
            total += w
            for i in range(n1):
                rp[i] += w * cp[i]
            for m in range(K):
                for i in range(n1):
                    rS[m, i] += w * cS[m, i]
        # the Poisson tail beyond k is below w (k + 1) / (k + 1 - big) once k > big
        if k > big and w * (k + 1.0) / (k + 1.0 - big) < 1e-17:
            break
        # one step of (I + M / rate)
        if K:
            _csr_apply(dptr, dind, ddata, cp, dtmp)
        for m in range(K):
            _csr_apply(indptr, indices, data, cS[m], tmp)
            for i in range(n1):
                cS[m, i] += (tmp[i] + dtmp[m * n1 + i]) / rate
        _csr_apply(indptr, indices, data, cp, tmp)
        for i in range(n1):
            cp[i] += tmp[i] / rate
        k += 1
    return rp, rS


# -- the likelihood ----------------------------------------------------------------------
@dataclass(frozen=True)
class Experiment:
    """Conditions of one experiment: parameter values and initial counts it sets."""

    parameters: dict = field(default_factory=dict)
    initial_counts: dict = field(default_factory=dict)


@dataclass
class LikelihoodResult:
    """Value, certified interval, gradient and per-group details of a log-likelihood.

    ``loglik`` is the FSP value (a certified lower bound); the exact log-likelihood lies
    in ``[loglik_low, loglik_high]``. ``gradient`` (n_parameters,) is d loglik/d theta in
    natural units, ordered as ``parameters``."""

    loglik: float
    loglik_low: float
    loglik_high: float
    gradient: np.ndarray | None
    parameters: tuple[str, ...]
    values: np.ndarray
    n_cells: float
    n_floored: float
    max_leaked: float
    n_states: int
    wall_time: float


class LikelihoodProblem:
    """Data + network + measurement model, compiled once; evaluates log-likelihood,
    gradient and Fisher information at any parameter vector.

    Parameters
    ----------
    network : Network
    data : DataFrame (see :func:`tidy_observations`)
    parameters : sequence of str
        Parameter ids that vary (``theta``); the rest keep the network's values.
    experiments : dict, optional
        ``{experiment id: {"parameters": {...}, "initial_counts": {...}}}`` or
        :class:`Experiment` values.
    measurement : model, list of models, or dict species -> model(s), optional
    tol : float
        FSP leaked-mass tolerance: the state box is grown until every experiment leaks
        at most ``tol`` at the parameters evaluated.
    adapt_box : bool
        Also shrink the box when the mass beyond a smaller one is below tol / 100 (for
        the next evaluation). The gradient is exact for the FSP on the box used; set
        this False to keep one box (only growing), e.g. for finite-difference checks.
    """

    def __init__(self, network: Network, data, parameters, *, experiments=None,
                 measurement=None, tol: float = 1e-8, adapt_box: bool = True):
        self.adapt_box = adapt_box
        _check_support(network)
        self.network = network
        self.names = tuple(parameters)
        unknown = [p for p in self.names if p not in network.parameter_ids]
        if unknown:
            raise OptionsError(f"unknown parameter(s) {unknown}; the model has "
                               f"{list(network.parameter_ids)}")
        self.groups = data if isinstance(data, list) else tidy_observations(
            data, network.species_ids)
        if not self.groups:
            raise OptionsError("the data hold no observation")
        self.tol = float(tol)
        self.experiments = {}
        for eid in sorted({g.experiment for g in self.groups}):
            spec = (experiments or {}).get(eid, Experiment())
            if isinstance(spec, dict):
                spec = Experiment(spec.get("parameters", {}), spec.get("initial_counts", {}))
            fixed = set(spec.parameters) & set(self.names)
            if fixed:
                raise OptionsError(f"experiment '{eid}' sets fitted parameter(s) "
                                   f"{sorted(fixed)}")
            self.experiments[eid] = spec
        self.measurement = _normalise_measurement(
            measurement, tuple(sorted({s for g in self.groups for s in g.species})))
        self.channels = _Channels(network, self.names)
        self.index = np.array([network.parameter_ids.index(p) for p in self.names], int)
        self._models: dict[str, _FSPModel] = {}
        self._floors: dict[str, np.ndarray] = {}
        self._kernels: dict = {}

    # -- parameters --
    def pvec(self, eid: str, theta) -> np.ndarray:
        values = self.network.parameter_values.copy()
        for pid, v in self.experiments[eid].parameters.items():
            values[self.network.parameter_ids.index(pid)] = v
        values[self.index] = theta
        return values

    def default_theta(self) -> np.ndarray:
        return self.network.parameter_values[self.index].copy()

    def _network_of(self, eid: str, theta) -> Network:
        spec = self.experiments[eid]
        net = self.network.with_parameters(**dict(zip(self.network.parameter_ids,
                                                      self.pvec(eid, theta))))
        return net.with_initial_counts(**spec.initial_counts) if spec.initial_counts else net

    def _model(self, eid: str, theta, times) -> _FSPModel:
        model = self._models.get(eid)
        if model is None:
            net = self._network_of(eid, theta)
            x0, bounds = _starting_bounds(net, times)
            for g in self.groups:
                if g.experiment == eid:
                    for c, s in enumerate(g.species):
                        i = net.species_index[s]
                        if s not in self.measurement and not net.species[i].fixed:
                            bounds[i] = max(bounds[i], int(g.values[:, c].max()) + 1)
            self._floors[eid] = np.where(
                [s.fixed for s in net.species], bounds, 0).astype(np.int64)
            for g in self.groups:
                if g.experiment == eid:
                    for c, s in enumerate(g.species):
                        i = net.species_index[s]
                        if s not in self.measurement and not net.species[i].fixed:
                            self._floors[eid][i] = max(self._floors[eid][i],
                                                       int(g.values[:, c].max()) + 1)
            model = _FSPModel(net, bounds, x0, self.channels, self.pvec(eid, theta))
            self._models[eid] = model
        return model

    def _rebuild(self, eid: str, theta, bounds) -> None:
        old = self._models[eid]
        self._models[eid] = _FSPModel(old.network, bounds, old.x0, self.channels,
                                      self.pvec(eid, theta))
        self._kernels = {k: v for k, v in self._kernels.items() if k[0] != eid}

    def _grow(self, eid: str, theta, p) -> None:
        """Enlarge (x1.5 + 10) the bounds of the species whose boundary face holds
        probability (all free species when none does)."""
        model = self._models[eid]
        free = np.array([not s.fixed for s in model.network.species])
        face = np.array([p[:, :-1][:, model.states[:, i] == model.bounds[i]].sum(axis=1).max()
                         for i in range(len(free))])
        grow = free & (face > self.tol / (10 * len(free)))
        if not grow.any():
            grow = free
        bounds = model.bounds.copy()
        bounds[grow] = np.ceil(bounds[grow] * 1.5 + 10).astype(np.int64)
        self._rebuild(eid, theta, bounds)

    def _maybe_shrink(self, eid: str, theta, p) -> None:
        """For the next evaluation, shrink (/1.5) a species' bound when the mass beyond
        the smaller bound is below tol / 100 at every time (and no exactly observed count
        lies beyond it): a box grown for distant parameters would slow every later
        evaluation (uniformization costs grow with the largest exit rate)."""
        model = self._models[eid]
        bounds = model.bounds.copy()
        changed = False
        for i, s in enumerate(model.network.species):
            if s.fixed:
                continue
            smaller = max(int(self._floors[eid][i]), int(math.ceil(bounds[i] / 1.5)))
            if smaller >= bounds[i]:
                continue
            beyond = p[:, :-1][:, model.states[:, i] > smaller].sum(axis=1).max()
            if beyond < self.tol / 100:
                bounds[i] = smaller
                changed = True
        if changed:
            self._rebuild(eid, theta, bounds)

    # -- observation kernels --
    def _kernel(self, eid, gi, g: ObservationGroup, model: _FSPModel):
        """(W (n_rows, n_states) sparse or dense, sup factor per row)."""
        key = (eid, gi, model.n_states)
        if key in self._kernels:
            return self._kernels[key]
        net = self.network
        n = model.n_states
        W = None
        sup = np.ones(len(g.values))
        exact_cols = [c for c, s in enumerate(g.species) if s not in self.measurement]
        if exact_cols:
            idx = [net.species_index[g.species[c]] for c in exact_cols]
            radix = np.cumprod([1] + [int(model.bounds[i]) + 2 for i in idx[:-1]])
            state_key = model.states[:, idx] @ radix
            obs = g.values[:, exact_cols]
            valid = (obs >= 0).all(axis=1) & (obs == np.round(obs)).all(axis=1) & \
                (obs <= model.bounds[idx]).all(axis=1)
            obs_key = np.where(valid, np.round(obs).astype(np.int64) @ radix, -1)
            lookup = {int(k): r for r, k in enumerate(obs_key) if k >= 0}
            rows = np.array([lookup.get(int(k), -1) for k in state_key])
            hit = rows >= 0
            W = sparse.csr_matrix((np.ones(hit.sum()), (rows[hit], np.flatnonzero(hit))),
                                  shape=(len(g.values), n))
        for c, s in enumerate(g.species):
            if s not in self.measurement:
                continue
            stages = self.measurement[s]
            i = net.species_index[s]
            size = int(model.bounds[i]) + 1
            y = g.values[:, c]
            kern = _chain_kernel(stages, y if stages[-1].continuous else
                                 np.round(y).astype(np.int64), size)
            factor = kern[:, model.states[:, i]]
            sup = sup * (stages[-1].sup if stages[-1].continuous else 1.0)
            W = factor if W is None else (W.multiply(factor).tocsr() if sparse.issparse(W)
                                          else W * factor)
        self._kernels[key] = (W, sup)
        return W, sup

    # -- evaluation --
    def _solve(self, eid, theta, times, derivatives):
        """Propagate, growing the box until the leaked mass at the last time <= tol."""
        for _ in range(30):
            model = self._model(eid, theta, times)
            p, s = model.propagate(self.pvec(eid, theta), times, derivatives)
            leaked = np.maximum(np.maximum(p[:, -1], 1.0 - p[:, :-1].sum(axis=1)), 0.0)
            if leaked[-1] <= self.tol:
                if self.adapt_box:
                    self._maybe_shrink(eid, theta, p)
                return model, p, s, leaked
            self._grow(eid, theta, p)
        raise TruncationError(f"experiment '{eid}': the FSP did not reach tol={self.tol:g} "
                              f"(leaked {leaked[-1]:.3g}); widen tol or bound the parameters")

    def evaluate(self, theta, *, gradient: bool = True,
                 fisher: bool = False) -> LikelihoodResult:
        """Log-likelihood (certified interval) and, optionally, its gradient; with
        ``fisher`` also ``result.fim`` (expected FIM of this data design)."""
        started = wallclock.perf_counter()
        theta = np.asarray(theta, dtype=float)
        K = len(self.names)
        total = low = high = 0.0
        grad = np.zeros(K)
        n_floored = n_cells = 0.0
        max_leaked = 0.0
        n_states = 0
        fim = np.zeros((K, K))
        group_fims = []
        need = gradient or fisher
        for eid in self.experiments:
            groups = [(gi, g) for gi, g in enumerate(self.groups) if g.experiment == eid]
            times = np.unique([g.time for _, g in groups])
            model, p, s, leaked = self._solve(eid, theta, times, need)
            n_states = max(n_states, model.n_states)
            max_leaked = max(max_leaked, float(leaked.max()))
            for gi, g in groups:
                k = int(np.searchsorted(times, g.time))
                W, sup = self._kernel(eid, gi, g, model)
                P = np.asarray(W @ p[k, :-1]).ravel()
                floored = P < FLOOR
                Pf = np.where(floored, FLOOR, P)
                total += float(g.weights @ np.log(Pf))
                high += float(g.weights @ np.log(Pf + leaked[k] * sup))
                n_floored += float(g.weights[floored].sum())
                n_cells += g.n_cells
                if gradient:
                    dP = np.asarray(W @ s[k, :, :-1].T)  # (rows, K)
                    grad += (g.weights * np.where(floored, 0.0, 1.0 / Pf)) @ dP
                if fisher:
                    per_cell = self._group_fim(eid, g, model, p[k, :-1], s[k, :, :-1], W)
                    group_fims.append(per_cell)
                    fim += g.n_cells * per_cell
        result = LikelihoodResult(
            loglik=total, loglik_low=total, loglik_high=high,
            gradient=grad if gradient else None, parameters=self.names, values=theta,
            n_cells=n_cells, n_floored=n_floored, max_leaked=max_leaked, n_states=n_states,
            wall_time=wallclock.perf_counter() - started)
        if fisher:
            result.fim = fim
            result.group_fims = group_fims  # per cell, in the order of the groups evaluated
        return result

    def _group_fim(self, eid, g: ObservationGroup, model: _FSPModel, p, s, W):
        """Per-cell expected FIM of one observation (K, K): sum over every possible
        observed value y of s_k(y) s_l(y) / P(y); for a continuous (Gaussian) measurement
        the empirical average of score outer products over the observed rows."""
        net = self.network
        idx = [net.species_index[sp] for sp in g.species]
        if any(self.measurement.get(sp, (None,))[-1] is not None and
               self.measurement[sp][-1].continuous for sp in g.species):
            P = np.asarray(W @ p).ravel()
            dP = np.asarray(W @ s.T)
            ok = P > FLOOR
            score = dP[ok] / P[ok, None]
            w = g.weights[ok] / g.weights[ok].sum()
            return (score * w[:, None]).T @ score
        # marginal on the observed species' grid, then each species' kernel (a product)
        sizes = [int(model.bounds[i]) + 1 for i in idx]
        flat = np.ravel_multi_index(tuple(model.states[:, i] for i in idx), sizes)
        m = np.bincount(flat, weights=p, minlength=int(np.prod(sizes))).reshape(sizes)
        dm = np.stack([np.bincount(flat, weights=sk, minlength=int(np.prod(sizes)))
                       .reshape(sizes) for sk in s])
        for axis, sp in enumerate(g.species):
            if sp in self.measurement:
                stages = self.measurement[sp]
                n_out = sizes[axis]
                for st in stages:
                    n_out = st.output_size(n_out)
                kern = _chain_kernel(stages, np.arange(n_out), sizes[axis])
                m = np.moveaxis(np.tensordot(kern, m, axes=([1], [axis])), 0, axis)
                dm = np.moveaxis(np.tensordot(kern, dm, axes=([1], [axis + 1])), 0, axis + 1)
        m = m.ravel()
        dm = dm.reshape(len(s), -1)
        ok = m > 1e-300
        return (dm[:, ok] / m[ok]) @ dm[:, ok].T


def fsp_log_likelihood(network: Network, data, parameters=None, *, experiments=None,
                       measurement=None, tol: float = 1e-8,
                       gradient: bool = False) -> LikelihoodResult:
    """Exact (FSP) log-likelihood of single-cell data, with a certified interval.

    Parameters
    ----------
    network : Network
    data : DataFrame
        ``time, <species...>`` one row per cell (``n_cells`` optional, ``experiment``
        optional, NaN = species not measured), or ``time, species, count, n_cells``.
    parameters : dict or sequence of str, optional
        ``{id: value}`` to evaluate at (others keep the network's values); a sequence
        of ids (evaluated at the network's values) for the gradient's order. Default:
        all parameters that appear in a propensity.
    experiments, measurement, tol : see :class:`LikelihoodProblem`.
    gradient : bool
        Also compute ``result.gradient`` (d loglik / d theta, natural units).

    Returns
    -------
    LikelihoodResult
        ``loglik`` (FSP lower bound), ``[loglik_low, loglik_high]`` certified, cells with
        probability below :data:`FLOOR` counted in ``n_floored`` (scored ``log FLOOR``).
    """
    if parameters is None:
        used = {str(s) for law in network.propensities() for s in law.free_symbols}
        parameters = [p for p in network.parameter_ids if p in used]
    values = dict(parameters) if isinstance(parameters, dict) else None
    names = list(values) if values is not None else list(parameters)
    problem = LikelihoodProblem(network, data, names, experiments=experiments,
                                measurement=measurement, tol=tol)
    theta = (np.array([values[n] for n in names], float) if values is not None
             else problem.default_theta())
    return problem.evaluate(theta, gradient=gradient)


def fisher_information(network: Network, times, n_cells, parameters=None, *,
                       observed=None, measurement=None, experiments=None,
                       tol: float = 1e-8) -> pd.DataFrame:
    """FSP Fisher information matrix of a proposed experiment (Fox & Munsky 2019).

    ``FIM_kl = sum_t N_t sum_y s_k(y, t) s_l(y, t) / P(y, t)`` over every possible
    observation ``y`` of the ``observed`` species (default: all), at ``parameters``
    (dict id -> value; default the network's values). ``n_cells``: per time (sequence)
    or the same for every time. Returns a square DataFrame indexed by parameter id."""
    problem, theta = _design_problem(network, times, n_cells, parameters, observed,
                                     measurement, experiments, tol)
    fim = problem.evaluate(theta, gradient=False, fisher=True).fim
    return pd.DataFrame(fim, index=list(problem.names), columns=list(problem.names))


def _design_problem(network, times, n_cells, parameters, observed, measurement,
                    experiments, tol):
    times = np.atleast_1d(np.asarray(times, dtype=float))
    counts = np.broadcast_to(np.asarray(n_cells, dtype=float), times.shape)
    if parameters is None:
        used = {str(s) for law in network.propensities() for s in law.free_symbols}
        parameters = {p: v for p, v in zip(network.parameter_ids,
                                           network.parameter_values) if p in used}
    elif not isinstance(parameters, dict):
        parameters = {p: network.parameter_values[network.parameter_ids.index(p)]
                      for p in parameters}
    observed = tuple(observed or [s.id for s in network.species if not s.fixed])
    groups = [ObservationGroup("default", float(t), observed,
                               np.zeros((1, len(observed))), np.array([float(c)]))
              for t, c in zip(times, counts)]
    problem = LikelihoodProblem(network, groups, list(parameters), experiments=experiments,
                                measurement=measurement, tol=tol)
    return problem, np.array(list(parameters.values()), float)
