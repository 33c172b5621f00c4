"""The rollout monitor: journal records in, anytime-valid verdicts out (H-MON-1 to H-MON-6).

A :class:`Monitor` is fed journal lines (any chunking: its state after two chunks equals its
state after their concatenation) and the market bars of the symbols. For each completed record
it updates the rate sequences at once; for the Arbiter stage it also places the record on its
bar and steps that symbol's override tracker bar by bar, adding each override's paired outcome
when it settles. The whole state is a JSON document, saved atomically.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.atomic import atomic_write
from qt_backtest.backtest import PositionRules
from qt_backtest.data.interval import infer_interval
from qt_backtest.errors import ConfigError
from qt_backtest.hierarchy.config import HierarchyConfig
from qt_backtest.hierarchy.livelog import JournalReader
from qt_backtest.inference.sequential import decisions_to_verdict
from qt_backtest.monitor.config import MonitorConfig
from qt_backtest.monitor.journal import JournalPosition
from qt_backtest.monitor.outcomes import OverrideOutcomes
from qt_backtest.monitor.watch import Watch

#: Version of the saved state's layout: a state of another version is refused, not misread.
STATE_VERSION = 1
POOLED = "pooled"


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _action(value: Any) -> str:
    return str(value) if _present(value) else "HOLD"


def _confidence(value: Any) -> float:
    return float(value) if _present(value) else 0.0


def decision_of(record: Mapping[str, Any], min_trade_confidence: float | None) -> dict[str, Any]:
    """The stage's decision and the ensemble's counterfactual one in a journal record (H-MON-4).

    The final action is the ENSEMBLE line's (a record without one decided HOLD at a confidence
    of at most 0.50), passed through the risk governor (H-MODE-3): the line shows the action
    before it. The ensemble's is the base action the Meta or Arbiter line names, or the final
    one when Meta did not run; the tracker passes it through the governor itself.
    """
    logged = _action(record.get("final_action"))
    confidence = _confidence(record.get("final_confidence"))
    vetoed = (
        logged != "HOLD" and min_trade_confidence is not None and confidence < min_trade_confidence
    )
    action = "HOLD" if vetoed else logged
    if _present(record.get("base_action")):
        ensemble_action = str(record["base_action"])
        ensemble_confidence = _confidence(record.get("base_confidence"))
    else:
        ensemble_action, ensemble_confidence = logged, confidence
    arbiter = record.get("arbiter_action")
    return {
        "arbiter_action": str(arbiter) if _present(arbiter) else None,
        "action": action,
        "confidence": confidence,
        "ensemble_action": ensemble_action,
        "ensemble_confidence": ensemble_confidence,
        "override": record.get("arbiter_outcome") == "override",
    }


#: The decision of a bar without a record: no signal.
NO_SIGNAL: Mapping[str, Any] = {
    "action": "HOLD",
    "confidence": 0.0,
    "ensemble_action": "HOLD",
    "ensemble_confidence": 0.0,
    "override": False,
    "arbiter_action": None,
}


@dataclass(frozen=True)
class PreparedBars:
    """One symbol's bars as the tracker reads them: open times (ns), prices, bar length (ns)."""

    index: pd.DatetimeIndex
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
        prepared[symbol] = PreparedBars(
            index=frame.index,
            opens=frame.index.asi8,
            prices=frame[["open", "high", "low", "close"]].to_numpy(dtype=float),
            step=pd.Timedelta(interval).value,
        )
    return prepared


