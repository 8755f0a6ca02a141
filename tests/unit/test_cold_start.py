"""`pending_compilation` (what `sbml-cme info` reports as a pending compile)."""

from pathlib import Path

import numpy as np

from sbml_cme import read_sbml, simulate_ssa
from sbml_cme.analyses.ssa import pending_compilation

BIRTH_DEATH = Path(__file__).resolve().parents[2] / "benchmarks" / "models" / "birth_death.xml"


def test_nothing_is_pending_after_a_simulation():
    network = read_sbml(BIRTH_DEATH)
    simulate_ssa(network, np.linspace(0, 1, 3), n_trajectories=2, seed=1)
    assert pending_compilation(network) == []
