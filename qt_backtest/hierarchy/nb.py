"""Numba kernel of the vectorised hierarchy replay.

Each bar is decided independently (the live hierarchy keeps no state between bars), with the
same arithmetic, in the same order, as the reference agents in
:mod:`qt_backtest.hierarchy.reference`; the replay tests hold the two equal decision by decision.
Parameters arrive packed by :mod:`qt_backtest.hierarchy.params`.

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

import numpy as np
from numba import njit, prange

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
SELL, HOLD, BUY = -1, 0, 1
NO_VALID_MODELS = 4
MODE_ENSEMBLE, MODE_META_ARBITER = 0, 2
INTENDED = 1
# reason codes, in reasons.META_REASONS order
R_SPLIT, R_DISAGREEMENT, R_LOW_CONFIDENCE = 3, 4, 5
R_NO_MODEL, R_UNDECIDED, R_CLEAR = 6, 7, 8
# gate outcomes, in reasons.GATE_OUTCOMES order
G_OVERRIDE, G_LOW_CONFIDENCE, G_HOLD, G_BASE_HOLD = 0, 1, 2, 3
TAG_RSI, TAG_MACD, TAG_MOMENTUM = 1, 2, 4
ENTROPY_EPSILON = 1e-10
LOG3 = math.log(3.0)
CHUNK = 4096


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
def _votes(actions, confidences, active, i, weights):
    """Layer 1's vote on bar ``i``: (action, mean confidence of the models voting it, how many
    vote it, voters). No usable vote (no voter, or only weight-0 voters) gives HOLD with 0
    agreeing models."""
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
def _base(action, mean, agreeing, voters, params):
    """Layer 1's decision from its vote: (action, confidence, consensus code)."""
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
def _meta_votes(actions, active, i, intended):
    """Meta's vote count on bar ``i``: (top action, its share, split vote)."""
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
    return top, top_count / max(n, 1), split


@njit(cache=True, inline="always", error_model="numpy")
def _meta_fallback(actions, confidences, active, i, intended, meta_models, meta_weights, params):
    """Meta's weighted fallback over its weight table, in table order: (action, confidence)."""
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
def _meta_rules(share, split, rule4_confidence, params):
    """Meta's rules 2-5 for a bar that rule 1 did not decide: reason code. Rule 6 (the
    uncertainty model) is applied afterwards to ``R_NO_MODEL`` by ``_uncertainty_rule``."""
    # the first rule that fires decides: apply them from last to first
    reason = R_NO_MODEL
    reason = _choose(rule4_confidence < params[P_LOW_CONFIDENCE], R_LOW_CONFIDENCE, reason)
    reason = _choose(1.0 - share >= params[P_DISAGREEMENT], R_DISAGREEMENT, reason)
    return _choose(split, R_SPLIT, reason)


@njit(cache=True, inline="always", error_model="numpy")
def _escalates(reason):
    return (
        (reason == R_SPLIT)
        | (reason == R_DISAGREEMENT)
        | (reason == R_LOW_CONFIDENCE)
        | (reason == R_UNDECIDED)
    )


@njit(cache=True, error_model="numpy")
def _uncertainty_rule(actions, confidences, active, i, coef, intercept, features, params):
    """Rule 6 for a bar that passed rules 1-4: (escalate, reason code, entropy)."""
    intended = params[P_FIDELITY] == INTENDED
    _meta_features(actions, confidences, active, i, intended, params[P_PADDING], params, features)
    entropy = _entropy(coef, intercept, features)
    if entropy > params[P_ENTROPY]:
        return True, R_UNDECIDED, entropy
    return False, R_CLEAR, entropy


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


@njit(cache=True, inline="always", error_model="numpy")
def _value(indicators, i, column, params):
    value = indicators[i, column]
    if math.isfinite(value):
        return value
    return params[P_NEUTRAL + column]


