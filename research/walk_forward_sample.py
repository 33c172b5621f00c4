"""Walk-forward XGBoost, LightGBM, N-HiTS and PatchTST on the bundled BTCUSDT-1h and ETHUSDT-1h.

Monthly retraining (720 bars) on a one-year rolling window (8,760 bars), purged by the label
horizon (5 bars), default model settings (nothing tuned). Prints wall time, peak memory and
out-of-sample diagnostics (balanced accuracy, log-loss, Brier score, expected calibration
error): before the last year, and on the last year kept as a holdout.
Writes the votes to ``data/sample-predictions.parquet`` for the demo and the tests.

Run: ``python research/walk_forward_sample.py [--n-jobs 2]``. ``--workers 2`` trains two folds
at once (the same votes at the same thread count, I-WF-1, I-WF-2), ``--executor dask
[--address tcp://...]`` trains them on a Dask cluster, and ``--warm-start 10`` starts each neural
fold from the one before it within runs of 11 folds (I-WF-3, I-WF-4: other votes, faster; see
``research/walk_forward_speed.py``).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import pandas as pd

from qt_backtest.data import load_sample
from qt_backtest.signals import (
    WalkForward,
    build_features,
    make_labels,
    walk_forward_predict,
    write_predictions,
)
from qt_backtest.signals.diagnostics import (
    PROBABILITY_COLUMNS,
    classification_metrics,
    reliability_table,
)
from qt_backtest.signals.models import NEURAL_SLOTS

SYMBOLS = ("BTCUSDT", "ETHUSDT")
MODELS = ("xgb", "lgbm", "nhits", "patchtst")
HOLDOUT = pd.Timedelta(days=365)
OUTPUT = Path(__file__).resolve().parents[1] / "data" / "sample-predictions.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n-jobs", type=int, default=None, help="threads per model (default: cores / workers)"
    )
    parser.add_argument("--workers", type=int, default=1, help="folds trained at once")
    parser.add_argument("--executor", choices=("local", "dask"), default="local")
    parser.add_argument("--address", default=None, help="Dask scheduler (executor dask)")
    parser.add_argument(
        "--warm-start", type=int, default=0, help="neural folds started from the one before"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--models", nargs="+", default=list(MODELS), choices=MODELS, help="slots to train"
    )
    args = parser.parse_args()
    splitter = WalkForward(step=720, train_window=8760, min_train=8760, purge=5, horizon=5)
    frames, rows = [], []
    started = time.perf_counter()
    for symbol in SYMBOLS:
        bars = load_sample(f"{symbol}-1h")
        features = build_features(bars)
        labels = make_labels(bars["close"])
        votes = pd.DataFrame(index=bars.index)
        holdout_start = bars.index[-1] - HOLDOUT
        for model in args.models:
            t0 = time.perf_counter()
            result = walk_forward_predict(
                features,
                labels,
                model,
                splitter,
                n_jobs=args.n_jobs,
                workers=args.workers,
                executor=args.executor,
                address=args.address,
                warm_start=args.warm_start if model in NEURAL_SLOTS else 0,
            )
            seconds = time.perf_counter() - t0
            votes[f"{model}_action"] = result["action"]
            votes[f"{model}_confidence"] = result["confidence"]
            for period, mask in (
                ("before holdout", bars.index < holdout_start),
                ("holdout (last year)", bars.index >= holdout_start),
            ):
                usable = mask & (result["fold"] >= 0).to_numpy() & labels.notna().to_numpy()
                truth = labels[usable].to_numpy()
                probabilities = result.loc[usable, list(PROBABILITY_COLUMNS)].to_numpy()
                metrics = classification_metrics(truth, probabilities)
                bins = reliability_table(truth, probabilities)
                # expected calibration error: |hit rate - confidence| weighted by bin size
                metrics["calibration_error"] = float(
                    (bins["bars"] * (bins["hit_rate"] - bins["mean_confidence"]).abs()).sum()
                    / max(bins["bars"].sum(), 1)
                )
                rows.append(
                    {
                        "symbol": symbol,
                        "model": model,
                        "period": period,
                        "seconds": seconds,
                        **metrics,
                    }
                )
        votes["symbol"] = symbol
        frames.append(votes.set_index("symbol", append=True).swaplevel())
    total = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = pd.DataFrame(rows)
    columns = [
        "symbol",
        "model",
        "period",
        "bars",
        "accuracy",
        "balanced_accuracy",
        "log_loss",
        "brier",
        "calibration_error",
        "share_sell",
        "share_hold",
        "share_buy",
        "seconds",
    ]
    with pd.option_context("display.width", 160, "display.precision", 4):
        print(table[columns].to_string(index=False))
    print(
        f"\nwall time {total:.1f} s for {len(SYMBOLS)} symbols x {len(args.models)} models, "
        f"peak memory {peak:,.0f} MiB; chance balanced accuracy is 0.3333"
    )
    path = write_predictions(pd.concat(frames), args.output, compact=True)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
