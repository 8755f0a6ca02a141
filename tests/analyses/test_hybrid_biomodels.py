"""Bundled BioModels that the SSA refuses (rate rules, non-integer stoichiometry) run
through simulate_hybrid; their ensemble mean tracks libroadrunner in model units.

Statistic per species and output time: Z = |mean - ode| / (sd_eff / sqrt(n)), pass when
|mean - ode| <= 4 sd_eff / sqrt(n) + 1e-4 max|ode| (the crosscheck's ODE-tolerance floor).
sd_eff is the sample sd, at least one molecule for a discrete species: a count whose mean
is below one molecule can be 0 in every trajectory, and a sample sd of 0 then is a
sampling artefact, not an error bar. Assignment-rule outputs (sums of species) are not
checked separately. Substance units and horizons are chosen so copy
numbers are large (near-deterministic) and each run stays a few seconds; see docs/hybrid.md.
BIOMD0000000007 runs since its Cdc2Phos law (kwee = Vw'(1 - Wee1) + Vw Wee1) falls back to
max(v, 0) / max(-v, 0): the term split had put -Vw' Wee1 G2K in the backward channel,
which fired without PG2.
"""

from pathlib import Path
import warnings

import numpy as np
import pytest

from sbml_cme.analyses import simulate_hybrid
from sbml_cme.io import read_sbml

pytest.importorskip("roadrunner")
from sbml_cme.crosscheck import tellurium_reference  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "models" / "biomodels"

#: id, read options, horizon, n_trajectories, simulate_hybrid options
CASES = [
    ("BIOMD0000000006", {}, 10.0, 4, {}),
    ("BIOMD0000000007", {"substance_unit": 1e3}, 10.0, 20, {}),
    ("BIOMD0000000252", {}, 10.0, 4, {}),
    ("BIOMD0000000317", {"substance_unit": 200.0}, 10.0, 100, {}),
    ("BIOMD0000000140", {"substance_unit": 1e4}, 10.0, 40, {}),
    ("BIOMD0000000039", {"substance_unit": 1e4}, 0.3, 10, {"partition": "auto"}),
]


def hybrid_vs_ode(model: str, read_options: dict, horizon: float, n: int, options: dict
                  ) -> tuple[float, object]:
    """Largest |mean - ode| / (4 se + floor) over species and times (pass: <= 1)."""
    path = MODELS / f"{model}.xml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = read_sbml(path, **read_options)
    times = np.linspace(0.0, horizon, 11)
    result = simulate_hybrid(network, times, n_trajectories=n, seed=1, **options)
    stats = result.stats("model")
    reference = tellurium_reference(path, times, network=result.network)
    net = result.network
    worst = 0.0
    # Species and rate-rule targets; assignment-rule outputs are functions of them.
    checked = set(net.species_ids) | set(net.rate_rule_targets)
    for column in [c for c in reference.columns[1:] if c in checked]:
        mean = stats[f"{column}-mean"].to_numpy()
        sd = stats[f"{column}-sd"].to_numpy()
        ode = reference[column].to_numpy()
        if column in net.species_index and not net.species[net.species_index[column]].continuous:
            sd = np.maximum(sd, 1.0 / net.species_scale(column, "model"))
        bound = 4.0 * sd / np.sqrt(n) + 1e-4 * np.max(np.abs(ode)) + 1e-300
        worst = max(worst, float(np.max(np.abs(mean - ode) / bound)))
    return worst, result


@pytest.mark.parametrize("model, read_options, horizon, n, options", CASES,
                         ids=[case[0] for case in CASES])
def test_mean_tracks_roadrunner(model, read_options, horizon, n, options):
    worst, result = hybrid_vs_ode(model, read_options, horizon, n, options)
    assert result.method == "hybrid"
    assert worst <= 1.0, f"{model}: |mean - ode| reached {worst:.2f} x (4 se + floor)"


def test_stiff_start_with_a_tiny_first_step_runs():
    """BIOMD0000000064 (mole units, every metabolite continuous, BPG from 0): the first
    steps are far below 1e-14; a no-progress guard that compared the step with 1e-14 t
    refused the whole run at t = 0 (benchmarks/hybrid_speed.py --teusink)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = read_sbml(MODELS / "BIOMD0000000064.xml")
    result = simulate_hybrid(network, np.linspace(0.0, 0.1, 3), n_trajectories=2, seed=1,
                             partition="auto", continuous=["BPG"])
    assert np.all(np.isfinite(result.states))
    assert result.run_info["ode_steps"] > 0
