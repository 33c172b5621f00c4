"""Numba kernels of the indicator core.

Every indicator is written once as a *step* function that advances a small state tuple by one
bar and returns the new state and the bar's output(s). The batch kernels -- ``*_1d_nb`` for one
series and ``*_2d_nb`` for a ``(bars, columns)`` array whose columns run in parallel -- loop the
step over an array; the streaming classes in :mod:`qt_backtest.indicators.streaming` call the
very same step once per bar. Batch and streaming results are therefore identical bit for bit.

Conventions
-----------
* Inputs are ``float64`` numpy arrays; nothing here touches pandas.
* Warm-up: outputs are NaN exactly where TA-Lib puts NaN (TA-Lib's default, zero unstable period).
* Missing data: a bar whose inputs are not all finite (NaN or +/-inf) yields NaN and resets the
  indicator. The next finite bar starts a fresh warm-up, so each maximal run of finite bars is
  computed exactly as TA-Lib computes an independent series.
* Definitions follow TA-Lib. Recurrences multiply by precomputed constants instead of dividing;
  results agree with TA-Lib to ~1e-15 relative and the per-bar dependency chain is shorter.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

NAN = np.nan
INF = np.inf
EPS = float(np.finfo(np.float64).eps)

# Rolling moments are updated incrementally while the a priori rounding-error bound stays below
# this fraction of the value's scale; past it the window is recomputed with two passes.
MOMENTS_TOLERANCE = 1e-12


# --------------------------------------------------------------------------------------------
# Software prefetch
# --------------------------------------------------------------------------------------------
# A recurrence keeps the core on a chain of dependent floating-point operations, so the
# out-of-order engine issues the loads of only a few bars ahead, and on the machine the
# benchmarks were measured on the hardware prefetcher does not run ahead of such a loop either:
# every new cache line of input then waits for memory. Asking for the line PREFETCH_BARS ahead
# hides that wait (RSI of 100,000 x 100 column-major into preallocated outputs, one thread:
# 35 ms -> 20 ms). A prefetch is only a hint: it never faults and changes no result.

# values per 64-byte cache line, and how far ahead (in bars) a column loop asks for its input
_LINE_VALUES = 8
PREFETCH_BARS = 128
# rows ahead for a loop that walks a row-major array row by row
PREFETCH_ROWS = 8


@intrinsic
def _prefetch(typingctx, values, index):
    """Ask the CPU to bring the cache line holding ``values[index]`` into its caches.

    ``index`` is an integer for a 1-D array and a tuple of integers for a 2-D one; it must be in
    bounds (it is not checked).
    """
    if not isinstance(values, types.Array):
        return None
    signature = types.void(values, index)

    def codegen(context, builder, sig, args):
        array_type, index_type = sig.args
        array = context.make_array(array_type)(context, builder, args[0])
        if isinstance(index_type, types.BaseTuple):
            indices = cgutils.unpack_tuple(builder, args[1])
        else:
            indices = [args[1]]
        pointer = cgutils.get_item_pointer(
            context, builder, array_type, array, indices, wraparound=False, boundscheck=False
        )
        int32 = ir.IntType(32)
        function_type = ir.FunctionType(ir.VoidType(), [pointer.type, int32, int32, int32])
        prefetch = builder.module.declare_intrinsic("llvm.prefetch", [pointer.type], function_type)
        # read (0), keep in every cache level (3), data cache (1)
        builder.call(prefetch, [pointer, int32(0), int32(3), int32(1)])
        return context.get_dummy_value()

    return signature, codegen


# --------------------------------------------------------------------------------------------
# Rolling mean and standard deviation (SMA, STDDEV, Bollinger bands, volume trend, volatility)
# --------------------------------------------------------------------------------------------
#
# sums = (anchor, s1, s2, err)
#   anchor   the shift K: the sums run over deviations from it
#   s1, s2   sum of (x - K) and of (x - K)**2 over the window
#   err      sum of the s2 values since the sums were last computed from the window; times
#            3 eps it bounds the rounding error the sliding updates put into s2 - s1**2 / period
#
# A plain running sum of squares of the prices loses every digit after a large level change.
# Sums of deviations from an anchor near the data cancel far less, and the error bound makes
# the kernel recompute the window -- anchored at its newest value -- as soon as the bound
# exceeds MOMENTS_TOLERANCE of the variance (e.g. after a level change). Anchoring at a data
# value makes a window of equal values exactly flat: mean = value, std = 0, as TA-Lib reports.
#
# The streaming step and the batch loop share the three helpers below, so their arithmetic is
# the same; the batch loop is written as runs of finite values because the generic state
# machine costs about twice as much per bar.

# err (a sum of s2 values) may reach this multiple of the spread before the sums are recomputed:
# each sliding update adds at most ~3 eps * s2 of rounding error to s2 - s1**2 / period
_ERROR_BUDGET = MOMENTS_TOLERANCE / (3.0 * EPS)

# what the batch loop writes per bar
MOMENTS_MEAN = 0
MOMENTS_STD = 1
MOMENTS_BANDS = 2
MOMENTS_VOLUME_TREND = 3


@njit(cache=True, inline="always")
def _moments_start(values, last, period):
    """Sums over ``values[last - period + 1 : last + 1]``, anchored at ``values[last]``."""
    anchor = values[last]
    s1 = 0.0
    s2 = 0.0
    for k in range(last - period + 1, last + 1):
        deviation = values[k] - anchor
        s1 += deviation
        s2 += deviation * deviation
    return anchor, s1, s2, 0.0


@njit(cache=True, inline="always")
def _moments_slide(sums, values, i, period):
    """Move the window one bar forward to end at ``values[i]`` (a finite value)."""
    anchor, s1, s2, err = sums
    entering = values[i] - anchor
    leaving = values[i - period] - anchor
    s1 += entering - leaving
    s2 += entering * entering - leaving * leaving
    err += s2
    if err > _ERROR_BUDGET * (s2 - s1 * s1 * (1.0 / period)):
        return _moments_start(values, i, period)
    return anchor, s1, s2, err


@njit(cache=True, inline="always")
def _moments_values(sums, period, ddof):
    """(mean, std) of the window described by ``sums``."""
    anchor, s1, s2, _ = sums
    spread = s2 - s1 * s1 * (1.0 / period)
    mean = anchor + s1 * (1.0 / period)
    if spread > 0.0:
        return mean, math.sqrt(spread * (1.0 / (period - ddof)))
    return mean, 0.0


@njit(cache=True)
def moments_init():
    return (0, (0.0, 0.0, 0.0, 0.0))


@njit(cache=True)
def moments_step(state, values, i, period, ddof):
    """Advance the rolling mean/std state by one bar, the bar ``values[i]``.

    Parameters
    ----------
    state : tuple
        ``(count, sums)`` from :func:`moments_init` or the previous call; ``count`` is the
        number of consecutive finite values seen, capped at ``period``.
    values : ndarray, shape (n,)
        The series or a buffer of its latest values. Besides ``values[i]`` the step reads
        ``values[i - period]`` (the value leaving the window) once a full window was seen, and
        the window ``values[i - period + 1 : i + 1]`` when it (re)computes the sums.
    i : int
        Position of the new bar in ``values``.
    period : int
        Window length in bars (>= 1).
    ddof : int
        Delta degrees of freedom (0: population std, 1: sample std).

    Returns
    -------
    state : tuple
    mean : float
    std : float
    """
    count, sums = state
    if not math.isfinite(values[i]):
        return moments_init(), NAN, NAN
    if count < period:
        count += 1
        if count < period:
            return (count, sums), NAN, NAN
        sums = _moments_start(values, i, period)
    else:
        sums = _moments_slide(sums, values, i, period)
    mean, std = _moments_values(sums, period, ddof)
    return (count, sums), mean, std


@njit(cache=True, inline="always")
def _moments_emit(kind, i, x, mean, std, nbdev_up, nbdev_dn, out1, out2, out3):
    if kind == MOMENTS_MEAN:
        out1[i] = mean
    elif kind == MOMENTS_STD:
        out1[i] = std
    elif kind == MOMENTS_BANDS:
        out1[i] = mean + nbdev_up * std
        out2[i] = mean
        out3[i] = mean - nbdev_dn * std
    else:
        out1[i] = volume_trend_value(x, mean)


@njit(cache=True)
def _moments_into(x, period, ddof, kind, nbdev_up, nbdev_dn, out1, out2, out3):
    n = x.shape[0]
    i = 0
    while i < n:
        # warm-up: NaN until `period` consecutive finite values end at bar i
        count = 0
        while i < n:
            count = count + 1 if math.isfinite(x[i]) else 0
            if count == period:
                break
            _moments_emit(kind, i, NAN, NAN, NAN, 0.0, 0.0, out1, out2, out3)
            i += 1
        if i == n:
            break
        sums = _moments_start(x, i, period)
        mean, std = _moments_values(sums, period, ddof)
        _moments_emit(kind, i, x[i], mean, std, nbdev_up, nbdev_dn, out1, out2, out3)
        run_end = n
        for k in range(i + 1, n):
            if not math.isfinite(x[k]):
                run_end = k
                break
            sums = _moments_slide(sums, x, k, period)
            mean, std = _moments_values(sums, period, ddof)
            _moments_emit(kind, k, x[k], mean, std, nbdev_up, nbdev_dn, out1, out2, out3)
        i = run_end


@njit(cache=True)
def bb_position_value(x, upper, lower):
    """Position of ``x`` within the bands: 0 at the lower band, 1 at the upper, 0.5 if flat."""
    width = upper - lower
    if width > 0.0:
        return (x - lower) / width
    if width == 0.0:
        return 0.5
    return NAN


@njit(cache=True)
def bb_width_value(upper, middle, lower):
    """Band width relative to the middle band; NaN when the middle band is 0."""
    if middle == 0.0:
        return NAN
    return (upper - lower) / middle


@njit(cache=True)
def volume_trend_value(volume, mean):
    """Volume relative to its moving average; 1.0 when the average is 0 (NaN stays NaN)."""
    if mean == 0.0:
        return 1.0
    return volume / mean


# --------------------------------------------------------------------------------------------
# EMA (TA-Lib seeding: the SMA of the first ``period`` values)
# --------------------------------------------------------------------------------------------
# state = (count, value): value is the running sum during warm-up, then the EMA.


@njit(cache=True)
def ema_init():
    return (0, 0.0)


@njit(cache=True)
def ema_step(state, x, period):
    """Advance an EMA with smoothing ``2 / (period + 1)`` by one bar; returns (state, ema)."""
    count, value = state
    if not math.isfinite(x):
        return (0, 0.0), NAN
    if count < period:
        count += 1
        value += x
        if count < period:
            return (count, value), NAN
        value = value / period
        return (count, value), value
    k = 2.0 / (period + 1)
    value = value * (1.0 - k) + x * k
    return (count, value), value


@njit(cache=True)
def _ema_into(x, period, out):
    state = ema_init()
    for i in range(x.shape[0]):
        state, out[i] = ema_step(state, x[i], period)


# --------------------------------------------------------------------------------------------
# RSI (Wilder smoothing, as TA-Lib)
# --------------------------------------------------------------------------------------------
# state = (count, previous, avg_gain, avg_loss); count = finite values seen, capped at period+1.


@njit(cache=True)
def rsi_init():
    return (0, NAN, 0.0, 0.0)


@njit(cache=True)
def _gain_loss(change):
    """A one-bar price change split into (gain, loss), both >= 0."""
    gain = change if change > 0.0 else 0.0
    loss = -change if change < 0.0 else 0.0
    return gain, loss


@njit(cache=True)
def _wilder(average, value, period):
    """One step of Wilder's smoothing: ``((period - 1) * average + value) / period``."""
    return average * ((period - 1.0) / period) + value * (1.0 / period)


