"""The confidence sequences against closed forms and independent spellings of their formulas
(T-SEQ-2 to T-SEQ-7), and their API: updates, serialisation, validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, stats

from qt_backtest.errors import ConfigError, DataValidationError
from qt_backtest.inference import MeanSequence, ProportionSequence, decisions_to_verdict
from qt_backtest.inference.sequential import simulated_outcomes
from qt_backtest.inference.sequential_nb import (
    first_decision_nb,
    mean_sequence_bounds_nb,
    proportion_bounds_nb,
    proportion_log_mixture_nb,
    proportion_sequence_bounds_nb,
)

# -- rates: the beta-binomial mixture (T-SEQ-2, T-SEQ-3) ---------------------------------------

MIXTURE_CASES = [
    # count, successes, candidate rate, prior
    (1, 1, 0.5, (0.5, 0.5)),
    (10, 3, 0.1, (0.5, 0.5)),
    (40, 0, 0.05, (0.5, 0.5)),
    (40, 40, 0.9, (1.0, 1.0)),
    (60, 12, 0.35, (2.0, 5.0)),
    (200, 9, 0.02, (0.5, 0.5)),
]


@pytest.mark.parametrize(("count", "successes", "rate", "prior"), MIXTURE_CASES)
def test_the_mixture_is_the_integral_of_likelihood_ratios_over_the_beta_prior(
    count, successes, rate, prior
):
    """M_t(p) = integral of (q/p)^s ((1-q)/(1-p))^f over Beta(a, b): numerical integration
    against the closed-form ratio of beta functions."""
    a, b = prior
    failures = count - successes

    def integrand(q):
        log_ratio = successes * math.log(q / rate) + failures * math.log((1 - q) / (1 - rate))
        return math.exp(log_ratio) * stats.beta.pdf(q, a, b)

    integral, _ = integrate.quad(integrand, 0.0, 1.0, points=[successes / count], limit=200)
    closed = proportion_log_mixture_nb(float(count), float(successes), rate, a, b)
    assert math.log(integral) == pytest.approx(closed, abs=1e-7)


@pytest.mark.parametrize("prior", [(0.5, 0.5), (1.0, 1.0), (3.0, 0.7)])
def test_the_mixture_is_a_product_of_predictive_ratios_and_a_martingale(prior):
    """Order by order, M_t(p) is the product of the prior-predictive probability of each
    outcome over its probability under p; and its conditional expectation under p is M_t."""
    a, b = prior
    rate = 0.3
    outcomes = np.random.default_rng(5).random(300) < 0.4
    log_product = 0.0
    wins = 0
    for t, outcome in enumerate(outcomes):
        predictive = (a + wins) / (a + b + t)
        if outcome:
            log_product += math.log(predictive / rate)
            wins += 1
        else:
            log_product += math.log((1 - predictive) / (1 - rate))
        closed = proportion_log_mixture_nb(t + 1.0, float(wins), rate, a, b)
        assert closed == pytest.approx(log_product, abs=1e-9)
    now = math.exp(proportion_log_mixture_nb(300.0, float(wins), rate, a, b))
    following = rate * math.exp(proportion_log_mixture_nb(301.0, wins + 1.0, rate, a, b)) + (
        1 - rate
    ) * math.exp(proportion_log_mixture_nb(301.0, float(wins), rate, a, b))
    assert following == pytest.approx(now, rel=1e-10)


@pytest.mark.parametrize(
    ("count", "successes"),
    [(1, 0), (1, 1), (20, 1), (20, 19), (500, 25), (10_000, 3), (1_000_000, 500_000), (50, 0)],
)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.999])
def test_the_interval_ends_are_where_the_mixture_reaches_its_threshold(
    count, successes, confidence
):
    rates = ProportionSequence(confidence=confidence, count=count, successes=successes)
    low, high = rates.interval()
    threshold = math.log(1 / (1 - confidence))

    def log_mixture(p):
        return proportion_log_mixture_nb(float(count), float(successes), p, 0.5, 0.5)

    assert 0.0 <= low < rates.estimate() < high <= 1.0 or successes in (0, count)
    if successes == 0:
        assert low == 0.0
    else:
        assert log_mixture(low) == pytest.approx(threshold, abs=1e-8)
        assert log_mixture(low * (1 - 1e-6)) > threshold  # just outside
        assert log_mixture(low * (1 + 1e-6)) < threshold  # just inside
    if successes == count:
        assert high == 1.0
    else:
        assert log_mixture(high) == pytest.approx(threshold, abs=1e-8)
        assert log_mixture(high + (1 - high) * 1e-6) > threshold
        assert log_mixture(high - (1 - high) * 1e-6) < threshold
    inside = np.linspace(low, high, 9)[1:-1]
    assert all(log_mixture(p) < threshold for p in inside)


def test_the_interval_before_any_decision_is_everything():
    assert ProportionSequence().interval() == (0.0, 1.0)
    assert math.isnan(ProportionSequence().estimate())


def test_the_simulation_kernel_gives_the_class_s_intervals():
    outcomes = np.random.default_rng(3).random((300, 3)) < 0.1
    low, high = proportion_sequence_bounds_nb(outcomes, 0.5, 0.5, 1 - 0.95)
    rates = ProportionSequence()
    for i, outcome in enumerate(outcomes[:, 1]):
        rates.update(bool(outcome))
        assert rates.interval() == (low[i, 1], high[i, 1])


@pytest.mark.parametrize(
    ("count", "successes", "value"), [(100, 5, 0.15), (40, 10, 0.1), (30, 3, 0.02)]
)
def test_decisions_to_exclude_is_the_first_count_at_which_the_interval_excludes(
    count, successes, value
):
    """Against a plain scan of the intervals at the projected counts."""
    rates = ProportionSequence(count=count, successes=successes)
    needed = rates.decisions_to_exclude(value)
    assert needed > 0 and math.isfinite(needed)
    rate = successes / count
    threshold = math.log(20)

    def excluded(k):
        low, high = proportion_bounds_nb(count + k, successes + rate * k, 0.5, 0.5, threshold)
        return not low < value < high

    first = next(k for k in range(100_000) if excluded(float(k)))
    assert needed == first


def test_decisions_to_exclude_at_the_edges():
    rates = ProportionSequence(count=200, successes=10)
    assert rates.decisions_to_exclude(0.5) == 0.0  # already outside
    assert rates.decisions_to_exclude(0.05) == math.inf  # the rate itself
    assert rates.decisions_to_exclude(0.0) == 0.0  # a success rules out a zero rate
    assert ProportionSequence().decisions_to_exclude(0.3) == math.inf  # nothing to project
    assert ProportionSequence(count=50).decisions_to_exclude(0.0) == math.inf
    assert ProportionSequence(count=50).decisions_to_exclude(0.1) < math.inf
    with pytest.raises(ConfigError, match="value"):
        rates.decisions_to_exclude(1.5)


# -- means: the empirical-Bernstein sequence (T-SEQ-4, T-SEQ-5) ---------------------------------


def eb_terms(unit: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Bets and penalties ``v_i psi_E(lambda_i)`` of the predictable plug-in empirical-Bernstein
    sequence, written out from the formulas with cumulative sums (an independent spelling)."""
    t = np.arange(1, len(unit) + 1, dtype=float)
    means = (0.5 + np.cumsum(unit)) / (t + 1)
    variances = (0.25 + np.cumsum((unit - means) ** 2)) / (t + 1)
    previous_variance = np.concatenate([[0.25], variances[:-1]])
    previous_mean = np.concatenate([[0.5], means[:-1]])
    bets = np.minimum(np.sqrt(2 * np.log(2 / alpha) / (previous_variance * t * np.log(1 + t))), 0.5)
    v = 4 * (unit - previous_mean) ** 2
    return bets, v * (-np.log(1 - bets) - bets) / 4


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_eb_bounds_are_where_the_product_supermartingale_reaches_log_two_over_alpha(confidence):
    """At each reported (not intersected) end m, log prod exp(+-lambda_i (x_i - m) - v_i
    psi_E(lambda_i)) = log(2 / alpha); inside the interval it is below, outside above."""
    alpha = 1 - confidence
    bound = 3.0
    outcomes = simulated_outcomes(1, 4000, edge=0.1, spread=1.0, seed=21)
    low, high = mean_sequence_bounds_nb(outcomes, bound, alpha, False)
    unit = (np.clip(outcomes[:, 0], -bound, bound) + bound) / (2 * bound)
    assert (np.abs(outcomes) > bound).sum() > 5  # the clipping is exercised
    bets, penalties = eb_terms(unit, alpha)
    target = math.log(2 / alpha)
    checked = 0
    for step in (200, 500, 1000, 2500, 4000):
        n = step
        lo = (low[n - 1, 0] + bound) / (2 * bound)
        hi = (high[n - 1, 0] + bound) / (2 * bound)
        if not 0 < lo < hi < 1:
            continue

        def upper(m, n=n):  # grows when the mean is below m: tests m from above
            return np.sum(bets[:n] * (unit[:n] - m) - penalties[:n])

        def lower(m, n=n):
            return np.sum(bets[:n] * (m - unit[:n]) - penalties[:n])

        assert upper(lo) == pytest.approx(target, abs=1e-9)
        assert lower(hi) == pytest.approx(target, abs=1e-9)
        for m in np.linspace(lo, hi, 7)[1:-1]:
            assert upper(m) < target and lower(m) < target
        assert upper(lo - 1e-4) > target and lower(hi + 1e-4) > target
        checked += 1
    assert checked >= 3


