"""Live-log replay on generated journals."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from qt_backtest.hierarchy import ArbiterConfig, HierarchyConfig, HierarchyEngine, MetaConfig
from qt_backtest.hierarchy.livelog import parse_live_log, replay_log
from tests.livelog_fixtures import make_journal


@pytest.fixture(scope="module")
def journal():
    return make_journal(10_000, seed=3)


def test_parse_counts_and_skips(journal):
    lines, _, inputs, noise = journal
    parsed = parse_live_log(lines, year=2026)
    assert len(lines) >= 10_000
    assert parsed.skipped == noise
    assert len(parsed.records) == len(inputs)
    kinds = parsed.line_kinds
    assert kinds["meta_escalate"] == kinds["arbiter_invoked"] > 100
    assert kinds["arbiter_override"] > 10 and kinds["arbiter_defer"] > 10
    assert kinds["ensemble"] == parsed.records["final_action"].notna().sum()


def test_recomputed_equals_logged_with_the_live_config(journal):
    lines, indicators, _, _ = journal
    parsed = parse_live_log(lines, year=2026)
    diff = replay_log(parsed, HierarchyConfig(), indicators)
    assert diff.summary["mismatching"].sum() == 0, diff.mismatches.head()
    assert (diff.summary["compared"] > 0).all()
    assert diff.unreplayable == parsed.records["final_action"].isna().sum()


@pytest.mark.parametrize(
    ("changed", "layer"),
    [
        (HierarchyConfig(arbiter=ArbiterConfig(arbiter_threshold=0.80)), "arbiter"),
        (HierarchyConfig(meta=MetaConfig(consensus_threshold=1.0)), "meta"),
        (HierarchyConfig(mode="meta"), "arbiter"),
    ],
)
def test_changed_thresholds_give_the_expected_diffs(journal, changed, layer):
    lines, indicators, inputs, _ = journal
    parsed = parse_live_log(lines, year=2026)
    diff = replay_log(parsed, changed, indicators)
    # expected: where the reference engine under the changed config decides differently
    live, other = HierarchyEngine(HierarchyConfig()), HierarchyEngine(changed)
    expected = {"meta": 0, "arbiter": 0, "final": 0}
    logged = {(r.symbol, r.time) for r in parsed.records.itertuples() if pd.notna(r.final_action)}
    for item in inputs:
        if (item["symbol"], item["time"]) not in logged:
            continue
        a = live.step(item["bar"], item["indicators"])
        b = other.step(item["bar"], item["indicators"])
        meta_a = a["meta"] and (a["meta"]["decision"], a["meta"]["reason"])
        meta_b = b["meta"] and (b["meta"]["decision"], b["meta"]["reason"])
        expected["meta"] += meta_a != meta_b
        if a["meta"] and a["meta"]["decision"] == "ESCALATE":
            gate_a = a["gate"] or "not_available"
            gate_b = b["gate"] or "not_available"
            expected["arbiter"] += gate_a != gate_b
        expected["final"] += a["final"]["action"] != b["final"]["action"] or (
            a["final"]["source"] != b["final"]["source"]
        )
    assert diff.summary.loc[layer, "mismatching"] == expected[layer] > 0
    assert diff.summary.loc["meta", "mismatching"] == expected["meta"]
    mismatching = diff.mismatches[diff.mismatches["layer"] == layer]
    assert len(mismatching) == expected[layer]


def test_garbage_never_crashes():
    text = "\n".join(
        [
            "",
            "[Arbiter]",
            "ENSEMBLE : BUY",
            "[Meta-V2-Policy] BTCUSDT DEFER:",
            "\ufffd" * 50,
            "[ENSEMBLE] BTCUSDT: BUY 0.72 | XGB:BUY/0.7 FOO:BUY/0.5",
        ]
    )
    parsed = parse_live_log(text)
    assert parsed.skipped == 5 and parsed.records.empty


def test_spec_example_lines():
    # the example lines of H-LOG-1 and H-LOG-2
    lines = [
        "Feb 06 12:00:03 vps python[812]: 2026-02-06 12:00:03,114 - ai_engine.ensemble_manager - "
        "INFO - [Meta-V2-Policy] BTCUSDT ⬆️ ESCALATE: split_vote → Calling Arbiter for market "
        "understanding",
        "[Arbiter] BTCUSDT ⚖️  INVOKED (escalated from Meta-V2)",
        "[Arbiter]BTCUSDT ✅ OVERRIDE: SELL@0.680 → SELL@0.760 | Reason: sell_signal: overbought_rsi",
        "[CHART] ENSEMBLE BTCUSDT: SELL 76.00% | XGB:BUY/0.72 LGBM:SELL/0.70 NH:BUY/0.68 PT:SELL/0.71",
        "[Meta-V2-Policy] ETHUSDT DEFER: using base ensemble BUY@0.720 | Reason: strong_consensus_buy",
        "[ENSEMBLE] ETHUSDT: BUY 0.72 | XGB:BUY/0.75 LGBM:BUY/0.70 NH:HOLD/0.65 PT:BUY/0.72",
        "[Arbiter] SOLUSDT ⏸️  DEFER: keeping base ensemble BUY@0.700 | Arbiter: HOLD@0.500 | "
        "Reason: low_confidence (0.500 < 0.70)",
        "[Arbiter] SOLUSDT NOT AVAILABLE (disabled or not loaded) - using base ensemble BUY@0.700",
    ]
    parsed = parse_live_log(lines)
    assert parsed.skipped == 0
    records = parsed.records.set_index("symbol")
    assert records.loc["BTCUSDT", "arbiter_outcome"] == "override"
    assert records.loc["BTCUSDT", "final_confidence"] == pytest.approx(0.76)
    assert records.loc["BTCUSDT", "time"] == pd.Timestamp("2026-02-06 12:00:03.114", tz="UTC")
    assert records.loc["ETHUSDT", "meta_reason"] == "strong_consensus_buy"
    assert records.loc["ETHUSDT", "nhits_action"] == "HOLD"
    assert records.loc["SOLUSDT", "arbiter_outcome"] == "not_available"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FRAGMENTS = [
    "[Meta-V2-Policy]",
    "[Arbiter]",
    "ENSEMBLE",
    "[ENSEMBLE]",
    "BTCUSDT",
    " DEFER:",
    " ESCALATE:",
    "OVERRIDE:",
    "INVOKED",
    "BUY@0.7",
    "| Reason:",
    "XGB:BUY/0.75",
    "72.33%",
    "→",
    "⬆️",
    "\x00",
    "Feb 06 12:00:03 vps python[812]: ",
    "2026-02-06 12:00:03,114 - a - INFO - ",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=80), st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("".join)
        ),
        max_size=30,
    )
)
def test_parser_never_crashes_on_garbage(lines):
    parsed = parse_live_log(lines, year=2026)
    assert parsed.skipped + sum(parsed.line_kinds.values()) <= len(lines)
    replay_log(parsed)  # replaying whatever was read must not fail either


# Valid lines of every message kind; the parser must stay linear in the line whatever is
# inserted into them.
VALID_LINES = [
    "[Meta-V2-Policy] BTCUSDT ⬆️ ESCALATE: split_vote → Calling Arbiter for market understanding",
    "[Arbiter] BTCUSDT ⚖️  INVOKED (escalated from Meta-V2)",
    "[Arbiter]BTCUSDT ✅ OVERRIDE: SELL@0.680 → SELL@0.760 | Reason: sell_signal: overbought_rsi",
    "[CHART] ENSEMBLE BTCUSDT: SELL 76.00% | XGB:BUY/0.72 LGBM:SELL/0.70 NH:BUY/0.68 PT:SELL/0.71",
    "[Meta-V2-Policy] ETHUSDT DEFER: using base ensemble BUY@0.720 | Reason: strong_consensus_buy",
    "[Arbiter] SOLUSDT ⏸️  DEFER: keeping base ensemble BUY@0.700 | Arbiter: HOLD@0.500 | "
    "Reason: low_confidence (0.500 < 0.70)",
    "[Arbiter] SOLUSDT NOT AVAILABLE (disabled or not loaded) - using base ensemble BUY@0.700",
]


def parse_seconds(line: str) -> float:
    started = time.perf_counter()
    parse_live_log([line])
    return time.perf_counter() - started


@pytest.mark.parametrize("line", VALID_LINES)
def test_a_run_of_spaces_anywhere_costs_linear_time(line):
    # the line cut at every token boundary, a long run of spaces and one character added:
    # overlapping quantifiers made such lines take minutes (cubic in the run)
    cuts = [i for i in range(1, len(line)) if line[i - 1] != " " and line[i] == " "]
    cuts.append(len(line))
    worst = 0.0
    for cut in cuts:
        garbled = line[:cut] + " " * 20_000 + "x" + line[cut:]
        worst = max(worst, parse_seconds(garbled))
    # linear: a few milliseconds per 20,000 characters; quadratic would take seconds
    assert worst < 0.5, worst


MUTATIONS = st.sampled_from(["spaces", "truncate", "garbage", "tabs"])


@settings(max_examples=200, deadline=None)
@given(
    line=st.sampled_from(VALID_LINES),
    mutation=MUTATIONS,
    where=st.floats(0, 1),
    size=st.integers(1, 5_000),
    garbage=st.binary(min_size=1, max_size=64),
)
def test_mutated_lines_never_raise_and_stay_fast(line, mutation, where, size, garbage):
    cut = int(where * len(line))
    if mutation == "spaces":
        line = line[:cut] + " " * size + line[cut:]
    elif mutation == "tabs":
        line = line[:cut] + "\t \u00a0" * (size // 3 + 1) + "|" + line[cut:]
    elif mutation == "truncate":
        line = line[:cut]
    else:
        line = line[:cut] + garbage.decode("utf-8", errors="replace") + line[cut:]
    started = time.perf_counter()
    parsed = parse_live_log([line], year=2026)
    assert time.perf_counter() - started < 0.5
    # every line is read or counted as skipped; only blank lines are neither
    assert parsed.skipped + sum(parsed.line_kinds.values()) == (1 if line.strip() else 0)
    replay_log(parsed)


def test_impossible_dates_and_confidences_are_skipped_and_named():
    good = "[Meta-V2-Policy] ETHUSDT DEFER: using base ensemble BUY@0.720 | Reason: strong_consensus_buy"
    lines = [
        "Feb 30 12:00:03 vps python[812]: " + good,
        "2026-13-45 12:00:03,114 - a - INFO - " + good,
        good.replace("BUY@0.720", "BUY@1.720"),
        "[ENSEMBLE] ETHUSDT: BUY 0.72 | XGB:BUY/1.75 LGBM:BUY/0.70",
        good,
    ]
    parsed = parse_live_log(lines, year=2026)
    assert parsed.skipped == 4
    assert parsed.skipped_examples == lines[:4]
    assert len(parsed.records) == 1
    replay_log(parsed)
