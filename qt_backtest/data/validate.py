"""Validation of OHLCV frames: every check names the first offending row and the problem."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from qt_backtest.data.errors import DataValidationError
from qt_backtest.data.interval import format_interval, infer_interval

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")


def check_required_columns(columns, source: str | None) -> None:
    """Raise naming every missing OHLCV column and the columns that were found."""
    present = set(columns)
    missing = [column for column in OHLCV_COLUMNS if column not in present]
    if missing:
        raise DataValidationError(
            f"missing required column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, columns)) or 'none'}",
            source=source,
        )


def _number(value: float) -> str:
    return repr(float(value))


def _raise_at(
    mask: np.ndarray,
    problem_of_row,
    frame: pd.DataFrame,
    source: str | None,
    lines: Sequence[int] | np.ndarray | None,
) -> None:
    """Raise for the first True in ``mask`` (if any); ``problem_of_row(i)`` words the problem."""
    offending = np.flatnonzero(mask)
    if offending.size == 0:
        return
    row = int(offending[0])
    raise DataValidationError(
        problem_of_row(row),
        source=source,
        row=row,
        line=None if lines is None else int(lines[row]),
        timestamp=frame.index[row] if isinstance(frame.index, pd.DatetimeIndex) else None,
        count=int(offending.size),
    )


def validate_ohlcv(
    frame: pd.DataFrame,
    *,
    source: str | None = None,
    lines: Sequence[int] | np.ndarray | None = None,
    check_interval: bool = True,
) -> pd.DataFrame:
    """Check an OHLCV frame and return it unchanged.

    The frame must have a UTC :class:`~pandas.DatetimeIndex` of bar open times and float columns
    ``open, high, low, close, volume``. Checks, in order: not empty; required columns present
    and numeric; timestamps strictly increasing (no unsorted rows, no duplicates); finite
    prices and volume; prices > 0; ``high >= low``; ``high >= max(open, close)``;
    ``low <= min(open, close)``; ``volume >= 0``; one bar interval (every spacing a whole
    multiple of the most common one: longer spacings are gaps, see
    :func:`qt_backtest.data.find_gaps`, anything else is a mixed interval).

    Parameters
    ----------
    frame : DataFrame
        The bars.
    source : str, optional
        Name of the data (file name) used in error messages.
    lines : sequence of int, optional
        The file line of each row, for error messages.
    check_interval : bool
        Whether to check for mixed bar intervals.

    Raises
    ------
    DataValidationError
        On the first failed check, naming source, row, line, timestamp and problem.
    """
    if len(frame) == 0:
        raise DataValidationError("no bars: the input is empty", source=source)
    check_required_columns(list(frame.columns), source)
    for column in OHLCV_COLUMNS:
        dtype = frame[column].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            raise DataValidationError(
                f"column {column} must be numeric, got dtype {dtype}", source=source
            )
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataValidationError(
            f"the index must be a DatetimeIndex of bar open times, got {type(index).__name__}",
            source=source,
        )
    if index.tz is None or str(index.tz) != "UTC":
        raise DataValidationError(
            f"timestamps must be in UTC, got time zone {index.tz}", source=source
        )
    _raise_at(np.asarray(index.isna()), lambda i: "missing timestamp (NaT)", frame, source, lines)
    stamps = index.as_unit("ns").asi8
    steps = np.diff(stamps)
    back = np.concatenate([[False], steps < 0])
    _raise_at(
        back,
        lambda i: (
            f"timestamp is earlier than the previous row's ({index[i - 1]}): "
            "rows are not sorted by time"
        ),
        frame,
        source,
        lines,
    )
    same = np.concatenate([[False], steps == 0])
    _raise_at(same, lambda i: f"duplicate timestamp (same as row {i - 1})", frame, source, lines)

    values = {
        column: frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
        for column in OHLCV_COLUMNS
    }
    for column in OHLCV_COLUMNS:
        column_values = values[column]
        _raise_at(np.isnan(column_values), lambda i, c=column: f"NaN in {c}", frame, source, lines)
        _raise_at(
            np.isinf(column_values),
            lambda i, c=column: f"infinite value in {c} ({_number(values[c][i])})",
            frame,
            source,
            lines,
        )
    for column in PRICE_COLUMNS:
        _raise_at(
            values[column] <= 0,
            lambda i, c=column: f"{c} must be > 0, got {_number(values[c][i])}",
            frame,
            source,
            lines,
        )
    high, low = values["high"], values["low"]
    open_, close = values["open"], values["close"]
    _raise_at(
        high < low,
        lambda i: f"high {_number(high[i])} < low {_number(low[i])}",
        frame,
        source,
        lines,
    )
    _raise_at(
        high < np.maximum(open_, close),
        lambda i: (
            f"high {_number(high[i])} < max(open {_number(open_[i])}, close {_number(close[i])})"
        ),
        frame,
        source,
        lines,
    )
    _raise_at(
        low > np.minimum(open_, close),
        lambda i: (
            f"low {_number(low[i])} > min(open {_number(open_[i])}, close {_number(close[i])})"
        ),
        frame,
        source,
        lines,
    )
    volume = values["volume"]
    _raise_at(volume < 0, lambda i: f"negative volume {_number(volume[i])}", frame, source, lines)
    if check_interval and len(frame) > 2:
        _check_one_interval(frame, steps, source, lines)
    return frame


def _check_one_interval(frame: pd.DataFrame, steps: np.ndarray, source: str | None, lines) -> None:
    """Raise on mixed bar intervals: a spacing ``steps`` (ns, between consecutive rows) that is
    not a whole number of the inferred interval, or a string of equal longer spacings."""
    interval = infer_interval(frame.index, source=source)
    step = interval.value
    irregular = np.concatenate([[False], steps % step != 0])
    _raise_at(
        irregular,
        lambda i: (
            "mixed bar intervals: this bar is "
            f"{pd.Timedelta(int(steps[i - 1]), unit='ns')} after the previous one, "
            f"which is not a whole number of {format_interval(interval)} bars"
        ),
        frame,
        source,
        lines,
    )
    # A coarser series spliced into a finer one looks like a string of equal gaps; real
    # outages are isolated. Three equal longer spacings in a row count as mixed intervals.
    ratio = steps // step
    longer = ratio > 1
    streak = longer[:-2] & (ratio[:-2] == ratio[1:-1]) & (ratio[1:-1] == ratio[2:])
    streak = np.concatenate([[False], streak, [False, False]])
    _raise_at(
        streak,
        lambda i: (
            "mixed bar intervals: this bar and the next two are each "
            f"{pd.Timedelta(int(steps[i - 1]), unit='ns')} apart, while most bars are "
            f"{format_interval(interval)} apart"
        ),
        frame,
        source,
        lines,
    )
