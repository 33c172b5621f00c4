"""Threshold sweep: the fused kernel against the same job in vectorbt.

Run: ``python benchmarks/bench_sweep.py [--bars 100000] [--big-bars 1000000]``.

Two grids of the full ``meta_arbiter`` hierarchy on synthetic hourly bars and four models'
votes, traded long-only at the next bar's open with 0.04 % fees, reporting total return and
Sharpe per combination:

* ``synthetic``: 1,000 combinations of Arbiter threshold x Meta consensus threshold x Meta
  low-confidence threshold (10 values each);
* ``real``: a grid as users run it, Arbiter threshold (10) x consensus (5) x low-confidence
  (5) x the position model's HOLD policy (keep, flat) x maximum holding time (none, 48 bars),
  1,000 combinations; ``real-10k`` widens it to 10,000 (25 x 5 x 20 x 2 x 2).

Jobs:

* ours: :func:`qt_backtest.sweep.sweep` (each distinct order stream simulated once, S-DUP-1);
* ours, every combination: the same with ``dedup=False`` (the kernel's own speed, as on a grid
  without repeated streams);
* vectorbt: the per-bar quantities that no threshold changes (the same precomputation ours
  does), then every combination's decisions and positions by numpy broadcasting (bars x
  combinations arrays), entry/exit signals, ``Portfolio.from_signals`` over all columns, then
  total return and Sharpe per column.

First both run in this process on a small size and their results are compared (they must agree
within 1e-9). Then each job runs in a fresh subprocess, after a small warm-up there, so that
peak memory is its own: the script prints wall time, peak resident memory (VmHWM) and the
increase over the process's memory before the job, and the ratios. (b) and (c) run ours alone
on ``--big-bars`` bars. Results of the timed runs are compared as well.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _synthetic import market  # noqa: E402

from qt_backtest.backtest import PositionRules  # noqa: E402
from qt_backtest.sweep import Grid, sweep  # noqa: E402
from qt_backtest.sweep import nb as sweep_nb  # noqa: E402
from qt_backtest.sweep.dedup import simulation_plan  # noqa: E402
from qt_backtest.sweep.run import (  # noqa: E402
    block_edges,
    decision_pass,
    metrics_from_stats,
    pack_grid,
    run_chunk,
    symbol_inputs,
)

RULES = PositionRules(long_only=True)


def make_grid(name: str) -> Grid:
    if name == "synthetic":
        return Grid.product(
            {
                "arbiter.arbiter_threshold": np.round(np.linspace(0.60, 0.85, 10), 6),
                "meta.consensus_threshold": np.round(np.linspace(0.50, 1.00, 10), 6),
                "meta.low_confidence_threshold": np.round(np.linspace(0.40, 0.70, 10), 6),
            }
        )
    sides = (25, 20) if name == "real-10k" else (10, 5)
    return Grid.product(
        {
            "arbiter.arbiter_threshold": np.round(np.linspace(0.60, 0.85, sides[0]), 6),
            "meta.consensus_threshold": [0.5, 0.625, 0.75, 0.875, 1.0],
            "meta.low_confidence_threshold": np.round(np.linspace(0.40, 0.70, sides[1]), 6),
            "rules.hold": ["keep", "flat"],
            "rules.max_hold_bars": [None, 48],
        }
    )


def run_ours(bars, votes, indicators, grid, dedup=True) -> tuple[np.ndarray, np.ndarray, dict]:
    start = time.perf_counter()
    result = sweep(bars, votes, indicators, grid, rules=RULES, chunk_size=len(grid), dedup=dedup)
    seconds = time.perf_counter() - start
    frame = result.frame
    timings = {"total": seconds, "streams": result.streams[frame["symbol"].iloc[0]]}
    return frame["total_return"].to_numpy(), frame["sharpe"].to_numpy(), timings


def ours_breakdown(bars, votes, indicators, grid, dedup=True) -> dict[str, float]:
    """Where the time of :func:`sweep` goes, step by step (a second run)."""
    timings = {}
    start = time.perf_counter()
    combos = pack_grid(grid, rules=RULES)
    timings["configurations (validate, pack)"] = time.perf_counter() - start
    start = time.perf_counter()
    inputs = symbol_inputs("", bars, votes, indicators, combos)
    timings["checks + per-bar inputs"] = time.perf_counter() - start
    start = time.perf_counter()
    plan = simulation_plan(combos, inputs.bar_inputs, partial(decision_pass, inputs, combos), dedup)
    timings["plan (decision pass)"] = time.perf_counter() - start
    edges = block_edges(len(bars), 16)
    flags = (combos.inline_votes, combos.inline_meta, combos.inline_score)
    start = time.perf_counter()
    stats, *_ = run_chunk(
        inputs,
        combos.rows(plan.simulated),
        flags,
        combos.meta_models,
        combos.coef,
        combos.intercept,
        RULES.init_cash,
        edges,
    )
    timings["fused kernel (simulated streams)"] = time.perf_counter() - start
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
    del confidence, override, escalate, verdict_confidence
    holding = long_positions(final, frame)
    entries = np.zeros(final.shape, dtype=bool)
    exits = np.zeros(final.shape, dtype=bool)
    entries[1:] = holding[:-1]  # decided at a close, filled at the next open
    exits[1:] = ~holding[:-1]
    del final, holding
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


def long_positions(final: np.ndarray, frame) -> np.ndarray:
    """Long-only positions (bars x combinations, True: long) of the decisions ``final`` under
    each combination's HOLD policy and maximum holding time, by numpy broadcasting."""
    bars = final.shape[0]
    hold = frame["rules.hold"].to_numpy() if "rules.hold" in frame else np.full(len(frame), "keep")
    limit = (
        frame["rules.max_hold_bars"].fillna(0).to_numpy(dtype=np.int64)
        if "rules.max_hold_bars" in frame
        else np.zeros(len(frame), dtype=np.int64)
    )
    steps = np.arange(bars, dtype=np.int32)[:, None]
    # the bar of the last signal so far (-1: none) and whether it was a BUY
    last = np.where(final != 0, steps, -1).astype(np.int32)
    np.maximum.accumulate(last, axis=0, out=last)
    bought = np.take_along_axis(final, np.maximum(last, 0), axis=0) == 1
    bought &= last >= 0
    # a position closes once the bars since its last signal reach the limit
    bought &= (limit[None, :] == 0) | (steps - last < limit[None, :])
    return np.where((hold == "flat")[None, :], final == 1, bought)


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


