"""Fused sweep kernel: decide (all three layers), trade and score many parameter combinations
while streaming over the bars once.

Nothing of size bars x combinations is ever built. Per combination the kernel keeps running
state only -- cash, position, the open trade, the position model, metric accumulators -- and
writes one row of statistics plus a few moments per time block (for overfitting controls).
Bars are processed in tiles small enough for the per-bar inputs to stay in cache while every
combination of the chunk passes over them, in parallel over combinations.

The decision arithmetic is the replay kernel's (:mod:`qt_backtest.hierarchy.nb`), and fills and
trades follow :mod:`qt_backtest.backtest.nb`, so each combination's metrics equal a single
replay + vectorbt simulation of it.

Per-bar inputs that no swept parameter changes arrive precomputed (``bar_inputs``: Layer 1's
vote and decision, Meta's vote statistics, the Arbiter's score and verdict); a layer whose own
parameters vary between combinations is recomputed per combination from the raw votes and
indicators instead. The thresholds that compare these values are all a combination reads of its
own on most bars. Which layers are recomputed is told by passing ``True`` or ``None`` for
``vote_inputs``, ``meta_inputs`` and ``score_inputs``: Numba compiles a separate kernel for each
pattern and drops the code of the layers passed ``None``, which keeps the common kernel lean.

The kernel's own helpers are ordinary compiled functions, not inlined into Numba's IR
(``inline="always"``): LLVM inlines them where it pays anyway, and IR inlining made each of the
eight patterns take about 80 s to compile instead of about 8 s, for no gain at run time.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from qt_backtest.backtest.nb import (
    book_fill_nb,
    close_out_price_nb,
    exposure_step_nb,
    fill_target_percent_nb,
    fill_units_nb,
    liquidation_levels_nb,
)
from qt_backtest.codes import (
    GATE_OVERRIDE,
    HOLD,
    INTENDED,
    MODE_ENSEMBLE,
    MODE_META_ARBITER,
    REASON_CLEAR,
    REASON_NO_MODEL,
    REASON_UNDECIDED,
    SWEEP_BAR_INPUTS,
    SWEEP_BLOCKS,
    SWEEP_RULES,
    SWEEP_STATE,
    SWEEP_STATS,
    positions,
)
from qt_backtest.hierarchy.nb import (
    arbiter_score_nb,
    arbiter_verdict_nb,
    base_decision_nb,
    ensemble_votes_nb,
    escalates_nb,
    gate_nb,
    meta_fallback_nb,
    meta_rules_nb,
    meta_votes_nb,
    uncertainty_rule_nb,
)
from qt_backtest.hierarchy.params import (
    P_CONSENSUS,
    P_ENTROPY,
    P_FIDELITY,
    P_MIN_ACTIVE,
    P_MIN_TRADE_CONFIDENCE,
    P_MODE,
    P_UNCERTAINTY,
)

# columns of ``bar_inputs``, named in ``codes.SWEEP_BAR_INPUTS``
_BAR = positions(SWEEP_BAR_INPUTS)
B_ACTION = _BAR["action"]
B_MEAN = _BAR["mean"]
B_AGREEING = _BAR["agreeing"]
B_VOTERS = _BAR["voters"]
B_SHARE = _BAR["share"]
B_SPLIT = _BAR["split"]
B_FALLBACK = _BAR["fallback"]
B_ENTROPY = _BAR["entropy"]
B_SCORE = _BAR["score"]
B_BASE_ACTION = _BAR["base_action"]
B_BASE_CONFIDENCE = _BAR["base_confidence"]
B_VERDICT = _BAR["verdict"]
B_VERDICT_CONFIDENCE = _BAR["verdict_confidence"]
B_FILL = _BAR["fill"]
B_CLOSE = _BAR["close"]
B_OPEN = _BAR["open"]
B_LOW = _BAR["low"]
B_HIGH = _BAR["high"]
BAR_COLUMNS = len(SWEEP_BAR_INPUTS)

# columns of ``rules`` (one row per combination), named in ``codes.SWEEP_RULES``
_RULE = positions(SWEEP_RULES)
R_LONG_ONLY = _RULE["long_only"]
R_HOLD_FLAT = _RULE["hold_flat"]
R_MAX_HOLD = _RULE["max_hold"]
R_SIZE = _RULE["size"]
R_SCALE = _RULE["scale"]
R_LAG = _RULE["lag"]
R_FEE = _RULE["fee"]
R_SLIPPAGE = _RULE["slippage"]
R_FILL_AT_OPEN = _RULE["fill_at_open"]
R_MAINTENANCE = _RULE["maintenance"]
RULE_COLUMNS = len(SWEEP_RULES)

# columns of ``stats`` (one row per combination), named in ``codes.SWEEP_STATS``
_STAT = positions(SWEEP_STATS)
S_FINAL_VALUE = _STAT["final_value"]
S_SUM = _STAT["sum"]
S_SUMSQ = _STAT["sumsq"]
S_SUM3 = _STAT["sum3"]
S_SUM4 = _STAT["sum4"]
S_DOWNSIDE = _STAT["downside"]
S_VALUE_SUM = _STAT["value_sum"]
S_MAX_DRAWDOWN = _STAT["max_drawdown"]
S_DRAWDOWN_BARS = _STAT["drawdown_bars"]
S_DRAWDOWN_START = _STAT["drawdown_start"]
S_DRAWDOWN_STOP = _STAT["drawdown_stop"]
S_EXPOSED = _STAT["exposed"]
S_TRADED = _STAT["traded"]
S_FEES = _STAT["fees"]
S_TRADES = _STAT["trades"]
S_WINS = _STAT["wins"]
S_WIN_SUM = _STAT["win_sum"]
S_LOSSES = _STAT["losses"]
S_LOSS_SUM = _STAT["loss_sum"]
S_PNL_SUM = _STAT["pnl_sum"]
S_META_RAN = _STAT["meta_ran"]
S_ESCALATIONS = _STAT["escalations"]
S_ARBITER_CALLS = _STAT["arbiter_calls"]
S_OVERRIDES = _STAT["overrides"]
S_VETOES = _STAT["vetoes"]
S_ORDERS = _STAT["orders"]
S_RUIN_BAR = _STAT["ruin_bar"]
S_STREAM_A = _STAT["stream_a"]
S_STREAM_B = _STAT["stream_b"]
STAT_COLUMNS = len(SWEEP_STATS)

# columns of ``blocks`` (combinations x blocks x BLOCK_COLUMNS), named in ``codes.SWEEP_BLOCKS``
_BLOCK = positions(SWEEP_BLOCKS)
K_SUM = _BLOCK["sum"]
K_SUMSQ = _BLOCK["sumsq"]
K_GROWTH = _BLOCK["growth"]
BLOCK_COLUMNS = len(SWEEP_BLOCKS)

# running state between tiles, named in ``codes.SWEEP_STATE``
_STATE = positions(SWEEP_STATE)
T_CASH = _STATE["cash"]
T_POSITION = _STATE["position"]
T_PREVIOUS_VALUE = _STATE["previous_value"]
T_DIRECTION = _STATE["direction"]
T_EXPOSURE = _STATE["exposure"]
T_HELD = _STATE["held"]
T_LAST_TARGET = _STATE["last_target"]
T_TRADE_DIRECTION = _STATE["trade_direction"]
T_ENTRY_SIZE = _STATE["entry_size"]
T_ENTRY_GROSS = _STATE["entry_gross"]
T_ENTRY_FEES = _STATE["entry_fees"]
T_PEAK = _STATE["peak"]
T_PEAK_VALUE = _STATE["peak_value"]
T_RUN_START = _STATE["run_start"]
T_BLOCK = _STATE["block"]
T_BLOCK_SUM = _STATE["block_sum"]
T_BLOCK_SUMSQ = _STATE["block_sumsq"]
T_BLOCK_START = _STATE["block_start"]
T_RUINED = _STATE["ruined"]
T_PERIOD = _STATE["period"]
T_PERIOD_START = _STATE["period_start"]
STATE_COLUMNS = len(SWEEP_STATE)

# seeds of the two order-stream keys (64-bit, wrapping); a key's top 52 bits are the statistics'
# ``stream_a`` / ``stream_b`` columns (held exactly in a float64)
KEY_SEED_A = np.uint64(0x9E3779B97F4A7C15)
KEY_SEED_B = np.uint64(0xC2B2AE3D27D4EB4F)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_KEY_INCREMENT_B = np.uint64(0x632BE59BD9B4E019)
_KEY_MULTIPLIER_B = np.uint64(0xD6E8FEB86659FD93)
KEY_SHIFT = np.uint64(12)

TILE = 8192


# What the shared per-bar inputs are computed from (see ``bar_inputs_nb``).
BarSources = namedtuple(
    "BarSources",
    ["actions", "confidences", "active", "indicators", "fill", "close", "open", "low", "high"],
)
LayerValues = namedtuple(
    "LayerValues", ["params", "weights", "meta_models", "meta_weights", "coef", "intercept"]
)

# The arrays every tile reads, as one value (see ``sweep_nb`` for their shapes).
SweepInputs = namedtuple(
    "SweepInputs",
    [
        "bar_inputs",
        "actions",
        "confidences",
        "active",
        "indicators",
        "params",
        "weights",
        "meta_models",
        "meta_weights",
        "coef",
        "intercept",
        "rules",
        "block_edges",
        "period_edges",
    ],
)
# The arrays the tiles write: the running state (``state``, and ``pending``, the ring of orders
# waiting for the execution lag) and the outputs of ``sweep_nb``.
SweepOutputs = namedtuple(
    "SweepOutputs", ["state", "pending", "keys", "stats", "blocks", "periods"]
)


@njit(cache=True, error_model="numpy")
def _meta_escalates(c, t, inputs, params, features, confidence, meta_inputs):
    """Whether Meta escalates bar ``t`` for combination ``c`` (Meta running there), given
    Layer 1's ``confidence``: rules 2-6 of :func:`qt_backtest.hierarchy.nb.meta_rules_nb` and
    ``uncertainty_rule_nb``, from the shared per-bar inputs or recomputed."""
    bar_inputs = inputs.bar_inputs
    intended = params[P_FIDELITY] == INTENDED
    if meta_inputs is None:
        # no branch: every quantity is one load, and a sweep's loop over bars then compiles to
        # vector instructions
        share = bar_inputs[t, B_SHARE]
        rule4_confidence = confidence if intended else bar_inputs[t, B_FALLBACK]
        reason = meta_rules_nb(share, bar_inputs[t, B_SPLIT] != 0.0, rule4_confidence, params)
        # rule 6 on the shared entropy (NaN without a model: never above the threshold)
        undecided = bar_inputs[t, B_ENTROPY] > params[P_ENTROPY]
        settled = REASON_UNDECIDED if undecided else REASON_CLEAR
        applies = (reason == REASON_NO_MODEL) & (params[P_UNCERTAINTY] != 0.0)
        reason = settled if applies else reason
        return (share < params[P_CONSENSUS]) & escalates_nb(reason)
    actions, confidences, active = inputs.actions, inputs.confidences, inputs.active
    _, share, split = meta_votes_nb(actions, active, t, intended)
    if not share < params[P_CONSENSUS]:
        return False
    rule4_confidence = confidence
    if not intended:
        _, rule4_confidence = meta_fallback_nb(
            actions,
            confidences,
            active,
            t,
            intended,
            inputs.meta_models,
            inputs.meta_weights[c],
            params,
        )
    reason = meta_rules_nb(share, split, rule4_confidence, params)
    if reason == REASON_NO_MODEL and params[P_UNCERTAINTY] != 0.0:
        _, reason, _ = uncertainty_rule_nb(
            actions, confidences, active, t, inputs.coef, inputs.intercept, features, params
        )
    return escalates_nb(reason)


@njit(cache=True, error_model="numpy")
def _decide(c, t, inputs, params, features, vote_inputs, meta_inputs, score_inputs):
    """Final decision of combination ``c`` (its packed ``params``) on bar ``t``: (action,
    confidence, Meta ran, escalated, Arbiter called, overridden, vetoed), the last five as 0/1
    counts.

    With every layer read from the shared per-bar inputs (all three flags None) it has no
    branch: the rules are combined as masks, and the values no rule selects cost nothing but
    their load.
    """
    bar_inputs = inputs.bar_inputs
    if vote_inputs is not None:
        vote, mean, agreeing, voters = ensemble_votes_nb(
            inputs.actions, inputs.confidences, inputs.active, t, inputs.weights[c]
        )
        action, confidence, _ = base_decision_nb(vote, mean, agreeing, voters, params)
    else:
        action = np.int64(bar_inputs[t, B_BASE_ACTION])
        confidence = bar_inputs[t, B_BASE_CONFIDENCE]
        voters = np.int64(bar_inputs[t, B_VOTERS])
    mode = params[P_MODE]
    ran = (mode != MODE_ENSEMBLE) & (voters >= params[P_MIN_ACTIVE])
    if meta_inputs is None:
        escalated = ran & _meta_escalates(c, t, inputs, params, features, confidence, meta_inputs)
    else:
        escalated = ran and _meta_escalates(c, t, inputs, params, features, confidence, meta_inputs)
    called = escalated & (mode == MODE_META_ARBITER)
    if score_inputs is None:
        verdict = np.int64(bar_inputs[t, B_VERDICT])
        verdict_confidence = bar_inputs[t, B_VERDICT_CONFIDENCE]
    elif called:
        score, _, _ = arbiter_score_nb(inputs.indicators, t, params)
        verdict, verdict_confidence = arbiter_verdict_nb(score, params)
    else:
        verdict, verdict_confidence = HOLD, 0.0
    overridden = called & (gate_nb(verdict, verdict_confidence, action, params) == GATE_OVERRIDE)
    final = verdict if overridden else action
    final_confidence = verdict_confidence if overridden else confidence
    # the risk governor: never true when min_trade_confidence is NaN (disabled)
    vetoed = (final != HOLD) & (final_confidence < params[P_MIN_TRADE_CONFIDENCE])
    final = HOLD if vetoed else final
    return (
        final,
        final_confidence,
        np.int64(ran),
        np.int64(escalated),
        np.int64(called),
        np.int64(overridden),
        np.int64(vetoed),
    )


@njit(cache=True, error_model="numpy")
def decide_tile_nb(
    c, first, last, inputs, finals, confidences, vote_inputs, meta_inputs, score_inputs
):
    """Combination ``c``'s final decisions on bars ``first`` to ``last`` (exclusive) into
    ``finals`` and ``confidences`` (from position 0), all before any trading: the bars do not
    depend on each other, so with the shared per-bar inputs the loop runs several bars per
    vector instruction. Returns the decision counts (bars where Meta ran, escalated, Arbiter
    called, overridden, vetoed)."""
    combo_params = inputs.params[c]
    features = np.empty(inputs.coef.shape[1])
    counts = (0, 0, 0, 0, 0)
    for t in range(first, last):
        final, final_confidence, ran, escalated, called, overridden, vetoed = _decide(
            c, t, inputs, combo_params, features, vote_inputs, meta_inputs, score_inputs
        )
        counts = _count(counts, ran, escalated, called, overridden, vetoed)
        finals[t - first] = final
        confidences[t - first] = final_confidence
    return counts


@njit(cache=True, error_model="numpy")
def _book(row, filled, price, paid, side, trade):
    """Count a fill in the statistics and book it into the open ``trade`` (direction, size,
    gross, fees); returns the trade."""
    if filled > 0.0:
        row[S_ORDERS] += 1.0
        row[S_TRADED] += filled * price
        row[S_FEES] += paid
        trade_direction, entry_size, entry_gross, entry_fees, closed, pnl = book_fill_nb(
            filled, price, paid, side, trade[0], trade[1], trade[2], trade[3]
        )
        trade = (trade_direction, entry_size, entry_gross, entry_fees)
        if closed:
            row[S_TRADES] += 1.0
            row[S_PNL_SUM] += pnl
            if pnl > 0.0:
                row[S_WINS] += 1.0
                row[S_WIN_SUM] += pnl
            elif pnl < 0.0:
                row[S_LOSSES] += 1.0
                row[S_LOSS_SUM] += pnl
    return trade


@intrinsic
def _float_bits(typingctx, value):
    """The IEEE-754 bits of a float64, as a uint64 (no conversion: the same 64 bits)."""
    if not (isinstance(value, types.Float) and value.bitwidth == 64):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(value), codegen


@njit(cache=True)
def _mix64(word):
    """A 64-bit bijective finaliser (splitmix64's): each input bit flips about half the output
    bits."""
    word ^= word >> np.uint64(30)
    word *= np.uint64(0xBF58476D1CE4E5B9)
    word ^= word >> np.uint64(27)
    word *= np.uint64(0x94D049BB133111EB)
    word ^= word >> np.uint64(31)
    return word


@njit(cache=True)
def order_key_step_nb(key_a, key_b, t, target):
    """The two order-stream keys after an order for ``target`` (exposure) sent on bar ``t``.

    Every bit of ``target`` enters, so equal keys mean the same orders to the last bit (S-DUP-3).
    Each step is a bijection of the key for a given order: streams that differ once stay
    different; the two keys combine bar and target differently and are 128 bits together.
    """
    bits = _float_bits(target)
    bar = np.uint64(t)
    key_a = _mix64(key_a ^ (bits + bar * _GOLDEN))
    key_b = _mix64((key_b + _KEY_INCREMENT_B) ^ (bits * _KEY_MULTIPLIER_B + bar))
    return key_a, key_b


@njit(cache=True, error_model="numpy")
def _close_out(row, t, bar_inputs, fees, level, bankrupt, open_only, cash, position, trade):
    """Close the account out on bar ``t`` if it reaches its ``level`` there (see
    :func:`qt_backtest.backtest.nb.close_out_price_nb`); returns (closed out, cash, position,
    the open trade)."""
    price = close_out_price_nb(
        position,
        level,
        bankrupt,
        bar_inputs[t, B_OPEN],
        bar_inputs[t, B_LOW],
        bar_inputs[t, B_HIGH],
        open_only,
    )
    if not (price == price):
        return False, cash, position, trade
    cash, position, filled, price, paid, side = fill_units_nb(
        cash, position, -position, price, fees, 0.0
    )
    trade = _book(row, filled, price, paid, side, trade)
    return True, cash, position, trade


@njit(cache=True)
def _count(counts, ran, escalated, called, overridden, vetoed):
    """The decision counts of a combination after one more bar's (see ``_decide``)."""
    return (
        counts[0] + ran,
        counts[1] + escalated,
        counts[2] + called,
        counts[3] + overridden,
        counts[4] + vetoed,
    )


@njit(cache=True, error_model="numpy")
def _position_step(final, final_confidence, direction, exposure, held, position_rules):
    """:func:`qt_backtest.backtest.nb.exposure_step_nb` under ``position_rules`` (long only,
    hold policy, max hold, size, scale by confidence): (direction, exposure, bars held)."""
    long_only, hold_policy, max_hold, size, scale = position_rules
    return exposure_step_nb(
        final,
        final_confidence,
        direction,
        exposure,
        held,
        long_only,
        hold_policy,
        max_hold,
        size,
        scale,
    )


@njit(cache=True, error_model="numpy")
def _load_moments(row):
    """The running sums of a statistics row: (returns, squares, cubes, fourth powers, squared
    losses, values)."""
    return row[S_SUM], row[S_SUMSQ], row[S_SUM3], row[S_SUM4], row[S_DOWNSIDE], row[S_VALUE_SUM]


@njit(cache=True, error_model="numpy")
def _store_moments(row, moments):
    """Write the running sums of :func:`_load_moments` back into the statistics row."""
    row[S_SUM], row[S_SUMSQ], row[S_SUM3], row[S_SUM4], row[S_DOWNSIDE], row[S_VALUE_SUM] = moments


@njit(cache=True, error_model="numpy")
def _moments_step(moments, r, value):
    """The running sums of :func:`_load_moments` after a bar of return ``r`` ending at
    ``value``."""
    total, total_sq, total_3, total_4, downside, value_sum = moments
    r2 = r * r
    loss = min(r, 0.0)
    return (
        total + r,
        total_sq + r2,
        total_3 + r2 * r,
        total_4 + r2 * r2,
        downside + loss * loss,
        value_sum + value,
    )


@njit(cache=True, error_model="numpy")
def _close_block(moments, block, block_sum, block_sumsq, block_start, value, block_edges):
    """Write the moments of time block ``block`` (ending at ``value``) into ``moments``, shape
    (blocks, BLOCK_COLUMNS); returns the next block's (index, sums, start value, end edge)."""
    moments[block, K_SUM] = block_sum
    moments[block, K_SUMSQ] = block_sumsq
    # a closed-out account may hold exactly nothing: no change, growth 1
    moments[block, K_GROWTH] = value / block_start if block_start != 0.0 else 1.0
    block += 1
    next_edge = block_edges[block + 1] if block + 1 < block_edges.shape[0] else -1
    return block, 0.0, 0.0, value, next_edge


@njit(cache=True, error_model="numpy")
def _close_period(returns, period, period_start, value, period_edges):
    """Write return period ``period``'s return (ending at ``value``) into ``returns``; returns
    the next period's (index, start value, end edge)."""
    # the period's return, as from the equity curve (0 once nothing is left)
    returns[period] = value / period_start - 1.0 if period_start != 0.0 else 0.0
    period += 1
    next_edge = period_edges[period + 1] if period + 1 < period_edges.shape[0] else -1
    return period, value, next_edge


@njit(cache=True)
def _combination_rules(rules):
    """A combination's row of ``rules`` as (position rules: long only, hold policy, max hold,
    size, scale by confidence; execution lag; costs: fees, slippage, maintenance margin, fill at
    the open)."""
    position_rules = (
        rules[R_LONG_ONLY] != 0.0,
        np.int64(rules[R_HOLD_FLAT]),
        np.int64(rules[R_MAX_HOLD]),
        rules[R_SIZE],
        rules[R_SCALE] != 0.0,
    )
    costs = (rules[R_FEE], rules[R_SLIPPAGE], rules[R_MAINTENANCE], rules[R_FILL_AT_OPEN] != 0.0)
    return position_rules, np.int64(rules[R_LAG]), costs


@njit(cache=True)
def _load_trade(state):
    """The open trade (direction, size, gross, fees) of a combination's running ``state``."""
    return (
        np.int64(state[T_TRADE_DIRECTION]),
        state[T_ENTRY_SIZE],
        state[T_ENTRY_GROSS],
        state[T_ENTRY_FEES],
    )


@njit(cache=True)
def _store_trade(state, trade):
    """Write the open trade of :func:`_load_trade` back into the running ``state``."""
    state[T_TRADE_DIRECTION], state[T_ENTRY_SIZE], state[T_ENTRY_GROSS], state[T_ENTRY_FEES] = trade


@njit(cache=True)
def _store_counts(row, counts):
    """Add a tile's decision counts (see ``_count``) to the statistics row."""
    row[S_META_RAN] += counts[0]
    row[S_ESCALATIONS] += counts[1]
    row[S_ARBITER_CALLS] += counts[2]
    row[S_OVERRIDES] += counts[3]
    row[S_VETOES] += counts[4]


@njit(cache=True)
def _close_drawdown(row, bars, run_start):
    """At the last bar: a stretch still below the peak (from ``run_start``, -1: none) counts
    up to the end."""
    if run_start >= 0 and bars - run_start > row[S_DRAWDOWN_BARS]:
        row[S_DRAWDOWN_BARS] = bars - run_start
        row[S_DRAWDOWN_START] = run_start
        row[S_DRAWDOWN_STOP] = bars


@njit(cache=True, error_model="numpy")
def _tile(c, first, last, inputs, outputs, vote_inputs, meta_inputs, score_inputs):
    """Advance combination ``c`` over bars ``first`` to ``last`` (exclusive)."""
    bar_inputs = inputs.bar_inputs
    state = outputs.state
    bars = bar_inputs.shape[0]
    finals = np.empty(last - first, dtype=np.int64)
    final_confidences = np.empty(last - first)
    counts = decide_tile_nb(
        c, first, last, inputs, finals, final_confidences, vote_inputs, meta_inputs, score_inputs
    )
    position_rules, lag, costs = _combination_rules(inputs.rules[c])
    fees, slippage, maintenance, fill_at_open = costs
    queue = outputs.pending[c]
    slot = first % (lag + 1)  # the ring position of bar t is t % (lag + 1)
    row = outputs.stats[c]

    cash = state[c, T_CASH]
    position = state[c, T_POSITION]
    previous_value = state[c, T_PREVIOUS_VALUE]
    direction = np.int64(state[c, T_DIRECTION])
    exposure = state[c, T_EXPOSURE]
    held = np.int64(state[c, T_HELD])
    last_target = state[c, T_LAST_TARGET]
    key_a = outputs.keys[c, 0]
    key_b = outputs.keys[c, 1]
    trade = _load_trade(state[c])
    peak = state[c, T_PEAK]
    peak_value = state[c, T_PEAK_VALUE]
    run_start = np.int64(state[c, T_RUN_START])
    block = np.int64(state[c, T_BLOCK])
    block_sum = state[c, T_BLOCK_SUM]
    block_sumsq = state[c, T_BLOCK_SUMSQ]
    block_start = state[c, T_BLOCK_START]
    ruined = state[c, T_RUINED] != 0.0
    level, bankrupt = liquidation_levels_nb(cash, position, fees, maintenance)
    moments = _load_moments(row)
    max_drawdown = row[S_MAX_DRAWDOWN]
    exposed = row[S_EXPOSED]
    next_edge = inputs.block_edges[block + 1]
    period = np.int64(state[c, T_PERIOD])
    period_start = state[c, T_PERIOD_START]
    next_period_edge = inputs.period_edges[period + 1]

    for t in range(first, last):
        direction, exposure, held = _position_step(
            finals[t - first],
            final_confidences[t - first],
            direction,
            exposure,
            held,
            position_rules,
        )
        target = direction * exposure
        if target != last_target:
            last_target = target
            if t + lag < bars:
                # slot of bar t + lag: one before this bar's slot, around the ring
                queue[slot - 1 if slot > 0 else lag] = target
                key_a, key_b = order_key_step_nb(key_a, key_b, t, target)
        order = queue[slot]
        queue[slot] = np.nan
        dead = ruined  # closed out on an earlier bar: no fills, no returns
        if not ruined and level == level:
            # the position carried into the bar meets the open first (the whole bar when
            # orders fill at the close); no level (flat, or a long bought without borrowing)
            # can be reached
            ruined, cash, position, trade = _close_out(
                row, t, bar_inputs, fees, level, bankrupt, fill_at_open, cash, position, trade
            )
        if not ruined and order == order:  # not NaN: an order fills on this bar
            cash, position, filled, price, paid, side = fill_target_percent_nb(
                cash, position, order, bar_inputs[t, B_FILL], fees, slippage
            )
            trade = _book(row, filled, price, paid, side, trade)
            # the close-out levels change only with cash and position, that is here
            level, bankrupt = liquidation_levels_nb(cash, position, fees, maintenance)
        if not ruined and fill_at_open and level == level:
            # the position after the open's fill lives through the rest of the bar
            ruined, cash, position, trade = _close_out(
                row, t, bar_inputs, fees, level, bankrupt, False, cash, position, trade
            )
        if ruined and not dead:
            row[S_RUIN_BAR] = t
        value = cash
        if position != 0.0:
            value = cash + position * bar_inputs[t, B_CLOSE]
            exposed += 1.0
        r = 0.0 if dead else value / previous_value - 1.0
        previous_value = value
        moments = _moments_step(moments, r, value)
        if value < peak:  # at or above the peak the drawdown is 0: no division needed
            max_drawdown = min(max_drawdown, value / peak - 1.0)
        else:
            peak = value
        if value < peak_value:
            if run_start < 0:
                run_start = t
        else:
            if run_start >= 0 and t - run_start > row[S_DRAWDOWN_BARS]:
                row[S_DRAWDOWN_BARS] = t - run_start
                row[S_DRAWDOWN_START] = run_start
                row[S_DRAWDOWN_STOP] = t
            run_start = -1
            peak_value = value
        block_sum += r
        block_sumsq += r * r
        slot = slot + 1 if slot < lag else 0
        if t + 1 == next_edge:
            block, block_sum, block_sumsq, block_start, next_edge = _close_block(
                outputs.blocks[c],
                block,
                block_sum,
                block_sumsq,
                block_start,
                value,
                inputs.block_edges,
            )
        if t + 1 == next_period_edge:
            period, period_start, next_period_edge = _close_period(
                outputs.periods[c], period, period_start, value, inputs.period_edges
            )

    if last == bars:
        _close_drawdown(row, bars, run_start)
    state[c, T_CASH] = cash
    state[c, T_POSITION] = position
    state[c, T_PREVIOUS_VALUE] = previous_value
    state[c, T_DIRECTION] = direction
    state[c, T_EXPOSURE] = exposure
    state[c, T_HELD] = held
    state[c, T_LAST_TARGET] = last_target
    outputs.keys[c, 0] = key_a
    outputs.keys[c, 1] = key_b
    _store_trade(state[c], trade)
    state[c, T_PEAK] = peak
    state[c, T_PEAK_VALUE] = peak_value
    state[c, T_RUN_START] = run_start
    state[c, T_BLOCK] = block
    state[c, T_BLOCK_SUM] = block_sum
    state[c, T_BLOCK_SUMSQ] = block_sumsq
    state[c, T_BLOCK_START] = block_start
    state[c, T_RUINED] = 1.0 if ruined else 0.0
    state[c, T_PERIOD] = period
    state[c, T_PERIOD_START] = period_start
    _store_moments(row, moments)
    row[S_MAX_DRAWDOWN] = max_drawdown
    row[S_EXPOSED] = exposed
    row[S_FINAL_VALUE] = previous_value
    _store_counts(row, counts)


@njit(cache=True, parallel=True, error_model="numpy")
def sweep_nb(inputs, stats, blocks, periods, init_cash, vote_inputs, meta_inputs, score_inputs):
    """Run every combination over every bar.

    Parameters
    ----------
    inputs : SweepInputs
        The arrays every tile reads:

        ``bar_inputs`` : ndarray of float64, shape (bars, BAR_COLUMNS)
            Per-bar inputs (see the ``B_*`` columns); a layer's columns are read only when it
            is not recomputed per combination.
        ``actions``, ``confidences``, ``active`` : ndarray, shape (bars, models)
            Raw votes, read by the layers recomputed per combination.
        ``indicators`` : ndarray of float64, shape (bars, 6)
            Arbiter inputs, read when ``score_inputs`` is True.
        ``params`` : ndarray of float64, shape (combinations, len(SCALARS))
            Packed hierarchy parameters, one row per combination.
        ``weights`` : ndarray of float64, shape (combinations, models)
        ``meta_models`` : ndarray of int64, shape (k,)
        ``meta_weights`` : ndarray of float64, shape (combinations, k)
        ``coef``, ``intercept``
            Uncertainty model (shared by every combination).
        ``rules`` : ndarray of float64, shape (combinations, RULE_COLUMNS)
            Position model and costs (see the ``R_*`` columns).
        ``block_edges`` : ndarray of int64, shape (blocks + 1,)
            Bar boundaries of the time blocks: 0, ..., bars.
        ``period_edges`` : ndarray of int64, shape (periods + 1,)
            Bar boundaries of the return periods (days, say): 0, ..., bars.
    stats : ndarray of float64, shape (combinations, STAT_COLUMNS)
        Output, zeroed by the caller.
    blocks : ndarray of float64, shape (combinations, blocks, BLOCK_COLUMNS)
        Output.
    periods : ndarray of float64, shape (combinations, periods)
        Output: each period's return, equity at its last bar over equity at the previous
        period's last bar (the initial cash for the first), minus one.
    init_cash : float
    vote_inputs, meta_inputs, score_inputs : True or None
        True recomputes Layer 1's vote, Meta's vote statistics, the Arbiter's score per
        combination; None reads them from ``bar_inputs``.
    """
    bars = inputs.bar_inputs.shape[0]
    combos = inputs.params.shape[0]
    max_lag = 0
    for c in range(combos):
        max_lag = max(max_lag, np.int64(inputs.rules[c, R_LAG]))
    pending = np.full((combos, max_lag + 1), np.nan)
    state = np.zeros((combos, STATE_COLUMNS))
    for c in range(combos):
        state[c, T_CASH] = init_cash
        state[c, T_PREVIOUS_VALUE] = init_cash
        state[c, T_PEAK] = init_cash
        state[c, T_PEAK_VALUE] = -np.inf
        state[c, T_RUN_START] = -1
        state[c, T_BLOCK_START] = init_cash
        state[c, T_PERIOD_START] = init_cash
        stats[c, S_FINAL_VALUE] = init_cash
        stats[c, S_RUIN_BAR] = -1.0
    keys = np.empty((combos, 2), dtype=np.uint64)
    keys[:, 0] = KEY_SEED_A
    keys[:, 1] = KEY_SEED_B
    outputs = SweepOutputs(state, pending, keys, stats, blocks, periods)
    for first in range(0, bars, TILE):
        last = min(bars, first + TILE)
        for c in prange(combos):
            _tile(c, first, last, inputs, outputs, vote_inputs, meta_inputs, score_inputs)
    store_stream_keys_nb(stats, keys)


@njit(cache=True)
def store_stream_keys_nb(stats, keys):
    """Each combination's order-stream keys as its ``stream_a`` and ``stream_b`` statistics:
    their top 52 bits, which a float64 holds exactly."""
    for c in range(keys.shape[0]):
        stats[c, S_STREAM_A] = float(keys[c, 0] >> KEY_SHIFT)
        stats[c, S_STREAM_B] = float(keys[c, 1] >> KEY_SHIFT)


@njit(cache=True, parallel=True, error_model="numpy")
def bar_inputs_nb(sources, layers, out):
    """Per-bar inputs shared by every combination whose layers use ``layers.params``' values.

    Meta's columns are written for every bar (whether or not Meta runs there), with the fidelity
    in ``params``; the entropy only when ``params`` enables the uncertainty model.

    Parameters
    ----------
    sources : BarSources
        Votes (``actions``, ``confidences``, ``active``: shape (bars, models)), Arbiter inputs
        (``indicators``: shape (bars, 6)) and prices (``fill``, ``close``, ``open``, ``low``,
        ``high``: shape (bars,)).
    layers : LayerValues
        One combination's ``params`` (len(SCALARS)), ``weights`` (models), ``meta_models``
        (k), ``meta_weights`` (k), and the uncertainty model's ``coef`` and ``intercept``.
    out : ndarray of float64, shape (bars, BAR_COLUMNS)
        Output.
    """
    actions, confidences, active = sources.actions, sources.confidences, sources.active
    indicators = sources.indicators
    params, weights = layers.params, layers.weights
    meta_models, meta_weights = layers.meta_models, layers.meta_weights
    coef, intercept = layers.coef, layers.intercept
    fill, close, open_, low, high = (
        sources.fill,
        sources.close,
        sources.open,
        sources.low,
        sources.high,
    )
    intended = params[P_FIDELITY] == INTENDED
    uncertainty = params[P_UNCERTAINTY] != 0.0
    bars = actions.shape[0]
    chunks = (bars + TILE - 1) // TILE
    for chunk in prange(chunks):
        features = np.empty(coef.shape[1])
        for t in range(chunk * TILE, min(bars, (chunk + 1) * TILE)):
            vote, mean, agreeing, voters = ensemble_votes_nb(
                actions, confidences, active, t, weights
            )
            out[t, B_ACTION] = vote
            out[t, B_MEAN] = mean
            out[t, B_AGREEING] = agreeing
            out[t, B_VOTERS] = voters
            action, confidence, _ = base_decision_nb(vote, mean, agreeing, voters, params)
            out[t, B_BASE_ACTION] = action
            out[t, B_BASE_CONFIDENCE] = confidence
            _, share, split = meta_votes_nb(actions, active, t, intended)
            out[t, B_SHARE] = share
            out[t, B_SPLIT] = 1.0 if split else 0.0
            _, fallback = meta_fallback_nb(
                actions, confidences, active, t, intended, meta_models, meta_weights, params
            )
            out[t, B_FALLBACK] = fallback
            out[t, B_ENTROPY] = np.nan
            if uncertainty:
                _, _, entropy = uncertainty_rule_nb(
                    actions, confidences, active, t, coef, intercept, features, params
                )
                out[t, B_ENTROPY] = entropy
            score, _, _ = arbiter_score_nb(indicators, t, params)
            out[t, B_SCORE] = score
            verdict, verdict_confidence = arbiter_verdict_nb(score, params)
            out[t, B_VERDICT] = verdict
            out[t, B_VERDICT_CONFIDENCE] = verdict_confidence
            out[t, B_FILL] = fill[t]
            out[t, B_CLOSE] = close[t]
            out[t, B_OPEN] = open_[t]
            out[t, B_LOW] = low[t]
            out[t, B_HIGH] = high[t]
    return out
