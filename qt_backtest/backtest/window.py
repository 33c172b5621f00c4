"""The evaluation window: the bars every run of a comparison is scored on.

A run is scored from the first bar on which any model voted (the first out-of-sample
prediction) to the last one. Earlier bars are warm-up: they feed the indicators but no run
trades on them, so that a layer that needs no votes (the Arbiter alone, buy-and-hold) is not
credited with a period the others could not trade.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from qt_backtest.errors import CoverageWarning


def vote_columns(votes: pd.DataFrame, models: Sequence[str] | None = None) -> list[str]:
    """The ``<model>_action`` columns of ``votes`` (of ``models`` when given)."""
    if models is None:
        return [c for c in votes.columns if isinstance(c, str) and c.endswith("_action")]
    return [f"{m}_action" for m in models if f"{m}_action" in votes.columns]


def evaluation_window(votes: pd.DataFrame, models: Sequence[str] | None = None) -> tuple[int, int]:
    """Positions ``(first, stop)`` of the bars from the first to the last one with a vote.

    Parameters
    ----------
    votes : DataFrame
        Model votes, one row per bar (``<model>_action`` columns).
    models : sequence of str, optional
        The models whose votes count (all ``*_action`` columns by default).

    Returns
    -------
    (int, int)
        ``votes.iloc[first:stop]`` is the window.
    """
    columns = vote_columns(votes, models)
    if not columns:
        raise ValueError("votes have no <model>_action column: nothing to evaluate")
    voted = votes[columns].notna().any(axis=1).to_numpy()
    if not voted.any():
        raise ValueError("no model voted on any bar: nothing to evaluate")
    where = np.flatnonzero(voted)
    return int(where[0]), int(where[-1]) + 1


def describe_window(index: pd.Index, first: int, stop: int) -> str:
    """One line: the window's bounds and its bars, and the warm-up left out."""
    return (
        f"{index[first]} to {index[stop - 1]} ({stop - first:,} bars; "
        f"{first:,} warm-up bar(s) before, {len(index) - stop:,} after)"
    )


#: A configured model voting on fewer than this share of a window's bars is reported.
FULL_COVERAGE = 0.9


def model_coverage(votes: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Per configured model: bars of ``votes`` with its vote, their share, first and last.

    Returns
    -------
    DataFrame indexed by model: ``bars``, ``coverage`` (0 to 1), ``first``, ``last``
    (timestamps, NaT without a vote).
    """
    rows = {}
    for model in models:
        column = f"{model}_action"
        voted = votes[column].notna().to_numpy() if column in votes.columns else None
        if voted is None or not voted.any():
            rows[model] = {"bars": 0, "coverage": 0.0, "first": pd.NaT, "last": pd.NaT}
            continue
        where = np.flatnonzero(voted)
        rows[model] = {
            "bars": int(voted.sum()),
            "coverage": float(voted.mean()),
            "first": votes.index[where[0]],
            "last": votes.index[where[-1]],
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def coverage_message(coverage: pd.DataFrame, fidelity: str, where: str = "") -> str | None:
    """One line naming the configured models with no or partial votes and what the fidelity
    does with their missing votes; None when every model covers the window."""
    short = coverage[coverage["coverage"] < FULL_COVERAGE]
    if not len(short):
        return None
    parts = [
        f"{model} has no predictions"
        if row.bars == 0
        else f"{model} votes on {row.coverage:.1%} of the bars ({row.first} to {row.last})"
        for model, row in short.iterrows()
    ]
    effect = (
        "production fidelity pads a missing vote as HOLD/0.50 for Meta (the ensemble skips it)"
        if fidelity == "production"
        else "intended fidelity leaves a missing vote out of Meta and the ensemble"
    )
    prefix = f"{where}: " if where else ""
    return f"{prefix}{'; '.join(parts)}; {effect}"


#: Below this share of prediction timestamps on bar timestamps, predictions and bars do not
#: belong together (another interval, a shift, another time zone): an error.
MIN_ALIGNED = 0.5


def check_prediction_alignment(where: str, predictions: pd.Index, bars: pd.Index) -> None:
    """Check that predictions read from a file fit the bars they will be replayed on.

    Raises ``ValueError`` when no prediction falls within the bars' time range, or when fewer
    than :data:`MIN_ALIGNED` of those that do fall on a bar's timestamp; warns
    (:class:`CoverageWarning`, with the figures) when some miss a bar, or some bars between
    the first and the last prediction have none.
    """
    if not len(bars):
        raise ValueError(f"{where}: no bars to replay the predictions on")
    timestamps = pd.Index(predictions).unique()
    if not len(timestamps):
        raise ValueError(f"{where}: no predictions")
    inside = timestamps[(timestamps >= bars[0]) & (timestamps <= bars[-1])]
    if not len(inside):
        raise ValueError(
            f"{where}: the predictions ({timestamps.min()} to {timestamps.max()}) cover none of "
            f"the bars ({bars[0]} to {bars[-1]})"
        )
    aligned = float(inside.isin(bars).mean())
    if aligned < MIN_ALIGNED:
        raise ValueError(
            f"{where}: only {aligned:.1%} of the predictions within the bars' range fall on a "
            "bar's timestamp: another interval, a shift or another time zone?"
        )
    span = bars[(bars >= inside.min()) & (bars <= inside.max())]
    covered = float(span.isin(timestamps).mean())
    after = int((timestamps > bars[-1]).sum())
    problems = []
    if aligned < 1.0:
        problems.append(f"{1 - aligned:.2%} of the predictions fall between bars")
    if covered < 1.0:
        problems.append(f"they cover {covered:.2%} of the bars from their first to their last")
    if (
        after
        and len(timestamps) > after
        and timestamps.max() - bars[-1]
        <= 2 * (bars[-1] - bars[-2] if len(bars) > 1 else pd.Timedelta(0))
    ):
        problems.append(f"{after} fall just after the last bar (shifted by a bar?)")
    if problems:
        warnings.warn(f"{where}: " + "; ".join(problems), CoverageWarning, stacklevel=2)
