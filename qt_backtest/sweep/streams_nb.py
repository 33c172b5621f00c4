"""The sweep's decision pass: every combination's decisions, decision counts and orders,
without fills or metrics, and an exact key of each one's stream of orders (S-DUP-3).

Combinations that send the same orders under the same execution rules get the same fills,
equity and metrics, so :func:`qt_backtest.sweep.nb.sweep_nb` needs to simulate only one of them.
Many combinations of a grid differ only in their position rules: they make the same decisions,
which are then computed once per tile for all of them (``deciders``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from qt_backtest.sweep.nb import (
    KEY_SEED_A,
    KEY_SEED_B,
    S_ARBITER_CALLS,
    S_ESCALATIONS,
    S_META_RAN,
    S_OVERRIDES,
    S_VETOES,
    _combination_rules,
    _position_step,
    decide_tile_nb,
    order_key_step_nb,
    store_stream_keys_nb,
)

# running state of a combination between tiles
D_DIRECTION = 0
D_EXPOSURE = 1
D_HELD = 2
D_LAST_TARGET = 3
DECISION_STATE_COLUMNS = 4

# bars per tile: a tile's decisions of every decider are held at once
DECISION_TILE = 2048


@njit(cache=True, error_model="numpy")
def _add_counts(counts, c, first, last, inputs, finals, confidences, flags):
    """Decide combination ``c`` on bars ``first`` to ``last`` into ``finals`` and
    ``confidences`` and add its decision counts to ``counts``."""
    vote_inputs, meta_inputs, score_inputs = flags
    tile_counts = decide_tile_nb(
        c, first, last, inputs, finals, confidences, vote_inputs, meta_inputs, score_inputs
    )
    for k in range(5):
        counts[k] += tile_counts[k]


@njit(cache=True, error_model="numpy")
def _order_tile(c, first, last, inputs, finals, confidences, state, keys):
    """Combination ``c``'s position model and orders on bars ``first`` to ``last`` from its
    decisions (``finals``, ``confidences`` from position 0): ``sweep_nb``'s targets, hashed."""
    bars = inputs.bar_inputs.shape[0]
    position_rules, lag, _ = _combination_rules(inputs.rules[c])
    direction = np.int64(state[c, D_DIRECTION])
    exposure = state[c, D_EXPOSURE]
    held = np.int64(state[c, D_HELD])
    last_target = state[c, D_LAST_TARGET]
    key_a = keys[c, 0]
    key_b = keys[c, 1]
    for t in range(first, last):
        direction, exposure, held = _position_step(
            finals[t - first], confidences[t - first], direction, exposure, held, position_rules
        )
        target = direction * exposure
        if target != last_target:
            last_target = target
            if t + lag < bars:
                key_a, key_b = order_key_step_nb(key_a, key_b, t, target)
    state[c, D_DIRECTION] = direction
    state[c, D_EXPOSURE] = exposure
    state[c, D_HELD] = held
    state[c, D_LAST_TARGET] = last_target
    keys[c, 0] = key_a
    keys[c, 1] = key_b


@njit(cache=True, parallel=True, error_model="numpy")
def streams_nb(inputs, deciders, stats, keys, vote_inputs, meta_inputs, score_inputs):
    """The decision pass of every combination.

    Parameters
    ----------
    inputs : SweepInputs
        As for :func:`qt_backtest.sweep.nb.sweep_nb` (``block_edges`` and ``period_edges`` are
        not read).
    deciders : ndarray of int64, shape (combinations,)
        For each combination, the first combination with the same decisions (equal packed
        parameters, weights and Meta weights; the position rules may differ): each decider's
        decisions are computed once and followed by every combination that names it.
    stats : ndarray of float64, shape (combinations, STAT_COLUMNS)
        Output, zeroed by the caller: the decision counts (``meta_ran`` ... ``vetoes``) and the
        stream hashes (``stream_a``, ``stream_b``), as ``sweep_nb`` writes them; the other
        columns are left alone.
    keys : ndarray of uint64, shape (combinations, 2)
        Output: the two keys of each combination's order stream (overwritten; see
        :func:`qt_backtest.sweep.nb.order_key_step_nb`).
    vote_inputs, meta_inputs, score_inputs : True or None
        As for ``sweep_nb``.
    """
    bars = inputs.bar_inputs.shape[0]
    combos = inputs.params.shape[0]
    leaders = np.unique(deciders)
    slot = np.full(combos, -1, dtype=np.int64)
    for position in range(leaders.shape[0]):
        slot[leaders[position]] = position
    state = np.zeros((combos, DECISION_STATE_COLUMNS))
    counts = np.zeros((leaders.shape[0], 5), dtype=np.int64)
    for c in range(combos):
        keys[c, 0] = KEY_SEED_A
        keys[c, 1] = KEY_SEED_B
    flags = (vote_inputs, meta_inputs, score_inputs)
    shared = leaders.shape[0] < combos
    tile = DECISION_TILE if shared else 1
    finals = np.empty((leaders.shape[0] if shared else 0, tile), dtype=np.int64)
    confidences = np.empty((leaders.shape[0] if shared else 0, tile))
    for first in range(0, bars, DECISION_TILE):
        last = min(bars, first + DECISION_TILE)
        if shared:
            for d in prange(leaders.shape[0]):
                _add_counts(
                    counts[d], leaders[d], first, last, inputs, finals[d], confidences[d], flags
                )
            for c in prange(combos):
                d = slot[deciders[c]]
                _order_tile(c, first, last, inputs, finals[d], confidences[d], state, keys)
        else:
            for c in prange(combos):
                own_finals = np.empty(last - first, dtype=np.int64)
                own_confidences = np.empty(last - first)
                _add_counts(
                    counts[slot[c]], c, first, last, inputs, own_finals, own_confidences, flags
                )
                _order_tile(c, first, last, inputs, own_finals, own_confidences, state, keys)
    for c in range(combos):
        own = counts[slot[deciders[c]]]
        stats[c, S_META_RAN] += own[0]
        stats[c, S_ESCALATIONS] += own[1]
        stats[c, S_ARBITER_CALLS] += own[2]
        stats[c, S_OVERRIDES] += own[3]
        stats[c, S_VETOES] += own[4]
    store_stream_keys_nb(stats, keys)