@njit(cache=True, inline="always", error_model="numpy")
def _arbiter_score(indicators, i, params):
    """The Arbiter's score on bar ``i`` and the tag bits of each direction:
    (score, tags if it buys, tags if it sells)."""
    intended = params[P_FIDELITY] == INTENDED
    rsi = _value(indicators, i, 0, params)
    difference = _value(indicators, i, 1, params) - _value(indicators, i, 2, params)
    position = _value(indicators, i, 3, params)
    volume = _value(indicators, i, 4, params)
    momentum = _value(indicators, i, 5, params)

    oversold = rsi < params[P_RSI_LOW]
    overbought = rsi > params[P_RSI_HIGH]
    rsi_signal = np.int64(oversold) - np.int64(overbought)
    rsi_strength = ((params[P_RSI_LOW] - rsi) / params[P_RSI_SPAN]) * _flag(oversold) + (
        (rsi - params[P_RSI_HIGH]) / params[P_RSI_SPAN]
    ) * _flag(overbought)
    macd_signal = np.int64(difference > 0) - np.int64(difference < 0)
    macd_strength = min(params[P_MACD_FACTOR] * abs(difference), 1.0)
    low_band = position < params[P_BB_LOW]
    high_band = position > params[P_BB_HIGH]
    band_signal = np.int64(low_band) - np.int64(high_band)
    band_strength = (params[P_BB_LOW] - position) * _flag(low_band) + (
        position - params[P_BB_HIGH]
    ) * _flag(high_band)
    spike = volume > params[P_VOLUME_SPIKE]
    if intended:
        confirmation = macd_signal
    else:
        confirmation = 2 * np.int64(difference > 0) - 1  # d = 0 counts as bearish
    volume_signal = confirmation * np.int64(spike)
    volume_strength = min((volume - params[P_VOLUME_OFFSET]) / params[P_VOLUME_SPAN], 1.0) * _flag(
        spike
    )
    momentum_signal = np.int64(momentum > params[P_MOMENTUM]) - np.int64(
        momentum < -params[P_MOMENTUM]
    )
    momentum_strength = min(params[P_MOMENTUM_FACTOR] * abs(momentum), 1.0)

    score = 0.0
    score += params[P_WEIGHTS] * rsi_signal * rsi_strength
    score += params[P_WEIGHTS + 1] * macd_signal * macd_strength
    score += params[P_WEIGHTS + 2] * band_signal * band_strength
    score += params[P_WEIGHTS + 3] * volume_signal * volume_strength
    score += params[P_WEIGHTS + 4] * momentum_signal * momentum_strength

    tag = params[P_TAG]
    rsi_tag = np.int64(rsi_strength > tag)
    macd_tag = np.int64(macd_strength > tag)
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
def _arbiter_verdict(score, params):
    """The Arbiter's (action, confidence) for a score; the deployed wiring's analysis error
    gives HOLD 0.50 whatever the score."""
    if params[P_DEPLOYED] != 0.0:
        return HOLD, 0.5
    threshold = params[P_SCORE]
    action = np.int64(score >= threshold) - np.int64(score <= -threshold)
    trade_confidence = min(
        params[P_BASE_CONFIDENCE] + params[P_SLOPE] * abs(score), params[P_ARBITER_CAP]
    )
    if params[P_FIDELITY] == INTENDED:
        low, high = params[P_INTENDED_LOW], params[P_INTENDED_HIGH]
        hold_confidence = low + (high - low) * (1.0 - abs(score) / threshold)
        hold_confidence = min(max(hold_confidence, low), high)
    else:
        hold_confidence = params[P_HOLD_BASE] + params[P_HOLD_SLOPE] * (
            params[P_HOLD_CENTER] - abs(score)
        )
    return action, _choose_float(action != HOLD, trade_confidence, hold_confidence)


@njit(cache=True, inline="always", error_model="numpy")
def _arbiter(indicators, i, params):
    """Layer 3 on bar ``i``: (action, confidence, score, tag bits, analysis error)."""
    if params[P_DEPLOYED] != 0.0:
        return HOLD, 0.5, NAN, 0, True
    score, buy_tags, sell_tags = _arbiter_score(indicators, i, params)
    action, confidence = _arbiter_verdict(score, params)
    tags = buy_tags * np.int64(action == BUY) + sell_tags * np.int64(action == SELL)
    return action, confidence, score, tags, False


