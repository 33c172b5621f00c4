"""A :class:`HierarchyConfig` packed into plain arrays for the Numba replay kernel.

The scalar parameters form one float64 vector whose positions are the constants below, so that
a sweep can hold one vector per parameter combination. Per-model weights travel as arrays.
Which field fills which slot is part of each field's declaration (its ``scalar``, see
:mod:`qt_backtest.parameters`); the order of the slots is :data:`SCALARS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qt_backtest.hierarchy.config import HierarchyConfig, weight_pairs
from qt_backtest.parameters import kernel_scalars

# positions in the scalar parameter vector
SCALARS = (
    # hierarchy
    "mode",  # index into MODES
    "fidelity",  # index into FIDELITIES
    "min_trade_confidence",  # NaN: disabled
    "min_active_models",
    # ensemble
    "confidence_cap",
    "no_voter_confidence",
    "strong_fraction",
    "split_fraction",
    "multiplier_unanimous",
    "multiplier_strong",
    "multiplier_split",
    "multiplier_weak",
    # meta
    "consensus_threshold",
    "disagreement_threshold",
    "low_confidence_threshold",
    "entropy_threshold",
    "padding_confidence",
    "regime_volatility",
    "trend_strength",
    "uncertainty_model",  # 1.0 when coefficients are given
    # arbiter
    "arbiter_threshold",
    "score_threshold",
    "rsi_weight",
    "macd_weight",
    "bollinger_weight",
    "volume_weight",
    "momentum_weight",
    "rsi_oversold",
    "rsi_overbought",
    "rsi_strength_span",
    "bollinger_lower",
    "bollinger_upper",
    "volume_spike",
    "volume_strength_offset",
    "volume_strength_span",
    "momentum_threshold",
    "macd_scale_factor",
    "momentum_scale_factor",
    "tag_strength",
    "base_confidence",
    "confidence_slope",
    "arbiter_confidence_cap",
    "hold_base",
    "hold_slope",
    "hold_center",
    "intended_hold_low",
    "intended_hold_high",
    "neutral_rsi",
    "neutral_macd",
    "neutral_macd_signal",
    "neutral_bb_position",
    "neutral_volume_trend",
    "neutral_momentum",
    "arbiter_may_open",
    "deployed_wiring",
)
INDEX = {name: position for position, name in enumerate(SCALARS)}

# the kernel reads positions as module constants
P_MODE = INDEX["mode"]
P_FIDELITY = INDEX["fidelity"]
P_MIN_TRADE_CONFIDENCE = INDEX["min_trade_confidence"]
P_MIN_ACTIVE = INDEX["min_active_models"]
P_CAP = INDEX["confidence_cap"]
P_NO_VOTER_CONFIDENCE = INDEX["no_voter_confidence"]
P_STRONG = INDEX["strong_fraction"]
P_SPLIT = INDEX["split_fraction"]
P_MULTIPLIER = INDEX["multiplier_unanimous"]  # four in CONSENSUS_LABELS order
P_CONSENSUS = INDEX["consensus_threshold"]
P_DISAGREEMENT = INDEX["disagreement_threshold"]
P_LOW_CONFIDENCE = INDEX["low_confidence_threshold"]
P_ENTROPY = INDEX["entropy_threshold"]
P_PADDING = INDEX["padding_confidence"]
P_REGIME_VOLATILITY = INDEX["regime_volatility"]
P_TREND_STRENGTH = INDEX["trend_strength"]
P_UNCERTAINTY = INDEX["uncertainty_model"]
P_GATE = INDEX["arbiter_threshold"]
P_SCORE = INDEX["score_threshold"]
P_WEIGHTS = INDEX["rsi_weight"]  # five: rsi, macd, bollinger, volume, momentum
P_RSI_LOW = INDEX["rsi_oversold"]
P_RSI_HIGH = INDEX["rsi_overbought"]
P_RSI_SPAN = INDEX["rsi_strength_span"]
P_BB_LOW = INDEX["bollinger_lower"]
P_BB_HIGH = INDEX["bollinger_upper"]
P_VOLUME_SPIKE = INDEX["volume_spike"]
P_VOLUME_OFFSET = INDEX["volume_strength_offset"]
P_VOLUME_SPAN = INDEX["volume_strength_span"]
P_MOMENTUM = INDEX["momentum_threshold"]
P_MACD_FACTOR = INDEX["macd_scale_factor"]
P_MOMENTUM_FACTOR = INDEX["momentum_scale_factor"]
P_TAG = INDEX["tag_strength"]
P_BASE_CONFIDENCE = INDEX["base_confidence"]
P_SLOPE = INDEX["confidence_slope"]
P_ARBITER_CAP = INDEX["arbiter_confidence_cap"]
P_HOLD_BASE = INDEX["hold_base"]
P_HOLD_SLOPE = INDEX["hold_slope"]
P_HOLD_CENTER = INDEX["hold_center"]
P_INTENDED_LOW = INDEX["intended_hold_low"]
P_INTENDED_HIGH = INDEX["intended_hold_high"]
P_NEUTRAL = INDEX["neutral_rsi"]  # six, in ARBITER_INPUT_COLUMNS order
P_MAY_OPEN = INDEX["arbiter_may_open"]
P_DEPLOYED = INDEX["deployed_wiring"]


@dataclass(frozen=True)
class PackedConfig:
    """Kernel inputs derived from a configuration.

    Attributes
    ----------
    scalars : ndarray, shape (len(SCALARS),)
    weights : ndarray, shape (models,)
        Layer 1 vote weights in model order.
    meta_models : ndarray of int64, shape (k,)
        Model positions of Meta's weight table, in its accumulation order.
    meta_weights : ndarray, shape (k,)
        The matching Meta weights.
    coef : ndarray, shape (3, features)
        Uncertainty-model coefficients (classes SELL, HOLD, BUY); zeros when unused.
    intercept : ndarray, shape (3,)
    """

    scalars: np.ndarray
    weights: np.ndarray
    meta_models: np.ndarray
    meta_weights: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray


def scalar_values(config: HierarchyConfig, uncertainty_model: Any = None) -> dict[str, float]:
    """The scalar vector's values by slot name, as the configuration's declarations pack them
    (see :func:`qt_backtest.parameters.kernel_scalars`).

    Raises
    ------
    ValueError
        If the declarations leave a slot of :data:`SCALARS` empty or fill one it does not have
        (a declaration out of step with the kernels).
    """
    values = {"uncertainty_model": 0.0 if uncertainty_model is None else 1.0}
    for section in (config, config.ensemble, config.meta, config.arbiter):
        for name, value in kernel_scalars(section).items():
            if name in values:
                raise ValueError(f"two declarations fill the kernel scalar {name!r}")
            values[name] = value
    missing = [name for name in SCALARS if name not in values]
    extra = [name for name in values if name not in INDEX]
    if missing or extra:
        raise ValueError(
            f"the configuration's declarations do not match the kernel scalars: no value for "
            f"{missing}, no slot for {extra}"
        )
    return values


def pack(config: HierarchyConfig, uncertainty_model=None) -> PackedConfig:
    """Pack ``config`` (and a fitted uncertainty model, if any) for the kernel."""
    e, m = config.ensemble, config.meta
    values = scalar_values(config, uncertainty_model)
    scalars = np.array([float(values[name]) for name in SCALARS])
    models = config.models
    table = [
        (models.index(model), weight)
        for model, weight in weight_pairs(m.weights)
        if model in models
    ]
    features = 4 * len(models) + 10
    if uncertainty_model is None:
        coef, intercept = np.zeros((3, features)), np.zeros(3)
    else:
        coef = np.asarray(uncertainty_model.coef_, dtype=float)
        intercept = np.asarray(uncertainty_model.intercept_, dtype=float)
        if coef.shape != (3, features):
            raise ValueError(
                f"the uncertainty model has coefficients of shape {coef.shape}; {len(models)} "
                f"models need (3, {features})"
            )
    return PackedConfig(
        scalars=scalars,
        weights=np.array(e.weight_vector()),
        meta_models=np.array([index for index, _ in table], dtype=np.int64),
        meta_weights=np.array([weight for _, weight in table], dtype=float),
        coef=np.ascontiguousarray(coef),
        intercept=np.ascontiguousarray(intercept),
    )
