"""Numba kernel of the vectorised hierarchy replay.

Each bar is decided independently (the live hierarchy keeps no state between bars), with the
same arithmetic, in the same order, as the reference agents in
:mod:`qt_backtest.hierarchy.reference`; the replay tests hold the two equal decision by decision.
Parameters arrive packed by :mod:`qt_backtest.hierarchy.params`.

``replay_nb`` works on chunks of bars in parallel. Everything a bar's discrete votes decide
(ensemble action and label, Meta's vote shares, split and disagreement rules) depends only on
its vote pattern, one of ``4 ** models``, and is looked up from a table decided once per replay
by the per-bar helpers below; what depends on confidences and indicators is computed in loops
that run down one input column at a time, without branches on the data, so that they compile to
vector instructions.

Per-bar rule kernels
--------------------
The functions ending in ``_nb`` that decide one bar (``ensemble_votes_nb``, ``base_decision_nb``,
``meta_votes_nb``, ``meta_fallback_nb``, ``fallback_choice_nb``, ``meta_rules_nb``,
``escalates_nb``, ``uncertainty_rule_nb``, ``arbiter_score_nb``, ``arbiter_verdict_nb``,
``gate_nb``, ``gate_outcome_nb``) are this module's public kernel interface: the sweep kernels
(:mod:`qt_backtest.sweep.nb`) call them, and each names its twin among the reference agents. The
chunked loops of ``replay_nb`` call them too, or, where a loop over a column of bars must take
another shape, mirror them and say why.

Codes written per bar
---------------------
* actions: -1 SELL, 0 HOLD, 1 BUY
* consensus: index into ``CONSENSUS_LABELS`` + ``no_valid_models`` (4)
* meta_decision: -1 Meta did not run, 0 DEFER, 1 ESCALATE
* meta_reason: index into ``reasons.META_REASONS`` (-1 when Meta did not run)
* gate: index into ``reasons.GATE_OUTCOMES`` (-1 when the Arbiter was not called)
* source: 0 ensemble, 1 Arbiter
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import njit, prange

from qt_backtest.codes import (
    BUY,
    GATE_BASE_HOLD,
    GATE_HOLD,
    GATE_LOW_CONFIDENCE,
    GATE_OVERRIDE,
    HOLD,
    INTENDED,
    MODE_ENSEMBLE,
    MODE_META_ARBITER,
    NO_VALID_MODELS,
    REASON_CLEAR,
    REASON_HIGH_DISAGREEMENT,
    REASON_LOW_CONFIDENCE,
    REASON_NO_MODEL,
    REASON_SPLIT_VOTE,
    REASON_UNDECIDED,
    SELL,
    TAG_MACD,
    TAG_MOMENTUM,
    TAG_RSI,
)
from qt_backtest.hierarchy.params import (
    P_ARBITER_CAP,
    P_BASE_CONFIDENCE,
    P_BB_HIGH,
    P_BB_LOW,
    P_CAP,
    P_CONSENSUS,
    P_DEPLOYED,
    P_DISAGREEMENT,
    P_ENTROPY,
    P_FIDELITY,
    P_GATE,
    P_HOLD_BASE,
    P_HOLD_CENTER,
    P_HOLD_SLOPE,
    P_INTENDED_HIGH,
    P_INTENDED_LOW,
    P_LOW_CONFIDENCE,
    P_MACD_FACTOR,
    P_MAY_OPEN,
    P_MIN_ACTIVE,
    P_MIN_TRADE_CONFIDENCE,
    P_MODE,
    P_MOMENTUM,
    P_MOMENTUM_FACTOR,
    P_MULTIPLIER,
    P_NEUTRAL,
    P_NO_VOTER_CONFIDENCE,
    P_PADDING,
    P_REGIME_VOLATILITY,
    P_RSI_HIGH,
    P_RSI_LOW,
    P_RSI_SPAN,
    P_SCORE,
    P_SLOPE,
    P_SPLIT,
    P_STRONG,
    P_TAG,
    P_TREND_STRENGTH,
    P_UNCERTAINTY,
    P_VOLUME_OFFSET,
    P_VOLUME_SPAN,
    P_VOLUME_SPIKE,
    P_WEIGHTS,
)

NAN = np.nan
ENTROPY_EPSILON = 1e-10
LOG3 = math.log(3.0)
CHUNK = 1024  # bars per unit of parallel work; a chunk's scratch arrays stay in cache


# Votes and indicators change at random from bar to bar, so branches on them mispredict about
# half the time. The per-bar code below selects with arithmetic instead: multiplying a finite
# value by 1.0 or 0.0 and adding the zeros leaves every sum exactly as the reference agents'
# sums over the selected terms only.


@njit(cache=True, inline="always", error_model="numpy")
def _flag(condition):
    return np.float64(condition)


@njit(cache=True, inline="always", error_model="numpy")
def _choose(condition, if_true, if_false):
    """Integer select without a branch."""
    return if_false + (if_true - if_false) * np.int64(condition)


@njit(cache=True, inline="always", error_model="numpy")
def _choose_float(condition, if_true, if_false):
    """Exact float select without a branch (both values finite)."""
    on = np.float64(condition)
    return if_true * on + if_false * (1.0 - on)


@njit(cache=True, inline="always", error_model="numpy")
def _argmax3(first, second, third, first_value, second_value, third_value):
    """The first of three actions with the largest value (earlier wins exact ties); the values
    may be counts or weights."""
    second_wins = second_value > first_value
    best = _choose(second_wins, second, first)
    best_value = _choose_float(second_wins, second_value, first_value)
    return _choose(third_value > best_value, third, best)


@njit(cache=True, inline="always", error_model="numpy")
def ensemble_votes_nb(actions, confidences, active, i, weights):
    """Layer 1's vote on bar ``i``: (action, mean confidence of the models voting it, how many
    vote it, voters). No usable vote (no voter, or only weight-0 voters) gives HOLD with 0
    agreeing models.

    Reference twin: the tally of :meth:`qt_backtest.hierarchy.reference.EnsembleVoter.vote`.
    """
    buy = 0.0
    sell = 0.0
    hold = 0.0
    voters = 0
    for m in range(actions.shape[1]):
        is_active = np.int64(active[i, m])
        vote = np.int64(actions[i, m])
        weight = weights[m] * np.float64(is_active)
        buy += weight * _flag(vote == BUY)
        sell += weight * _flag(vote == SELL)
        hold += weight * _flag(vote == HOLD)
        voters += is_active
    if voters == 0:
        return HOLD, 0.0, 0, 0
    action = _argmax3(BUY, SELL, HOLD, buy, sell, hold)
    total = 0.0
    agreeing = 0
    for m in range(actions.shape[1]):
        agrees = np.int64(active[i, m]) * np.int64(actions[i, m] == action)
        total += confidences[i, m] * np.float64(agrees)
        agreeing += agrees
    if agreeing == 0:
        # every active model has weight 0 (see the reference voter)
        return HOLD, 0.0, 0, voters
    return action, total / agreeing, agreeing, voters


@njit(cache=True, inline="always", error_model="numpy")
def base_decision_nb(action, mean, agreeing, voters, params):
    """Layer 1's decision from its vote: (action, confidence, consensus code).

    Reference twin: the labels of :meth:`qt_backtest.hierarchy.reference.EnsembleVoter.vote`.
    """
    if agreeing == 0:
        return HOLD, params[P_NO_VOTER_CONFIDENCE], NO_VALID_MODELS
    # labels nest (split <= strong <= 1), so counting the levels reached equals the if-chain
    label = (
        3
        - np.int64(agreeing >= voters)
        - np.int64(agreeing >= params[P_STRONG] * voters)
        - np.int64(agreeing >= params[P_SPLIT] * voters)
    )
    return action, min(params[P_CAP], mean * params[P_MULTIPLIER + label]), label


@njit(cache=True, inline="always", error_model="numpy")
def meta_votes_nb(actions, active, i, intended):
    """Meta's vote count on bar ``i``: (top action, its share, split vote).

    Reference twin: the counts of :meth:`qt_backtest.hierarchy.reference.MetaPolicy.decide`.
    """
    top, top_count, seen, split = _meta_counts(actions, active, i, intended)
    return top, _share(top_count, seen), split


@njit(cache=True, inline="always", error_model="numpy")
def _share(top_count, seen):
    """The top action's vote share among the ``seen`` models."""
    return top_count / max(seen, 1)


