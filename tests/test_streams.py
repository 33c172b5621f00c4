"""Stream classes: combinations that send the same orders under the same rules are one trial."""

from __future__ import annotations

import numpy as np
import pytest
from sweep_fixtures import synthetic_market

from qt_backtest.backtest import PositionRules, order_sizes, target_exposure
from qt_backtest.hierarchy import HierarchyConfig, replay
from qt_backtest.sweep import Grid, apply_parameters, sweep


@pytest.fixture(scope="module")
def market():
    return synthetic_market(1500, seed=11)


def orders_of(bars, votes, inputs, combination):
    config, rules = apply_parameters(HierarchyConfig(), PositionRules(), combination)
    decisions = replay(votes, inputs, config)
    sizes = order_sizes(target_exposure(decisions, rules).to_numpy(), rules.execution_lag)
    return sizes, rules


def test_streams_group_exactly_the_combinations_that_send_the_same_orders(market):
    bars, votes, inputs = market
    grid = Grid.product(
        {
            "arbiter.arbiter_threshold": [0.5, 0.6, 0.7, 0.8, 0.9, 0.99],
            "meta.consensus_threshold": [0.5, 0.75, 1.0],
            "rules.fee": [0.0, 0.001],
        }
    )
    result = sweep(bars, votes, inputs, grid, modes=["meta", "meta_arbiter"], blocks=4)
    frame = result.frame
    classes = frame["stream"].nunique()
    assert 2 < classes < len(frame)
    orders = [orders_of(bars, votes, inputs, c) for c in result.grid.combinations]
    for i in range(len(frame)):
        for j in range(i):
            same_orders = np.array_equal(orders[i][0], orders[j][0], equal_nan=True)
            same = same_orders and orders[i][1] == orders[j][1]
            assert (frame["stream"].iloc[i] == frame["stream"].iloc[j]) == same, (i, j)
            if same:
                assert frame["total_return"].iloc[i] == frame["total_return"].iloc[j]
    # meta mode never calls the Arbiter: every threshold is the same stream per fee
    meta = frame[frame["mode"] == "meta"]
    assert meta.groupby("rules.fee")["stream"].nunique().eq(1).all()


def test_overfitting_controls_count_distinct_streams(market):
    bars, votes, inputs = market
    grid = Grid.product(
        {"arbiter.arbiter_threshold": [0.5, 0.7, 0.9], "meta.consensus_threshold": [0.5, 0.9]}
    )
    result = sweep(bars, votes, inputs, grid, modes=["meta", "meta_arbiter"], blocks=4)
    report = result.overfitting("sharpe")["series"]
    summary = report.summary()
    assert summary["grid_rows"] == len(result.frame) == 12
    assert summary["trials"] == result.frame["stream"].nunique() < 12


def test_a_grid_of_identical_streams_has_no_overfitting_to_measure(market):
    bars, votes, inputs = market
    grid = Grid.product({"arbiter.arbiter_threshold": [0.6, 0.8]})
    result = sweep(bars, votes, inputs, grid, modes=["meta"], blocks=4)
    report = result.overfitting("sharpe")["series"]
    assert report.trials == 1 and np.isnan(report.pbo.pbo)
