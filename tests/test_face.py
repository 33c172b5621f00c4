"""The top-level face: ``import qt_backtest as qt`` exposes the main verbs and configurations."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import qt_backtest as qt
import qt_backtest.sweep.run


def test_every_face_name_is_the_subpackage_object():
    for name, module in qt._FACE.items():
        assert getattr(qt, name) is getattr(importlib.import_module(module), name), name
    assert set(qt.__all__) == {*qt._FACE, "sweep", "__version__"}
    assert set(qt.__all__) <= set(dir(qt))


def test_sweep_is_the_subpackage_and_calls_the_entry_point(monkeypatch):
    assert qt.sweep is sys.modules["qt_backtest.sweep"]
    assert qt.sweep.Grid is qt.Grid
    assert inspect.signature(qt.sweep) == inspect.signature(qt_backtest.sweep.run.sweep)
    calls = []
    monkeypatch.setattr(qt.sweep, "sweep", lambda *args, **kwargs: calls.append((args, kwargs)))
    qt.sweep("bars", "votes", None, "grid", period=None)
    assert calls == [(("bars", "votes", None, "grid"), {"period": None})]


def test_submodule_imports_still_reach_the_modules():
    import qt_backtest.sweep.nb as kernels  # a chained import through the callable package

    assert kernels.__name__ == "qt_backtest.sweep.nb"
    from qt_backtest import sweep

    assert sweep is qt.sweep


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'simulat'"):
        qt.simulat  # noqa: B018


def test_import_is_light():
    # the face loads nothing heavy until a name is used
    code = "import sys, qt_backtest; print(sorted(m for m in ('numba', 'vectorbt', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
