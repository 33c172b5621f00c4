"""Walk-forward folds trained at once (threads, processes, Dask) give the serial votes bit for
bit; the thread split fits the cores; warm starts are leak-free (I-WF-1 to I-WF-4, T-LOOK-4)."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import qt_backtest.signals.models as models
import qt_backtest.signals.parallel as parallel
from qt_backtest.signals import (
    WalkForward,
    build_features,
    make_labels,
    make_model,
    walk_forward_many,
    walk_forward_predict,
)
from qt_backtest.signals.models import fold_chains, lookback_windows
from qt_backtest.signals.neural import NeuralSlot
from tests.conftest import random_walk_ohlcv

SMALL = WalkForward(step=250, train_window=1000, min_train=800, purge=5, horizon=5)
TREES = {"xgb": {"n_estimators": 20}, "lgbm": {"n_estimators": 20}}
TINY_NHITS = dict(lookback=12, hidden=8, pool_sizes=(4, 1), epochs=2, batch_size=256)


def inputs(count=2400, seed=3):
    data = random_walk_ohlcv(count, seed, volatility=0.01)
    index = pd.date_range("2023-01-01", periods=count, freq="1h", tz="UTC", name="timestamp")
    frame = pd.DataFrame(data, index=index)
    return build_features(frame), make_labels(frame["close"])


def by_hand(features, labels, model, fold, n_jobs=1, **params):
    """One fold's probabilities fitted directly, without the runner (the oracle)."""
    values = features.to_numpy(dtype=np.float64)
    targets = labels.to_numpy(dtype=np.float64)
    slot = make_model(model, 0, n_jobs, **params)
    if getattr(slot, "lookback", None):
        values = lookback_windows(values, slot.lookback)
    rows = np.arange(fold.train_start, fold.train_stop)
    rows = rows[~np.isnan(targets[rows])]
    slot.fit(values[rows], targets[rows].astype(np.int64) + 1)
    return slot.predict_proba(values[fold.test])


@pytest.mark.parametrize("model", ["xgb", "lgbm"])
def test_tree_slots_give_the_same_probabilities_for_any_thread_count(model):
    features, labels = inputs(1200)
    fold = SMALL.folds(1200)[0]
    answers = [by_hand(features, labels, model, fold, n, n_estimators=5) for n in (1, 2)]
    np.testing.assert_array_equal(answers[0], answers[1])


@pytest.mark.parametrize("model", ["xgb", "lgbm"])
def test_folds_at_once_give_the_serial_votes_bit_for_bit(model):
    features, labels = inputs(2100)
    folds = SMALL.folds(len(features))
    assert len(folds) >= 5
    serial = walk_forward_predict(features, labels, model, SMALL, n_jobs=1, params=TREES[model])
    # three workers: one thread each on this machine's cores (at least one)
    at_once = walk_forward_predict(features, labels, model, SMALL, workers=3, params=TREES[model])
    pd.testing.assert_frame_equal(serial, at_once, check_exact=True)
    # and both are what fitting each fold by hand gives
    for fold in (folds[0], folds[-1]):
        expected = by_hand(features, labels, model, fold, **TREES[model])
        got = at_once[["p_sell", "p_hold", "p_buy"]].iloc[fold.test].to_numpy()
        np.testing.assert_array_equal(got, expected)
        assert (at_once["fold"].iloc[fold.test] == fold.number).all()


def test_each_task_gets_the_cores_shared_between_the_workers(monkeypatch):
    monkeypatch.setattr(parallel, "available_cores", lambda: 8)
    assert parallel.threads_per_task(None, 3, "local", None) == 2
    assert parallel.threads_per_task(None, 16, "local", None) == 1
    assert parallel.threads_per_task(None, 1, "dask", None) == 8
    assert parallel.threads_per_task(None, 1, "dask", "tcp://somewhere:8786") == 1
    assert parallel.threads_per_task(5, 3, "local", None) == 5
    built = []
    original = models.make_model

    def recording(name, seed=0, n_jobs=1, **params):
        built.append(n_jobs)
        return original(name, seed, n_jobs, **params)

    monkeypatch.setattr(models, "make_model", recording)
    features, labels = inputs(1600)
    walk_forward_predict(features, labels, "lgbm", SMALL, workers=4, params=TREES["lgbm"])
    assert built[1:] and set(built[1:]) == {2}  # after the probe: every fold's model 8 // 4
    built.clear()
    walk_forward_predict(features, labels, "lgbm", SMALL, workers=4, n_jobs=1, params=TREES["lgbm"])
    assert set(built[1:]) == {1}


