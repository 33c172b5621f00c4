"""Configuration of the decision hierarchy (SPEC §1-4, §7): frozen, validated dataclasses.

Every number of the specification is a named field here, with the specification's value as its
default and nowhere else. Construction validates ranges and says what a parameter means.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from qt_backtest.codes import CONSENSUS_LABELS, DEFAULT_MODELS, FIDELITIES, MODES, WIRINGS

#: Layer 1 weights, also Meta-V2's own weight table (in this order).
DEFAULT_WEIGHTS = (("xgb", 0.25), ("lgbm", 0.25), ("nhits", 0.30), ("patchtst", 0.20))
MIN_MODELS = 1
MAX_MODELS = 8


def _number(value: Any, name: str, meaning: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} ({meaning}) must be a finite number, got {value!r}")
    return float(value)


def _probability(value: Any, name: str, meaning: str) -> float:
    value = _number(value, name, meaning)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} ({meaning}) must be in [0, 1], got {value}")
    return value


def _positive(value: Any, name: str, meaning: str) -> float:
    value = _number(value, name, meaning)
    if value <= 0.0:
        raise ValueError(f"{name} ({meaning}) must be > 0, got {value}")
    return value


def _set(instance: Any, name: str, value: Any) -> None:
    object.__setattr__(instance, name, value)


def _weight_pairs(
    weights: Mapping[str, float] | Sequence[tuple[str, float]], name: str
) -> tuple[tuple[str, float], ...]:
    items = list(weights.items()) if isinstance(weights, Mapping) else list(weights)
    pairs = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"{name} must map model names to weights, got {item!r}")
        model, weight = item
        weight = _number(weight, f"{name}[{model!r}]", "the model's vote weight")
        if weight < 0:
            raise ValueError(
                f"{name}[{model!r}] (the model's vote weight) must be >= 0, got {weight}"
            )
        pairs.append((model, weight))
    names = [model for model, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"{name} names a model more than once: {names}")
    return tuple(pairs)


@dataclass(frozen=True)
class EnsembleConfig:
    """Layer 1, the weighted vote of the base models (SPEC §1).

    Parameters
    ----------
    models : sequence of str
        Model names in vote order (1 to 8).
    weights : mapping or sequence of (name, weight)
        Vote weight of each model (>= 0, not all 0); models not listed get no default.
    confidence_cap : float
        Upper bound of the ensemble confidence (0.95).
    no_voter_confidence : float
        Confidence of the HOLD given when no model is active (0.50).
    strong_fraction, split_fraction : float
        Consensus labels: ``k >= strong_fraction * N`` is strong, ``k >= split_fraction * N``
        split (k models agree with the ensemble action, N voters).
    label_multipliers : mapping of label to float
        Per consensus label, a factor on the mean confidence before the cap (1.0 each).
    """

    models: tuple[str, ...] = DEFAULT_MODELS
    weights: Mapping[str, float] | tuple[tuple[str, float], ...] = DEFAULT_WEIGHTS
    confidence_cap: float = 0.95
    no_voter_confidence: float = 0.50
    strong_fraction: float = 0.75
    split_fraction: float = 0.50
    label_multipliers: Mapping[str, float] | tuple[tuple[str, float], ...] = (
        ("unanimous", 1.0),
        ("strong", 1.0),
        ("split", 1.0),
        ("weak", 1.0),
    )

    def __post_init__(self) -> None:
        models = tuple(self.models)
        if not all(isinstance(model, str) and model for model in models):
            raise ValueError(f"models must be non-empty names, got {models!r}")
        if len(set(models)) != len(models):
            raise ValueError(f"models names a model more than once: {models}")
        if not MIN_MODELS <= len(models) <= MAX_MODELS:
            raise ValueError(
                f"models (the ensemble's voters) must hold {MIN_MODELS} to {MAX_MODELS} names, "
                f"got {len(models)}"
            )
        pairs = dict(_weight_pairs(self.weights, "weights"))
        unknown = [model for model in pairs if model not in models]
        if unknown:
            raise ValueError(f"weights name unknown model(s) {unknown}; models are {models}")
        missing = [model for model in models if model not in pairs]
        if missing:
            raise ValueError(f"weights has no vote weight for model(s) {missing}")
        if sum(pairs.values()) <= 0:
            raise ValueError("weights (the models' vote weights) must not all be 0")
        _set(self, "models", models)
        _set(self, "weights", tuple((model, pairs[model]) for model in models))
        _set(
            self,
            "confidence_cap",
            _probability(
                self.confidence_cap, "confidence_cap", "upper bound of the ensemble confidence"
            ),
        )
        _set(
            self,
            "no_voter_confidence",
            _probability(
                self.no_voter_confidence,
                "no_voter_confidence",
                "confidence of the HOLD given when no model is active",
            ),
        )
        strong = _probability(
            self.strong_fraction, "strong_fraction", "share of voters that makes a strong consensus"
        )
        split = _probability(
            self.split_fraction, "split_fraction", "share of voters that makes a split consensus"
        )
        if split > strong:
            raise ValueError(f"split_fraction ({split}) must not exceed strong_fraction ({strong})")
        _set(self, "strong_fraction", strong)
        _set(self, "split_fraction", split)
        multipliers = dict(_weight_pairs(self.label_multipliers, "label_multipliers"))
        unknown = [label for label in multipliers if label not in CONSENSUS_LABELS]
        if unknown:
            raise ValueError(
                f"label_multipliers has unknown label(s) {unknown}; labels are {CONSENSUS_LABELS}"
            )
        _set(
            self,
            "label_multipliers",
            tuple((label, multipliers.get(label, 1.0)) for label in CONSENSUS_LABELS),
        )

    def weight_vector(self) -> tuple[float, ...]:
        """Vote weights in model order."""
        return tuple(weight for _, weight in self.weights)

    def multiplier(self, label: str) -> float:
        return dict(self.label_multipliers)[label]


@dataclass(frozen=True)
class MetaConfig:
    """Layer 2, the Meta-V2 policy that defers or escalates (SPEC §2).

    Parameters
    ----------
    consensus_threshold : float
        Rule 1: a top vote share at or above it defers (strong consensus), 0.75.
    disagreement_threshold : float
        Rule 3: ``1 - top share`` at or above it escalates, 0.50.
    low_confidence_threshold : float
        Rule 4: a fallback confidence strictly below it escalates, 0.55.
    entropy_threshold : float
        Rule 6: normalised entropy of the uncertainty model strictly above it escalates, 0.80.
    weights : mapping or sequence of (name, weight)
        Meta's own weight table, in its accumulation order (same defaults as Layer 1).
    padding_confidence : float
        Confidence of the HOLD that stands in for a missing model in production, 0.50.
    regime_volatility, trend_strength : float
        Regime features of the uncertainty model when no regime is known (0.5 and 0.0).
    """

    consensus_threshold: float = 0.75
    disagreement_threshold: float = 0.50
    low_confidence_threshold: float = 0.55
    entropy_threshold: float = 0.80
    weights: Mapping[str, float] | tuple[tuple[str, float], ...] = DEFAULT_WEIGHTS
    padding_confidence: float = 0.50
    regime_volatility: float = 0.5
    trend_strength: float = 0.0

    def __post_init__(self) -> None:
        meanings = {
            "consensus_threshold": "top vote share that defers as strong consensus",
            "disagreement_threshold": "disagreement (1 - top vote share) that escalates",
            "low_confidence_threshold": "ensemble confidence below which Meta escalates",
            "entropy_threshold": "normalised entropy above which Meta escalates",
            "padding_confidence": "confidence of the HOLD standing in for a missing model",
        }
        for name, meaning in meanings.items():
            _set(self, name, _probability(getattr(self, name), name, meaning))
        _set(self, "weights", _weight_pairs(self.weights, "weights"))
        _set(
            self,
            "regime_volatility",
            _number(
                self.regime_volatility, "regime_volatility", "uncertainty-model regime volatility"
            ),
        )
        _set(
            self,
            "trend_strength",
            _number(self.trend_strength, "trend_strength", "uncertainty-model trend strength"),
        )


@dataclass(frozen=True)
class ArbiterConfig:
    """Layer 3, the technical Arbiter called on escalation (SPEC §3).

    Parameters
    ----------
    arbiter_threshold : float
        The gate: the Arbiter overrides when its confidence is at least this (0.70).
    conservative : bool
        Score thresholds ``conservative_threshold`` (True, the default) or
        ``aggressive_threshold``.
    conservative_threshold, aggressive_threshold : float
        BUY at score >= threshold, SELL at score <= -threshold (0.15 and 0.10).
    rsi_weight, macd_weight, bollinger_weight, volume_weight, momentum_weight : float
        Component weights of the score (0.20, 0.25, 0.15, 0.15, 0.25).
    rsi_oversold, rsi_overbought : float
        RSI levels (30, 70) beyond which the RSI component votes.
    rsi_strength_span : float
        RSI points beyond the level that make strength 1 (30).
    bollinger_lower, bollinger_upper : float
        Bollinger positions (0.2, 0.8) beyond which the band component votes.
    volume_spike : float
        Volume trend above which volume confirms the MACD direction (1.5).
    volume_strength_offset, volume_strength_span : float
        Volume strength ``min((v - offset) / span, 1)`` (1.0, 2.0).
    momentum_threshold : float
        Momentum (fraction) beyond which momentum votes (0.02).
    macd_scale_factor, momentum_scale_factor : float
        Strength = min(factor * |value|, 1) for MACD difference and momentum (10, 10).
    tag_strength : float
        A component's strength above which it names the reason (0.5).
    base_confidence, confidence_slope, confidence_cap : float
        BUY/SELL confidence ``min(base + slope * |S|, cap)`` (0.70, 0.5, 0.95).
    hold_base, hold_slope, hold_center : float
        Production HOLD confidence ``hold_base + hold_slope * (hold_center - |S|)``
        (0.50, 2, 0.10).
    intended_hold_low, intended_hold_high : float
        Intended-fidelity HOLD confidence range (0.5, 0.7).
    neutral_rsi, neutral_macd, neutral_macd_signal, neutral_bb_position, neutral_volume_trend,
    neutral_momentum : float
        Values used for a missing indicator (50, 0, 0, 0.5, 1.0, 0.0).
    arbiter_may_open : bool
        With False the Arbiter cannot turn a base HOLD into a trade (SPEC §7.5).
    wiring : {"designed", "deployed"}
        ``"deployed"`` reproduces the live glue that breaks the Arbiter's analysis (SPEC §7).
    """

    arbiter_threshold: float = 0.70
    conservative: bool = True
    conservative_threshold: float = 0.15
    aggressive_threshold: float = 0.10
    rsi_weight: float = 0.20
    macd_weight: float = 0.25
    bollinger_weight: float = 0.15
    volume_weight: float = 0.15
    momentum_weight: float = 0.25
    rsi_oversold: float = 30.0
    rsi_overbought: float = 70.0
    rsi_strength_span: float = 30.0
    bollinger_lower: float = 0.2
    bollinger_upper: float = 0.8
    volume_spike: float = 1.5
    volume_strength_offset: float = 1.0
    volume_strength_span: float = 2.0
    momentum_threshold: float = 0.02
    macd_scale_factor: float = 10.0
    momentum_scale_factor: float = 10.0
    tag_strength: float = 0.5
    base_confidence: float = 0.70
    confidence_slope: float = 0.5
    confidence_cap: float = 0.95
    hold_base: float = 0.50
    hold_slope: float = 2.0
    hold_center: float = 0.10
    intended_hold_low: float = 0.5
    intended_hold_high: float = 0.7
    neutral_rsi: float = 50.0
    neutral_macd: float = 0.0
    neutral_macd_signal: float = 0.0
    neutral_bb_position: float = 0.5
    neutral_volume_trend: float = 1.0
    neutral_momentum: float = 0.0
    arbiter_may_open: bool = True
    wiring: str = "designed"

    def __post_init__(self) -> None:
        probabilities = {
            "arbiter_threshold": "confidence the Arbiter needs to override",
            "base_confidence": "BUY/SELL confidence at score 0",
            "confidence_cap": "upper bound of the Arbiter's BUY/SELL confidence",
            "tag_strength": "strength above which a component names the reason",
            "intended_hold_low": "lowest intended HOLD confidence",
            "intended_hold_high": "highest intended HOLD confidence",
            "bollinger_lower": "Bollinger position below which bands vote BUY",
            "bollinger_upper": "Bollinger position above which bands vote SELL",
        }
        for name, meaning in probabilities.items():
            _set(self, name, _probability(getattr(self, name), name, meaning))
        positives = {
            "conservative_threshold": "conservative score threshold",
            "aggressive_threshold": "non-conservative score threshold",
            "volume_spike": "volume trend that counts as a spike",
            "momentum_threshold": "momentum (fraction) that counts",
            "macd_scale_factor": "MACD strength per unit of difference",
            "momentum_scale_factor": "momentum strength per unit of momentum",
            "rsi_strength_span": "RSI points that make full strength",
            "volume_strength_span": "volume trend range that makes full strength",
        }
        for name, meaning in positives.items():
            _set(self, name, _positive(getattr(self, name), name, meaning))
        for name in (
            "rsi_weight",
            "macd_weight",
            "bollinger_weight",
            "volume_weight",
            "momentum_weight",
        ):
            value = _number(getattr(self, name), name, "component weight of the score")
            if value < 0:
                raise ValueError(f"{name} (component weight of the score) must be >= 0")
            _set(self, name, value)
        others = (
            "rsi_oversold",
            "rsi_overbought",
            "volume_strength_offset",
            "confidence_slope",
            "hold_base",
            "hold_slope",
            "hold_center",
            "neutral_rsi",
            "neutral_macd",
            "neutral_macd_signal",
            "neutral_bb_position",
            "neutral_volume_trend",
            "neutral_momentum",
        )
        for name in others:
            _set(self, name, _number(getattr(self, name), name, "Arbiter parameter"))
        if not 0 <= self.rsi_oversold < self.rsi_overbought <= 100:
            raise ValueError(
                "rsi_oversold and rsi_overbought must satisfy 0 <= oversold < overbought <= 100, "
                f"got {self.rsi_oversold} and {self.rsi_overbought}"
            )
        if self.bollinger_lower > self.bollinger_upper:
            raise ValueError("bollinger_lower must not exceed bollinger_upper")
        if self.intended_hold_low > self.intended_hold_high:
            raise ValueError("intended_hold_low must not exceed intended_hold_high")
        if not isinstance(self.conservative, bool) or not isinstance(self.arbiter_may_open, bool):
            raise ValueError("conservative and arbiter_may_open must be True or False")
        if self.wiring not in WIRINGS:
            raise ValueError(f"wiring must be one of {', '.join(WIRINGS)}, got {self.wiring!r}")

    @property
    def score_threshold(self) -> float:
        """The BUY/SELL score threshold in force (conservative or not)."""
        return self.conservative_threshold if self.conservative else self.aggressive_threshold


@dataclass(frozen=True)
class HierarchyConfig:
    """The whole hierarchy (SPEC §4, §7).

    Parameters
    ----------
    mode : {"ensemble", "meta", "meta_arbiter"}
        Rollout stage: ensemble only; Meta on with escalations falling back to the ensemble;
        Meta and Arbiter on (the default, the full design).
    fidelity : {"production", "intended"}
        ``"production"`` reproduces the live engine, quirks included; ``"intended"`` applies
        the fixes of SPEC §7.
    min_trade_confidence : float or None
        Live risk governor: a final BUY/SELL below this confidence becomes HOLD (0.65);
        None disables it.
    min_active_models : int
        Meta and Arbiter run only when at least this many models are active (2).
    """

    mode: str = "meta_arbiter"
    fidelity: str = "production"
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    arbiter: ArbiterConfig = field(default_factory=ArbiterConfig)
    min_trade_confidence: float | None = 0.65
    min_active_models: int = 2

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.fidelity not in FIDELITIES:
            raise ValueError(
                f"fidelity must be one of {', '.join(FIDELITIES)}, got {self.fidelity!r}"
            )
        for name, kind in (
            ("ensemble", EnsembleConfig),
            ("meta", MetaConfig),
            ("arbiter", ArbiterConfig),
        ):
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"{name} must be an {kind.__name__}")
        if self.min_trade_confidence is not None:
            _set(
                self,
                "min_trade_confidence",
                _probability(
                    self.min_trade_confidence,
                    "min_trade_confidence",
                    "confidence a final BUY/SELL needs to trade (None disables)",
                ),
            )
        if (
            isinstance(self.min_active_models, bool)
            or not isinstance(self.min_active_models, numbers.Integral)
            or self.min_active_models < 1
        ):
            raise ValueError(
                "min_active_models (active models needed for Meta and Arbiter to run) must be "
                f"an integer >= 1, got {self.min_active_models!r}"
            )

    @property
    def models(self) -> tuple[str, ...]:
        return self.ensemble.models

    def replace(self, **changes: Any) -> HierarchyConfig:
        """A copy with some fields changed, named as in a sweep grid: ``"mode"``, nested fields
        as ``"arbiter.arbiter_threshold"``, and one entry of a table as
        ``"ensemble.weights.xgb"`` or ``"ensemble.label_multipliers.strong"``."""
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        entries: dict[tuple[str, str], dict[str, Any]] = {}
        for key, value in changes.items():
            parts = key.split(".")
            if len(parts) == 1:
                top[key] = value
            elif len(parts) == 2:
                nested.setdefault(parts[0], {})[parts[1]] = value
            elif len(parts) == 3:
                entries.setdefault((parts[0], parts[1]), {})[parts[2]] = value
            else:
                raise ValueError(f"unknown parameter {key!r}")
        for (part, table), values in entries.items():
            section = self._section(part)
            if not isinstance(getattr(section, table, None), tuple) or table == "models":
                raise ValueError(f"{part}.{table} is not a table of entries")
            current = dict(getattr(section, table))
            if table == "weights":
                known = self.models
            else:
                known = tuple(current)
            unknown = [name for name in values if name not in known]
            if unknown:
                kind = "model(s)" if table == "weights" else "entr(y/ies)"
                raise ValueError(f"{part}.{table}: unknown {kind} {unknown}; use {list(known)}")
            if (part, table) in {(p, t) for p in nested for t in nested[p]}:
                raise ValueError(f"{part}.{table} given whole and by entry")
            current.update(values)
            nested.setdefault(part, {})[table] = tuple(current.items())
        for part, values in nested.items():
            current = top.get(part, self._section(part))
            known = {f.name for f in fields(current)}
            bad = [name for name in values if name not in known]
            if bad:
                raise ValueError(f"{part} has no parameter(s) {bad}")
            top[part] = _dataclass_replace(current, values)
        return _dataclass_replace(self, top)

    def _section(self, part: str) -> Any:
        if part not in ("ensemble", "meta", "arbiter"):
            raise ValueError(f"unknown configuration section {part!r}")
        return getattr(self, part)


def _dataclass_replace(instance: Any, values: dict[str, Any]) -> Any:
    import dataclasses

    return dataclasses.replace(instance, **values)
