"""Does each layer add value? Ensemble vs Meta vs Meta+Arbiter on BTCUSDT-1h and ETHUSDT-1h.

Uses the bundled out-of-sample votes (xgb, lgbm, nhits, patchtst; production fidelity, live
thresholds, next-bar-open execution, 0.04 % fees a side). Prints the comparison table, the
rollout check, what the Arbiter's overrides were worth (by reason, Meta reason, vote pattern
and volatility regime) and which layer earned the PnL.

Run: ``python research/layer_value.py [--limit N]`` (N overrides per symbol for the
attribution; all by default).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from qt_backtest.backtest import (
    PositionRules,
    compare_modes,
    override_values,
    pnl_by_layer,
    rollout_check,
    value_by,
)
from qt_backtest.data import load_sample, per_symbol, sample_dir
from qt_backtest.indicators import arbiter_inputs
from qt_backtest.signals import read_predictions

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    started = time.perf_counter()
    votes = read_predictions(sample_dir() / "sample-predictions.parquet")
    bars = {s: load_sample(f"{s}-1h") for s in SYMBOLS}
    by_symbol = {s: per_symbol(votes)[s].reindex(bars[s].index) for s in SYMBOLS}
    rules = PositionRules()
    comparison = compare_modes(
        bars, {s: by_symbol[s] for s in SYMBOLS}, arbiter_inputs(bars), rules
    )
    columns = [
        "total_return",
        "cagr",
        "sharpe",
        "sortino",
        "max_drawdown",
        "calmar",
        "trades",
        "win_rate",
        "exposure",
        "fees_paid",
    ]
    print("comparison (annualised with 8,760 bars a year):")
    print(comparison.table[columns].round(3).to_string())
    print("\nrollout check (meta_arbiter):")
    print(rollout_check(comparison).round(3).to_string())
    for symbol in SYMBOLS:
        decisions = comparison.decisions[symbol, "meta_arbiter"]
        window = comparison.bars[symbol]  # the bars every run was scored on
        values = override_values(
            window,
            decisions,
            rules,
            votes=by_symbol[symbol].reindex(window.index),
            limit=args.limit,
            actual=comparison.results[symbol, "meta_arbiter"],
        )
        print(
            f"\n{symbol}: {len(values):,} overrides, total value {values['value'].sum():,.0f}, "
            f"added value in {float((values['value'] > 0).mean()):.1%} of them"
        )
        for column in ("arbiter_reason", "meta_reason", "vote_pattern", "volatility_regime"):
            print(value_by(values, column).head(8).round(1).to_string())
        result = comparison.results[symbol, "meta_arbiter"]
        print(pnl_by_layer(result, decisions).round(3).to_string())
    print(f"\ndone in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
