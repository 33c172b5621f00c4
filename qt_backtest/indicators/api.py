"""Pandas-facing indicator functions.

Each function accepts a 1-D series (``pd.Series`` or 1-D array) or a 2-D panel
(``pd.DataFrame`` or 2-D array of shape ``(bars, columns)``, one series per column, computed in
parallel) and returns the same kind of object with the same index and columns. Rows are bars in
time order; the functions never reorder or align them.

Missing data: a bar whose input is NaN or infinite gives NaN, and the indicator restarts its
warm-up at the next finite bar (see :mod:`qt_backtest.indicators.nb`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias, TypeVar

import numpy as np
import pandas as pd

from qt_backtest.indicators import defaults, nb
from qt_backtest.indicators._validate import check_nonnegative, check_period

ArrayLike: TypeAlias = pd.Series | pd.DataFrame | np.ndarray
# Series in, Series out; DataFrame in, DataFrame out; ndarray in, ndarray out
Values = TypeVar("Values", pd.Series, pd.DataFrame, np.ndarray)


class MACDResult(NamedTuple):
    """MACD line, signal line and histogram, each shaped like the input."""

    macd: Any
    signal: Any
    hist: Any


class BollingerResult(NamedTuple):
    """Bollinger bands and derived measures, each shaped like the input.

    ``position`` is ``(close - lower) / (upper - lower)`` (0.5 when the bands are flat);
    ``width`` is ``(upper - lower) / middle`` (a fraction of the price).
    """

    upper: Any
    middle: Any
    lower: Any
    position: Any
    width: Any


def _as_float_array(
    x: Any, name: str, row_major: bool = False
) -> tuple[np.ndarray, Callable[[np.ndarray, str], Any]]:
    """Validate ``x`` and return its float64 values plus a function that re-wraps a result.

    ``row_major`` is passed on to :func:`as_kernel_input`.
    """
    if isinstance(x, pd.Series):
        _check_numeric_dtype(x.dtype, name)
        values = x.to_numpy(dtype=np.float64, na_value=np.nan)
        index = x.index

        def wrap(result: np.ndarray, label: str) -> pd.Series:
            return pd.Series(result, index=index, name=label)

        return values, wrap
    if isinstance(x, pd.DataFrame):
        for column, dtype in x.dtypes.items():
            _check_numeric_dtype(dtype, f"{name} column {column!r}")
        values = as_kernel_input(x.to_numpy(dtype=np.float64, na_value=np.nan), row_major)
        index, columns = x.index, x.columns

        def wrap_frame(result: np.ndarray, label: str) -> pd.DataFrame:
            return pd.DataFrame(result, index=index, columns=columns, copy=False)

        return values, wrap_frame
    values = np.asarray(x)
    _check_numeric_dtype(values.dtype, name)
    if values.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (bars) or 2-D (bars, columns), got {values.ndim}-D")
    return as_kernel_input(values, row_major), lambda result, label: result


def as_kernel_input(values: np.ndarray, row_major: bool = False) -> np.ndarray:
    """float64 values in a layout the kernels walk fast: 2-D arrays column-major.

    A row-major (bars, columns) array is copied once into column-major order: walking its
    columns in place touches a new cache line on every bar, which costs more than the copy.
    With ``row_major=True`` -- for a kernel that walks a row-major array by rows (RSI) -- a
    C-contiguous array is kept as it is, and the outputs are allocated row-major too.
    """
    values = values.astype(np.float64, copy=False)
    if values.ndim == 2 and not values.flags.f_contiguous:
        if row_major and values.flags.c_contiguous:
            return values
        return nb.to_column_major_nb(values, np.empty(values.shape, order="F"))
    return values


def _check_numeric_dtype(dtype: Any, name: str) -> None:
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        raise TypeError(f"{name} must be numeric, got dtype {dtype}")


def _empty_like(values: np.ndarray) -> np.ndarray:
    """float64 output buffer in the kernel input's layout (row-major or column-major)."""
    return np.empty_like(values, dtype=np.float64)


def _dispatch(
    values: np.ndarray, kernel_1d: Callable, kernel_2d: Callable, *args: Any, outputs: int = 1
) -> Any:
    out = [_empty_like(values) for _ in range(outputs)]
    kernel = kernel_1d if values.ndim == 1 else kernel_2d
    return kernel(values, *args, *out)


