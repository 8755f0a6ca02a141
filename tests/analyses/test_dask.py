"""Scale-out on Dask: the same seed gives the same ensemble on 1 or 2 workers; batch runs
one task per model with its time limit and resumable status."""

import json
from pathlib import Path

import numpy as np
import pytest

from sbml_cme.analyses import simulate_cle, simulate_ssa
from sbml_cme.reports.batch import run_batch, summary_line

distributed = pytest.importorskip("distributed")

TIMES = np.linspace(0, 4, 9)


@pytest.fixture(scope="module")
def network(birth_death_network):
    return birth_death_network


@pytest.fixture(scope="module")
def local_runs(network):
    """Reference ensembles on local threads (600 trajectories: three Dask blocks)."""
    return {"ssa": simulate_ssa(network, TIMES, n_trajectories=600, seed=9),
            "euler": simulate_cle(network, TIMES, n_trajectories=600, seed=9, dt=0.01),
            "weak2": simulate_cle(network, TIMES, n_trajectories=600, seed=9, dt=0.05,
                                  method="weak2")}


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def client(request):
    import dask

    # Worker processes import the package and load the cached numba kernels: allow for a
    # slow start on a busy 2-core machine.
    with dask.config.set({"distributed.comm.timeouts.connect": "120s",
                          "distributed.deploy.lost-worker-timeout": "120s"}), \
            distributed.LocalCluster(n_workers=request.param, threads_per_worker=1,
                                     processes=True, dashboard_address=None,
                                     timeout="120s") as cluster, \
            distributed.Client(cluster, timeout="120s") as client:
        client.wait_for_workers(request.param, timeout=120)
        yield client


def test_ssa_same_seed_same_ensemble_on_any_cluster(network, local_runs, client):
    remote = simulate_ssa(network, TIMES, n_trajectories=600, seed=9, client=client)
    assert np.array_equal(local_runs["ssa"].states, remote.states)
    assert np.array_equal(local_runs["ssa"].n_events, remote.n_events)
    assert remote.run_info["dask"] and not local_runs["ssa"].run_info["dask"]


@pytest.mark.parametrize("method, dt", [("euler", 0.01), ("weak2", 0.05)])
def test_cle_same_seed_same_ensemble_on_any_cluster(network, local_runs, client, method, dt):
    remote = simulate_cle(network, TIMES, n_trajectories=600, seed=9, dt=dt, method=method,
                          client=client, progress=True)
    local = local_runs[method]
    assert np.array_equal(local.states, remote.states)
    assert np.array_equal(local.n_events, remote.n_events)
    assert remote.run_info["clipped_steps"] == local.run_info["clipped_steps"]
    assert remote.run_info["dask"]
    other_seed = simulate_cle(network, TIMES, n_trajectories=600, seed=10, dt=dt,
                              method=method, client=client)
    assert not np.array_equal(other_seed.states, remote.states)


def test_batch_one_task_per_model_with_limits_and_resume(tmp_path, client, birth_death_sbml):
    from conftest import make_sbml

    if len(client.scheduler_info()["workers"]) < 2:
        pytest.skip("the batch runs once, on the 2-worker cluster")
    models = tmp_path / "models"
    models.mkdir()
    (models / "good.xml").write_text(birth_death_sbml)
    (models / "bad.xml").write_text(make_sbml({"X": 1}, [("r", {"X": 1}, {}, "X")]).replace(
        'fast="false"', 'fast="true"'))
    out = tmp_path / "out"
    options = dict(t_end=2, points=3, n_trajectories=20, seed=1, progress=False)
    # A limit no Python process can meet: the task stops its child and reports a timeout,
    # which is not marked finished.
    slow = run_batch([models / "good.xml"], out, time_limit=0.05, client=client, **options)
    assert list(slow.status) == ["timeout"]
    assert not (out / "good" / "status.json").exists()
    table = run_batch([models], out, client=client, **options)
    status = table.set_index(table.model.map(lambda m: Path(m).stem))["status"]
    assert status["good"] == "ok" and status["bad"] == "unsupported"
    assert list(table.model) == [str(models / "bad.xml"), str(models / "good.xml")]
    assert summary_line(table) == "2 models: 1 ok, 1 unsupported, 0 failed, 0 timeout"
    assert (out / "good" / "report.html").exists()
    marker = json.loads((out / "good" / "status.json").read_text())
    marker["reason"] = "from the first run"
    (out / "good" / "status.json").write_text(json.dumps(marker))
    rerun = run_batch([models], out, client=client, **options)
    assert "from the first run" in set(rerun.reason)  # finished models are skipped


