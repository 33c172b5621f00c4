"""The slow-test registry names tests that exist, so `make check` leaves out what it says."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT, SLOW_FIXTURES, SLOW_TESTS


def _definitions(module: str) -> set[str]:
    tree = ast.parse((ROOT / "tests" / module).read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("key", sorted(SLOW_TESTS))
def test_every_slow_entry_names_an_existing_module_or_test(key):
    module, _, test = key.partition("::")
    assert (ROOT / "tests" / module).is_file(), f"no test module {module}"
    if test:
        assert test.startswith("test_") and test in _definitions(module), f"no {test} in {module}"


def test_slow_fixtures_exist():
    for key in SLOW_FIXTURES:
        module, _, fixture = key.rpartition("::")
        assert fixture in _definitions(module or "conftest.py"), key


def test_the_registry_marks_what_it_names(request):
    # this very collection: every registered test carries the mark, the others do not
    for item in request.session.items:
        marked = item.get_closest_marker("slow") is not None
        module = item.path.name
        named = module in SLOW_TESTS or f"{module}::{item.originalname}" in SLOW_TESTS
        uses = any(
            name in SLOW_FIXTURES or f"{module}::{name}" in SLOW_FIXTURES
            for name in item.fixturenames
        )
        assert marked == (named or uses), item.nodeid
