"""Data layer: loaders, validation errors, gaps and resampling, on real and crafted files."""

from __future__ import annotations

import gzip
import zipfile

import numpy as np
import pandas as pd
import pytest

from qt_backtest.data import (
    BINANCE_COLUMNS,
    DataValidationError,
    find_gaps,
    from_wide,
    gap_report,
    list_samples,
    load_folder,
    load_many,
    load_ohlcv,
    load_sample,
    resample_ohlcv,
    validate_ohlcv,
)
from tests.conftest import data_file

# rows, gaps, missing bars -- as documented in data/PROVENANCE.md and tests/data/PROVENANCE.md
DATA_FILES = {
    "BTCUSDT-1h.csv.gz": (73_265, 27, 122),
    "ETHUSDT-1h.csv.gz": (73_265, 27, 122),
    "SOLUSDT-1h.csv.gz": (834, 0, 0),
    "BNBUSDT-1h.csv.gz": (834, 0, 0),
    "BTCUSDT-5m.csv.gz": (10_000, 0, 0),
    "ETHUSDT-5m.csv.gz": (10_000, 0, 0),
    "SOLUSDT-5m.csv.gz": (10_000, 0, 0),
    "BNBUSDT-5m.csv.gz": (10_000, 0, 0),
}

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD_ROWS = [
    "2024-01-01T00:00:00Z,100,101,99,100.5,10",
    "2024-01-01T01:00:00Z,100.5,102,100,101,12",
    "2024-01-01T02:00:00Z,101,101.5,100.2,100.8,9",
    "2024-01-01T03:00:00Z,100.8,103,100.7,102.9,20",
    "2024-01-01T04:00:00Z,102.9,104,102,103.5,15",
]


def write_csv(tmp_path, rows, header=HEADER, name="bars.csv"):
    path = tmp_path / name
    path.write_text(header + "\n".join(rows) + ("\n" if rows else ""))
    return path


def with_row(index, text):
    rows = list(GOOD_ROWS)
    rows[index] = text
    return rows


# ---------------------------------------------------------------------------------------------
# Real files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DATA_FILES))
def test_data_files_load_with_documented_gaps(name):
    rows, gap_count, missing = DATA_FILES[name]
    frame = load_ohlcv(data_file(name))
    assert len(frame) == rows
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert str(frame.index.tz) == "UTC" and frame.index.name == "timestamp"
    report = gap_report(frame)
    assert (report.count, report.missing_bars) == (gap_count, missing)
    assert frame.attrs["symbol"] == name.split("-")[0]


def test_largest_btc_gap_is_the_february_2018_outage(btc_1h):
    largest = gap_report(btc_1h).largest
    assert largest.missing_bars == 33
    assert largest.after == pd.Timestamp("2018-02-08T00:00Z")
    assert largest.before == pd.Timestamp("2018-02-09T10:00Z")
    table = gap_report(btc_1h).to_frame()
    assert list(table.columns) == ["after", "before", "missing_bars"] and len(table) == 27


def test_known_bar_and_exact_round_trip(btc_1h):
    bar = btc_1h.loc[pd.Timestamp("2021-01-01T00:00Z")]
    assert tuple(bar) == (28923.63, 29031.34, 28690.17, 28995.13, 2311.811445)
    plain = pd.read_csv(data_file("BTCUSDT-1h.csv.gz"), parse_dates=["timestamp"])
    assert np.array_equal(plain["close"].to_numpy(), btc_1h["close"].to_numpy())


def test_equity_daily_bars_use_a_weekday_calendar():
    frame = load_ohlcv(data_file("GOOG-1d.csv.gz"))
    report = gap_report(frame)
    assert report.calendar == "weekdays" and frame.attrs["interval"] == "1d"
    # weekends are not gaps; market holidays are (each a single missing weekday, at most 2)
    assert report.largest.missing_bars <= 2
    assert find_gaps(frame, calendar="continuous").missing_bars > 600


