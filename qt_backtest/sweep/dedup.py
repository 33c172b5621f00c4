"""Simulating each distinct order stream of a sweep once (rules S-DUP-1 to S-DUP-4 in
``docs/sweep.md``).

Many combinations of a threshold grid trade identically: an Arbiter threshold between two
adjacent observed verdict confidences changes no comparison, a consensus threshold between two
observed vote shares neither, and different thresholds often change decisions only where the
position model ignores them. A sweep finds such combinations in two steps and runs the
position model, fills and metrics once per class:

1. **Equal decisions** (S-DUP-2): each threshold is replaced by the observed value it cuts at
   (the smallest compared value at or above it for ``<`` and ``>=`` comparisons, the largest
   at or below it for ``>``), and parameters the combination's mode never reads are blanked.
   Combinations whose rows are then equal make the same comparison on every bar: every result
   is equal, decision counts included.
2. **Equal orders** (S-DUP-3): the decision pass
   (:func:`qt_backtest.sweep.streams_nb.streams_nb`) runs the remaining combinations without
   trading and keys each one's stream of orders exactly. Combinations with equal keys under
   equal execution lag and costs get equal fills, equity and metrics; only their decision
   counts differ, and those come from the pass.

The plan never changes a result (S-DUP-4): ``sweep(..., dedup=False)`` simulates every
combination, and the tests compare every row of both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from qt_backtest.codes import INTENDED, MODE_ENSEMBLE, MODE_META
from qt_backtest.hierarchy.params import INDEX, SCALARS
from qt_backtest.sweep import nb

#: Parameters only Meta reads (blank under ``ensemble``) and only the Arbiter reads (blank
#: unless ``meta_arbiter``).
META_ONLY = (
    SCALARS[INDEX["min_active_models"] : INDEX["min_active_models"] + 1]
    + SCALARS[INDEX["consensus_threshold"] : INDEX["uncertainty_model"] + 1]
)
ARBITER_ONLY = SCALARS[INDEX["arbiter_threshold"] :]

#: Bars of the decision pass's trial run (S-DUP-3), and the share of distinct streams on them
#: above which the full pass is skipped: it would cost more than the simulations it saves.
PREFIX_BARS = nb.TILE
SKIP_SHARE = 0.5

#: Statistics columns that the decisions alone give (S-DUP-3): counted by the decision pass.
DECISION_COLUMNS = np.array(
    [nb.S_META_RAN, nb.S_ESCALATIONS, nb.S_ARBITER_CALLS, nb.S_OVERRIDES, nb.S_VETOES]
)
#: Rules columns that act after the decisions' targets: execution lag and costs.
EXECUTION_COLUMNS = np.array(
    [nb.R_LAG, nb.R_FEE, nb.R_SLIPPAGE, nb.R_FILL_AT_OPEN, nb.R_MAINTENANCE]
)


@dataclass(frozen=True)
class SimulationPlan:
    """Which combinations of one symbol a sweep simulates, and where every other one's
    results come from.

    Attributes
    ----------
    simulated : ndarray of int64, shape (k,)
        Positions of the combinations simulated, increasing: the first of each class.
    source : ndarray of int64, shape (combinations,)
        For each combination, the row of ``simulated`` whose results it shares.
    decisions : ndarray of float64, shape (combinations, STAT_COLUMNS), or None
        The decision pass's statistics of every combination (its decision counts), when the
        pass ran; None when each class holds only combinations with equal decisions.
    """

    simulated: np.ndarray
    source: np.ndarray
    decisions: np.ndarray | None

    @property
    def streams(self) -> int:
        """Distinct simulations: classes of combinations with identical equity curves."""
        return len(self.simulated)


def _smallest_at_or_above(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For ``v < t`` and ``v >= t`` comparisons: the smallest of the sorted ``values`` at or
    above each threshold (inf when none); a NaN threshold stays NaN."""
    position = np.searchsorted(values, thresholds, side="left")
    cut = np.append(values, np.inf)[np.minimum(position, len(values))]
    return np.where(np.isnan(thresholds), thresholds, cut)


