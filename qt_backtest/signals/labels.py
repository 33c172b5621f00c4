"""Training labels of the base models (I-LABEL-1, I-LABEL-2): the forward return's class.

``r = close[t + horizon] / close[t] - 1``; BUY (1) if ``r > threshold``, SELL (-1) if
``r < -threshold``, else HOLD (0). The last ``horizon`` bars have no label (NaN). The class
index a model predicts is ``label + 1``: SELL 0, HOLD 1, BUY 2.

A label at bar t looks ``horizon`` bars into the future by construction: it is a training
target, never a feature, and the walk-forward splitter purges it (see ``walkforward``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qt_backtest.codes import ACTION_LABELS
from qt_backtest.indicators._validate import check_period

LABEL_HORIZON = 5
LABEL_THRESHOLD = 0.015
CLASS_NAMES = ACTION_LABELS  # class index = label + 1


def forward_return(close: pd.Series, horizon: int = LABEL_HORIZON) -> pd.Series:
    """``close[t + horizon] / close[t] - 1`` (fraction); NaN for the last ``horizon`` bars."""
    horizon = check_period(horizon, "horizon")
    values = close.to_numpy(dtype=np.float64)
    result = np.full(values.shape[0], np.nan)
    if values.shape[0] > horizon:
        result[:-horizon] = values[horizon:] / values[:-horizon] - 1.0
    return pd.Series(result, index=close.index, name="forward_return")


def make_labels(
    close: pd.Series, horizon: int = LABEL_HORIZON, threshold: float = LABEL_THRESHOLD
) -> pd.Series:
    """Labels -1 (SELL), 0 (HOLD), 1 (BUY) as floats, NaN where the future is not known."""
    if not isinstance(threshold, int | float) or not 0 <= threshold < 1:
        raise ValueError(f"threshold must be a fraction in [0, 1), got {threshold!r}")
    change = forward_return(close, horizon).to_numpy()
    labels = np.where(change > threshold, 1.0, np.where(change < -threshold, -1.0, 0.0))
    labels[np.isnan(change)] = np.nan
    return pd.Series(labels, index=close.index, name="label")
