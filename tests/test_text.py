"""XML-safe text: what XML 1.0 forbids never reaches a stored row or an emitted file."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ingest.text import clean_value, xml_safe


@pytest.mark.parametrize(
    "bad", ["\x00", "\x1b", "\x08", "\x0b", "\x0c", "\ud800", "\ufffe", "\uffff"]
)
def test_forbidden_characters_are_dropped(bad: str) -> None:
    cleaned = xml_safe(f"a{bad}b")
    assert cleaned == "ab"
    ET.fromstring(f"<t>{cleaned}</t>")  # parses


def test_allowed_text_is_unchanged() -> None:
    text = "Tab\tLF\nCR\r Ünïcödé 日本語 emoji 🎉 \x85 \ue000"
    assert xml_safe(text) == text


def test_clean_value_handles_lists_and_leaves_other_types() -> None:
    assert clean_value(["a\x1b", 3, None]) == ["a", 3, None]
    assert clean_value(7) == 7 and clean_value(None) is None
