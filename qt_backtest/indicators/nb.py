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
from numba import njit, prange

NAN = np.nan
INF = np.inf
EPS = float(np.finfo(np.float64).eps)

# TA-Lib treats |v| < 1e-14 as zero when it decides that RSI's average move vanished (RSI = 0).
TALIB_ZERO = 1e-14

# Rolling moments are updated incrementally while the a priori rounding-error bound stays below
# this fraction of the value's scale; past it the window is recomputed with two passes.
MOMENTS_TOLERANCE = 1e-12


# --------------------------------------------------------------------------------------------
# Rolling mean and standard deviation (SMA, STDDEV, Bollinger bands, volume trend, volatility)
# --------------------------------------------------------------------------------------------
#
# state = (count, run, last, mean, m2, err_mean, err_m2)
#   count      consecutive finite values seen, capped at period + 1
#   run        length of the run of equal values ending at the current bar, capped at period
#   last       the previous finite value
#   mean, m2   window mean and sum of squared deviations from it
#   err_*      a priori bounds of the rounding error accumulated by the incremental updates
#
# A running sum of squares loses every digit after a large level change. The sliding Welford
# update used here does not cancel catastrophically, but it still accumulates error, so the
# kernel tracks a bound of that error and recomputes the window (two passes) as soon as the
# bound exceeds MOMENTS_TOLERANCE of the value's scale. A window of equal values is recognised
# exactly: mean = value, std = 0 (as TA-Lib reports it).


@njit(cache=True)
def moments_init():
    return (0, 0, NAN, 0.0, 0.0, 0.0, 0.0)


@njit(cache=True)
def _window_moments(window, period):
    total = 0.0
    for k in range(period):
        total += window[k]
    mean = total / period
    m2 = 0.0
    for k in range(period):
        d = window[k] - mean
        m2 += d * d
    return mean, m2


