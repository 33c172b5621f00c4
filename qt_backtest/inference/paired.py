"""Paired bootstrap of performance differences: two runs over the same periods, resampled
with the same indices, so that what they share (the market) cancels and only what differs
(the layer) is left."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from qt_backtest.backtest.metrics import sharpe_ratio
from qt_backtest.inference.nb import (
    resampled_return_statistics_nb,
    return_statistics_nb,
    sharpe_difference_nb,
    sharpe_moments_nb,
    studentized_stationary_nb,
)
from qt_backtest.inference.resample import (
    check_draws,
    check_probability,
    joint_block_length,
    stationary_indices,
)

#: Metrics compared, each from a run's period returns: annualised Sharpe ratio, annualised
#: mean return, annualised Sortino ratio, maximum drawdown (a fraction, negative).
METRICS = ("sharpe", "annual_mean", "sortino", "max_drawdown")


def metrics_from_statistics(
    statistics: np.ndarray, periods_per_year: float, count: int
) -> np.ndarray:
    """The :data:`METRICS` from :func:`~qt_backtest.inference.nb.return_statistics_nb`'s
    (mean, standard deviation, downside deviation, maximum drawdown) in the last axis, of
    ``count`` period returns; the Sharpe ratio is NaN where the spread is zero or rounding
    noise (:func:`~qt_backtest.backtest.metrics.sharpe_ratio`)."""
    mean, std, downside, worst = np.moveaxis(statistics, -1, 0)
    annual = np.sqrt(periods_per_year)
    sharpe = sharpe_ratio(mean, std, count, annual)
    with np.errstate(divide="ignore", invalid="ignore"):
        sortino = np.where(downside > 0, mean / downside * annual, np.nan)
    return np.stack([sharpe, mean * periods_per_year, sortino, worst], axis=-1)


def paired_columns(
    returns: pd.DataFrame, pairs: list[tuple[str, str]]
) -> tuple[np.ndarray, list[int], list[int]]:
    """The period returns as a C-ordered float array (validated: at least 10 periods, every
    paired run present, finite), and the column positions of the later and earlier runs."""
    if returns.empty or len(returns) < 10:
        raise ValueError(f"a paired bootstrap needs at least 10 periods, got {len(returns)}")
    missing = sorted({name for pair in pairs for name in pair} - set(returns.columns))
    if missing:
        raise ValueError(f"paired runs not among the returns' columns: {missing}")
    values = np.ascontiguousarray(returns.to_numpy(dtype=float))
    if not np.isfinite(values).all():
        raise ValueError("period returns must be finite (no NaN or infinite values)")
    columns = list(returns.columns)
    return values, [columns.index(a) for a, _ in pairs], [columns.index(b) for _, b in pairs]


def usable_block_length(candidates: np.ndarray) -> float:
    """The longest automatic block length among the non-constant columns (1 if none)."""
    usable = [j for j in range(candidates.shape[1]) if np.ptp(candidates[:, j]) > 0]
    return joint_block_length(candidates[:, usable]) if usable else 1.0


def percentile_interval(draws: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided percentile interval over the first axis, NaN draws left out (a statistic
    undefined in every draw stays NaN)."""
    tail = (1.0 - confidence) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(draws, tail, axis=0), np.nanquantile(draws, 1.0 - tail, axis=0)


def _studentized_interval(
    a: np.ndarray,
    b: np.ndarray,
    draws: np.ndarray,
    estimate: float,
    periods_per_year: float,
    confidence: float,
) -> tuple[float, float] | None:
    """Bootstrap-t interval of an annualised Sharpe difference: the quantiles of the
    studentised draws ``(Delta* - Delta) / se*`` scaled by the HAC standard error (Ledoit and
    Wolf, 2008). None when the draws or the standard error are undefined (identical runs)."""
    from qt_backtest.inference.sharpe import sharpe_difference_test

    valid = np.isfinite(draws[:, 1]) & (draws[:, 1] > 0)
    if valid.sum() < 10:
        return None
    error = sharpe_difference_test(a, b).standard_error
    if not (np.isfinite(error) and error > 0):
        return None
    t = draws[valid, 0] / draws[valid, 1]
    tail = (1.0 - confidence) / 2.0
    scale = error * np.sqrt(periods_per_year)
    return (
        float(estimate - np.quantile(t, 1.0 - tail) * scale),
        float(estimate - np.quantile(t, tail) * scale),
    )


