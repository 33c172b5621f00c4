"""Streaming (bar by bar) forms equal the batch kernels exactly, NaN runs included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qt_backtest import indicators as ind
from qt_backtest.indicators import streaming


@st.composite
def series_with_gaps(draw, min_size=0, max_size=250):
    """Prices from a random walk or from raw floats, with NaN/inf runs anywhere."""
    size = draw(st.integers(min_size, max_size))
    if draw(st.booleans()):
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        scale = draw(st.sampled_from([1e-4, 1.0, 100.0, 6e4, 1e9]))
        values = scale * np.exp(
            np.cumsum(rng.normal(0.0, draw(st.sampled_from([0.0, 1e-3, 0.05])), size))
        )
    else:
        values = np.array(
            draw(st.lists(st.floats(1e-3, 1e6, allow_nan=False), min_size=size, max_size=size)),
            dtype=float,
        )
    for _ in range(draw(st.integers(0, 4))):
        if size == 0:
            break
        start = draw(st.integers(0, size - 1))
        length = draw(st.integers(1, 40))
        values[start : start + length] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if size and draw(st.booleans()):
        # long flat stretches exercise the exact-flat path of the rolling moments
        start = draw(st.integers(0, size - 1))
        values[start : start + draw(st.integers(1, 60))] = values[start]
    return values


def _ohlc(close, seed):
    rng = np.random.default_rng(seed)
    spread = np.abs(rng.normal(0.0, 0.01, close.shape[0])) * np.where(np.isfinite(close), close, 1)
    high = close + spread
    low = close - spread * rng.uniform(0, 1, close.shape[0])
    return high, low


def assert_identical(streamed, batch):
    streamed = np.asarray(streamed, dtype=float)
    batch = np.asarray(batch, dtype=float)
    assert streamed.shape == batch.shape
    assert np.array_equal(streamed, batch, equal_nan=True), np.flatnonzero(
        ~((streamed == batch) | (np.isnan(streamed) & np.isnan(batch)))
    )[:5]


PERIOD = st.integers(1, 30)
COMMON = settings(max_examples=60, deadline=None)


@COMMON
@given(series_with_gaps(), PERIOD)
def test_sma(x, period):
    stream = streaming.SMA(period)
    assert_identical([stream.update(v) for v in x], ind.sma(x, period))


@COMMON
@given(series_with_gaps(), PERIOD)
def test_ema(x, period):
    stream = streaming.EMA(period)
    assert_identical([stream.update(v) for v in x], ind.ema(x, period))


@COMMON
@given(series_with_gaps(), st.integers(2, 30))
def test_rsi(x, period):
    stream = streaming.RSI(period)
    assert_identical([stream.update(v) for v in x], ind.rsi(x, period))


@COMMON
@given(series_with_gaps(), st.integers(2, 15), st.integers(2, 30), st.integers(1, 12))
def test_macd(x, fast, slow, signal):
    stream = streaming.MACD(fast, slow, signal)
    streamed = np.array([tuple(stream.update(v)) for v in x]).reshape(-1, 3)
    batch = ind.macd(x, fast, slow, signal)
    for k in range(3):
        assert_identical(streamed[:, k], batch[k])


@COMMON
@given(series_with_gaps(), st.integers(2, 30), st.sampled_from([0, 1]))
def test_rolling_std(x, period, ddof):
    stream = streaming.RollingStd(period, ddof)
    assert_identical([stream.update(v) for v in x], ind.rolling_std(x, period, ddof))


@COMMON
@given(series_with_gaps(), PERIOD, st.floats(0.0, 4.0), st.floats(0.0, 4.0))
def test_bollinger_bands(x, period, up, down):
    stream = streaming.BollingerBands(period, up, down)
    streamed = np.array([tuple(stream.update(v)) for v in x]).reshape(-1, 5)
    batch = ind.bollinger_bands(x, period, up, down)
    for k in range(5):
        assert_identical(streamed[:, k], batch[k])


@COMMON
@given(series_with_gaps(), PERIOD, st.integers(0, 2**16))
def test_atr(close, period, seed):
    high, low = _ohlc(close, seed)
    stream = streaming.ATR(period)
    streamed = [stream.update(h, l, c) for h, l, c in zip(high, low, close, strict=True)]
    assert_identical(streamed, ind.atr(high, low, close, period))


@COMMON
@given(series_with_gaps(), PERIOD)
def test_roc(x, lag):
    stream = streaming.ROC(lag)
    assert_identical([stream.update(v) for v in x], ind.roc(x, lag))


@COMMON
@given(series_with_gaps(), PERIOD)
def test_volume_trend(volume, period):
    volume = np.where(np.isfinite(volume) & (volume > 5e5), 0.0, volume)  # zero-volume runs too
    stream = streaming.VolumeTrend(period)
    assert_identical([stream.update(v) for v in volume], ind.volume_trend(volume, period))


@COMMON
@given(series_with_gaps(), st.integers(2, 30), st.sampled_from([0, 1]))
def test_realized_volatility(x, period, ddof):
    stream = streaming.RealizedVolatility(period, ddof)
    assert_identical([stream.update(v) for v in x], ind.realized_volatility(x, period, ddof))
