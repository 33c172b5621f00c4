"""Incremental override outcomes against the attribution's re-simulations (T-ATTR-2): same
overrides, settled bars and values on real bars under every supported position rule, settled
only once known, and unchanged by a JSON round trip of the state or by a different future."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from qt_backtest.backtest import PositionRules, simulate
from qt_backtest.backtest.attribution import override_values
from qt_backtest.codes import ACTION_DTYPE
from qt_backtest.data import load_ohlcv, per_symbol
from qt_backtest.errors import ConfigError, DataValidationError
from qt_backtest.hierarchy import HierarchyConfig, replay
from qt_backtest.indicators import arbiter_inputs
from qt_backtest.monitor.outcomes import OUTCOME_COLUMNS, OverrideOutcomes, override_outcomes
from qt_backtest.signals import read_predictions
from tests.conftest import data_file

BARS = 1200

VARIANTS = {
    "default": PositionRules(),
    "long_only": PositionRules(long_only=True),
    "hold_flat": PositionRules(hold="flat"),
    "max_hold_5": PositionRules(max_hold_bars=5),
    "fee": PositionRules(fee=0.003),
    "slippage": PositionRules(slippage_bps=12.5),
    "size": PositionRules(size=0.4),
    "size_by_confidence": PositionRules(size=0.7, scale_by_confidence=True),
    "lag_2": PositionRules(execution_lag=2),
    "close_lag_0": PositionRules(fill_price="close", execution_lag=0),
    "close_lag_1": PositionRules(fill_price="close", execution_lag=1),
    "mixed": PositionRules(hold="flat", max_hold_bars=3, execution_lag=2, slippage_bps=5.0),
}


@pytest.fixture(scope="module")
def eth():
    """The last BARS hourly ETHUSDT bars and their meta_arbiter replay on the sample votes."""
    bars = load_ohlcv(data_file("ETHUSDT-1h.csv.gz"))
    predictions = read_predictions(data_file("sample-predictions.parquet"))
    votes = per_symbol(predictions)["ETHUSDT"].reindex(bars.index).iloc[-BARS:]
    bars = bars.iloc[-BARS:]
    return bars, replay(votes, arbiter_inputs(bars), HierarchyConfig())


def _reference(bars, decisions, rules):
    """override_values in one vectorbt simulation per rules (after a close-out both runs can
    be worth 0: their ratio is NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return override_values(bars, decisions, rules, batch=100_000).set_index("bar")


def _check_against_reference(bars, decisions, rules, outcomes, reference):
    last = len(bars) - 1
    settled = outcomes.set_index("bar")
    open_ = outcomes.attrs["open_overrides"]
    # every override is either settled or still open, never both
    assert sorted([*settled.index, *open_]) == sorted(reference.index)
    ref = reference.loc[settled.index]
    assert (settled["agree_bar"] == ref["agree_bar"]).all()
    assert (
        settled["settled_bar"] == np.minimum(ref["agree_bar"] + rules.execution_lag, last)
    ).all()
    assert (settled["settled_timestamp"] == bars.index[settled["settled_bar"]]).all()
    assert (settled["timestamp"] == ref["timestamp"]).all()
    assert (settled["arbiter_action"] == ref["arbiter_action"]).all()
    assert (settled["base_action"] == ref["base_action"]).all()
    np.testing.assert_allclose(
        settled["relative_value"], ref["relative_value"], rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        settled["value"], ref["value"], rtol=1e-9, atol=1e-9 * rules.init_cash
    )
    # known at or after the bar it is valued at; as soon as that bar with no maximum holding
    assert (settled["known_bar"] >= settled["settled_bar"]).all()
    if rules.max_hold_bars is None:
        assert (settled["known_bar"] == settled["settled_bar"]).all()
    for bar in open_:
        # open at the end: the reference valued it at the last bar, or, with a maximum
        # holding, the two positions still count different bars held
        ref_settled = min(reference.loc[bar, "agree_bar"] + rules.execution_lag, last)
        assert ref_settled == last or rules.max_hold_bars is not None


@pytest.mark.parametrize("name", list(VARIANTS))
def test_outcomes_equal_the_attribution_on_real_bars(eth, name):
    bars, decisions = eth
    rules = VARIANTS[name]
    reference = _reference(bars, decisions, rules)
    outcomes = override_outcomes(bars, decisions, rules)
    assert len(reference) > 200
    assert len(outcomes) >= len(reference) - 5
    assert list(outcomes.columns) == list(OUTCOME_COLUMNS)
    _check_against_reference(bars, decisions, rules, outcomes, reference)


def _short_through_a_rally():
    """500 real hourly ETHUSDT bars from 2020-12-21 13:00 UTC (the price more than doubles)
    with drawn decisions that hold a short (SELL on a tenth of the bars, never BUY) and
    overrides on 15 % of the bars whose ensemble decision is drawn at random."""
    bars = load_ohlcv(data_file("ETHUSDT-1h.csv.gz"))
    start = bars.index.get_loc(pd.Timestamp("2020-12-21 13:00", tz="UTC"))
    bars = bars.iloc[start : start + 500]
    rng = np.random.default_rng(3)
    final = rng.choice(np.array(["SELL", "HOLD"]), len(bars), p=[0.1, 0.9])
    override = rng.uniform(size=len(bars)) < 0.15
    base = np.where(override, rng.choice(np.array(["SELL", "HOLD", "BUY"]), len(bars)), final)
    gates = ["override", "defer_low_confidence", "defer_hold", "defer_base_hold"]
    decisions = pd.DataFrame(
        {
            "base_action": pd.Categorical(base, dtype=ACTION_DTYPE),
            "base_confidence": 0.9,
            "meta_reason": "escalate",
            "arbiter_action": pd.Categorical(np.where(override, final, None), dtype=ACTION_DTYPE),
            "arbiter_reason": "drawn",
            "gate": pd.Categorical(np.where(override, "override", None), categories=gates),
            "final_action": pd.Categorical(final, dtype=ACTION_DTYPE),
            "final_confidence": 0.9,
        },
        index=bars.index,
    )
    return bars, decisions


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_close_outs_are_followed_as_in_the_attribution(margin):
    bars, decisions = _short_through_a_rally()
    rules = PositionRules(maintenance_margin=margin)
    ruin_bar = simulate(bars, decisions, rules).metrics["ruin_bar"]
    assert ruin_bar > 0  # the actual run is closed out
    reference = _reference(bars, decisions, rules)
    outcomes = override_outcomes(bars, decisions, rules)
    _check_against_reference(bars, decisions, rules, outcomes, reference)
    assert (outcomes["bar"] < ruin_bar).sum() > 20 and (outcomes["bar"] > ruin_bar).sum() > 5


def _feed(monitor, bars, decisions, first, last, state_at=()):
    """Step ``monitor`` through bars [first, last), saving and restoring its state through JSON
    before each bar in ``state_at``; returns (monitor, outcomes)."""
    outcomes = []
    override = (decisions["gate"] == "override").to_numpy(dtype=bool, na_value=False)
    for t in range(first, last):
        if t in state_at:
            text = json.dumps(monitor.to_dict(), allow_nan=False)  # strict JSON
            monitor = OverrideOutcomes.from_dict(json.loads(text))
        row = decisions.iloc[t]
        settled = monitor.step(
            bars.index[t],
            *bars[["open", "high", "low", "close"]].iloc[t],
            action=str(row["final_action"]),
            confidence=row["final_confidence"],
            ensemble_action=str(row["base_action"]),
            ensemble_confidence=row["base_confidence"],
            override=bool(override[t]),
            arbiter_action=str(row["arbiter_action"]) if override[t] else None,
        )
        assert all(outcome["known_bar"] == t for outcome in settled)  # returned when known
        outcomes += settled
    return monitor, outcomes


@pytest.mark.parametrize("name", ["max_hold_5", "mixed", "close_lag_0"])
def test_bar_by_bar_with_state_round_trips_equals_the_whole_replay(eth, name):
    bars, decisions = eth
    rules = VARIANTS[name]
    rng = np.random.default_rng(11)
    state_at = set(rng.choice(np.arange(1, len(bars)), 12, replace=False).tolist())
    monitor, stepped = _feed(OverrideOutcomes(rules), bars, decisions, 0, len(bars), state_at)
    whole = override_outcomes(bars, decisions, rules)
    assert len(stepped) == len(whole) > 200
    for mine, theirs in zip(stepped, whole.to_dict("records"), strict=True):
        assert mine.keys() == theirs.keys()
        for key in OUTCOME_COLUMNS:
            assert mine[key] == theirs[key] or (
                key == "relative_value" and np.isnan(mine[key]) and np.isnan(theirs[key])
            ), key
    assert [row["bar"] for row in monitor.open_overrides] == whole.attrs["open_overrides"]
    assert monitor.bars == len(bars)


def test_the_state_is_json_and_restores_to_the_same_outcomes(eth):
    bars, decisions = eth
    rules = VARIANTS["mixed"]
    cut = 700
    monitor, _ = _feed(OverrideOutcomes(rules, 0.6), bars, decisions, 0, cut)
    state = monitor.to_dict()
    restored = OverrideOutcomes.from_dict(json.loads(json.dumps(state, allow_nan=False)))
    assert restored.to_dict() == state
    assert restored.rules == rules and restored.min_trade_confidence == 0.6
    _, after = _feed(restored, bars, decisions, cut, len(bars))
    _, straight = _feed(monitor, bars, decisions, cut, len(bars))
    assert after == straight and len(after) > 50


def _perturbed_prices(bars, after, seed):
    """``bars`` with every bar after ``after`` scaled by its own random factor."""
    rng = np.random.default_rng(seed)
    changed = bars.copy()
    factor = np.exp(rng.normal(0.0, 0.02, len(bars) - after - 1))
    for column in ("open", "high", "low", "close"):
        changed.iloc[after + 1 :, changed.columns.get_loc(column)] *= factor
    return changed


@pytest.mark.parametrize("name", ["default", "max_hold_5", "lag_2"])
def test_a_different_future_leaves_earlier_outcomes_alone(eth, name):
    bars, decisions = eth
    rules = VARIANTS[name]
    original = override_outcomes(bars, decisions, rules)
    for cut in (300, 777):
        # other prices after the cut: outcomes valued up to it do not move
        moved = override_outcomes(_perturbed_prices(bars, cut, cut), decisions, rules)
        before = original[original["settled_bar"] <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(
            moved[moved["settled_bar"] <= cut].reset_index(drop=True), before
        )
        later = original[original["settled_bar"] > cut + 1].set_index("bar")["value"]
        differs = moved.set_index("bar")["value"].loc[later.index] != later
        assert differs[later != 0.0].mean() > 0.9  # overrides that changed nothing stay at 0
        # other decisions after the cut: what was known by the cut stays as it was
        rng = np.random.default_rng(cut)
        redecided = decisions.copy()
        redrawn = rng.choice(np.array(["SELL", "HOLD", "BUY"]), len(bars) - cut - 1)
        actions = np.array(redecided["final_action"].astype(object))
        actions[cut + 1 :] = redrawn
        redecided["final_action"] = pd.Categorical(actions, dtype=ACTION_DTYPE)
        changed = override_outcomes(bars, redecided, rules)
        known = original[original["known_bar"] <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(
            changed[changed["known_bar"] <= cut].reset_index(drop=True), known
        )
        assert len(known) > 50


def _bar(**changes):
    values = {
        "timestamp": pd.Timestamp("2024-01-01 05:00", tz="UTC"),
        "open_": 100.0,
        "high": 102.0,
        "low": 99.0,
        "close": 101.0,
        "action": "BUY",
        "confidence": 0.8,
        "ensemble_action": "HOLD",
        "ensemble_confidence": 0.5,
        "override": True,
    }
    values.update(changes)
    return values


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"close": float("nan")}, "close price must be a finite number > 0"),
        ({"open_": -1.0}, "open price must be a finite number > 0"),
        ({"high": float("inf")}, "high price must be a finite number > 0"),
        ({"low": "cheap"}, "low price must be a finite number > 0"),
        ({"high": 100.5}, "prices are inconsistent"),
        ({"action": "STRONG_BUY"}, "action: unknown action 'STRONG_BUY'"),
        ({"ensemble_action": 2}, "ensemble_action: unknown action 2"),
        ({"confidence": 1.5}, r"confidence must be a number in \[0, 1\], got 1.5"),
        ({"ensemble_confidence": -0.1}, r"ensemble_confidence must be a number in \[0, 1\]"),
        ({"confidence": float("nan")}, r"confidence must be a number in \[0, 1\], got nan"),
        ({"override": "yes"}, "override must be True or False"),
        ({"timestamp": pd.Timestamp("2024-01-01 04:00", tz="UTC")}, "is not after"),
        ({"timestamp": pd.Timestamp("2024-01-01 06:00")}, "mixes time-zone-aware and naive"),
        ({"timestamp": pd.NaT}, "timestamp is missing"),
    ],
)
def test_bad_input_is_refused_and_leaves_the_state_alone(changes, message):
    monitor = OverrideOutcomes()
    monitor.step(**_bar(timestamp=pd.Timestamp("2024-01-01 04:00", tz="UTC")))
    state = monitor.to_dict()
    with pytest.raises(DataValidationError, match=message):
        monitor.step(**_bar(**changes))
    assert monitor.to_dict() == state
    monitor.step(**_bar())  # the good bar is still taken
    assert monitor.bars == 2


