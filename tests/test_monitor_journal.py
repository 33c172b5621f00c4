"""Reading a growing journal file (H-LOG-5): every complete line once, as text mode reads it,
only the new bytes, and a truncated or replaced file refused."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qt_backtest.errors import JournalError, JournalRotatedError
from qt_backtest.hierarchy.livelog import JournalReader, parse_live_log
from qt_backtest.monitor import journal
from qt_backtest.monitor.journal import (
    HEAD_BYTES,
    JournalPosition,
    LineBatch,
    follow,
    read_new_lines,
)
from tests.livelog_fixtures import make_journal

JOURNAL = make_journal(400, seed=5)[0]
BYTES = ("\n".join(JOURNAL) + "\n").encode("utf-8")


def text_mode_lines(path: Path) -> list[str]:
    """The file's lines as Python's text mode reads them (universal newlines, bad bytes
    replaced), without their line ends."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return [line.rstrip("\n") for line in handle]


# Engine lines and awkward bytes: line ends of three kinds, invalid UTF-8, a character whose
# bytes a write may split, and lines longer than a read.
PIECES = st.lists(
    st.one_of(
        st.sampled_from([line.encode("utf-8") + b"\n" for line in JOURNAL[:60]]),
        st.sampled_from(
            [b"\r\n", b"\r", b"\n", b"\xff\xfe garbage\n", "📊 ⚖️".encode(), b"x" * 300]
        ),
    ),
    min_size=1,
    max_size=40,
).map(b"".join)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=PIECES,
    writes=st.lists(st.integers(1, 400), min_size=1, max_size=30),
    max_bytes=st.one_of(st.none(), st.integers(1, 500)),
    round_trips=st.booleans(),
)
def test_reading_as_the_file_grows_gives_every_complete_line_once(
    tmp_path_factory, content, writes, max_bytes, round_trips
):
    path = tmp_path_factory.mktemp("grow") / "journal.log"
    path.write_bytes(b"")
    position, lines, written = None, [], 0
    reader, records = JournalReader(2026), []
    for size in [*writes, len(content)]:
        with open(path, "ab") as handle:
            handle.write(content[written : written + size])
        written = min(len(content), written + size)
        while True:
            new, position = read_new_lines(path, position, max_bytes)
            if round_trips:
                position = JournalPosition.from_dict(json.loads(json.dumps(position.to_dict())))
                reader = JournalReader.from_dict(json.loads(json.dumps(reader.to_dict())))
            records += reader.feed(new)
            lines += new
            if not new:
                break
        assert position.offset == content[:written].rfind(b"\n") + 1
    records += reader.flush()
    complete = content[: content.rfind(b"\n") + 1]
    path.write_bytes(complete)  # the oracle reads the complete lines only
    assert lines == text_mode_lines(path)
    parsed = parse_live_log(path, year=2026)
    assert len(records) == len(parsed.records)
    assert reader.skipped == parsed.skipped and reader.line_kinds == parsed.line_kinds


@settings(max_examples=60, deadline=None)
@given(content=PIECES, decode_bytes=st.integers(1, 64))
def test_decoding_in_slices_gives_the_text_mode_lines(tmp_path_factory, content, decode_bytes):
    path = tmp_path_factory.mktemp("slices") / "journal.log"
    complete = content[: content.rfind(b"\n") + 1]
    path.write_bytes(complete)
    with mock.patch.object(journal, "_DECODE_BYTES", decode_bytes):
        assert read_new_lines(path, None)[0] == text_mode_lines(path)


def test_a_partial_last_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "journal.log"
    path.write_bytes(BYTES[:100])
    lines, position = read_new_lines(path, None)
    assert lines == [] and position.offset == 0
    path.write_bytes(BYTES)
    lines, position = read_new_lines(path, position)
    assert lines == JOURNAL and position.offset == len(BYTES)
    assert read_new_lines(path, position) == ([], position)


class CountingFile:
    """A binary file that counts the bytes read from it."""

    read_bytes = 0

    def __init__(self, handle):
        self.handle = handle

    def read(self, size=-1):
        data = self.handle.read(size)
        CountingFile.read_bytes += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def test_only_the_new_bytes_are_read(tmp_path, monkeypatch):
    path = tmp_path / "journal.log"
    path.write_bytes(BYTES * 20)
    _, position = read_new_lines(path, None)
    monkeypatch.setattr(journal, "open", lambda *a: CountingFile(open(*a)), raising=False)
    CountingFile.read_bytes = 0
    added = JOURNAL[3].encode("utf-8") + b"\n"
    with open(path, "ab") as handle:
        handle.write(added)
    lines, _ = read_new_lines(path, position)
    assert lines == [JOURNAL[3]]
    assert CountingFile.read_bytes == HEAD_BYTES + len(added)  # the head check and the new line


