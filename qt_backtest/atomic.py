"""Atomic file output: a file appears at its path complete or not at all.

Every output of the package (reports, studies, CSV and parquet tables, caches) is written to a
temporary file with a unique name in the target folder, flushed, then renamed over the target:
a crash, a full disk or a concurrent writer never leaves a truncated file at the path, and the
temporary file is removed when writing fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(temporary_path)``, then move the result to ``path``; returns ``path``.

    The folder of ``path`` is created. On any error the temporary file is removed and the
    error raised again (an ``OSError`` names ``path``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the target's suffixes last: writers that infer compression from them (.csv.gz) still do
    handle, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes)
    )
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding=encoding))
