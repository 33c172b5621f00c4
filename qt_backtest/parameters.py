"""Configuration parameters declared once.

Each field of a configuration dataclass is declared with :func:`param`: its default, what it
means (one line), its unit, the values it accepts and the rule of ``docs/`` it implements. From
that one declaration come

* the validation (:func:`validate`, called by each dataclass's ``__post_init__``) and its error
  messages: one exception type, :class:`~qt_backtest.errors.ConfigError`, whose message names
  the field, the value and what the field accepts;
* the packing into the replay kernels' scalar vector (``scalar``, read by
  :func:`kernel_scalars` and :func:`qt_backtest.hierarchy.params.pack`);
* the names a sweep may vary (``sweep``, read by :mod:`qt_backtest.sweep.grid`) and the
  suggestions for a misspelt one (:func:`close_matches`);
* the docstrings' ``Parameters`` sections (:func:`document_parameters`) and the tables of
  ``docs/parameters.md`` (:mod:`qt_backtest.parameter_docs`).

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Example:
...     level: float = param(0.5, doc="how high", low=0.0, high=1.0)
...     def __post_init__(self) -> None:
...         validate(self)
>>> Example(2.0)
Traceback (most recent call last):
...
qt_backtest.errors.ConfigError: level must be a number in [0, 1], got 2.0; level (how high)
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
import numbers
from collections.abc import Callable, Iterable, Iterator
from dataclasses import MISSING, dataclass
from typing import Any, TypeVar

from qt_backtest.errors import ConfigError, shorten_runs

ClassType = TypeVar("ClassType", bound=type)

#: Where a field's :class:`Param` is kept in ``dataclasses.field(metadata=...)``.
METADATA_KEY = "qt_backtest.param"
KINDS = ("real", "int", "bool", "choice", "text", "table", "section", "other")
#: Which ends of ``[low, high]`` belong to the range.
INCLUSIVE = ("both", "low", "high", "neither")
#: ``scalar`` of a field that the kernels do not read from the scalar vector.
NOT_A_SCALAR = False


@dataclass(frozen=True)
class Param:
    """The declaration of one configuration field.

    Attributes
    ----------
    doc : str
        What the field means, in one line (no full stop).
    kind : {"real", "int", "bool", "choice", "text", "table", "section", "other"}
        ``"real"`` a finite number; ``"int"`` an integer; ``"bool"`` True or False;
        ``"choice"`` one of ``choices``; ``"text"`` a non-empty string; ``"table"`` a mapping
        of names to numbers (checked by ``check``); ``"section"`` an instance of ``section``;
        ``"other"`` anything ``check`` accepts.
    unit : str
        Unit of the value ("" when it has none).
    low, high : float or None
        Range of a number; None leaves that side open.
    inclusive : {"both", "low", "high", "neither"}
        Which ends of the range are allowed values.
    choices : tuple of str
        The values of a ``"choice"`` field.
    nullable : bool
        None is accepted too (it means "off" or "automatic", as ``doc`` says).
    rule : str or None
        ID of the rule of ``docs/`` the field belongs to.
    check : callable or None
        For ``"table"`` and ``"other"``: returns the value normalised or raises ``ValueError``
        (or ``TypeError``) saying why not.
    accepts : str or None
        What ``check`` accepts, in words (for messages and the docs).
    section : type or None
        The configuration class of a ``"section"`` field.
    scalar : str, False or None
        For the replay kernels: the slot of the scalar vector the field is packed into
        (``"{}"`` in it stands for each entry of a table), :data:`NOT_A_SCALAR` for a field the
        kernels do not read from the vector, None for configuration outside the kernels.
    source : str or None
        Attribute packed instead of the field itself (a property combining several fields).
    sweep : bool
        A sweep grid may vary the field.
    """

    doc: str
    kind: str = "real"
    unit: str = ""
    low: float | None = None
    high: float | None = None
    inclusive: str = "both"
    choices: tuple[str, ...] = ()
    nullable: bool = False
    rule: str | None = None
    check: Callable[[Any], Any] | None = None
    accepts: str | None = None
    section: type | None = None
    scalar: str | bool | None = None
    source: str | None = None
    sweep: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.inclusive not in INCLUSIVE:
            raise ValueError(f"inclusive must be one of {', '.join(INCLUSIVE)}")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError("choices go with kind 'choice', and it needs them")
        if self.kind in ("table", "other") and self.check is None:
            raise ValueError(f"a {self.kind!r} parameter needs a check")
        if (self.kind == "section") != (self.section is not None):
            raise ValueError("section goes with kind 'section', and it needs one")
        if not self.doc or self.doc.endswith("."):
            raise ValueError(f"doc is one line without a full stop, got {self.doc!r}")

    def allowed(self) -> str:
        """What the field accepts, in words: ``"a number in [0, 1]"``, ``"one of a, b"``."""
        if self.kind in ("real", "int"):
            text = _range_text(self)
        elif self.kind == "bool":
            text = "True or False"
        elif self.kind == "choice":
            text = f"one of {', '.join(self.choices)}"
        elif self.kind == "text":
            text = "a non-empty string"
        elif self.kind == "section" and self.section is not None:
            text = f"a {self.section.__name__}"
        else:
            text = self.accepts or "a valid value"
        return f"{text} or None" if self.nullable else text

    def convert(self, name: str, value: Any) -> Any:
        """``value`` normalised (numbers as float or int), or :class:`ConfigError`."""
        if value is None and self.nullable:
            return None
        if self.kind == "real":
            return self._number(name, value, float)
        if self.kind == "int":
            return self._number(name, value, int)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise self.error(name, value)
            return value
        if self.kind == "choice":
            if not (isinstance(value, str) and value in self.choices):
                raise self.error(name, value)
            return value
        if self.kind == "text":
            if not (isinstance(value, str) and value.strip()):
                raise self.error(name, value)
            return value
        if self.kind == "section" and self.section is not None:
            if not isinstance(value, self.section):
                raise self.error(name, value, f" (a {type(value).__name__})")
            return value
        if self.check is None:  # refused by __post_init__; here for the type checker
            raise ValueError(f"{name} has no check")
        try:
            return self.check(value)
        except ConfigError:
            raise
        except (TypeError, ValueError) as error:
            raise ConfigError(
                shorten_runs(str(error)), name=name, value=value, allowed=self.allowed()
            ) from None

    def _number(self, name: str, value: Any, kind: type) -> Any:
        # built-in numbers (numpy's float64 is a float) first: the abstract-class checks cost
        # more than all the rest
        built_in = isinstance(value, (float, int) if kind is float else int)
        if isinstance(value, bool) or not built_in:
            wanted = numbers.Integral if kind is int else numbers.Real
            if isinstance(value, bool) or not isinstance(value, wanted):
                raise self.error(name, value, f" (a {type(value).__name__})")
        number = kind(value)
        if not math.isfinite(number):
            raise self.error(name, value, " (not a finite number)")
        below = self.low is not None and (
            number < self.low or (number == self.low and self.inclusive in ("high", "neither"))
        )
        above = self.high is not None and (
            number > self.high or (number == self.high and self.inclusive in ("low", "neither"))
        )
        if below or above:
            raise self.error(name, value)
        return number

    def error(self, name: str, value: Any, note: str = "") -> ConfigError:
        """The :class:`ConfigError` for ``value`` given to the field ``name``."""
        allowed = self.allowed()
        about = self.doc + (f", rule {self.rule}" if self.rule else "")
        message = f"{name} must be {allowed}, got {value!r}{note}; {name} ({about})"
        return ConfigError(shorten_runs(message), name=name, value=value, allowed=allowed)


def _number_text(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:g}"


def _range_text(spec: Param) -> str:
    noun = "an integer" if spec.kind == "int" else "a number"
    low_in = spec.inclusive in ("both", "low")
    high_in = spec.inclusive in ("both", "high")
    if spec.low is not None and spec.high is not None:
        left, right = "[" if low_in else "(", "]" if high_in else ")"
        return f"{noun} in {left}{_number_text(spec.low)}, {_number_text(spec.high)}{right}"
    if spec.low is not None:
        return f"{noun} {'>=' if low_in else '>'} {_number_text(spec.low)}"
    if spec.high is not None:
        return f"{noun} {'<=' if high_in else '<'} {_number_text(spec.high)}"
    return noun if spec.kind == "int" else "a finite number"


def param(
    default: Any = MISSING,
    *,
    default_factory: Callable[[], Any] | Any = MISSING,
    doc: str,
    **declaration: Any,
) -> Any:
    """A dataclass field declared with a :class:`Param` (keywords as its attributes)."""
    spec = Param(doc=doc, **declaration)
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={METADATA_KEY: spec}
    )


def declaration(field: dataclasses.Field) -> Param | None:
    """The :class:`Param` of a dataclass field, or None if it has none."""
    return field.metadata.get(METADATA_KEY)


def declared_fields(kind: type | Any) -> Iterator[tuple[dataclasses.Field, Param]]:
    """``(field, declaration)`` of each declared field of a dataclass (a class or an
    instance), in field order."""
    yield from _declared(kind if isinstance(kind, type) else type(kind))


@functools.cache
def _declared(kind: type) -> tuple[tuple[dataclasses.Field, Param], ...]:
    # a class's fields never change: read them once (validation runs per configuration, and a
    # sweep builds thousands)
    pairs = ((field, declaration(field)) for field in dataclasses.fields(kind))
    return tuple((field, spec) for field, spec in pairs if spec is not None)


def undeclared_fields(kind: type) -> list[str]:
    """Init fields of a dataclass without a declaration (each should have one)."""
    return [f.name for f in dataclasses.fields(kind) if f.init and declaration(f) is None]


def validate(instance: Any) -> None:
    """Check every declared field of a (frozen) dataclass instance and store it normalised.

    Raises
    ------
    ConfigError
        For the first field whose value its declaration does not accept; the message names the
        field, the value and what the field accepts.
    """
    for field, spec in declared_fields(instance):
        value = spec.convert(field.name, getattr(instance, field.name))
        object.__setattr__(instance, field.name, value)


def ordered(instance: Any, lower: str, upper: str) -> None:
    """Raise :class:`ConfigError` if field ``lower`` exceeds field ``upper``."""
    low, high = getattr(instance, lower), getattr(instance, upper)
    if low > high:
        raise ConfigError(
            f"{lower} ({low}) must not exceed {upper} ({high})",
            name=f"{lower}, {upper}",
            value=(low, high),
        )


def kernel_scalars(instance: Any) -> dict[str, float]:
    """The kernel scalar slots an instance's declared fields fill, by slot name.

    A choice is packed as its position among the choices, a bool as 0 or 1, None as NaN, a
    table as one slot per entry (``"{}"`` in the slot name stands for the entry's name).
    """
    values: dict[str, float] = {}
    for field, spec in declared_fields(instance):
        if not isinstance(spec.scalar, str):
            continue
        value = getattr(instance, spec.source or field.name)
        if spec.kind == "table":
            for entry, number in value:
                values[spec.scalar.format(entry)] = float(number)
            continue
        if value is None:
            number = math.nan
        elif spec.kind == "choice" and spec.source is None:
            number = float(spec.choices.index(value))
        else:
            number = float(value)
        if spec.scalar in values and values[spec.scalar] != number:
            raise ValueError(f"two fields fill the kernel slot {spec.scalar!r} differently")
        values[spec.scalar] = number
    return values


def close_matches(name: str, names: Iterable[str], count: int = 3) -> list[str]:
    """The names closest to ``name`` (a misspelling's likely intent), best first.

    Dotted names are compared whole and by their last part, so that ``"arbiter.treshold"``
    finds ``"arbiter.arbiter_threshold"``; names in the same section as ``name`` come first.
    """
    names = list(names)
    found = difflib.get_close_matches(name, names, n=count, cutoff=0.75)
    by_tail: dict[str, list[str]] = {}
    for known in names:
        by_tail.setdefault(known.rsplit(".", 1)[-1], []).append(known)
    for tail in difflib.get_close_matches(name.rsplit(".", 1)[-1], list(by_tail), n=count):
        found += [known for known in by_tail[tail] if known not in found]
    section = name.rsplit(".", 1)[0] + "." if "." in name else None
    found.sort(key=lambda known: section is None or not known.startswith(section))
    return found[:count]


def default_text(field: dataclasses.Field) -> str:
    """The default of a field, in words (for docstrings and docs)."""
    if field.default is not MISSING:
        value = field.default
    elif field.default_factory is not MISSING:
        value = field.default_factory()
    else:
        return "required"
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) for v in value):
        return ", ".join(f"{k} {v:g}" for k, v in value)
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return _number_text(value)
    if value is None:
        return "None"
    return str(value)


def document_parameters(kind: ClassType) -> ClassType:
    """Class decorator: append a numpydoc ``Parameters`` section built from the declarations
    to the class docstring, so that the meanings are written once."""
    lines = ["", "Parameters", "----------"]
    for field, spec in declared_fields(kind):
        unit = f" ({spec.unit})" if spec.unit else ""
        lines.append(f"{field.name} : {spec.allowed()}, default {default_text(field)}")
        lines.append(f"    {spec.doc[0].upper()}{spec.doc[1:]}{unit}.")
    summary = inspect.cleandoc(kind.__doc__ or "")
    kind.__doc__ = summary + "\n" + "\n".join(lines) + "\n"
    return kind
