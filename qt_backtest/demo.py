"""The main job, ``make demo``: the bundled sample's data and indicators, then the decision
hierarchy replayed on the sample's out-of-sample model votes, with the rollout rates.

Run with ``python -m qt_backtest.demo`` (``--retrain`` trains the votes again, walk-forward,
instead of reading ``data/sample-predictions.parquet``; results are cached in ``.cache/``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from qt_backtest.data import gap_report, list_samples, load_sample, sample_dir
from qt_backtest.hierarchy import HierarchyConfig, decision_rates, replay
from qt_backtest.indicators import ARBITER_INPUT_COLUMNS, arbiter_inputs, streaming
from qt_backtest.signals import WalkForward, read_predictions
from qt_backtest.signals.cache import cached_walk_forward

PREDICTIONS = "sample-predictions.parquet"
SAMPLE_MODELS = ("xgb", "lgbm")
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "predictions"


def _data_summary(name: str, frame: pd.DataFrame) -> list[str]:
    gaps = gap_report(frame)
    returns = np.log(frame["close"]).diff().dropna()
    return [
        f"{name}: {len(frame):,} {frame.attrs['interval']} bars, "
        f"{frame.index[0]:%Y-%m-%d %H:%M} .. {frame.index[-1]:%Y-%m-%d %H:%M} UTC",
        f"  gaps: {gaps}",
        f"  close: first {frame['close'].iloc[0]:,.2f}, last {frame['close'].iloc[-1]:,.2f}, "
        f"min {frame['close'].min():,.2f}, max {frame['close'].max():,.2f}",
        f"  zero-volume bars: {int((frame['volume'] == 0).sum())}, "
        f"{frame.attrs['interval']} log-return std {returns.std():.4%}",
    ]


def _indicator_summary(inputs: pd.DataFrame) -> list[str]:
    table = inputs.describe(percentiles=[0.05, 0.5, 0.95]).T[["mean", "5%", "50%", "95%"]]
    last = inputs.iloc[-1]
    lines = ["  Arbiter inputs (SPEC §6), distribution over all bars and the latest bar:"]
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


def _votes(symbol: str, frame: pd.DataFrame, retrain: bool) -> pd.DataFrame:
    """The sample's votes of one symbol, or freshly trained ones (cached)."""
    if not retrain:
        votes = read_predictions(sample_dir() / PREDICTIONS, SAMPLE_MODELS)
        return votes.xs(symbol, level="symbol")
    splitter = WalkForward(step=720, train_window=8760, min_train=8760, purge=5, horizon=5)
    votes = pd.DataFrame(index=frame.index)
    for model in SAMPLE_MODELS:
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
    lines.append(
        "    (two of the four live models vote here; production Meta pads the missing two as "
        "HOLD, which is why it escalates so often)"
    )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="qt_backtest demo")
    parser.add_argument(
        "--retrain", action="store_true", help="train the model votes again (walk-forward)"
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
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
