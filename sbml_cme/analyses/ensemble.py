"""Run blocks of independent trajectories locally or on a Dask cluster.

Every trajectory owns its random stream (see ``ssa.trajectory_streams``), so how the
ensemble is cut into blocks, and where each block runs, cannot change the numbers: a
seed gives the same ensemble on one core, on all cores, or on any number of Dask workers.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import OptionsError

#: Trajectories per Dask task (large enough to amortise the per-task overhead).
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
    shared_futures = [client.scatter(item, broadcast=True) for item in shared]
    futures = [client.submit(function, *shared_futures, *block, pure=False) for block in blocks]
    if progress:
        from tqdm.auto import tqdm
        for _ in tqdm(as_completed(futures), total=len(futures), desc=description,
                      unit="task"):
            pass
    return client.gather(futures)


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
        raise OptionsError(f"cannot reach the Dask scheduler at {address}: {error}") from None


def block_bounds(n_trajectories: int, block: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive blocks covering ``n_trajectories``."""
    return [(start, min(start + block, n_trajectories))
            for start in range(0, n_trajectories, block)]


def concatenate(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """Stack per-block results along the trajectory axis."""
    return tuple(np.concatenate(column) for column in zip(*parts))
