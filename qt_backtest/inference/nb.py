"""Numba kernels of the inference package: bootstrap index streams, statistics of resampled
return series, and autocovariances. Plain numpy arrays in, plain arrays out."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from qt_backtest.backtest.nb import negligible_spread_nb


@njit(cache=True)
def stationary_indices_nb(starts, uniforms, probability):
    """Indices of stationary-bootstrap resamples (Politis and Romano, 1994).

    Parameters
    ----------
    starts : ndarray, shape (draws, n), int64
        Uniform draws in ``[0, n)``: where a block starts.
    uniforms : ndarray, shape (draws, n)
        Uniform draws in ``[0, 1)``: observation ``i > 0`` starts a new block when its
        uniform is at most ``probability``, else it continues the previous block (wrapping
        from ``n - 1`` to 0).
    probability : float
        Chance of a new block, the reciprocal of the mean block length.

    Returns
    -------
    ndarray, shape (draws, n), int64
    """
    draws, n = starts.shape
    out = np.empty((draws, n), dtype=np.int64)
    for d in range(draws):
        out[d, 0] = starts[d, 0]
        for i in range(1, n):
            if uniforms[d, i] > probability:
                following = out[d, i - 1] + 1
                out[d, i] = 0 if following == n else following
            else:
                out[d, i] = starts[d, i]
    return out


@njit(cache=True)
def circular_indices_nb(starts, n, block):
    """Indices of circular block-bootstrap resamples: blocks of ``block`` consecutive
    observations from each start, wrapping at ``n``, the last block cut at ``n``.

    ``starts`` has shape (draws, blocks); returns shape (draws, n)."""
    draws, blocks = starts.shape
    out = np.empty((draws, n), dtype=np.int64)
    for d in range(draws):
        for j in range(blocks):
            for t in range(block):
                i = j * block + t
                if i >= n:
                    break
                out[d, i] = (starts[d, j] + t) % n
    return out


@njit(cache=True, parallel=True)
def resampled_means_nb(x, indices):
    """Column means of each resample: ``x[indices[d]].mean(axis=0)`` for every draw ``d``,
    summed row by row in resample order.

    ``x`` has shape (n, k), ``indices`` (draws, n); returns shape (draws, k)."""
    draws, n = indices.shape
    k = x.shape[1]
    out = np.zeros((draws, k))
    for d in prange(draws):
        for i in range(n):
            row = indices[d, i]
            for j in range(k):
                out[d, j] += x[row, j]
        for j in range(k):
            out[d, j] /= n
    return out


@njit(cache=True)
def return_statistics_nb(x, rows):
    """Mean, standard deviation (ddof 1), downside root mean square and maximum drawdown of
    each column of ``x[rows]``, compounding the returns from an equity of 1.

    ``x`` has shape (n, m) of period returns; returns shape (m, 4)."""
    n = rows.shape[0]
    m = x.shape[1]
    out = np.empty((m, 4))
    for j in range(m):
        total = 0.0
        for i in range(n):
            total += x[rows[i], j]
        mean = total / n
        squares = 0.0
        downside = 0.0
        equity = 1.0
        peak = 1.0
        worst = 0.0
        for i in range(n):
            r = x[rows[i], j]
            squares += (r - mean) ** 2
            if r < 0.0:
                downside += r * r
            equity *= 1.0 + r
            if equity > peak:
                peak = equity
            elif peak > 0.0:
                drawn = equity / peak - 1.0
                if drawn < worst:
                    worst = drawn
        out[j, 0] = mean
        out[j, 1] = math.sqrt(squares / (n - 1)) if n > 1 else np.nan
        out[j, 2] = math.sqrt(downside / n)
        out[j, 3] = worst
    return out


@njit(cache=True, parallel=True)
def resampled_return_statistics_nb(x, indices):
    """:func:`return_statistics_nb` of every resample: shape (draws, m, 4)."""
    draws = indices.shape[0]
    out = np.empty((draws, x.shape[1], 4))
    for d in prange(draws):
        out[d] = return_statistics_nb(x, indices[d])
    return out


@njit(cache=True)
def autocovariances_nb(y, lags):
    """Autocovariance matrices ``G[j] = sum_t y[t] y[t - j]' / n`` of a centred multivariate
    series ``y`` (shape (n, p)) for lags ``0..lags``: shape (lags + 1, p, p)."""
    n, p = y.shape
    out = np.zeros((lags + 1, p, p))
    for j in range(lags + 1):
        for t in range(j, n):
            for a in range(p):
                for b in range(p):
                    out[j, a, b] += y[t, a] * y[t - j, b]
    return out / n


@njit(cache=True)
def sharpe_moments_nb(a, b, rows):
    """The four moments (mean and mean square of ``a`` and ``b``) of the rows ``rows``."""
    moments = np.zeros(4)
    for i in range(rows.shape[0]):
        x = a[rows[i]]
        y = b[rows[i]]
        moments[0] += x
        moments[1] += y
        moments[2] += x * x
        moments[3] += y * y
    return moments / rows.shape[0]


@njit(cache=True)
def sharpe_difference_nb(moments, count):
    """Difference of the Sharpe ratios (per period, population standard deviation) from
    the moments ``(mean a, mean b, mean square a, mean square b)`` of ``count`` paired
    returns, and its gradient; NaN when either spread is zero or rounding noise
    (:func:`qt_backtest.backtest.nb.negligible_spread_nb`)."""
    mu_a, mu_b, sq_a, sq_b = moments[0], moments[1], moments[2], moments[3]
    var_a = sq_a - mu_a * mu_a
    var_b = sq_b - mu_b * mu_b
    gradient = np.empty(4)
    if (
        var_a <= 0.0
        or var_b <= 0.0
        or negligible_spread_nb(math.sqrt(var_a), mu_a, count)
        or negligible_spread_nb(math.sqrt(var_b), mu_b, count)
    ):
        gradient[:] = np.nan
        return np.nan, gradient
    gradient[0] = sq_a / var_a**1.5
    gradient[1] = -sq_b / var_b**1.5
    gradient[2] = -0.5 * mu_a / var_a**1.5
    gradient[3] = 0.5 * mu_b / var_b**1.5
    return mu_a / math.sqrt(var_a) - mu_b / math.sqrt(var_b), gradient


@njit(cache=True, parallel=True)
def studentized_block_bootstrap_nb(a, b, starts, block, difference):
    """Ledoit and Wolf's (2008) studentised circular block bootstrap of a Sharpe difference.

    Each draw concatenates ``starts.shape[1]`` blocks of ``block`` consecutive paired
    returns (wrapping); its standard error comes from the block sums of the centred moment
    series, as the resample's own dependence structure dictates.

    Returns shape (draws, 2): the resampled difference minus ``difference`` and its standard
    error."""
    n = a.shape[0]
    draws, blocks = starts.shape
    length = blocks * block
    out = np.empty((draws, 2))
    for d in prange(draws):
        rows = np.empty(length, dtype=np.int64)
        for j in range(blocks):
            for t in range(block):
                rows[j * block + t] = (starts[d, j] + t) % n
        moments = sharpe_moments_nb(a, b, rows)
        value, gradient = sharpe_difference_nb(moments, length)
        psi = np.zeros((4, 4))
        zeta = np.empty(4)
        for j in range(blocks):
            zeta[:] = 0.0
            for t in range(block):
                i = rows[j * block + t]
                zeta[0] += a[i] - moments[0]
                zeta[1] += b[i] - moments[1]
                zeta[2] += a[i] * a[i] - moments[2]
                zeta[3] += b[i] * b[i] - moments[3]
            for p in range(4):
                for q in range(4):
                    psi[p, q] += zeta[p] * zeta[q] / block
        variance = 0.0
        for p in range(4):
            for q in range(4):
                variance += gradient[p] * psi[p, q] * gradient[q]
        variance /= blocks * length
        out[d, 0] = value - difference
        out[d, 1] = math.sqrt(variance) if variance > 0.0 else np.nan
    return out


@njit(cache=True, parallel=True)
def studentized_stationary_nb(x, later, earlier, indices, differences):
    """Studentised stationary-bootstrap draws of Sharpe differences of column pairs.

    For each resample and pair ``(later[p], earlier[p])`` of ``x`` (shape (n, m)): the
    resampled difference of per-period Sharpe ratios (population moments) minus
    ``differences[p]``, and its standard error from the resample's own blocks (the sums of
    the centred moment series over each block the resample is made of, a block ending where
    the next index does not follow on). Returns shape (draws, pairs, 2)."""
    draws, n = indices.shape
    pairs = later.shape[0]
    out = np.empty((draws, pairs, 2))
    for d in prange(draws):
        rows = indices[d]
        for p in range(pairs):
            a = x[:, later[p]]
            b = x[:, earlier[p]]
            moments = sharpe_moments_nb(a, b, rows)
            value, gradient = sharpe_difference_nb(moments, n)
            psi = np.zeros((4, 4))
            zeta = np.zeros(4)
            for i in range(n):
                row = rows[i]
                if i > 0 and row != (rows[i - 1] + 1) % n:
                    for u in range(4):
                        for v in range(4):
                            psi[u, v] += zeta[u] * zeta[v]
                    zeta[:] = 0.0
                zeta[0] += a[row] - moments[0]
                zeta[1] += b[row] - moments[1]
                zeta[2] += a[row] * a[row] - moments[2]
                zeta[3] += b[row] * b[row] - moments[3]
            variance = 0.0
            for u in range(4):
                for v in range(4):
                    variance += gradient[u] * (psi[u, v] + zeta[u] * zeta[v]) * gradient[v]
            variance /= n * n
            out[d, p, 0] = value - differences[p]
            out[d, p, 1] = math.sqrt(variance) if variance > 0.0 else np.nan
    return out
