"""Market data: loading, validation, gaps, resampling and the bundled sample."""

from qt_backtest.data.errors import DataValidationError
from qt_backtest.data.gaps import (
    GAP_POLICIES,
    Gap,
    GapReport,
    apply_gap_policy,
    drop_gaps,
    fill_gaps,
    find_gaps,
    gap_report,
)
from qt_backtest.data.interval import format_interval, infer_interval, parse_interval
from qt_backtest.data.loaders import (
    BINANCE_COLUMNS,
    frame_symbol,
    from_wide,
    load_folder,
    load_many,
    load_ohlcv,
    parse_timestamps,
    per_symbol,
    symbol_from_name,
    to_wide,
)
from qt_backtest.data.resample import resample_ohlcv
from qt_backtest.data.sample import list_samples, load_sample, sample_dir
from qt_backtest.data.validate import OHLCV_COLUMNS, PRICE_COLUMNS, validate_ohlcv

__all__ = [
    "BINANCE_COLUMNS",
    "GAP_POLICIES",
    "OHLCV_COLUMNS",
    "PRICE_COLUMNS",
    "DataValidationError",
    "Gap",
    "GapReport",
    "apply_gap_policy",
    "drop_gaps",
    "fill_gaps",
    "find_gaps",
    "format_interval",
    "frame_symbol",
    "from_wide",
    "gap_report",
    "infer_interval",
    "list_samples",
    "load_folder",
    "load_many",
    "load_ohlcv",
    "load_sample",
    "parse_interval",
    "parse_timestamps",
    "per_symbol",
    "resample_ohlcv",
    "sample_dir",
    "symbol_from_name",
    "to_wide",
    "validate_ohlcv",
]
