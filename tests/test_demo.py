"""The main job runs on the bundled sample and reports what it computed."""

from __future__ import annotations

from qt_backtest import demo


def test_demo_summarises_both_samples_and_writes_the_report(capsys, tmp_path):
    out = tmp_path / "demo.html"
    demo.main(["--out", str(out), "--override-limit", "20"])
    output = capsys.readouterr().out
    for name in ("BTCUSDT-1h", "ETHUSDT-1h"):
        assert f"{name}: 73,265 1h bars, 2018-01-01 00:00 .. 2026-05-16 18:00 UTC" in output
    assert output.count("27 gap(s), 122 missing 1h bar(s)") == 2
    for column in ("rsi", "macd", "macd_signal", "bb_position", "volume_trend", "momentum"):
        assert f"\n    {column} " in output
    assert output.count("equals the batch kernel: True") == 2
    assert output.count("hierarchy replay (xgb, lgbm, nhits, patchtst votes on") == 2
    for rate in ("escalation_rate", "defer_rate", "override_rate_when_called"):
        assert output.count(rate) == 2
    assert f"the report is at {out.resolve()}" in output
    for run in ("ensemble", "meta", "meta_arbiter", "arbiter_only", "buy_and_hold"):
        assert f"equal-weight {run} " in output
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    for section in ("Mode comparison", "Rollout check", "Threshold sweep and overfitting"):
        assert f"<h2>{section}</h2>" in page


def test_demo_retrains_votes_into_its_cache(tmp_path, monkeypatch):
    from qt_backtest.data import load_sample

    monkeypatch.setattr(demo, "CACHE", tmp_path)
    frame = load_sample("BTCUSDT-1h").iloc[:9000]
    votes = demo._votes("BTCUSDT", frame, retrain=True, models=("xgb", "lgbm"))
    assert list(votes.columns) == ["xgb_action", "xgb_confidence", "lgbm_action", "lgbm_confidence"]
    assert votes["xgb_action"].notna().sum() == 9000 - 8765
    assert len(list(tmp_path.glob("*.parquet"))) == 2
