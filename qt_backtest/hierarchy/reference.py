"""Reference agents: the three layers written per step, plainly, from docs/hierarchy.md.

They take and return plain dicts, as the live engine's components do, and keep the live
statistics counters. They are the readable definition the vectorised replay is tested against;
use the replay for history, these for understanding and for one decision at a time.

Predictions are ``{model: {"action": "BUY", "confidence": 0.72, "version": "..."}}``. A model
is active when it is present with a valid action and a finite confidence, and its version tag
(if any) does not contain "insufficient".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

from qt_backtest.hierarchy import reasons
from qt_backtest.hierarchy.actions import BUY, HOLD, SELL, action_code, action_name
from qt_backtest.hierarchy.config import (
    ArbiterConfig,
    EnsembleConfig,
    HierarchyConfig,
    MetaConfig,
    weight_pairs,
)

Prediction = Mapping[str, Any]
Predictions = Mapping[str, Prediction]

# Layer 1 breaks exact ties BUY, then SELL, then HOLD; Meta's fallback SELL, HOLD, BUY.
ENSEMBLE_TIE_ORDER = (BUY, SELL, HOLD)
FALLBACK_TIE_ORDER = (SELL, HOLD, BUY)
# Meta's top-voted action when counts tie (the live engine's counting order)
COUNT_TIE_ORDER = (BUY, SELL, HOLD)


def _argmax(values: Mapping[int, float], order: tuple[int, ...]) -> int:
    best = order[0]
    for action in order[1:]:
        if values[action] > values[best]:
            best = action
    return best


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def active_votes(predictions: Predictions, models: tuple[str, ...]) -> list[tuple[str, int, float]]:
    """``(model, action, confidence)`` of the active models, in ``models`` order."""
    unknown = [name for name in predictions if name not in models]
    if unknown:
        raise ValueError(f"prediction for unknown model(s) {unknown}; models are {models}")
    votes = []
    for model in models:
        prediction = predictions.get(model)
        if prediction is None:
            continue
        action: Any = prediction.get("action")
        confidence: Any = prediction.get("confidence")
        if _is_missing(action) or _is_missing(confidence):
            continue
        if "insufficient" in str(prediction.get("version", "")).lower():
            continue
        confidence = float(confidence)
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"{model}: confidence must be in [0, 1], got {confidence}")
        votes.append((model, action_code(action), confidence))
    return votes


class EnsembleVoter:
    """Layer 1: weighted vote of the active models (H-ENS-1 to H-ENS-5)."""

    def __init__(self, config: EnsembleConfig | None = None) -> None:
        self.config = config or EnsembleConfig()
        self._weights = dict(self.config.weights)

    def vote(self, predictions: Predictions) -> dict[str, Any]:
        votes = active_votes(predictions, self.config.models)
        if not votes:
            return {
                "action": "HOLD",
                "confidence": self.config.no_voter_confidence,
                "consensus": "no_valid_models",
                "votes": {"BUY": 0.0, "SELL": 0.0, "HOLD": 0.0},
                "voters": 0,
                "agreeing": 0,
                "active_models": [],
            }
        tally = {BUY: 0.0, SELL: 0.0, HOLD: 0.0}
        for model, action, _ in votes:
            tally[action] += self._weights[model]
        action = _argmax(tally, ENSEMBLE_TIE_ORDER)
        agreeing = [confidence for _, vote, confidence in votes if vote == action]
        voters, k = len(votes), len(agreeing)
        if k == 0:
            # every active model has weight 0: the tie order picked an action nobody voted for,
            # so the vote says nothing (the live contract's no-voter answer)
            return {
                "action": "HOLD",
                "confidence": self.config.no_voter_confidence,
                "consensus": "no_valid_models",
                "votes": {action_name(a): weight for a, weight in tally.items()},
                "voters": voters,
                "agreeing": 0,
                "active_models": [model for model, _, _ in votes],
            }
        total = 0.0
        for confidence in agreeing:
            total += confidence
        if k >= voters:
            label = "unanimous"
        elif k >= self.config.strong_fraction * voters:
            label = "strong"
        elif k >= self.config.split_fraction * voters:
            label = "split"
        else:
            label = "weak"
        confidence = min(self.config.confidence_cap, total / k * self.config.multiplier(label))
        return {
            "action": action_name(action),
            "confidence": confidence,
            "consensus": label,
            "votes": {action_name(a): weight for a, weight in tally.items()},
            "voters": voters,
            "agreeing": k,
            "active_models": [model for model, _, _ in votes],
        }


class MetaPolicy:
    """Layer 2: Meta-V2 defers to the ensemble or escalates; it never trades (H-META-1 to
    H-META-12).

    Parameters
    ----------
    config : MetaConfig
    models : tuple of str
        The ensemble's model list (what Meta sees, padded in production).
    fidelity : {"production", "intended"}
    uncertainty_model : object with ``predict_proba``, optional
        Enables rule 6 (see :mod:`qt_backtest.hierarchy.uncertainty`).
    """

    def __init__(
        self,
        config: MetaConfig | None = None,
        models: tuple[str, ...] = EnsembleConfig().models,
        fidelity: str = "production",
        uncertainty_model: Any = None,
    ) -> None:
        self.config = config or MetaConfig()
        self.models = models
        self.fidelity = fidelity
        self.uncertainty_model = uncertainty_model
        self.total = 0
        self.escalations = 0
        self.reasons: Counter[str] = Counter()

    @property
    def deferrals(self) -> dict[str, int]:
        """Deferral counts by reason."""
        return {r: n for r, n in self.reasons.items() if r not in reasons.ESCALATING_REASONS}

    def inputs(self, predictions: Predictions) -> list[tuple[str, int, float]]:
        """``(model, action, confidence)`` as Meta sees them: padded in production."""
        votes = active_votes(predictions, self.models)
        if self.fidelity == "intended":
            return votes
        present = {model: (action, confidence) for model, action, confidence in votes}
        return [
            (model, *present.get(model, (HOLD, self.config.padding_confidence)))
            for model in self.models
        ]

    def fallback(self, inputs: list[tuple[str, int, float]]) -> tuple[int, float]:
        """Meta's own weighted action and confidence (rule 4 in production)."""
        present = {model: (action, confidence) for model, action, confidence in inputs}
        scores = {SELL: 0.0, HOLD: 0.0, BUY: 0.0}
        total_weight = 0.0
        for model, weight in weight_pairs(self.config.weights):
            if model in present:
                action, confidence = present[model]
                total_weight += weight
                scores[action] += weight * confidence
        if total_weight <= 0.0:
            return SELL, 0.0
        for action in scores:
            scores[action] = scores[action] / total_weight
        action = _argmax(scores, FALLBACK_TIE_ORDER)
        return action, scores[action]

    def decide(self, predictions: Predictions, base: Mapping[str, Any]) -> dict[str, Any]:
        """Decide DEFER or ESCALATE for one bar; ``base`` is Layer 1's result."""
        inputs = self.inputs(predictions)
        n = len(inputs)
        counts = {BUY: 0, SELL: 0, HOLD: 0}
        for _, action, _ in inputs:
            counts[action] += 1
        top = _argmax(counts, COUNT_TIE_ORDER)
        share = counts[top] / n if n else 0.0
        disagreement = 1.0 - share
        fallback_action, fallback_confidence = self.fallback(inputs)
        base_action, base_confidence = action_code(base["action"]), float(base["confidence"])
        if self.fidelity == "intended":
            rule4_confidence = base_confidence
            split = counts[BUY] == counts[SELL] > 0 and 2 * (counts[BUY] + counts[SELL]) > n
        else:
            rule4_confidence = fallback_confidence
            split = counts[BUY] == 2 and counts[SELL] == 2
        entropy = None
        if share >= self.config.consensus_threshold:
            decision, reason = "DEFER", reasons.strong_consensus_reason(top)
        elif split:
            decision, reason = "ESCALATE", "split_vote"
        elif disagreement >= self.config.disagreement_threshold:
            decision, reason = "ESCALATE", "high_disagreement"
        elif rule4_confidence < self.config.low_confidence_threshold:
            decision, reason = "ESCALATE", "low_ensemble_confidence"
        elif self.uncertainty_model is None:
            decision, reason = "DEFER", "clear_ensemble_no_model"
        else:
            from qt_backtest.hierarchy.uncertainty import meta_features, normalized_entropy

            features = meta_features(inputs, self.models, self.config)
            entropy = normalized_entropy(self.uncertainty_model.predict_proba([features])[0])
            if entropy > self.config.entropy_threshold:
                decision, reason = "ESCALATE", "undecided_market"
            else:
                decision, reason = "DEFER", "clear_ensemble"
        if reason.startswith("strong_consensus"):
            action, confidence = top, share
        elif self.fidelity == "intended":
            action, confidence = base_action, base_confidence
        else:
            action, confidence = fallback_action, fallback_confidence
        self.total += 1
        self.escalations += decision == "ESCALATE"
        self.reasons[reason] += 1
        return {
            "decision": decision,
            "reason": reason,
            "action": action_name(action),
            "confidence": confidence,
            "metrics": {
                "models": n,
                "disagreement": disagreement,
                "top_share": share,
                "vote_shares": {
                    "BUY": counts[BUY] / n if n else 0.0,
                    "SELL": counts[SELL] / n if n else 0.0,
                    "HOLD": counts[HOLD] / n if n else 0.0,
                },
                "fallback_action": action_name(fallback_action),
                "fallback_confidence": fallback_confidence,
                "entropy": entropy,
            },
        }


