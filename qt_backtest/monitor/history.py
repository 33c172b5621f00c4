"""History as if live (H-MON-6): the monitor run over past data as a rollout starting at a chosen
date would have seen it.

The stage is replayed over all the bars (the indicators warm up on the bars before the start),
the decisions from the start on are written as the live engine's journal, and the journal is fed
to a :class:`~qt_backtest.monitor.monitor.Monitor` one day at a time, with the bars up to the end
of that day only. The projection before the start uses the bars and votes before it only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.backtest import PositionRules
from qt_backtest.data.interval import infer_interval
from qt_backtest.errors import ConfigError
from qt_backtest.hierarchy.config import HierarchyConfig
from qt_backtest.hierarchy.livelog import format_record
from qt_backtest.hierarchy.replay import replay
from qt_backtest.indicators import ArbiterInputConfig, arbiter_inputs
from qt_backtest.monitor.config import MonitorConfig
from qt_backtest.monitor.monitor import POOLED, Monitor
from qt_backtest.monitor.outcomes import override_outcomes
from qt_backtest.monitor.rates import present


def engine_record(row: Mapping[str, Any], votes: Mapping[str, tuple[str, float]]) -> dict:
    """A replayed decision (one row of :func:`~qt_backtest.hierarchy.replay`) in the form the
    journal writer takes (:func:`~qt_backtest.hierarchy.livelog.format_record`)."""
    meta = None
    if present(row.get("meta_decision")):
        meta = {"decision": str(row["meta_decision"]), "reason": str(row["meta_reason"])}
    arbiter = None
    if present(row.get("gate")):
        arbiter = {
            "action": str(row["arbiter_action"]),
            "confidence": float(row["arbiter_confidence"]),
            "reason": str(row["arbiter_reason"]),
        }
    return {
        "base": {"action": str(row["base_action"]), "confidence": float(row["base_confidence"])},
        "meta": meta,
        "arbiter": arbiter,
        "gate": str(row["gate"]) if arbiter is not None else None,
        "final": {
            "action": str(row["final_action"]),
            "confidence": float(row["final_confidence"]),
            "risk_veto": bool(row["risk_veto"]),
            "source": str(row["source"]),
        },
        "votes": dict(votes),
    }


def _votes_of(votes: pd.DataFrame, models: tuple[str, ...]) -> list[dict[str, tuple[str, float]]]:
    """Per bar, the active models' (action, confidence)."""
    per_bar: list[dict[str, tuple[str, float]]] = [{} for _ in range(len(votes))]
    for model in models:
        actions = votes.get(f"{model}_action")
        confidences = votes.get(f"{model}_confidence")
        if actions is None or confidences is None:
            continue
        for bar, (action, confidence) in enumerate(zip(actions, confidences, strict=True)):
            if present(action) and np.isfinite(confidence):
                per_bar[bar][model] = (str(action).upper(), float(confidence))
    return per_bar


def journal_from_replay(
    symbol: str, decisions: pd.DataFrame, votes: pd.DataFrame, models: tuple[str, ...]
) -> list[tuple[pd.Timestamp, str]]:
    """The journal lines of every replayed bar, each with its time: a bar's lines are written
    when it closes (H-MON-4), one second after its close time."""
    interval = infer_interval(decisions.index, symbol)
    per_bar = _votes_of(votes.reindex(decisions.index), models)
    lines: list[tuple[pd.Timestamp, str]] = []
    for bar, row in enumerate(decisions.to_dict("records")):
        if not present(row.get("base_action")):
            continue  # no model voted: the engine logs nothing
        time = decisions.index[bar] + interval + pd.Timedelta(1, "s")
        record = engine_record(row, per_bar[bar])
        for line in format_record(symbol, time, record, emoji=False):
            lines.append((time, line))
    return lines


def journal_since(
    bars: Mapping[str, pd.DataFrame],
    votes: Mapping[str, pd.DataFrame],
    start: str | pd.Timestamp,
    after: Mapping[str, str | None],
    *,
    hierarchy: HierarchyConfig,
    inputs: ArbiterInputConfig | None = None,
) -> list[tuple[pd.Timestamp, str, str]]:
    """The journal a stage would have written from ``start`` on, over the votes of a
    prediction store, without the lines up to each symbol's ``after`` time (those a monitor has
    read already): a prediction store read as a live journal (H-MON-1). Returns
    ``(time, symbol, line)`` in time order."""
    start = _utc(start)
    timed: list[tuple[pd.Timestamp, str, str]] = []
    for symbol, frame in bars.items():
        if symbol not in votes:
            raise ConfigError(f"no votes for {symbol}")
        decisions = replay(
            votes[symbol].reindex(frame.index), arbiter_inputs(frame, inputs), hierarchy
        )
        seen = after.get(symbol)
        lines = journal_from_replay(
            symbol, decisions.loc[decisions.index >= start], votes[symbol], hierarchy.models
        )
        timed += [(t, symbol, line) for t, line in lines if seen is None or t > pd.Timestamp(seen)]
    timed.sort(key=lambda item: item[0])
    return timed


