"""Vectorised replay of the hierarchy over many bars (and symbols), returning a tidy frame.

Predictions come as a frame with one row per bar and, per model, the columns
``<model>_action`` (BUY / SELL / HOLD, any case, or -1 / 0 / 1; empty when the model has no
prediction) and ``<model>_confidence`` (in [0, 1]); optionally ``<model>_version`` (a tag
containing "insufficient" makes the model inactive). A model is active on a bar when it has both
an action and a finite confidence. Rows are independent bars: several symbols can be stacked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.codes import (
    ACTION_LABELS,
    CONSENSUS_CATEGORIES,
    META_DECISIONS,
    REPLAY_OUTPUTS,
    SOURCES,
)
from qt_backtest.hierarchy import nb, reasons
from qt_backtest.hierarchy.actions import encode_actions
from qt_backtest.hierarchy.config import HierarchyConfig
from qt_backtest.hierarchy.params import pack
from qt_backtest.indicators.arbiter_inputs import ARBITER_INPUT_COLUMNS

ACTION_CATEGORIES = ACTION_LABELS
DECISION_CATEGORIES = META_DECISIONS
SOURCE_CATEGORIES = SOURCES
# every output column of the kernel: name -> dtype
OUTPUTS = REPLAY_OUTPUTS


def _action_codes(column: pd.Series, model: str) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes and a presence mask; raises on anything that is not an action."""
    codes, present, bad = encode_actions(column)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{model}_action: unknown action {column.iloc[row]!r} at row {row} "
            f"({column.index[row]}); expected BUY, SELL, HOLD or -1, 0, 1"
        )
    return codes, present


