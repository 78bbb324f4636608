"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org), told by its content, as `FeedEntry` values.

The standard library's json reads it: JSON Feed is plain JSON with a small vocabulary, so
a feed library would add a dependency and nothing else. Before json builds any object, a
linear bracket count (`json_depth`) refuses nesting deeper than MAX_JSON_DEPTH (no real
feed goes past 5), and every field is type-checked: a hostile feed can make a value anything.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any
from urllib.parse import urljoin

import numpy as np

from ingest.config import Feed
from ingest.net import FetchError
from ingest.sources.dates import entry_cap, newest_first, parse_datetime
from ingest.sources.markup import plain_text
from ingest.sources.model import FeedEntry, PollResult
from ingest.websub.discovery import from_json_feed

VERSION_PREFIXES = ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")
MAX_JSON_DEPTH = 50

# A string, or an unterminated one to the end of the text: matching the unterminated case
# too is what keeps the scan linear (otherwise every later quote would start a scan to the
# end of the text again, quadratic on `{"\"\"\"…`).
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as int8: +1 opens, -1 closes


def looks_like_json(body: bytes) -> bool:
    """A body whose first character opens a JSON object or array: never RSS, Atom or a
    sitemap, so it is read as JSON (and must be a JSON Feed) whatever its content type."""
    head = body[:1024].removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    return head[:1] in (b"{", b"[")


def json_depth(text: str) -> int:
    """How deep JSON text nests arrays and objects, counted without parsing it: strings
    cut out, the brackets left become +1/-1 steps, the depth is their running sum's peak.
    Linear and in C (re, numpy): ~0.2 s for 10 MB of brackets, and no shape of quotes and
    backslashes makes it more (tests/unit/test_feeds.py has the adversarial ones)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    steps = np.frombuffer(brackets.translate(_STEPS), dtype=np.int8)
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def _failed(feed: Feed, why: str) -> PollResult:
    return PollResult(
        feed, "failed", kind="json", error=FetchError("feed_parse_error", f"{feed.url}: {why}")
    )


def _str(value: Any) -> str | None:
    """A non-empty string, whitespace collapsed, or None for anything else."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text or None


def _http_base(value: Any, base: str) -> str | None:
    url = _str(value)
    if url is None:
        return None
    try:
        url = urljoin(base, url)
    except ValueError:
        return None
    return url if url.lower().startswith(("http://", "https://")) else None


def _names(holder: dict[str, Any]) -> list[str]:
    """Author names: 1.1's `authors` list, else 1.0's `author` object."""
    authors = holder.get("authors")
    people = authors if isinstance(authors, list) else [holder.get("author")]
    names = [_str(p.get("name")) for p in people[:50] if isinstance(p, dict)]
    return [n for n in names if n]


def parse_json_feed(body: bytes, feed: Feed, final_url: str, content_type: str) -> PollResult:
    """One JSON Feed document as entries; malformed JSON or another JSON document is a
    failed feed (`feed_parse_error`) that says what was wrong.

    Map: url (else external_url) -> link, resolved against the feed's feed_url, then its
    home_page_url, then the URL it came from; title; summary, else content_text, else
    content_html without tags -> summary; date_published -> published; date_modified ->
    updated; authors (1.1) / author (1.0), the feed's when the item has none; tags ->
    categories; language (1.1: item, then feed), else the feeds file's language."""
    doc = _load(body)
    if isinstance(doc, str):
        return _failed(feed, doc)
    base = final_url
    for key in ("home_page_url", "feed_url"):  # the last one found wins: feed_url
        base = _http_base(doc.get(key), final_url) or base
    defaults = FeedEntry(
        feed=feed.name,
        feed_url=feed.url,
        link=None,
        authors=_names(doc),
        language=_str(doc.get("language")) or feed.language,
    )
    objects = [item for item in doc["items"] if isinstance(item, dict)]
    skipped = len(doc["items"]) - len(objects)
    entries = [_entry(item, base, defaults) for item in objects]
    kept, dropped = newest_first(entries, entry_cap(feed))
    malformed = f"{skipped} item(s) are not JSON objects" if skipped else None
    push = from_json_feed(doc, final_url)
    return PollResult(
        feed,
        "ok",
        entries=kept,
        kind="json",
        malformed=malformed,
        entries_dropped=dropped,
        hubs=push.hubs,
        topic=push.topic,
    )


def _load(body: bytes) -> dict[str, Any] | str:
    """The JSON Feed document with an "items" list, or why the body is not one."""
    try:
        text = body.decode(json.detect_encoding(body))
    except (UnicodeDecodeError, LookupError) as exc:
        return f"malformed JSON: not in a JSON encoding ({exc})"
    if json_depth(text) > MAX_JSON_DEPTH:
        return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except (ValueError, RecursionError) as exc:  # e.g. an integer of 5,000 digits
        return f"malformed JSON: {exc}"
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.startswith(VERSION_PREFIXES):
        return 'JSON but not a JSON Feed (no "version": "https://jsonfeed.org/version/…")'
    if not isinstance(doc.get("items"), list):
        return 'JSON Feed without an "items" list'
    return doc


def _entry(item: dict[str, Any], base: str, defaults: FeedEntry) -> FeedEntry:
    """One item; the feed's authors and language stand in where the item has none."""
    link = _str(item.get("url")) or _str(item.get("external_url"))
    if link:
        try:
            link = urljoin(base, link)
        except ValueError:  # e.g. "http://[::1": the pipeline counts it as no link
            link = None
    summary = (
        _str(item.get("summary"))
        or _str(item.get("content_text"))
        or (plain_text(item["content_html"]) if _str(item.get("content_html")) else None)
    )
    tags = item.get("tags")
    return replace(
        defaults,
        link=link,
        title=_str(item.get("title")),
        summary=summary,
        published=parse_datetime(item.get("date_published")),
        updated=parse_datetime(item.get("date_modified")),
        authors=_names(item) or defaults.authors,
        categories=[t for t in map(_str, tags[:100]) if t] if isinstance(tags, list) else [],
        language=_str(item.get("language")) or defaults.language,
    )
