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
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.backtest.rules import PositionRules
from qt_backtest.hierarchy.config import HierarchyConfig

SECTIONS = ("ensemble", "meta", "arbiter")
TABLES = {"ensemble": ("weights", "label_multipliers"), "meta": ("weights",)}
TOP_LEVEL = ("mode", "fidelity", "min_trade_confidence", "min_active_models")
# rule fields a sweep cannot vary: they change the data the kernel reads, not a number in it
FIXED_RULES = ("fill_price", "init_cash")


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
            raise ValueError("a grid needs at least one combination")
        names = list(self.combinations[0])
        for position, combination in enumerate(self.combinations):
            if set(combination) != set(names):
                raise ValueError(
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
            raise ValueError("a grid needs at least one parameter")
        names = list(axes)
        values = []
        for name in names:
            options = list(axes[name]) if not isinstance(axes[name], str) else [axes[name]]
            if not options:
                raise ValueError(f"parameter {name!r} has no values")
            if len({repr(option) for option in options}) != len(options):
                raise ValueError(f"parameter {name!r} lists a value more than once: {options}")
            values.append(options)
        return cls(tuple(dict(zip(names, row, strict=True)) for row in itertools.product(*values)))

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> Grid:
        """An explicit list of combinations."""
        return cls(tuple(dict(record) for record in records))

    def sample(self, count: int, seed: int = 0) -> Grid:
        """``count`` combinations drawn without replacement (kept in grid order)."""
        if not (isinstance(count, int) and 1 <= count <= len(self)):
            raise ValueError(f"count must be an integer in [1, {len(self)}], got {count!r}")
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
            raise ValueError(f"the grid already sets {name!r}")
        options = list(values)
        return Grid(
            tuple(
                {**combination, name: value}
                for combination in self.combinations
                for value in options
            )
        )


@functools.cache
def _section_fields(section: str) -> frozenset[str]:
    """Field names of a configuration section (``models`` is not swept)."""
    kind = type(getattr(HierarchyConfig(), section))
    return frozenset(f.name for f in dataclasses.fields(kind)) - {"models"}


def check_parameter_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a parameter a sweep can vary."""
    if not isinstance(name, str):
        raise ValueError(f"parameter names are strings, got {name!r}")
    parts = name.split(".")
    if len(parts) == 1 and name in TOP_LEVEL:
        return
    if parts[0] == "rules" and len(parts) == 2:
        known = {f.name for f in dataclasses.fields(PositionRules)} - set(FIXED_RULES)
        if parts[1] in known:
            return
        choices = sorted(f"rules.{key}" for key in known)
        raise ValueError(f"unknown parameter {name!r}: rules parameters are {choices}")
    if parts[0] in SECTIONS and len(parts) == 2:
        known = _section_fields(parts[0])
        if parts[1] in known:
            return
        raise ValueError(f"unknown parameter {name!r}: {parts[0]} has {sorted(known)}")
    if len(parts) == 3 and parts[1] in TABLES.get(parts[0], ()):
        return
    raise ValueError(
        f"unknown parameter {name!r}; use {', '.join(TOP_LEVEL)}, '<section>.<field>' "
        f"(sections {', '.join(SECTIONS)}), '<section>.weights.<model>' or 'rules.<field>'"
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
