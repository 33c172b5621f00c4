"""Journal records placed on their bars, and the override tracker stepped over them (H-MON-4).

A record decides on the last bar closed by its time. Several records of one bar: the last is
its decision, so a bar is stepped only once a record of a later bar shows that no other record
of it will come; bars without a record had no signal. Records whose bar is not in the bars yet
wait. All bars that become ready within one batch of records are stepped in one kernel call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.codes import ACTION_CODES, HOLD
from qt_backtest.data.interval import infer_interval
from qt_backtest.errors import ConfigError
from qt_backtest.monitor.outcomes import OverrideOutcomes

#: Fields of a placed decision, in the order of :meth:`BarTrack.place`'s arrays.
DECISION_FIELDS = (
    "action",
    "confidence",
    "ensemble_action",
    "ensemble_confidence",
    "override",
    "arbiter_action",
)


#: Code of an action field a record does not have.
_ABSENT = 9
#: Action code by label, looked up with any value a record holds.
_CODE_OF: dict[Any, int] = dict(ACTION_CODES)


def _codes(records: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    # an absent field is missing or NaN: neither is an action label
    return np.array([_CODE_OF.get(r.get(name), _ABSENT) for r in records], dtype=np.int64)


def _numbers(records: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    return np.array([r.get(name, np.nan) for r in records], dtype=float)


def decision_columns(
    records: Sequence[Mapping[str, Any]], min_trade_confidence: float | None
) -> np.ndarray:
    """The stage's decision and the ensemble's counterfactual one in each journal record, as
    columns of :data:`DECISION_FIELDS` (action codes), shape (n, 6) (H-MON-4).

    The final action is the ENSEMBLE line's (a record without one decided HOLD at a confidence
    of at most 0.50), passed through the risk governor (H-MODE-3): the line shows the action
    before it. The ensemble's is the base action the Meta or Arbiter line names, or the final
    one when Meta did not run; the tracker passes it through the governor itself.
    """
    final = _codes(records, "final_action")
    has_final = final != _ABSENT
    logged = np.where(has_final, final, HOLD)
    confidence = np.where(has_final, _numbers(records, "final_confidence"), 0.0)
    action = logged.copy()
    if min_trade_confidence is not None:
        action[(logged != HOLD) & (confidence < min_trade_confidence)] = HOLD
    base = _codes(records, "base_action")
    has_base = base != _ABSENT
    arbiter = _codes(records, "arbiter_action")
    columns = np.empty((len(records), len(DECISION_FIELDS)))
    columns[:, 0] = action
    columns[:, 1] = confidence
    columns[:, 2] = np.where(has_base, base, logged)
    columns[:, 3] = np.where(has_base, _numbers(records, "base_confidence"), confidence)
    columns[:, 4] = [r.get("arbiter_outcome") == "override" for r in records]
    columns[:, 5] = np.where(arbiter != _ABSENT, arbiter, HOLD)
    return columns


@dataclass(frozen=True)
class PreparedBars:
    """One symbol's bars as the tracker reads them: open times (ns), prices (n, 4), bar
    length (ns)."""

    opens: np.ndarray
    prices: np.ndarray
    step: int


def prepare_bars(bars: Mapping[str, pd.DataFrame]) -> dict[str, PreparedBars]:
    """Check each symbol's bars and take the arrays the tracker reads, once per feed."""
    prepared = {}
    for symbol, frame in bars.items():
        if not isinstance(frame.index, pd.DatetimeIndex) or frame.empty:
            raise ConfigError(f"the bars of {symbol} need a non-empty DatetimeIndex of open times")
        missing = [c for c in ("open", "high", "low", "close") if c not in frame.columns]
        if missing:
            raise ConfigError(f"the bars of {symbol} have no column(s) {missing}")
        if not frame.index.is_monotonic_increasing or frame.index.has_duplicates:
            raise ConfigError(f"the bars of {symbol} must be sorted by time without duplicates")
        interval = frame.attrs.get("interval") or infer_interval(frame.index, symbol)
        index = frame.index if frame.index.tz is None else frame.index.tz_convert("UTC")
        prepared[symbol] = PreparedBars(
            opens=index.as_unit("ns").asi8,
            prices=frame[["open", "high", "low", "close"]].to_numpy(dtype=float),
            step=pd.Timedelta(interval).value,
        )
    return prepared


