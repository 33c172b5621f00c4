"""Incremental override outcomes: bars per second of ``OverrideOutcomes.step`` and of a whole
replay at once.

Run: ``python benchmarks/bench_outcomes.py [--bars N]``.

100,000 synthetic hourly bars (``_synthetic.market``, overrides on about 2 % of the bars) and
the bundled ETHUSDT-1h sample with its sample predictions (about 73,000 bars, overrides on about
a quarter of them) go through a ``meta_arbiter`` replay; the monitor is then fed bar by bar
through ``step`` (one Python call per bar: input checks, one kernel call), and the whole replay
goes through ``override_outcomes`` (one kernel call). Both are timed after JIT warm-up; the
script also prints how many overrides were open per bar, the quantity the work per bar grows
with (P-OUT-4).
"""

from __future__ import annotations

import argparse
import time

from _synthetic import market
from _timing import median_seconds

from qt_backtest.backtest import PositionRules
from qt_backtest.data import load_sample, per_symbol, sample_dir
from qt_backtest.hierarchy import HierarchyConfig, replay
from qt_backtest.indicators import arbiter_inputs
from qt_backtest.monitor.outcomes import OverrideOutcomes, override_outcomes
from qt_backtest.signals import read_predictions


def _feed(bars, decisions, rules) -> tuple[int, float]:
    """Feed every bar through ``step``; (outcomes, mean open overrides per bar)."""
    monitor = OverrideOutcomes(rules)
    columns = [
        bars.index,
        *(bars[name].to_numpy() for name in ("open", "high", "low", "close")),
        decisions["final_action"].astype(str).to_numpy(),
        decisions["final_confidence"].to_numpy(),
        decisions["base_action"].astype(str).to_numpy(),
        decisions["base_confidence"].to_numpy(),
        (decisions["gate"] == "override").to_numpy(dtype=bool, na_value=False),
    ]
    outcomes = 0
    open_total = 0
    for stamp, o, h, low, c, action, conf, base, base_conf, override in zip(*columns, strict=True):
        outcomes += len(
            monitor.step(
                stamp,
                o,
                h,
                low,
                c,
                action=action,
                confidence=conf,
                ensemble_action=base,
                ensemble_confidence=base_conf,
                override=override,
            )
        )
        open_total += monitor._count
    return outcomes, open_total / len(bars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bars, votes, indicators = market(args.bars)
    decisions = replay(votes, indicators, HierarchyConfig(mode="meta_arbiter"))
    print(f"synthetic market, {args.bars:,} bars")
    _time(bars, decisions, args.repeat)
    bars = load_sample("ETHUSDT-1h")
    votes = per_symbol(read_predictions(sample_dir() / "sample-predictions.parquet"))["ETHUSDT"]
    bars = bars.loc[votes.index]
    decisions = replay(votes, arbiter_inputs(bars), HierarchyConfig(mode="meta_arbiter"))
    print(f"ETHUSDT-1h sample, {len(bars):,} bars")
    _time(bars, decisions, args.repeat)


def _time(bars, decisions, repeat: int) -> None:
    overrides = int((decisions["gate"] == "override").sum())
    for rules in (PositionRules(), PositionRules(max_hold_bars=5, execution_lag=2)):
        _feed(bars.iloc[:200], decisions.iloc[:200], rules)  # JIT warm-up
        start = time.perf_counter()
        outcomes, mean_open = _feed(bars, decisions, rules)
        stepped = time.perf_counter() - start
        whole = median_seconds(
            lambda rules=rules: override_outcomes(bars, decisions, rules), repeat
        )
        print(f"rules: {rules}")
        print(
            f"  {len(bars):,} bars, {overrides:,} overrides, {outcomes:,} settled, "
            f"{mean_open:.2f} open per bar on average"
        )
        print(f"  step, bar by bar:    {stepped:7.2f} s  {len(bars) / stepped:12,.0f} bars/s")
        print(f"  override_outcomes:   {whole:7.3f} s  {len(bars) / whole:12,.0f} bars/s")


if __name__ == "__main__":
    main()
