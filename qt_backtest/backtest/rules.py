"""How decisions become positions and what trading costs: one frozen, validated dataclass."""

from __future__ import annotations

from dataclasses import dataclass

from qt_backtest.errors import ConfigError
from qt_backtest.parameters import param, validate

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

    long_only: bool = param(
        False, doc="SELL closes a long instead of opening a short", kind="bool", rule="P-POS-1"
    )
    hold: str = param(
        "keep",
        doc="what a HOLD does to the position",
        kind="choice",
        choices=HOLD_POLICIES,
        rule="P-POS-1",
    )
    max_hold_bars: int | None = param(
        None,
        doc="bars a position is held without a new signal",
        kind="int",
        low=1,
        unit="bars",
        nullable=True,
        rule="P-POS-3",
    )
    execution_lag: int = param(
        1,
        doc="bars between a decision and its fill",
        kind="int",
        low=0,
        unit="bars",
        rule="P-FILL-1",
    )
    fill_price: str = param(
        "open",
        doc="price of the fill bar",
        kind="choice",
        choices=FILL_PRICES,
        sweep=False,
        rule="P-FILL-2",
    )
    fee: float = param(
        0.0004,
        doc="fee per side",
        low=0.0,
        high=0.1,
        unit="fraction of traded value",
        rule="P-COST-1",
    )
    slippage_bps: float = param(
        0.0,
        doc="adverse price move per fill",
        low=0.0,
        high=1000.0,
        unit="basis points",
        rule="P-COST-2",
    )
    size: float = param(
        1.0,
        doc="position size",
        low=0.0,
        high=1.0,
        inclusive="high",
        unit="fraction of equity",
        rule="P-POS-2",
    )
    scale_by_confidence: bool = param(
        False, doc="size times the decision's confidence", kind="bool", rule="P-POS-2"
    )
    init_cash: float = param(
        100_000.0,
        doc="starting equity",
        low=0.0,
        inclusive="neither",
        unit="quote currency",
        sweep=False,
        rule="M-RET-1",
    )
    maintenance_margin: float = param(
        0.0,
        doc="equity below which the account is closed out",
        low=0.0,
        high=0.5,
        unit="fraction of position value",
        rule="P-RUIN-1",
    )
    size_granularity: float | None = param(
        None,
        doc="the lot: every order trades a whole number of them; None trades fractions",
        low=0.0,
        inclusive="neither",
        unit="units of the asset",
        nullable=True,
        rule="P-POS-5",
    )
    close_at_end: bool = param(
        False,
        doc="close any open position on the last bar",
        kind="bool",
        rule="P-FILL-5",
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.execution_lag == 0 and self.fill_price == "open":
            raise ConfigError(
                "execution_lag=0 with fill_price='open' would fill at a price from before the "
                "decision was known; use fill_price='close' or a lag >= 1",
                name="execution_lag, fill_price",
                value=(self.execution_lag, self.fill_price),
            )
