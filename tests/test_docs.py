"""The rules documents in docs/: rule IDs are unique, every ID cited in the code, the tests
and the docs themselves is defined, every worked example is held as test data, and the
parameter tables state the defaults of the code."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from qt_backtest.backtest.rules import PositionRules
from qt_backtest.hierarchy.config import ArbiterConfig, EnsembleConfig, HierarchyConfig, MetaConfig
from qt_backtest.hierarchy.rates import RateTargets

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: Where rule IDs are cited: the package, the tests and everything a reader is pointed to.
CITING = ("qt_backtest", "tests", "research", "notebooks", "benchmarks", "examples", "README.md")
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".toml", ".j2", ".txt"}

# <letter>-<TOPIC>-<number>, the letters of docs/README.md
ID = r"[HIPMTX]-[A-Z]+-[1-9][0-9]*"
DEFINITION = re.compile(r"\*\*(" + ID + r")\*\*")
CITATION = re.compile(r"(?<![\w-])(" + ID + r")(?![\w-])")
CODE_SPAN = re.compile(r"`[^`\n]*`")


def definitions(text: str) -> list[str]:
    """IDs written in bold (a rule's own tag), outside inline code, in order of appearance."""
    return DEFINITION.findall(CODE_SPAN.sub("", text))


def citations(text: str) -> set[str]:
    """Every ID mentioned, bold or not."""
    return set(CITATION.findall(text))


def doc_pages() -> dict[str, str]:
    pages = {path.name: path.read_text(encoding="utf-8") for path in sorted(DOCS.glob("*.md"))}
    assert pages, f"no documents in {DOCS}"
    return pages


def citing_files() -> list[Path]:
    files = []
    for name in CITING:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix in TEXT_SUFFIXES and ".ipynb_checkpoints" not in p.parts
            ]
    return files


def defined_ids() -> dict[str, str]:
    """ID -> page that defines it."""
    where: dict[str, str] = {}
    for page, text in doc_pages().items():
        for rule in definitions(text):
            where.setdefault(rule, page)
    return where


def test_the_parsers_find_definitions_and_citations():
    rule, other = "-".join(("H", "META", "4")), "-".join(("X", "ARB", "10"))
    text = f"**{rule}** a rule, see {other} and `**{other}**` (in code: not a definition)."
    assert definitions(text) == [rule]
    assert citations(text) == {rule, other}
    # not an ID: a longer token that merely contains one
    assert citations("AH-META-4 H-META-4x H-META-04") == set()


def test_rule_ids_are_unique():
    seen: dict[str, list[str]] = {}
    for page, text in doc_pages().items():
        for rule in definitions(text):
            seen.setdefault(rule, []).append(page)
    duplicated = {rule: pages for rule, pages in seen.items() if len(pages) > 1}
    assert not duplicated, f"rule IDs defined more than once: {duplicated}"
    assert len(seen) > 150


def test_every_id_the_docs_mention_is_defined():
    defined = defined_ids()
    for page, text in doc_pages().items():
        missing = sorted(citations(text) - set(defined))
        assert not missing, f"docs/{page} mentions undefined rule IDs {missing}"


def test_every_id_cited_in_code_and_tests_is_defined():
    defined = set(defined_ids())
    missing = {}
    cited = set()
    for path in citing_files():
        found = citations(path.read_text(encoding="utf-8", errors="replace"))
        cited |= found
        if found - defined:
            missing[str(path.relative_to(ROOT))] = sorted(found - defined)
    assert not missing, f"rule IDs cited but not defined in docs/: {missing}"
    # the check has something to check: the code cites the rules it implements
    assert len(cited) > 50


def test_no_citation_of_a_document_outside_the_repository():
    outside = re.compile("SP" + r"EC\b|\.\./shared")
    offending = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in citing_files()
        for number, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").split("\n"), 1
        )
        if outside.search(line)
    ]
    assert not offending, f"cite docs/ rule IDs instead: {offending}"


def test_every_worked_example_is_held_as_test_data():
    examples = {rule for rule in defined_ids() if rule.startswith("X-")}
    held = citations((ROOT / "tests" / "spec_cases.py").read_text(encoding="utf-8"))
    assert examples, "no worked examples in docs/"
    assert examples == held & examples, f"not in tests/spec_cases.py: {sorted(examples - held)}"


# ---------------------------------------------------------------------------------------------
# Parameter tables: the defaults stated equal the code's
# ---------------------------------------------------------------------------------------------

CONFIGS = {
    cls.__name__: cls
    for cls in (
        EnsembleConfig,
        MetaConfig,
        ArbiterConfig,
        HierarchyConfig,
        PositionRules,
        RateTargets,
    )
}
#: HierarchyConfig's fields that hold the layers' configurations, documented by their own tables
SECTIONS = ("ensemble", "meta", "arbiter")
HEADING = re.compile(r"^#+ .*`(\w+)`")
FIELD = re.compile(r"`(\w+)`")
# a parenthetical note with words and no quoted value, e.g. "(RSI points)"
NOTE = re.compile(r"\s*\((?![^()]*[\"`])[^()]*[A-Za-z][^()]*\)")
THOUSANDS = re.compile(r"(?<=\d) (?=\d{3}\b)")


def stated_defaults() -> list[tuple[str, tuple[str, ...], str]]:
    """(class, fields, default cell) of every row of the tables under a configuration heading."""
    rows = []
    for path in (DOCS / "hierarchy.md", DOCS / "positions-and-metrics.md"):
        section = None
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                heading = HEADING.match(line)
                section = heading.group(1) if heading and heading.group(1) in CONFIGS else None
            elif section is not None and line.startswith("| `"):
                cells = [cell.strip() for cell in line.strip("|").split("|")]
                rows.append((section, tuple(FIELD.findall(cells[0])), cells[1]))
    return rows


def parse_default(cell: str, count: int):
    """The literal values of a default cell, one per field, or None when it is prose."""
    text = THOUSANDS.sub("", NOTE.sub("", cell)).replace("`", "").strip()
    try:
        value = ast.literal_eval(text if count == 1 else f"({text})")
    except (ValueError, SyntaxError):
        return None
    return [value] if count == 1 else list(value) if len(value) == count else None


def code_default(cls, name: str):
    field = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    assert field is not None, (
        f"docs state a default for {cls.__name__}.{name}, which does not exist"
    )
    return getattr(cls(), name)


def test_parameter_tables_state_the_code_defaults():
    checked = 0
    for section, names, cell in stated_defaults():
        expected = [code_default(CONFIGS[section], name) for name in names]
        values = parse_default(cell, len(names))
        if values is None:
            continue  # a default stated in words (the weight tables), read by a person
        for name, value, want in zip(names, values, expected, strict=True):
            same = value == pytest.approx(want) if isinstance(want, float) else value == want
            assert same, f"{section}.{name}: docs say {value!r}, the code {want!r}"
            checked += 1
    assert checked > 60


def test_every_configuration_field_has_a_row():
    documented = {(section, name) for section, names, _ in stated_defaults() for name in names}
    for class_name, cls in CONFIGS.items():
        for field in dataclasses.fields(cls):
            nested = class_name == "HierarchyConfig" and field.name in SECTIONS
            if not field.init or nested:
                continue
            assert (class_name, field.name) in documented, (
                f"{class_name}.{field.name} has no row in the parameter tables of docs/"
            )
