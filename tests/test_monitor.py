"""The rollout monitor (H-MON-1 to H-MON-6): chunked reading equals one pass, the rates equal the
replay's, the values equal the counterfactuals', no lookahead in history as if live."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from qt_backtest.data import load_sample, per_symbol, sample_dir
from qt_backtest.errors import ConfigError
from qt_backtest.hierarchy import HierarchyConfig, decision_rates, replay
from qt_backtest.hierarchy.livelog import parse_live_log
from qt_backtest.indicators import arbiter_inputs
from qt_backtest.monitor.config import MonitorConfig
from qt_backtest.monitor.history import journal_from_replay, monitor_history
from qt_backtest.monitor.monitor import POOLED, Monitor
from qt_backtest.monitor.outcomes import override_outcomes
from qt_backtest.monitor.page import render_monitor_page, sentences
from qt_backtest.monitor.rates import count_events, rate_events, rate_verdict
from qt_backtest.signals import read_predictions

SYMBOLS = ("BTCUSDT", "ETHUSDT")
BARS = 2500


@pytest.fixture(scope="module")
def sample():
    """Per symbol: the last bars of the sample, their votes and the Arbiter stage's replay."""
    predictions = per_symbol(read_predictions(sample_dir() / "sample-predictions.parquet"))
    result = {}
    for symbol in SYMBOLS:
        bars = load_sample(f"{symbol}-1h").iloc[-BARS:]
        votes = predictions[symbol].reindex(bars.index)
        decisions = replay(votes, arbiter_inputs(bars), HierarchyConfig())
        result[symbol] = (bars, votes, decisions)
    return result


@pytest.fixture(scope="module")
def journal(sample):
    """Both symbols' journal lines, interleaved in time order."""
    lines = []
    for symbol, (_, votes, decisions) in sample.items():
        models = HierarchyConfig().models
        lines += [
            (time, line) for time, line in journal_from_replay(symbol, decisions, votes, models)
        ]
    lines.sort(key=lambda item: item[0])
    return [line + "\n" for _, line in lines]


def _bars(sample):
    return {symbol: bars for symbol, (bars, _, _) in sample.items()}


def test_the_journal_written_from_a_replay_parses_back_to_its_decisions(sample, journal):
    records = parse_live_log(journal).records
    for symbol, (_, _, decisions) in sample.items():
        mine = records[records["symbol"] == symbol]
        voted = decisions[decisions["base_action"].notna()]
        assert len(mine) == len(voted)
        assert (
            mine["meta_decision"].fillna("-").to_numpy()
            == voted["meta_decision"].astype(object).fillna("-").to_numpy()
        ).all()
        overridden = (mine["arbiter_outcome"] == "override").to_numpy()
        assert (overridden == (voted["gate"] == "override").to_numpy()).all()


def test_chunked_feeding_with_state_round_trips_equals_one_pass(sample, journal, tmp_path):
    bars = _bars(sample)
    whole = Monitor()
    whole.feed(journal, bars)
    rng = np.random.default_rng(3)
    cuts = np.sort(rng.choice(len(journal), size=25, replace=False))
    chunked = Monitor()
    path = tmp_path / "state.json"
    for first, stop in zip(np.r_[0, cuts], np.r_[cuts, len(journal)], strict=True):
        chunked.feed(journal[first:stop], bars)
        chunked.save(path)
        chunked = Monitor.load(path)
    assert json.dumps(chunked.to_dict(), sort_keys=True) == json.dumps(
        whole.to_dict(), sort_keys=True
    )
    assert whole.pooled.value.count > 20


