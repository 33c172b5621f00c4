"""qt_backtest: replay and evaluate a three-layer trading decision hierarchy on history.

The package follows the data flow, one subpackage a stage: :mod:`~qt_backtest.data` (bars)
-> :mod:`~qt_backtest.indicators` (the Arbiter's inputs) -> :mod:`~qt_backtest.signals` (model
votes) -> :mod:`~qt_backtest.hierarchy` (the decisions) -> :mod:`~qt_backtest.backtest`
(portfolios) -> :mod:`~qt_backtest.sweep` (threshold grids) -> :mod:`~qt_backtest.inference`
(verdicts) -> :mod:`~qt_backtest.report` (HTML); :mod:`~qt_backtest.monitor` watches a live
rollout stage from its journal.

The main verbs and configurations are available from the top level::

    import qt_backtest as qt

    bars = qt.load_sample("BTCUSDT-1h")
    votes = qt.read_predictions("predictions.parquet")
    inputs = qt.arbiter_inputs(bars)
    decisions = qt.replay(votes, inputs, qt.HierarchyConfig(mode="meta_arbiter"))
    result = qt.simulate(bars, decisions, qt.PositionRules(fee=0.0004))
    comparison = qt.compare_modes(bars, votes, inputs)
    grid = qt.Grid.product({"arbiter.arbiter_threshold": [0.6, 0.7, 0.8]})
    swept = qt.sweep(bars, votes, inputs, grid)

``qt.sweep`` is both the sweep subpackage and its entry point: calling it runs
:func:`qt_backtest.sweep.run.sweep`. Names are imported on first use, so ``import qt_backtest``
stays fast.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("qt-backtest")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# top-level name -> module that defines it
_FACE = {
    "load_ohlcv": "qt_backtest.data",
    "load_sample": "qt_backtest.data",
    "per_symbol": "qt_backtest.data",
    "arbiter_inputs": "qt_backtest.indicators",
    "read_predictions": "qt_backtest.signals",
    "HierarchyConfig": "qt_backtest.hierarchy",
    "replay": "qt_backtest.hierarchy",
    "decision_rates": "qt_backtest.hierarchy",
    "PositionRules": "qt_backtest.backtest",
    "simulate": "qt_backtest.backtest",
    "compare_modes": "qt_backtest.backtest",
    "Grid": "qt_backtest.sweep",
    "VerdictSettings": "qt_backtest.inference",
    "layer_verdicts": "qt_backtest.inference",
    "run_study": "qt_backtest.report",
    "write_report": "qt_backtest.report",
    "Monitor": "qt_backtest.monitor.monitor",
    "MonitorConfig": "qt_backtest.monitor.config",
    "monitor_history": "qt_backtest.monitor.history",
}

__all__ = [
    "Grid",
    "HierarchyConfig",
    "Monitor",
    "MonitorConfig",
    "PositionRules",
    "VerdictSettings",
    "__version__",
    "arbiter_inputs",
    "compare_modes",
    "decision_rates",
    "layer_verdicts",
    "load_ohlcv",
    "load_sample",
    "monitor_history",
    "per_symbol",
    "read_predictions",
    "replay",
    "run_study",
    "simulate",
    "sweep",
    "write_report",
]

if TYPE_CHECKING:  # static checkers and IDEs see the real names
    from qt_backtest import sweep
    from qt_backtest.backtest import PositionRules, compare_modes, simulate
    from qt_backtest.data import load_ohlcv, load_sample, per_symbol
    from qt_backtest.hierarchy import HierarchyConfig, decision_rates, replay
    from qt_backtest.indicators import arbiter_inputs
    from qt_backtest.inference import VerdictSettings, layer_verdicts
    from qt_backtest.monitor.config import MonitorConfig
    from qt_backtest.monitor.history import monitor_history
    from qt_backtest.monitor.monitor import Monitor
    from qt_backtest.report import run_study, write_report
    from qt_backtest.signals import read_predictions
    from qt_backtest.sweep import Grid


def __getattr__(name: str) -> Any:
    module = _FACE.get(name)
    if module is None:
        # subpackages (qt.sweep, qt.data, ...) load on first access too
        try:
            return import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
