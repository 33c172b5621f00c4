"""The error raised for bad market data (defined in :mod:`qt_backtest.errors`)."""

from __future__ import annotations

from qt_backtest.errors import LONGEST_RUN, DataValidationError, shorten_runs

__all__ = ["LONGEST_RUN", "DataValidationError", "shorten_runs"]