def _largest_at_or_below(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For ``v > t`` comparisons: the largest of the sorted ``values`` at or below each
    threshold (-inf when none); a NaN threshold stays NaN."""
    position = np.searchsorted(values, thresholds, side="right")
    cut = np.concatenate([[-np.inf], values])[position]
    return np.where(np.isnan(thresholds), thresholds, cut)


def _observed(values: np.ndarray) -> np.ndarray:
    """The distinct values that are not NaN, sorted."""
    return np.unique(values[~np.isnan(values)])


def decision_keys(combinations: Any, bar_inputs: np.ndarray) -> np.ndarray:
    """Rows that are equal exactly when two combinations make the same decisions, trade under
    the same rules, and so have equal results (S-DUP-2).

    Parameters
    ----------
    combinations : Combinations
        The packed grid (:func:`qt_backtest.sweep.run.pack_grid`).
    bar_inputs : ndarray of float64, shape (bars, BAR_COLUMNS)
        The symbol's shared per-bar inputs.

    Returns
    -------
    ndarray of float64, shape (combinations, columns)
        Packed parameters (thresholds canonical, unread ones blank), weights, Meta's weights
        and rules, side by side.
    """
    params = combinations.params.copy()
    mode = params[:, INDEX["mode"]]
    # a layer not recomputed per combination has one value per bar for every combination
    shared_meta = not combinations.inline_meta
    shared_base = not combinations.inline_votes
    shared_verdict = not combinations.inline_score
    base_confidence = bar_inputs[:, nb.B_BASE_CONFIDENCE]
    verdict_confidence = bar_inputs[:, nb.B_VERDICT_CONFIDENCE]
    share = bar_inputs[:, nb.B_SHARE]

    def cut(name: str, values: np.ndarray, at_or_below: bool = False) -> None:
        column = INDEX[name]
        canonical = _largest_at_or_below if at_or_below else _smallest_at_or_above
        params[:, column] = canonical(_observed(values), params[:, column])

    if shared_meta:
        cut("consensus_threshold", share)
        cut("disagreement_threshold", 1.0 - share)
        cut("entropy_threshold", bar_inputs[:, nb.B_ENTROPY], at_or_below=True)
        if params[0, INDEX["fidelity"]] != INTENDED:
            cut("low_confidence_threshold", bar_inputs[:, nb.B_FALLBACK])
        elif shared_base:
            cut("low_confidence_threshold", base_confidence)
    if shared_verdict:
        cut("arbiter_threshold", verdict_confidence)
        if shared_base:
            cut("min_trade_confidence", np.concatenate([base_confidence, verdict_confidence]))
    meta_weights = combinations.meta_weights.copy()
    ensemble = mode == MODE_ENSEMBLE
    params[np.ix_(ensemble, [INDEX[name] for name in META_ONLY])] = 0.0
    meta_weights[ensemble] = 0.0
    blank_arbiter = ensemble | (mode == MODE_META)
    params[np.ix_(blank_arbiter, [INDEX[name] for name in ARBITER_ONLY])] = 0.0
    return np.column_stack([params, combinations.weights, meta_weights, combinations.rule_matrix])


def first_of_class(keys: np.ndarray) -> np.ndarray:
    """For each row of ``keys``, the position of the first row equal to it bit for bit.

    Parameters
    ----------
    keys : ndarray, shape (rows, columns)

    Returns
    -------
    ndarray of int64, shape (rows,)
    """
    rows = np.ascontiguousarray(keys)
    if len(rows) == 0:
        return np.empty(0, dtype=np.int64)
    as_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, inverse = np.unique(as_bytes, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)].astype(np.int64)


def simulation_plan(
    combinations: Any,
    bar_inputs: np.ndarray,
    decision_pass: Callable[..., tuple[np.ndarray, np.ndarray]],
    dedup: bool = True,
) -> SimulationPlan:
    """Which combinations to simulate on one symbol (S-DUP-1).

    Parameters
    ----------
    combinations : Combinations
    bar_inputs : ndarray of float64, shape (bars, BAR_COLUMNS)
    decision_pass : callable
        ``decision_pass(positions, bars=None)`` runs the decision pass
        (:func:`qt_backtest.sweep.streams_nb.streams_nb`) on the combinations at
        ``positions`` over the first ``bars`` bars (all by default) and returns their
        (statistics, order keys).
    dedup : bool
        False simulates every combination.
    """
    count = len(combinations.params)
    everything = np.arange(count, dtype=np.int64)
    if not dedup or count < 2:
        return SimulationPlan(everything, everything, None)
    equal = first_of_class(decision_keys(combinations, bar_inputs))
    distinct = np.unique(equal)
    of_distinct = np.searchsorted(distinct, equal)
    if len(distinct) < 2:
        return SimulationPlan(distinct, of_distinct, None)
    execution = combinations.rule_matrix[distinct][:, EXECUTION_COLUMNS]
    if len(bar_inputs) > PREFIX_BARS:
        # streams that differ on the first bars differ on all of them: the prefix's classes
        # are at most the full pass's
        _, keys = decision_pass(distinct, PREFIX_BARS)
        prefix_classes = len(
            np.unique(first_of_class(np.column_stack([keys.view(np.float64), execution])))
        )
        if prefix_classes > len(distinct) * SKIP_SHARE:
            return SimulationPlan(distinct, of_distinct, None)
    stats, keys = decision_pass(distinct)
    stream = first_of_class(np.column_stack([keys.view(np.float64), execution]))
    simulated = np.unique(stream)
    source = np.searchsorted(simulated, stream)[of_distinct]
    return SimulationPlan(distinct[simulated], source, stats[of_distinct])
