"""Numbers for people: percentages, thousands separators, durations, and tables as HTML."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

MISSING = "\u2013"  # an en dash marks a missing value


def escape(value: Any) -> str:
    """Any value as HTML text: ``& < > " '`` escaped. The one way a string that a user,
    a data file or a saved study supplied enters a page (Jinja's autoescape does the same in
    the template)."""
    return html.escape(str(value), quote=True)


def _finite(value: Any) -> bool:
    try:
        return value is not None and not pd.isna(value) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def percent(value: Any, digits: int = 1) -> str:
    """0.1234 -> '12.3 %'; missing -> an en dash."""
    if not _finite(value):
        return MISSING
    return f"{float(value) * 100:,.{digits}f} %"


def signed_percent(value: Any, digits: int = 1) -> str:
    """0.05 -> '+5.0 %'."""
    if not _finite(value):
        return MISSING
    return f"{float(value) * 100:+,.{digits}f} %"


def number(value: Any, digits: int = 2) -> str:
    """1234567.891 -> '1,234,567.89'."""
    if not _finite(value):
        return MISSING
    return f"{float(value):,.{digits}f}"


def integer(value: Any) -> str:
    """1234567 -> '1,234,567'."""
    if not _finite(value):
        return MISSING
    return f"{round(float(value)):,d}"


def money(value: Any) -> str:
    """Quote currency with thousands separators and no decimals above 100."""
    if not _finite(value):
        return MISSING
    return number(value, 0 if abs(float(value)) >= 100 else 2)


def duration(value: Any) -> str:
    """A Timedelta as '12 d 4 h'."""
    if value is None or pd.isna(value):
        return MISSING
    delta = pd.Timedelta(value)
    days, seconds = delta.days, delta.seconds
    if days:
        return f"{days:,d} d {seconds // 3600} h"
    return f"{seconds // 3600} h {(seconds % 3600) // 60} min"


def text(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return MISSING
    return str(value)


Formatter = Callable[[Any], str]

# how metric and rate columns are shown wherever they appear
COLUMN_FORMATS: dict[str, Formatter] = {
    "total_return": signed_percent,
    "cagr": signed_percent,
    "annualized_volatility": percent,
    "sharpe": number,
    "sortino": number,
    "calmar": number,
    "max_drawdown": percent,
    "max_drawdown_bars": integer,
    "max_drawdown_duration": duration,
    "trades": integer,
    "win_rate": percent,
    "profit_factor": number,
    "average_trade": money,
    "exposure": percent,
    "turnover": number,
    "fees_paid": money,
    "escalation_rate": percent,
    "defer_rate": percent,
    "arbiter_invocation_rate": percent,
    "override_rate_when_called": percent,
    "arbiter_source_share": percent,
    "risk_veto_rate": percent,
    "pnl": money,
    "value": money,
    "fees": money,
    "size": lambda v: number(v, 4),
    "entry_price": number,
    "exit_price": number,
    "return": signed_percent,
    "share": percent,
    "count": integer,
    "bars": integer,
    "mean_confidence": percent,
    "hit_rate": percent,
}


def table(
    frame: pd.DataFrame,
    formats: Mapping[str, Formatter] | None = None,
    *,
    index: bool = True,
    labels: Mapping[str, str] | None = None,
    row_classes: list[str] | None = None,
    table_id: str | None = None,
    raw: set[str] | frozenset[str] = frozenset(),
) -> str:
    """An HTML table of ``frame`` with every cell formatted for reading.

    Columns are formatted by ``formats``, then ``COLUMN_FORMATS``, then by type (integers
    with separators, floats with 4 significant digits). Numbers are right-aligned. Cells of
    the ``raw`` columns are HTML already and are inserted as they are.
    """
    formats = {**COLUMN_FORMATS, **(formats or {})}
    labels = labels or {}
    frame = frame.copy()
    index_names = [name or "" for name in frame.index.names] if index else []

    def label(name: Any) -> str:
        return escape(str(labels.get(name, str(name).replace("_", " "))))

    head = "".join(f"<th>{label(name)}</th>" for name in index_names)
    head += "".join(f"<th>{label(column)}</th>" for column in frame.columns)
    rows = []
    for position, (key, row) in enumerate(frame.iterrows()):
        keys = key if isinstance(key, tuple) else (key,)
        cells = "".join(f"<th scope='row'>{escape(text(k))}</th>" for k in keys) if index else ""
        for column in frame.columns:
            value = row[column]
            if column in raw:
                cells += f"<td>{value}</td>"
                continue
            shown = _format_cell(value, formats.get(str(column)))
            numeric = isinstance(value, (int, float, np.number, pd.Timedelta)) and not isinstance(
                value, bool
            )
            cells += f"<td class='num'>{shown}</td>" if numeric else f"<td>{shown}</td>"
        css = (
            f" class='{escape(row_classes[position])}'"
            if row_classes and row_classes[position]
            else ""
        )
        rows.append(f"<tr{css}>{cells}</tr>")
    identifier = f" id='{escape(table_id)}'" if table_id else ""
    return (
        f"<table{identifier}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _format_cell(value: Any, formatter: Formatter | None) -> str:
    if formatter is not None:
        return escape(formatter(value))
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return integer(value)
    if isinstance(value, (float, np.floating)):
        if not _finite(value):
            return MISSING
        return escape(f"{float(value):,.4g}")
    if isinstance(value, pd.Timestamp):
        return escape(f"{value:%Y-%m-%d %H:%M}")
    if isinstance(value, pd.Timedelta):
        return escape(duration(value))
    return escape(text(value))


def price_decimals(prices: Any, most: int = 8) -> int:
    """Decimals the prices are quoted with: the fewest (at least 2, at most ``most``) that
    write every finite price exactly (to 1e-9 of a unit of the last decimal). XRP quoted to
    the ten-thousandth gives 4, BTC to the cent 2."""
    values = np.asarray(prices, dtype=np.float64)
    values = np.abs(values[np.isfinite(values)])
    if not len(values):
        return 2
    for decimals in range(2, most + 1):
        scaled = values * 10.0**decimals
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, scaled * 1e-9)):
            return decimals
    return most


def price(value: Any, decimals: int = 2) -> str:
    """A price with thousands separators and the data's decimals."""
    return number(value, decimals)
