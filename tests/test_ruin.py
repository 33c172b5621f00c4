"""Close-outs: an account that reaches the maintenance level is liquidated once, at the level
or a gapped open (never past the bankruptcy price), and trades no more; single runs, the
sweep kernel and the comparison agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qt_backtest.backtest import PositionRules, compare_modes, rollout_check, simulate
from qt_backtest.backtest.nb import liquidation_level_nb
from qt_backtest.data.loaders import frame_symbol
from qt_backtest.hierarchy import HierarchyConfig, replay
from qt_backtest.indicators import ArbiterInputConfig, arbiter_inputs
from qt_backtest.inference import period_returns
from qt_backtest.sweep import Grid, apply_parameters, rank_rows, sweep

MODELS = ("xgb", "lgbm", "nhits", "patchtst")


def rally_then_fall(bars: int = 600):
    """Hourly bars: 100 up to 320 over the first half, then down to 60."""
    close = np.concatenate([np.linspace(100, 320, bars // 2), np.linspace(320, 60, bars // 2)])
    return ohlcv(np.concatenate([[100.0], close[:-1]]), close)


def ohlcv(open_, close, spread=0.001):
    index = pd.date_range("2024-01-01", periods=len(close), freq="h", tz="UTC", name="timestamp")
    open_, close = np.asarray(open_, float), np.asarray(close, float)
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread),
            "low": np.minimum(open_, close) * (1 - spread),
            "close": close,
            "volume": np.full(len(close), 10.0),
        },
        index=index,
    )


def unanimous_votes(bars, letters):
    """Four models voting the same action per bar (S, B, H), confidence 0.9."""
    names = {"S": "SELL", "B": "BUY", "H": "HOLD"}
    votes = pd.DataFrame(index=bars.index)
    actions = [names[c] for c in letters]
    for model in MODELS:
        votes[f"{model}_action"] = actions
        votes[f"{model}_confidence"] = 0.9
    return votes


def test_a_short_through_a_rally_is_closed_out_at_its_level():
    bars = rally_then_fall()
    decisions = pd.Series(["SELL"] + ["HOLD"] * (len(bars) - 1), index=bars.index)
    rules = PositionRules()
    result = simulate(bars, decisions, rules)
    metrics = result.metrics
    assert bool(metrics["ruined"])
    ruin = int(metrics["ruin_bar"])
    # the short opened at bar 1's open; its level is where equity after the fee is zero
    short = result.orders.iloc[0]
    cash = rules.init_cash - short["size"] * short["price"] - short["fees"]
    level = liquidation_level_nb(cash, short["size"], rules.fee, 0.0)
    assert bars["high"].iloc[ruin] >= level > bars["high"].iloc[ruin - 1]
    assert result.orders["bar"].tolist() == [1, ruin]
    assert result.orders["price"].iloc[1] == pytest.approx(level, rel=1e-12)
    # nothing after the close-out: equity flat at zero, no position
    assert result.value.min() >= -1e-6 * rules.init_cash
    assert (result.value.iloc[ruin:] == result.value.iloc[ruin]).all()
    assert (result.position.iloc[ruin:] == 0).all()
    assert metrics["total_return"] == pytest.approx(-1.0, abs=1e-9)
    assert metrics["max_drawdown"] == pytest.approx(-1.0, abs=1e-9)
    assert metrics["cagr"] == -1.0
    assert result.trades["closed"].all() and len(result.trades) == 1


def test_a_gap_fills_at_the_open_but_never_past_the_bankruptcy_price():
    # short 1000 units at 100, no fee: cash 200k; with a 20 % maintenance margin the level is
    # 200k / (1000 x 1.2) = 166.67 and the bankruptcy price 200
    bars = ohlcv([100, 100, 120, 180, 150], [100, 110, 125, 170, 150], spread=0.0)
    decisions = pd.Series(["SELL", "HOLD", "HOLD", "HOLD", "HOLD"], index=bars.index)
    rules = PositionRules(fee=0.0, maintenance_margin=0.2)
    result = simulate(bars, decisions, rules)
    assert int(result.metrics["ruin_bar"]) == 3  # bar 3 opens at 180, past the level
    assert result.orders["price"].iloc[-1] == 180.0
    assert result.value.iloc[-1] == pytest.approx(100_000 + 1000 * (100 - 180))
    deeper = bars.copy()
    deeper.loc[deeper.index[3], ["open", "high"]] = 250.0
    worst = simulate(deeper, decisions, rules)
    assert worst.orders["price"].iloc[-1] == pytest.approx(200.0)
    assert worst.value.iloc[-1] == pytest.approx(0.0, abs=1e-6)


def test_a_position_can_be_closed_out_on_the_bar_it_opens():
    # a short opened at bar 1's open (100) whose bar runs to 210: the entry, then the
    # close-out at about 199.9 on the same bar (two orders on one bar)
    bars = ohlcv([100, 100, 95, 96], [100, 95, 96, 97], spread=0.0)
    bars.loc[bars.index[1], "high"] = 210.0
    decisions = pd.Series(["SELL", "HOLD", "HOLD", "HOLD"], index=bars.index)
    result = simulate(bars, decisions, PositionRules())
    assert int(result.metrics["ruin_bar"]) == 1
    assert result.orders["bar"].tolist() == [1, 1]
    assert 199 < result.orders["price"].iloc[1] < 200
    assert result.value.iloc[-1] == pytest.approx(0.0, abs=1e-6)
    assert not bool(simulate(bars, decisions, PositionRules(size=0.4)).metrics["ruined"])


def test_orders_filling_at_the_close_meet_the_whole_bar_first():
    bars = rally_then_fall()
    decisions = pd.Series(["SELL"] + ["HOLD"] * (len(bars) - 1), index=bars.index)
    rules = PositionRules(fill_price="close", execution_lag=0)
    result = simulate(bars, decisions, rules)
    assert bool(result.metrics["ruined"])
    assert result.orders["bar"].iloc[0] == 0 and len(result.orders) == 2
    assert result.value.iloc[-1] == pytest.approx(0.0, abs=1e-6)


def test_the_sweep_and_the_comparison_close_out_the_same_bar():
    bars = rally_then_fall()
    votes = unanimous_votes(bars, "S" + "H" * (len(bars) - 1))
    inputs = arbiter_inputs(bars, ArbiterInputConfig(macd_scale="percent"))
    comparison = compare_modes(bars, votes, inputs)
    ensemble = comparison.results["series", "ensemble"]
    assert bool(ensemble.metrics["ruined"])
    assert ensemble.metrics["total_return"] == pytest.approx(-1.0, abs=1e-9)
    check = rollout_check(comparison)
    if bool(comparison.table.loc[("series", "meta_arbiter"), "ruined"]):
        assert not check["passes"].any()
    grid = Grid.product({"rules.fee": [0.0, 0.0004], "rules.size": [0.3, 1.0]})
    result = sweep(bars, votes, inputs, grid, modes=["ensemble"], blocks=3)
    for position, combination in enumerate(grid.combinations):
        config, rules = apply_parameters(
            HierarchyConfig(mode="ensemble"), PositionRules(), combination
        )
        single = simulate(bars, replay(votes, inputs, config), rules)
        row = result.frame.iloc[position]
        assert row["ruined"] == bool(single.metrics["ruined"])
        assert row["ruin_bar"] == single.metrics["ruin_bar"]
        assert row["total_return"] == single.metrics["total_return"]
        assert row["sharpe"] == pytest.approx(single.metrics["sharpe"], rel=1e-9)
    # a 0.3 short survives the rise to 3.2x (its level is 4.3x), a full one does not
    assert result.frame["ruined"].tolist() == [False, True, False, True]


def test_a_ruined_meta_arbiter_run_fails_every_rollout_criterion():
    bars = rally_then_fall()
    votes = unanimous_votes(bars, "S" + "H" * (len(bars) - 1))
    inputs = arbiter_inputs(bars, ArbiterInputConfig(macd_scale="percent"))
    comparison = compare_modes(bars, votes, inputs)
    assert bool(comparison.table.loc[("series", "meta_arbiter"), "ruined"])
    check = rollout_check(comparison)
    assert len(check) > 1 and not check["passes"].any()


@st.composite
def jumpy_market(draw):
    """A price path with jumps and gaps, and random unanimous decisions."""
    seed = draw(st.integers(0, 2**16))
    bars = draw(st.integers(40, 160))
    rng = np.random.default_rng(seed)
    # jumps mostly up, so that shorts are often closed out
    jumps = rng.choice([-1.0, 1.0], bars, p=[0.3, 0.7]) * rng.uniform(0.1, 0.8, bars)
    steps = rng.normal(0, 0.02, bars) + np.where(rng.uniform(size=bars) < 0.06, jumps, 0.0)
    close = 100 * np.exp(np.cumsum(steps))
    gaps = np.where(rng.uniform(size=bars) < 0.1, rng.normal(0, 0.1, bars), 0.0)
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(gaps)
    frame = ohlcv(open_, close, spread=0.0)
    frame["high"] *= np.exp(np.abs(rng.normal(0, 0.02, bars)))
    frame["low"] *= np.exp(-np.abs(rng.normal(0, 0.02, bars)))
    letters = "".join(rng.choice(list("SBHHH"), bars))
    return frame, letters


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    market=jumpy_market(),
    size=st.sampled_from([0.3, 0.6, 1.0]),
    maintenance=st.sampled_from([0.0, 0.05]),
    fill_price=st.sampled_from(["open", "close"]),
    long_only=st.booleans(),
)
def test_sweep_rows_equal_single_runs_with_close_outs(
    market, size, maintenance, fill_price, long_only
):
    bars, letters = market
    votes = unanimous_votes(bars, letters)
    inputs = arbiter_inputs(bars, ArbiterInputConfig(macd_scale="percent"))
    fixed = PositionRules(fill_price=fill_price, execution_lag=1 if fill_price == "open" else 0)
    base = {
        "rules.size": size,
        "rules.maintenance_margin": maintenance,
        "rules.long_only": long_only,
    }
    grid = Grid.from_records([{**base, "rules.fee": fee} for fee in (0.0, 0.001)])
    result = sweep(bars, votes, inputs, grid, rules=fixed, modes=["ensemble"], blocks=2)
    for position, combination in enumerate(grid.combinations):
        config, rules = apply_parameters(HierarchyConfig(mode="ensemble"), fixed, combination)
        single = simulate(bars, replay(votes, inputs, config), rules)
        row = result.frame.iloc[position]
        metrics = single.metrics
        assert row["ruined"] == bool(metrics["ruined"])
        assert row["ruin_bar"] == metrics["ruin_bar"]
        for name in ("total_return", "max_drawdown", "trades", "fees_paid", "exposure"):
            assert row[name] == pytest.approx(metrics[name], rel=1e-9, abs=1e-12), name
        expected = period_returns(single.value, rules.init_cash, "1D")
        got = result.period_returns(frame_symbol(bars))[position]
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)
        if metrics["ruined"]:
            ruin = int(metrics["ruin_bar"])
            assert (single.orders["bar"] <= ruin).all()
            assert single.value.iloc[-1] >= -1e-6 * rules.init_cash
            assert metrics["total_return"] == pytest.approx(-1.0, abs=0.02) or maintenance > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0.0}, r"size must be a number in \(0, 1\], got 0.0"),
        ({"size": 1.5}, r"size must be a number in \(0, 1\], got 1.5"),
        ({"maintenance_margin": 0.6}, "maintenance_margin must be a number"),
        ({"maintenance_margin": -0.01}, "maintenance_margin must be a number"),
    ],
)
def test_size_and_margin_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PositionRules(**kwargs)


def test_sweeps_rank_ruined_combinations_last():
    bars = rally_then_fall()
    votes = unanimous_votes(bars, "S" + "H" * (len(bars) - 1))
    inputs = arbiter_inputs(bars, ArbiterInputConfig(macd_scale="percent"))
    grid = Grid.product({"rules.size": [0.2, 0.3, 1.0]})
    result = sweep(bars, votes, inputs, grid, modes=["ensemble"], blocks=4)
    frame = result.frame
    assert frame["ruined"].tolist() == [False, False, True]
    ranked = result.ranked("total_return")
    assert not ranked["ruined"].iloc[:2].any() and ranked["ruined"].iloc[-1]
    # a ruined row ranks last even where its metric is the best
    fake = frame.assign(sharpe=np.where(frame["ruined"], 99.0, frame["sharpe"]))
    assert bool(rank_rows(fake, "sharpe")["ruined"].iloc[-1])
    report = result.overfitting("sharpe")["series"]
    assert not bool(report.best["ruined"])


def test_batched_runs_close_out_each_column_as_its_own_run():
    from qt_backtest.backtest import target_exposure
    from qt_backtest.backtest.simulate import run_portfolio

    bars = rally_then_fall()
    rules = PositionRules()
    runs = {
        "short": ["SELL"] + ["HOLD"] * (len(bars) - 1),
        "long": ["BUY"] + ["HOLD"] * (len(bars) - 1),
        "late short": ["HOLD"] * 200 + ["SELL"] + ["HOLD"] * (len(bars) - 201),
    }
    targets = pd.DataFrame(
        {name: target_exposure(pd.Series(a, index=bars.index), rules) for name, a in runs.items()}
    )
    batched = run_portfolio(bars, targets, rules, 8760.0).value()
    for name, decisions in runs.items():
        single = simulate(bars, pd.Series(decisions, index=bars.index), rules)
        np.testing.assert_array_equal(batched[name].to_numpy(), single.value.to_numpy())
    assert simulate(bars, pd.Series(runs["short"], index=bars.index), rules).metrics["ruined"]


def test_the_close_out_is_dated_in_single_runs_and_sweeps():
    bars = rally_then_fall()
    votes = unanimous_votes(bars, "S" + "H" * (len(bars) - 1))
    inputs = arbiter_inputs(bars, ArbiterInputConfig(macd_scale="percent"))
    grid = Grid.product({"rules.size": [0.2, 1.0]})
    frame = sweep(bars, votes, inputs, grid, modes=["ensemble"], blocks=2).frame
    single = simulate(bars, replay(votes, inputs, HierarchyConfig(mode="ensemble")))
    assert single.metrics["ruined_at"] == bars.index[int(single.metrics["ruin_bar"])]
    assert frame["ruined_at"].iloc[1] == single.metrics["ruined_at"]
    assert pd.isna(frame["ruined_at"].iloc[0])
