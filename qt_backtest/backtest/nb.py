"""Numba kernels of the position model (decisions at bar close -> target exposure) and of
streaming fills and trades."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from qt_backtest.codes import BUY, SELL

HOLD_KEEP = 0
HOLD_FLAT = 1


@njit(cache=True, inline="always")
def exposure_step_nb(
    action,
    confidence,
    direction,
    exposure,
    held,
    long_only,
    hold_policy,
    max_hold_bars,
    size,
    scale_by_confidence,
):
    """One bar of the position model: the new (direction, exposure, held) after ``action``."""
    wanted = direction
    if action == 1:
        wanted = 1
    elif action == -1:
        wanted = 0 if long_only else -1
    elif hold_policy == HOLD_FLAT:
        wanted = 0
    if action != 0:
        held = 0  # a signal opens or renews the position
    else:
        held += 1
    if wanted != direction:
        direction = wanted
        if direction == 0:
            exposure = 0.0
        else:
            exposure = size * (confidence if scale_by_confidence else 1.0)
    if max_hold_bars > 0 and direction != 0 and held >= max_hold_bars:
        direction = 0
        exposure = 0.0
    return direction, exposure, held


@njit(cache=True)
def target_exposure_nb(
    actions, confidences, long_only, hold_policy, max_hold_bars, size, scale_by_confidence, out
):
    """Exposure (fraction of equity, signed) wanted after each bar's decision.

    Parameters
    ----------
    actions : ndarray of int8, shape (bars,)
        Final decisions: -1 SELL, 0 HOLD, 1 BUY.
    confidences : ndarray of float64, shape (bars,)
    long_only : bool
        SELL goes flat instead of short.
    hold_policy : int
        0: HOLD keeps the position; 1: HOLD goes flat.
    max_hold_bars : int
        Bars after the last opening or renewing signal at which the position closes (0: never).
    size : float
        Exposure of a position, fraction of equity.
    scale_by_confidence : bool
        Multiply ``size`` by the confidence of the signal that opens or reverses a position.
    out : ndarray of float64, shape (bars,)
    """
    direction = 0
    exposure = 0.0
    held = 0
    for t in range(actions.shape[0]):
        direction, exposure, held = exposure_step_nb(
            actions[t],
            confidences[t],
            direction,
            exposure,
            held,
            long_only,
            hold_policy,
            max_hold_bars,
            size,
            scale_by_confidence,
        )
        out[t] = direction * exposure
    return out


# A standard deviation of returns below the rounding noise of its own computation counts as
# zero; :func:`qt_backtest.backtest.metrics.negligible_spread` says why these two terms.
SPREAD_NOISE_RELATIVE = 2.0
SPREAD_NOISE_ABSOLUTE = 16.0 * np.finfo(np.float64).eps


@njit(cache=True, inline="always")
def negligible_spread_nb(std, mean, count):
    """Whether ``std``, the standard deviation of ``count`` returns of mean ``mean``, is only
    rounding noise: at most ``2 sqrt(count eps) |mean| + 16 eps`` (NaN: False)."""
    eps = np.finfo(np.float64).eps
    noise = SPREAD_NOISE_RELATIVE * math.sqrt(count * eps) * abs(mean) + SPREAD_NOISE_ABSOLUTE
    return std <= noise


@njit(cache=True)
def negligible_spreads_nb(std, mean, count, out):
    """:func:`negligible_spread_nb` of each element of the flat arrays ``std``, ``mean`` and
    ``count`` into ``out`` (bool)."""
    for i in range(out.shape[0]):
        out[i] = negligible_spread_nb(std[i], mean[i], count[i])
    return out


# Fills and trades below follow vectorbt's ``from_orders`` accounting (target-percent orders,
# both directions, proportional fees and slippage, partial fills when cash runs short, exit
# trades), so that a streaming simulation can stand in for a vectorbt run. Its float
# comparisons treat values within 1e-9 relative or 1e-12 absolute as equal.
REL_TOL = 1e-9
ABS_TOL = 1e-12
SIDE_BUY = BUY  # a fill's side is coded as the action that trades that way
SIDE_SELL = SELL


@njit(cache=True, inline="always")
def is_close_nb(a, b):
    """Equal within ``REL_TOL`` relative or ``ABS_TOL`` absolute (NaN and inf never are)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    if a == b:
        return True
    return abs(a - b) <= max(REL_TOL * max(abs(a), abs(b)), ABS_TOL)


