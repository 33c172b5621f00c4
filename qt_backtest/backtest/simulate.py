"""Single backtest runs: decisions -> positions -> a vectorbt portfolio -> metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.backtest import nb
from qt_backtest.backtest.metrics import performance
from qt_backtest.backtest.periods import periods_per_year
from qt_backtest.backtest.rules import PositionRules
from qt_backtest.data.validate import validate_ohlcv
from qt_backtest.hierarchy.actions import encode_actions


@dataclass
class BacktestResult:
    """One simulated run.

    Attributes
    ----------
    value : Series
        Equity at each bar's close.
    target : Series
        Exposure decided at each bar's close (signed fraction of equity).
    position : Series
        Exposure held at each bar's close, after that bar's fill.
    orders : DataFrame
        Fills: ``bar``, ``timestamp``, ``size`` (units, signed), ``price``, ``fees``.
    trades : DataFrame
        Trades from vectorbt: entry and exit times and prices, direction, size, fees, pnl
        (after fees), return, and whether the trade is closed (the last one may still be open).
    metrics : Series
        See :func:`qt_backtest.backtest.metrics.performance`; ``periods_per_year`` states the
        annualisation.
    portfolio : vectorbt Portfolio
        The simulation itself, for anything else vectorbt offers; its index holds the bars'
        instants as naive UTC timestamps.
    """

    value: pd.Series
    target: pd.Series
    position: pd.Series
    orders: pd.DataFrame
    trades: pd.DataFrame
    metrics: pd.Series
    portfolio: Any = field(repr=False)
    rules: PositionRules = field(default_factory=PositionRules)


def target_exposure(decisions: pd.DataFrame | pd.Series, rules: PositionRules) -> pd.Series:
    """Exposure wanted after each bar's decision (before execution), as a Series.

    ``decisions`` is a replay frame (``final_action``, ``final_confidence``) or a Series of
    actions (BUY/SELL/HOLD or -1/0/1; confidence 1).
    """
    if isinstance(decisions, pd.DataFrame):
        actions, confidences = decisions["final_action"], decisions["final_confidence"]
    else:
        actions, confidences = decisions, pd.Series(1.0, index=decisions.index)
    codes, present, bad = encode_actions(actions)
    if bad.any() or not present.all():
        row = int(np.flatnonzero(bad | ~present)[0])
        raise ValueError(f"decision at row {row} is not BUY, SELL or HOLD: {actions.iloc[row]!r}")
    confidence = confidences.to_numpy(dtype=np.float64, na_value=np.nan)
    if rules.scale_by_confidence and not np.isfinite(confidence[codes != 0]).all():
        raise ValueError("scale_by_confidence needs a confidence for every BUY and SELL")
    out = np.empty(len(codes))
    nb.target_exposure_nb(
        codes,
        np.nan_to_num(confidence),
        rules.long_only,
        1 if rules.hold == "flat" else 0,
        rules.max_hold_bars or 0,
        float(rules.size),
        rules.scale_by_confidence,
        out,
    )
    return pd.Series(out, index=actions.index, name="target")


def order_sizes(target: np.ndarray, lag: int, close_at_end: bool = False) -> np.ndarray:
    """Target-percent orders: a new target decided at bar t is sent for bar t + lag; NaN means
    no order (the position is left to drift with the price).

    Parameters
    ----------
    target : ndarray of float64, shape (bars,)
        Exposure wanted after each bar's decision.
    lag : int
        Bars between a decision and its fill.
    close_at_end : bool
        Send a target of 0 (close) for the last bar, in place of any order it had.

    Returns
    -------
    ndarray of float64, shape (bars,)
    """
    sizes = np.full(target.shape[0], np.nan)
    previous = np.concatenate([[0.0], target[:-1]])
    changes = np.flatnonzero(target != previous)
    fills = changes + lag
    keep = fills < target.shape[0]
    sizes[fills[keep]] = target[changes[keep]]
    if close_at_end and sizes.size:
        sizes[-1] = 0.0
    return sizes


def order_granularity(sizes: np.ndarray, granularity: float | None) -> np.ndarray:
    """The lot each order's quantity is rounded down to (NaN: none), shape of ``sizes``.

    An order for a target of 0 closes the whole position: rounding it down could leave a
    remainder when the position is not an exact multiple of the lot in floating point.
    """
    lots = np.full(np.shape(sizes), np.nan)
    if granularity is not None:
        lots[~np.isnan(sizes) & (sizes != 0.0)] = float(granularity)
    return lots


def run_portfolio(
    bars: pd.DataFrame, target: pd.Series | pd.DataFrame, rules: PositionRules, per_year: float
) -> Any:
    """The vectorbt portfolio (numba engine) that trades ``target`` under ``rules``; inputs
    are taken as valid (see :func:`simulate`). A frame of targets runs one independent
    portfolio per column. An account that reaches the maintenance level is closed out and
    trades no more (see :func:`qt_backtest.backtest.nb.liquidation_price_nb`)."""
    return _run(bars, target, rules, per_year)[0]  # indexed by naive UTC timestamps


def _plain_index(index: pd.Index) -> pd.Index:
    """A tz-aware DatetimeIndex as naive UTC (the same instants); other indexes unchanged."""
    if isinstance(index, pd.DatetimeIndex) and index.tz is not None:
        return index.tz_convert("UTC").tz_localize(None)
    return index


def _run(
    bars: pd.DataFrame, target: pd.Series | pd.DataFrame, rules: PositionRules, per_year: float
) -> tuple[Any, np.ndarray, np.ndarray]:
    """(portfolio, close-out bar per column (-1: none), close-out price per column)."""
    import vectorbt as vbt

    # vectorbt turns a tz-aware index into an array of Timestamp objects on every result it
    # wraps (seconds at 100,000 bars): it gets the same instants without the zone
    index = _plain_index(bars.index)
    values = target.to_numpy()
    if values.ndim == 1:
        sizes = order_sizes(values, rules.execution_lag, rules.close_at_end)
    else:
        sizes = np.column_stack(
            [
                order_sizes(values[:, j], rules.execution_lag, rules.close_at_end)
                for j in range(values.shape[1])
            ]
        )
        sizes = pd.DataFrame(sizes, index=index, columns=target.columns)
    close = pd.Series(bars["close"].to_numpy(dtype=np.float64), index=index)
    price = pd.Series(bars[rules.fill_price].to_numpy(dtype=np.float64), index=index)
    options = {
        "init_cash": rules.init_cash,
        "freq": pd.Timedelta(days=365) / per_year,
    }
    # a copy: the close-outs below cancel the orders after them
    size_matrix = np.array(sizes, dtype=np.float64).reshape(len(bars), -1)
    lots = order_granularity(size_matrix, rules.size_granularity)
    if rules.size_granularity is not None:
        options["size_granularity"] = lots.reshape(np.shape(sizes))
    portfolio = vbt.Portfolio.from_orders(
        close=close,
        size=sizes,
        size_type="targetpercent",
        direction="both",
        price=price,
        fees=rules.fee,
        slippage=rules.slippage_bps / 10_000.0,
        engine="numba",
        **options,
    )
    options.pop("size_granularity", None)
    cash = np.asarray(portfolio.cash(), dtype=np.float64).reshape(size_matrix.shape)
    units = np.asarray(portfolio.assets(), dtype=np.float64).reshape(size_matrix.shape)
    ohlc = [bars[name].to_numpy(dtype=np.float64) for name in ("open", "low", "high")]
    columns = size_matrix.shape[1]
    ruin_bar = np.full(columns, -1, dtype=np.int64)
    ruin_price = np.full(columns, np.nan)
    order_first = np.zeros(columns, dtype=np.bool_)
    for j in range(columns):
        ruin_bar[j], ruin_price[j], order_first[j] = nb.first_liquidation_nb(
            cash[:, j],
            units[:, j],
            ~np.isnan(size_matrix[:, j]),
            *ohlc,
            rules.fill_price == "open",
            rules.fee,
            rules.maintenance_margin,
            rules.init_cash,
        )
    if (ruin_bar < 0).all():
        return portfolio, ruin_bar, ruin_price
    # Rerun with the close-outs: a second order on the close-out bar, after the bar's own
    # order when that filled first, needs vectorbt's flexible simulation.
    close_out = np.full(size_matrix.shape, np.nan)
    for j in map(int, np.flatnonzero(ruin_bar >= 0)):
        bar = int(ruin_bar[j])
        size_matrix[bar + (1 if order_first[j] else 0) :, j] = np.nan
        close_out[bar, j] = ruin_price[j]
    close_frame = (
        close
        if values.ndim == 1
        else pd.DataFrame(
            np.repeat(close.to_numpy()[:, None], columns, axis=1),
            index=close.index,
            columns=target.columns,
        )
    )
    from qt_backtest.backtest import flex_nb

    portfolio = vbt.Portfolio.from_order_func(
        close_frame,
        flex_nb.order_or_close_out_nb,
        size_matrix,
        price.to_numpy(),
        close_out,
        float(rules.fee),
        rules.slippage_bps / 10_000.0,
        lots,
        flexible=True,
        pre_segment_func_nb=flex_nb.value_at_order_price_nb,
        pre_segment_args=(price.to_numpy(),),
        max_orders=2 * size_matrix.size,
        **options,
    )
    return portfolio, ruin_bar, ruin_price


def simulate(
    bars: pd.DataFrame,
    decisions: pd.DataFrame | pd.Series,
    rules: PositionRules | None = None,
    *,
    interval: str | pd.Timedelta | None = None,
) -> BacktestResult:
    """Simulate one symbol's decisions on its bars through vectorbt (numba engine).

    Parameters
    ----------
    bars : DataFrame
        Validated OHLCV bars.
    decisions : DataFrame or Series
        Per-bar final decisions indexed like ``bars`` (a :func:`replay` frame, or actions).
    rules : PositionRules, optional
        Position model and costs; the defaults otherwise (next-bar open, 0.04 % a side).
    interval : str or Timedelta, optional
        Bar interval for annualisation; inferred from the index when omitted.
    """
    rules = rules or PositionRules()
    validate_ohlcv(bars, source=bars.attrs.get("source"), check_interval=False)
    if not decisions.index.equals(bars.index):
        raise ValueError("decisions must be indexed like the bars (one decision per bar)")
    ppy = periods_per_year(bars.index, interval)
    target = target_exposure(decisions, rules)
    portfolio, ruin_bars, _ = _run(bars, target, rules, ppy)
    value = pd.Series(portfolio.value().to_numpy(), index=bars.index, name="value")
    records = portfolio.orders.records
    orders = pd.DataFrame(
        {
            "bar": records["idx"].to_numpy(),
            "timestamp": bars.index[records["idx"].to_numpy()],
            "size": np.where(records["side"].to_numpy() == 0, 1.0, -1.0)
            * records["size"].to_numpy(),
            "price": records["price"].to_numpy(),
            "fees": records["fees"].to_numpy(),
        }
    )
    raw = portfolio.trades.records
    trades = pd.DataFrame(
        {
            "entry_timestamp": bars.index[raw["entry_idx"].to_numpy()],
            "exit_timestamp": bars.index[raw["exit_idx"].to_numpy()],
            "direction": np.where(raw["direction"].to_numpy() == 0, "long", "short"),
            "size": raw["size"].to_numpy(),
            "entry_price": raw["entry_price"].to_numpy(),
            "exit_price": raw["exit_price"].to_numpy(),
            "fees": (raw["entry_fees"] + raw["exit_fees"]).to_numpy(),
            "pnl": raw["pnl"].to_numpy(),
            "return": raw["return"].to_numpy(),
            "closed": raw["status"].to_numpy() == 1,
        }
    )
    trade_pnl = trades.loc[trades["closed"], "pnl"].to_numpy(dtype=np.float64)
    asset_value = pd.Series(portfolio.asset_value().to_numpy(), index=bars.index)
    position = (asset_value / value).fillna(0.0).rename("position")
    metrics = performance(
        value,
        trade_pnl,
        position.to_numpy(),
        float((orders["size"].abs() * orders["price"]).sum()),
        float(orders["fees"].sum()),
        rules.init_cash,
        ppy,
        ruin_bar=int(ruin_bars[0]),
    )
    _drop_cached_results(portfolio)
    return BacktestResult(
        value, target, position, orders, trades, pd.Series(metrics), portfolio, rules
    )


def _drop_cached_results(portfolio: Any) -> None:
    """Forget the arrays vectorbt cached on ``portfolio`` while the result was built (cash,
    assets, value, records): the result holds what it needs, vectorbt recomputes on demand,
    and the cache's reference cycle would otherwise keep them until a full collection."""
    for name in [name for name in vars(portfolio) if name.startswith("__cached_")]:
        delattr(portfolio, name)
