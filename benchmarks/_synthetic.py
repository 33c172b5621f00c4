"""Synthetic bars, model votes and Arbiter inputs for benchmarks at sizes the sample lacks.

Votes follow a persistent latent action (it changes on about a quarter of the bars, like the
sample models' votes: 26 % for xgb, 26 % for lgbm on BTCUSDT-1h) that each model repeats with
probability 0.8, and the Arbiter's inputs are AR(1) processes around their neutral values, so
decisions persist the way real ones do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

MODELS = ("xgb", "lgbm", "nhits", "patchtst")
NAMES = np.array(["SELL", "HOLD", "BUY"], dtype=object)


@njit(cache=True)
def _persist(draws: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = draws.copy()
    for i in range(1, out.shape[0]):
        if keep[i]:
            out[i] = out[i - 1]
    return out


@njit(cache=True)
def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    out = np.empty_like(shocks)
    level = 0.0
    for i in range(shocks.shape[0]):
        level = phi * level + shocks[i]
        out[i] = level
    return out


def market(bars: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(ohlcv, votes, indicators)`` of ``bars`` hourly bars from 2020-01-01 UTC."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2020-01-01", periods=bars, freq="h", tz="UTC")
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.006, bars)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = 1.0 + np.abs(rng.normal(0.0, 0.002, bars))
    ohlcv = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * spread,
            "low": np.minimum(open_, close) / spread,
            "close": close,
            "volume": rng.uniform(10.0, 1000.0, bars),
        },
        index=index,
    )
    latent = _persist(rng.choice(np.array([-1, 0, 0, 1]), size=bars), rng.uniform(0, 1, bars) < 0.8)
    votes = pd.DataFrame(index=index)
    for model in MODELS:
        own = np.where(rng.uniform(0, 1, bars) < 0.8, latent, rng.integers(-1, 2, bars))
        votes[f"{model}_action"] = pd.Categorical(NAMES[own + 1], categories=list(NAMES))
        votes[f"{model}_confidence"] = rng.uniform(0.4, 0.95, bars)
    scale = np.array([12.0, 0.03, 0.03, 0.25, 0.5, 0.01])
    center = np.array([50.0, 0.0, 0.0, 0.5, 1.0, 0.0])
    columns = ["rsi", "macd", "macd_signal", "bb_position", "volume_trend", "momentum"]
    shocks = rng.standard_normal((bars, 6)) * np.sqrt(1 - 0.9**2)
    paths = np.column_stack([_ar1(shocks[:, k], 0.9) for k in range(6)])
    indicators = pd.DataFrame(center + scale * paths, index=index, columns=columns)
    return ohlcv, votes, indicators