def test_rate_counts_equal_the_replays(sample, journal):
    monitor = Monitor()
    monitor.feed(journal, _bars(sample))
    for symbol, (_, _, decisions) in sample.items():
        voted = decisions[decisions["base_action"].notna()]
        expected = decision_rates(voted)
        table = monitor.watches[symbol].rate_table()
        for rate, row in table.iterrows():
            assert row["count"] == expected.loc[rate, "denominator"], rate
            assert row["successes"] == expected.loc[rate, "numerator"], rate
            assert row["low"] <= expected.loc[rate, "value"] <= row["high"]
    pooled = monitor.pooled.rate_table()
    assert pooled.loc["escalation_rate", "count"] == sum(
        monitor.watches[s].rate_table().loc["escalation_rate", "count"] for s in SYMBOLS
    )


def test_monitored_outcomes_equal_the_counterfactuals_of_the_replay(sample, journal):
    monitor = Monitor()
    monitor.feed(journal, _bars(sample))
    for symbol, (bars, _, decisions) in sample.items():
        # the journal carries confidences as logged (H-LOG-2): the oracle replays those
        logged = decisions.assign(
            base_confidence=decisions["base_confidence"].round(3),
            final_confidence=decisions["final_confidence"].round(4),
        )
        expected = override_outcomes(bars, logged)
        watch = monitor.watches[symbol]
        track = monitor.tracks[symbol]
        # the bars from the last record's on are not stepped yet: what is known there is open
        known = bars.index[expected["known_bar"].to_numpy()]
        settled = expected[known < pd.Timestamp(track.next_bar, tz="UTC")]
        assert watch.value.count == len(settled)
        clipped = np.clip(settled["relative_value"], -0.05, 0.05)
        assert watch.value.estimate() == pytest.approx(clipped.mean(), rel=1e-9, abs=1e-15)


def test_rate_events_follow_the_rate_definitions():
    assert rate_events({"meta_decision": float("nan"), "arbiter_outcome": float("nan")}) == {
        "ensemble_source_share": True,
        "arbiter_source_share": False,
    }
    events = rate_events({"meta_decision": "ESCALATE", "arbiter_outcome": "not_available"})
    assert events["escalation_rate"] and not events["arbiter_invocation_rate"]
    assert "override_rate_when_called" not in events
    events = rate_events({"meta_decision": "ESCALATE", "arbiter_outcome": "override"})
    assert events["override_rate_when_called"] and events["arbiter_source_share"]


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.21, 0.29, "inside"),
        (0.31, 0.5, "outside"),
        (0.0, 0.19, "outside"),
        (0.1, 0.25, "undecided"),
    ],
)
def test_rate_verdicts_against_the_band(low, high, verdict):
    assert rate_verdict(low, high, (0.2, 0.3)) == verdict


def test_history_as_if_live_does_not_look_ahead(sample):
    bars = _bars(sample)
    votes = {symbol: v for symbol, (_, v, _) in sample.items()}
    start = bars["BTCUSDT"].index[1000].normalize()
    first = monitor_history(bars, votes, start)
    cut = start + pd.Timedelta(30, "D")
    perturbed = {}
    for symbol, frame in bars.items():
        frame = frame.copy()
        later = frame.index >= cut
        frame.loc[later, ["open", "high", "low", "close"]] *= 1.3
        perturbed[symbol] = frame
    second = monitor_history(perturbed, votes, start)
    before = first.timeline[first.timeline["day"] < cut - pd.Timedelta(1, "D")]
    again = second.timeline[second.timeline["day"] < cut - pd.Timedelta(1, "D")]
    pd.testing.assert_frame_equal(before.reset_index(drop=True), again.reset_index(drop=True))
    later_first = first.timeline[first.timeline["day"] > cut]
    later_second = second.timeline[second.timeline["day"] > cut]
    assert not later_first["edge"].equals(later_second["edge"])
    # the projection uses the bars before the start only
    assert first.expectation == second.expectation


