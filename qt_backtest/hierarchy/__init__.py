"""The decision hierarchy: configuration, reference agents, the vectorised replay and rates."""

from qt_backtest.hierarchy.actions import ACTION_CODES, ACTION_NAMES, BUY, HOLD, SELL
from qt_backtest.hierarchy.config import (
    DEFAULT_MODELS,
    DEFAULT_WEIGHTS,
    ArbiterConfig,
    EnsembleConfig,
    HierarchyConfig,
    MetaConfig,
)
from qt_backtest.hierarchy.rates import RateTargets, decision_rates, rolling_rates
from qt_backtest.hierarchy.reference import Arbiter, EnsembleVoter, HierarchyEngine, MetaPolicy
from qt_backtest.hierarchy.replay import replay, replay_arrays
from qt_backtest.hierarchy.uncertainty import (
    MetaUncertaintyModel,
    fit_uncertainty_model,
    meta_feature_matrix,
    meta_features,
)

__all__ = [
    "ACTION_CODES",
    "ACTION_NAMES",
    "BUY",
    "DEFAULT_MODELS",
    "DEFAULT_WEIGHTS",
    "HOLD",
    "SELL",
    "Arbiter",
    "ArbiterConfig",
    "EnsembleConfig",
    "EnsembleVoter",
    "HierarchyConfig",
    "HierarchyEngine",
    "MetaConfig",
    "MetaPolicy",
    "MetaUncertaintyModel",
    "RateTargets",
    "decision_rates",
    "fit_uncertainty_model",
    "meta_feature_matrix",
    "meta_features",
    "replay",
    "replay_arrays",
    "rolling_rates",
]
