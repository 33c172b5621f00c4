"""Parity with backtesting.py: its own strategy on its own data gives the same trades and equity.

backtesting.py's test suite runs ``SmaCross(10, 30)`` on its bundled GOOG daily bars
(``tests/data/GOOG-1d.csv.gz`` is that file) with ``finalize_trades=True`` and asserts its
statistics. The strategy, read from that suite:

* on the bar where the 10-bar SMA of the close crosses above the 30-bar SMA (below on the bar
  before, above on this one, both strictly), close any position and buy; where it crosses
  below, close and sell short: it is always in the market after the first cross, long or short;
* orders are market orders, filled at the next bar's open;
* ``buy()`` and ``sell()`` without a size put (almost) all the equity in: the whole number of
  shares the cash buys at the fill price, rounded down;
* starting cash 10,000, no commission, no spread;
* the trade still open at the end is closed on the last bar, at its open (the broker runs that
  bar once more for the closing orders), so that it counts among the closed trades.

The same rules in qt_backtest: SMA cross decisions (BUY, SELL, HOLD otherwise) simulated with
``PositionRules(fee=0, init_cash=10_000, size_granularity=1.0, close_at_end=True)``, the
defaults doing the rest (long and short, HOLD keeps the position, fill at the next bar's open,
fully invested). Both engines then give the same trades (bars, sizes, prices, profit), the same
equity at every bar (to 1e-9, both accumulate the same numbers in a different order) and the
same total return, trade count, maximum drawdown and win rate.

Where the two report different numbers, the definitions differ (each checked below by computing
backtesting.py's definition from qt_backtest's equity and trades, D = 252 trading days a year
for a weekday calendar, 365 with weekends; P the bars per year, also 252 here):

* annualised return: backtesting.py compounds the geometric mean ``g`` of daily returns,
  ``(1 + g) ** D - 1``; qt_backtest's CAGR is ``growth ** (P / bars) - 1``;
* CAGR: backtesting.py counts years in calendar time ((last - first timestamp) / 365.25 days),
  qt_backtest in bars (bars / P);
* annualised volatility: backtesting.py gives that of the compounded annual return of
  independent daily returns of variance ``v``, ``sqrt((v + (1 + g) ** 2) ** D - (1 + g) **
  (2 D))``; qt_backtest ``sqrt(P)`` times the standard deviation of bar returns;
* Sharpe ratio: backtesting.py divides its geometric annualised return by that volatility;
  qt_backtest's is the arithmetic mean of bar returns over their standard deviation, times
  ``sqrt(P)``;
* Sortino ratio: backtesting.py puts its geometric annualised return over the daily downside
  deviation times ``sqrt(D)``; qt_backtest the arithmetic mean over the same downside
  deviation, times ``sqrt(P)``;
* Calmar ratio: backtesting.py divides its annualised return by the maximum drawdown,
  qt_backtest its CAGR;
* profit factor and average trade: backtesting.py uses each trade's return in percent (the
  average a geometric mean), qt_backtest each trade's profit in currency after fees;
* exposure: backtesting.py counts a trade's bars from its entry to its exit bar inclusive,
  qt_backtest the bars that end holding a position (a trade closed at a bar's open holds none
  at its close).

SQN, the Kelly criterion, alpha and beta have no counterpart in qt_backtest.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest
from backtesting.test import GOOG

from qt_backtest.backtest import PositionRules, simulate
from qt_backtest.data import load_ohlcv
from tests.conftest import data_file

FAST, SLOW = 10, 30
CASH = 10_000.0
TRADING_DAYS = 252
#: What backtesting.py 0.6.6's own ``test_compute_stats`` asserts for ``SmaCross(10, 30)`` on
#: GOOG with ``finalize_trades=True`` (to a relative 1e-8, as it checks them).
SUITE_FIGURES = {
    "# Trades": 66,
    "Equity Final [$]": 51422.98999999996,
    "Return [%]": 414.2298999999996,
    "Max. Drawdown [%]": -47.98012705007589,
    "Win Rate [%]": 46.96969696969697,
}


def sma_cross_strategy():
    """backtesting.py's ``SmaCross`` as its test suite defines it (imported lazily: the module
    holding it is the suite itself)."""
    from backtesting.test._test import SmaCross

    assert (SmaCross.fast, SmaCross.slow) == (FAST, SLOW)
    return SmaCross


def cross_decisions(close: pd.Series) -> pd.Series:
    """BUY where the fast SMA crosses strictly above the slow one, SELL where it crosses
    strictly below, HOLD otherwise (and while either SMA is undefined)."""
    fast = close.rolling(FAST).mean().to_numpy()
    slow = close.rolling(SLOW).mean().to_numpy()
    up = np.zeros(len(close), dtype=bool)
    down = np.zeros(len(close), dtype=bool)
    up[1:] = (fast[:-1] < slow[:-1]) & (fast[1:] > slow[1:])
    down[1:] = (fast[:-1] > slow[:-1]) & (fast[1:] < slow[1:])
    return pd.Series(np.where(up, "BUY", np.where(down, "SELL", "HOLD")), index=close.index)


PARITY_RULES = PositionRules(fee=0.0, init_cash=CASH, size_granularity=1.0, close_at_end=True)


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_ohlcv(data_file("GOOG-1d.csv.gz"))


@pytest.fixture(scope="module")
def runs(goog):
    """(qt_backtest's result, backtesting.py's statistics) of the same strategy and data."""
    ours = simulate(goog, cross_decisions(goog["close"]), PARITY_RULES)
    data = goog.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    data.index = data.index.tz_localize(None)
    with warnings.catch_warnings():
        # backtesting.py 0.6.6 reads an index attribute that pandas 3.1 deprecates
        warnings.filterwarnings("ignore", "DatetimeIndex.dayofweek is deprecated")
        theirs = Backtest(data, sma_cross_strategy(), cash=CASH, finalize_trades=True).run()
    return ours, theirs


def test_the_data_is_backtesting_suites_own(goog):
    columns = ["Open", "High", "Low", "Close", "Volume"]
    np.testing.assert_array_equal(goog[[c.lower() for c in columns]].to_numpy(), GOOG[columns])
    assert (goog.index.tz_localize(None) == GOOG.index).all()


def test_equity_at_every_bar_equals_backtesting(runs):
    ours, theirs = runs
    np.testing.assert_allclose(
        ours.value.to_numpy(), theirs["_equity_curve"]["Equity"].to_numpy(), rtol=1e-9
    )


def test_trades_equal_backtesting(runs, goog):
    ours, theirs = runs
    trades = theirs["_trades"]
    assert ours.trades["closed"].all() and len(ours.trades) == len(trades)
    bar = {timestamp: i for i, timestamp in enumerate(goog.index)}
    sign = np.where(ours.trades["direction"] == "long", 1.0, -1.0)
    np.testing.assert_array_equal(ours.trades["size"] * sign, trades["Size"])
    np.testing.assert_array_equal(ours.trades["entry_timestamp"].map(bar), trades["EntryBar"])
    np.testing.assert_array_equal(ours.trades["exit_timestamp"].map(bar), trades["ExitBar"])
    np.testing.assert_allclose(ours.trades["entry_price"], trades["EntryPrice"], rtol=1e-12)
    np.testing.assert_allclose(ours.trades["exit_price"], trades["ExitPrice"], rtol=1e-12)
    np.testing.assert_allclose(ours.trades["pnl"], trades["PnL"], rtol=1e-9)
    np.testing.assert_allclose(ours.trades["return"], trades["ReturnPct"], rtol=1e-9)
    # the last trade was closed by the end of the run, on the last bar
    assert trades["ExitBar"].iloc[-1] == len(goog) - 1


def test_shared_metrics_equal_backtesting_and_its_suite(runs):
    ours, theirs = runs
    metrics = ours.metrics
    ours_as_theirs = {
        "# Trades": metrics["trades"],
        "Equity Final [$]": ours.value.iloc[-1],
        "Return [%]": metrics["total_return"] * 100,
        "Max. Drawdown [%]": metrics["max_drawdown"] * 100,
        "Win Rate [%]": metrics["win_rate"] * 100,
    }
    for name, value in ours_as_theirs.items():
        assert value == pytest.approx(theirs[name], rel=1e-9, abs=0), name
        assert value == pytest.approx(SUITE_FIGURES[name], rel=1e-8, abs=0), name


@pytest.mark.parametrize("change", [{"size_granularity": None}, {"close_at_end": False}])
def test_each_convention_is_needed(runs, goog, change):
    _, theirs = runs
    other = simulate(
        goog, cross_decisions(goog["close"]), dataclasses.replace(PARITY_RULES, **change)
    )
    equity = theirs["_equity_curve"]["Equity"].to_numpy()
    assert not np.allclose(other.value.to_numpy(), equity, rtol=1e-9, atol=0)
    if "close_at_end" in change:  # the last trade stays open and is not counted
        assert other.metrics["trades"] == theirs["# Trades"] - 1


def geometric_annual_return(value: pd.Series) -> tuple[float, float, np.ndarray]:
    """backtesting.py's annualised return, from daily returns of ``value``: ((1 + g) ** D - 1,
    g, the returns), g their geometric mean."""
    daily = value.resample("D").last().dropna().pct_change().dropna().to_numpy()
    g = float(np.exp(np.log1p(daily).mean()) - 1.0)
    return (1.0 + g) ** TRADING_DAYS - 1.0, g, daily


def test_differing_metrics_are_only_other_definitions(runs, goog):
    ours, theirs = runs
    value = ours.value
    annual, g, daily = geometric_annual_return(value)
    variance = daily.var(ddof=1)
    volatility = np.sqrt(
        (variance + (1.0 + g) ** 2) ** TRADING_DAYS - (1.0 + g) ** (2 * TRADING_DAYS)
    )
    downside = np.sqrt(np.mean(np.minimum(daily, 0.0) ** 2)) * np.sqrt(TRADING_DAYS)
    span = value.index[-1] - value.index[0]
    calendar_cagr = (value.iloc[-1] / CASH) ** (365.25 / (span / pd.Timedelta(days=1))) - 1.0
    returns = ours.trades["return"].to_numpy()
    held = np.zeros(len(goog), dtype=bool)
    bar = {timestamp: i for i, timestamp in enumerate(goog.index)}
    trades = ours.trades
    for entry, exit_ in zip(trades["entry_timestamp"], trades["exit_timestamp"], strict=True):
        held[bar[entry] : bar[exit_] + 1] = True
    theirs_from_ours = {
        "Return (Ann.) [%]": annual * 100,
        "Volatility (Ann.) [%]": volatility * 100,
        "Sharpe Ratio": annual / volatility,
        "Sortino Ratio": annual / downside,
        "CAGR [%]": calendar_cagr * 100,
        "Calmar Ratio": annual / abs(ours.metrics["max_drawdown"]),
        "Profit Factor": returns[returns > 0].sum() / -returns[returns < 0].sum(),
        "Avg. Trade [%]": (np.exp(np.log1p(returns).mean()) - 1.0) * 100,
        "Exposure Time [%]": held.mean() * 100,
    }
    for name, computed in theirs_from_ours.items():
        assert computed == pytest.approx(theirs[name], rel=1e-9), name
    # and qt_backtest's own definitions give other numbers on the same equity
    metrics = ours.metrics
    assert metrics["periods_per_year"] == TRADING_DAYS
    bar_returns = value.pct_change().fillna(value.iloc[0] / CASH - 1.0).to_numpy()
    arithmetic = bar_returns.mean() / bar_returns.std(ddof=1) * np.sqrt(TRADING_DAYS)
    assert metrics["sharpe"] == pytest.approx(arithmetic, rel=1e-12)
    assert abs(metrics["sharpe"] - theirs["Sharpe Ratio"]) > 0.05
    assert metrics["cagr"] == pytest.approx(
        (value.iloc[-1] / CASH) ** (TRADING_DAYS / len(value)) - 1.0, rel=1e-12
    )
    assert metrics["cagr"] * 100 != pytest.approx(theirs["CAGR [%]"], rel=1e-6)
    pnl = ours.trades["pnl"]
    assert metrics["profit_factor"] == pytest.approx(pnl[pnl > 0].sum() / -pnl[pnl < 0].sum())
    assert metrics["exposure"] == pytest.approx(np.mean(ours.position.to_numpy() != 0.0))
