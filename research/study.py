"""Does Meta-V2 + Arbiter add value, beyond chance? BTC, ETH, SOL and BNB at 1h, BTC and ETH
at 5m.

Votes: the bundled out-of-sample votes of all four slots for BTC and ETH at 1h; for SOL and
BNB at 1h the tree slots (xgb, lgbm) with the same walk-forward scheme (monthly retraining on a
one-year window, purged by the 5-bar label horizon), trained here and cached in
``.cache/predictions``; at 5m the tree slots on BTC and ETH with every span re-expressed in
time (features over the same hours, a 5-hour label horizon of 60 bars, monthly retraining on
half a year: the 5m files hold about 14 months). Bars from the full market data files
(``data/PROVENANCE.md`` and ``tests/data/PROVENANCE.md`` name their sources; the checkout holds
only BTC and ETH at 1h in full).

What it does:

1. the rollout stages (ensemble, meta, meta_arbiter, the Arbiter alone, buy-and-hold) under
   both fidelities (``production``: the live engine's behaviour; ``intended``: the fixes
   H-FID-1 to H-FID-7) and both MACD units (price, percent of price), next-bar-open execution,
   0.04 % fees a side, each with its verdict (paired bootstrap interval and HAC p-value of the
   Sharpe difference of the full hierarchy against ensemble-only);
2. the study at 1h (production, live thresholds): verdicts per transition and symbol, the
   Model Confidence Set, track records, rollout power, value per regime, break-even fees, the
   rollout check, and a sweep of the Arbiter threshold, the Meta consensus and low-confidence
   thresholds and the fidelity with PBO, the deflated Sharpe ratio, SPA and StepM;
3. the same verdicts at 5m;
4. findings written from those numbers, at the top of ``reports/study.html``.

Run: ``python research/study.py --data FOLDER [--out reports/study.html]``, ``FOLDER`` holding
``{BTC,ETH,SOL,BNB}USDT-1h.csv.gz`` and ``{BTC,ETH}USDT-5m.csv.gz``.
"""

from __future__ import annotations

import argparse
import html
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from qt_backtest.backtest import PositionRules, compare_modes, rollout_check
from qt_backtest.data import load_ohlcv, per_symbol, sample_dir
from qt_backtest.hierarchy import HierarchyConfig
from qt_backtest.indicators import ArbiterInputConfig, arbiter_inputs
from qt_backtest.inference import VerdictSettings, layer_verdicts
from qt_backtest.report import run_study, write_report
from qt_backtest.report.format import percent, table
from qt_backtest.signals import WalkForward, read_predictions
from qt_backtest.signals.cache import cached_walk_forward
from qt_backtest.signals.features import FeatureConfig

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")
SAMPLE_VOTES = ("BTCUSDT", "ETHUSDT")
MODELS = ("xgb", "lgbm")
SPLITTER = WalkForward(step=720, train_window=8760, min_train=8760, purge=5, horizon=5)
GRID = {
    "arbiter.arbiter_threshold": [0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90],
    "meta.consensus_threshold": [0.50, 0.75, 1.00],
    "meta.low_confidence_threshold": [0.45, 0.55, 0.65],
    "fidelity": ["production", "intended"],
}
CACHE = Path(".cache") / "predictions"
FIVE_MINUTE_SYMBOLS = ("BTCUSDT", "ETHUSDT")
#: 5m: every span of the hourly setup in the same time (12 bars an hour)
FIVE_MINUTE_FEATURES = FeatureConfig(
    ema_spans=(120, 240, 600),
    rsi_period=168,
    macd_fast=144,
    macd_slow=312,
    macd_signal=108,
    bb_period=240,
    volatility_period=240,
    momentum_lags=(120, 240),
    volume_short=60,
    volume_long=240,
)
FIVE_MINUTE_HORIZON = 60
FIVE_MINUTE_SPLITTER = WalkForward.from_spans(
    "5m", step="30D", train_window="180D", min_train="180D", purge=60, horizon=60
)
VERDICT = VerdictSettings()


