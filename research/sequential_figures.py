"""Size, coverage and power of the rollout monitor's confidence sequences (T-SEQ-8).

Prints three tables, with the setup of ``tests/test_sequential_simulation.py``:

* size -- outcomes with no edge (GARCH(1,1) volatility, Student-t(5) shocks), checked after
  every decision: how many streams ever promote or roll back, beside a fixed-sample t-test
  repeated after every decision at the same level;
* coverage -- independent Bernoulli outcomes: how many streams' rate intervals ever miss the
  true rate;
* power -- the same GARCH-t outcomes with an edge: decisions to the first verdict (median and
  quartiles) beside the fixed-sample length of :func:`rollout_power` (one-sided level 0.025,
  power 0.8) and the projection :func:`decisions_to_verdict`.

    python research/sequential_figures.py
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from qt_backtest.inference import decisions_to_verdict, rollout_power
from qt_backtest.inference.sequential import repeated_t_test_first_rejection, simulated_outcomes
from qt_backtest.inference.sequential_nb import (
    PROMOTE,
    ROLL_BACK,
    first_decision_nb,
    proportion_first_exclusion_nb,
)

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
SPREAD = 1.0
BOUND = 5.0


def standard_error(rate: float, streams: int) -> float:
    return math.sqrt(rate * (1 - rate) / streams)


def size_table(streams: int, decisions: int) -> None:
    outcomes = simulated_outcomes(streams, decisions, edge=0.0, spread=SPREAD, seed=101)
    clipped = float(np.mean(np.abs(outcomes) > BOUND))
    steps, verdicts = first_decision_nb(outcomes, BOUND, ALPHA, 0.0)
    naive = repeated_t_test_first_rejection(outcomes, CONFIDENCE)
    print(f"Size: no edge, {streams:,} streams x {decisions:,} decisions, checked after each")
    print(
        f"(GARCH(1,1) 0.08/0.87, Student-t(5) shocks; bound {BOUND:g} spreads, "
        f"{clipped:.3%} of outcomes clipped)"
    )
    print("| rule | streams with a false verdict | s.e. | promote | roll back |")
    print("|---|---|---|---|---|")
    rate = float(np.mean(steps > 0))
    error = standard_error(rate, streams)
    print(
        f"| confidence sequence, {CONFIDENCE:.0%} | {rate:.2%} | {error:.2%}"
        f" | {np.mean(verdicts == PROMOTE):.2%} | {np.mean(verdicts == ROLL_BACK):.2%} |"
    )
    rate = float(np.mean(naive > 0))
    early = float(np.mean((naive > 0) & (naive <= 100)))
    print(
        f"| t-test at {ALPHA:.0%} two-sided, repeated | {rate:.2%} | "
        f"{standard_error(rate, streams):.2%} | | |"
    )
    print(f"(the repeated t-test's first false rejections by decision 100: {early:.2%})\n")


def coverage_table(streams: int, decisions: int) -> None:
    print(f"Coverage: independent outcomes, {streams:,} streams x {decisions:,} decisions")
    print("| true rate | streams whose interval ever misses it | s.e. |")
    print("|---|---|---|")
    for rate in (0.01, 0.05, 0.2, 0.5):
        seed = 200 + int(rate * 100)
        successes = np.random.default_rng(seed).random((decisions, streams)) < rate
        missed = float(np.mean(proportion_first_exclusion_nb(successes, rate, 0.5, 0.5, ALPHA) > 0))
        print(f"| {rate:g} | {missed:.2%} | {standard_error(missed, streams):.2%} |")
    print()


def power_table(streams: int) -> None:
    print(f"Power: GARCH-t outcomes with an edge, {streams:,} streams, bound {BOUND:g} spreads")
    print(
        "| edge / spread | fixed-sample length | projection | median | quartiles "
        "| median / fixed | median / projection | wrong way |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for edge in (0.05, 0.1, 0.2, 0.5, -0.1):
        projected = decisions_to_verdict(edge, SPREAD, BOUND, confidence=CONFIDENCE)
        horizon = math.ceil(3 * projected)
        outcomes = simulated_outcomes(streams, horizon, edge=edge, spread=SPREAD, seed=300)
        steps, verdicts = first_decision_nb(outcomes, BOUND, ALPHA, 0.0)
        right = PROMOTE if edge > 0 else ROLL_BACK
        decided = np.where((steps > 0) & (verdicts == right), steps, np.inf)
        median = float(np.median(decided))
        low, high = np.quantile(decided, [0.25, 0.75])
        fixed = rollout_power(SPREAD**2, abs(edge), 1.0, alpha=ALPHA / 2, power=0.8)
        wrong = float(np.mean((steps > 0) & (verdicts == -right)))
        print(
            f"| {edge:+g} | {fixed:,.0f} | {projected:,.0f} | {median:,.0f} | "
            f"{low:,.0f} to {high:,.0f} | {median / fixed:.2f} | {median / projected:.2f} | "
            f"{wrong:.1%} |"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=20_000)
    args = parser.parse_args()
    started = time.perf_counter()
    size_table(args.streams, args.decisions)
    coverage_table(args.streams, args.decisions // 2)
    power_table(args.streams // 2)
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