@njit(cache=True, inline="always", error_model="numpy")
def _meta_counts(actions, active, i, intended):
    """Meta's vote count on bar ``i``: (top action, its votes, models seen, split vote)."""
    models = actions.shape[1]
    padded = np.int64(not intended)  # production: Meta sees every model, missing ones padded
    n = 0
    buy = 0
    sell = 0
    hold = 0
    for m in range(models):
        is_active = np.int64(active[i, m])
        seen = max(is_active, padded)
        vote = np.int64(actions[i, m]) * is_active  # a padded model votes HOLD (0)
        n += seen
        buy += seen * np.int64(vote == BUY)
        sell += seen * np.int64(vote == SELL)
        hold += seen * np.int64(vote == HOLD)
    top = _argmax3(BUY, SELL, HOLD, buy, sell, hold)
    top_count = (
        sell * np.int64(top == SELL) + hold * np.int64(top == HOLD) + buy * np.int64(top == BUY)
    )
    if intended:
        split = (buy == sell) & (buy > 0) & (2 * (buy + sell) > n)
    else:
        split = (buy == 2) & (sell == 2)
    return top, top_count, n, split


@njit(cache=True, inline="always", error_model="numpy")
def meta_fallback_nb(actions, confidences, active, i, intended, meta_models, meta_weights, params):
    """Meta's weighted fallback over its weight table, in table order: (action, confidence).

    Reference twin: :meth:`qt_backtest.hierarchy.reference.MetaPolicy.fallback`.
    """
    padded = np.int64(not intended)
    padding = params[P_PADDING]
    total_weight = 0.0
    score_sell = 0.0
    score_hold = 0.0
    score_buy = 0.0
    for k in range(meta_models.shape[0]):
        m = meta_models[k]
        is_active = np.int64(active[i, m])
        weight = meta_weights[k] * np.float64(max(is_active, padded))
        vote = np.int64(actions[i, m]) * is_active
        confidence = _choose_float(is_active, confidences[i, m], padding)
        total_weight += weight
        product = weight * confidence
        score_sell += product * _flag(vote == SELL)
        score_hold += product * _flag(vote == HOLD)
        score_buy += product * _flag(vote == BUY)
    return fallback_choice_nb(score_sell, score_hold, score_buy, total_weight)


@njit(cache=True, inline="always", error_model="numpy")
def fallback_choice_nb(score_sell, score_hold, score_buy, total_weight):
    """Meta's fallback from its weighted score sums and their total weight: (action,
    confidence), exact ties to SELL, then HOLD; no weight gives SELL 0.0.

    Reference twin: the end of :meth:`qt_backtest.hierarchy.reference.MetaPolicy.fallback`.
    """
    if total_weight <= 0.0:
        return SELL, 0.0
    score_sell = score_sell / total_weight
    score_hold = score_hold / total_weight
    score_buy = score_buy / total_weight
    action = _argmax3(SELL, HOLD, BUY, score_sell, score_hold, score_buy)
    confidence = (
        score_sell * _flag(action == SELL)
        + score_hold * _flag(action == HOLD)
        + score_buy * _flag(action == BUY)
    )
    return action, confidence


@njit(cache=True, inline="always", error_model="numpy")
def meta_rules_nb(share, split, rule4_confidence, params):
    """Meta's rules 2-5 for a bar that rule 1 did not decide: reason code. Rule 6 (the
    uncertainty model) is applied afterwards to ``REASON_NO_MODEL`` by ``uncertainty_rule_nb``.

    Reference twin: the rule chain of :meth:`qt_backtest.hierarchy.reference.MetaPolicy.decide`.
    """
    # the first rule that fires decides: apply them from last to first
    reason = REASON_NO_MODEL
    reason = _choose(rule4_confidence < params[P_LOW_CONFIDENCE], REASON_LOW_CONFIDENCE, reason)
    reason = _choose(1.0 - share >= params[P_DISAGREEMENT], REASON_HIGH_DISAGREEMENT, reason)
    return _choose(split, REASON_SPLIT_VOTE, reason)


