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

import numpy as np
import pandas as pd

from qt_backtest import indicators as ind
from qt_backtest.data.validate import validate_ohlcv
from qt_backtest.indicators import defaults
from qt_backtest.indicators._validate import check_period

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


@dataclass(frozen=True)
class FeatureConfig:
    """Windows of the feature set (bars) and the choice of scale-free or live-raw variants.

    The live feature set names the features but not every window; ``volume_ma_ratio`` compares a
    short with a long volume average and ``volume_ratio`` is the bar's volume over the long
    average (the Arbiter's volume trend).
    """

    ema_spans: tuple[int, int, int] = (10, 20, 50)
    rsi_period: int = defaults.RSI_PERIOD
    macd_fast: int = defaults.MACD_FAST
    macd_slow: int = defaults.MACD_SLOW
    macd_signal: int = defaults.MACD_SIGNAL
    bb_period: int = defaults.BB_PERIOD
    bb_nbdev: float = defaults.BB_NBDEV
    volatility_period: int = defaults.VOLATILITY_PERIOD
    momentum_lags: tuple[int, int] = (10, 20)
    volume_short: int = 5
    volume_long: int = defaults.VOLUME_PERIOD
    raw: bool = False

    def __post_init__(self) -> None:
        for span in (*self.ema_spans, *self.momentum_lags):
            check_period(span, "window")
        for name in (
            "rsi_period",
            "macd_fast",
            "macd_slow",
            "bb_period",
            "volatility_period",
            "volume_short",
            "volume_long",
        ):
            check_period(getattr(self, name), name, minimum=2)
        check_period(self.macd_signal, "macd_signal")
        if len(self.ema_spans) != 3 or len(self.momentum_lags) != 2:
            raise ValueError("ema_spans needs three spans and momentum_lags two lags")
        if not isinstance(self.raw, bool):
            raise ValueError("raw must be True or False")


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
