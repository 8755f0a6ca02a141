"""Run blocks of independent trajectories locally or on a Dask cluster.

Every trajectory owns its random stream (see ``ssa.trajectory_streams``), so how the
ensemble is cut into blocks, and where each block runs, cannot change the numbers: a
seed gives the same ensemble on one core, on all cores, or on any number of Dask workers.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import OptionsError

#: Most trajectories per Dask task (large enough to amortise the per-task overhead).
DASK_BLOCK = 256


def map_blocks(function: Callable, shared: tuple, blocks: Sequence[tuple], *, client=None,
               progress: bool = False, description: str = "ensemble") -> list:
    """``[function(*shared, *block) for block in blocks]``, in block order.

    Parameters
    ----------
    function : callable
        A module-level (picklable) function.
    shared : tuple
        Arguments common to every block (sent to the cluster once).
    blocks : sequence of tuples
        Per-block arguments.
    client : dask.distributed.Client, optional
        Run the blocks as tasks on this cluster; locally when omitted.
    """
    if client is None:
        iterator = blocks
        if progress:
            from tqdm.auto import tqdm
            iterator = tqdm(blocks, desc=description, unit="block")
        return [function(*shared, *block) for block in iterator]
    try:
        from distributed import as_completed
    except ImportError:  # pragma: no cover - distributed is a dependency
        raise OptionsError("client= needs dask.distributed (pip install 'dask[distributed]')")
    # hash=False: unique keys. With content-hashed keys, a second call sharing an object
    # with the previous one (the same compiled network) reuses its key, and the previous
    # call's release can reach the scheduler after the new scatter: the new tasks then
    # fail with "lost dependencies".
    shared_futures = [client.scatter(item, broadcast=True, hash=False) for item in shared]
    futures = [client.submit(function, *shared_futures, *block, pure=False) for block in blocks]
    if progress:
        from tqdm.auto import tqdm
        for _ in tqdm(as_completed(futures), total=len(futures), desc=description,
                      unit="task"):
            pass
    return client.gather(futures)


def task_may_use_parallel_kernel() -> bool:
    """Prepare a Dask task's thread: one numba thread; True when the ``prange`` kernel may
    run here, False when the task must use the serial kernel.

    The ``prange`` kernels run on one thread as fast as their serial twins or faster (the
    CLE's twice as fast: numba compiles a ``prange`` body differently), but launching them
    from several threads of one process at once is only safe with a thread-safe numba
    threading layer (TBB or OpenMP); ``workqueue``, numba's fallback, aborts the process.
    """
    import numba

    numba.set_num_threads(1)  # thread-local: a worker thread is the unit of parallelism
    return numba.threading_layer() in ("tbb", "omp")


def thread_count(n_jobs: int | None) -> int:
    """Threads for a local ensemble: ``n_jobs`` (at most the machine's), all by default."""
    import numba

    available = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None:
        return available
    if not (isinstance(n_jobs, (int, np.integer)) and n_jobs >= 1):
        raise OptionsError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    return min(int(n_jobs), available)


def connect(address: str | None):
    """A Dask client for ``address`` (``tcp://host:port``), or None."""
    if not address:
        return None
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover
        raise OptionsError("--dask-scheduler needs dask.distributed") from None
    try:
        return Client(address, timeout="20s")
    except (OSError, TimeoutError) as error:
        raise OptionsError(f"cannot reach the Dask scheduler at {address}: {error}. Check the "
                           "address (tcp://host:8786) and that `dask scheduler` runs there, "
                           "or drop --dask-scheduler to run locally") from None


@contextmanager
def dask_client(address: str | None):
    """``with dask_client(address) as client``: :func:`connect`, closed on exit (so no
    client outlives the command that needed it)."""
    client = connect(address)
    try:
        yield client
    finally:
        if client is not None:
            client.close()


def block_bounds(n_trajectories: int, block: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive blocks covering ``n_trajectories``."""
    return [(start, min(start + block, n_trajectories))
            for start in range(0, n_trajectories, block)]


def dask_blocks(n_trajectories: int, client) -> list[tuple[int, int]]:
    """(start, stop) of the Dask tasks of an ensemble: at most ``DASK_BLOCK`` trajectories
    each, and at least two tasks per worker thread when the ensemble allows, so a small
    ensemble still spreads over the cluster. (Where the cuts fall does not change the
    numbers: every trajectory has its own stream.)"""
    threads = max(sum(client.nthreads().values()), 1)
    size = min(DASK_BLOCK, max(1, -(-n_trajectories // (2 * threads))))
    return block_bounds(n_trajectories, size)


@contextmanager
def numba_threads(threads: int):
    """``with numba_threads(n)``: numba's parallel kernels use ``n`` threads inside the
    block, and the previous setting is restored after it."""
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def local_blocks(n_trajectories: int, block: int, progress: bool = False,
                 description: str = "ensemble"):
    """:func:`block_bounds`, wrapped in a tqdm progress bar when ``progress``."""
    bounds = block_bounds(n_trajectories, block)
    if progress:
        from tqdm.auto import tqdm
        return tqdm(bounds, desc=description, unit="block")
    return bounds


def run_until_interrupted(bounds: Iterable[tuple[int, int]],
                          run: Callable[[int, int], None], n_trajectories: int) -> int:
    """Call ``run(start, stop)`` for each block in order; returns the trajectories done.

    A Ctrl-C (or SIGTERM, which the CLI turns into one) between blocks keeps the blocks
    that finished: the count returned is their end, and a warning says the ensemble is
    partial. Every trajectory owns its stream, so they are the first trajectories of
    the full run, bit for bit. Interrupted before any block finished, it re-raises.
    """
    done = 0
    try:
        for start, stop in bounds:
            run(start, stop)
            done = stop
    except KeyboardInterrupt:
        if done == 0:
            raise
        warnings.warn(f"interrupted: the result holds the {done} of {n_trajectories} "
                      "trajectories that finished (run_info['partial'] is True)",
                      stacklevel=3)
    return done


def concatenate(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """Stack per-block results along the trajectory axis."""
    return tuple(np.concatenate(column) for column in zip(*parts))
