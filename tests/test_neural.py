"""Neural slots nhits and patchtst: windows from the past only, leak-free training, determinism,
early stopping, and a clear error without PyTorch."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from qt_backtest.signals import WalkForward, build_features, make_labels, walk_forward_predict
from qt_backtest.signals.models import lookback_windows, make_model
from qt_backtest.signals.neural import NeuralConfig, NeuralSlot
from tests.conftest import random_walk_ohlcv

SMALL = WalkForward(step=250, train_window=1000, min_train=800, purge=5, horizon=5)
TINY = {
    "nhits": dict(lookback=16, hidden=16, pool_sizes=(4, 1), epochs=3, batch_size=128),
    "patchtst": dict(
        lookback=16,
        patch_length=8,
        patch_stride=8,
        d_model=8,
        heads=2,
        layers=1,
        epochs=3,
        batch_size=128,
    ),
}


def bars(count, seed=1):
    data = random_walk_ohlcv(count, seed, volatility=0.01)
    index = pd.date_range("2023-01-01", periods=count, freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame(data, index=index)


def signals(frame, kind, seed=0):
    features = build_features(frame)
    labels = make_labels(frame["close"])
    return walk_forward_predict(
        features, labels, lambda: make_model(kind, seed=seed, **TINY[kind]), SMALL
    )


def test_lookback_windows_hold_the_past_only():
    values = np.arange(12, dtype=float).reshape(6, 2)
    windows = lookback_windows(values, 3)
    assert windows.shape == (6, 3, 2)
    np.testing.assert_array_equal(windows[4], values[2:5])
    assert np.isnan(windows[0, :2]).all() and (windows[0, 2] == values[0]).all()


@pytest.mark.parametrize("kind", ["nhits", "patchtst"])
def test_votes_are_out_of_sample_and_deterministic(kind):
    frame = bars(1800, seed=6)
    first = signals(frame, kind)
    again = signals(frame, kind)
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert first["action"].iloc[:805].isna().all() and first["action"].iloc[805:].notna().all()
    probabilities = first[["p_sell", "p_hold", "p_buy"]].iloc[805:].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert (first["confidence"].iloc[805:] >= 1 / 3 - 1e-9).all()
    other_seed = signals(frame, kind, seed=1)
    assert not other_seed[["p_sell", "p_hold", "p_buy"]].equals(
        first[["p_sell", "p_hold", "p_buy"]]
    )


@pytest.mark.parametrize("kind", ["nhits", "patchtst"])
def test_votes_do_not_see_the_future(kind):
    frame = bars(1800, seed=7)
    cut = 1300
    baseline = signals(frame, kind)
    future = frame.copy()
    rng = np.random.default_rng(cut)
    scale = rng.uniform(0.5, 2.0, len(frame) - cut - 1)
    for column in ("open", "high", "low", "close"):
        future.iloc[cut + 1 :, future.columns.get_loc(column)] *= scale
    future.iloc[cut + 1 :, future.columns.get_loc("volume")] *= rng.uniform(0, 5, len(scale))
    perturbed = signals(future, kind)
    pd.testing.assert_frame_equal(
        perturbed.iloc[: cut + 1], baseline.iloc[: cut + 1], check_exact=True
    )
    assert not perturbed.iloc[cut + 1 :].equals(baseline.iloc[cut + 1 :])


def test_inputs_are_standardised_on_the_training_rows_only():
    rng = np.random.default_rng(0)
    windows = rng.normal(5.0, 2.0, (300, 16, 3))
    classes = rng.integers(0, 3, 300)
    slot = NeuralSlot("nhits", NeuralConfig(**TINY["nhits"])).fit(windows, classes)
    np.testing.assert_allclose(slot.mean_, windows[:, -1, :].mean(axis=0))
    np.testing.assert_allclose(slot.scale_, windows[:, -1, :].std(axis=0))
    # predicting other rows never moves the statistics
    slot.predict_proba(rng.normal(50.0, 9.0, (40, 16, 3)))
    np.testing.assert_allclose(slot.mean_, windows[:, -1, :].mean(axis=0))


def test_early_stopping_on_a_time_ordered_validation_split():
    rng = np.random.default_rng(1)
    windows = rng.normal(0.0, 1.0, (600, 16, 3))
    classes = rng.integers(0, 3, 600)  # noise: validation loss stops improving early
    config = NeuralConfig(**{**TINY["nhits"], "epochs": 60, "patience": 2})
    slot = NeuralSlot("nhits", config).fit(windows, classes)
    assert slot.epochs_run_ < 60
    assert np.isfinite(slot.best_validation_loss_)


def test_a_class_never_seen_in_training_gets_no_probability():
    rng = np.random.default_rng(2)
    windows = rng.normal(0.0, 1.0, (200, 16, 2))
    classes = rng.integers(1, 3, 200)  # HOLD and BUY only
    slot = NeuralSlot("patchtst", NeuralConfig(**TINY["patchtst"])).fit(windows, classes)
    probabilities = slot.predict_proba(windows[:20])
    assert (probabilities[:, 0] == 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    one = NeuralSlot("nhits", NeuralConfig(**TINY["nhits"])).fit(windows, np.full(200, 2))
    assert (one.predict_proba(windows[:5]) == [0, 0, 1]).all()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lookback": 0}, "lookback"),
        ({"pool_sizes": (64,)}, "pool_sizes"),
        ({"d_model": 10, "heads": 4}, "multiple of heads"),
        ({"patch_length": 100}, "patch_length"),
        ({"dropout": 2.0}, "dropout"),
    ],
)
def test_bad_configurations_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        NeuralConfig(**params)


def test_without_pytorch_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    with pytest.raises(ImportError, match=r"qt-backtest\[deep\]"):
        make_model("nhits")
