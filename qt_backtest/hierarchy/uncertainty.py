"""Meta-V2's optional uncertainty model (rule 6, H-META-9 and H-META-11).

A multinomial logistic regression over a fixed feature vector of the models' votes; Meta
escalates when the normalised entropy of its predicted class probabilities is high. With the
four live models the vector has the 26 features of H-META-11:

* per model, in model order: one-hot SELL, HOLD, BUY and the confidence (a model Meta does not
  see: 0, 1, 0, 0.5);
* mean, max, min and population standard deviation of the confidences Meta sees;
* BUY, SELL and HOLD vote shares; disagreement (1 - top share);
* regime volatility and trend strength (defaults 0.5 and 0.0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from qt_backtest.hierarchy.actions import BUY, HOLD, SELL
from qt_backtest.hierarchy.config import MetaConfig

ENTROPY_EPSILON = 1e-10
CLASSES = (SELL, HOLD, BUY)


def feature_count(models: int) -> int:
    """Length of the feature vector for ``models`` models (26 for four)."""
    return 4 * models + 10


def meta_features(
    inputs: Sequence[tuple[str, int, float]],
    models: Sequence[str],
    config: MetaConfig,
    regime_volatility: float | None = None,
    trend_strength: float | None = None,
) -> np.ndarray:
    """The feature vector of one bar from Meta's inputs ``(model, action, confidence)``.

    Sums run in input order, one term at a time, so that the vectorised replay reproduces the
    vector bit for bit.
    """
    seen = {model: (action, confidence) for model, action, confidence in inputs}
    features: list[float] = []
    for model in models:
        action, confidence = seen.get(model, (HOLD, 0.5))
        features += [float(action == SELL), float(action == HOLD), float(action == BUY)]
        features.append(confidence)
    n = len(inputs)
    if n:
        total = 0.0
        highest = -math.inf
        lowest = math.inf
        for _, _, confidence in inputs:
            total += confidence
            highest = max(highest, confidence)
            lowest = min(lowest, confidence)
        mean = total / n
        squares = 0.0
        for _, _, confidence in inputs:
            squares += (confidence - mean) * (confidence - mean)
        features += [mean, highest, lowest, math.sqrt(squares / n)]
        counts = {action: sum(1 for _, a, _ in inputs if a == action) for action in CLASSES}
        shares = [counts[BUY] / n, counts[SELL] / n, counts[HOLD] / n]
        features += shares
        features.append(1.0 - max(shares))
    else:
        features += [0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    features.append(config.regime_volatility if regime_volatility is None else regime_volatility)
    features.append(config.trend_strength if trend_strength is None else trend_strength)
    return np.array(features, dtype=float)


def class_probabilities(coef: np.ndarray, intercept: np.ndarray, features) -> list[float]:
    """Softmax of ``coef @ features + intercept``, sums in feature order (one bar)."""
    logits = []
    for row in range(coef.shape[0]):
        logit = float(intercept[row])
        for k in range(coef.shape[1]):
            logit += float(coef[row, k]) * float(features[k])
        logits.append(logit)
    top = max(logits)
    weights = [math.exp(logit - top) for logit in logits]
    total = 0.0
    for weight in weights:
        total += weight
    return [weight / total for weight in weights]


def normalized_entropy(probabilities: Sequence[float]) -> float:
    """``-sum(p ln(p + 1e-10)) / ln 3`` for the three class probabilities."""
    entropy = 0.0
    for p in probabilities:
        entropy -= p * math.log(p + ENTROPY_EPSILON)
    return entropy / math.log(3.0)


class MetaUncertaintyModel:
    """Multinomial logistic regression from Meta features to the bar's label class.

    Parameters
    ----------
    C : float
        Inverse regularisation strength.
    max_iter : int
        Solver iterations.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 1000) -> None:
        self.C = C
        self.max_iter = max_iter
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None

    def fit(self, features: np.ndarray, labels: np.ndarray) -> MetaUncertaintyModel:
        """Fit on features of shape (bars, n_features) and labels in {-1, 0, 1}."""
        from sklearn.linear_model import LogisticRegression

        features = np.asarray(features, dtype=float)
        labels = np.asarray(labels)
        present = set(np.unique(labels).tolist())
        if not present <= set(CLASSES):
            raise ValueError(
                f"labels must be -1 (SELL), 0 (HOLD) or 1 (BUY), got {sorted(present)}"
            )
        if present != set(CLASSES):
            raise ValueError("the training labels must contain all three classes")
        model = LogisticRegression(C=self.C, max_iter=self.max_iter)
        model.fit(features, labels)
        order = [list(model.classes_).index(label) for label in CLASSES]
        self.coef_ = model.coef_[order]
        self.intercept_ = model.intercept_[order]
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities in the order SELL, HOLD, BUY; shape (bars, 3)."""
        if self.coef_ is None:
            raise RuntimeError("the uncertainty model is not fitted; call fit first")
        rows = np.atleast_2d(np.asarray(features, dtype=float))
        assert self.intercept_ is not None  # fitted together with coef_
        if rows.shape[1] != self.coef_.shape[1]:
            raise ValueError(
                f"the model was fitted on {self.coef_.shape[1]} features, got {rows.shape[1]}"
            )
        return np.array([class_probabilities(self.coef_, self.intercept_, row) for row in rows])


def meta_feature_matrix(predictions, config=None) -> np.ndarray:
    """Features of every bar of a predictions frame (as Meta sees it under ``config``).

    Returns an array of shape (bars, 4 * models + 10). Bars with fewer than
    ``config.min_active_models`` active models have a row of NaN: Meta does not run there.
    """
    from qt_backtest.hierarchy import nb
    from qt_backtest.hierarchy.config import HierarchyConfig
    from qt_backtest.hierarchy.params import pack
    from qt_backtest.hierarchy.replay import prediction_arrays

    config = config or HierarchyConfig()
    actions, confidences, active = prediction_arrays(predictions, config.models)
    out = np.empty((len(predictions), feature_count(len(config.models))))
    nb.meta_feature_matrix_nb(actions, confidences, active, pack(config).scalars, out)
    out[active.sum(axis=1) < config.min_active_models] = np.nan
    return out


def fit_uncertainty_model(predictions, labels, config=None, **model_params):
    """Fit :class:`MetaUncertaintyModel` on replay data.

    Parameters
    ----------
    predictions : DataFrame
        Model votes per bar (the replay's input).
    labels : array-like of {-1, 0, 1}, shape (bars,)
        What the market did after each bar (e.g. the base models' training labels); NaN for
        bars without a label (the last bars), which are left out.
    config : HierarchyConfig, optional
        Model list and fidelity that shape the features.
    **model_params
        Passed to :class:`MetaUncertaintyModel` (``C``, ``max_iter``).
    """
    features = meta_feature_matrix(predictions, config)
    labels = np.asarray(labels, dtype=float)
    if labels.shape != (len(features),):
        raise ValueError(
            f"labels must have one value per bar ({len(features)}), got {labels.shape}"
        )
    usable = ~np.isnan(labels) & ~np.isnan(features).any(axis=1)
    return MetaUncertaintyModel(**model_params).fit(features[usable], labels[usable].astype(int))