def test_bundled_sample():
    assert {"BTCUSDT-1h", "ETHUSDT-1h"} <= set(list_samples())
    frame = load_sample("BTCUSDT-1h")
    assert len(frame) == 73_265
    with pytest.raises(FileNotFoundError, match="no sample named 'DOGE-1m'.*BTCUSDT-1h"):
        load_sample("DOGE-1m")


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"])
def test_resampling_5m_reproduces_the_1h_files(symbol):
    five = load_ohlcv(data_file(f"{symbol}-5m.csv.gz"))
    hourly = load_ohlcv(data_file(f"{symbol}-1h.csv.gz"))
    resampled = resample_ohlcv(five, "1h")
    common = resampled.index.intersection(hourly.index)
    # every complete hour of the 5m file inside the 1h file's range is in the 1h file
    in_range = resampled.index[resampled.index <= hourly.index[-1]]
    assert len(common) == len(in_range) > 800
    for column in ("open", "high", "low", "close"):
        assert np.array_equal(resampled.loc[common, column], hourly.loc[common, column]), column
    np.testing.assert_allclose(
        resampled.loc[common, "volume"], hourly.loc[common, "volume"], rtol=0, atol=1e-7
    )
    assert (resampled["bars"] == 12).all()


def test_resampling_keeps_only_complete_bins(eth_5m):
    part = eth_5m.iloc[:48].drop(eth_5m.index[[5, 30]])
    complete = resample_ohlcv(part, "1h", source_interval="5m")
    partial = resample_ohlcv(part, "1h", complete=False, source_interval="5m")
    assert len(complete) == 2 and len(partial) == 4
    assert list(partial["bars"]) == [11, 12, 11, 12]
    assert partial["volume"].iloc[0] == pytest.approx(
        eth_5m["volume"].iloc[:12].drop(eth_5m.index[5]).sum()
    )
    with pytest.raises(ValueError, match="whole multiple of the source interval"):
        resample_ohlcv(part, "7m", source_interval="5m")


# ---------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------


def binance_rows(frame, unit="ms"):
    factor = {"ms": 1_000_000, "us": 1_000}[unit]
    open_ns = frame.index.as_unit("ns").asi8
    step = int(np.diff(open_ns[:2])[0])
    out = []
    for stamp, (o, h, l, c, v) in zip(open_ns, frame.itertuples(index=False), strict=True):
        open_time = stamp // factor
        close_time = (stamp + step) // factor - 1
        out.append(
            f"{open_time},{o},{h},{l},{c},{v},{close_time},{v * c},100,{v / 2},{v * c / 2},0"
        )
    return out


@pytest.mark.parametrize("unit", ["ms", "us"])
def test_binance_kline_file_time_unit_is_detected(tmp_path, btc_1h, unit):
    part = btc_1h.iloc[:200]
    path = tmp_path / "BTCUSDT-1h-2024-01.csv"
    path.write_text("\n".join(binance_rows(part, unit)) + "\n")
    frame = load_ohlcv(path)
    pd.testing.assert_frame_equal(frame, part, check_freq=False, check_exact=True)
    extra = load_ohlcv(path, keep_extra=True)
    assert list(extra.columns) == list(BINANCE_COLUMNS[1:6]) + [
        "quote_volume",
        "trades",
        "taker_buy_volume",
        "taker_buy_quote_volume",
    ]


def test_binance_zip_and_monthly_folder(tmp_path, btc_1h):
    months = [btc_1h.loc["2024-01"], btc_1h.loc["2024-02"], btc_1h.loc["2024-03"]]
    folder = tmp_path / "klines"
    folder.mkdir()
    for month, unit in zip(months, ["ms", "ms", "us"], strict=True):
        name = f"BTCUSDT-1h-{month.index[0]:%Y-%m}"
        with zipfile.ZipFile(folder / f"{name}.zip", "w") as archive:
            archive.writestr(f"{name}.csv", "\n".join(binance_rows(month, unit)) + "\n")
    single = load_ohlcv(folder / "BTCUSDT-1h-2024-02.zip")
    pd.testing.assert_frame_equal(single, months[1], check_freq=False, check_exact=True)
    joined = load_ohlcv(folder)
    pd.testing.assert_frame_equal(joined, pd.concat(months), check_freq=False, check_exact=True)
    assert joined.attrs["symbol"] == "BTCUSDT" and gap_report(joined).count == 0