JOBS = {
    "ours": partial(run_ours, dedup=True),
    "ours-all": partial(run_ours, dedup=False),
    "vectorbt": run_vectorbt,
}


def job(kind: str, bars_count: int, grid_name: str, output: str) -> None:
    """One timed job in this (fresh) process: prints a JSON line, writes the results."""
    function = JOBS[kind]
    grid = make_grid(grid_name)
    function(*market(2_000, seed=1), grid)  # compile / warm up
    bars, votes, indicators = market(bars_count)
    before = _memory()["VmRSS"]
    total_return, sharpe, timings = function(bars, votes, indicators, grid)
    memory = _memory()
    if kind != "vectorbt":
        timings.update(ours_breakdown(bars, votes, indicators, grid, kind == "ours"))
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


def spawn(kind: str, bars_count: int, grid_name: str, folder: str) -> tuple[dict, tuple]:
    output = str(Path(folder) / f"{kind}-{grid_name}-{bars_count}.npz")
    completed = subprocess.run(
        [
            sys.executable,
            __file__,
            "--job",
            kind,
            "--bars",
            str(bars_count),
            "--grid",
            grid_name,
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
    timings = dict(report["timings"])
    seconds = timings.pop("total")
    streams = timings.pop("streams", None)
    simulated = "" if streams is None else f"   {streams:,} streams simulated"
    print(
        f"  {label:9s} {seconds:8.2f} s   peak {report['peak_mib']:7.0f} MiB   "
        f"job's increase {report['increase_mib']:7.0f} MiB   "
        f"{seconds / (bars_count * combos) * 1e9:6.2f} ns per bar x combination{simulated}"
    )
    for step, value in timings.items():
        print(f"      {step:34s} {value:8.2f} s")


def against_vectorbt(grid_name: str, bars_count: int, kinds: tuple[str, ...], folder: str):
    """Time ``kinds`` of ours and vectorbt on one grid in fresh processes; print the ratios."""
    combos = len(make_grid(grid_name))
    theirs_report, theirs_values = spawn("vectorbt", bars_count, grid_name, folder)
    describe("vectorbt", theirs_report, bars_count, combos)
    for kind in kinds:
        report, values = spawn(kind, bars_count, grid_name, folder)
        worst = compare(values, theirs_values)
        describe(kind, report, bars_count, combos)
        speed = theirs_report["timings"]["total"] / report["timings"]["total"]
        peak = theirs_report["peak_mib"] / report["peak_mib"]
        print(
            f"  {kind}: {speed:.1f}x faster than vectorbt, {peak:.1f}x less peak memory; "
            f"results agree within {worst:.2g}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--big-bars", type=int, default=1_000_000)
    parser.add_argument("--job", choices=tuple(JOBS))
    parser.add_argument("--grid", choices=("synthetic", "real", "real-10k"), default="real")
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.job:
        job(args.job, args.bars, args.grid, args.output)
        return

    small = market(5_000, seed=2)
    for name in ("synthetic", "real"):
        grid = make_grid(name)
        theirs = run_vectorbt(*small, grid)[:2]
        for dedup in (True, False):
            worst = compare(run_ours(*small, grid, dedup=dedup)[:2], theirs)
            print(
                f"correctness: {name} grid, 5,000 bars x {len(grid)} combinations, dedup={dedup}: "
                f"largest relative difference {worst:.2g} (total return, Sharpe)"
            )

    with tempfile.TemporaryDirectory() as folder:
        print(f"\n(a) {args.bars:,} bars x 1,000 combinations, synthetic grid")
        against_vectorbt("synthetic", args.bars, ("ours-all", "ours"), folder)
        print("  targets: every combination simulated >= 50x vectorbt")
        print(f"\n(a') {args.bars:,} bars x 1,000 combinations, real-style grid")
        against_vectorbt("real", args.bars, ("ours", "ours-all"), folder)
        print("  target: ours >= 100x vectorbt")
        if args.big_bars:
            for name, target in (("real", "<= 5 s and < 1 GB"), ("real-10k", "<= 40 s and < 2 GB")):
                combos = len(make_grid(name))
                print(f"\n(b) {args.big_bars:,} bars x {combos:,} combinations, {name} grid, ours")
                report, _ = spawn("ours", args.big_bars, name, folder)
                describe("ours", report, args.big_bars, combos)
                print(f"  target: {target} peak")


if __name__ == "__main__":
    main()