@njit(cache=True, inline="always", error_model="numpy")
def escalates_nb(reason):
    """Whether Meta's reason code escalates (reference twin: ``codes.ESCALATING_REASONS``)."""
    return (
        (reason == REASON_SPLIT_VOTE)
        | (reason == REASON_HIGH_DISAGREEMENT)
        | (reason == REASON_LOW_CONFIDENCE)
        | (reason == REASON_UNDECIDED)
    )


@njit(cache=True, error_model="numpy")
def uncertainty_rule_nb(actions, confidences, active, i, coef, intercept, features, params):
    """Rule 6 for a bar that passed rules 1-4: (escalate, reason code, entropy).

    Reference twin: the uncertainty branch of
    :meth:`qt_backtest.hierarchy.reference.MetaPolicy.decide`.
    """
    intended = params[P_FIDELITY] == INTENDED
    _meta_features(actions, confidences, active, i, intended, params[P_PADDING], params, features)
    entropy = _entropy(coef, intercept, features)
    if entropy > params[P_ENTROPY]:
        return True, REASON_UNDECIDED, entropy
    return False, REASON_CLEAR, entropy


@njit(cache=True, error_model="numpy")
def _meta_features(actions, confidences, active, i, intended, padding, params, out):
    """The uncertainty model's feature vector of bar ``i`` (see ``uncertainty.meta_features``)."""
    models = actions.shape[1]
    n = 0
    total = 0.0
    highest = -np.inf
    lowest = np.inf
    buy = 0
    sell = 0
    hold = 0
    for m in range(models):
        seen = active[i, m] or not intended
        action = actions[i, m] if active[i, m] else HOLD
        confidence = confidences[i, m] if active[i, m] else padding
        if not seen:
            action, confidence = HOLD, 0.5
        out[4 * m] = 1.0 if action == SELL else 0.0
        out[4 * m + 1] = 1.0 if action == HOLD else 0.0
        out[4 * m + 2] = 1.0 if action == BUY else 0.0
        out[4 * m + 3] = confidence
        if seen:
            n += 1
            total += confidence
            highest = max(highest, confidence)
            lowest = min(lowest, confidence)
            if action == BUY:
                buy += 1
            elif action == SELL:
                sell += 1
            else:
                hold += 1
    base = 4 * models
    mean = total / n
    squares = 0.0
    for m in range(models):
        if active[i, m] or not intended:
            confidence = confidences[i, m] if active[i, m] else padding
            squares += (confidence - mean) * (confidence - mean)
    out[base] = mean
    out[base + 1] = highest
    out[base + 2] = lowest
    out[base + 3] = math.sqrt(squares / n)
    out[base + 4] = buy / n
    out[base + 5] = sell / n
    out[base + 6] = hold / n
    out[base + 7] = 1.0 - max(out[base + 4], max(out[base + 5], out[base + 6]))
    out[base + 8] = params[P_REGIME_VOLATILITY]
    out[base + 9] = params[P_TREND_STRENGTH]


@njit(cache=True, error_model="numpy")
def _entropy(coef, intercept, features):
    logits = np.empty(3)
    for row in range(3):
        logit = intercept[row]
        for k in range(coef.shape[1]):
            logit += coef[row, k] * features[k]
        logits[row] = logit
    top = max(logits[0], max(logits[1], logits[2]))
    weights = np.empty(3)
    total = 0.0
    for row in range(3):
        weights[row] = math.exp(logits[row] - top)
    for row in range(3):
        total += weights[row]
    entropy = 0.0
    for row in range(3):
        p = weights[row] / total
        entropy -= p * math.log(p + ENTROPY_EPSILON)
    return entropy / LOG3


# The Arbiter's parameters as a value, not an array: loops over bars then keep them in registers
# (stores to output arrays could otherwise alias a parameter array and force reloads).
ArbiterParameters = namedtuple(
    "ArbiterParameters",
    [
        "intended",
        "deployed",
        "rsi_low",
        "rsi_high",
        "rsi_span",
        "macd_factor",
        "bb_low",
        "bb_high",
        "volume_spike",
        "volume_offset",
        "volume_span",
        "momentum",
        "momentum_factor",
        "rsi_weight",
        "macd_weight",
        "band_weight",
        "volume_weight",
        "momentum_weight",
        "tag",
        "score_threshold",
        "base_confidence",
        "slope",
        "cap",
        "intended_low",
        "intended_high",
        "hold_base",
        "hold_slope",
        "hold_center",
        "neutral_rsi",
        "neutral_macd",
        "neutral_signal",
        "neutral_position",
        "neutral_volume",
        "neutral_momentum",
    ],
)


@njit(cache=True, inline="always", error_model="numpy")
def _arbiter_parameters(params):
    return ArbiterParameters(
        params[P_FIDELITY] == INTENDED,
        params[P_DEPLOYED] != 0.0,
        params[P_RSI_LOW],
        params[P_RSI_HIGH],
        params[P_RSI_SPAN],
        params[P_MACD_FACTOR],
        params[P_BB_LOW],
        params[P_BB_HIGH],
        params[P_VOLUME_SPIKE],
        params[P_VOLUME_OFFSET],
        params[P_VOLUME_SPAN],
        params[P_MOMENTUM],
        params[P_MOMENTUM_FACTOR],
        params[P_WEIGHTS],
        params[P_WEIGHTS + 1],
        params[P_WEIGHTS + 2],
        params[P_WEIGHTS + 3],
        params[P_WEIGHTS + 4],
        params[P_TAG],
        params[P_SCORE],
        params[P_BASE_CONFIDENCE],
        params[P_SLOPE],
        params[P_ARBITER_CAP],
        params[P_INTENDED_LOW],
        params[P_INTENDED_HIGH],
        params[P_HOLD_BASE],
        params[P_HOLD_SLOPE],
        params[P_HOLD_CENTER],
        params[P_NEUTRAL],
        params[P_NEUTRAL + 1],
        params[P_NEUTRAL + 2],
        params[P_NEUTRAL + 3],
        params[P_NEUTRAL + 4],
        params[P_NEUTRAL + 5],
    )