def test_the_reported_interval_is_the_running_intersection_and_the_kernels_agree():
    bound = 4.0
    outcomes = simulated_outcomes(2, 600, edge=-0.05, spread=1.2, seed=8)
    alpha = 1 - 0.95  # as the class computes it from its confidence
    step_low, step_high = mean_sequence_bounds_nb(outcomes, bound, alpha, False)
    low, high = mean_sequence_bounds_nb(outcomes, bound, alpha, True)
    np.testing.assert_array_equal(low, np.maximum.accumulate(step_low, axis=0))
    np.testing.assert_array_equal(high, np.minimum.accumulate(step_high, axis=0))
    pnl = MeanSequence(bound=bound)
    first = None
    for i, outcome in enumerate(outcomes[:, 1]):
        pnl.update(float(outcome))
        assert pnl.interval() == (low[i, 1], high[i, 1])
        if first is None and pnl.decide(0.1) != "continue":
            first = (i + 1, pnl.decide(0.1))
    steps, verdicts = first_decision_nb(outcomes, bound, alpha, 0.1)
    verdict = {1: "promote", -1: "roll back", 0: "continue"}[int(verdicts[1])]
    assert (steps[1], verdict) == (first or (-1, "continue"))


def test_decide_applies_the_rule_to_the_interval():
    rising = MeanSequence(bound=5.0)
    rising.update_many(np.full(300, 1.0))
    assert rising.interval()[0] > 0 and rising.decide(0.0) == "promote"
    falling = MeanSequence(bound=5.0)
    falling.update_many(np.full(300, -1.0))
    high = falling.interval()[1]
    assert high < 0 and falling.decide(0.0) == "roll back"
    assert falling.decide(-high + 0.01) == "continue"  # within the tolerance
    assert falling.decide(-high - 0.01) == "roll back"
    assert MeanSequence(bound=2.0).decide(0.0) == "continue"
    assert MeanSequence(bound=2.0).interval() == (-2.0, 2.0)


