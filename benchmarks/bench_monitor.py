"""The rollout monitor end to end: a million journal lines read, parsed, counted and valued.

Run: ``make bench`` (or ``python benchmarks/bench_monitor.py [--lines N]``).

The journal is the Arbiter stage's, written from replays of the bundled sample (BTCUSDT and
ETHUSDT 1h with the sample's votes, H-MON-6); to reach a million lines the same decisions are
also written under other symbol names, each valued on the bars it was replayed on. Timed, as
``qt-backtest monitor`` runs: ``read_new_lines`` from the start of the file, then
``Monitor.feed`` with the bars (records, six rate sequences per record per symbol and pooled,
the override trackers stepped bar by bar, outcomes into the mean sequences). Beside it, the
Meta stage (rates only) and the journal reader alone, on the same file, for the ratios. The
load average is printed: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from qt_backtest.data import load_sample, per_symbol, sample_dir
from qt_backtest.hierarchy import HierarchyConfig, replay
from qt_backtest.hierarchy.livelog import JournalReader
from qt_backtest.indicators import arbiter_inputs
from qt_backtest.monitor.config import MonitorConfig
from qt_backtest.monitor.history import journal_from_replay
from qt_backtest.monitor.journal import read_new_lines
from qt_backtest.monitor.monitor import Monitor
from qt_backtest.signals import read_predictions

TARGET_SECONDS = 10.0


def write_journal(path: Path, lines_wanted: int) -> dict:
    """Write the journal; returns the bars of every symbol name in it."""
    predictions = per_symbol(read_predictions(sample_dir() / "sample-predictions.parquet"))
    streams, bars = [], {}
    for symbol in ("BTCUSDT", "ETHUSDT"):
        frame = load_sample(f"{symbol}-1h")
        votes = predictions[symbol].reindex(frame.index)
        decisions = replay(votes, arbiter_inputs(frame), HierarchyConfig())
        lines = journal_from_replay(symbol, decisions, votes, HierarchyConfig().models)
        streams.append((symbol, frame, lines))
    per_copy = sum(len(lines) for _, _, lines in streams)
    copies = -(-lines_wanted // per_copy)
    timed = []
    for copy in range(copies):
        for symbol, frame, lines in streams:
            name = symbol if copy == 0 else symbol.replace("USDT", f"{copy}USDT")
            bars[name] = frame
            timed += [(time, line.replace(symbol, name)) for time, line in lines]
    timed.sort(key=lambda item: item[0])
    with open(path, "w", encoding="utf-8") as handle:
        for _, line in timed[:lines_wanted]:
            handle.write(line + "\n")
    return bars


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "journal.log"
        bars = write_journal(path, args.lines)
        size = path.stat().st_size / 1e6
        print(f"journal: {args.lines:,} lines, {size:,.0f} MB, {len(bars)} symbols")
        # compile the trackers' kernels outside the timings
        Monitor().feed(path.read_text().splitlines(keepends=True)[:2000], bars)

        started = time.perf_counter()
        lines, _ = read_new_lines(path, None)
        reader = JournalReader()
        reader.feed(lines)
        parse_seconds = time.perf_counter() - started

        timings = {}
        for stage in ("meta", "meta_arbiter"):
            started = time.perf_counter()
            lines, _ = read_new_lines(path, None)
            monitor = Monitor(MonitorConfig(stage=stage))
            records = monitor.feed(lines, bars if stage == "meta_arbiter" else None)
            timings[stage] = time.perf_counter() - started
            outcomes = monitor.pooled.value.count if monitor.pooled.value else 0
            print(
                f"{stage:>12}: {timings[stage]:6.2f} s for {len(lines):,} lines "
                f"({len(lines) / timings[stage]:,.0f} lines/s), {records:,} records, "
                f"{outcomes:,} override outcomes"
            )
    print(f"reading and parsing alone: {parse_seconds:.2f} s")
    whole = timings["meta_arbiter"]
    print(
        f"the Arbiter stage's monitor costs {whole / parse_seconds:.2f}x the parsing; "
        f"{'within' if whole <= TARGET_SECONDS else 'OVER'} the {TARGET_SECONDS:.0f} s target"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
