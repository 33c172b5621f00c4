"""Numba kernels of the confidence sequences (T-SEQ-1 to T-SEQ-8).

One spelling per rule: the python classes of :mod:`qt_backtest.inference.sequential` update
their state and compute their intervals with the scalar kernels below, and the simulation
kernels (many streams at once, ``prange`` over streams) call the same scalar kernels, so that a
simulation tests what the monitor ships.

Two sequences:

* rates (T-SEQ-2, T-SEQ-3): the beta-binomial mixture of Bernoulli likelihood ratios, a
  function of ``(count, successes)`` inverted by root finding;
* means (T-SEQ-4 to T-SEQ-7): the predictable plug-in empirical-Bernstein sequence of
  Waudby-Smith and Ramdas on outcomes clipped and mapped to ``[0, 1]``, whose state is a
  vector of running sums (layout :data:`MEAN_STATE`).

Plain numpy arrays and floats in and out; counts are floats so that a projection may use
expected, non-integer sums.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: Verdict codes of the mean sequence's decision rule (T-SEQ-6).
ROLL_BACK, CONTINUE, PROMOTE = -1, 0, 1
#: Largest bet of the empirical-Bernstein sequence, ``c`` in T-SEQ-5.
BET_CAP = 0.5
#: The mean sequence's state vector, in order (T-SEQ-5): decisions seen, outcomes clipped,
#: sum of the unit outcomes, sum of their squared deviations from the running mean, sum of
#: the bets, bet-weighted sum of the unit outcomes, sum of the variance penalties, and the
#: running intersection of the intervals on the unit scale.
MEAN_STATE = (
    "count",
    "clipped",
    "unit_sum",
    "unit_squares",
    "bet_sum",
    "bet_weighted_sum",
    "penalty_sum",
    "unit_low",
    "unit_high",
)
COUNT, CLIPPED, UNIT_SUM, UNIT_SQUARES, BET_SUM, BET_WEIGHTED_SUM, PENALTY_SUM = range(7)
UNIT_LOW, UNIT_HIGH = 7, 8
#: The projection (T-SEQ-7) steps one decision at a time up to this many decisions, then in
#: blocks of ``count / PROJECTION_BLOCKS`` decisions summed at their midpoint.
PROJECTION_EXACT = 65536.0
PROJECTION_BLOCKS = 4096.0
#: Longest horizon a projection or a rate's exclusion search looks at, in decisions.
LONGEST_HORIZON = 1e18


# --- rates: the beta-binomial mixture (T-SEQ-2, T-SEQ-3) -------------------------------------


@njit(cache=True)
def mixture_threshold_nb(alpha):
    """The level the log mixture must reach to exclude a rate: ``log(1 / alpha)`` (T-SEQ-2)."""
    return math.log(1.0 / alpha)


@njit(cache=True)
def log_beta_nb(a, b):
    """``log B(a, b)``, the logarithm of the beta function (``a, b > 0``)."""
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


@njit(cache=True)
def proportion_log_mixture_nb(count, successes, p, prior_successes, prior_failures):
    """Logarithm of the beta-binomial mixture martingale at the candidate rate ``p`` (T-SEQ-2).

    ``log M_t(p) = log B(a + s, b + f) - log B(a, b) - s log p - f log(1 - p)`` with
    ``s = successes``, ``f = count - successes`` and the prior ``Beta(a, b)`` of the mixture.
    Infinite where ``p`` is 0 after a success or 1 after a failure.
    """
    failures = count - successes
    value = log_beta_nb(prior_successes + successes, prior_failures + failures) - log_beta_nb(
        prior_successes, prior_failures
    )
    if successes > 0.0:
        if p <= 0.0:
            return math.inf
        value -= successes * math.log(p)
    if failures > 0.0:
        if p >= 1.0:
            return math.inf
        value -= failures * math.log1p(-p)
    return value


@njit(cache=True)
def _proportion_root_nb(count, successes, prior_successes, prior_failures, threshold, lo, hi):
    """The rate in ``(lo, hi)`` where the log mixture equals ``threshold``, by Newton steps
    kept inside a shrinking bracket (bisection when a step leaves it).

    The log mixture is convex in ``p`` with its minimum (at most 0) at ``successes / count``;
    ``(lo, hi)`` is one side of that minimum, with the threshold crossed inside."""
    failures = count - successes
    # orientation: the log mixture minus the threshold is positive at the "outer" end
    outer_is_lo = proportion_log_mixture_nb(
        count, successes, lo, prior_successes, prior_failures
    ) > proportion_log_mixture_nb(count, successes, hi, prior_successes, prior_failures)
    p = 0.5 * (lo + hi)
    for _ in range(200):
        gap = (
            proportion_log_mixture_nb(count, successes, p, prior_successes, prior_failures)
            - threshold
        )
        if gap == 0.0:
            return p
        if (gap > 0.0) == outer_is_lo:
            lo = p
        else:
            hi = p
        slope = -successes / p + failures / (1.0 - p)
        step = p - gap / slope if slope != 0.0 else 0.5 * (lo + hi)
        if not lo < step < hi:
            step = 0.5 * (lo + hi)
        if abs(step - p) <= 1e-14 * p or hi - lo <= 1e-15 * hi:
            return step
        p = step
    return p


@njit(cache=True)
def proportion_bounds_nb(count, successes, prior_successes, prior_failures, threshold):
    """The confidence interval ``{p : log M_t(p) < threshold}`` of a rate (T-SEQ-2).

    Parameters
    ----------
    count, successes : float
        Decisions seen and successes among them.
    prior_successes, prior_failures : float
        The mixture's prior ``Beta(a, b)``.
    threshold : float
        ``log(1 / alpha)``.

    Returns
    -------
    (float, float)
        ``(low, high)``; ``(0, 1)`` before the first decision.
    """
    if count <= 0.0:
        return 0.0, 1.0
    rate = successes / count
    low = 0.0
    high = 1.0
    if successes > 0.0:
        low = _proportion_root_nb(
            count, successes, prior_successes, prior_failures, threshold, 0.0, rate
        )
    if successes < count:
        high = _proportion_root_nb(
            count, successes, prior_successes, prior_failures, threshold, rate, 1.0
        )
    return low, high


@njit(cache=True)
def _exclusion_gap_nb(count, successes, k, value, prior_successes, prior_failures, threshold):
    """``log M_{t+k}(value) - threshold`` after ``k`` more decisions at the current rate."""
    rate = successes / count
    mixture = proportion_log_mixture_nb(
        count + k, successes + rate * k, value, prior_successes, prior_failures
    )
    return mixture - threshold


@njit(cache=True)
def proportion_decisions_to_exclude_nb(
    count, successes, value, prior_successes, prior_failures, threshold
):
    """Further decisions until the rate's interval excludes ``value`` when successes keep
    arriving at the current rate (T-SEQ-3): the least integer ``k >= 0`` with
    ``log M_{t+k}(value) >= threshold`` at ``s + k s/t`` successes; ``inf`` before the first
    decision, when the rate equals ``value``, or beyond :data:`LONGEST_HORIZON`."""
    if count <= 0.0 or successes / count == value:
        return math.inf
    prior = (prior_successes, prior_failures, threshold)
    if _exclusion_gap_nb(count, successes, 0.0, value, *prior) >= 0.0:
        return 0.0
    # the gap is convex in k and eventually increasing: double to bracket its one crossing
    lo = 0.0
    hi = 1.0
    while _exclusion_gap_nb(count, successes, hi, value, *prior) < 0.0:
        lo = hi
        hi *= 2.0
        if hi > LONGEST_HORIZON:
            return math.inf
    while hi - lo > 1.0:
        middle = math.floor(0.5 * (lo + hi))
        if _exclusion_gap_nb(count, successes, middle, value, *prior) >= 0.0:
            hi = middle
        else:
            lo = middle
    return hi


@njit(cache=True, parallel=True)
def proportion_sequence_bounds_nb(successes, prior_successes, prior_failures, alpha):
    """The rate's interval after every decision of many streams (T-SEQ-2).

    Parameters
    ----------
    successes : ndarray, shape (decisions, streams), bool
    prior_successes, prior_failures : float
    alpha : float
        ``1 - confidence``.

    Returns
    -------
    low, high : ndarray, shape (decisions, streams)
    """
    decisions, streams = successes.shape
    threshold = mixture_threshold_nb(alpha)
    low = np.empty((decisions, streams))
    high = np.empty((decisions, streams))
    for j in prange(streams):
        wins = 0.0
        for i in range(decisions):
            wins += 1.0 if successes[i, j] else 0.0
            low[i, j], high[i, j] = proportion_bounds_nb(
                i + 1.0, wins, prior_successes, prior_failures, threshold
            )
    return low, high


@njit(cache=True, parallel=True)
def proportion_first_exclusion_nb(successes, rate, prior_successes, prior_failures, alpha):
    """First decision after which the rate's interval excludes ``rate`` (T-SEQ-2), per stream.

    ``rate`` is outside the interval exactly when ``log M_t(rate) >= log(1 / alpha)``, the
    condition :func:`proportion_bounds_nb` inverts. ``successes`` has shape
    (decisions, streams); returns int64 of shape (streams,): the 1-based decision, -1 if never.
    """
    decisions, streams = successes.shape
    threshold = mixture_threshold_nb(alpha)
    out = np.full(streams, -1, dtype=np.int64)
    for j in prange(streams):
        wins = 0.0
        for i in range(decisions):
            wins += 1.0 if successes[i, j] else 0.0
            mixture = proportion_log_mixture_nb(
                i + 1.0, wins, rate, prior_successes, prior_failures
            )
            if mixture >= threshold:
                out[j] = i + 1
                break
    return out


# --- means: the empirical-Bernstein sequence (T-SEQ-4 to T-SEQ-7) ----------------------------


@njit(cache=True)
def eb_log_term_nb(alpha):
    """``log(2 / alpha)``: each side of the mean's interval is held at ``alpha / 2``
    (T-SEQ-5)."""
    return math.log(2.0 / alpha)


@njit(cache=True)
def unit_outcome_nb(outcome, bound):
    """An outcome clipped to ``[-bound, bound]`` and mapped to ``[0, 1]`` (T-SEQ-4), and
    whether it was clipped."""
    clipped = outcome > bound or outcome < -bound
    kept = min(max(outcome, -bound), bound)
    return (kept + bound) / (2.0 * bound), clipped


@njit(cache=True)
def outcome_units_nb(unit, bound):
    """A value on the unit scale back in outcome units: ``-bound + 2 bound unit``."""
    return -bound + 2.0 * bound * unit


@njit(cache=True)
def psi_e_nb(bet):
    """``psi_E(lambda) = (-log(1 - lambda) - lambda) / 4`` (T-SEQ-5)."""
    return (-math.log1p(-bet) - bet) / 4.0


@njit(cache=True)
def eb_bet_nb(t, unit_squares, log_term):
    """The bet ``lambda_t`` on the ``t``-th outcome, from the ``t - 1`` before it (T-SEQ-5):
    ``min(sqrt(2 log(2/alpha) / (sigma2_{t-1} t log(1 + t))), c)`` with
    ``sigma2_{t-1} = (1/4 + unit_squares) / t``."""
    variance = (0.25 + unit_squares) / t
    return min(math.sqrt(2.0 * log_term / (variance * t * math.log1p(t))), BET_CAP)


@njit(cache=True)
def initial_mean_state_nb():
    """The state of a mean sequence before any decision (layout :data:`MEAN_STATE`)."""
    state = np.zeros(len(MEAN_STATE))
    state[UNIT_HIGH] = 1.0
    return state


@njit(cache=True)
def eb_step_bounds_nb(state, log_term):
    """This step's interval on the unit scale, before the running intersection (T-SEQ-5):
    ``sum(lambda x) / sum(lambda) -+ (log(2/alpha) + sum(v psi_E(lambda))) / sum(lambda)``,
    cut to ``[0, 1]``; ``(0, 1)`` before the first decision."""
    if state[COUNT] <= 0.0:
        return 0.0, 1.0
    centre = state[BET_WEIGHTED_SUM] / state[BET_SUM]
    margin = (log_term + state[PENALTY_SUM]) / state[BET_SUM]
    return max(centre - margin, 0.0), min(centre + margin, 1.0)


@njit(cache=True)
def mean_step_nb(state, outcome, bound, log_term):
    """Take one outcome into a mean sequence's state, in place (T-SEQ-4, T-SEQ-5).

    The bet and the variance term use the state before the outcome (predictable); the running
    means and squares then take it in, and the running intersection takes this step's interval.
    """
    unit, clipped = unit_outcome_nb(outcome, bound)
    t = state[COUNT] + 1.0
    previous_mean = (0.5 + state[UNIT_SUM]) / t
    bet = eb_bet_nb(t, state[UNIT_SQUARES], log_term)
    state[BET_SUM] += bet
    state[BET_WEIGHTED_SUM] += bet * unit
    state[PENALTY_SUM] += 4.0 * (unit - previous_mean) ** 2 * psi_e_nb(bet)
    state[UNIT_SUM] += unit
    state[UNIT_SQUARES] += (unit - (0.5 + state[UNIT_SUM]) / (t + 1.0)) ** 2
    state[COUNT] = t
    if clipped:
        state[CLIPPED] += 1.0
    low, high = eb_step_bounds_nb(state, log_term)
    state[UNIT_LOW] = max(state[UNIT_LOW], low)
    state[UNIT_HIGH] = min(state[UNIT_HIGH], high)


@njit(cache=True)
def mean_sequence_update_nb(state, outcomes, bound, log_term):
    """Take ``outcomes`` (1-D, in order) into ``state``, in place, one :func:`mean_step_nb`
    each."""
    for i in range(outcomes.shape[0]):
        mean_step_nb(state, outcomes[i], bound, log_term)


@njit(cache=True)
def verdict_nb(unit_low, unit_high, bound, tolerance):
    """The decision rule (T-SEQ-6) on an interval given on the unit scale: PROMOTE when its
    low end in outcome units is above 0, else ROLL_BACK when its high end is below
    ``-tolerance``, else CONTINUE."""
    if outcome_units_nb(unit_low, bound) > 0.0:
        return PROMOTE
    if outcome_units_nb(unit_high, bound) < -tolerance:
        return ROLL_BACK
    return CONTINUE


@njit(cache=True, parallel=True)
def mean_sequence_bounds_nb(outcomes, bound, alpha, intersect=True):
    """The mean's interval in outcome units after every decision of many streams (T-SEQ-5).

    Parameters
    ----------
    outcomes : ndarray, shape (decisions, streams)
        Finite outcomes, in order down each column.
    bound : float
        Clipping bound, positive.
    alpha : float
        ``1 - confidence``.
    intersect : bool
        Report the running intersection (what :class:`MeanSequence` reports) or each step's
        own interval.

    Returns
    -------
    low, high : ndarray, shape (decisions, streams)
    """
    decisions, streams = outcomes.shape
    log_term = eb_log_term_nb(alpha)
    low = np.empty((decisions, streams))
    high = np.empty((decisions, streams))
    for j in prange(streams):
        state = initial_mean_state_nb()
        for i in range(decisions):
            mean_step_nb(state, outcomes[i, j], bound, log_term)
            if intersect:
                unit_low, unit_high = state[UNIT_LOW], state[UNIT_HIGH]
            else:
                unit_low, unit_high = eb_step_bounds_nb(state, log_term)
            low[i, j] = outcome_units_nb(unit_low, bound)
            high[i, j] = outcome_units_nb(unit_high, bound)
    return low, high


@njit(cache=True, parallel=True)
def first_decision_nb(outcomes, bound, alpha, tolerance):
    """The first verdict of a mean sequence on each of many streams (T-SEQ-6).

    ``outcomes`` has shape (decisions, streams). Returns ``(step, verdict)``, each of shape
    (streams,): the 1-based decision after which the first PROMOTE or ROLL_BACK came (-1 if
    none), and that verdict (CONTINUE if none).
    """
    decisions, streams = outcomes.shape
    log_term = eb_log_term_nb(alpha)
    steps = np.full(streams, -1, dtype=np.int64)
    verdicts = np.zeros(streams, dtype=np.int64)
    for j in prange(streams):
        state = initial_mean_state_nb()
        for i in range(decisions):
            mean_step_nb(state, outcomes[i, j], bound, log_term)
            verdict = verdict_nb(state[UNIT_LOW], state[UNIT_HIGH], bound, tolerance)
            if verdict != CONTINUE:
                steps[j] = i + 1
                verdicts[j] = verdict
                break
    return steps, verdicts


@njit(cache=True)
def _expected_squared_deviation_nb(i, mean, variance):
    """``E (x_i - mu_i)^2`` of uncorrelated unit outcomes of mean ``mean`` and variance
    ``variance``, ``mu_i = (1/2 + x_1 + ... + x_i) / (i + 1)``."""
    return ((i * i + i - 1.0) * variance + (mean - 0.5) ** 2) / (i + 1.0) ** 2


@njit(cache=True)
def _expected_penalty_weight_nb(t, mean, variance):
    """``E v_t = 4 E (x_t - mu_{t-1})^2`` for the same outcomes."""
    return 4.0 * (variance * (1.0 + (t - 1.0) / (t * t)) + ((mean - 0.5) / t) ** 2)


@njit(cache=True)
def projected_decisions_nb(mean, variance, bound, tolerance, log_term):
    """Decisions until the mean sequence decides when its sums take their expected values
    (T-SEQ-7): the bets, variance terms and intervals of :func:`mean_step_nb` computed from
    the expected running sums of unit outcomes of mean ``mean`` and variance ``variance``
    (the centre is then ``mean`` itself), with the running intersection and
    :func:`verdict_nb`. Sums over decisions beyond :data:`PROJECTION_EXACT` are taken in
    blocks at their midpoints. ``inf`` if no verdict within :data:`LONGEST_HORIZON`."""
    t = 0.0
    unit_squares = 0.0
    bet_sum = 0.0
    penalty_sum = 0.0
    unit_low = 0.0
    unit_high = 1.0
    while t < LONGEST_HORIZON:
        block = 1.0 if t < PROJECTION_EXACT else math.floor(t / PROJECTION_BLOCKS)
        middle = t + 0.5 * (block + 1.0)  # the block's middle decision (t + 1 for one)
        squares_before = unit_squares + (middle - 1.0 - t) * _expected_squared_deviation_nb(
            middle, mean, variance
        )
        bet = eb_bet_nb(middle, squares_before, log_term)
        bet_sum += block * bet
        penalty_sum += block * _expected_penalty_weight_nb(middle, mean, variance) * psi_e_nb(bet)
        unit_squares += block * _expected_squared_deviation_nb(middle, mean, variance)
        t += block
        margin = (log_term + penalty_sum) / bet_sum
        unit_low = max(unit_low, max(mean - margin, 0.0))
        unit_high = min(unit_high, min(mean + margin, 1.0))
        if verdict_nb(unit_low, unit_high, bound, tolerance) != CONTINUE:
            return t
    return math.inf


# --- baselines and simulated outcomes, for the checks (T-SEQ-8) ------------------------------


@njit(cache=True, parallel=True)
def repeated_t_test_first_rejection_nb(outcomes, critical):
    """First decision after which the fixed-sample t-test of a zero mean rejects, when it is
    (wrongly) repeated after every decision: ``|mean| / (sd / sqrt(t)) > critical[t - 1]``.

    ``outcomes`` has shape (decisions, streams), ``critical`` (decisions,) (``inf`` where no
    test is made). Returns int64 of shape (streams,), the 1-based decision, -1 if never.
    """
    decisions, streams = outcomes.shape
    out = np.full(streams, -1, dtype=np.int64)
    for j in prange(streams):
        mean = 0.0
        squares = 0.0
        for i in range(decisions):
            # Welford's running mean and sum of squared deviations
            delta = outcomes[i, j] - mean
            mean += delta / (i + 1.0)
            squares += delta * (outcomes[i, j] - mean)
            if i == 0 or squares <= 0.0:
                continue
            sd = math.sqrt(squares / i)
            if abs(mean) * math.sqrt(i + 1.0) / sd > critical[i]:
                out[j] = i + 1
                break
    return out


@njit(cache=True, parallel=True)
def garch_scale_nb(shocks, omega, arch, garch):
    """Scale unit-variance shocks by a GARCH(1,1) volatility, in place, down each column:
    ``x_t = sigma_t z_t``, ``sigma2_t = omega + arch x_{t-1}^2 + garch sigma2_{t-1}``, from
    the unconditional variance ``omega / (1 - arch - garch)``. ``shocks`` has shape
    (decisions, streams)."""
    decisions, streams = shocks.shape
    start = omega / (1.0 - arch - garch)
    for j in prange(streams):
        variance = start
        for i in range(decisions):
            shocks[i, j] *= math.sqrt(variance)
            variance = omega + arch * shocks[i, j] ** 2 + garch * variance
