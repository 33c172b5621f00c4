"""Every indicator against TA-Lib (the independent oracle) on real and synthetic series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from qt_backtest import indicators as ind
from tests.conftest import random_walk_ohlcv

RTOL = 1e-9


def assert_matches(ours, reference, atol=1e-9, rtol=RTOL):
    ours = np.asarray(ours, dtype=float)
    reference = np.asarray(reference, dtype=float)
    assert ours.shape == reference.shape
    ours_nan, reference_nan = np.isnan(ours), np.isnan(reference)
    mismatch = np.flatnonzero(ours_nan != reference_nan)
    assert mismatch.size == 0, f"NaN pattern differs first at bar {mismatch[:1]}"
    valid = ~reference_nan
    assert valid.any()
    np.testing.assert_allclose(ours[valid], reference[valid], rtol=rtol, atol=atol)


def _segmented(reference_fn, *arrays):
    """TA-Lib run separately on every maximal run of finite bars: the NaN rule's oracle."""
    finite = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    out = np.full(arrays[0].shape[0], np.nan)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(int), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        try:
            out[start:stop] = reference_fn(*(a[start:stop] for a in arrays))
        except Exception as error:  # TA-Lib refuses inputs shorter than its lookback
            if "all NaN" not in str(error) and "Bad Parameter" not in str(error):
                raise
    return out


def _volume_trend_reference(volume, period=20):
    mean = talib.SMA(volume, period)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = volume / mean
    return np.where(mean == 0.0, 1.0, ratio)


def _log_returns(close):
    out = np.full(close.shape[0], np.nan)
    out[1:] = np.log(close[1:] / close[:-1])
    return out


def _bands_reference(close, period=20, nbdev=2.0):
    upper, middle, lower = talib.BBANDS(close, period, nbdev, nbdev, 0)
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        position = np.where(width > 0, (close - lower) / width, 0.5)
    position[np.isnan(width)] = np.nan
    return upper, middle, lower, position, width / middle


# (name, ours(h, l, c, v) -> array, TA-Lib(h, l, c, v) -> array, absolute tolerance)
CASES = [
    ("sma20", lambda h, l, c, v: ind.sma(c, 20), lambda h, l, c, v: talib.SMA(c, 20), 1e-9),
    ("sma1", lambda h, l, c, v: ind.sma(c, 1), lambda h, l, c, v: talib.SMA(c, 1), 1e-9),
    ("ema10", lambda h, l, c, v: ind.ema(c, 10), lambda h, l, c, v: talib.EMA(c, 10), 1e-9),
    ("ema50", lambda h, l, c, v: ind.ema(c, 50), lambda h, l, c, v: talib.EMA(c, 50), 1e-9),
    ("rsi14", lambda h, l, c, v: ind.rsi(c, 14), lambda h, l, c, v: talib.RSI(c, 14), 1e-9),
    ("rsi2", lambda h, l, c, v: ind.rsi(c, 2), lambda h, l, c, v: talib.RSI(c, 2), 1e-9),
    *[
        (
            f"macd_{part}",
            lambda h, l, c, v, k=k: ind.macd(c, 12, 26, 9)[k],
            lambda h, l, c, v, k=k: talib.MACD(c, 12, 26, 9)[k],
            1e-9,
        )
        for k, part in enumerate(("line", "signal", "hist"))
    ],
    (
        "macd_5_35_5_signal",
        lambda h, l, c, v: ind.macd(c, 5, 35, 5).signal,
        lambda h, l, c, v: talib.MACD(c, 5, 35, 5)[1],
        1e-9,
    ),
    (
        "std20",
        lambda h, l, c, v: ind.rolling_std(c, 20),
        lambda h, l, c, v: talib.STDDEV(c, 20, 1),
        1e-9,
    ),
    (
        "std20_sample",
        lambda h, l, c, v: ind.rolling_std(c, 20, ddof=1),
        lambda h, l, c, v: talib.STDDEV(c, 20, 1) * np.sqrt(20 / 19),
        1e-9,
    ),
    *[
        (
            f"bb_{part}",
            lambda h, l, c, v, k=k: ind.bollinger_bands(c, 20, 2.0)[k],
            lambda h, l, c, v, k=k: _bands_reference(c)[k],
            1e-12 if part == "width" else 1e-9,
        )
        for k, part in enumerate(("upper", "middle", "lower", "position", "width"))
    ],
    (
        "atr14",
        lambda h, l, c, v: ind.atr(h, l, c, 14),
        lambda h, l, c, v: talib.ATR(h, l, c, 14),
        1e-9,
    ),
    ("roc1", lambda h, l, c, v: ind.roc(c, 1), lambda h, l, c, v: talib.ROCP(c, 1), 1e-15),
    ("roc12", lambda h, l, c, v: ind.roc(c, 12), lambda h, l, c, v: talib.ROCP(c, 12), 1e-15),
    (
        "volume_trend20",
        lambda h, l, c, v: ind.volume_trend(v, 20),
        lambda h, l, c, v: _volume_trend_reference(v),
        1e-12,
    ),
    (
        "realized_vol20",
        lambda h, l, c, v: ind.realized_volatility(c, 20),
        lambda h, l, c, v: talib.STDDEV(_log_returns(c), 20, 1),
        1e-15,
    ),
]
CASE_IDS = [case[0] for case in CASES]


