"""Overfitting controls for parameter sweeps.

* :func:`probability_of_backtest_overfitting`: combinatorially symmetric cross-validation
  (CSCV, Bailey, Borwein, Lopez de Prado and Zhu, 2017). The sample is cut into ``S`` blocks;
  for every way of choosing half of them as in-sample, the trial that is best in-sample is
  ranked among all trials on the other half. PBO is the share of splits in which that rank is
  at or below the median (logit <= 0).
* :func:`deflated_sharpe_ratio`: the probability that the selected trial's Sharpe ratio beats
  the largest Sharpe ratio expected from ``N`` skill-less trials, given the variance of the
  trials' Sharpe ratios, the track length and the returns' skewness and kurtosis (Bailey and
  Lopez de Prado, 2014).
* :func:`plateau_selection`: the combination whose grid neighbourhood has the best median, not
  the best single point.
* :func:`walk_forward_selection`: choose on a window of blocks, apply to the next block, stitch
  the out-of-sample blocks.

Everything works from per-block moments (count, sum and sum of squares of bar returns, equity
growth), which the sweep kernel keeps for every combination, so that no bars x combinations
matrix is ever needed. Sharpe ratios here are per bar (not annualised) unless said otherwise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from qt_backtest.backtest.metrics import sharpe_ratio
from qt_backtest.inference.sharpe import expected_max_sharpe, probabilistic_sharpe_ratio

METRICS = ("sharpe", "total_return")


def block_moments(returns: np.ndarray, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-block moments of a (bars, trials) matrix of returns, cut into ``blocks`` contiguous
    blocks as the sweep cuts its bars.

    Returns
    -------
    counts : ndarray of int, shape (blocks,)
    moments : ndarray, shape (trials, blocks, 3)
        Sum of returns, sum of squared returns, compounded growth.
    """
    returns = np.asarray(returns, dtype=np.float64)
    if returns.ndim != 2:
        raise ValueError(f"returns must be a (bars, trials) matrix, got shape {returns.shape}")
    if not np.isfinite(returns).all():
        raise ValueError("returns must be finite")
    bars = returns.shape[0]
    if bars < blocks:
        raise ValueError(f"{bars} bars cannot be split into {blocks} blocks")
    edges = np.linspace(0, bars, blocks + 1).round().astype(np.int64)
    moments = np.empty((returns.shape[1], blocks, 3))
    for k in range(blocks):
        part = returns[edges[k] : edges[k + 1]]
        moments[:, k, 0] = part.sum(axis=0)
        moments[:, k, 1] = (part * part).sum(axis=0)
        moments[:, k, 2] = np.prod(1.0 + part, axis=0)
    return np.diff(edges), moments


