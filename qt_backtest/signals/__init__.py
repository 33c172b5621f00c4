"""Model signals: the per-model votes the hierarchy replays, and their store on disk."""

from qt_backtest.signals.store import (
    ACTION_DTYPE,
    prediction_models,
    read_predictions,
    validate_predictions,
    write_predictions,
)

__all__ = [
    "ACTION_DTYPE",
    "prediction_models",
    "read_predictions",
    "validate_predictions",
    "write_predictions",
]