@njit(cache=True)
def _rsi_value(avg_gain, avg_loss):
    """RSI of the averages; 0 when their sum is exactly 0 (prices did not move), as TA-Lib
    gives: averages that decay towards 0 over flat bars keep their ratio (I-RSI-1)."""
    total = avg_gain + avg_loss
    if total > 0.0:
        return 100.0 * (avg_gain / total)
    return 0.0


@njit(cache=True)
def rsi_step(state, x, period):
    """Advance Wilder's RSI by one bar; returns (state, rsi in [0, 100])."""
    count, previous, avg_gain, avg_loss = state
    if not math.isfinite(x):
        return rsi_init(), NAN
    if count == 0:
        return (1, x, 0.0, 0.0), NAN
    gain, loss = _gain_loss(x - previous)
    if count <= period:
        avg_gain += gain
        avg_loss += loss
        count += 1
        if count <= period:
            return (count, x, avg_gain, avg_loss), NAN
        avg_gain = avg_gain / period
        avg_loss = avg_loss / period
    else:
        avg_gain = _wilder(avg_gain, gain, period)
        avg_loss = _wilder(avg_loss, loss, period)
    return (count, x, avg_gain, avg_loss), _rsi_value(avg_gain, avg_loss)


@njit(cache=True)
def _rsi_into(x, period, out):
    bars = x.shape[0]
    state = rsi_init()
    for i in range(bars):
        if i % _LINE_VALUES == 0 and i + PREFETCH_BARS < bars:
            _prefetch(x, i + PREFETCH_BARS)
        state, out[i] = rsi_step(state, x[i], period)


