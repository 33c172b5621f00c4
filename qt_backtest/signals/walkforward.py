"""Leak-free walk-forward splitting: train on the past, predict the next block, move on.

Folds are anchored at the start of the series, so appending bars never moves an earlier fold.
Between a fold's last training row and its first prediction lie ``purge`` bars (at least the
label horizon, so no training label looks into the predicted block) plus an optional
``embargo``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.data.interval import parse_interval
from qt_backtest.errors import ConfigError
from qt_backtest.parameters import document_parameters, param, validate


def _bars(value: int | str | pd.Timedelta | None, bar: pd.Timedelta, name: str) -> int | None:
    """A span as a bar count: integers as they are, durations rounded up to whole bars."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str | pd.Timedelta):
        try:
            span = pd.Timedelta(value)
        except ValueError:
            raise ValueError(
                f"{name}: {value!r} is neither a bar count nor a duration such as '365D'"
            ) from None
        if span <= pd.Timedelta(0):
            raise ValueError(f"{name}: a duration must be positive, got {value!r}")
        return math.ceil(span / bar)
    raise ValueError(f"{name}: a bar count or a duration such as '365D', got {value!r}")


@dataclass(frozen=True)
class Fold:
    """One walk-forward step: train on ``train`` rows, predict ``test`` rows (positions)."""

    number: int
    train_start: int
    train_stop: int
    test_start: int
    test_stop: int

    @property
    def train(self) -> slice:
        return slice(self.train_start, self.train_stop)

    @property
    def test(self) -> slice:
        return slice(self.test_start, self.test_stop)


@document_parameters
@dataclass(frozen=True)
class WalkForward:
    """Walk-forward split over bar positions.

    ``step`` is the retrain interval (720 for monthly 1h bars); the first fold starts once
    ``min_train`` rows are available; ``purge`` must be at least the label ``horizon`` and
    ``embargo`` covers dependence beyond it.
    """

    step: int = param(720, doc="bars predicted by each fold", kind="int", low=1, unit="bars")
    train_window: int | None = param(
        8760,
        doc="training rows per fold (None: expanding window)",
        kind="int",
        low=1,
        nullable=True,
        unit="bars",
    )
    min_train: int = param(
        8760, doc="training rows the first fold needs", kind="int", low=1, unit="bars"
    )
    purge: int = param(
        5,
        doc="bars left out between training and prediction",
        kind="int",
        low=0,
        unit="bars",
        rule="T-LOOK-3",
    )
    embargo: int = param(
        0, doc="further bars left out after the purge", kind="int", low=0, unit="bars"
    )
    horizon: int = param(
        5, doc="label horizon the purge must cover", kind="int", low=1, unit="bars", rule="T-LOOK-3"
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.train_window is not None and self.train_window < self.min_train:
            raise ConfigError(
                f"train_window ({self.train_window}) must be at least min_train ({self.min_train})",
                name="train_window, min_train",
                value=(self.train_window, self.min_train),
            )
        if self.purge < self.horizon:
            raise ConfigError(
                f"purge ({self.purge} bars) must be at least the label horizon "
                f"({self.horizon} bars), or training labels would see the predicted bars",
                name="purge, horizon",
                value=(self.purge, self.horizon),
            )

    @classmethod
    def from_spans(
        cls, interval: str | pd.Timedelta, **spans: int | str | pd.Timedelta | None
    ) -> WalkForward:
        """A splitter whose spans are bar counts or durations of time (``"365D"``, ``"30D"``,
        ``"4h"``), turned into bars of ``interval`` (a duration rounds up to whole bars).

        >>> WalkForward.from_spans("5m", step="30D", train_window="365D", min_train="365D",
        ...                        purge=60, horizon=60).step
        8640
        """
        bar = parse_interval(interval)
        known = {"step", "train_window", "min_train", "purge", "embargo", "horizon"}
        unknown = sorted(set(spans) - known)
        if unknown:
            raise ValueError(f"unknown walk-forward span(s) {unknown}; use {sorted(known)}")
        counts: dict[str, Any] = {name: _bars(value, bar, name) for name, value in spans.items()}
        return cls(**counts)

    @property
    def gap(self) -> int:
        """Bars between the last training row and the first predicted bar."""
        return self.purge + self.embargo

    def folds(self, bars: int) -> list[Fold]:
        """Every fold over ``bars`` rows, in time order."""
        folds = []
        first_test = self.min_train + self.gap
        for number, test_start in enumerate(range(first_test, bars, self.step)):
            train_stop = test_start - self.gap
            train_start = 0 if self.train_window is None else max(0, train_stop - self.train_window)
            folds.append(
                Fold(number, train_start, train_stop, test_start, min(test_start + self.step, bars))
            )
        return folds

    def fold_of_bar(self, bars: int) -> np.ndarray:
        """For every bar, the fold that predicts it (-1 before the first fold)."""
        assignment = np.full(bars, -1, dtype=np.int64)
        for fold in self.folds(bars):
            assignment[fold.test] = fold.number
        return assignment