def test_cli_cle_on_a_scheduler_address(tmp_path, network, client, birth_death_sbml):
    from sbml_cme.cli import main

    if len(client.scheduler_info()["workers"]) < 2:
        pytest.skip("the command line runs once, on the 2-worker cluster")
    import pandas as pd

    model = tmp_path / "birth_death.xml"
    model.write_text(birth_death_sbml)
    arguments = ["cle", str(model), "--t-end", "4", "--points", "9", "--trajectories", "300",
                 "--seed", "4", "--dt", "0.05", "--no-progress"]
    assert main(arguments + ["--out", str(tmp_path / "local.csv")]) == 0
    assert main(arguments + ["--out", str(tmp_path / "dask.csv"),
                             "--dask-scheduler", client.scheduler.address]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "local.csv"),
                                  pd.read_csv(tmp_path / "dask.csv"), check_exact=True)


def test_cli_analyze_on_a_scheduler_address(tmp_path, client, birth_death_sbml):
    """`analyze --dask-scheduler` gives the same SSA statistics as the local run."""
    from sbml_cme.cli import main

    if len(client.scheduler_info()["workers"]) < 2:
        pytest.skip("the command line runs once, on the 2-worker cluster")
    import pandas as pd

    model = tmp_path / "birth_death.xml"
    model.write_text(birth_death_sbml)
    arguments = ["analyze", str(model), "--t-end", "3", "--points", "4", "--trajectories",
                 "300", "--seed", "5", "--no-progress"]
    assert main(arguments + ["--out", str(tmp_path / "local")]) == 0
    assert main(arguments + ["--out", str(tmp_path / "dask"),
                             "--dask-scheduler", client.scheduler.address]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "local" / "ssa_stats.csv"),
                                  pd.read_csv(tmp_path / "dask" / "ssa_stats.csv"),
                                  check_exact=True)


class _FakeClient:
    def __init__(self, threads):
        self.threads = threads

    def nthreads(self):
        return {f"tcp://worker-{k}": 1 for k in range(self.threads)}


@pytest.mark.parametrize("n, threads, sizes", [
    (600, 1, [256, 256, 88]),          # capped at DASK_BLOCK
    (600, 2, [150] * 4),               # two tasks per worker thread
    (3, 4, [1, 1, 1]),                 # a block holds at least one trajectory
    (10_000, 8, [256] * 39 + [16])])
def test_dask_blocks_cover_the_ensemble_and_spread_over_workers(n, threads, sizes):
    from sbml_cme.analyses.ensemble import dask_blocks

    bounds = dask_blocks(n, _FakeClient(threads))
    assert [stop - start for start, stop in bounds] == sizes
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


def test_serial_task_kernels_equal_the_parallel_ones(network, local_runs):
    """Tasks on a worker without a thread-safe numba threading layer use the serial
    kernels: they must give the same numbers."""
    from sbml_cme.analyses import cle, ssa
    from sbml_cme.analyses.ssa import trajectory_streams, whole_initial_counts
    from sbml_cme.kinetics import compile_network

    compiled = compile_network(network)
    streams = trajectory_streams(9, 600)[100:170]  # trajectories 100..169 of local_runs
    for parallel in (True, False):
        out, report = np.zeros((70, len(TIMES), 1)), np.zeros((70, 4))
        ssa.run_block(compiled, whole_initial_counts(network), TIMES, streams, 0, out, report,
                      parallel=parallel)
        assert np.array_equal(out, local_runs["ssa"].states[100:170])
        pairs = cle.levy_pairs(compiled.data.dependents_ptr, compiled.data.dependents)
        out, report = np.zeros((70, len(TIMES), 1)), np.zeros((70, 5))
        cle.run_block(compiled, pairs, network.initial_counts, TIMES, 0.05, 1, streams, out,
                      report, parallel=parallel)
        assert np.array_equal(out, local_runs["weak2"].states[100:170])
