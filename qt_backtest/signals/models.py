"""Model slots and the walk-forward runner that produces out-of-sample votes.

A model slot is anything with ``fit(X, y)`` (``y`` the class index: 0 SELL, 1 HOLD, 2 BUY) and
``predict_proba(X)`` returning three columns in that order; :func:`make_model` builds the tree
slots ``xgb`` and ``lgbm``. Each slot trains with balanced class weights and a fixed seed. The
runner fits one model per walk-forward fold and predicts only that fold's block, so every vote
is out of sample; bars before the first fold have no vote (the model is inactive there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pandas as pd

from qt_backtest.codes import NEURAL_MODELS, TREE_MODELS
from qt_backtest.signals.labels import CLASS_NAMES
from qt_backtest.signals.walkforward import WalkForward

CLASSES = 3


class ModelSlot(Protocol):
    """What the runner needs from a model."""

    def fit(self, features: np.ndarray, classes: np.ndarray) -> Any: ...

    def predict_proba(self, features: np.ndarray) -> np.ndarray: ...


def balanced_weights(classes: np.ndarray) -> np.ndarray:
    """Per-row weights ``n / (k * count(class))`` over the k classes present."""
    present, counts = np.unique(classes, return_counts=True)
    per_class = dict(
        zip(present.tolist(), (len(classes) / (len(present) * counts)).tolist(), strict=True)
    )
    return np.array([per_class[c] for c in classes.tolist()])


class _EstimatorSlot:
    """Wraps a scikit-learn-style classifier: fits on the classes present in the fold with
    balanced weights and always answers with the three class columns."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._present: np.ndarray | None = None
        self._estimator: Any = None

    def fit(self, features: np.ndarray, classes: np.ndarray) -> _EstimatorSlot:
        classes = np.asarray(classes, dtype=np.int64)
        if classes.size == 0:
            raise ValueError("cannot fit a model on an empty training set")
        if not np.isin(classes, np.arange(CLASSES)).all():
            raise ValueError("classes must be 0 (SELL), 1 (HOLD) or 2 (BUY)")
        self._present = np.unique(classes)
        self._estimator = None
        if self._present.size > 1:
            encoded = np.searchsorted(self._present, classes)
            self._estimator = self._factory()
            self._estimator.fit(features, encoded, sample_weight=balanced_weights(classes))
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if self._present is None:
            raise RuntimeError("the model is not fitted")
        probabilities = np.zeros((len(features), CLASSES))
        if self._estimator is None:  # one class in training: it is certain
            probabilities[:, self._present[0]] = 1.0
        else:
            probabilities[:, self._present] = self._estimator.predict_proba(features)
        return probabilities


def _xgb(seed: int, n_jobs: int, params: dict[str, Any]) -> Callable[[], Any]:
    from xgboost import XGBClassifier

    settings: dict[str, Any] = dict(
        n_estimators=200,
        max_depth=4,
        learning_rate=0.05,
        subsample=0.8,
        colsample_bytree=0.8,
        tree_method="hist",
        random_state=seed,
        n_jobs=n_jobs,
        verbosity=0,
    )
    settings.update(params)
    return lambda: XGBClassifier(**settings)


