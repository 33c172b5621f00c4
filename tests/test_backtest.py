"""Backtests: position model, hand-worked fills and fees, vectorbt's own statistics,
annualisation, and no lookahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qt_backtest.backtest import PositionRules, periods_per_year, simulate, target_exposure
from qt_backtest.data import load_ohlcv, load_sample
from tests.conftest import data_file, random_walk_ohlcv


def frame_of(open_, close, freq="1h"):
    index = pd.date_range("2024-01-01", periods=len(open_), freq=freq, tz="UTC", name="timestamp")
    open_, close = np.asarray(open_, float), np.asarray(close, float)
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + 1,
            "low": np.minimum(open_, close) - 1,
            "close": close,
            "volume": np.full(len(open_), 10.0),
        },
        index=index,
    )


def actions(frame, letters):
    names = {"B": "BUY", "S": "SELL", "H": "HOLD"}
    return pd.Series([names[c] for c in letters], index=frame.index)


def test_hand_worked_long_trade_with_fees():
    bars = frame_of([100, 101, 103, 102, 104], [100.5, 102, 102.5, 103, 105])
    rules = PositionRules(long_only=True, fee=0.001, init_cash=1000.0)
    result = simulate(bars, actions(bars, "BHSHH"), rules)
    shares = 1000.0 / (101 * 1.001)  # bought at the next open, fee paid from the same cash
    cash = shares * 102 * (1 - 0.001)  # sold at the open after the SELL
    expected = [1000.0, shares * 102, shares * 102.5, cash, cash]
    np.testing.assert_allclose(result.value.to_numpy(), expected, rtol=1e-12)
    assert result.orders["bar"].tolist() == [1, 3]
    np.testing.assert_allclose(result.orders["fees"], [shares * 101 * 0.001, shares * 102 * 0.001])
    assert result.metrics["trades"] == 1 and result.metrics["win_rate"] == 1.0
    assert result.trades["pnl"].iloc[0] == pytest.approx(cash - 1000.0)
    assert result.metrics["total_return"] == pytest.approx(cash / 1000 - 1)
    assert result.position.tolist()[:3] == [0.0, 1.0, 1.0] and result.position.iloc[3] == 0.0


def test_short_reversal_and_slippage():
    bars = frame_of([100, 100, 90, 95, 95], [100, 95, 92, 96, 96])
    rules = PositionRules(fee=0.0, slippage_bps=10, init_cash=1000.0)
    result = simulate(bars, actions(bars, "SHBHH"), rules)
    short_price = 100 * (1 - 0.001)  # a sale fills 10 bps below the open
    units = 1000.0 / 100  # the target is sized at the open, before slippage
    assert result.orders["size"].iloc[0] == pytest.approx(-units)
    assert result.orders["price"].iloc[0] == pytest.approx(short_price)
    # bar 1 closes at 95 with the short open
    assert result.value.iloc[1] == pytest.approx(1000.0 + units * (short_price - 95), rel=1e-12)
    assert result.orders["size"].iloc[1] > 0  # the BUY covers the short and goes long
    assert result.orders["price"].iloc[1] == pytest.approx(95 * 1.001)  # at bar 3's open
    assert result.position.iloc[-1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("letters", "rules", "expected"),
    [
        ("BHHSHB", PositionRules(), [1, 1, 1, -1, -1, 1]),
        ("BHHSHB", PositionRules(long_only=True), [1, 1, 1, 0, 0, 1]),
        ("BHHSHB", PositionRules(hold="flat"), [1, 0, 0, -1, 0, 1]),
        ("BHHHHB", PositionRules(max_hold_bars=2), [1, 1, 0, 0, 0, 1]),
        ("BHBHHH", PositionRules(max_hold_bars=2), [1, 1, 1, 1, 0, 0]),  # a BUY renews
    ],
)
def test_position_model(letters, rules, expected):
    bars = frame_of(np.arange(6) + 100.0, np.arange(6) + 100.5)
    assert target_exposure(actions(bars, letters), rules).tolist() == expected


def test_size_scaled_by_confidence():
    bars = frame_of([100] * 4, [100] * 4)
    decisions = pd.DataFrame(
        {"final_action": ["BUY", "HOLD", "BUY", "SELL"], "final_confidence": [0.8, 0.5, 0.9, 0.7]},
        index=bars.index,
    )
    target = target_exposure(decisions, PositionRules(size=0.5, scale_by_confidence=True))
    assert target.tolist() == pytest.approx([0.4, 0.4, 0.4, -0.35])


def test_metrics_equal_vectorbt_statistics_on_real_data():
    bars = load_sample("BTCUSDT-1h").iloc[:20_000]
    rng = np.random.default_rng(0)
    decisions = pd.Series(
        rng.choice(["BUY", "SELL", "HOLD"], len(bars), p=[0.05, 0.05, 0.9]), index=bars.index
    )
    result = simulate(bars, decisions, PositionRules(fee=0.0004, slippage_bps=2))
    pf = result.portfolio
    m = result.metrics
    assert m["periods_per_year"] == 8760
    assert m["total_return"] == pytest.approx(pf.total_return(), rel=1e-10)
    assert m["sharpe"] == pytest.approx(pf.sharpe_ratio(), rel=1e-10)
    assert m["sortino"] == pytest.approx(pf.sortino_ratio(), rel=1e-10)
    assert m["max_drawdown"] == pytest.approx(pf.max_drawdown(), rel=1e-10)
    assert m["annualized_volatility"] == pytest.approx(pf.annualized_volatility(), rel=1e-10)
    assert m["calmar"] == pytest.approx(pf.calmar_ratio(), rel=1e-6)
    stats = pf.stats()
    assert m["trades"] == stats["Total Closed Trades"]
    assert m["win_rate"] * 100 == pytest.approx(stats["Win Rate [%]"])
    assert m["profit_factor"] == pytest.approx(stats["Profit Factor"])
    assert m["fees_paid"] == pytest.approx(stats["Total Fees Paid"])


@pytest.mark.parametrize(
    ("name", "per_year"),
    [("BTCUSDT-1h.csv.gz", 8760), ("ETHUSDT-5m.csv.gz", 105_120), ("GOOG-1d.csv.gz", 252)],
)
def test_annualisation_follows_the_bar_interval(name, per_year):
    bars = load_ohlcv(data_file(name)).iloc[:3000]
    assert periods_per_year(bars.index) == per_year
    rng = np.random.default_rng(1)
    decisions = pd.Series(rng.choice(["BUY", "SELL", "HOLD"], len(bars)), index=bars.index)
    result = simulate(bars, decisions)
    r = result.value.pct_change().fillna(result.value.iloc[0] / 100_000 - 1).to_numpy()
    assert result.metrics["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(per_year))
    assert result.metrics["periods_per_year"] == per_year


def test_daily_crypto_counts_calendar_days():
    data = random_walk_ohlcv(400, seed=3)
    index = pd.date_range("2024-01-01", periods=400, freq="1D", tz="UTC")
    assert periods_per_year(pd.DataFrame(data, index=index).index) == 365


def test_no_lookahead_in_execution():
    bars = load_sample("ETHUSDT-1h").iloc[:5000]
    rng = np.random.default_rng(4)
    decisions = pd.Series(
        rng.choice(["BUY", "SELL", "HOLD"], len(bars), p=[0.1, 0.1, 0.8]), index=bars.index
    )
    base = simulate(bars, decisions)
    later = simulate(bars, decisions, PositionRules(execution_lag=2))
    assert not np.allclose(base.value, later.value)
    # perturbing every bar after t leaves positions and equity up to t unchanged
    cut = 3000
    future = bars.copy()
    scale = rng.uniform(0.5, 2.0, len(bars) - cut - 1)
    for column in ("open", "high", "low", "close"):
        future.iloc[cut + 1 :, future.columns.get_loc(column)] *= scale
    perturbed = simulate(future, decisions)
    pd.testing.assert_series_equal(
        perturbed.position.iloc[: cut + 1], base.position.iloc[: cut + 1], check_exact=True
    )
    pd.testing.assert_series_equal(
        perturbed.value.iloc[: cut + 1], base.value.iloc[: cut + 1], check_exact=True
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hold": "close"}, "hold must be one of keep, flat"),
        ({"execution_lag": 0}, "execution_lag=0 with fill_price='open'"),
        ({"fee": -0.1}, "fee must be a number in"),
        ({"max_hold_bars": 0}, "max_hold_bars"),
        ({"size": float("nan")}, "size must be a number"),
    ],
)
def test_rules_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PositionRules(**kwargs)


def test_decisions_must_match_the_bars():
    bars = frame_of([100] * 4, [100] * 4)
    with pytest.raises(ValueError, match="indexed like the bars"):
        simulate(bars, actions(bars, "BHHS").iloc[1:])
    with pytest.raises(ValueError, match="not BUY, SELL or HOLD"):
        simulate(bars, pd.Series(["BUY", "LONG", "HOLD", "SELL"], index=bars.index))


def test_results_keep_no_vectorbt_cache_yet_the_portfolio_still_answers():
    # cached arrays sit in a reference cycle on the portfolio: kept, they add up to gigabytes
    # over the runs of a comparison at a million bars
    bars = frame_of([100, 101, 103, 102, 104], [100.5, 102, 102.5, 103, 105])
    result = simulate(bars, actions(bars, "BHSHH"))
    assert not [name for name in vars(result.portfolio) if name.startswith("__cached_")]
    np.testing.assert_array_equal(result.portfolio.value().to_numpy(), result.value.to_numpy())
