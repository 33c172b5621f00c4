"""Loading OHLCV bars from files: CSV / CSV.GZ, parquet, Binance kline archives (CSV or ZIP),
folders of monthly Binance files, and several symbols at once.

Every loader returns a frame with a UTC :class:`~pandas.DatetimeIndex` named ``timestamp`` (bar
open time) and float64 columns ``open, high, low, close, volume``, validated by
:func:`qt_backtest.data.validate_ohlcv`. ``frame.attrs`` carries ``source`` (file names),
``symbol`` (from the file name, if it names one), ``interval`` (e.g. ``"1h"``) and ``gaps`` (the
gap report as a JSON-friendly dict; :func:`qt_backtest.data.gap_report` returns it as a
:class:`~qt_backtest.data.GapReport`). All attrs are JSON-serialisable, so frames write to parquet.
"""

from __future__ import annotations

import gzip
import io
import re
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from qt_backtest.data.errors import DataValidationError
from qt_backtest.data.gaps import apply_gap_policy
from qt_backtest.data.interval import format_interval, infer_interval
from qt_backtest.data.validate import OHLCV_COLUMNS, check_required_columns, validate_ohlcv

#: Column order of Binance's public kline archive files.
BINANCE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
BINANCE_EXTRA = ("quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume")
TIMESTAMP_NAMES = ("timestamp", "date", "datetime", "time", "open_time", "opentime")
FILE_SUFFIXES = (".csv", ".csv.gz", ".gz", ".txt", ".zip", ".parquet", ".pq")

# Epoch magnitude classes: a timestamp after 1973 in seconds has >= 9 digits, in milliseconds
# >= 12, microseconds >= 15, nanoseconds >= 18. Binance switched its spot archive from
# milliseconds to microseconds in 2025, so both occur.
_EPOCH_UNITS = (("s", 1e11), ("ms", 1e14), ("us", 1e17), ("ns", np.inf))


def _display_name(path: Path, member: str | None = None) -> str:
    return f"{path.name}:{member}" if member else path.name


def symbol_from_name(name: str) -> str | None:
    """``"BTCUSDT-1h-2024-01.zip"`` -> ``"BTCUSDT"``; None if the name does not start with one."""
    match = re.match(r"([A-Za-z0-9]+?)(?:[-_.]|$)", Path(name).name)
    if match is None:
        return None
    return match.group(1).upper()


#: The name a frame goes by when neither its attrs nor its file name give one.
UNNAMED_SYMBOL = "series"


def frame_symbol(frame: pd.DataFrame) -> str:
    """The symbol of a single frame: ``attrs["symbol"]``, else the start of the file name in
    ``attrs["source"]`` (``BTCUSDT-1h.csv.gz`` -> ``BTCUSDT``), else ``"series"``."""
    symbol = frame.attrs.get("symbol")
    if isinstance(symbol, str) and symbol:
        return symbol
    source = frame.attrs.get("source")
    if isinstance(source, str | Path) and str(source):
        named = symbol_from_name(Path(str(source)).name)
        if named:
            return named
    return UNNAMED_SYMBOL


def per_symbol(frame: pd.DataFrame, level: str = "symbol") -> dict[str, pd.DataFrame]:
    """Split a frame stacked by ``(symbol, timestamp)`` rows (a prediction store, say) into
    one frame per symbol, indexed by timestamp alone, in the order the symbols first appear.

    Raises ValueError naming the index levels when ``frame`` has no ``level``."""
    index = frame.index
    if not isinstance(index, pd.MultiIndex) or level not in index.names:
        raise ValueError(
            f"the frame has no {level!r} index level to split by (index levels: "
            f"{list(index.names)})"
        )
    symbols = index.get_level_values(level)
    return {str(symbol): frame.xs(symbol, level=level) for symbol in symbols.unique()}


