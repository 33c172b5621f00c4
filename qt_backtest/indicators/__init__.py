"""Indicator core: Numba kernels (:mod:`.nb`), a pandas layer (this module), streaming forms
(:mod:`.streaming`) and the Arbiter's inputs (:func:`arbiter_inputs`)."""

from qt_backtest.indicators import streaming
from qt_backtest.indicators.api import (
    BollingerResult,
    MACDResult,
    atr,
    bollinger_bands,
    ema,
    macd,
    realized_volatility,
    roc,
    rolling_std,
    rsi,
    sma,
    volume_trend,
)
from qt_backtest.indicators.arbiter_inputs import (
    ARBITER_INPUT_COLUMNS,
    ArbiterInputConfig,
    ArbiterInputStream,
    arbiter_inputs,
)

__all__ = [
    "ARBITER_INPUT_COLUMNS",
    "ArbiterInputConfig",
    "ArbiterInputStream",
    "BollingerResult",
    "MACDResult",
    "arbiter_inputs",
    "atr",
    "bollinger_bands",
    "ema",
    "macd",
    "realized_volatility",
    "roc",
    "rolling_std",
    "rsi",
    "sma",
    "streaming",
    "volume_trend",
]
