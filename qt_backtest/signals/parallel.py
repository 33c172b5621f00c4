"""Running independent walk-forward tasks at once: in threads, in processes, or on Dask.

A task is one call ``function(*arguments)``; the runners hand each result back, with the task's
key, as soon as it is done. Which runner suits a model is decided from evidence (see
:func:`~qt_backtest.signals.walk_forward_predict`): XGBoost, LightGBM and PyTorch release the
GIL while they train, so threads suit models that keep no process-wide state; the neural slots
set PyTorch's process-wide random generator and thread count, so they train concurrently only
in separate processes. Processes are started with ``spawn`` (never ``fork``: a forked copy of a
process whose OpenMP thread pools are running can deadlock), so whatever a process task carries
must pickle with the standard library; Dask pickles with ``cloudpickle``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import (
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)
from typing import Any

EXECUTORS = ("local", "dask")
DASK_HINT = "executor='dask' needs the dask extra: pip install 'qt-backtest[dask]'"

#: One unit of work: its key, the function and the arguments to call it with.
Task = tuple[Hashable, Callable[..., Any], tuple[Any, ...]]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _whole(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def check_execution(
    workers: int, executor: str, address: str | None, n_jobs: int | None
) -> tuple[int, str, str | None, int | None]:
    """The execution arguments, checked; a ValueError names the first one that is wrong."""
    _whole(workers, "workers (folds trained at once)", 1)
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be 'local' or 'dask', got {executor!r}")
    if address is not None:
        if executor != "dask":
            raise ValueError(
                f"address ({address!r}) names a Dask scheduler and needs executor='dask'"
            )
        if not isinstance(address, str) or not address.strip():
            raise ValueError(f"address must be a Dask scheduler address string, got {address!r}")
    if n_jobs is not None:
        _whole(n_jobs, "n_jobs (threads per model)", 1)
    return workers, executor, address, n_jobs


def threads_per_task(n_jobs: int | None, workers: int, executor: str, address: str | None) -> int:
    """Threads each model may use: ``n_jobs`` when given; otherwise this machine's cores shared
    between the ``workers`` tasks that run at once, so that tasks x threads fit the cores. On a
    remote Dask cluster (an ``address``) it is 1, since Dask runs one task per worker thread."""
    if n_jobs is not None:
        return n_jobs
    if executor == "dask" and address is not None:
        return 1
    return max(1, available_cores() // workers)


def require_pickle(value: Any, what: str, hint: str, *, dumps: Callable[[Any], bytes]) -> None:
    """Raise a ValueError naming ``what`` when ``value`` cannot be pickled by ``dumps``."""
    try:
        dumps(value)
    except Exception as error:  # any failure to serialise means the same thing here
        raise ValueError(
            f"{what} cannot be sent to another process ({type(error).__name__}: {error}); {hint}"
        ) from None


def run_tasks(
    tasks: Sequence[Task],
    *,
    workers: int,
    executor: str,
    address: str | None,
    processes: bool,
    shared: Sequence[Any] = (),
) -> Iterator[tuple[Hashable, Any]]:
    """Run ``tasks`` and yield ``(key, result)`` as each one finishes.

    With ``workers`` 1 and the local executor the tasks run one after another in this thread,
    in order. Otherwise the local executor runs ``workers`` at once, in threads, or in spawned
    processes when ``processes`` is true; ``executor="dask"`` submits them to the scheduler at
    ``address``, or to a local cluster of ``workers`` single-threaded processes that lives as
    long as the call. ``shared`` lists large arguments that several tasks receive: an argument
    that *is* one of them (the same object) is sent to a Dask cluster once, not once per task.
    Tasks must pickle (the standard library's pickle for processes, cloudpickle for Dask);
    the caller checks that, where it can say what to do instead.

    The first task that raises stops the run: its exception propagates and the tasks not yet
    started are cancelled.
    """
    if executor == "dask":
        yield from _run_on_dask(tasks, workers, address, shared)
        return
    if workers == 1:
        for key, function, arguments in tasks:
            yield key, function(*arguments)
        return
    pool: Executor
    if processes:
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks) or 1), mp_context=context)
    else:
        pool = ThreadPoolExecutor(max_workers=min(workers, len(tasks) or 1))
    with pool:
        futures: dict[Future, Hashable] = {
            pool.submit(function, *arguments): key for key, function, arguments in tasks
        }
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()


def _run_on_dask(
    tasks: Sequence[Task], workers: int, address: str | None, shared: Sequence[Any]
) -> Iterator[tuple[Hashable, Any]]:
    try:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(DASK_HINT) from error
    if not tasks:
        return
    cluster = None
    if address is None:
        cluster = LocalCluster(
            n_workers=min(workers, len(tasks)), threads_per_worker=1, dashboard_address=None
        )
    client = Client(cluster if cluster is not None else address)
    try:
        by_identity = {id(value): client.scatter(value) for value in shared}
        futures = {}
        for key, function, arguments in tasks:
            remote = tuple(by_identity.get(id(argument), argument) for argument in arguments)
            futures[client.submit(function, *remote, pure=False)] = key
        try:
            for future in dask_completed(futures):
                yield futures[future], future.result()
        finally:
            client.cancel(list(futures))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
