"""Reading a growing journal file incrementally (H-LOG-5).

:func:`read_new_lines` returns the complete lines written since a saved
:class:`JournalPosition` and the position after them; :func:`follow` repeats it as the file
grows. Only the new bytes are read (a seek to the saved offset, never a rescan), plus at most
:data:`HEAD_BYTES` at the start of the file to recognise it. A line is complete once a newline
(``\\n``) follows it: a partial last line is left for the next call.

Lines come out as reading the file in text mode gives them: decoded as UTF-8 with invalid bytes
replaced, and universal newlines (``\\r\\n`` and a lone ``\\r`` end a line, as ``\\n`` does;
lines ended by a lone ``\\r`` are handed over when the next ``\\n`` is written). Feeding them to
:class:`~qt_backtest.hierarchy.livelog.JournalReader` in any batches therefore gives what
:func:`~qt_backtest.hierarchy.livelog.parse_live_log` gives for the file's complete lines (it
also reads a last line without a newline, which may still be being written).

A position belongs to one file. When the file at the path is shorter than the position, or is
another file (device and inode changed, or its first bytes differ from those read before: it
was truncated and rewritten), reading stops with
:class:`~qt_backtest.errors.JournalRotatedError` naming it, rather than restarting on its own:
the reader state saved with the position describes the old file, and mixing the two would
double-count or split records without a trace. Start again from ``position=None`` with a
fresh reader to read the new file.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from qt_backtest.errors import JournalError, JournalRotatedError

#: Bytes at the start of a journal whose hash recognises the file (fewer while it is shorter).
HEAD_BYTES = 4096
#: Bytes :func:`follow` reads at most per batch (a batch ends at a line end after that).
BATCH_BYTES = 8 << 20
#: Bytes decoded at a time.
_DECODE_BYTES = 1 << 20
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class JournalPosition:
    """How far a journal has been read, and which file it was.

    Attributes
    ----------
    offset : int
        Bytes read, up to the end of the last complete line.
    device, inode : int
        The file's device and inode number when it was read (``os.stat``).
    head_length : int
        Bytes at the start of the file covered by ``head_sha256``:
        ``min(offset, HEAD_BYTES)``.
    head_sha256 : str
        SHA-256 (hex) of those bytes.
    """

    offset: int
    device: int
    inode: int
    head_length: int
    head_sha256: str

    def __post_init__(self) -> None:
        for name in ("offset", "device", "inode", "head_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise JournalError(f"journal position: {name} must be a count, got {value!r}")
        if self.head_length != min(self.offset, HEAD_BYTES):
            raise JournalError(
                f"journal position: head_length must be min(offset, {HEAD_BYTES}) = "
                f"{min(self.offset, HEAD_BYTES)}, got {self.head_length}"
            )
        digest = self.head_sha256
        if not (
            isinstance(digest, str)
            and len(digest) == 64
            and all(c in "0123456789abcdef" for c in digest)
        ):
            raise JournalError(
                f"journal position: head_sha256 must be 64 lower-case hex digits, got {digest!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The position as JSON-safe values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> JournalPosition:
        """The position :meth:`to_dict` saved; JournalError names what is wrong."""
        expected = {"offset", "device", "inode", "head_length", "head_sha256"}
        if not isinstance(values, Mapping) or set(values) != expected:
            keys = sorted(values) if isinstance(values, Mapping) else type(values).__name__
            raise JournalError(f"journal position has keys {keys}, expected {sorted(expected)}")
        return cls(**values)


class LineBatch(list[str]):
    """Complete lines read by :func:`follow` (a list of str), with the position after them
    (``position``) to save once they are processed."""

    def __init__(self, lines: Iterable[str], position: JournalPosition) -> None:
        super().__init__(lines)
        self.position = position


def _check_same_file(
    path: Path, handle: BinaryIO, stat: os.stat_result, position: JournalPosition
) -> bytes:
    """The file's first ``position.head_length`` bytes, once the file is known to be the one
    ``position`` was read from; JournalRotatedError otherwise."""
    if (stat.st_dev, stat.st_ino) != (position.device, position.inode):
        raise JournalRotatedError(
            str(path),
            f"replaced: another file has its name (device:inode {stat.st_dev}:{stat.st_ino}, "
            f"read from {position.device}:{position.inode})",
        )
    if stat.st_size < position.offset:
        raise JournalRotatedError(
            str(path),
            f"truncated: it is {stat.st_size:,} bytes long, shorter than the "
            f"{position.offset:,} bytes already read",
        )
    head = handle.read(position.head_length)
    if hashlib.sha256(head).hexdigest() != position.head_sha256:
        raise JournalRotatedError(
            str(path),
            f"rewritten: its first {position.head_length:,} bytes differ from those read before",
        )
    return head


def _read_to_line_end(handle: BinaryIO, max_bytes: int | None) -> bytes:
    """Bytes from the handle's offset: all of them, or about ``max_bytes`` extended to the next
    line end (a line longer than ``max_bytes`` is read whole)."""
    if max_bytes is None:
        return handle.read()
    blocks = [handle.read(max_bytes)]
    while len(blocks[-1]) == max_bytes and b"\n" not in blocks[-1]:
        blocks.append(handle.read(max_bytes))
    return b"".join(blocks)


def _decode_lines(data: bytes) -> list[str]:
    """The lines of ``data`` (complete lines only), as text-mode reading gives them.

    Decoded a slice of about ``_DECODE_BYTES`` at a time, cut at line ends: a newline byte is
    never part of a multi-byte character, so this decodes each line as decoding the whole
    would, without holding the whole as one string.
    """
    view = memoryview(data)
    lines: list[str] = []
    start = 0
    while start < len(data):
        stop = data.rfind(b"\n", start, start + _DECODE_BYTES) + 1
        if stop <= start:  # a line longer than a slice
            stop = data.index(b"\n", start) + 1
        text = str(view[start:stop], "utf-8", "replace")
        decoded = text.split("\n")
        decoded.pop()  # the empty text after the last newline
        if "\r" in text:
            # universal newlines: "\r\n" ends one line, a lone "\r" ends one too
            decoded = [part for line in decoded for part in line.removesuffix("\r").split("\r")]
        lines += decoded
        start = stop
    return lines


def read_new_lines(
    path: str | Path, position: JournalPosition | None, max_bytes: int | None = None
) -> tuple[list[str], JournalPosition]:
    """The complete lines written to a journal since ``position``, and the position after them.

    Parameters
    ----------
    path : str or Path
        The journal file.
    position : JournalPosition or None
        Where the last call stopped (from its result, or saved with ``to_dict``); None reads
        from the start.
    max_bytes : int, optional
        Read about this many bytes at most (up to the next line end) and leave the rest for the
        next call; everything new when None.

    Returns
    -------
    lines : list of str
        The new complete lines, without their line ends; a partial last line is left unread.
    position : JournalPosition
        The position after them.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    JournalRotatedError
        The file is shorter than ``position`` or is not the file it was read from (H-LOG-5).

    Notes
    -----
    Work is linear in the new bytes: the file is opened, checked against ``position`` (its
    device and inode, its size, and the hash of at most ``HEAD_BYTES`` at its start), and read
    from ``position.offset`` on.
    """
    if max_bytes is not None and (
        isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1
    ):
        raise JournalError(f"max_bytes must be a positive integer or None, got {max_bytes!r}")
    path = Path(path)
    try:
        handle = open(path, "rb")  # closed by the `with` below
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such journal") from None
    with handle:
        stat = os.fstat(handle.fileno())
        if position is None:
            position = JournalPosition(0, stat.st_dev, stat.st_ino, 0, _EMPTY_SHA256)
        head = _check_same_file(path, handle, stat, position)
        handle.seek(position.offset)
        data = _read_to_line_end(handle, max_bytes)
    complete = data.rfind(b"\n") + 1
    if complete == 0:
        return [], position
    offset = position.offset + complete
    if position.offset < HEAD_BYTES:
        # the head grows with the file until it covers HEAD_BYTES: the bytes read before
        # (checked above) and the start of the new ones
        head = (head + data[:complete])[:HEAD_BYTES]
        digest = hashlib.sha256(head).hexdigest()
    else:
        digest = position.head_sha256
    new_position = JournalPosition(
        offset, position.device, position.inode, min(offset, HEAD_BYTES), digest
    )
    return _decode_lines(data[:complete]), new_position


def follow(
    path: str | Path,
    position: JournalPosition | None,
    poll_seconds: float = 1.0,
    stop: Callable[[], bool] | None = None,
    max_bytes: int = BATCH_BYTES,
) -> Iterator[LineBatch]:
    """Yield batches of new complete lines as a journal grows.

    Each batch is a :class:`LineBatch`: a list of lines with the position after them, to save
    once they are processed. A backlog comes in batches of about ``max_bytes``; when nothing
    new is there, the file is polled every ``poll_seconds``. The file is reopened at each poll,
    so a rotation is noticed (JournalRotatedError, as :func:`read_new_lines`).

    Parameters
    ----------
    path, position
        As :func:`read_new_lines`.
    poll_seconds : float
        Seconds between polls when nothing new is written (positive).
    stop : callable, optional
        Called before each read. Once it has returned True, reading goes on until a read finds
        nothing new, and the generator ends: every line completed before ``stop`` said so is
        yielded. Never ends without it.
    max_bytes : int
        Bytes read at most per batch (up to the next line end).
    """
    if (
        isinstance(poll_seconds, bool)
        or not isinstance(poll_seconds, int | float)
        or not math.isfinite(poll_seconds)
        or poll_seconds <= 0
    ):
        raise JournalError(f"poll_seconds must be a positive number, got {poll_seconds!r}")
    while True:
        stopping = stop is not None and stop()
        lines, position = read_new_lines(path, position, max_bytes)
        if lines:
            yield LineBatch(lines, position)
        elif stopping:
            return
        else:
            time.sleep(poll_seconds)
