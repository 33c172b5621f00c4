"""Synthetic four-model markets shared by the sweep tests (and their subprocesses)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qt_backtest.indicators import ArbiterInputConfig, arbiter_inputs

# a small grid of five chunks of two combinations (chunk_size=2)
GRID_AXES = {
    "arbiter.arbiter_threshold": [0.55, 0.65, 0.75, 0.85, 0.95],
    "meta.consensus_threshold": [0.5, 0.9],
}


def synthetic_market(bars: int, seed: int):
    """Four models with persistent votes (some missing), bars and Arbiter inputs."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=bars, freq="h", tz="UTC")
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
    open_ = np.concatenate([[50.0], close[:-1]])
    ohlcv = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998,
            "close": close,
            "volume": rng.uniform(1, 100, bars),
        },
        index=index,
    )
    latent = rng.integers(-1, 2, bars)
    for i in range(1, bars):
        if rng.uniform() < 0.7:
            latent[i] = latent[i - 1]
    votes = pd.DataFrame(index=index)
    for model in ("xgb", "lgbm", "nhits", "patchtst"):
        action = np.where(rng.uniform(0, 1, bars) < 0.75, latent, rng.integers(-1, 2, bars))
        names = np.array(["SELL", "HOLD", "BUY"], dtype=object)[action + 1]
        names[rng.uniform(0, 1, bars) < 0.05] = None  # the model did not predict
        votes[f"{model}_action"] = names
        votes[f"{model}_confidence"] = np.round(rng.uniform(0.3, 0.98, bars), 2)
    inputs = arbiter_inputs(ohlcv, ArbiterInputConfig(macd_scale="percent"))
    return ohlcv, votes, inputs