def test_rules_an_incremental_run_cannot_follow_are_refused_by_name():
    for field, value in (("size_granularity", 1.0), ("close_at_end", True)):
        with pytest.raises(ConfigError, match=f"do not support {field}") as error:
            OverrideOutcomes(PositionRules(**{field: value}))
        assert error.value.name == field
    with pytest.raises(ConfigError, match="min_trade_confidence must be in"):
        OverrideOutcomes(min_trade_confidence=1.5)
    with pytest.raises(ConfigError, match="state version"):
        OverrideOutcomes.from_dict({**OverrideOutcomes().to_dict(), "version": 99})
    with pytest.raises(ConfigError, match="misses"):
        OverrideOutcomes.from_dict({"version": 1})


def test_the_ensemble_decision_passes_the_risk_governor():
    # a long opened by the stage; at the override the ensemble's SELL is too weak to trade,
    # so the counterfactual holds the long as well: nothing differs, the outcome is 0
    times = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    monitor = OverrideOutcomes()
    prices = (100.0, 102.0, 99.0, 101.0)
    decided = [
        ("BUY", 0.9, "BUY", 0.9, False),
        ("HOLD", 0.7, "SELL", 0.6, True),  # below 0.65: the governor makes it HOLD
        ("HOLD", 0.5, "HOLD", 0.5, False),
        ("HOLD", 0.5, "HOLD", 0.5, False),
    ]
    outcomes = []
    for time, (action, confidence, base, base_confidence, override) in zip(
        times, decided, strict=True
    ):
        outcomes += monitor.step(
            time,
            *prices,
            action=action,
            confidence=confidence,
            ensemble_action=base,
            ensemble_confidence=base_confidence,
            override=override,
        )
    assert [(o["bar"], o["settled_bar"], o["value"]) for o in outcomes] == [(1, 2, 0.0)]
    ungoverned = OverrideOutcomes(min_trade_confidence=None)
    results = []
    for time, (action, confidence, base, base_confidence, override) in zip(
        times, decided, strict=True
    ):
        results += ungoverned.step(
            time,
            *prices,
            action=action,
            confidence=confidence,
            ensemble_action=base,
            ensemble_confidence=base_confidence,
            override=override,
        )
    # without the governor the counterfactual goes short at bar 1 and never agrees again
    assert results == [] and [o["bar"] for o in ungoverned.open_overrides] == [1]


def test_times_keep_their_nanoseconds_and_zone_through_the_state():
    # across the switch to summer time, at odd nanoseconds
    first = pd.Timestamp("2024-03-31 00:59:59.123456789", tz="Europe/Berlin")
    times = [first + pd.Timedelta(hours=h) for h in range(3)]
    monitor = OverrideOutcomes()
    monitor.step(**_bar(timestamp=times[0], override=False))
    monitor.step(**_bar(timestamp=times[1], action="SELL", ensemble_action="BUY"))
    state = json.loads(json.dumps(monitor.to_dict(), allow_nan=False))
    restored = OverrideOutcomes.from_dict(state)
    assert restored.open_overrides == monitor.open_overrides
    assert restored.open_overrides[0]["timestamp"] == times[1]
    assert str(restored.open_overrides[0]["timestamp"].tz) == "Europe/Berlin"
    assert restored.step(**_bar(timestamp=times[2])) == monitor.step(**_bar(timestamp=times[2]))
    with pytest.raises(ConfigError, match="'actual' must hold rows of 10 numbers"):
        OverrideOutcomes.from_dict({**state, "rules": {**state["rules"], "execution_lag": 2}})