@njit(cache=True, inline="always", error_model="numpy")
def _gate(action, confidence, base_action, params):
    # the first failing check names the outcome: apply them from last to first
    outcome = G_OVERRIDE
    outcome = _choose((params[P_MAY_OPEN] == 0.0) & (base_action == HOLD), G_BASE_HOLD, outcome)
    outcome = _choose(action == HOLD, G_HOLD, outcome)
    return _choose(confidence < params[P_GATE], G_LOW_CONFIDENCE, outcome)


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
    active : ndarray of bool, shape (bars, models)
    indicators : ndarray of float64, shape (bars, 6)
        rsi, macd, macd_signal, bb_position, volume_trend, momentum (NaN = neutral default).
    params, weights, meta_models, meta_weights, coef, intercept
        From :func:`qt_backtest.hierarchy.params.pack`.
    base_action ... risk_veto : ndarray, shape (bars,)
        Outputs, written in place (see the module docstring for codes).
    """
    bars = actions.shape[0]
    mode = params[P_MODE]
    min_active = params[P_MIN_ACTIVE]
    min_trade = params[P_MIN_TRADE_CONFIDENCE]
    uncertainty = params[P_UNCERTAINTY] != 0.0
    intended = params[P_FIDELITY] == INTENDED
    chunks = (bars + CHUNK - 1) // CHUNK
    for chunk in prange(chunks):
        first, last = chunk * CHUNK, min(bars, (chunk + 1) * CHUNK)
        features = np.empty(coef.shape[1])
        # pass 1: ensemble and Meta rules 1-5
        for i in range(first, last):
            vote, mean, agreeing, count = _votes(actions, confidences, active, i, weights)
            action, confidence, label = _base(vote, mean, agreeing, count, params)
            base_action[i] = action
            base_confidence[i] = confidence
            consensus[i] = label
            voters[i] = count
            meta_decision[i] = -1
            meta_reason[i] = -1
            meta_action[i] = 0
            meta_confidence[i] = NAN
            disagreement[i] = NAN
            entropy[i] = NAN
            if mode != MODE_ENSEMBLE and count >= min_active:
                top, share, split = _meta_votes(actions, active, i, intended)
                disagreement[i] = 1.0 - share
                if share >= params[P_CONSENSUS]:
                    # rule 1 decides and Meta records the top share: no fallback needed
                    meta_decision[i] = 0
                    meta_reason[i] = top + 1
                    meta_action[i] = top
                    meta_confidence[i] = share
                    continue
                fallback, fallback_confidence = _meta_fallback(
                    actions, confidences, active, i, intended, meta_models, meta_weights, params
                )
                if intended:
                    reason = _meta_rules(share, split, confidence, params)
                    meta_action[i] = action
                    meta_confidence[i] = confidence
                else:
                    reason = _meta_rules(share, split, fallback_confidence, params)
                    meta_action[i] = fallback
                    meta_confidence[i] = fallback_confidence
                meta_decision[i] = 1 if _escalates(reason) else 0
                meta_reason[i] = reason
        # pass 2: Meta rule 6 where rules 1-4 did not decide
        if uncertainty:
            for i in range(first, last):
                if meta_reason[i] == R_NO_MODEL:
                    escalate, reason, value = _uncertainty_rule(
                        actions, confidences, active, i, coef, intercept, features, params
                    )
                    meta_decision[i] = 1 if escalate else 0
                    meta_reason[i] = reason
                    entropy[i] = value
        # pass 3: Arbiter, gate, final decision and the risk governor
        for i in range(first, last):
            gate[i] = -1
            arbiter_action[i] = 0
            arbiter_confidence[i] = NAN
            arbiter_score[i] = NAN
            arbiter_tags[i] = 0
            arbiter_error[i] = False
            final = base_action[i]
            final_conf = base_confidence[i]
            final_source = 0
            if meta_decision[i] == 1 and mode == MODE_META_ARBITER:
                a_action, a_conf, a_score, a_tags, a_error = _arbiter(indicators, i, params)
                outcome = _gate(a_action, a_conf, final, params)
                arbiter_action[i] = a_action
                arbiter_confidence[i] = a_conf
                arbiter_score[i] = a_score
                arbiter_tags[i] = a_tags
                arbiter_error[i] = a_error
                gate[i] = outcome
                if outcome == G_OVERRIDE:
                    final = a_action
                    final_conf = a_conf
                    final_source = 1
            vetoed = final != HOLD and final_conf < min_trade  # False when min_trade is NaN
            risk_veto[i] = vetoed
            final_action[i] = HOLD if vetoed else final
            final_confidence[i] = final_conf
            source[i] = final_source


@njit(cache=True, parallel=True, error_model="numpy")
def meta_feature_matrix_nb(actions, confidences, active, params, out):
    """The uncertainty model's feature vector of every bar, shape (bars, 4 * models + 10)."""
    intended = params[P_FIDELITY] == INTENDED
    padding = params[P_PADDING]
    for i in prange(actions.shape[0]):
        _meta_features(actions, confidences, active, i, intended, padding, params, out[i])
    return out


@njit(cache=True, error_model="numpy")
def check_confidences_nb(confidences, active):
    """(first row where an active model's confidence is outside [0, 1] or NaN, or -1;
    whether any inactive slot holds a non-finite value)."""
    nonfinite = False
    for i in range(confidences.shape[0]):
        for m in range(confidences.shape[1]):
            value = confidences[i, m]
            if active[i, m]:
                if not (0.0 <= value <= 1.0):
                    return i, nonfinite
            elif not math.isfinite(value):
                nonfinite = True
    return -1, nonfinite


@njit(cache=True, parallel=True, error_model="numpy")
def arbiter_nb(indicators, params, action, confidence, score, tags):
    """The Arbiter's own decision on every bar (called or not), for reference strategies."""
    for i in prange(indicators.shape[0]):
        a_action, a_conf, a_score, a_tags, _ = _arbiter(indicators, i, params)
        action[i] = a_action
        confidence[i] = a_conf
        score[i] = a_score
        tags[i] = a_tags
