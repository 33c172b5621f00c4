"""Action encoding shared by every layer: SELL = -1, HOLD = 0, BUY = +1 (H-ENC-1).

The codes and their conversions live in :mod:`qt_backtest.codes`; this module names them for
the hierarchy."""

from __future__ import annotations

from qt_backtest.codes import (
    ACTION_CODES,
    ACTION_NAMES,
    BUY,
    HOLD,
    SELL,
    action_code,
    action_name,
    encode_actions,
)

__all__ = [
    "ACTION_CODES",
    "ACTION_NAMES",
    "BUY",
    "HOLD",
    "SELL",
    "action_code",
    "action_name",
    "encode_actions",
]