@njit(cache=True)
def _row_is_finite(x, i, first, last):
    finite = True
    for j in range(first, last):
        finite &= math.isfinite(x[i, j])
    return finite


@njit(cache=True)
def _rsi_rows_into(x, period, out, first, last):
    """RSI of the columns ``first:last`` of a row-major ``x``, computed one row at a time.

    In a row-major array a row's values are adjacent, and the columns' recurrences do not
    depend on each other, so once every column is past its warm-up a row's update is one loop
    without a carried dependency that compiles to vector instructions -- several columns per
    instruction, divisions included -- where a column-by-column loop waits on each bar's
    smoothing in turn. The arithmetic is :func:`rsi_step`'s (its helpers), so the values are
    the same bit for bit (I-GEN-5); rows with a missing value, and the warm-up, go through
    :func:`rsi_step` itself.
    """
    bars = x.shape[0]
    width = last - first
    count = np.zeros(width, np.int64)
    previous = np.zeros(width)
    avg_gain = np.zeros(width)
    avg_loss = np.zeros(width)
    warming = width  # columns not yet past their warm-up
    for i in range(bars):
        if i + PREFETCH_ROWS < bars:
            # the output lines too: a block's part of a row is not one sequential stream
            for j in range(first, last, _LINE_VALUES):
                _prefetch(x, (i + PREFETCH_ROWS, j))
                _prefetch(out, (i + PREFETCH_ROWS, j))
        if warming == 0 and _row_is_finite(x, i, first, last):
            for k in range(width):
                value = x[i, first + k]
                gain, loss = _gain_loss(value - previous[k])
                gains = _wilder(avg_gain[k], gain, period)
                losses = _wilder(avg_loss[k], loss, period)
                avg_gain[k] = gains
                avg_loss[k] = losses
                previous[k] = value
                out[i, first + k] = _rsi_value(gains, losses)
            continue
        warming = 0
        for k in range(width):
            state = (count[k], previous[k], avg_gain[k], avg_loss[k])
            state, out[i, first + k] = rsi_step(state, x[i, first + k], period)
            count[k], previous[k], avg_gain[k], avg_loss[k] = state
            if count[k] <= period:
                warming += 1