def paired_bootstrap(
    returns: pd.DataFrame,
    pairs: list[tuple[str, str]],
    periods_per_year: float,
    *,
    draws: int = 2000,
    block_length: float | None = None,
    confidence: float = 0.90,
    seed: int | np.random.Generator = 0,
) -> pd.DataFrame:
    """Differences of the :data:`METRICS` between paired runs, with stationary-bootstrap
    intervals: studentised (bootstrap-t) for the Sharpe ratio, percentiles for the others.

    All runs are resampled together, draw by draw with the same indices (a stationary
    bootstrap, Politis and Romano 1994), so each difference keeps the dependence between
    the two runs and over time.

    Parameters
    ----------
    returns : DataFrame, shape (periods, runs)
        Period returns (fractions), one column per run, the same periods for all, finite.
    pairs : list of (str, str)
        ``(later, earlier)`` column pairs: each difference is ``later - earlier``.
    periods_per_year : float
        Periods per year, to annualise.
    draws : int
        Bootstrap resamples.
    block_length : float, optional
        Mean block length; by default the longest automatic length (Politis and White) among
        the runs' returns and the paired differences.
    confidence : float
        Level of the two-sided intervals. The Sharpe difference's is a bootstrap-t interval:
        each resample's difference is studentised by the standard error its own blocks imply,
        and the quantiles of those ratios scale the HAC standard error of the data (Ledoit
        and Wolf, 2008), which covers better than percentiles under volatility clustering.
        The others are percentile intervals.
    seed : int or numpy Generator
        Same seed, same result.

    Returns
    -------
    DataFrame
        Index (later, earlier, metric); columns ``estimate`` (the difference on the data),
        ``low`` and ``high`` (interval bounds), ``standard_error`` (of the bootstrap
        differences), ``block_length``, ``draws``, ``confidence``.
    """
    confidence = check_probability(confidence, "confidence")
    draws = check_draws(draws)
    values, later, earlier = paired_columns(returns, pairs)
    if block_length is None:
        # the ratios depend on second moments too: their dependence (volatility clustering)
        # often outlasts that of the returns
        squares = (values - values.mean(axis=0)) ** 2
        block_length = usable_block_length(
            np.column_stack([values, values[:, later] - values[:, earlier], squares])
        )
    observed = metrics_from_statistics(
        return_statistics_nb(values, np.arange(len(values))), periods_per_year, len(values)
    )
    later_columns = np.array(later, dtype=np.int64)
    earlier_columns = np.array(earlier, dtype=np.int64)
    everything = np.arange(len(values))
    centres = np.array(
        [
            sharpe_difference_nb(
                sharpe_moments_nb(values[:, i], values[:, j], everything), len(values)
            )[0]
            for i, j in zip(later, earlier, strict=True)
        ]
    )
    pieces, studentized = [], []
    for resampled_rows in stationary_indices(len(values), block_length, draws, seed):
        statistics = resampled_return_statistics_nb(values, resampled_rows)
        pieces.append(
            metrics_from_statistics(statistics, periods_per_year, resampled_rows.shape[1])
        )
        studentized.append(
            studentized_stationary_nb(
                values, later_columns, earlier_columns, resampled_rows, centres
            )
        )
    resampled = np.concatenate(pieces)  # (draws, runs, metrics)
    differences = resampled[:, later] - resampled[:, earlier]
    low, high = percentile_interval(differences, confidence)
    estimate = observed[later] - observed[earlier]
    sharpe = METRICS.index("sharpe")
    draws_t = np.concatenate(studentized)  # (draws, pairs, 2)
    for p, (i, j) in enumerate(zip(later, earlier, strict=True)):
        interval = _studentized_interval(
            values[:, i],
            values[:, j],
            draws_t[:, p],
            estimate[p, sharpe],
            periods_per_year,
            confidence,
        )
        if interval is not None:
            low[p, sharpe], high[p, sharpe] = interval
    with warnings.catch_warnings():  # a metric undefined in every draw stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanstd(differences, axis=0, ddof=1)
    rows: list[dict] = []
    for p, (a, b) in enumerate(pairs):
        for m, metric in enumerate(METRICS):
            rows.append(
                {
                    "later": a,
                    "earlier": b,
                    "metric": metric,
                    "estimate": estimate[p, m],
                    "low": low[p, m],
                    "high": high[p, m],
                    "standard_error": spread[p, m],
                    "block_length": float(block_length),
                    "draws": draws,
                    "confidence": confidence,
                }
            )
    return pd.DataFrame(rows).set_index(["later", "earlier", "metric"])