class Arbiter:
    """Layer 3: the technical Arbiter, called only on escalation (H-ARB-1 to H-ARB-12, H-GATE-1 to
    H-GATE-3, H-WIRE-1)."""

    INDICATORS = ("rsi", "macd", "macd_signal", "bb_position", "volume_trend", "momentum")

    def __init__(self, config: ArbiterConfig | None = None, fidelity: str = "production") -> None:
        self.config = config or ArbiterConfig()
        self.fidelity = fidelity
        self.calls = 0
        self.non_hold = 0
        self.holds = 0
        self.low_confidence_rejects = 0

    @property
    def decision_rate(self) -> float:
        """Share of calls that gave BUY or SELL."""
        return self.non_hold / self.calls if self.calls else 0.0

    def _value(self, indicators: Mapping[str, Any], name: str) -> float:
        value: Any = indicators.get(name)
        if _is_missing(value) or not math.isfinite(float(value)):
            return getattr(self.config, f"neutral_{name}")
        return float(value)

    def analyze(self, indicators: Mapping[str, Any] | None) -> dict[str, Any]:
        """Score the indicators; returns action, confidence, score, reason and the analysis."""
        self.calls += 1
        c = self.config
        if c.wiring == "deployed" or indicators is None:
            result = {
                "action": "HOLD",
                "confidence": 0.5,
                "score": math.nan,
                "reason": reasons.ANALYSIS_ERROR,
                "tags": 0,
                "analysis": {},
            }
            self.holds += 1
            return result
        rsi = self._value(indicators, "rsi")
        difference = self._value(indicators, "macd") - self._value(indicators, "macd_signal")
        position = self._value(indicators, "bb_position")
        volume = self._value(indicators, "volume_trend")
        momentum = self._value(indicators, "momentum")

        if rsi < c.rsi_oversold:
            rsi_signal, rsi_strength = 1, (c.rsi_oversold - rsi) / c.rsi_strength_span
        elif rsi > c.rsi_overbought:
            rsi_signal, rsi_strength = -1, (rsi - c.rsi_overbought) / c.rsi_strength_span
        else:
            rsi_signal, rsi_strength = 0, 0.0
        macd_signal = 1 if difference > 0 else (-1 if difference < 0 else 0)
        macd_strength = min(c.macd_scale_factor * abs(difference), 1.0)
        if position < c.bollinger_lower:
            band_signal, band_strength = 1, c.bollinger_lower - position
        elif position > c.bollinger_upper:
            band_signal, band_strength = -1, position - c.bollinger_upper
        else:
            band_signal, band_strength = 0, 0.0
        if volume > c.volume_spike:
            if self.fidelity == "intended":
                volume_signal = macd_signal
            else:
                volume_signal = 1 if difference > 0 else -1
            volume_strength = min((volume - c.volume_strength_offset) / c.volume_strength_span, 1.0)
        else:
            volume_signal, volume_strength = 0, 0.0
        if momentum > c.momentum_threshold:
            momentum_signal = 1
        elif momentum < -c.momentum_threshold:
            momentum_signal = -1
        else:
            momentum_signal = 0
        momentum_strength = min(c.momentum_scale_factor * abs(momentum), 1.0)

        components = (
            ("rsi", rsi, c.rsi_weight, rsi_signal, rsi_strength),
            ("macd", difference, c.macd_weight, macd_signal, macd_strength),
            ("bollinger", position, c.bollinger_weight, band_signal, band_strength),
            ("volume", volume, c.volume_weight, volume_signal, volume_strength),
            ("momentum", momentum, c.momentum_weight, momentum_signal, momentum_strength),
        )
        score = 0.0
        analysis = {}
        for name, value, weight, signal, strength in components:
            contribution = weight * signal * strength
            score += contribution
            analysis[name] = {
                "value": value,
                "signal": signal,
                "strength": strength,
                "weight": weight,
                "contribution": contribution,
            }

        threshold = c.score_threshold
        if score >= threshold:
            action = BUY
        elif score <= -threshold:
            action = SELL
        else:
            action = HOLD
        if action != HOLD:
            confidence = min(c.base_confidence + c.confidence_slope * abs(score), c.confidence_cap)
            tags = 0
            if rsi_signal == action and rsi_strength > c.tag_strength:
                tags |= reasons.TAG_RSI
            if macd_signal == action and macd_strength > c.tag_strength:
                tags |= reasons.TAG_MACD
            if momentum_signal == action:
                tags |= reasons.TAG_MOMENTUM
            self.non_hold += 1
        else:
            if self.fidelity == "intended":
                span = c.intended_hold_high - c.intended_hold_low
                confidence = c.intended_hold_low + span * (1.0 - abs(score) / threshold)
                confidence = min(max(confidence, c.intended_hold_low), c.intended_hold_high)
            else:
                confidence = c.hold_base + c.hold_slope * (c.hold_center - abs(score))
            tags = 0
            self.holds += 1
        return {
            "action": action_name(action),
            "confidence": confidence,
            "score": score,
            "reason": reasons.arbiter_reason(action, tags, score),
            "tags": tags,
            "analysis": analysis,
        }

    def gate(self, decision: Mapping[str, Any], base_action: str) -> str:
        """Whether the Arbiter's decision overrides the base ensemble, and if not, why."""
        if decision["confidence"] < self.config.arbiter_threshold:
            self.low_confidence_rejects += 1
            return "defer_low_confidence"
        if decision["action"] == "HOLD":
            return "defer_hold"
        if not self.config.arbiter_may_open and action_code(base_action) == HOLD:
            return "defer_base_hold"
        return "override"


