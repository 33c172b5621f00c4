"""Walk-forward training time: one fold after another against folds at once, and warm starts.

On one bundled series (BTCUSDT-1h by default), every model is trained walk-forward three times:

* **before**: the runner as it was, one fold after another with ``--n-jobs`` threads per model
  and the slots' default settings;
* **serial**: one fold after another with the "after" settings and thread count;
* **parallel**: ``--workers`` folds at once, each model with the machine's cores shared
  between them (one thread each on two cores). The tree slots keep their settings; the neural
  slots are warm-started (``warm_start=--warm-start``, ``warm_epochs=--warm-epochs``, I-WF-3).

It prints the wall time of each model all three ways, whether the votes are the same bit for bit
(tree slots: before against parallel; every slot: serial against parallel, I-WF-2), and the
out-of-sample diagnostics of every model before and after (balanced accuracy, log-loss, Brier
score, expected calibration error, mean confidence against hit rate).

Full series (the measurement in the changelog)::

    python research/walk_forward_speed.py

A quicker run for tuning (the last 20,000 bars, half-year training windows)::

    python research/walk_forward_speed.py --bars 20000 --train-window 4380
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from qt_backtest.data import load_sample
from qt_backtest.signals import WalkForward, build_features, make_labels, walk_forward_predict
from qt_backtest.signals.diagnostics import (
    PROBABILITY_COLUMNS,
    classification_metrics,
    reliability_table,
)
from qt_backtest.signals.models import NEURAL_SLOTS
from qt_backtest.signals.parallel import available_cores, threads_per_task

MODELS = ("xgb", "lgbm", "nhits", "patchtst")


def diagnostics(votes: pd.DataFrame, labels: pd.Series) -> dict[str, float]:
    """Scores of the labelled bars that have a vote."""
    usable = (votes["fold"] >= 0).to_numpy() & labels.notna().to_numpy()
    truth = labels[usable].to_numpy()
    probabilities = votes.loc[usable, list(PROBABILITY_COLUMNS)].to_numpy()
    metrics = classification_metrics(truth, probabilities)
    bins = reliability_table(truth, probabilities)
    weights = bins["bars"] / bins["bars"].sum()
    return {
        "bars": metrics["bars"],
        "balanced_accuracy": metrics["balanced_accuracy"],
        "log_loss": metrics["log_loss"],
        "brier": metrics["brier"],
        # expected calibration error: |hit rate - confidence| weighted by bin size
        "calibration_error": float(
            (weights * (bins["hit_rate"] - bins["mean_confidence"]).abs()).sum()
        ),
        "mean_confidence": float((weights * bins["mean_confidence"]).sum()),
        "hit_rate": float((weights * bins["hit_rate"]).sum()),
    }


def timed(**arguments) -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    votes = walk_forward_predict(**arguments)
    return votes, time.perf_counter() - started


def after_settings(model: str, args: argparse.Namespace) -> dict:
    if model not in NEURAL_SLOTS:
        return {}
    return {"warm_start": args.warm_start, "params": {"warm_epochs": args.warm_epochs}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--bars", type=int, default=None, help="the last N bars only")
    parser.add_argument("--train-window", type=int, default=8760)
    parser.add_argument("--n-jobs", type=int, default=2, help="threads per model, before")
    parser.add_argument("--workers", type=int, default=2, help="folds at once, after")
    parser.add_argument("--warm-start", type=int, default=10)
    parser.add_argument("--warm-epochs", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    args = parser.parse_args()
    bars = load_sample(f"{args.symbol}-1h")
    if args.bars is not None:
        bars = bars.iloc[-args.bars :]
    splitter = WalkForward(
        step=720, train_window=args.train_window, min_train=args.train_window, purge=5, horizon=5
    )
    common = dict(
        features=build_features(bars), labels=make_labels(bars["close"]), splitter=splitter
    )
    threads = threads_per_task(None, args.workers, "local", None)
    print(
        f"{args.symbol}-1h, {len(bars):,} bars, {len(splitter.folds(len(bars)))} folds, "
        f"{available_cores()} cores, after: {args.workers} workers x {threads} thread(s); "
        f"load average {os.getloadavg()[0]:.2f} at the start"
    )
    times, scores, same = [], [], []
    for model in args.models:
        after = dict(model=model, n_jobs=threads, **after_settings(model, args), **common)
        old, before_s = timed(model=model, n_jobs=args.n_jobs, **common)
        one, serial_s = timed(**after)
        new, parallel_s = timed(workers=args.workers, **after)
        times.append(
            {
                "model": model,
                "before_s": before_s,
                "serial_s": serial_s,
                "parallel_s": parallel_s,
                "speed_up": before_s / parallel_s,
                "load": os.getloadavg()[0],
            }
        )
        gap = np.nanmax(np.abs(one[list(PROBABILITY_COLUMNS)] - new[list(PROBABILITY_COLUMNS)]))
        same.append(
            {
                "model": model,
                "before_eq_parallel": old.equals(new),
                "serial_eq_parallel": one.equals(new),
                "largest_gap": gap,
            }
        )
        for when, votes in (("before", old), ("after", new)):
            scores.append({"model": model, "run": when, **diagnostics(votes, common["labels"])})
        print(f"  {model}: {before_s:.1f} s, {serial_s:.1f} s, {parallel_s:.1f} s", flush=True)
    table = pd.DataFrame(times)
    with pd.option_context("display.width", 160, "display.precision", 4):
        print(table.to_string(index=False))
        totals = table[["before_s", "serial_s", "parallel_s"]].sum()
        print("total", ", ".join(f"{name} {value:.1f}" for name, value in totals.items()))
        print(pd.DataFrame(same).to_string(index=False))
        print(pd.DataFrame(scores).to_string(index=False))


if __name__ == "__main__":
    main()
