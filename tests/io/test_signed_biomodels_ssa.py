"""The six bundled BioModels that were refused for a signed law (issue 11) run through
simulate_ssa: whole, non-negative counts, no failed trajectory, and the work the guard
estimated. They are mole- or concentration-unit models, so each is read with a
``substance_unit`` (molecules per model substance unit) that keeps the exact SSA to
about 1e4 events per trajectory; BIOMD0000000055's light forcing (explicit time in its
laws) goes to the hybrid kernel, which integrates the time-dependent hazard.
BIOMD0000000064's vSUC (2 ACE -> SUCC at KSUCC * ACE, a law that does not vanish at one
ACE) makes the SSA stop cleanly when ACE runs low, so it runs at 1000 molecules per mM
on a short horizon."""

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

import sbml_cme
from sbml_cme.analyses.ssa import expected_events

MODELS = Path(__file__).resolve().parents[2] / "models" / "biomodels"

#: model, substance_unit, t_end, SSA method run by "auto"
CASES = [("BIOMD0000000003", 100, 10.0, "ssa"), ("BIOMD0000000055", 100, 10.0, "hybrid"),
         ("BIOMD0000000056", 100, 10.0, "ssa"), ("BIOMD0000000064", 1000, 0.01, "ssa"),
         ("BIOMD0000000071", 10, 0.2, "ssa"), ("BIOMD0000000310", 1e18, 10.0, "ssa")]


@pytest.mark.parametrize("model, substance_unit, t_end, method", CASES,
                         ids=[case[0] for case in CASES])
def test_signed_biomodel_runs_through_the_ssa(model, substance_unit, t_end, method):
    with pytest.warns(UserWarning) if model != "BIOMD0000000310" else nullcontext():
        network = sbml_cme.read_sbml(MODELS / f"{model}.xml", substance_unit=substance_unit)
    assert any(r.id.endswith("_backward") for r in network.reactions)
    times = np.linspace(0.0, t_end, 6)
    n = 8
    result = sbml_cme.simulate_ssa(network, times, n_trajectories=n, seed=2026)
    assert result.method == method
    counts = result.states[:, :, :len(network.species)]
    assert np.all(counts >= 0) and np.all(counts == np.round(counts))
    assert result.n_events.mean() > 0
    # The work guard's estimate is the right order of magnitude (it drives refusals).
    estimate = expected_events(network, times)
    assert 0.1 < result.n_events.mean() / estimate < 10
