"""Threshold sweep: the fused kernel against the same job in vectorbt.

Run: ``python benchmarks/bench_sweep.py [--bars 100000] [--big-bars 1000000] [--side 10]``.

The job: ``side ** 3`` combinations (Arbiter threshold x Meta consensus threshold x Meta
low-confidence threshold; 1,000 by default) of the full ``meta_arbiter`` hierarchy on synthetic
hourly bars and four models' votes, each traded long-only at the next bar's open with 0.04 %
fees, reporting total return and Sharpe per combination.

* ours: :func:`qt_backtest.sweep.sweep` (the fused kernel);
* vectorbt: the per-bar quantities that no threshold changes (the same precomputation ours
  does), then every combination's decisions by numpy broadcasting (bars x combinations arrays),
  entry/exit signals, ``Portfolio.from_signals`` over all columns, then total return and
  Sharpe per column.

First both run in this process on a small size and their results are compared (they must agree
within 1e-9). Then each job runs in a fresh subprocess, after a small warm-up there, so that
peak memory is its own: the script prints wall time, peak resident memory (VmHWM) and the
increase over the process's memory before the job, and the ratios. (b) runs ours alone on
``--big-bars`` bars. Results of the timed runs are compared as well.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _synthetic import market  # noqa: E402

from qt_backtest.backtest import PositionRules  # noqa: E402
from qt_backtest.sweep import Grid, sweep  # noqa: E402
from qt_backtest.sweep import nb as sweep_nb  # noqa: E402
from qt_backtest.sweep.run import (  # noqa: E402
    block_edges,
    metrics_from_stats,
    pack_grid,
    run_chunk,
    symbol_inputs,
)

RULES = PositionRules(long_only=True)


def make_grid(side: int) -> Grid:
    return Grid.product(
        {
            "arbiter.arbiter_threshold": np.round(np.linspace(0.60, 0.85, side), 6),
            "meta.consensus_threshold": np.round(np.linspace(0.50, 1.00, side), 6),
            "meta.low_confidence_threshold": np.round(np.linspace(0.40, 0.70, side), 6),
        }
    )


def run_ours(bars, votes, indicators, grid) -> tuple[np.ndarray, np.ndarray, dict]:
    start = time.perf_counter()
    result = sweep(bars, votes, indicators, grid, rules=RULES, chunk_size=len(grid))
    seconds = time.perf_counter() - start
    frame = result.frame
    return frame["total_return"].to_numpy(), frame["sharpe"].to_numpy(), {"total": seconds}


def ours_breakdown(bars, votes, indicators, grid) -> dict[str, float]:
    """Where the time of :func:`sweep` goes, step by step (a second run)."""
    timings = {}
    start = time.perf_counter()
    combos = pack_grid(grid, rules=RULES)
    timings["configurations (validate, pack)"] = time.perf_counter() - start
    start = time.perf_counter()
    inputs = symbol_inputs("", bars, votes, indicators, combos)
    timings["checks + per-bar inputs"] = time.perf_counter() - start
    edges = block_edges(len(bars), 16)
    flags = (combos.inline_votes, combos.inline_meta, combos.inline_score)
    start = time.perf_counter()
    stats, *_ = run_chunk(
        inputs,
        combos.chunk(0, len(grid)),
        flags,
        combos.meta_models,
        combos.coef,
        combos.intercept,
        RULES.init_cash,
        edges,
    )
    timings["fused kernel"] = time.perf_counter() - start
    start = time.perf_counter()
    metrics_from_stats(stats, len(bars), RULES.init_cash, inputs.periods_per_year, bars.index)
    timings["metrics frame"] = time.perf_counter() - start
    return timings


def run_vectorbt(bars, votes, indicators, grid) -> tuple[np.ndarray, np.ndarray, dict]:
    import pandas as pd
    import vectorbt as vbt

    timings = {}
    start = time.perf_counter()
    combos = pack_grid(grid, rules=RULES)
    inputs = symbol_inputs("", bars, votes, indicators, combos).bar_inputs
    timings["per-bar inputs"] = time.perf_counter() - start

    start = time.perf_counter()
    frame = grid.frame()
    gate = frame["arbiter.arbiter_threshold"].to_numpy()[None, :]
    consensus = frame["meta.consensus_threshold"].to_numpy()[None, :]
    low = frame["meta.low_confidence_threshold"].to_numpy()[None, :]
    column = lambda k: inputs[:, k][:, None]  # noqa: E731
    agreeing = column(sweep_nb.B_AGREEING)
    base_action = np.where(agreeing > 0, column(sweep_nb.B_ACTION), 0.0)
    base_confidence = np.where(agreeing > 0, np.minimum(0.95, column(sweep_nb.B_MEAN)), 0.5)
    share = column(sweep_nb.B_SHARE)
    score = column(sweep_nb.B_SCORE)
    verdict = (score >= 0.15).astype(float) - (score <= -0.15)
    verdict_confidence = np.minimum(0.70 + 0.5 * np.abs(score), 0.95)
    ran = column(sweep_nb.B_VOTERS) >= 2
    escalate = (
        ran
        & (share < consensus)
        & (
            (column(sweep_nb.B_SPLIT) != 0)
            | (1.0 - share >= 0.5)
            | (column(sweep_nb.B_FALLBACK) < low)
        )
    )
    override = escalate & (verdict != 0) & (verdict_confidence >= gate)
    final = np.where(override, verdict, base_action)
    confidence = np.where(override, verdict_confidence, base_confidence)
    final = np.where((final != 0) & (confidence < 0.65), 0.0, final)
    entries = np.zeros(final.shape, dtype=bool)
    exits = np.zeros(final.shape, dtype=bool)
    entries[1:] = final[:-1] == 1  # decided at a close, filled at the next open
    exits[1:] = final[:-1] == -1
    del final, confidence, override, escalate, verdict_confidence
    timings["signals (numpy broadcasting)"] = time.perf_counter() - start

    start = time.perf_counter()
    columns = pd.RangeIndex(len(grid))
    portfolio = vbt.Portfolio.from_signals(
        bars["close"],
        pd.DataFrame(entries, index=bars.index, columns=columns),
        pd.DataFrame(exits, index=bars.index, columns=columns),
        price=bars["open"],
        direction="longonly",
        fees=RULES.fee,
        init_cash=RULES.init_cash,
        freq="1h",
    )
    timings["from_signals"] = time.perf_counter() - start
    start = time.perf_counter()
    total_return = portfolio.total_return().to_numpy()
    sharpe = portfolio.sharpe_ratio().to_numpy()
    timings["metrics"] = time.perf_counter() - start
    timings["total"] = sum(timings.values())
    return total_return, sharpe, timings


def compare(ours: tuple[np.ndarray, np.ndarray], theirs: tuple[np.ndarray, np.ndarray]) -> float:
    """Largest relative difference of total return and Sharpe; raises above 1e-9."""
    worst = 0.0
    for name, a, b in zip(("total_return", "sharpe"), ours, theirs, strict=True):
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            raise AssertionError(f"{name}: NaN in different combinations")
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        difference = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
        worst = max(worst, float(difference.max(initial=0.0)))
        if worst > 1e-9:
            raise AssertionError(f"{name} differs from vectorbt by {worst:.3g} (relative)")
    return worst


def _memory() -> dict[str, float]:
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = float(rest.split()[0]) / 1024.0  # MiB
    return values


def job(kind: str, bars_count: int, side: int, output: str) -> None:
    """One timed job in this (fresh) process: prints a JSON line, writes the results."""
    function = run_ours if kind == "ours" else run_vectorbt
    grid = make_grid(side)
    function(*market(2_000, seed=1), grid)  # compile / warm up
    bars, votes, indicators = market(bars_count)
    before = _memory()["VmRSS"]
    total_return, sharpe, timings = function(bars, votes, indicators, grid)
    memory = _memory()
    if kind == "ours":
        timings.update(ours_breakdown(bars, votes, indicators, grid))
    np.savez(output, total_return=total_return, sharpe=sharpe)
    print(
        json.dumps(
            {
                "timings": timings,
                "peak_mib": memory["VmHWM"],
                "before_mib": before,
                "increase_mib": memory["VmHWM"] - before,
            }
        )
    )


def spawn(kind: str, bars_count: int, side: int, folder: str) -> tuple[dict, tuple]:
    output = str(Path(folder) / f"{kind}-{bars_count}.npz")
    completed = subprocess.run(
        [
            sys.executable,
            __file__,
            "--job",
            kind,
            "--bars",
            str(bars_count),
            "--side",
            str(side),
            "--output",
            output,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    with np.load(output) as stored:
        return report, (stored["total_return"], stored["sharpe"])


def describe(label: str, report: dict, bars_count: int, combos: int) -> None:
    seconds = report["timings"]["total"]
    print(
        f"  {label:9s} {seconds:8.2f} s   peak {report['peak_mib']:7.0f} MiB   "
        f"job's increase {report['increase_mib']:7.0f} MiB   "
        f"{seconds / (bars_count * combos) * 1e9:6.1f} ns per bar x combination"
    )
    for step, value in report["timings"].items():
        if step != "total":
            print(f"      {step:32s} {value:8.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--big-bars", type=int, default=1_000_000)
    parser.add_argument("--side", type=int, default=10, help="values per parameter")
    parser.add_argument("--job", choices=("ours", "vectorbt"))
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.job:
        job(args.job, args.bars, args.side, args.output)
        return
    grid = make_grid(args.side)
    combos = len(grid)

    small = market(5_000, seed=2)
    worst = compare(run_ours(*small, grid)[:2], run_vectorbt(*small, grid)[:2])
    print(
        f"correctness: 5,000 bars x {combos} combinations, largest relative difference "
        f"{worst:.2g} (total return, Sharpe)"
    )

    with tempfile.TemporaryDirectory() as folder:
        print(f"\n(a) {args.bars:,} bars x {combos:,} combinations, meta_arbiter + portfolio")
        ours_report, ours_values = spawn("ours", args.bars, args.side, folder)
        theirs_report, theirs_values = spawn("vectorbt", args.bars, args.side, folder)
        worst = compare(ours_values, theirs_values)
        describe("ours", ours_report, args.bars, combos)
        describe("vectorbt", theirs_report, args.bars, combos)
        speed = theirs_report["timings"]["total"] / ours_report["timings"]["total"]
        memory = theirs_report["increase_mib"] / max(ours_report["increase_mib"], 1.0)
        peak = theirs_report["peak_mib"] / ours_report["peak_mib"]
        print(f"  results agree within {worst:.2g}")
        print(
            f"  ours is {speed:.1f}x faster (target >= 20x); vectorbt's job takes {memory:.1f}x "
            f"the memory increase and {peak:.1f}x the peak (target: ours <= 1/20)"
        )

        if args.big_bars:
            print(f"\n(b) {args.big_bars:,} bars x {combos:,} combinations, ours")
            big_report, _ = spawn("ours", args.big_bars, args.side, folder)
            describe("ours", big_report, args.big_bars, combos)
            print("  targets: <= 15 s and < 1 GB peak")


if __name__ == "__main__":
    main()
