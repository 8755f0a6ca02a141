"""Scoring of stochastic SBML Test Suite cases (DSMTS and distrib) against an ensemble.

Owns: reading the vendored cases in ``tests/data/dsmts/`` (``settings.txt``,
``results.csv``, ``model.m``) and the test suite's standardized statistics, exactly as the
suite defines them (shared/corpus/README.md, "How stochastic cases are scored"):

- mean statistic ``Z_t = sqrt(n) (X_t - mu_t) / sigma_t`` for every requested ``V-mean``;
- variance statistic ``Y_t = sqrt(n/2) (S_t^2 / sigma_t^2 - 1)`` for every requested
  ``V-sd``,

where ``X_t`` and ``S_t^2`` are the sample mean and (unbiased) sample variance over ``n``
trajectories of ``V`` (or of ``ln V`` for ``ln(V)-mean`` / ``ln(V)-sd`` columns), and
``mu_t`` / ``sigma_t`` are the expected mean and standard deviation from ``results.csv``.
A point is out of range when the statistic is not strictly inside ``meanRange`` /
``sdRange``. Points with ``sigma_t = 0`` admit no spread, so they are compared exactly: the
sample mean must equal ``mu_t`` and the sample standard deviation must be 0; a mismatch
counts as an out-of-range point with an infinite statistic.

Used by tests/statistical/test_dsmts.py and benchmarks/dsmts_full.py; no pytest imports.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[1] / "data" / "dsmts"

# DSMTS model family (the FFF of dsmts-FFF-NN) per test-suite case, from the corpus README.
FAMILIES = {
    **dict.fromkeys(["00002", "00003", "00004", "00005", "00007", "00009", "00010", "00011",
                     "00014", "00015", "00016", "00017", "00019"], "001 birth-death"),
    **dict.fromkeys(["00020", "00022", "00023", "00024", "00025", "00026", "00028"],
                    "002 immigration-death"),
    **dict.fromkeys(["00030", "00031", "00032", "00033", "00034"], "003 dimerisation"),
    **dict.fromkeys(["00038", "00039"], "004 batch immigration-death"),
}

# Half a unit of the fifth decimal written in results.csv: the exact-comparison tolerance
# for points with sigma_t = 0 (values there are deterministic, usually integers).
EXACT_TOLERANCE = 5e-6


# -- reading a case ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Contents of ``NNNNN-settings.txt``."""

    start: float
    duration: float
    steps: int
    variables: tuple[str, ...]
    amount: tuple[str, ...]
    concentration: tuple[str, ...]
    output: tuple[str, ...]
    mean_range: tuple[float, float]
    sd_range: tuple[float, float]

    @property
    def times(self) -> np.ndarray:
        """Output times ``start + k duration / steps``, k = 0..steps; shape (steps + 1,)."""
        k = np.arange(self.steps + 1)
        return self.start + k * (self.duration / self.steps)


