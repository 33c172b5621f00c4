"""Live-log replay (H-LOG-1 to H-LOG-5): parse the live engine's journal into per-bar records,
replay the logged model votes through the hierarchy under any configuration, and diff the recomputed
decisions against the logged ones, layer by layer.

Parsing never fails on bad input: lines of other services, truncated lines and garbage are
skipped and counted. :class:`JournalReader` reads a journal in pieces, its state carried over
(and saved as JSON) between them; :func:`parse_live_log` is one pass of it. :func:`format_record`
writes the same formats, which makes journals for tests and demonstrations.
"""

from __future__ import annotations

import calendar
import gc
import numbers
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.errors import JournalError
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
#: Model -> the record's fields of its vote.
_VOTE_FIELDS = {model: (f"{model}_action", f"{model}_confidence") for model in ABBREVIATION_OF}

_ACTION = r"(BUY|SELL|HOLD)"
_NUMBER = r"(\d+(?:\.\d+)?)"
_SYMBOL = r"\s*([A-Z0-9]{2,20})"
# Spaces and optional emoji between tokens. Every pattern below is linear in the line: no two
# adjacent quantified parts can match the same characters (so a run of spaces has one way to
# be split), and free text is taken whole and trimmed in code.
_GAP = r"[^\w|@]*"