def _arrays(source):
    if isinstance(source, pd.DataFrame):
        return tuple(source[c].to_numpy() for c in ("high", "low", "close", "volume"))
    return source["high"], source["low"], source["close"], source["volume"]


@pytest.mark.parametrize("series", ["btc_1h", "eth_5m", "random_walk_1m"])
@pytest.mark.parametrize(("name", "ours", "reference", "atol"), CASES, ids=CASE_IDS)
def test_matches_talib(request, series, name, ours, reference, atol):
    h, l, c, v = _arrays(request.getfixturevalue(series))
    assert_matches(ours(h, l, c, v), reference(h, l, c, v), atol=atol)


@pytest.mark.parametrize(("name", "ours", "reference", "atol"), CASES, ids=CASE_IDS)
def test_missing_bars_restart_like_independent_series(name, ours, reference, atol):
    """NaN/inf bars give NaN and restart the warm-up: each finite run equals TA-Lib on it."""
    data = random_walk_ohlcv(3000, seed=11)
    h, l, c, v = (data[k].copy() for k in ("high", "low", "close", "volume"))
    for start, length in [(100, 1), (400, 7), (410, 3), (1500, 60), (2990, 10)]:
        c[start : start + length] = np.nan
    c[2000] = np.inf
    h[2500] = np.nan  # a bar is missing for ATR if any of its inputs is
    v[700:705] = np.nan
    if name.startswith("volume_trend"):
        expected = _segmented(_volume_trend_reference, v)
    elif name.startswith("atr"):
        expected = _segmented(lambda hh, ll, cc: talib.ATR(hh, ll, cc, 14), h, l, c)
    elif name.startswith("realized_vol"):
        # the return of a segment's first bar is undefined, so the window starts one bar later
        expected = _segmented(lambda cc: talib.STDDEV(_log_returns(cc), 20, 1), c)
    else:
        expected = _segmented(lambda cc: reference(cc, cc, cc, cc), c)
    assert_matches(ours(h, l, c, v), expected, atol=atol)


def test_two_dimensional_matches_each_column():
    columns = [random_walk_ohlcv(20_000, seed=s) for s in range(5)]
    close = np.column_stack([col["close"] for col in columns])
    high = np.column_stack([col["high"] for col in columns])
    low = np.column_stack([col["low"] for col in columns])
    volume = np.column_stack([col["volume"] for col in columns])
    for j in range(close.shape[1]):
        c, h, l, v = close[:, j], high[:, j], low[:, j], volume[:, j]
        for name, ours, reference, atol in CASES:
            two_d = np.asarray(ours(high, low, close, volume))
            assert two_d.shape == close.shape, name
            assert_matches(two_d[:, j], reference(h, l, c, v), atol=atol)


