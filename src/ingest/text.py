"""Text hygiene shared by every writer: what we store and emit must be valid XML 1.0 text.

A publisher's `&#x1b;` survives HTML and feed parsing as a real control character; stored
as-is it makes any XML built from it (the Atom index, a warehouse's XML export) invalid.
"""

from __future__ import annotations

import re
from typing import Any

# Everything XML 1.0 (section 2.2) does not allow in a document: C0 controls other than
# tab, LF and CR; lone surrogates; U+FFFE and U+FFFF.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """The text without the characters XML 1.0 forbids (dropped, not replaced)."""
    return _NOT_XML_CHAR.sub("", text)


def clean_value(value: Any) -> Any:
    """xml_safe applied to a string or to the strings of a list; other values unchanged."""
    if isinstance(value, str):
        return xml_safe(value)
    if isinstance(value, list):
        return [xml_safe(v) if isinstance(v, str) else v for v in value]
    return value
