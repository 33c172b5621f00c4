"""The evaluation window: the bars every run of a comparison is scored on.

A run is scored from the first bar on which any model voted (the first out-of-sample
prediction) to the last one. Earlier bars are warm-up: they feed the indicators but no run
trades on them, so that a layer that needs no votes (the Arbiter alone, buy-and-hold) is not
credited with a period the others could not trade.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


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
