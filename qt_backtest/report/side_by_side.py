"""Two saved studies side by side: their metrics per (symbol, run) and the settings that
differ between them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from qt_backtest.report.study import StudyResult

#: Metrics shown by default.
SIDE_BY_SIDE_METRICS = ("total_return", "sharpe", "max_drawdown", "trades", "ruined")


def _flat(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def settings_difference(first: StudyResult, second: StudyResult) -> pd.DataFrame:
    """The hierarchy, rules and indicator settings whose values differ, one row each."""
    rows = []
    for part in ("config", "rules", "inputs"):
        a, b = _flat(getattr(first, part)), _flat(getattr(second, part))
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                rows.append({"setting": f"{part}.{key}", "first": a.get(key), "second": b.get(key)})
    return pd.DataFrame(rows, columns=["setting", "first", "second"])


def side_by_side(
    first: StudyResult, second: StudyResult, metrics: Sequence[str] = SIDE_BY_SIDE_METRICS
) -> pd.DataFrame:
    """Metrics of both studies per (symbol, run) they share, and the numeric differences
    (second minus first).

    Returns
    -------
    DataFrame indexed by (symbol, run) with columns (metric, ``first`` | ``second`` |
    ``difference``).
    """
    unknown = [m for m in metrics if m not in first.table.columns or m not in second.table.columns]
    if unknown:
        raise ValueError(f"metric(s) {unknown} are not in both studies' tables")
    shared = first.table.index.intersection(second.table.index)
    if not len(shared):
        raise ValueError("the studies share no (symbol, run): nothing to set side by side")
    parts = {}
    for metric in metrics:
        a = first.table.loc[shared, metric]
        b = second.table.loc[shared, metric]
        parts[metric, "first"] = a
        parts[metric, "second"] = b
        if pd.api.types.is_numeric_dtype(a) and not pd.api.types.is_bool_dtype(a):
            parts[metric, "difference"] = b.astype(float) - a.astype(float)
    return pd.DataFrame(parts)
