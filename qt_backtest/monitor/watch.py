"""What the monitor knows of one symbol (or of all pooled): a confidence sequence per rate, one
for the mean paired outcome of overrides, and a daily timeline for the page (H-MON-1 to H-MON-5).

Every update is O(1): a record moves at most six proportion sequences and an outcome one mean
sequence; the timeline grows by one row per day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.inference.sequential import MeanSequence, ProportionSequence
from qt_backtest.monitor.config import MonitorConfig
from qt_backtest.monitor.rates import bands, edges_to_clear, rate_verdict


@dataclass
class Watch:
    """Confidence sequences of one symbol, or of all symbols pooled.

    Attributes
    ----------
    rates : dict of str to ProportionSequence
        One per rate watched at the stage (H-MON-2).
    value : MeanSequence
        Mean paired outcome of the overrides settled so far (H-MON-4).
    decisions : int
        Records seen.
    first_time, last_time : str or None
        ISO times of the first and the last record.
    timeline : list of dict
        One row per day with records: the state at the end of that day (for the page).
    """

    config: MonitorConfig
    rates: dict[str, ProportionSequence] = field(default_factory=dict)
    value: MeanSequence | None = None
    decisions: int = 0
    first_time: str | None = None
    last_time: str | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for rate in bands(self.config.targets, self.config.stage):
            self.rates.setdefault(rate, ProportionSequence(confidence=self.config.confidence))
        if self.value is None:
            self.value = MeanSequence(
                bound=self.config.outcome_bound, confidence=self.config.confidence
            )

    # -- updates ----------------------------------------------------------------------------

    def add_counts(self, counts: Mapping[str, tuple[int, int]], first: Any, last: Any) -> None:
        """Count the records of one day, ``{rate: (successes, count)}`` (:func:`count_events`),
        from time ``first`` to ``last``; a day's row is written when the next day starts."""
        first_time, last_time = _iso(first), _iso(last)
        if first_time is not None:
            self._close_days_before(first_time)
            self.first_time = self.first_time or first_time
        if last_time is not None:
            self.last_time = last_time
        self.decisions += counts["records"][1]
        for rate, sequence in self.rates.items():
            successes, count = counts.get(rate, (0, 0))
            if count:
                sequence.update_many(np.arange(count) < successes)

    def add_outcomes(self, relative_values: np.ndarray) -> None:
        """Add the paired outcomes of settled overrides, in the order they became known."""
        assert self.value is not None
        if len(relative_values):
            self.value.update_many(np.asarray(relative_values, dtype=float))

    def _close_days_before(self, time: str) -> None:
        """Write the timeline row of the previous day when ``time`` starts a new one."""
        if self.last_time is not None and time[:10] != self.last_time[:10]:
            self.timeline.append(self.day_row())

    # -- reading ----------------------------------------------------------------------------

    def day(self) -> int:
        """Days since the first record, counting the first day as day 1."""
        if self.first_time is None or self.last_time is None:
            return 0
        span = pd.Timestamp(self.last_time).normalize() - pd.Timestamp(self.first_time).normalize()
        return int(span.days) + 1

    def day_row(self) -> dict[str, Any]:
        """The row the timeline keeps for a day: the value's interval and verdict, and each
        rate's counts (its interval follows from them: :meth:`ProportionSequence.interval`)."""
        assert self.value is not None
        low, high = self.value.interval()
        return {
            "time": self.last_time,
            "decisions": self.decisions,
            "outcomes": self.value.count,
            "edge": self.value.estimate(),
            "edge_low": low,
            "edge_high": high,
            "verdict": self.value.decide(self.config.tolerance),
            "rate_counts": {
                rate: [sequence.successes, sequence.count] for rate, sequence in self.rates.items()
            },
        }

    def snapshot(self) -> dict[str, Any]:
        """The current intervals and verdicts, as one flat row."""
        assert self.value is not None
        row: dict[str, Any] = {"time": self.last_time, "decisions": self.decisions}
        for rate, sequence in self.rates.items():
            low, high = sequence.interval()
            row[f"{rate}"] = sequence.estimate()
            row[f"{rate}_low"] = low
            row[f"{rate}_high"] = high
        low, high = self.value.interval()
        row["outcomes"] = self.value.count
        row["edge"] = self.value.estimate()
        row["edge_low"] = low
        row["edge_high"] = high
        row["verdict"] = self.value.decide(self.config.tolerance)
        return row

    def rate_table(self) -> pd.DataFrame:
        """Per rate: estimate, interval, band, verdict and, when undecided, the further records
        expected before a verdict if the rate stays where it is (H-MON-2)."""
        rows = []
        targets = bands(self.config.targets, self.config.stage)
        for rate, sequence in self.rates.items():
            low, high = sequence.interval()
            band = targets[rate]
            verdict = rate_verdict(low, high, band)
            estimate = sequence.estimate()
            further = 0.0
            if verdict == "undecided":
                further = _further_records(sequence, estimate, band, self.decisions)
            rows.append(
                {
                    "rate": rate,
                    "estimate": estimate,
                    "low": low,
                    "high": high,
                    "successes": sequence.successes,
                    "count": sequence.count,
                    "target_low": band[0],
                    "target_high": band[1],
                    "verdict": verdict,
                    "further_decisions": further,
                }
            )
        return pd.DataFrame(rows).set_index("rate")

    # -- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        assert self.value is not None
        return {
            "rates": {rate: sequence.to_dict() for rate, sequence in self.rates.items()},
            "value": self.value.to_dict(),
            "decisions": self.decisions,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "timeline": self.timeline,
        }

    @classmethod
    def from_dict(cls, config: MonitorConfig, state: Mapping[str, Any]) -> Watch:
        return cls(
            config=config,
            rates={
                rate: ProportionSequence.from_dict(value) for rate, value in state["rates"].items()
            },
            value=MeanSequence.from_dict(state["value"]),
            decisions=int(state["decisions"]),
            first_time=state["first_time"],
            last_time=state["last_time"],
            timeline=list(state["timeline"]),
        )


def _further_records(
    sequence: ProportionSequence, estimate: float, band: tuple[float, float], records: int
) -> float:
    """Records (of all kinds) expected before the rate's interval clears the band edges it
    must clear, at the current rate and the current share of records in its denominator."""
    if not math.isfinite(estimate) or sequence.count == 0:
        return math.inf
    needed = max(sequence.decisions_to_exclude(edge) for edge in edges_to_clear(estimate, band))
    share = sequence.count / records if records else 0.0
    return needed / share if share > 0 else math.inf


def _iso(time: Any) -> str | None:
    if time is None or (isinstance(time, float) and math.isnan(time)) or time is pd.NaT:
        return None
    return pd.Timestamp(time).isoformat()
