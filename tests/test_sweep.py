"""The fused sweep kernel against single runs (replay + vectorbt), chunking, resumption,
Dask, input checks and no lookahead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sweep_fixtures import GRID_AXES, synthetic_market

from qt_backtest.backtest import PositionRules, simulate
from qt_backtest.data import load_sample, per_symbol, sample_dir
from qt_backtest.hierarchy import (
    EnsembleConfig,
    HierarchyConfig,
    MetaConfig,
    fit_uncertainty_model,
    replay,
)
from qt_backtest.indicators import ArbiterInputConfig, arbiter_inputs
from qt_backtest.inference import period_returns
from qt_backtest.signals import read_predictions
from qt_backtest.sweep import Grid, apply_parameters, sweep

METRICS = (
    "total_return",
    "cagr",
    "annualized_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_bars",
    "max_drawdown_duration",
    "ruined",
    "ruin_bar",
    "ruined_at",
    "calmar",
    "trades",
    "win_rate",
    "profit_factor",
    "average_trade",
    "exposure",
    "turnover",
    "fees_paid",
)
RATE_COLUMNS = {
    "escalation_rate": "escalation_rate",
    "defer_rate": "defer_rate",
    "arbiter_invocation_rate": "arbiter_invocation_rate",
    "override_rate_when_called": "override_rate_when_called",
    "arbiter_source_share": "arbiter_source_share",
}


@pytest.fixture(scope="module")
def sample_market():
    votes = read_predictions(sample_dir() / "sample-predictions.parquet")
    bars = load_sample("ETHUSDT-1h").iloc[-1500:]
    inputs = arbiter_inputs(bars, ArbiterInputConfig(macd_scale="percent"))
    return bars, per_symbol(votes)["ETHUSDT"].iloc[-1500:], inputs


@pytest.fixture(scope="module")
def four_models():
    return synthetic_market(1200, seed=5)


def single_run(bars, votes, inputs, combination, uncertainty_model=None):
    config, rules = apply_parameters(HierarchyConfig(), PositionRules(), combination)
    decisions = replay(votes, inputs, config, uncertainty_model=uncertainty_model)
    return simulate(bars, decisions, rules), decisions


def assert_period_returns_match(result, position, single, symbol="series"):
    """The sweep's period returns of one combination equal those of its equity curve."""
    expected = period_returns(single.value, PositionRules().init_cash, result.period)
    got = result.period_returns(symbol)[position]
    assert got.index.equals(expected.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)


def assert_matches_single_run(row, result, decisions):
    expected = result.metrics
    for name in METRICS:
        got, want = row[name], expected[name]
        if isinstance(want, pd.Timedelta | pd.Timestamp):
            assert got == want, name
        elif pd.isna(want):
            assert pd.isna(got), name
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), name
    ran = decisions["meta_decision"].notna()
    escalated = (decisions["meta_decision"] == "ESCALATE").sum()
    called = decisions["gate"].notna().sum()
    overrides = (decisions["gate"] == "override").sum()
    if ran.sum():
        assert row["escalation_rate"] == pytest.approx(escalated / ran.sum(), abs=1e-15)
        assert row["arbiter_invocation_rate"] == pytest.approx(called / ran.sum(), abs=1e-15)
    if called:
        assert row["override_rate_when_called"] == pytest.approx(overrides / called, abs=1e-15)
    assert row["arbiter_source_share"] == pytest.approx(overrides / len(decisions), abs=1e-15)
    assert row["risk_veto_rate"] == pytest.approx(decisions["risk_veto"].mean(), abs=1e-15)