def _same_shape(arrays: dict[str, Any]) -> None:
    """Multi-input indicators need inputs of one shape and, for pandas objects, one index."""
    items = list(arrays.items())
    first_name, first = items[0]
    for other_name, other in items[1:]:
        if np.shape(first) != np.shape(other):
            raise ValueError(
                f"{first_name} and {other_name} must have the same shape, "
                f"got {np.shape(first)} and {np.shape(other)}"
            )
        if isinstance(first, pd.Series | pd.DataFrame) and not first.index.equals(other.index):
            raise ValueError(f"{first_name} and {other_name} must share the same index")


def sma(x: Values, period: int = defaults.BB_PERIOD) -> Values:
    """Simple moving average.

    Parameters
    ----------
    x : Series, DataFrame or ndarray, shape (bars,) or (bars, columns)
    period : int
        Window length in bars.

    Returns
    -------
    Same type and shape as ``x``; NaN for the first ``period - 1`` bars (TA-Lib SMA).
    """
    values, wrap = _as_float_array(x, "x")
    period = check_period(period, "period")
    return wrap(_dispatch(values, nb.sma_1d_nb, nb.sma_2d_nb, period), "sma")


def ema(x: Values, period: int) -> Values:
    """Exponential moving average with smoothing ``2 / (period + 1)``.

    Seeded with the SMA of the first ``period`` values, as TA-Lib EMA; NaN before that.
    """
    values, wrap = _as_float_array(x, "x")
    period = check_period(period, "period")
    return wrap(_dispatch(values, nb.ema_1d_nb, nb.ema_2d_nb, period), "ema")


def rsi(close: Values, period: int = defaults.RSI_PERIOD) -> Values:
    """Relative strength index with Wilder smoothing, in [0, 100].

    NaN for the first ``period`` bars (TA-Lib RSI). As in TA-Lib, averages of exactly zero (no
    price change at all) give 0 (I-RSI-1).
    """
    values, wrap = _as_float_array(close, "close", row_major=True)
    period = check_period(period, "period", minimum=2)
    return wrap(_dispatch(values, nb.rsi_1d_nb, nb.rsi_2d_nb, period), "rsi")


def macd(
    close: ArrayLike,
    fast: int = defaults.MACD_FAST,
    slow: int = defaults.MACD_SLOW,
    signal: int = defaults.MACD_SIGNAL,
) -> MACDResult:
    """Moving average convergence/divergence, in price units.

    ``macd = EMA_fast - EMA_slow`` and ``signal = EMA_signal(macd)``, ``hist = macd - signal``,
    with TA-Lib's seeding (both EMAs start on bar ``slow - 1``); all three are NaN for the first
    ``slow + signal - 2`` bars. ``fast`` and ``slow`` are swapped if given in reverse order.
    """
    values, wrap = _as_float_array(close, "close")
    fast = check_period(fast, "fast", minimum=2)
    slow = check_period(slow, "slow", minimum=2)
    signal = check_period(signal, "signal")
    fast, slow = min(fast, slow), max(fast, slow)
    line, sig, hist = _dispatch(values, nb.macd_1d_nb, nb.macd_2d_nb, fast, slow, signal, outputs=3)
    return MACDResult(wrap(line, "macd"), wrap(sig, "macd_signal"), wrap(hist, "macd_hist"))


def rolling_std(x: Values, period: int = defaults.BB_PERIOD, ddof: int = 0) -> Values:
    """Rolling standard deviation (``ddof=0``: population, as TA-Lib STDDEV; 1: sample).

    Numerically stable on long series with large level changes: the running moments are
    recomputed from the window whenever their rounding-error bound grows past 1e-12 relative.
    """
    values, wrap = _as_float_array(x, "x")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 (population) or 1 (sample), got {ddof!r}")
    period = check_period(period, "period", minimum=ddof + 1)
    return wrap(_dispatch(values, nb.rolling_std_1d_nb, nb.rolling_std_2d_nb, period, ddof), "std")


