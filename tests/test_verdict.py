"""Period returns and the verdicts on a comparison."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from qt_backtest.backtest import compare_modes
from qt_backtest.data import load_sample, per_symbol, sample_dir
from qt_backtest.indicators import arbiter_inputs
from qt_backtest.inference.returns import period_returns
from qt_backtest.inference.verdict import (
    ADDS,
    IDENTICAL,
    LOSES,
    UNDECIDED,
    VerdictSettings,
    layer_verdicts,
    verdict_word,
)
from qt_backtest.signals import read_predictions

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _hours(values, start="2024-01-01 20:00"):
    index = pd.date_range(start, periods=len(values), freq="2h", tz="UTC")
    return pd.Series(values, index=index, dtype=float)


def test_period_returns_by_hand():
    # bars at 20:00, 22:00 (day 1); 00:00 ... 22:00 (day 2); 00:00, 02:00 (day 3)
    value = _hours([101, 102] + [100] * 11 + [104] + [105, 99])
    returns = period_returns(value, 100.0, "1D")
    assert list(returns.index.day) == [1, 2, 3]
    np.testing.assert_allclose(returns.to_numpy(), [102 / 100 - 1, 104 / 102 - 1, 99 / 104 - 1])


def test_period_returns_compound_the_bar_returns_of_each_period():
    rng = np.random.default_rng(0)
    value = _hours(100 * np.cumprod(1 + rng.normal(0, 0.01, 500)))
    returns = period_returns(value, 100.0, "1D")
    bars = value.pct_change().fillna(value.iloc[0] / 100 - 1)
    compounded = (1 + bars).groupby(bars.index.floor("1D")).prod() - 1
    np.testing.assert_allclose(returns.to_numpy(), compounded.to_numpy(), rtol=0, atol=1e-12)


def test_period_returns_after_ruin_are_zero_and_frames_keep_columns():
    value = pd.DataFrame({"a": [100.0] * 12 + [0.0] * 24, "b": np.linspace(100, 110, 36)})
    value.index = pd.date_range("2024-01-01", periods=36, freq="2h", tz="UTC")
    returns = period_returns(value, 100.0, "1D")
    assert list(returns.columns) == ["a", "b"]
    assert returns["a"].tolist() == [0.0, -1.0, 0.0]


@pytest.mark.parametrize(
    "value, period, message",
    [
        (_hours([]), "1D", "at least one bar"),
        (_hours([1.0, np.nan]), "1D", "NaN"),
        (_hours([1.0, 2.0]).iloc[::-1], "1D", "increasing"),
        (pd.concat([_hours([1.0]), _hours([2.0])]), "1D", "duplicates"),
        (_hours([1.0, 2.0]), "daily", "period"),
        (_hours([1.0, 2.0]), "-1D", "period"),
        (pd.Series([1.0, 2.0]), "1D", "timestamps"),
    ],
)
def test_period_returns_reject_bad_input(value, period, message):
    with pytest.raises(ValueError, match=message):
        period_returns(value, 100.0, period)


def test_verdict_words():
    assert verdict_word(0.1, 0.5, 0.01, 0.9) == ADDS
    assert verdict_word(-0.5, -0.1, 0.01, 0.9) == LOSES
    assert verdict_word(-0.5, 0.1, 0.01, 0.9) == UNDECIDED
    assert verdict_word(0.1, 0.5, 0.2, 0.9) == UNDECIDED  # the interval alone is not enough


@pytest.mark.parametrize(
    "change, message",
    [
        ({"confidence": 1.0}, "confidence"),
        ({"draws": 0}, "draws"),
        ({"block_length": 0.5}, "block_length"),
        ({"seed": -1}, "seed"),
        ({"period": "often"}, "period"),
        ({"drops": (0.5, -1.0)}, "drops"),
        ({"power": 1.5}, "power"),
        ({"alpha": 0.0}, "alpha"),
        ({"benchmark": ""}, "benchmark"),
    ],
)
def test_verdict_settings_out_of_range_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        VerdictSettings(**change)


@pytest.fixture(scope="module")
def comparison():
    votes = read_predictions(sample_dir() / "sample-predictions.parquet")
    window = slice(-6000, None)
    bars = {s: load_sample(f"{s}-1h").iloc[window] for s in SYMBOLS}
    return compare_modes(
        bars, {s: per_symbol(votes)[s].iloc[window] for s in SYMBOLS}, arbiter_inputs(bars)
    )


@pytest.fixture(scope="module")
def verdicts(comparison):
    return layer_verdicts(comparison, VerdictSettings(draws=400, seed=3))


def test_verdicts_cover_every_transition_symbol_and_the_aggregate(verdicts):
    symbols = [*SYMBOLS, "equal_weight"]
    pairs = [
        ("meta", "ensemble"),
        ("meta_arbiter", "meta"),
        ("meta_arbiter", "ensemble"),
        ("meta_arbiter", "buy_and_hold"),
    ]
    assert list(verdicts.tests.index) == [(s, *pair) for s in symbols for pair in pairs]
    assert len(verdicts.effects) == len(symbols) * len(pairs) * 4
    assert len(verdicts.power) == len(symbols) * len(pairs) * 3
    assert list(verdicts.confidence_set.index.get_level_values("run").unique()) == [
        "ensemble",
        "meta",
        "meta_arbiter",
    ]


def test_verdict_figures_are_those_of_the_period_returns(comparison, verdicts):
    returns = verdicts.returns["BTCUSDT"]
    value = comparison.results["BTCUSDT", "meta_arbiter"].value
    expected = period_returns(value, comparison.rules.init_cash, "1D")
    np.testing.assert_array_equal(returns["meta_arbiter"].to_numpy(), expected.to_numpy())
    row = verdicts.tests.loc[("BTCUSDT", "meta_arbiter", "meta")]
    sharpe = returns.mean() / returns.std(ddof=1) * np.sqrt(365)
    assert row["sharpe_difference"] == pytest.approx(sharpe["meta_arbiter"] - sharpe["meta"])
    assert row["low"] < row["sharpe_difference"] < row["high"]
    assert row["periods"] == len(returns)
    record = verdicts.track_record.loc[("BTCUSDT", "buy_and_hold")]
    assert record["sharpe"] == pytest.approx(sharpe["buy_and_hold"])


def test_meta_alone_is_reported_as_changing_nothing(verdicts):
    """Meta's escalations fall back to the ensemble: the same trades, the same returns."""
    row = verdicts.tests.loc[("BTCUSDT", "meta", "ensemble")]
    assert row["verdict"] == IDENTICAL
    assert "changes nothing" in row["sentence"]