probability = st.floats(0.0, 1.0).map(lambda x: round(x, 3))
STRATEGIES = {
    "mode": st.sampled_from(["ensemble", "meta", "meta_arbiter"]),
    "arbiter.arbiter_threshold": probability,
    "meta.consensus_threshold": probability,
    "meta.disagreement_threshold": probability,
    "meta.low_confidence_threshold": probability,
    "min_trade_confidence": st.one_of(st.none(), probability),
    # optional below: the Arbiter's indicator parameters and the weights make the kernel
    # recompute that layer per combination
    "fidelity": st.sampled_from(["production", "intended"]),
    "arbiter.conservative_threshold": st.floats(0.01, 0.5).map(lambda x: round(x, 3)),
    "arbiter.rsi_oversold": st.floats(10, 45).map(lambda x: round(x, 1)),
    "arbiter.momentum_threshold": st.floats(0.001, 0.05).map(lambda x: round(x, 4)),
    "ensemble.weights.nhits": st.floats(0.0, 1.0).map(lambda x: round(x, 2)),
    "meta.weights.xgb": st.floats(0.0, 1.0).map(lambda x: round(x, 2)),
    "meta.padding_confidence": probability,
    "ensemble.strong_fraction": st.floats(0.5, 1.0).map(lambda x: round(x, 2)),
    "arbiter.arbiter_may_open": st.booleans(),
    "rules.long_only": st.booleans(),
    "rules.hold": st.sampled_from(["keep", "flat"]),
    "rules.max_hold_bars": st.one_of(st.none(), st.integers(1, 12)),
    "rules.execution_lag": st.integers(1, 4),
    "rules.fee": st.floats(0.0, 0.003).map(lambda x: round(x, 5)),
    "rules.slippage_bps": st.floats(0.0, 20.0).map(lambda x: round(x, 2)),
    "rules.size": st.floats(0.01, 1.0).map(lambda x: round(x, 2)),
    "rules.scale_by_confidence": st.booleans(),
}
REQUIRED = tuple(list(STRATEGIES)[:6])
OPTIONAL = tuple(list(STRATEGIES)[6:])


def combinations(count: int):
    """``count`` combinations that set the same parameters (as a grid needs)."""
    names = st.sets(st.sampled_from(OPTIONAL)).map(lambda chosen: REQUIRED + tuple(sorted(chosen)))
    return names.flatmap(
        lambda keys: st.lists(
            st.fixed_dictionaries({key: STRATEGIES[key] for key in keys}),
            min_size=count,
            max_size=count,
        )
    )


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=combinations(3))
def test_kernel_equals_single_runs_on_four_models(four_models, records):
    bars, votes, inputs = four_models
    result = sweep(bars, votes, inputs, Grid.from_records(records), blocks=4, chunk_size=2)
    for position, combination in enumerate(records):
        single, decisions = single_run(bars, votes, inputs, combination)
        assert_matches_single_run(result.frame.iloc[position], single, decisions)
        assert_period_returns_match(result, position, single)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=combinations(2))
def test_kernel_equals_single_runs_on_the_sample(sample_market, records):
    bars, votes, inputs = sample_market
    result = sweep(bars, votes, inputs, Grid.from_records(records), blocks=4, period="4h")
    for position, combination in enumerate(records):
        single, decisions = single_run(bars, votes, inputs, combination)
        assert_matches_single_run(result.frame.iloc[position], single, decisions)
        assert_period_returns_match(result, position, single, "ETHUSDT")


def test_kernel_equals_single_runs_with_the_uncertainty_model(four_models):
    bars, votes, inputs = four_models
    future = bars["close"].shift(-5) / bars["close"] - 1
    labels = np.where(future > 0.01, 1, np.where(future < -0.01, -1, 0)).astype(float)
    labels[-5:] = np.nan
    model = fit_uncertainty_model(votes, labels)
    # rules 3 and 4 switched off, so that rule 6 decides many bars
    grid = Grid.product(
        {
            "meta.entropy_threshold": [0.3, 0.6, 0.9],
            "fidelity": ["production", "intended"],
            "meta.disagreement_threshold": [1.0],
            "meta.low_confidence_threshold": [0.0],
        }
    )
    result = sweep(bars, votes, inputs, grid, uncertainty_model=model, blocks=2)
    assert result.frame["escalation_rate"].nunique() > 1
    for position, combination in enumerate(grid.combinations):
        single, decisions = single_run(bars, votes, inputs, combination, model)
        assert decisions["meta_reason"].isin(["undecided_market", "clear_ensemble"]).any()
        assert_matches_single_run(result.frame.iloc[position], single, decisions)


