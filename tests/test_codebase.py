"""The package's shape: short functions, and a dependency graph with the vocabulary at its bottom."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "qt_backtest"
MAX_FUNCTION_LINES = 150


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}: relative import; the package imports absolutely")
            names.add(node.module or "")
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def long_functions(paths: list[Path], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:line name (n lines)`` of each function longer than ``limit`` lines."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_the_package_is_longer_than_the_limit():
    assert long_functions(_modules()) == []


def test_the_length_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    source = tmp_path / "long.py"
    source.write_text(f"def long():\n{body}\n")
    assert long_functions([source]) == [f"{source}:1 long ({MAX_FUNCTION_LINES + 1} lines)"]
    source.write_text(f"def short():\n{body[: body.rindex(chr(10))]}\n")
    assert long_functions([source]) == []


def test_the_vocabulary_imports_nothing_from_the_package():
    imported = _imported_modules(PACKAGE / "codes.py")
    assert sorted(name for name in imported if name.split(".")[0] == "qt_backtest") == []


@pytest.mark.parametrize("path", sorted((PACKAGE / "signals").rglob("*.py")), ids=str)
def test_the_signals_do_not_import_the_hierarchy(path):
    imported = _imported_modules(path)
    assert sorted(name for name in imported if name.startswith("qt_backtest.hierarchy")) == []


def test_the_import_scan_sees_lazy_and_aliased_imports(tmp_path):
    source = tmp_path / "lazy.py"
    source.write_text(
        "def f():\n"
        "    from qt_backtest.hierarchy.actions import encode_actions\n"
        "    import qt_backtest.hierarchy.nb as kernel\n"
        "    from qt_backtest import hierarchy\n"
    )
    assert {
        "qt_backtest.hierarchy.actions",
        "qt_backtest.hierarchy.nb",
        "qt_backtest.hierarchy",
    } <= _imported_modules(source)


def test_vocabulary_numbers_each_name_by_its_position():
    from qt_backtest import codes

    assert (codes.SELL, codes.HOLD, codes.BUY) == (-1, 0, 1)
    assert list(codes.ACTION_DTYPE.categories) == list(codes.ACTION_LABELS)
    assert [codes.ACTION_NAMES[code] for code in (-1, 0, 1)] == list(codes.ACTION_LABELS)
    assert codes.META_REASONS[codes.REASON_NO_MODEL] == "clear_ensemble_no_model"
    assert codes.GATE_OUTCOMES[codes.GATE_BASE_HOLD] == "defer_base_hold"
    assert (codes.TAG_RSI, codes.TAG_MACD, codes.TAG_MOMENTUM) == (1, 2, 4)
    assert codes.CONSENSUS_CATEGORIES[codes.NO_VALID_MODELS] == "no_valid_models"
    with pytest.raises(ValueError, match="distinct"):
        codes.positions(("cash", "position", "cash"))
