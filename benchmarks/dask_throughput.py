"""Dask scale-out (issue 6): ensemble throughput on a local Dask cluster versus local
threads, and the cost of a Dask task. Prints numbers and ratios; not a timed test.

1. Throughput (trajectories per second, best of ``--repeats``) of
   - the SSA on the repressilator (BIOMD0000000012, t = 0..200, 51 points),
   - the CLE on birth-death with mean 1000 (default dt) and on the repressilator (dt=0.01),
   with local numba threads (all cores, and one thread) and with a ``LocalCluster`` of
   2 worker processes x 1 thread. Both sides get the same seed and must give the same
   numbers (checked). Workers are warmed up first (kernels loaded from numba's cache).
2. Per-task overhead: ``--tasks`` tiny tasks (a 4-row block returning at once) through
   ``ensemble.map_blocks`` (scatter of the shared arguments, submit, gather).
3. Time per block against block size: the same SSA ensemble cut into blocks of 1 to
   1024 trajectories (``DASK_BLOCK`` is 256).

Usage: /work/venv/bin/python benchmarks/dask_throughput.py [--scale S] [--repeats R]
(``--scale`` multiplies the ensemble sizes.)
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
import warnings

import numpy as np

import sbml_cme
from sbml_cme.analyses import simulate_cle, simulate_ssa
from sbml_cme.analyses.ensemble import block_bounds, map_blocks
from sbml_cme.analyses.ssa import METHODS, _ssa_task, trajectory_streams, whole_initial_counts
from sbml_cme.kinetics import compile_network

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import make_sbml  # noqa: E402


def tiny_task(shared: np.ndarray, block: np.ndarray) -> np.ndarray:
    """A task that does (almost) nothing: the Dask round trip alone."""
    return block + shared[0]


def best_time(run, repeats: int):
    """(fastest wall time in seconds, result of that run)."""
    best, kept = np.inf, None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        elapsed = time.perf_counter() - started
        if elapsed < best:
            best, kept = elapsed, result
    return best, kept


def throughput(label: str, simulate, n: int, client, repeats: int) -> None:
    threads, local = best_time(lambda: simulate(n_trajectories=n), repeats)
    one_thread, _ = best_time(lambda: simulate(n_trajectories=n, n_jobs=1), repeats)
    dask, remote = best_time(lambda: simulate(n_trajectories=n, client=client), repeats)
    same = np.array_equal(local.states, remote.states)
    print(f"{label:<38} n={n:>6}  threads {n / threads:9.1f}/s  1 thread "
          f"{n / one_thread:9.1f}/s  dask {n / dask:9.1f}/s  dask/threads "
          f"{threads / dask:5.2f}  identical {same}")


def task_overhead(client, n_tasks: int, repeats: int) -> None:
    shared = (np.ones(4),)
    blocks = [(np.zeros(4),) for _ in range(n_tasks)]
    elapsed, _ = best_time(lambda: map_blocks(tiny_task, shared, blocks, client=client),
                           repeats)
    local, _ = best_time(lambda: map_blocks(tiny_task, shared, blocks), repeats)
    print(f"per-task overhead: {n_tasks} tiny tasks in {elapsed:.3f} s = "
          f"{1e3 * elapsed / n_tasks:.2f} ms per task on 2 workers "
          f"(local call {1e6 * local / n_tasks:.1f} us)")


def block_sizes(network, times, client, n: int, repeats: int) -> None:
    compiled = compile_network(network)
    shared = (compiled, whole_initial_counts(network), times, METHODS["direct"])
    streams = trajectory_streams(3, n)
    print(f"SSA repressilator, {n} trajectories on 2 workers, by block size:")
    for block in (1, 4, 16, 64, 256, 1024):
        bounds = block_bounds(n, block)
        elapsed, _ = best_time(lambda: map_blocks(
            _ssa_task, shared, [(streams[a:b],) for a, b in bounds], client=client), repeats)
        print(f"  block {block:>5}: {len(bounds):>5} tasks, {elapsed:7.3f} s, "
              f"{1e3 * elapsed / len(bounds):8.2f} ms per block, {n / elapsed:8.1f} "
              "trajectories/s")


def main() -> None:
    import dask
    import distributed

    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=400)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    scale = lambda n: max(1, int(n * args.scale))  # noqa: E731
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")

    repressilator = sbml_cme.read_sbml(ROOT / "models" / "biomodels" / "BIOMD0000000012.xml")
    birth_death = sbml_cme.read_sbml_string(make_sbml(
        {"X": 1000}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d * X")],
        parameters={"k": 1000.0, "d": 1.0}))
    long_times = np.linspace(0.0, 200.0, 51)
    short_times = np.linspace(0.0, 10.0, 11)
    cases = [
        ("SSA repressilator (t 0..200)", lambda **kw: simulate_ssa(
            repressilator, long_times, seed=1, **kw), scale(1024)),
        ("CLE birth-death 1e3 (euler, t 0..10)", lambda **kw: simulate_cle(
            birth_death, short_times, seed=1, **kw), scale(8192)),
        ("CLE repressilator (euler, dt=0.01)", lambda **kw: simulate_cle(
            repressilator, long_times, seed=1, dt=0.01, **kw), scale(512)),
    ]
    with dask.config.set({"distributed.comm.timeouts.connect": "120s"}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None, timeout="120s") as cluster, \
            distributed.Client(cluster) as client:
        for _, simulate, _ in cases:  # warm-up: compile or load kernels everywhere
            simulate(n_trajectories=8)
            simulate(n_trajectories=8, client=client)
        for label, simulate, n in cases:
            throughput(label, simulate, n, client, args.repeats)
        task_overhead(client, args.tasks, args.repeats)
        block_sizes(repressilator, long_times, client, scale(1024), args.repeats)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