@pytest.mark.parametrize("order", ["C", "F"])
def test_rsi_panel_with_missing_bars_in_either_layout(order):
    """2-D RSI, NaN/inf runs included: each column is TA-Lib on each of its finite runs, and the
    same bits as the column alone. Row-major panels are walked row by row, in blocks of columns
    (more columns here than one block holds); column-major ones column by column."""
    rng = np.random.default_rng(4)
    bars, columns = 1500, 530
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (bars, columns)), axis=0))
    close[rng.random((bars, columns)) < 0.002] = np.nan
    close[700:730, 3] = np.inf
    close[:, 9] = 5.0  # no move at all: RSI 0 after the warm-up
    close[:, 10] = np.nan
    close = np.array(close, order=order)
    result = ind.rsi(close, 14)
    for j in range(columns):
        column = np.ascontiguousarray(close[:, j])
        expected = _segmented(lambda c: talib.RSI(c, 14), column)
        if j == 10:
            assert np.isnan(result[:, j]).all()
        else:
            assert_matches(result[:, j], expected)
        assert np.array_equal(result[:, j], ind.rsi(column, 14), equal_nan=True), j
    other_layout = np.array(close, order="F" if order == "C" else "C")
    assert np.array_equal(ind.rsi(other_layout, 14), result, equal_nan=True)


def test_pandas_layer_keeps_index_and_columns(btc_1h):
    frame = pd.DataFrame(
        {"a": btc_1h["close"].to_numpy(), "b": btc_1h["open"].to_numpy()}, index=btc_1h.index
    )
    result = ind.rsi(frame)
    assert isinstance(result, pd.DataFrame)
    assert result.index.equals(frame.index) and list(result.columns) == ["a", "b"]
    series = ind.macd(btc_1h["close"]).signal
    assert isinstance(series, pd.Series) and series.index.equals(btc_1h.index)
    assert series.name == "macd_signal"


def test_rolling_std_is_stable_across_level_changes():
    """A running sum of squares loses every digit here; the kernel must not."""
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [
            1e6 + rng.normal(0.0, 1.0, 50_000),
            1.0 + rng.normal(0.0, 1e-3, 5_000),
            1e9 + rng.normal(0.0, 10.0, 5_000),
            1e-3 + rng.normal(0.0, 1e-6, 5_000),
        ]
    )
    window = np.lib.stride_tricks.sliding_window_view(x, 20)
    exact = np.full(x.shape[0], np.nan)
    exact[19:] = window.std(axis=1)
    ours = ind.rolling_std(x, 20)
    assert_matches(ours, exact, atol=0.0)

    # the oracle is strict enough to catch the drift of a running sum of squares
    sums = np.cumsum(np.concatenate([[0.0], x]))
    squares = np.cumsum(np.concatenate([[0.0], x * x]))
    mean = (sums[20:] - sums[:-20]) / 20
    naive = np.sqrt(np.maximum((squares[20:] - squares[:-20]) / 20 - mean * mean, 0.0))
    relative = np.abs(naive - exact[19:]) / exact[19:]
    assert relative.max() > 1e-3


def test_flat_window_is_exactly_flat():
    x = np.concatenate([np.linspace(1.0, 2.0, 30), np.full(40, 3000.1), [3001.0]])
    bands = ind.bollinger_bands(x, 20)
    flat = slice(49, 70)
    assert np.all(ind.rolling_std(x, 20)[flat] == 0.0)
    assert np.all(bands.middle[flat] == 3000.1)
    assert np.all(bands.position[flat] == 0.5)
    assert bands.position[70] == pytest.approx(
        (x[70] - bands.lower[70]) / (bands.upper[70] - bands.lower[70])
    )
    assert np.all(ind.rsi(np.full(40, 5.0))[14:] == 0.0)  # TA-Lib's value without any move


