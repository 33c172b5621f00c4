"""Market regimes from past data only, value per regime, and break-even fees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qt_backtest.data import load_sample, per_symbol, sample_dir
from qt_backtest.indicators import arbiter_inputs
from qt_backtest.inference.regimes import REGIMES, regime_labels, value_by_regime
from qt_backtest.signals import read_predictions
from qt_backtest.sweep import Grid, sweep
from qt_backtest.sweep.breakeven import CROSSES, IDENTICAL, NO_ADVANTAGE, break_even_fees


def hourly_closes(days: int, seed: int, volatility=None) -> pd.Series:
    rng = np.random.default_rng(seed)
    bars = days * 24
    scale = np.full(bars, 0.004) if volatility is None else np.repeat(volatility, 24)
    returns = rng.normal(0.0, 1.0, bars) * scale
    index = pd.date_range("2024-01-01", periods=bars, freq="1h", tz="UTC")
    return pd.Series(100 * np.exp(np.cumsum(returns)), index=index)


def test_labels_never_look_ahead():
    close = hourly_closes(400, seed=1)
    before = regime_labels(close)
    for day in (120, 200, 350):
        changed = close.copy()
        later = changed.index >= changed.index[0] + pd.Timedelta(days=day)
        # a crash and wild swings from that day on
        changed[later] *= np.exp(np.random.default_rng(day).normal(-0.01, 0.05, later.sum()))
        after = regime_labels(changed)
        # periods up to and including ``day`` are labelled from data before them
        pd.testing.assert_frame_equal(after.iloc[: day + 1], before.iloc[: day + 1])
        assert not after.iloc[day + 1 :].equals(before.iloc[day + 1 :])


def test_labels_follow_volatility_and_trend():
    calm, wild = np.full(200, 0.002), np.full(100, 0.02)
    close = hourly_closes(300, seed=2, volatility=np.concatenate([calm, wild]))
    labels = regime_labels(close, window=10, min_history=30)
    assert labels["volatility"].iloc[:40].isna().all()  # not enough history yet
    assert (labels["volatility"].iloc[215:] == "high volatility").all()
    assert list(labels["volatility"].cat.categories) == list(REGIMES["volatility"])
    rising = pd.Series(
        np.exp(np.linspace(0, 1, 24 * 60)),
        index=pd.date_range("2024-01-01", periods=24 * 60, freq="1h", tz="UTC"),
    )
    trend = regime_labels(rising, window=5, min_history=5)["trend"]
    assert (trend.iloc[6:] == "trend up").all() and trend.iloc[:6].isna().all()


def test_volatility_terciles_split_a_steady_market_evenly():
    labels = regime_labels(hourly_closes(1500, seed=3))["volatility"].dropna()
    shares = labels.value_counts(normalize=True)
    assert shares.between(0.25, 0.42).all(), shares


@pytest.mark.parametrize(
    "close, message",
    [
        (pd.Series([1.0, 2.0]), "timestamps"),
        (hourly_closes(5, 0).iloc[::-1], "increasing"),
        (hourly_closes(5, 0).where(lambda s: s.index.hour != 3, -1.0), "positive"),
    ],
)
def test_bad_closes_are_named(close, message):
    with pytest.raises(ValueError, match=message):
        regime_labels(close)


def test_value_by_regime_estimates_are_the_regime_means():
    rng = np.random.default_rng(4)
    close = hourly_closes(500, seed=5)
    labels = regime_labels(close)
    index = labels.index
    returns = pd.DataFrame(
        {"later": rng.normal(0.001, 0.01, len(index)), "earlier": rng.normal(0, 0.01, len(index))},
        index=index,
    )
    table = value_by_regime(returns, labels, [("later", "earlier")], 365.0, draws=300, seed=1)
    for family, names in REGIMES.items():
        for regime in names:
            inside = labels[family] == regime
            want = (returns["later"] - returns["earlier"])[inside].mean() * 365
            row = table.loc[("later", "earlier", family, regime, "annual_mean")]
            assert row["estimate"] == pytest.approx(want, rel=1e-12)
            assert row["low"] <= row["estimate"] <= row["high"]
            assert row["periods"] == inside.sum()
    again = value_by_regime(returns, labels, [("later", "earlier")], 365.0, draws=300, seed=1)
    pd.testing.assert_frame_equal(again, table)
    with pytest.raises(ValueError, match="no regime label"):
        value_by_regime(returns.set_axis(index + pd.Timedelta(days=900)), labels, [], 365.0)


@pytest.fixture(scope="module")
def eth():
    votes = read_predictions(sample_dir() / "sample-predictions.parquet")
    bars = load_sample("ETHUSDT-1h").iloc[-4000:]
    return (
        {"ETHUSDT": bars},
        {"ETHUSDT": per_symbol(votes)["ETHUSDT"].reindex(bars.index)},
        {"ETHUSDT": arbiter_inputs(bars)},
    )


def test_break_even_fee_is_where_the_advantage_changes_sign(eth):
    bars, votes, inputs = eth
    table = break_even_fees(bars, votes, inputs, steps=21, max_fee=0.004)
    assert table.loc[("ETHUSDT", "meta", "ensemble", "sharpe"), "status"] == IDENTICAL
    for metric in ("total_return", "sharpe"):
        row = table.loc[("ETHUSDT", "meta_arbiter", "meta", metric)]
        assert row["status"] in (CROSSES, NO_ADVANTAGE)
        if row["status"] != CROSSES:
            continue
        fee = row["break_even_fee"]
        grid = Grid.product({"mode": ["meta", "meta_arbiter"], "rules.fee": [fee * 0.9, fee * 1.1]})
        frame = sweep(*eth, grid, period=None).frame.set_index(["mode", "rules.fee"])[metric]
        assert frame[("meta_arbiter", fee * 0.9)] > frame[("meta", fee * 0.9)]
        assert frame[("meta_arbiter", fee * 1.1)] < frame[("meta", fee * 1.1)]


def test_break_even_settings_are_checked(eth):
    with pytest.raises(ValueError, match="steps"):
        break_even_fees(*eth, steps=2)
    with pytest.raises(ValueError, match="max_fee"):
        break_even_fees(*eth, max_fee=2.0)
