"""Parameter sweeps: a fused Numba kernel over grids of thresholds, with overfitting controls."""

from qt_backtest.sweep.grid import Grid, apply_parameters
from qt_backtest.sweep.overfitting import (
    PBOResult,
    WalkForwardSelection,
    block_moments,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    plateau_selection,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    walk_forward_selection,
)
from qt_backtest.sweep.run import (
    OverfittingReport,
    SweepResult,
    metrics_from_stats,
    pack_grid,
    rank_rows,
    sweep,
)

__all__ = [
    "Grid",
    "OverfittingReport",
    "PBOResult",
    "SweepResult",
    "WalkForwardSelection",
    "apply_parameters",
    "block_moments",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "metrics_from_stats",
    "pack_grid",
    "plateau_selection",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "rank_rows",
    "sweep",
    "walk_forward_selection",
]
