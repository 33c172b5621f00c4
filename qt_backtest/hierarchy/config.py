"""Configuration of the decision hierarchy (docs/hierarchy.md): frozen, validated dataclasses.

Every number of the rules is a named field here, with the rule's value as its default and
nowhere else. Each field is declared once (:func:`qt_backtest.parameters.param`): its range,
unit, meaning and rule ID drive the validation, the error messages, the packing for the
kernels, the sweep's parameter names and docs/parameters.md.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from qt_backtest.codes import CONSENSUS_LABELS, DEFAULT_MODELS, FIDELITIES, MODES, WIRINGS
from qt_backtest.errors import ConfigError, UnknownParameterError
from qt_backtest.parameters import (
    NOT_A_SCALAR,
    close_matches,
    document_parameters,
    ordered,
    param,
    validate,
)

#: Layer 1 weights, also Meta-V2's own weight table (in this order).
DEFAULT_WEIGHTS = (("xgb", 0.25), ("lgbm", 0.25), ("nhits", 0.30), ("patchtst", 0.20))
MIN_MODELS = 1
MAX_MODELS = 8


def _models(value: Any) -> tuple[str, ...]:
    models = tuple(value)
    if not all(isinstance(model, str) and model for model in models):
        raise ValueError(f"models must be non-empty names, got {models!r}")
    if len(set(models)) != len(models):
        raise ValueError(f"models names a model more than once: {models}")
    if not MIN_MODELS <= len(models) <= MAX_MODELS:
        raise ValueError(
            f"models (the ensemble's voters) must hold {MIN_MODELS} to {MAX_MODELS} names, "
            f"got {len(models)}"
        )
    return models


def _table(name: str, meaning: str) -> Callable[[Any], tuple[tuple[str, float], ...]]:
    """The check of a table of names to numbers >= 0, given as a mapping or as pairs."""

    def check(
        table: Mapping[str, float] | Sequence[tuple[str, float]],
    ) -> tuple[tuple[str, float], ...]:
        items = list(table.items()) if isinstance(table, Mapping) else list(table)
        pairs: list[tuple[str, float]] = []
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise ValueError(f"{name} must map names to numbers, got {item!r}")
            key, number = item
            if (
                isinstance(number, bool)
                or not isinstance(number, numbers.Real)
                or not math.isfinite(number)
            ):
                raise ValueError(f"{name}[{key!r}] ({meaning}) must be a finite number")
            if number < 0:
                raise ValueError(f"{name}[{key!r}] ({meaning}) must be >= 0, got {number}")
            pairs.append((key, float(number)))
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{name} names an entry more than once: {keys}")
        return tuple(pairs)

    return check


def _label_multipliers(table: Any) -> tuple[tuple[str, float], ...]:
    multipliers = dict(_table("label_multipliers", "factor of the label")(table))
    unknown = [label for label in multipliers if label not in CONSENSUS_LABELS]
    if unknown:
        raise ValueError(
            f"label_multipliers has unknown label(s) {unknown}; labels are {CONSENSUS_LABELS}"
        )
    return tuple((label, multipliers.get(label, 1.0)) for label in CONSENSUS_LABELS)


_WEIGHTS_ACCEPT = "model names mapped to weights >= 0"


def weight_pairs(
    weights: Mapping[str, float] | tuple[tuple[str, float], ...],
) -> tuple[tuple[str, float], ...]:
    """A weight table as ``(model, weight)`` pairs in its order (a configuration holds pairs)."""
    return tuple(weights.items()) if isinstance(weights, Mapping) else tuple(weights)


_CONFIDENCE = "confidence"


def _probability(default: float, doc: str, scalar: Any, **more: Any) -> Any:
    """A field holding a number in [0, 1]."""
    return param(default, doc=doc, low=0.0, high=1.0, scalar=scalar, **more)


@document_parameters
@dataclass(frozen=True)
class EnsembleConfig:
    """Layer 1, the weighted vote of the base models (H-ENS-1 to H-ENS-5).

    Consensus labels: with k models agreeing with the ensemble action among N voters,
    ``k >= strong_fraction * N`` is strong and ``k >= split_fraction * N`` split.
    """

    models: tuple[str, ...] = param(
        DEFAULT_MODELS,
        doc="names of the voting models, in vote order",
        kind="other",
        check=_models,
        accepts=f"{MIN_MODELS} to {MAX_MODELS} distinct names",
        scalar=NOT_A_SCALAR,  # the kernels get one column per model
        sweep=False,
        rule="H-ENC-2",
    )
    weights: Mapping[str, float] | tuple[tuple[str, float], ...] = param(
        DEFAULT_WEIGHTS,
        doc="vote weight of each model (not all 0)",
        kind="table",
        check=_table("weights", "the model's vote weight"),
        rule="H-ENS-1",
        accepts=_WEIGHTS_ACCEPT,
        scalar=NOT_A_SCALAR,  # packed as an array in model order
    )
    confidence_cap: float = _probability(
        0.95,
        "upper bound of the ensemble confidence",
        "confidence_cap",
        unit=_CONFIDENCE,
        rule="H-ENS-4",
    )
    no_voter_confidence: float = _probability(
        0.50,
        "confidence of the HOLD given when no model is active",
        "no_voter_confidence",
        unit=_CONFIDENCE,
        rule="H-ENS-5",
    )
    strong_fraction: float = _probability(
        0.75,
        "share of voters that makes a strong consensus",
        "strong_fraction",
        unit="share of voters",
        rule="H-ENS-3",
    )
    split_fraction: float = _probability(
        0.50,
        "share of voters that makes a split consensus (at most strong_fraction)",
        "split_fraction",
        unit="share of voters",
        rule="H-ENS-3",
    )
    label_multipliers: Mapping[str, float] | tuple[tuple[str, float], ...] = param(
        (("unanimous", 1.0), ("strong", 1.0), ("split", 1.0), ("weak", 1.0)),
        doc="factor on the mean confidence per consensus label, before the cap",
        kind="table",
        check=_label_multipliers,
        accepts=f"labels among {', '.join(CONSENSUS_LABELS)} mapped to numbers >= 0",
        scalar="multiplier_{}",
        rule="H-ENS-4",
    )

    def __post_init__(self) -> None:
        validate(self)
        pairs = dict(self.weights)
        unknown = [model for model in pairs if model not in self.models]
        if unknown:
            raise ConfigError(
                f"weights name unknown model(s) {unknown}; models are {self.models}",
                name="weights",
                value=self.weights,
            )
        missing = [model for model in self.models if model not in pairs]
        if missing:
            raise ConfigError(
                f"weights has no vote weight for model(s) {missing}",
                name="weights",
                value=self.weights,
            )
        if sum(pairs.values()) <= 0:
            raise ConfigError(
                "weights (the models' vote weights) must not all be 0",
                name="weights",
                value=self.weights,
            )
        object.__setattr__(self, "weights", tuple((model, pairs[model]) for model in self.models))
        ordered(self, "split_fraction", "strong_fraction")

    def weight_vector(self) -> tuple[float, ...]:
        """Vote weights in model order."""
        return tuple(weight for _, weight in weight_pairs(self.weights))

    def multiplier(self, label: str) -> float:
        return dict(self.label_multipliers)[label]


@document_parameters
@dataclass(frozen=True)
class MetaConfig:
    """Layer 2, the Meta-V2 policy that defers or escalates (H-META-1 to H-META-12)."""

    consensus_threshold: float = _probability(
        0.75,
        "top vote share that defers as strong consensus",
        "consensus_threshold",
        unit="vote share",
        rule="H-META-4",
    )
    disagreement_threshold: float = _probability(
        0.50,
        "disagreement (1 - top vote share) that escalates",
        "disagreement_threshold",
        unit="vote share",
        rule="H-META-6",
    )
    low_confidence_threshold: float = _probability(
        0.55,
        "fallback confidence strictly below which Meta escalates",
        "low_confidence_threshold",
        unit=_CONFIDENCE,
        rule="H-META-7",
    )
    entropy_threshold: float = _probability(
        0.80,
        "normalised entropy of the uncertainty model strictly above which Meta escalates",
        "entropy_threshold",
        unit="normalised entropy",
        rule="H-META-9",
    )
    weights: Mapping[str, float] | tuple[tuple[str, float], ...] = param(
        DEFAULT_WEIGHTS,
        doc="Meta's own weight table, in its accumulation order",
        kind="table",
        check=_table("weights", "the model's weight for Meta"),
        rule="H-META-3",
        accepts=_WEIGHTS_ACCEPT,
        scalar=NOT_A_SCALAR,  # packed as arrays of model positions and weights
    )
    padding_confidence: float = _probability(
        0.50,
        "confidence of the HOLD standing in for a missing model in production",
        "padding_confidence",
        unit=_CONFIDENCE,
        rule="H-META-1",
    )
    regime_volatility: float = param(
        0.5,
        doc="regime volatility feature of the uncertainty model when no regime is known",
        scalar="regime_volatility",
        rule="H-META-11",
    )
    trend_strength: float = param(
        0.0,
        doc="trend strength feature of the uncertainty model when no regime is known",
        scalar="trend_strength",
        rule="H-META-11",
    )

    def __post_init__(self) -> None:
        validate(self)


def _weight(default: float, component: str, rule: str) -> Any:
    return param(
        default,
        doc=f"weight of the {component} component in the score",
        low=0.0,
        scalar=f"{component}_weight",
        rule=rule,
    )


def _positive(default: float, doc: str, scalar: str, unit: str = "", **more: Any) -> Any:
    return param(default, doc=doc, low=0.0, inclusive="high", unit=unit, scalar=scalar, **more)


@document_parameters
@dataclass(frozen=True)
class ArbiterConfig:
    """Layer 3, the technical Arbiter called on escalation (H-ARB-1 to H-ARB-12) and its gate
    (H-GATE-1 to H-GATE-3).

    The score is the weighted sum of five component votes; BUY at score >= the threshold in
    force, SELL at score <= -threshold. BUY/SELL confidence is
    ``min(base_confidence + confidence_slope * |S|, confidence_cap)``; the production HOLD
    confidence ``hold_base + hold_slope * (hold_center - |S|)``; a component's strength beyond
    its level is ``min(factor * |value|, 1)``, for volume ``min((v - offset) / span, 1)``.
    """

    arbiter_threshold: float = _probability(
        0.70,
        "confidence the Arbiter needs to override, the gate",
        "arbiter_threshold",
        unit=_CONFIDENCE,
        rule="H-GATE-1",
    )
    conservative: bool = param(
        True,
        doc="score threshold in force: conservative_threshold (True) or aggressive_threshold",
        kind="bool",
        scalar="score_threshold",
        source="score_threshold",
        rule="H-ARB-8",
    )
    conservative_threshold: float = param(
        0.15,
        doc="conservative score threshold",
        low=0.0,
        inclusive="high",
        unit="score",
        scalar="score_threshold",
        source="score_threshold",
        rule="H-ARB-8",
    )
    aggressive_threshold: float = param(
        0.10,
        doc="non-conservative score threshold",
        low=0.0,
        inclusive="high",
        unit="score",
        scalar="score_threshold",
        source="score_threshold",
        rule="H-ARB-8",
    )
    rsi_weight: float = _weight(0.20, "rsi", "H-ARB-2")
    macd_weight: float = _weight(0.25, "macd", "H-ARB-3")
    bollinger_weight: float = _weight(0.15, "bollinger", "H-ARB-4")
    volume_weight: float = _weight(0.15, "volume", "H-ARB-5")
    momentum_weight: float = _weight(0.25, "momentum", "H-ARB-6")
    rsi_oversold: float = param(
        30.0,
        doc="RSI below which the RSI component votes BUY",
        low=0.0,
        high=100.0,
        unit="RSI points",
        scalar="rsi_oversold",
        rule="H-ARB-2",
    )
    rsi_overbought: float = param(
        70.0,
        doc="RSI above which the RSI component votes SELL",
        low=0.0,
        high=100.0,
        unit="RSI points",
        scalar="rsi_overbought",
        rule="H-ARB-2",
    )
    rsi_strength_span: float = _positive(
        30.0,
        "RSI points beyond the level that make full strength",
        "rsi_strength_span",
        "RSI points",
        rule="H-ARB-2",
    )
    bollinger_lower: float = _probability(
        0.2,
        "Bollinger position below which bands vote BUY",
        "bollinger_lower",
        unit="band position",
        rule="H-ARB-4",
    )
    bollinger_upper: float = _probability(
        0.8,
        "Bollinger position above which bands vote SELL",
        "bollinger_upper",
        unit="band position",
        rule="H-ARB-4",
    )
    volume_spike: float = _positive(
        1.5,
        "volume trend above which volume confirms the MACD direction",
        "volume_spike",
        "volume / its average",
        rule="H-ARB-5",
    )
    volume_strength_offset: float = param(
        1.0,
        doc="volume trend subtracted before scaling volume strength",
        unit="volume / its average",
        scalar="volume_strength_offset",
        rule="H-ARB-5",
    )
    volume_strength_span: float = _positive(
        2.0,
        "volume trend range that makes full strength",
        "volume_strength_span",
        "volume / its average",
        rule="H-ARB-5",
    )
    momentum_threshold: float = _positive(
        0.02,
        "momentum beyond which momentum votes",
        "momentum_threshold",
        "fraction",
        rule="H-ARB-6",
    )
    macd_scale_factor: float = _positive(
        10.0,
        "MACD strength per unit of MACD-signal difference",
        "macd_scale_factor",
        "per MACD unit",
        rule="H-ARB-3",
    )
    momentum_scale_factor: float = _positive(
        10.0,
        "momentum strength per unit of momentum",
        "momentum_scale_factor",
        "per unit of momentum",
        rule="H-ARB-6",
    )
    tag_strength: float = _probability(
        0.5,
        "strength above which a component names the reason",
        "tag_strength",
        unit="strength",
        rule="H-ARB-11",
    )
    base_confidence: float = _probability(
        0.70, "BUY/SELL confidence at score 0", "base_confidence", unit=_CONFIDENCE, rule="H-ARB-9"
    )
    confidence_slope: float = param(
        0.5,
        doc="BUY/SELL confidence gained per unit of |score|",
        unit="confidence per score unit",
        scalar="confidence_slope",
        rule="H-ARB-9",
    )
    confidence_cap: float = _probability(
        0.95,
        "upper bound of the Arbiter's BUY/SELL confidence",
        "arbiter_confidence_cap",
        rule="H-ARB-9",
        unit=_CONFIDENCE,
    )
    hold_base: float = param(
        0.50,
        doc="production HOLD confidence at |score| = hold_center",
        scalar="hold_base",
        rule="H-ARB-10",
    )
    hold_slope: float = param(
        2.0,
        doc="production HOLD confidence gained per unit of |score| below hold_center",
        unit="confidence per score unit",
        scalar="hold_slope",
        rule="H-ARB-10",
    )
    hold_center: float = param(
        0.10,
        doc="|score| at which the production HOLD confidence is hold_base",
        unit="score",
        scalar="hold_center",
        rule="H-ARB-10",
    )
    intended_hold_low: float = _probability(
        0.5,
        "lowest HOLD confidence in the intended fidelity",
        "intended_hold_low",
        unit=_CONFIDENCE,
        rule="H-ARB-10",
    )
    intended_hold_high: float = _probability(
        0.7,
        "highest HOLD confidence in the intended fidelity",
        "intended_hold_high",
        unit=_CONFIDENCE,
        rule="H-ARB-10",
    )
    neutral_rsi: float = param(
        50.0,
        doc="RSI used when it is missing",
        unit="RSI points",
        scalar="neutral_rsi",
        rule="H-ARB-1",
    )
    neutral_macd: float = param(
        0.0, doc="MACD line used when it is missing", scalar="neutral_macd", rule="H-ARB-1"
    )
    neutral_macd_signal: float = param(
        0.0, doc="MACD signal used when it is missing", scalar="neutral_macd_signal", rule="H-ARB-1"
    )
    neutral_bb_position: float = param(
        0.5,
        doc="Bollinger position used when it is missing",
        unit="band position",
        scalar="neutral_bb_position",
        rule="H-ARB-1",
    )
    neutral_volume_trend: float = param(
        1.0,
        doc="volume trend used when it is missing",
        unit="volume / its average",
        scalar="neutral_volume_trend",
        rule="H-ARB-1",
    )
    neutral_momentum: float = param(
        0.0,
        doc="momentum used when it is missing",
        unit="fraction",
        scalar="neutral_momentum",
        rule="H-ARB-1",
    )
    arbiter_may_open: bool = param(
        True,
        doc="the Arbiter may turn a base HOLD into a trade (False is an intended option)",
        kind="bool",
        scalar="arbiter_may_open",
        rule="H-GATE-3",
    )
    wiring: str = param(
        "designed",
        doc="'deployed' reproduces the live glue that breaks the Arbiter's analysis",
        kind="choice",
        choices=WIRINGS,
        scalar="deployed_wiring",
        rule="H-WIRE-1",
    )

    def __post_init__(self) -> None:
        validate(self)
        if not self.rsi_oversold < self.rsi_overbought:
            raise ConfigError(
                "rsi_oversold and rsi_overbought must satisfy 0 <= oversold < overbought <= 100, "
                f"got {self.rsi_oversold} and {self.rsi_overbought}",
                name="rsi_oversold, rsi_overbought",
                value=(self.rsi_oversold, self.rsi_overbought),
            )
        ordered(self, "bollinger_lower", "bollinger_upper")
        ordered(self, "intended_hold_low", "intended_hold_high")

    @property
    def score_threshold(self) -> float:
        """The BUY/SELL score threshold in force (conservative or not)."""
        return self.conservative_threshold if self.conservative else self.aggressive_threshold


#: The configuration sections of :class:`HierarchyConfig`, by field name.
SECTIONS = {"ensemble": EnsembleConfig, "meta": MetaConfig, "arbiter": ArbiterConfig}


@document_parameters
@dataclass(frozen=True)
class HierarchyConfig:
    """The whole hierarchy (H-MODE-1 to H-MODE-3, H-FID-1 to H-FID-7).

    The modes are rollout stages: the ensemble only; Meta on with escalations falling back to
    the ensemble; Meta and Arbiter on (the default, the full design). The ``"intended"``
    fidelity applies the fixes of H-FID-1 to H-FID-7.
    """

    mode: str = param(
        "meta_arbiter",
        doc="rollout stage: which layers run",
        kind="choice",
        choices=MODES,
        scalar="mode",
        rule="H-MODE-1",
    )
    fidelity: str = param(
        "production",
        doc="'production' reproduces the live engine, quirks included; 'intended' fixes them",
        kind="choice",
        choices=FIDELITIES,
        scalar="fidelity",
        rule="H-FID-1 to H-FID-7",
    )
    ensemble: EnsembleConfig = param(
        default_factory=EnsembleConfig,
        doc="the ensemble layer's configuration",
        kind="section",
        section=EnsembleConfig,
        scalar=NOT_A_SCALAR,  # its own fields are packed
    )
    meta: MetaConfig = param(
        default_factory=MetaConfig,
        doc="the meta layer's configuration",
        kind="section",
        section=MetaConfig,
        scalar=NOT_A_SCALAR,  # its own fields are packed
    )
    arbiter: ArbiterConfig = param(
        default_factory=ArbiterConfig,
        doc="the arbiter layer's configuration",
        kind="section",
        section=ArbiterConfig,
        scalar=NOT_A_SCALAR,  # its own fields are packed
    )
    min_trade_confidence: float | None = _probability(
        0.65,
        "confidence a final BUY/SELL needs to trade (None disables the governor)",
        "min_trade_confidence",
        unit=_CONFIDENCE,
        nullable=True,
        rule="H-MODE-3",
    )
    min_active_models: int = param(
        2,
        doc="active models needed for Meta and Arbiter to run",
        kind="int",
        low=1,
        unit="models",
        scalar="min_active_models",
        rule="H-MODE-2",
    )

    def __post_init__(self) -> None:
        validate(self)

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
                raise UnknownParameterError(f"unknown parameter {key!r}", name=key)
        for (part, table), values in entries.items():
            section = self._section(part)
            if not isinstance(getattr(section, table, None), tuple) or table == "models":
                raise ConfigError(f"{part}.{table} is not a table of entries", name=table)
            current = dict(getattr(section, table))
            known = self.models if table == "weights" else tuple(current)
            unknown = [name for name in values if name not in known]
            if unknown:
                kind = "model(s)" if table == "weights" else "entr(y/ies)"
                raise ConfigError(
                    f"{part}.{table}: unknown {kind} {unknown}; use {list(known)}",
                    name=f"{part}.{table}",
                    value=unknown,
                )
            if (part, table) in {(p, t) for p in nested for t in nested[p]}:
                raise ConfigError(f"{part}.{table} given whole and by entry", name=table)
            current.update(values)
            nested.setdefault(part, {})[table] = tuple(current.items())
        _check_names("the hierarchy", top, [f.name for f in fields(self)])
        for part, values in nested.items():
            current = top.get(part, self._section(part))
            _check_names(part, values, [f.name for f in fields(current)])
            top[part] = dataclasses.replace(current, **values)
        return dataclasses.replace(self, **top)

    def _section(self, part: str) -> Any:
        if part not in SECTIONS:
            raise UnknownParameterError(
                f"unknown configuration section {part!r}; sections are {', '.join(SECTIONS)}",
                name=part,
                suggestions=close_matches(part, SECTIONS),
            )
        return getattr(self, part)


def _check_names(owner: str, values: Mapping[str, Any], known: Sequence[str]) -> None:
    """Raise :class:`UnknownParameterError`, with the closest names, for names not known."""
    bad = [name for name in values if name not in known]
    if bad:
        hints = {name: close_matches(name, known) for name in bad}
        hint = "; ".join(f"{n}: did you mean {', '.join(h)}?" for n, h in hints.items() if h)
        raise UnknownParameterError(
            f"{owner} has no parameter(s) {bad}" + (f" ({hint})" if hint else ""),
            name=bad[0],
            suggestions=hints[bad[0]],
        )
