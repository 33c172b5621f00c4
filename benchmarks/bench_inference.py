"""Verdicts at scale: the paired bootstrap, SPA and StepM, and a sweep keeping daily returns.

Run: ``python benchmarks/bench_inference.py [--bars 73000] [--combinations 1000]
[--days 3000] [--sweep-bars 1000000]``.

(a) Paired bootstrap, 2,000 draws, 2 symbols x ``--bars`` hourly bars x 4 runs: the product's
    path (daily returns from the equity curves, then the paired stationary bootstrap of the
    four metrics for three transitions), and the same bootstrap on the bar returns themselves.
(b) SPA and StepM (1,000 draws each, one stream) of ``--combinations`` runs x ``--days`` daily
    returns against a benchmark; the baseline is ``arch.bootstrap.SPA`` and ``StepM`` on the
    same losses, block length and seed, in this process. Their p-values and selections are
    checked equal.
(c) A sweep of ``--sweep-bars`` bars x 1,000 combinations keeping every combination's daily
    returns, in a fresh process: wall time and peak resident memory (VmHWM).

Times are medians of ``--repeats`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from qt_backtest.inference import paired_bootstrap, period_returns  # noqa: E402
from qt_backtest.inference.multiple import long_run_variance, spa_test, stepm  # noqa: E402

RUNS = ("ensemble", "meta", "meta_arbiter", "buy_and_hold")
PAIRS = [("meta", "ensemble"), ("meta_arbiter", "meta"), ("meta_arbiter", "ensemble")]


def median_time(job, repeats: int) -> float:
    job()  # warm-up: compilation, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def equity_curves(bars: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2018-01-01", periods=bars, freq="1h", tz="UTC")
    market = rng.standard_t(4, bars) * 0.006
    curves = {}
    for position, run in enumerate(RUNS):
        exposure = np.sign(rng.normal(0.2 * position, 1.0, bars))
        curves[run] = 100_000 * np.cumprod(1 + exposure * market - 0.0001 * (position % 2))
    return pd.DataFrame(curves, index=index)


def paired(args) -> None:
    symbols = {name: equity_curves(args.bars, seed) for seed, name in enumerate(("AAA", "BBB"))}

    def daily() -> None:
        for seed, curves in enumerate(symbols.values()):
            returns = period_returns(curves, 100_000.0, "1D")
            paired_bootstrap(returns, PAIRS, 365.0, draws=2000, seed=seed)

    def bars() -> None:
        for seed, curves in enumerate(symbols.values()):
            returns = curves.pct_change().fillna(0.0)
            paired_bootstrap(returns, PAIRS, 8760.0, draws=2000, seed=seed)

    print(f"(a) paired bootstrap, 2,000 draws, 2 symbols x {args.bars:,} bars x 4 runs")
    print(f"    daily returns (the verdicts' path): {median_time(daily, args.repeats):6.2f} s")
    print(f"    bar returns:                        {median_time(bars, args.repeats):6.2f} s")


def multiple(args) -> None:
    from arch.bootstrap import SPA, StepM

    rng = np.random.default_rng(0)
    days, count = args.days, args.combinations
    market = rng.standard_t(5, days) * 0.02
    benchmark = -(market * 0.8 + rng.normal(0, 0.01, days))
    edges = np.where(np.arange(count) < 5, 0.002, 0.0)
    models = -(
        market[:, None] * rng.uniform(0.5, 1.0, count) + rng.normal(edges, 0.01, (days, count))
    )
    block, draws = 10, 1000

    def ours() -> tuple:
        result = spa_test(benchmark, models, block_length=block, draws=draws, seed=1)
        better = stepm(benchmark, models, block_length=block, draws=draws, seed=1)
        return result.pvalues.to_numpy(), better

    advantage = benchmark[:, None] - models
    scale = np.sqrt(long_run_variance(advantage, block))

    def theirs() -> tuple:
        # arch's statistic is not studentised: hand it the studentised advantages
        spa = SPA(np.zeros(days), -advantage / scale, block_size=block, reps=draws, seed=1)
        spa.compute()
        step = StepM(np.zeros(days), -advantage / scale, block_size=block, reps=draws, seed=1)
        step.compute()
        return spa.pvalues.to_numpy(), np.array(step.superior_models)

    mine, reference = ours(), theirs()
    assert np.array_equal(mine[0], reference[0]) and np.array_equal(mine[1], reference[1])
    ours_time = median_time(ours, args.repeats)
    theirs_time = median_time(theirs, max(1, args.repeats // 3))
    print(f"(b) SPA + StepM, {count:,} combinations x {days:,} days, 1,000 draws")
    print(
        f"    ours {ours_time:6.2f} s   arch {theirs_time:6.2f} s   "
        f"ratio ours / arch {ours_time / theirs_time:.3f}"
    )
    print(f"    same p-values {np.round(mine[0], 3)} and {len(mine[1])} better combinations")


SWEEP_JOB = """
import json, resource, sys, time
sys.path.insert(0, {here!r})
import numpy as np
from _synthetic import market
from qt_backtest.backtest import PositionRules
from qt_backtest.sweep import Grid, sweep
bars, votes, indicators = market({bars})
side = 10
grid = Grid.product({{
    "arbiter.arbiter_threshold": np.round(np.linspace(0.60, 0.85, side), 6),
    "meta.consensus_threshold": np.round(np.linspace(0.50, 1.00, side), 6),
    "meta.low_confidence_threshold": np.round(np.linspace(0.40, 0.70, side), 6),
}})
small = {{k: v.iloc[:5000] for k, v in (("b", bars), ("v", votes), ("i", indicators))}}
rules = PositionRules(long_only=True)
sweep(small["b"], small["v"], small["i"], grid.sample(20, seed=0), rules=rules)
start = time.perf_counter()
result = sweep(bars, votes, indicators, grid, rules=rules, period="1D")
seconds = time.perf_counter() - start
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]
shape = result.periods["series"].shape
print(json.dumps({{"seconds": seconds, "peak_kib": int(peak), "periods": shape}}))
"""


def sweep_memory(args) -> None:
    code = SWEEP_JOB.format(here=str(HERE), bars=args.sweep_bars)
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    periods, combos = result["periods"][1], result["periods"][0]
    print(f"(c) sweep of {args.sweep_bars:,} bars x {combos:,} combinations keeping daily returns")
    print(
        f"    {result['seconds']:.1f} s, peak resident memory "
        f"{result['peak_kib'] / 1024**2:.2f} GiB ({periods:,} daily returns per combination)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=73_000)
    parser.add_argument("--combinations", type=int, default=1000)
    parser.add_argument("--days", type=int, default=3000)
    parser.add_argument("--sweep-bars", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paired(args)
    multiple(args)
    sweep_memory(args)


if __name__ == "__main__":
    main()
