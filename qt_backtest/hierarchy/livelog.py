"""Live-log replay (H-LOG-1 to H-LOG-4): parse the live engine's journal into per-bar records,
replay the logged model votes through the hierarchy under any configuration, and diff the recomputed
decisions against the logged ones, layer by layer.

Parsing never fails on bad input: lines of other services, truncated lines and garbage are
skipped and counted. :func:`format_record` writes the same formats, which makes journals for
tests and demonstrations.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.hierarchy import reasons
from qt_backtest.hierarchy.config import HierarchyConfig
from qt_backtest.hierarchy.replay import replay

#: The configuration's defaults, read by the arguments that default to them.
_DEFAULTS = HierarchyConfig()

#: Log abbreviation -> model name.
MODEL_ABBREVIATIONS = {
    "XGB": "xgb",
    "LGBM": "lgbm",
    "NH": "nhits",
    "PT": "patchtst",
    "TFT": "tft",
    "DL": "dlinear",
}
ABBREVIATION_OF = {model: abbreviation for abbreviation, model in MODEL_ABBREVIATIONS.items()}

_ACTION = r"(BUY|SELL|HOLD)"
_NUMBER = r"(\d+(?:\.\d+)?)"
_SYMBOL = r"\s*([A-Z0-9]{2,20})"
# Spaces and optional emoji between tokens. Every pattern below is linear in the line: no two
# adjacent quantified parts can match the same characters (so a run of spaces has one way to
# be split), and free text is taken whole and trimmed in code.
_GAP = r"[^\w|@]*"

_JOURNALD = re.compile(
    r"^(?P<stamp>[A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2})\s+\S+\s+[^:\s]+:\s*"
)
_LOGGING = re.compile(
    r"^(?P<stamp>\d{4}-\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2}(?:[,.]\d+)?)\s+-\s+\S+\s+-\s+[A-Z]+\s+-\s+"
)
_ENSEMBLE = re.compile(
    r"\[?ENSEMBLE\]?"
    + _SYMBOL
    + r":\s*"
    + _ACTION
    + r"\s+"
    + _NUMBER
    + r"(%?)\s*\|\s*(?P<votes>.*)$"
)
# a name starts where a run of capitals starts: a long run is tried once, not once a letter
_VOTE = re.compile(r"(?<![A-Z])([A-Z]+):" + _ACTION + r"/" + _NUMBER)
_META_DEFER = re.compile(
    r"\[Meta-V2-Policy\]"
    + _SYMBOL
    + _GAP
    + r"DEFER:\s*using base ensemble\s+"
    + _ACTION
    + "@"
    + _NUMBER
    + r"\s*\|\s*Reason:\s*(\w+)\s*$"
)
_META_ESCALATE = re.compile(
    r"\[Meta-V2-Policy\]" + _SYMBOL + _GAP + r"ESCALATE:\s*(\w+)\W*"
    r"Calling Arbiter for market understanding\s*$"
)
_INVOKED = re.compile(r"\[Arbiter\]" + _SYMBOL + _GAP + r"INVOKED \(escalated from Meta-V2\)\s*$")
_OVERRIDE = re.compile(
    r"\[Arbiter\]"
    + _SYMBOL
    + _GAP
    + r"OVERRIDE:\s*"
    + _ACTION
    + "@"
    + _NUMBER
    + r"\W+"
    + _ACTION
    + "@"
    + _NUMBER
    + r"\s*\|\s*Reason:\s*+(?P<reason>.+)$"
)
_ARBITER_DEFER = re.compile(
    r"\[Arbiter\]"
    + _SYMBOL
    + _GAP
    + r"DEFER:\s*keeping base ensemble\s+"
    + _ACTION
    + "@"
    + _NUMBER
    + r"\s*\|\s*Arbiter:\s*"
    + _ACTION
    + "@"
    + _NUMBER
    + r"\s*\|\s*Reason:\s*+(?P<reason>.+)$"
)
_NOT_AVAILABLE = re.compile(
    r"\[Arbiter\]" + _SYMBOL + r"\s+NOT AVAILABLE \(disabled or not loaded\) - using base "
    r"ensemble\s+" + _ACTION + "@" + _NUMBER + r"\s*$"
)
_LOW_CONFIDENCE = re.compile(r"^low_confidence \(\d+\.\d{3} < \d+\.\d+\)$")
_SIGNAL_REASON = re.compile(
    r"^(buy_signal: (oversold_rsi|bullish_macd|strong_momentum|technical_alignment)"
    r"(, (oversold_rsi|bullish_macd|strong_momentum))*"
    r"|sell_signal: (overbought_rsi|bearish_macd|negative_momentum|technical_alignment)"
    r"(, (overbought_rsi|bearish_macd|negative_momentum))*"
    r"|neutral_market: score=-?\d+\.\d{3} in neutral zone"
    r"|analysis_error: .+)$"
)


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


@dataclass
class ParsedLog:
    """Per-bar records of a journal and what could not be read.

    Attributes
    ----------
    records : DataFrame
        One row per decision cycle and symbol: ``symbol``, ``time``, per model
        ``<model>_action`` / ``<model>_confidence`` (from the ENSEMBLE line: active models only),
        ``final_action``, ``final_confidence``, ``final_decimals`` (precision logged),
        ``meta_decision``, ``meta_reason``, ``base_action``, ``base_confidence``,
        ``arbiter_outcome`` (override, defer_low_confidence, defer_hold, not_available),
        ``arbiter_action``, ``arbiter_confidence``, ``arbiter_reason``.
    skipped : int
        Lines that were not one of the engine's messages (other services, garbage, truncated).
    line_kinds : Counter
        Lines read per message kind.
    """

    records: pd.DataFrame
    skipped: int
    line_kinds: Counter = field(default_factory=Counter)
    skipped_examples: list[str] = field(default_factory=list)


def _timestamp(line: str, year: int | None) -> tuple[pd.Timestamp | None, str]:
    """Strip the journald and logging prefixes; the logging one carries the full date."""
    stamp = None
    match = _JOURNALD.match(line)
    if match:
        line = line[match.end() :]
        if year is not None:
            stamp = pd.Timestamp(datetime.strptime(f"{year} {match['stamp']}", "%Y %b %d %H:%M:%S"))
    match = _LOGGING.match(line)
    if match:
        line = line[match.end() :]
        stamp = pd.Timestamp(match["stamp"].replace(",", "."))
    if stamp is not None:
        stamp = stamp.tz_localize("UTC")
    return stamp, line


def _parse_votes(text: str) -> dict[str, tuple[str, float]] | None:
    votes: dict[str, tuple[str, float]] = {}
    for abbreviation, action, confidence in _VOTE.findall(text):
        model = MODEL_ABBREVIATIONS.get(abbreviation)
        if model is None:
            return None
        votes[model] = (action, float(confidence))
    # anything left besides the votes means the line was cut or mangled
    if _VOTE.sub("", text).strip():
        return None
    return votes


def _message(text: str) -> tuple[str, str, dict[str, Any]] | None:
    """(kind, symbol, fields) of one engine message, or None."""
    if match := _ENSEMBLE.search(text):
        votes = _parse_votes(match["votes"])
        if votes is None:
            return None
        symbol, action, number, percent = match.group(1, 2, 3, 4)
        final_confidence = float(number) / 100 if percent else float(number)
        decimals = _decimals(number) + (2 if percent else 0)
        return (
            "ensemble",
            symbol,
            {
                "final_action": action,
                "final_confidence": final_confidence,
                "final_decimals": decimals,
                "votes": votes,
            },
        )
    if match := _META_DEFER.search(text):
        symbol, action, confidence, reason = match.groups()
        if reason not in reasons.META_REASON_CODES or reason in reasons.ESCALATING_REASONS:
            return None
        return (
            "meta_defer",
            symbol,
            {
                "meta_decision": "DEFER",
                "meta_reason": reason,
                "base_action": action,
                "base_confidence": float(confidence),
            },
        )
    if match := _META_ESCALATE.search(text):
        symbol, reason = match.groups()
        if reason not in reasons.ESCALATING_REASONS:
            return None
        return "meta_escalate", symbol, {"meta_decision": "ESCALATE", "meta_reason": reason}
    if match := _INVOKED.search(text):
        return "arbiter_invoked", match.group(1), {}
    if match := _OVERRIDE.search(text):
        symbol, base, base_confidence, action, confidence = match.group(1, 2, 3, 4, 5)
        reason = match["reason"].rstrip()
        if not _SIGNAL_REASON.match(reason):
            return None
        return (
            "arbiter_override",
            symbol,
            {
                "base_action": base,
                "base_confidence": float(base_confidence),
                "arbiter_outcome": "override",
                "arbiter_action": action,
                "arbiter_confidence": float(confidence),
                "arbiter_reason": reason,
            },
        )
    if match := _ARBITER_DEFER.search(text):
        symbol, base, base_confidence, action, confidence = match.group(1, 2, 3, 4, 5)
        reason = match["reason"].rstrip()
        if _LOW_CONFIDENCE.match(reason):
            outcome = "defer_low_confidence"
        elif _SIGNAL_REASON.match(reason):
            outcome = "defer_hold"
        else:
            return None
        return (
            "arbiter_defer",
            symbol,
            {
                "base_action": base,
                "base_confidence": float(base_confidence),
                "arbiter_outcome": outcome,
                "arbiter_action": action,
                "arbiter_confidence": float(confidence),
                "arbiter_reason": reason,
            },
        )
    if match := _NOT_AVAILABLE.search(text):
        symbol, base, base_confidence = match.groups()
        return (
            "arbiter_not_available",
            symbol,
            {
                "base_action": base,
                "base_confidence": float(base_confidence),
                "arbiter_outcome": "not_available",
            },
        )
    return None


def _plausible(fields: dict[str, Any]) -> bool:
    """Whether every confidence of a parsed message is a probability."""
    confidences = [value for key, value in fields.items() if key.endswith("confidence")]
    confidences += [confidence for _, confidence in fields.get("votes", {}).values()]
    return all(0.0 <= confidence <= 1.0 for confidence in confidences)


def _lines(source: str | Path | Iterable[str]) -> Iterable[str]:
    if isinstance(source, str | Path) and Path(source).exists():
        with open(source, encoding="utf-8", errors="replace") as handle:
            yield from handle
    elif isinstance(source, str):
        yield from source.splitlines()
    elif isinstance(source, Path):
        raise FileNotFoundError(f"no live log at {source}")
    else:
        yield from source


def parse_live_log(source: str | Path | Iterable[str], year: int | None = None) -> ParsedLog:
    """Parse a journal (a file path, its text, or an iterable of lines) into per-bar records.

    A record opens with a symbol's Meta line (or its ENSEMBLE line when Meta did not run),
    collects the Arbiter's lines, and closes with the ENSEMBLE line written after the hierarchy.
    The engine writes that line only when the final action is not HOLD or its confidence is
    above 0.50, so a record can close without it (no votes: it cannot be replayed). Symbols may
    interleave. ``year`` dates lines that only have journald's prefix (no year in it).
    """
    kinds: Counter = Counter()
    skipped = 0
    examples: list[str] = []
    open_records: dict[str, dict[str, Any]] = {}
    records: list[dict[str, Any]] = []

    def close(symbol: str) -> None:
        record = open_records.pop(symbol, None)
        if record is not None:
            records.append(record)

    for raw in _lines(source):
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        try:
            stamp, text = _timestamp(line, year)
        except ValueError:  # an impossible date (Feb 30, month 13): the line is garbled
            parsed = None
        else:
            parsed = _message(text)
            if parsed is not None and not _plausible(parsed[2]):
                parsed = None
        if parsed is None:
            skipped += 1
            if len(examples) < 20:
                examples.append(line)
            continue
        kind, symbol, fields_ = parsed
        kinds[kind] += 1
        record = open_records.get(symbol)
        starts_cycle = kind in ("meta_defer", "meta_escalate")
        if record is not None and starts_cycle and "meta_decision" in record:
            close(symbol)  # the previous cycle ended without an ENSEMBLE line
            record = None
        if record is None:
            record = {"symbol": symbol, "time": stamp}
            open_records[symbol] = record
        if kind == "ensemble":
            for model, (action, confidence) in fields_.pop("votes").items():
                record[f"{model}_action"] = action
                record[f"{model}_confidence"] = confidence
            record.update(fields_)
            close(symbol)
        else:
            record.update(fields_)
            if kind == "arbiter_invoked":
                record["arbiter_invoked"] = True
    for symbol in list(open_records):
        close(symbol)
    frame = pd.DataFrame(records)
    for column in (
        "symbol",
        "time",
        "final_action",
        "final_confidence",
        "final_decimals",
        "meta_decision",
        "meta_reason",
        "base_action",
        "base_confidence",
        "arbiter_outcome",
        "arbiter_action",
        "arbiter_confidence",
    ):
        if column not in frame:
            frame[column] = np.nan
    return ParsedLog(frame, skipped, kinds, examples)


# ---------------------------------------------------------------------------------------------
# Writing the formats
# ---------------------------------------------------------------------------------------------


def _prefix(time: pd.Timestamp, python_prefix: bool, host: str = "vps", pid: int = 812) -> str:
    journald = f"{time:%b %d %H:%M:%S} {host} python[{pid}]: "
    if not python_prefix:
        return journald
    millis = time.microsecond // 1000
    return f"{journald}{time:%Y-%m-%d %H:%M:%S},{millis:03d} - ai_engine.ensemble_manager - INFO - "


def format_record(
    symbol: str,
    time: pd.Timestamp,
    record: Mapping[str, Any],
    *,
    emoji: bool = True,
    python_prefix: bool = True,
    old_ensemble_form: bool = False,
    arbiter_threshold: float = _DEFAULTS.arbiter.arbiter_threshold,
    space_after_tag: bool = True,
) -> list[str]:
    """The journal lines the live engine writes for one decision (a reference-engine record).

    ``record`` is what :meth:`HierarchyEngine.step` returns; it must also hold ``"votes"``:
    ``{model: (action, confidence)}`` of the active models.
    """
    prefix = _prefix(time, python_prefix)
    space = " " if space_after_tag else ""
    base, meta, arbiter = record["base"], record["meta"], record["arbiter"]
    lines = []
    if meta is not None:
        if meta["decision"] == "DEFER":
            mark = ""
            lines.append(
                f"{prefix}[Meta-V2-Policy]{space}{symbol} {mark}DEFER: using base ensemble "
                f"{base['action']}@{base['confidence']:.3f} | Reason: {meta['reason']}"
            )
        else:
            mark = "⬆️ " if emoji else ""
            lines.append(
                f"{prefix}[Meta-V2-Policy]{space}{symbol} {mark}ESCALATE: {meta['reason']} → "
                "Calling Arbiter for market understanding"
            )
            if arbiter is None:
                lines.append(
                    f"{prefix}[Arbiter]{space}{symbol} NOT AVAILABLE (disabled or not loaded) - "
                    f"using base ensemble {base['action']}@{base['confidence']:.3f}"
                )
            else:
                scale = "⚖️  " if emoji else ""
                lines.append(
                    f"{prefix}[Arbiter]{space}{symbol} {scale}INVOKED (escalated from Meta-V2)"
                )
                if record["gate"] == "override":
                    mark = "✅ " if emoji else ""
                    lines.append(
                        f"{prefix}[Arbiter]{space}{symbol} {mark}OVERRIDE: {base['action']}@"
                        f"{base['confidence']:.3f} → {arbiter['action']}@"
                        f"{arbiter['confidence']:.3f} | Reason: {arbiter['reason']}"
                    )
                else:
                    if record["gate"] == "defer_low_confidence":
                        confidence = arbiter["confidence"]
                        reason = f"low_confidence ({confidence:.3f} < {arbiter_threshold:.2f})"
                    else:
                        reason = arbiter["reason"]
                    mark = "⏸️  " if emoji else ""
                    lines.append(
                        f"{prefix}[Arbiter]{space}{symbol} {mark}DEFER: keeping base ensemble "
                        f"{base['action']}@{base['confidence']:.3f} | Arbiter: "
                        f"{arbiter['action']}@{arbiter['confidence']:.3f} | Reason: {reason}"
                    )
    final = record["final"]
    decided = (
        final["action"]
        if not final["risk_veto"]
        else (record["arbiter"]["action"] if final["source"] == "arbiter" else base["action"])
    )
    if decided != "HOLD" or final["confidence"] > 0.50:
        votes = " ".join(
            f"{ABBREVIATION_OF[model]}:{action}/{confidence:.2f}"
            for model, (action, confidence) in record["votes"].items()
        )
        if old_ensemble_form:
            lines.append(
                f"{prefix}[ENSEMBLE]{space}{symbol}: {decided} {final['confidence']:.2f} | {votes}"
            )
        else:
            chart = "📊 " if emoji else "[CHART] "
            lines.append(
                f"{prefix}{chart}ENSEMBLE{space}{symbol}: {decided} "
                f"{final['confidence'] * 100:.2f}% | {votes}"
            )
    return lines


# ---------------------------------------------------------------------------------------------
# Replay and diff
# ---------------------------------------------------------------------------------------------


@dataclass
class LogDiff:
    """Recomputed vs logged decisions.

    Attributes
    ----------
    summary : DataFrame
        Per layer (base, meta, arbiter, final): records compared, matching, mismatching.
    mismatches : DataFrame
        One row per record and layer that differs: symbol, time, layer, logged, recomputed.
    recomputed : DataFrame
        The replay of the replayable records (as :func:`~qt_backtest.hierarchy.replay`).
    unreplayable : int
        Records without logged votes (no ENSEMBLE line), which cannot be replayed.
    """

    summary: pd.DataFrame
    mismatches: pd.DataFrame
    recomputed: pd.DataFrame
    unreplayable: int


def _close(logged: float, recomputed: float, decimals: int) -> bool:
    return abs(logged - recomputed) <= 0.5 * 10.0 ** (-decimals) + 1e-9


def replay_log(
    parsed: ParsedLog,
    config: HierarchyConfig | None = None,
    indicators: pd.DataFrame | None = None,
    uncertainty_model: Any = None,
) -> LogDiff:
    """Replay the logged votes under ``config`` and diff every layer against the log.

    Parameters
    ----------
    parsed : ParsedLog
        From :func:`parse_live_log`.
    config : HierarchyConfig, optional
        The configuration to recompute with (the live defaults otherwise).
    indicators : DataFrame, optional
        Arbiter inputs: indexed by ``(symbol, time)`` (aligned to the records; a record
        without a row reads neutral inputs), or one row per replayable record in record order.
        Neutral inputs without it.

    Notes
    -----
    Confidences are compared to the precision they were logged with. The ENSEMBLE line is
    written before the risk governor, so the final decision compared is the one before it.
    """
    config = config or HierarchyConfig()
    records = parsed.records
    vote_columns = [
        c
        for c in records.columns
        if c.endswith(("_action", "_confidence")) and c.split("_")[0] in config.models
    ]
    replayable = records["final_action"].notna().to_numpy()
    rows = records[replayable].reset_index(drop=True)
    predictions = rows[[c for c in vote_columns if c in rows]].copy()
    for model in config.models:
        for part, empty in (("action", None), ("confidence", np.nan)):
            if f"{model}_{part}" not in predictions:
                predictions[f"{model}_{part}"] = empty
    if indicators is not None:
        if isinstance(indicators.index, pd.MultiIndex):
            keys = pd.MultiIndex.from_arrays([rows["symbol"], rows["time"]])
            indicators = indicators.reindex(keys)
        elif len(indicators) != len(rows):
            raise ValueError(
                f"indicators have {len(indicators)} rows for {len(rows)} replayable records"
            )
        indicators = indicators.reset_index(drop=True)
    recomputed = replay(predictions, indicators, config, uncertainty_model=uncertainty_model)
    pre_governor = np.where(
        recomputed["source"] == "arbiter",
        recomputed["arbiter_action"].astype(object),
        recomputed["base_action"].astype(object),
    )

    mismatches = []
    compared: Counter[str] = Counter()
    matched: Counter[str] = Counter()

    def check(i: int, layer: str, same: bool, logged: Any, computed: Any) -> None:
        compared[layer] += 1
        if same:
            matched[layer] += 1
        else:
            mismatches.append(
                {
                    "symbol": rows.at[i, "symbol"],
                    "time": rows.at[i, "time"],
                    "layer": layer,
                    "logged": logged,
                    "recomputed": computed,
                }
            )

    for i in range(len(rows)):
        row, new = rows.iloc[i], recomputed.iloc[i]
        if pd.notna(row.get("base_action")):
            same = row["base_action"] == new["base_action"] and _close(
                row["base_confidence"], new["base_confidence"], 3
            )
            check(
                i,
                "base",
                same,
                f"{row['base_action']}@{row['base_confidence']:.3f}",
                f"{new['base_action']}@{new['base_confidence']:.3f}",
            )
        logged_meta = row.get("meta_decision")
        logged_meta = None if pd.isna(logged_meta) else f"{logged_meta} {row['meta_reason']}"
        new_meta = (
            None
            if pd.isna(new["meta_decision"])
            else (f"{new['meta_decision']} {new['meta_reason']}")
        )
        check(i, "meta", logged_meta == new_meta, logged_meta, new_meta)
        if logged_meta is not None and logged_meta.startswith("ESCALATE"):
            logged_outcome = row.get("arbiter_outcome")
            new_outcome = "not_available" if pd.isna(new["gate"]) else new["gate"]
            same = logged_outcome == new_outcome
            if same and new_outcome != "not_available":
                same = row["arbiter_action"] == new["arbiter_action"] and _close(
                    row["arbiter_confidence"], new["arbiter_confidence"], 3
                )
            check(i, "arbiter", same, logged_outcome, new_outcome)
        decimals = int(row["final_decimals"])
        same = row["final_action"] == pre_governor[i] and _close(
            row["final_confidence"], new["final_confidence"], decimals
        )
        check(
            i,
            "final",
            same,
            f"{row['final_action']} {row['final_confidence']}",
            f"{pre_governor[i]} {new['final_confidence']:.{decimals}f}",
        )

    summary = pd.DataFrame(
        [
            {
                "layer": layer,
                "compared": compared[layer],
                "matching": matched[layer],
                "mismatching": compared[layer] - matched[layer],
            }
            for layer in ("base", "meta", "arbiter", "final")
        ]
    ).set_index("layer")
    columns = ["symbol", "time", "layer", "logged", "recomputed"]
    return LogDiff(
        summary, pd.DataFrame(mismatches, columns=columns), recomputed, int((~replayable).sum())
    )
