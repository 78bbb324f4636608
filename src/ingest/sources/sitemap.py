"""Sitemaps as sources: urlset, Google News sitemaps, sitemap indexes, gzip-compressed files.

`parse_sitemap` runs where source parsing runs (the extraction workers, through
`ingest.sources.detect.parse_source`) and only reads one document: for an index it returns the
children as `SitemapRef`s. `follow_index` runs in the poller, which fetches the children
through the run's one HttpClient, so they get the address guard, byte limit, deadline and
per-host politeness of every other fetch.

lxml parses with entity resolution, DTD loading, network access and huge-tree mode off: an
XXE or "billion laughs" document yields nothing it does not literally contain, and a value
made of entity references is dropped rather than used half-read.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any
from urllib.parse import urljoin

from lxml import etree

from ingest.config import Feed
from ingest.net import FetchError
from ingest.sources.dates import entry_cap, newest_first, parse_datetime
from ingest.sources.model import FUTURE_TOLERANCE, FeedEntry, PollResult, SitemapRef

log = logging.getLogger(__name__)

SITEMAP_NAMESPACES = frozenset(
    {
        "",  # no namespace: common in the wild
        "http://www.sitemaps.org/schemas/sitemap/0.9",
        "http://www.google.com/schemas/sitemap/0.84",  # Google's original namespace
    }
)
NEWS_NS = "{http://www.google.com/schemas/sitemap-news/0.9}"
ROOTS = ("urlset", "sitemapindex")

MAX_URLS_PER_SITEMAP = 50_000  # the protocol's limit per file (URLs, or sitemaps in an index)
MAX_CHILD_SITEMAPS = 20  # children of an index fetched per poll, newest first
CHILD_FETCH_THREADS = 4  # the client's per-host slots still bound requests to one host

_SAFE_XML: dict[str, Any] = {
    "resolve_entities": False,
    "load_dtd": False,
    "dtd_validation": False,
    "attribute_defaults": False,
    "no_network": True,
    "huge_tree": False,
}

# An '&' that starts no entity or character reference: the usual sitemap mistake (raw
# query strings in <loc>). Escaping it reads the URL as meant; lxml's recovery would drop it.
_BARE_AMP = re.compile(rb"&(?!(?:[A-Za-z_][\w.-]*|#[0-9]+|#x[0-9A-Fa-f]+);)")


# ---------------------------------------------------------------------- parsing


def _xml_start(body: bytes) -> bytes:
    """Drop a UTF-8 BOM and leading whitespace: generated sitemaps often start with a
    newline, which puts the XML declaration out of place for a strict parser."""
    return body.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")


def _root_kind(element: Any) -> str | None:
    name = etree.QName(element)
    if name.localname in ROOTS and (name.namespace or "") in SITEMAP_NAMESPACES:
        return name.localname
    return None


def sitemap_root(body: bytes) -> str | None:
    """'urlset' or 'sitemapindex' when the root element says so (in the sitemap namespace
    or none), else None. Reads only up to the root's start tag."""
    try:
        for _, element in etree.iterparse(
            BytesIO(_xml_start(body)), events=("start",), recover=True, **_SAFE_XML
        ):
            return _root_kind(element)
    except etree.XMLSyntaxError:
        return None
    return None


def is_sitemap(body: bytes) -> bool:
    return sitemap_root(body) is not None


@dataclass
class _Document:
    root: str | None = None  # the root element's tag, as read
    kind: str | None = None  # urlset | sitemapindex
    records: list[dict[str, Any]] = field(default_factory=list)
    entity_values: int = 0  # values dropped because they were entity references
    over_limit: int = 0  # records past MAX_URLS_PER_SITEMAP, not read


def _read(body: bytes, recover: bool) -> _Document:
    """Stream the document: each <url>/<sitemap> is read, then freed, so memory stays
    that of one record whatever the file's size."""
    doc = _Document()
    depth = 0
    root: Any = None
    ns = ""
    events: Iterator[tuple[str, Any]] = etree.iterparse(
        BytesIO(body), events=("start", "end"), recover=recover, **_SAFE_XML
    )
    for event, element in events:
        if event == "start":
            depth += 1
            if root is None:
                root = element
                doc.root = str(element.tag)
                doc.kind = _root_kind(element)
                if doc.kind is None:
                    return doc
                namespace = etree.QName(element).namespace
                ns = f"{{{namespace}}}" if namespace else ""
            continue
        depth -= 1
        if depth != 1:
            continue
        wanted = f"{ns}url" if doc.kind == "urlset" else f"{ns}sitemap"
        if element.tag == wanted:
            if len(doc.records) >= MAX_URLS_PER_SITEMAP:
                doc.over_limit += 1
            else:
                doc.records.append(_record(element, ns, doc))
        element.clear(keep_tail=False)
        while element.getprevious() is not None:
            del root[0]
    return doc