@njit(cache=True, inline="always", error_model="numpy")
def _neutral(value, default):
    """``value``, or the neutral ``default`` when it is missing."""
    return value if math.isfinite(value) else default


@njit(cache=True, inline="always", error_model="numpy")
def arbiter_score_nb(indicators, i, params):
    """The Arbiter's score on bar ``i`` and the tag bits of each direction:
    (score, tags if it buys, tags if it sells).

    Reference twin: the scoring of :meth:`qt_backtest.hierarchy.reference.Arbiter.analyze`.
    """
    k = _arbiter_parameters(params)
    return _score(
        _neutral(indicators[i, 0], k.neutral_rsi),
        _neutral(indicators[i, 1], k.neutral_macd) - _neutral(indicators[i, 2], k.neutral_signal),
        _neutral(indicators[i, 3], k.neutral_position),
        _neutral(indicators[i, 4], k.neutral_volume),
        _neutral(indicators[i, 5], k.neutral_momentum),
        k,
    )


@njit(cache=True, inline="always", error_model="numpy")
def _score(rsi, difference, position, volume, momentum, k):
    """The Arbiter's score from its (neutral-filled) inputs, ``difference`` = macd - signal,
    and its ``ArbiterParameters`` ``k``: (score, tags if it buys, tags if it sells)."""
    oversold = rsi < k.rsi_low
    overbought = rsi > k.rsi_high
    rsi_signal = np.int64(oversold) - np.int64(overbought)
    rsi_strength = ((k.rsi_low - rsi) / k.rsi_span) * _flag(oversold) + (
        (rsi - k.rsi_high) / k.rsi_span
    ) * _flag(overbought)
    macd_signal = np.int64(difference > 0) - np.int64(difference < 0)
    macd_strength = min(k.macd_factor * abs(difference), 1.0)
    low_band = position < k.bb_low
    high_band = position > k.bb_high
    band_signal = np.int64(low_band) - np.int64(high_band)
    band_strength = (k.bb_low - position) * _flag(low_band) + (position - k.bb_high) * _flag(
        high_band
    )
    spike = volume > k.volume_spike
    # production counts d = 0 as bearish
    confirmation = macd_signal if k.intended else 2 * np.int64(difference > 0) - 1
    volume_signal = confirmation * np.int64(spike)
    volume_strength = min((volume - k.volume_offset) / k.volume_span, 1.0) * _flag(spike)
    momentum_signal = np.int64(momentum > k.momentum) - np.int64(momentum < -k.momentum)
    momentum_strength = min(k.momentum_factor * abs(momentum), 1.0)

    score = 0.0
    score += k.rsi_weight * rsi_signal * rsi_strength
    score += k.macd_weight * macd_signal * macd_strength
    score += k.band_weight * band_signal * band_strength
    score += k.volume_weight * volume_signal * volume_strength
    score += k.momentum_weight * momentum_signal * momentum_strength

    rsi_tag = np.int64(rsi_strength > k.tag)
    macd_tag = np.int64(macd_strength > k.tag)
    buy_tags = (
        TAG_RSI * np.int64(rsi_signal == BUY) * rsi_tag
        + TAG_MACD * np.int64(macd_signal == BUY) * macd_tag
        + TAG_MOMENTUM * np.int64(momentum_signal == BUY)
    )
    sell_tags = (
        TAG_RSI * np.int64(rsi_signal == SELL) * rsi_tag
        + TAG_MACD * np.int64(macd_signal == SELL) * macd_tag
        + TAG_MOMENTUM * np.int64(momentum_signal == SELL)
    )
    return score, buy_tags, sell_tags


@njit(cache=True, inline="always", error_model="numpy")
def arbiter_verdict_nb(score, params):
    """The Arbiter's (action, confidence) for a score; the deployed wiring's analysis error
    gives HOLD 0.50 whatever the score.

    Reference twin: the verdict of :meth:`qt_backtest.hierarchy.reference.Arbiter.analyze`.
    """
    return _verdict(score, _arbiter_parameters(params))


@njit(cache=True, inline="always", error_model="numpy")
def _verdict(score, k):
    """``arbiter_verdict_nb`` with the ``ArbiterParameters`` ``k``."""
    if k.deployed:
        return HOLD, 0.5
    threshold = k.score_threshold
    action = np.int64(score >= threshold) - np.int64(score <= -threshold)
    trade_confidence = min(k.base_confidence + k.slope * abs(score), k.cap)
    if k.intended:
        low, high = k.intended_low, k.intended_high
        hold_confidence = low + (high - low) * (1.0 - abs(score) / threshold)
        hold_confidence = min(max(hold_confidence, low), high)
    else:
        hold_confidence = k.hold_base + k.hold_slope * (k.hold_center - abs(score))
    return action, _choose_float(action != HOLD, trade_confidence, hold_confidence)


@njit(cache=True, inline="always", error_model="numpy")
def _arbiter(indicators, i, params):
    """Layer 3 on bar ``i``: (action, confidence, score, tag bits, analysis error)."""
    if params[P_DEPLOYED] != 0.0:
        return HOLD, 0.5, NAN, 0, True
    score, buy_tags, sell_tags = arbiter_score_nb(indicators, i, params)
    action, confidence = arbiter_verdict_nb(score, params)
    tags = buy_tags * np.int64(action == BUY) + sell_tags * np.int64(action == SELL)
    return action, confidence, score, tags, False


