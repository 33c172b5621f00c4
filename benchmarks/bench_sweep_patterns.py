"""Sweep compile and run time per layer pattern.

Run: ``NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/bench_sweep_patterns.py`` (a fresh cache
directory, so that the first call of each pattern includes its compilation).

The sweep kernel is compiled once per pattern of recomputed layers (votes, Meta, the Arbiter's
score), which the swept parameters decide. Four grids of 1,000 combinations on 100,000 synthetic
hourly bars cover four patterns; for each the script prints the first call on 2,000 bars
(compilation, when the pattern is new) and the best of three full runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import market

from qt_backtest.backtest import PositionRules
from qt_backtest.sweep import Grid, sweep

SIDE = 10
GRIDS = {
    "meta + gate": {
        "arbiter.arbiter_threshold": np.linspace(0.60, 0.85, SIDE),
        "meta.consensus_threshold": np.linspace(0.50, 1.00, SIDE),
        "meta.low_confidence_threshold": np.linspace(0.40, 0.70, SIDE),
    },
    "gate only": {"arbiter.arbiter_threshold": np.linspace(0.5, 0.95, SIDE**3)},
    "score": {
        "arbiter.rsi_oversold": np.linspace(20, 40, SIDE),
        "arbiter.rsi_overbought": np.linspace(60, 80, SIDE),
        "arbiter.arbiter_threshold": np.linspace(0.60, 0.85, SIDE),
    },
    "votes": {
        "ensemble.confidence_cap": np.linspace(0.8, 1.0, SIDE),
        "meta.consensus_threshold": np.linspace(0.5, 1.0, SIDE),
        "arbiter.arbiter_threshold": np.linspace(0.60, 0.85, SIDE),
    },
}


def main() -> None:
    bars, votes, inputs = market(100_000, seed=1)
    rules = PositionRules(long_only=True)
    for name, axes in GRIDS.items():
        grid = Grid.product({key: np.round(values, 6) for key, values in axes.items()})
        start = time.perf_counter()
        small = slice(0, 2000)
        sweep(bars.iloc[small], votes.iloc[small], inputs.iloc[small], grid, rules=rules)
        first = time.perf_counter() - start
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            sweep(bars, votes, inputs, grid, rules=rules, chunk_size=len(grid))
            best = min(best, time.perf_counter() - start)
        print(f"{name:12s} first call {first:7.1f} s   best of 3 full runs {best:6.3f} s")


if __name__ == "__main__":
    main()
