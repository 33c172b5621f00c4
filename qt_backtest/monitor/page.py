"""The monitor's words and page: one sentence per symbol, the status table, the value bounds over
time and each rate's interval against its band (H-MON-6)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from qt_backtest.atomic import atomic_write_text
from qt_backtest.monitor.monitor import POOLED, Monitor
from qt_backtest.report.build import render_page
from qt_backtest.report.figures import rate_intervals, sequence_bounds
from qt_backtest.report.format import escape, integer, percent, signed_percent, table

STAGE_NAMES = {"meta": "Meta stage", "meta_arbiter": "Arbiter stage"}


def _edge(value: float) -> str:
    return signed_percent(value, 2) if math.isfinite(value) else "n/a"


def _about(count: float) -> str:
    """A projected count, rounded to two significant digits."""
    if not math.isfinite(count):
        return "never at the current rate"
    if count == 0:
        return "0"
    digits = max(0, len(str(int(count))) - 2)
    return f"about {integer(round(count, -digits))}"


def value_sentence(monitor: Monitor, symbol: str, row: pd.Series) -> str:
    """ "Arbiter stage, BTCUSDT, day 12: 41 overrides, mean edge +0.08 % [-0.21 %, +0.37 %]:
    continue; a verdict is expected after about 300 overrides at the backtest's effect." """
    name = "all symbols" if symbol == POOLED else symbol
    head = f"{STAGE_NAMES[monitor.config.stage]}, {name}, day {int(row['day'])}"
    overrides = int(row["overrides_settled"])
    if overrides == 0:
        text = f"{head}: no override settled yet: continue"
    else:
        text = (
            f"{head}: {integer(overrides)} override{'s' if overrides != 1 else ''}, mean edge "
            f"{_edge(row['edge'])} [{_edge(row['edge_low'])}, {_edge(row['edge_high'])}]: "
            f"{row['verdict']}"
        )
    expectation = monitor.expectation(symbol)
    if row["verdict"] == "continue" and expectation is not None:
        needed = expectation["overrides"]
        if math.isfinite(needed):
            text += (
                f"; a verdict is expected after {_about(needed)} overrides at the backtest's "
                f"effect ({_edge(expectation['edge'])} per override)"
            )
            text += _span(expectation)
        else:
            text += "; at the backtest's effect no verdict is expected"
    return text + "."


def _span(expectation: dict[str, float]) -> str:
    """ ", about N decisions and D days (Y years)" of a projection, as far as it is known."""
    decisions = expectation.get("decisions", math.nan)
    days = expectation.get("days", math.nan)
    text = f", {_about(decisions)} decisions" if math.isfinite(decisions) else ""
    if math.isfinite(days):
        text += f"{' and' if text else ','} {_about(days)} days"
        if days >= 730:
            text += f" ({_about(days / 365.25)} years)"
    return text


def plan_sentence(monitor: Monitor, symbol: str) -> str:
    """Before the stage starts: what a verdict is expected to take (H-MON-5)."""
    expectation = monitor.expectation(symbol)
    name = "all symbols" if symbol == POOLED else symbol
    if expectation is None:
        return f"{name}: no projection (give expected_edge and expected_spread, or votes)."
    if not math.isfinite(expectation["overrides"]):
        return (
            f"{name}: at the backtest's effect ({_edge(expectation['edge'])} per override) no "
            "verdict is expected."
        )
    return (
        f"{name}: at the backtest's effect ({_edge(expectation['edge'])} per override, spread "
        f"{percent(expectation['spread'], 2)}) a verdict is expected after "
        f"{_about(expectation['overrides'])} overrides{_span(expectation)}."
    )


