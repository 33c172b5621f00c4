"""Incremental journal reading (H-LOG-5): pieces and state round trips give what one pass gives,
and every shortcut of the reader gives what the patterns it shortcuts give."""

from __future__ import annotations

import calendar
import gc
import itertools
import json
import re
from datetime import datetime

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qt_backtest.errors import JournalError
from qt_backtest.hierarchy import livelog
from qt_backtest.hierarchy.livelog import JournalReader, parse_live_log
from tests.livelog_fixtures import make_journal

# Three interleaved symbols, every format variant, other services' lines, truncated lines, and
# HOLD decisions at or below 0.50 whose records close without an ENSEMBLE line.
JOURNAL, _, INPUTS, NOISE = make_journal(1_500, seed=11)

GARBAGE = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(
            [
                "[Meta-V2-Policy] ",
                "[Arbiter] ",
                "ENSEMBLE ",
                "BTCUSDT ",
                "DEFER: using base ensemble BUY@0.720 | Reason: strong_consensus_buy",
                "ESCALATE: split_vote → Calling Arbiter for market understanding",
                "INVOKED (escalated from Meta-V2)",
                "BUY 72.33% | XGB:BUY/0.75 LGBM:SELL/0.70",
                "Feb 30 12:00:03 vps python[812]: ",
                "Feb 06 12:00:03 vps python[812]: ",
                "2026-02-06 12:00:03,114 - a - INFO - ",
                "2026-02-06 12:00:61,114 - a - INFO - ",
                "   ",
            ]
        ),
        max_size=5,
    ).map("".join),
)


def canonical(record: dict) -> dict:
    """A record with its time spelt out with its unit (equal Timestamps may differ in unit)."""
    time = record["time"]
    return {**record, "time": None if time is None else (time.isoformat(), time.unit)}


def one_pass(lines: list[str], year: int | None = 2026) -> tuple[list[dict], JournalReader]:
    reader = JournalReader(year)
    records = reader.feed(lines)
    records += reader.flush()
    return records, reader


def test_one_pass_recovers_every_decision_and_counts_the_noise():
    records, reader = one_pass(JOURNAL)
    assert sorted((r["symbol"], r["time"]) for r in records) == sorted(
        (item["symbol"], item["time"]) for item in INPUTS
    )
    assert reader.skipped == NOISE
    assert sum(pd.isna(r.get("final_action")) for r in records) > 0  # closed without ENSEMBLE
    frame = parse_live_log(JOURNAL, year=2026).records
    assert len(frame) == len(records)
    pd.testing.assert_frame_equal(frame[list(pd.DataFrame(records))], pd.DataFrame(records))


@settings(max_examples=60, deadline=None)
@given(
    insertions=st.lists(st.tuples(st.integers(0, len(JOURNAL)), GARBAGE), max_size=25),
    cuts=st.lists(st.integers(0, len(JOURNAL) + 25), max_size=12),
    round_trips=st.lists(st.booleans(), min_size=13, max_size=13),
    newline=st.booleans(),
)
def test_pieces_with_state_round_trips_equal_one_pass(insertions, cuts, round_trips, newline):
    lines = list(JOURNAL)
    for where, garbage in sorted(insertions, reverse=True):
        lines.insert(where, garbage)
    if newline:
        lines = [line + "\n" for line in lines]
    whole, whole_reader = one_pass(lines)

    reader = JournalReader(2026)
    pieces = []
    bounds = sorted({0, len(lines), *(min(cut, len(lines)) for cut in cuts)})
    for (first, stop), round_trip in zip(itertools.pairwise(bounds), round_trips, strict=False):
        pieces += reader.feed(lines[first:stop])
        if round_trip:
            reader = JournalReader.from_dict(json.loads(json.dumps(reader.to_dict())))
    pieces += reader.flush()

    assert [canonical(r) for r in pieces] == [canonical(r) for r in whole]
    assert [list(r) for r in pieces] == [list(r) for r in whole]  # field order too
    assert reader.skipped == whole_reader.skipped
    assert reader.line_kinds == whole_reader.line_kinds
    assert reader.skipped_examples == whole_reader.skipped_examples
    assert reader.to_dict() == whole_reader.to_dict()


def test_open_records_survive_a_round_trip_with_their_time_and_unit():
    reader = JournalReader(2026)
    closed, cut = [], 0
    while len(reader.open_records) < 2:  # two symbols' records open at once
        closed += reader.feed([JOURNAL[cut]])
        cut += 1
    state = json.loads(json.dumps(reader.to_dict()))
    restored = JournalReader.from_dict(state)
    assert list(restored.open_records) == list(reader.open_records)
    for symbol, record in reader.open_records.items():
        assert canonical(restored.open_records[symbol]) == canonical(record)
    rest = JOURNAL[cut:]
    assert restored.feed(rest) + restored.flush() == reader.feed(rest) + reader.flush()
    assert closed == one_pass(JOURNAL)[0][: len(closed)]