def test_clipping_is_counted_and_the_estimate_is_the_clipped_mean():
    pnl = MeanSequence(bound=1.0)
    pnl.update_many(np.array([3.0, -0.5, 0.25, -7.0, 1.0]))
    assert pnl.clipped == 2
    assert pnl.estimate() == pytest.approx((1.0 - 0.5 + 0.25 - 1.0 + 1.0) / 5)
    assert math.isnan(MeanSequence(bound=1.0).estimate())


# -- the projection (T-SEQ-7) --------------------------------------------------------------------


def test_the_projection_is_infinite_without_an_edge_beyond_the_tolerance():
    assert decisions_to_verdict(0.0, 1.0, 5.0) == math.inf
    assert decisions_to_verdict(-0.05, 1.0, 5.0, tolerance=0.1) == math.inf
    assert decisions_to_verdict(-0.1, 1.0, 5.0, tolerance=0.1) == math.inf
    assert decisions_to_verdict(-0.2, 1.0, 5.0, tolerance=0.1) < math.inf


def projection_step_by_step(edge: float, spread: float, bound: float, horizon: int) -> int:
    """T-SEQ-7 written out with cumulative sums over every decision (no blocks): the first
    decision at which the interval of the expected sums gives a verdict (tolerance 0)."""
    mean, variance = (edge + bound) / (2 * bound), spread**2 / (4 * bound**2)
    log_term = math.log(2 / (1 - 0.95))
    t = np.arange(1, horizon + 1, dtype=float)
    squares = ((t * t + t - 1) * variance + (mean - 0.5) ** 2) / (t + 1) ** 2
    previous_variance = (0.25 + np.concatenate([[0.0], np.cumsum(squares)[:-1]])) / t
    bets = np.minimum(np.sqrt(2 * log_term / (previous_variance * t * np.log1p(t))), 0.5)
    v = 4 * (variance * (1 + (t - 1) / t**2) + ((mean - 0.5) / t) ** 2)
    margin = (log_term + np.cumsum(v * (-np.log1p(-bets) - bets) / 4)) / np.cumsum(bets)
    low = np.maximum.accumulate(np.maximum(mean - margin, 0.0))
    high = np.minimum.accumulate(np.minimum(mean + margin, 1.0))
    decided = (-bound + 2 * bound * low > 0) | (-bound + 2 * bound * high < 0)
    return int(np.argmax(decided)) + 1 if decided.any() else -1


