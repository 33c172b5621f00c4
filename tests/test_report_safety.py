"""Reports are safe whatever their strings say: markup in symbols, file names, titles, notes,
settings values and reason texts, from the caller or from a tampered saved study, renders as
text in a real browser and never as an element or an event handler."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sweep_fixtures import synthetic_market
from test_report import browse

from qt_backtest.report import load_study, render_report, run_study, write_report

ATTACKS = (
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(2)>",
    "</code><script>alert(3)</script>",
    "<iframe src=javascript:alert(4)>",
    "$\\frac{1}{0}$ & <b>",
)
FORBIDDEN_TAGS = {"img", "script", "iframe", "b", "object", "embed"}


class _Elements(HTMLParser):
    """Collects what a DOM has as elements and attributes (text is not looked at)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in FORBIDDEN_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:...>")


def injected(dom: str) -> list[str]:
    """Elements and handlers in ``dom`` that only an injection would put there."""
    parser = _Elements()
    parser.feed(dom)
    return parser.found


def hostile(draw_text: str, attack: str) -> str:
    return f"{draw_text}{attack}"


@pytest.fixture(scope="module")
def market():
    bars, votes, _ = synthetic_market(900, seed=21)
    return bars, votes


def build(market, text: str, attack: str):
    bars, votes = market
    symbol = hostile(text, attack)
    frame = bars.copy()
    frame.attrs["source"] = f"/data/{hostile(text, attack)}.csv"
    study = run_study(
        {symbol: frame},
        {symbol: votes},
        override_limit=3,
        sweep_grid={"arbiter.arbiter_threshold": [0.6, 0.8]},
        sweep_options={"modes": ["meta_arbiter"], "blocks": 2},
        title=hostile(text, attack),
        notes=[hostile(text, attack)],
    )
    study.mix = study.mix.assign(reason=hostile(text, attack))
    return study


def tamper(folder, text: str, attack: str) -> None:
    """Edit a saved study's JSON as an attacker with write access to it would."""
    path = folder / "study.json"
    meta = json.loads(path.read_text())
    value = hostile(text, attack)
    meta["title"] = value
    meta["notes"] = [value]
    meta["config"]["mode"] = value
    meta["config"]["fidelity"] = value
    meta["config"]["arbiter"]["wiring"] = value
    meta["inputs"]["macd_scale"] = value
    meta["rules"]["fill_price"] = value
    meta["extra_sections"] = [{"id": value, "title": value, "blocks": [attack]}]
    if meta.get("sweep"):
        meta["sweep"]["metric"] = meta["sweep"]["metric"]  # must stay a column name
    path.write_text(json.dumps(meta))


def dom_of(tmp_path, page: str) -> str:
    path = tmp_path / "page.html"
    path.write_text(page, encoding="utf-8")
    dumped = browse(tmp_path, path, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    return dumped.stdout


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=st.text(max_size=12), attack=st.sampled_from(ATTACKS))
def test_no_string_becomes_markup_in_the_browser(tmp_path_factory, market, text, attack):
    tmp_path = tmp_path_factory.mktemp("safety")
    study = build(market, text, attack)
    page = render_report(study, max_trades=5)
    assert injected(dom_of(tmp_path, page)) == []
    # the same study saved, its JSON tampered with, read back and rendered
    folder = study.save(tmp_path / "study")
    tamper(folder, text, attack)
    again = render_report(load_study(folder), max_trades=5)
    dom = dom_of(tmp_path, again)
    assert injected(dom) == []
    assert "untrusted" in dom  # the section's HTML is shown as text


def test_the_checks_would_see_an_injection(tmp_path, market):
    # proves the DOM check above can fail: trusted HTML from the caller is inserted as is (a
    # handler that does not block: alert() would hold the headless browser)
    harmless = "<img src=x onerror=console.log(1)>"
    study = build(market, "x", ATTACKS[0])
    study.extra_sections = [{"id": "raw", "title": "Raw", "blocks": [harmless]}]
    assert injected(dom_of(tmp_path, render_report(study, max_trades=5)))
    folder = study.save(tmp_path / "trusted")
    trusted = load_study(folder, trust_html=True)
    assert injected(dom_of(tmp_path, render_report(trusted, max_trades=5)))


def test_a_symbol_with_markup_is_escaped_in_figure_labels(tmp_path, market):
    study = build(market, "", ATTACKS[0])
    path = write_report(study, tmp_path / "r.html", max_trades=5)
    page = path.read_text()
    assert 'aria-label="&quot;&gt;&lt;img' in page
    assert "<img" not in page
