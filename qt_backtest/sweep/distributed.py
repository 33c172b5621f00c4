"""Running sweep chunks on a Dask ``distributed`` cluster (the optional ``dask`` extra).

Each task is one chunk of combinations on one symbol: the same :func:`run_chunk` call the local
executor makes, so results are identical. The symbol's arrays are scattered to the workers once.
Workers must be able to import ``qt_backtest`` (installed in their environment).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from qt_backtest.sweep.run import run_chunk


def run_on_dask(
    todo: list[tuple[str, int, int, int]],
    prepared: dict[str, Any],
    rows: Callable[[str, int, int], dict],
    flags: tuple[bool, bool, bool],
    shared: tuple,
    edges: dict[str, tuple[Any, Any]],
    address: str | None,
    finish: Callable[[str, int, tuple], None],
    advance: Callable[[int], Any],
) -> None:
    """Submit every ``(symbol, chunk number, start, stop)`` task (``rows`` gives its
    combinations' arrays) and hand each result to ``finish`` as it completes (so that finished
    chunks are stored even if a later one fails). ``address`` is a scheduler address; None
    starts a local cluster for the duration."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "executor='dask' needs the dask extra: pip install 'qt-backtest[dask]'"
        ) from error
    if not todo:
        return
    cluster = None
    if address is None:
        cluster = LocalCluster(
            n_workers=max(1, min(len(todo), os.cpu_count() or 1)),
            threads_per_worker=1,
            dashboard_address=None,
        )
    client = Client(cluster if cluster is not None else address)
    try:
        scattered = {
            symbol: client.scatter(inputs, broadcast=True)
            for symbol, inputs in prepared.items()
            if any(task[0] == symbol for task in todo)
        }
        futures = {}
        for symbol, number, start, stop in todo:
            future = client.submit(
                run_chunk,
                scattered[symbol],
                rows(symbol, start, stop),
                flags,
                *shared,
                *edges[symbol],
                pure=False,
            )
            futures[future] = (symbol, number)
        for future in as_completed(futures):
            symbol, number = futures[future]
            finish(symbol, number, future.result())
            advance(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
