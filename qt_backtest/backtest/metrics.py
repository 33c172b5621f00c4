"""Performance metrics of an equity curve and its trades, with the annualisation stated."""

from __future__ import annotations

import numpy as np
import pandas as pd


def drawdown(value: pd.Series) -> pd.Series:
    """Fractional distance below the running peak (0 at a peak, -0.25 = 25 % below)."""
    return value / value.cummax() - 1.0


def longest_drawdown(value: pd.Series) -> tuple[int, pd.Timedelta]:
    """Longest stretch below a previous peak: (bars, time from the peak to the recovery or
    the end)."""
    below = (value < value.cummax()).to_numpy()
    best, best_start, best_stop, start = 0, 0, 0, None
    for i, is_below in enumerate(np.append(below, False)):
        if is_below and start is None:
            start = i
        elif not is_below and start is not None:
            if i - start > best:
                best, best_start, best_stop = i - start, start, i
            start = None
    if best == 0:
        return 0, pd.Timedelta(0)
    index = value.index
    end = index[min(best_stop, len(index) - 1)]
    return best, end - index[best_start - 1]


def performance(
    value: pd.Series,
    trade_pnl: np.ndarray,
    exposure: np.ndarray,
    traded_value: float,
    fees: float,
    init_cash: float,
    periods_per_year: float,
    ruin_bar: int = -1,
) -> dict[str, float]:
    """Metrics of one run.

    Parameters
    ----------
    value : Series
        Equity at each bar's close (quote currency).
    trade_pnl : ndarray
        Profit and loss of each closed trade, after fees.
    exposure : ndarray
        Held position (signed fraction of equity) per bar.
    traded_value, fees : float
        Total notional traded and fees paid.
    init_cash : float
        Equity before the first bar.
    periods_per_year : float
        Bars per year used to annualise (stated in the result).
    ruin_bar : int
        Bar on which the account was closed out (-1: never). Its later returns are 0: the
        account holds nothing, and its equity may be zero.
    """
    returns = value.pct_change()
    returns.iloc[0] = value.iloc[0] / init_cash - 1.0
    r = returns.to_numpy().copy()
    if ruin_bar >= 0:
        r[ruin_bar + 1 :] = 0.0
    bars = len(r)
    years = bars / periods_per_year
    growth = value.iloc[-1] / init_cash
    std = r.std(ddof=1) if bars > 1 else np.nan
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    annual = np.sqrt(periods_per_year)
    dd = drawdown(pd.concat([pd.Series([init_cash]), value.reset_index(drop=True)]))
    max_dd = float(dd.min())
    dd_bars, dd_time = longest_drawdown(value)
    with np.errstate(over="ignore"):  # a few bars of a year: the rate may overflow to inf
        cagr = growth ** (1.0 / years) - 1.0 if years > 0 and growth > 0 else np.nan
    if ruin_bar >= 0 and not growth > 0:
        cagr = -1.0
    wins = trade_pnl[trade_pnl > 0]
    losses = trade_pnl[trade_pnl < 0]
    return {
        "total_return": growth - 1.0,
        "cagr": cagr,
        "annualized_volatility": std * annual,
        "sharpe": r.mean() / std * annual if std > 0 else np.nan,
        "sortino": r.mean() / downside * annual if downside > 0 else np.nan,
        "max_drawdown": max_dd,
        # closed out at the maintenance level: nothing was traded after ``ruin_bar``
        "ruined": ruin_bar >= 0,
        "ruin_bar": ruin_bar,
        "ruined_at": value.index[ruin_bar] if ruin_bar >= 0 else pd.NaT,
        "max_drawdown_bars": dd_bars,
        "max_drawdown_duration": dd_time,
        "calmar": cagr / abs(max_dd) if max_dd < 0 else np.nan,
        "trades": len(trade_pnl),
        "win_rate": len(wins) / len(trade_pnl) if len(trade_pnl) else np.nan,
        "profit_factor": wins.sum() / -losses.sum() if len(losses) else np.nan,
        "average_trade": trade_pnl.mean() if len(trade_pnl) else np.nan,
        "exposure": float(np.mean(exposure != 0)),
        "turnover": traded_value / float(value.mean()),
        "fees_paid": fees,
        "periods_per_year": periods_per_year,
    }