def _names(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


def _range(value: str) -> tuple[float, float]:
    match = re.fullmatch(r"\s*\(\s*([^,]+),\s*([^)]+)\)\s*", value)
    if match is None:
        raise ValueError(f"cannot parse range {value!r}")
    return float(match.group(1)), float(match.group(2))


def read_settings(path: Path) -> Settings:
    """Parse a test-suite ``settings.txt`` (``key: value`` lines)."""
    entries = {}
    for line in Path(path).read_text().splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            entries[key.strip()] = value.strip()
    return Settings(
        start=float(entries["start"]), duration=float(entries["duration"]),
        steps=int(entries["steps"]), variables=_names(entries.get("variables", "")),
        amount=_names(entries.get("amount", "")),
        concentration=_names(entries.get("concentration", "")),
        output=_names(entries["output"]), mean_range=_range(entries["meanRange"]),
        sd_range=_range(entries["sdRange"]))


def read_results(path: Path) -> pd.DataFrame:
    """Expected statistics ``time, V-mean, V-sd, ...`` (column names stripped)."""
    frame = pd.read_csv(path)
    frame.columns = [column.strip() for column in frame.columns]
    return frame


def _model_header(path: Path) -> tuple[dict[str, str], str]:
    """``key: value`` header of ``model.m`` and its first description paragraph."""
    text = Path(path).read_text()
    header, description = {}, ""
    lines = text.splitlines()
    for k, line in enumerate(lines):
        match = re.match(r"^(\w+):\s*(.*)$", line)
        if match:
            header[match.group(1)] = match.group(2).strip()
        elif header and line.strip() and not line.startswith("(*"):
            paragraph = []
            for rest in lines[k:]:
                if not rest.strip():
                    break
                paragraph.append(rest.strip())
            description = " ".join(paragraph)
            break
    return header, description


@dataclass(frozen=True)
class Case:
    """One vendored stochastic test-suite case."""

    id: str
    directory: Path
    settings: Settings
    results: pd.DataFrame = field(repr=False)
    test_type: str
    packages: tuple[str, ...]
    synopsis: str
    description: str

    @property
    def is_dsmts(self) -> bool:
        return self.test_type == "StochasticTimeCourse" and not self.packages

    @property
    def family(self) -> str:
        return FAMILIES.get(self.id, "distrib" if "distrib" in self.packages else "")

    @property
    def sbml_files(self) -> dict[str, Path]:
        """``{"l3v1": path, "l2v4": path, ...}`` of the vendored SBML files."""
        files = sorted(self.directory.glob(f"{self.id}-sbml-l*v*.xml"))
        return {path.stem.rsplit("-", 1)[-1]: path for path in files}

    @property
    def sbml(self) -> Path:
        """The main SBML file: L3V1, else L3V2."""
        files = self.sbml_files
        return files.get("l3v1") or files["l3v2"]


def read_case(directory: Path) -> Case:
    directory = Path(directory)
    case_id = directory.name
    header, description = _model_header(directory / f"{case_id}-model.m")
    return Case(id=case_id, directory=directory,
                settings=read_settings(directory / f"{case_id}-settings.txt"),
                results=read_results(directory / f"{case_id}-results.csv"),
                test_type=header.get("testType", ""),
                packages=_names(header.get("packagesPresent", "")),
                synopsis=header.get("synopsis", ""), description=description)


def list_cases(root: Path = DATA) -> list[Case]:
    """Every vendored case, sorted by id."""
    return [read_case(path) for path in sorted(Path(root).iterdir())
            if path.is_dir() and re.fullmatch(r"\d{5}", path.name)]


# -- scoring ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Score:
    """One requested statistic (``V-mean`` -> Z, ``V-sd`` -> Y) over the output times."""

    column: str
    kind: str  # "Z" or "Y"
    values: np.ndarray  # shape (n_times,); +-inf where an exact (sigma_t = 0) point mismatched
    bounds: tuple[float, float]
    exact_points: int  # points with sigma_t = 0, compared exactly
    exact_mismatches: int

    @property
    def out_of_range(self) -> np.ndarray:
        """Boolean mask, shape (n_times,): statistic not strictly inside ``bounds``."""
        low, high = self.bounds
        return ~((self.values > low) & (self.values < high))

    @property
    def n_out(self) -> int:
        return int(self.out_of_range.sum())

    @property
    def n_points(self) -> int:
        return len(self.values)

    @property
    def max_abs(self) -> float:
        """Largest |statistic| over the points with sigma_t > 0 (nan if none)."""
        finite = np.abs(self.values[np.isfinite(self.values)])
        return float(finite.max()) if finite.size else math.nan


def _parse_column(column: str) -> tuple[str, bool, str]:
    """``"ln(X)-sd"`` -> (``"X"``, log=True, ``"sd"``)."""
    variable, statistic = column.rsplit("-", 1)
    match = re.fullmatch(r"ln\((.+)\)", variable)
    if match:
        return match.group(1), True, statistic
    return variable, False, statistic


def sample_values(states: np.ndarray, column_ids: list[str], variable: str,
                  log: bool) -> np.ndarray:
    """Values of one variable, shape (n_trajectories, n_times); natural log if ``log``.

    ``states`` has shape (n_trajectories, n_times, n_columns) with columns ``column_ids``.
    """
    values = states[:, :, column_ids.index(variable)].astype(float)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.log(values)
    return values


def score_samples(case: Case, samples: dict[str, np.ndarray]) -> list[Score]:
    """Score every statistic requested by ``output``.

    ``samples`` maps each variable (``"X"`` or ``"ln(X)"``) to its values, shape
    (n_trajectories, n_times) at ``case.settings.times``.
    """
    scores = []
    for column in case.settings.output:
        variable, log, statistic = _parse_column(column)
        key = f"ln({variable})" if log else variable
        values = samples[key]
        n = values.shape[0]
        if f"{key}-sd" not in case.results:
            raise ValueError(f"case {case.id} gives no expected {key}-sd, so {column} has "
                             "no standardized statistic")
        mu = case.results[f"{key}-mean"].to_numpy(float)
        sigma = case.results[f"{key}-sd"].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = values.mean(axis=0)
            variance = values.var(axis=0, ddof=1)
        exact = sigma == 0
        if statistic == "mean":
            kind, bounds = "Z", case.settings.mean_range
            with np.errstate(divide="ignore", invalid="ignore"):
                result = math.sqrt(n) * (mean - mu) / sigma
            mismatch = exact & ~(np.abs(mean - mu) <= EXACT_TOLERANCE)
            result[exact] = np.where(mismatch[exact], np.copysign(np.inf, mean - mu)[exact],
                                     0.0)
        elif statistic == "sd":
            kind, bounds = "Y", case.settings.sd_range
            with np.errstate(divide="ignore", invalid="ignore"):
                result = math.sqrt(n / 2) * (variance / sigma**2 - 1)
            mismatch = exact & ~(np.sqrt(variance) <= EXACT_TOLERANCE)
            result[exact] = np.where(mismatch[exact], np.inf, 0.0)
        else:
            raise ValueError(f"unknown statistic in output column {column!r}")
        result = np.where(np.isnan(result), np.inf, result)  # e.g. ln(0): never in range
        scores.append(Score(column, kind, result, bounds, int(exact.sum()),
                            int(mismatch.sum())))
    return scores


def score_states(case: Case, states: np.ndarray, column_ids: list[str]) -> list[Score]:
    """Score an ensemble ``states`` (n_trajectories, n_times, n_columns) with the given
    column ids (species ids then output ids), sampled at ``case.settings.times``."""
    samples = {}
    for column in case.settings.output:
        variable, log, _ = _parse_column(column)
        key = f"ln({variable})" if log else variable
        samples[key] = sample_values(states, column_ids, variable, log)
    return score_samples(case, samples)


def score_ensemble(case: Case, result) -> list[Score]:
    """Score an :class:`sbml_cme.results.EnsembleResult`: states in counts are divided by
    molecules per model substance unit, so each variable is the suite's amount (DSMTS
    species are in item units, a factor 1; the distrib cases leave the substance unit
    unset, so the reader counts N_A molecules per unit)."""
    network = result.network
    column_ids = list(network.species_ids) + [output.id for output in network.outputs]
    scales = np.array([network.species_scale(s, "amount") for s in network.species_ids] +
                      [network.output_scale(o, "amount") for o in network.outputs])
    return score_states(case, result.states / scales, column_ids)


def describe(scores: list[Score]) -> str:
    """Multi-line human summary, listing the times that are out of range."""
    lines = []
    for score in scores:
        bad = np.nonzero(score.out_of_range)[0]
        lines.append(f"{score.column} ({score.kind}): {score.n_out}/{score.n_points} out of "
                     f"{score.bounds}, max |{score.kind}| = {score.max_abs:.2f}, "
                     f"exact mismatches {score.exact_mismatches}/{score.exact_points}, "
                     f"bad time indices {bad.tolist()}, values "
                     f"{np.round(score.values[bad], 2).tolist()}")
    return "\n".join(lines)
