"""Prediction store: per-model votes on disk (parquet or CSV), validated on the way in and out.

A predictions frame has one row per bar and symbol -- index ``timestamp`` (UTC), or a
``(symbol, timestamp)`` MultiIndex for several symbols -- and per model the columns
``<model>_action`` (SELL / HOLD / BUY, missing when the model has no vote on that bar) and
``<model>_confidence`` (in [0, 1], missing exactly when the action is), optionally
``<model>_version``. This is the input of :func:`qt_backtest.hierarchy.replay`.

On disk, CSV holds the columns ``timestamp`` (ISO-8601 UTC), ``symbol`` (if any) and the model
columns; parquet keeps the index.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from qt_backtest.atomic import atomic_write
from qt_backtest.codes import ACTION_DTYPE, encode_actions
from qt_backtest.data.errors import DataValidationError
from qt_backtest.data.loaders import parse_timestamps

_SUFFIXES = ("_action", "_confidence", "_version")


def prediction_models(frame: pd.DataFrame) -> list[str]:
    """Model names found in the columns, in column order."""
    models: list[str] = []
    for column in frame.columns:
        if isinstance(column, str) and column.endswith(_SUFFIXES):
            model = column.rsplit("_", 1)[0]
            if model not in models:
                models.append(model)
    return models


def _raise(problem: str, frame: pd.DataFrame, row: int, source: str | None, count: int = 1):
    raise DataValidationError(
        problem, source=source, row=row, timestamp=frame.index[row], count=count
    )


def _normalise_actions(column: pd.Series, model: str, frame, source) -> pd.Series:
    codes, present, bad = encode_actions(column)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        _raise(
            f"unknown action {column.iloc[row]!r} for model {model}: expected BUY, SELL, HOLD "
            "or -1, 0, 1",
            frame,
            row,
            source,
            int(bad.sum()),
        )
    category = np.where(present, codes.astype(np.int64) + 1, -1)  # SELL, HOLD, BUY -> 0, 1, 2
    return pd.Series(pd.Categorical.from_codes(category, dtype=ACTION_DTYPE), index=column.index)


def validate_predictions(
    frame: pd.DataFrame, models: Iterable[str] | None = None, source: str | None = None
) -> pd.DataFrame:
    """Check a predictions frame and return it normalised (actions as SELL/HOLD/BUY).

    Raises
    ------
    DataValidationError
        Naming the row and problem: empty frame; no model columns; a model with an action
        column but no confidence column (or the reverse); unknown models (when ``models`` is
        given); unknown actions; confidences outside [0, 1]; an action without a confidence or
        a confidence without an action; timestamps not UTC, unsorted or duplicated (per symbol).
    """
    if len(frame) == 0:
        raise DataValidationError("no predictions: the input is empty", source=source)
    found = prediction_models(frame)
    if not found:
        raise DataValidationError(
            "no model columns: expected <model>_action and <model>_confidence", source=source
        )
    if models is not None:
        known = list(models)
        unknown = [model for model in found if model not in known]
        if unknown:
            raise DataValidationError(
                f"predictions for unknown model(s) {unknown}; models are {known}", source=source
            )
    for model in found:
        for part in ("action", "confidence"):
            if f"{model}_{part}" not in frame.columns:
                raise DataValidationError(
                    f"model {model} has no {model}_{part} column", source=source
                )
    _check_index(frame, source)
    result = frame.copy()
    result.index = _nanosecond_index(frame.index)
    for model in found:
        actions = _normalise_actions(frame[f"{model}_action"], model, frame, source)
        confidence = pd.to_numeric(frame[f"{model}_confidence"], errors="coerce")
        raw = frame[f"{model}_confidence"]
        unreadable = confidence.isna() & raw.notna()
        if unreadable.any():
            row = int(np.flatnonzero(unreadable.to_numpy())[0])
            _raise(f"{model}_confidence is not a number: {raw.iloc[row]!r}", frame, row, source)
        values = confidence.to_numpy(dtype=np.float64, na_value=np.nan)
        outside = ~np.isnan(values) & ~((values >= 0.0) & (values <= 1.0))
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            _raise(
                f"{model}_confidence must be in [0, 1], got {values[row]!r}",
                frame,
                row,
                source,
                int(outside.sum()),
            )
        has_action = actions.notna().to_numpy()
        has_confidence = ~np.isnan(values)
        lonely = has_action != has_confidence
        if lonely.any():
            row = int(np.flatnonzero(lonely)[0])
            what = (
                "an action without a confidence"
                if has_action[row]
                else ("a confidence without an action")
            )
            _raise(f"model {model} has {what}", frame, row, source, int(lonely.sum()))
        result[f"{model}_action"] = actions
        result[f"{model}_confidence"] = values
    return result


def _check_index(frame: pd.DataFrame, source: str | None) -> None:
    index = frame.index
    if isinstance(index, pd.MultiIndex):
        if list(index.names) != ["symbol", "timestamp"]:
            raise DataValidationError(
                f"a multi-symbol index must be (symbol, timestamp), got {list(index.names)}",
                source=source,
            )
        stamps = index.get_level_values("timestamp")
        symbols = index.get_level_values("symbol")
    else:
        stamps, symbols = index, None
    if not isinstance(stamps, pd.DatetimeIndex) or stamps.tz is None or str(stamps.tz) != "UTC":
        raise DataValidationError(
            "timestamps must be a UTC DatetimeIndex (index 'timestamp')", source=source
        )
    nanoseconds = stamps.as_unit("ns").asi8
    same_symbol = np.ones(len(frame) - 1, dtype=bool)
    if symbols is not None:
        codes = pd.factorize(symbols)[0]
        same_symbol = codes[1:] == codes[:-1]
        if len(np.unique(codes)) != 1 + int((codes[1:] != codes[:-1]).sum()):
            row = int(np.flatnonzero(codes[1:] != codes[:-1])[0]) + 1
            _raise(
                "rows of a symbol must be contiguous (sort by symbol, then time)",
                frame,
                row,
                source,
            )
    steps = np.diff(nanoseconds)
    backwards = np.flatnonzero(same_symbol & (steps < 0))
    if backwards.size:
        _raise("timestamps are not sorted", frame, int(backwards[0]) + 1, source)
    duplicates = np.flatnonzero(same_symbol & (steps == 0))
    if duplicates.size:
        _raise("duplicate timestamp", frame, int(duplicates[0]) + 1, source, int(duplicates.size))


def _nanosecond_index(index: pd.Index) -> pd.Index:
    """One timestamp resolution (ns) whatever the source, so that stores round-trip exactly."""
    if isinstance(index, pd.MultiIndex):
        stamps = index.get_level_values("timestamp").as_unit("ns")
        return pd.MultiIndex.from_arrays(
            [index.get_level_values("symbol"), stamps], names=["symbol", "timestamp"]
        )
    return index.as_unit("ns").rename("timestamp")


def write_predictions(frame: pd.DataFrame, path: str | Path, *, compact: bool = False) -> Path:
    """Validate and write predictions to ``.parquet`` or ``.csv`` (optionally ``.csv.gz``).

    With ``compact=True`` a parquet file stores confidences as float32 (about 7 significant
    digits) with zstd compression, roughly half the size; reading gives those values back as
    float64.
    """
    path = Path(path)
    frame = validate_predictions(frame, source=path.name)
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        if compact:
            confidences = [c for c in frame.columns if str(c).endswith("_confidence")]
            frame = frame.astype(dict.fromkeys(confidences, np.float32))
            atomic_write(path, lambda temporary: frame.to_parquet(temporary, compression="zstd"))
        else:
            atomic_write(path, frame.to_parquet)
    elif name.endswith((".csv", ".csv.gz")):
        flat = frame.reset_index()
        flat["timestamp"] = flat["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        atomic_write(path, lambda temporary: flat.to_csv(temporary, index=False))
    else:
        raise ValueError(f"write predictions to .parquet or .csv, not {path.name!r}")
    return path


def read_predictions(path: str | Path, models: Iterable[str] | None = None) -> pd.DataFrame:
    """Read and validate predictions written by :func:`write_predictions` (or by hand)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such predictions file: {path}")
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        frame = pd.read_parquet(path)
        if "timestamp" in frame.columns:
            frame = _index_from_columns(frame, path.name)
    elif name.endswith((".csv", ".csv.gz")):
        frame = pd.read_csv(path)
        if len(frame) == 0:
            raise DataValidationError("no predictions: the file has no rows", source=path.name)
        frame = _index_from_columns(frame, path.name)
    else:
        raise ValueError(f"read predictions from .parquet or .csv, not {path.name!r}")
    return validate_predictions(frame, models, source=path.name)


