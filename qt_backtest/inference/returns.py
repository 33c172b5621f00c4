"""Period returns of equity curves: what the verdicts test.

Bar returns of hourly or 5-minute bars carry intraday noise and dependence that tell nothing
about whether a layer earns its keep; the verdicts compare runs on returns per period (daily
by default), each from the equity at the period's last bar to the next period's last bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qt_backtest.backtest.periods import periods_per_year
from qt_backtest.data.interval import parse_interval


def check_period(period: str | pd.Timedelta) -> pd.Timedelta:
    """Validate a return period: a duration such as ``"1D"``, ``"4h"`` or ``"7D"``."""
    try:
        length = parse_interval(period)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"period must be a duration such as '1D' or '4h', got {period!r}"
        ) from error
    if length <= pd.Timedelta(0):
        raise ValueError(f"period must be positive, got {period!r}")
    return length


def check_time_index(index: pd.Index, what: str) -> None:
    """Raise ValueError unless ``index`` holds timestamps, increasing, without duplicates."""
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"{what} must be indexed by timestamps")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise ValueError(f"{what} timestamps must be increasing without duplicates")


def period_returns(
    value: pd.Series | pd.DataFrame, init_cash: float, period: str | pd.Timedelta = "1D"
) -> pd.Series | pd.DataFrame:
    """Returns per period of equity curves.

    Parameters
    ----------
    value : Series or DataFrame
        Equity at each bar's close (quote currency), indexed by timestamp; one column per run.
    init_cash : float
        Equity before the first bar: the first period's return is measured from it.
    period : str or Timedelta
        Period length, counted from midnight UTC (``"1D"``: calendar days).

    Returns
    -------
    Series or DataFrame
        One row per period holding at least one bar, labelled by the period's start: the
        equity at its last bar over the equity at the previous such period's last bar, minus
        one. After an equity of zero (a closed-out account) returns are 0.
    """
    length = check_period(period)
    if not init_cash > 0:
        raise ValueError(f"init_cash must be positive, got {init_cash!r}")
    if len(value) == 0:
        raise ValueError("period returns need at least one bar of equity")
    check_time_index(value.index, "equity")
    frame = value.to_frame() if isinstance(value, pd.Series) else value
    if frame.isna().to_numpy().any():
        raise ValueError("equity must not hold NaN")
    ends = frame.groupby(frame.index.floor(length)).last()
    previous = ends.shift(1)
    previous.iloc[0] = init_cash
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = ends / previous - 1.0
    returns = returns.where(previous > 0, 0.0)  # nothing left to gain or lose
    return returns.iloc[:, 0].rename(value.name) if isinstance(value, pd.Series) else returns


def period_count_per_year(index: pd.DatetimeIndex, period: str | pd.Timedelta) -> float:
    """Periods per year of period returns indexed by ``index``: 365 days of periods for
    round-the-clock markets, 252 days for daily periods on a weekday calendar."""
    length = check_period(period)
    if len(index) < 3:
        return pd.Timedelta(days=365) / length
    return periods_per_year(index, length)
