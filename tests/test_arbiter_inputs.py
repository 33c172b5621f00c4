"""The Arbiter's inputs (I-ARB-1 to I-ARB-3, I-MOM-1) and the no-lookahead property of every
indicator (I-GEN-4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from qt_backtest import indicators as ind
from qt_backtest.data import load_ohlcv, to_wide
from qt_backtest.indicators import (
    ARBITER_INPUT_COLUMNS,
    ArbiterInputConfig,
    ArbiterInputStream,
    arbiter_inputs,
)
from tests.conftest import data_file, random_walk_ohlcv
from tests.test_indicators_oracle import assert_matches


def _frame(bars, seed, freq="1h"):
    data = random_walk_ohlcv(bars, seed)
    index = pd.date_range("2024-01-01", periods=bars, freq=freq, tz="UTC", name="timestamp")
    return pd.DataFrame(data, index=index)


def test_columns_and_oracles_on_real_data(btc_1h):
    inputs = arbiter_inputs(btc_1h)
    assert tuple(inputs.columns) == ARBITER_INPUT_COLUMNS
    assert inputs.index.equals(btc_1h.index)
    close = btc_1h["close"].to_numpy()
    volume = btc_1h["volume"].to_numpy()
    assert_matches(inputs["rsi"], talib.RSI(close, 14))
    line, signal, _ = talib.MACD(close, 12, 26, 9)
    assert_matches(inputs["macd"], line)
    assert_matches(inputs["macd_signal"], signal)
    upper, _, lower = talib.BBANDS(close, 20, 2, 2, 0)
    assert_matches(inputs["bb_position"], (close - lower) / (upper - lower))
    assert_matches(inputs["volume_trend"], volume / talib.SMA(volume, 20), atol=1e-12)
    # momentum: one hour back, except across the 27 gaps where that bar does not exist
    expected = talib.ROCP(close, 1)
    spacing = np.diff(btc_1h.index.as_unit("ns").asi8, prepend=0)
    expected[spacing != 3_600_000_000_000] = np.nan
    assert_matches(inputs["momentum"], expected, atol=1e-15)
    assert int(inputs["momentum"].isna().sum()) == 1 + 27


def test_momentum_lag_follows_the_bar_interval(eth_5m):
    inputs = arbiter_inputs(eth_5m.iloc[:5000])
    close = eth_5m["close"].to_numpy()[:5000]
    assert_matches(inputs["momentum"], talib.ROCP(close, 12), atol=1e-15)  # 12 x 5m = 1h
    assert ArbiterInputConfig().momentum_lag("5m") == 12
    assert ArbiterInputConfig().momentum_lag("1h") == 1
    assert ArbiterInputConfig(momentum_horizon="4h").momentum_lag("15m") == 16


def test_daily_bars_need_an_explicit_horizon():
    daily = load_ohlcv(data_file("GOOG-1d.csv.gz"))
    with pytest.raises(ValueError, match="not a whole number of 1d bars"):
        arbiter_inputs(daily)
    inputs = arbiter_inputs(daily, ArbiterInputConfig(momentum_horizon="1d"), interval="1d")
    assert inputs["momentum"].notna().sum() > 1000


def test_percent_macd_scale(btc_1h):
    frame = btc_1h.iloc[:3000]
    price = arbiter_inputs(frame)
    percent = arbiter_inputs(frame, ArbiterInputConfig(macd_scale="percent"))
    close = frame["close"]
    assert_matches(percent["macd"], price["macd"] / close * 100)
    assert_matches(percent["macd_signal"], price["macd_signal"] / close * 100)
    # the difference the Arbiter reads is the price difference in percent of close
    d_percent = percent["macd"] - percent["macd_signal"]
    d_price = price["macd"] - price["macd_signal"]
    assert_matches(d_percent, d_price / close * 100)
    pd.testing.assert_series_equal(percent["rsi"], price["rsi"], check_exact=True)


def test_several_symbols_are_computed_separately(btc_1h):
    eth = load_ohlcv(data_file("ETHUSDT-1h.csv.gz"))
    frames = {"BTCUSDT": btc_1h.iloc[:2000], "ETHUSDT": eth.iloc[500:2500]}
    per_symbol = arbiter_inputs(frames)
    for symbol, frame in frames.items():
        pd.testing.assert_frame_equal(per_symbol[symbol], arbiter_inputs(frame), check_exact=True)
    wide = arbiter_inputs(to_wide(frames))
    assert wide.columns.nlevels == 2
    for symbol, frame in frames.items():
        part = wide[symbol].loc[frame.index]
        part.columns.name = None
        pd.testing.assert_frame_equal(
            part, arbiter_inputs(frame), check_freq=False, check_exact=True
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rsi_period": 1}, "rsi_period"),
        ({"macd_fast": 30}, "macd_fast .* must be shorter than macd_slow"),
        ({"bb_nbdev": -1.0}, "bb_nbdev"),
        ({"macd_scale": "log"}, "macd_scale must be one of price, percent"),
        ({"momentum_horizon": "1 fortnight"}, "cannot read bar interval"),
        ({"volume_period": 0}, "volume_period"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        ArbiterInputConfig(**kwargs)


def test_config_is_frozen():
    config = ArbiterInputConfig()
    with pytest.raises(AttributeError):
        config.rsi_period = 7


def test_bad_frames_are_rejected():
    frame = _frame(100, 1)
    with pytest.raises(ValueError, match="missing required column"):
        arbiter_inputs(frame.drop(columns="volume"))
    broken = frame.copy()
    broken.iloc[50, broken.columns.get_loc("close")] = np.nan
    with pytest.raises(ValueError, match="NaN in close"):
        arbiter_inputs(broken)


# ---------------------------------------------------------------------------------------------
# No lookahead: anything at bar t depends on bars up to t only
# ---------------------------------------------------------------------------------------------

INDICATORS = {
    "sma": lambda f: ind.sma(f["close"], 20),
    "ema": lambda f: ind.ema(f["close"], 20),
    "rsi": lambda f: ind.rsi(f["close"]),
    "macd": lambda f: pd.concat(ind.macd(f["close"]), axis=1),
    "std": lambda f: ind.rolling_std(f["close"]),
    "bbands": lambda f: pd.concat(ind.bollinger_bands(f["close"]), axis=1),
    "atr": lambda f: ind.atr(f["high"], f["low"], f["close"]),
    "roc": lambda f: ind.roc(f["close"], 3),
    "volume_trend": lambda f: ind.volume_trend(f["volume"]),
    "realized_volatility": lambda f: ind.realized_volatility(f["close"]),
    "arbiter_inputs": lambda f: arbiter_inputs(f),
}


@pytest.mark.parametrize("name", list(INDICATORS))
def test_perturbing_the_future_changes_nothing_before(name):
    compute = INDICATORS[name]
    frame = _frame(3000, seed=5)
    baseline = compute(frame)
    rng = np.random.default_rng(9)
    for cut in rng.integers(0, 2999, size=8):
        future = frame.copy()
        after = slice(cut + 1, None)
        scale = rng.uniform(0.2, 5.0, size=len(frame) - cut - 1)
        for column in ("open", "high", "low", "close"):
            future.iloc[after, future.columns.get_loc(column)] *= scale
        future.iloc[after, future.columns.get_loc("volume")] *= rng.uniform(0, 10, len(scale))
        perturbed = compute(future)
        pd.testing.assert_frame_equal(
            pd.DataFrame(perturbed).iloc[: cut + 1],
            pd.DataFrame(baseline).iloc[: cut + 1],
            check_exact=True,
        )
        # and the perturbation is visible afterwards, so the comparison has teeth
        assert (
            not pd.DataFrame(perturbed)
            .iloc[cut + 1 :]
            .equals(pd.DataFrame(baseline).iloc[cut + 1 :])
        )


@pytest.mark.parametrize("macd_scale", ["price", "percent"])
def test_streaming_inputs_equal_batch_across_a_gap(btc_1h, macd_scale):
    frame = btc_1h.loc["2018-02-01":"2018-03-15"]  # holds the 33-bar outage of February 2018
    config = ArbiterInputConfig(macd_scale=macd_scale)
    batch = arbiter_inputs(frame, config)
    stream = ArbiterInputStream(config, interval="1h")
    rows = [
        stream.update(stamp, *bar)
        for stamp, bar in zip(frame.index, frame.itertuples(index=False), strict=True)
    ]
    streamed = pd.DataFrame(rows, index=frame.index)
    pd.testing.assert_frame_equal(streamed, batch, check_freq=False, check_exact=True)
    assert streamed["momentum"].isna().sum() == 2  # first bar and the bar after the outage


def test_streaming_inputs_need_time_order():
    stream = ArbiterInputStream(interval="5m")
    stream.update("2024-01-01T00:05Z", 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="time order"):
        stream.update("2024-01-01T00:05Z", 1, 1, 1, 1, 1)