class HierarchyEngine:
    """The three layers in one of the rollout modes (H-MODE-1 to H-MODE-4).

    ``step(predictions, indicators)`` decides one bar and returns a record with every layer's
    output and the final decision; the layers' statistics counters accumulate over calls.
    """

    def __init__(self, config: HierarchyConfig | None = None, uncertainty_model: Any = None):
        self.config = config or HierarchyConfig()
        self.voter = EnsembleVoter(self.config.ensemble)
        self.meta = MetaPolicy(
            self.config.meta, self.config.models, self.config.fidelity, uncertainty_model
        )
        self.arbiter = Arbiter(self.config.arbiter, self.config.fidelity)

    def step(
        self, predictions: Predictions, indicators: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        config = self.config
        base = self.voter.vote(predictions)
        record: dict[str, Any] = {"base": base, "meta": None, "arbiter": None, "gate": None}
        action, confidence, source = base["action"], base["confidence"], "ensemble"
        hierarchy_runs = config.mode != "ensemble" and base["voters"] >= config.min_active_models
        if hierarchy_runs:
            meta = self.meta.decide(predictions, base)
            record["meta"] = meta
            if meta["decision"] == "ESCALATE" and config.mode == "meta_arbiter":
                decision = self.arbiter.analyze(indicators)
                gate = self.arbiter.gate(decision, base["action"])
                record["arbiter"], record["gate"] = decision, gate
                if gate == "override":
                    action, confidence, source = (
                        decision["action"],
                        decision["confidence"],
                        "arbiter",
                    )
        vetoed = (
            config.min_trade_confidence is not None
            and action != "HOLD"
            and confidence < config.min_trade_confidence
        )
        record["final"] = {
            "action": "HOLD" if vetoed else action,
            "confidence": confidence,
            "source": source,
            "risk_veto": vetoed,
        }
        return record
