"""Mode comparison and rollout check on the bundled data and sample predictions."""

from __future__ import annotations

import pandas as pd
import pytest

from qt_backtest.backtest import RUNS, compare_modes, rollout_check, simulate
from qt_backtest.data import load_sample, per_symbol, sample_dir
from qt_backtest.hierarchy import decision_rates
from qt_backtest.indicators import arbiter_inputs
from qt_backtest.signals import read_predictions

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture(scope="module")
def comparison():
    votes = read_predictions(sample_dir() / "sample-predictions.parquet")
    window = slice(-6000, None)  # the last months: every bar has votes
    bars = {s: load_sample(f"{s}-1h").iloc[window] for s in SYMBOLS}
    return compare_modes(
        bars,
        {s: per_symbol(votes)[s].iloc[window] for s in SYMBOLS},
        arbiter_inputs(bars),
    ), bars


def test_table_has_every_symbol_run_and_the_aggregate(comparison):
    result, _ = comparison
    assert list(result.table.index) == [(s, r) for s in (*SYMBOLS, "equal_weight") for r in RUNS]
    assert result.equity.shape[1] == len(SYMBOLS) * len(RUNS)


def test_meta_mode_records_escalations_but_trades_like_the_ensemble(comparison):
    result, _ = comparison
    for symbol in SYMBOLS:
        pd.testing.assert_series_equal(
            result.results[symbol, "meta"].value,
            result.results[symbol, "ensemble"].value,
            check_exact=True,
        )
        assert result.decisions[symbol, "meta"]["meta_decision"].notna().any()
        overrides = (result.decisions[symbol, "meta_arbiter"]["gate"] == "override").sum()
        assert overrides > 0
        assert not result.results[symbol, "meta_arbiter"].value.equals(
            result.results[symbol, "ensemble"].value
        )


def test_each_run_equals_its_own_simulation(comparison):
    result, bars = comparison
    for symbol in SYMBOLS:
        direct = simulate(bars[symbol], result.decisions[symbol, "meta_arbiter"])
        pd.testing.assert_series_equal(
            direct.value, result.results[symbol, "meta_arbiter"].value, check_exact=True
        )


def test_equal_weight_aggregate(comparison):
    result, _ = comparison
    curves = [result.results[s, "ensemble"].value / 100_000 for s in SYMBOLS]
    combined = pd.concat(curves, axis=1).mean(axis=1) * 100_000
    assert result.table.loc[("equal_weight", "ensemble"), "total_return"] == pytest.approx(
        combined.iloc[-1] / 100_000 - 1
    )


def test_rollout_check(comparison):
    result, _ = comparison
    check = rollout_check(result)
    for symbol in SYMBOLS:
        decisions = result.decisions[symbol, "meta_arbiter"]
        rates = decision_rates(decisions[decisions["voters"] > 0])
        for rate in rates.index:
            assert check.loc[(symbol, rate), "passes"] == rates.loc[rate, "passes"]
        difference = (
            result.table.loc[(symbol, "meta_arbiter"), "sharpe"]
            - result.table.loc[(symbol, "ensemble"), "sharpe"]
        )
        assert check.loc[(symbol, "sharpe_vs_ensemble"), "value"] == pytest.approx(difference)
        assert check.loc[(symbol, "sharpe_vs_ensemble"), "passes"] == (difference >= 0)


def test_inputs_must_name_the_same_symbols():
    bars = {"A": load_sample("BTCUSDT-1h").iloc[:100]}
    with pytest.raises(ValueError, match="must name the same symbols"):
        compare_modes(bars, {"B": bars["A"]}, {"A": bars["A"]})


def test_every_run_is_scored_on_the_window_of_the_votes():
    # votes start at bar 300: no run may trade before it, buy-and-hold included
    bars = load_sample("BTCUSDT-1h").iloc[-1500:]
    votes = read_predictions(sample_dir() / "sample-predictions.parquet")
    votes = per_symbol(votes)["BTCUSDT"].reindex(bars.index)
    assert votes.notna().all().all()
    late = votes.copy()
    late.iloc[:300] = None
    late.iloc[-100:] = None
    result = compare_modes(bars, late, arbiter_inputs(bars))
    assert set(RUNS) == {run for _, run in result.table.index}
    start, end = bars.index[300], bars.index[-101]
    window = result.windows.loc["BTCUSDT"]
    assert (window["start"], window["end"], window["warmup_bars"]) == (start, end, 300)
    for run in RUNS:
        run_result = result.results["BTCUSDT", run]
        assert run_result.value.index[0] == start and run_result.value.index[-1] == end
        assert (run_result.orders["timestamp"] > start).all()  # next-bar fills
        assert len(run_result.orders) > 0
    hold = result.results["BTCUSDT", "buy_and_hold"]
    assert len(hold.orders) == 1 and hold.orders["size"].iloc[0] > 0
    fee = 0.0004
    expected = (1 - fee) * bars["close"].loc[end] / bars["open"].loc[bars.index[301]] - 1
    assert hold.metrics["total_return"] == pytest.approx(expected, rel=1e-3)


def test_no_vote_at_all_is_an_error():
    bars = load_sample("BTCUSDT-1h").iloc[:50]
    votes = pd.DataFrame(
        {"xgb_action": [None] * 50, "xgb_confidence": [None] * 50}, index=bars.index
    )
    with pytest.raises(ValueError, match="no model voted on any bar"):
        compare_modes(bars, votes, arbiter_inputs(bars))