def test_progress_counts_every_fold_once():
    features, labels = inputs()
    calls = []
    walk_forward_predict(
        features,
        labels,
        "xgb",
        SMALL,
        workers=2,
        params=TREES["xgb"],
        on_fold=lambda *a: calls.append(a),
    )
    total = len(SMALL.folds(len(features)))
    assert calls == [(done, total) for done in range(1, total + 1)]


def test_many_symbols_and_models_in_one_pool_equal_their_single_runs():
    series = {"A": inputs(1600, 4), "B": inputs(1800, 5)}
    votes = walk_forward_many(series, ["xgb", "lgbm"], SMALL, workers=2, params=TREES)
    assert set(votes) == {(s, m) for s in series for m in TREES}
    for (symbol, model), frame in votes.items():
        alone = walk_forward_predict(*series[symbol], model, SMALL, n_jobs=1, params=TREES[model])
        pd.testing.assert_frame_equal(frame, alone, check_exact=True)


def test_a_dask_cluster_gives_the_local_votes():
    from dask.distributed import LocalCluster

    series = {"A": inputs(1600, 4), "B": inputs(1800, 5)}
    local = walk_forward_many(series, ["xgb", "lgbm"], SMALL, params=TREES, n_jobs=1)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        remote = walk_forward_many(
            series, ["xgb", "lgbm"], SMALL, params=TREES, executor="dask", address=address
        )
        one = walk_forward_predict(
            *series["A"], "xgb", SMALL, params=TREES["xgb"], executor="dask", address=address
        )
    for key, frame in local.items():
        pd.testing.assert_frame_equal(remote[key], frame, check_exact=True)
    pd.testing.assert_frame_equal(one, local["A", "xgb"], check_exact=True)


def test_runs_of_warm_started_folds_are_cut_by_warm_start_alone():
    folds = SMALL.folds(3000)
    assert [len(chain) for chain in fold_chains(folds, 0)] == [1] * len(folds)
    chains = fold_chains(folds, 3)
    assert [fold for chain in chains for fold in chain] == folds
    assert all(len(chain) == 4 for chain in chains[:-1]) and 1 <= len(chains[-1]) <= 4


def nhits(**extra):
    return functools.partial(make_model, "nhits", 0, 1, **TINY_NHITS, **extra)


def test_warm_start_trains_each_run_from_scratch_then_from_the_fold_before():
    features, labels = inputs(2000, 6)
    folds = SMALL.folds(len(features))
    cold = walk_forward_predict(features, labels, nhits(), SMALL)
    warm = walk_forward_predict(features, labels, nhits(), SMALL, warm_start=1)
    columns = ["p_sell", "p_hold", "p_buy"]
    for fold in folds:
        same = np.array_equal(cold[columns].iloc[fold.test], warm[columns].iloc[fold.test])
        assert same == (fold.number % 2 == 0), fold.number  # runs of 2: 0-1, 2-3, ...


def test_warm_started_folds_never_see_rows_after_their_own_training_window():
    features, labels = inputs(2000, 7)
    folds = SMALL.folds(len(features))
    # every training row is learnt from (no validation split), so one row too many shows
    model = nhits(validation_fraction=0.0)
    baseline = walk_forward_predict(features, labels, model, SMALL, warm_start=10)
    rng = np.random.default_rng(0)
    for fold in folds[1:-1]:
        # every label after its training window changes class (SELL -> HOLD -> BUY -> SELL),
        # and the features after its predicted block are scaled
        changed_labels = labels.copy()
        later = changed_labels.index[fold.train_stop :]
        changed_labels[later] = (changed_labels[later] + 2) % 3 - 1
        changed = features.copy()
        changed.iloc[fold.test_stop :] *= rng.uniform(
            0.5, 2.0, changed.iloc[fold.test_stop :].shape
        )
        perturbed = walk_forward_predict(changed, changed_labels, model, SMALL, warm_start=10)
        pd.testing.assert_frame_equal(
            perturbed.iloc[: fold.test_stop], baseline.iloc[: fold.test_stop], check_exact=True
        )
        assert not perturbed.iloc[fold.test_stop :].equals(baseline.iloc[fold.test_stop :])