def _index_from_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    if "timestamp" not in frame.columns:
        raise DataValidationError("no timestamp column", source=source)
    stamps = parse_timestamps(frame["timestamp"].reset_index(drop=True), source)
    frame = frame.drop(columns="timestamp")
    frame.index = stamps
    if "symbol" in frame.columns:
        frame = frame.set_index("symbol", append=True).swaplevel()
        frame.index = frame.index.set_names(["symbol", "timestamp"])
    return frame


def votes_from_walk_forward(predictions: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The votes frame :func:`qt_backtest.hierarchy.replay` takes, from walk-forward runs.

    Parameters
    ----------
    predictions : mapping of model name to DataFrame
        :func:`qt_backtest.signals.walk_forward_predict` outputs (``action``, ``confidence``),
        one per model, in vote order, all on one index.

    Returns
    -------
    DataFrame
        ``<model>_action`` (categorical SELL / HOLD / BUY) and ``<model>_confidence`` per
        model, validated as a predictions table.
    """
    if not predictions:
        raise ValueError("no model predictions given")
    index = None
    columns = {}
    for model, frame in predictions.items():
        missing = [c for c in ("action", "confidence") if c not in frame.columns]
        if missing:
            raise ValueError(f"{model}: predictions miss column(s) {missing}")
        if index is None:
            index = frame.index
        elif not frame.index.equals(index):
            raise ValueError(f"{model}: predictions are not on the first model's index")
        columns[f"{model}_action"] = frame["action"].astype(object).astype(ACTION_DTYPE)
        columns[f"{model}_confidence"] = frame["confidence"].astype(np.float64)
    return validate_predictions(pd.DataFrame(columns, index=index))
