"""Out-of-sample diagnostics of a model's votes: per fold and overall, as tables for reports."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qt_backtest.codes import ACTION_NAMES, encode_actions
from qt_backtest.signals.labels import CLASS_NAMES

PROBABILITY_COLUMNS = ("p_sell", "p_hold", "p_buy")
LOG_LOSS_CLIP = 1e-15


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, log-loss, Brier score and class mix of labelled bars.

    Parameters
    ----------
    labels : ndarray of {-1, 0, 1}, shape (n,)
    probabilities : ndarray, shape (n, 3)
        Class probabilities SELL, HOLD, BUY.

    Returns
    -------
    dict
        ``bars``; ``accuracy``; ``balanced_accuracy`` (mean recall over the classes present;
        chance is 1/3 with three classes); ``log_loss`` (natural log, probabilities clipped
        at 1e-15); ``brier`` (mean squared error of the three probabilities, summed over
        classes); ``share_sell/hold/buy`` (label mix) and ``predicted_sell/hold/buy``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n = labels.shape[0]
    if n == 0:
        return {"bars": 0}
    truth = labels + 1
    predicted = np.argmax(probabilities, axis=1)
    recalls = [np.mean(predicted[truth == c] == c) for c in range(3) if np.any(truth == c)]
    onehot = np.eye(3)[truth]
    chosen = np.clip(probabilities[np.arange(n), truth], LOG_LOSS_CLIP, 1.0)
    metrics = {
        "bars": n,
        "accuracy": float(np.mean(predicted == truth)),
        "balanced_accuracy": float(np.mean(recalls)),
        "log_loss": float(-np.mean(np.log(chosen))),
        "brier": float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1))),
    }
    for c, name in enumerate(CLASS_NAMES):
        metrics[f"share_{name.lower()}"] = float(np.mean(truth == c))
        metrics[f"predicted_{name.lower()}"] = float(np.mean(predicted == c))
    return metrics


def reliability_table(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> pd.DataFrame:
    """Confidence (top probability) in equal-width bins against the hit rate in each bin.

    Returns one row per non-empty bin: ``low``, ``high``, ``bars``, ``mean_confidence`` and
    ``hit_rate`` (how often the top class was the label). A calibrated model has hit rate
    close to mean confidence.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=1)
    hits = np.argmax(probabilities, axis=1) == labels + 1
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "low": edges[b],
                    "high": edges[b + 1],
                    "bars": int(mask.sum()),
                    "mean_confidence": float(confidence[mask].mean()),
                    "hit_rate": float(hits[mask].mean()),
                }
            )
    return pd.DataFrame(rows)


def diagnostics_by_fold(votes: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """:func:`classification_metrics` per walk-forward fold and over all folds (``"all"``).

    ``votes`` is the output of :func:`~qt_backtest.signals.walk_forward_predict`; bars
    without a vote or without a label are left out.
    """
    usable = (votes["fold"] >= 0) & labels.notna()
    probabilities = votes.loc[usable, list(PROBABILITY_COLUMNS)].to_numpy()
    truth = labels[usable].to_numpy()
    folds = votes.loc[usable, "fold"].to_numpy()
    rows: dict[int | str, dict[str, float]] = {
        int(f): classification_metrics(truth[folds == f], probabilities[folds == f])
        for f in np.unique(folds)
    }
    rows["all"] = classification_metrics(truth, probabilities)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "fold"
    return table


def vote_reliability(
    actions: pd.Series, confidences: pd.Series, labels: pd.Series, bins: int = 10
) -> pd.DataFrame:
    """:func:`reliability_table` for votes given as action and confidence only (no class
    probabilities): stated confidence per bin against how often the action was the label.

    ``actions`` are BUY / SELL / HOLD (or -1 / 0 / 1); bars without a vote, a confidence or a
    label are left out.
    """
    codes, present, bad = encode_actions(actions)
    confidence = pd.to_numeric(confidences, errors="coerce").to_numpy(dtype=np.float64)
    truth = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=np.float64)
    usable = present & ~bad & np.isfinite(confidence) & np.isfinite(truth)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence[usable], edges[1:-1]), 0, bins - 1)
    hits = codes[usable] == truth[usable]
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "low": edges[b],
                    "high": edges[b + 1],
                    "bars": int(mask.sum()),
                    "mean_confidence": float(confidence[usable][mask].mean()),
                    "hit_rate": float(hits[mask].mean()),
                }
            )
    return pd.DataFrame(rows, columns=["low", "high", "bars", "mean_confidence", "hit_rate"])


def vote_skill(actions: pd.Series, labels: pd.Series) -> dict[str, float]:
    """How often votes match the label, against the baselines that need no skill.

    Parameters
    ----------
    actions : Series
        BUY / SELL / HOLD (or -1 / 0 / 1); bars without a vote or a label are left out.
    labels : Series of {-1, 0, 1}
        Indexed like ``actions``.

    Returns
    -------
    dict
        ``bars``; ``hit_rate`` (accuracy); ``balanced_accuracy`` (mean recall over the label
        classes present); ``recall_sell/hold/buy`` (NaN for a class absent from the labels);
        ``majority_rate`` (the hit rate of always voting the most frequent label) and
        ``random_rate`` (the expected hit rate of voting at random with the label
        frequencies, the sum of their squares). With 71 % HOLD labels, 71 % is what a model
        without skill reaches by always voting HOLD, not 1/3.
    """
    codes, present, bad = encode_actions(actions)
    truth = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=np.float64)
    usable = present & ~bad & np.isfinite(truth)
    voted, truth = codes[usable].astype(np.int64), truth[usable].astype(np.int64)
    result: dict[str, float] = {"bars": int(usable.sum())}
    if not usable.any():
        return result
    shares = np.array([np.mean(truth == c) for c in ACTION_NAMES])
    recalls = {}
    for code, name in ACTION_NAMES.items():
        members = truth == code
        recalls[name] = float(np.mean(voted[members] == code)) if members.any() else np.nan
    result.update(
        {
            "hit_rate": float(np.mean(voted == truth)),
            "balanced_accuracy": float(np.nanmean(list(recalls.values()))),
            **{f"recall_{name.lower()}": value for name, value in recalls.items()},
            "majority_rate": float(shares.max()),
            "random_rate": float(np.sum(shares**2)),
        }
    )
    return result
