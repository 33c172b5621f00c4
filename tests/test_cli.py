"""The command line: every subcommand, and bad input ending in a one-line error and a
non-zero exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from livelog_fixtures import make_journal

from qt_backtest import cli
from qt_backtest.data import sample_dir

PREDICTIONS = sample_dir() / "sample-predictions.parquet"


def settings_file(tmp_path: Path, body: str, name: str = "settings.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


RUN = f"""
title = "test run"
[data]
samples = ["BTCUSDT-1h", "ETHUSDT-1h"]
start = "2026-03-01"
[predictions]
file = "{PREDICTIONS}"
[hierarchy.arbiter]
arbiter_threshold = 0.75
[rules]
fee = 0.001
[report]
override_limit = 10
"""


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith("qt-backtest:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_run_writes_the_report_and_saves_the_study(tmp_path, capsys):
    settings = settings_file(tmp_path, RUN)
    out, saved = tmp_path / "run.html", tmp_path / "study"
    code, stdout, _ = run_cli(capsys, "run", str(settings), "--out", str(out), "--save", str(saved))
    assert code == 0
    assert f"report written to {out.resolve()}" in stdout
    assert "meta_arbiter" in stdout
    # the verdict table, then one sentence per symbol and transition
    assert "verdicts (1D returns, paired):" in stdout
    assert "meta_arbiter vs meta" in stdout and "bootstrap_p" in stdout
    assert "  Arbiter on top of Meta, BTCUSDT: " in stdout
    page = out.read_text()
    assert "<title>test run</title>" in page and "Rollout check" in page
    # the settings reached the study
    assert "Arbiter threshold 0.75" in page and "fees 0.100 % a side" in page
    code, stdout, _ = run_cli(capsys, "report", str(saved), "--out", str(tmp_path / "again.html"))
    assert code == 0
    assert (tmp_path / "again.html").read_text().count("<section") == page.count("<section")


def test_verdict_settings_reach_the_study():
    from qt_backtest.inference import VerdictSettings
    from qt_backtest.settings import parse_settings

    document = {
        "verdict": {"confidence": 0.8, "draws": 500, "block_length": "auto", "seed": 7},
    }
    settings = parse_settings(document)
    assert settings.verdict == VerdictSettings(confidence=0.8, draws=500, seed=7)
    fixed = parse_settings({"verdict": {"block_length": 12, "drops": [0.5]}})
    assert fixed.verdict.block_length == 12 and fixed.verdict.drops == (0.5,)


def test_sweep_writes_results_and_report(tmp_path, capsys):
    body = (
        RUN.replace('start = "2026-03-01"', 'start = "2026-01-01"')
        + """