def test_volume_trend_is_one_when_average_volume_is_zero():
    volume = np.concatenate([np.ones(25), np.zeros(30), [4.0]])
    trend = ind.volume_trend(volume, 20)
    assert np.all(trend[44:55] == 1.0)
    assert trend[55] == pytest.approx(4.0 / (4.0 / 20))


def test_roc_is_nan_for_zero_reference():
    assert np.isnan(ind.roc(np.array([0.0, 1.0, 2.0]), 1)[1])
    assert ind.roc(np.array([0.0, 1.0, 2.0]), 1)[2] == 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ind.rsi(np.ones(10), 1), "period must be at least 2"),
        (lambda: ind.sma(np.ones(10), 0), "period must be at least 1"),
        (lambda: ind.sma(np.ones(10), 2.5), "period must be an integer"),
        (lambda: ind.ema(np.array(["a", "b"]), 2), "x must be numeric"),
        (lambda: ind.sma(np.ones((2, 2, 2)), 2), "must be 1-D"),
        (lambda: ind.rolling_std(np.ones(5), 3, ddof=2), "ddof must be 0"),
        (lambda: ind.bollinger_bands(np.ones(5), 3, -1.0), "nbdev_up must be a finite number"),
        (lambda: ind.atr(np.ones(5), np.ones(4), np.ones(5)), "same shape"),
        (lambda: ind.rsi(pd.Series([True, False])), "close must be numeric"),
        (lambda: ind.realized_volatility(np.ones(5), 3, periods_per_year=0), "periods_per_year"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()


def test_macd_swaps_fast_and_slow_like_talib(btc_1h):
    close = btc_1h["close"].to_numpy()[:500]
    assert_matches(ind.macd(close, 26, 12, 9).macd, talib.MACD(close, 26, 12, 9)[0])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    runs=st.lists(st.tuples(st.integers(0, 599), st.integers(1, 50)), max_size=6),
    case=st.sampled_from([case for case in CASES if not case[0].startswith(("atr", "volume"))]),
)
def test_random_missing_runs_match_talib_per_segment(seed, runs, case):
    name, ours, reference, atol = case
    data = random_walk_ohlcv(600, seed=seed % 10_000)
    close = data["close"].copy()
    for start, length in runs:
        close[start : start + length] = np.nan
    if name.startswith("realized_vol"):
        expected = _segmented(lambda cc: talib.STDDEV(_log_returns(cc), 20, 1), close)
    else:
        expected = _segmented(lambda cc: reference(cc, cc, cc, cc), close)
    result = np.asarray(ours(close, close, close, close), dtype=float)
    if np.isnan(expected).all():
        assert np.isnan(result).all()
    else:
        assert_matches(result, expected, atol=atol)


@pytest.mark.parametrize("flat_bars", [1, 500, 1500, 4000])
def test_rsi_over_a_long_flat_stretch_keeps_talib_ratio(flat_bars):
    """After moves, flat bars make both Wilder averages decay together: TA-Lib keeps their ratio
    and gives 0 only when the averages are exactly zero."""
    rng = np.random.default_rng(4)
    moves = 50.0 + np.cumsum(rng.normal(0.0, 1.0, 300))
    close = np.concatenate([moves, np.full(flat_bars, moves[-1])])
    assert_matches(ind.rsi(close, 14), talib.RSI(close, 14), atol=1e-9)
    for tiny in (1e-13, 1e-200):  # moves far below any tolerance still count
        step = np.concatenate([[0.0], np.full(40, tiny)])
        assert_matches(ind.rsi(step, 14), talib.RSI(step, 14), atol=0.0)
    assert_matches(ind.rsi(np.full(40, 7.0), 14), talib.RSI(np.full(40, 7.0), 14), atol=0.0)
