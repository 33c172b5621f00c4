"""Is one Sharpe ratio higher than another, and how long must a record be to tell?

- :func:`sharpe_difference_test`: Ledoit and Wolf's (2008) test of equal Sharpe ratios of two
  paired return series, with a heteroskedasticity and autocorrelation consistent (HAC)
  standard error, and its studentised block-bootstrap variant;
- :func:`iid_sharpe_difference_test`: the Jobson-Korkie test as corrected by Memmel (2003),
  which assumes independent, normal returns, shown for comparison;
- :func:`min_track_record_length`, :func:`probabilistic_sharpe_ratio`,
  :func:`min_backtest_length`, :func:`expected_max_sharpe` (Bailey and López de Prado);
- :func:`rollout_power`: live periods a paired Sharpe comparison needs to detect a drop.

Sharpe ratios here are per period (not annualised) unless a name says ``annual``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from qt_backtest.backtest.metrics import sharpe_ratio
from qt_backtest.inference.nb import (
    autocovariances_nb,
    sharpe_difference_nb,
    sharpe_moments_nb,
    studentized_block_bootstrap_nb,
)
from qt_backtest.inference.resample import (
    check_draws,
    check_probability,
    circular_starts,
    joint_block_length,
)

#: Euler-Mascheroni constant, in the expected maximum of N standard normals.
EULER_GAMMA = 0.5772156649015329
#: Lags of the quadratic-spectral kernel beyond this many bandwidths are left out: their
#: weights are below 1e-4 and alternate in sign.
QS_TRUNCATION = 50.0


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"paired returns must be two series of one length, got {a.shape}, {b.shape}"
        )
    if len(a) < 10:
        raise ValueError(f"a Sharpe comparison needs at least 10 paired returns, got {len(a)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired returns must be finite (no NaN or infinite values)")
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def quadratic_spectral_weight(x: np.ndarray) -> np.ndarray:
    """The quadratic-spectral kernel (Andrews, 1991) at ``x`` (lag over bandwidth)."""
    x = np.asarray(x, dtype=float)
    z = 6.0 * np.pi * x / 5.0
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = 25.0 / (12.0 * np.pi**2 * x**2) * (np.sin(z) / z - np.cos(z))
    return np.where(x == 0.0, 1.0, weight)


def _andrews_bandwidth(y: np.ndarray) -> float:
    """Andrews' (1991) automatic bandwidth of the quadratic-spectral kernel, from an AR(1)
    fitted to each column (equal weights)."""
    n = len(y)
    numerator = denominator = 0.0
    for column in y.T:
        lagged, current = column[:-1], column[1:]
        scale = float(lagged @ lagged)
        rho = float(lagged @ current) / scale if scale > 0 else 0.0
        rho = min(max(rho, -0.97), 0.97)  # a unit root would give an infinite bandwidth
        sigma2 = float(np.mean((current - rho * lagged) ** 2))
        numerator += 4.0 * rho**2 * sigma2**2 / (1.0 - rho) ** 8
        denominator += sigma2**2 / (1.0 - rho) ** 4
    alpha = numerator / denominator if denominator > 0 else 0.0
    return 1.3221 * (alpha * n) ** 0.2


def hac_covariance(y: np.ndarray, *, prewhiten: bool = True) -> np.ndarray:
    """Long-run covariance of a centred multivariate series: the quadratic-spectral kernel
    with Andrews' automatic bandwidth, after VAR(1) prewhitening (Andrews and Monahan, 1992)
    by default.

    Parameters
    ----------
    y : ndarray, shape (n, p)
        Centred series (each column has mean 0).
    prewhiten : bool
        Fit a VAR(1), estimate the residuals' long-run covariance and recolour it.

    Returns
    -------
    ndarray, shape (p, p)
        The long-run covariance ``sum_j Gamma(j)`` (the variance of ``sqrt(n)`` times the
        mean).
    """
    y = np.ascontiguousarray(y, dtype=float)
    recolour = None
    if prewhiten and len(y) > 3 * y.shape[1]:
        lagged, current = y[:-1], y[1:]
        coefficients, *_ = np.linalg.lstsq(lagged, current, rcond=None)
        transition = coefficients.T
        inverse = np.eye(y.shape[1]) - transition
        # a near unit root makes the recolouring explode: fall back to the plain estimate
        if np.linalg.cond(inverse) < 1e6 and np.abs(np.linalg.eigvals(transition)).max() < 0.97:
            recolour = np.linalg.inv(inverse)
            y = np.ascontiguousarray(current - lagged @ coefficients)
    bandwidth = _andrews_bandwidth(y)
    lags = int(min(len(y) - 1, math.ceil(QS_TRUNCATION * max(bandwidth, 1.0))))
    gammas = autocovariances_nb(y, lags)
    psi = gammas[0].copy()
    if lags > 0 and bandwidth > 0:
        weights = quadratic_spectral_weight(np.arange(1, lags + 1) / bandwidth)
        later = np.einsum("j,jab->ab", weights, gammas[1:])
        psi += later + later.T
    if recolour is not None:
        psi = recolour @ psi @ recolour.T
    return psi


@dataclass(frozen=True)
class SharpeTest:
    """A test of equal Sharpe ratios, ``a`` against ``b``.

    Attributes
    ----------
    difference : float
        Sharpe of ``a`` minus Sharpe of ``b``, per period.
    standard_error : float
        Standard error of ``difference``.
    statistic : float
        ``difference / standard_error``.
    p_value : float
        Two-sided p-value of equal Sharpe ratios.
    p_value_greater : float
        One-sided p-value against "``a`` has the higher Sharpe ratio".
    p_value_less : float
        One-sided p-value against "``a`` has the lower Sharpe ratio".
    variance : float
        Variance of ``sqrt(n)`` times the difference (for sample sizes and power).
    n : int
        Paired observations.
    method : str
        ``"hac"``, ``"bootstrap"`` or ``"iid"``.
    """

    difference: float
    standard_error: float
    statistic: float
    p_value: float
    p_value_greater: float
    p_value_less: float
    variance: float
    n: int
    method: str


def _moments(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return sharpe_moments_nb(a, b, np.arange(len(a)))


def sharpe_difference_test(a: np.ndarray, b: np.ndarray, *, prewhiten: bool = True) -> SharpeTest:
    """Ledoit and Wolf's (2008) HAC test of equal Sharpe ratios of paired returns.

    The difference of Sharpe ratios is a smooth function of four means (of ``a``, ``b``,
    ``a**2`` and ``b**2``); its standard error is the delta method applied to their HAC
    long-run covariance (:func:`hac_covariance`), with the small-sample factor ``n / (n - 4)``.
    Valid under serial dependence and heteroskedasticity, unlike the iid test.

    Parameters
    ----------
    a, b : ndarray, shape (n,)
        Paired period returns (same periods), at least 10.
    prewhiten : bool
        VAR(1) prewhitening of the HAC estimate.
    """
    a, b = _paired(a, b)
    n = len(a)
    moments = _moments(a, b)
    difference, gradient = sharpe_difference_nb(moments, n)
    y = np.column_stack([a, b, a * a, b * b]) - moments
    psi = hac_covariance(y, prewhiten=prewhiten) * n / (n - 4)
    return _normal_test(difference, float(gradient @ psi @ gradient), n, "hac")


def _normal_test(difference: float, variance: float, n: int, method: str) -> SharpeTest:
    standard_error = math.sqrt(variance / n) if variance > 0 else np.nan
    statistic = difference / standard_error if standard_error > 0 else np.nan
    if np.isfinite(statistic):
        p_value = float(2.0 * stats.norm.sf(abs(statistic)))
        greater, less = float(stats.norm.sf(statistic)), float(stats.norm.cdf(statistic))
    else:
        p_value = greater = less = np.nan
    return SharpeTest(
        float(difference), standard_error, statistic, p_value, greater, less, variance, n, method
    )


def iid_sharpe_difference_test(a: np.ndarray, b: np.ndarray) -> SharpeTest:
    """The Jobson and Korkie (1981) test of equal Sharpe ratios, corrected by Memmel (2003).

    Assumes independent, identically and normally distributed returns: beside the HAC test
    it shows how much serial dependence and fat tails change the answer. Its variance of
    ``sqrt(n)`` times the difference is ``2 - 2 rho + (s_a^2 + s_b^2 - 2 s_a s_b rho^2) / 2``
    with ``s`` the Sharpe ratios and ``rho`` the correlation of the returns."""
    a, b = _paired(a, b)
    n = len(a)
    sharpe_a = sharpe_ratio(a.mean(), a.std(), n)
    sharpe_b = sharpe_ratio(b.mean(), b.std(), n)
    # without a spread (or with rounding noise for one) there is no ratio and no correlation
    rho = float(np.corrcoef(a, b)[0, 1]) if np.isfinite(sharpe_a - sharpe_b) else np.nan
    variance = (
        2.0 - 2.0 * rho + 0.5 * (sharpe_a**2 + sharpe_b**2 - 2.0 * sharpe_a * sharpe_b * rho**2)
    )
    return _normal_test(sharpe_a - sharpe_b, variance, n, "iid")


def bootstrap_sharpe_difference_test(
    a: np.ndarray,
    b: np.ndarray,
    *,
    draws: int = 2000,
    block_length: float | None = None,
    seed: int | np.random.Generator = 0,
    prewhiten: bool = True,
) -> SharpeTest:
    """Ledoit and Wolf's (2008) studentised circular block-bootstrap test of equal Sharpe
    ratios.

    Each resample is studentised by the standard error its own blocks imply; the p-value is
    the share of resampled ``|Delta* - Delta| / se*`` at least as large as the observed
    ``|Delta| / se`` (with the HAC standard error), counted as ``(1 + hits) / (1 + draws)``.
    The block length defaults to the automatic circular length of the four moment series.
    ``standard_error`` and ``variance`` are the HAC ones.
    """
    a, b = _paired(a, b)
    draws = check_draws(draws)
    n = len(a)
    hac = sharpe_difference_test(a, b, prewhiten=prewhiten)
    if block_length is None:
        moments = _moments(a, b)
        y = np.column_stack([a, b, a * a, b * b]) - moments
        block_length = joint_block_length(y, "circular")
    block = int(min(max(round(block_length), 1), n // 2))
    starts = circular_starts(n, block, draws, seed)[:, : n // block]
    resampled = studentized_block_bootstrap_nb(a, b, starts, block, hac.difference)
    shifted, errors = resampled[:, 0], resampled[:, 1]
    valid = np.isfinite(errors) & (errors > 0)
    studentized = shifted[valid] / errors[valid]
    observed = hac.statistic
    if not np.isfinite(observed) or not valid.any():
        p_two = p_greater = p_less = np.nan
    else:
        total = valid.sum() + 1
        p_two = float((1 + np.sum(np.abs(studentized) >= abs(observed))) / total)
        p_greater = float((1 + np.sum(studentized >= observed)) / total)
        p_less = float((1 + np.sum(studentized <= observed)) / total)
    return SharpeTest(
        hac.difference,
        hac.standard_error,
        observed,
        p_two,
        p_greater,
        p_less,
        hac.variance,
        n,
        "bootstrap",
    )


def sharpe_spread(sharpe: float, skewness: float, kurtosis: float) -> float:
    """Variance of ``sqrt(n)`` times an estimated per-period Sharpe ratio for returns with
    this skewness and raw kurtosis (Mertens, 2002): ``1 - g3 SR + (g4 - 1) / 4 SR^2``."""
    return 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark: float, n_obs: int, skewness: float = 0.0, kurtosis: float = 3.0
) -> float:
    """Probability that the true per-period Sharpe ratio exceeds ``benchmark`` (Bailey and
    López de Prado, 2012), given ``sharpe`` measured on ``n_obs`` returns with this skewness
    and raw (not excess) kurtosis."""
    if n_obs < 2:
        raise ValueError(f"n_obs must be >= 2, got {n_obs}")
    spread = sharpe_spread(sharpe, skewness, kurtosis)
    if not spread > 0:
        return float("nan")
    return float(stats.norm.cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(spread)))


def min_track_record_length(
    sharpe: float,
    skewness: float,
    kurtosis: float,
    benchmark: float = 0.0,
    confidence: float = 0.95,
) -> float:
    """Minimum track record length (Bailey and López de Prado, 2012): how many returns an
    estimated Sharpe ratio needs before it exceeds ``benchmark`` at ``confidence``.

    ``1 + (1 - g3 SR + (g4 - 1) / 4 SR^2) (z / (SR - SR*))^2`` with ``g3`` the skewness,
    ``g4`` the raw kurtosis (3 for normal returns) and ``z`` the normal quantile at
    ``confidence``. Sharpe ratios per period; the result counts periods, and is infinite when
    the Sharpe ratio does not exceed the benchmark."""
    confidence = check_probability(confidence, "confidence")
    if not sharpe > benchmark:
        return math.inf
    z = stats.norm.ppf(confidence)
    spread = sharpe_spread(sharpe, skewness, kurtosis)
    return float(1.0 + spread * (z / (sharpe - benchmark)) ** 2)


def expected_max_sharpe(n_trials: int, variance: float = 1.0) -> float:
    """Expected largest Sharpe ratio of ``n_trials`` skill-less trials whose Sharpe ratios
    have ``variance`` (Bailey, Borwein, López de Prado and Zhu, 2014, the false-strategy
    theorem's approximation): ``sqrt(variance) ((1 - g) Z^-1(1 - 1/N) + g Z^-1(1 - 1/(N e)))``
    with ``g`` the Euler-Mascheroni constant. With ``variance`` 1 it is the expected best
    annualised Sharpe ratio of ``n_trials`` skill-less strategies over one year."""
    if isinstance(n_trials, bool) or not isinstance(n_trials, int | np.integer) or n_trials < 1:
        raise ValueError(f"n_trials must be an integer >= 1, got {n_trials!r}")
    if not variance >= 0:
        raise ValueError(f"variance must be >= 0, got {variance}")
    if n_trials == 1:
        return 0.0
    quantile = stats.norm.ppf
    return math.sqrt(variance) * float(
        (1.0 - EULER_GAMMA) * quantile(1.0 - 1.0 / n_trials)
        + EULER_GAMMA * quantile(1.0 - 1.0 / (n_trials * math.e))
    )


def min_backtest_length(trials: int, annual_sharpe: float = 1.0) -> float:
    """Minimum backtest length in years (Bailey, Borwein, López de Prado and Zhu, 2014):
    below it, the best of ``trials`` independent skill-less configurations is expected to
    reach an in-sample annualised Sharpe ratio of ``annual_sharpe`` by chance alone:
    ``(E[max_N] / SR)^2``."""
    if not annual_sharpe > 0:
        raise ValueError(f"annual_sharpe must be positive, got {annual_sharpe!r}")
    if isinstance(trials, bool) or not isinstance(trials, int | np.integer) or trials < 2:
        raise ValueError(f"trials must be an integer of at least 2, got {trials!r}")
    return (expected_max_sharpe(trials) / annual_sharpe) ** 2


def rollout_power(
    variance: float,
    annual_drop: float,
    periods_per_year: float,
    *,
    alpha: float = 0.05,
    power: float = 0.80,
) -> float:
    """Periods of live returns a one-sided test of "no Sharpe degradation" needs to detect
    an annualised drop of ``annual_drop`` with probability ``power`` at level ``alpha``.

    ``n = variance (z_(1-alpha) + z_power)^2 / drop^2`` with the drop per period and
    ``variance`` that of ``sqrt(n)`` times the paired Sharpe difference
    (:attr:`SharpeTest.variance`, estimated on history)."""
    alpha = check_probability(alpha, "alpha")
    power = check_probability(power, "power")
    if not annual_drop > 0:
        raise ValueError(f"annual_drop must be positive, got {annual_drop!r}")
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year!r}")
    drop = annual_drop / math.sqrt(periods_per_year)
    z = stats.norm.ppf(1.0 - alpha) + stats.norm.ppf(power)
    return float(variance * z**2 / drop**2)