def prediction_arrays(
    predictions: pd.DataFrame, models: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(actions int8, confidences float64, active bool)``, each of shape (bars, models)."""
    suffixes = ("_action", "_confidence", "_version")
    named = {
        column.rsplit("_", 1)[0]
        for column in predictions.columns
        if isinstance(column, str) and column.endswith(suffixes)
    }
    unknown = sorted(named - set(models))
    if unknown:
        raise ValueError(f"predictions for unknown model(s) {unknown}; models are {list(models)}")
    bars = len(predictions)
    # column-major: the model columns are filled one by one and the kernel reads them so
    actions = np.zeros((bars, len(models)), dtype=np.int8, order="F")
    confidences = np.zeros((bars, len(models)), order="F")
    active = np.zeros((bars, len(models)), dtype=bool, order="F")
    for m, model in enumerate(models):
        if f"{model}_action" not in predictions or f"{model}_confidence" not in predictions:
            continue  # the model never predicted: inactive on every bar
        codes, present = _action_codes(predictions[f"{model}_action"], model)
        raw = predictions[f"{model}_confidence"]
        confidence = pd.to_numeric(raw, errors="coerce")
        confidence = confidence.to_numpy(dtype=np.float64, na_value=np.nan)
        unusable = present & ~np.isfinite(confidence)
        if unusable.any():
            # as the prediction reader does: a vote is an action with a confidence
            row = int(np.flatnonzero(unusable)[0])
            raise ValueError(
                f"{model}_confidence must be a number in [0, 1] where {model} voted: "
                f"{raw.iloc[row]!r} at row {row} ({predictions.index[row]})"
            )
        outside = np.isfinite(confidence) & ((confidence < 0.0) | (confidence > 1.0))
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise ValueError(
                f"{model}_confidence must be in [0, 1]: {confidence[row]} at row {row} "
                f"({predictions.index[row]})"
            )
        usable = present & np.isfinite(confidence)
        version = predictions.get(f"{model}_version")
        if version is not None:
            insufficient = version.astype("string").str.contains("insufficient", case=False)
            usable &= ~insufficient.fillna(False).to_numpy(dtype=bool)
        actions[:, m] = codes
        confidences[:, m] = np.where(usable, confidence, 0.0)
        active[:, m] = usable
    return actions, confidences, active


def indicator_array(
    indicators: pd.DataFrame | Mapping[str, pd.DataFrame] | None, index: pd.Index
) -> np.ndarray:
    """Arbiter inputs aligned to ``index``, shape (bars, 6); NaN reads as the neutral value.

    ``indicators`` is a frame with the same index as the predictions, or, for predictions
    indexed by ``(symbol, timestamp)``, a ``{symbol: frame}`` mapping (as
    :func:`qt_backtest.indicators.arbiter_inputs` returns for several symbols).
    """
    if indicators is None:
        return np.full((len(index), len(ARBITER_INPUT_COLUMNS)), np.nan)
    frame = (
        pd.concat(dict(indicators), names=["symbol", "timestamp"])
        if isinstance(indicators, Mapping)
        else indicators
    )
    missing = [column for column in ARBITER_INPUT_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"indicators miss column(s) {missing}")
    if not frame.index.equals(index):
        absent = index.difference(frame.index)
        if len(absent):
            raise ValueError(
                f"indicators have no row for {len(absent)} prediction bar(s), first {absent[0]}"
            )
        frame = frame.reindex(index)
    return np.asfortranarray(
        frame[list(ARBITER_INPUT_COLUMNS)].to_numpy(dtype=np.float64, na_value=np.nan)
    )


def replay_arrays(
    actions: np.ndarray,
    confidences: np.ndarray,
    active: np.ndarray,
    indicators: np.ndarray,
    config: HierarchyConfig | None = None,
    uncertainty_model: Any = None,
    out: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Run the kernel on arrays; returns the raw per-bar outputs by name (see ``nb``).

    Parameters
    ----------
    actions : ndarray, shape (bars, models)
        -1 / 0 / 1 per model (read only where ``active``).
    confidences : ndarray, shape (bars, models)
        In [0, 1] where ``active``.
    active : ndarray of bool, shape (bars, models)
    indicators : ndarray, shape (bars, 6)
        Arbiter inputs in ``ARBITER_INPUT_COLUMNS`` order; NaN reads as neutral.
    config, uncertainty_model
        As for :func:`replay`.
    out : dict of ndarray, optional
        Output buffers from a previous call with the same number of bars, reused.

    Notes
    -----
    Arrays are used in the memory layout they come in. Column-major (Fortran-ordered) inputs,
    as :func:`prediction_arrays` and :func:`indicator_array` build them, replay about twice as
    fast as row-major ones (``benchmarks/bench_replay.py``).
    """
    config = config or HierarchyConfig()
    bars, models = actions.shape
    if models != len(config.models):
        raise ValueError(f"{models} model columns, but the configuration has {len(config.models)}")
    if confidences.shape != actions.shape or active.shape != actions.shape:
        raise ValueError("actions, confidences and active must have the same shape")
    if indicators.shape != (bars, len(ARBITER_INPUT_COLUMNS)):
        raise ValueError(f"indicators must have shape ({bars}, {len(ARBITER_INPUT_COLUMNS)})")
    # any memory layout is accepted as it is: column-major runs fastest (see nb.replay_nb)
    actions = np.asarray(actions, dtype=np.int8)
    confidences = np.asarray(confidences, dtype=np.float64)
    active = np.asarray(active, dtype=np.bool_)
    bad_action, bad_confidence, nonfinite = nb.check_votes_nb(actions, confidences, active)
    if bad_action >= 0:
        raise ValueError(
            f"row {bad_action}: an active model's action is {actions[bad_action].tolist()}; "
            "actions must be -1 (SELL), 0 (HOLD) or 1 (BUY)"
        )
    if bad_confidence >= 0:
        raise ValueError(
            f"row {bad_confidence}: an active model has a confidence outside [0, 1] (or NaN)"
        )
    if nonfinite:
        # the kernel does arithmetic on every slot, which needs finite values everywhere
        confidences = np.where(active, confidences, 0.0)
    packed = pack(config, uncertainty_model)
    if out is None:
        out = {name: np.empty(bars, dtype=dtype) for name, dtype in OUTPUTS.items()}
    elif any(
        out[name].shape != (bars,) or out[name].dtype != dtype for name, dtype in OUTPUTS.items()
    ):
        raise ValueError("out must hold the buffers of a replay over the same number of bars")
    outputs = out
    nb.replay_nb(
        actions,
        confidences,
        active,
        np.asarray(indicators, dtype=np.float64),
        packed.scalars,
        packed.weights,
        packed.meta_models,
        packed.meta_weights,
        packed.coef,
        packed.intercept,
        *outputs.values(),
    )
    return outputs


def _categorical(codes: np.ndarray, categories: tuple[str, ...], offset: int = 0):
    return pd.Categorical.from_codes(codes.astype(np.int64) + offset, categories=categories)


def decode(outputs: dict[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    """Readable frame from raw kernel outputs: categories and reason texts."""
    ran = outputs["meta_decision"] >= 0
    called = outputs["gate"] >= 0
    arbiter_reason = np.full(len(index), None, dtype=object)
    called_rows = np.flatnonzero(called)
    failed = outputs["arbiter_error"][called_rows]
    analysed = called_rows[~failed]
    arbiter_reason[called_rows[failed]] = reasons.ANALYSIS_ERROR
    arbiter_reason[analysed] = reasons.arbiter_reasons(
        outputs["arbiter_action"][analysed].tolist(),
        outputs["arbiter_tags"][analysed].tolist(),
        outputs["arbiter_score"][analysed].tolist(),
    )
    meta_action = np.where(ran, outputs["meta_action"] + 1, -1)
    arbiter_action = np.where(called, outputs["arbiter_action"] + 1, -1)
    frame = pd.DataFrame(
        {
            "base_action": _categorical(outputs["base_action"], ACTION_CATEGORIES, 1),
            "base_confidence": outputs["base_confidence"],
            "consensus": _categorical(outputs["consensus"], CONSENSUS_CATEGORIES),
            "voters": outputs["voters"],
            "meta_decision": _categorical(outputs["meta_decision"], DECISION_CATEGORIES),
            "meta_reason": _categorical(outputs["meta_reason"], reasons.META_REASONS),
            "meta_action": _categorical(meta_action, ACTION_CATEGORIES),
            "meta_confidence": outputs["meta_confidence"],
            "disagreement": outputs["disagreement"],
            "entropy": outputs["entropy"],
            "arbiter_action": _categorical(arbiter_action, ACTION_CATEGORIES),
            "arbiter_confidence": outputs["arbiter_confidence"],
            "arbiter_score": outputs["arbiter_score"],
            "arbiter_reason": pd.array(arbiter_reason, dtype="string"),
            "gate": _categorical(outputs["gate"], reasons.GATE_OUTCOMES),
            "final_action": _categorical(outputs["final_action"], ACTION_CATEGORIES, 1),
            "final_confidence": outputs["final_confidence"],
            "source": _categorical(outputs["source"], SOURCE_CATEGORIES),
            "risk_veto": outputs["risk_veto"],
        },
        index=index,
    )
    return frame


def replay(
    predictions: pd.DataFrame,
    indicators: pd.DataFrame | None = None,
    config: HierarchyConfig | None = None,
    *,
    uncertainty_model: Any = None,
) -> pd.DataFrame:
    """Replay the hierarchy on every bar of ``predictions``.

    Parameters
    ----------
    predictions : DataFrame
        One row per bar (see the module docstring for the columns).
    indicators : DataFrame or mapping of symbol to DataFrame, optional
        The Arbiter's inputs (:func:`qt_backtest.indicators.arbiter_inputs`) with a row for
        every prediction bar (see :func:`indicator_array`); without it every input takes its
        neutral value.
    config : HierarchyConfig, optional
        Mode, fidelity and thresholds; the live engine's defaults otherwise.
    uncertainty_model : fitted MetaUncertaintyModel, optional
        Enables Meta's rule 6.

    Returns
    -------
    DataFrame indexed like ``predictions``: ``base_action``, ``base_confidence``, ``consensus``,
    ``voters``, ``meta_decision``, ``meta_reason``, ``meta_action``, ``meta_confidence``,
    ``disagreement``, ``entropy``, ``arbiter_action``, ``arbiter_confidence``,
    ``arbiter_score``, ``arbiter_reason``, ``gate``, ``final_action``, ``final_confidence``,
    ``source``, ``risk_veto``. Layers that did not run on a bar are NaN there.
    """
    config = config or HierarchyConfig()
    actions, confidences, active = prediction_arrays(predictions, config.models)
    inputs = indicator_array(indicators, predictions.index)
    outputs = replay_arrays(actions, confidences, active, inputs, config, uncertainty_model)
    return decode(outputs, predictions.index)


def arbiter_decisions(
    indicators: pd.DataFrame, config: HierarchyConfig | None = None
) -> pd.DataFrame:
    """The Arbiter's own decision on every bar, as if it were asked each time.

    Returns a frame indexed like ``indicators`` with ``final_action``, ``final_confidence``,
    ``arbiter_score`` and ``arbiter_reason`` -- usable wherever replay decisions are (the
    ``arbiter_only`` reference strategy). The live risk governor applies to it as well.
    """
    config = config or HierarchyConfig()
    values = indicator_array(indicators, indicators.index)
    bars = len(values)
    action = np.empty(bars, dtype=np.int8)
    confidence = np.empty(bars)
    score = np.empty(bars)
    tags = np.empty(bars, dtype=np.int8)
    nb.arbiter_nb(values, pack(config).scalars, action, confidence, score, tags)
    if config.arbiter.wiring == "deployed":
        texts = [reasons.ANALYSIS_ERROR] * bars
    else:
        texts = reasons.arbiter_reasons(action.tolist(), tags.tolist(), score.tolist())
    minimum = config.min_trade_confidence
    vetoed = (action != 0) & (confidence < minimum) if minimum is not None else np.zeros(bars, bool)
    final = np.where(vetoed, 0, action)
    return pd.DataFrame(
        {
            "final_action": _categorical(final, ACTION_CATEGORIES, 1),
            "final_confidence": confidence,
            "arbiter_score": score,
            "arbiter_reason": pd.array(texts, dtype="string"),
            "risk_veto": vetoed,
        },
        index=indicators.index,
    )
