"""Gaps: bars absent from the regular grid. Reported by default, filled or dropped on request."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from qt_backtest.data.errors import DataValidationError
from qt_backtest.data.interval import format_interval, infer_interval, parse_interval

GAP_POLICIES = ("report", "raise", "fill", "drop")


@dataclass(frozen=True)
class Gap:
    """One gap: the bars strictly between ``after`` and ``before`` are missing."""

    after: pd.Timestamp
    before: pd.Timestamp
    missing_bars: int


@dataclass(frozen=True)
class GapReport:
    """Where a series has no bars although its grid says it should.

    Attributes
    ----------
    interval : Timedelta
        The bar interval the grid is built from.
    calendar : str
        ``"continuous"`` (every interval is a bar) or ``"weekdays"`` (daily bars on Monday to
        Friday only, as for equities).
    gaps : tuple of Gap
        Every gap, in time order.
    """

    interval: pd.Timedelta
    calendar: str
    gaps: tuple[Gap, ...]

    @property
    def count(self) -> int:
        """Number of gaps."""
        return len(self.gaps)

    @property
    def missing_bars(self) -> int:
        """Number of missing bars over all gaps."""
        return sum(gap.missing_bars for gap in self.gaps)

    @property
    def largest(self) -> Gap | None:
        """The gap with the most missing bars (the earliest of equals), or None."""
        if not self.gaps:
            return None
        return max(self.gaps, key=lambda gap: gap.missing_bars)

    def to_frame(self) -> pd.DataFrame:
        """The gaps as a table: ``after``, ``before``, ``missing_bars``."""
        return pd.DataFrame(
            [(gap.after, gap.before, gap.missing_bars) for gap in self.gaps],
            columns=["after", "before", "missing_bars"],
        )

    def to_dict(self) -> dict:
        """JSON-friendly form (ISO timestamps), as kept in ``frame.attrs["gaps"]``."""
        return {
            "interval": format_interval(self.interval),
            "calendar": self.calendar,
            "count": self.count,
            "missing_bars": self.missing_bars,
            "gaps": [
                [gap.after.isoformat(), gap.before.isoformat(), gap.missing_bars]
                for gap in self.gaps
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> GapReport:
        """Inverse of :meth:`to_dict`."""
        return cls(
            parse_interval(data["interval"]),
            data["calendar"],
            tuple(Gap(pd.Timestamp(a), pd.Timestamp(b), int(n)) for a, b, n in data["gaps"]),
        )

    def __str__(self) -> str:
        if not self.gaps:
            return f"no gaps ({format_interval(self.interval)} bars, {self.calendar} calendar)"
        largest = self.largest
        assert largest is not None  # there are gaps
        return (
            f"{self.count} gap(s), {self.missing_bars} missing {format_interval(self.interval)} "
            f"bar(s); largest {largest.missing_bars} bar(s) between {largest.after} and "
            f"{largest.before}"
        )


def _uses_weekdays(index: pd.DatetimeIndex, interval: pd.Timedelta) -> bool:
    return interval == pd.Timedelta(days=1) and not bool((index.day_of_week >= 5).any())


def find_gaps(
    frame_or_index: pd.DataFrame | pd.DatetimeIndex,
    interval: str | pd.Timedelta | None = None,
    calendar: str = "auto",
) -> GapReport:
    """Report the bars missing from a sorted series.

    Parameters
    ----------
    frame_or_index : DataFrame or DatetimeIndex
        Bars in time order.
    interval : str or Timedelta, optional
        The bar interval; inferred from the index when omitted.
    calendar : {"auto", "continuous", "weekdays"}
        ``"weekdays"`` ignores Saturdays and Sundays (daily equity bars); ``"auto"`` picks it
        for daily bars that never fall on a weekend.
    """
    index = frame_or_index if isinstance(frame_or_index, pd.DatetimeIndex) else frame_or_index.index
    step = infer_interval(index) if interval is None else parse_interval(interval)
    if calendar not in ("auto", "continuous", "weekdays"):
        raise ValueError(f"calendar must be 'auto', 'continuous' or 'weekdays', got {calendar!r}")
    if calendar == "auto":
        calendar = "weekdays" if _uses_weekdays(index, step) else "continuous"
    if calendar == "weekdays" and step != pd.Timedelta(days=1):
        raise ValueError("calendar='weekdays' needs daily bars")
    if len(index) < 2:
        return GapReport(step, calendar, ())
    if calendar == "weekdays":
        days = index.tz_convert(None).normalize().to_numpy().astype("datetime64[D]")
        slots = np.busday_count(days[:-1], days[1:])
    else:
        slots = np.diff(index.as_unit("ns").asi8) // step.value
    where = np.flatnonzero(slots > 1)
    gaps = tuple(Gap(index[i], index[i + 1], int(slots[i] - 1)) for i in where)
    return GapReport(step, calendar, gaps)


def fill_gaps(frame: pd.DataFrame, interval: str | pd.Timedelta | None = None) -> pd.DataFrame:
    """Insert the missing bars of a continuous-calendar series as flat bars.

    A filled bar has open = high = low = close = the previous close and volume 0 (no trade
    happened). Columns other than OHLCV are left NaN on filled bars.
    """
    step = infer_interval(frame.index) if interval is None else parse_interval(interval)
    full = pd.date_range(frame.index[0], frame.index[-1], freq=step, unit="ns")
    filled = frame.reindex(full)
    absent = filled["close"].isna().to_numpy()
    previous_close = filled["close"].ffill()
    for column in ("open", "high", "low", "close"):
        filled.loc[absent, column] = previous_close[absent]
    filled.loc[absent, "volume"] = 0.0
    filled.index.name = frame.index.name
    return filled


def drop_gaps(frame: pd.DataFrame, report: GapReport) -> pd.DataFrame:
    """Keep the longest stretch of bars without a gap (the earliest of equals)."""
    if not report.gaps:
        return frame
    breaks = [0]
    positions = frame.index.get_indexer([gap.before for gap in report.gaps])
    breaks.extend(int(p) for p in positions)
    breaks.append(len(frame))
    lengths = np.diff(breaks)
    best = int(np.argmax(lengths))
    return frame.iloc[breaks[best] : breaks[best + 1]]


def apply_gap_policy(
    frame: pd.DataFrame, policy: str, source: str | None = None, calendar: str = "auto"
) -> pd.DataFrame:
    """Apply ``policy`` (one of :data:`GAP_POLICIES`) and attach the gap report.

    * ``"report"``: keep the bars as they are; :func:`gap_report` returns the report.
    * ``"raise"``: raise :class:`DataValidationError` if there is any gap.
    * ``"fill"``: insert flat bars (see :func:`fill_gaps`).
    * ``"drop"``: keep the longest gap-free stretch (see :func:`drop_gaps`).

    The report attached always describes the data as loaded, before filling or dropping.
    """
    if policy not in GAP_POLICIES:
        raise ValueError(f"gaps must be one of {', '.join(GAP_POLICIES)}; got {policy!r}")
    frame = frame.copy(deep=False)
    if len(frame) < 2:
        frame.attrs["gaps"] = None
        return frame
    report = find_gaps(frame, calendar=calendar)
    if policy == "raise" and report.gaps:
        first = report.gaps[0]
        raise DataValidationError(
            f"{report}; first gap after {first.after} ({first.missing_bars} missing bar(s)). "
            "Pass gaps='fill' or gaps='drop' to change them explicitly",
            source=source,
        )
    if policy == "fill" and report.gaps:
        if report.calendar != "continuous":
            raise ValueError("gaps='fill' needs a continuous calendar (e.g. crypto bars)")
        frame = fill_gaps(frame, report.interval)
    elif policy == "drop":
        frame = drop_gaps(frame, report)
    # attrs stay JSON-serialisable so that frames can be written to parquet
    frame.attrs["gaps"] = report.to_dict()
    return frame


def gap_report(frame: pd.DataFrame) -> GapReport | None:
    """The gap report a loader attached to ``frame`` (the data as loaded), or None."""
    data = frame.attrs.get("gaps")
    return None if data is None else GapReport.from_dict(data)
