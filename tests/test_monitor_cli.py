"""``qt-backtest monitor``: settings, incremental runs over a growing journal, history as if live."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from qt_backtest.cli import main
from qt_backtest.data import load_sample, per_symbol, sample_dir
from qt_backtest.errors import SettingsError
from qt_backtest.hierarchy import HierarchyConfig, replay
from qt_backtest.indicators import arbiter_inputs
from qt_backtest.monitor.history import journal_from_replay
from qt_backtest.monitor.monitor import Monitor
from qt_backtest.settings import parse_settings
from qt_backtest.signals import read_predictions

START = "2026-02-01"


@pytest.fixture(scope="module")
def journal_lines():
    """The Arbiter stage's journal of BTCUSDT from START on, as the live engine writes it."""
    bars = load_sample("BTCUSDT-1h")
    bars = bars.loc[pd.Timestamp(START, tz="UTC") - pd.Timedelta(30, "D") :]
    votes = per_symbol(read_predictions(sample_dir() / "sample-predictions.parquet"))["BTCUSDT"]
    votes = votes.reindex(bars.index)
    decisions = replay(votes, arbiter_inputs(bars), HierarchyConfig())
    decisions = decisions.loc[START:]
    lines = journal_from_replay("BTCUSDT", decisions, votes, HierarchyConfig().models)
    return [line + "\n" for _, line in lines]


def _settings(tmp_path, journal, extra=""):
    path = tmp_path / "monitor.toml"
    path.write_text(
        f"""
[data]
samples = ["BTCUSDT-1h"]
start = "2025-06-01"

[monitor]
journal = "{journal}"
out = "page.html"
{extra}
"""
    )
    return path


def test_each_run_reads_only_the_new_lines_and_ends_where_one_pass_does(
    tmp_path, journal_lines, capsys
):
    journal = tmp_path / "journal.log"
    settings = _settings(tmp_path, journal)
    half = len(journal_lines) // 2
    journal.write_text("".join(journal_lines[:half]) + journal_lines[half][:40])  # a cut line
    assert main(["monitor", str(settings)]) == 0
    first = capsys.readouterr().out
    assert f"{half:,} new lines" in first
    with open(journal, "a") as handle:
        handle.write(journal_lines[half][40:] + "".join(journal_lines[half + 1 :]))
    assert main(["monitor", str(settings)]) == 0
    second = capsys.readouterr().out
    assert f"{len(journal_lines) - half:,} new lines" in second
    assert "Arbiter stage, BTCUSDT, day " in second
    state = json.loads((tmp_path / "monitor.monitor-state.json").read_text())
    one_pass = Monitor()
    one_pass.feed(journal_lines, {"BTCUSDT": load_sample("BTCUSDT-1h").loc["2025-06-01":]})
    expected = one_pass.to_dict()
    for key in ("watches", "pooled", "tracks", "reader"):
        assert state[key] == json.loads(json.dumps(expected[key])), key
    page = (tmp_path / "page.html").read_text()
    assert "Rates against their bands" in page and "BTCUSDT" in page


def test_changed_settings_refuse_the_old_state(tmp_path, journal_lines, capsys):
    journal = tmp_path / "journal.log"
    journal.write_text("".join(journal_lines[:300]))
    assert main(["monitor", str(_settings(tmp_path, journal))]) == 0
    changed = _settings(tmp_path, journal, "confidence = 0.9")
    assert main(["monitor", str(changed)]) == 1
    assert "confidence" in capsys.readouterr().err


def test_history_as_if_live_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "history.toml"
    path.write_text(
        f"""
[data]
samples = ["ETHUSDT-1h"]
start = "2025-09-01"

[predictions]
file = "{sample_dir() / "sample-predictions.parquet"}"

[monitor]
out = "history.html"
"""
    )
    assert main(["monitor", str(path), "--history", "2026-01-01", "--end", "2026-03-01"]) == 0
    out = capsys.readouterr().out
    assert "rollout of the meta_arbiter stage from 2026-01-01, as if live" in out
    assert "ETHUSDT:" in out
    assert (tmp_path / "history.html").is_file()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('stage = "arbiter"', "stage must be one of"),
        ("journals = 'x'", "did you mean journal"),
        ("outcome_bound = 0", "outcome_bound"),
        ("year = 12", "monitor.year"),
        ("[monitor.targets]\nescalation = [0.4, 0.3]", "escalation band"),
        ("expected_edge = 0.01", "together"),
    ],
)
def test_bad_monitor_settings_are_named(table, message):
    import tomllib

    document = tomllib.loads("[monitor]\n" + table)
    with pytest.raises(SettingsError, match=message):
        parse_settings(document, "monitor.toml")