def test_folder_with_overlapping_files_names_both(tmp_path, btc_1h):
    folder = tmp_path / "overlap"
    folder.mkdir()
    (folder / "BTCUSDT-1h-2024-01.csv").write_text("\n".join(binance_rows(btc_1h.iloc[:100])))
    (folder / "BTCUSDT-1h-2024-02.csv").write_text("\n".join(binance_rows(btc_1h.iloc[90:200])))
    with pytest.raises(DataValidationError) as error:
        load_folder(folder)
    message = str(error.value)
    assert "BTCUSDT-1h-2024-02.csv" in message and "BTCUSDT-1h-2024-01.csv" in message
    assert "overlap" in message


def test_parquet_with_index_or_column(tmp_path, btc_1h):
    part = btc_1h.iloc[:300]
    part.to_parquet(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(
        load_ohlcv(tmp_path / "a.parquet"), part, check_freq=False, check_exact=True
    )
    part.reset_index().to_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(
        load_ohlcv(tmp_path / "b.parquet"), part, check_freq=False, check_exact=True
    )


def test_gzip_csv_time_zones_and_case(tmp_path):
    text = "Date,Open,High,Low,Close,Volume\n" + "\n".join(
        [
            "2024-01-01 02:00:00+02:00,1,2,0.5,1.5,3",
            "2024-01-01 01:00:00,1.5,2,1,1.2,4",
            "2024-01-01T02:00:00Z,1.2,1.3,1.1,1.25,0",
        ]
    )
    path = tmp_path / "x.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    frame = load_ohlcv(path)
    assert list(frame.index) == list(pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC"))


def test_several_symbols(tmp_path, btc_1h):
    eth = load_ohlcv(data_file("ETHUSDT-1h.csv.gz"))
    btc_path = tmp_path / "BTCUSDT-1h.parquet"
    eth_path = tmp_path / "ETHUSDT-1h.parquet"
    btc_1h.iloc[:100].to_parquet(btc_path)
    eth.iloc[50:150].to_parquet(eth_path)
    frames = load_many([btc_path, eth_path])
    assert list(frames) == ["BTCUSDT", "ETHUSDT"]
    wide = load_many({"BTC": btc_path, "ETH": eth_path}, layout="wide")
    assert wide.columns.names == ["symbol", "field"] and len(wide) == 150
    assert wide[("BTC", "close")].isna().sum() == 50
    back = from_wide(wide)
    pd.testing.assert_frame_equal(back["ETH"], eth.iloc[50:150], check_freq=False, check_exact=True)
    with pytest.raises(ValueError, match="more than once: BTCUSDT"):
        load_many([btc_path, btc_path])


# ---------------------------------------------------------------------------------------------
# Gap policies
# ---------------------------------------------------------------------------------------------


def test_gap_policies(btc_1h):
    path = data_file("BTCUSDT-1h.csv.gz")
    with pytest.raises(DataValidationError, match="27 gap.*122 missing.*gaps='fill'"):
        load_ohlcv(path, gaps="raise")
    filled = load_ohlcv(path, gaps="fill")
    assert len(filled) == 73_265 + 122
    assert find_gaps(filled).count == 0
    added = filled.index.difference(btc_1h.index)
    assert len(added) == 122
    flat = filled.loc[added]
    assert (flat["volume"] == 0).all()
    assert (flat["open"] == flat["close"]).all() and (flat["high"] == flat["low"]).all()
    first = added[0]
    assert filled.loc[first, "close"] == btc_1h["close"][btc_1h.index < first].iloc[-1]
    pd.testing.assert_frame_equal(
        filled.loc[btc_1h.index], btc_1h, check_freq=False, check_exact=True
    )
    dropped = load_ohlcv(path, gaps="drop")
    assert find_gaps(dropped).count == 0 and len(dropped) > 10_000
    assert gap_report(dropped).count == 27  # the report describes the data as loaded
    with pytest.raises(ValueError, match="gaps must be one of report, raise, fill, drop"):
        load_ohlcv(path, gaps="ignore")


# ---------------------------------------------------------------------------------------------
# Every error names file, row and problem
# ---------------------------------------------------------------------------------------------

ERROR_CASES = {
    "missing column": (
        [",".join(r.split(",")[:5]) for r in GOOD_ROWS],
        "timestamp,open,high,low,close\n",
        r"bars\.csv: missing required column\(s\) volume",
    ),
    "unparsable timestamp": (
        with_row(2, "2024-13-45T00:00:00Z,1,1,1,1,1"),
        HEADER,
        r"bars\.csv: row 2, line 4: unparsable timestamp '2024-13-45T00:00:00Z'",
    ),
    "unsorted": (
        [GOOD_ROWS[0], GOOD_ROWS[2], GOOD_ROWS[1], *GOOD_ROWS[3:]],
        HEADER,
        r"row 2, line 4, timestamp 2024-01-01 01:00:00\+00:00: timestamp is earlier than "
        r"the previous row's .* not sorted",
    ),
    "duplicate": (
        [GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[1], *GOOD_ROWS[3:]],
        HEADER,
        r"row 2, line 4, .*: duplicate timestamp \(same as row 1\)",
    ),
    "NaN price": (
        with_row(3, "2024-01-01T03:00:00Z,100.8,,100.7,102.9,20"),
        HEADER,
        r"row 3, line 5, timestamp 2024-01-01 03:00:00\+00:00: NaN in high",
    ),
    "infinite price": (
        with_row(1, "2024-01-01T01:00:00Z,100.5,102,100,inf,12"),
        HEADER,
        r"row 1, line 3, .*: infinite value in close",
    ),
    "high below low": (
        with_row(4, "2024-01-01T04:00:00Z,102.9,101,102,101.5,15"),
        HEADER,
        r"row 4, line 6, .*: high 101.0 < low 102.0",
    ),
    "high below open/close": (
        with_row(0, "2024-01-01T00:00:00Z,100,101,99,101.5,10"),
        HEADER,
        r"row 0, line 2, .*: high 101.0 < max\(open 100.0, close 101.5\)",
    ),
    "negative volume": (
        with_row(2, "2024-01-01T02:00:00Z,101,101.5,100.2,100.8,-9"),
        HEADER,
        r"row 2, line 4, .*: negative volume -9.0",
    ),
    "non-numeric": (
        with_row(1, "2024-01-01T01:00:00Z,100.5,abc,100,101,12"),
        HEADER,
        r"row 1, line 3: non-numeric value 'abc' in column high",
    ),
    "mixed intervals": (
        with_row(3, "2024-01-01T02:30:00Z,100.8,103,100.7,102.9,20"),
        HEADER,
        r"row 3, line 5, .*: mixed bar intervals: .* 0 days 00:30:00 after the previous one",
    ),
    "header only": ([], HEADER, r"bars\.csv: no bars: the file has a header but no rows"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_loader_errors_name_file_row_and_problem(tmp_path, case):
    rows, header, message = ERROR_CASES[case]
    path = write_csv(tmp_path, rows, header)
    with pytest.raises(DataValidationError, match=message):
        load_ohlcv(path)


def test_error_attributes_and_count(tmp_path):
    rows = list(GOOD_ROWS)
    rows[0] = "2024-01-01T00:00:00Z,100,101,99,100.5,-10"
    rows[3] = "2024-01-01T03:00:00Z,100.8,103,100.7,102.9,-20"
    with pytest.raises(DataValidationError) as error:
        load_ohlcv(write_csv(tmp_path, rows))
    assert (error.value.row, error.value.line, error.value.count) == (0, 2, 2)
    assert error.value.source == "bars.csv" and "1 more row with this problem" in str(error.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataValidationError, match=r"empty\.csv: no bars: the file is empty"):
        load_ohlcv(path)


def test_spliced_coarser_series_is_a_mixed_interval(tmp_path, eth_5m):
    fine = eth_5m.iloc[:60]
    coarse = resample_ohlcv(eth_5m.iloc[60:600], "1h", source_interval="5m").drop(columns="bars")
    path = tmp_path / "spliced.parquet"
    pd.concat([fine, coarse]).to_parquet(path)
    with pytest.raises(DataValidationError, match="mixed bar intervals: this bar and the next two"):
        load_ohlcv(path)


def test_mixed_epoch_units(tmp_path, btc_1h):
    rows = binance_rows(btc_1h.iloc[:10], "ms")
    rows[4:] = binance_rows(btc_1h.iloc[4:10], "us")
    path = tmp_path / "k.csv"
    path.write_text("\n".join(rows))
    with pytest.raises(
        DataValidationError,
        match=r"row 4, line 5: timestamp .* in us, but the "
        r"first row's is in ms",
    ):
        load_ohlcv(path)


def test_zip_must_hold_one_file(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", HEADER + "\n".join(GOOD_ROWS))
        archive.writestr("b.csv", HEADER + "\n".join(GOOD_ROWS))
    with pytest.raises(
        DataValidationError,
        match=r"two\.zip: a zip must hold exactly one CSV "
        r"file, found 2: a\.csv, b\.csv",
    ):
        load_ohlcv(path)


def test_zip_member_named_in_errors(tmp_path):
    path = tmp_path / "one.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("inner.csv", HEADER + "\n".join(with_row(2, GOOD_ROWS[1])))
    with pytest.raises(DataValidationError, match=r"one\.zip:inner\.csv: row 2, line 4"):
        load_ohlcv(path)


def test_validate_frames_directly(btc_1h):
    with pytest.raises(DataValidationError, match="no bars: the input is empty"):
        validate_ohlcv(btc_1h.iloc[:0])
    with pytest.raises(DataValidationError, match="must be in UTC"):
        validate_ohlcv(btc_1h.tz_convert("Europe/Berlin"))
    with pytest.raises(DataValidationError, match="index must be a DatetimeIndex"):
        validate_ohlcv(btc_1h.reset_index())
    with pytest.raises(DataValidationError, match="column volume must be numeric"):
        validate_ohlcv(btc_1h.assign(volume=btc_1h["volume"].astype(str)))
    with pytest.raises(DataValidationError, match="mine: row 5, .*low must be > 0, got 0.0"):
        bad = btc_1h.iloc[:10].copy()
        bad.iloc[5, 3] = 0.0
        bad.iloc[5, 2] = 0.0
        validate_ohlcv(bad, source="mine")
    assert validate_ohlcv(btc_1h) is btc_1h


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such data file"):
        load_ohlcv(tmp_path / "nope.csv")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(DataValidationError, match="no data files matching"):
        load_ohlcv(tmp_path / "emptydir")


def test_boolean_columns_are_not_prices(tmp_path):
    path = tmp_path / "flags.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01 00:00,1,2,0.5,1.5,true\n2024-01-01 01:00,1,2,0.5,1.5,false\n"
    )
    with pytest.raises(DataValidationError, match="flags.csv: .*volume holds true/false"):
        load_ohlcv(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("latin.csv", "timestamp,open\n2024-01-01,\xe9\xe8\n".encode("latin-1"), "not UTF-8"),
        ("fake.csv.gz", b"this is not gzip at all", "damaged or truncated compressed"),
        ("cut.csv.gz", None, "damaged or truncated compressed"),
    ],
)
def test_unreadable_files_are_named_in_the_error(tmp_path, name, content, message):
    import gzip

    path = tmp_path / name
    if content is None:
        whole = gzip.compress(b"timestamp,open,high,low,close,volume\n" * 2000)
        content = whole[: len(whole) // 2]
    path.write_bytes(content)
    with pytest.raises(DataValidationError, match=f"{name}: cannot read the file: .*{message}"):
        load_ohlcv(path)


def test_a_huge_field_gives_a_short_error(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n2024-01-01 00:00,1," + "9" * 2_000_000 + "x,1,1,1\n"
    )
    with pytest.raises(DataValidationError) as caught:
        load_ohlcv(path)
    assert len(str(caught.value)) < 400 and "characters]" in str(caught.value)


def test_per_symbol_splits_stacked_frames_in_order():
    from qt_backtest.data import per_symbol

    index = pd.MultiIndex.from_tuples(
        [
            ("ETHUSDT", pd.Timestamp("2024-01-01", tz="UTC")),
            ("BTCUSDT", pd.Timestamp("2024-01-01", tz="UTC")),
            ("ETHUSDT", pd.Timestamp("2024-01-02", tz="UTC")),
        ],
        names=["symbol", "timestamp"],
    )
    frame = pd.DataFrame({"xgb_confidence": [0.5, 0.6, 0.7]}, index=index)
    parts = per_symbol(frame)
    assert list(parts) == ["ETHUSDT", "BTCUSDT"]
    assert parts["ETHUSDT"]["xgb_confidence"].tolist() == [0.5, 0.7]
    assert parts["BTCUSDT"].index.names == ["timestamp"]
    with pytest.raises(ValueError, match="no 'symbol' index level.*'timestamp'"):
        per_symbol(parts["ETHUSDT"])