def test_neural_fits_in_threads_of_one_process_take_turns():
    features, labels = inputs(1200, 8)
    windows = lookback_windows(features.to_numpy(dtype=np.float64), TINY_NHITS["lookback"])
    targets = labels.to_numpy()
    rows = [np.arange(start, start + 700) for start in (100, 300)]
    rows = [r[~np.isnan(targets[r])] for r in rows]

    def fit(r):
        slot = nhits()()
        slot.fit(windows[r], targets[r].astype(np.int64) + 1)
        return slot.predict_proba(windows[1100:1150])

    serial = [fit(r) for r in rows]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(fit, rows * 2))
    for index, answer in enumerate(together):
        np.testing.assert_array_equal(answer, serial[index % 2])


def test_neural_folds_in_processes_give_the_serial_votes_bit_for_bit():
    features, labels = inputs(2000, 9)
    serial = walk_forward_predict(features, labels, "nhits", SMALL, n_jobs=1, params=TINY_NHITS)
    at_once = walk_forward_predict(
        features, labels, "nhits", SMALL, workers=2, n_jobs=1, params=TINY_NHITS, warm_start=1
    )
    warm_serial = walk_forward_predict(
        features, labels, "nhits", SMALL, n_jobs=1, params=TINY_NHITS, warm_start=1
    )
    pd.testing.assert_frame_equal(at_once, warm_serial, check_exact=True)
    assert not at_once.equals(serial)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(workers=0), "workers"),
        (dict(workers=2.0), "workers"),
        (dict(workers=True), "workers"),
        (dict(executor="threads"), "executor must be 'local' or 'dask'"),
        (dict(address="tcp://127.0.0.1:8786"), "needs executor='dask'"),
        (dict(executor="dask", address=""), "scheduler address"),
        (dict(n_jobs=0), "n_jobs"),
        (dict(warm_start=-1), "warm_start"),
        (dict(warm_start=2), "cannot"),
        (dict(params={"n_estimators": 5}, model=lambda: make_model("xgb")), "a factory sets"),
        (dict(model=3), "slot name or a callable"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(arguments, message):
    features, labels = inputs(1000)
    call = {"model": "xgb", **arguments}
    with pytest.raises(ValueError, match=message):
        walk_forward_predict(features, labels, splitter=SMALL, **call)


def test_a_lambda_cannot_train_neural_folds_in_processes():
    features, labels = inputs(1600)
    with pytest.raises(ValueError, match="functools.partial"):
        walk_forward_predict(
            features, labels, lambda: make_model("nhits", **TINY_NHITS), SMALL, workers=2
        )


def test_tree_and_warm_started_neural_slots_share_one_call():
    series = {"A": inputs(1600, 10)}
    models = {"xgb": "xgb", "nh": nhits()}
    votes = walk_forward_many(
        series, models, SMALL, n_jobs=1, warm_start={"nh": 1}, params={"xgb": TREES["xgb"]}
    )
    trees = walk_forward_predict(*series["A"], "xgb", SMALL, n_jobs=1, params=TREES["xgb"])
    warm = walk_forward_predict(*series["A"], nhits(), SMALL, warm_start=1)
    pd.testing.assert_frame_equal(votes["A", "xgb"], trees, check_exact=True)
    pd.testing.assert_frame_equal(votes["A", "nh"], warm, check_exact=True)


def test_walk_forward_many_checks_its_models():
    series = {"A": inputs(1000)}
    with pytest.raises(ValueError, match="slot names or a mapping"):
        walk_forward_many(series, "xgb", SMALL)
    with pytest.raises(ValueError, match="at least one"):
        walk_forward_many(series, [], SMALL)
    with pytest.raises(ValueError, match=r"params name model\(s\) \['lgbm'\]"):
        walk_forward_many(series, ["xgb"], SMALL, params={"lgbm": {}})
    with pytest.raises(ValueError, match=r"warm_start name model\(s\) \['lgbm'\]"):
        walk_forward_many(series, ["xgb"], SMALL, warm_start={"lgbm": 1})
    with pytest.raises(ValueError, match="cannot"):
        walk_forward_many(series, ["xgb"], SMALL, warm_start=1)


def test_a_slot_warm_starts_only_from_its_own_kind():
    slot = nhits()()
    with pytest.raises(ValueError, match="not fitted"):
        slot.warm_start_from(nhits()())
    with pytest.raises(ValueError, match="same configuration"):
        slot.warm_start_from(make_model("nhits", **{**TINY_NHITS, "hidden": 4}))
    with pytest.raises(ValueError, match="nhits slot can start only"):
        slot.warm_start_from(NeuralSlot("patchtst"))
