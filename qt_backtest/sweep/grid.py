"""Parameter grids of a sweep and how one combination turns into a configuration.

Parameters are named by where they live:

* the hierarchy: ``"mode"``, ``"fidelity"``, ``"min_trade_confidence"``, ``"min_active_models"``,
  ``"<section>.<field>"`` for a field of the ensemble, Meta or Arbiter configuration (e.g.
  ``"arbiter.arbiter_threshold"``, ``"meta.consensus_threshold"``), and
  ``"<section>.weights.<model>"`` / ``"ensemble.label_multipliers.<label>"`` for one entry of a
  weight or multiplier table;
* the position model and costs: ``"rules.<field>"`` of :class:`PositionRules` (e.g.
  ``"rules.fee"``, ``"rules.max_hold_bars"``).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.backtest.rules import PositionRules
from qt_backtest.errors import ConfigError, UnknownParameterError
from qt_backtest.hierarchy.config import SECTIONS, HierarchyConfig
from qt_backtest.parameters import Param, close_matches, declared_fields


@dataclass(frozen=True)
class Grid:
    """The parameter combinations of a sweep, in order.

    Build one with :meth:`product` (Cartesian product of value lists), :meth:`from_records`
    (an explicit list) and optionally :meth:`sample` (a seeded random subset).

    Attributes
    ----------
    combinations : tuple of dict
        One ``{parameter: value}`` mapping per combination, all with the same parameters.
    """

    combinations: tuple[dict[str, Any], ...]

    def __post_init__(self) -> None:
        if not self.combinations:
            raise ConfigError("a grid needs at least one combination")
        names = list(self.combinations[0])
        for position, combination in enumerate(self.combinations):
            if set(combination) != set(names):
                raise ConfigError(
                    f"combination {position} sets {sorted(combination)}, the first sets "
                    f"{sorted(names)}; every combination must set the same parameters"
                )
        # one parameter order for every combination: the first's
        ordered = tuple({name: dict(c)[name] for name in names} for c in self.combinations)
        object.__setattr__(self, "combinations", ordered)
        for name in names:
            check_parameter_name(name)

    @classmethod
    def product(cls, axes: Mapping[str, Iterable[Any]]) -> Grid:
        """Every combination of the values listed per parameter (the last varies fastest)."""
        if not axes:
            raise ConfigError("a grid needs at least one parameter")
        names = list(axes)
        values = []
        for name in names:
            options = list(axes[name]) if not isinstance(axes[name], str) else [axes[name]]
            if not options:
                raise ConfigError(f"parameter {name!r} has no values")
            if len({repr(option) for option in options}) != len(options):
                raise ConfigError(f"parameter {name!r} lists a value more than once: {options}")
            values.append(options)
        return cls(tuple(dict(zip(names, row, strict=True)) for row in itertools.product(*values)))

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> Grid:
        """An explicit list of combinations."""
        return cls(tuple(dict(record) for record in records))

    def sample(self, count: int, seed: int = 0) -> Grid:
        """``count`` combinations drawn without replacement (kept in grid order)."""
        if not (isinstance(count, int) and 1 <= count <= len(self)):
            raise ConfigError(f"count must be an integer in [1, {len(self)}], got {count!r}")
        chosen = np.sort(np.random.default_rng(seed).choice(len(self), count, replace=False))
        return Grid(tuple(self.combinations[i] for i in chosen))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.combinations[0])

    def __len__(self) -> int:
        return len(self.combinations)

    def frame(self) -> pd.DataFrame:
        """One row per combination, one column per parameter; index ``combination``."""
        frame = pd.DataFrame.from_records(list(self.combinations), columns=list(self.names))
        frame.index.name = "combination"
        return frame

    def cross(self, name: str, values: Iterable[Any]) -> Grid:
        """Each combination repeated for every value of one more parameter (varying fastest)."""
        if name in self.names:
            raise ConfigError(f"the grid already sets {name!r}")
        options = list(values)
        return Grid(
            tuple(
                {**combination, name: value}
                for combination in self.combinations
                for value in options
            )
        )


@functools.cache
def sweep_parameters() -> Mapping[str, Param]:
    """Every parameter name a grid may vary, with its declaration, in declaration order.

    A table (``"ensemble.weights"``) may also be varied one entry at a time, as
    ``"<section>.<table>.<entry>"``; those names are not listed (their entries are checked
    against the configuration when a combination is applied).
    """
    return MappingProxyType({name: spec for name, spec in _grid_names().items() if spec.sweep})


def _grid_names() -> dict[str, Param]:
    """Every declared field of the hierarchy and the rules, by grid name."""
    names: dict[str, Param] = {}
    for field, spec in declared_fields(HierarchyConfig):
        if spec.kind == "section":
            for inner, inner_spec in declared_fields(spec.section):
                names[f"{field.name}.{inner.name}"] = inner_spec
        else:
            names[field.name] = spec
    for field, spec in declared_fields(PositionRules):
        names[f"rules.{field.name}"] = spec
    return names


def check_parameter_name(name: str) -> None:
    """Raise :class:`UnknownParameterError` unless ``name`` is a parameter a sweep can vary.

    The message lists the declared names closest to ``name``.
    """
    if not isinstance(name, str):
        raise UnknownParameterError(f"parameter names are strings, got {name!r}", name=repr(name))
    known = sweep_parameters()
    if name in known:
        return
    parts = name.split(".")
    table = known.get(".".join(parts[:2])) if len(parts) == 3 else None
    if table is not None and table.kind == "table":
        return  # one entry of a table: the entry is checked when the combination is applied
    declared = _grid_names()
    if name in declared:
        raise UnknownParameterError(
            f"unknown parameter {name!r} for a sweep: {name} ({declared[name].doc}) cannot vary "
            "within a sweep (it changes the data the kernels read, not a number in them)",
            name=name,
        )
    matches = close_matches(name, known)
    hint = f"; did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
    section = parts[0] if len(parts) > 1 else ""
    in_section = [n for n in known if n.startswith(f"{section}.")] if section else []
    if in_section:
        listing = f" {section} parameters are {', '.join(in_section)}"
    else:
        top = [n for n in known if "." not in n]
        listing = (
            f" use {', '.join(top)}, '<section>.<field>' (sections "
            f"{', '.join(SECTIONS)}), '<section>.weights.<model>' or 'rules.<field>'"
        )
    raise UnknownParameterError(
        f"unknown parameter {name!r}{hint};{listing} (docs/parameters.md lists them all)",
        name=name,
        suggestions=matches,
    )


def apply_parameters(
    config: HierarchyConfig, rules: PositionRules, combination: Mapping[str, Any]
) -> tuple[HierarchyConfig, PositionRules]:
    """The configuration and rules of one combination (validated by their dataclasses)."""
    changes: dict[str, Any] = {}
    rule_changes: dict[str, Any] = {}
    for name, value in combination.items():
        check_parameter_name(name)
        parts = name.split(".")
        if parts[0] == "rules":
            rule_changes[parts[1]] = value
        else:
            changes[name] = _plain(value)
    if changes:
        config = config.replace(**changes)
    if rule_changes:
        rules = dataclasses.replace(
            rules, **{key: _plain(value) for key, value in rule_changes.items()}
        )
    return config, rules


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (the dataclasses validate Python types)."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