@njit(cache=True)
def moments_step(state, x, x_old, window, period, ddof):
    """Advance the rolling mean/std state by one bar.

    Parameters
    ----------
    state : tuple
        From :func:`moments_init` or the previous call.
    x : float
        The new value.
    x_old : float
        The value leaving the window (``period`` bars before ``x``); read only once a full
        window was already seen.
    window : ndarray, shape (period,)
        The last ``period`` values, ending with ``x``; read only when the window is recomputed.
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
    count, run, last, mean, m2, err_mean, err_m2 = state
    if not math.isfinite(x):
        return moments_init(), NAN, NAN
    if count > 0 and x == last:
        run = min(run + 1, period)
    else:
        run = 1
    if count < period:
        count += 1
        if count < period:
            return (count, run, x, 0.0, 0.0, 0.0, 0.0), NAN, NAN
        recompute = True
    else:
        count = period + 1
        recompute = False
    if run >= period:
        # Every value in the window equals x. The infinite error bound forces a recompute on
        # the next bar that differs.
        return (count, run, x, x, 0.0, INF, INF), x, 0.0
    if not recompute:
        inv_period = 1.0 / period
        delta = x - x_old
        step_mean = delta * inv_period
        new_mean = mean + step_mean
        spread = abs(x - new_mean) + abs(x_old - mean)
        increment = delta * ((x - new_mean) + (x_old - mean))
        new_m2 = m2 + increment
        err_mean += EPS * (abs(new_mean) + 2.0 * abs(step_mean))
        err_m2 += EPS * (abs(new_m2) + 3.0 * abs(delta) * spread) + 2.0 * abs(delta) * err_mean
        scale_mean = abs(new_mean) + math.sqrt(abs(new_m2) * inv_period)
        if err_mean > MOMENTS_TOLERANCE * scale_mean or err_m2 > MOMENTS_TOLERANCE * new_m2:
            recompute = True
        else:
            mean = new_mean
            m2 = new_m2
    if recompute:
        mean, m2 = _window_moments(window, period)
        err_mean = 0.0
        err_m2 = 0.0
    if m2 > 0.0:
        std = math.sqrt(m2 / (period - ddof))
    else:
        std = 0.0
    return (count, run, x, mean, m2, err_mean, err_m2), mean, std


@njit(cache=True)
def _moments_into(x, period, ddof, mean_out, std_out):
    state = moments_init()
    for i in range(x.shape[0]):
        x_old = x[i - period] if i >= period else NAN
        start = i - period + 1 if i >= period - 1 else 0
        state, mean, std = moments_step(state, x[i], x_old, x[start : i + 1], period, ddof)
        mean_out[i] = mean
        std_out[i] = std


@njit(cache=True)
def _sma_into(x, period, out):
    scratch = np.empty(x.shape[0])
    _moments_into(x, period, 0, out, scratch)


@njit(cache=True)
def _std_into(x, period, ddof, out):
    scratch = np.empty(x.shape[0])
    _moments_into(x, period, ddof, scratch, out)


@njit(cache=True)
def _bbands_into(x, period, nbdev_up, nbdev_dn, upper, middle, lower):
    state = moments_init()
    for i in range(x.shape[0]):
        x_old = x[i - period] if i >= period else NAN
        start = i - period + 1 if i >= period - 1 else 0
        state, mean, std = moments_step(state, x[i], x_old, x[start : i + 1], period, 0)
        middle[i] = mean
        upper[i] = mean + nbdev_up * std
        lower[i] = mean - nbdev_dn * std


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
    """Volume relative to its moving average; 1.0 when the average is 0."""
    if mean == 0.0:
        return 1.0
    return volume / mean


@njit(cache=True)
def _volume_trend_into(volume, period, out):
    _sma_into(volume, period, out)
    for i in range(volume.shape[0]):
        if not math.isnan(out[i]):
            out[i] = volume_trend_value(volume[i], out[i])


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
def rsi_step(state, x, period):
    """Advance Wilder's RSI by one bar; returns (state, rsi in [0, 100])."""
    count, previous, avg_gain, avg_loss = state
    if not math.isfinite(x):
        return rsi_init(), NAN
    if count == 0:
        return (1, x, 0.0, 0.0), NAN
    change = x - previous
    gain = change if change > 0.0 else 0.0
    loss = -change if change < 0.0 else 0.0
    if count <= period:
        avg_gain += gain
        avg_loss += loss
        count += 1
        if count <= period:
            return (count, x, avg_gain, avg_loss), NAN
        avg_gain = avg_gain / period
        avg_loss = avg_loss / period
    else:
        keep = (period - 1.0) / period
        weight = 1.0 / period
        avg_gain = avg_gain * keep + gain * weight
        avg_loss = avg_loss * keep + loss * weight
    total = avg_gain + avg_loss
    if total >= TALIB_ZERO:
        value = 100.0 * (avg_gain / total)
    else:
        value = 0.0
    return (count, x, avg_gain, avg_loss), value


@njit(cache=True)
def _rsi_into(x, period, out):
    state = rsi_init()
    for i in range(x.shape[0]):
        state, out[i] = rsi_step(state, x[i], period)


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
    _std_into(returns, period, ddof, out)


# --------------------------------------------------------------------------------------------
# Public batch kernels: 1-D (one series) and 2-D (bars x columns, columns in parallel)
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def sma_1d_nb(x, period):
    out = np.empty(x.shape[0])
    _sma_into(x, period, out)
    return out


@njit(cache=True, parallel=True)
def sma_2d_nb(x, period):
    out = np.empty(x.shape)
    for j in prange(x.shape[1]):
        _sma_into(x[:, j], period, out[:, j])
    return out


@njit(cache=True)
def ema_1d_nb(x, period):
    out = np.empty(x.shape[0])
    _ema_into(x, period, out)
    return out


@njit(cache=True, parallel=True)
def ema_2d_nb(x, period):
    out = np.empty(x.shape)
    for j in prange(x.shape[1]):
        _ema_into(x[:, j], period, out[:, j])
    return out


@njit(cache=True)
def rsi_1d_nb(x, period):
    out = np.empty(x.shape[0])
    _rsi_into(x, period, out)
    return out


@njit(cache=True, parallel=True)
def rsi_2d_nb(x, period):
    out = np.empty(x.shape)
    for j in prange(x.shape[1]):
        _rsi_into(x[:, j], period, out[:, j])
    return out


@njit(cache=True)
def macd_1d_nb(x, fast_period, slow_period, signal_period):
    line = np.empty(x.shape[0])
    signal = np.empty(x.shape[0])
    hist = np.empty(x.shape[0])
    _macd_into(x, fast_period, slow_period, signal_period, line, signal, hist)
    return line, signal, hist


