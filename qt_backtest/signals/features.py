"""The base models' 18 input features (I-FEAT-1 to I-FEAT-3), computed from OHLCV bars with
the indicator core.

Each feature is defined once, below, with its unit. By default every feature is scale-free
(fractions, ratios or RSI points), so that a model trained on one price level or asset applies
to another. ``FeatureConfig(raw=True)`` gives the live training code's variants instead: EMA
levels in price units, MACD in price units, EMA crosses as booleans (0/1) and Bollinger bands
from the sample standard deviation.

Features at bar t use bars up to t only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest import indicators as ind
from qt_backtest.data.validate import validate_ohlcv
from qt_backtest.indicators import defaults
from qt_backtest.parameters import document_parameters, param, validate

FEATURES = (
    "price_change",
    "high_low_range",
    "volume_change",
    "volume_ma_ratio",
    "ema_10",
    "ema_20",
    "ema_50",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_position",
    "volatility_20",
    "momentum_10",
    "momentum_20",
    "ema_10_20_cross",
    "ema_10_50_cross",
    "volume_ratio",
)

#: Unit of each feature in the default (scale-free) form.
UNITS = {
    "price_change": "fraction: close / previous close - 1",
    "high_low_range": "fraction of close: (high - low) / close",
    "volume_change": "fraction: volume / previous volume - 1 (NaN after a zero-volume bar)",
    "volume_ma_ratio": "ratio: SMA(volume, short) / SMA(volume, long)",
    "ema_10": "fraction: close / EMA(10) - 1",
    "ema_20": "fraction: close / EMA(20) - 1",
    "ema_50": "fraction: close / EMA(50) - 1",
    "rsi_14": "RSI points in [0, 100]",
    "macd": "fraction of close: MACD line / close",
    "macd_signal": "fraction of close: MACD signal / close",
    "macd_hist": "fraction of close: MACD histogram / close",
    "bb_position": "position in the Bollinger bands: 0 lower band, 1 upper band",
    "volatility_20": "fraction: sample std of close over 20 bars / close",
    "momentum_10": "fraction: close / close 10 bars earlier - 1",
    "momentum_20": "fraction: close / close 20 bars earlier - 1",
    "ema_10_20_cross": "fraction: EMA(10) / EMA(20) - 1 (raw: 1 if EMA(10) > EMA(20) else 0)",
    "ema_10_50_cross": "fraction: EMA(10) / EMA(50) - 1 (raw: 1 if EMA(10) > EMA(50) else 0)",
    "volume_ratio": "ratio: volume / SMA(volume, long), 1.0 when that average is 0",
}


def _spans(count: int, name: str) -> Any:
    """The check of a tuple of ``count`` windows of at least one bar."""

    def check(value: Any) -> tuple[int, ...]:
        spans = tuple(value)
        if len(spans) != count or not all(
            isinstance(span, int) and not isinstance(span, bool) and span >= 1 for span in spans
        ):
            raise ValueError(f"{name} needs {count} windows of at least 1 bar, got {value!r}")
        return spans

    return check


def _window(default: int, doc: str, low: int = 2) -> Any:
    return param(default, doc=doc, kind="int", low=low, unit="bars", rule="I-FEAT-2")


@document_parameters
@dataclass(frozen=True)
class FeatureConfig:
    """Windows of the feature set (bars) and the choice of scale-free or live-raw variants.

    The live feature set names the features but not every window; ``volume_ma_ratio`` compares a
    short with a long volume average and ``volume_ratio`` is the bar's volume over the long
    average (the Arbiter's volume trend).
    """

    ema_spans: tuple[int, int, int] = param(
        (10, 20, 50),
        doc="spans of the three EMAs",
        kind="other",
        check=_spans(3, "ema_spans"),
        accepts="three integers >= 1",
        unit="bars",
        rule="I-FEAT-2",
    )
    rsi_period: int = _window(defaults.RSI_PERIOD, "RSI window")
    macd_fast: int = _window(defaults.MACD_FAST, "fast MACD EMA span")
    macd_slow: int = _window(defaults.MACD_SLOW, "slow MACD EMA span")
    macd_signal: int = _window(defaults.MACD_SIGNAL, "MACD signal EMA span", low=1)
    bb_period: int = _window(defaults.BB_PERIOD, "Bollinger window")
    bb_nbdev: float = param(
        defaults.BB_NBDEV,
        doc="Bollinger band distance",
        low=0.0,
        unit="standard deviations",
        rule="I-FEAT-2",
    )
    volatility_period: int = _window(defaults.VOLATILITY_PERIOD, "volatility window")
    momentum_lags: tuple[int, int] = param(
        (10, 20),
        doc="lags of the two momentum features",
        kind="other",
        check=_spans(2, "momentum_lags"),
        accepts="two integers >= 1",
        unit="bars",
        rule="I-FEAT-2",
    )
    volume_short: int = _window(5, "short volume average window")
    volume_long: int = _window(defaults.VOLUME_PERIOD, "long volume average window")
    raw: bool = param(
        False, doc="the live training code's raw variants", kind="bool", rule="I-FEAT-3"
    )

    def __post_init__(self) -> None:
        validate(self)


def _features_one(frame: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    validate_ohlcv(frame, source=frame.attrs.get("source"), check_interval=False)
    close = frame["close"].astype(np.float64)
    high = frame["high"].astype(np.float64)
    low = frame["low"].astype(np.float64)
    volume = frame["volume"].astype(np.float64)
    short, middle, long = (ind.ema(close, span) for span in config.ema_spans)
    macd = ind.macd(close, config.macd_fast, config.macd_slow, config.macd_signal)
    if config.raw:
        std = ind.rolling_std(close, config.bb_period, ddof=1)
        mean = ind.sma(close, config.bb_period)
        upper = mean + config.bb_nbdev * std
        lower = mean - config.bb_nbdev * std
        width = upper - lower
        bb_position = ((close - lower) / width).where(width > 0, 0.5).where(width.notna())
    else:
        bb_position = ind.bollinger_bands(close, config.bb_period, config.bb_nbdev).position
    volume_short = ind.sma(volume, config.volume_short)
    volume_long = ind.sma(volume, config.volume_long)
    columns = {
        "price_change": ind.roc(close, 1),
        "high_low_range": (high - low) / close,
        "volume_change": ind.roc(volume, 1),
        "volume_ma_ratio": (volume_short / volume_long)
        .where(volume_long != 0, 1.0)
        .where(volume_long.notna() & volume_short.notna()),
        "rsi_14": ind.rsi(close, config.rsi_period),
        "bb_position": bb_position,
        "volatility_20": ind.rolling_std(close, config.volatility_period, ddof=1) / close,
        "momentum_10": ind.roc(close, config.momentum_lags[0]),
        "momentum_20": ind.roc(close, config.momentum_lags[1]),
        "volume_ratio": ind.volume_trend(volume, config.volume_long),
    }
    if config.raw:
        columns.update(
            ema_10=short,
            ema_20=middle,
            ema_50=long,
            macd=macd.macd,
            macd_signal=macd.signal,
            macd_hist=macd.hist,
            ema_10_20_cross=(short > middle).astype(float).where(middle.notna()),
            ema_10_50_cross=(short > long).astype(float).where(long.notna()),
        )
    else:
        columns.update(
            ema_10=close / short - 1.0,
            ema_20=close / middle - 1.0,
            ema_50=close / long - 1.0,
            macd=macd.macd / close,
            macd_signal=macd.signal / close,
            macd_hist=macd.hist / close,
            ema_10_20_cross=short / middle - 1.0,
            ema_10_50_cross=short / long - 1.0,
        )
    return pd.DataFrame({name: columns[name] for name in FEATURES}, index=frame.index)


def build_features(
    ohlcv: pd.DataFrame | Mapping[str, pd.DataFrame], config: FeatureConfig | None = None
) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """The 18 features for one OHLCV frame, or per symbol for ``{symbol: frame}``.

    Returns a frame indexed like the bars with the columns :data:`FEATURES` (NaN during each
    feature's warm-up). Symbols are computed separately, never across two series' seam.
    """
    config = config or FeatureConfig()
    if isinstance(ohlcv, Mapping):
        return {symbol: _features_one(frame, config) for symbol, frame in ohlcv.items()}
    return _features_one(ohlcv, config)
