"""HTML reports: content, formatting, self-containment, save/load, and a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qt_backtest.data import load_sample, per_symbol, sample_dir
from qt_backtest.report import load_study, render_report, run_study, write_report
from qt_backtest.report.build import render_page
from qt_backtest.report.format import duration, integer, number, percent, signed_percent, table
from qt_backtest.signals import read_predictions

SECTIONS = (
    "Verdict",
    "Answer",
    "Configuration and data",
    "Mode comparison",
    "Decision sources and reasons",
    "Rollout check",
    "Override value",
    "Model diagnostics",
    "Threshold sweep and overfitting",
    "Trades",
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@pytest.fixture(scope="module")
def study():
    votes = read_predictions(sample_dir() / "sample-predictions.parquet")
    bars = {s: load_sample(f"{s}-1h").iloc[-3000:] for s in ("BTCUSDT", "ETHUSDT")}
    by_symbol = {s: frame.reindex(bars[s].index) for s, frame in per_symbol(votes).items()}
    return run_study(
        bars,
        by_symbol,
        override_limit=15,
        sweep_grid={
            "arbiter.arbiter_threshold": [0.6, 0.7, 0.8],
            "meta.consensus_threshold": [0.5, 0.75, 1.0],
            "rules.max_hold_bars": [None, 5],
        },
        sweep_options={"modes": ["meta_arbiter"], "blocks": 6},
        title="Report under test",
    )


@pytest.fixture(scope="module")
def page(study):
    return render_report(study, max_trades=12)


def test_formatting_for_people():
    assert percent(0.12345) == "12.3 %"
    assert signed_percent(0.05) == "+5.0 %"
    assert integer(1234567) == "1,234,567"
    assert number(1234.5678) == "1,234.57"
    assert percent(np.nan) == "\u2013" and number(None) == "\u2013"
    assert duration(pd.Timedelta(days=3, hours=5)) == "3 d 5 h"
    html = table(pd.DataFrame({"sharpe": [1.23456], "trades": [12345], "note": ["<b>"]}))
    assert "1.23" in html and "12,345" in html and "&lt;b&gt;" in html


def test_every_section_and_figure_is_in_the_page(study, page):
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
    assert page.count('<svg role="img"') == len(re.findall(r"<figure>", page))
    # per symbol: equity, four decision mixes (at most), override histogram, reliability,
    # heatmaps, walk-forward
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for label in (
            "equity and drawdown",
            "value of each override",
            "reliability",
            "walk-forward selection",
        ):
            assert f'aria-label="{symbol}: {label}"' in page
        assert f'aria-label="{symbol}: sharpe over ' in page
    assert "showing 12 of" in page  # trades truncated with a count


def test_numbers_match_the_study(study, page):
    row = study.table.loc[("BTCUSDT", "meta_arbiter")]
    assert signed_percent(row["total_return"]) in page
    assert number(row["sharpe"]) in page
    summary = study.sweep.overfitting.set_index("symbol").loc["ETHUSDT"]
    assert percent(summary["pbo"]) in page
    assert percent(summary["deflated_sharpe"]) in page
    rates = study.rollout.set_index(["symbol", "criterion"])["value"]
    assert f"<td>{percent(rates['BTCUSDT', 'escalation_rate'])}</td>" in page
    assert f"<td>{number(rates['ETHUSDT', 'sharpe_vs_ensemble'], 3)}</td>" in page
    passes = int(study.rollout["passes"].sum())
    assert f"{passes} of {len(study.rollout)} criteria pass" in page
    assert page.count("badge pass'>pass<") == passes


def test_heatmaps_of_chosen_parameter_pairs(study):
    pair = ("rules.max_hold_bars", "arbiter.arbiter_threshold")
    page = render_report(study, heatmaps=[pair])
    assert page.count('aria-label="BTCUSDT: sharpe over ') == 1
    assert (
        'aria-label="BTCUSDT: sharpe over arbiter.arbiter_threshold by rules.max_hold_bars"' in page
    )
    with pytest.raises(ValueError, match="not swept"):
        render_report(study, heatmaps=[("meta.entropy_threshold", "rules.fee")])


def test_the_report_opens_with_an_answer(study, page):
    from qt_backtest.report.build import answer_sentence

    sentence = answer_sentence(study)
    assert page.index(html_escape(sentence)) < page.index("<h2>Configuration and data</h2>")
    table = study.table
    assert number(table.loc[("equal_weight", "meta_arbiter"), "sharpe"]) in sentence
    assert number(table.loc[("equal_weight", "buy_and_hold"), "sharpe"]) in sentence
    assert "thresholds for the full hierarchy from the sweep: BTCUSDT arbiter." in sentence


def test_the_report_opens_with_the_verdict(study, page):
    """The first section: one sentence per transition and symbol, the forest plot, the
    p-values, the Model Confidence Set and the track records; the rollout power figures sit
    with the rollout check."""
    assert page.index("<h2>Verdict</h2>") < page.index("<h2>Answer</h2>")
    verdict = page[page.index("<h2>Verdict</h2>") : page.index("<h2>Answer</h2>")]
    tests = study.verdict_tests
    assert len(tests) == 3 * 4  # two symbols and the aggregate, four transitions
    for sentence in tests["sentence"]:
        assert html_escape(sentence) in verdict
    assert 'aria-label="Sharpe difference of each transition"' in verdict
    row = tests.set_index(["symbol", "later", "earlier"]).loc[("BTCUSDT", "meta_arbiter", "meta")]
    assert f"[{number(row['low'])}, {number(row['high'])}]" in verdict
    assert "iid p (assumes independence)" in verdict
    assert "id='verdict-confidence-set'" in verdict and "id='verdict-track-record'" in verdict
    # where the value comes from: regimes and break-even fees
    assert "id='verdict-regimes'" in verdict and "id='verdict-break-even'" in verdict
    regimes = study.verdict_regimes
    assert set(regimes["symbol"]) == {"BTCUSDT", "ETHUSDT"}
    assert set(regimes["regime"]) >= {"high volatility", "trend up"}
    break_even = study.verdict_break_even.set_index(["symbol", "later", "earlier", "metric"])
    assert break_even.loc[("BTCUSDT", "meta", "ensemble", "sharpe"), "status"] == "identical runs"
    rollout = page[page.index("<h2>Rollout check</h2>") : page.index("<h2>Override value</h2>")]
    assert "id='rollout-power'" in rollout
    power = study.verdict_power
    days = power[(power["symbol"] == "BTCUSDT") & (power["later"] == "meta_arbiter")]
    days = days[(days["earlier"] == "ensemble") & (days["annual_drop"] == 0.5)]["days"].iloc[0]
    assert f"<td class='num'>{integer(days)}</td>" in rollout


def test_the_sweep_section_tests_the_combinations_against_the_benchmarks(study, page):
    superiority = study.sweep.superiority
    assert set(superiority["benchmark"]) == {"ensemble", "buy_and_hold"}
    assert set(superiority["symbol"]) == {"BTCUSDT", "ETHUSDT"}
    section = page[page.index("<h2>Threshold sweep and overfitting</h2>") :]
    assert "id='superiority'" in section and "Reality Check p" in section
    row = superiority.set_index(["symbol", "benchmark"]).loc[("ETHUSDT", "ensemble")]
    assert row["distinct"] <= study.sweep.frame["combination"].nunique()


def test_a_study_without_verdicts_has_no_verdict_section(study):
    import dataclasses

    bare = dataclasses.replace(study, verdict_tests=pd.DataFrame(), verdict_power=pd.DataFrame())
    page = render_report(bare)
    assert "<h2>Verdict</h2>" not in page and "id='rollout-power'" not in page


def test_default_heatmaps_show_the_full_hierarchy_with_the_best_cell_boxed(study, page):
    figures = re.findall(
        r'<figure><svg[^>]*aria-label="BTCUSDT: sharpe over .*?</figure>', page, re.S
    )
    assert len(figures) == 1
    # the red box and its label are drawn, and the caption says what they mark
    assert ">best<" in figures[0] and "a red box marks the best cell" in figures[0]
    assert "BTCUSDT (meta_arbiter)" in figures[0]


def test_the_best_table_has_one_row_per_stream_and_buy_and_hold_last(study):
    from qt_backtest.report.build import _best_table

    rows = study.sweep.frame[study.sweep.frame["symbol"] == "ETHUSDT"]
    best = _best_table(rows, study.sweep, "ETHUSDT")
    streams = rows.set_index("combination").loc[best.index[:-1].astype(int), "stream"]
    assert streams.is_unique
    assert best.index[-1] == "buy_and_hold"
    reference = study.sweep.reference.set_index("symbol").loc["ETHUSDT"]
    assert best["sharpe"].iloc[-1] == reference["sharpe"]
    assert best["same_trades"].iloc[:-1].sum() <= len(rows)
    assert (best["same_trades"].iloc[:-1] >= 1).all()


def test_the_page_is_self_contained(page):
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)
    assert "<script" not in page and "<link" not in page and "@import" not in page


def test_a_saved_study_renders_the_same(tmp_path, study, page):
    folder = study.save(tmp_path / "study")
    again = load_study(folder)
    pd.testing.assert_frame_equal(again.table, study.table)
    pd.testing.assert_frame_equal(again.sweep.frame, study.sweep.frame)
    pd.testing.assert_frame_equal(again.verdict_tests, study.verdict_tests)
    pd.testing.assert_frame_equal(again.verdict_power, study.verdict_power)
    pd.testing.assert_frame_equal(again.sweep.superiority, study.sweep.superiority)
    assert again.verdict_settings == study.verdict_settings
    for symbol in study.symbols:
        pd.testing.assert_frame_equal(again.equity[symbol], study.equity[symbol])
    assert render_report(again, max_trades=12) == page
    with pytest.raises(FileNotFoundError, match="no saved study"):
        load_study(tmp_path)


def chromium() -> str:
    """Headless Chromium; a test needing it skips without it, except on CI (CI=true), where
    its absence is a failure."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail("Chromium is missing on CI: `make test` installs Debian's chromium package")
    pytest.skip("Chromium is not installed (sudo apt-get install chromium); CI runs this test")