# --------------------------------------------------------------------------------------------
# MACD (as TA-Lib: both EMAs are seeded on the bar where the slow one completes its warm-up,
# the fast one with the mean of its last ``fast`` values; the signal is an EMA of the line)
# --------------------------------------------------------------------------------------------
# state = (count, fast, slow, signal): sums during warm-up, then EMA values.


@njit(cache=True)
def macd_init():
    return (0, 0.0, 0.0, 0.0)


@njit(cache=True)
def macd_step(state, x, fast_period, slow_period, signal_period):
    """Advance MACD by one bar; returns (state, macd, signal, histogram).

    ``fast_period`` must not exceed ``slow_period`` (the pandas layer swaps them as TA-Lib does).
    """
    count, fast, slow, signal = state
    if not math.isfinite(x):
        return macd_init(), NAN, NAN, NAN
    count += 1
    if count <= slow_period:
        slow += x
        if count > slow_period - fast_period:
            fast += x
        if count < slow_period:
            return (count, fast, slow, signal), NAN, NAN, NAN
        fast = fast / fast_period
        slow = slow / slow_period
    else:
        k_fast = 2.0 / (fast_period + 1)
        k_slow = 2.0 / (slow_period + 1)
        fast = fast * (1.0 - k_fast) + x * k_fast
        slow = slow * (1.0 - k_slow) + x * k_slow
    line = fast - slow
    line_index = count - slow_period  # 0 on the first bar with a MACD line value
    if line_index < signal_period:
        signal += line
        if line_index < signal_period - 1:
            return (count, fast, slow, signal), NAN, NAN, NAN
        signal = signal / signal_period
    else:
        # count only needs to tell warm-up from steady state; cap it so it cannot overflow
        count = slow_period + signal_period
        k_signal = 2.0 / (signal_period + 1)
        signal = signal * (1.0 - k_signal) + line * k_signal
    return (count, fast, slow, signal), line, signal, line - signal


