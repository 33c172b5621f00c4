"""Backtests of replayed decisions: position model, vectorbt simulation and metrics."""

from qt_backtest.backtest.attribution import (
    counterfactual_path,
    override_values,
    pnl_by_layer,
    value_by,
)
from qt_backtest.backtest.compare import RUNS, Comparison, compare_modes, rollout_check
from qt_backtest.backtest.metrics import drawdown, performance
from qt_backtest.backtest.periods import periods_per_year
from qt_backtest.backtest.rules import PositionRules
from qt_backtest.backtest.simulate import BacktestResult, order_sizes, simulate, target_exposure

__all__ = [
    "RUNS",
    "BacktestResult",
    "Comparison",
    "PositionRules",
    "compare_modes",
    "counterfactual_path",
    "drawdown",
    "order_sizes",
    "override_values",
    "performance",
    "periods_per_year",
    "pnl_by_layer",
    "rollout_check",
    "simulate",
    "target_exposure",
    "value_by",
]