@njit(cache=True, inline="always", error_model="numpy")
def gate_nb(action, confidence, base_action, params):
    """The override gate's outcome code (``codes.GATE_OUTCOMES``) for the Arbiter's ``action``
    and ``confidence`` against Layer 1's ``base_action``.

    Reference twin: :meth:`qt_backtest.hierarchy.reference.Arbiter.gate`.
    """
    return gate_outcome_nb(
        action, confidence, base_action, params[P_GATE], params[P_MAY_OPEN] != 0.0
    )


@njit(cache=True, inline="always", error_model="numpy")
def gate_outcome_nb(action, confidence, base_action, threshold, may_open):
    """:func:`gate_nb` with its two parameters given as values (the replay's loops keep them in
    registers)."""
    # the first failing check names the outcome: apply them from last to first
    outcome = GATE_OVERRIDE
    outcome = _choose((not may_open) & (base_action == HOLD), GATE_BASE_HOLD, outcome)
    outcome = _choose(action == HOLD, GATE_HOLD, outcome)
    return _choose(confidence < threshold, GATE_LOW_CONFIDENCE, outcome)


# Bit fields (shift, width) of a vote pattern's packed word (see ``vote_table_nb``); the action,
# Meta's state and its top action are stored plus one.
W_ACTION = (0, 2)
W_LABEL = (2, 3)
W_VOTERS = (5, 4)
W_AGREEING = (9, 4)
W_META = (13, 2)
W_TOP = (15, 2)
W_STATIC_REASON = (17, 4)
W_TOP_COUNT = (21, 4)
W_SEEN = (25, 4)
META_OFF, META_CONSENSUS, META_RULES = -1, 0, 1


@njit(cache=True, inline="always", error_model="numpy")
def _pack(word, field, value):
    return word | (np.int32(value) << field[0])


@njit(cache=True, inline="always", error_model="numpy")
def _unpack(word, field):
    return (word >> field[0]) & ((1 << field[1]) - 1)


@njit(cache=True, error_model="numpy")
def vote_table_nb(params, weights):
    """Everything the discrete votes of a bar decide, for each of its ``4 ** models`` vote
    patterns (``models`` = ``len(weights)``).

    A bar's pattern code holds two bits per model ``m`` at bit ``2 m``: 0 inactive, 1 SELL,
    2 HOLD, 3 BUY. Each pattern is decided once, by the same helpers as the per-bar code, so a
    table lookup gives exactly the values those helpers give on the bar.

    Returns
    -------
    ndarray of int32, shape (4 ** models,)
        Bit fields ``W_*``: base action, consensus code, voters, models agreeing with the base
        action (0: no usable vote), Meta's state (``META_OFF``: Meta does not run,
        ``META_CONSENSUS``: rule 1 decides, ``META_RULES``: rules 2-6 decide), Meta's top-voted
        action, the reason of rules 2-3 (``REASON_NO_MODEL`` when neither fires), the top action's
        votes and the models Meta sees. One load per bar gives them all.
    """
    models = weights.shape[0]
    patterns = 4**models
    words = np.zeros(patterns, dtype=np.int32)
    actions = np.zeros((1, models), dtype=np.int8)
    active = np.zeros((1, models), dtype=np.bool_)
    confidences = np.full((1, models), 0.5)  # any value: confidences are not in the table
    intended = params[P_FIDELITY] == INTENDED
    meta_runs = params[P_MODE] != MODE_ENSEMBLE
    for pattern in range(patterns):
        for m in range(models):
            state = (pattern >> (2 * m)) & 3
            active[0, m] = state != 0
            actions[0, m] = state - 2 if state != 0 else HOLD
        vote, _, agreeing, voters = ensemble_votes_nb(actions, confidences, active, 0, weights)
        action, _, label = base_decision_nb(vote, 0.0, agreeing, voters, params)
        word = _pack(np.int32(0), W_ACTION, action + 1)
        word = _pack(word, W_LABEL, label)
        word = _pack(word, W_VOTERS, voters)
        word = _pack(word, W_AGREEING, agreeing)
        meta_state = META_OFF
        if meta_runs and voters >= params[P_MIN_ACTIVE]:
            top, top_count, seen, split = _meta_counts(actions, active, 0, intended)
            share = _share(top_count, seen)
            word = _pack(word, W_TOP, top + 1)
            word = _pack(word, W_TOP_COUNT, top_count)
            word = _pack(word, W_SEEN, seen)
            if share >= params[P_CONSENSUS]:
                meta_state = META_CONSENSUS
            else:
                meta_state = META_RULES
                # a confidence of 1 never fires rule 4, which the bar's confidence decides
                word = _pack(word, W_STATIC_REASON, meta_rules_nb(share, split, 1.0, params))
        words[pattern] = _pack(word, W_META, meta_state + 1)
    return words


@njit(cache=True, error_model="numpy")
def _pattern_codes(actions, active, first, last, out):
    for m in range(actions.shape[1]):
        shift = 2 * m
        votes = actions[first:last, m]
        on = active[first:last, m]
        for j in range(last - first):
            out[j] += (np.int32(on[j]) * (np.int32(votes[j]) + 2)) << shift


@njit(cache=True, error_model="numpy")
def _agreeing_confidence(actions, confidences, active, first, last, action, out):
    """Sum, in model order, of the confidences of the active models voting ``action``."""
    for m in range(actions.shape[1]):
        votes = actions[first:last, m]
        values = confidences[first:last, m]
        on = active[first:last, m]
        for j in range(last - first):
            out[j] += values[j] * np.float64(on[j] & (votes[j] == action[j]))


@njit(cache=True, error_model="numpy")
def _fallback_scores(
    actions, confidences, active, first, last, meta_models, meta_weights, padding, sell, hold, buy
):
    """Meta's production fallback sums over its weight table, in table order (missing models
    padded as HOLD at ``padding``), before the division by the total weight."""
    for k in range(meta_models.shape[0]):
        m = meta_models[k]
        weight = meta_weights[k]
        votes = actions[first:last, m]
        values = confidences[first:last, m]
        on = active[first:last, m]
        for j in range(last - first):
            vote = votes[j] if on[j] else HOLD
            product = weight * (values[j] if on[j] else padding)
            sell[j] += product * np.float64(vote == SELL)
            hold[j] += product * np.float64(vote == HOLD)
            buy[j] += product * np.float64(vote == BUY)