@njit(cache=True)
def _macd_into(x, fast_period, slow_period, signal_period, line_out, signal_out, hist_out):
    state = macd_init()
    for i in range(x.shape[0]):
        state, line_out[i], signal_out[i], hist_out[i] = macd_step(
            state, x[i], fast_period, slow_period, signal_period
        )


# --------------------------------------------------------------------------------------------
# ATR (Wilder smoothing of the true range, as TA-Lib)
# --------------------------------------------------------------------------------------------
# state = (count, previous_close, value): count = finite bars seen, capped at period + 1;
# value is the sum of true ranges during warm-up, then the ATR.


@njit(cache=True)
def atr_init():
    return (0, NAN, 0.0)


@njit(cache=True)
def true_range_value(high, low, previous_close):
    greatest = high - low
    up = abs(previous_close - high)
    if up > greatest:
        greatest = up
    down = abs(previous_close - low)
    if down > greatest:
        greatest = down
    return greatest


@njit(cache=True)
def atr_step(state, high, low, close, period):
    """Advance the ATR by one bar; returns (state, atr in price units)."""
    count, previous_close, value = state
    if not (math.isfinite(high) and math.isfinite(low) and math.isfinite(close)):
        return atr_init(), NAN
    if count == 0:
        return (1, close, 0.0), NAN
    true_range = true_range_value(high, low, previous_close)
    if count <= period:
        value += true_range
        count += 1
        if count <= period:
            return (count, close, value), NAN
        value = value / period
    else:
        value = value * ((period - 1.0) / period) + true_range * (1.0 / period)
    return (count, close, value), value


@njit(cache=True)
def _atr_into(high, low, close, period, out):
    state = atr_init()
    for i in range(close.shape[0]):
        state, out[i] = atr_step(state, high[i], low[i], close[i], period)


# --------------------------------------------------------------------------------------------
# Rate of change over ``lag`` bars, as a fraction (TA-Lib ROCP)
# --------------------------------------------------------------------------------------------
# state = (count,): consecutive finite values, capped at lag + 1.


@njit(cache=True)
def roc_init():
    return (0,)


@njit(cache=True)
def roc_step(state, x, x_lag, lag):
    """Advance ROC by one bar; ``x_lag`` is the value ``lag`` bars earlier.

    Returns (state, (x - x_lag) / x_lag). Unlike TA-Lib, which returns 0 when ``x_lag`` is 0,
    a zero reference value gives NaN: the change is undefined.
    """
    (count,) = state
    if not math.isfinite(x):
        return (0,), NAN
    if count < lag:
        return (count + 1,), NAN
    if x_lag == 0.0:
        return (lag + 1,), NAN
    return (lag + 1,), (x - x_lag) / x_lag


@njit(cache=True)
def _roc_into(x, lag, out):
    state = roc_init()
    for i in range(x.shape[0]):
        x_lag = x[i - lag] if i >= lag else NAN
        state, out[i] = roc_step(state, x[i], x_lag, lag)


# --------------------------------------------------------------------------------------------
# Realised volatility: rolling std of one-bar log returns
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def log_return_value(x, x_previous):
    """One-bar log return; NaN unless both prices are finite and positive."""
    if x > 0.0 and x_previous > 0.0 and math.isfinite(x) and math.isfinite(x_previous):
        return math.log(x / x_previous)
    return NAN


@njit(cache=True)
def _log_returns_into(x, out):
    if x.shape[0] > 0:
        out[0] = NAN
    for i in range(1, x.shape[0]):
        out[i] = log_return_value(x[i], x[i - 1])


@njit(cache=True)
def _realized_volatility_into(x, period, ddof, out):
    returns = np.empty(x.shape[0])
    _log_returns_into(x, returns)
    _moments_into(returns, period, ddof, MOMENTS_STD, 0.0, 0.0, out, out, out)


# --------------------------------------------------------------------------------------------
# Public batch kernels
# --------------------------------------------------------------------------------------------
# ``*_1d_nb`` take one series of shape (bars,); ``*_2d_nb`` take (bars, columns) and compute the
# columns in parallel. Outputs are preallocated by the caller (same shape as the input) and
# returned. Column-major (Fortran-ordered) 2-D arrays -- what ``DataFrame.to_numpy()`` gives --
# are the fast layout: each column is then contiguous. ``rsi_2d_nb`` is as fast on row-major
# arrays (with row-major outputs), which it walks by rows.


