"""A constant return series has no Sharpe ratio: a standard deviation that is only the rounding
noise of the returns or of running sums counts as zero, in every place a Sharpe ratio is
computed (single runs, the sweep, the block moments of the overfitting controls, the regime
values, the paired bootstrap, the Sharpe tests and the track record)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qt_backtest.backtest.metrics import negligible_spread, performance, sharpe_ratio
from qt_backtest.inference import VerdictSettings
from qt_backtest.inference.nb import return_statistics_nb
from qt_backtest.inference.paired import metrics_from_statistics
from qt_backtest.inference.regimes import _regime_metrics
from qt_backtest.inference.sharpe import iid_sharpe_difference_test, sharpe_difference_test
from qt_backtest.inference.verdict import _track_record
from qt_backtest.sweep import nb as sweep_nb
from qt_backtest.sweep.overfitting import _sharpe as block_sharpe
from qt_backtest.sweep.run import metrics_from_stats

CASH = 10_000.0
PER_YEAR = 8760.0


def compounding(rate: float, bars: int) -> pd.Series:
    """Equity growing by ``rate`` a bar, computed by repeated multiplication."""
    index = pd.date_range("2024-01-01", periods=bars, freq="h", tz="UTC")
    return pd.Series(CASH * np.cumprod(np.full(bars, 1.0 + rate)), index=index)


def returns_of(value: pd.Series) -> np.ndarray:
    """Bar returns as the metrics take them: each a ratio of equities minus one."""
    return np.concatenate([[value.iloc[0] / CASH - 1.0], value.to_numpy()[1:] / value[:-1] - 1.0])


def running_sums(r: np.ndarray) -> tuple[float, float]:
    """Sum and sum of squares accumulated one bar at a time, as the sweep's kernel does."""
    total = total_sq = 0.0
    for x in r:
        total += x
        total_sq += x * x
    return total, total_sq


@pytest.mark.parametrize("rate", [0.001, -0.002, 1e-7, 0.03])
def test_constant_returns_carry_rounding_noise_and_no_sharpe(rate):
    r = returns_of(compounding(rate, 2000))
    assert r.std(ddof=1) > 0  # the noise the rule is about
    total, total_sq = running_sums(r)
    one_pass = math.sqrt(max((total_sq - total * total / len(r)) / (len(r) - 1), 0.0))
    assert negligible_spread(r.std(ddof=1), r.mean(), len(r))
    assert negligible_spread(one_pass, total / len(r), len(r))
    assert np.isnan(sharpe_ratio(r.mean(), r.std(ddof=1), len(r), math.sqrt(PER_YEAR)))


def test_real_spreads_are_not_noise():
    rng = np.random.default_rng(3)
    # a per-bar Sharpe ratio of 0.5: beyond anything a market gives, far below the noise
    r = rng.normal(0.01, 0.02, 1_000_000)
    assert not negligible_spread(r.std(ddof=1), r.mean(), len(r))
    assert sharpe_ratio(r.mean(), r.std(ddof=1), len(r)) == pytest.approx(0.5, rel=0.01)
    np.testing.assert_array_equal(
        negligible_spread(np.array([0.0, 1e-3, np.nan]), 1e-3, 100), [True, False, False]
    )


def test_a_single_run_of_constant_returns_has_no_sharpe():
    value = compounding(0.001, 2000)
    metrics = performance(value, np.array([]), np.ones(len(value)), 0.0, 0.0, CASH, PER_YEAR)
    assert np.isnan(metrics["sharpe"])
    assert metrics["annualized_volatility"] == 0.0
    assert metrics["total_return"] == pytest.approx(1.001**2000 - 1.0)


def noisy_running_sums() -> tuple[np.ndarray, float, float]:
    """Constant returns whose running sums leave a positive variance (rounding noise)."""
    r = returns_of(compounding(0.002, 2000))
    total, total_sq = running_sums(r)
    assert total_sq - total * total / len(r) > 0
    return r, total, total_sq


def test_the_sweeps_metrics_from_running_sums_have_no_sharpe():
    r, total, total_sq = noisy_running_sums()
    stats = np.zeros((1, sweep_nb.STAT_COLUMNS))
    stats[0, sweep_nb.S_SUM] = total
    stats[0, sweep_nb.S_SUMSQ] = total_sq
    stats[0, sweep_nb.S_SUM3] = float(np.sum(r**3))
    stats[0, sweep_nb.S_SUM4] = float(np.sum(r**4))
    stats[0, sweep_nb.S_FINAL_VALUE] = CASH * 1.002**2000
    stats[0, sweep_nb.S_VALUE_SUM] = CASH * len(r)
    stats[0, sweep_nb.S_RUIN_BAR] = -1
    index = pd.date_range("2024-01-01", periods=len(r), freq="h", tz="UTC")
    row = metrics_from_stats(stats, len(r), CASH, PER_YEAR, index).iloc[0]
    assert np.isnan(row["sharpe"]) and row["annualized_volatility"] == 0.0
    assert np.isnan(row["skewness"]) and np.isnan(row["kurtosis"])


def test_block_moments_of_constant_returns_have_no_sharpe():
    r, total, total_sq = noisy_running_sums()
    sharpe = block_sharpe(np.array([total]), np.array([total_sq]), np.array([float(len(r))]))
    assert np.isnan(sharpe).all()


def test_regime_moments_of_constant_returns_have_no_sharpe():
    r, total, total_sq = noisy_running_sums()
    moments = np.array([[float(len(r)), total, total_sq]])
    annual_mean, sharpe = _regime_metrics(moments, 365.0)[0]
    assert annual_mean == pytest.approx(0.002 * 365) and np.isnan(sharpe)


def test_the_paired_bootstrap_metrics_have_no_sharpe_for_constant_returns():
    r = returns_of(compounding(0.001, 400))
    rng = np.random.default_rng(1)
    values = np.column_stack([r, rng.normal(0.0, 0.01, len(r))])
    statistics = return_statistics_nb(values, np.arange(len(r)))
    metrics = metrics_from_statistics(statistics, 365.0, len(r))
    assert np.isnan(metrics[0, 0]) and np.isfinite(metrics[1, 0])


def test_sharpe_tests_of_a_constant_series_have_no_answer():
    a = returns_of(compounding(0.001, 400))
    b = np.random.default_rng(2).normal(0.0, 0.01, len(a))
    for test in (sharpe_difference_test, iid_sharpe_difference_test):
        result = test(a, b)
        assert np.isnan(result.difference) or np.isnan(result.p_value), test.__name__
        assert np.isnan(result.p_value), test.__name__


def test_the_track_record_of_constant_returns_has_no_sharpe():
    returns = pd.Series(returns_of(compounding(0.001, 400)))
    record = _track_record(returns, 365.0, VerdictSettings())
    assert np.isnan(record["sharpe"])