def test_a_record_without_ensemble_line_closes_at_the_next_meta_line_or_at_flush():
    defer = "[Meta-V2-Policy] ETHUSDT DEFER: using base ensemble HOLD@0.450 | Reason: {}"
    reader = JournalReader()
    assert reader.feed([defer.format("strong_consensus_hold")]) == []
    # an escalating reason cannot be deferred on: the line is skipped, the record stays open
    assert reader.feed([defer.format("low_ensemble_confidence")]) == [] and reader.skipped == 1
    closed = reader.feed([defer.format("strong_consensus_sell")])
    assert [r["meta_reason"] for r in closed] == ["strong_consensus_hold"]
    assert [r["meta_reason"] for r in reader.flush()] == ["strong_consensus_sell"]
    assert reader.flush() == []


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ([], "must be a mapping"),
        ({"format": 1}, "has keys"),
        ({**JournalReader().to_dict(), "format": 2}, "format 2"),
        ({**JournalReader().to_dict(), "skipped": -1}, "skipped must be a count"),
        ({**JournalReader().to_dict(), "line_kinds": {"ensemble": "3"}}, "line_kinds"),
        ({**JournalReader().to_dict(), "skipped_examples": ["x"]}, "1 skipped examples for 0"),
        ({**JournalReader().to_dict(), "open_records": [{"fields": {}}]}, "not readable"),
        (
            {
                **JournalReader().to_dict(),
                "open_records": [{"fields": {"symbol": "BTCUSDT", "time": "x"}, "time_unit": "us"}],
            },
            "unreadable time 'x'",
        ),
        (
            {
                **JournalReader().to_dict(),
                "open_records": [{"fields": {"symbol": "BTCUSDT", "time": None}, "time_unit": None}]
                * 2,
            },
            "two open records",
        ),
    ],
)
def test_a_bad_state_is_refused_with_its_problem(state, problem):
    with pytest.raises(JournalError, match=re.escape(problem)):
        JournalReader.from_dict(state)


@pytest.mark.parametrize("year", [True, 2026.0, "2026", 26, 12026])
def test_a_bad_year_is_refused(year):
    with pytest.raises(JournalError, match="year"):
        JournalReader(year)


def test_feeding_pauses_the_garbage_collector_and_restores_it():
    def lines_checking_gc(seen):
        seen.append(gc.isenabled())
        yield JOURNAL[0]
        raise RuntimeError("the source failed")

    assert gc.isenabled()
    seen: list[bool] = []
    with pytest.raises(RuntimeError):
        JournalReader().feed(lines_checking_gc(seen))
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        JournalReader().feed(JOURNAL[:10])
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- the shortcuts give what the patterns give ---------------------------------------------

ORDER = [
    (livelog._ENSEMBLE, livelog._ensemble_message),
    (livelog._META_DEFER, livelog._meta_defer),
    (livelog._META_ESCALATE, livelog._meta_escalate),
    (livelog._INVOKED, lambda m: ("arbiter_invoked", m.group(1), {"arbiter_invoked": True})),
    (livelog._OVERRIDE, lambda m: livelog._arbiter_verdict(m, "arbiter_override")),
    (livelog._ARBITER_DEFER, lambda m: livelog._arbiter_verdict(m, "arbiter_defer")),
    (livelog._NOT_AVAILABLE, livelog._not_available),
]


def every_pattern_in_order(text: str):
    """The message as trying every pattern in order gives it, with no substring dispatch."""
    for pattern, build in ORDER:
        match = pattern.search(text)
        if match:
            return build(match)
    return None


