"""Performance metrics of an equity curve and its trades, with the annualisation stated.

Definitions (``r`` the return of each bar, ``P`` the bars per year of
:func:`~qt_backtest.backtest.periods.periods_per_year`: 252 for daily bars on a weekday
calendar, a year of 365 days' bars otherwise, 8,760 for hourly bars):

* total return: final equity / initial cash - 1;
* CAGR: growth ** (P / bars) - 1, the years counted in bars;
* annualised volatility: the sample standard deviation of ``r`` x sqrt(P);
* Sharpe ratio: arithmetic mean of ``r`` / its sample standard deviation x sqrt(P);
* Sortino ratio: arithmetic mean of ``r`` / sqrt(mean(min(r, 0) ** 2)) x sqrt(P);
* Calmar ratio: CAGR / |maximum drawdown|;
* maximum drawdown: the deepest fall of equity below its running peak (initial cash
  included), as a fraction;
* win rate, profit factor and average trade: over closed trades, from their profit in quote
  currency after fees (profit factor: gross profit / gross loss);
* exposure: the share of bars that end holding a position.

Under the same conventions (whole shares and the last trade closed at the end:
``PositionRules(size_granularity=1.0, close_at_end=True)``), backtesting.py reports the same
equity, total return, maximum drawdown, trade count and win rate (``tests/test_parity.py``
shows them equal on its own strategy and data), but defines the others differently:

* its annualised return is geometric: the geometric mean g of daily returns (equity resampled
  per calendar day), compounded to (1 + g) ** D - 1 with D = 252 trading days for daily
  data (365 when it has weekends);
* its annualised volatility is that of the compounded annual return for independent daily
  returns of variance v: sqrt((v + (1 + g) ** 2) ** D - (1 + g) ** (2 D)), not sqrt(D)
  times the daily standard deviation;
* its Sharpe ratio is the annualised return over that volatility, and its Sortino ratio the
  annualised return over the daily downside deviation x sqrt(D): geometric return on top,
  where ours puts the arithmetic mean;
* its CAGR counts years in calendar time (last timestamp - first, / 365.25 days), ours in
  bars / P;
* its Calmar ratio divides its annualised return, not CAGR, by the maximum drawdown;
* its profit factor and average trade are over each trade's return in percent (the average
  geometric), ours over profit in currency;
* its exposure counts a trade's bars from entry to exit inclusive, ours the bars that end
  holding a position (the exit bar of a trade filled at the open holds none).

A standard deviation that is only rounding noise counts as zero (:func:`negligible_spread`):
a constant return series has no Sharpe ratio (NaN), not one of 1e13.
"""

from __future__ import annotations

from typing import overload

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from qt_backtest.backtest import nb


def negligible_spread(std: ArrayLike, mean: ArrayLike, count: ArrayLike) -> bool | np.ndarray:
    """Whether a standard deviation of returns is rounding noise, to be taken as zero.

    A series of equal returns has no spread, but returns and their spread are computed in
    floating point, which leaves some:

    * a return is a ratio of two equity values minus one: it is exact to about ``eps``
      (2.2e-16) whatever its size, which makes a spread of order ``eps`` in a constant series;
    * a variance from running sums (sum of squares minus ``count x mean ** 2``, as kept by the
      sweep, the block moments and the Sharpe tests) loses to cancellation up to about
      ``3 count eps mean ** 2`` (each of the ``count`` additions rounds), a spread of up to
      ``sqrt(3 count eps) |mean|``.

    A spread at or below ``2 sqrt(count eps) |mean| + 16 eps`` is below both
    (:func:`qt_backtest.backtest.nb.negligible_spread_nb`, which the kernels call). No real
    series comes near it: it would take a per-bar Sharpe ratio above
    ``1 / (2 sqrt(count eps))``, over 30,000 at a million bars (an annual Sharpe ratio of 3 on
    5-minute bars is 0.01 a bar). The Sortino ratio's downside deviation is not centred on the
    mean, so rounding cannot make it small next to the returns: it needs no such test.

    Parameters
    ----------
    std : float or ndarray
        Standard deviation of the returns (NaN is not negligible).
    mean : float or ndarray
        Their mean.
    count : float or ndarray
        Number of returns.

    Returns
    -------
    bool or ndarray of bool
        Broadcast shape of the inputs.
    """
    arrays = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (std, mean, count)))
    std_flat, mean_flat, count_flat = (np.ascontiguousarray(x).ravel() for x in arrays)
    out = np.empty(std_flat.shape[0], dtype=np.bool_)
    nb.negligible_spreads_nb(std_flat, mean_flat, count_flat, out)
    result = out.reshape(arrays[0].shape)
    return bool(result) if result.ndim == 0 else result


@overload
def sharpe_ratio(mean: float, std: float, count: float, annualisation: float = 1.0) -> float: ...


@overload
def sharpe_ratio(
    mean: np.ndarray, std: ArrayLike, count: ArrayLike, annualisation: float = 1.0
) -> np.ndarray: ...


def sharpe_ratio(
    mean: ArrayLike, std: ArrayLike, count: ArrayLike, annualisation: float = 1.0
) -> float | np.ndarray:
    """Mean over standard deviation times ``annualisation``, NaN where the spread is zero or
    only rounding noise (:func:`negligible_spread`).

    Parameters
    ----------
    mean, std : float or ndarray
        Mean and standard deviation of the returns.
    count : float or ndarray
        Number of returns.
    annualisation : float
        Factor applied (``sqrt(periods per year)``; 1 for a per-period ratio).

    Returns
    -------
    float or ndarray
        A float for scalar inputs.
    """
    means = np.asarray(mean, dtype=np.float64)
    spreads = np.asarray(std, dtype=np.float64)
    usable = (spreads > 0) & ~negligible_spread(spreads, means, count)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = means / np.where(usable, spreads, 1.0) * annualisation
    result = np.where(usable, ratio, np.nan)
    return float(result) if result.ndim == 0 else result


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
    if negligible_spread(std, r.mean(), bars):
        std = 0.0  # equal returns, up to rounding
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
        "sharpe": sharpe_ratio(r.mean(), std, bars, annual),
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