def test_tidy_frame_has_a_row_per_combination_symbol_and_mode(four_models):
    bars, votes, inputs = four_models
    other = synthetic_market(900, seed=9)
    grid = Grid.product({"arbiter.arbiter_threshold": [0.6, 0.8], "rules.fee": [0.0, 0.001]})
    result = sweep(
        {"AAA": bars, "BBB": other[0]},
        {"AAA": votes, "BBB": other[1]},
        {"AAA": inputs, "BBB": other[2]},
        grid,
        modes=["meta", "meta_arbiter"],
        blocks=4,
    )
    frame = result.frame
    assert len(frame) == 2 * 4 * 2
    assert frame.groupby(["symbol", "mode"]).size().eq(4).all()
    expected = [
        "symbol",
        "combination",
        "arbiter.arbiter_threshold",
        "rules.fee",
        "mode",
        *METRICS,
        "periods_per_year",
        *RATE_COLUMNS,
    ]
    assert all(column in frame.columns for column in expected)
    meta_rows = frame[frame["mode"] == "meta"]
    assert (meta_rows["arbiter_invocation_rate"] == 0).all()
    assert (meta_rows["escalation_rate"] > 0).all()
    # modes share the escalations; only meta_arbiter calls the Arbiter
    arbiter_rows = frame[frame["mode"] == "meta_arbiter"]
    np.testing.assert_array_equal(
        arbiter_rows["escalation_rate"].to_numpy(), meta_rows["escalation_rate"].to_numpy()
    )
    assert (arbiter_rows["arbiter_invocation_rate"] == arbiter_rows["escalation_rate"]).all()


def test_chunk_size_and_block_count_do_not_change_results(four_models):
    bars, votes, inputs = four_models
    grid = Grid.product(
        {"arbiter.arbiter_threshold": [0.55, 0.7, 0.85], "meta.consensus_threshold": [0.5, 0.8]}
    )
    whole = sweep(bars, votes, inputs, grid, chunk_size=100, blocks=4).frame
    pieces = sweep(bars, votes, inputs, grid, chunk_size=1, blocks=6).frame
    pd.testing.assert_frame_equal(whole, pieces, check_exact=True)


def test_period_returns_compound_to_the_total_return_and_can_be_left_out(four_models):
    bars, votes, inputs = four_models
    grid = Grid.product({"arbiter.arbiter_threshold": [0.6, 0.9]})
    result = sweep(bars, votes, inputs, grid, blocks=5)
    returns = result.period_returns("series")
    assert returns.shape == (bars.index.floor("1D").nunique(), 2)
    np.testing.assert_allclose((1 + returns).prod() - 1, result.frame["total_return"], rtol=1e-12)
    bare = sweep(bars, votes, inputs, grid, blocks=5, period=None)
    pd.testing.assert_frame_equal(bare.frame, result.frame, check_exact=True)
    with pytest.raises(ValueError, match="no period returns"):
        bare.period_returns("series")
    with pytest.raises(ValueError, match="period"):
        sweep(bars, votes, inputs, grid, period="fortnightly")