def _epoch_to_index(values: np.ndarray, source: str | None, lines: np.ndarray) -> pd.DatetimeIndex:
    magnitude = np.abs(values.astype(np.float64))
    unit_class = np.searchsorted([limit for _, limit in _EPOCH_UNITS], magnitude, side="right")
    unit_class = np.minimum(unit_class, len(_EPOCH_UNITS) - 1)
    mixed = np.flatnonzero(unit_class != unit_class[0])
    if mixed.size:
        row = int(mixed[0])
        raise DataValidationError(
            f"timestamp {values[row]} is in {_EPOCH_UNITS[unit_class[row]][0]}, but the first "
            f"row's is in {_EPOCH_UNITS[unit_class[0]][0]}: mixed epoch units",
            source=source,
            row=row,
            line=int(lines[row]),
            count=int(mixed.size),
        )
    unit = _EPOCH_UNITS[unit_class[0]][0]
    return pd.DatetimeIndex(pd.to_datetime(values.astype(np.int64), unit=unit, utc=True))


def parse_timestamps(
    raw: pd.Series, source: str | None, lines: np.ndarray | None = None
) -> pd.DatetimeIndex:
    """Parse a timestamp column: ISO-8601 text (naive = UTC) or epoch numbers of any unit.

    ``lines`` gives each row's file line for error messages (default: row + 2, a CSV with a
    header). Raises :class:`DataValidationError` naming the first bad row.
    """
    if lines is None:
        lines = np.arange(len(raw)) + 2
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        numbers = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.flatnonzero(~np.isfinite(numbers))
        if missing.size:
            row = int(missing[0])
            raise DataValidationError(
                "missing timestamp",
                source=source,
                row=row,
                line=int(lines[row]),
                count=int(missing.size),
            )
        if np.any(numbers != np.round(numbers)):
            row = int(np.flatnonzero(numbers != np.round(numbers))[0])
            raise DataValidationError(
                f"unparsable timestamp {raw.iloc[row]!r}: epoch timestamps must be integers",
                source=source,
                row=row,
                line=int(lines[row]),
            )
        index = _epoch_to_index(numbers, source, lines)
    elif isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw.dtype):
        index = pd.DatetimeIndex(raw)
        index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    else:
        text = raw.astype("string").str.strip()
        if text.notna().all() and text.str.fullmatch(r"-?\d+").all():
            return parse_timestamps(text.astype(np.int64), source, lines)
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if bad.size:
            row = int(bad[0])
            raise DataValidationError(
                f"unparsable timestamp {raw.iloc[row]!r} (expected ISO-8601 such as "
                "2024-01-01T00:00:00Z, or epoch seconds/ms/us)",
                source=source,
                row=row,
                line=int(lines[row]),
                count=int(bad.size),
            )
        index = pd.DatetimeIndex(parsed)
    return index.as_unit("ns").rename("timestamp")


def _numeric_column(raw: pd.Series, column: str, source: str, lines: np.ndarray) -> np.ndarray:
    if pd.api.types.is_bool_dtype(raw.dtype):
        # true/false would read as 1.0/0.0: a column of flags is not prices or volume
        raise DataValidationError(
            f"column {column} holds true/false values, not numbers", source=source
        )
    if pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.to_numpy(dtype=np.float64, na_value=np.nan)
    numbers = pd.to_numeric(raw, errors="coerce")
    text = raw.astype("string").str.strip()
    bad = np.flatnonzero((numbers.isna() & text.notna() & (text != "")).to_numpy())
    if bad.size:
        row = int(bad[0])
        raise DataValidationError(
            f"non-numeric value {raw.iloc[row]!r} in column {column}",
            source=source,
            row=row,
            line=int(lines[row]),
            count=int(bad.size),
        )
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def _build_frame(
    raw: pd.DataFrame,
    timestamp_column: str | None,
    columns: Iterable[str],
    source: str,
    first_line: int,
) -> pd.DataFrame:
    """Frame of float columns indexed by UTC timestamps parsed from ``raw``."""
    lines = np.arange(len(raw)) + first_line
    if timestamp_column is None:
        if not isinstance(raw.index, pd.DatetimeIndex):
            raise DataValidationError(
                "no timestamp column: expected one of "
                + ", ".join(TIMESTAMP_NAMES)
                + " or a DatetimeIndex",
                source=source,
            )
        index = parse_timestamps(raw.index.to_series(index=range(len(raw))), source, lines)
    else:
        index = parse_timestamps(raw[timestamp_column].reset_index(drop=True), source, lines)
    data = {
        column: _numeric_column(raw[column].reset_index(drop=True), column, source, lines)
        for column in columns
    }
    frame = pd.DataFrame(data, index=index)
    frame.attrs["lines"] = lines
    frame.attrs["source"] = source
    return frame