MESSAGE_TEXT = st.lists(
    st.sampled_from(
        [
            "[Meta-V2-Policy]",
            "[Arbiter]",
            "[ENSEMBLE]",
            "📊 ENSEMBLE",
            " BTCUSDT",
            " ETHUSDT:",
            " DEFER: using base ensemble BUY@0.720 | Reason: strong_consensus_buy",
            " DEFER: keeping base ensemble BUY@0.700 | Arbiter: HOLD@0.500 | ",
            "Reason: low_confidence (0.500 < 0.70)",
            " ESCALATE: split_vote → Calling Arbiter for market understanding",
            " INVOKED (escalated from Meta-V2)",
            " OVERRIDE: SELL@0.680 → SELL@0.760 | Reason: sell_signal: overbought_rsi",
            " NOT AVAILABLE (disabled or not loaded) - using base ensemble BUY@0.700",
            " BUY 72.33% | XGB:BUY/0.75 LGBM:SELL/0.70",
            " SELL 0.72 | NH:HOLD/1.65",
            " ",
            "x",
        ]
    ),
    max_size=9,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(MESSAGE_TEXT)
@example(  # two messages in one line: the first pattern in the order decides
    "[Arbiter] BTCUSDT DEFER: keeping base ensemble BUY@0.700 | Arbiter: HOLD@0.500 | Reason: "
    "low_confidence (0.500 < 0.70)[Meta-V2-Policy] BTCUSDT DEFER: using base ensemble "
    "BUY@0.720 | Reason: strong_consensus_buy"
)
@example("[Meta-V2-Policy] x [Arbiter] BTCUSDT INVOKED (escalated from Meta-V2)")
def test_substring_dispatch_gives_what_every_pattern_in_order_gives(text):
    assert livelog._message(text) == every_pattern_in_order(text)


def votes_by_their_definition(text: str):
    """H-LOG-2, H-LOG-3: every vote found, nothing else but space, known models, probabilities."""
    fields: dict = {}
    for name, action, number in re.findall(
        r"(?<![A-Z])([A-Z]+):(BUY|SELL|HOLD)/(\d+(?:\.\d+)?)", text
    ):
        model = livelog.MODEL_ABBREVIATIONS.get(name)
        if model is None or float(number) > 1:
            return None
        fields[f"{model}_action"] = action
        fields[f"{model}_confidence"] = float(number)
    rest = re.sub(r"(?<![A-Z])([A-Z]+):(BUY|SELL|HOLD)/(\d+(?:\.\d+)?)", "", text)
    return None if rest.strip() else fields


VOTE_TEXT = st.lists(
    st.sampled_from(
        [
            "XGB:BUY/0.75",
            "LGBM:SELL/0.70",
            "NH:HOLD/0.5",
            "PT:BUY/1",
            "XGB:SELL/0.20",
            "TFT:HOLD/1.01",
            "FOO:BUY/0.5",
            "DL:BUY/0.\u0661",  # an Arabic-Indic digit: a digit to the patterns
            "xXGB:BUY/0.3",
            "XGB:BUY/0.",
            " ",
            "  ",
            "\t",
            "\u00a0",
            "|",
        ]
    ),
    max_size=8,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(VOTE_TEXT)
def test_vote_tokens_give_what_the_vote_list_definition_gives(text):
    fields = livelog._vote_fields(text)
    expected = votes_by_their_definition(text)
    assert fields == expected
    if fields is not None:
        assert list(fields) == list(expected)


DIGITS = st.text("0123456789", min_size=2, max_size=2)


@settings(max_examples=400, deadline=None)
@given(
    year=st.sampled_from(["0000", "0001", "1970", "2024", "2026", "9999"]),
    fields=st.tuples(DIGITS, DIGITS, DIGITS, DIGITS, DIGITS),
    fraction=st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=6)),
    comma=st.booleans(),
)
def test_a_plain_logging_stamp_is_valid_when_its_seconds_are_and_reads_the_same(
    year, fields, fraction, comma
):
    month, day, hour, minute, second = fields
    seconds = f"{year}-{month}-{day} {hour}:{minute}:{second}"
    stamp = seconds + ((("," if comma else ".") + fraction) if fraction else "")

    def read(text):
        try:
            return livelog._logging_time(text)
        except ValueError:
            return None

    full, whole_seconds = read(stamp), read(seconds)
    assert (full is None) == (whole_seconds is None)
    if full is not None:
        fast = livelog._plain_logging_time(stamp)
        assert (fast, fast.unit, fast.tz) == (full, full.unit, full.tz)


MONTHS = [*calendar.month_abbr[1:], "Xyz", "Mai", "Okt"]


@settings(max_examples=400, deadline=None)
@given(
    month=st.sampled_from(MONTHS),
    day=st.integers(0, 39),
    day_width=st.sampled_from(["", "0", " "]),
    clock=st.tuples(st.integers(0, 29), st.integers(0, 69), st.integers(0, 69)),
    year=st.sampled_from([2024, 2026, 2100]),
)
def test_a_journald_stamp_reads_as_strptime_reads_it(month, day, day_width, clock, year):
    day_text = f"{day_width}{day}" if day < 10 else str(day)
    stamp = f"{month} {day_text} {clock[0]:02d}:{clock[1]:02d}:{clock[2]:02d}"
    try:
        expected = pd.Timestamp(datetime.strptime(f"{year} {stamp}", "%Y %b %d %H:%M:%S"))
        expected = expected.tz_localize("UTC")
    except ValueError:
        expected = None
    try:
        got = livelog._journald_time(stamp, year)
    except ValueError:
        got = None
    assert got == expected
    if got is not None:
        assert (got.unit, got.tz) == (expected.unit, expected.tz)


PREFIXES = st.lists(
    st.tuples(
        st.sampled_from(
            ["Feb 06 12:00:03", "Feb 06 12:00:04", "Feb 30 12:00:03", "Feb  6 12:00:03"]
        ),
        st.sampled_from([" vps python[812]:", " vps python[812]: ", "  vps sshd[1]:\t"]),
        st.sampled_from(
            [
                "",
                " ",
                "x",
                "2026-02-06 12:00:03,114 - a.b - INFO - ",
                "2026-02-06 12:00:03.1234567 - a - INFO - ",
            ]
        ),
        st.sampled_from(["[Arbiter] BTCUSDT ⚖️  INVOKED (escalated from Meta-V2)", "", " x"]),
    ).map("".join),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(PREFIXES, st.sampled_from([None, 2026]))
def test_remembering_the_last_journald_prefix_changes_no_split(lines, year):
    remembering = livelog._PrefixTimes(year)
    for line in lines:
        assert remembering.split(line) == livelog._PrefixTimes(year).split(line)