def _utc(time: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(time)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


@dataclass
class MonitorHistory:
    """Result of :func:`monitor_history`.

    Attributes
    ----------
    monitor : Monitor
        The monitor at the end of the span.
    timeline : DataFrame
        One row per symbol (and pooled) and day: the state at the end of that day.
    decided : DataFrame
        Per symbol and pooled: the first day the value verdict left "continue", and the verdict.
    expectation : dict of str to dict
        Per symbol, the projection made before the start (H-MON-5).
    start : Timestamp
    """

    monitor: Monitor
    timeline: pd.DataFrame
    decided: pd.DataFrame
    expectation: dict[str, dict[str, float]]
    start: pd.Timestamp


def _projection(
    bars: pd.DataFrame,
    decisions: pd.DataFrame,
    start: pd.Timestamp,
    rules: PositionRules,
    hierarchy: HierarchyConfig,
    bound: float,
) -> dict[str, float] | None:
    """Edge, spread and frequency of overrides before ``start`` (the backtest's effect), on
    outcomes clipped as the monitor clips them (H-MON-4)."""
    before = bars.index < start
    if before.sum() < 2:
        return None
    outcomes = override_outcomes(
        bars.loc[before],
        decisions.loc[before],
        rules,
        min_trade_confidence=hierarchy.min_trade_confidence,
    )
    if len(outcomes) < 2:
        return None
    values = np.clip(outcomes["relative_value"].to_numpy(dtype=float), -bound, bound)
    days = (bars.index[before][-1] - bars.index[0]) / pd.Timedelta(1, "D")
    return {
        "edge": float(np.mean(values)),
        "spread": float(np.std(values, ddof=1)),
        "overrides_per_day": len(values) / days if days > 0 else math.nan,
        "decisions_per_day": int(decisions.loc[before, "base_action"].notna().sum()) / days
        if days > 0
        else math.nan,
    }


def monitor_history(
    bars: Mapping[str, pd.DataFrame],
    votes: Mapping[str, pd.DataFrame],
    start: str | pd.Timestamp,
    *,
    config: MonitorConfig | None = None,
    hierarchy: HierarchyConfig | None = None,
    rules: PositionRules | None = None,
    inputs: ArbiterInputConfig | None = None,
    end: str | pd.Timestamp | None = None,
) -> MonitorHistory:
    """Monitor a rollout of ``config.stage`` that would have started at ``start`` (H-MON-6).

    Parameters
    ----------
    bars, votes : mapping of symbol to DataFrame
        OHLCV bars and the models' votes aligned to them (as for a study).
    start : str or Timestamp
        First day of the rollout (UTC). The bars before it warm up the indicators and give the
        projection of :meth:`Monitor.plan` at the backtest's effect.
    config : MonitorConfig, optional
    hierarchy : HierarchyConfig, optional
        Thresholds of the stage; its mode is set to ``config.stage``.
    rules : PositionRules, optional
    inputs : ArbiterInputConfig, optional
    end : str or Timestamp, optional
        Last day monitored (the end of the bars otherwise).
    """
    config = config or MonitorConfig()
    hierarchy = replace(hierarchy or HierarchyConfig(), mode=config.stage)
    rules = rules or PositionRules()
    start = _utc(start)
    stop = None if end is None else pd.Timestamp(end, tz="UTC") + pd.Timedelta(1, "D")
    missing = sorted(set(bars) - set(votes))
    if missing:
        raise ConfigError(f"no votes for {missing}")
    monitor = Monitor(config, rules, hierarchy.min_trade_confidence)
    expectation: dict[str, dict[str, float]] = {}
    if config.stage == "meta_arbiter" and config.expected_edge is None:
        expectation = plan_from_history(monitor, bars, votes, hierarchy, inputs, before=start)
    lines: list[tuple[pd.Timestamp, str, str]] = []
    for symbol, frame in bars.items():
        if not (frame.index >= start).any():
            raise ConfigError(f"the bars of {symbol} end before the rollout's start {start}")
        decisions = replay(
            votes[symbol].reindex(frame.index), arbiter_inputs(frame, inputs), hierarchy
        )
        after = decisions.index >= start
        if stop is not None:
            after &= decisions.index < stop
        for time, line in journal_from_replay(
            symbol, decisions.loc[after], votes[symbol], hierarchy.models
        ):
            lines.append((time, symbol, line))
    lines.sort(key=lambda item: item[0])  # stable: a symbol's lines keep their order
    timeline = _feed_by_day(monitor, lines, bars)
    return MonitorHistory(monitor, timeline, _first_verdicts(timeline), expectation, start)


def plan_from_history(
    monitor: Monitor,
    bars: Mapping[str, pd.DataFrame],
    votes: Mapping[str, pd.DataFrame],
    hierarchy: HierarchyConfig | None = None,
    inputs: ArbiterInputConfig | None = None,
    before: str | pd.Timestamp | None = None,
) -> dict[str, dict[str, float]]:
    """Give ``monitor`` the projection of each symbol and pooled (H-MON-5) from the overrides
    of a backtest of its stage on the bars before ``before`` (all of them by default)."""
    hierarchy = replace(hierarchy or HierarchyConfig(), mode=monitor.config.stage)
    expectation: dict[str, dict[str, float]] = {}
    for symbol, frame in bars.items():
        if symbol not in votes:
            raise ConfigError(f"no votes for {symbol}")
        end = (
            frame.index[-1] + pd.Timedelta(1, "ns")
            if before is None
            else pd.Timestamp(before, tz="UTC")
            if pd.Timestamp(before).tz is None
            else pd.Timestamp(before)
        )
        decisions = replay(
            votes[symbol].reindex(frame.index), arbiter_inputs(frame, inputs), hierarchy
        )
        projection = _projection(
            frame, decisions, end, monitor.rules, hierarchy, monitor.config.outcome_bound
        )
        if projection is not None:
            expectation[symbol] = projection
    for symbol, projection in expectation.items():
        monitor.plan(
            symbol,
            projection["edge"],
            projection["spread"],
            projection["overrides_per_day"],
            projection["decisions_per_day"],
        )
    if expectation:
        pooled = _pooled_projection(expectation)
        monitor.plan(
            POOLED,
            pooled["edge"],
            pooled["spread"],
            pooled["overrides_per_day"],
            pooled["decisions_per_day"],
        )
    return expectation


def _pooled_projection(expectation: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The symbols' projections pooled: mean edge and spread weighted by their frequency."""
    weights = np.array([e["overrides_per_day"] for e in expectation.values()], dtype=float)
    weights = np.where(np.isfinite(weights), weights, 0.0)
    edges = np.array([e["edge"] for e in expectation.values()])
    spreads = np.array([e["spread"] for e in expectation.values()])
    total = weights.sum()
    decisions = float(np.nansum([e["decisions_per_day"] for e in expectation.values()]))
    if total <= 0:
        return {
            "edge": float(edges.mean()),
            "spread": float(spreads.mean()),
            "overrides_per_day": 0,
            "decisions_per_day": decisions,
        }
    return {
        "edge": float(weights @ edges / total),
        "spread": float(np.sqrt(weights @ spreads**2 / total)),
        "overrides_per_day": float(total),
        "decisions_per_day": decisions,
    }


def _feed_by_day(
    monitor: Monitor,
    lines: list[tuple[pd.Timestamp, str, str]],
    bars: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """Feed the journal a day at a time, with only the bars that had closed by the day's end."""
    rows = []
    days = pd.DatetimeIndex([time for time, _, _ in lines]).normalize()
    boundaries: np.ndarray = (
        np.flatnonzero(np.r_[True, days[1:] != days[:-1], True]) if len(lines) else np.empty(0, int)
    )
    for first, stop in itertools.pairwise(boundaries):
        day_end = days[first] + pd.Timedelta(1, "D")
        seen = {
            symbol: frame.loc[frame.index + _interval(frame, symbol) <= day_end]
            for symbol, frame in bars.items()
        }
        monitor.feed((line for _, _, line in lines[first:stop]), seen)
        for name, watch in [*monitor.watches.items(), (POOLED, monitor.pooled)]:
            rows.append({"symbol": name, "day": days[first], **watch.snapshot()})
    return pd.DataFrame(rows)


def _interval(frame: pd.DataFrame, symbol: str) -> pd.Timedelta:
    return pd.Timedelta(frame.attrs.get("interval") or infer_interval(frame.index, symbol))


def _first_verdicts(timeline: pd.DataFrame) -> pd.DataFrame:
    """Per symbol: the first day the value verdict was not "continue", and that verdict."""
    rows = []
    if timeline.empty:
        return pd.DataFrame(columns=["symbol", "day", "verdict", "outcomes"]).set_index("symbol")
    for symbol, frame in timeline.groupby("symbol", sort=False):
        decided = frame[frame["verdict"] != "continue"]
        if decided.empty:
            rows.append({"symbol": symbol, "day": pd.NaT, "verdict": "continue", "outcomes": 0})
        else:
            first = decided.iloc[0]
            rows.append(
                {
                    "symbol": symbol,
                    "day": first["day"],
                    "verdict": first["verdict"],
                    "outcomes": int(first["outcomes"]),
                }
            )
    return pd.DataFrame(rows).set_index("symbol")