_JOURNALD_PREFIX = re.compile(
    r"(?P<stamp>[A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2})\s+\S+\s+[^:\s]+:\s*"
)
_LOGGING_TAIL = r"\s+-\s+\S+\s+-\s+[A-Z]+\s+-\s+"
_LOGGING_PREFIX = re.compile(
    r"(?P<stamp>\d{4}-\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2}(?:[,.]\d+)?)" + _LOGGING_TAIL
)
# The logging prefix with its stamp in the plain form: ASCII digits, one space, at most six
# decimals. Where it matches, the general pattern matches the same text (a greedy run of
# digits or spaces stops at the same place in both).
_PLAIN_LOGGING_PREFIX = re.compile(
    r"(?P<stamp>[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:[,.][0-9]{1,6})?)"
    + _LOGGING_TAIL
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
_WHOLE_VOTE = re.compile(r"([A-Z]+):" + _ACTION + r"/" + _NUMBER).fullmatch
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


#: Entries a cache of parsed text keeps; it is emptied when it grows past this.
_CACHE_SIZE = 4096
_UNSEEN = object()
#: Vote token -> what :func:`_read_vote_token` made of it.
_VOTE_TOKENS: dict[str, Any] = {}
_NOT_A_VOTE = object()
_REJECTED = object()


#: journald's month abbreviations (those of the C locale, which ``%b`` reads).
_MONTHS = {name: k for k, name in enumerate(calendar.month_abbr) if name}


def _journald_time(stamp: str, year: int) -> pd.Timestamp:
    """The time of a journald stamp (``Feb 06 12:00:03``) in ``year``, UTC; ValueError when
    the date is impossible (Feb 30, 25:00).

    An ASCII stamp is read field by field, which accepts and refuses exactly what
    ``strptime("%Y %b %d %H:%M:%S")`` does on text of this shape and is ten times faster; any
    other text goes to ``strptime``.
    """
    if stamp.isascii():
        month, day, clock = stamp.split()
        hour, minute, second = clock.split(":")
        if month not in _MONTHS:
            raise ValueError(f"unknown month in {stamp!r}")
        moment = datetime(year, _MONTHS[month], int(day), int(hour), int(minute), int(second))
    else:
        moment = datetime.strptime(f"{year} {stamp}", "%Y %b %d %H:%M:%S")
    return pd.Timestamp(moment).tz_localize("UTC")


def _logging_time(stamp: str) -> pd.Timestamp:
    """The time of a Python logging stamp (``2026-02-06 12:00:03,114``), UTC; ValueError when
    the date is impossible."""
    return pd.Timestamp(stamp.replace(",", ".")).tz_localize("UTC")


def _plain_logging_time(stamp: str) -> pd.Timestamp:
    """:func:`_logging_time` of a stamp in the plain form (``YYYY-MM-DD HH:MM:SS`` with one
    space, ASCII digits, at most six decimals): naive text, so giving the time zone to the
    constructor localises it as ``tz_localize`` does, in half the time."""
    return pd.Timestamp(stamp.replace(",", "."), tz="UTC")


class _PrefixTimes:
    """Strips the line prefixes (H-LOG-1) and reads their times, with caches.

    Parsing a date costs microseconds while the rest of a line costs about as much, so the
    times are cached: a journald stamp by its text (one per second of the journal), a logging
    stamp by its whole seconds, whose validity decides the validity of the stamp with up to six
    decimals. The value of a logging stamp is computed only when a record opens with it.
    """

    __slots__ = ("_journald", "_last_prefix", "_last_stamp", "_seconds", "year")

    def __init__(self, year: int | None) -> None:
        self.year = year
        self._journald: dict[str, pd.Timestamp | None] = {}
        self._seconds: dict[str, bool] = {}
        # the last valid journald prefix read, and its time
        self._last_prefix: str | None = None
        self._last_stamp: pd.Timestamp | None = None

    def split(self, line: str) -> tuple[pd.Timestamp | str | None, str] | None:
        """(time, message) of a line, or None when its date is impossible (Feb 30, month 13:
        the line is garbled). The time is the text of a logging stamp in the plain form while
        its value is not needed (it is valid: :func:`_plain_logging_time` reads it)."""
        prefix = self._last_prefix
        if (
            prefix is not None
            and line.startswith(prefix)
            and not line[len(prefix) : len(prefix) + 1].isspace()
        ):
            # Lines of one second share their journald prefix. Each part of its pattern takes
            # a whole token (a run of spaces, of non-spaces, the text before a colon), so a
            # line that starts with a prefix it matched, followed by no space, matches exactly
            # that prefix.
            start, stamp = len(prefix), self._last_stamp
        else:
            match = _JOURNALD_PREFIX.match(line)
            start, stamp = 0, None
            if match is not None:
                start = match.end()
                if self.year is not None:
                    stamp = self._journald_stamp(match["stamp"], self.year)
                    if stamp is None:
                        return None
                self._last_prefix, self._last_stamp = line[:start], stamp
        match = _PLAIN_LOGGING_PREFIX.match(line, start)
        if match is not None:
            logging = match["stamp"]
            valid = self._seconds.get(logging[:19])
            if valid is None:
                valid = self._read_seconds(logging[:19])
            return (logging, line[match.end() :]) if valid else None
        match = _LOGGING_PREFIX.match(line, start)
        if match is not None:
            try:
                stamp = _logging_time(match["stamp"])
            except ValueError:
                return None
            start = match.end()
        return stamp, line[start:]

    def _journald_stamp(self, text: str, year: int) -> pd.Timestamp | None:
        stamp = self._journald.get(text, _UNSEEN)
        if stamp is _UNSEEN:
            if len(self._journald) >= _CACHE_SIZE:
                self._journald.clear()
            try:
                stamp = _journald_time(text, year)
            except ValueError:
                stamp = None
            self._journald[text] = stamp
        return stamp

    def _read_seconds(self, text: str) -> bool:
        """Whether the plain stamp ``YYYY-MM-DD HH:MM:SS`` is a possible date (remembered)."""
        if len(self._seconds) >= _CACHE_SIZE:
            self._seconds.clear()
        try:
            _logging_time(text)
        except ValueError:
            valid = False
        else:
            valid = True
        self._seconds[text] = valid
        return valid


def _timestamp(line: str, year: int | None) -> tuple[pd.Timestamp | None, str]:
    """Strip the journald and logging prefixes; the logging one carries the full date.
    Raises ValueError for an impossible date."""
    split = _PrefixTimes(year).split(line)
    if split is None:
        raise ValueError(f"impossible date in {line!r}")
    stamp, text = split
    if isinstance(stamp, str):
        stamp = _plain_logging_time(stamp)
    return stamp, text


def _read_vote_token(token: str) -> dict[str, Any] | object:
    """The record fields of a token that is one whole vote (``{"<model>_action": action,
    "<model>_confidence": confidence}``), ``_REJECTED`` when that vote names an unknown model
    or a confidence above 1, ``_NOT_A_VOTE`` when the token is not a whole vote. Remembered:
    a journal's vote tokens are few (a model, an action, a confidence with two decimals)."""
    match = _WHOLE_VOTE(token)
    value: dict[str, Any] | object
    if match is None:
        value = _NOT_A_VOTE
    else:
        abbreviation, action, number = match.groups()
        model = MODEL_ABBREVIATIONS.get(abbreviation)
        confidence = float(number)
        if model is None or not confidence <= 1.0:
            value = _REJECTED
        else:
            action_field, confidence_field = _VOTE_FIELDS[model]
            value = {action_field: action, confidence_field: confidence}
    if len(_VOTE_TOKENS) >= _CACHE_SIZE:
        _VOTE_TOKENS.clear()
    _VOTE_TOKENS[token] = value
    return value


def _vote_fields(text: str) -> dict[str, Any] | None:
    """The record fields of a vote list (``<model>_action``, ``<model>_confidence`` in the
    order of the votes; a model voting twice keeps its first place and its last vote), or
    None when it names an unknown model, holds anything else, or a confidence above 1."""
    # Fast path: every space-separated token is one whole vote. Those tokens are exactly what
    # the general reading below finds (a vote is greedy and cannot contain a space), with only
    # space left over; any other text takes the general reading. A rejected whole vote
    # rejects the line either way.
    votes = [_VOTE_TOKENS.get(token) or _read_vote_token(token) for token in text.split()]
    if _REJECTED in votes:
        return None
    fields: dict[str, Any] = {}
    if _NOT_A_VOTE not in votes:
        for vote in votes:
            fields.update(vote)  # type: ignore[arg-type]  # a dict: checked above
        return fields
    for abbreviation, action, number in _VOTE.findall(text):
        model = MODEL_ABBREVIATIONS.get(abbreviation)
        confidence = float(number)
        if model is None or not confidence <= 1.0:
            return None
        action_field, confidence_field = _VOTE_FIELDS[model]
        fields[action_field] = action
        fields[confidence_field] = confidence
    # anything left besides the votes means the line was cut or mangled
    if _VOTE.sub("", text).strip():
        return None
    return fields


def _ensemble_message(match: re.Match) -> tuple[str, str, dict[str, Any]] | None:
    fields = _vote_fields(match["votes"])
    if fields is None:
        return None
    symbol, action, number, percent = match.group(1, 2, 3, 4)
    final_confidence = float(number) / 100 if percent else float(number)
    if not final_confidence <= 1.0:
        return None
    fields["final_action"] = action
    fields["final_confidence"] = final_confidence
    fields["final_decimals"] = _decimals(number) + (2 if percent else 0)
    return "ensemble", symbol, fields


def _meta_defer(match: re.Match) -> tuple[str, str, dict[str, Any]] | None:
    symbol, action, number, reason = match.groups()
    confidence = float(number)
    if (
        reason not in reasons.META_REASON_CODES
        or reason in reasons.ESCALATING_REASONS
        or not confidence <= 1.0
    ):
        return None
    return (
        "meta_defer",
        symbol,
        {
            "meta_decision": "DEFER",
            "meta_reason": reason,
            "base_action": action,
            "base_confidence": confidence,
        },
    )


def _meta_escalate(match: re.Match) -> tuple[str, str, dict[str, Any]] | None:
    symbol, reason = match.groups()
    if reason not in reasons.ESCALATING_REASONS:
        return None
    return "meta_escalate", symbol, {"meta_decision": "ESCALATE", "meta_reason": reason}


def _arbiter_verdict(match: re.Match, kind: str) -> tuple[str, str, dict[str, Any]] | None:
    """An OVERRIDE (``kind`` "arbiter_override") or DEFER ("arbiter_defer") line of the
    Arbiter, whose reason decides the outcome."""
    symbol, base, base_number, action, number = match.group(1, 2, 3, 4, 5)
    base_confidence, confidence = float(base_number), float(number)
    if not (base_confidence <= 1.0 and confidence <= 1.0):
        return None
    reason = match["reason"].rstrip()
    if kind == "arbiter_override":
        outcome = "override" if _SIGNAL_REASON.match(reason) else None
    elif _LOW_CONFIDENCE.match(reason):
        outcome = "defer_low_confidence"
    else:
        outcome = "defer_hold" if _SIGNAL_REASON.match(reason) else None
    if outcome is None:
        return None
    return (
        kind,
        symbol,
        {
            "base_action": base,
            "base_confidence": base_confidence,
            "arbiter_outcome": outcome,
            "arbiter_action": action,
            "arbiter_confidence": confidence,
            "arbiter_reason": reason,
        },
    )


def _not_available(match: re.Match) -> tuple[str, str, dict[str, Any]] | None:
    symbol, base, number = match.groups()
    confidence = float(number)
    if not confidence <= 1.0:
        return None
    return (
        "arbiter_not_available",
        symbol,
        {"base_action": base, "base_confidence": confidence, "arbiter_outcome": "not_available"},
    )


def _message(text: str) -> tuple[str, str, dict[str, Any]] | None:
    """(kind, symbol, record fields) of one engine message, or None when the text is not one
    or a confidence in it is not a probability (numbers in the log have no sign, so a
    confidence is one when it is at most 1).

    The patterns are tried in a fixed order and the first that matches decides, even when its
    checks then reject the line. A pattern is tried only when the text holds literals that
    every match of it contains (its tag and keyword): most are skipped for the price of a
    substring test, and no result changes.
    """
    if "ENSEMBLE" in text and (match := _ENSEMBLE.search(text)):
        return _ensemble_message(match)
    if "[Meta-V2-Policy]" in text:
        if "DEFER:" in text and (match := _META_DEFER.search(text)):
            return _meta_defer(match)
        if "ESCALATE:" in text and (match := _META_ESCALATE.search(text)):
            return _meta_escalate(match)
    if "[Arbiter]" in text:
        if "INVOKED" in text and (match := _INVOKED.search(text)):
            return "arbiter_invoked", match.group(1), {"arbiter_invoked": True}
        if "OVERRIDE:" in text and (match := _OVERRIDE.search(text)):
            return _arbiter_verdict(match, "arbiter_override")
        if "DEFER:" in text and (match := _ARBITER_DEFER.search(text)):
            return _arbiter_verdict(match, "arbiter_defer")
        if "NOT AVAILABLE" in text and (match := _NOT_AVAILABLE.search(text)):
            return _not_available(match)
    return None


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


#: The kinds of engine message (H-LOG-2), as counted in ``line_kinds``.
MESSAGE_KINDS = (
    "ensemble",
    "meta_defer",
    "meta_escalate",
    "arbiter_invoked",
    "arbiter_override",
    "arbiter_defer",
    "arbiter_not_available",
)
#: Message kinds that open a decision cycle (a symbol's Meta line).
_CYCLE_STARTS = frozenset({"meta_defer", "meta_escalate"})
#: Version of :meth:`JournalReader.to_dict`'s layout.
_STATE_FORMAT = 1
_EXAMPLES_KEPT = 20


class JournalReader:
    """Assembles per-decision records from a journal read in pieces (H-LOG-5).

    A record opens with a symbol's Meta line (or its ENSEMBLE line when Meta did not run),
    collects the Arbiter's lines, and closes with the ENSEMBLE line written after the hierarchy.
    The engine writes that line only when the final action is not HOLD or its confidence is
    above 0.50, so a record can also close without it: at the symbol's next Meta line, or at
    :meth:`flush` (no votes: it cannot be replayed). Symbols may interleave. A record is a
    dict of ``symbol``, ``time`` and the fields of :class:`ParsedLog`'s records that its lines
    give, in the order they were read.

    Feeding a journal in any number of pieces, with the state saved by :meth:`to_dict` and
    restored by :meth:`from_dict` in between, gives the same records, counts and state as one
    pass; each line costs constant work whatever was read before.

    Parameters
    ----------
    year : int, optional
        Dates lines that only have journald's prefix (it has no year); their time is None
        without it.

    Attributes
    ----------
    skipped : int
        Lines that were not one of the engine's messages (other services, garbage, truncated).
    line_kinds : Counter
        Lines read per message kind.
    skipped_examples : list of str
        The first 20 skipped lines.
    open_records : dict
        Symbol -> the record its lines have opened and not yet closed, in opening order.
    """

    def __init__(self, year: int | None = None) -> None:
        if year is not None:
            if isinstance(year, bool) or not isinstance(year, numbers.Integral):
                raise JournalError(f"year must be an integer or None, got {year!r}")
            if not 1000 <= year <= 9999:
                raise JournalError(f"year must have four digits, got {year}")
            year = int(year)
        self.year = year
        self.skipped = 0
        self.line_kinds: Counter[str] = Counter()
        self.skipped_examples: list[str] = []
        self.open_records: dict[str, dict[str, Any]] = {}
        self._times = _PrefixTimes(year)

    def feed(self, lines: Iterable[str]) -> list[dict[str, Any]]:
        """Read complete lines (a trailing newline is dropped); return the records they
        closed, in the order they closed.

        Python's cyclic garbage collector is paused while the lines are read and restored
        after (also on error): reading creates no reference cycles, and the collector would
        otherwise trace the batch's records again and again as they accumulate, which costs
        about a tenth of the reading time.
        """
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            return self._read_lines(lines)
        finally:
            if paused:
                gc.enable()

    def _read_lines(self, lines: Iterable[str]) -> list[dict[str, Any]]:
        completed: list[dict[str, Any]] = []
        split = self._times.split
        open_records = self.open_records
        kinds = self.line_kinds
        for raw in lines:
            line = raw.rstrip("\n")
            part = split(line)
            message = None if part is None else _message(part[1])
            if message is None:
                if line.strip():  # blank lines are neither read nor skipped
                    self._skip(line)
                continue
            kind, symbol, fields = message
            record = open_records.get(symbol)
            # a second Meta line: the symbol's previous cycle ended without an ENSEMBLE line
            if record is None or (kind in _CYCLE_STARTS and "meta_decision" in record):
                stamp = part[0]  # type: ignore[index]
                if isinstance(stamp, str):
                    try:
                        stamp = _plain_logging_time(stamp)
                    except ValueError:  # not reached: the stamp was checked; kept as a guard
                        self._skip(line)
                        continue
                if record is not None:
                    completed.append(open_records.pop(symbol))
                record = {"symbol": symbol, "time": stamp}
                open_records[symbol] = record
            kinds[kind] += 1
            record.update(fields)
            if kind == "ensemble":
                completed.append(open_records.pop(symbol))
        return completed

    def flush(self) -> list[dict[str, Any]]:
        """Close the records still open (the journal ended), in the order they opened."""
        completed = list(self.open_records.values())
        self.open_records.clear()
        return completed

    def _skip(self, line: str) -> None:
        self.skipped += 1
        if len(self.skipped_examples) < _EXAMPLES_KEPT:
            self.skipped_examples.append(line)

    def to_dict(self) -> dict[str, Any]:
        """The reader's state as JSON-safe values (times as ISO strings with their unit)."""
        return {
            "format": _STATE_FORMAT,
            "year": self.year,
            "skipped": self.skipped,
            "line_kinds": dict(sorted(self.line_kinds.items())),
            "skipped_examples": list(self.skipped_examples),
            "open_records": [_record_to_json(record) for record in self.open_records.values()],
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> JournalReader:
        """A reader in the state :meth:`to_dict` saved; JournalError names what is wrong."""
        _check_state(state)
        reader = cls(state["year"])
        reader.skipped = state["skipped"]
        reader.line_kinds = Counter(state["line_kinds"])
        reader.skipped_examples = list(state["skipped_examples"])
        for item in state["open_records"]:
            record = _record_from_json(item)
            reader.open_records[record["symbol"]] = record
        return reader


def _record_to_json(record: dict[str, Any]) -> dict[str, Any]:
    time = record["time"]
    fields = dict(record)
    fields["time"] = None if time is None else time.isoformat()
    return {"fields": fields, "time_unit": None if time is None else time.unit}


def _record_from_json(item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping) or set(item) != {"fields", "time_unit"}:
        raise JournalError(f"journal reader state: an open record is not readable: {item!r}")
    record = dict(item["fields"])
    symbol, time, unit = record.get("symbol"), record.get("time"), item["time_unit"]
    if not isinstance(symbol, str) or not symbol:
        raise JournalError(f"journal reader state: an open record has no symbol: {item!r}")
    if (time is None) != (unit is None):
        raise JournalError(f"journal reader state: {symbol}'s record has a time without unit")
    if time is not None:
        try:
            record["time"] = pd.Timestamp(time).tz_convert("UTC").as_unit(unit)
        except (TypeError, ValueError) as error:
            raise JournalError(
                f"journal reader state: {symbol}'s record has an unreadable time {time!r} ({error})"
            ) from None
    return record


def _check_state(state: Any) -> None:
    """Raise JournalError naming the first problem of a saved reader state."""
    if not isinstance(state, Mapping):
        raise JournalError(f"journal reader state must be a mapping, got {type(state).__name__}")
    expected = {"format", "year", "skipped", "line_kinds", "skipped_examples", "open_records"}
    if set(state) != expected:
        raise JournalError(
            f"journal reader state has keys {sorted(state)}, expected {sorted(expected)}"
        )
    if state["format"] != _STATE_FORMAT:
        raise JournalError(
            f"journal reader state is in format {state['format']!r}; this version reads "
            f"format {_STATE_FORMAT}"
        )

    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if not count(state["skipped"]):
        raise JournalError(
            f"journal reader state: skipped must be a count, got {state['skipped']!r}"
        )
    kinds = state["line_kinds"]
    if not isinstance(kinds, Mapping) or not all(
        kind in MESSAGE_KINDS and count(n) for kind, n in kinds.items()
    ):
        raise JournalError(
            f"journal reader state: line_kinds must map message kinds {MESSAGE_KINDS} to "
            f"counts, got {kinds!r}"
        )
    examples = state["skipped_examples"]
    if not isinstance(examples, list) or not all(isinstance(line, str) for line in examples):
        raise JournalError("journal reader state: skipped_examples must be a list of lines")
    if len(examples) > _EXAMPLES_KEPT or len(examples) > state["skipped"]:
        raise JournalError(
            f"journal reader state: {len(examples)} skipped examples for "
            f"{state['skipped']} skipped lines (at most {_EXAMPLES_KEPT} are kept)"
        )
    records = state["open_records"]
    if not isinstance(records, list):
        raise JournalError("journal reader state: open_records must be a list")
    symbols = [_record_from_json(item)["symbol"] for item in records]
    if len(set(symbols)) != len(symbols):
        raise JournalError(f"journal reader state: a symbol has two open records: {symbols}")


def parse_live_log(source: str | Path | Iterable[str], year: int | None = None) -> ParsedLog:
    """Parse a journal (a file path, its text, or an iterable of lines) into per-bar records.

    One pass of :class:`JournalReader` over the whole journal, flushed at its end (the record
    rules are stated there). ``year`` dates lines that only have journald's prefix (no year in
    it).
    """
    reader = JournalReader(year)
    records = reader.feed(_lines(source))
    records += reader.flush()
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
    return ParsedLog(frame, reader.skipped, reader.line_kinds, reader.skipped_examples)


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