@njit(cache=True)
def sma_1d_nb(x, period, out):
    _moments_into(x, period, 0, MOMENTS_MEAN, 0.0, 0.0, out, out, out)
    return out


@njit(cache=True, parallel=True)
def sma_2d_nb(x, period, out):
    for j in prange(x.shape[1]):
        _moments_into(x[:, j], period, 0, MOMENTS_MEAN, 0.0, 0.0, out[:, j], out[:, j], out[:, j])
    return out


@njit(cache=True)
def rolling_std_1d_nb(x, period, ddof, out):
    _moments_into(x, period, ddof, MOMENTS_STD, 0.0, 0.0, out, out, out)
    return out


@njit(cache=True, parallel=True)
def rolling_std_2d_nb(x, period, ddof, out):
    for j in prange(x.shape[1]):
        column = out[:, j]
        _moments_into(x[:, j], period, ddof, MOMENTS_STD, 0.0, 0.0, column, column, column)
    return out


@njit(cache=True)
def bbands_1d_nb(x, period, nbdev_up, nbdev_dn, upper, middle, lower):
    _moments_into(x, period, 0, MOMENTS_BANDS, nbdev_up, nbdev_dn, upper, middle, lower)
    return upper, middle, lower


@njit(cache=True, parallel=True)
def bbands_2d_nb(x, period, nbdev_up, nbdev_dn, upper, middle, lower):
    for j in prange(x.shape[1]):
        _moments_into(
            x[:, j],
            period,
            0,
            MOMENTS_BANDS,
            nbdev_up,
            nbdev_dn,
            upper[:, j],
            middle[:, j],
            lower[:, j],
        )
    return upper, middle, lower


@njit(cache=True)
def volume_trend_1d_nb(volume, period, out):
    _moments_into(volume, period, 0, MOMENTS_VOLUME_TREND, 0.0, 0.0, out, out, out)
    return out


@njit(cache=True, parallel=True)
def volume_trend_2d_nb(volume, period, out):
    for j in prange(volume.shape[1]):
        column = out[:, j]
        _moments_into(
            volume[:, j], period, 0, MOMENTS_VOLUME_TREND, 0.0, 0.0, column, column, column
        )
    return out


@njit(cache=True)
def ema_1d_nb(x, period, out):
    _ema_into(x, period, out)
    return out


@njit(cache=True, parallel=True)
def ema_2d_nb(x, period, out):
    for j in prange(x.shape[1]):
        _ema_into(x[:, j], period, out[:, j])
    return out


@njit(cache=True)
def rsi_1d_nb(x, period, out):
    _rsi_into(x, period, out)
    return out


# Blocks of columns of the row-major RSI path, one thread each at a time: at least two, so that
# two cores share even a narrow array (the thread count cannot be read by a cached kernel), and
# at most _ROW_BLOCK_MAX columns each, so that a block's states stay in the L1 cache. A block
# holds whole groups of _LINE_VALUES columns: two blocks share at most one cache line per row.
# Rows narrower than one cache line are walked column by column: the row loop would be short.
_ROW_BLOCKS_MIN = 2
_ROW_BLOCK_MAX = 512


@njit(cache=True, parallel=True)
def _rsi_columns_2d(x, period, out):
    for j in prange(x.shape[1]):
        _rsi_into(x[:, j], period, out[:, j])
    return out


