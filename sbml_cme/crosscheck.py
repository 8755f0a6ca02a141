"""Deterministic reference runs in tellurium/libroadrunner and method comparisons.

tellurium simulates the original SBML file, so a disagreement with
:func:`~sbml_cme.analyses.deterministic.simulate_deterministic` (which integrates the
network's own propensities in their deterministic limit) exposes a conversion bug.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .analyses.deterministic import _check_times, simulate_deterministic
from .errors import AnalysisError
from .network import Network

#: Default agreement: max |ours - tellurium| <= RTOL * max|tellurium| + ATOL per column.
RTOL = 1e-4
ATOL = 1e-9


def tellurium_reference(path: str | os.PathLike, times, *, columns=None,
                        network: Network | None = None) -> pd.DataFrame:
    """Simulate the SBML file in libroadrunner (CVODE, tight tolerances).

    Parameters
    ----------
    path : path-like
        The original SBML file.
    times : array_like, shape (n_times,)
        Output times; the first is the start time.
    columns : list of str, optional
        Ids to report; by default every species and assignment-rule output of
        ``network`` (or of the model).
    network : Network, optional
        Decides whether each species is reported as amount or concentration (as
        declared, like ``DeterministicResult.to_wide("model")``).

    Returns
    -------
    DataFrame
        ``time`` plus one column per id, in the model's declared units.
    """
    import roadrunner  # heavy import, deferred

    times = _check_times(times)
    try:
        runner = roadrunner.RoadRunner(os.fspath(path))
    except Exception as error:  # roadrunner raises bare RuntimeError
        raise AnalysisError(f"libroadrunner could not load '{path}': {error}") from None
    integrator = runner.getIntegrator()
    integrator.setValue("relative_tolerance", 1e-10)
    # CVODE works in amounts: cap the absolute tolerance at a millionth of a molecule, as
    # simulate_deterministic does, so values tiny in model units stay accurate.
    integrator.setValue("absolute_tolerance", _absolute_tolerance(network))
    integrator.setValue("maximum_num_steps", 200000)
    if network is not None:
        ids = columns or (list(network.species_ids) + [o.id for o in network.outputs])
        declared = {s.id: s.has_only_substance_units for s in network.species}
        declared.update({o.id: o.has_only_substance_units or o.kind != "species"
                         for o in network.outputs})
    else:
        ids = columns or list(runner.model.getFloatingSpeciesIds())
        declared = {}
    selections = ["time"] + [i if declared.get(i, True) else f"[{i}]" for i in ids]
    runner.timeCourseSelections = selections
    try:
        # One output time: the initial state (roadrunner cannot simulate zero steps).
        result = runner.simulate(times=list(times)) if len(times) > 1 else [
            list(runner.getSelectedValues())]
    except Exception as error:
        raise AnalysisError(f"libroadrunner failed on '{path}': {error}") from None
    frame = pd.DataFrame(np.asarray(result), columns=["time"] + list(ids))
    return frame


def _absolute_tolerance(network: Network | None) -> float:
    """Roadrunner's absolute tolerance (model amounts): 1e-14, or 1e-6 molecules."""
    if network is None or not network.species:
        return 1e-14
    largest_factor = max(s.molecules_per_unit for s in network.species)
    return min(1e-14, 1e-6 / largest_factor)


def compare_frames(ours: pd.DataFrame, reference: pd.DataFrame, *, rtol: float = RTOL,
                   atol: float = ATOL) -> pd.DataFrame:
    """Per column: ``species, max_abs_deviation, max_rel_deviation, scale, verdict``.

    The relative deviation is max|ours - ref| / max|ref| over time (the column's scale);
    the verdict is ``agree`` when max|ours - ref| <= rtol * scale + atol.
    """
    rows = []
    for column in reference.columns:
        if column == "time" or column not in ours.columns:
            continue
        a = ours[column].to_numpy(dtype=float)
        b = reference[column].to_numpy(dtype=float)
        deviation = np.abs(a - b)
        scale = float(np.max(np.abs(b))) if len(b) else 0.0
        worst = float(np.nanmax(deviation)) if len(deviation) else 0.0
        finite = np.all(np.isfinite(a)) and np.all(np.isfinite(b))
        rows.append({
            "species": column, "max_abs_deviation": worst,
            "max_rel_deviation": worst / scale if scale > 0 else worst,
            "scale": scale,
            "verdict": "agree" if finite and worst <= rtol * scale + atol else "disagree"})
    return pd.DataFrame(rows, columns=["species", "max_abs_deviation", "max_rel_deviation",
                                       "scale", "verdict"])


def crosscheck(path: str | os.PathLike, times, *, network: Network | None = None,
               rtol: float = RTOL, atol: float = ATOL, **read_options) -> pd.DataFrame:
    """Compare the network's rate equations with tellurium on the original file.

    Returns the :func:`compare_frames` table; ``all(table.verdict == "agree")`` means
    the import reproduces the SBML model's own ODEs.
    """
    from .io import read_sbml  # io -> network only; crosscheck sits above io

    network = network or read_sbml(path, **read_options)
    ours = simulate_deterministic(network, times).to_wide("model")
    reference = tellurium_reference(path, times, network=network)
    return compare_frames(ours, reference, rtol=rtol, atol=atol)
