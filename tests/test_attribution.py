"""Per-layer attribution: exact counterfactuals of Arbiter overrides and PnL by layer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qt_backtest.backtest import PositionRules, simulate, target_exposure
from qt_backtest.backtest.attribution import (
    counterfactual_decisions,
    counterfactual_path,
    override_values,
    pnl_by_layer,
    value_by,
)
from qt_backtest.data import load_sample, per_symbol, sample_dir
from qt_backtest.hierarchy import HierarchyConfig, replay
from qt_backtest.indicators import arbiter_inputs
from qt_backtest.signals import read_predictions


@pytest.fixture(scope="module")
def run():
    bars = load_sample("ETHUSDT-1h").iloc[-3000:]
    votes = per_symbol(read_predictions(sample_dir() / "sample-predictions.parquet"))[
        "ETHUSDT"
    ].iloc[-3000:]
    decisions = replay(votes, arbiter_inputs(bars), HierarchyConfig())
    return bars, votes, decisions


def test_counterfactual_is_a_plain_resimulation(run):
    bars, _, decisions = run
    rules = PositionRules()
    actual = simulate(bars, decisions, rules).value
    overrides = np.flatnonzero((decisions["gate"] == "override").to_numpy())
    assert overrides.size > 20
    for bar in overrides[:: max(1, overrides.size // 6)]:
        path = counterfactual_path(bars, decisions, int(bar), rules)
        direct = simulate(bars, counterfactual_decisions(decisions, int(bar)), rules).value
        pd.testing.assert_series_equal(path, direct, check_exact=True)
        # nothing differs before the override's fill
        pd.testing.assert_series_equal(
            path.iloc[: bar + 1], actual.iloc[: bar + 1], check_exact=True
        )


def test_override_values_settle_when_positions_agree(run):
    bars, votes, decisions = run
    rules = PositionRules()
    values = override_values(bars, decisions, rules, votes=votes, limit=15)
    actual = simulate(bars, decisions, rules).value
    assert len(values) == 15
    for row in values.itertuples():
        full = counterfactual_path(bars, decisions, row.bar, rules)
        settled = min(row.agree_bar + rules.execution_lag, len(bars) - 1)
        assert row.value == actual.iloc[settled] - full.iloc[settled]  # batch == single run
        # from the agreement bar on, both runs want the same exposure; before it they differ
        mine = target_exposure(decisions, rules).to_numpy()
        other = target_exposure(counterfactual_decisions(decisions, row.bar), rules).to_numpy()
        if mine[-1] != other[-1]:  # never agree before the data ends
            assert row.agree_bar == len(bars) - 1
            continue
        assert np.array_equal(mine[row.agree_bar :], other[row.agree_bar :])
        if row.agree_bar > row.bar:
            assert mine[row.agree_bar - 1] != other[row.agree_bar - 1]
    assert set(values["volatility_regime"].dropna()) <= {"low", "middle", "high"}
    assert values["vote_pattern"].str.fullmatch(r"[BSH-]{4}").all()  # four models vote
    table = value_by(values, "arbiter_reason")
    assert table["overrides"].sum() == 15
    assert table["total_value"].sum() == pytest.approx(values["value"].sum())


def test_pnl_by_layer_adds_up(run):
    bars, _, decisions = run
    result = simulate(bars, decisions)
    table = pnl_by_layer(result, decisions)
    total = result.value.iloc[-1] - result.rules.init_cash
    assert table["pnl"].sum() == pytest.approx(total)
    assert table["share_of_total"].sum() == pytest.approx(1.0)
    assert table["bars"].sum() == len(bars)
    # with the ensemble alone, the ensemble earns everything
    ensemble = replay(run[1], arbiter_inputs(bars), HierarchyConfig(mode="ensemble"))
    only = pnl_by_layer(simulate(bars, ensemble), ensemble)
    assert only.loc["arbiter", "pnl"] == 0.0 and only.loc["arbiter", "bars"] == 0


def test_long_histories_value_overrides_in_smaller_batches_with_the_same_result(run, monkeypatch):
    from qt_backtest.backtest import attribution

    bars, votes, decisions = run
    rules = PositionRules()
    whole = override_values(bars, decisions, rules, votes=votes, limit=12)
    monkeypatch.setattr(attribution, "BATCH_CELLS", 2 * len(bars))  # two columns at a time
    batched = override_values(bars, decisions, rules, votes=votes, limit=12)
    pd.testing.assert_frame_equal(batched, whole, check_exact=True)


def test_a_given_actual_run_values_overrides_as_a_fresh_simulation(run):
    bars, votes, decisions = run
    rules = PositionRules()
    actual = simulate(bars, decisions, rules)
    given = override_values(bars, decisions, rules, votes=votes, limit=6, actual=actual)
    fresh = override_values(bars, decisions, rules, votes=votes, limit=6)
    pd.testing.assert_frame_equal(given, fresh, check_exact=True)
    with pytest.raises(ValueError, match="actual must be the simulation"):
        override_values(bars, decisions, PositionRules(fee=0.0), limit=2, actual=actual)
