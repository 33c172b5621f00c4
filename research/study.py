"""Does Meta-V2 + Arbiter add value? BTCUSDT, ETHUSDT, SOLUSDT and BNBUSDT at 1h.

Votes: the bundled out-of-sample votes of all four slots for BTC and ETH; for SOL and BNB the
tree slots (xgb, lgbm) with the same
walk-forward scheme (monthly retraining on a one-year window, purged by the 5-bar label
horizon) is trained here and cached in ``.cache/predictions``. Bars from ``../shared/data``.

What it does:

1. the rollout stages (ensemble, meta, meta_arbiter, and the Arbiter alone) with the live
   engine's behaviour (``fidelity="production"``) and with the fixes of SPEC §7
   (``"intended"``, MACD in percent of price), next-bar-open execution, 0.04 % fees a side;
2. the rollout check (SPEC §5 rates and no Sharpe loss against ensemble-only);
3. a sweep of the Arbiter threshold, the Meta consensus and low-confidence thresholds and the
   fidelity, in ``meta`` and ``meta_arbiter`` modes, with walk-forward selection, PBO and the
   deflated Sharpe ratio;
4. conclusions written from those numbers, at the top of ``reports/study.html``.

Run: ``python research/study.py [--data ../shared/data] [--out reports/study.html]``.
"""

from __future__ import annotations

import argparse
import html
import time
from pathlib import Path

import numpy as np
import pandas as pd

from qt_backtest.backtest import PositionRules, compare_modes, rollout_check
from qt_backtest.data import load_ohlcv, sample_dir
from qt_backtest.hierarchy import HierarchyConfig
from qt_backtest.indicators import ArbiterInputConfig, arbiter_inputs
from qt_backtest.report import run_study, write_report
from qt_backtest.report.format import number, percent, signed_percent, table
from qt_backtest.signals import WalkForward, read_predictions
from qt_backtest.signals.cache import cached_walk_forward

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


def load_votes(symbol: str, bars: pd.DataFrame) -> pd.DataFrame:
    if symbol in SAMPLE_VOTES:
        sample = read_predictions(sample_dir() / "sample-predictions.parquet")
        return sample.xs(symbol, level="symbol").reindex(bars.index)
    votes = pd.DataFrame(index=bars.index)
    for model in MODELS:
        started = time.perf_counter()
        result = cached_walk_forward(bars, model, SPLITTER, CACHE, n_jobs=2)
        print(f"  {symbol} {model}: walk-forward votes in {time.perf_counter() - started:.0f} s")
        votes[f"{model}_action"] = result["action"]
        votes[f"{model}_confidence"] = result["confidence"]
    return votes


def fidelity_table(bars, votes, rules) -> pd.DataFrame:
    """Sharpe, return and drawdown of every stage under both fidelities."""
    rows = []
    for fidelity, scale in (("production", "price"), ("intended", "percent")):
        inputs = arbiter_inputs(bars, ArbiterInputConfig(macd_scale=scale))
        comparison = compare_modes(bars, votes, inputs, rules, HierarchyConfig(fidelity=fidelity))
        check = rollout_check(comparison)
        for (symbol, run), row in comparison.table.iterrows():
            rows.append(
                {
                    "fidelity": fidelity,
                    "symbol": symbol,
                    "run": run,
                    "total_return": row["total_return"],
                    "sharpe": row["sharpe"],
                    "max_drawdown": row["max_drawdown"],
                    "trades": row["trades"],
                    "rollout_passes": int(check.loc[symbol, "passes"].sum())
                    if symbol in check.index.get_level_values(0) and run == "meta_arbiter"
                    else np.nan,
                }
            )
    return pd.DataFrame(rows).set_index(["fidelity", "symbol", "run"])


