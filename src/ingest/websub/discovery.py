"""WebSub discovery (W3C WebSub, section 4): a source's hub(s) and its topic URL.

A publisher names them in HTTP `Link` headers (`rel="hub"`, `rel="self"`), which take
precedence, or in the document itself: `<atom:link rel="hub">` in RSS and Atom, the
`hubs` list of a JSON Feed. Only absolute http(s) URLs count; at most MAX_HUBS are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin

MAX_HUBS = 4
MAX_LINK_HEADER_CHARS = 16_384  # a longer header is not read (a hostile server's)


@dataclass
class Discovered:
    """What a source says about push: hub URLs (best first) and the topic (rel=self)."""

    hubs: list[str] = field(default_factory=list)
    topic: str | None = None

    def merged_over(self, fallback: Discovered) -> Discovered:
        """Headers over the document: each field from here when set, else from fallback."""
        return Discovered(self.hubs or fallback.hubs, self.topic or fallback.topic)


def _http_url(value: str | None, base: str) -> str | None:
    if not value or not isinstance(value, str):
        return None
    try:
        url = urljoin(base, value.strip())
    except ValueError:
        return None
    return url if url.lower().startswith(("http://", "https://")) and len(url) <= 2048 else None


def _split_outside(text: str, sep: str) -> list[str]:
    """`text` split at `sep` where it is not inside <...> or a quoted string (linear)."""
    parts, current, angle, quoted, escaped = [], [], False, False, False
    for ch in text:
        if quoted:
            quoted = not (ch == '"' and not escaped)
            escaped = ch == "\\" and not escaped
        elif angle:
            angle = ch != ">"
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def parse_link_header(value: str) -> list[tuple[str, set[str]]]:
    """(target, rel values) of each link-value of a `Link` header (RFC 8288); a value
    that is not `<target>; params` is skipped."""
    if not value or len(value) > MAX_LINK_HEADER_CHARS:
        return []
    links: list[tuple[str, set[str]]] = []
    for link_value in _split_outside(value, ","):
        head, *params = _split_outside(link_value, ";")
        head = head.strip()
        if not (head.startswith("<") and head.endswith(">")):
            continue
        rels: set[str] = set()
        for param in params:
            name, _, raw = param.partition("=")
            if name.strip().lower() == "rel":
                rels.update(raw.strip().strip('"').lower().split())
        links.append((head[1:-1].strip(), rels))
    return links


def from_link_header(value: str | None, base: str) -> Discovered:
    found = Discovered()
    for target, rels in parse_link_header(value or ""):
        url = _http_url(target, base)
        if url is None:
            continue
        if "hub" in rels and url not in found.hubs and len(found.hubs) < MAX_HUBS:
            found.hubs.append(url)
        if "self" in rels and found.topic is None:
            found.topic = url
    return found


def from_links(links: list[tuple[str | None, str | None]], base: str) -> Discovered:
    """From (rel, href) pairs of a feed document (feedparser's `feed.links`)."""
    found = Discovered()
    for rel, href in links:
        url = _http_url(href, base)
        if url is None or not rel:
            continue
        rel = rel.lower()
        if rel == "hub" and url not in found.hubs and len(found.hubs) < MAX_HUBS:
            found.hubs.append(url)
        elif rel == "self" and found.topic is None:
            found.topic = url
    return found


def from_json_feed(doc: dict, base: str) -> Discovered:
    """JSON Feed 1.1: `hubs: [{"type": "WebSub", "url": ...}]`; `feed_url` is the topic."""
    found = Discovered(topic=_http_url(doc.get("feed_url"), base))
    hubs = doc.get("hubs")
    for hub in hubs[:50] if isinstance(hubs, list) else []:
        if not isinstance(hub, dict) or str(hub.get("type", "")).lower() != "websub":
            continue
        url = _http_url(hub.get("url"), base)
        if url is not None and url not in found.hubs and len(found.hubs) < MAX_HUBS:
            found.hubs.append(url)
    return found
