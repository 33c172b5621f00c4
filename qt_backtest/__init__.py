"""qt_backtest: replay and evaluate a three-layer trading decision hierarchy on history.

Layout follows the data flow: :mod:`qt_backtest.data` (bars) -> :mod:`qt_backtest.indicators`
(Numba indicator core and the Arbiter's inputs) -> later layers.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qt-backtest")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
