"""The rules documents in docs/: rule IDs are unique, every ID cited in the code, the tests
and the docs themselves is defined, every worked example is held as test data, and the
parameter tables state the defaults of the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: Where rule IDs are cited: the package, the tests and everything a reader is pointed to.
CITING = ("qt_backtest", "tests", "research", "notebooks", "benchmarks", "examples", "README.md")
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".toml", ".j2", ".txt"}

# <letter>-<TOPIC>-<number>, the letters of docs/README.md
ID = r"[HIPMSTX]-[A-Z]+-[1-9][0-9]*"
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