@njit(cache=True, error_model="numpy")
def _arbiter_chunk(indicators, first, last, k, score, action, confidence, tags):
    """The Arbiter's verdict on every bar of ``first:last`` (called or not), with its
    ``ArbiterParameters`` ``k``."""
    rsi = indicators[first:last, 0]
    macd = indicators[first:last, 1]
    signal = indicators[first:last, 2]
    position = indicators[first:last, 3]
    volume = indicators[first:last, 4]
    momentum = indicators[first:last, 5]
    for j in range(last - first):
        value, buy_tags, sell_tags = _score(
            _neutral(rsi[j], k.neutral_rsi),
            _neutral(macd[j], k.neutral_macd) - _neutral(signal[j], k.neutral_signal),
            _neutral(position[j], k.neutral_position),
            _neutral(volume[j], k.neutral_volume),
            _neutral(momentum[j], k.neutral_momentum),
            k,
        )
        verdict, verdict_confidence = _verdict(value, k)
        score[j] = value
        action[j] = verdict
        confidence[j] = verdict_confidence
        tags[j] = buy_tags * np.int64(verdict == BUY) + sell_tags * np.int64(verdict == SELL)


@njit(cache=True, parallel=True, error_model="numpy")
def replay_nb(
    actions,
    confidences,
    active,
    indicators,
    params,
    weights,
    meta_models,
    meta_weights,
    coef,
    intercept,
    base_action,
    base_confidence,
    consensus,
    voters,
    meta_decision,
    meta_reason,
    meta_action,
    meta_confidence,
    disagreement,
    entropy,
    arbiter_action,
    arbiter_confidence,
    arbiter_score,
    arbiter_tags,
    arbiter_error,
    gate,
    final_action,
    final_confidence,
    source,
    risk_veto,
):
    """Replay the hierarchy over ``bars`` rows, chunks of rows in parallel.

    Parameters
    ----------
    actions : ndarray of int8, shape (bars, models)
        -1 SELL, 0 HOLD, 1 BUY (ignored where not active).
    confidences : ndarray of float64, shape (bars, models)
        Finite everywhere; in [0, 1] where active.
    active : ndarray of bool, shape (bars, models)
    indicators : ndarray of float64, shape (bars, 6)
        rsi, macd, macd_signal, bb_position, volume_trend, momentum (NaN = neutral default).
    params, weights, meta_models, meta_weights, coef, intercept
        From :func:`qt_backtest.hierarchy.params.pack`.
    base_action ... risk_veto : ndarray, shape (bars,)
        Outputs, written in place (see the module docstring for codes).

    Notes
    -----
    Any memory layout works; column-major (Fortran-ordered) inputs are the fastest, since each
    stage below runs down one model's (or indicator's) column at a time. The stages are simple
    loops over a chunk's bars, free of branches on the data, which the compiler turns into
    vector instructions; what the discrete votes decide comes from ``vote_table_nb``.
    """
    bars = actions.shape[0]
    vote_words = vote_table_nb(params, weights)
    mode = params[P_MODE]
    intended = params[P_FIDELITY] == INTENDED
    uncertainty = params[P_UNCERTAINTY] != 0.0
    arbitrate = mode == MODE_META_ARBITER
    deployed = params[P_DEPLOYED] != 0.0
    arbiter_parameters = _arbiter_parameters(params)
    # production Meta sees every model (missing ones padded), so its fallback divides by all of
    # its weights, summed in table order
    meta_weight = 0.0
    for k in range(meta_models.shape[0]):
        meta_weight += meta_weights[k]
    chunks = (bars + CHUNK - 1) // CHUNK
    for chunk in prange(chunks):
        first, last = chunk * CHUNK, min(bars, (chunk + 1) * CHUNK)
        word, action, total = _vote_chunk(actions, confidences, active, first, last, vote_words)
        _base_and_meta_chunk(
            word,
            action,
            total,
            params,
            base_action[first:last],
            base_confidence[first:last],
            consensus[first:last],
            voters[first:last],
            meta_decision[first:last],
            meta_reason[first:last],
            meta_action[first:last],
            meta_confidence[first:last],
            disagreement[first:last],
            entropy[first:last],
        )
        if not intended and mode != MODE_ENSEMBLE:
            _production_fallback_chunk(
                actions,
                confidences,
                active,
                first,
                last,
                meta_models,
                meta_weights,
                meta_weight,
                word,
                params,
                meta_decision[first:last],
                meta_reason[first:last],
                meta_action[first:last],
                meta_confidence[first:last],
            )
        if uncertainty:
            _uncertainty_chunk(
                actions,
                confidences,
                active,
                first,
                last,
                coef,
                intercept,
                params,
                meta_decision,
                meta_reason,
                entropy,
            )
        # the Arbiter on every bar (cheaper than branching on escalation), kept where called
        verdict_score, verdict, verdict_confidence, verdict_tags = _verdict_chunk(
            indicators, first, last, arbiter_parameters, arbitrate and not deployed
        )
        _final_chunk(
            verdict_score,
            verdict,
            verdict_confidence,
            verdict_tags,
            params,
            base_action[first:last],
            base_confidence[first:last],
            meta_decision[first:last],
            arbiter_action[first:last],
            arbiter_confidence[first:last],
            arbiter_score[first:last],
            arbiter_tags[first:last],
            arbiter_error[first:last],
            gate[first:last],
            final_action[first:last],
            final_confidence[first:last],
            source[first:last],
            risk_veto[first:last],
        )