def _find_timestamp_column(columns: Iterable[str]) -> str | None:
    lowered = {str(column).strip().lower(): column for column in columns}
    for name in TIMESTAMP_NAMES:
        if name in lowered:
            return lowered[name]
    return None


def _standard_table(raw: pd.DataFrame, source: str, first_line: int) -> pd.DataFrame:
    """A table with a header: find the timestamp and OHLCV columns (names case-insensitive)."""
    renamed = raw.rename(columns=lambda column: str(column).strip().lower())
    timestamp_column = _find_timestamp_column(renamed.columns)
    if timestamp_column is None and not isinstance(renamed.index, pd.DatetimeIndex):
        first = renamed.columns[0] if len(renamed.columns) else None
        if first is not None and (first == "" or first.startswith("unnamed")):
            timestamp_column = first  # an unnamed first column, as pandas writes the index
    check_required_columns(list(renamed.columns), source)
    if timestamp_column is None and not isinstance(renamed.index, pd.DatetimeIndex):
        raise DataValidationError(
            "no timestamp column: expected one of " + ", ".join(TIMESTAMP_NAMES),
            source=source,
        )
    return _build_frame(renamed, timestamp_column, OHLCV_COLUMNS, source, first_line)


def _binance_table(
    raw: pd.DataFrame, source: str, first_line: int, keep_extra: bool
) -> pd.DataFrame:
    if raw.shape[1] not in (6, len(BINANCE_COLUMNS)):
        raise DataValidationError(
            f"a Binance kline file has 12 columns (or 6: time and OHLCV), found {raw.shape[1]}",
            source=source,
        )
    raw = raw.set_axis(list(BINANCE_COLUMNS[: raw.shape[1]]), axis=1)
    columns = list(OHLCV_COLUMNS)
    if keep_extra and raw.shape[1] == len(BINANCE_COLUMNS):
        columns += list(BINANCE_EXTRA)
    return _build_frame(raw, "open_time", columns, source, first_line)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_text_table(
    buffer: str | Path | io.BytesIO, source: str, keep_extra: bool, compression: str | None
) -> pd.DataFrame:
    """A CSV read with every failure of decompression, decoding or parsing named as the
    file's problem."""
    try:
        return _parse_text_table(buffer, source, keep_extra, compression)
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, zlib.error) as error:
        problem = (
            "not UTF-8 text"
            if isinstance(error, UnicodeDecodeError)
            else f"a damaged or truncated compressed file ({type(error).__name__})"
        )
        raise DataValidationError(f"cannot read the file: {problem}", source=source) from None
    except pd.errors.ParserError as error:
        raise DataValidationError(
            f"cannot read the file as CSV: {str(error).splitlines()[0]}", source=source
        ) from None


def _parse_text_table(
    buffer: str | Path | io.BytesIO, source: str, keep_extra: bool, compression: str | None
) -> pd.DataFrame:
    try:
        head = pd.read_csv(buffer, header=None, nrows=1, dtype=str, compression=compression)
    except pd.errors.EmptyDataError:
        raise DataValidationError("no bars: the file is empty", source=source) from None
    if isinstance(buffer, io.BytesIO):
        buffer.seek(0)
    first_field = str(head.iloc[0, 0]).strip()
    if _looks_numeric(first_field):
        raw = pd.read_csv(buffer, header=None, compression=compression)
        return _binance_table(raw, source, first_line=1, keep_extra=keep_extra)
    raw = pd.read_csv(buffer, compression=compression)
    if len(raw) == 0:
        raise DataValidationError("no bars: the file has a header but no rows", source=source)
    if first_field.lower() in ("open_time", "opentime") and raw.shape[1] == len(BINANCE_COLUMNS):
        return _binance_table(raw, source, first_line=2, keep_extra=keep_extra)
    return _standard_table(raw, source, first_line=2)