@njit(cache=True, parallel=True)
def macd_2d_nb(x, fast_period, slow_period, signal_period):
    line = np.empty(x.shape)
    signal = np.empty(x.shape)
    hist = np.empty(x.shape)
    for j in prange(x.shape[1]):
        _macd_into(
            x[:, j], fast_period, slow_period, signal_period, line[:, j], signal[:, j], hist[:, j]
        )
    return line, signal, hist


@njit(cache=True)
def rolling_std_1d_nb(x, period, ddof):
    out = np.empty(x.shape[0])
    _std_into(x, period, ddof, out)
    return out


@njit(cache=True, parallel=True)
def rolling_std_2d_nb(x, period, ddof):
    out = np.empty(x.shape)
    for j in prange(x.shape[1]):
        _std_into(x[:, j], period, ddof, out[:, j])
    return out


@njit(cache=True)
def bbands_1d_nb(x, period, nbdev_up, nbdev_dn):
    upper = np.empty(x.shape[0])
    middle = np.empty(x.shape[0])
    lower = np.empty(x.shape[0])
    _bbands_into(x, period, nbdev_up, nbdev_dn, upper, middle, lower)
    return upper, middle, lower


@njit(cache=True, parallel=True)
def bbands_2d_nb(x, period, nbdev_up, nbdev_dn):
    upper = np.empty(x.shape)
    middle = np.empty(x.shape)
    lower = np.empty(x.shape)
    for j in prange(x.shape[1]):
        _bbands_into(x[:, j], period, nbdev_up, nbdev_dn, upper[:, j], middle[:, j], lower[:, j])
    return upper, middle, lower


@njit(cache=True)
def bb_position_nb(x, upper, lower):
    """Elementwise :func:`bb_position_value` over arrays of any shape (flattened view)."""
    out = np.empty(x.shape)
    xf = x.ravel()
    uf = upper.ravel()
    lf = lower.ravel()
    of = out.ravel()
    for i in range(xf.shape[0]):
        of[i] = bb_position_value(xf[i], uf[i], lf[i])
    return out


@njit(cache=True)
def bb_width_nb(upper, middle, lower):
    """Elementwise :func:`bb_width_value` over arrays of any shape."""
    out = np.empty(upper.shape)
    uf = upper.ravel()
    mf = middle.ravel()
    lf = lower.ravel()
    of = out.ravel()
    for i in range(uf.shape[0]):
        of[i] = bb_width_value(uf[i], mf[i], lf[i])
    return out


@njit(cache=True)
def atr_1d_nb(high, low, close, period):
    out = np.empty(close.shape[0])
    _atr_into(high, low, close, period, out)
    return out


@njit(cache=True, parallel=True)
def atr_2d_nb(high, low, close, period):
    out = np.empty(close.shape)
    for j in prange(close.shape[1]):
        _atr_into(high[:, j], low[:, j], close[:, j], period, out[:, j])
    return out


@njit(cache=True)
def roc_1d_nb(x, lag):
    out = np.empty(x.shape[0])
    _roc_into(x, lag, out)
    return out


@njit(cache=True, parallel=True)
def roc_2d_nb(x, lag):
    out = np.empty(x.shape)
    for j in prange(x.shape[1]):
        _roc_into(x[:, j], lag, out[:, j])
    return out


@njit(cache=True)
def volume_trend_1d_nb(volume, period):
    out = np.empty(volume.shape[0])
    _volume_trend_into(volume, period, out)
    return out


@njit(cache=True, parallel=True)
def volume_trend_2d_nb(volume, period):
    out = np.empty(volume.shape)
    for j in prange(volume.shape[1]):
        _volume_trend_into(volume[:, j], period, out[:, j])
    return out


@njit(cache=True)
def realized_volatility_1d_nb(x, period, ddof):
    out = np.empty(x.shape[0])
    _realized_volatility_into(x, period, ddof, out)
    return out


@njit(cache=True, parallel=True)
def realized_volatility_2d_nb(x, period, ddof):
    out = np.empty(x.shape)
    for j in prange(x.shape[1]):
        _realized_volatility_into(x[:, j], period, ddof, out[:, j])
    return out
