"""trafilatura, run faster with results identical to its own.

Extraction is most of a run's CPU, and most of that is trafilatura walking page trees. Two
places where it pays for work that cannot change a result are changed here, once per
process (`install`, called when `ingest.extract` is imported):

1. Element classes picked in C. trafilatura parses pages with lxml.html's parser, whose
   element class lookup is a Python method, called each time Python code touches an element
   that has no proxy yet (about 5,000 times a page over both passes) only to pick lxml's
   form-field classes, whose extra methods nothing here uses. The same classes chosen in C
   cost 5% less extraction CPU.
2. Regular-expression tests skipped where they cannot match. trafilatura finds boilerplate
   with XPath rules such as `re:test(@id|@class, 'nav|footer|...')`, and lxml runs each such
   test as a call into Python (the pattern converted and looked up, the attribute values
   converted), for every candidate element, including the many that carry neither attribute,
   where the value tested is "" and the test is false. Each test whose pattern cannot match
   "" is guarded with `boolean(@id|@class) and ...`, which XPath evaluates in C first: the
   same elements are selected (an absent attribute reads as "", which the pattern does not
   match), 8-9% less extraction CPU on the real-page corpus.

Both were checked on all 945 pages of the real-page corpus (every extracted field the same,
`bench/README.md`); tests/unit/test_trafilatura_speedups.py keeps checking them against
trafilatura's own behaviour on real pages, and fails when a trafilatura release writes its
rules in a form the guard no longer recognizes.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lxml import etree
from lxml.html import HtmlComment, HtmlElement, HtmlEntity, HtmlProcessingInstruction

REGEXP_NS = "http://exslt.org/regular-expressions"

# re:test(<attribute or union of attributes>, <pattern literal>[, <flags literal>])
_LITERAL = r"""(?:'[^']*'|"[^"]*")"""
_REGEX_TEST = re.compile(
    r"re:test\(\s*(?P<arg>@[\w:.-]+(?:\s*\|\s*@[\w:.-]+)*)\s*,\s*"
    rf"(?P<pattern>{_LITERAL})\s*(?:,\s*(?P<flags>{_LITERAL})\s*)?\)"
)
_GUARD = "(boolean({arg}) and {test})"
_PREFIX = re.compile(r"(?<![:\w.-])([A-Za-z_][\w.-]*):(?=[A-Za-z_*])")  # as "re" in re:test


def choose_element_classes_in_c() -> None:
    """lxml.html's element classes, picked by a lookup written in C (point 1 above)."""
    from trafilatura.utils import HTML_PARSER

    HTML_PARSER.set_element_class_lookup(
        etree.ElementDefaultClassLookup(
            element=HtmlElement,
            comment=HtmlComment,
            pi=HtmlProcessingInstruction,
            entity=HtmlEntity,
        )
    )


def _matches_nothing_empty(pattern: str, flags: str) -> bool:
    """True when the pattern, as lxml's EXSLT re:test compiles it, does not match ""."""
    try:
        compiled = re.compile(pattern, re.IGNORECASE if "i" in flags else 0)
    except re.error:
        return False  # left to lxml, which reports it as it always did
    return compiled.search("") is None


def guard_regex_tests(expression: str) -> str:
    """The expression with each re:test on attributes guarded by a test, in C, that one of
    them is present. Tests whose pattern matches "" (an absent attribute would pass them)
    and tests on anything other than attributes are left as they are."""

    def guarded(match: re.Match[str]) -> str:
        pattern, flags = match["pattern"][1:-1], (match["flags"] or "''")[1:-1]
        if not _matches_nothing_empty(pattern, flags):
            return match[0]
        return _GUARD.format(arg=match["arg"], test=match[0])

    return _REGEX_TEST.sub(guarded, expression)


@dataclass
class _Slot:
    """Where trafilatura holds one rule: a module attribute or a list item."""

    holder: Any  # a module or a list
    key: str | int
    original: etree.XPath
    guarded: etree.XPath

    def put(self, rule: etree.XPath) -> None:
        if isinstance(self.holder, list):
            self.holder[self.key] = rule  # type: ignore[index]
        else:
            setattr(self.holder, str(self.key), rule)


_slots: list[_Slot] = []


def _guarded_rule(rule: etree.XPath) -> etree.XPath | None:
    """The rule with its regex tests guarded; None when nothing changes or when it names a
    namespace other than EXSLT's regular expressions (its compiled form does not say which
    URI that prefix stood for)."""
    path = guard_regex_tests(rule.path)
    outside_literals = re.sub(_LITERAL, "''", rule.path)
    if path == rule.path or set(_PREFIX.findall(outside_literals)) != {"re"}:
        return None
    return etree.XPath(path, namespaces={"re": REGEXP_NS})


def guard_rules() -> int:
    """Guard the regex tests of every compiled rule trafilatura's loaded modules hold, in
    place (point 2 above); returns how many rules changed. Once per process."""
    if not _slots:
        _slots.extend(_rule_slots())
        for slot in _slots:
            slot.put(slot.guarded)
    return len({id(slot.original) for slot in _slots})


def _rule_slots() -> Iterator[_Slot]:
    """Every place a loaded trafilatura module holds a rule that guarding changes, with its
    guarded form (one per rule, however many places hold it)."""
    import trafilatura  # noqa: F401  (loads the modules whose rules are guarded)

    replaced: dict[int, etree.XPath | None] = {}

    def replacement(rule: etree.XPath) -> etree.XPath | None:
        if id(rule) not in replaced:
            replaced[id(rule)] = _guarded_rule(rule) if "re:test" in rule.path else None
        return replaced[id(rule)]

    seen_lists: set[int] = set()
    for name, module in sorted(sys.modules.items()):
        if module is None or not (name == "trafilatura" or name.startswith("trafilatura.")):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, etree.XPath):
                if (new := replacement(value)) is not None:
                    yield _Slot(module, attr, value, new)
            elif isinstance(value, list) and id(value) not in seen_lists:
                seen_lists.add(id(value))  # one list, imported by several modules
                for index, item in enumerate(value):
                    if isinstance(item, etree.XPath) and (new := replacement(item)) is not None:
                        yield _Slot(value, index, item, new)


@contextmanager
def original_rules() -> Iterator[None]:
    """trafilatura's own rules for the duration (to compare results with them). The rules
    are the process's: no other thread may extract meanwhile."""
    for slot in _slots:
        slot.put(slot.original)
    try:
        yield
    finally:
        for slot in _slots:
            slot.put(slot.guarded)


@contextmanager
def as_shipped() -> Iterator[None]:
    """trafilatura as released for the duration: its own rules and lxml.html's element
    class lookup (to compare the engine's speed with trafilatura's own). Process-wide, as
    `original_rules` is."""
    from lxml.html import HtmlElementClassLookup
    from trafilatura.utils import HTML_PARSER

    with original_rules():
        HTML_PARSER.set_element_class_lookup(HtmlElementClassLookup())
        try:
            yield
        finally:
            choose_element_classes_in_c()


def install() -> None:
    choose_element_classes_in_c()
    guard_rules()
