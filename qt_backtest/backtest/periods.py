"""Annualisation: how many bars make a year, from the bar interval and the calendar."""

from __future__ import annotations

import pandas as pd

from qt_backtest.data.gaps import find_gaps
from qt_backtest.data.interval import infer_interval, parse_interval

#: Trading days a year for weekday (equity) calendars.
TRADING_DAYS = 252
#: Calendar days a year for round-the-clock (crypto) markets, as vectorbt counts them.
CALENDAR_DAYS = 365


def periods_per_year(index: pd.DatetimeIndex, interval: str | pd.Timedelta | None = None) -> float:
    """Bars per year: 365 days of bars for continuous markets (8,760 for 1h, 105,120 for 5m,
    365 for 1d), 252 for daily bars on a weekday calendar (equities)."""
    bar = infer_interval(index) if interval is None else parse_interval(interval)
    if bar == pd.Timedelta(days=1) and find_gaps(index, bar).calendar == "weekdays":
        return float(TRADING_DAYS)
    return pd.Timedelta(days=CALENDAR_DAYS) / bar
