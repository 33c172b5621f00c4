"""Which thresholds? A sweep of the Arbiter gate and Meta's thresholds on BTCUSDT-1h and
ETHUSDT-1h, with the overfitting controls.

Uses the bundled out-of-sample votes (xgb, lgbm, nhits and patchtst), next-bar-open execution
and 0.04 % fees a side. The grid: Arbiter threshold x Meta consensus threshold x Meta low-
confidence threshold x fidelity, in ``meta`` and ``meta_arbiter`` modes. Prints the best
combinations, how the ``meta_arbiter`` Sharpe ratio moves with the Arbiter threshold, and per
symbol the probability of backtest overfitting (CSCV over 16 time blocks), the deflated Sharpe
ratio of the best combination, the plateau choice and walk-forward selection.

Run: ``python research/threshold_sweep.py [--macd-scale price|percent] [--cache DIR]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from qt_backtest.data import load_sample, per_symbol, sample_dir
from qt_backtest.indicators import ArbiterInputConfig, arbiter_inputs
from qt_backtest.signals import read_predictions
from qt_backtest.sweep import Grid, rank_rows, sweep

SYMBOLS = ("BTCUSDT", "ETHUSDT")
GRID = {
    "arbiter.arbiter_threshold": [0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90],
    "meta.consensus_threshold": [0.50, 0.75, 1.00],
    "meta.low_confidence_threshold": [0.45, 0.50, 0.55, 0.60, 0.65],
    "fidelity": ["production", "intended"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--macd-scale", choices=("price", "percent"), default="price")
    parser.add_argument("--cache", default=None, help="directory for resumable chunks")
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    started = time.perf_counter()
    votes = read_predictions(sample_dir() / "sample-predictions.parquet")
    bars = {s: load_sample(f"{s}-1h") for s in SYMBOLS}
    by_symbol = {s: per_symbol(votes)[s].reindex(bars[s].index) for s in SYMBOLS}
    inputs = arbiter_inputs(bars, ArbiterInputConfig(macd_scale=args.macd_scale))
    grid = Grid.product(GRID)
    result = sweep(
        bars,
        by_symbol,
        inputs,
        grid,
        modes=["meta", "meta_arbiter"],
        cache_dir=args.cache,
        progress=True,
    )
    frame = result.frame
    print(
        f"{len(grid) * 2:,} combinations x {len(SYMBOLS)} symbols in "
        f"{time.perf_counter() - started:.1f} s (MACD in {args.macd_scale} units)\n"
    )
    columns = [
        *GRID,
        "mode",
        "total_return",
        "sharpe",
        "max_drawdown",
        "trades",
        "escalation_rate",
        "override_rate_when_called",
    ]
    for symbol in SYMBOLS:
        rows = frame[frame["symbol"] == symbol]
        print(f"{symbol}: best 8 by Sharpe")
        print(rank_rows(rows, "sharpe").head(8)[columns].round(3).to_string(index=False))
        arbiter = rows[rows["mode"] == "meta_arbiter"]
        meta = rows[rows["mode"] == "meta"]
        print(
            f"\n{symbol}: meta_arbiter Sharpe by Arbiter threshold (median over the other "
            f"parameters); meta mode median {meta['sharpe'].median():.3f}"
        )
        print(
            arbiter.groupby("arbiter.arbiter_threshold")["sharpe"]
            .agg(["median", "min", "max"])
            .round(3)
            .to_string()
        )
        print()
    reports = result.overfitting("sharpe", train_blocks=4)
    summary = pd.DataFrame([report.summary() for report in reports.values()]).set_index("symbol")
    print("overfitting controls (Sharpe; walk-forward: 4 blocks in, 1 out; per-bar Sharpe):")
    print(summary.T.to_string())
    for symbol, report in reports.items():
        steps = report.walk_forward.steps
        print(f"\n{symbol}: walk-forward choices")
        chosen = frame[frame["symbol"] == symbol].iloc[steps["chosen"].to_numpy()]
        table = steps[["test_block", "in_sample", "out_of_sample"]].copy()
        table["choice"] = [
            ", ".join(f"{key.split('.')[-1]}={row[key]}" for key in [*GRID, "mode"])
            for _, row in chosen.iterrows()
        ]
        print(table.round(4).to_string(index=False))
    per_bar = np.sqrt(8760)
    print(f"\n(per-bar Sharpe x {per_bar:.1f} = annualised)")
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
