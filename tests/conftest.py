"""Shared fixtures: real market data from the checkout (``data/``, ``tests/data/``) and synthetic series."""

from __future__ import annotations

import os
from pathlib import Path

# Compiled kernels are cached inside the project; set before numba is first imported.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

from qt_backtest.data import load_ohlcv

# CI explores the same examples on every run, so that a result never depends on the draw;
# locally every run draws new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
# the bundled sample first (whole files), then the test fixtures (slices, see their PROVENANCE)
DATA_FOLDERS = (ROOT / "data", ROOT / "tests" / "data")


def data_file(name: str) -> Path:
    """The market data file ``name`` from the checkout; nothing outside it is read."""
    for folder in DATA_FOLDERS:
        path = folder / name
        if path.exists():
            return path
    raise FileNotFoundError(f"no market data file {name!r} in {', '.join(map(str, DATA_FOLDERS))}")


@pytest.fixture(scope="session")
def btc_1h() -> pd.DataFrame:
    return load_ohlcv(data_file("BTCUSDT-1h.csv.gz"))


@pytest.fixture(scope="session")
def eth_5m() -> pd.DataFrame:
    return load_ohlcv(data_file("ETHUSDT-5m.csv.gz"))


def random_walk_ohlcv(
    bars: int, seed: int, start_price: float = 100.0, volatility: float = 0.002
) -> dict[str, np.ndarray]:
    """A geometric random walk with consistent OHLCV bars (log-step sd ``volatility``)."""
    rng = np.random.default_rng(seed)
    close = start_price * np.exp(np.cumsum(rng.normal(0.0, volatility, bars)))
    open_ = np.concatenate([[start_price], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.001, bars)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread * rng.uniform(0, 1, bars)
    volume = rng.lognormal(3.0, 1.0, bars)
    volume[rng.uniform(0, 1, bars) < 0.001] = 0.0
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


@pytest.fixture(scope="session")
def random_walk_1m() -> dict[str, np.ndarray]:
    return random_walk_ohlcv(1_000_000, seed=7)
