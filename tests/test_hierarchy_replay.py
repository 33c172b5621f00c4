"""The vectorised replay equals the reference agents decision by decision."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qt_backtest.hierarchy import (
    ArbiterConfig,
    EnsembleConfig,
    HierarchyConfig,
    HierarchyEngine,
    MetaConfig,
    MetaUncertaintyModel,
)
from qt_backtest.hierarchy.replay import replay, replay_arrays
from qt_backtest.indicators import ARBITER_INPUT_COLUMNS
from tests.spec_cases import ARBITER_CASES, ENSEMBLE_CASES, META_CASES, MODELS, predictions

ACTION = {-1: "SELL", 0: "HOLD", 1: "BUY"}


def prediction_frame(bars: list[dict], models) -> pd.DataFrame:
    rows = []
    for bar in bars:
        row = {}
        for model in models:
            vote = bar.get(model)
            row[f"{model}_action"] = None if vote is None else vote["action"]
            row[f"{model}_confidence"] = np.nan if vote is None else vote["confidence"]
        rows.append(row)
    return pd.DataFrame(rows, index=pd.RangeIndex(len(rows)))


def reference_records(engine, bars, indicators):
    return [engine.step(bar, ind) for bar, ind in zip(bars, indicators, strict=True)]


def assert_same(frame: pd.DataFrame, records: list[dict], tolerance=1e-12):
    rows = frame.to_dict("records")
    assert len(rows) == len(records)
    for i, record in enumerate(records):
        row = rows[i]
        where = f"bar {i}: {record}"
        base = record["base"]
        assert row["base_action"] == base["action"], where
        assert abs(row["base_confidence"] - base["confidence"]) <= tolerance, where
        assert row["consensus"] == base["consensus"], where
        meta = record["meta"]
        if meta is None:
            assert pd.isna(row["meta_decision"]), where
        else:
            assert row["meta_decision"] == meta["decision"], where
            assert row["meta_reason"] == meta["reason"], where
            assert row["meta_action"] == meta["action"], where
            assert abs(row["meta_confidence"] - meta["confidence"]) <= tolerance, where
            if meta["metrics"]["entropy"] is not None:
                assert abs(row["entropy"] - meta["metrics"]["entropy"]) <= tolerance, where
        arbiter = record["arbiter"]
        if arbiter is None:
            assert pd.isna(row["gate"]), where
        else:
            assert row["gate"] == record["gate"], where
            assert row["arbiter_action"] == arbiter["action"], where
            assert abs(row["arbiter_confidence"] - arbiter["confidence"]) <= tolerance, where
            if not math.isnan(arbiter["score"]):
                assert abs(row["arbiter_score"] - arbiter["score"]) <= tolerance, where
            assert row["arbiter_reason"] == arbiter["reason"], where
        final = record["final"]
        assert row["final_action"] == final["action"], where
        assert abs(row["final_confidence"] - final["confidence"]) <= tolerance, where
        assert row["source"] == final["source"], where
        assert bool(row["risk_veto"]) == final["risk_veto"], where


# ---------------------------------------------------------------------------------------------
# The worked examples of docs/hierarchy.md (X-ENS-1 to X-ARB-10) through the kernel
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(ENSEMBLE_CASES))
def test_kernel_ensemble_worked_cases(case):
    votes, action, confidence, label = ENSEMBLE_CASES[case]
    frame = replay(prediction_frame([predictions(votes)], MODELS))
    assert frame["base_action"].iloc[0] == action
    assert frame["base_confidence"].iloc[0] == pytest.approx(confidence, abs=5e-7)
    assert frame["consensus"].iloc[0] == label


@pytest.mark.parametrize("case", list(META_CASES))
def test_kernel_meta_worked_cases(case):
    votes, n_models, decision, reason, _, fallback_confidence = META_CASES[case]
    models = MODELS[:n_models]
    config = HierarchyConfig(
        ensemble=EnsembleConfig(models=models, weights=dict(EnsembleConfig().weights[:n_models]))
    )
    frame = replay(prediction_frame([predictions(votes, models)], models), config=config)
    assert (frame["meta_decision"].iloc[0], frame["meta_reason"].iloc[0]) == (decision, reason)
    if fallback_confidence is not None and not reason.startswith("strong"):
        assert frame["meta_confidence"].iloc[0] == pytest.approx(fallback_confidence)


@pytest.mark.parametrize("case", list(ARBITER_CASES))
def test_kernel_arbiter_worked_cases(case):
    indicators, conservative, action, confidence, score, reason = ARBITER_CASES[case]
    config = HierarchyConfig(arbiter=ArbiterConfig(conservative=conservative))
    bars = prediction_frame([predictions("B.72 S.70 B.68 S.71")], MODELS)  # escalates
    inputs = pd.DataFrame([{c: indicators.get(c, np.nan) for c in ARBITER_INPUT_COLUMNS}])
    frame = replay(bars, inputs, config)
    assert frame["arbiter_action"].iloc[0] == action
    assert frame["arbiter_confidence"].iloc[0] == pytest.approx(confidence, abs=5e-7)
    if score is not None:
        assert frame["arbiter_score"].iloc[0] == pytest.approx(score, abs=5e-7)
    if reason is not None:
        assert frame["arbiter_reason"].iloc[0] == reason


# ---------------------------------------------------------------------------------------------
# Property: kernel == reference agents
# ---------------------------------------------------------------------------------------------

CONFIDENCES = st.one_of(
    st.sampled_from([0.0, 0.2, 0.25, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.95, 1.0]),
    st.floats(0.0, 1.0),
)
WEIGHTS = st.one_of(st.sampled_from([0.0, 0.2, 0.25, 0.3, 0.5, 1.0]), st.floats(0.0, 2.0))
INDICATOR_VALUES = {
    "rsi": st.one_of(
        st.sampled_from([0.0, 20.0, 29.99, 30.0, 50.0, 70.0, 70.01, 100.0]), st.floats(0, 100)
    ),
    "macd": st.one_of(st.sampled_from([0.0, 0.048, 0.05, 0.06, 0.1, -0.06, 2.0]), st.floats(-1, 1)),
    "macd_signal": st.one_of(st.sampled_from([0.0, 0.02, -0.02]), st.floats(-1, 1)),
    "bb_position": st.one_of(
        st.sampled_from([0.2, 0.8, 0.5, 0.15, 0.88, -0.3, 1.4]), st.floats(-1, 2)
    ),
    "volume_trend": st.one_of(st.sampled_from([1.0, 1.5, 1.6, 2.0, 4.0, 0.0]), st.floats(0, 5)),
    "momentum": st.one_of(
        st.sampled_from([0.02, -0.02, 0.0, 0.025, -0.022, 0.2]), st.floats(-0.3, 0.3)
    ),
}


@st.composite
def scenario(draw, fewest=1, most=8):
    count = draw(st.integers(fewest, most))
    models = tuple(f"m{k}" for k in range(count))
    weights = [draw(WEIGHTS) for _ in models]
    if sum(weights) == 0:
        weights[0] = 1.0
    meta_models = draw(st.permutations(models))[: draw(st.integers(0, count))]
    meta_weights = {m: draw(WEIGHTS) for m in meta_models}
    config = HierarchyConfig(
        mode=draw(st.sampled_from(["ensemble", "meta", "meta_arbiter"])),
        fidelity=draw(st.sampled_from(["production", "intended"])),
        ensemble=EnsembleConfig(models=models, weights=dict(zip(models, weights, strict=True))),
        meta=MetaConfig(
            consensus_threshold=draw(st.sampled_from([0.75, 0.5, 0.6, 1.0])),
            disagreement_threshold=draw(st.sampled_from([0.5, 0.25, 0.4])),
            low_confidence_threshold=draw(st.sampled_from([0.55, 0.3, 0.7])),
            entropy_threshold=draw(st.sampled_from([0.8, 0.5, 0.95])),
            weights=meta_weights,
        ),
        arbiter=ArbiterConfig(
            arbiter_threshold=draw(st.sampled_from([0.7, 0.775, 0.8, 0.5, 0.9])),
            conservative=draw(st.booleans()),
            arbiter_may_open=draw(st.booleans()),
            wiring=draw(st.sampled_from(["designed", "designed", "deployed"])),
        ),
        min_trade_confidence=draw(st.sampled_from([0.65, None, 0.7, 0.9])),
    )
    model = None
    if draw(st.booleans()):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        model = MetaUncertaintyModel()
        model.coef_ = rng.normal(0, 2, (3, 4 * count + 10))
        model.intercept_ = rng.normal(0, 1, 3)
    bars, indicators = [], []
    for _ in range(draw(st.integers(1, 12))):
        bar = {}
        for m in models:
            if draw(st.integers(0, 5)) == 0:
                continue  # missing model
            bar[m] = {
                "action": draw(st.sampled_from(["BUY", "SELL", "HOLD"])),
                "confidence": draw(CONFIDENCES),
            }
        bars.append(bar)
        indicators.append(
            {
                name: (np.nan if draw(st.integers(0, 6)) == 0 else draw(values))
                for name, values in INDICATOR_VALUES.items()
            }
        )
    return config, model, bars, indicators


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_kernel_equals_reference_agents(case):
    assert_replay_equals_reference(*case)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(fewest=1, most=2))
def test_kernel_equals_reference_agents_with_one_or_two_models(case):
    # the live engine has run Meta on two models; nothing pads the list to three
    assert len(case[0].models) <= 2
    assert_replay_equals_reference(*case)


def assert_replay_equals_reference(config, model, bars, indicators):
    engine = HierarchyEngine(config, uncertainty_model=model)
    records = reference_records(engine, bars, indicators)
    frame = replay(
        prediction_frame(bars, config.models),
        pd.DataFrame(indicators, columns=list(ARBITER_INPUT_COLUMNS)),
        config,
        uncertainty_model=model,
    )
    assert_same(frame, records)


def test_many_bars_and_symbols_stack():
    rng = np.random.default_rng(1)
    bars = 50_000
    actions = rng.integers(-1, 2, (bars, 4)).astype(np.int8)
    confidences = rng.uniform(0.3, 1.0, (bars, 4))
    active = rng.uniform(0, 1, (bars, 4)) > 0.1
    indicators = rng.normal(0, 1, (bars, 6)) * [20, 0.05, 0.05, 0.4, 0.5, 0.02] + [
        50,
        0,
        0,
        0.5,
        1.0,
        0,
    ]
    whole = replay_arrays(actions, confidences, active, indicators)
    # two "symbols" replayed separately give the same rows
    half = bars // 2
    first = replay_arrays(actions[:half], confidences[:half], active[:half], indicators[:half])
    second = replay_arrays(actions[half:], confidences[half:], active[half:], indicators[half:])
    for name, values in whole.items():
        joined = np.concatenate([first[name], second[name]])
        assert np.array_equal(values, joined, equal_nan=True), name
    # and a sample of rows equals the reference engine
    engine = HierarchyEngine()
    for i in rng.choice(bars, 200, replace=False):
        bar = {
            m: {"action": ACTION[int(actions[i, k])], "confidence": confidences[i, k]}
            for k, m in enumerate(MODELS)
            if active[i, k]
        }
        record = engine.step(bar, dict(zip(ARBITER_INPUT_COLUMNS, indicators[i], strict=True)))
        assert ACTION[int(whole["final_action"][i])] == record["final"]["action"]
        assert whole["final_confidence"][i] == record["final"]["confidence"]


def _random_bars(rng, models, bars):
    """Bars of random votes (some models missing) and Arbiter inputs, many on thresholds."""
    votes = []
    for _ in range(bars):
        bar = {}
        for m in models:
            if rng.uniform() < 0.15:
                continue
            bar[m] = {
                "action": ACTION[int(rng.integers(-1, 2))],
                "confidence": float(rng.choice([0.5, 0.55, 0.7, rng.uniform(0, 1)])),
            }
        votes.append(bar)
    indicators = []
    for _ in range(bars):
        row = {}
        for name, (center, scale, edges) in {
            "rsi": (50.0, 20.0, [30.0, 70.0]),
            "macd": (0.0, 0.05, [0.0]),
            "macd_signal": (0.0, 0.05, [0.0]),
            "bb_position": (0.5, 0.4, [0.2, 0.8]),
            "volume_trend": (1.0, 0.6, [1.5]),
            "momentum": (0.0, 0.03, [0.02, -0.02]),
        }.items():
            draw = rng.uniform()
            if draw < 0.1:
                row[name] = np.nan
            elif draw < 0.25:
                row[name] = float(rng.choice(edges))
            else:
                row[name] = center + scale * rng.standard_normal()
        indicators.append(row)
    return votes, indicators


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(), st.integers(0, 2**32 - 1), st.integers(1025, 3000))
def test_long_replays_equal_reference_agents_across_chunks(case, seed, bars):
    """Thousands of bars, so the kernel works in several chunks, one of them partial."""
    config, model, _, _ = case
    votes, indicators = _random_bars(np.random.default_rng(seed), config.models, bars)
    assert_replay_equals_reference(config, model, votes, indicators)


@pytest.mark.parametrize("mode", ["ensemble", "meta", "meta_arbiter"])
@pytest.mark.parametrize("fidelity", ["production", "intended"])
def test_memory_layout_does_not_change_decisions(mode, fidelity):
    rng = np.random.default_rng(7)
    bars = 6_000
    actions = rng.integers(-1, 2, (bars, 5)).astype(np.int8)
    confidences = rng.uniform(0.3, 1.0, (bars, 5))
    active = rng.uniform(0, 1, (bars, 5)) > 0.2
    indicators = rng.normal(0, 1, (bars, 6)) * [20, 0.05, 0.05, 0.4, 0.5, 0.02]
    indicators += [50, 0, 0, 0.5, 1.0, 0]
    models = tuple(f"m{k}" for k in range(5))
    config = HierarchyConfig(
        mode=mode,
        fidelity=fidelity,
        ensemble=EnsembleConfig(models=models, weights=dict.fromkeys(models, 0.2)),
    )
    inputs = (actions, confidences, active, indicators)
    row_major = replay_arrays(*inputs, config)
    column_major = replay_arrays(*(np.asfortranarray(x) for x in inputs), config)
    # every other row of inputs twice as long: strided, neither C- nor F-contiguous
    doubled = tuple(np.repeat(x, 2, axis=0)[::2] for x in inputs)
    assert not doubled[1].flags.c_contiguous and not doubled[1].flags.f_contiguous
    strided = replay_arrays(*doubled, config)
    for name, values in row_major.items():
        assert np.array_equal(values, column_major[name], equal_nan=True), name
        assert np.array_equal(values, strided[name], equal_nan=True), name


def test_prediction_frame_errors():
    frame = prediction_frame([predictions("B.7 S.6 H.5 B.9")], MODELS)
    bad = frame.assign(xgb_action=["LONG"])
    with pytest.raises(ValueError, match="xgb_action: unknown action 'LONG' at row 0"):
        replay(bad)
    with pytest.raises(ValueError, match="lgbm_confidence must be in \\[0, 1\\]: 1.5"):
        replay(frame.assign(lgbm_confidence=[1.5]))
    with pytest.raises(ValueError, match="unknown model\\(s\\) \\['tft'\\]"):
        replay(frame.assign(tft_action=["BUY"], tft_confidence=[0.5]))
    with pytest.raises(ValueError, match="indicators miss column"):
        replay(frame, pd.DataFrame({"rsi": [50.0]}))


def test_insufficient_version_and_numeric_actions():
    frame = prediction_frame([predictions("B.7 S.6 H.5 B.9")], MODELS)
    frame["xgb_action"] = [1]
    frame["patchtst_version"] = ["v1-insufficient-data"]
    result = replay(frame, config=HierarchyConfig(mode="ensemble"))
    assert result["voters"].iloc[0] == 3


@pytest.mark.parametrize("fidelity", ["production", "intended"])
def test_feature_matrix_equals_reference_features(fidelity):
    from qt_backtest.hierarchy import MetaPolicy, fit_uncertainty_model, meta_feature_matrix

    rng = np.random.default_rng(5)
    bars = [
        {
            m: {
                "action": str(rng.choice(["BUY", "SELL", "HOLD"])),
                "confidence": float(rng.uniform(0.3, 1.0)),
            }
            for m in MODELS
            if rng.uniform() > 0.2
        }
        for _ in range(300)
    ]
    config = HierarchyConfig(fidelity=fidelity)
    matrix = meta_feature_matrix(prediction_frame(bars, MODELS), config)
    policy = MetaPolicy(config.meta, config.models, fidelity)
    from qt_backtest.hierarchy.uncertainty import meta_features

    for i, bar in enumerate(bars):
        if len(bar) < config.min_active_models:
            assert np.isnan(matrix[i]).all()
            continue
        expected = meta_features(policy.inputs(bar), MODELS, config.meta)
        assert np.array_equal(matrix[i], expected), i
    labels = rng.integers(-1, 2, 300).astype(float)
    labels[-5:] = np.nan
    model = fit_uncertainty_model(prediction_frame(bars, MODELS), labels, config)
    assert model.coef_.shape == (3, 26)
    decisions = replay(prediction_frame(bars, MODELS), config=config, uncertainty_model=model)
    assert not decisions["meta_reason"].eq("clear_ensemble_no_model").any()


def test_array_inputs_are_checked():
    actions = np.zeros((3, 4), dtype=np.int8)
    confidences = np.full((3, 4), 0.6)
    active = np.ones((3, 4), dtype=bool)
    indicators = np.full((3, 6), np.nan)
    confidences[2, 1] = np.nan
    with pytest.raises(ValueError, match="row 2: an active model has a confidence outside"):
        replay_arrays(actions, confidences, active, indicators)
    active[2, 1] = False  # NaN where the model is inactive is fine
    result = replay_arrays(actions, confidences, active, indicators)
    assert result["voters"][2] == 3
    actions[1, 3] = 2
    with pytest.raises(ValueError, match=r"row 1: an active model's action is \[0, 0, 0, 2\]"):
        replay_arrays(actions, confidences, active, indicators)
    active[1, 3] = False  # whatever an inactive model's slot holds is ignored
    assert replay_arrays(actions, confidences, active, indicators)["voters"][1] == 3
    active[1, 3] = True
    actions[1, 3] = 0
    with pytest.raises(ValueError, match="indicators must have shape"):
        replay_arrays(actions, confidences, active, indicators[:, :5])
    with pytest.raises(ValueError, match="4 model columns, but the configuration has 3"):
        replay_arrays(
            actions,
            confidences,
            active,
            indicators,
            HierarchyConfig(
                ensemble=EnsembleConfig(
                    models=MODELS[:3], weights=dict(EnsembleConfig().weights[:3])
                )
            ),
        )


def test_several_symbols_with_their_own_indicators(btc_1h):
    from qt_backtest.indicators import arbiter_inputs

    frames = {"BTC": btc_1h.iloc[:300], "ETH": btc_1h.iloc[300:600] * 1.0}
    inputs = arbiter_inputs(frames)
    rng = np.random.default_rng(8)
    parts = {}
    for symbol, frame in frames.items():
        votes = pd.DataFrame(index=frame.index)
        for model in MODELS:
            votes[f"{model}_action"] = rng.choice(["BUY", "SELL", "HOLD"], len(frame))
            votes[f"{model}_confidence"] = rng.uniform(0.4, 0.9, len(frame))
        parts[symbol] = votes
    stacked = pd.concat(parts, names=["symbol", "timestamp"])
    together = replay(stacked, inputs)
    for symbol in frames:
        alone = replay(parts[symbol], inputs[symbol])
        pd.testing.assert_frame_equal(
            together.loc[symbol], alone, check_exact=True, check_names=False
        )
    assert (together["gate"] == "override").any()


def test_arbiter_decisions_equal_the_reference_arbiter():
    from qt_backtest.hierarchy import Arbiter
    from qt_backtest.hierarchy.replay import arbiter_decisions

    rng = np.random.default_rng(13)
    rows = [
        {
            "rsi": float(rng.uniform(0, 100)),
            "macd": float(rng.normal(0, 0.05)),
            "macd_signal": float(rng.normal(0, 0.05)),
            "bb_position": float(rng.uniform(-0.3, 1.3)),
            "volume_trend": float(rng.lognormal(0, 0.5)),
            "momentum": float(rng.normal(0, 0.02)),
        }
        for _ in range(500)
    ]
    frame = arbiter_decisions(pd.DataFrame(rows), HierarchyConfig(min_trade_confidence=None))
    arbiter = Arbiter()
    for i, row in enumerate(rows):
        expected = arbiter.analyze(row)
        assert frame["final_action"].iloc[i] == expected["action"]
        assert frame["final_confidence"].iloc[i] == expected["confidence"]
        assert frame["arbiter_reason"].iloc[i] == expected["reason"]


def test_replace_takes_the_names_of_a_sweep_grid():
    config = HierarchyConfig().replace(
        **{
            "ensemble.weights.xgb": 0.5,
            "meta.weights.nhits": 0.1,
            "ensemble.label_multipliers.strong": 0.9,
            "arbiter.arbiter_threshold": 0.8,
            "mode": "meta",
        }
    )
    assert dict(config.ensemble.weights)["xgb"] == 0.5
    assert dict(config.ensemble.weights)["lgbm"] == 0.25  # the others keep their values
    assert dict(config.meta.weights)["nhits"] == 0.1
    assert config.ensemble.multiplier("strong") == 0.9
    assert config.arbiter.arbiter_threshold == 0.8 and config.mode == "meta"
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['gpt'\]"):
        HierarchyConfig().replace(**{"ensemble.weights.gpt": 0.5})
    with pytest.raises(ValueError, match="unknown entr"):
        HierarchyConfig().replace(**{"ensemble.label_multipliers.great": 0.5})
    with pytest.raises(ValueError, match="not a table"):
        HierarchyConfig().replace(**{"arbiter.arbiter_threshold.x": 0.5})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "high", None])
def test_a_vote_without_a_usable_confidence_is_rejected_with_its_row(bad):
    from qt_backtest.sweep import Grid, sweep

    index = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    votes = pd.DataFrame(
        {
            "xgb_action": ["BUY", "SELL", "HOLD"],
            "xgb_confidence": np.array([0.7, bad, 0.6], dtype=object),
            "lgbm_action": ["BUY", "BUY", "HOLD"],
            "lgbm_confidence": [0.8, 0.7, 0.6],
        },
        index=index,
    )
    config = HierarchyConfig(
        ensemble=EnsembleConfig(models=("xgb", "lgbm"), weights={"xgb": 0.5, "lgbm": 0.5})
    )
    with pytest.raises(ValueError, match=r"xgb_confidence .* at row 1 \(2024-01-01 01:00"):
        replay(votes, config=config)
    bars = pd.DataFrame(
        {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}, index=index
    )
    with pytest.raises(ValueError, match="at row 1"):
        sweep(bars, votes, None, Grid.product({"rules.fee": [0.0]}), config=config, blocks=2)
