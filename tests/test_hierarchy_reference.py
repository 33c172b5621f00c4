"""Reference agents against the worked examples and rules of docs/hierarchy.md (X-ENS-1 to
X-ARB-10; the fidelity fixes H-FID-1 to H-FID-7)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qt_backtest.hierarchy import (
    Arbiter,
    ArbiterConfig,
    EnsembleConfig,
    EnsembleVoter,
    HierarchyConfig,
    HierarchyEngine,
    MetaConfig,
    MetaPolicy,
    MetaUncertaintyModel,
    meta_features,
)
from tests.spec_cases import ARBITER_CASES, ENSEMBLE_CASES, META_CASES, MODELS, predictions

THREE = EnsembleConfig(models=MODELS[:3], weights={"xgb": 0.25, "lgbm": 0.25, "nhits": 0.30})


@pytest.mark.parametrize("case", list(ENSEMBLE_CASES))
def test_ensemble_worked_cases(case):
    votes, action, confidence, label = ENSEMBLE_CASES[case]
    result = EnsembleVoter().vote(predictions(votes))
    assert result["action"] == action
    assert result["confidence"] == pytest.approx(confidence, abs=5e-7)
    assert result["consensus"] == label


def test_ensemble_tie_is_exact_and_goes_to_buy():
    result = EnsembleVoter().vote(predictions("B.9 B.9 S.6 S.6"))
    assert result["votes"]["BUY"] == result["votes"]["SELL"] == 0.5


def test_ensemble_without_voters_and_inactive_versions():
    assert EnsembleVoter().vote({}) | {"votes": None} == {
        "action": "HOLD",
        "confidence": 0.5,
        "consensus": "no_valid_models",
        "votes": None,
        "voters": 0,
        "agreeing": 0,
        "active_models": [],
    }
    votes = predictions("B.8 S.6 S.7 S.9")
    votes["patchtst"]["version"] = "v2-INSUFFICIENT_data"
    votes["nhits"]["confidence"] = float("nan")
    result = EnsembleVoter().vote(votes)
    assert result["active_models"] == ["xgb", "lgbm"] and result["voters"] == 2
    assert result["action"] == "BUY"  # tie .25/.25 goes to BUY


def test_ensemble_label_multiplier_applies_before_the_cap():
    config = EnsembleConfig(label_multipliers={"strong": 1.5})
    result = EnsembleVoter(config).vote(predictions("B.6 B.6 B.6 H.55"))
    assert result["confidence"] == pytest.approx(0.9)
    assert EnsembleVoter(config).vote(predictions("B.7 B.7 B.7 H.5"))["confidence"] == 0.95


@pytest.mark.parametrize("case", list(META_CASES))
def test_meta_worked_cases(case):
    votes, n_models, decision, reason, fallback_action, fallback_confidence = META_CASES[case]
    config = THREE if n_models == 3 else EnsembleConfig()
    policy = MetaPolicy(MetaConfig(weights=config.weights), config.models)
    bars = predictions(votes, config.models)
    result = policy.decide(bars, EnsembleVoter(config).vote(bars))
    assert (result["decision"], result["reason"]) == (decision, reason)
    if fallback_action is not None:
        assert result["metrics"]["fallback_action"] == fallback_action
        assert result["metrics"]["fallback_confidence"] == pytest.approx(fallback_confidence)
    assert policy.total == 1 and policy.escalations == (decision == "ESCALATE")


def test_meta_returns_top_share_under_consensus_and_fallback_otherwise():
    bars = predictions("B.75 B.72 B.68 H.55")
    result = MetaPolicy().decide(bars, EnsembleVoter().vote(bars))
    assert (result["action"], result["confidence"]) == ("BUY", 0.75)
    bars = predictions("B.72 S.70 B.68 S.71")
    result = MetaPolicy().decide(bars, EnsembleVoter().vote(bars))
    assert result["action"] == "BUY" and result["confidence"] == pytest.approx(0.384)


def test_meta_fallback_accumulates_in_weight_table_order():
    # a model without a Meta weight counts in the vote but adds nothing to the fallback
    config = EnsembleConfig(models=("a", "b", "c"), weights={"a": 0.5, "b": 0.3, "c": 0.2})
    meta = MetaConfig(weights={"b": 0.3, "a": 0.5})
    bars = {
        "a": {"action": "SELL", "confidence": 0.9},
        "b": {"action": "BUY", "confidence": 0.9},
        "c": {"action": "BUY", "confidence": 0.2},
    }
    policy = MetaPolicy(meta, config.models)
    result = policy.decide(bars, EnsembleVoter(config).vote(bars))
    assert result["metrics"]["fallback_action"] == "SELL"
    assert result["metrics"]["fallback_confidence"] == pytest.approx(0.45 / 0.8)
    assert result["metrics"]["vote_shares"]["BUY"] == pytest.approx(2 / 3)


def test_intended_fidelity_fixes():
    # H-FID-1: padding fabricates disagreement; intended Meta sees the two active models only
    bars = predictions("B.70 B.65")
    base = EnsembleVoter().vote(bars)
    assert MetaPolicy(fidelity="intended").decide(bars, base)["reason"] == "strong_consensus_buy"
    # H-FID-2: 3 BUY + 3 SELL of 8 models is a split in intended fidelity only
    models = tuple(f"m{i}" for i in range(8))
    config = EnsembleConfig(models=models, weights={m: 1.0 for m in models})
    meta = MetaConfig(weights=config.weights)
    bars = {
        m: {"action": a, "confidence": 0.8}
        for m, a in zip(models, ["BUY"] * 3 + ["SELL"] * 3 + ["HOLD"] * 2, strict=True)
    }
    base = EnsembleVoter(config).vote(bars)
    assert MetaPolicy(meta, models).decide(bars, base)["reason"] == "high_disagreement"
    assert MetaPolicy(meta, models, "intended").decide(bars, base)["reason"] == "split_vote"
    # H-FID-3: rule 4 uses the ensemble confidence in intended fidelity
    bars = predictions("B.9 B.9 S.9", THREE.models)
    three_meta = MetaConfig(weights=THREE.weights, low_confidence_threshold=0.6)
    base = EnsembleVoter(THREE).vote(bars)
    assert MetaPolicy(three_meta, THREE.models).decide(bars, base)["reason"] == (
        "low_ensemble_confidence"
    )
    assert MetaPolicy(three_meta, THREE.models, "intended").decide(bars, base)["reason"] == (
        "clear_ensemble_no_model"
    )


@pytest.mark.parametrize("case", list(ARBITER_CASES))
def test_arbiter_worked_cases(case):
    indicators, conservative, action, confidence, score, reason = ARBITER_CASES[case]
    result = Arbiter(ArbiterConfig(conservative=conservative)).analyze(indicators)
    assert result["action"] == action
    assert result["confidence"] == pytest.approx(confidence, abs=5e-7)
    if score is not None:
        assert result["score"] == pytest.approx(score, abs=5e-7)
    if reason is not None:
        assert result["reason"] == reason


def test_arbiter_hold_reason_prints_the_score():
    result = Arbiter().analyze({"rsi": 20})
    assert result["reason"] == "neutral_market: score=0.067 in neutral zone"


def test_arbiter_missing_and_nan_indicators_are_neutral():
    a = Arbiter().analyze({"rsi": float("nan"), "macd": None, "momentum": np.nan})
    assert (a["action"], a["confidence"], a["score"]) == ("HOLD", 0.7, 0.0)


def test_arbiter_intended_fixes():
    # H-FID-7: volume with d = 0 does not vote in intended fidelity
    assert Arbiter(fidelity="intended").analyze({"volume_trend": 2.0})["score"] == 0.0
    # H-FID-4: intended HOLD confidence stays within [0.5, 0.7]
    for rsi in (20, 50, 25):
        confidence = Arbiter(fidelity="intended").analyze({"rsi": rsi})["confidence"]
        assert 0.5 <= confidence <= 0.7
    assert Arbiter(fidelity="intended").analyze({})["confidence"] == 0.7
    assert Arbiter(fidelity="intended").analyze({"macd": 0.048})["confidence"] == pytest.approx(
        0.5 + 0.2 * (1 - 0.12 / 0.15)
    )


def test_gate():
    arbiter = Arbiter()
    assert arbiter.gate({"action": "BUY", "confidence": 0.70}, "SELL") == "override"
    assert arbiter.gate({"action": "BUY", "confidence": 0.6999}, "SELL") == "defer_low_confidence"
    assert arbiter.gate({"action": "HOLD", "confidence": 0.70}, "SELL") == "defer_hold"
    assert arbiter.gate({"action": "HOLD", "confidence": 0.5}, "SELL") == "defer_low_confidence"
    closed = Arbiter(ArbiterConfig(arbiter_may_open=False))
    assert closed.gate({"action": "BUY", "confidence": 0.8}, "HOLD") == "defer_base_hold"
    assert closed.gate({"action": "BUY", "confidence": 0.8}, "SELL") == "override"
    assert arbiter.low_confidence_rejects == 2


def test_deployed_wiring_never_overrides():
    arbiter = Arbiter(ArbiterConfig(wiring="deployed"))
    result = arbiter.analyze({"rsi": 0})
    assert result["reason"] == "analysis_error: 'NoneType' object has no attribute 'get'"
    assert (result["action"], result["confidence"]) == ("HOLD", 0.5)
    assert arbiter.gate(result, "BUY") == "defer_low_confidence"


def test_engine_modes_and_counters():
    bars = predictions("B.72 S.70 B.68 S.71")  # split vote -> escalates
    oversold = {"rsi": 0, "macd": -0.1}  # RSI BUY .2, MACD SELL .25 -> S = -0.05 -> HOLD
    strong_sell = {"rsi": 90, "macd": -0.2, "momentum": -0.05}
    ensemble = HierarchyEngine(HierarchyConfig(mode="ensemble")).step(bars, strong_sell)
    assert ensemble["meta"] is None and ensemble["final"]["source"] == "ensemble"
    meta = HierarchyEngine(HierarchyConfig(mode="meta")).step(bars, strong_sell)
    assert meta["meta"]["decision"] == "ESCALATE" and meta["arbiter"] is None
    assert meta["final"]["action"] == "BUY"
    engine = HierarchyEngine()
    record = engine.step(bars, strong_sell)
    assert record["gate"] == "override"
    assert record["final"] == {
        "action": "SELL",
        "confidence": record["arbiter"]["confidence"],
        "source": "arbiter",
        "risk_veto": False,
    }
    record = engine.step(bars, oversold)
    assert record["gate"] == "defer_low_confidence" and record["final"]["source"] == "ensemble"
    assert (engine.meta.total, engine.meta.escalations, engine.arbiter.calls) == (2, 2, 2)
    assert engine.arbiter.decision_rate == 0.5


def test_hierarchy_needs_two_active_models_and_risk_governor():
    engine = HierarchyEngine()
    record = engine.step(predictions("B.60"), {"rsi": 0})
    assert record["meta"] is None and record["final"]["action"] == "HOLD"
    assert record["final"]["risk_veto"] is True  # BUY at 0.60 < 0.65
    record = HierarchyEngine(HierarchyConfig(min_trade_confidence=None)).step(predictions("B.60"))
    assert record["final"]["action"] == "BUY" and not record["final"]["risk_veto"]


def test_uncertainty_model_rule():
    # with four models a top share is 1/4, 1/2, 3/4 or 1, so rules 1-3 always decide; with
    # three models 2/3 passes them and reaches the uncertainty model
    rng = np.random.default_rng(0)
    models = THREE.models
    meta = MetaConfig(weights=THREE.weights)
    rows, labels = [], []
    for _ in range(300):
        votes = [(m, int(rng.integers(-1, 2)), float(rng.uniform(0.4, 0.9))) for m in models]
        rows.append(meta_features(votes, models, meta))
        labels.append(int(np.sign(sum(a for _, a, _ in votes))))
    model = MetaUncertaintyModel().fit(np.array(rows), np.array(labels))
    assert rows[0].shape == (22,)
    bars = predictions("B.9 B.9 S.9", models)
    base = EnsembleVoter(THREE).vote(bars)
    undecided = MetaConfig(weights=THREE.weights, entropy_threshold=0.0)
    result = MetaPolicy(undecided, models, uncertainty_model=model).decide(bars, base)
    assert result["reason"] == "undecided_market" and 0 < result["metrics"]["entropy"] <= 1
    decided = MetaConfig(weights=THREE.weights, entropy_threshold=1.0)
    result = MetaPolicy(decided, models, uncertainty_model=model).decide(bars, base)
    assert result["reason"] == "clear_ensemble"


def test_meta_features_layout():
    features = meta_features([("xgb", 1, 0.8), ("nhits", -1, 0.6)], MODELS, MetaConfig())
    assert features.shape == (26,)
    assert list(features[:8]) == [0, 0, 1, 0.8, 0, 1, 0, 0.5]  # xgb BUY .8, lgbm missing
    assert features[16:20] == pytest.approx([0.7, 0.8, 0.6, 0.1])
    assert list(features[20:24]) == [0.5, 0.5, 0.0, 0.5]
    assert list(features[24:]) == [0.5, 0.0]


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: EnsembleConfig(models=(), weights={}), "1 to 8 names"),
        (lambda: EnsembleConfig(models=tuple("abcdefghi"), weights={}), "1 to 8 names"),
        (lambda: EnsembleConfig(weights={"xgb": 1.0}), "no vote weight for model"),
        (
            lambda: EnsembleConfig(weights={**dict(EnsembleConfig().weights), "tft": 0.1}),
            "unknown model",
        ),
        (lambda: EnsembleConfig(weights={m: 0.0 for m in MODELS}), "must not all be 0"),
        (
            lambda: EnsembleConfig(weights={"xgb": -1, "lgbm": 1, "nhits": 1, "patchtst": 1}),
            "must be >= 0",
        ),
        (lambda: MetaConfig(consensus_threshold=1.5), r"consensus_threshold \(top vote share"),
        (lambda: MetaConfig(low_confidence_threshold=math.nan), "finite number"),
        (lambda: ArbiterConfig(arbiter_threshold=-0.1), "confidence the Arbiter needs"),
        (lambda: ArbiterConfig(rsi_oversold=80), "oversold < overbought"),
        (lambda: ArbiterConfig(wiring="glued"), "wiring must be one of designed, deployed"),
        (lambda: HierarchyConfig(mode="arbiter"), "mode must be one of"),
        (lambda: HierarchyConfig(fidelity="ideal"), "fidelity must be one of"),
        (lambda: HierarchyConfig(min_trade_confidence=2), "min_trade_confidence"),
    ],
)
def test_config_validation(factory, message):
    with pytest.raises((ValueError, TypeError), match=message):
        factory()


def test_config_replace_nested():
    config = HierarchyConfig().replace(**{"arbiter.arbiter_threshold": 0.8, "mode": "meta"})
    assert config.arbiter.arbiter_threshold == 0.8 and config.mode == "meta"
    with pytest.raises(ValueError, match="has no parameter"):
        HierarchyConfig().replace(**{"meta.nonsense": 1})
