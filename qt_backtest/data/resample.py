"""Exact resampling of OHLCV bars to a coarser interval."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qt_backtest.data.interval import format_interval, infer_interval, parse_interval
from qt_backtest.data.validate import OHLCV_COLUMNS


def resample_ohlcv(
    frame: pd.DataFrame,
    interval: str | pd.Timedelta,
    *,
    complete: bool = True,
    source_interval: str | pd.Timedelta | None = None,
) -> pd.DataFrame:
    """Aggregate bars into coarser bars: first open, max high, min low, last close, summed volume.

    Bins are aligned to the Unix epoch (so 1h bins start on the hour, 1d bins at 00:00 UTC) and
    labelled by their open time. Only bins that hold at least one bar are returned.

    Parameters
    ----------
    frame : DataFrame
        Validated OHLCV bars (UTC DatetimeIndex, sorted, unique).
    interval : str or Timedelta
        Target interval, a whole multiple of the source interval (e.g. ``"1h"`` from ``"5m"``).
    complete : bool
        Keep only bins that hold every source bar (e.g. all twelve 5m bars of an hour). With
        ``False``, bins with missing bars are kept and aggregate what is there.
    source_interval : str or Timedelta, optional
        Interval of ``frame``; inferred when omitted.

    Returns
    -------
    DataFrame
        Columns ``open, high, low, close, volume`` and ``bars`` (source bars in the bin).
    """
    target = parse_interval(interval)
    source = (
        infer_interval(frame.index) if source_interval is None else parse_interval(source_interval)
    )
    if target.value % source.value != 0:
        raise ValueError(
            f"cannot resample {format_interval(source)} bars to {format_interval(target)}: "
            "the target must be a whole multiple of the source interval"
        )
    if len(frame) == 0:
        raise ValueError("cannot resample an empty frame")
    stamps = frame.index.as_unit("ns").asi8
    bins = stamps // target.value
    starts = np.flatnonzero(np.concatenate([[True], bins[1:] != bins[:-1]]))
    counts = np.diff(np.append(starts, len(stamps)))
    ends = starts + counts - 1
    values = {column: frame[column].to_numpy(dtype=np.float64) for column in OHLCV_COLUMNS}
    result = pd.DataFrame(
        {
            "open": values["open"][starts],
            "high": np.maximum.reduceat(values["high"], starts),
            "low": np.minimum.reduceat(values["low"], starts),
            "close": values["close"][ends],
            "volume": np.add.reduceat(values["volume"], starts),
            "bars": counts,
        },
        index=pd.DatetimeIndex(
            pd.to_datetime(bins[starts] * target.value, unit="ns", utc=True),
            name=frame.index.name,
        ),
    )
    if complete:
        result = result[result["bars"] == target.value // source.value]
    result.attrs = {key: value for key, value in frame.attrs.items() if key in ("source", "symbol")}
    result.attrs["interval"] = format_interval(target)
    return result