@njit(cache=True, inline="always")
def add_nb(a, b):
    """``a + b``, snapped to 0.0 when the two cancel within the tolerance."""
    if np.sign(a) != np.sign(b):
        if is_close_nb(abs(a), abs(b)):
            return 0.0
    elif is_close_nb(a + b, 0.0):
        return 0.0
    return a + b


@njit(cache=True)
def fill_target_percent_nb(cash, position, target, price, fees, slippage):
    """Fill an order for ``target`` (signed fraction of equity valued at ``price``).

    Returns
    -------
    (cash, position, size, fill price, fees paid, side)
        ``size`` is the absolute quantity filled (0.0 when nothing was filled) and ``side``
        ``SIDE_BUY`` or ``SIDE_SELL``.
    """
    value = cash
    if position != 0.0:
        value += position * price
    if is_close_nb(cash, 0.0):
        cash = 0.0
    if is_close_nb(position, 0.0):
        position = 0.0
    if is_close_nb(value, 0.0):
        value = 0.0
    if not (value > 0.0):
        return cash, position, 0.0, price, 0.0, SIDE_BUY  # nothing left to size from
    wanted = target * value / price - position
    return fill_units_nb(cash, position, wanted, price, fees, slippage)


@njit(cache=True, inline="always")
def fill_units_nb(cash, position, wanted, price, fees, slippage):
    """Fill an order for ``wanted`` units (signed); see :func:`fill_target_percent_nb`."""
    if wanted > 0.0:
        fill_price = price * (1.0 + slippage)
        if cash == 0.0:
            return cash, position, 0.0, fill_price, 0.0, SIDE_BUY
        cost = wanted * fill_price
        fee = cost * fees
        total = cost + fee
        if is_close_nb(total, cash) or total < cash:
            size = wanted
            paid = fee
            spent = total
        else:
            affordable = cash / (1.0 + fees)
            if affordable <= 0.0:
                return cash, position, 0.0, fill_price, 0.0, SIDE_BUY
            size = affordable / fill_price
            paid = cash - affordable
            spent = cash
        if is_close_nb(wanted, 0.0):
            return cash, position, 0.0, fill_price, 0.0, SIDE_BUY
        return add_nb(cash, -spent), add_nb(position, size), size, fill_price, paid, SIDE_BUY
    size = -wanted
    fill_price = price * (1.0 - slippage)
    if is_close_nb(size, 0.0):
        return cash, position, 0.0, fill_price, 0.0, SIDE_SELL
    proceeds = size * fill_price
    paid = proceeds * fees
    received = add_nb(proceeds, -paid)
    if received < 0.0:
        return cash, position, 0.0, fill_price, 0.0, SIDE_SELL
    return cash + received, add_nb(position, -size), size, fill_price, paid, SIDE_SELL


@njit(cache=True, inline="always")
def trade_pnl_nb(size, entry_price, entry_fees, exit_price, exit_fees, direction):
    """Profit of a closed trade after fees (``direction`` +1 long, -1 short)."""
    difference = add_nb(size * exit_price, -(size * entry_price))
    if difference != 0.0 and direction < 0:
        difference *= -1.0
    return difference - entry_fees - exit_fees


@njit(cache=True, inline="always")
def book_fill_nb(size, price, fee, side, direction, entry_size, entry_gross, entry_fees):
    """Book a fill into the open trade.

    Parameters
    ----------
    size, price, fee, side
        The fill (``size`` > 0).
    direction, entry_size, entry_gross, entry_fees
        The open trade: +1 long, -1 short, 0 none; quantity, quantity x price and fees of its
        entries.

    Returns
    -------
    (direction, entry_size, entry_gross, entry_fees, closed, pnl)
        ``closed`` and ``pnl`` describe the trade the fill closed, if any; a reversal closes
        the trade and opens the opposite one with the rest of the fill.
    """
    closed = False
    pnl = 0.0
    if direction == 0:
        direction = side
        entry_size = 0.0
        entry_gross = 0.0
        entry_fees = 0.0
    if side == direction:
        entry_size += size
        entry_gross += size * price
        entry_fees += fee
    elif is_close_nb(size, entry_size) or size < entry_size:
        exit_size = entry_size if is_close_nb(size, entry_size) else size
        entry_price = entry_gross / entry_size
        part_fees = exit_size / entry_size * entry_fees
        pnl = trade_pnl_nb(exit_size, entry_price, part_fees, price, fee, direction)
        closed = True
        if is_close_nb(size, entry_size):
            direction = 0
        else:
            remaining = (entry_size - size) / entry_size
            entry_size *= remaining
            entry_gross *= remaining
            entry_fees *= remaining
    else:
        # reversal: close the whole trade, open the opposite one with the rest of the fill
        closing_fee = entry_size / size * fee
        entry_price = entry_gross / entry_size
        pnl = trade_pnl_nb(entry_size, entry_price, entry_fees, price, closing_fee, direction)
        closed = True
        entry_size = size - entry_size
        entry_gross = entry_size * price
        entry_fees = fee - closing_fee
        direction = -direction
    return direction, entry_size, entry_gross, entry_fees, closed, pnl


