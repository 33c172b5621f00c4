"""The rollout monitor: journal records in, anytime-valid verdicts out (H-MON-1 to H-MON-6).

A :class:`Monitor` is fed journal lines (any chunking: its state after two chunks equals its
state after their concatenation) and the market bars of the symbols. The completed records are
counted towards the rate sequences a day at a time; at the Arbiter stage they are also placed on
their bars and each symbol's override tracker is stepped over the bars that are ready, adding
each override's paired outcome when it settles. The whole state is a JSON document, saved
atomically.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from qt_backtest.atomic import atomic_write
from qt_backtest.backtest import PositionRules
from qt_backtest.errors import ConfigError
from qt_backtest.hierarchy.config import HierarchyConfig
from qt_backtest.hierarchy.livelog import JournalReader
from qt_backtest.inference.sequential import decisions_to_verdict
from qt_backtest.monitor.config import MonitorConfig
from qt_backtest.monitor.journal import JournalPosition
from qt_backtest.monitor.outcomes import OverrideOutcomes
from qt_backtest.monitor.rates import add_counts, count_events, present
from qt_backtest.monitor.tracking import (
    DECISION_FIELDS,
    BarTrack,
    PreparedBars,
    decision_columns,
    prepare_bars,
)
from qt_backtest.monitor.watch import Watch

#: Version of the saved state's layout: a state of another version is refused, not misread.
STATE_VERSION = 1
POOLED = "pooled"
NS_PER_DAY = 86_400 * 10**9


class Monitor:
    """Anytime-valid monitor of one rollout stage (H-MON-1).

    Parameters
    ----------
    config : MonitorConfig
        Stage, confidence, outcome bound, tolerance, expected effect and target bands.
    rules : PositionRules, optional
        Position model and costs the paired outcomes are valued under (as in the backtest).
    min_trade_confidence : float or None
        The live risk governor, applied to the stage's and the ensemble's decisions alike.
    year : int, optional
        Year of journal lines that carry only journald's prefix.
    """

    def __init__(
        self,
        config: MonitorConfig | None = None,
        rules: PositionRules | None = None,
        min_trade_confidence: float | None = HierarchyConfig().min_trade_confidence,
        year: int | None = None,
    ) -> None:
        self.config = config or MonitorConfig()
        self.rules = rules or PositionRules()
        self.min_trade_confidence = min_trade_confidence
        self.year = year
        self.reader = JournalReader(year=year)
        self.position: JournalPosition | None = None
        self.watches: dict[str, Watch] = {}
        self.pooled = Watch(self.config)
        self.tracks: dict[str, BarTrack] = {}
        #: per symbol, the time of the last line written from a prediction store (H-MON-1)
        self.store_times: dict[str, str] = {}
        #: projections before the stage starts (H-MON-5) by symbol (POOLED: for all), set by
        #: :meth:`plan`
        self.expectations: dict[str, dict[str, float]] = {}
        if self.config.expected_edge is not None:
            assert self.config.expected_spread is not None
            self.plan(POOLED, self.config.expected_edge, self.config.expected_spread)

    # -- feeding ----------------------------------------------------------------------------

    def feed(self, lines: Iterable[str], bars: Mapping[str, pd.DataFrame] | None = None) -> int:
        """Read journal lines; returns the records they completed.

        ``bars`` (by symbol) are needed at the Arbiter stage to value overrides; without a
        symbol's bars its records still count towards the rates and wait for the bars.
        """
        records = self.reader.feed(lines)
        if not records:
            return 0
        outcomes = self._track(records, prepare_bars(bars or {}))
        for first, stop in _day_ranges(records):
            self._count_day(records, first, stop)
            # the outcomes settled by this day's records, in the order one pass adds them
            for symbol, (values, triggers) in outcomes.items():
                begin, end = np.searchsorted(triggers, (first, stop))
                if symbol != POOLED:
                    self.watches[symbol].add_outcomes(values[begin:end])
                else:
                    self.pooled.add_outcomes(values[begin:end])
        return len(records)

    def catch_up(self, bars: Mapping[str, pd.DataFrame]) -> None:
        """Place the records that waited for their bars, now that ``bars`` may hold them."""
        prepared = prepare_bars(bars)
        emitted = []
        for symbol, track in self.tracks.items():
            if symbol in prepared and track.waiting:
                values, _ = track.place(
                    prepared[symbol],
                    np.empty(0, dtype=np.int64),
                    np.empty((0, len(DECISION_FIELDS))),
                    np.empty(0, dtype=np.int64),
                )
                self.watches[symbol].add_outcomes(values)
                emitted.append(values)
        if emitted:
            self.pooled.add_outcomes(np.concatenate(emitted))

    def _count_day(self, records: list[dict[str, Any]], first: int, stop: int) -> None:
        """Count the records ``first:stop`` (one day) towards their symbol's rates and the
        pooled ones."""
        by_symbol: dict[str, list[int]] = {}
        for number in range(first, stop):
            by_symbol.setdefault(str(records[number]["symbol"]), []).append(number)
        pooled = None
        for symbol, numbers in by_symbol.items():
            counts = count_events(records[n] for n in numbers)
            pooled = counts if pooled is None else add_counts(pooled, counts)
            watch = self.watches.get(symbol)
            if watch is None:
                watch = self.watches[symbol] = Watch(self.config)
            watch.add_counts(counts, records[numbers[0]]["time"], records[numbers[-1]]["time"])
        assert pooled is not None
        self.pooled.add_counts(pooled, records[first]["time"], records[stop - 1]["time"])

    def _track(
        self, records: list[dict[str, Any]], bars: Mapping[str, PreparedBars]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Place the records on their bars and step each symbol's tracker once (H-MON-4).

        Returns, per symbol and POOLED, the settled outcomes with the number of the record whose
        arrival settled each (non-decreasing): the pooled ones in the order a single pass over
        the records would add them, so any chunking of the journal gives the same state.
        """
        if self.config.stage != "meta_arbiter":
            return {}
        by_symbol: dict[str, list[int]] = {}
        for number, record in enumerate(records):
            by_symbol.setdefault(str(record["symbol"]), []).append(number)
        result = {}
        for symbol, numbers in by_symbol.items():
            track = self.tracks.get(symbol)
            if track is None:
                track = self.tracks[symbol] = BarTrack(
                    OverrideOutcomes(self.rules, min_trade_confidence=self.min_trade_confidence)
                )
            timed = [n for n in numbers if isinstance(records[n]["time"], pd.Timestamp)]
            track.unplaced += len(numbers) - len(timed)  # no time, no bar
            times = np.array([records[n]["time"].value for n in timed], dtype=np.int64)
            decisions = decision_columns([records[n] for n in timed], self.min_trade_confidence)
            if symbol in bars:
                result[symbol] = track.place(
                    bars[symbol], times, decisions, np.array(timed, dtype=np.int64)
                )
            else:
                track.waiting += [
                    [int(t), *d] for t, d in zip(times.tolist(), decisions.tolist(), strict=True)
                ]
        if result:
            triggers = np.concatenate([stepped_by for _, stepped_by in result.values()])
            order = np.argsort(triggers, kind="stable")
            values = np.concatenate([values for values, _ in result.values()])
            result[POOLED] = (values[order], triggers[order])
        return result

    # -- projection -------------------------------------------------------------------------

    def plan(
        self,
        symbol: str,
        edge: float,
        spread: float,
        overrides_per_day: float | None = None,
        decisions_per_day: float | None = None,
    ) -> dict[str, float]:
        """Overrides expected before a verdict on ``symbol`` (POOLED: on every symbol without
        its own) at a backtest's effect, and the decisions and days that takes at the
        backtest's frequencies (H-MON-5)."""
        overrides = decisions_to_verdict(
            edge,
            spread,
            self.config.outcome_bound,
            confidence=self.config.confidence,
            tolerance=self.config.tolerance,
        )
        days = overrides / overrides_per_day if overrides_per_day else math.nan
        expectation = {
            "edge": float(edge),
            "spread": float(spread),
            "overrides": float(overrides),
            "overrides_per_day": float(overrides_per_day or math.nan),
            "days": float(days),
            "decisions": float(days * decisions_per_day) if decisions_per_day else math.nan,
        }
        self.expectations[symbol] = expectation
        return expectation

    def expectation(self, symbol: str) -> dict[str, float] | None:
        """The projection that applies to ``symbol``: its own, else the pooled one."""
        return self.expectations.get(symbol, self.expectations.get(POOLED))

    # -- reading ----------------------------------------------------------------------------

    def status(self) -> pd.DataFrame:
        """One row per symbol and pooled: records, day, overrides settled and open, the mean
        paired outcome with its interval and the verdict."""
        rows = []
        for name, watch in [*self.watches.items(), (POOLED, self.pooled)]:
            assert watch.value is not None
            low, high = watch.value.interval()
            track = self.tracks.get(name)
            rows.append(
                {
                    "symbol": name,
                    "day": watch.day(),
                    "decisions": watch.decisions,
                    "overrides_settled": watch.value.count,
                    "overrides_open": len(track.tracker.open_overrides) if track else 0,
                    "clipped": watch.value.clipped,
                    "edge": watch.value.estimate(),
                    "edge_low": low,
                    "edge_high": high,
                    "verdict": watch.value.decide(self.config.tolerance)
                    if self.config.stage == "meta_arbiter"
                    else "rates only",
                }
            )
        return pd.DataFrame(rows).set_index("symbol")

    def rate_tables(self) -> dict[str, pd.DataFrame]:
        """Per symbol and pooled, each rate's interval against its band (H-MON-2)."""
        tables = {name: watch.rate_table() for name, watch in self.watches.items()}
        tables[POOLED] = self.pooled.rate_table()
        return tables

    # -- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "config": _config_fingerprint(
                self.config, self.rules, self.min_trade_confidence, self.year
            ),
            "reader": self.reader.to_dict(),
            "position": None if self.position is None else self.position.to_dict(),
            "watches": {name: watch.to_dict() for name, watch in self.watches.items()},
            "pooled": self.pooled.to_dict(),
            "tracks": {name: track.to_dict() for name, track in self.tracks.items()},
            "expectations": self.expectations,
            "store_times": self.store_times,
        }

    @classmethod
    def from_dict(
        cls,
        state: Mapping[str, Any],
        config: MonitorConfig | None = None,
        rules: PositionRules | None = None,
        min_trade_confidence: float | None = HierarchyConfig().min_trade_confidence,
        year: int | None = None,
    ) -> Monitor:
        """Restore a saved state; the configuration must be the one it was made under."""
        if state.get("version") != STATE_VERSION:
            raise ConfigError(
                f"monitor state of version {state.get('version')!r}; this version reads "
                f"{STATE_VERSION}: delete the state file to start the monitor afresh"
            )
        monitor = cls(config, rules, min_trade_confidence, year)
        expected = _config_fingerprint(monitor.config, monitor.rules, min_trade_confidence, year)
        if state["config"] != expected:
            changed = sorted(
                key
                for key in set(expected) | set(state["config"])
                if expected.get(key) != state["config"].get(key)
            )
            raise ConfigError(
                "the monitor state was made under other settings "
                f"({', '.join(changed)} changed): its sequences cannot continue under new ones; "
                "delete the state file to start the monitor afresh"
            )
        monitor.reader = JournalReader.from_dict(state["reader"])
        monitor.position = (
            None if state["position"] is None else JournalPosition.from_dict(state["position"])
        )
        monitor.watches = {
            name: Watch.from_dict(monitor.config, value) for name, value in state["watches"].items()
        }
        monitor.pooled = Watch.from_dict(monitor.config, state["pooled"])
        monitor.tracks = {
            name: BarTrack.from_dict(value) for name, value in state["tracks"].items()
        }
        monitor.expectations = dict(state["expectations"])
        monitor.store_times = dict(state["store_times"])
        return monitor

    def save(self, path: str | Path) -> Path:
        """Write the state as JSON, atomically."""
        text = json.dumps(self.to_dict(), allow_nan=True, sort_keys=True)
        return atomic_write(path, lambda temporary: Path(temporary).write_text(text))

    @classmethod
    def load(
        cls,
        path: str | Path,
        config: MonitorConfig | None = None,
        rules: PositionRules | None = None,
        min_trade_confidence: float | None = HierarchyConfig().min_trade_confidence,
        year: int | None = None,
    ) -> Monitor:
        """Read a state written by :meth:`save` (made under these settings)."""
        try:
            state = json.loads(Path(path).read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"the monitor state {path} is not valid JSON: {error}") from None
        return cls.from_dict(state, config, rules, min_trade_confidence, year)


def _day_ranges(records: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """``(first, stop)`` of the runs of records of one UTC day (records without a time join
    the day before them)."""
    ranges: list[tuple[int, int]] = []
    current = None
    for number, record in enumerate(records):
        time = record.get("time")
        # the journal's times are UTC Timestamps: a day is a whole number of ns in UTC
        day = cast(pd.Timestamp, time).value // NS_PER_DAY if present(time) else current
        if not ranges or day != current:
            ranges.append((number, number))
            current = day
        ranges[-1] = (ranges[-1][0], number + 1)
    return ranges


def _config_fingerprint(
    config: MonitorConfig,
    rules: PositionRules,
    min_trade_confidence: float | None,
    year: int | None,
) -> dict[str, str]:
    """Every setting a state depends on, field by field, as text (to name what changed)."""
    fingerprint = {"min_trade_confidence": repr(min_trade_confidence), "year": repr(year)}
    for prefix, settings in (("monitor", config), ("rules", rules)):
        for item in dataclasses.fields(settings):
            fingerprint[f"{prefix}.{item.name}"] = repr(getattr(settings, item.name))
    return fingerprint