@dataclass
class BarTrack:
    """Where one symbol's override tracker stands on its bars (H-MON-4).

    ``next_bar`` is the open time of the first bar not stepped yet; ``pending`` the decision of
    the latest record's bar, held until a record of a later bar shows that no other record of
    that bar will come (the last record of a bar is its decision); ``waiting`` the records whose
    bar is not in the bars yet.
    """

    tracker: OverrideOutcomes
    next_bar: str | None = None
    pending: dict[str, Any] | None = None
    waiting: list[dict[str, Any]] = field(default_factory=list)
    unplaced: int = 0

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
            waiting=list(state["waiting"]),
            unplaced=int(state["unplaced"]),
        )


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
        self.reader = JournalReader(year=year)
        self.position: JournalPosition | None = None
        self.watches: dict[str, Watch] = {}
        self.pooled = Watch(self.config)
        self.tracks: dict[str, BarTrack] = {}
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
        prepared = prepare_bars(bars or {})
        for record in records:
            self.add_record(record, prepared)
        return len(records)

    def add_record(self, record: Mapping[str, Any], bars: Mapping[str, PreparedBars]) -> None:
        """Count one record and, at the Arbiter stage, move its symbol's tracker."""
        symbol = str(record["symbol"])
        watch = self.watches.get(symbol)
        if watch is None:
            watch = self.watches[symbol] = Watch(self.config)
        watch.add_record(record)
        self.pooled.add_record(record)
        if self.config.stage != "meta_arbiter":
            return
        track = self.tracks.get(symbol)
        if track is None:
            track = self.tracks[symbol] = BarTrack(
                OverrideOutcomes(self.rules, min_trade_confidence=self.min_trade_confidence)
            )
        entry = {
            "time": pd.Timestamp(record["time"]).isoformat(),
            **decision_of(record, self.min_trade_confidence),
        }
        track.waiting.append(entry)
        frame = bars.get(symbol)
        if frame is not None:
            self._place(symbol, track, frame)

    def catch_up(self, bars: Mapping[str, pd.DataFrame]) -> None:
        """Place the records that waited for their bars, now that ``bars`` may hold them."""
        prepared = prepare_bars(bars)
        for symbol, track in self.tracks.items():
            if symbol in prepared and track.waiting:
                self._place(symbol, track, prepared[symbol])

    def _place(self, symbol: str, track: BarTrack, frame: PreparedBars) -> None:
        opens, step = frame.opens, frame.step
        while track.waiting:
            entry = track.waiting[0]
            time = pd.Timestamp(entry["time"]).value
            # the record decides on the last bar closed by its time (H-MON-4)
            bar = int(np.searchsorted(opens, time - step, side="right")) - 1
            if time - step >= opens[-1] + step:
                return  # its bar is not in the bars yet: wait for the next run
            track.waiting.pop(0)
            if bar < 0:
                track.unplaced += 1
                continue
            decided = {**entry, "bar": pd.Timestamp(opens[bar], tz="UTC").isoformat()}
            pending = track.pending
            if pending is not None and decided["bar"] < pending["bar"]:
                track.unplaced += 1  # a record older than one already placed
                continue
            if pending is not None and decided["bar"] > pending["bar"]:
                self._step_through(symbol, track, frame, pending)
            track.pending = decided

    def _step_through(
        self,
        symbol: str,
        track: BarTrack,
        frame: PreparedBars,
        decided: Mapping[str, Any],
    ) -> None:
        """Step the tracker over every bar up to the decided one: bars before it had no record
        (no signal) and the decided bar has the decision."""
        opens, prices = frame.opens, frame.prices
        last = int(np.searchsorted(opens, pd.Timestamp(decided["bar"]).value))
        # the tracker starts on the first decided bar: the bars before it had no stage
        first = (
            last
            if track.next_bar is None
            else int(np.searchsorted(opens, pd.Timestamp(track.next_bar).value))
        )
        for bar in range(first, last + 1):
            decision: Mapping[str, Any] = decided if bar == last else NO_SIGNAL
            settled = track.tracker.step(
                frame.index[bar],
                *prices[bar],
                action=decision["action"],
                confidence=decision["confidence"],
                ensemble_action=decision["ensemble_action"],
                ensemble_confidence=decision["ensemble_confidence"],
                override=decision["override"],
                arbiter_action=decision.get("arbiter_action"),
            )
            for outcome in settled:
                self.watches[symbol].add_outcome(outcome["relative_value"])
                self.pooled.add_outcome(outcome["relative_value"])
        if last + 1 < len(opens):
            track.next_bar = pd.Timestamp(opens[last + 1], tz="UTC").isoformat()
        else:
            track.next_bar = (
                pd.Timestamp(opens[last], tz="UTC") + pd.Timedelta(1, "ns")
            ).isoformat()

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

    def finish_day(self) -> None:
        for watch in [*self.watches.values(), self.pooled]:
            watch.finish_day()

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
            "config": _config_fingerprint(self.config, self.rules, self.min_trade_confidence),
            "reader": self.reader.to_dict(),
            "position": None if self.position is None else self.position.to_dict(),
            "watches": {name: watch.to_dict() for name, watch in self.watches.items()},
            "pooled": self.pooled.to_dict(),
            "tracks": {name: track.to_dict() for name, track in self.tracks.items()},
            "expectations": self.expectations,
        }

    @classmethod
    def from_dict(
        cls,
        state: Mapping[str, Any],
        config: MonitorConfig | None = None,
        rules: PositionRules | None = None,
        min_trade_confidence: float | None = HierarchyConfig().min_trade_confidence,
    ) -> Monitor:
        """Restore a saved state; the configuration must be the one it was made under."""
        if state.get("version") != STATE_VERSION:
            raise ConfigError(
                f"monitor state of version {state.get('version')!r}; this version reads "
                f"{STATE_VERSION}: delete the state file to start the monitor afresh"
            )
        monitor = cls(config, rules, min_trade_confidence)
        expected = _config_fingerprint(monitor.config, monitor.rules, min_trade_confidence)
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
    ) -> Monitor:
        """Read a state written by :meth:`save`."""
        try:
            state = json.loads(Path(path).read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"the monitor state {path} is not valid JSON: {error}") from None
        return cls.from_dict(state, config, rules, min_trade_confidence)


def _config_fingerprint(
    config: MonitorConfig, rules: PositionRules, min_trade_confidence: float | None
) -> dict[str, str]:
    """Every setting a state depends on, field by field, as text (to name what changed)."""
    fingerprint = {"min_trade_confidence": repr(min_trade_confidence)}
    for prefix, settings in (("monitor", config), ("rules", rules)):
        for item in dataclasses.fields(settings):
            fingerprint[f"{prefix}.{item.name}"] = repr(getattr(settings, item.name))
    return fingerprint