def browse(tmp_path: Path, html_file: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            *extra,
            html_file.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def test_the_report_renders_in_headless_chromium(tmp_path, study):
    path = write_report(study, tmp_path / "report.html", max_trades=12)
    dumped = browse(tmp_path, path, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert console_errors(dumped.stderr) == []
    dom = dumped.stdout
    headings = re.findall(r"<h2>(.*?)</h2>", dom)
    assert headings == list(SECTIONS)
    figures = len(re.findall(r"<figure>", path.read_text()))
    assert figures >= 14
    assert len(re.findall(r'<svg[^>]*role="img"', dom)) == figures
    screenshot = tmp_path / "report.png"
    shot = browse(tmp_path, path, f"--screenshot={screenshot}", "--window-size=1400,2200")
    assert shot.returncode == 0, shot.stderr[-2000:]
    image = screenshot.read_bytes()
    assert image.startswith(b"\x89PNG") and len(image) > 50_000


def test_the_console_check_catches_an_error(tmp_path):
    # the same check on a page that does throw: proves the check above can fail
    broken = tmp_path / "broken.html"
    broken.write_text(
        render_page("broken", [{"id": "x", "title": "X", "blocks": ["<p>x</p>"]}]).replace(
            "</body>", "<script>undefinedFunction();</script></body>"
        )
    )
    dumped = browse(tmp_path, broken, "--dump-dom")
    assert console_errors(dumped.stderr), dumped.stderr[-2000:]


def test_model_diagnostics_show_the_baselines_without_skill(study, page):
    assert "one in three" not in page
    skill = study.skill.set_index(["symbol", "model"])
    row = skill.loc[("BTCUSDT", "meta_arbiter (final)")]
    # HOLD dominates the labels: the majority rate is far above a third
    assert row["majority_rate"] > 0.5
    for column in ("hit_rate", "balanced_accuracy", "majority_rate", "random_rate"):
        assert f"'num'>{percent(row[column])}</td>" in page
    assert {"recall_sell", "recall_hold", "recall_buy"} <= set(skill.columns)


def test_prices_are_shown_with_the_decimals_of_the_data():
    from qt_backtest.report.format import price, price_decimals

    assert price_decimals([0.5123, 0.5, 0.61]) == 4  # XRP-like quotes
    assert price_decimals([65123.45, 65000.1]) == 2
    assert price_decimals([1.0, 2.0]) == 2
    assert price_decimals([0.00001234]) == 8
    assert price_decimals([np.nan, 0.123]) == 3
    assert price(0.5123, 4) == "0.5123" and price(65123.456, 2) == "65,123.46"


def test_trades_of_a_finely_quoted_symbol_keep_their_decimals(study):
    import dataclasses

    provenance = study.provenance.assign(price_decimals=5)
    finer = dataclasses.replace(study, provenance=provenance)
    page = render_report(finer, max_trades=3)
    trade = study.trades[study.trades["symbol"] == "BTCUSDT"].iloc[0]
    assert f"'num'>{trade['entry_price']:,.5f}</td>" in page


def test_provenance_hashes_the_file_actually_read(tmp_path, monkeypatch):
    from qt_backtest.data import load_ohlcv
    from qt_backtest.report.study import file_digest, provenance

    source = sample_dir() / "BTCUSDT-1h.csv.gz"
    bars = load_ohlcv(source)
    # a decoy of the same name in the current folder must not be what is hashed
    monkeypatch.chdir(tmp_path)
    (tmp_path / source.name).write_bytes(b"decoy")
    row = provenance({"BTCUSDT": bars}).iloc[0]
    assert row["sha256"] == file_digest(source) and row["sha256_of"] == "file"
    assert row["path"] == str(source.resolve())
    memory = bars.copy()
    memory.attrs = {}
    row = provenance({"BTCUSDT": memory}).iloc[0]
    assert row["sha256_of"] == "table" and row["source"] == "(in memory)"


def test_browser_tests_skip_without_chromium_except_on_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="missing on CI"):
        chromium()
