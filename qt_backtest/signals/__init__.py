"""Model signals: features and labels of the base models, leak-free walk-forward training, and
the store of the per-model votes the hierarchy replays."""

from qt_backtest.signals.features import FEATURES, UNITS, FeatureConfig, build_features
from qt_backtest.signals.labels import CLASS_NAMES, forward_return, make_labels
from qt_backtest.signals.models import (
    MODEL_SLOTS,
    ModelSlot,
    balanced_weights,
    estimator_slot,
    make_model,
    walk_forward_many,
    walk_forward_predict,
)
from qt_backtest.signals.store import (
    ACTION_DTYPE,
    prediction_models,
    read_predictions,
    validate_predictions,
    votes_from_walk_forward,
    write_predictions,
)
from qt_backtest.signals.walkforward import Fold, WalkForward

__all__ = [
    "ACTION_DTYPE",
    "CLASS_NAMES",
    "FEATURES",
    "MODEL_SLOTS",
    "UNITS",
    "FeatureConfig",
    "Fold",
    "ModelSlot",
    "WalkForward",
    "balanced_weights",
    "build_features",
    "estimator_slot",
    "forward_return",
    "make_labels",
    "make_model",
    "prediction_models",
    "read_predictions",
    "validate_predictions",
    "votes_from_walk_forward",
    "walk_forward_many",
    "walk_forward_predict",
    "write_predictions",
]