def test_the_meta_stage_needs_no_bars(tmp_path, journal_lines, capsys):
    journal = tmp_path / "journal.log"
    journal.write_text("".join(journal_lines[:500]))
    path = tmp_path / "meta.toml"
    path.write_text(f'[monitor]\nstage = "meta"\njournal = "{journal}"\nout = "m.html"\n')
    assert main(["monitor", str(path)]) == 0
    out = capsys.readouterr().out
    assert "BTCUSDT: escalation rate" in out


def test_follow_reads_lines_as_they_are_written(tmp_path, journal_lines, capsys):
    import threading

    from qt_backtest.monitor.command import _follow
    from qt_backtest.settings import load_settings

    journal = tmp_path / "journal.log"
    journal.write_text("".join(journal_lines[:100]))
    path = _settings(tmp_path, journal)
    assert main(["monitor", str(path)]) == 0
    settings = load_settings(path)
    state = tmp_path / "monitor.monitor-state.json"
    monitor = Monitor.load(state)
    written = threading.Event()

    def writer():
        with open(journal, "a") as handle:
            for start in range(100, 400, 50):
                handle.write("".join(journal_lines[start : start + 50]))
                handle.flush()
        written.set()

    thread = threading.Thread(target=writer)
    thread.start()
    _follow(monitor, journal, settings, state, tmp_path / "page.html", 0.02, stop=written.is_set)
    thread.join()
    one_pass = Monitor()
    one_pass.feed(journal_lines[:400], {"BTCUSDT": load_sample("BTCUSDT-1h").loc["2025-06-01":]})
    saved = json.loads(state.read_text())
    assert saved["pooled"] == json.loads(json.dumps(one_pass.to_dict()["pooled"]))
    assert saved["position"]["offset"] == len("".join(journal_lines[:400]).encode())


def test_options_that_would_be_ignored_are_refused(tmp_path, journal_lines, capsys):
    journal = tmp_path / "journal.log"
    journal.write_text("".join(journal_lines[:100]))
    settings = _settings(tmp_path, journal)
    for argv, message in (
        (["--end", "2026-03-01"], "--end applies to --history only"),
        (["--history", "2026-01-01", "--follow"], "--follow does not apply to --history"),
        (["--history"], "--history needs a START date"),
        (["--follow", "--poll", "0"], "--poll must be a positive number"),
    ):
        assert main(["monitor", str(settings), *argv]) == 1, argv
        assert message in capsys.readouterr().err, argv
    assert main(["monitor", str(settings)]) == 0
    # the journald year is part of what the state was made under
    assert main(["monitor", str(_settings(tmp_path, journal, "year = 2026"))]) == 1
    assert "year changed" in capsys.readouterr().err


def test_a_prediction_store_is_read_as_the_stages_journal_run_after_run(tmp_path, capsys):
    store = tmp_path / "store.toml"
    body = f"""
[data]
samples = ["ETHUSDT-1h"]
start = "2025-09-01"
{{end}}
[predictions]
file = "{sample_dir() / "sample-predictions.parquet"}"

[monitor]
start = "2026-01-01"
state = "store-state.json"
out = "store.html"
"""
    # the first run sees the bars up to February, the second up to April
    store.write_text(body.replace("{end}", 'end = "2026-02-15"'))
    assert main(["monitor", str(store)]) == 0
    first = capsys.readouterr().out
    assert "new decision records" in first
    store.write_text(body.replace("{end}", 'end = "2026-04-01"'))
    assert main(["monitor", str(store)]) == 0
    capsys.readouterr()
    state = json.loads((tmp_path / "store-state.json").read_text())
    # one pass over the same span from a fresh state
    (tmp_path / "store-state.json").unlink()
    assert main(["monitor", str(store)]) == 0
    capsys.readouterr()
    again = json.loads((tmp_path / "store-state.json").read_text())
    for key in ("watches", "pooled", "tracks", "reader", "store_times"):
        assert state[key] == again[key], key
    assert state["watches"]["ETHUSDT"]["decisions"] > 1000
