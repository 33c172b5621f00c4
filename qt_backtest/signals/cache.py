"""Prediction cache: walk-forward votes stored as parquet, keyed by everything they depend on.

The key hashes the bars (index and OHLCV values), the feature configuration, the label
settings, the model slot and its parameters, the splitter, the seed and the package version.
A second run with the same inputs loads the votes instead of training again. Each file carries
its key and the SHA-256 of its content in a sidecar; a file whose content or key does not match
(corrupted, truncated, written by another version) is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest import __version__
from qt_backtest.atomic import atomic_write, atomic_write_text
from qt_backtest.signals.features import FeatureConfig, build_features
from qt_backtest.signals.labels import LABEL_HORIZON, LABEL_THRESHOLD, make_labels
from qt_backtest.signals.models import NEURAL_SLOTS, walk_forward_predict
from qt_backtest.signals.parallel import check_execution, threads_per_task
from qt_backtest.signals.walkforward import WalkForward

OHLCV = ("open", "high", "low", "close", "volume")


def data_fingerprint(bars: pd.DataFrame) -> str:
    """SHA-256 of the bars' timestamps and OHLCV values."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(bars.index.as_unit("ns").asi8).tobytes())
    for column in OHLCV:
        digest.update(np.ascontiguousarray(bars[column].to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


def cache_key(
    bars: pd.DataFrame,
    model: str,
    splitter: WalkForward,
    features: FeatureConfig,
    *,
    horizon: int,
    threshold: float,
    seed: int,
    params: dict[str, Any],
    warm_start: int = 0,
    threads: int | None = None,
) -> str:
    """The hex key of one walk-forward run.

    ``warm_start`` (I-WF-3) enters the key when it is not 0, and ``threads`` when given: the
    neural slots' votes differ with PyTorch's thread count in the last bits of float32
    (I-WF-2), the tree slots' never, so their runs leave it out.
    """
    description: dict[str, Any] = {
        "data": data_fingerprint(bars),
        "features": asdict(features),
        "labels": {"horizon": horizon, "threshold": threshold},
        "model": model,
        "params": params,
        "splitter": asdict(splitter),
        "seed": seed,
        "version": __version__,
    }
    if warm_start:
        description["warm_start"] = warm_start
    if threads is not None:
        description["threads"] = threads
    text = json.dumps(description, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _content_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load(path: Path, sidecar: Path, key: str) -> pd.DataFrame | None:
    """The cached votes, or None (with a warning) when the entry is unusable."""
    if not path.exists() or not sidecar.exists():
        return None
    try:
        meta = json.loads(sidecar.read_text())
        if meta.get("key") != key:
            raise ValueError("the entry was written for other inputs")
        if meta.get("sha256") != _content_hash(path):
            raise ValueError("the file's content does not match its checksum")
        return pd.read_parquet(path)
    except Exception as error:  # any unreadable entry is rebuilt, whatever broke it
        warnings.warn(f"rebuilding cache entry {path.name}: {error}", stacklevel=3)
        return None


def cached_walk_forward(
    bars: pd.DataFrame,
    model: str,
    splitter: WalkForward,
    cache_dir: str | Path,
    *,
    features: FeatureConfig | None = None,
    horizon: int = LABEL_HORIZON,
    threshold: float = LABEL_THRESHOLD,
    seed: int = 0,
    n_jobs: int | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    warm_start: int = 0,
    on_fold: Callable[[int, int], None] | None = None,
    **params: Any,
) -> pd.DataFrame:
    """Walk-forward votes of slot ``model`` on ``bars``, from the cache when possible.

    Returns what :func:`~qt_backtest.signals.walk_forward_predict` returns, which also
    explains ``n_jobs``, ``workers``, ``executor``, ``address`` and ``warm_start``; ``params``
    go to :func:`~qt_backtest.signals.make_model`. ``workers``, ``executor`` and ``address``
    do not enter the key (the votes are the same however the folds are spread); the thread
    count does for the neural slots only (see :func:`cache_key`). ``on_fold`` is called as
    folds finish (never on a cache hit).
    """
    check_execution(workers, executor, address, n_jobs)
    features = features or FeatureConfig()
    threads = None
    if model in NEURAL_SLOTS:
        threads = threads_per_task(n_jobs, workers, executor, address)
    key = cache_key(
        bars,
        model,
        splitter,
        features,
        horizon=horizon,
        threshold=threshold,
        seed=seed,
        params=params,
        warm_start=warm_start,
        threads=threads,
    )
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model}-{key[:24]}.parquet"
    sidecar = path.with_suffix(".json")
    cached = _load(path, sidecar, key)
    if cached is not None:
        return cached
    votes = walk_forward_predict(
        build_features(bars, features),
        make_labels(bars["close"], horizon, threshold),
        model,
        splitter,
        seed=seed,
        n_jobs=n_jobs if threads is None else threads,
        workers=workers,
        executor=executor,
        address=address,
        warm_start=warm_start,
        params=params,
        on_fold=on_fold,
    )
    # unique temporary names and renames: concurrent writers of one key each land a whole
    # file, and readers never see a half-written one
    atomic_write(path, votes.to_parquet)
    atomic_write_text(sidecar, json.dumps({"key": key, "sha256": _content_hash(path)}))
    return pd.read_parquet(path)