def test_history_reports_the_first_verdict_and_the_page_says_it(sample):
    bars = _bars(sample)
    votes = {symbol: v for symbol, (_, v, _) in sample.items()}
    start = bars["BTCUSDT"].index[800].normalize()
    run = monitor_history(bars, votes, start, config=MonitorConfig(confidence=0.5))
    assert set(run.decided.index) == {*SYMBOLS, POOLED}
    for symbol, row in run.decided.iterrows():
        rows = run.timeline[run.timeline["symbol"] == symbol]
        if row["verdict"] == "continue":
            assert (rows["verdict"] == "continue").all()
        else:
            first = rows[rows["verdict"] != "continue"].iloc[0]
            assert first["day"] == row["day"] and first["verdict"] == row["verdict"]
    said = sentences(run.monitor)
    assert any(s.startswith("Arbiter stage, BTCUSDT, day ") for s in said)
    page = render_monitor_page(run.monitor, run.timeline)
    assert "Mean paired outcome of overrides" in page and "BTCUSDT" in page


def test_a_state_made_under_other_settings_is_refused(tmp_path, journal, sample):
    monitor = Monitor()
    monitor.feed(journal[:200], _bars(sample))
    path = monitor.save(tmp_path / "state.json")
    with pytest.raises(ConfigError, match="outcome_bound"):
        Monitor.load(path, MonitorConfig(outcome_bound=0.02))
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Monitor.load(path)


def test_meta_stage_watches_only_metas_rates(journal):
    monitor = Monitor(MonitorConfig(stage="meta"))
    monitor.feed(journal)
    assert set(monitor.pooled.rates) == {"escalation_rate", "defer_rate"}
    assert monitor.tracks == {}
    assert all(s.startswith(("BTCUSDT:", "ETHUSDT:", "All symbols:")) for s in sentences(monitor))


def test_projection_counts_overrides_and_days():
    monitor = Monitor(MonitorConfig(expected_edge=0.004, expected_spread=0.02))
    expectation = monitor.expectation("BTCUSDT")
    assert expectation is not None and math.isfinite(expectation["overrides"])
    planned = monitor.plan("BTCUSDT", 0.004, 0.02, overrides_per_day=2.0)
    assert planned["days"] == pytest.approx(planned["overrides"] / 2.0)
    with pytest.raises(ConfigError, match="together"):
        MonitorConfig(expected_edge=0.01)


def test_counted_events_are_the_sum_of_each_records_events(journal):
    records = parse_live_log(journal).records.to_dict("records")[:3000]
    counts = count_events(records)
    for rate, (successes, count) in counts.items():
        if rate == "records":
            assert count == len(records)
            continue
        events = [rate_events(record).get(rate) for record in records]
        assert count == sum(event is not None for event in events), rate
        assert successes == sum(bool(event) for event in events), rate


def test_records_wait_for_their_bars_and_are_valued_once_the_bars_come(sample, journal):
    bars = _bars(sample)
    whole = Monitor()
    whole.feed(journal, bars)
    cut = {symbol: frame.iloc[: len(frame) // 2] for symbol, frame in bars.items()}
    waited = Monitor()
    waited.feed(journal, cut)
    assert all(len(track.waiting) > 100 for track in waited.tracks.values())
    waited.catch_up(bars)
    for symbol in SYMBOLS:
        assert waited.tracks[symbol].waiting == []
        assert waited.watches[symbol].value.to_dict() == whole.watches[symbol].value.to_dict()


def test_the_page_escapes_what_it_is_given_and_renders_in_chromium(sample, journal, tmp_path):
    from test_report import browse, console_errors

    from qt_backtest.monitor.page import write_monitor_page

    monitor = Monitor()
    monitor.feed(journal, _bars(sample))
    page = write_monitor_page(monitor, tmp_path / "monitor.html", title="<script>alert(1)</script>")
    text = page.read_text()
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text
    dumped = browse(tmp_path, page, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert console_errors(dumped.stderr) == []
    assert re.findall(r"<h2>(.*?)</h2>", dumped.stdout) == [
        "Status",
        "Value of the stage",
        "Rates against their bands",
    ]
    assert len(re.findall(r'<svg[^>]*role="img"', dumped.stdout)) == 1 + len(SYMBOLS) + 1