@dataclass
class BarTrack:
    """Where one symbol's override tracker stands on its bars (H-MON-4).

    ``next_bar`` is the open time (ns) of the first bar not stepped yet; ``pending`` the
    latest placed decision (``[bar open ns, *DECISION_FIELDS]``), held until a record of a
    later bar arrives; ``waiting`` the records (``[time ns, *DECISION_FIELDS]``) whose bar is
    not in the bars yet.
    """

    tracker: OverrideOutcomes
    next_bar: int | None = None
    pending: list[Any] | None = None
    waiting: list[list[Any]] = field(default_factory=list)
    unplaced: int = 0

    def place(
        self,
        bars: PreparedBars,
        times: np.ndarray,
        decisions: np.ndarray,
        triggers: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Place the waiting records and new ones on their bars, and step the tracker over
        every bar that is ready.

        ``times`` (ns, shape (n,)) and ``decisions`` (shape (n, 6), :data:`DECISION_FIELDS`)
        are the new records in order; ``triggers`` numbers them (the waiting ones count as
        -1). Returns the outcomes settled (relative values, in the order they became known)
        and, for each, the number of the record whose arrival stepped its bar.
        """
        opens, step = bars.opens, bars.step
        waiting = np.array(self.waiting, dtype=float).reshape(-1, 1 + len(DECISION_FIELDS))
        times = np.r_[waiting[:, 0].astype(np.int64), times]
        decisions = np.r_[waiting[:, 1:], decisions]
        triggers = np.r_[np.full(len(waiting), -1, dtype=np.int64), triggers]
        # a record whose bar may still be missing from the bars waits for the next run
        late = np.flatnonzero(times - step >= opens[-1] + step)
        ready = int(late[0]) if late.size else len(times)
        self.waiting = [
            [int(t), *d]
            for t, d in zip(times[ready:].tolist(), decisions[ready:].tolist(), strict=True)
        ]
        bar_of = np.searchsorted(opens, times[:ready] - step, side="right") - 1
        # the pending decision comes first, as the record it was
        if self.pending is not None:
            bar_of = np.r_[np.searchsorted(opens, self.pending[0]), bar_of]
            decisions = np.r_[np.array([self.pending[1:]], dtype=float), decisions[:ready]]
            triggers = np.r_[-1, triggers[:ready]]
        else:
            decisions, triggers = decisions[:ready], triggers[:ready]
        if not len(bar_of):
            return np.empty(0), np.empty(0, dtype=np.int64)
        # a record before the bars, or older than one already placed, is not placed
        latest = np.maximum.accumulate(np.r_[-1, bar_of])[:-1]
        placed = (bar_of >= 0) & (bar_of >= latest)
        self.unplaced += int(np.count_nonzero(~placed))
        bar_of, decisions, triggers = bar_of[placed], decisions[placed], triggers[placed]
        if not len(bar_of):
            return np.empty(0), np.empty(0, dtype=np.int64)
        # the last record of a bar is its decision; a bar's group ends where the next begins
        starts = np.flatnonzero(np.r_[True, bar_of[1:] != bar_of[:-1]])
        ends = np.r_[starts[1:], len(bar_of)] - 1
        self.pending = [int(opens[bar_of[ends[-1]]]), *decisions[ends[-1]].tolist()]
        if len(starts) < 2:
            return np.empty(0), np.empty(0, dtype=np.int64)
        # every group but the last is decided, stepped when the next group's first record came
        decided_bars = bar_of[ends[:-1]]
        stepped_by = triggers[starts[1:]]
        first = decided_bars[0] if self.next_bar is None else np.searchsorted(opens, self.next_bar)
        return self._step(bars, int(first), decided_bars, decisions[ends[:-1]], stepped_by)

    def _step(
        self,
        bars: PreparedBars,
        first: int,
        decided_bars: np.ndarray,
        decisions: np.ndarray,
        stepped_by: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Step bars ``first`` to the last decided one: no signal but on the decided bars."""
        last = int(decided_bars[-1])
        columns = np.zeros((last - first + 1, len(DECISION_FIELDS)))
        columns[decided_bars - first] = decisions
        # a bar is stepped by the record that settled the first decided bar at or after it
        trigger = stepped_by[np.searchsorted(decided_bars, np.arange(first, last + 1))]
        fed = self.tracker.bars
        settled = self.tracker.step_many(
            bars.opens[first : last + 1],
            bars.prices[first : last + 1],
            columns[:, 0].astype(np.int64),
            columns[:, 1],
            columns[:, 2].astype(np.int64),
            columns[:, 3],
            columns[:, 4].astype(bool),
            columns[:, 5].astype(np.int64),
            columns=("known_bar", "relative_value"),
        )
        opens = bars.opens
        self.next_bar = int(opens[last + 1]) if last + 1 < len(opens) else int(opens[last]) + 1
        known = np.asarray(settled["known_bar"], dtype=np.int64) - fed
        return np.asarray(settled["relative_value"], dtype=float), trigger[known]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tracker": self.tracker.to_dict(),
            "next_bar": self.next_bar,
            "pending": self.pending,
            "waiting": self.waiting,
            "unplaced": self.unplaced,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> BarTrack:
        return cls(
            tracker=OverrideOutcomes.from_dict(state["tracker"]),
            next_bar=state["next_bar"],
            pending=state["pending"],
            waiting=[list(entry) for entry in state["waiting"]],
            unplaced=int(state["unplaced"]),
        )