def test_superiority_against_ensemble_only_and_buy_and_hold(four_models):
    from qt_backtest.inference import min_backtest_length
    from qt_backtest.inference.multiple import beat_benchmark

    bars, votes, inputs = four_models
    grid = Grid.product(
        {"arbiter.arbiter_threshold": [0.55, 0.7, 0.85], "meta.consensus_threshold": [0.5, 0.8]}
    )
    result = sweep(bars, votes, inputs, grid, modes=["ensemble", "meta_arbiter"], blocks=4)
    # the ensemble-only reference is the base configuration's ensemble run
    ensemble_rows = result.frame.index[result.frame["mode"] == "ensemble"]
    returns = result.period_returns("series")
    np.testing.assert_allclose(
        returns[ensemble_rows[0]].to_numpy(),
        result.reference_periods["series"]["ensemble"].to_numpy(),
        rtol=0,
        atol=1e-12,
    )
    for benchmark in ("ensemble", "buy_and_hold"):
        table = result.superiority(benchmark, draws=200, seed=1)
        row = table.iloc[0]
        direct = beat_benchmark(
            returns, result.reference_periods["series"][benchmark], draws=200, seed=1
        )
        assert row["spa_consistent"] == direct.spa.pvalues["consistent"]
        assert row["reality_check"] == direct.reality_check
        assert row["better_combinations"] == direct.better
        assert 0 <= row["spa_lower"] <= row["spa_consistent"] <= row["spa_upper"] <= 1
        assert row["distinct"] == len(np.unique(returns.to_numpy().T, axis=0))
        best = result.frame["sharpe"].max()
        if best > 0:
            assert row["min_backtest_years"] == pytest.approx(
                min_backtest_length(int(row["distinct"]), best)
            )
        assert row["years"] == pytest.approx(len(returns) / 365)
    with pytest.raises(ValueError, match="benchmark must be one of"):
        result.superiority("index_fund")


def test_block_moments_add_up_to_the_whole_run(four_models):
    bars, votes, inputs = four_models
    grid = Grid.product({"arbiter.arbiter_threshold": [0.6, 0.9]})
    result = sweep(bars, votes, inputs, grid, blocks=5)
    moments = result.blocks["series"]
    assert moments.shape == (2, 5, 3)
    assert result.counts("series").sum() == len(bars)
    growth = np.prod(moments[:, :, 2], axis=1)
    np.testing.assert_allclose(growth - 1, result.frame["total_return"], rtol=1e-12)


def test_no_lookahead_changing_the_future_leaves_earlier_blocks_alone(four_models):
    bars, votes, inputs = four_models
    grid = Grid.product(
        {"arbiter.arbiter_threshold": [0.6, 0.75], "rules.max_hold_bars": [None, 3]}
    )
    before = sweep(bars, votes, inputs, grid, blocks=4)
    cut = int(before.block_edges["series"][2])  # first bar of block 2
    changed_bars = bars.copy()
    scale = np.exp(np.linspace(0, 0.5, len(bars) - cut))
    for column in ("open", "high", "low", "close"):
        changed_bars.iloc[cut:, changed_bars.columns.get_loc(column)] *= scale
    changed_votes = votes.copy()
    changed_votes.iloc[cut:, 0] = "SELL"
    changed_inputs = inputs.copy()
    changed_inputs.iloc[cut:] = inputs.iloc[cut:].to_numpy()[::-1]
    after = sweep(changed_bars, changed_votes, changed_inputs, grid, blocks=4)
    # a decision at the last bar of block 1 fills at the first bar of block 2, which changed,
    # so blocks 0 and 1 must match exactly and block 2 must not
    np.testing.assert_array_equal(after.blocks["series"][:, :2], before.blocks["series"][:, :2])
    assert not np.array_equal(after.blocks["series"][:, 2:], before.blocks["series"][:, 2:])
    # period returns likewise: every day that ends before the change is the same
    start = bars.index[cut - 1].floor("1D")
    earlier = before.period_returns("series").loc[: start - pd.Timedelta("1ns")]
    later = after.period_returns("series").loc[earlier.index]
    pd.testing.assert_frame_equal(earlier, later, check_exact=True)


