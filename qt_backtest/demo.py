"""The main job, ``make demo``: the bundled sample's data and indicators, the decision
hierarchy replayed on the sample's out-of-sample model votes with the rollout rates, then the
three rollout stages backtested, a small threshold sweep, and the HTML report
(``reports/demo.html``).

Run with ``python -m qt_backtest.demo`` (``--retrain`` trains the votes again, walk-forward,
instead of reading ``data/sample-predictions.parquet``; results are cached in ``.cache/``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from qt_backtest.codes import DEFAULT_MODELS
from qt_backtest.data import gap_report, list_samples, load_sample, per_symbol, sample_dir
from qt_backtest.hierarchy import HierarchyConfig, decision_rates, replay
from qt_backtest.indicators import ARBITER_INPUT_COLUMNS, arbiter_inputs, streaming
from qt_backtest.report.format import price, price_decimals
from qt_backtest.signals import WalkForward, read_predictions
from qt_backtest.signals.cache import cached_walk_forward

PREDICTIONS = "sample-predictions.parquet"
SAMPLE_MODELS = DEFAULT_MODELS
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "predictions"
REPORT = Path("reports") / "demo.html"


def _data_summary(name: str, frame: pd.DataFrame) -> list[str]:
    gaps = gap_report(frame)
    returns = np.log(frame["close"]).diff().dropna()
    close = frame["close"]
    decimals = price_decimals(close.to_numpy())
    return [
        f"{name}: {len(frame):,} {frame.attrs['interval']} bars, "
        f"{frame.index[0]:%Y-%m-%d %H:%M} .. {frame.index[-1]:%Y-%m-%d %H:%M} UTC",
        f"  gaps: {gaps}",
        f"  close: first {price(close.iloc[0], decimals)}, last "
        f"{price(close.iloc[-1], decimals)}, min {price(close.min(), decimals)}, max "
        f"{price(close.max(), decimals)}",
        f"  zero-volume bars: {int((frame['volume'] == 0).sum())}, "
        f"{frame.attrs['interval']} log-return std {returns.std():.4%}",
    ]


def _indicator_summary(inputs: pd.DataFrame) -> list[str]:
    table = inputs.describe(percentiles=[0.05, 0.5, 0.95]).T[["mean", "5%", "50%", "95%"]]
    last = inputs.iloc[-1]
    lines = ["  Arbiter inputs (I-ARB-1), distribution over all bars and the latest bar:"]
    lines.append(f"    {'input':<13}{'mean':>12}{'5%':>12}{'median':>12}{'95%':>12}{'latest':>12}")
    for column in ARBITER_INPUT_COLUMNS:
        row = table.loc[column]
        lines.append(
            f"    {column:<13}{row['mean']:>12.4f}{row['5%']:>12.4f}{row['50%']:>12.4f}"
            f"{row['95%']:>12.4f}{last[column]:>12.4f}"
        )
    rsi = inputs["rsi"]
    lines.append(
        f"    RSI < 30 on {float((rsi < 30).mean()):.1%} of bars, RSI > 70 on "
        f"{float((rsi > 70).mean()):.1%}"
    )
    return lines


def _streaming_check(frame: pd.DataFrame, inputs: pd.DataFrame, bars: int = 500) -> str:
    rsi = streaming.RSI()
    values = np.array([rsi.update(close) for close in frame["close"].iloc[:bars]])
    same = np.array_equal(values, inputs["rsi"].iloc[:bars].to_numpy(), equal_nan=True)
    return f"  streaming RSI over the first {bars} bars equals the batch kernel: {same}"


def _votes(
    symbol: str, frame: pd.DataFrame, retrain: bool, models: tuple[str, ...] = SAMPLE_MODELS
) -> pd.DataFrame:
    """The sample's votes of one symbol, or freshly trained ones (cached; the neural slots
    take about ten minutes per symbol on 2 cores)."""
    if not retrain:
        votes = per_symbol(read_predictions(sample_dir() / PREDICTIONS, models))[symbol]
        return votes[[f"{model}_{part}" for model in models for part in ("action", "confidence")]]
    splitter = WalkForward(step=720, train_window=8760, min_train=8760, purge=5, horizon=5)
    votes = pd.DataFrame(index=frame.index)
    for model in models:
        result = cached_walk_forward(frame, model, splitter, CACHE, n_jobs=2)
        votes[f"{model}_action"] = result["action"]
        votes[f"{model}_confidence"] = result["confidence"]
    return votes


def _replay_summary(symbol: str, frame: pd.DataFrame, inputs: pd.DataFrame, retrain: bool):
    votes = _votes(symbol, frame, retrain)
    config = HierarchyConfig(mode="meta_arbiter", fidelity="production")
    decisions = replay(votes, inputs, config)
    voted = decisions[decisions["voters"] > 0]
    rates = decision_rates(voted)
    lines = [
        f"  hierarchy replay ({', '.join(SAMPLE_MODELS)} votes on {len(voted):,} bars, "
        "meta_arbiter, production fidelity):"
    ]
    for rate, row in rates.iterrows():
        verdict = "pass" if row["passes"] else "FAIL"
        lines.append(
            f"    {rate:<27}{row['value']:>8.1%}   target {row['target_low']:.0%}-"
            f"{row['target_high']:.0%}  {verdict}"
        )
    reasons = voted["meta_reason"].value_counts(normalize=True).head(3)
    lines.append("    top Meta reasons: " + ", ".join(f"{r} {v:.0%}" for r, v in reasons.items()))
    return lines


#: The demo's small sweep: Arbiter gate x Meta consensus x maximum holding, in two modes.
DEMO_GRID = {
    "arbiter.arbiter_threshold": [0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90],
    "meta.low_confidence_threshold": [0.45, 0.55, 0.65],
    "meta.consensus_threshold": [0.75, 1.00],
    "rules.max_hold_bars": [None, 5],
}


def _report(out: Path, retrain: bool, override_limit: int) -> list[str]:
    """Three-mode comparison, override values, reliability and a small sweep -> HTML."""
    from qt_backtest.report import run_study, write_report

    started = time.perf_counter()
    bars = {name.split("-")[0]: load_sample(name) for name in list_samples()}
    votes = {
        symbol: _votes(symbol, frame, retrain).reindex(frame.index)
        for symbol, frame in bars.items()
    }
    study = run_study(
        bars,
        votes,
        override_limit=override_limit,
        sweep_grid=DEMO_GRID,
        sweep_options={"modes": ["meta", "meta_arbiter"], "blocks": 16},
        title="qt_backtest demo: BTCUSDT and ETHUSDT, 1h, sample votes",
        notes=[
            "Votes of the four live model slots (xgb, lgbm, nhits, patchtst), each trained "
            "walk-forward and voting out of sample."
        ],
    )
    path = write_report(study, out)
    swept = study.sweep
    assert swept is not None  # the demo always sweeps
    table = study.table.xs("equal_weight", level="symbol")
    lines = [
        f"report: {len(bars)} symbols, three rollout stages + Arbiter-only and buy-and-hold, "
        f"{len(study.overrides):,} overrides valued, "
        f"{swept.frame['combination'].nunique():,} sweep combinations per symbol "
        f"({time.perf_counter() - started:.1f} s)"
    ]
    for run, row in table.iterrows():
        lines.append(
            f"  equal-weight {run:<13} total return {row['total_return']:+8.1%}   "
            f"Sharpe {row['sharpe']:5.2f}   max drawdown {row['max_drawdown']:7.1%}"
        )
    tests = study.verdict_tests
    shown = tests[
        tests["later"].eq("meta_arbiter") & tests["earlier"].isin(["meta", "buy_and_hold"])
    ]
    lines.extend(f"  verdict: {sentence}" for sentence in shown["sentence"])
    for _, row in swept.overfitting.iterrows():
        lines.append(
            f"  {row['symbol']} sweep: PBO {row['pbo']:.0%}, deflated Sharpe of the best "
            f"{row['deflated_sharpe']:.0%}"
        )
    lines.append(f"the report is at {path.resolve()}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="qt_backtest demo")
    parser.add_argument(
        "--retrain", action="store_true", help="train the model votes again (walk-forward)"
    )
    parser.add_argument(
        "--out", type=Path, default=REPORT, help=f"where to write the report ({REPORT})"
    )
    parser.add_argument(
        "--override-limit", type=int, default=200, help="overrides valued per symbol (200)"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print("qt_backtest demo: bundled sample data, the indicator core and the hierarchy replay\n")
    for name in list_samples():
        frame = load_sample(name)
        inputs = arbiter_inputs(frame)
        for line in _data_summary(name, frame) + _indicator_summary(inputs):
            print(line)
        print(_streaming_check(frame, inputs))
        for line in _replay_summary(frame.attrs["symbol"], frame, inputs, args.retrain):
            print(line)
        print()
    for line in _report(args.out, args.retrain, args.override_limit):
        print(line)
    print(f"\ndone in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
