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
from qt_backtest.signals.models import walk_forward_predict
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
) -> str:
    """The hex key of one walk-forward run."""
    description = {
        "data": data_fingerprint(bars),
        "features": asdict(features),
        "labels": {"horizon": horizon, "threshold": threshold},
        "model": model,
        "params": params,
        "splitter": asdict(splitter),
        "seed": seed,
        "version": __version__,
    }
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
    n_jobs: int = 1,
    on_fold: Callable[[int, int], None] | None = None,
    **params: Any,
) -> pd.DataFrame:
    """Walk-forward votes of slot ``model`` on ``bars``, from the cache when possible.

    Returns what :func:`~qt_backtest.signals.walk_forward_predict` returns; ``params`` go to
    :func:`~qt_backtest.signals.make_model`. ``n_jobs`` does not enter the key: the slots are
    deterministic whatever the thread count. ``on_fold`` is called after each trained fold
    (never on a cache hit).
    """
    from qt_backtest.signals.models import make_model

    features = features or FeatureConfig()
    key = cache_key(
        bars,
        model,
        splitter,
        features,
        horizon=horizon,
        threshold=threshold,
        seed=seed,
        params=params,
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
        lambda: make_model(model, seed, n_jobs, **params),
        splitter,
        on_fold=on_fold,
    )
    # unique temporary names and renames: concurrent writers of one key each land a whole
    # file, and readers never see a half-written one
    atomic_write(path, votes.to_parquet)
    atomic_write_text(sidecar, json.dumps({"key": key, "sha256": _content_hash(path)}))
    return pd.read_parquet(path)