def test_resume_after_a_killed_run_computes_only_the_missing_chunks(tmp_path, four_models):
    bars, votes, inputs = four_models
    cache = tmp_path / "cache"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from sweep_fixtures import synthetic_market, GRID_AXES
        from qt_backtest.sweep import sweep
        bars, votes, inputs = synthetic_market(1200, seed=5)
        def kill(symbol, number):
            if number == 2:  # after three finished chunks, die without any clean-up
                os.kill(os.getpid(), signal.SIGKILL)
        sweep(bars, votes, inputs, GRID_AXES, chunk_size=2, blocks=4,
              cache_dir={str(cache)!r}, on_chunk=kill, dedup=False)
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert completed.returncode == -signal.SIGKILL, completed.stderr
    assert len(list(cache.glob("chunk-*.npz"))) == 3
    assert not list(cache.glob("*.tmp"))

    seen = []
    resumed = sweep(
        bars,
        votes,
        inputs,
        GRID_AXES,
        chunk_size=2,
        blocks=4,
        cache_dir=cache,
        on_chunk=lambda symbol, number: seen.append(number),
        dedup=False,
    )
    assert resumed.loaded_chunks == 3
    assert resumed.computed_chunks == 2
    assert sorted(seen) == [3, 4]
    fresh = sweep(bars, votes, inputs, GRID_AXES, chunk_size=2, blocks=4)
    pd.testing.assert_frame_equal(resumed.frame, fresh.frame, check_exact=True)
    for symbol in fresh.blocks:
        np.testing.assert_array_equal(resumed.blocks[symbol], fresh.blocks[symbol])
    again = sweep(
        bars, votes, inputs, GRID_AXES, chunk_size=2, blocks=4, cache_dir=cache, dedup=False
    )
    assert (again.loaded_chunks, again.computed_chunks) == (5, 0)


def test_a_changed_input_is_not_served_from_the_cache(tmp_path, four_models):
    bars, votes, inputs = four_models
    grid = Grid.product({"arbiter.arbiter_threshold": [0.6, 0.8]})
    sweep(bars, votes, inputs, grid, cache_dir=tmp_path, blocks=2)
    other = bars.copy()
    other["close"] *= 1.01
    other["high"] *= 1.01
    result = sweep(other, votes, inputs, grid, cache_dir=tmp_path, blocks=2)
    assert result.loaded_chunks == 0


def test_dask_cluster_gives_the_local_results(four_models):
    from dask import distributed

    other = synthetic_market(800, seed=11)
    symbols = {"AAA": four_models, "BBB": other}
    grid = Grid.product(
        {"arbiter.arbiter_threshold": [0.6, 0.7, 0.8], "arbiter.rsi_oversold": [25.0, 35.0]}
    )
    arguments = (
        {s: m[0] for s, m in symbols.items()},
        {s: m[1] for s, m in symbols.items()},
        {s: m[2] for s, m in symbols.items()},
        grid,
    )
    local = sweep(*arguments, chunk_size=2, blocks=4)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        assert len(cluster.workers) == 2
        remote = sweep(
            *arguments, chunk_size=2, blocks=4, executor="dask", address=cluster.scheduler_address
        )
    pd.testing.assert_frame_equal(remote.frame, local.frame, check_exact=True)
    for symbol in local.blocks:
        np.testing.assert_array_equal(remote.blocks[symbol], local.blocks[symbol])