# Liquidation. An account whose equity falls to the maintenance level (a fraction of the
# position's value; 0 = equity reaches zero) is closed out and trades no more. Losses stop at
# the account's equity, as with an exchange's isolated margin: the close-out never fills at a
# price where equity after its fee would be negative (the bankruptcy price), even when the bar
# gaps through the level. The close-out pays the fee and no slippage.


@njit(cache=True, inline="always")
def liquidation_level_nb(cash, position, fees, maintenance):
    """Price at which equity after a close-out fee equals ``maintenance`` x position value.

    Long (``position`` > 0): cash + q p (1 - fee) = m q p; short: cash - |q| p (1 + fee) =
    m |q| p. NaN when no positive price reaches it (a long bought without borrowing).
    """
    if position > 0.0:
        if cash >= 0.0:
            return np.nan
        return -cash / (position * (1.0 - fees - maintenance))
    if position < 0.0:
        return cash / (-position * (1.0 + fees + maintenance))
    return np.nan


@njit(cache=True, inline="always")
def liquidation_levels_nb(cash, position, fees, maintenance):
    """(level, bankruptcy price) of the account: where equity after a close-out fee reaches
    the maintenance level, and zero. NaN, NaN when flat or when no price reaches them."""
    if position == 0.0:
        return np.nan, np.nan
    return (
        liquidation_level_nb(cash, position, fees, maintenance),
        liquidation_level_nb(cash, position, fees, 0.0),
    )


@njit(cache=True, inline="always")
def close_out_price_nb(position, level, bankrupt, open_, low, high, open_only):
    """Fill price of a close-out on this bar, NaN when the account survives it.

    The adverse extreme of the bar (low for a long, high for a short) is tested against the
    level, or only the open when ``open_only``. The fill is at the level, or at the open when
    the bar opens beyond it, but never beyond the bankruptcy price.
    """
    if not (level == level):
        return np.nan
    if position > 0.0:
        if open_ <= level:
            return max(open_, bankrupt)
        if not open_only and low <= level:
            return level
        return np.nan
    if open_ >= level:
        return min(open_, bankrupt)
    if not open_only and high >= level:
        return level
    return np.nan


@njit(cache=True, inline="always")
def liquidation_price_nb(cash, position, open_, low, high, fees, maintenance, open_only):
    """:func:`close_out_price_nb` of an account holding ``cash`` and ``position``."""
    level, bankrupt = liquidation_levels_nb(cash, position, fees, maintenance)
    return close_out_price_nb(position, level, bankrupt, open_, low, high, open_only)


@njit(cache=True)
def first_liquidation_nb(
    cash, position, has_order, open_, low, high, fill_at_open, fees, maintenance, init_cash
):
    """First bar on which an account would be closed out, from a run without close-outs.

    Parameters
    ----------
    cash, position : ndarray of float64, shape (bars,)
        Cash and units held at each bar's close (after its fill).
    has_order : ndarray of bool, shape (bars,)
        Whether an order fills on the bar.
    open_, low, high : ndarray of float64, shape (bars,)
    fill_at_open : bool
        Orders fill at the open (the position after the fill lives through the bar) or at the
        close (the position before it does).
    fees, maintenance : float
    init_cash : float

    Returns
    -------
    (bar, price, order_first)
        The bar (-1 when none), the close-out price and whether the bar's own order filled
        before the close-out (an order at the open, the close-out later in the bar).
    """
    held_cash = init_cash
    held = 0.0
    for t in range(cash.shape[0]):
        if held != 0.0:
            # the position carried into the bar meets the open first (the whole bar when
            # orders fill at the close)
            price = liquidation_price_nb(
                held_cash, held, open_[t], low[t], high[t], fees, maintenance, fill_at_open
            )
            if price == price:
                return t, price, False
        if fill_at_open and position[t] != 0.0:
            # the position after the open's fill lives through the rest of the bar
            price = liquidation_price_nb(
                cash[t], position[t], open_[t], low[t], high[t], fees, maintenance, False
            )
            if price == price:
                return t, price, has_order[t]
        held_cash = cash[t]
        held = position[t]
    return -1, np.nan, False
