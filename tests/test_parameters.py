"""Parameters declared once: validation, packing, sweep names and docs all follow the
declarations, and nothing is left undeclared."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest

import qt_backtest.backtest.window
import qt_backtest.cli
import qt_backtest.data.errors
import qt_backtest.settings
from qt_backtest import errors
from qt_backtest.backtest import PositionRules
from qt_backtest.hierarchy import HierarchyConfig
from qt_backtest.hierarchy.config import SECTIONS
from qt_backtest.hierarchy.params import INDEX, SCALARS, pack
from qt_backtest.parameter_docs import documented_sections, parameter_table
from qt_backtest.parameters import (
    NOT_A_SCALAR,
    Param,
    declared_fields,
    param,
    undeclared_fields,
    validate,
)
from qt_backtest.settings import parse_settings
from qt_backtest.sweep.grid import Grid, apply_parameters, check_parameter_name, sweep_parameters

ROOT = Path(__file__).resolve().parents[1]
CLASSES = [kind for _, kind, _ in documented_sections()]
HIERARCHY = [HierarchyConfig, *SECTIONS.values()]
NUMBERS = [
    pytest.param(kind, field.name, spec, id=f"{kind.__name__}.{field.name}")
    for kind in CLASSES
    for field, spec in declared_fields(kind)
    if spec.kind in ("real", "int")
]


def test_the_parameter_page_is_up_to_date():
    page = (ROOT / "docs" / "parameters.md").read_text(encoding="utf-8")
    assert page == parameter_table(), (
        "docs/parameters.md is out of date: run python scripts/write_parameter_docs.py"
    )


@pytest.mark.parametrize("kind", CLASSES, ids=lambda kind: kind.__name__)
def test_every_configuration_field_is_declared(kind):
    assert undeclared_fields(kind) == []


@pytest.mark.parametrize("kind", HIERARCHY, ids=lambda kind: kind.__name__)
def test_every_hierarchy_field_is_packed_or_marked_as_no_kernel_scalar(kind):
    for field, spec in declared_fields(kind):
        assert spec.scalar is NOT_A_SCALAR or isinstance(spec.scalar, str), field.name
        if isinstance(spec.scalar, str) and spec.kind != "table":
            assert spec.scalar in INDEX, f"{field.name} packs into unknown slot {spec.scalar}"


def test_the_declarations_fill_every_kernel_slot_once():
    filled = {}
    for kind in HIERARCHY:
        for field, spec in declared_fields(kind):
            if not isinstance(spec.scalar, str):
                continue
            default = field.default if field.default is not dataclasses.MISSING else None
            entries = [entry for entry, _ in default] if spec.kind == "table" else [None]
            for entry in entries:
                slot = spec.scalar.format(entry) if entry else spec.scalar
                # several fields may share a slot only through one combining property
                assert filled.setdefault(slot, spec.source or field.name) == (
                    spec.source or field.name
                ), slot
    assert sorted(filled) == sorted(set(SCALARS) - {"uncertainty_model"})


def _inside(spec: Param, default):
    """A value in the declared range near the default, moved up (cross-field orders hold)."""
    value = default + 1 if spec.high is None else default + 0.1 * (spec.high - default)
    if value == default:
        value = (spec.low + default) / 2
    return round(value) if spec.kind == "int" else value


@pytest.mark.parametrize("section", ["", *SECTIONS])
def test_changing_a_packed_field_changes_its_slot_alone(section):
    kind = SECTIONS[section] if section else HierarchyConfig
    base = pack(HierarchyConfig()).scalars
    for field, spec in declared_fields(kind):
        if not isinstance(spec.scalar, str) or spec.source or spec.kind == "table":
            continue
        if spec.kind == "choice":
            value = spec.choices[-1] if field.default != spec.choices[-1] else spec.choices[0]
        elif spec.kind == "bool":
            value = not field.default
        else:
            value = _inside(spec, field.default if field.default is not None else 0.5)
        name = f"{section}.{field.name}" if section else field.name
        changed = pack(HierarchyConfig().replace(**{name: value})).scalars
        moved = np.flatnonzero(changed != base)
        assert list(moved) == [INDEX[spec.scalar]], name
    if section == "ensemble":
        changed = pack(HierarchyConfig().replace(**{"ensemble.label_multipliers.split": 2.0}))
        assert list(np.flatnonzero(changed.scalars != base)) == [INDEX["multiplier_split"]]


def test_combined_slots_and_encodings():
    aggressive = HierarchyConfig().replace(**{"arbiter.conservative": False})
    assert pack(aggressive).scalars[INDEX["score_threshold"]] == 0.10
    deployed = HierarchyConfig().replace(**{"arbiter.wiring": "deployed"})
    assert pack(deployed).scalars[INDEX["deployed_wiring"]] == 1.0
    assert pack(HierarchyConfig()).scalars[INDEX["deployed_wiring"]] == 0.0
    off = HierarchyConfig(min_trade_confidence=None)
    assert math.isnan(pack(off).scalars[INDEX["min_trade_confidence"]])
    assert pack(HierarchyConfig(mode="meta")).scalars[INDEX["mode"]] == 1.0


@pytest.mark.parametrize(("kind", "name", "spec"), NUMBERS)
def test_numbers_outside_their_declared_range_are_refused(kind, name, spec):
    def beyond(bound, direction):
        if spec.kind == "int":
            return int(bound + direction)
        return float(np.nextafter(bound, direction * math.inf))

    outside = [math.nan, math.inf, "1", True]
    if spec.low is not None:
        outside.append(spec.low if spec.inclusive in ("high", "neither") else beyond(spec.low, -1))
    if spec.high is not None:
        outside.append(spec.high if spec.inclusive in ("low", "neither") else beyond(spec.high, 1))
    if spec.kind == "int":
        outside.append(1.5)
    for value in outside:
        with pytest.raises(errors.ConfigError) as caught:
            kind(**{name: value})
        message = str(caught.value)
        assert message.startswith(f"{name} must be {spec.allowed()}, got {value!r}"), message
        assert f"{name} ({spec.doc}" in message
        assert caught.value.name == name and caught.value.allowed == spec.allowed()
    for value in (spec.low, spec.high):
        inclusive = spec.inclusive == "both" or (
            spec.inclusive == ("low" if value == spec.low else "high")
        )
        if value is not None and inclusive:
            try:  # the bound itself is allowed (another field's order may still object)
                kind(**{name: int(value) if spec.kind == "int" else value})
            except errors.ConfigError as error:
                assert not str(error).startswith(f"{name} must be"), str(error)


@pytest.mark.parametrize("kind", CLASSES, ids=lambda kind: kind.__name__)
def test_choices_and_flags_are_checked(kind):
    for field, spec in declared_fields(kind):
        if spec.kind in ("choice", "bool", "text"):
            bad = "" if spec.kind == "text" else "neither"
            with pytest.raises(errors.ConfigError, match=rf"^{field.name} must be "):
                kind(**{field.name: bad})


def test_a_declaration_is_consistent():
    with pytest.raises(ValueError, match="kind must be one of"):
        Param(doc="x", kind="float")
    with pytest.raises(ValueError, match="choices go with kind 'choice'"):
        Param(doc="x", kind="choice")
    with pytest.raises(ValueError, match="needs a check"):
        Param(doc="x", kind="other")
    with pytest.raises(ValueError, match="without a full stop"):
        Param(doc="A sentence.")


def test_validate_normalises_and_names_the_field():
    @dataclasses.dataclass(frozen=True)
    class Example:
        level: float = param(0.5, doc="how high", low=0.0, high=1.0, inclusive="low", rule="X-1")
        count: int = param(2, doc="how many", kind="int", low=1, nullable=True)

        def __post_init__(self) -> None:
            validate(self)

    example = Example(np.float32(0.25), np.int64(3))
    assert type(example.level) is float and type(example.count) is int
    assert Example(count=None).count is None
    with pytest.raises(errors.ConfigError) as caught:
        Example(1.0)
    assert (
        str(caught.value) == "level must be a number in [0, 1), got 1.0; level (how high, rule X-1)"
    )
    with pytest.raises(ValueError, match=r"count must be an integer >= 1 or None, got 0"):
        Example(count=0)


def test_every_declared_sweep_name_is_accepted_and_applies():
    config, rules = HierarchyConfig(), PositionRules()
    for name in sweep_parameters():
        check_parameter_name(name)
        section, _, field_name = name.rpartition(".")
        owner = {"rules": rules, "": config}.get(section) or getattr(config, section)
        value = getattr(owner, field_name)
        apply_parameters(config, rules, {name: value})
    assert "ensemble.models" not in sweep_parameters()
    assert "rules.fill_price" not in sweep_parameters()
    check_parameter_name("ensemble.weights.xgb")
    check_parameter_name("ensemble.label_multipliers.weak")


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("arbiter.arbiter_treshold", "arbiter.arbiter_threshold"),
        ("meta.consensus", "meta.consensus_threshold"),
        ("rules.fees", "rules.fee"),
        ("min_trade_conf", "min_trade_confidence"),
        ("arbiter.consensus_threshold", "meta.consensus_threshold"),
    ],
)
def test_a_misspelt_sweep_name_gets_close_matches(name, suggestion):
    with pytest.raises(errors.UnknownParameterError) as caught:
        Grid.product({name: [1]})
    assert suggestion in caught.value.suggestions
    assert re.search(
        rf"unknown parameter '{re.escape(name)}'; did you mean .*'{suggestion}'", str(caught.value)
    )


def test_fixed_parameters_say_why_a_sweep_cannot_vary_them():
    for name in ("rules.fill_price", "rules.init_cash", "ensemble.models"):
        with pytest.raises(errors.UnknownParameterError, match="cannot vary within a sweep"):
            check_parameter_name(name)


def test_settings_take_none_where_the_declarations_allow_it():
    settings = parse_settings(
        {
            "hierarchy": {"min_trade_confidence": "off"},
            "rules": {"max_hold_bars": "none"},
            "verdict": {"block_length": "auto"},
        }
    )
    assert settings.hierarchy.min_trade_confidence is None
    assert settings.rules.max_hold_bars is None and settings.verdict.block_length is None
    with pytest.raises(errors.SettingsError, match=r"\[rules\] fee must be a number"):
        parse_settings({"rules": {"fee": "none"}})
    with pytest.raises(errors.SettingsError, match="did you mean consensus_threshold"):
        parse_settings({"hierarchy": {"meta": {"consensus_treshold": 0.8}}})


def test_one_exceptions_module():
    assert qt_backtest.data.errors.DataValidationError is errors.DataValidationError
    assert qt_backtest.settings.SettingsError is errors.SettingsError
    assert qt_backtest.cli.UsageError is errors.UsageError
    assert qt_backtest.backtest.window.CoverageWarning is errors.CoverageWarning
    for kind in (
        errors.ConfigError,
        errors.UnknownParameterError,
        errors.SettingsError,
        errors.DataValidationError,
        errors.UsageError,
    ):
        assert issubclass(kind, errors.QtBacktestError) and issubclass(kind, ValueError)


def test_replace_names_the_closest_fields():
    with pytest.raises(errors.UnknownParameterError, match="did you mean mode") as caught:
        HierarchyConfig().replace(mood="meta")
    assert caught.value.suggestions == ("mode",)
    with pytest.raises(errors.UnknownParameterError, match="did you mean arbiter_threshold"):
        HierarchyConfig().replace(**{"arbiter.arbiter_treshold": 0.8})
