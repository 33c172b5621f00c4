"""Parameter sweeps: a fused Numba kernel over grids of thresholds, with overfitting controls.

The package is callable: ``qt_backtest.sweep(...)`` is :func:`qt_backtest.sweep.run.sweep`, so
that ``import qt_backtest as qt; qt.sweep(bars, votes, inputs, grid)`` reads as a verb while
``qt.sweep.Grid`` and ``from qt_backtest.sweep import ...`` keep working.
"""

import inspect
import sys
import types

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


class _CallableModule(types.ModuleType):
    """This package, callable as its entry point :func:`~qt_backtest.sweep.run.sweep`."""

    def __call__(self, *args, **kwargs) -> SweepResult:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
__signature__ = inspect.signature(sweep)
