"""Numba kernels of the incremental override outcomes (P-OUT-1 to P-OUT-6).

Every portfolio -- the actual run and one counterfactual per unresolved override -- is a row of
running state: cash, units, whether it was closed out, the position model's state and the ring
of orders waiting for the execution lag. One bar of a portfolio follows the sweep kernel's
order of events (:mod:`qt_backtest.sweep.nb`), with fills and close-outs from
:mod:`qt_backtest.backtest.nb`, so that each row's equity equals a vectorbt simulation of its
decisions. A counterfactual row also carries the bookkeeping that decides when its override is
settled (:func:`track_nb`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qt_backtest.backtest.nb import (
    close_out_price_nb,
    exposure_step_nb,
    fill_target_percent_nb,
    fill_units_nb,
    liquidation_levels_nb,
)
from qt_backtest.codes import SWEEP_RULES, positions

#: Running state of a portfolio, followed by its order queue (``execution_lag + 1`` slots,
#: NaN: no order).
PATH_FIELDS = ("cash", "position", "ruined", "direction", "exposure", "held", "last_target")
#: Settlement bookkeeping of a counterfactual, after its portfolio state (float64).
TRACK_FIELDS = (
    "last_difference",  # last bar whose two targets differed (-1: none yet)
    "candidate",  # first bar of the current stretch of equal targets (-1: none)
    "candidate_actual",  # actual equity at candidate + lag (NaN until that bar)
    "candidate_counterfactual",  # counterfactual equity at candidate + lag
    "agreed",  # 1 once the two position models are in the same state (P-OUT-3)
)
#: Integer labels of a counterfactual (int64).
KEY_FIELDS = ("bar", "time", "settled_time", "arbiter_action", "base_action")
#: Columns of a bar's float inputs.
BAR_FIELDS = (
    "open",
    "high",
    "low",
    "close",
    "action",
    "confidence",
    "ensemble_action",  # after the risk governor
    "ensemble_confidence",
)
#: Columns of a bar's integer inputs.
BAR_KEYS = ("time", "override", "arbiter_action", "base_action")
#: Float columns of a settled outcome.
OUT_FIELDS = ("actual_value", "counterfactual_value")
#: Integer columns of a settled outcome.
OUT_KEYS = (
    "bar",
    "agree_bar",
    "settled_bar",
    "known_bar",
    "time",
    "settled_time",
    "arbiter_action",
    "base_action",
)

_PATH = positions(PATH_FIELDS)
CASH = _PATH["cash"]
POSITION = _PATH["position"]
RUINED = _PATH["ruined"]
DIRECTION = _PATH["direction"]
EXPOSURE = _PATH["exposure"]
HELD = _PATH["held"]
LAST_TARGET = _PATH["last_target"]
QUEUE = len(PATH_FIELDS)

_TRACK = positions(TRACK_FIELDS)
LAST_DIFFERENCE = _TRACK["last_difference"]
CANDIDATE = _TRACK["candidate"]
CANDIDATE_ACTUAL = _TRACK["candidate_actual"]
CANDIDATE_COUNTERFACTUAL = _TRACK["candidate_counterfactual"]
AGREED = _TRACK["agreed"]

_KEY = positions(KEY_FIELDS)
K_BAR = _KEY["bar"]
K_TIME = _KEY["time"]
K_SETTLED_TIME = _KEY["settled_time"]
K_ARBITER = _KEY["arbiter_action"]
K_BASE = _KEY["base_action"]

_BAR = positions(BAR_FIELDS)
B_OPEN = _BAR["open"]
B_HIGH = _BAR["high"]
B_LOW = _BAR["low"]
B_CLOSE = _BAR["close"]
B_ACTION = _BAR["action"]
B_CONFIDENCE = _BAR["confidence"]
B_ENSEMBLE_ACTION = _BAR["ensemble_action"]
B_ENSEMBLE_CONFIDENCE = _BAR["ensemble_confidence"]

_BAR_KEY = positions(BAR_KEYS)
BK_TIME = _BAR_KEY["time"]
BK_OVERRIDE = _BAR_KEY["override"]
BK_ARBITER = _BAR_KEY["arbiter_action"]
BK_BASE = _BAR_KEY["base_action"]

_OUT = positions(OUT_FIELDS)
O_ACTUAL = _OUT["actual_value"]
O_COUNTERFACTUAL = _OUT["counterfactual_value"]
_OUT_KEY = positions(OUT_KEYS)
OK_BAR = _OUT_KEY["bar"]
OK_AGREE = _OUT_KEY["agree_bar"]
OK_SETTLED = _OUT_KEY["settled_bar"]
OK_KNOWN = _OUT_KEY["known_bar"]
OK_TIME = _OUT_KEY["time"]
OK_SETTLED_TIME = _OUT_KEY["settled_time"]
OK_ARBITER = _OUT_KEY["arbiter_action"]
OK_BASE = _OUT_KEY["base_action"]

# the rules row has the sweep's layout (``codes.SWEEP_RULES``)
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


def path_columns(lag: int) -> int:
    """Columns of a portfolio row under an execution lag of ``lag`` bars."""
    return QUEUE + lag + 1


def new_path(lag: int, init_cash: float) -> np.ndarray:
    """The state of a portfolio before its first bar: all cash, flat, no order waiting."""
    path = np.zeros(path_columns(lag))
    path[CASH] = init_cash
    path[QUEUE:] = np.nan
    return path


@njit(cache=True, error_model="numpy")
def close_out_nb(cash, position, level, bankrupt, open_, low, high, fees, open_only):
    """Close the account out on this bar if it reaches ``level`` (P-RUIN-1, P-RUIN-2; see
    :func:`qt_backtest.backtest.nb.close_out_price_nb`): (closed out, cash, units)."""
    price = close_out_price_nb(position, level, bankrupt, open_, low, high, open_only)
    if not (price == price):
        return False, cash, position
    cash, position, _, _, _, _ = fill_units_nb(cash, position, -position, price, fees, 0.0)
    return True, cash, position


@njit(cache=True, error_model="numpy")
def path_step_nb(path, t, action, confidence, open_, high, low, close, rules):
    """Advance one portfolio row ``path`` by bar ``t`` whose decision is ``action``
    (-1, 0, 1) with ``confidence``; returns (target exposure, equity at the close).

    The decision sets the target (P-POS-1 to P-POS-4); a change of target is queued for bar
    ``t + lag`` (P-FILL-1). Then the bar's events in order: the position carried in meets the
    close-out level (P-RUIN-2), the bar's order fills at its price (P-FILL-2 to P-FILL-4,
    P-COST-1, P-COST-2), the position after an open's fill meets the rest of the bar, and the
    equity is taken at the close (P-EQ-1). A closed-out account fills nothing more (P-RUIN-3).
    """
    fees = rules[R_FEE]
    maintenance = rules[R_MAINTENANCE]
    fill_at_open = rules[R_FILL_AT_OPEN] != 0.0
    lag = np.int64(rules[R_LAG])
    direction, exposure, held = exposure_step_nb(
        action,
        confidence,
        np.int64(path[DIRECTION]),
        path[EXPOSURE],
        np.int64(path[HELD]),
        rules[R_LONG_ONLY] != 0.0,
        np.int64(rules[R_HOLD_FLAT]),
        np.int64(rules[R_MAX_HOLD]),
        rules[R_SIZE],
        rules[R_SCALE] != 0.0,
    )
    path[DIRECTION] = direction
    path[EXPOSURE] = exposure
    path[HELD] = held
    target = direction * exposure
    if target != path[LAST_TARGET]:
        path[LAST_TARGET] = target
        path[QUEUE + (t + lag) % (lag + 1)] = target
    slot = QUEUE + t % (lag + 1)
    order = path[slot]
    path[slot] = np.nan
    cash = path[CASH]
    position = path[POSITION]
    ruined = path[RUINED] != 0.0
    if not ruined:
        level, bankrupt = liquidation_levels_nb(cash, position, fees, maintenance)
        if level == level:
            ruined, cash, position = close_out_nb(
                cash, position, level, bankrupt, open_, low, high, fees, fill_at_open
            )
        if not ruined and order == order:  # not NaN: an order fills on this bar
            price = open_ if fill_at_open else close
            cash, position, _, _, _, _ = fill_target_percent_nb(
                cash, position, order, price, fees, rules[R_SLIPPAGE]
            )
            level, bankrupt = liquidation_levels_nb(cash, position, fees, maintenance)
        if not ruined and fill_at_open and level == level:
            ruined, cash, position = close_out_nb(
                cash, position, level, bankrupt, open_, low, high, fees, False
            )
    path[CASH] = cash
    path[POSITION] = position
    path[RUINED] = 1.0 if ruined else 0.0
    value = cash
    if position != 0.0:
        value = cash + position * close
    return target, value


@njit(cache=True)
def same_course_nb(actual, counterfactual, max_hold):
    """Whether two position models are in the same state, so that the same decisions give
    them the same targets from now on (P-OUT-3): same direction and exposure, and, when a
    maximum holding applies to an open position, the same bars held."""
    if actual[DIRECTION] != counterfactual[DIRECTION]:
        return False
    if actual[EXPOSURE] != counterfactual[EXPOSURE]:
        return False
    if max_hold > 0 and actual[DIRECTION] != 0.0:
        return actual[HELD] == counterfactual[HELD]
    return True


@njit(cache=True)
def track_nb(
    track,
    keys,
    t,
    time,
    actual,
    actual_target,
    actual_value,
    fork,
    fork_target,
    fork_value,
    lag,
    max_hold,
):
    """Settlement bookkeeping of one counterfactual after bar ``t`` (P-OUT-2, P-OUT-3);
    returns whether its override is settled at this bar.

    ``track`` and ``keys`` are the counterfactual's bookkeeping (``TRACK_FIELDS``) and labels
    (``KEY_FIELDS``); ``actual`` and ``fork`` the two portfolio rows after the bar.
    """
    if track[AGREED] == 0.0:
        if fork_target != actual_target:
            track[LAST_DIFFERENCE] = t
            track[CANDIDATE] = -1.0
        elif track[CANDIDATE] < 0.0:
            track[CANDIDATE] = t
        if same_course_nb(actual, fork, max_hold):
            track[AGREED] = 1.0
    candidate = np.int64(track[CANDIDATE])
    if candidate >= 0 and t == candidate + lag:
        # the equities the outcome reads, should the targets stay equal from the candidate on
        track[CANDIDATE_ACTUAL] = actual_value
        track[CANDIDATE_COUNTERFACTUAL] = fork_value
        keys[K_SETTLED_TIME] = time
    return track[AGREED] != 0.0 and t >= candidate + lag


@njit(cache=True)
def _emit(out_f, out_i, row, track, keys, lag, t):
    """Write the settled outcome of a counterfactual into row ``row`` of the outputs."""
    candidate = np.int64(track[CANDIDATE])
    out_f[row, O_ACTUAL] = track[CANDIDATE_ACTUAL]
    out_f[row, O_COUNTERFACTUAL] = track[CANDIDATE_COUNTERFACTUAL]
    out_i[row, OK_BAR] = keys[K_BAR]
    out_i[row, OK_AGREE] = candidate
    out_i[row, OK_SETTLED] = candidate + lag
    out_i[row, OK_KNOWN] = t
    out_i[row, OK_TIME] = keys[K_TIME]
    out_i[row, OK_SETTLED_TIME] = keys[K_SETTLED_TIME]
    out_i[row, OK_ARBITER] = keys[K_ARBITER]
    out_i[row, OK_BASE] = keys[K_BASE]


@njit(cache=True)
def _fork(actual, forks_f, forks_i, count, t, bar_keys):
    """Start the counterfactual of the override at bar ``t`` as row ``count``: the actual
    portfolio before the bar, nothing differing yet."""
    width = actual.shape[0]
    forks_f[count, :width] = actual
    forks_f[count, width + LAST_DIFFERENCE] = -1.0
    forks_f[count, width + CANDIDATE] = -1.0
    forks_f[count, width + CANDIDATE_ACTUAL] = np.nan
    forks_f[count, width + CANDIDATE_COUNTERFACTUAL] = np.nan
    forks_f[count, width + AGREED] = 0.0
    forks_i[count, K_BAR] = t
    forks_i[count, K_TIME] = bar_keys[BK_TIME]
    forks_i[count, K_SETTLED_TIME] = 0
    forks_i[count, K_ARBITER] = bar_keys[BK_ARBITER]
    forks_i[count, K_BASE] = bar_keys[BK_BASE]


@njit(cache=True, error_model="numpy")
def advance_nb(bar_f, bar_i, rules, first, actual, forks_f, forks_i, count, out_f, out_i):
    """Advance the actual portfolio and every open counterfactual over a block of bars.

    Parameters
    ----------
    bar_f : ndarray of float64, shape (bars, len(BAR_FIELDS))
        Prices and decisions of each bar (actions as -1, 0, 1; the ensemble's after the risk
        governor).
    bar_i : ndarray of int64, shape (bars, len(BAR_KEYS))
        Time (ns since the epoch, UTC), override flag and the labels of each bar.
    rules : ndarray of float64, shape (len(SWEEP_RULES),)
    first : int
        Index of the block's first bar in the whole stream.
    actual : ndarray of float64, shape (path columns,)
        The actual portfolio, updated in place.
    forks_f : ndarray of float64, shape (capacity, path columns + len(TRACK_FIELDS))
    forks_i : ndarray of int64, shape (capacity, len(KEY_FIELDS))
        The open counterfactuals in rows ``[0, count)``, updated in place; the capacity must
        hold ``count`` plus the block's overrides.
    count : int
    out_f : ndarray of float64, shape (capacity, len(OUT_FIELDS))
    out_i : ndarray of int64, shape (capacity, len(OUT_KEYS))
        Receive the outcomes settled in the block, in rows ``[0, settled)``.

    Returns
    -------
    (count, settled)
        Open counterfactuals after the block, outcomes written.
    """
    width = actual.shape[0]
    lag = np.int64(rules[R_LAG])
    max_hold = np.int64(rules[R_MAX_HOLD])
    settled = 0
    for k in range(bar_f.shape[0]):
        t = first + k
        row = bar_f[k]
        if bar_i[k, BK_OVERRIDE] != 0:
            _fork(actual, forks_f, forks_i, count, t, bar_i[k])
            count += 1
        actual_target, actual_value = path_step_nb(
            actual,
            t,
            np.int8(row[B_ACTION]),
            row[B_CONFIDENCE],
            row[B_OPEN],
            row[B_HIGH],
            row[B_LOW],
            row[B_CLOSE],
            rules,
        )
        j = 0
        while j < count:
            fork = forks_f[j, :width]
            own = forks_i[j, K_BAR] == t  # the override's own bar follows the ensemble
            fork_target, fork_value = path_step_nb(
                fork,
                t,
                np.int8(row[B_ENSEMBLE_ACTION] if own else row[B_ACTION]),
                row[B_ENSEMBLE_CONFIDENCE] if own else row[B_CONFIDENCE],
                row[B_OPEN],
                row[B_HIGH],
                row[B_LOW],
                row[B_CLOSE],
                rules,
            )
            track = forks_f[j, width:]
            if track_nb(
                track,
                forks_i[j],
                t,
                bar_i[k, BK_TIME],
                actual,
                actual_target,
                actual_value,
                fork,
                fork_target,
                fork_value,
                lag,
                max_hold,
            ):
                _emit(out_f, out_i, settled, track, forks_i[j], lag, t)
                settled += 1
                count -= 1
                # the last open counterfactual takes the settled one's row
                forks_f[j] = forks_f[count]
                forks_i[j] = forks_i[count]
                continue
            j += 1
    return count, settled
