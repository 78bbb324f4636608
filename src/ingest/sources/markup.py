"""The text a reader sees in an HTML fragment of a source (a summary, `content_html`)."""

from __future__ import annotations

import re

from lxml import etree, html

_SKIPPED = ("script", "style", "noscript", "template", "iframe", "object", "svg")
_BREAKS = tuple(
    "address article aside blockquote br dd details div dl dt figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table td th tr "
    "ul".split()
)
# Characters no XML (so no lxml tree) may hold; they carry no text either.
_UNUSABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def plain_text(value: str | None) -> str | None:
    """Text of an HTML fragment: script, style and other non-text elements dropped with
    their content, a space where a block or line break is, entities decoded, whitespace
    collapsed. Broken markup is recovered the way libxml2's HTML parser does, in C and in
    linear time (a pure-Python parser is quadratic on runs like `<a <a <a …`)."""
    if not value:
        return None
    cleaned = _UNUSABLE.sub("", value)
    if not cleaned.strip():
        return None
    try:
        root = html.fragment_fromstring(cleaned, create_parent="div")
    except (etree.ParserError, ValueError):
        return None
    for element in list(root.iter(*_SKIPPED)):
        element.drop_tree()  # keeps the text after it (its tail), which is not inside it
    for element in root.iter(*_BREAKS):
        element.text = " " + (element.text or "")
        element.tail = " " + (element.tail or "")
    text = " ".join(root.text_content().split())
    return text or None
