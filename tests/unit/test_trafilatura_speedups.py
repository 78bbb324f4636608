"""ingest.trafilatura_speedups: trafilatura run faster, with the results of its own rules."""

from __future__ import annotations

import re

import pytest
from lxml import etree
from lxml.html import HtmlElementClassLookup, InputElement
from trafilatura.utils import HTML_PARSER, load_html

from ingest import trafilatura_speedups as speedups
from ingest.extract import extract_page
from tests.helpers.corpus import corpus_files, corpus_page, raw_page

NS = {"re": speedups.REGEXP_NS}


# --------------------------------------------------------------------------- regex guards


@pytest.mark.parametrize(
    ("expression", "guarded"),
    [
        pytest.param(
            ".//*[re:test(@id|@class, 'nav|footer')]",
            ".//*[(boolean(@id|@class) and re:test(@id|@class, 'nav|footer'))]",
            id="union",
        ),
        pytest.param(
            ".//div[@x or re:test(@class, '^ad-', 'i') or re:test( @id ,\"menu\" )]",
            ".//div[@x or (boolean(@class) and re:test(@class, '^ad-', 'i'))"
            ' or (boolean(@id) and re:test( @id ,"menu" ))]',
            id="flags-and-double-quotes",
        ),
        pytest.param(".//*[re:test(@class, 'x*')]", None, id="pattern-matches-empty"),
        pytest.param(".//*[re:test(@class, '^$|nav')]", None, id="anchored-empty"),
        pytest.param(".//*[re:test(string(@class), 'nav')]", None, id="not-attributes"),
        pytest.param(".//*[re:test(., 'nav')]", None, id="text-of-element"),
        pytest.param(".//*[re:test(@class, '(')]", None, id="pattern-does-not-compile"),
    ],
)
def test_guard_regex_tests(expression: str, guarded: str | None) -> None:
    assert speedups.guard_regex_tests(expression) == (guarded or expression)


_TREE = """<html><body>
<div id="main-nav">a</div><div class="NAV bar" id="x">b</div><div class="">c</div>
<div>d</div><div id="" class="nav">e</div><div class="nav" id="">f</div>
<p class="ad-box">g</p><p data-x="nav">h</p><span class="Ad-Box">i</span><span>j</span>
</body></html>"""


@pytest.mark.parametrize(
    "expression",
    [
        ".//*[re:test(@id|@class, 'nav')]",  # the first of id and class in the source counts
        ".//*[re:test(@class|@id, 'nav', 'i')]",
        ".//*[self::div or self::span][re:test(@class, '^ad-', 'i') or re:test(@id, 'x')]",
        ".//*[not(re:test(@class, 'nav'))]",  # negated: elements without a class pass
        ".//*[re:test(@data-x, 'nav|zz')]",
    ],
)
def test_guarded_expressions_select_the_same_elements(expression: str) -> None:
    guarded = speedups.guard_regex_tests(expression)
    assert guarded != expression
    tree = etree.fromstring(_TREE, etree.HTMLParser())
    original = etree.XPath(expression, namespaces=NS)(tree)
    assert original  # the expression selects something, so equality says something
    assert etree.XPath(guarded, namespaces=NS)(tree) == original


def _regex_tests(path: str) -> list[str]:
    return re.findall(r"re:test\(", path)


def test_every_regex_test_of_trafilatura_rules_is_guarded() -> None:
    """A trafilatura release that writes its rules another way fails here, instead of
    silently losing the speed-up."""
    import trafilatura.settings
    import trafilatura.xpaths

    rules = [
        rule
        for module in (trafilatura.xpaths, trafilatura.settings)
        for value in vars(module).values()
        for rule in (value if isinstance(value, list) else [value])
        if isinstance(rule, etree.XPath) and "re:test" in rule.path
    ]
    assert len(rules) >= 15
    for rule in rules:
        tests = len(_regex_tests(rule.path))
        assert rule.path.count("(boolean(@") == tests, rule.path[:200]
    with speedups.original_rules():
        assert not any("(boolean(@" in rule.path for rule in trafilatura.xpaths.BODY_XPATH)
    assert sum("(boolean(@" in rule.path for rule in trafilatura.xpaths.BODY_XPATH) >= 2


def test_guard_rules_is_done_once() -> None:
    from trafilatura.xpaths import OVERALL_DISCARD_XPATH

    before = [rule.path for rule in OVERALL_DISCARD_XPATH]
    assert speedups.guard_rules() >= 15
    assert [rule.path for rule in OVERALL_DISCARD_XPATH] == before  # not guarded twice


def _sample(step: int) -> list[str]:
    """Every step-th page of the corpus: a spread of sites and languages."""
    files = corpus_files()
    assert len(files) > 900
    return files[::step]


def test_guarded_rules_extract_what_trafilatura_rules_extract() -> None:
    """Real pages, extracted with the guarded rules and with trafilatura's own: every field
    of every page the same (all 945 pages were compared when this was introduced)."""
    files = _sample(12)
    ours = {file: extract_page(*corpus_page(file)) for file in files}
    with speedups.original_rules():
        for file in files:
            assert extract_page(*corpus_page(file)) == ours[file], file


# --------------------------------------------------------------------------- element classes


def _pages_with_forms(limit: int) -> list[str]:
    """Corpus pages whose forms lxml.html would give its form-field classes."""
    found = []
    for file in corpus_files():
        raw = raw_page(file)
        if b"<form" in raw and b"<input" in raw and b"<select" in raw:
            found.append(file)
        if len(found) == limit:
            break
    return found


def test_element_classes_chosen_in_c_change_no_extraction() -> None:
    """The engine parses with element classes picked in C, not lxml.html's Python lookup:
    on real pages full of forms both extract the same."""
    assert type(load_html("<html><body><form><input name=q></form></body></html>")
                .find(".//input")) is not InputElement  # fmt: skip
    files = [
        *_pages_with_forms(12),
        "security.googleblog.com.protection.html",
        "topagrar.com.schnee.solat.html",
        "thelocal.se.tattooed.html",
        "dw.com.colonial.html",
    ]
    ours = {file: extract_page(*corpus_page(file)) for file in files}
    HTML_PARSER.set_element_class_lookup(HtmlElementClassLookup())
    try:
        assert type(load_html("<html><body><input></body></html>").find(".//input")) is (
            InputElement
        )
        for file in files:
            assert extract_page(*corpus_page(file)) == ours[file], file
    finally:
        speedups.choose_element_classes_in_c()


def test_as_shipped_puts_back_trafilatura_rules_and_lookup_for_the_duration() -> None:
    from trafilatura.xpaths import OVERALL_DISCARD_XPATH

    def state() -> tuple[bool, bool]:
        form_classes = type(load_html("<html><body><input></body></html>").find(".//input"))
        return "(boolean(@" in OVERALL_DISCARD_XPATH[0].path, form_classes is InputElement

    assert state() == (True, False)
    with speedups.as_shipped():
        assert state() == (False, True)
    assert state() == (True, False)