@njit(cache=True, parallel=True)
def _rsi_rows_2d(x, period, out):
    columns = x.shape[1]
    lines = (columns + _LINE_VALUES - 1) // _LINE_VALUES
    blocks = max(_ROW_BLOCKS_MIN, (columns + _ROW_BLOCK_MAX - 1) // _ROW_BLOCK_MAX)
    blocks = max(1, min(blocks, lines))
    for b in prange(blocks):
        first = min(lines * b // blocks * _LINE_VALUES, columns)
        last = min(lines * (b + 1) // blocks * _LINE_VALUES, columns)
        _rsi_rows_into(x, period, out, first, last)
    return out


def _rsi_2d_for_layout(x, period, out):
    """Stand-in for compiled code: the overload below picks the loop from the array types."""
    raise NotImplementedError("only callable from a compiled function")


@overload(_rsi_2d_for_layout)
def _rsi_2d_for_layout_overload(x, period, out):
    # chosen when rsi_2d_nb is compiled, from the arrays' types: each layout compiles only the
    # loop it runs (the row loop costs a few seconds to compile)
    if x.layout == "C" and out.layout == "C":

        def row_major(x, period, out):
            if x.shape[1] < _LINE_VALUES:
                return _rsi_columns_2d(x, period, out)
            return _rsi_rows_2d(x, period, out)

        return row_major
    return lambda x, period, out: _rsi_columns_2d(x, period, out)


@njit(cache=True)
def rsi_2d_nb(x, period, out):
    """RSI of every column of ``x`` (bars, columns) into ``out``; any layout.

    Column-major arrays run column by column, the columns in parallel. When ``x`` and ``out``
    are both row-major (and a row spans a cache line) the kernel walks the rows instead, a
    block of columns per thread, with the columns of each row updated together
    (:func:`_rsi_rows_into`).
    """
    return _rsi_2d_for_layout(x, period, out)


@njit(cache=True)
def macd_1d_nb(x, fast_period, slow_period, signal_period, line, signal, hist):
    _macd_into(x, fast_period, slow_period, signal_period, line, signal, hist)
    return line, signal, hist


@njit(cache=True, parallel=True)
def macd_2d_nb(x, fast_period, slow_period, signal_period, line, signal, hist):
    for j in prange(x.shape[1]):
        _macd_into(
            x[:, j], fast_period, slow_period, signal_period, line[:, j], signal[:, j], hist[:, j]
        )
    return line, signal, hist


@njit(cache=True)
def atr_1d_nb(high, low, close, period, out):
    _atr_into(high, low, close, period, out)
    return out


@njit(cache=True, parallel=True)
def atr_2d_nb(high, low, close, period, out):
    for j in prange(close.shape[1]):
        _atr_into(high[:, j], low[:, j], close[:, j], period, out[:, j])
    return out


@njit(cache=True)
def roc_1d_nb(x, lag, out):
    _roc_into(x, lag, out)
    return out


@njit(cache=True, parallel=True)
def roc_2d_nb(x, lag, out):
    for j in prange(x.shape[1]):
        _roc_into(x[:, j], lag, out[:, j])
    return out


@njit(cache=True)
def realized_volatility_1d_nb(x, period, ddof, out):
    _realized_volatility_into(x, period, ddof, out)
    return out


@njit(cache=True, parallel=True)
def realized_volatility_2d_nb(x, period, ddof, out):
    for j in prange(x.shape[1]):
        _realized_volatility_into(x[:, j], period, ddof, out[:, j])
    return out


@njit(cache=True)
def bb_position_1d_nb(x, upper, lower, out):
    """Elementwise :func:`bb_position_value`."""
    for i in range(x.shape[0]):
        out[i] = bb_position_value(x[i], upper[i], lower[i])
    return out


@njit(cache=True, parallel=True)
def bb_position_2d_nb(x, upper, lower, out):
    for j in prange(x.shape[1]):
        bb_position_1d_nb(x[:, j], upper[:, j], lower[:, j], out[:, j])
    return out


@njit(cache=True)
def bb_width_1d_nb(upper, middle, lower, out):
    """Elementwise :func:`bb_width_value`."""
    for i in range(upper.shape[0]):
        out[i] = bb_width_value(upper[i], middle[i], lower[i])
    return out


@njit(cache=True, parallel=True)
def bb_width_2d_nb(upper, middle, lower, out):
    for j in prange(upper.shape[1]):
        bb_width_1d_nb(upper[:, j], middle[:, j], lower[:, j], out[:, j])
    return out


# rows per tile of the layout copy: a tile of a few hundred rows stays in the L2 cache
_COPY_TILE_ROWS = 512


@njit(cache=True, parallel=True)
def to_column_major_nb(x, out):
    """Copy a (bars, columns) array into ``out`` (column-major), tiles of rows in parallel."""
    bars, columns = x.shape
    tiles = (bars + _COPY_TILE_ROWS - 1) // _COPY_TILE_ROWS
    for tile in prange(tiles):
        first = tile * _COPY_TILE_ROWS
        last = min(first + _COPY_TILE_ROWS, bars)
        for j in range(columns):
            for i in range(first, last):
                out[i, j] = x[i, j]
    return out