def _value(element: Any, doc: _Document) -> str | None:
    if element is None:
        return None
    if any(isinstance(child, etree._Entity) for child in element):
        doc.entity_values += 1  # unexpanded on purpose: never read around it
        return None
    text = " ".join("".join(element.itertext()).split())
    return text or None


def _record(element: Any, ns: str, doc: _Document) -> dict[str, Any]:
    record = {
        "loc": _value(element.find(f"{ns}loc"), doc),
        "lastmod": _value(element.find(f"{ns}lastmod"), doc),
    }
    news = element.find(f"{NEWS_NS}news")
    if news is not None:
        record["publication_date"] = _value(news.find(f"{NEWS_NS}publication_date"), doc)
        record["title"] = _value(news.find(f"{NEWS_NS}title"), doc)
        record["keywords"] = _value(news.find(f"{NEWS_NS}keywords"), doc)
        publication = news.find(f"{NEWS_NS}publication")
        if publication is not None:
            record["name"] = _value(publication.find(f"{NEWS_NS}name"), doc)
            record["language"] = _value(publication.find(f"{NEWS_NS}language"), doc)
    return record


def _parse_document(body: bytes) -> tuple[_Document, str | None]:
    """Strict first; then with bare '&' escaped; then lxml's recovery. A document read
    any way but the first is malformed, and says why."""
    body = _xml_start(body)
    try:
        return _read(body, recover=False), None
    except etree.XMLSyntaxError as exc:
        first = f"XMLSyntaxError: {exc}"
    fixed = _BARE_AMP.sub(b"&amp;", body)
    if fixed != body:
        try:
            return _read(fixed, recover=False), f"unescaped '&' read as '&amp;' ({first})"
        except etree.XMLSyntaxError:
            pass
    try:
        return _read(fixed, recover=True), first
    except etree.XMLSyntaxError:
        return _Document(), first


def _absolute(base: str, loc: str | None) -> str | None:
    if not loc:
        return None
    try:
        return urljoin(base, loc)
    except ValueError:  # e.g. "http://[::1" - the pipeline counts it as having no link
        return None


def parse_sitemap(body: bytes, feed: Feed, final_url: str, content_type: str) -> PollResult:
    """One sitemap document as entries (urlset) or child references (sitemapindex).

    Map: loc -> link, lastmod -> updated (and published when there is no
    news:publication_date), news:publication_date -> published, news:title -> title,
    news:keywords -> categories, news:language -> language, news:name -> site_name."""
    doc, malformed = _parse_document(body)
    if doc.kind is None:
        what = f"the root element is <{doc.root}>" if doc.root else "not XML"
        detail = f"{feed.url}: not a sitemap ({what})"
        if malformed and not doc.root:
            detail += f": {malformed}"
        return PollResult(
            feed, "failed", kind="sitemap", error=FetchError("feed_parse_error", detail)
        )
    if malformed and not doc.records:  # as for feeds: malformed and empty is a failure
        error = FetchError("feed_parse_error", f"{feed.url}: {malformed}")
        return PollResult(feed, "failed", kind="sitemap", error=error)
    notes = [malformed] if malformed else []
    if doc.entity_values:
        notes.append(f"{doc.entity_values} value(s) made of entity references ignored")
    if doc.over_limit:
        notes.append(f"{doc.over_limit} record(s) beyond {MAX_URLS_PER_SITEMAP} ignored")
    note = "; ".join(notes) or None
    if doc.kind == "sitemapindex":
        refs = [
            SitemapRef(url, parse_datetime(r["lastmod"]))
            for r in doc.records
            if (url := _absolute(final_url, r["loc"]))
        ]
        return PollResult(feed, "ok", kind="sitemapindex", sitemaps=refs, malformed=note)
    entries = []
    for r in doc.records:
        lastmod = parse_datetime(r["lastmod"])
        keywords = r.get("keywords") or ""
        entries.append(
            FeedEntry(
                feed=feed.name,
                feed_url=feed.url,
                link=_absolute(final_url, r["loc"]),
                title=r.get("title"),
                published=parse_datetime(r.get("publication_date")) or lastmod,
                updated=lastmod,
                categories=[k.strip() for k in keywords.split(",") if k.strip()],
                language=r.get("language") or feed.language,
                site_name=r.get("name"),
            )
        )
    kept, dropped = newest_first(entries, entry_cap(feed))
    return PollResult(
        feed, "ok", entries=kept, kind="sitemap", malformed=note, entries_dropped=dropped
    )


# ---------------------------------------------------------------------- index following


