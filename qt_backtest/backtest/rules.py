"""How decisions become positions and what trading costs: one frozen, validated dataclass."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

HOLD_POLICIES = ("keep", "flat")
FILL_PRICES = ("open", "close")


@dataclass(frozen=True)
class PositionRules:
    """Position model and costs of a backtest.

    Parameters
    ----------
    long_only : bool
        SELL closes a long position instead of opening a short one.
    hold : {"keep", "flat"}
        A HOLD decision keeps the current position (the live behaviour: HOLD emits no signal)
        or closes it.
    max_hold_bars : int or None
        Close a position this many bars after the signal that opened or last renewed it (e.g.
        the models' label horizon, 5); None keeps it until the next signal.
    execution_lag : int
        Bars between a decision and its fill. The default 1 fills at the next bar (a decision
        at bar t uses data up to t's close); 0 is allowed only with ``fill_price="close"``.
    fill_price : {"open", "close"}
        Price of the fill bar the order executes at.
    fee : float
        Fee per side as a fraction of the traded value (0.0004 = 0.04 %).
    slippage_bps : float
        Adverse price move per fill, in basis points.
    size : float
        Position size as a fraction of equity, in (0, 1]: 1.0 is fully invested. Fills are
        limited by cash, as in vectorbt: a long cannot borrow, so leverage is not modelled (a
        short's loss is not bounded by the price, which is what a close-out stops).
    scale_by_confidence : bool
        Multiply the size by the decision's confidence when a position is opened or reversed.
    init_cash : float
        Starting equity, in quote currency.
    maintenance_margin : float
        Equity, as a fraction of the position's value, below which the account is closed out
        (liquidated) and trades no more; 0 closes it out when equity reaches zero. Checked
        against each bar's adverse extreme (low for a long, high for a short); losses stop at
        the account's equity.
    size_granularity : float or None
        Trade whole lots: the quantity of every order is rounded down to a multiple of this
        many units (1.0: whole shares); an order that closes the position closes all of it.
        None trades fractional units. Quantities are rounded down in binary floating point,
        as vectorbt does: exactly for whole units and binary fractions (0.5, 0.25); a decimal
        lot such as 0.1 is stored a little above 0.1, so a quantity that is a whole number of
        such lots in decimal (0.5 = 5 x 0.1) can come out one lot lower.
    close_at_end : bool
        Close any open position on the last bar, at that bar's fill price and with the usual
        fee and slippage, so that the last trade counts as a closed trade. The last bar's own
        order, if it has one, is replaced by the close.
    """

    long_only: bool = False
    hold: str = "keep"
    max_hold_bars: int | None = None
    execution_lag: int = 1
    fill_price: str = "open"
    fee: float = 0.0004
    slippage_bps: float = 0.0
    size: float = 1.0
    scale_by_confidence: bool = False
    init_cash: float = 100_000.0
    maintenance_margin: float = 0.0
    size_granularity: float | None = None
    close_at_end: bool = False

    def __post_init__(self) -> None:
        if self.hold not in HOLD_POLICIES:
            raise ValueError(f"hold must be one of {', '.join(HOLD_POLICIES)}, got {self.hold!r}")
        if self.fill_price not in FILL_PRICES:
            raise ValueError(
                f"fill_price must be one of {', '.join(FILL_PRICES)}, got {self.fill_price!r}"
            )
        for name in ("long_only", "scale_by_confidence", "close_at_end"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False")
        if self.max_hold_bars is not None and (
            isinstance(self.max_hold_bars, bool)
            or not isinstance(self.max_hold_bars, numbers.Integral)
            or self.max_hold_bars < 1
        ):
            raise ValueError(
                f"max_hold_bars (bars a position is held without a new signal) must be an "
                f"integer >= 1 or None, got {self.max_hold_bars!r}"
            )
        if (
            isinstance(self.execution_lag, bool)
            or not isinstance(self.execution_lag, numbers.Integral)
            or self.execution_lag < 0
        ):
            raise ValueError(f"execution_lag must be an integer >= 0, got {self.execution_lag!r}")
        if self.execution_lag == 0 and self.fill_price == "open":
            raise ValueError(
                "execution_lag=0 with fill_price='open' would fill at a price from before the "
                "decision was known; use fill_price='close' or a lag >= 1"
            )
        for name, low, high in (
            ("fee", 0.0, 0.1),
            ("slippage_bps", 0.0, 1000.0),
            ("size", 0.0, 1.0),
            ("maintenance_margin", 0.0, 0.5),
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not (math.isfinite(value) and low <= value <= high)
            ):
                raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
        if self.size == 0.0:
            raise ValueError("size must be above 0 (a fraction of equity; 1.0 = fully invested)")
        if not (isinstance(self.init_cash, numbers.Real) and self.init_cash > 0):
            raise ValueError(f"init_cash must be a positive amount, got {self.init_cash!r}")
        granularity = self.size_granularity
        if granularity is not None and (
            isinstance(granularity, bool)
            or not isinstance(granularity, numbers.Real)
            or not (math.isfinite(granularity) and granularity > 0)
        ):
            raise ValueError(
                f"size_granularity (the lot: orders trade multiples of it, in units) must be a "
                f"positive number or None for fractional units, got {granularity!r}"
            )
