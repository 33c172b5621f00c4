"""The inference core: resampling streams, Sharpe tests, intervals and multiple testing,
against ``arch`` and by simulation (size, coverage, power)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import MCS, SPA, CircularBlockBootstrap, StationaryBootstrap, StepM
from inference_fixtures import paired_returns

from qt_backtest.inference.multiple import (
    long_run_variance,
    model_confidence_set,
    reality_check,
    spa_test,
    stepm,
)
from qt_backtest.inference.paired import paired_bootstrap
from qt_backtest.inference.resample import (
    circular_indices,
    optimal_block_length,
    stationary_indices,
)
from qt_backtest.inference.sharpe import (
    bootstrap_sharpe_difference_test,
    expected_max_sharpe,
    iid_sharpe_difference_test,
    min_backtest_length,
    min_track_record_length,
    probabilistic_sharpe_ratio,
    rollout_power,
    sharpe_difference_test,
)

# -- resampling streams ------------------------------------------------------------------


@pytest.mark.parametrize("block", [1.0, 3.5, 12.0])
def test_stationary_indices_are_arch_s_for_the_same_seed(block):
    n, draws = 97, 30
    theirs = StationaryBootstrap(block, np.arange(n), seed=17)
    expected = np.vstack([data[0][0] for data in theirs.bootstrap(draws)])
    ours = np.vstack(list(stationary_indices(n, block, draws, 17)))
    np.testing.assert_array_equal(ours, expected)


def test_stationary_indices_in_batches_are_one_stream(monkeypatch):
    import qt_backtest.inference.resample as resample

    whole = np.vstack(list(stationary_indices(50, 4.0, 25, 3)))
    monkeypatch.setattr(resample, "BATCH_ELEMENTS", 50 * 4)
    batches = list(resample.stationary_indices(50, 4.0, 25, 3))
    assert len(batches) == 7
    np.testing.assert_array_equal(np.vstack(batches), whole)


def test_circular_indices_are_arch_s_for_the_same_seed():
    n, draws = 101, 20
    theirs = CircularBlockBootstrap(7, np.arange(n), seed=5)
    expected = np.vstack([data[0][0] for data in theirs.bootstrap(draws)])
    np.testing.assert_array_equal(circular_indices(n, 7, draws, 5), expected)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"draws": 0}, "draws"),
        ({"draws": 2.5}, "draws"),
        ({"block_length": 0.5}, "block_length"),
        ({"block_length": 500.0}, "block_length"),
    ],
)
def test_resampling_settings_out_of_range_are_named(kwargs, message):
    settings = {"n": 100, "block_length": 5.0, "draws": 10, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        list(stationary_indices(**settings))


def test_block_length_grows_with_dependence_and_rejects_bad_series():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(3000)
    persistent = np.empty_like(noise)
    persistent[0] = noise[0]
    for t in range(1, len(noise)):
        persistent[t] = 0.8 * persistent[t - 1] + noise[t]
    assert optimal_block_length(persistent)[0] > 3 * optimal_block_length(noise)[0]
    assert optimal_block_length(np.ones(50)) == (1.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        optimal_block_length(np.r_[noise[:20], np.nan])
    with pytest.raises(ValueError, match="at least 9"):
        optimal_block_length(noise[:5])


# -- multiple testing against arch -------------------------------------------------------


def _losses(seed: int, n: int = 400, k: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A benchmark and k models, some clearly better (lower loss), autocorrelated."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, k + 1))
    for t in range(1, n):
        noise[t] += 0.3 * noise[t - 1]
    edge = np.r_[0.0, np.linspace(-0.4, 0.5, k)]  # benchmark first; positive = better
    losses = noise - edge
    return losses[:, 0], losses[:, 1:]


def _arch_inputs(benchmark, models, studentize, block):
    """``arch``'s SPA applies no studentisation to its statistic: give it the studentised
    advantages against a zero benchmark."""
    if not studentize:
        return benchmark, models
    advantage = benchmark[:, None] - models
    scale = np.sqrt(long_run_variance(advantage, block))
    return np.zeros(len(benchmark)), -advantage / scale


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("studentize", [False, True])
def test_spa_and_reality_check_equal_arch(seed, studentize):
    benchmark, models = _losses(seed)
    ours = spa_test(benchmark, models, block_length=6, draws=400, seed=seed, studentize=studentize)
    theirs = SPA(*_arch_inputs(benchmark, models, studentize, 6), block_size=6, reps=400, seed=seed)
    theirs.compute()
    np.testing.assert_array_equal(ours.pvalues.to_numpy(), theirs.pvalues.to_numpy())
    np.testing.assert_allclose(
        ours.critical_values(0.1).to_numpy(), theirs.critical_values(0.1).to_numpy(), rtol=1e-12
    )
    if not studentize:
        check = reality_check(benchmark, models, block_length=6, draws=400, seed=seed)
        assert check == theirs.pvalues["upper"]


def test_long_run_variance_equals_arch_s_stationary_kernel():
    benchmark, models = _losses(4, n=300, k=5)
    theirs = SPA(benchmark, models, block_size=9, reps=10, seed=0)
    theirs.compute()
    ours = long_run_variance(benchmark[:, None] - models, 9.0)
    np.testing.assert_allclose(ours, theirs._loss_diff_var, rtol=1e-10)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("studentize", [False, True])
def test_stepm_equals_arch_and_finds_the_clearly_better_models(seed, studentize):
    benchmark, models = _losses(seed)
    ours = stepm(
        benchmark, models, size=0.05, block_length=6, draws=400, seed=seed, studentize=studentize
    )
    theirs = StepM(
        *_arch_inputs(benchmark, models, studentize, 6),
        size=0.05,
        block_size=6,
        reps=400,
        seed=seed,
    )
    theirs.compute()
    assert list(ours) == [int(i) for i in theirs.superior_models]
    assert len(ours) >= 3  # the models with the largest edges (0.4 and more) are found
    assert set(ours) <= set(range(5, 12))  # no model without an edge is declared better


@pytest.mark.parametrize("method", ["R", "max"])
@pytest.mark.parametrize("seed", [1, 2])
def test_model_confidence_set_equals_arch(method, seed):
    benchmark, models = _losses(seed, k=6)
    losses = pd.DataFrame(np.column_stack([benchmark, models]), columns=list("abcdefg"))
    ours = model_confidence_set(
        losses, size=0.1, method=method, block_length=6, draws=300, seed=seed
    )
    theirs = MCS(losses, size=0.1, method=method, block_size=6, reps=300, seed=seed)
    theirs.compute()
    assert list(ours.index) == list(theirs.pvalues.index)
    np.testing.assert_array_equal(ours["pvalue"].to_numpy(), theirs.pvalues["Pvalue"].to_numpy())
    assert sorted(ours.index[ours["included"]]) == sorted(theirs.included)
    assert "g" in set(ours.index[ours["included"]])  # the best model stays in the set


def test_multiple_testing_rejects_bad_input():
    benchmark, models = _losses(1, n=50, k=3)
    with pytest.raises(ValueError, match="finite"):
        spa_test(benchmark, np.where(models > 2, np.nan, models))
    with pytest.raises(ValueError, match="as long as"):
        spa_test(benchmark[:-1], models)
    with pytest.raises(ValueError, match="method"):
        model_confidence_set(models, method="mean")
    with pytest.raises(ValueError, match="at least 10 periods"):
        spa_test(benchmark[:5], models[:5])


# -- Sharpe tests by simulation: size, coverage, power -----------------------------------

SIMULATIONS = 300
LENGTH = 1500


@pytest.fixture(scope="module")
def equal_sharpe_pairs():
    return paired_returns(SIMULATIONS, LENGTH, 0.05, 0.05, seed=11)


def test_hac_test_holds_its_size_on_dependent_fat_tailed_returns(equal_sharpe_pairs):
    a, b = equal_sharpe_pairs
    p_values = np.array([sharpe_difference_test(a[i], b[i]).p_value for i in range(SIMULATIONS)])
    rejected = float(np.mean(p_values < 0.05))
    assert 0.02 <= rejected <= 0.09, rejected


def test_bootstrap_test_holds_its_size_on_dependent_fat_tailed_returns(equal_sharpe_pairs):
    a, b = equal_sharpe_pairs
    p_values = np.array(
        [
            bootstrap_sharpe_difference_test(a[i], b[i], draws=499, seed=i).p_value
            for i in range(SIMULATIONS)
        ]
    )
    rejected = float(np.mean(p_values < 0.05))
    assert 0.02 <= rejected <= 0.09, rejected


def test_iid_test_over_rejects_where_the_hac_test_does_not(equal_sharpe_pairs):
    """Why the iid test is labelled: on these returns it rejects true nulls too often."""
    a, b = equal_sharpe_pairs
    p_values = np.array(
        [iid_sharpe_difference_test(a[i], b[i]).p_value for i in range(SIMULATIONS)]
    )
    assert np.mean(p_values < 0.05) > 0.09


def test_paired_interval_covers_a_known_sharpe_difference():
    true_difference = 0.06  # per period: 0.08 against 0.02
    a, b = paired_returns(SIMULATIONS, LENGTH, 0.08, 0.02, seed=12)
    covered = []
    for i in range(SIMULATIONS):
        returns = pd.DataFrame({"later": a[i], "earlier": b[i]})
        table = paired_bootstrap(returns, [("later", "earlier")], 1.0, draws=499, seed=i)
        row = table.loc[("later", "earlier", "sharpe")]
        covered.append(row["low"] <= true_difference <= row["high"])
    coverage = float(np.mean(covered))
    assert 0.85 <= coverage <= 0.95, coverage


def test_hac_test_has_power_against_a_stated_difference():
    a, b = paired_returns(SIMULATIONS, 3000, 0.08, 0.02, seed=13)
    p_values = np.array([sharpe_difference_test(a[i], b[i]).p_value for i in range(SIMULATIONS)])
    power = float(np.mean(p_values < 0.05))
    assert power > 0.6, power  # about 0.8 for a per-period difference of 0.06 over 3,000 periods


def test_rollout_power_gives_the_length_that_detects_the_drop_four_times_in_five():
    """Estimate the paired variance on a long history, ask how many periods detect a drop,
    and check by simulation that a one-sided test at 5 % detects it about 80 % of the time."""
    history_a, history_b = paired_returns(1, 30000, 0.05, 0.05, seed=14)
    variance = sharpe_difference_test(history_a[0], history_b[0]).variance
    drop = 0.05  # per period
    periods = rollout_power(variance, annual_drop=drop * math.sqrt(365), periods_per_year=365)
    n = math.ceil(periods)
    a, b = paired_returns(SIMULATIONS, n, 0.05 - drop, 0.05, seed=15)
    detected = np.array(
        [sharpe_difference_test(a[i], b[i]).p_value_less < 0.05 for i in range(SIMULATIONS)]
    )
    assert 0.72 <= detected.mean() <= 0.88, (n, detected.mean())
    assert rollout_power(variance, 2 * drop * math.sqrt(365), 365) == pytest.approx(periods / 4)


def test_sharpe_tests_name_bad_input():
    with pytest.raises(ValueError, match="one length"):
        sharpe_difference_test(np.ones(20), np.ones(21))
    with pytest.raises(ValueError, match="finite"):
        sharpe_difference_test(np.r_[np.ones(19), np.nan], np.ones(20))
    with pytest.raises(ValueError, match="at least 10"):
        iid_sharpe_difference_test(np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match="annual_drop"):
        rollout_power(1.0, 0.0, 365)


# -- track record and backtest length: the published worked examples ---------------------


def test_probabilistic_sharpe_ratio_reproduces_the_hedge_fund_example():
    """Bailey and López de Prado (2012): two years of monthly returns, Sharpe 0.458 a month,
    skewness -2.448, kurtosis 10.164: PSR(0) is 0.982 if normal, 0.913 with the moments, and
    0.953 with three years."""
    assert probabilistic_sharpe_ratio(0.458, 0.0, 24, 0.0, 3.0) == pytest.approx(0.982, abs=5e-4)
    assert probabilistic_sharpe_ratio(0.458, 0.0, 24, -2.448, 10.164) == pytest.approx(
        0.913, abs=5e-4
    )
    assert probabilistic_sharpe_ratio(0.458, 0.0, 36, -2.448, 10.164) == pytest.approx(
        0.953, abs=1e-3
    )  # printed to 3 digits, cut


@pytest.mark.parametrize(
    "per_year, skewness, kurtosis, years",
    [(252, 0.0, 3.0, 2.73), (52, 0.0, 3.0, 2.83), (12, 0.0, 3.0, 3.24), (12, -0.72, 5.78, 4.99)],
)
def test_min_track_record_length_reproduces_the_published_examples(
    per_year, skewness, kurtosis, years
):
    """An annualised Sharpe of 2 against a benchmark of 1 at 95 %: 2.73 years of daily,
    2.83 of weekly, 3.24 of monthly normal returns, 4.99 years of monthly returns with the
    HFR aggregate index's skewness and kurtosis."""
    scale = math.sqrt(per_year)
    periods = min_track_record_length(2 / scale, skewness, kurtosis, benchmark=1 / scale)
    assert periods / per_year == pytest.approx(years, abs=0.005)


def test_min_track_record_length_is_infinite_without_an_edge():
    assert min_track_record_length(0.0, 0.0, 3.0) == math.inf
    with pytest.raises(ValueError, match="confidence"):
        min_track_record_length(0.1, 0.0, 3.0, confidence=1.5)


def test_min_backtest_length_reproduces_the_published_examples():
    """Bailey, Borwein, López de Prado and Zhu (2014): ten trials give an expected best
    Sharpe of 1.57; with five years no more than 45 configurations (expected best 1), with
    two years no more than 7; 128 trials give an expected best above 2.6."""
    assert expected_max_sharpe(10) == pytest.approx(1.57, abs=0.005)
    assert min_backtest_length(45) <= 5.0 < min_backtest_length(46)
    assert min_backtest_length(7) <= 2.0 < min_backtest_length(8)
    assert expected_max_sharpe(128) > 2.6
    assert min_backtest_length(45, annual_sharpe=2.0) == pytest.approx(min_backtest_length(45) / 4)
    with pytest.raises(ValueError, match="trials"):
        min_backtest_length(1)
