"""HTML bytes to text: the charset from the HTTP header, a BOM or the page's <meta>
(w3lib), detected (charset-normalizer) when none is declared; never assumed to be UTF-8."""

from __future__ import annotations

from w3lib.encoding import html_to_unicode


def decode_html(body: bytes, content_type: str) -> str:
    _, text = html_to_unicode(content_type or None, body, auto_detect_fun=_detect_encoding)
    return text


def _detect_encoding(body: bytes) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    return best.encoding if best else None
