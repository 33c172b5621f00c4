"""PBO (CSCV), deflated Sharpe, plateau and walk-forward selection: hand-worked cases, the
published deflated-Sharpe example, brute force and simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sweep_fixtures import synthetic_market

from qt_backtest.sweep import (
    Grid,
    block_moments,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    plateau_selection,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sweep,
    walk_forward_selection,
)


def pbo_of(returns: np.ndarray, blocks: int, metric: str = "sharpe"):
    counts, moments = block_moments(returns, blocks)
    return probability_of_backtest_overfitting(moments, counts, metric)


def test_pbo_is_one_when_the_in_sample_winner_always_loses_out_of_sample():
    a = [0.02, 0.01, 0.03, -0.02, -0.01, -0.03]
    b = [-0.01, 0.0, -0.02, 0.01, 0.0, 0.02]
    result = pbo_of(np.column_stack([a, b]), blocks=2)
    # split 1: block 0 in sample picks a, which ranks 1st of 2 (worst) on block 1;
    # split 2 mirrors it: w = 1 / 3 both times, logit ln(1/2)
    assert result.splits == 2
    np.testing.assert_allclose(result.logits, [math.log(0.5)] * 2)
    assert result.pbo == 1.0
    assert sorted(result.best_trial) == [0, 1]
    assert result.probability_of_loss == 1.0


def test_pbo_is_zero_for_a_trial_that_dominates_everywhere():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, (400, 5))
    noise[:, 3] += 0.01  # trial 3 earns 1 % a bar more in every block
    result = pbo_of(noise, blocks=8)
    assert result.splits == math.comb(8, 4)
    assert (result.best_trial == 3).all()
    np.testing.assert_allclose(result.logits, math.log((5 / 6) / (1 / 6)))
    assert result.pbo == 0.0


def brute_force_pbo(returns: np.ndarray, blocks: int) -> tuple[float, np.ndarray]:
    """CSCV straight from the definition, on the raw returns."""
    parts = np.array_split(np.arange(len(returns)), blocks)
    trials = returns.shape[1]
    logits = []
    for chosen in itertools.combinations(range(blocks), blocks // 2):
        inside = np.concatenate([parts[k] for k in chosen])
        outside = np.concatenate([parts[k] for k in range(blocks) if k not in chosen])
        sharpe_in = returns[inside].mean(0) / returns[inside].std(0, ddof=1)
        sharpe_out = returns[outside].mean(0) / returns[outside].std(0, ddof=1)
        best = int(np.argmax(sharpe_in))
        rank = stats.rankdata(sharpe_out)[best]
        relative = rank / (trials + 1)
        logits.append(math.log(relative / (1 - relative)))
    logits = np.array(logits)
    return float(np.mean(logits <= 0)), np.sort(logits)


def test_pbo_equals_brute_force_cscv():
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0005, 0.01, (96, 7))
    counts, moments = block_moments(returns, 6)
    result = probability_of_backtest_overfitting(moments, counts)
    expected_pbo, expected_logits = brute_force_pbo(returns, 6)
    assert result.pbo == pytest.approx(expected_pbo)
    np.testing.assert_allclose(np.sort(result.logits), expected_logits, rtol=1e-9)


def test_pbo_of_skill_less_trials_is_one_half_on_average():
    # one sample can sit far from 1/2 (a trial lucky over the whole sample is lucky in both
    # halves), but over many samples the in-sample winner's out-of-sample rank is uniform
    pbos, ranks = [], []
    for seed in range(150):
        returns = np.random.default_rng(1000 + seed).normal(0.0, 0.01, (200, 10))
        result = pbo_of(returns, blocks=4)
        pbos.append(result.pbo)
        relative = 1 / (1 + np.exp(-result.logits))
        ranks.extend(np.round(relative * 11).astype(int))
    assert np.mean(pbos) == pytest.approx(0.5, abs=0.06)
    counts = np.bincount(ranks, minlength=11)[1:]
    assert stats.chisquare(counts).pvalue > 0.001


def test_pbo_with_total_return_and_a_subset_of_splits():
    rng = np.random.default_rng(5)
    returns = rng.normal(0.0, 0.01, (480, 6))
    counts, moments = block_moments(returns, 12)
    full = probability_of_backtest_overfitting(moments, counts, "total_return")
    assert full.splits == math.comb(12, 6)
    part = probability_of_backtest_overfitting(moments, counts, "total_return", max_splits=100)
    assert part.splits == 100
    # total return over a union of blocks is the product of the blocks' growth
    chosen = [0, 1, 2, 3, 4, 5]  # the first split's in-sample half
    rows = np.concatenate([np.array_split(np.arange(480), 12)[k] for k in chosen])
    growth = np.prod(1 + returns[rows], axis=0) - 1
    best = int(np.argmax(growth))
    assert full.in_sample[0] == pytest.approx(growth[best], rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"blocks": 3}, "even number of blocks"),
        ({"metric": "calmar"}, "metric must be"),
    ],
)
def test_pbo_refuses_bad_input(kwargs, message):
    returns = np.random.default_rng(0).normal(0, 0.01, (60, 4))
    counts, moments = block_moments(returns, kwargs.get("blocks", 4))
    with pytest.raises(ValueError, match=message):
        probability_of_backtest_overfitting(moments, counts, kwargs.get("metric", "sharpe"))
    with pytest.raises(ValueError, match="finite"):
        block_moments(np.array([[np.nan, 0.1]] * 10), 2)


def test_deflated_sharpe_matches_the_published_example():
    # Bailey and Lopez de Prado (2014), "The Deflated Sharpe Ratio", numerical example:
    # 100 trials, annualised Sharpe 2.5 and trial variance 0.5 over 5 years of daily
    # returns (250 a year), skewness -3, kurtosis 10 -> SR0 = 0.1132 a day, DSR = 0.9004
    per_day = 2.5 / math.sqrt(250)
    variance = 0.5 / 250
    assert expected_max_sharpe(100, variance) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe_ratio(per_day, 1250, 100, variance, -3.0, 10.0) == pytest.approx(
        0.9004, abs=5e-5
    )


def test_probabilistic_sharpe_by_hand():
    # normal returns: z = (0.1 - 0) * sqrt(100) / sqrt(1 + 0.5 * 0.1 ** 2)
    z = 1.0 / math.sqrt(1.005)
    expected = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    assert probabilistic_sharpe_ratio(0.1, 0.0, 101) == pytest.approx(expected, rel=1e-12)
    assert expected_max_sharpe(1, 0.3) == 0.0
    # more trials, higher hurdle, lower deflated Sharpe
    few = deflated_sharpe_ratio(0.1, 500, 10, 0.002)
    many = deflated_sharpe_ratio(0.1, 500, 1000, 0.002)
    assert many < few
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(0, 0.1)
    with pytest.raises(ValueError, match="variance"):
        expected_max_sharpe(10, -1.0)


def test_expected_max_sharpe_agrees_with_simulation():
    rng = np.random.default_rng(21)
    trials, bars, repeats = 50, 400, 300
    maxima, variances = [], []
    for _ in range(repeats):
        returns = rng.normal(0.0, 0.01, (bars, trials))
        sharpe = returns.mean(0) / returns.std(0, ddof=1)
        maxima.append(sharpe.max())
        variances.append(sharpe.var(ddof=1))
    predicted = expected_max_sharpe(trials, float(np.mean(variances)))
    assert np.mean(maxima) == pytest.approx(predicted, rel=0.05)


def test_plateau_selection_prefers_a_broad_plateau_to_a_spike():
    rows = [(a, b) for a in range(5) for b in range(5)]
    frame = pd.DataFrame(rows, columns=["x", "y"])
    frame["sharpe"] = 0.0
    frame.loc[(frame.x == 0) & (frame.y == 0), "sharpe"] = 10.0  # an isolated spike
    frame.loc[(frame.x >= 2) & (frame.y >= 2), "sharpe"] = 5.0  # a broad plateau
    ranked = plateau_selection(frame, ["x", "y"], "sharpe", radius=1)
    best = frame.loc[ranked.index[0]]
    assert (best.x, best.y) == (3, 3)  # every neighbour of (3, 3) is on the plateau
    assert ranked.loc[ranked.index[0], "plateau_median"] == 5.0
    assert ranked.loc[ranked.index[0], "neighbours"] == 9
    spike = frame.index[(frame.x == 0) & (frame.y == 0)][0]
    assert ranked.loc[spike, "plateau_median"] == 0.0
    # a categorical parameter is matched exactly, never a neighbour across values
    frame["mode"] = np.where(frame.index % 2 == 0, "meta", "meta_arbiter")
    ranked = plateau_selection(frame, ["x", "y", "mode"], "sharpe")
    assert ranked["neighbours"].max() <= 5


def test_walk_forward_selection_by_hand():
    counts = np.array([10, 10, 10, 10])
    moments = np.zeros((3, 4, 3))
    # Sharpe is mean / std; give each trial one good block, in turn
    for trial in range(3):
        for block in range(4):
            mean = 0.01 if block == trial else -0.001
            moments[trial, block] = [mean * 10, (mean**2 + 0.0001) * 10, 1 + mean * 10]
    result = walk_forward_selection(moments, counts, "sharpe", train_blocks=1)
    # train on block k, pick the trial good there (k), apply to block k + 1
    assert list(result.steps["chosen"]) == [0, 1, 2]
    assert list(result.steps["test_block"]) == [1, 2, 3]
    growth = moments[0, 1, 2] * moments[1, 2, 2] * moments[2, 3, 2]
    assert result.out_of_sample_return == pytest.approx(growth - 1, rel=1e-12)
    assert result.out_of_sample_sharpe < 0 < result.in_sample_sharpe
    anchored = walk_forward_selection(moments, counts, "total_return", 2, anchored=True)
    assert list(anchored.steps["train_first"]) == [0, 0]
    with pytest.raises(ValueError, match="train_blocks"):
        walk_forward_selection(moments, counts, "sharpe", train_blocks=4)


def test_sweep_reports_its_overfitting_controls():
    bars, votes, inputs = synthetic_market(1600, seed=7)
    grid = Grid.product(
        {
            "arbiter.arbiter_threshold": [0.6, 0.7, 0.8],
            "meta.consensus_threshold": [0.5, 0.75, 1.0],
            "rules.max_hold_bars": [None, 5],
        }
    )
    result = sweep(bars, votes, inputs, grid, blocks=8)
    report = result.overfitting(train_blocks=3)["series"]
    summary = report.summary()
    distinct = result.frame[result.frame["stream"] == result.frame["combination"]]
    assert summary["grid_rows"] == len(grid)
    assert summary["trials"] == len(distinct) == result.frame["stream"].nunique()
    assert summary["cscv_splits"] == math.comb(8, 4)
    assert 0.0 <= summary["pbo"] <= 1.0
    assert 0.0 <= summary["deflated_sharpe"] <= 1.0
    assert report.best["sharpe"] == result.frame["sharpe"].max()
    assert len(report.walk_forward.steps) == 8 - 3
    assert report.plateau_choice["combination"] in set(result.frame["combination"])
    # the deflated Sharpe counts distinct trials: identical equity curves are one
    assert report.expected_max_sharpe_per_bar == pytest.approx(
        expected_max_sharpe(
            len(distinct),
            float(np.var(distinct["sharpe"] / np.sqrt(distinct["periods_per_year"]), ddof=1)),
        )
    )


def test_many_blocks_sample_their_splits_instead_of_listing_them():
    from qt_backtest.sweep.overfitting import ENUMERATED_SPLITS

    rng = np.random.default_rng(3)
    counts, moments = block_moments(rng.normal(0, 0.01, (3200, 3)), 32)
    # C(32, 16) = 601,080,390 splits: listing them took gigabytes
    result = probability_of_backtest_overfitting(moments, counts, max_splits=400)
    assert result.splits == 400 and 0.0 <= result.pbo <= 1.0
    default = probability_of_backtest_overfitting(moments, counts)
    assert default.splits == ENUMERATED_SPLITS
    again = probability_of_backtest_overfitting(moments, counts, max_splits=400)
    np.testing.assert_array_equal(again.logits, result.logits)  # seeded
    with pytest.raises(ValueError, match="max_splits must be an integer >= 2"):
        probability_of_backtest_overfitting(moments, counts, max_splits=0)