def test_grid_construction():
    grid = Grid.product(
        {"arbiter.arbiter_threshold": [0.6, 0.7], "meta.consensus_threshold": [0.5, 0.75, 1.0]}
    )
    assert len(grid) == 6
    assert grid.combinations[1] == {
        "arbiter.arbiter_threshold": 0.6,
        "meta.consensus_threshold": 0.75,
    }
    subset = grid.sample(3, seed=4)
    assert len(subset) == 3 and all(c in grid.combinations for c in subset.combinations)
    assert subset.combinations == grid.sample(3, seed=4).combinations
    crossed = grid.cross("mode", ["meta", "meta_arbiter"])
    assert len(crossed) == 12 and crossed.names[-1] == "mode"
    assert list(grid.frame().columns) == list(grid.names)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Grid.product({"arbiter.bogus": [1]}), "unknown parameter 'arbiter.bogus'"),
        (lambda: Grid.product({"rules.fill_price": ["close"]}), "unknown parameter"),
        (lambda: Grid.product({"speed": [1]}), "unknown parameter 'speed'"),
        (lambda: Grid.product({"meta.consensus_threshold": []}), "has no values"),
        (lambda: Grid.product({"meta.consensus_threshold": [0.5, 0.5]}), "more than once"),
        (
            lambda: Grid.from_records([{"rules.fee": 0.0}, {"rules.size": 1.0}]),
            "must set the same parameters",
        ),
        (lambda: Grid.from_records([]), "at least one combination"),
        (lambda: Grid.product({"rules.fee": [0.0]}).sample(2), "count must be"),
    ],
)
def test_bad_grids_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_sweeps_are_refused(four_models):
    bars, votes, inputs = four_models
    with pytest.raises(ValueError, match=r"combination 1 .*arbiter_threshold"):
        sweep(bars, votes, inputs, {"arbiter.arbiter_threshold": [0.7, 1.5]})
    with pytest.raises(ValueError, match=r"combination 0 .*fee"):
        sweep(bars, votes, inputs, {"rules.fee": [-0.01]})
    with pytest.raises(ValueError, match="unknown model"):
        sweep(bars, votes, inputs, {"ensemble.weights.tft": [0.5]})
    with pytest.raises(ValueError, match="modes must be among"):
        sweep(bars, votes, inputs, {"rules.fee": [0.0]}, modes=["arbiter"])
    with pytest.raises(ValueError, match="already sets 'mode'"):
        sweep(bars, votes, inputs, {"mode": ["meta"]}, modes=["meta"])
    with pytest.raises(ValueError, match="chunk_size"):
        sweep(bars, votes, inputs, {"rules.fee": [0.0]}, chunk_size=0)
    with pytest.raises(ValueError, match="executor"):
        sweep(bars, votes, inputs, {"rules.fee": [0.0]}, executor="spark")
    with pytest.raises(ValueError, match="cannot be split into"):
        sweep(bars.iloc[:3], votes.iloc[:3], inputs.iloc[:3], {"rules.fee": [0.0]}, blocks=4)
    with pytest.raises(ValueError, match="indexed like the bars"):
        sweep(bars, votes.iloc[1:], inputs, {"rules.fee": [0.0]})
    with pytest.raises(ValueError, match="same symbols"):
        sweep({"A": bars}, {"B": votes}, {"A": inputs}, {"rules.fee": [0.0]})
    with pytest.raises(ValueError, match="close"):
        sweep(bars.drop(columns="close"), votes, inputs, {"rules.fee": [0.0]})
    shuffled = bars.iloc[::-1]
    with pytest.raises(ValueError, match="sorted|order"):
        sweep(shuffled, votes.iloc[::-1], inputs.iloc[::-1], {"rules.fee": [0.0]})


def test_progress_bar_reports_every_chunk(four_models, capsys):
    bars, votes, inputs = four_models
    sweep(bars, votes, inputs, GRID_AXES, chunk_size=4, progress=True, blocks=2, dedup=False)
    assert "3/3" in capsys.readouterr().err


def test_kernel_equals_single_runs_with_two_models(four_models):
    bars, votes, inputs = four_models
    two = votes[["xgb_action", "xgb_confidence", "lgbm_action", "lgbm_confidence"]]
    config = HierarchyConfig(
        ensemble=EnsembleConfig(models=("xgb", "lgbm"), weights={"xgb": 0.6, "lgbm": 0.4}),
        meta=MetaConfig(weights={"xgb": 0.5, "lgbm": 0.5}),
    )
    grid = Grid.product(
        {
            "arbiter.arbiter_threshold": [0.55, 0.8],
            "meta.consensus_threshold": [0.5, 1.0],
            "fidelity": ["production", "intended"],
        }
    )
    result = sweep(bars, two, inputs, grid, config=config, modes=["meta_arbiter"], blocks=4)
    assert result.frame["escalation_rate"].gt(0).any()
    for position, combination in enumerate(result.grid.combinations):
        chosen, rules = apply_parameters(config, PositionRules(), combination)
        decisions = replay(two, inputs, chosen)
        assert_matches_single_run(
            result.frame.iloc[position], simulate(bars, decisions, rules), decisions
        )