def test_the_head_covers_the_first_bytes_read_while_the_file_is_short(tmp_path):
    path = tmp_path / "journal.log"
    position = None
    for k in range(0, 60):
        with open(path, "ab") as handle:
            handle.write(JOURNAL[k].encode("utf-8") + b"\n")
        _, position = read_new_lines(path, position)
        assert position.head_length == min(position.offset, HEAD_BYTES)
    assert position.head_length == HEAD_BYTES < position.offset


def test_a_truncated_file_is_refused_by_name(tmp_path):
    path = tmp_path / "journal.log"
    path.write_bytes(BYTES)
    _, position = read_new_lines(path, None)
    with open(path, "r+b") as handle:
        handle.truncate(len(BYTES) // 2)
    with pytest.raises(JournalRotatedError, match=rf"{path}: the journal was truncated") as error:
        read_new_lines(path, position)
    assert error.value.path == str(path)


def test_a_file_replaced_under_the_name_is_refused(tmp_path):
    path = tmp_path / "journal.log"
    path.write_bytes(BYTES)
    _, position = read_new_lines(path, None)
    rotated = tmp_path / "journal.log.1"
    os.replace(path, rotated)
    path.write_bytes(BYTES * 2)  # a new file, longer than the position
    with pytest.raises(JournalRotatedError, match="replaced: another file has its name"):
        read_new_lines(path, position)


def test_a_file_rewritten_in_place_is_refused(tmp_path):
    path = tmp_path / "journal.log"
    path.write_bytes(BYTES)
    _, position = read_new_lines(path, None)
    with open(path, "r+b") as handle:  # same file and length, other first bytes
        handle.write(b"Jan")
    with pytest.raises(JournalRotatedError, match="rewritten: its first 4,096 bytes differ"):
        read_new_lines(path, position)
    # reading it again from the start is the way on
    lines, _ = read_new_lines(path, None)
    assert len(lines) == len(JOURNAL)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such journal"):
        read_new_lines(tmp_path / "absent.log", None)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"offset": -1, "device": 1, "inode": 1, "head_length": 0}, "offset must be a count"),
        ({"offset": 10, "device": 1, "inode": 1, "head_length": 3}, "head_length must be"),
        ({"offset": 0, "device": 1, "inode": 1, "head_length": 0, "head_sha256": "x"}, "64"),
        ({"offset": 0}, "has keys"),
    ],
)
def test_a_bad_position_is_refused(values, problem):
    values = {"head_sha256": "0" * 64, **values}
    with pytest.raises(JournalError, match=problem):
        JournalPosition.from_dict(values)


def test_a_line_longer_than_a_read_comes_whole(tmp_path):
    path = tmp_path / "journal.log"
    path.write_bytes(b"a" * 1000 + b"\n" + b"b" * 50 + b"\n")
    lines, position = read_new_lines(path, None, max_bytes=10)
    assert lines == ["a" * 1000] and position.offset == 1001
    lines, position = read_new_lines(path, position, max_bytes=10)
    assert lines == ["b" * 50] and position.offset == 1052


def test_follow_yields_the_lines_a_writer_appends(tmp_path):
    path = tmp_path / "journal.log"
    path.write_bytes(b"")
    done = threading.Event()

    def write():
        for k in range(0, len(BYTES), 997):  # pieces that cut lines and characters
            with open(path, "ab") as handle:
                handle.write(BYTES[k : k + 997])
            time.sleep(0.002)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    batches = list(follow(path, None, poll_seconds=0.005, stop=done.is_set, max_bytes=4096))
    writer.join()
    assert [line for batch in batches for line in batch] == JOURNAL
    assert all(isinstance(batch, LineBatch) for batch in batches) and len(batches) > 1
    assert batches[-1].position.offset == len(BYTES)
    offsets = [batch.position.offset for batch in batches]
    assert offsets == sorted(offsets)


def test_follow_reads_a_backlog_in_batches_and_refuses_a_bad_poll(tmp_path):
    path = tmp_path / "journal.log"
    path.write_bytes(BYTES)
    batches = list(follow(path, None, poll_seconds=1.0, stop=lambda: True, max_bytes=2048))
    assert len(batches) > 2 and [line for b in batches for line in b] == JOURNAL
    with pytest.raises(JournalError, match="poll_seconds"):
        next(follow(path, None, poll_seconds=0))
