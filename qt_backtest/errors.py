"""The package's exceptions and warnings, in one place.

Every exception is a :class:`ValueError` (bad input, named in the message), so code that catches
``ValueError`` keeps working; :class:`QtBacktestError` catches all of them and nothing else.

* :class:`ConfigError` -- a configuration value outside what its declaration allows (see
  :mod:`qt_backtest.parameters`), or configuration values that contradict each other;
* :class:`UnknownParameterError` -- a parameter name that no configuration declares;
* :class:`SettingsError` -- a settings file that cannot be used;
* :class:`DataValidationError` -- market data or predictions that cannot be used as they are;
* :class:`UsageError` -- a command used in a way that cannot work;
* :class:`JournalError` -- a live journal or a saved reading state of it that cannot be used,
  and its subclass :class:`JournalRotatedError` -- a journal that was truncated or replaced
  since the position it was read to.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

#: A run of more characters than this without a space is cut in messages (a field of two
#: million digits must not make a two-megabyte error line).
LONGEST_RUN = 80


def shorten_runs(text: str, longest: int = LONGEST_RUN) -> str:
    """``text`` with every run of more than ``longest`` non-space characters cut to its start
    and end around an ellipsis that says how much was left out."""

    def cut(match: re.Match) -> str:
        run = match.group(0)
        return f"{run[: longest // 2]}…[{len(run) - longest // 2 - 10:,} characters]…{run[-10:]}"

    return re.sub(rf"\S{{{longest + 1},}}", cut, text)


class QtBacktestError(ValueError):
    """Base of the package's exceptions: input that cannot be used, named in the message."""


class ConfigError(QtBacktestError):
    """A configuration value that its declaration does not allow.

    Attributes
    ----------
    name : str or None
        The field (or fields) at fault.
    value : object
        The value given.
    allowed : str or None
        What the field accepts, in words (e.g. ``"a number in [0, 1]"``).
    """

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        value: Any = None,
        allowed: str | None = None,
    ) -> None:
        self.name = name
        self.value = value
        self.allowed = allowed
        super().__init__(message)


class UnknownParameterError(ConfigError):
    """A parameter name that no configuration declares.

    Attributes
    ----------
    suggestions : tuple of str
        Declared names close to the one given, best first.
    """

    def __init__(self, message: str, *, name: str, suggestions: Sequence[str] = ()) -> None:
        self.suggestions = tuple(suggestions)
        super().__init__(message, name=name, value=name)


class SettingsError(ConfigError):
    """A settings file that cannot be used (the message names the file and the problem)."""


class UsageError(QtBacktestError):
    """A command used in a way that cannot work (exit code 1, one line)."""


class JournalError(QtBacktestError):
    """A live journal, or a saved state of reading it, that cannot be used (the message names
    the file or the state and the problem)."""


class JournalRotatedError(JournalError):
    """A journal that is no longer the file it was read from up to a saved position: it is
    shorter than that position (truncated) or another file now has its name (rotated).

    Attributes
    ----------
    path : str
        The journal's path.
    reason : str
        What happened to the file, in words ("truncated: ...", "replaced: ...").
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"{path}: the journal was {reason}; the saved position and reading state belong to "
            "the old file: read the new one from its beginning with a fresh state"
        )


class DataValidationError(QtBacktestError):
    """Market data that cannot be used as it is.

    The message names the source (file), the first offending row -- its position among the data
    rows (0-based), its line in the file when known, and its timestamp -- and the problem. The
    same facts are kept as attributes for programs.

    Attributes
    ----------
    problem : str
        What is wrong, in words.
    source : str or None
        File name or other label of the data.
    row : int or None
        0-based position of the first offending data row.
    line : int or None
        1-based line of that row in the source file, if it came from a text file.
    timestamp : object or None
        Timestamp of that row, if known.
    count : int
        Number of rows with the same problem.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        row: int | None = None,
        line: int | None = None,
        timestamp: Any = None,
        count: int = 1,
    ) -> None:
        self.problem = problem
        self.source = source
        self.row = row
        self.line = line
        self.timestamp = timestamp
        self.count = count
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.timestamp is not None:
            where.append(f"timestamp {self.timestamp}")
        text = self.problem
        if where:
            text = f"{', '.join(where)}: {text}"
        if self.source:
            text = f"{self.source}: {text}"
        if self.count > 1:
            text += f" ({self.count - 1} more row{'s' if self.count > 2 else ''} with this problem)"
        return shorten_runs(text)


class CoverageWarning(UserWarning):
    """A configured model has no votes, or votes on only part of the evaluation window."""