def bollinger_bands(
    close: ArrayLike,
    period: int = defaults.BB_PERIOD,
    nbdev_up: float = defaults.BB_NBDEV,
    nbdev_dn: float | None = None,
) -> BollingerResult:
    """Bollinger bands: SMA(period) +/- nbdev population standard deviations.

    Parameters
    ----------
    close : Series, DataFrame or ndarray, shape (bars,) or (bars, columns)
    period : int
        Window length in bars.
    nbdev_up, nbdev_dn : float
        Band distances in standard deviations; ``nbdev_dn`` defaults to ``nbdev_up``.

    Returns
    -------
    BollingerResult
        ``upper``, ``middle``, ``lower`` (price units, as TA-Lib BBANDS with SMA), ``position``
        (0 at the lower band, 1 at the upper, 0.5 when the bands are flat) and ``width``
        ((upper - lower) / middle).
    """
    values, wrap = _as_float_array(close, "close")
    period = check_period(period, "period")
    nbdev_up = check_nonnegative(nbdev_up, "nbdev_up")
    nbdev_dn = nbdev_up if nbdev_dn is None else check_nonnegative(nbdev_dn, "nbdev_dn")
    upper, middle, lower = _dispatch(
        values, nb.bbands_1d_nb, nb.bbands_2d_nb, period, nbdev_up, nbdev_dn, outputs=3
    )
    two_d = values.ndim == 2
    position = (nb.bb_position_2d_nb if two_d else nb.bb_position_1d_nb)(
        values, upper, lower, _empty_like(values)
    )
    width = (nb.bb_width_2d_nb if two_d else nb.bb_width_1d_nb)(
        upper, middle, lower, _empty_like(values)
    )
    return BollingerResult(
        wrap(upper, "bb_upper"),
        wrap(middle, "bb_middle"),
        wrap(lower, "bb_lower"),
        wrap(position, "bb_position"),
        wrap(width, "bb_width"),
    )


def atr(high: Values, low: Values, close: Values, period: int = defaults.ATR_PERIOD) -> Values:
    """Average true range with Wilder smoothing, in price units; NaN for the first ``period``
    bars (TA-Lib ATR). A bar is missing if any of its high, low or close is not finite."""
    _same_shape({"high": high, "low": low, "close": close})
    high_values, _ = _as_float_array(high, "high")
    low_values, _ = _as_float_array(low, "low")
    close_values, wrap = _as_float_array(close, "close")
    period = check_period(period, "period")
    kernel = nb.atr_1d_nb if close_values.ndim == 1 else nb.atr_2d_nb
    result = kernel(high_values, low_values, close_values, period, _empty_like(close_values))
    return wrap(result, "atr")


def roc(x: Values, lag: int = 1) -> Values:
    """Rate of change over ``lag`` bars as a fraction: ``x / x.shift(lag) - 1`` (TA-Lib ROCP).

    NaN for the first ``lag`` bars and where the reference value is 0.
    """
    values, wrap = _as_float_array(x, "x")
    lag = check_period(lag, "lag")
    return wrap(_dispatch(values, nb.roc_1d_nb, nb.roc_2d_nb, lag), "roc")


def volume_trend(volume: Values, period: int = defaults.VOLUME_PERIOD) -> Values:
    """Volume divided by its ``period``-bar SMA (current bar included); 1.0 when the SMA is 0.

    Dimensionless; NaN for the first ``period - 1`` bars.
    """
    values, wrap = _as_float_array(volume, "volume")
    period = check_period(period, "period")
    result = _dispatch(values, nb.volume_trend_1d_nb, nb.volume_trend_2d_nb, period)
    return wrap(result, "volume_trend")


def realized_volatility(
    close: Values,
    period: int = defaults.VOLATILITY_PERIOD,
    ddof: int = 0,
    periods_per_year: float | None = None,
) -> Values:
    """Rolling standard deviation of one-bar log returns.

    Parameters
    ----------
    close : Series, DataFrame or ndarray
        Prices (> 0; a non-positive price is treated as missing).
    period : int
        Number of returns in the window; NaN for the first ``period`` bars.
    ddof : int
        0 population, 1 sample standard deviation.
    periods_per_year : float, optional
        If given, the result is annualised by ``sqrt(periods_per_year)`` (e.g. 8760 for
        round-the-clock hourly bars). Otherwise it is per bar.
    """
    values, wrap = _as_float_array(close, "close")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 (population) or 1 (sample), got {ddof!r}")
    period = check_period(period, "period", minimum=ddof + 1)
    result = _dispatch(
        values, nb.realized_volatility_1d_nb, nb.realized_volatility_2d_nb, period, ddof
    )
    if periods_per_year is not None:
        if not periods_per_year > 0:
            raise ValueError(f"periods_per_year must be > 0, got {periods_per_year!r}")
        result = result * np.sqrt(periods_per_year)
    return wrap(result, "realized_volatility")