def test_sentences_state_effect_interval_p_value_and_meaning(verdicts):
    row = verdicts.tests.loc[("ETHUSDT", "meta_arbiter", "meta")]
    sentence = row["sentence"]
    assert sentence.startswith("Arbiter on top of Meta, ETHUSDT: Sharpe ")
    assert f"[{row['low']:+.2f}, {row['high']:+.2f}] (90 %)" in sentence
    assert sentence.endswith(
        {ADDS: "adds value", LOSES: "loses value", UNDECIDED: "beyond chance"}[row["verdict"]]
    )


def test_verdicts_are_deterministic_for_a_seed(comparison, verdicts):
    again = layer_verdicts(comparison, VerdictSettings(draws=400, seed=3))
    pd.testing.assert_frame_equal(again.tests, verdicts.tests)
    pd.testing.assert_frame_equal(again.effects, verdicts.effects)
    other = layer_verdicts(comparison, dataclasses.replace(verdicts.settings, seed=4))
    assert not other.effects["low"].equals(verdicts.effects["low"])


def test_rollout_power_shrinks_with_the_square_of_the_drop(verdicts):
    power = verdicts.power.sort_index().xs(("BTCUSDT", "meta_arbiter", "meta"))
    assert power.loc[0.5, "periods"] == pytest.approx(power.loc[0.25, "periods"] / 4)
    assert power.loc[1.0, "bars"] == pytest.approx(power.loc[1.0, "days"] * 24)


def test_regimes_are_per_symbol_for_the_transitions_that_change_something(verdicts):
    regimes = verdicts.regimes
    assert set(regimes.index.get_level_values("symbol")) == set(SYMBOLS)
    pairs = set(
        zip(*(regimes.index.get_level_values(n) for n in ("later", "earlier")), strict=True)
    )
    assert ("meta", "ensemble") not in pairs  # identical returns: nothing to split
    assert ("meta_arbiter", "meta") in pairs


def test_unknown_benchmark_is_named(comparison):
    with pytest.raises(ValueError, match="no run named"):
        layer_verdicts(comparison, VerdictSettings(draws=50, benchmark="index_fund"))
