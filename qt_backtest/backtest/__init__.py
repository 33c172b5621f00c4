"""Backtests of replayed decisions: position model, vectorbt simulation and metrics."""

from qt_backtest.backtest.metrics import drawdown, performance
from qt_backtest.backtest.periods import periods_per_year
from qt_backtest.backtest.rules import PositionRules
from qt_backtest.backtest.simulate import BacktestResult, order_sizes, simulate, target_exposure

__all__ = [
    "BacktestResult",
    "PositionRules",
    "drawdown",
    "order_sizes",
    "performance",
    "periods_per_year",
    "simulate",
    "target_exposure",
]
