"""URLs as they go on the wire."""

from __future__ import annotations

import re

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url


def request_url(url: str) -> str:
    """The URL as it goes on the wire: urllib3's own normalization of what it requests
    (spaces and other characters a URL may not hold percent-encoded, escapes kept, scheme
    and host lower-cased). Entries, rows and WARC records carry this form, so each names
    exactly what was requested. A URL that does not parse is left for the fetch to refuse."""
    try:
        # a stray '%' becomes '%25' first: urllib3 otherwise re-encodes every escape of
        # that URL part ("/a%zz/%41" would become "/a%25zz/%2541", another page)
        return parse_url(_STRAY_PERCENT.sub("%25", url)).url
    except (LocationParseError, ValueError):
        return url


_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
