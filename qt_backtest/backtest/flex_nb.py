"""Order functions for vectorbt's flexible simulation, used only for runs with a close-out:
the close-out bar may carry two orders (the bar's own at the open, then the close-out), which
``from_orders`` cannot express. Kept apart from :mod:`qt_backtest.backtest.nb` so that the
kernels do not import vectorbt."""

from __future__ import annotations

import numpy as np
from numba import njit
from vectorbt.portfolio.enums import Direction, SizeType
from vectorbt.portfolio.nb import close_position_nb, order_nb, order_nothing_nb


@njit(cache=True)
def value_at_order_price_nb(c, price):
    """Value each column at the bar's order price, as ``from_orders`` does when no valuation
    price is given, so that target-percent orders size identically."""
    for col in range(c.from_col, c.to_col):
        c.last_val_price[col] = price[c.i]
        c.last_value[col] = c.last_cash[col] + c.last_position[col] * price[c.i]
    return ()


@njit(cache=True)
def order_or_close_out_nb(c, sizes, price, close_out, fees, slippage, lots):
    """The bar's target-percent order (``sizes``, NaN: none; its quantity rounded down to a
    multiple of ``lots``, NaN: fractional), then its close-out (``close_out``: fill price, NaN:
    none), one call each; one column per group."""
    col = c.from_col
    i = c.i
    order_pending = not np.isnan(sizes[i, col])
    if c.call_idx == 0 and order_pending:
        return col, order_nb(
            size=sizes[i, col],
            price=price[i],
            size_type=SizeType.TargetPercent,
            direction=Direction.Both,
            fees=fees,
            slippage=slippage,
            size_granularity=lots[i, col],
        )
    if not np.isnan(close_out[i, col]) and c.call_idx == (1 if order_pending else 0):
        return col, close_position_nb(price=close_out[i, col], fees=fees)
    return -1, order_nothing_nb()