def follow_index(
    feed: Feed,
    index: PollResult,
    fetch: Callable[[str], PollResult],
    limit: int = MAX_CHILD_SITEMAPS,
    now: datetime | None = None,
) -> PollResult:
    """Fetch the children an index names and merge their entries into `index`.

    At most `limit` children, newest lastmod first (undated ones last); children older
    than the feed's max_age_days are skipped; an index inside the index is not followed
    (one level only). A failed child is counted; the source fails only when every child
    it fetched failed. Entries are merged by link (the newest record wins) and cut to
    max_entries, newest first.

    The index's validators are kept only when they vouch for the children: each followed
    child has a lastmod in the index (so a changed child changes the index) and none
    failed transiently. Otherwise the next poll fetches the index, and its children, again.
    """
    counts: Counter[str] = Counter()
    chosen = _choose_children(feed, index, limit, now or datetime.now(UTC), counts)
    results: list[PollResult] = []
    if chosen:
        with ThreadPoolExecutor(min(CHILD_FETCH_THREADS, len(chosen)), "sitemap") as pool:
            results = list(pool.map(fetch, [ref.url for ref in chosen]))
    return _merge_children(feed, index, chosen, results, counts)


def _choose_children(
    feed: Feed, index: PollResult, limit: int, now: datetime, counts: Counter[str]
) -> list[SitemapRef]:
    """The children to fetch, newest lastmod first; the others counted by why."""
    oldest = now - timedelta(days=feed.max_age_days) if feed.max_age_days else None
    seen: set[str] = set()
    candidates: list[SitemapRef] = []
    for ref in index.sitemaps:
        if ref.url in seen:
            counts["duplicate"] += 1
        elif not ref.url.lower().startswith(("http://", "https://")):
            counts["bad_url"] += 1
        elif oldest is not None and ref.lastmod is not None and ref.lastmod < oldest:
            counts["too_old"] += 1
        else:
            candidates.append(ref)
        seen.add(ref.url)
    undated = datetime.min.replace(tzinfo=UTC)
    ahead = now + FUTURE_TOLERANCE  # a lastmod in the future does not jump the queue
    candidates.sort(
        key=lambda r: r.lastmod if r.lastmod and r.lastmod <= ahead else undated, reverse=True
    )  # stable: undated children keep the index's order
    chosen = candidates[: max(0, limit)]
    counts["over_limit"] = len(candidates) - len(chosen)
    return chosen


def _merge_children(
    feed: Feed,
    index: PollResult,
    chosen: list[SitemapRef],
    results: list[PollResult],
    counts: Counter[str],
) -> PollResult:
    """The children's entries merged into `index` (or the index failed when every child
    it fetched did)."""
    merged: dict[str, FeedEntry] = {}
    unlinked: list[FeedEntry] = []
    failures: list[FetchError] = []
    notes = [index.malformed] if index.malformed else []
    dropped = 0
    for ref, child in zip(chosen, results, strict=True):
        index.bytes += child.bytes
        if child.status != "ok":
            counts["failed"] += 1
            if child.error is not None:
                failures.append(child.error)
                log.warning("feed %s: child sitemap failed: %s", feed.name, child.error)
            continue
        if child.kind == "sitemapindex":
            counts["nested_index"] += 1
            continue
        counts["fetched"] += 1
        dropped += child.entries_dropped
        if child.malformed:
            notes.append(f"{ref.url}: {child.malformed}")
        for entry in child.entries:
            if entry.link is None:
                unlinked.append(entry)
            elif entry.link not in merged or _newer(entry, merged[entry.link]):
                merged[entry.link] = entry
    index.sitemap_counts = {k: v for k, v in sorted(counts.items()) if v}
    log.info("feed %s: sitemap index followed: %s", feed.name, index.sitemap_counts)

    if failures and not counts["fetched"] and not counts["nested_index"]:
        first = failures[0]
        error = FetchError(
            first.reason,
            f"{feed.url}: all {len(failures)} child sitemap(s) failed; first: {first.detail}",
            status=first.status,
            transient=any(f.transient for f in failures),
        )
        waits = [w for f in failures if (w := f.retry_after) is not None]
        if waits:  # a child's Retry-After holds for the source
            error.retry_after = max(waits)
        index.status, index.error, index.entries = "failed", error, []
        return index

    entries, cut = newest_first([*merged.values(), *unlinked], entry_cap(feed))
    index.entries = entries
    index.entries_dropped = dropped + cut
    index.malformed = "; ".join(notes)[:2000] or None
    if any(f.transient for f in failures) or any(ref.lastmod is None for ref in chosen):
        index.etag = index.last_modified = None
    return index


def _newer(entry: FeedEntry, other: FeedEntry) -> bool:
    undated = datetime.min.replace(tzinfo=UTC)
    mine, theirs = (e.updated or e.published or undated for e in (entry, other))
    return mine > theirs
