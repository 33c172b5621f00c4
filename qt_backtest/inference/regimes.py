"""Where does a layer's value come from? Market regimes known in advance, and the paired value
of each transition within each regime.

A period's regime is decided from data before the period starts: realised volatility over a
trailing window of periods, cut into terciles at thresholds taken from the past values only
(an expanding window), and the sign of the trailing return (trend up or down). A regime
label therefore never looks ahead, and a layer that shines only in "high volatility" periods
could have been switched on by them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit, prange

from qt_backtest.backtest.metrics import sharpe_ratio
from qt_backtest.inference.paired import (
    paired_columns,
    percentile_interval,
    usable_block_length,
)
from qt_backtest.inference.resample import check_draws, check_probability, stationary_indices
from qt_backtest.inference.returns import check_period, check_time_index

#: Regime families and their labels, in order.
REGIMES = {
    "volatility": ("low volatility", "mid volatility", "high volatility"),
    "trend": ("trend down", "trend up"),
}


def _trailing_log_returns(close: pd.Series, period: str) -> pd.Series:
    check_time_index(close.index, "close")
    values = close.to_numpy(dtype=float)
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError("close prices must be finite and positive")
    ends = close.groupby(close.index.floor(check_period(period))).last()
    return np.log(ends).diff()


def regime_labels(
    close: pd.Series,
    *,
    period: str = "1D",
    window: int = 30,
    min_history: int = 60,
) -> pd.DataFrame:
    """Regime of every period, from data before it.

    Parameters
    ----------
    close : Series
        Close prices, indexed by bar timestamp.
    period : str
        Period length (``"1D"``), as the period returns the labels go with.
    window : int
        Trailing periods of the realised volatility and of the trend.
    min_history : int
        Past volatility values needed before the tercile thresholds are used.

    Returns
    -------
    DataFrame
        Indexed by period start (as :func:`~qt_backtest.inference.returns.period_returns`),
        columns ``volatility`` and ``trend``: the labels of :data:`REGIMES`, missing
        (``pd.NA``) until the history suffices. The label of period ``p`` uses close prices up
        to the end of period ``p - 1`` only.
    """
    for name, value, low in (("window", window, 2), ("min_history", min_history, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}")
    returns = _trailing_log_returns(close, period)
    volatility = returns.rolling(window, min_periods=window).std()
    trend = returns.rolling(window, min_periods=window).sum()
    # known at the start of each period: the values up to the end of the previous one
    known_volatility = volatility.shift(1).to_numpy()
    known_trend = trend.shift(1).to_numpy()
    labels_volatility = np.full(len(returns), -1, dtype=np.int64)
    past: list[float] = []
    for position, value in enumerate(known_volatility):
        if np.isnan(value):
            continue
        if len(past) >= min_history:
            low, high = np.quantile(past, [1 / 3, 2 / 3])
            labels_volatility[position] = 0 if value <= low else (1 if value <= high else 2)
        past.append(value)  # the thresholds of later periods may use it
    labels_trend = np.where(np.isnan(known_trend), -1, (known_trend > 0).astype(np.int64))
    frame = pd.DataFrame(index=returns.index)
    for name, codes in (("volatility", labels_volatility), ("trend", labels_trend)):
        names = REGIMES[name]
        frame[name] = pd.Categorical.from_codes(codes, categories=list(names))
    return frame


@njit(cache=True, parallel=True)
def regime_moments_nb(x, labels, regimes, indices):
    """Count, sum and sum of squares of each column of ``x`` per regime in each resample.

    ``x`` has shape (n, m), ``labels`` (n,) with -1 for unlabelled, ``indices`` (draws, n);
    returns shape (draws, regimes, m, 3)."""
    draws, n = indices.shape
    m = x.shape[1]
    out = np.zeros((draws, regimes, m, 3))
    for d in prange(draws):
        for i in range(n):
            row = indices[d, i]
            label = labels[row]
            if label < 0:
                continue
            for j in range(m):
                value = x[row, j]
                out[d, label, j, 0] += 1.0
                out[d, label, j, 1] += value
                out[d, label, j, 2] += value * value
    return out


def _regime_metrics(moments: np.ndarray, periods_per_year: float) -> np.ndarray:
    """Annualised mean and Sharpe ratio from (count, sum, sum of squares): last axis 2. The
    Sharpe ratio is NaN without a spread, or with only the rounding noise of the sums
    (:func:`~qt_backtest.backtest.metrics.sharpe_ratio`)."""
    count, total, squares = np.moveaxis(moments, -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
        variance = (squares - count * mean**2) / (count - 1)
        sharpe = sharpe_ratio(mean, np.sqrt(np.maximum(variance, 0.0)), count)
    return np.stack([mean * periods_per_year, sharpe * np.sqrt(periods_per_year)], axis=-1)


def value_by_regime(
    returns: pd.DataFrame,
    labels: pd.DataFrame,
    pairs: list[tuple[str, str]],
    periods_per_year: float,
    *,
    draws: int = 2000,
    block_length: float | None = None,
    confidence: float = 0.90,
    seed: int | np.random.Generator = 0,
) -> pd.DataFrame:
    """Paired value of each transition within each regime, with bootstrap intervals.

    The periods are resampled together with their labels (a stationary bootstrap of the
    whole history, the same indices for every run), and each resample's regime-conditional
    means and Sharpe ratios are differenced.

    Parameters
    ----------
    returns : DataFrame, shape (periods, runs)
        Period returns of the runs.
    labels : DataFrame
        :func:`regime_labels`, indexed like ``returns`` (extra periods are ignored).
    pairs : list of (str, str)
        ``(later, earlier)`` runs: each difference is ``later - earlier``.

    Returns
    -------
    DataFrame
        Index (later, earlier, family, regime, metric) with metric ``annual_mean`` and
        ``sharpe``: ``estimate``, ``low``, ``high``, ``periods`` (in the regime).
    """
    confidence = check_probability(confidence, "confidence")
    draws = check_draws(draws)
    values, later, earlier = paired_columns(returns, pairs)
    absent = returns.index.difference(labels.index)
    if len(absent):
        raise ValueError(f"{len(absent)} periods of the returns have no regime label")
    if block_length is None:
        block_length = usable_block_length(values[:, later] - values[:, earlier])
    rows = []
    for family, names in REGIMES.items():
        codes = labels[family].reindex(returns.index).cat.codes.to_numpy().astype(np.int64)
        everything = np.arange(len(values))[None, :]
        observed = _regime_metrics(
            regime_moments_nb(values, codes, len(names), everything), periods_per_year
        )[0]
        resampled = np.concatenate(
            [
                _regime_metrics(
                    regime_moments_nb(values, codes, len(names), rows_), periods_per_year
                )
                for rows_ in stationary_indices(len(values), block_length, draws, seed)
            ]
        )  # (draws, regimes, runs, 2)
        difference = resampled[:, :, later] - resampled[:, :, earlier]
        estimate = observed[:, later] - observed[:, earlier]
        low, high = percentile_interval(difference, confidence)
        counts = np.bincount(codes[codes >= 0], minlength=len(names))
        for r, regime in enumerate(names):
            for p, (a, b) in enumerate(pairs):
                for k, metric in enumerate(("annual_mean", "sharpe")):
                    rows.append(
                        {
                            "later": a,
                            "earlier": b,
                            "family": family,
                            "regime": regime,
                            "metric": metric,
                            "estimate": estimate[r, p, k],
                            "low": low[r, p, k],
                            "high": high[r, p, k],
                            "periods": int(counts[r]),
                        }
                    )
    return pd.DataFrame(rows).set_index(["later", "earlier", "family", "regime", "metric"])