def findings(fidelities: pd.DataFrame, study) -> list[str]:
    """Conclusions, each sentence built from the measured numbers."""
    lines = []
    for fidelity in ("production", "intended"):
        sharpe = fidelities.loc[fidelity]["sharpe"].unstack("run")
        per_symbol = sharpe.drop(index="equal_weight", errors="ignore")
        better = per_symbol[per_symbol["meta_arbiter"] > per_symbol["ensemble"]].index.tolist()
        lines.append(
            f"<p><strong>{fidelity} fidelity</strong>: the full hierarchy (meta_arbiter) beats "
            f"ensemble-only on Sharpe for {len(better)} of {len(per_symbol)} symbols"
            f"{' (' + ', '.join(better) + ')' if better else ''}. Equal-weight portfolio: "
            f"ensemble Sharpe {number(sharpe.loc['equal_weight', 'ensemble'])}, meta_arbiter "
            f"{number(sharpe.loc['equal_weight', 'meta_arbiter'])}, Arbiter alone "
            f"{number(sharpe.loc['equal_weight', 'arbiter_only'])}. Meta mode trades exactly "
            "like the ensemble (it only records escalations), as it must.</p>"
        )
    rollout = study.rollout
    passes = rollout.groupby("symbol")["passes"].sum()
    total = rollout.groupby("symbol")["passes"].size()
    escalation = rollout[rollout["criterion"] == "escalation_rate"].set_index("symbol")["value"]
    override = rollout[rollout["criterion"] == "override_rate_when_called"].set_index("symbol")[
        "value"
    ]
    lines.append(
        "<p><strong>Rollout check</strong> (production, live thresholds): "
        + "; ".join(
            f"{symbol} passes {int(passes[symbol])} of {int(total[symbol])} criteria "
            f"(escalation {percent(escalation[symbol])}, override when called "
            f"{percent(override[symbol])})"
            for symbol in passes.index
        )
        + ". On SOL and BNB only the two tree models vote, and production Meta pads the missing "
        "two as HOLD: there, escalations follow from the padding, not from the market.</p>"
    )
    summary = study.sweep.overfitting.set_index("symbol")
    overfit = summary[summary["pbo"] > 0.5].index.tolist()
    lines.append(
        "<p><strong>Threshold sweep</strong>: "
        + "; ".join(
            f"{symbol}: best Sharpe {number(row['best_sharpe'])}, PBO {percent(row['pbo'])}, "
            f"deflated Sharpe {percent(row['deflated_sharpe'])}, walk-forward out-of-sample "
            f"return {signed_percent(row['walk_forward_oos_return'])}"
            for symbol, row in summary.iterrows()
        )
        + f". PBO is above 50 % for {len(overfit)} of {len(summary)} symbols: the thresholds "
        "that look best in sample are, more often than not, below the median out of sample. "
        "Choosing thresholds by in-sample Sharpe is not supported by these votes.</p>"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--out", default="reports/study.html")
    args = parser.parse_args()
    started = time.perf_counter()
    rules = PositionRules()
    bars = {s: load_ohlcv(Path(args.data) / f"{s}-1h.csv.gz") for s in SYMBOLS}
    votes = {s: load_votes(s, bars[s]) for s in SYMBOLS}
    print(f"data and votes ready ({time.perf_counter() - started:.0f} s)")
    fidelities = fidelity_table(bars, votes, rules)
    print(fidelities.round(3).to_string())
    study = run_study(
        bars,
        votes,
        rules=rules,
        override_limit=150,
        sweep_grid=GRID,
        sweep_options={"modes": ["meta", "meta_arbiter"], "blocks": 16, "progress": True},
        title="Does Meta-V2 + Arbiter add value? BTC, ETH, SOL, BNB at 1h",
        notes=[
            "Votes, walk-forward out of sample: all four slots on BTC and ETH, the two tree "
            "slots on SOL and BNB. "
            "Production fidelity and the live thresholds unless a section says otherwise."
        ],
    )
    shown = fidelities.copy()
    study.extra_sections = [
        {"id": "findings", "title": "Findings", "blocks": findings(fidelities, study)},
        {
            "id": "fidelity",
            "title": "Production vs intended fidelity",
            "blocks": [
                "<p>Every stage with the live engine's quirks (production, MACD in price units) "
                "and with the fixes of SPEC §7 (intended, MACD in percent of price).</p>",
                "<div class='scroll'>"
                + table(shown, {"rollout_passes": lambda v: "" if pd.isna(v) else f"{int(v)}"})
                + "</div>",
            ],
        },
    ]
    path = write_report(study, args.out)
    for block in study.extra_sections[0]["blocks"]:
        print(
            html.unescape(
                block.replace("<p>", "")
                .replace("</p>", "")
                .replace("<strong>", "")
                .replace("</strong>", "")
            )
        )
    print(f"report at {path.resolve()} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
