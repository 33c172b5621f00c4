"""Multiple testing across many runs: does any beat the benchmark beyond chance (Hansen's SPA
test, White's Reality Check), which do (Romano and Wolf's StepM), and which runs remain in a
Model Confidence Set (Hansen, Lunde and Nason).

Losses are "lower is better" (for returns, pass their negatives). All resampling is the
stationary bootstrap of :mod:`qt_backtest.inference.resample`, with ``arch``'s random
stream: for the same losses, block length and seed, the results are ``arch.bootstrap``'s
``SPA``, ``RealityCheck``, ``StepM`` and ``MCS`` (see :func:`spa_test` for the one
difference, studentisation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.inference.nb import resampled_means_nb
from qt_backtest.inference.resample import (
    check_block_length,
    check_draws,
    optimal_block_length,
    stationary_indices,
)

#: The three p-values of the SPA test, from the least to the most conservative recentring.
SPA_PVALUES = ("lower", "consistent", "upper")


def _loss_matrix(values, name: str, min_columns: int = 1) -> np.ndarray:
    matrix = np.asarray(values, dtype=float)
    matrix = matrix[:, None] if matrix.ndim == 1 else matrix
    if matrix.ndim != 2 or matrix.shape[0] < 10 or matrix.shape[1] < min_columns:
        raise ValueError(
            f"{name} must have at least 10 periods and {min_columns} column(s), "
            f"got shape {matrix.shape}"
        )
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} must be finite (no NaN or infinite values)")
    return np.ascontiguousarray(matrix)


def _default_block_length(series: np.ndarray) -> float:
    """The automatic stationary block length of a representative series, at least 1."""
    if np.ptp(series) == 0:
        return 1.0
    return optimal_block_length(series)[0]


def bootstrap_means(
    x: np.ndarray, block_length: float, draws: int, seed: int | np.random.Generator
) -> np.ndarray:
    """Column means of stationary-bootstrap resamples of ``x`` (shape (n, k)): shape
    (draws, k)."""
    return np.concatenate(
        [
            resampled_means_nb(x, rows)
            for rows in stationary_indices(len(x), block_length, draws, seed)
        ]
    )


def long_run_variance(x: np.ndarray, block_length: float) -> np.ndarray:
    """Variance of ``sqrt(n)`` times each column mean under the stationary bootstrap (Politis
    and Romano, 1994; Hansen, 2005): autocovariances weighted by
    ``(1 - i/n)(1 - p)^i + (i/n)(1 - p)^(n - i)`` with ``p = 1 / block_length``.

    ``x`` has shape (n, k); returns shape (k,)."""
    n = x.shape[0]
    centred = x - x.mean(axis=0)
    size = 1 << math.ceil(math.log2(2 * n))
    spectrum = np.fft.rfft(centred, n=size, axis=0)
    cross = np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=0)[:n]  # sum_t x_t x_(t+i)
    lag = np.arange(1, n)
    keep = 1.0 - 1.0 / block_length
    kappa = (1.0 - lag / n) * keep**lag + (lag / n) * keep ** (n - lag)
    return (cross[0] + 2.0 * kappa @ cross[1:]) / n


@dataclass(frozen=True)
class SPAResult:
    """Hansen's (2005) test of superior predictive ability.

    Attributes
    ----------
    pvalues : Series
        ``lower``, ``consistent`` (Hansen's recommended) and ``upper`` p-values of the null
        "no model is better than the benchmark". ``upper`` without studentisation is White's
        (2000) Reality Check.
    statistic : float
        Largest (studentised) mean loss advantage over the benchmark.
    advantage : ndarray, shape (k,)
        Each model's mean loss advantage (benchmark loss minus model loss), studentised when
        the test is.
    simulated : ndarray, shape (3, draws, k)
        Recentred bootstrap advantages for the three p-values, in the order of
        :data:`SPA_PVALUES`.
    block_length, draws, studentized
        The test's settings.
    """

    pvalues: pd.Series
    statistic: float
    advantage: np.ndarray = field(repr=False)
    simulated: np.ndarray = field(repr=False)
    block_length: float
    draws: int
    studentized: bool

    def critical_values(self, size: float = 0.05, subset: np.ndarray | None = None) -> pd.Series:
        """Critical values of the largest advantage at test size ``size``, for the models in
        ``subset`` (a boolean mask; all by default)."""
        if not 0.0 < size < 1.0:
            raise ValueError(f"size must be in (0, 1), got {size!r}")
        simulated = self.simulated if subset is None else self.simulated[:, :, subset]
        largest = simulated.max(axis=2)
        return pd.Series(np.percentile(largest, 100.0 * (1.0 - size), axis=1), index=SPA_PVALUES)

    def better_models(
        self, size: float = 0.05, kind: str = "consistent", subset: np.ndarray | None = None
    ) -> np.ndarray:
        """Indices of the models (among ``subset``) whose advantage exceeds the critical
        value at ``size``."""
        if kind not in SPA_PVALUES:
            raise ValueError(f"kind must be one of {SPA_PVALUES}, got {kind!r}")
        mask = np.ones(len(self.advantage), dtype=bool) if subset is None else subset
        critical = self.critical_values(size, mask)[kind]
        return np.flatnonzero((self.advantage > critical) & mask)


def spa_test(
    benchmark_losses: np.ndarray,
    model_losses: np.ndarray,
    *,
    block_length: float | None = None,
    draws: int = 1000,
    seed: int | np.random.Generator = 0,
    studentize: bool = True,
) -> SPAResult:
    """Hansen's (2005) SPA test: is any model's expected loss below the benchmark's?

    Parameters
    ----------
    benchmark_losses : ndarray, shape (n,)
        The benchmark's loss per period (e.g. minus its period returns).
    model_losses : ndarray, shape (n, k)
        Each model's loss over the same periods.
    block_length : float, optional
        Mean block length of the stationary bootstrap; by default the automatic length of
        the benchmark's losses minus the models' mean loss.
    draws : int
        Bootstrap resamples.
    seed : int or numpy Generator
        Same seed, same result.
    studentize : bool
        Divide each advantage by its standard deviation (Hansen's statistic). Without it the
        test is ``arch.bootstrap.SPA``, which, as of arch 8.0, uses the variances only for
        the consistent recentring; with it, it is ``arch``'s test on the advantages divided
        by those standard deviations.

    Notes
    -----
    Models whose mean advantage is below ``-sqrt(2 log log n) * sd / sqrt(n)`` are not
    recentred for the consistent p-value (they are asymptotically irrelevant); the lower
    p-value recentres only the models with a positive advantage, the upper all.
    """
    benchmark = _loss_matrix(benchmark_losses, "benchmark_losses")
    models = _loss_matrix(model_losses, "model_losses")
    if benchmark.shape[1] != 1 or len(benchmark) != len(models):
        raise ValueError("benchmark_losses must be one series as long as model_losses")
    draws = check_draws(draws)
    advantage = np.ascontiguousarray(benchmark - models)
    n = len(advantage)
    if block_length is None:
        block_length = _default_block_length(advantage.mean(axis=1))
    block_length = check_block_length(block_length, n)
    variance = long_run_variance(advantage, block_length)
    mean = advantage.mean(axis=0)
    if studentize:
        scale = np.sqrt(variance)
        if not (scale > 0).all():
            raise ValueError("a model's losses equal the benchmark's: nothing to studentise")
        advantage = np.ascontiguousarray(advantage / scale)
        mean = advantage.mean(axis=0)
        variance = long_run_variance(advantage, block_length)
    threshold = -np.sqrt(variance / n * 2.0 * np.log(np.log(n)))
    consistent = np.where(mean >= threshold, mean, 0.0)
    lower = np.maximum(mean, 0.0)
    resampled = bootstrap_means(advantage, block_length, draws, seed)
    simulated = np.stack([resampled - lower, resampled - consistent, resampled - mean])
    statistic = float(mean.max())
    largest = simulated.max(axis=2)
    pvalues = pd.Series((largest > statistic).mean(axis=1), index=SPA_PVALUES)
    return SPAResult(pvalues, statistic, mean, simulated, block_length, draws, studentize)


def reality_check(
    benchmark_losses: np.ndarray,
    model_losses: np.ndarray,
    *,
    block_length: float | None = None,
    draws: int = 1000,
    seed: int | np.random.Generator = 0,
) -> float:
    """White's (2000) Reality Check p-value: the SPA test's upper p-value without
    studentisation (every model recentred)."""
    result = spa_test(
        benchmark_losses,
        model_losses,
        block_length=block_length,
        draws=draws,
        seed=seed,
        studentize=False,
    )
    return float(result.pvalues["upper"])


def stepm(
    benchmark_losses: np.ndarray,
    model_losses: np.ndarray,
    *,
    size: float = 0.05,
    block_length: float | None = None,
    draws: int = 1000,
    seed: int | np.random.Generator = 0,
    studentize: bool = True,
) -> np.ndarray:
    """Romano and Wolf's (2005) StepM: the models better than the benchmark, with the
    family-wise error rate (any false "better") controlled at ``size``.

    Step by step, the models whose advantage exceeds the consistent critical value of the
    largest advantage among the models not yet declared better are declared better, until a
    step declares none. Returns the sorted indices of the better models."""
    result = spa_test(
        benchmark_losses,
        model_losses,
        block_length=block_length,
        draws=draws,
        seed=seed,
        studentize=studentize,
    )
    k = len(result.advantage)
    remaining = np.ones(k, dtype=bool)
    found = list(result.better_models(size))
    step = found
    while step and len(found) < k:
        remaining[np.array(found)] = False
        step = list(result.better_models(size, subset=remaining))
        found.extend(step)
    return np.array(sorted(found), dtype=np.int64)


def model_confidence_set(
    losses: np.ndarray | pd.DataFrame,
    *,
    size: float = 0.05,
    method: str = "R",
    block_length: float | None = None,
    draws: int = 1000,
    seed: int | np.random.Generator = 0,
) -> pd.DataFrame:
    """Hansen, Lunde and Nason's (2011) Model Confidence Set: the models that contain the
    best one (lowest expected loss) with probability ``1 - size``.

    Models are eliminated one after another, the worst first, while the test of equal
    predictive ability among those left rejects; a model's MCS p-value is the largest
    elimination p-value up to its own elimination.

    Parameters
    ----------
    losses : ndarray or DataFrame, shape (n, k)
        Losses of k >= 2 models over the same n periods.
    size : float
        One minus the set's confidence.
    method : {"R", "max"}
        ``"R"``: the range statistic over pairwise differences; ``"max"``: each model
        against the average of those left.
    block_length, draws, seed
        Stationary bootstrap settings.

    Returns
    -------
    DataFrame
        One row per model, in elimination order: ``pvalue`` and ``included``.
    """
    names = list(losses.columns) if isinstance(losses, pd.DataFrame) else None
    matrix = _loss_matrix(losses, "losses", min_columns=2)
    n = matrix.shape[0]
    if method not in ("R", "max"):
        raise ValueError(f"method must be 'R' or 'max', got {method!r}")
    if not 0.0 < size < 1.0:
        raise ValueError(f"size must be in (0, 1), got {size!r}")
    draws = check_draws(draws)
    if block_length is None:
        block_length = _default_block_length(matrix[:, 0] - matrix.mean(axis=1))
    block_length = check_block_length(block_length, n)
    mean = matrix.mean(axis=0)
    if method == "R":
        eliminated = _mcs_range(mean, bootstrap_means(matrix, block_length, draws, seed))
    else:
        errors = np.ascontiguousarray(matrix - mean)
        eliminated = _mcs_max(mean, bootstrap_means(errors, block_length, draws, seed))
    order = [model for model, _ in eliminated]
    pvalues = np.maximum.accumulate([pvalue for _, pvalue in eliminated])
    index = [names[i] for i in order] if names is not None else order
    frame = pd.DataFrame({"pvalue": pvalues}, index=pd.Index(index, name="model"))
    frame["included"] = frame["pvalue"] > size
    return frame


def _mcs_range(mean: np.ndarray, resampled: np.ndarray) -> list[tuple[int, float]]:
    k = len(mean)
    differences = mean[:, None] - mean[None, :]
    simulated = resampled[:, :, None] - resampled[:, None, :] - differences
    variances = (simulated**2).mean(axis=0) + np.eye(k)  # the diagonal is never used
    scaled = differences / np.sqrt(variances)
    simulated_scaled = simulated / np.sqrt(variances)
    included = np.ones(k, dtype=bool)
    eliminated: list[tuple[int, float]] = []
    while included.sum() > 1:
        left = np.flatnonzero(included)
        block = scaled[np.ix_(left, left)]
        statistic = block.max()
        largest = simulated_scaled[:, left][:, :, left].max(axis=(1, 2))
        pvalue = float((statistic < largest).mean())
        worst = left[np.argwhere(block == statistic)[0, 0]]
        eliminated.append((int(worst), pvalue))
        included[worst] = False
    eliminated.extend((int(i), 1.0) for i in np.flatnonzero(included))
    return eliminated


def _mcs_max(mean: np.ndarray, resampled_errors: np.ndarray) -> list[tuple[int, float]]:
    k = len(mean)
    errors = resampled_errors - resampled_errors.mean(axis=1, keepdims=True)
    included = np.ones(k, dtype=bool)
    eliminated: list[tuple[int, float]] = []
    while included.sum() > 1:
        left = np.flatnonzero(included)
        simulated = errors[:, left] - errors[:, left].mean(axis=1, keepdims=True)
        deviation = np.sqrt((simulated**2).mean(axis=0))
        relative = mean[left] - mean[left].mean()
        scaled = relative / deviation
        statistic = scaled.max()
        pvalue = float((statistic < (simulated / deviation).max(axis=1)).mean())
        worst = left[scaled == statistic]
        eliminated.extend((int(i), pvalue) for i in worst)
        included[worst] = False
    eliminated.extend((int(i), 1.0) for i in np.flatnonzero(included))
    return eliminated


@dataclass(frozen=True)
class Superiority:
    """Does any run beat a benchmark beyond chance, and which do? (:func:`beat_benchmark`)

    Attributes
    ----------
    spa : SPAResult
        Hansen's SPA test (studentised) of the distinct runs against the benchmark.
    reality_check : float
        White's Reality Check p-value.
    better : list
        Labels of the runs StepM declares better than the benchmark, the family-wise error
        rate controlled at ``size``; runs with identical returns share the verdict.
    distinct : int
        Distinct return series tested (runs with identical returns are one trial).
    size : float
    """

    spa: SPAResult
    reality_check: float
    better: list
    distinct: int
    size: float


def beat_benchmark(
    returns: pd.DataFrame,
    benchmark: pd.Series,
    *,
    size: float = 0.05,
    block_length: float | None = None,
    draws: int = 1000,
    seed: int | np.random.Generator = 0,
) -> Superiority:
    """Which runs have a higher mean period return than ``benchmark``, beyond chance after
    trying them all? Hansen's SPA test and White's Reality Check for "any", Romano and Wolf's
    StepM for "which".

    Parameters
    ----------
    returns : DataFrame, shape (periods, runs)
        Period returns of the runs (a sweep's combinations, say), finite.
    benchmark : Series
        The benchmark's returns over the same periods.
    size : float
        Family-wise error rate of StepM.
    block_length, draws, seed
        Stationary bootstrap settings (one stream for all three procedures).
    """
    if not returns.index.equals(benchmark.index):
        raise ValueError("the runs' and the benchmark's returns must cover the same periods")
    values = returns.to_numpy(dtype=float)
    # identical columns are one trial: test each distinct series once
    _, first, inverse = np.unique(values.T, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    distinct = values[:, first]
    losses = -distinct
    base = -benchmark.to_numpy(dtype=float)
    # the same trades as the benchmark, up to rounding (another order of the same sums)
    equal = np.all(np.abs(distinct + base[:, None]) <= 1e-12, axis=0)
    if equal.all():
        raise ValueError("every run has the benchmark's returns: nothing to test")
    keep = np.flatnonzero(~equal)  # a run equal to the benchmark cannot beat it
    if block_length is None:
        block_length = _default_block_length(base - losses[:, keep].mean(axis=1))
    settings: dict[str, Any] = {"block_length": block_length, "draws": draws, "seed": seed}
    spa = spa_test(base, losses[:, keep], studentize=True, **settings)
    check = reality_check(base, losses[:, keep], **settings)
    winners = set(keep[stepm(base, losses[:, keep], size=size, studentize=True, **settings)])
    better = [label for label, cls in zip(returns.columns, inverse, strict=True) if cls in winners]
    return Superiority(spa, check, better, len(first), size)
