"""Prediction cache: a walk-forward run on BTCUSDT-1h, then the same run from the cache.

Run: ``python benchmarks/bench_cache.py [--model lgbm]``. Prints both wall times, their ratio
and whether the two results are bit-identical. Uses a fresh temporary cache folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pandas as pd

from qt_backtest.data import load_sample
from qt_backtest.signals import WalkForward
from qt_backtest.signals.cache import cached_walk_forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lgbm", choices=["xgb", "lgbm"])
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()
    bars = load_sample("BTCUSDT-1h")
    splitter = WalkForward(step=720, train_window=8760, min_train=8760, purge=5, horizon=5)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        first = cached_walk_forward(bars, args.model, splitter, folder, n_jobs=args.n_jobs)
        trained = time.perf_counter() - start
        start = time.perf_counter()
        second = cached_walk_forward(bars, args.model, splitter, folder, n_jobs=args.n_jobs)
        loaded = time.perf_counter() - start
    identical = first.equals(second) and all(
        pd.Series(first[c]).equals(pd.Series(second[c])) for c in first.columns
    )
    print(
        f"{args.model} on BTCUSDT-1h ({len(bars):,} bars): first run {trained:.1f} s, "
        f"cached {loaded * 1e3:.0f} ms, {trained / loaded:,.0f}x faster; "
        f"bit-identical: {identical}"
    )


if __name__ == "__main__":
    main()
