"""The Arbiter's indicator inputs (I-ARB-1 to I-ARB-3, I-MOM-1) computed from OHLCV bars."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qt_backtest.data.interval import format_interval, infer_interval, parse_interval
from qt_backtest.data.validate import validate_ohlcv
from qt_backtest.errors import ConfigError
from qt_backtest.indicators import api, defaults
from qt_backtest.parameters import param, validate

#: Column order of :func:`arbiter_inputs`.
ARBITER_INPUT_COLUMNS = ("rsi", "macd", "macd_signal", "bb_position", "volume_trend", "momentum")


def _time_span(value: str) -> str:
    """``value`` if it reads as a positive time span, else ``ValueError`` saying why."""
    parse_interval(value)
    return value


@dataclass(frozen=True)
class ArbiterInputConfig:
    """How the Arbiter's inputs are computed; defaults are the live engine's (I-ARB-1).

    Parameters
    ----------
    rsi_period : int
        Wilder RSI window, bars.
    macd_fast, macd_slow, macd_signal : int
        MACD EMA spans, bars.
    bb_period : int
        Bollinger window, bars.
    bb_nbdev : float
        Bollinger band distance, population standard deviations.
    volume_period : int
        Window of the volume moving average, bars.
    momentum_horizon : str
        How far back momentum looks (a time span, e.g. ``"1h"``); converted to a number of bars
        from the bar interval, which must divide it.
    macd_scale : {"price", "percent"}
        ``"price"``: MACD and its signal in price units (the live engine). ``"percent"``: both
        divided by the close and multiplied by 100, so the Arbiter's ``min(10 |d|, 1)`` does not
        saturate for high-priced assets.
    """

    rsi_period: int = param(
        defaults.RSI_PERIOD, doc="Wilder RSI window", kind="int", low=2, unit="bars", rule="I-RSI-1"
    )
    macd_fast: int = param(
        defaults.MACD_FAST,
        doc="fast MACD EMA span",
        kind="int",
        low=2,
        unit="bars",
        rule="I-MACD-1",
    )
    macd_slow: int = param(
        defaults.MACD_SLOW,
        doc="slow MACD EMA span",
        kind="int",
        low=2,
        unit="bars",
        rule="I-MACD-1",
    )
    macd_signal: int = param(
        defaults.MACD_SIGNAL,
        doc="MACD signal EMA span",
        kind="int",
        low=1,
        unit="bars",
        rule="I-MACD-1",
    )
    bb_period: int = param(
        defaults.BB_PERIOD, doc="Bollinger window", kind="int", low=1, unit="bars", rule="I-BB-1"
    )
    bb_nbdev: float = param(
        defaults.BB_NBDEV,
        doc="Bollinger band distance",
        low=0.0,
        unit="population standard deviations",
        rule="I-BB-1",
    )
    volume_period: int = param(
        defaults.VOLUME_PERIOD,
        doc="window of the volume moving average",
        kind="int",
        low=1,
        unit="bars",
        rule="I-VOL-1",
    )
    momentum_horizon: str = param(
        defaults.MOMENTUM_HORIZON,
        doc="how far back momentum looks (a multiple of the bar interval)",
        kind="other",
        check=_time_span,
        accepts='a time span such as "1h"',
        unit="time",
        rule="I-MOM-1",
    )
    macd_scale: str = param(
        defaults.MACD_SCALE,
        doc="MACD in price units, or in percent of the close",
        kind="choice",
        choices=defaults.MACD_SCALES,
        rule="I-ARB-2",
    )
    _horizon: pd.Timedelta = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate(self)
        if self.macd_fast >= self.macd_slow:
            raise ConfigError(
                f"macd_fast ({self.macd_fast}) must be shorter than macd_slow ({self.macd_slow})",
                name="macd_fast, macd_slow",
                value=(self.macd_fast, self.macd_slow),
            )
        object.__setattr__(self, "_horizon", parse_interval(self.momentum_horizon))

    def momentum_lag(self, interval: str | pd.Timedelta) -> int:
        """Number of bars in the momentum horizon for bars of ``interval``."""
        bar = parse_interval(interval)
        if self._horizon.value % bar.value != 0:
            raise ValueError(
                f"momentum_horizon {self.momentum_horizon} is not a whole number of "
                f"{format_interval(bar)} bars; set momentum_horizon to a multiple of the bar "
                "interval (e.g. '1d' for daily bars)"
            )
        return self._horizon.value // bar.value


def _single(frame: pd.DataFrame, config: ArbiterInputConfig, interval) -> pd.DataFrame:
    validate_ohlcv(frame, source=frame.attrs.get("source"), check_interval=False)
    bar = infer_interval(frame.index) if interval is None else parse_interval(interval)
    lag = config.momentum_lag(bar)
    close = frame["close"].astype(np.float64)
    rsi = api.rsi(close, config.rsi_period)
    macd = api.macd(close, config.macd_fast, config.macd_slow, config.macd_signal)
    line, signal = macd.macd, macd.signal
    if config.macd_scale == "percent":
        line = line / close * 100.0
        signal = signal / close * 100.0
    bands = api.bollinger_bands(close, config.bb_period, config.bb_nbdev)
    volume_trend = api.volume_trend(frame["volume"].astype(np.float64), config.volume_period)
    momentum = api.roc(close, lag)
    # "one hour earlier" is a time, not a bar count: across a gap the bar `lag` rows back is
    # older than the horizon, so there is no momentum value there.
    stamps = frame.index.as_unit("ns").asi8
    spacing = np.full(len(stamps), -1, dtype=np.int64)
    spacing[lag:] = stamps[lag:] - stamps[:-lag]
    momentum = momentum.where(spacing == lag * bar.value)
    return pd.DataFrame(
        {
            "rsi": rsi,
            "macd": line,
            "macd_signal": signal,
            "bb_position": bands.position,
            "volume_trend": volume_trend,
            "momentum": momentum,
        },
        index=frame.index,
    )


def arbiter_inputs(
    ohlcv: pd.DataFrame | Mapping[str, pd.DataFrame],
    config: ArbiterInputConfig | None = None,
    *,
    interval: str | pd.Timedelta | None = None,
) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Compute ``rsi, macd, macd_signal, bb_position, volume_trend, momentum`` per bar.

    Parameters
    ----------
    ohlcv : DataFrame or mapping of symbol to DataFrame
        Validated OHLCV bars of one symbol, a ``{symbol: frame}`` mapping, or a wide frame with
        ``(symbol, field)`` columns. Each symbol is computed on its own bars only.
    config : ArbiterInputConfig, optional
        Indicator parameters; the live engine's by default.
    interval : str or Timedelta, optional
        Bar interval (for the momentum lag); inferred from the index when omitted.

    Returns
    -------
    DataFrame (or the same container as the input) indexed like the bars.
        ``rsi`` in [0, 100]; ``macd``, ``macd_signal`` in price units (or percent of close);
        ``bb_position`` (0 lower band, 1 upper band); ``volume_trend`` (ratio);
        ``momentum`` (fraction: 0.02 = +2 %). Values are NaN during each indicator's warm-up
        and where the bar one horizon earlier is missing; the Arbiter reads NaN as its neutral
        default.
    """
    config = ArbiterInputConfig() if config is None else config
    if isinstance(ohlcv, Mapping):
        return {symbol: _single(frame, config, interval) for symbol, frame in ohlcv.items()}
    if isinstance(ohlcv.columns, pd.MultiIndex):
        from qt_backtest.data.loaders import from_wide

        parts = {
            symbol: _single(frame, config, interval) for symbol, frame in from_wide(ohlcv).items()
        }
        wide = pd.concat(parts, axis=1, names=["symbol", "field"])
        return wide.reindex(ohlcv.index)
    return _single(ohlcv, config, interval)