@njit(cache=True, error_model="numpy")
def _vote_chunk(actions, confidences, active, first, last, vote_words):
    """Layer 1 and Meta's vote counts on bars ``first:last``: (the table word of each bar's vote
    pattern, Layer 1's action, the sum of the confidences voting it)."""
    size = last - first
    pattern = np.zeros(size, dtype=np.int32)
    _pattern_codes(actions, active, first, last, pattern)
    word = np.empty(size, dtype=np.int32)
    for j in range(size):
        word[j] = vote_words[pattern[j]]
    action = np.empty(size, dtype=np.int8)
    for j in range(size):
        action[j] = _unpack(word[j], W_ACTION) - 1
    total = np.zeros(size)
    _agreeing_confidence(actions, confidences, active, first, last, action, total)
    return word, action, total


@njit(cache=True, inline="always", error_model="numpy")
def _low_confidence_rule(static_reason, confidence, low_confidence):
    """Meta's rule 4 on a bar whose rules 2-3 gave ``static_reason`` (the vote table decides
    them with a confidence of 1, which never fires rule 4): the reason code.

    This is :func:`meta_rules_nb` split in two, rules 2-3 once per vote pattern and rule 4 per
    bar, so that the chunked loops need no branch on the votes."""
    low = (static_reason == REASON_NO_MODEL) & (confidence < low_confidence)
    return REASON_LOW_CONFIDENCE if low else static_reason


@njit(cache=True, error_model="numpy")
def _base_and_meta_chunk(
    word,
    action,
    total,
    params,
    out_base_action,
    out_base_confidence,
    out_consensus,
    out_voters,
    out_decision,
    out_reason,
    out_meta_action,
    out_meta_confidence,
    out_disagreement,
    out_entropy,
):
    """Layer 1's confidence and Meta's rules 1-5 (rule 4 on the base confidence) on a chunk of
    bars, from their vote words; the outputs are the chunk's slices.

    Mirrors :func:`base_decision_nb` and :func:`meta_rules_nb` with the vote counts looked up
    instead of counted (the multiplier is chosen by label, not indexed, so that the loop keeps
    the four in registers)."""
    # parameters read into locals, so the loop below need not reload them after each store
    cap = params[P_CAP]
    no_voter_confidence = params[P_NO_VOTER_CONFIDENCE]
    low_confidence = params[P_LOW_CONFIDENCE]
    multipliers = (
        params[P_MULTIPLIER],
        params[P_MULTIPLIER + 1],
        params[P_MULTIPLIER + 2],
        params[P_MULTIPLIER + 3],
    )
    for j in range(word.shape[0]):
        agreeing = _unpack(word[j], W_AGREEING)
        state = _unpack(word[j], W_META) - 1
        top = _unpack(word[j], W_TOP) - 1
        static_reason = _unpack(word[j], W_STATIC_REASON)
        label = _unpack(word[j], W_LABEL)
        usable = agreeing > 0
        mean = total[j] / np.float64(agreeing if usable else 1)
        if label == 0:
            multiplier = multipliers[0]
        elif label == 1:
            multiplier = multipliers[1]
        elif label == 2:
            multiplier = multipliers[2]
        else:
            multiplier = multipliers[3]
        confidence = min(cap, mean * multiplier) if usable else no_voter_confidence
        share = _share(_unpack(word[j], W_TOP_COUNT), _unpack(word[j], W_SEEN))
        ran = state != META_OFF
        rules = state == META_RULES
        reason = _low_confidence_rule(static_reason, confidence, low_confidence)
        out_base_action[j] = action[j]
        out_base_confidence[j] = confidence
        out_consensus[j] = label
        out_voters[j] = _unpack(word[j], W_VOTERS)
        out_reason[j] = reason if rules else (top + 1 if ran else -1)
        out_decision[j] = np.int8(reason != REASON_NO_MODEL) if rules else (0 if ran else -1)
        out_meta_action[j] = action[j] if rules else (top if ran else 0)
        out_meta_confidence[j] = confidence if rules else (share if ran else NAN)
        out_disagreement[j] = 1.0 - share if ran else NAN
        out_entropy[j] = NAN


@njit(cache=True, error_model="numpy")
def _production_fallback_chunk(
    actions,
    confidences,
    active,
    first,
    last,
    meta_models,
    meta_weights,
    meta_weight,
    word,
    params,
    out_decision,
    out_reason,
    out_meta_action,
    out_meta_confidence,
):
    """Production: Meta records its own weighted fallback on a chunk of bars and rule 4 reads
    its confidence. :func:`meta_fallback_nb` per bar, with the weighted sums accumulated one
    model column at a time."""
    size = last - first
    low_confidence = params[P_LOW_CONFIDENCE]
    sell = np.zeros(size)
    hold = np.zeros(size)
    buy = np.zeros(size)
    _fallback_scores(
        actions,
        confidences,
        active,
        first,
        last,
        meta_models,
        meta_weights,
        params[P_PADDING],
        sell,
        hold,
        buy,
    )
    for j in range(size):
        fallback, fallback_confidence = fallback_choice_nb(sell[j], hold[j], buy[j], meta_weight)
        reason = _low_confidence_rule(
            _unpack(word[j], W_STATIC_REASON), fallback_confidence, low_confidence
        )
        rules = _unpack(word[j], W_META) - 1 == META_RULES
        out_reason[j] = reason if rules else out_reason[j]
        out_decision[j] = np.int8(reason != REASON_NO_MODEL) if rules else out_decision[j]
        out_meta_action[j] = fallback if rules else out_meta_action[j]
        out_meta_confidence[j] = fallback_confidence if rules else out_meta_confidence[j]


@njit(cache=True, error_model="numpy")
def _verdict_chunk(indicators, first, last, arbiter_parameters, analyse):
    """The Arbiter's verdicts on bars ``first:last``: (score, action, confidence, tag bits) of
    :func:`_arbiter_chunk` when it ``analyse``s, else the analysis error's HOLD 0.50."""
    size = last - first
    verdict_score = np.full(size, NAN)
    verdict = np.zeros(size, dtype=np.int8)
    verdict_confidence = np.full(size, 0.5)
    verdict_tags = np.zeros(size, dtype=np.int8)
    if analyse:
        _arbiter_chunk(
            indicators,
            first,
            last,
            arbiter_parameters,
            verdict_score,
            verdict,
            verdict_confidence,
            verdict_tags,
        )
    return verdict_score, verdict, verdict_confidence, verdict_tags