def _lgbm(seed: int, n_jobs: int, params: dict[str, Any]) -> Callable[[], Any]:
    from lightgbm import LGBMClassifier

    settings: dict[str, Any] = dict(
        n_estimators=200,
        num_leaves=15,
        learning_rate=0.05,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=seed,
        n_jobs=n_jobs,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    settings.update(params)
    return lambda: LGBMClassifier(**settings)


MODEL_SLOTS = dict(zip(TREE_MODELS, (_xgb, _lgbm), strict=True))
#: Slots that read lookback windows of the features (PyTorch, extra ``deep``).
NEURAL_SLOTS = NEURAL_MODELS


def estimator_slot(factory: Callable[[], Any]) -> ModelSlot:
    """Make a model slot of any scikit-learn-style classifier.

    ``factory`` returns a fresh, unfitted estimator with ``fit(X, y, sample_weight=...)`` and
    ``predict_proba``. The slot trains it on the classes present in each fold with balanced
    weights and answers with all three class columns (SELL, HOLD, BUY).
    """
    return _EstimatorSlot(factory)


def make_model(name: str, seed: int = 0, n_jobs: int = 1, **params: Any) -> ModelSlot:
    """A fresh model for slot ``name`` (``"xgb"``, ``"lgbm"``, ``"nhits"``, ``"patchtst"``),
    seeded and deterministic.

    ``params`` override the slot's defaults: the estimator's own parameter names for the tree
    slots, :class:`~qt_backtest.signals.neural.NeuralConfig` fields for the neural ones (which
    need the ``deep`` extra; without PyTorch they raise an ImportError saying so).
    """
    if name in NEURAL_SLOTS:
        from qt_backtest.signals.neural import NeuralConfig, NeuralSlot

        return NeuralSlot(name, NeuralConfig(**params), seed=seed, n_jobs=n_jobs)
    if name not in MODEL_SLOTS:
        raise ValueError(
            f"no model slot {name!r}; available: {', '.join([*MODEL_SLOTS, *NEURAL_SLOTS])} (or "
            "pass any object "
            "with fit/predict_proba to walk_forward_predict)"
        )
    return _EstimatorSlot(MODEL_SLOTS[name](seed, n_jobs, params))


def lookback_windows(values: np.ndarray, lookback: int) -> np.ndarray:
    """Per bar, the ``lookback`` rows ending at it: shape (bars, lookback, features), a view.

    Rows before the first bar are NaN, so a window never reaches past the data it is given --
    and never ahead of its own bar.
    """
    if lookback < 1:
        raise ValueError(f"lookback must be >= 1, got {lookback}")
    padded = np.concatenate([np.full((lookback - 1, values.shape[1]), np.nan), values])
    windows = np.lib.stride_tricks.sliding_window_view(padded, lookback, axis=0)
    return windows.transpose(0, 2, 1)  # (bars, lookback, features)


def walk_forward_predict(
    features: pd.DataFrame,
    labels: pd.Series,
    model: str | Callable[[], ModelSlot],
    splitter: WalkForward,
    *,
    seed: int = 0,
    n_jobs: int = 1,
    on_fold: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Out-of-sample votes of one model for every bar, fold by fold.

    Parameters
    ----------
    features : DataFrame, shape (bars, features)
        Features at each bar (NaN allowed: the tree models route it).
    labels : Series of {-1, 0, 1, NaN}
        Training targets aligned with ``features`` (see :func:`make_labels`).
    model : str or callable
        A slot name for :func:`make_model`, or a factory returning a fresh model per fold. A
        model with a ``lookback`` attribute gets windows of shape (rows, lookback, features)
        instead of rows (see :func:`lookback_windows`).
    splitter : WalkForward
        The folds; its purge must cover the labels' horizon.
    on_fold : callable, optional
        Called with ``(folds done, folds in all)`` after each fold (for progress).

    Returns
    -------
    DataFrame indexed like ``features``: ``action`` (SELL / HOLD / BUY, missing before the
    first fold), ``confidence`` (the top class probability), ``p_sell``, ``p_hold``,
    ``p_buy`` and ``fold``.
    """
    if not features.index.equals(labels.index):
        raise ValueError("features and labels must share one index")
    factory = (lambda: make_model(model, seed, n_jobs)) if isinstance(model, str) else model
    values = features.to_numpy(dtype=np.float64)
    unused: ModelSlot | None = factory()  # also the first fold's model: one fresh model per fold
    lookback = getattr(unused, "lookback", None)
    if lookback is not None:
        values = lookback_windows(values, int(lookback))
    targets = labels.to_numpy(dtype=np.float64)
    bars = len(features)
    probabilities = np.full((bars, CLASSES), np.nan)
    fold_of_bar = np.full(bars, -1, dtype=np.int64)
    folds = splitter.folds(bars)
    for done, fold in enumerate(folds, start=1):
        if on_fold is not None and done > 1:
            on_fold(done - 1, len(folds))
        rows = np.arange(fold.train_start, fold.train_stop)
        rows = rows[~np.isnan(targets[rows])]
        if rows.size == 0:
            continue
        fitted, unused = (unused if unused is not None else factory()), None
        fitted.fit(values[rows], targets[rows].astype(np.int64) + 1)
        answer = np.asarray(fitted.predict_proba(values[fold.test]), dtype=np.float64)
        if answer.shape != (fold.test_stop - fold.test_start, CLASSES):
            raise ValueError(
                f"predict_proba must return one row per bar and {CLASSES} columns (SELL, HOLD, "
                f"BUY), got shape {answer.shape}; wrap a plain classifier with estimator_slot"
            )
        probabilities[fold.test] = answer
        fold_of_bar[fold.test] = fold.number
    if on_fold is not None and folds:
        on_fold(len(folds), len(folds))
    predicted = ~np.isnan(probabilities[:, 0])
    best = np.argmax(np.where(predicted[:, None], probabilities, 0.0), axis=1)
    action = np.where(predicted, np.array(CLASS_NAMES, dtype=object)[best], None)
    confidence = np.where(predicted, np.max(np.nan_to_num(probabilities), axis=1), np.nan)
    return pd.DataFrame(
        {
            "action": pd.Categorical(action, categories=list(CLASS_NAMES)),
            "confidence": confidence,
            "p_sell": probabilities[:, 0],
            "p_hold": probabilities[:, 1],
            "p_buy": probabilities[:, 2],
            "fold": fold_of_bar,
        },
        index=features.index,
    )