def rate_sentence(name: str, rates: pd.DataFrame) -> str:
    """Each rate's verdict in one sentence."""
    parts = []
    for rate, row in rates.iterrows():
        part = (
            f"{str(rate).replace('_', ' ')} {percent(row['estimate'])} "
            f"[{percent(row['low'])}, {percent(row['high'])}] {row['verdict']}"
        )
        if row["verdict"] == "undecided":
            part += f" ({_about(row['further_decisions'])} more decisions)"
        parts.append(part)
    return f"{'All symbols' if name == POOLED else name}: " + "; ".join(parts) + "."


def sentences(monitor: Monitor) -> list[str]:
    """One sentence per symbol and pooled (value at the Arbiter stage, rates at the Meta one)."""
    status = monitor.status()
    if monitor.config.stage == "meta_arbiter":
        return [value_sentence(monitor, str(s), row) for s, row in status.iterrows()]
    tables = monitor.rate_tables()
    return [rate_sentence(name, rates) for name, rates in tables.items()]


def render_monitor_page(
    monitor: Monitor, timeline: pd.DataFrame | None = None, title: str = "Rollout monitor"
) -> str:
    """The page as HTML text. ``timeline`` (symbol, day, edge, edge_low, edge_high) defaults to
    the daily rows the monitor kept."""
    if timeline is None:
        timeline = monitor_timeline(monitor)
    confidence = monitor.config.confidence
    blocks: list[str] = ["<ul>" + "".join(f"<li>{escape(s)}</li>" for s in sentences(monitor))]
    blocks[0] += "</ul>"
    status = monitor.status()
    edge = {name: _edge for name in ("edge", "edge_low", "edge_high")}
    blocks.append(table(status, edge, table_id="monitor-status"))
    sections: list[dict[str, Any]] = [{"id": "status", "title": "Status", "blocks": blocks}]
    if monitor.config.stage == "meta_arbiter" and not timeline.empty:
        svg = sequence_bounds(
            timeline, "Mean paired outcome of overrides", monitor.config.tolerance, confidence
        )
        sections.append(
            {
                "id": "value",
                "title": "Value of the stage",
                "blocks": [
                    "<p>Each settled override's outcome: the stage's equity over the "
                    "ensemble-only counterfactual's, minus one, after costs, clipped at "
                    f"&plusmn;{escape(percent(monitor.config.outcome_bound, 2))}. The interval "
                    "holds at every moment at once, so it may be looked at after every decision: "
                    "promote once it is above the green line, roll back once below the red one."
                    "</p>",
                    f"<figure>{svg}</figure>",
                ],
            }
        )
    rate_blocks = []
    for name, rates in monitor.rate_tables().items():
        label = "all symbols" if name == POOLED else name
        rate_blocks.append(f"<h3>{escape(label)}</h3>")
        rate_blocks.append(
            f"<figure>{rate_intervals(rates, f'Rates, {label}', confidence)}</figure>"
        )
        shares = ("estimate", "low", "high", "target_low", "target_high")
        formats = {name: (lambda v: percent(v, 1)) for name in shares}
        formats["further_decisions"] = _about
        rate_blocks.append(table(rates, formats))
    sections.append({"id": "rates", "title": "Rates against their bands", "blocks": rate_blocks})
    return render_page(title, sections, symbols=[s for s in monitor.watches])


def monitor_timeline(monitor: Monitor) -> pd.DataFrame:
    """The daily rows the monitor keeps, as one frame (symbol, day, ...)."""
    rows = []
    for name, watch in [*monitor.watches.items(), (POOLED, monitor.pooled)]:
        for row in [*watch.timeline, watch.day_row()]:
            if row["time"] is None:
                continue
            rows.append({"symbol": name, "day": pd.Timestamp(row["time"]).normalize(), **row})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.drop_duplicates(["symbol", "day"], keep="last")


def write_monitor_page(
    monitor: Monitor,
    path: str | Path,
    timeline: pd.DataFrame | None = None,
    title: str = "Rollout monitor",
) -> Path:
    """Render the page and write it atomically; returns the path."""
    return atomic_write_text(Path(path), render_monitor_page(monitor, timeline, title))
