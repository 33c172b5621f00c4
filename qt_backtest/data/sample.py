"""The bundled sample data (``data/`` at the project root)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from qt_backtest.data.loaders import load_ohlcv

#: Environment variable that points to another folder of sample files.
SAMPLE_DIR_ENV = "QT_BACKTEST_DATA"
_SUFFIX = ".csv.gz"


def sample_dir() -> Path:
    """Folder holding the bundled sample files (``$QT_BACKTEST_DATA`` if set)."""
    configured = os.environ.get(SAMPLE_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "data"


def list_samples() -> list[str]:
    """Names accepted by :func:`load_sample`, e.g. ``["BTCUSDT-1h", "ETHUSDT-1h"]``."""
    folder = sample_dir()
    return sorted(path.name[: -len(_SUFFIX)] for path in folder.glob(f"*{_SUFFIX}"))


def load_sample(name: str = "BTCUSDT-1h", *, gaps: str = "report") -> pd.DataFrame:
    """Load a bundled sample series, e.g. ``load_sample("BTCUSDT-1h")``.

    The samples are Binance spot candles; ``data/PROVENANCE.md`` says where they come from.
    """
    path = sample_dir() / f"{name}{_SUFFIX}"
    if not path.exists():
        available = ", ".join(list_samples()) or "none"
        raise FileNotFoundError(
            f"no sample named {name!r} in {sample_dir()} (available: {available})"
        )
    return load_ohlcv(path, gaps=gaps)