@pytest.mark.parametrize(
    ("edge", "spread", "bound"), [(0.2, 1.0, 5.0), (-0.1, 0.5, 2.0), (0.01, 1.0, 5.0)]
)
def test_the_projection_equals_the_step_by_step_sums(edge, spread, bound):
    """Exact below 65,536 decisions; beyond, block sums at their midpoints, within 0.1 %."""
    exact = projection_step_by_step(edge, spread, bound, 400_000)
    projected = decisions_to_verdict(edge, spread, bound)
    assert exact > 0
    if exact < 65_536:
        assert projected == exact
    else:
        assert projected == pytest.approx(exact, rel=1e-3)


def test_the_projection_falls_with_the_edge_and_grows_with_the_level():
    edges = [0.001, 0.02, 0.05, 0.1, 0.2, 0.5]
    needed = [decisions_to_verdict(e, 1.0, 5.0) for e in edges]
    assert needed == sorted(needed, reverse=True)
    # about 1/edge^2 times a slowly growing (iterated-logarithm-like) factor
    assert 4.0 < decisions_to_verdict(5e-4, 1.0, 5.0) / needed[0] < 5.5
    assert decisions_to_verdict(0.1, 1.0, 5.0, confidence=0.99) > needed[3]
    # symmetric around zero when there is no tolerance (up to the unit-scale centring)
    down = decisions_to_verdict(-0.1, 1.0, 5.0)
    assert abs(needed[3] - down) <= 0.02 * needed[3]


def test_the_projection_rejects_impossible_settings():
    with pytest.raises(ConfigError, match="edge"):
        decisions_to_verdict(6.0, 1.0, 5.0)
    with pytest.raises(ConfigError, match="spread"):
        decisions_to_verdict(0.1, 6.0, 5.0)
    with pytest.raises(ConfigError, match="bound"):
        decisions_to_verdict(0.1, 1.0, 0.0)
    with pytest.raises(ConfigError, match="tolerance"):
        decisions_to_verdict(0.1, 1.0, 5.0, tolerance=-1.0)
    with pytest.raises(ValueError, match="confidence"):
        decisions_to_verdict(0.1, 1.0, 5.0, confidence=1.0)
    with pytest.raises(ConfigError, match="edge"):
        decisions_to_verdict(math.nan, 1.0, 5.0)


# -- the API: updates, serialisation, validation ---------------------------------------------------


def test_proportion_updates_one_by_one_in_chunks_and_at_once_agree():
    outcomes = np.random.default_rng(2).random(500) < 0.2
    one_by_one, chunked, at_once = ProportionSequence(), ProportionSequence(), ProportionSequence()
    for outcome in outcomes:
        one_by_one.update(bool(outcome))
    for chunk in np.array_split(outcomes, 7):
        chunked.update_many(chunk)
    at_once.update_many(outcomes.astype(int))
    assert one_by_one == chunked == at_once
    assert (at_once.count, at_once.successes) == (500, int(outcomes.sum()))


