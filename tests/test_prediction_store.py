"""Prediction store: round trips and validation errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qt_backtest.data import DataValidationError
from qt_backtest.hierarchy import replay
from qt_backtest.signals import read_predictions, validate_predictions, write_predictions

MODELS = ("xgb", "lgbm", "nhits", "patchtst")


def sample(bars=50, symbols=("BTCUSDT",), seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for symbol in symbols:
        index = pd.date_range("2024-01-01", periods=bars, freq="1h", tz="UTC", name="timestamp")
        frame = pd.DataFrame(index=index)
        for model in MODELS:
            actions = rng.choice(["BUY", "SELL", "HOLD"], bars).astype(object)
            confidence = rng.uniform(0.3, 1.0, bars)
            missing = rng.uniform(0, 1, bars) < 0.1
            actions[missing] = None
            confidence[missing] = np.nan
            frame[f"{model}_action"] = actions
            frame[f"{model}_confidence"] = confidence
        frame["symbol"] = symbol
        frames.append(frame.set_index("symbol", append=True).swaplevel())
    if len(symbols) == 1:
        return frames[0].droplevel("symbol")
    return pd.concat(frames)


@pytest.mark.parametrize("name", ["p.parquet", "p.csv", "p.csv.gz"])
@pytest.mark.parametrize("symbols", [("BTCUSDT",), ("BTCUSDT", "ETHUSDT")])
def test_round_trip(tmp_path, name, symbols):
    frame = validate_predictions(sample(symbols=symbols))
    path = write_predictions(frame, tmp_path / name)
    back = read_predictions(path, MODELS)
    pd.testing.assert_frame_equal(back, frame, check_exact=True, check_freq=False)
    decisions = replay(back)
    assert decisions.index.equals(frame.index)


def test_numeric_actions_are_normalised():
    frame = sample(5)
    frame["xgb_action"] = [1, -1, 0, None, 1]
    frame.loc[frame.index[3], "xgb_confidence"] = np.nan
    result = validate_predictions(frame)
    assert list(result["xgb_action"].astype(object))[:3] == ["BUY", "SELL", "HOLD"]


def _with(frame, column, row, value):
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.iloc[row, frame.columns.get_loc(column)] = value
    return frame


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda f: _with(f, "xgb_action", 3, "LONG"),
            r"row 3, .*unknown action 'LONG' for model xgb",
        ),
        (
            lambda f: _with(f, "lgbm_confidence", 4, 1.2),
            r"row 4, .*lgbm_confidence must be in \[0, 1\]",
        ),
        (
            lambda f: _with(f, "nhits_confidence", 2, np.nan).pipe(
                lambda g: _with(g, "nhits_action", 2, "BUY")
            ),
            r"row 2, .*model nhits has an action without a confidence",
        ),
        (
            lambda f: _with(_with(f, "xgb_action", 1, None), "xgb_confidence", 1, 0.5),
            r"row 1, .*model xgb has a confidence without an action",
        ),
        (lambda f: f.iloc[[0, 2, 1, 3]], r"row 2, .*timestamps are not sorted"),
        (lambda f: f.iloc[[0, 1, 1, 2]], r"row 2, .*duplicate timestamp"),
        (
            lambda f: f.drop(columns="patchtst_confidence"),
            "model patchtst has no patchtst_confidence column",
        ),
        (lambda f: f.iloc[:0], "no predictions: the input is empty"),
        (lambda f: f.tz_convert("Asia/Tokyo"), "timestamps must be a UTC DatetimeIndex"),
        (lambda f: f.assign(tft_action="BUY", tft_confidence=0.5), r"unknown model\(s\) \['tft'\]"),
    ],
)
def test_validation_errors(mutate, message):
    with pytest.raises(DataValidationError, match=message):
        validate_predictions(mutate(sample(10)), MODELS)


def test_duplicates_are_per_symbol(tmp_path):
    frame = sample(5, symbols=("BTCUSDT", "ETHUSDT"))
    validate_predictions(frame)  # same timestamps across symbols are fine
    broken = frame.iloc[[0, 1, 1, 2]]
    with pytest.raises(DataValidationError, match="duplicate timestamp"):
        validate_predictions(broken)


def test_csv_with_a_bad_timestamp_names_the_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "timestamp,xgb_action,xgb_confidence\n2024-01-01T00:00:00Z,BUY,0.7\nyesterday,SELL,0.6\n"
    )
    with pytest.raises(
        DataValidationError, match=r"bad\.csv: row 1, line 3: unparsable timestamp 'yesterday'"
    ):
        read_predictions(path)


def test_compact_parquet(tmp_path):
    frame = validate_predictions(sample(200, symbols=("BTCUSDT", "ETHUSDT")))
    full = write_predictions(frame, tmp_path / "full.parquet")
    small = write_predictions(frame, tmp_path / "small.parquet", compact=True)
    assert small.stat().st_size < full.stat().st_size
    back = read_predictions(small)
    np.testing.assert_allclose(back["xgb_confidence"], frame["xgb_confidence"], rtol=1e-7)
    assert back["xgb_action"].equals(frame["xgb_action"])


def test_bundled_sample_predictions():
    from qt_backtest.data import sample_dir

    votes = read_predictions(
        sample_dir() / "sample-predictions.parquet", ["xgb", "lgbm", "nhits", "patchtst"]
    )
    assert set(votes.index.get_level_values("symbol")) == {"BTCUSDT", "ETHUSDT"}
    assert len(votes) == 2 * 73_265
    active = votes["xgb_action"].notna()
    assert 0.85 < active.mean() < 0.9  # the first year trains the first fold
    for model in ("lgbm", "nhits", "patchtst"):  # every slot votes on the same bars
        assert votes[f"{model}_action"].notna().equals(active)