@njit(cache=True, error_model="numpy")
def _uncertainty_chunk(
    actions,
    confidences,
    active,
    first,
    last,
    coef,
    intercept,
    params,
    meta_decision,
    meta_reason,
    entropy,
):
    """Meta's rule 6 (:func:`uncertainty_rule_nb`) on the bars of ``first:last`` that rules 1-4
    did not decide: rare enough to go bar by bar."""
    features = np.empty(coef.shape[1])
    for i in range(first, last):
        if meta_reason[i] == REASON_NO_MODEL:
            escalate, reason, value = uncertainty_rule_nb(
                actions, confidences, active, i, coef, intercept, features, params
            )
            meta_decision[i] = 1 if escalate else 0
            meta_reason[i] = reason
            entropy[i] = value


@njit(cache=True, error_model="numpy")
def _final_chunk(
    verdict_score,
    verdict,
    verdict_confidence,
    verdict_tags,
    params,
    base_action,
    base_confidence,
    meta_decision,
    out_arbiter_action,
    out_arbiter_confidence,
    out_arbiter_score,
    out_arbiter_tags,
    out_arbiter_error,
    out_gate,
    out_final_action,
    out_final_confidence,
    out_source,
    out_risk_veto,
):
    """The Arbiter's call, the override gate (:func:`gate_outcome_nb`) and the risk governor on
    a chunk of bars whose Arbiter verdicts are given; the outputs are the chunk's slices."""
    arbitrate = params[P_MODE] == MODE_META_ARBITER
    deployed = params[P_DEPLOYED] != 0.0
    arbiter_threshold = params[P_GATE]
    may_open = params[P_MAY_OPEN] != 0.0
    min_trade = params[P_MIN_TRADE_CONFIDENCE]
    for j in range(verdict.shape[0]):
        called = arbitrate & (meta_decision[j] == 1)
        arbiter_says = verdict[j]
        arbiter_confidence = verdict_confidence[j]
        base = base_action[j]
        outcome = gate_outcome_nb(
            arbiter_says, arbiter_confidence, base, arbiter_threshold, may_open
        )
        override = called & (outcome == GATE_OVERRIDE)
        final = arbiter_says if override else base
        final_confidence = arbiter_confidence if override else base_confidence[j]
        # False when min_trade is NaN (no risk governor)
        vetoed = (final != HOLD) & (final_confidence < min_trade)
        out_gate[j] = outcome if called else -1
        out_arbiter_action[j] = arbiter_says if called else 0
        out_arbiter_confidence[j] = arbiter_confidence if called else NAN
        out_arbiter_score[j] = verdict_score[j] if called else NAN
        out_arbiter_tags[j] = verdict_tags[j] if called else 0
        out_arbiter_error[j] = called & deployed
        out_final_action[j] = HOLD if vetoed else final
        out_final_confidence[j] = final_confidence
        out_source[j] = np.int8(override)
        out_risk_veto[j] = vetoed


@njit(cache=True, parallel=True, error_model="numpy")
def meta_feature_matrix_nb(actions, confidences, active, params, out):
    """The uncertainty model's feature vector of every bar, shape (bars, 4 * models + 10)."""
    intended = params[P_FIDELITY] == INTENDED
    padding = params[P_PADDING]
    for i in prange(actions.shape[0]):
        _meta_features(actions, confidences, active, i, intended, padding, params, out[i])
    return out


@njit(cache=True, parallel=True, error_model="numpy")
def check_votes_nb(actions, confidences, active):
    """(first row where an active model's action is not -1, 0 or 1, or -1; first row where an
    active model's confidence is outside [0, 1] or NaN, or -1; whether any inactive slot holds
    a non-finite confidence)."""
    bars = actions.shape[0]
    chunks = (bars + CHUNK - 1) // CHUNK
    bad_action = np.full(chunks, bars)
    bad_confidence = np.full(chunks, bars)
    nonfinite = np.zeros(chunks, dtype=np.bool_)
    for chunk in prange(chunks):
        first, last = chunk * CHUNK, min(bars, (chunk + 1) * CHUNK)
        for m in range(actions.shape[1]):
            votes = actions[first:last, m]
            values = confidences[first:last, m]
            on = active[first:last, m]
            # count first (a loop without branches), look for the row only when one is bad
            invalid_actions = 0
            invalid_confidences = 0
            missing_nonfinite = 0
            for j in range(last - first):
                usable = (values[j] >= 0.0) & (values[j] <= 1.0)
                invalid_actions += np.int64(on[j] & ((votes[j] < -1) | (votes[j] > 1)))
                invalid_confidences += np.int64(on[j] & (not usable))
                missing_nonfinite += np.int64((not on[j]) & (not math.isfinite(values[j])))
            nonfinite[chunk] |= missing_nonfinite > 0
            for j in range(last - first):
                if invalid_actions == 0 and invalid_confidences == 0:
                    break
                if on[j] and not -1 <= votes[j] <= 1:
                    bad_action[chunk] = min(bad_action[chunk], first + j)
                if on[j] and not 0.0 <= values[j] <= 1.0:
                    bad_confidence[chunk] = min(bad_confidence[chunk], first + j)
    first_action = bad_action.min() if chunks else bars
    first_confidence = bad_confidence.min() if chunks else bars
    return (
        first_action if first_action < bars else -1,
        first_confidence if first_confidence < bars else -1,
        nonfinite.any(),
    )


@njit(cache=True, parallel=True, error_model="numpy")
def arbiter_nb(indicators, params, action, confidence, score, tags):
    """The Arbiter's own decision on every bar (called or not), for reference strategies."""
    for i in prange(indicators.shape[0]):
        a_action, a_conf, a_score, a_tags, _ = _arbiter(indicators, i, params)
        action[i] = a_action
        confidence[i] = a_conf
        score[i] = a_score
        tags[i] = a_tags