def _read_zip(path: Path, keep_extra: bool) -> pd.DataFrame:
    with zipfile.ZipFile(path) as archive:
        members = [
            name
            for name in archive.namelist()
            if not name.endswith("/") and not name.startswith("__MACOSX")
        ]
        if len(members) != 1:
            raise DataValidationError(
                f"a zip must hold exactly one CSV file, found {len(members)}"
                + (f": {', '.join(members)}" if members else ""),
                source=path.name,
            )
        content = io.BytesIO(archive.read(members[0]))
    return _read_text_table(content, _display_name(path, members[0]), keep_extra, None)


def _read_parquet(path: Path) -> pd.DataFrame:
    raw = pd.read_parquet(path)
    if len(raw) == 0:
        raise DataValidationError("no bars: the file has no rows", source=path.name)
    if isinstance(raw.index, pd.DatetimeIndex):
        renamed = raw.rename(columns=lambda column: str(column).strip().lower())
        check_required_columns(list(renamed.columns), path.name)
        return _build_frame(renamed, None, OHLCV_COLUMNS, path.name, first_line=0)
    return _standard_table(raw.reset_index(drop=True), path.name, first_line=0)


def _read_file(path: Path, keep_extra: bool) -> pd.DataFrame:
    name = path.name.lower()
    if not path.exists():
        raise FileNotFoundError(f"no such data file: {path}")
    if name.endswith(".zip"):
        return _read_zip(path, keep_extra)
    if name.endswith((".parquet", ".pq")):
        return _read_parquet(path)
    return _read_text_table(path, path.name, keep_extra, "infer")


def _finish(
    frame: pd.DataFrame, sources: list[str], gaps: str, validate_interval: bool = True
) -> pd.DataFrame:
    lines = frame.attrs.pop("lines", None)
    source = frame.attrs.pop("source", None) or ", ".join(sources)
    if lines is not None and lines[0] == 0:
        lines = None  # parquet rows have no line numbers
    validate_ohlcv(frame, source=source, lines=lines, check_interval=validate_interval)
    frame = apply_gap_policy(frame, gaps, source=source)
    frame.attrs["source"] = source
    symbols = {symbol_from_name(name) for name in sources}
    frame.attrs["symbol"] = symbols.pop() if len(symbols) == 1 else None
    frame.attrs["interval"] = (
        format_interval(infer_interval(frame.index)) if len(frame) > 1 else None
    )
    return frame


def load_ohlcv(path: str | Path, *, gaps: str = "report", keep_extra: bool = False) -> pd.DataFrame:
    """Load and validate OHLCV bars from one file, or from a folder of files.

    Parameters
    ----------
    path : str or Path
        A CSV (optionally gzip-compressed) with a header naming a timestamp column and
        ``open, high, low, close, volume`` (any case); a Binance kline file (12 columns, no
        header, open time in milliseconds or microseconds, detected); a ``.zip`` holding one
        such CSV; a parquet file; or a folder of such files (see :func:`load_folder`).
        Timestamps without a time zone are taken as UTC.
    gaps : {"report", "raise", "fill", "drop"}
        What to do with bars missing from the regular grid; the gap report of the data as
        loaded is always attached (see :func:`qt_backtest.data.apply_gap_policy` and
        :func:`qt_backtest.data.gap_report`).
    keep_extra : bool
        Keep Binance's extra columns (quote volume, trades, taker volumes).

    Raises
    ------
    DataValidationError
        Naming the file, row, line and problem, for anything that is not a clean series.
    """
    path = Path(path)
    if path.is_dir():
        return load_folder(path, gaps=gaps, keep_extra=keep_extra)
    frame = _read_file(path, keep_extra)
    frame = _finish(frame, [path.name], gaps)
    # the file actually read, for provenance (the name alone may match another file)
    frame.attrs["path"] = str(path.resolve())
    return frame