def load_votes(symbol: str, bars: pd.DataFrame) -> pd.DataFrame:
    if symbol in SAMPLE_VOTES:
        sample = read_predictions(sample_dir() / "sample-predictions.parquet")
        return per_symbol(sample)[symbol].reindex(bars.index)
    votes = pd.DataFrame(index=bars.index)
    for model in MODELS:
        started = time.perf_counter()
        result = cached_walk_forward(bars, model, SPLITTER, CACHE, n_jobs=2)
        print(f"  {symbol} {model}: walk-forward votes in {time.perf_counter() - started:.0f} s")
        votes[f"{model}_action"] = result["action"]
        votes[f"{model}_confidence"] = result["confidence"]
    return votes


def fidelity_table(bars, votes, rules) -> pd.DataFrame:
    """Every stage under both fidelities and both MACD units, with the verdict of the full
    hierarchy against ensemble-only."""
    rows = []
    for fidelity in ("production", "intended"):
        for scale in ("price", "percent"):
            inputs = arbiter_inputs(bars, ArbiterInputConfig(macd_scale=scale))
            config = HierarchyConfig(fidelity=fidelity)
            comparison = compare_modes(bars, votes, inputs, rules, config)
            check = rollout_check(comparison)
            tests = layer_verdicts(comparison, VERDICT).tests
            for (symbol, run), row in comparison.table.iterrows():
                verdict = tests.loc[(symbol, "meta_arbiter", "ensemble")]
                full = run == "meta_arbiter"
                rows.append(
                    {
                        "fidelity": fidelity,
                        "macd": scale,
                        "symbol": symbol,
                        "run": run,
                        "total_return": row["total_return"],
                        "sharpe": row["sharpe"],
                        "max_drawdown": row["max_drawdown"],
                        "trades": row["trades"],
                        "rollout_passes": int(check.loc[symbol, "passes"].sum())
                        if symbol in check.index.get_level_values(0) and full
                        else np.nan,
                        "verdict_vs_ensemble": verdict["sentence"].split(": ", 1)[1]
                        if full
                        else "",
                    }
                )
    return pd.DataFrame(rows).set_index(["fidelity", "macd", "symbol", "run"])


def five_minute(data: Path, rules: PositionRules) -> pd.DataFrame:
    """Verdicts at 5m: the tree slots trained with every span re-expressed in time."""
    bars = {s: load_ohlcv(data / f"{s}-5m.csv.gz") for s in FIVE_MINUTE_SYMBOLS}
    votes = {}
    for symbol, frame in bars.items():
        votes[symbol] = pd.DataFrame(index=frame.index)
        for model in MODELS:
            started = time.perf_counter()
            result = cached_walk_forward(
                frame,
                model,
                FIVE_MINUTE_SPLITTER,
                CACHE,
                features=FIVE_MINUTE_FEATURES,
                horizon=FIVE_MINUTE_HORIZON,
                n_jobs=2,
            )
            elapsed = time.perf_counter() - started
            print(f"  {symbol} 5m {model}: walk-forward votes in {elapsed:.0f} s")
            votes[symbol][f"{model}_action"] = result["action"]
            votes[symbol][f"{model}_confidence"] = result["confidence"]
    inputs = {s: arbiter_inputs(frame) for s, frame in bars.items()}
    # as on SOL and BNB: the live configuration, whose neural slots have no votes here
    comparison = compare_modes(bars, votes, inputs, rules, HierarchyConfig())
    verdicts = layer_verdicts(comparison, VERDICT)
    table = verdicts.tests[["sharpe_difference", "low", "high", "p_value", "verdict", "sentence"]]
    sharpe = comparison.table["sharpe"].unstack("run")
    return table.join(sharpe[["ensemble", "meta_arbiter", "buy_and_hold"]], on="symbol")


def _count(tests: pd.DataFrame, later: str, earlier: str, word: str) -> list[str]:
    rows = tests.xs((later, earlier), level=("later", "earlier"))
    return [symbol for symbol, verdict in rows["verdict"].items() if verdict == word]


