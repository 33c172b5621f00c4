"""The installed stack works under the test suite's warnings-as-errors policy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def test_numba_cache_is_project_local():
    cache = Path(os.environ["NUMBA_CACHE_DIR"]).resolve()
    assert cache.name == ".numba_cache"
    assert cache.parent == Path(__file__).resolve().parents[1]


def test_vectorbt_imports_and_simulates_without_breaking_on_numba_warnings():
    import vectorbt as vbt

    close = np.array([10.0, 11.0, 12.0, 11.0])
    entries = np.array([True, False, False, False])
    exits = np.array([False, False, True, False])
    portfolio = vbt.Portfolio.from_signals(close, entries, exits, init_cash=100.0, fees=0.0)
    assert portfolio.final_value() == 100.0 * 12.0 / 10.0