def load_folder(
    folder: str | Path, pattern: str = "*", *, gaps: str = "report", keep_extra: bool = False
) -> pd.DataFrame:
    """Load every data file in ``folder`` matching ``pattern`` and join them in time order.

    Files are read in name order (Binance's monthly names sort by month), each validated on its
    own, then the seams are checked: a file must start after the previous one ends.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    files = sorted(
        path
        for path in folder.glob(pattern)
        if path.is_file() and path.name.lower().endswith(FILE_SUFFIXES)
    )
    if not files:
        raise DataValidationError(
            f"no data files matching {pattern!r} (suffixes {', '.join(FILE_SUFFIXES)})",
            source=str(folder),
        )
    frames = []
    for path in files:
        frame = _read_file(path, keep_extra)
        lines = frame.attrs.pop("lines", None)
        validate_ohlcv(
            frame,
            source=path.name,
            lines=None if lines is None or lines[0] == 0 else lines,
            check_interval=False,
        )
        frames.append(frame)
    for previous, current, previous_path, current_path in zip(
        frames, frames[1:], files, files[1:], strict=False
    ):
        if current.index[0] <= previous.index[-1]:
            raise DataValidationError(
                f"starts at {current.index[0]}, not after the end of {previous_path.name} "
                f"({previous.index[-1]}): the files overlap or are out of order",
                source=current_path.name,
                row=0,
            )
    joined = pd.concat(frames)
    joined.attrs = {}
    frame = _finish(joined, [path.name for path in files], gaps)
    frame.attrs["source"] = (
        f"{folder.name}/ ({len(files)} files: {files[0].name} .. {files[-1].name})"
    )
    return frame


def load_many(
    sources: Mapping[str, str | Path] | Iterable[str | Path],
    *,
    layout: str = "dict",
    gaps: str = "report",
    keep_extra: bool = False,
) -> dict[str, pd.DataFrame] | pd.DataFrame:
    """Load several symbols.

    Parameters
    ----------
    sources : mapping of symbol to path, or iterable of paths
        Without a mapping the symbol is taken from each file name (``BTCUSDT-1h.csv.gz``).
    layout : {"dict", "wide"}
        ``"dict"``: ``{symbol: frame}``. ``"wide"``: one frame with ``(symbol, field)`` column
        MultiIndex over the union of timestamps (see :func:`to_wide`).
    """
    if layout not in ("dict", "wide"):
        raise ValueError(f"layout must be 'dict' or 'wide', got {layout!r}")
    if isinstance(sources, Mapping):
        pairs = [(str(symbol), Path(path)) for symbol, path in sources.items()]
    else:
        pairs = []
        for path in sources:
            symbol = symbol_from_name(Path(path).name)
            if symbol is None:
                raise ValueError(f"cannot tell the symbol from the file name {Path(path).name!r}")
            pairs.append((symbol, Path(path)))
    if not pairs:
        raise ValueError("no sources given")
    symbols = [symbol for symbol, _ in pairs]
    duplicated = sorted({symbol for symbol in symbols if symbols.count(symbol) > 1})
    if duplicated:
        raise ValueError(f"symbol(s) given more than once: {', '.join(duplicated)}")
    frames = {}
    for symbol, path in pairs:
        frame = load_ohlcv(path, gaps=gaps, keep_extra=keep_extra)
        frame.attrs["symbol"] = symbol
        frames[symbol] = frame
    return frames if layout == "dict" else to_wide(frames)


def to_wide(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Join per-symbol frames into one with ``(symbol, field)`` columns.

    The index is the union of all timestamps; a symbol without a bar at a timestamp has NaN
    there (indicators treat such bars as missing and restart their warm-up).
    """
    if not frames:
        raise ValueError("no frames to join")
    wide = pd.concat(dict(frames), axis=1, names=["symbol", "field"], sort=True)
    wide.attrs = {}
    return wide


def from_wide(wide: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split a ``(symbol, field)`` frame into ``{symbol: frame}``, dropping rows where a symbol
    has no bar."""
    if not isinstance(wide.columns, pd.MultiIndex) or wide.columns.nlevels != 2:
        raise ValueError("expected columns with two levels: (symbol, field)")
    frames = {}
    for symbol in wide.columns.get_level_values(0).unique():
        frame = wide[symbol].dropna(how="all")
        frame.columns.name = None
        frames[str(symbol)] = frame
    return frames