class ArbiterInputStream:
    """The Arbiter's inputs one bar at a time, equal to :func:`arbiter_inputs` bar for bar.

    Parameters
    ----------
    config : ArbiterInputConfig, optional
        Indicator parameters; the live engine's by default.
    interval : str or Timedelta
        Bar interval of the bars that will be fed (e.g. ``"1h"``), for the momentum lag.

    Examples
    --------
    >>> stream = ArbiterInputStream(interval="1h")
    >>> values = stream.update(timestamp, open_, high, low, close, volume)  # doctest: +SKIP
    >>> values["rsi"], values["momentum"]  # doctest: +SKIP
    """

    def __init__(
        self, config: ArbiterInputConfig | None = None, *, interval: str | pd.Timedelta = "1h"
    ) -> None:
        from qt_backtest.indicators import streaming

        self.config = ArbiterInputConfig() if config is None else config
        self._bar = parse_interval(interval)
        self._lag = self.config.momentum_lag(self._bar)
        self._rsi = streaming.RSI(self.config.rsi_period)
        self._macd = streaming.MACD(
            self.config.macd_fast, self.config.macd_slow, self.config.macd_signal
        )
        self._bands = streaming.BollingerBands(
            self.config.bb_period, self.config.bb_nbdev, self.config.bb_nbdev
        )
        self._volume = streaming.VolumeTrend(self.config.volume_period)
        self._momentum = streaming.ROC(self._lag)
        self._stamps: list[int] = []

    def update(
        self,
        timestamp: pd.Timestamp,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> dict[str, float]:
        """Feed one bar (in time order) and return its six inputs (NaN during warm-up)."""
        stamp = pd.Timestamp(timestamp)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        nanoseconds = stamp.as_unit("ns").value
        if self._stamps and nanoseconds <= self._stamps[-1]:
            raise ValueError(
                f"bars must arrive in time order: {stamp} is not after "
                f"{pd.Timestamp(self._stamps[-1], tz='UTC')}"
            )
        self._stamps = [*self._stamps[-self._lag :], nanoseconds]
        line, signal, _ = self._macd.update(close)
        if self.config.macd_scale == "percent":
            line = line / close * 100.0
            signal = signal / close * 100.0
        momentum = self._momentum.update(close)
        if (
            len(self._stamps) <= self._lag
            or nanoseconds - self._stamps[0] != self._lag * self._bar.value
        ):
            momentum = np.nan
        return {
            "rsi": self._rsi.update(close),
            "macd": line,
            "macd_signal": signal,
            "bb_position": self._bands.update(close).position,
            "volume_trend": self._volume.update(volume),
            "momentum": momentum,
        }