def _sharpe(total: np.ndarray, total_sq: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe ratio (sample standard deviation) from summed moments; NaN without
    variance, or with only the rounding noise of the sums
    (:func:`~qt_backtest.backtest.metrics.sharpe_ratio`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
        variance = (total_sq - total * mean) / (count - 1)
    return sharpe_ratio(mean, np.sqrt(np.maximum(variance, 0.0)), count)


def _performance(
    moments: np.ndarray, counts: np.ndarray, membership: np.ndarray, metric: str
) -> np.ndarray:
    """Metric of every trial over unions of blocks.

    ``membership`` is (unions, blocks) of 0/1; returns (unions, trials).
    """
    if metric == "sharpe":
        total = membership @ moments[:, :, 0].T
        total_sq = membership @ moments[:, :, 1].T
        count = (membership @ counts)[:, None]
        return _sharpe(total, total_sq, count)
    log_growth = np.log(np.maximum(moments[:, :, 2], 1e-300))
    return np.expm1(membership @ log_growth.T)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")


@dataclass(frozen=True)
class PBOResult:
    """Outcome of CSCV.

    Attributes
    ----------
    pbo : float
        Probability of backtest overfitting: share of splits whose logit is <= 0.
    logits : ndarray, shape (splits,)
        ``ln(w / (1 - w))`` with ``w`` the out-of-sample relative rank (rank / (trials + 1),
        average ranks for ties) of the in-sample best trial.
    in_sample : ndarray, shape (splits,)
        The in-sample best trial's metric.
    out_of_sample : ndarray, shape (splits,)
        Its out-of-sample metric.
    best_trial : ndarray of int, shape (splits,)
        Which trial was best in-sample.
    """

    pbo: float
    logits: np.ndarray
    in_sample: np.ndarray
    out_of_sample: np.ndarray
    best_trial: np.ndarray

    @property
    def splits(self) -> int:
        return len(self.logits)

    @property
    def probability_of_loss(self) -> float:
        """Share of splits where the in-sample best loses out of sample (metric < 0)."""
        return float(np.mean(self.out_of_sample < 0))

    @property
    def degradation_slope(self) -> float:
        """Least-squares slope of out-of-sample on in-sample metric of the chosen trials
        (about 1 when performance carries over, <= 0 when it does not)."""
        keep = np.isfinite(self.in_sample) & np.isfinite(self.out_of_sample)
        if keep.sum() < 2 or np.ptp(self.in_sample[keep]) == 0:
            return float("nan")
        return float(np.polyfit(self.in_sample[keep], self.out_of_sample[keep], 1)[0])


#: Splits enumerated at most; beyond (more than 18 blocks) a seeded sample of this many is
#: drawn without listing them all.
ENUMERATED_SPLITS = 100_000


def _split_halves(blocks: int, max_splits: int | None, seed: int) -> np.ndarray:
    """The in-sample halves of the CSCV splits that hold block 0 (each stands for itself and
    its mirror), shape (splits / 2, blocks / 2): all of them, or a seeded sample of
    ``max_splits / 2`` (at most :data:`ENUMERATED_SPLITS` / 2 without ``max_splits``)."""
    half = blocks // 2
    total = math.comb(blocks, half)  # splits, mirrors included
    cap = max_splits if max_splits is not None else max(total, 2)
    if total > ENUMERATED_SPLITS:
        cap = min(cap, ENUMERATED_SPLITS)
    rng = np.random.default_rng(seed)
    if total <= ENUMERATED_SPLITS:
        halves = np.array(
            [c for c in itertools.combinations(range(blocks), half) if 0 in c], dtype=np.int64
        )
        if 2 * len(halves) > cap:
            halves = halves[np.sort(rng.choice(len(halves), max(1, cap // 2), replace=False))]
        return halves
    # too many to list (C(32, 16) is 6e8): draw distinct halves directly
    wanted = max(1, cap // 2)
    chosen: set[tuple[int, ...]] = set()
    others = np.arange(1, blocks)
    while len(chosen) < wanted:
        chosen.add((0, *sorted(rng.choice(others, half - 1, replace=False).tolist())))
    return np.array(sorted(chosen), dtype=np.int64)


def probability_of_backtest_overfitting(
    moments: np.ndarray,
    counts: np.ndarray,
    metric: str = "sharpe",
    max_splits: int | None = None,
    seed: int = 0,
) -> PBOResult:
    """PBO by combinatorially symmetric cross-validation.

    Parameters
    ----------
    moments : ndarray, shape (trials, blocks, 3)
        Per-block sum of returns, sum of squared returns and growth per trial (a sweep's
        ``blocks``, or :func:`block_moments` of a returns matrix). ``blocks`` must be even.
    counts : ndarray of int, shape (blocks,)
        Bars per block.
    metric : {"sharpe", "total_return"}
        Performance measure ranked in and out of sample.
    max_splits : int, optional
        Evaluate a seeded random subset of the ``C(blocks, blocks / 2)`` splits (each split and
        its mirror image are kept together); all of them by default, up to
        :data:`ENUMERATED_SPLITS` (a sample of that many beyond).
    """
    _check_metric(metric)
    moments = np.asarray(moments, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if moments.ndim != 3 or moments.shape[2] != 3:
        raise ValueError(f"moments must have shape (trials, blocks, 3), got {moments.shape}")
    trials, blocks = moments.shape[:2]
    if counts.shape != (blocks,):
        raise ValueError(f"counts must have shape ({blocks},), got {counts.shape}")
    if blocks < 2 or blocks % 2:
        raise ValueError(f"CSCV needs an even number of blocks >= 2, got {blocks}")
    if trials < 2:
        raise ValueError("CSCV needs at least 2 trials")
    if max_splits is not None and (
        isinstance(max_splits, bool)
        or not isinstance(max_splits, int | np.integer)
        or max_splits < 2
    ):
        raise ValueError(f"max_splits must be an integer >= 2, got {max_splits!r}")
    halves = _split_halves(blocks, max_splits, seed)
    first = np.zeros((len(halves), blocks))
    np.put_along_axis(first, halves, 1.0, axis=1)
    membership_in = np.concatenate([first, 1.0 - first])  # every split and its mirror
    logits, chosen, in_values, out_values = [], [], [], []
    for start in range(0, len(membership_in), 512):
        part = membership_in[start : start + 512]
        inside = _performance(moments, counts, part, metric)
        outside = _performance(moments, counts, 1.0 - part, metric)
        # NaN (no variance) ranks lowest
        inside_filled = np.where(np.isnan(inside), -np.inf, inside)
        best = np.argmax(inside_filled, axis=1)
        ranks = stats.rankdata(np.where(np.isnan(outside), -np.inf, outside), axis=1)
        relative = ranks[np.arange(len(best)), best] / (trials + 1)
        logits.append(np.log(relative / (1.0 - relative)))
        chosen.append(best)
        in_values.append(inside[np.arange(len(best)), best])
        out_values.append(outside[np.arange(len(best)), best])
    logit = np.concatenate(logits)
    return PBOResult(
        pbo=float(np.mean(logit <= 0)),
        logits=logit,
        in_sample=np.concatenate(in_values),
        out_of_sample=np.concatenate(out_values),
        best_trial=np.concatenate(chosen),
    )


def deflated_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    n_trials: int,
    trials_variance: float,
    skewness: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """Deflated Sharpe ratio: :func:`probabilistic_sharpe_ratio` against the Sharpe ratio
    expected of the best of ``n_trials`` skill-less trials.

    Parameters
    ----------
    sharpe : float
        Per-bar Sharpe ratio of the selected trial.
    n_obs : int
        Returns it was measured on.
    n_trials : int
        Every trial run to find it (the true number, not the number reported).
    trials_variance : float
        Variance of the per-bar Sharpe ratios across the trials.
    skewness, kurtosis : float
        Of the selected trial's returns (kurtosis 3 for normal returns).
    """
    benchmark = expected_max_sharpe(n_trials, trials_variance)
    return probabilistic_sharpe_ratio(sharpe, benchmark, n_obs, skewness, kurtosis)


def plateau_selection(
    frame: pd.DataFrame, parameters: Sequence[str], metric: str = "sharpe", radius: int = 1
) -> pd.DataFrame:
    """Score every combination by the median metric of its grid neighbourhood.

    Parameters are placed on their sorted distinct values; two combinations are neighbours
    when every numeric parameter is within ``radius`` steps and every other parameter (a mode,
    say) is the same (a combination is its own neighbour).

    Returns
    -------
    DataFrame indexed like ``frame`` with ``plateau_median``, ``plateau_mean``,
    ``neighbours`` and ``rank`` (1 = best plateau; ties on the median go to the higher mean,
    then the larger neighbourhood), sorted best first.
    """
    if not parameters:
        raise ValueError("plateau selection needs at least one parameter")
    missing = [name for name in [*parameters, metric] if name not in frame.columns]
    if missing:
        raise ValueError(f"frame has no column(s) {missing}")
    if not (isinstance(radius, int) and radius >= 0):
        raise ValueError(f"radius must be an integer >= 0, got {radius!r}")
    levels = np.column_stack(
        [pd.Index(sorted(frame[name].unique())).get_indexer(frame[name]) for name in parameters]
    )
    # categories (a mode, a fidelity) have no order: neighbours share them exactly
    reach = np.array(
        [radius if pd.api.types.is_numeric_dtype(frame[name]) else 0 for name in parameters]
    )
    values = frame[metric].to_numpy(dtype=np.float64)
    near = (np.abs(levels[:, None, :] - levels[None, :, :]) <= reach).all(axis=2)
    medians = np.full(len(values), np.nan)
    means = np.full(len(values), np.nan)
    for row, members in enumerate(near):
        around = values[members]
        around = around[~np.isnan(around)]  # -inf (a ruined neighbour) counts as the worst
        if len(around):
            medians[row] = np.median(around)
            means[row] = around.mean()
    result = pd.DataFrame(
        {
            "plateau_median": medians,
            "plateau_mean": means,
            "neighbours": near.sum(axis=1),
            metric: values,
        },
        index=frame.index,
    )
    # ties on the median go to the higher mean, then to the larger neighbourhood
    order = result.sort_values(
        ["plateau_median", "plateau_mean", "neighbours"],
        ascending=False,
        na_position="last",
        kind="stable",
    ).index
    result.loc[order, "rank"] = np.arange(1, len(result) + 1)
    return result.sort_values("rank")


@dataclass(frozen=True)
class WalkForwardSelection:
    """Walk-forward threshold selection.

    Attributes
    ----------
    steps : DataFrame
        One row per out-of-sample block: ``test_block``, ``train_first``, ``train_last``,
        ``chosen`` (trial), ``in_sample`` and ``out_of_sample`` metric, and the chosen trial's
        per-bar Sharpe in and out of sample.
    out_of_sample_sharpe : float
        Per-bar Sharpe of the stitched out-of-sample blocks.
    out_of_sample_return : float
        Compounded return of the stitched out-of-sample blocks.
    in_sample_sharpe : float
        Mean in-sample per-bar Sharpe of the chosen trials.
    """

    steps: pd.DataFrame
    out_of_sample_sharpe: float
    out_of_sample_return: float
    in_sample_sharpe: float


def walk_forward_selection(
    moments: np.ndarray,
    counts: np.ndarray,
    metric: str = "sharpe",
    train_blocks: int = 4,
    anchored: bool = False,
) -> WalkForwardSelection:
    """Choose the best trial on ``train_blocks`` blocks (all earlier blocks when
    ``anchored``), apply it to the next block, and stitch the out-of-sample blocks.

    Each trial's out-of-sample block is that trial's own run through the block (its position
    carried in from before), as a live switch of thresholds at the block's start would see.
    """
    _check_metric(metric)
    moments = np.asarray(moments, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    blocks = moments.shape[1]
    if not (isinstance(train_blocks, int) and 1 <= train_blocks < blocks):
        raise ValueError(
            f"train_blocks must be an integer in [1, {blocks - 1}], got {train_blocks!r}"
        )
    rows = []
    total = total_sq = count = 0.0
    growth = 1.0
    for test in range(train_blocks, blocks):
        first = 0 if anchored else test - train_blocks
        membership = np.zeros((1, blocks))
        membership[0, first:test] = 1.0
        inside = _performance(moments, counts, membership, metric)[0]
        inside_filled = np.where(np.isnan(inside), -np.inf, inside)
        best = int(np.argmax(inside_filled))
        test_row = np.zeros((1, blocks))
        test_row[0, test] = 1.0
        outside = _performance(moments, counts, test_row, metric)[0, best]
        in_sharpe = _performance(moments, counts, membership, "sharpe")[0, best]
        out_sharpe = _performance(moments, counts, test_row, "sharpe")[0, best]
        rows.append(
            {
                "test_block": test,
                "train_first": first,
                "train_last": test - 1,
                "chosen": best,
                "in_sample": inside[best],
                "out_of_sample": outside,
                "in_sample_sharpe": in_sharpe,
                "out_of_sample_sharpe": out_sharpe,
            }
        )
        total += moments[best, test, 0]
        total_sq += moments[best, test, 1]
        count += counts[test]
        growth *= moments[best, test, 2]
    steps = pd.DataFrame(rows)
    stitched = _sharpe(np.array(total), np.array(total_sq), np.array(count))
    return WalkForwardSelection(
        steps=steps,
        out_of_sample_sharpe=float(stitched),
        out_of_sample_return=growth - 1.0,
        in_sample_sharpe=float(steps["in_sample_sharpe"].mean()),
    )
