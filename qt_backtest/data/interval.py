"""Bar intervals: parsing ``"5m"``-style strings and inferring the interval of an index."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from qt_backtest.data.errors import DataValidationError

_UNITS = {
    "s": "seconds",
    "sec": "seconds",
    "m": "minutes",
    "min": "minutes",
    "h": "hours",
    "d": "days",
    "w": "weeks",
}
_PATTERN = re.compile(r"^\s*(\d+)\s*([a-zA-Z]+)\s*$")


def parse_interval(interval: str | pd.Timedelta) -> pd.Timedelta:
    """Turn ``"5m"``, ``"1h"``, ``"4h"``, ``"1d"``, ``"1w"`` (or a Timedelta) into a Timedelta.

    Units: s, m or min (minutes), h, d, w. Calendar months are not fixed intervals and are
    rejected.
    """
    if isinstance(interval, pd.Timedelta):
        result = interval
    else:
        match = _PATTERN.match(str(interval))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS or match.group(2) == "M":
            raise ValueError(
                f"cannot read bar interval {interval!r}: use a number and a unit among "
                "s, m (minutes), h, d, w, e.g. '5m' or '1h'"
            )
        result = pd.Timedelta(**{_UNITS[unit]: int(match.group(1))})
    if result <= pd.Timedelta(0):
        raise ValueError(f"bar interval must be positive, got {interval!r}")
    return result


def format_interval(interval: pd.Timedelta) -> str:
    """Short label of an interval: ``5m``, ``1h``, ``1d``."""
    seconds = int(interval.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def infer_interval(index: pd.DatetimeIndex, source: str | None = None) -> pd.Timedelta:
    """The bar interval of a sorted index: the most common spacing between bars.

    Raises
    ------
    DataValidationError
        With fewer than two bars, where no interval can be seen.
    """
    if len(index) < 2:
        raise DataValidationError(
            "cannot infer the bar interval from fewer than 2 bars; pass interval=",
            source=source,
        )
    steps = np.diff(index.as_unit("ns").asi8)
    values, counts = np.unique(steps, return_counts=True)
    # ties go to the smallest spacing: gaps only ever make spacings longer
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")
