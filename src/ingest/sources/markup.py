"""The text a reader sees in an HTML fragment of a source (a summary, `content_html`)."""

from __future__ import annotations

from html.parser import HTMLParser


def plain_text(value: str | None) -> str | None:
    """Text of an HTML fragment (a summary, a JSON Feed `content_html`): script, style and
    other non-text elements dropped with their content, a space where a block or line
    break ends, entities decoded, whitespace collapsed. Malformed markup is read the way a
    browser would recover it (html.parser), in one linear pass."""
    if not value:
        return None
    reader = _TextOf()
    try:
        reader.feed(value)
        reader.close()
    except (AssertionError, ValueError):  # html.parser's rare complaints on broken markup
        pass
    text = " ".join("".join(reader.parts).split())
    return text or None


_SKIPPED = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg"})
_BREAKS = frozenset(
    "address article aside blockquote br dd details div dl dt figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table td th tr ul".split()
)


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping: list[str] = []  # open non-text elements

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping.append(tag)
        elif tag in _BREAKS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            if tag in self._skipping:  # close it and anything left open inside it
                del self._skipping[len(self._skipping) - 1 - self._skipping[::-1].index(tag) :]
        elif tag in _BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)