[sweep]
modes = ["meta_arbiter"]
blocks = 4
[sweep.grid]
"arbiter.arbiter_threshold" = [0.6, 0.8]
"rules.max_hold_bars" = ["none", 5]
"""
    )
    settings = settings_file(tmp_path, body)
    out, results = tmp_path / "sweep.html", tmp_path / "sweep.csv"
    code, stdout, _ = run_cli(
        capsys, "sweep", str(settings), "--out", str(out), "--results", str(results)
    )
    assert code == 0, stdout
    frame = pd.read_csv(results)
    assert len(frame) == 2 * 4
    assert set(frame["rules.max_hold_bars"].dropna()) == {5}
    assert "pbo" in stdout and "deflated_sharpe" in stdout and "simulated" in stdout
    assert "spa_consistent" in stdout and "reality_check" in stdout
    assert "Threshold sweep and overfitting" in out.read_text()


def test_replay_log_diffs_a_journal(tmp_path, capsys):
    journal, _, _, noise = make_journal(600, seed=3)
    path = tmp_path / "journal.log"
    path.write_text("\n".join(journal))
    mismatches, out = tmp_path / "mismatches.csv", tmp_path / "diff.html"
    code, stdout, _ = run_cli(
        capsys,
        "replay-log",
        str(path),
        "--year",
        "2026",
        "--mismatches",
        str(mismatches),
        "--out",
        str(out),
    )
    assert code == 0
    assert f"{noise:,} lines skipped" in stdout
    assert "final" in stdout
    assert mismatches.exists() and "Agreement per layer" in out.read_text()


def test_data_subcommands(tmp_path, capsys):
    source = str(sample_dir() / "ETHUSDT-1h.csv.gz")
    code, stdout, _ = run_cli(capsys, "data", "inspect", source)
    assert code == 0 and "73,265 1h bars" in stdout and "27 gap(s)" in stdout
    code, stdout, _ = run_cli(capsys, "data", "validate", source)
    assert code == 0 and "valid" in stdout
    code, _, err = run_cli(capsys, "data", "validate", "--strict", source)
    assert_one_line_error(code, err, "gap")
    out = tmp_path / "eth-4h.csv"
    code, stdout, _ = run_cli(capsys, "data", "resample", source, "--to", "4h", "--out", str(out))
    assert code == 0
    bars = pd.read_csv(out)
    # the count of source bars per bin is kept
    assert list(bars.columns) == ["timestamp", "open", "high", "low", "close", "volume", "bars"]
    assert 18_000 < len(bars) < 18_400 and (bars["bars"] == 4).all()
    code, stdout, _ = run_cli(capsys, "data", "inspect", str(out))
    assert code == 0 and f"{len(bars):,} 4h bars" in stdout


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ("[data\nsamples = 1", ["not valid TOML"]),
        (
            RUN + "\n[hierarchy.meta]\nconsensus = 0.8\n",
            ["unknown key(s) consensus", "[hierarchy.meta]"],
        ),
        (
            RUN.replace("arbiter_threshold = 0.75", "arbiter_threshold = 1.5"),
            ["arbiter_threshold", "1.5"],
        ),
        (RUN.replace("fee = 0.001", "fee = -1"), ["[rules]", "fee"]),
        (RUN + "\nspeed = 3\n", ["unknown key(s) speed"]),
        (
            RUN.replace('samples = ["BTCUSDT-1h", "ETHUSDT-1h"]', 'files = ["missing.csv"]'),
            ["missing.csv"],
        ),
        (RUN.replace(f'file = "{PREDICTIONS}"', 'file = "nowhere.parquet"'), ["nowhere.parquet"]),
        (
            RUN.replace('samples = ["BTCUSDT-1h", "ETHUSDT-1h"]', 'samples = ["DOGE-1h"]'),
            ["DOGE-1h"],
        ),
        (RUN.replace('start = "2026-03-01"', 'start = "2030-01-01"'), ["no bars"]),
        (RUN + "\n[verdict]\nconfidence = 95\n", ["[verdict]", "confidence"]),
        (RUN + "\n[verdict]\nblock_length = 0.2\n", ["[verdict]", "block_length"]),
        (RUN + '\n[verdict]\nperiod = "weekly"\n', ["[verdict]", "period"]),
        (RUN + "\n[verdict]\nlevel = 0.9\n", ["unknown key(s) level", "[verdict]"]),
    ],
)
def test_bad_settings_give_one_line_errors(tmp_path, capsys, body, fragments):
    settings = settings_file(tmp_path, body)
    code, _, err = run_cli(capsys, "run", str(settings), "--out", str(tmp_path / "x.html"))
    assert code == cli.EXIT_INPUT
    assert_one_line_error(code, err, *fragments)


def test_bad_sweeps_give_one_line_errors(tmp_path, capsys):
    unknown = settings_file(tmp_path, RUN + '\n[sweep.grid]\n"arbiter.speed" = [1, 2]\n')
    code, _, err = run_cli(capsys, "sweep", str(unknown))
    assert_one_line_error(code, err, "unknown parameter 'arbiter.speed'")
    out_of_range = settings_file(
        tmp_path, RUN + '\n[sweep.grid]\n"meta.consensus_threshold" = [0.5, 2.0]\n', "b.toml"
    )
    code, _, err = run_cli(capsys, "sweep", str(out_of_range))
    assert_one_line_error(code, err, "consensus_threshold")
    empty = settings_file(tmp_path, RUN, "c.toml")
    code, _, err = run_cli(capsys, "sweep", str(empty))
    assert_one_line_error(code, err, "[sweep.grid]")


def test_missing_files_and_bad_usage(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", str(tmp_path / "absent.toml"))
    assert_one_line_error(code, err, "absent.toml")
    code, _, err = run_cli(capsys, "report", str(tmp_path))
    assert_one_line_error(code, err, "no saved study")
    code, _, err = run_cli(capsys, "replay-log", str(tmp_path / "journal.log"))
    assert_one_line_error(code, err, "journal.log")
    garbage = tmp_path / "garbage.log"
    garbage.write_text("nothing here\nat all\n")
    code, _, err = run_cli(capsys, "replay-log", str(garbage))
    assert_one_line_error(code, err, "no decision", "2 lines skipped")
    broken = tmp_path / "broken.csv"
    broken.write_text(
        "timestamp,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,10\n2024-01-01,1,2,0.5,1.5,10\n"
    )
    code, _, err = run_cli(capsys, "data", "validate", str(broken))
    assert_one_line_error(code, err, "broken.csv", "duplicate")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run"])
    assert exit_info.value.code == cli.EXIT_USAGE


def test_the_installed_entry_point_answers_help():
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "qt-backtest"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0
    for command in ("run", "sweep", "report", "replay-log", "data"):
        assert command in completed.stdout
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "qt-backtest"), "data", "inspect", "/nonexistent.csv"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stderr.strip().count("\n") == 0 and "nonexistent" in completed.stderr


def test_run_names_model_slots_without_votes(tmp_path, capsys):
    votes = pd.read_parquet(PREDICTIONS)
    two = votes[[c for c in votes.columns if not c.startswith(("nhits", "patchtst"))]]
    path = tmp_path / "two-models.parquet"
    two.to_parquet(path)
    settings = settings_file(tmp_path, RUN.replace(str(PREDICTIONS), str(path)))
    code, stdout, err = run_cli(capsys, "run", str(settings), "--out", str(tmp_path / "r.html"))
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("qt-backtest: note:")]
    assert len(notes) == 1, err  # said once, for both symbols
    for fragment in (
        "nhits has no predictions",
        "patchtst has no predictions",
        "BTCUSDT",
        "ETHUSDT",
        "pads a missing vote as HOLD/0.50",
    ):
        assert fragment in notes[0]
    assert "evaluation window" in stdout and "buy_and_hold" in stdout
    assert "nhits has no predictions" in (tmp_path / "r.html").read_text()


def test_compare_sets_two_saved_studies_side_by_side(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, fee in ((first, "0.001"), (second, "0.002")):
        settings = settings_file(
            tmp_path, RUN.replace("fee = 0.001", f"fee = {fee}"), f"{fee}.toml"
        )
        code, _, err = run_cli(
            capsys, "run", str(settings), "--out", str(tmp_path / "x.html"), "--save", str(folder)
        )
        assert code == 0, err
    code, stdout, err = run_cli(capsys, "compare", str(first), str(second))
    assert code == 0, err
    assert "rules.fee" in stdout and "0.001" in stdout and "0.002" in stdout
    assert "difference" in stdout and "BTCUSDT" in stdout and "buy_and_hold" in stdout
    code, _, err = run_cli(capsys, "compare", str(first), str(second), "--metrics", "nope")
    assert_one_line_error(code, err, "nope")


TRAIN = """
title = "trained"
[data]
samples = ["BTCUSDT-1h"]
start = "2026-02-01"
[predictions]
train = ["xgb"]
cache_dir = "votes-cache"
[predictions.walk_forward]
train_window = "20D"
min_train = "20D"
step = "7D"
[report]
override_limit = 5
"""


def test_run_trains_walk_forward_from_the_settings_file(tmp_path, capsys, monkeypatch):
    settings = settings_file(tmp_path, TRAIN)
    monkeypatch.chdir(tmp_path.parent)  # the cache resolves against the file, not here
    argv = ("run", str(settings), "--out", str(tmp_path / "t.html"))
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert list((tmp_path / "votes-cache").glob("xgb-*.parquet"))
    folds = [line for line in err.splitlines() if "xgb on BTCUSDT: fold" in line]
    assert folds and "elapsed" in folds[-1] and "left" in folds[-1]
    done, total = folds[-1].split("fold ")[1].split(",")[0].split("/")
    assert done == total
    assert "trained xgb on BTCUSDT in" in err
    # the slots the run did not train are named once
    assert "lgbm has no predictions" in err and "patchtst has no predictions" in err
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert "xgb on BTCUSDT: votes loaded from the cache" in err
    assert "fold 1/" not in err


def test_folds_trained_at_once_give_the_same_votes(tmp_path, capsys):
    """``workers = 2`` trains two walk-forward folds at a time (I-WF-2): the tree votes are the
    ones of one fold after another, bit for bit."""
    votes = []
    for workers in (1, 2):
        folder = tmp_path / f"workers-{workers}"
        folder.mkdir()
        body = TRAIN.replace(
            'cache_dir = "votes-cache"', f'cache_dir = "votes-cache"\nworkers = {workers}'
        )
        settings = settings_file(folder, body)
        code, _, err = run_cli(capsys, "run", str(settings), "--out", str(folder / "t.html"))
        assert code == 0, err
        (cached,) = (folder / "votes-cache").glob("xgb-*.parquet")
        votes.append(pd.read_parquet(cached))
    pd.testing.assert_frame_equal(votes[0], votes[1], check_exact=True)
    assert votes[0]["fold"].nunique() > 2


def test_workers_without_training_is_refused(tmp_path, capsys):
    settings = settings_file(tmp_path, RUN.replace("[predictions]", "[predictions]\nworkers = 2"))
    code, _, err = run_cli(capsys, "run", str(settings))
    assert_one_line_error(code, err, "predictions.workers applies only with train")


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ('train = ["xgb"]', ('train = ["gpt"]', "unknown model slot(s) ['gpt']")),
        ('step = "7D"', ('step = "soon"', "neither a bar count nor a duration")),
        ('step = "7D"', ("stride = 3", "unknown key(s) stride")),
        ('train = ["xgb"]', ('train = ["xgb"]\nworkers = 0', "predictions.workers")),
        ('train = ["xgb"]', ('train = ["xgb"]\nworkers = true', "integer >= 1, got True")),
    ],
)
def test_training_settings_are_checked_when_read(tmp_path, capsys, change, fragments):
    replacement, message = fragments
    settings = settings_file(tmp_path, TRAIN.replace(change, replacement))
    code, _, err = run_cli(capsys, "run", str(settings))
    assert_one_line_error(code, err, message)
    assert "training xgb" not in err and "loading votes" not in err


def test_grid_names_and_values_are_checked_when_read(tmp_path, capsys):
    for grid, message in (
        ('"arbiter.nonsense" = [1]', "unknown parameter 'arbiter.nonsense'"),
        ('"arbiter.arbiter_threshold" = [0.5, 7]', "sweep.grid.arbiter.arbiter_threshold = 7"),
        ('"ensemble.weights.gpt" = [0.5]', "unknown model(s) ['gpt']"),
    ):
        body = RUN + f"[sweep.grid]\n{grid}\n"
        settings = settings_file(tmp_path, body)
        code, _, err = run_cli(capsys, "sweep", str(settings))
        assert_one_line_error(code, err, message)
        assert "loading votes" not in err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[data]", '[data]\ngaps = "sometimes"'), "data.gaps must be one of"),
        (('start = "2026-03-01"', "start = 5"), "data.start must be a date"),
        (('start = "2026-03-01"', 'start = "yesterday-ish"'), "data.start is not a date"),
        (("override_limit = 10", 'override_limit = "x"'), "report.override_limit"),
        (("override_limit = 10", "override_limit = -1"), "report.override_limit"),
        (("override_limit = 10", 'max_trades = "abc"'), "report.max_trades"),
        (("override_limit = 10", "heatmaps = 5"), "report.heatmaps"),
        (("[report]", '[sweep]\nmetric = "foo"\n[report]'), "sweep.metric 'foo'"),
        (("[report]", "[sweep]\nblocks = 3\n[report]"), "sweep.blocks must be even"),
    ],
)
def test_every_setting_is_checked_when_the_file_is_read(tmp_path, capsys, change, message):
    old, new = change
    settings = settings_file(tmp_path, RUN.replace(old, new, 1))
    code, _, err = run_cli(capsys, "run", str(settings))
    assert_one_line_error(code, err, message)
    assert "loading votes" not in err  # nothing was computed first


def test_gaps_raise_applies_to_bundled_samples_too(tmp_path, capsys):
    settings = settings_file(tmp_path, RUN.replace("[data]", '[data]\ngaps = "raise"', 1))
    code, _, err = run_cli(capsys, "run", str(settings))
    assert_one_line_error(code, err, "gap")


def test_outputs_in_the_settings_file_resolve_against_it(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "project" / "settings"
    folder.mkdir(parents=True)
    body = RUN.replace("[report]", '[report]\nout = "../reports/r.html"\nsave = "../saved"', 1)
    settings = settings_file(folder, body)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, stdout, err = run_cli(capsys, "run", str(settings))
    assert code == 0, err
    written = tmp_path / "project" / "reports" / "r.html"
    assert written.is_file() and (tmp_path / "project" / "saved" / "study.json").is_file()
    assert f"report written to {written.resolve()}" in stdout
    assert not list(elsewhere.iterdir())


def test_an_unwritable_output_is_a_one_line_error(tmp_path, capsys):
    settings = settings_file(tmp_path, RUN)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(capsys, "run", str(settings), "--out", str(blocker / "r.html"))
    assert_one_line_error(code, err, str(blocker))


def shifted_predictions(tmp_path, shift, every_other=False):
    votes = pd.read_parquet(PREDICTIONS)
    frame = votes.reset_index()
    frame["timestamp"] = frame["timestamp"] + shift
    if every_other:
        frame = frame[frame.groupby("symbol").cumcount() % 2 == 0]
    path = tmp_path / "shifted.parquet"
    frame.set_index(["symbol", "timestamp"]).to_parquet(path)
    return settings_file(tmp_path, RUN.replace(str(PREDICTIONS), str(path)))


@pytest.mark.parametrize(
    ("shift", "message"),
    [
        (pd.Timedelta(days=-4000), "cover none of the bars"),
        (pd.Timedelta(minutes=30), "fall on a bar's timestamp"),
    ],
)
def test_predictions_that_do_not_fit_the_bars_are_an_error(tmp_path, capsys, shift, message):
    settings = shifted_predictions(tmp_path, shift)
    code, _, err = run_cli(capsys, "run", str(settings))
    assert_one_line_error(code, err, message)


def test_predictions_shifted_by_a_bar_or_partial_are_warned_with_figures(tmp_path, capsys):
    settings = shifted_predictions(tmp_path, pd.Timedelta(hours=1))
    code, _, err = run_cli(capsys, "run", str(settings), "--out", str(tmp_path / "a.html"))
    assert code == 0, err
    assert "fall just after the last bar (shifted by a bar?)" in err
    holes = shifted_predictions(tmp_path, pd.Timedelta(0), every_other=True)
    code, _, err = run_cli(capsys, "run", str(holes), "--out", str(tmp_path / "b.html"))
    assert code == 0, err
    assert "cover 50." in err and "of the bars from their first to their last" in err


@pytest.mark.parametrize("name", ["_bars.csv", '"quoted".csv'])
def test_a_file_name_without_a_symbol_is_a_one_line_error(tmp_path, capsys, name):
    from qt_backtest.data import load_sample

    bars = load_sample("BTCUSDT-1h").iloc[-300:].rename_axis("timestamp").reset_index()
    bars.to_csv(tmp_path / name, index=False)
    body = RUN.replace('samples = ["BTCUSDT-1h", "ETHUSDT-1h"]', f"files = [{name!r}]")
    settings = settings_file(tmp_path, body.replace('start = "2026-03-01"', ""))
    code, _, err = run_cli(capsys, "run", str(settings))
    assert_one_line_error(code, err, "cannot tell the symbol from the file name")
