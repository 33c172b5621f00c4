"""Streaming (one bar at a time) forms of the indicators.

Each class holds the indicator's state and advances it with the same Numba step function the
batch kernels use, so feeding a series bar by bar reproduces the batch result exactly, NaN
warm-up and the missing-data rule included (see :mod:`qt_backtest.indicators.nb`).

Example
-------
>>> rsi = RSI(14)
>>> values = [rsi.update(price) for price in closes]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qt_backtest.indicators import defaults, nb
from qt_backtest.indicators._validate import check_nonnegative, check_period


class _Window:
    """The last ``size`` raw inputs, oldest first (NaN before the series starts)."""

    def __init__(self, size: int) -> None:
        self.values = np.full(size, np.nan)

    def push(self, x: float) -> None:
        self.values[:-1] = self.values[1:]
        self.values[-1] = x


class _Moments:
    def __init__(self, period: int, ddof: int) -> None:
        self.period = period
        self.ddof = ddof
        self._window = _Window(period + 1)
        self._state = nb.moments_init()

    def update(self, x: float) -> tuple[float, float]:
        self._window.push(x)
        self._state, mean, std = nb.moments_step(
            self._state, self._window.values, self.period, self.period, self.ddof
        )
        return mean, std


class SMA:
    """Simple moving average over ``period`` bars."""

    def __init__(self, period: int = defaults.BB_PERIOD) -> None:
        self.period = check_period(period, "period")
        self._moments = _Moments(self.period, 0)

    def update(self, x: float) -> float:
        return self._moments.update(float(x))[0]


class RollingStd:
    """Rolling standard deviation over ``period`` bars (``ddof=0``: population)."""

    def __init__(self, period: int = defaults.BB_PERIOD, ddof: int = 0) -> None:
        self.period = check_period(period, "period", minimum=ddof + 1)
        self.ddof = ddof
        self._moments = _Moments(self.period, ddof)

    def update(self, x: float) -> float:
        return self._moments.update(float(x))[1]


class EMA:
    """Exponential moving average, smoothing ``2 / (period + 1)``, seeded with an SMA."""

    def __init__(self, period: int) -> None:
        self.period = check_period(period, "period")
        self._state = nb.ema_init()

    def update(self, x: float) -> float:
        self._state, value = nb.ema_step(self._state, float(x), self.period)
        return value


class RSI:
    """Wilder's relative strength index, in [0, 100]."""

    def __init__(self, period: int = defaults.RSI_PERIOD) -> None:
        self.period = check_period(period, "period", minimum=2)
        self._state = nb.rsi_init()

    def update(self, close: float) -> float:
        self._state, value = nb.rsi_step(self._state, float(close), self.period)
        return value


class MACDValue(NamedTuple):
    macd: float
    signal: float
    hist: float


class MACD:
    """MACD line, signal line and histogram (TA-Lib's seeding), in price units."""

    def __init__(
        self,
        fast: int = defaults.MACD_FAST,
        slow: int = defaults.MACD_SLOW,
        signal: int = defaults.MACD_SIGNAL,
    ) -> None:
        fast = check_period(fast, "fast", minimum=2)
        slow = check_period(slow, "slow", minimum=2)
        self.fast, self.slow = min(fast, slow), max(fast, slow)
        self.signal = check_period(signal, "signal")
        self._state = nb.macd_init()

    def update(self, close: float) -> MACDValue:
        self._state, line, signal, hist = nb.macd_step(
            self._state, float(close), self.fast, self.slow, self.signal
        )
        return MACDValue(line, signal, hist)


class BollingerValue(NamedTuple):
    upper: float
    middle: float
    lower: float
    position: float
    width: float


class BollingerBands:
    """Bollinger bands: SMA +/- ``nbdev`` population standard deviations."""

    def __init__(
        self,
        period: int = defaults.BB_PERIOD,
        nbdev_up: float = defaults.BB_NBDEV,
        nbdev_dn: float = defaults.BB_NBDEV,
    ) -> None:
        self.period = check_period(period, "period")
        self.nbdev_up = check_nonnegative(nbdev_up, "nbdev_up")
        self.nbdev_dn = check_nonnegative(nbdev_dn, "nbdev_dn")
        self._moments = _Moments(self.period, 0)

    def update(self, close: float) -> BollingerValue:
        close = float(close)
        mean, std = self._moments.update(close)
        upper = mean + self.nbdev_up * std
        lower = mean - self.nbdev_dn * std
        position = nb.bb_position_value(close, upper, lower)
        width = nb.bb_width_value(upper, mean, lower)
        return BollingerValue(upper, mean, lower, position, width)


class ATR:
    """Wilder's average true range, in price units."""

    def __init__(self, period: int = defaults.ATR_PERIOD) -> None:
        self.period = check_period(period, "period")
        self._state = nb.atr_init()

    def update(self, high: float, low: float, close: float) -> float:
        self._state, value = nb.atr_step(
            self._state, float(high), float(low), float(close), self.period
        )
        return value


class ROC:
    """Rate of change over ``lag`` bars as a fraction (0.02 = +2 %)."""

    def __init__(self, lag: int = 1) -> None:
        self.lag = check_period(lag, "lag")
        self._window = _Window(self.lag + 1)
        self._state = nb.roc_init()

    def update(self, x: float) -> float:
        x = float(x)
        self._window.push(x)
        self._state, value = nb.roc_step(self._state, x, self._window.values[0], self.lag)
        return value


class VolumeTrend:
    """Volume divided by its ``period``-bar simple moving average (1.0 when that is 0)."""

    def __init__(self, period: int = defaults.VOLUME_PERIOD) -> None:
        self.period = check_period(period, "period")
        self._moments = _Moments(self.period, 0)

    def update(self, volume: float) -> float:
        volume = float(volume)
        mean = self._moments.update(volume)[0]
        if np.isnan(mean):
            return mean
        return nb.volume_trend_value(volume, mean)


class RealizedVolatility:
    """Rolling standard deviation of one-bar log returns (per bar, not annualised)."""

    def __init__(self, period: int = defaults.VOLATILITY_PERIOD, ddof: int = 0) -> None:
        self.period = check_period(period, "period", minimum=ddof + 1)
        self.ddof = ddof
        self._moments = _Moments(self.period, ddof)
        self._previous = np.nan

    def update(self, close: float) -> float:
        close = float(close)
        log_return = nb.log_return_value(close, self._previous)
        self._previous = close
        return self._moments.update(log_return)[1]
