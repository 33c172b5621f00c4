"""Base-model signals: features, labels, walk-forward folds and the runner, without lookahead."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import talib

from qt_backtest.signals import (
    FEATURES,
    UNITS,
    FeatureConfig,
    WalkForward,
    balanced_weights,
    build_features,
    make_labels,
    make_model,
    walk_forward_predict,
)
from tests.conftest import random_walk_ohlcv
from tests.test_indicators_oracle import assert_matches


def bars(count, seed=1):
    # 1 % a bar, so that 5-bar moves beyond the 1.5 % label threshold are common
    data = random_walk_ohlcv(count, seed, volatility=0.01)
    index = pd.date_range("2023-01-01", periods=count, freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame(data, index=index)


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


def test_feature_definitions_against_independent_computations(btc_1h):
    frame = btc_1h.iloc[:5000]
    features = build_features(frame)
    assert tuple(features.columns) == FEATURES and set(UNITS) == set(FEATURES)
    close, high, low, volume = (frame[c].to_numpy() for c in ("close", "high", "low", "volume"))
    ema = {span: talib.EMA(close, span) for span in (10, 20, 50)}
    line, signal, hist = talib.MACD(close, 12, 26, 9)
    upper, _, lower = talib.BBANDS(close, 20, 2, 2, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = {
            "price_change": talib.ROCP(close, 1),
            "high_low_range": (high - low) / close,
            "volume_change": np.where(np.roll(volume, 1) == 0, np.nan, talib.ROCP(volume, 1)),
            "volume_ma_ratio": talib.SMA(volume, 5) / talib.SMA(volume, 20),
            "ema_10": close / ema[10] - 1,
            "ema_20": close / ema[20] - 1,
            "ema_50": close / ema[50] - 1,
            "rsi_14": talib.RSI(close, 14),
            "macd": line / close,
            "macd_signal": signal / close,
            "macd_hist": hist / close,
            "bb_position": (close - lower) / (upper - lower),
            "volatility_20": talib.STDDEV(close, 20, 1) * np.sqrt(20 / 19) / close,
            "momentum_10": talib.ROCP(close, 10),
            "momentum_20": talib.ROCP(close, 20),
            "ema_10_20_cross": ema[10] / ema[20] - 1,
            "ema_10_50_cross": ema[10] / ema[50] - 1,
            "volume_ratio": volume / talib.SMA(volume, 20),
        }
    expected["volume_change"][0] = np.nan
    for name in FEATURES:
        assert_matches(features[name], expected[name], atol=1e-12)


def test_raw_variants(btc_1h):
    frame = btc_1h.iloc[:3000]
    raw = build_features(frame, FeatureConfig(raw=True))
    close = frame["close"].to_numpy()
    assert_matches(raw["ema_20"], talib.EMA(close, 20))
    assert_matches(raw["macd"], talib.MACD(close, 12, 26, 9)[0])
    cross = raw["ema_10_20_cross"].dropna()
    assert set(cross.unique()) == {0.0, 1.0}
    sample_std = talib.STDDEV(close, 20, 1) * np.sqrt(20 / 19)
    mean = talib.SMA(close, 20)
    assert_matches(raw["bb_position"], (close - (mean - 2 * sample_std)) / (4 * sample_std))


def test_features_per_symbol_never_cross_the_seam(btc_1h):
    a, b = btc_1h.iloc[:2000], btc_1h.iloc[5000:7000] * 0.01
    per_symbol = build_features({"A": a, "B": b})
    pd.testing.assert_frame_equal(per_symbol["B"], build_features(b), check_exact=True)
    assert per_symbol["B"]["ema_50"].iloc[:49].isna().all()  # warm-up restarts per symbol


@pytest.mark.parametrize("cut", [60, 777, 2999])
def test_features_use_the_past_only(cut):
    frame = bars(3000, seed=4)
    full = build_features(frame)
    truncated = build_features(frame.iloc[: cut + 1])
    pd.testing.assert_frame_equal(full.iloc[: cut + 1], truncated, check_exact=True)


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


def test_labels_by_hand():
    close = pd.Series([100.0, 101.0, 102.0, 100.0, 98.0, 99.0, 101.6, 100.0])
    labels = make_labels(close, horizon=2, threshold=0.015)
    # r: 102/100-1=.02 BUY, 100/101-1=-.0099 HOLD, 98/102-1=-.039 SELL, 99/100-1=-.01 HOLD,
    #    101.6/98-1=.0367 BUY, 100/99-1=.0101 HOLD, then no future
    assert labels.tolist()[:6] == [1.0, 0.0, -1.0, 0.0, 1.0, 0.0]
    assert labels.iloc[-2:].isna().all()
    exactly = make_labels(pd.Series([100.0, 101.5, 100.0]), horizon=1, threshold=0.015)
    assert exactly.iloc[0] == 0.0  # the threshold is strict
    with pytest.raises(ValueError, match="threshold"):
        make_labels(close, threshold=-0.1)


# ---------------------------------------------------------------------------------------------
# Walk-forward folds
# ---------------------------------------------------------------------------------------------


def test_folds_are_purged_anchored_and_cover_the_rest():
    splitter = WalkForward(step=100, train_window=500, min_train=400, purge=5, embargo=3, horizon=5)
    folds = splitter.folds(2000)
    assert folds[0].test_start == 400 + 8 and folds[0].train == slice(0, 400)
    for fold in folds:
        assert fold.test_start - fold.train_stop == 8  # purge + embargo >= horizon
        assert fold.train_stop - fold.train_start <= 500
    assert [f.test_start for f in folds[1:]] == [f.test_stop for f in folds[:-1]]
    assert folds[-1].test_stop == 2000
    # appending bars never moves an earlier fold
    longer = splitter.folds(2600)
    assert longer[: len(folds) - 1] == folds[:-1]
    assignment = splitter.fold_of_bar(2000)
    assert (
        (assignment[:408] == -1).all() and assignment[408] == 0 and assignment[-1] == len(folds) - 1
    )
    expanding = WalkForward(step=100, train_window=None, min_train=400, purge=5, horizon=5)
    assert all(f.train_start == 0 for f in expanding.folds(1000))


def test_purge_must_cover_the_label_horizon():
    with pytest.raises(ValueError, match="purge .* must be at least the label horizon"):
        WalkForward(purge=3, horizon=5)
    with pytest.raises(ValueError, match="train_window .* must be at least min_train"):
        WalkForward(train_window=100, min_train=200)


# ---------------------------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------------------------

SMALL = WalkForward(step=250, train_window=1000, min_train=800, purge=5, horizon=5)


def _signals(frame, model="xgb"):
    features = build_features(frame)
    labels = make_labels(frame["close"])
    return walk_forward_predict(features, labels, lambda: make_model(model, n_estimators=30), SMALL)


@pytest.mark.parametrize("model", ["xgb", "lgbm"])
def test_runner_is_deterministic_and_out_of_sample(model):
    frame = bars(2400, seed=6)
    first = _signals(frame, model)
    again = _signals(frame, model)
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert first["action"].iloc[:805].isna().all() and first["action"].iloc[805:].notna().all()
    assert (first["fold"].iloc[:805] == -1).all()
    probabilities = first[["p_sell", "p_hold", "p_buy"]].iloc[805:].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert (first["confidence"].iloc[805:] == probabilities.max(axis=1)).all()


@pytest.mark.parametrize("cut", [900, 1500])
def test_runner_predictions_do_not_see_the_future(cut):
    frame = bars(2400, seed=7)
    baseline = _signals(frame)
    future = frame.copy()
    rng = np.random.default_rng(cut)
    scale = rng.uniform(0.5, 2.0, len(frame) - cut - 1)
    for column in ("open", "high", "low", "close"):
        future.iloc[cut + 1 :, future.columns.get_loc(column)] *= scale
    future.iloc[cut + 1 :, future.columns.get_loc("volume")] *= rng.uniform(0, 5, len(scale))
    perturbed = _signals(future)
    pd.testing.assert_frame_equal(
        perturbed.iloc[: cut + 1], baseline.iloc[: cut + 1], check_exact=True
    )
    assert not perturbed.iloc[cut + 1 :].equals(baseline.iloc[cut + 1 :])


class _Recorder:
    """A model that remembers the rows it was trained on (column 0 carries the row number)."""

    seen: ClassVar[list[np.ndarray]] = []

    def fit(self, features, classes):
        _Recorder.seen.append(features[:, 0].copy())
        return self

    def predict_proba(self, features):
        return np.tile([0.2, 0.5, 0.3], (len(features), 1))


def test_training_rows_stay_clear_of_the_predicted_block():
    frame = bars(2400, seed=8)
    features = build_features(frame)
    features.insert(0, "row", np.arange(len(features), dtype=float))
    labels = make_labels(frame["close"])
    _Recorder.seen = []
    result = walk_forward_predict(features, labels, _Recorder, SMALL)
    folds = SMALL.folds(len(frame))
    assert len(_Recorder.seen) == len(folds)
    for fold, rows in zip(folds, _Recorder.seen, strict=True):
        assert rows.max() <= fold.test_start - SMALL.horizon - 1
        # ...and so the label of every training row is known before the first predicted bar
        assert rows.max() + SMALL.horizon < fold.test_start
    assert (result["action"].dropna() == "HOLD").all()


def test_balanced_weights_and_missing_classes():
    classes = np.array([0, 1, 1, 1, 2, 2])
    weights = balanced_weights(classes)
    assert np.allclose([weights[classes == c].sum() for c in (0, 1, 2)], 2.0)
    model = make_model("lgbm", n_estimators=5, min_child_samples=1)
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(40, 3)), np.array([0, 2] * 20))  # no HOLD in this fold
    probabilities = model.predict_proba(rng.normal(size=(5, 3)))
    assert probabilities.shape == (5, 3) and (probabilities[:, 1] == 0).all()
    with pytest.raises(ValueError, match="no model slot 'tft'"):
        make_model("tft")


# ---------------------------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------------------------


def test_metrics_against_scikit_learn():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss

    from qt_backtest.signals.diagnostics import classification_metrics, reliability_table

    rng = np.random.default_rng(2)
    labels = rng.integers(-1, 2, 500)
    probabilities = rng.dirichlet([1, 1, 1], 500)
    metrics = classification_metrics(labels, probabilities)
    predicted = probabilities.argmax(axis=1)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(labels + 1, predicted))
    assert metrics["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(labels + 1, predicted)
    )
    assert metrics["log_loss"] == pytest.approx(
        log_loss(labels + 1, probabilities, labels=[0, 1, 2])
    )
    onehot = np.eye(3)[labels + 1]
    assert metrics["brier"] == pytest.approx(((probabilities - onehot) ** 2).sum(axis=1).mean())
    assert metrics["share_sell"] + metrics["share_hold"] + metrics["share_buy"] == pytest.approx(1)
    table = reliability_table(labels, probabilities, bins=5)
    assert table["bars"].sum() == 500
    assert (
        (table["mean_confidence"] >= table["low"]) & (table["mean_confidence"] <= table["high"])
    ).all()


def test_diagnostics_by_fold():
    from qt_backtest.signals.diagnostics import diagnostics_by_fold

    frame = bars(2400, seed=9)
    features, labels = build_features(frame), make_labels(frame["close"])
    votes = walk_forward_predict(
        features, labels, lambda: make_model("xgb", n_estimators=20), SMALL
    )
    table = diagnostics_by_fold(votes, labels)
    folds = SMALL.folds(len(frame))
    assert list(table.index) == [*range(len(folds)), "all"]
    assert table.loc["all", "bars"] == int(((votes["fold"] >= 0) & labels.notna()).sum())


# ---------------------------------------------------------------------------------------------
# Prediction cache
# ---------------------------------------------------------------------------------------------


def test_cache_loads_instead_of_training_and_rebuilds_bad_entries(tmp_path, monkeypatch):
    import qt_backtest.signals.models as models
    from qt_backtest.signals.cache import cached_walk_forward

    frame = bars(2000, seed=10)
    fits = []
    original = models.make_model

    def counting(*args, **kwargs):
        fits.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(models, "make_model", counting)
    first = cached_walk_forward(frame, "lgbm", SMALL, tmp_path, n_estimators=10)
    trained = len(fits)
    # one model per fold, and one more that the runner builds first to read what it needs
    assert trained == len(SMALL.folds(len(frame))) + 1
    second = cached_walk_forward(frame, "lgbm", SMALL, tmp_path, n_estimators=10)
    assert len(fits) == trained  # loaded, not trained
    pd.testing.assert_frame_equal(first, second, check_exact=True)

    # a corrupted entry is detected and rebuilt, giving the same votes
    (entry,) = tmp_path.glob("lgbm-*.parquet")
    entry.write_bytes(entry.read_bytes()[:-100])
    with pytest.warns(UserWarning, match="does not match its checksum"):
        third = cached_walk_forward(frame, "lgbm", SMALL, tmp_path, n_estimators=10)
    assert len(fits) == 2 * trained
    pd.testing.assert_frame_equal(first, third, check_exact=True)

    # other inputs make another entry
    changed = frame.copy()
    changed.iloc[-1, changed.columns.get_loc("volume")] += 1.0
    cached_walk_forward(changed, "lgbm", SMALL, tmp_path, n_estimators=10)
    cached_walk_forward(frame, "lgbm", SMALL, tmp_path, n_estimators=11)
    assert len(list(tmp_path.glob("lgbm-*.parquet"))) == 3


def test_cache_rejects_an_entry_written_for_other_inputs(tmp_path):
    import json

    from qt_backtest.signals.cache import cached_walk_forward

    frame = bars(1500, seed=11)
    cached_walk_forward(frame, "xgb", SMALL, tmp_path, n_estimators=5)
    (sidecar,) = tmp_path.glob("xgb-*.json")
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "key": "0" * 64}))
    with pytest.warns(UserWarning, match="written for other inputs"):
        cached_walk_forward(frame, "xgb", SMALL, tmp_path, n_estimators=5)


def test_any_classifier_through_estimator_slot():
    from sklearn.tree import DecisionTreeClassifier

    from qt_backtest.signals import estimator_slot

    frame = bars(2400, seed=12)
    features = build_features(frame).fillna(0.0)
    labels = make_labels(frame["close"])
    votes = walk_forward_predict(
        features,
        labels,
        lambda: estimator_slot(lambda: DecisionTreeClassifier(max_depth=3, random_state=0)),
        SMALL,
    )
    assert votes["action"].iloc[805:].notna().all()
    assert set(labels.dropna().unique()) == {-1.0, 0.0, 1.0}

    class TwoColumns:
        def fit(self, features, classes):
            return self

        def predict_proba(self, features):
            return np.full((len(features), 2), 0.5)

    with pytest.raises(ValueError, match="wrap a plain classifier with estimator_slot"):
        walk_forward_predict(features, labels, TwoColumns, SMALL)


def test_vote_skill_measures_against_the_baselines_without_skill():
    from qt_backtest.signals.diagnostics import vote_skill

    labels = pd.Series([0] * 7 + [1, 1, -1])
    always_hold = vote_skill(pd.Series(["HOLD"] * 10), labels)
    assert always_hold["hit_rate"] == pytest.approx(0.7)
    assert always_hold["majority_rate"] == pytest.approx(0.7)
    assert always_hold["random_rate"] == pytest.approx(0.49 + 0.04 + 0.01)
    assert always_hold["balanced_accuracy"] == pytest.approx(1 / 3)
    assert always_hold["recall_hold"] == 1.0 and always_hold["recall_buy"] == 0.0
    perfect = vote_skill(labels.map({-1: "SELL", 0: "HOLD", 1: "BUY"}), labels)
    assert perfect["balanced_accuracy"] == 1.0 and perfect["hit_rate"] == 1.0
    missing = vote_skill(pd.Series([None] * 10), labels)
    assert missing == {"bars": 0}


def test_walk_forward_predictions_of_several_models_become_a_votes_frame():
    from qt_backtest.hierarchy import replay
    from qt_backtest.signals import votes_from_walk_forward

    index = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    xgb = pd.DataFrame(
        {"action": [None, "BUY", "SELL", "HOLD"], "confidence": [np.nan, 0.8, 0.7, 0.6]},
        index=index,
    )
    lgbm = pd.DataFrame(
        {"action": [None, "BUY", "BUY", "SELL"], "confidence": [np.nan, 0.9, 0.6, 0.55]},
        index=index,
    )
    votes = votes_from_walk_forward({"xgb": xgb, "lgbm": lgbm})
    assert list(votes.columns) == ["xgb_action", "xgb_confidence", "lgbm_action", "lgbm_confidence"]
    assert votes["lgbm_action"].tolist()[1:] == ["BUY", "BUY", "SELL"]
    decisions = replay(votes)
    assert decisions["base_action"].iloc[1] == "BUY"
    with pytest.raises(ValueError, match="not on the first model's index"):
        votes_from_walk_forward({"xgb": xgb, "lgbm": lgbm.iloc[1:]})
    with pytest.raises(ValueError, match="miss column"):
        votes_from_walk_forward({"xgb": xgb.drop(columns="confidence")})
