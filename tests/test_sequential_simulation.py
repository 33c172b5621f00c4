"""The confidence sequences by simulation (T-SEQ-8): they hold their level when checked after
every decision, where a repeated fixed-sample t-test does not; the rate sequence covers the
true rate at all times; and the mean sequence's decision times against the fixed-sample length
and the projection. ``research/sequential_figures.py`` prints the same tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qt_backtest.inference import decisions_to_verdict, rollout_power
from qt_backtest.inference.sequential import (
    repeated_t_test_first_rejection,
    simulated_outcomes,
)
from qt_backtest.inference.sequential_nb import (
    PROMOTE,
    ROLL_BACK,
    first_decision_nb,
    proportion_first_exclusion_nb,
)

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
SPREAD = 1.0
BOUND = 5.0  # five spreads: about 0.1 % of these fat-tailed outcomes are clipped
STREAMS = 1000
DECISIONS = 20_000


def error_allowance(rate: float, streams: int) -> float:
    """Two simulation standard errors of a rejection rate."""
    return 2 * math.sqrt(rate * (1 - rate) / streams)


def test_the_mean_sequence_holds_its_level_under_continuous_monitoring():
    """No edge, GARCH(1,1) volatility with Student-t(5) shocks: at most 5 % of the streams
    ever promote or roll back in 20,000 decisions checked after every one; the fixed-sample
    t-test at the same level, checked as often, rejects on far more of them."""
    outcomes = simulated_outcomes(STREAMS, DECISIONS, edge=0.0, spread=SPREAD, seed=101)
    steps, _ = first_decision_nb(outcomes, BOUND, ALPHA, 0.0)
    sequence_rate = float(np.mean(steps > 0))
    naive_rate = float(np.mean(repeated_t_test_first_rejection(outcomes, CONFIDENCE) > 0))
    assert sequence_rate <= ALPHA + error_allowance(ALPHA, STREAMS), sequence_rate
    assert naive_rate > 0.20, naive_rate


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_the_rate_sequence_covers_the_true_rate_at_all_times(rate):
    """Independent outcomes at the same success probability (the rule's assumption): the
    interval holds the rate after every one of 10,000 decisions on at least 95 % of the
    streams."""
    successes = np.random.default_rng(200 + int(rate * 100)).random((10_000, STREAMS)) < rate
    first_miss = proportion_first_exclusion_nb(successes, rate, 0.5, 0.5, ALPHA)
    missed = float(np.mean(first_miss > 0))
    assert missed <= ALPHA + error_allowance(ALPHA, STREAMS), missed


POWER_STREAMS = 500


@pytest.mark.parametrize("edge", [0.05, 0.1, 0.2, -0.1])
def test_decisions_to_a_verdict_against_the_fixed_sample_length_and_the_projection(edge):
    """The median decision of the sequence on GARCH-t outcomes with a stated edge (in spreads)
    is within 25 % of :func:`decisions_to_verdict`, and costs 1 to 3 times the length a
    one-sided fixed-sample test at level 0.025 (one half of the two-sided 0.05) needs for 80 %
    power (:func:`rollout_power`); wrong-way verdicts stay within the level."""
    projected = decisions_to_verdict(edge, SPREAD, BOUND, confidence=CONFIDENCE)
    horizon = math.ceil(3 * projected)
    outcomes = simulated_outcomes(POWER_STREAMS, horizon, edge=edge, spread=SPREAD, seed=300)
    steps, verdicts = first_decision_nb(outcomes, BOUND, ALPHA, 0.0)
    right = PROMOTE if edge > 0 else ROLL_BACK
    decided = np.where((steps > 0) & (verdicts == right), steps, np.inf)
    median = float(np.median(decided))
    fixed = rollout_power(SPREAD**2, abs(edge), 1.0, alpha=ALPHA / 2, power=0.8)
    assert 0.75 <= median / projected <= 1.25, (median, projected)
    assert 1.0 <= median / fixed <= 3.0, (median, fixed)
    assert np.mean((steps > 0) & (verdicts == -right)) <= ALPHA / 2
