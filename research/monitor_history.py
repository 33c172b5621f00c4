"""When would the rollout monitor have decided, and what, had the Arbiter stage gone live at a
given date? (H-MON-6)

BTC and ETH at 1h with the bundled sample's votes; SOL and BNB at 1h with the tree slots (xgb,
lgbm) trained walk-forward as in ``study.py`` (cached in ``.cache/predictions``). The stage is the
full hierarchy with the live thresholds; the projection before the start comes from the bars
before it only. Writes one page per run to ``reports/``.

    python research/monitor_history.py --data DATA_FOLDER --start 2025-05-16
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from qt_backtest.backtest import PositionRules
from qt_backtest.data import load_ohlcv
from qt_backtest.hierarchy import HierarchyConfig
from qt_backtest.monitor.config import MonitorConfig
from qt_backtest.monitor.history import monitor_history
from qt_backtest.monitor.page import plan_sentence, sentences, write_monitor_page
from qt_backtest.monitor.rates import bands, rate_verdict

sys.path.insert(0, str(Path(__file__).parent))
from study import load_votes  # the study's votes: one definition

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of <SYMBOL>-1h.csv.gz")
    parser.add_argument("--start", default="2025-05-16", help="first day of the rollout (UTC)")
    parser.add_argument("--end", default=None, help="last day monitored")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args()
    bars, votes = {}, {}
    for symbol in SYMBOLS:
        frame = load_ohlcv(args.data / f"{symbol}-1h.csv.gz")
        bars[symbol] = frame
        votes[symbol] = load_votes(symbol, frame)
    config = MonitorConfig()
    for group in (("BTCUSDT", "ETHUSDT"), ("SOLUSDT", "BNBUSDT")):
        started = time.perf_counter()
        run = monitor_history(
            {s: bars[s] for s in group},
            {s: votes[s] for s in group},
            args.start,
            config=config,
            hierarchy=HierarchyConfig(),
            rules=PositionRules(),
            end=args.end,
        )
        print(
            f"\n{' and '.join(group)}: Arbiter stage from {args.start}, as if live "
            f"({time.perf_counter() - started:.0f} s)"
        )
        for symbol in run.monitor.expectations:
            print(f"  before the start: {plan_sentence(run.monitor, symbol)}")
        for symbol, row in run.decided.iterrows():
            when = "no verdict" if pd.isna(row["day"]) else f"{row['day']:%Y-%m-%d}"
            print(f"  first verdict {symbol}: {row['verdict']} ({when})")
        for sentence in sentences(run.monitor):
            print(f"  {sentence}")
        print("  first day each rate's verdict was reached (H-MON-2):")
        for symbol, rows in run.timeline.groupby("symbol", sort=False):
            reached = []
            for rate, band in bands(config.targets, config.stage).items():
                verdicts = [
                    rate_verdict(low, high, band)
                    for low, high in zip(rows[f"{rate}_low"], rows[f"{rate}_high"], strict=True)
                ]
                decided = [i for i, verdict in enumerate(verdicts) if verdict != "undecided"]
                if decided:
                    day = rows["day"].iloc[decided[0]]
                    reached.append(f"{rate} {verdicts[decided[0]]} {day:%Y-%m-%d}")
                else:
                    reached.append(f"{rate} undecided")
            print(f"    {symbol}: " + "; ".join(reached))
        page = write_monitor_page(
            run.monitor,
            args.out / f"monitor-history-{'-'.join(s[:3].lower() for s in group)}.html",
            run.timeline,
            f"Arbiter stage from {args.start}, as if live: {', '.join(group)}",
        )
        print(f"  page: {page}")


if __name__ == "__main__":
    main()
