"""Scale-out on Dask: the same seed gives the same ensemble on 1 or 2 workers."""

import numpy as np
import pytest

import sbml_cme
from sbml_cme.analyses import simulate_ssa

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def network():
    from conftest import make_sbml
    return sbml_cme.read_sbml_string(make_sbml(
        {"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
        parameters={"k": 10.0, "d": 1.0}))


@pytest.mark.parametrize("workers", [1, 2])
def test_same_seed_same_ensemble_on_any_cluster(network, workers):
    times = np.linspace(0, 4, 9)
    local_ssa = simulate_ssa(network, times, n_trajectories=600, seed=9)
    import dask

    # Worker processes import the package and load the cached numba kernels: allow for a
    # slow start on a busy 2-core machine.
    with dask.config.set({"distributed.comm.timeouts.connect": "120s",
                          "distributed.deploy.lost-worker-timeout": "120s"}), \
            distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                     dashboard_address=None, timeout="120s") as cluster, \
            distributed.Client(cluster, timeout="120s") as client:
        remote_ssa = simulate_ssa(network, times, n_trajectories=600, seed=9, client=client)
    assert np.array_equal(local_ssa.states, remote_ssa.states)
    assert np.array_equal(local_ssa.n_events, remote_ssa.n_events)
    assert remote_ssa.run_info["dask"]