def _ruined_benchmarks(study) -> str:
    """A sentence naming the symbols where ensemble-only itself was closed out."""
    table = study.table
    ruined = [
        symbol
        for symbol, run in table.index
        if run == "ensemble" and bool(table.loc[(symbol, run), "ruined"])
    ]
    if not ruined:
        return ""
    return (
        f"Ensemble-only was closed out (ruined) on {', '.join(ruined)}: there, beating it says "
        "little about the thresholds. "
    )


def findings(fidelities: pd.DataFrame, study, fives: pd.DataFrame) -> list[str]:
    """Findings, each sentence built from the measured numbers and their verdicts."""
    tests = study.verdict_tests.set_index(["symbol", "later", "earlier"])
    lines = []
    loses = _count(tests, "meta_arbiter", "meta", "loses value")
    adds = _count(tests, "meta_arbiter", "meta", "adds value")
    lines.append(
        "<p><strong>Verdict at 1h</strong> (production, live thresholds, daily returns, "
        f"{VERDICT.confidence:.0%} intervals): the Arbiter on top of Meta loses value beyond "
        f"chance on {', '.join(loses) or 'no symbol'}, adds value on "
        f"{', '.join(adds) or 'no symbol'}, and shows no difference beyond chance elsewhere. "
        "Meta alone changes nothing (its escalations fall back to the ensemble: identical "
        "returns).</p>"
    )
    lines.append(
        "<ul>"
        + "".join(
            f"<li>{html.escape(sentence)}</li>"
            for sentence, later, earlier in zip(
                study.verdict_tests["sentence"],
                study.verdict_tests["later"],
                study.verdict_tests["earlier"],
                strict=True,
            )
            if (later, earlier) in {("meta_arbiter", "meta"), ("meta_arbiter", "buy_and_hold")}
        )
        + "</ul>"
    )
    power = study.verdict_power
    aggregate = power[
        (power["symbol"] == "equal_weight")
        & (power["later"] == "meta_arbiter")
        & (power["earlier"] == "ensemble")
    ].set_index("annual_drop")
    if len(aggregate):
        lines.append(
            "<p><strong>How long a rollout must run</strong>: to detect an annualised Sharpe "
            "drop of the full hierarchy against ensemble-only with 80 % power at 5 %, the "
            "equal-weight book needs "
            + ", ".join(
                f"{int(row['days']):,} days for a drop of {drop:g}"
                for drop, row in aggregate.iterrows()
            )
            + ". A rollout watched for hours or weeks cannot judge value by Sharpe.</p>"
        )
    breakeven = study.verdict_break_even
    crossing = breakeven[
        (breakeven["status"] == "crosses")
        & (breakeven["later"] == "meta_arbiter")
        & (breakeven["earlier"] == "meta")
        & (breakeven["metric"] == "sharpe")
    ]
    if len(crossing):
        lines.append(
            "<p><strong>Costs</strong>: where the Arbiter is ahead without fees, its Sharpe "
            "advantage is gone at "
            + ", ".join(
                f"{row['break_even_fee'] * 1e4:.1f} bp a side on {row['symbol']}"
                for _, row in crossing.iterrows()
            )
            + f" (the rules charge {PositionRules().fee * 1e4:.0f} bp).</p>"
        )
    sweep = study.sweep
    if sweep is not None and not sweep.superiority.empty:
        rows = sweep.superiority.dropna(subset=["spa_consistent"])
        rows = rows[rows["benchmark"] == "ensemble"]
        lines.append(
            "<p><strong>Thresholds after trying "
            f"{sweep.frame['combination'].nunique()} combinations</strong>: "
            + "; ".join(
                f"{row['symbol']}: SPA p {row['spa_consistent']:.3f}, StepM finds "
                f"{int(row['better'])} combination(s) better than ensemble-only"
                for _, row in rows.iterrows()
            )
            + ". "
            + _ruined_benchmarks(study)
            + "; ".join(
                f"{symbol}: PBO {percent(row['pbo'])}, deflated Sharpe "
                f"{percent(row['deflated_sharpe'])}"
                for symbol, row in sweep.overfitting.set_index("symbol").iterrows()
            )
            + ".</p>"
        )
    for fidelity in ("production", "intended"):
        for scale in ("price", "percent"):
            part = fidelities.loc[(fidelity, scale)]
            full = part.xs("meta_arbiter", level="run")["verdict_vs_ensemble"]
            lines.append(
                f"<p><strong>{fidelity} fidelity, MACD in {scale}</strong>: the full hierarchy "
                "against ensemble-only: "
                + "; ".join(f"{symbol} {html.escape(text)}" for symbol, text in full.items())
                + ".</p>"
            )
    lines.append(
        "<p><strong>5-minute bars</strong> (tree slots, spans in time): "
        + "; ".join(
            html.escape(sentence)
            for (_, later, earlier), sentence in fives["sentence"].items()
            if (later, earlier) == ("meta_arbiter", "meta")
        )
        + ".</p>"
    )
    rollout = study.rollout
    passes = rollout.groupby("symbol")["passes"].sum()
    total = rollout.groupby("symbol")["passes"].size()
    lines.append(
        "<p><strong>Rollout check</strong> (production, live thresholds): "
        + "; ".join(
            f"{symbol} passes {int(passes[symbol])} of {int(total[symbol])} criteria"
            for symbol in passes.index
        )
        + ". On SOL, BNB and the 5m series only the two tree models vote, and production Meta "
        "pads the missing two as HOLD: there, escalations follow from the padding, not from "
        "the market.</p>"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", required=True, help="folder with the full 1h and 5m market data files"
    )
    parser.add_argument("--out", default="reports/study.html")
    args = parser.parse_args()
    started = time.perf_counter()
    rules = PositionRules()
    data = Path(args.data)
    bars = {s: load_ohlcv(data / f"{s}-1h.csv.gz") for s in SYMBOLS}
    votes = {s: load_votes(s, bars[s]) for s in SYMBOLS}
    print(f"data and votes ready ({time.perf_counter() - started:.0f} s)")
    fidelities = fidelity_table(bars, votes, rules)
    print(fidelities.drop(columns="verdict_vs_ensemble").round(3).to_string())
    fives = five_minute(data, rules)
    print(fives.drop(columns="sentence").round(3).to_string())
    study = run_study(
        bars,
        votes,
        rules=rules,
        override_limit=150,
        sweep_grid=GRID,
        sweep_options={"modes": ["meta", "meta_arbiter"], "blocks": 16, "progress": True},
        title="Does Meta-V2 + Arbiter add value? BTC, ETH, SOL, BNB at 1h; BTC, ETH at 5m",
        notes=[
            "Votes, walk-forward out of sample: all four slots on BTC and ETH at 1h, the two "
            "tree slots on SOL and BNB at 1h and on BTC and ETH at 5m. "
            "Production fidelity and the live thresholds unless a section says otherwise."
        ],
        verdict=VERDICT,
    )
    five_table = fives.drop(columns="sentence").copy()
    study.extra_sections = [
        {"id": "findings", "title": "Findings", "blocks": findings(fidelities, study, fives)},
        {
            "id": "fidelity",
            "title": "Fidelity and MACD units",
            "blocks": [
                "<p>Every stage with the live engine's quirks (production) and with the fixes "
                "H-FID-1 to H-FID-7 (intended), MACD in price units and in percent of price; the "
                "verdict column is the full hierarchy against ensemble-only.</p>",
                "<div class='scroll'>"
                + table(
                    fidelities,
                    {"rollout_passes": lambda v: "" if pd.isna(v) else f"{int(v)}"},
                )
                + "</div>",
            ],
        },
        {
            "id": "five-minute",
            "title": "5-minute bars",
            "blocks": [
                "<p>BTC and ETH at 5m, xgb and lgbm trained walk-forward with every span in "
                "time (features over the same hours, a 60-bar label horizon, monthly "
                "retraining on 180 days); verdicts on daily returns.</p>",
                "<div class='scroll'>" + table(five_table) + "</div>",
            ],
        },
    ]
    path = write_report(study, args.out)
    for block in study.extra_sections[0]["blocks"]:
        print(html.unescape(re.sub(r"<[^>]+>", " ", block)).strip())
    print(f"report at {path.resolve()} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