def test_mean_updates_one_by_one_in_chunks_and_at_once_agree():
    outcomes = simulated_outcomes(1, 700, edge=0.05, seed=4)[:, 0]
    one_by_one, chunked, at_once = (MeanSequence(bound=3.0) for _ in range(3))
    for outcome in outcomes:
        one_by_one.update(float(outcome))
    for chunk in np.array_split(outcomes, [1, 2, 50, 333]):
        chunked.update_many(chunk)
    at_once.update_many(outcomes)
    assert one_by_one.to_dict() == chunked.to_dict() == at_once.to_dict()
    assert at_once.count == 700 and at_once.clipped == int((np.abs(outcomes) > 3.0).sum())


def test_both_sequences_survive_a_json_round_trip_and_carry_on_alike():
    rates = ProportionSequence(confidence=0.9, prior_successes=1.0, prior_failures=4.0)
    rates.update_many(np.array([True, False, False, True, False]))
    pnl = MeanSequence(bound=2.0, confidence=0.99)
    pnl.update_many(simulated_outcomes(1, 300, edge=0.1, seed=6)[:, 0])
    for sequence in (rates, pnl):
        copy = type(sequence).from_dict(json.loads(json.dumps(sequence.to_dict())))
        assert copy == sequence and copy.interval() == sequence.interval()
    later = simulated_outcomes(1, 50, seed=7)[:, 0]
    copy = MeanSequence.from_dict(json.loads(json.dumps(pnl.to_dict())))
    copy.update_many(later)
    pnl.update_many(later)
    assert copy == pnl


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1, math.nan, "0.9", True])
def test_a_confidence_outside_the_open_unit_interval_is_refused(confidence):
    with pytest.raises(ConfigError, match="confidence"):
        ProportionSequence(confidence=confidence)
    with pytest.raises(ConfigError, match="confidence"):
        MeanSequence(bound=1.0, confidence=confidence)


@pytest.mark.parametrize("bound", [0.0, -1.0, math.inf, math.nan])
def test_a_bound_that_is_not_positive_and_finite_is_refused(bound):
    with pytest.raises(ConfigError, match="bound"):
        MeanSequence(bound=bound)


def test_outcomes_that_are_not_finite_numbers_are_refused_and_nothing_is_taken():
    pnl = MeanSequence(bound=1.0)
    pnl.update_many(np.array([0.1, 0.2]))
    before = pnl.to_dict()
    with pytest.raises(DataValidationError, match="finite") as error:
        pnl.update_many(np.array([0.3, math.nan, 0.1, math.inf]))
    assert (error.value.row, error.value.count) == (1, 2)
    with pytest.raises(DataValidationError, match="finite"):
        pnl.update(math.nan)
    for bad in ("0.1", None, True):
        with pytest.raises(DataValidationError, match="number"):
            pnl.update(bad)
    with pytest.raises(DataValidationError, match="real numbers"):
        pnl.update_many(np.array(["a", "b"]))
    with pytest.raises(DataValidationError, match="1-D"):
        pnl.update_many(np.zeros((2, 2)))
    assert pnl.to_dict() == before


def test_successes_that_are_not_booleans_are_refused_and_nothing_is_taken():
    rates = ProportionSequence()
    rates.update_many(np.array([True, False]))
    for bad in (0.5, 2, "yes", None, 1.0):
        with pytest.raises(DataValidationError, match="True or False"):
            rates.update(bad)
    with pytest.raises(DataValidationError, match="booleans") as error:
        rates.update_many(np.array([1, 0, 2, 1, 3]))
    assert (error.value.row, error.value.count) == (2, 2)
    with pytest.raises(DataValidationError, match="booleans"):
        rates.update_many(np.array([0.0, 1.0]))
    assert (rates.count, rates.successes) == (2, 1)


def test_inconsistent_or_unknown_state_is_refused():
    with pytest.raises(ConfigError, match="successes"):
        ProportionSequence(count=3, successes=4)
    with pytest.raises(ConfigError, match="did you mean 'successes'"):
        ProportionSequence.from_dict({"count": 3, "sucesses": 1})
    with pytest.raises(ConfigError, match="mapping"):
        MeanSequence.from_dict([("bound", 1.0)])
    with pytest.raises(ConfigError, match="clipped"):
        MeanSequence(bound=1.0, count=2, clipped=3)
    with pytest.raises(ConfigError, match="no decision"):
        MeanSequence(bound=1.0, unit_sum=0.5)
    with pytest.raises(ConfigError, match="prior_successes"):
        ProportionSequence(prior_successes=0.0)
