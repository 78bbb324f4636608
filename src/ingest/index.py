"""The daily latest-news index: one list per UTC day, in four renderings, as a small site.

A story belongs to day D when its publication time (UTC) falls on D, or its fetch time
when page and feed gave no date. Syndicated copies (same content hash, or SimHash within
NEAR_DUPLICATE_BITS) appear once, with the other sources listed. Rebuilding is
deterministic: nothing in the output depends on when it was built.

The day pages form a browsable site: `index/index.html` lists the days, each day page links
the previous and next day. Both come from one small manifest, `index/days.json` (day ->
story count), so a build never lists `index/` or reads other days' data.

A big day stays bounded: its page shows the newest PAGE_STORIES stories and links further
pages (`latest-news-2.html`, …) of at most PAGE_STORIES each; its Atom and JSON feeds hold
the newest FEED_ITEMS; only the Parquet file holds every story. Rows are read one batch at
a time and their text is dropped once the lead is taken from it.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
import xml.etree.ElementTree as ET
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from ingest import schema
from ingest.lake import ARTICLES, Lake, open_table, write_parquet
from ingest.lake.tables import iter_data_file
from ingest.store import Store
from ingest.text import xml_safe

log = logging.getLogger(__name__)

NEAR_DUPLICATE_BITS = 3
SUMMARY_CHARS = 300
STATE = "_state/index.json"
NAMES = ("latest-news.parquet", "latest-news.json", "latest-news.xml", "latest-news.html")
MANIFEST = "index/days.json"  # day -> story count of every day with an index
HOME = "index/index.html"  # the list of days, rendered from the manifest alone
# A day page holds at most this many stories, newest first; a bigger day continues on
# latest-news-2.html, -3, … (a 10,000-story day on one page was 8 MB of HTML).
PAGE_STORIES = 500
FEED_ITEMS = PAGE_STORIES  # the day's Atom and JSON feeds: its newest stories, as page 1
READ_BATCH_ROWS = 2_000  # rows decoded at a time when reading a day's data files
_COLUMNS = [
    "article_id", "canonical_url", "source", "title", "published_at", "published_at_source",
    "fetched_at", "language", "summary", "text", "content_sha256", "simhash", "site_name",
    "authors", "tags", "categories",
]  # fmt: skip


@dataclass(frozen=True)
class IndexResult:
    day: date
    stories: int
    copies_merged: int
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Nav:
    """The neighbouring days that have an index: `prev` older, `next` newer."""

    prev: date | None = None
    next: date | None = None


def index_prefix(day: date) -> str:
    return f"index/date={day.isoformat()}/"


def neighbours(days: Iterable[date], day: date) -> Nav:
    """The closest indexed days before and after `day` (which need not be indexed)."""
    ordered = sorted(set(days) - {day})
    at = bisect_left(ordered, day)
    return Nav(ordered[at - 1] if at else None, ordered[at] if at < len(ordered) else None)


# ---------------------------------------------------------------------------- reading


def _candidate_files(table: DeltaTable, start: datetime, end: datetime) -> list[str]:
    """Data files that may hold a story of [start, end), chosen from the table's per-file
    statistics: reading a day costs that day's files, not the whole table."""
    adds = pa.table(table.get_add_actions(flatten=True))
    if adds.num_rows == 0:
        return []
    names = set(adds.column_names)

    def overlaps(column: str) -> pa.ChunkedArray:
        if f"min.{column}" not in names or f"max.{column}" not in names:
            return pa.chunked_array([pa.array([True] * adds.num_rows)])
        low, high = adds[f"min.{column}"], adds[f"max.{column}"]
        inside = pc.and_(pc.less(low, pa.scalar(end)), pc.greater_equal(high, pa.scalar(start)))
        return pc.fill_null(inside, True)  # no statistics: the file must be read

    undated = adds["null_count.published_at"] if "null_count.published_at" in names else None
    maybe_undated = pc.fill_null(pc.greater(undated, 0), True) if undated is not None else True
    wanted = pc.or_(overlaps("published_at"), pc.and_(maybe_undated, overlaps("fetched_at")))
    return adds.filter(wanted)["path"].to_pylist()


def stories_of_day(store: Store, day: date) -> pa.Table:
    """Committed articles that belong to `day` (publication time, else fetch time, UTC),
    with `summary` already the index's (see `_index_summary`) and without `text`: the text
    is most of a row's bytes and the index needs only its lead, so each file is read a
    batch at a time and the text of a batch dropped before the next is decoded."""
    start = datetime.combine(day, time(), UTC)
    end = start + timedelta(days=1)
    table = open_table(store, ARTICLES)
    tables = []
    for path in _candidate_files(table, start, end) if table is not None else []:
        for rows in iter_data_file(store, ARTICLES, path, _COLUMNS, READ_BATCH_ROWS):
            when = pc.coalesce(rows["published_at"], rows["fetched_at"])
            inside = pc.and_(
                pc.greater_equal(when, pa.scalar(start)), pc.less(when, pa.scalar(end))
            )
            rows = rows.filter(inside)
            if rows.num_rows:
                tables.append(_index_summary(rows))
    if not tables:
        return _index_summary(schema.article().arrow.empty_table().select(_COLUMNS))
    return pa.concat_tables(tables)


def _index_summary(rows: pa.Table) -> pa.Table:
    """`summary` replaced by what the index shows (the article's summary, else the lead of
    its text, shortened) and `text` dropped."""
    summaries = [
        shorten(summary or _lead(title, text or ""))
        for summary, title, text in zip(
            rows["summary"].to_pylist(),
            rows["title"].to_pylist(),
            rows["text"].to_pylist(),
            strict=True,
        )
    ]
    at = rows.schema.get_field_index("summary")
    rows = rows.set_column(at, rows.schema.field(at), pa.array(summaries, pa.string()))
    return rows.drop_columns(["text"])


# ---------------------------------------------------------------------------- building


def _lead(title: str | None, text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and title and lines[0] == title.strip():
        lines = lines[1:]
    return " ".join(lines)


def shorten(text: str | None, limit: int = SUMMARY_CHARS) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:") + "…"


def _clusters(rows: list[dict[str, Any]]) -> list[list[int]]:
    """Union-find over exact (content hash) and near (SimHash) duplicates."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    by_hash: dict[str, int] = {}
    for i, row in enumerate(rows):
        first = by_hash.setdefault(row["content_sha256"], i)
        if first != i:
            union(first, i)
    hashes = np.array([row["simhash"] for row in rows], dtype=np.int64).view(np.uint64)
    for i in range(len(rows) - 1):
        distance = np.bitwise_count(hashes[i + 1 :] ^ hashes[i])
        for j in np.nonzero(distance <= NEAR_DUPLICATE_BITS)[0]:
            union(i, i + 1 + int(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(rows)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def publisher(row: dict[str, Any]) -> str:
    """Who published it, for readers: the site's own name when the page gave one, else the
    feed's name from the feeds file, else the URL's host."""
    for value in (row.get("site_name"), row.get("source")):
        if value and value.strip():
            return " ".join(value.split())
    url = row.get("canonical_url") or row.get("url") or ""
    return urlsplit(url).hostname or url


def _unique(values: Iterable[str | None]) -> list[str]:
    """Non-blank values, whitespace collapsed, first occurrence kept (order is the input's)."""
    seen: dict[str, None] = {}
    for value in values:
        if value and value.strip():
            seen.setdefault(" ".join(value.split()), None)
    return list(seen)


def build_entries(table: pa.Table) -> list[dict[str, Any]]:
    """Rows of the index schema, newest first, one per story (from `stories_of_day`)."""
    rows = table.to_pylist()
    for row in rows:
        row["when"] = row["published_at"] or row["fetched_at"]
    entries = []
    for members in _clusters(rows):
        copies = sorted((rows[i] for i in members), key=lambda r: (r["when"], r["article_id"]))
        shown, others = copies[0], copies[1:]
        entries.append(
            {
                "published_at": shown["when"],
                "published_at_source": shown["published_at_source"] or "fetched",
                "title": shown["title"],
                "source": shown["source"],
                "url": shown["canonical_url"],
                "language": shown["language"],
                "summary": shown["summary"],
                "article_id": shown["article_id"],
                "other_sources": sorted({r["source"] for r in others} - {shown["source"]}),
                "other_article_ids": sorted(r["article_id"] for r in others),
                "schema_version": schema.index().version,
                # for the renderings only (not in the Parquet schema):
                "site_name": publisher(shown),
                "authors": _unique(shown.get("authors") or []),
                "tags": _unique([*(shown.get("tags") or []), *(shown.get("categories") or [])]),
            }
        )
    entries.sort(key=lambda e: (-e["published_at"].timestamp(), e["article_id"]))
    for rank, entry in enumerate(entries, start=1):
        entry["rank"] = rank
    return entries


# ---------------------------------------------------------------------------- rendering


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def render_parquet(entries: list[dict[str, Any]]) -> bytes:
    index_schema = schema.index().arrow
    table = pa.Table.from_pylist(
        [{name: e[name] for name in index_schema.names} for e in entries], schema=index_schema
    )
    buf = io.BytesIO()
    write_parquet(table, buf)
    return buf.getvalue()


_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


def language_tag(value: str | None) -> str:
    """A BCP 47 tag for `lang`, or "" (unknown): a wrong tag would make screen readers and
    hyphenation treat the text as another language, an unknown one only loses a hint."""
    tag = (value or "").strip().replace("_", "-")
    return tag if _LANGUAGE_TAG.fullmatch(tag) else ""


def _safe_href(url: str) -> str | None:
    return url if url.lower().startswith(("http://", "https://")) else None


def render_json_feed(day: date, entries: list[dict[str, Any]]) -> bytes:
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1); our extras live under _newsflow.

    home_page_url and feed_url are relative (the day's page and this file, next to it): the
    store knows no public base URL, and a reader resolves them against where it got the
    feed. Item URLs are given only for http(s), like the links of the HTML page. At most
    FEED_ITEMS items, the newest: a feed reader wants the latest, the Parquet file has all."""
    items = []
    for e in entries[:FEED_ITEMS]:
        item: dict[str, Any] = {"id": e["article_id"]}
        if _safe_href(e["url"]):
            item["url"] = e["url"]
        item["title"] = e["title"] or e["url"]
        if e["summary"]:
            item["summary"] = e["summary"]
            item["content_text"] = e["summary"]
        else:
            item["content_text"] = e["title"] or e["url"]
        item["date_published"] = _iso(e["published_at"])
        item["authors"] = [{"name": name} for name in e["authors"] or [e["site_name"]]]
        if language_tag(e["language"]):
            item["language"] = language_tag(e["language"])
        if e["tags"]:
            item["tags"] = e["tags"]
        item["_newsflow"] = {
            "rank": e["rank"],
            "source": e["source"],
            "site_name": e["site_name"],
            "other_sources": e["other_sources"],
        }
        items.append(item)
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": f"Latest news — {day.isoformat()}",
        "home_page_url": NAMES[3],
        "feed_url": NAMES[1],
        "description": _feed_description(len(entries)),
        "authors": [{"name": "newsflow"}],
        "items": items,
    }
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")


def _feed_description(stories: int) -> str:
    if stories <= FEED_ITEMS:
        return "Stories published on this day (UTC), newest first."
    return (
        f"The newest {FEED_ITEMS} of the {stories} stories published on this day (UTC), "
        "newest first; the day's pages and Parquet file hold them all."
    )


ATOM = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def render_atom(day: date, entries: list[dict[str, Any]]) -> bytes:
    """Atom 1.0; `updated` is the newest story's time, so rebuilding gives the same bytes.

    Every text goes through xml_safe: rows committed before text was cleaned on the way
    in may still hold control characters, and one would make the whole file invalid.
    At most FEED_ITEMS entries, the newest (a subtitle says so when the day has more)."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "id", f"urn:newsflow:index:{day.isoformat()}")
    _text(feed, "title", f"Latest news — {day.isoformat()}")
    if len(entries) > FEED_ITEMS:
        _text(feed, "subtitle", _feed_description(len(entries)))
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=NAMES[3])
    newest = entries[0]["published_at"] if entries else datetime.combine(day, time(), UTC)
    _text(feed, "updated", _iso(newest))
    _text(ET.SubElement(feed, f"{{{ATOM}}}author"), "name", "newsflow")
    for e in entries[:FEED_ITEMS]:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        if language_tag(e["language"]):
            entry.set(XML_LANG, language_tag(e["language"]))
        _text(entry, "id", f"urn:newsflow:article:{e['article_id']}")
        _text(entry, "title", e["title"] or e["url"])
        ET.SubElement(entry, f"{{{ATOM}}}link", rel="alternate", href=xml_safe(e["url"]))
        _text(entry, "published", _iso(e["published_at"]))
        _text(entry, "updated", _iso(e["published_at"]))
        _text(ET.SubElement(entry, f"{{{ATOM}}}author"), "name", e["source"])
        if e["summary"]:
            _text(entry, "summary", e["summary"])
        for other in e["other_sources"]:
            _text(ET.SubElement(entry, f"{{{ATOM}}}contributor"), "name", other)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def _text(parent: ET.Element, tag: str, value: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}")
    element.text = xml_safe(value)
    return element


# The pages run no script and load nothing: a stray <script> or <img onerror> that escaping
# ever missed would still not run. base-uri/form-action are not covered by default-src.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "base-uri 'none'; form-action 'none'"
)

_CSS = """:root{--fg:#1a1a1a;--bg:#fff;--muted:#5c5c5c;--link:#0b3d91;--rule:#ddd}
@media (prefers-color-scheme:dark){:root{--fg:#e6e6e6;--bg:#141414;--muted:#a3a3a3;
--link:#8ab4f8;--rule:#333}}
*{box-sizing:border-box}
body{font:16px/1.45 Georgia,serif;max-width:46rem;margin:0 auto;padding:1rem 1rem 2rem;
color:var(--fg);background:var(--bg);overflow-wrap:break-word}
h1{font:700 1.6rem/1.2 Helvetica,Arial,sans-serif;border-bottom:3px solid var(--fg);
padding-bottom:.4rem;margin:.5rem 0}
h1 small{display:block;font-size:1rem;font-weight:400;color:var(--muted);margin-top:.2rem}
ol{list-style:none;padding:0;margin:0}li{padding:.8rem 0;border-bottom:1px solid var(--rule)}
a{color:var(--link)}li>a{font:700 1.1rem/1.3 Helvetica,Arial,sans-serif;text-decoration:none}
li>a:hover{text-decoration:underline}p{margin:.3rem 0}
.meta,.also,.empty,footer p{color:var(--muted);font-size:.85rem}
nav{display:flex;gap:.5rem;margin:.6rem 0;font:.95rem Helvetica,Arial,sans-serif}
nav>*{flex:1 1 0;padding:.6rem 0}nav .all{text-align:center}nav .next{text-align:right}
.count{color:var(--muted);white-space:nowrap}
@media (max-width:30rem){body{font-size:15px;padding:.5rem .75rem 1.5rem}
h1{font-size:1.35rem}nav{font-size:.9rem}}"""


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _long_day(day: date) -> str:
    """'Thursday 18 December 2025' in English whatever the locale: strftime's names follow
    LC_TIME, and the same rows must give the same bytes on every machine."""
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def _short_day(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1][:3]} {day.year}"


def _count(stories: int) -> str:
    return f"{stories} story" if stories == 1 else f"{stories} stories"


def _esc(value: str) -> str:
    return html.escape(xml_safe(value))


def _page(title: str, head: str, body: str) -> bytes:
    """The frame every page shares: self-contained, readable on a phone, no script."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{title}</title>\n{head}<style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    ).encode()


def _day_page_href(day: date) -> str:
    return f"date={day.isoformat()}/{NAMES[3]}"


def page_count(stories: int) -> int:
    """How many pages a day of `stories` stories has (one, even when empty)."""
    return max(1, -(-stories // PAGE_STORIES))


def page_name(number: int) -> str:
    """The file of a day's page `number`: the first is the day page every link points at."""
    return NAMES[3] if number == 1 else f"latest-news-{number}.html"


def _pages_html(number: int, pages: int) -> str:
    """Links to the day's newer and older pages; it depends on nothing but the day."""
    newer = (
        f'<a class="prev" rel="prev" href="{page_name(number - 1)}">← Newer stories</a>'
        if number > 1
        else '<span class="prev"></span>'
    )
    older = (
        f'<a class="next" rel="next" href="{page_name(number + 1)}">Older stories →</a>'
        if number < pages
        else '<span class="next"></span>'
    )
    return (
        f'<nav class="pages" aria-label="Pages of this day">{newer}'
        f'<span class="all">Page {number} of {pages}</span>{older}</nav>'
    )


# Escaped content never holds a raw "<", so this only ever matches the nav we wrote.
_NAV = re.compile(r'<nav class="days".*?</nav>', re.S)


def _nav_html(nav: Nav) -> str:
    """Links to the neighbouring days and the day list: the only part of a day page that
    depends on other days."""
    older = (
        f'<a class="prev" rel="prev" href="../{_day_page_href(nav.prev)}">← '
        f'<time datetime="{nav.prev.isoformat()}">{_short_day(nav.prev)}</time></a>'
        if nav.prev
        else '<span class="prev"></span>'
    )
    newer = (
        f'<a class="next" rel="next" href="../{_day_page_href(nav.next)}">'
        f'<time datetime="{nav.next.isoformat()}">{_short_day(nav.next)}</time> →</a>'
        if nav.next
        else '<span class="next"></span>'
    )
    return (
        f'<nav class="days" aria-label="Other days">{older}'
        f'<a class="all" href="../index.html">All days</a>{newer}</nav>'
    )


def render_html(
    day: date, entries: list[dict[str, Any]], nav: Nav | None = None, page: int = 1
) -> bytes:
    """Page `page` of the day (`entries` is the whole day): a self-contained page; every
    value is escaped, links only for http(s) URLs. Each story carries its language (`lang`,
    "" when unknown) and its publisher's name. A day of up to PAGE_STORIES stories is one
    page with no page links; a bigger one has pages of PAGE_STORIES linked newer/older,
    and only the first carries the links to other days (so a new day relinks one page)."""
    pages = page_count(len(entries))
    if not 1 <= page <= pages:
        raise ValueError(f"page {page} of a day of {pages} pages")
    first = (page - 1) * PAGE_STORIES
    shown = entries[first : first + PAGE_STORIES]
    items = [_story_html(e) for e in shown]
    stories = (
        '<ol class="stories">\n' + "\n".join(items) + "\n</ol>"
        if items
        else '<p class="empty">No stories for this day.</p>'
    )
    head = (
        f'<link rel="alternate" type="application/atom+xml" title="Atom feed" href="{NAMES[2]}">\n'
        f'<link rel="alternate" type="application/feed+json" title="JSON Feed" href="{NAMES[1]}">\n'
    )
    count = f"{_count(len(entries))}, newest first (UTC)"
    title = f"Latest news — {day.isoformat()}"
    if pages > 1:
        count += f"; stories {first + 1}–{first + len(shown)} on this page"
        pager = _pages_html(page, pages)
        stories = f"{pager}\n{stories}\n{pager}"
    if page > 1:
        title += f" (page {page} of {pages})"
    links = _nav_html(nav or Nav()) if page == 1 else ""
    back = (
        ""
        if page == 1
        else f'<p><a href="{NAMES[3]}">This day\'s first page</a> · '
        '<a href="../index.html">All days</a></p>\n'
    )
    body = (
        f'<header><h1>Latest news<small><time datetime="{day.isoformat()}">'
        f"{_long_day(day)}</time></small></h1>\n"
        f'<p class="meta">{count}</p>\n{links}</header>\n'
        f"<main>\n{stories}\n</main>\n<footer>{links}\n{back}"
        f'<p>This day as <a type="application/atom+xml" href="{NAMES[2]}">Atom</a> · '
        f'<a type="application/feed+json" href="{NAMES[1]}">JSON Feed</a> · '
        f'<a href="{NAMES[0]}">Parquet</a></p></footer>'
    )
    return _page(title, head, body)


def _story_html(e: dict[str, Any]) -> str:
    """One story of a day page: headline, publisher and time, summary, other sources."""
    title = _esc(e["title"] or e["url"])
    href = _safe_href(e["url"])
    headline = f'<a href="{_esc(href)}" dir="auto">{title}</a>' if href else title
    when = e["published_at"].astimezone(UTC)
    meta = (
        f'<p class="meta"><span class="site" dir="auto">{_esc(e["site_name"])}</span> · '
        f'<time lang="en" datetime="{_iso(when)}">'
        f"{_short_day(when.date())}, {when:%H:%M} UTC</time></p>"
    )
    summary = f'<p dir="auto">{_esc(e["summary"])}</p>' if e["summary"] else ""
    also = (
        f'<p class="also"><span lang="en">Also from:</span> '
        f"{_esc(', '.join(e['other_sources']))}</p>"
        if e["other_sources"]
        else ""
    )
    lang = _esc(language_tag(e["language"]))
    return f'<li lang="{lang}">{headline}{meta}{summary}{also}</li>'


def relink(page: bytes, nav: Nav) -> bytes | None:
    """The day page with its day links replaced by `nav`, or None when it holds no links to
    replace (a page from before they existed, or not one of ours): rebuild the day then."""
    try:
        text = page.decode("utf-8")
    except UnicodeDecodeError:
        return None
    patched, found = _NAV.subn(lambda _: _nav_html(nav), text)
    return patched.encode("utf-8") if found == 2 else None


def render_home(days: dict[date, int]) -> bytes:
    """`index/index.html`: every indexed day, newest first, with its story count."""
    rows = [
        f'<li><a href="{_day_page_href(day)}"><time datetime="{day.isoformat()}">'
        f"{_long_day(day)}</time></a> · "
        f'<span class="count">{_count(days[day])}</span></li>'
        for day in sorted(days, reverse=True)
    ]
    listing = (
        '<ol class="day-list">\n' + "\n".join(rows) + "\n</ol>"
        if rows
        else '<p class="empty">No day has an index yet.</p>'
    )
    body = (
        f"<header><h1>Latest news<small>{len(days)} {'day' if len(days) == 1 else 'days'}, "
        "newest first (UTC)</small></h1></header>\n"
        f"<main>\n{listing}\n</main>\n<footer><p>Each day's page links its Atom feed, "
        "JSON Feed and Parquet file.</p></footer>"
    )
    return _page("Latest news — all days", "", body)


# ---------------------------------------------------------------------------- writing


def read_manifest(store: Store) -> dict[date, int]:
    """Day -> story count of every indexed day (`index/days.json`). An unreadable manifest
    (edited by hand, say) is logged and started afresh rather than stopping every build:
    it only lists what the day pages hold, and rebuilding a day lists it again."""
    raw = store.get_bytes(MANIFEST)
    if raw is None:
        return {}
    try:
        days = {date.fromisoformat(k): v for k, v in json.loads(raw)["days"].items()}
        if not all(type(v) is int and v >= 0 for v in days.values()):
            raise ValueError("story counts must be non-negative integers")
        return days
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("index: %s is unreadable (%s); the day list restarts", MANIFEST, exc)
        return {}


def render_manifest(days: dict[date, int]) -> bytes:
    doc = {"schema_version": 1, "days": {d.isoformat(): days[d] for d in sorted(days)}}
    return json.dumps(doc, indent=1).encode("utf-8") + b"\n"


def build_day(store: Store, day: date, nav: Nav | None = None) -> IndexResult:
    """Rebuild one day's index; each object is replaced atomically, readers never see a
    half-written file. `build` keeps the day list and the neighbours' links in step and
    drops pages a smaller rebuild no longer has (`drop_pages`).

    Each rendering is written as soon as it is made, so memory holds the day's entries and
    one output at a time. Further pages are written before the first, oldest first: the
    first page, the one other pages link, only links pages that already exist."""
    table = stories_of_day(store, day)
    entries = build_entries(table)
    merged = table.num_rows - len(entries)
    del table
    prefix = index_prefix(day)
    pages = page_count(len(entries))
    store.put_bytes(prefix + NAMES[0], render_parquet(entries))
    store.put_bytes(prefix + NAMES[1], render_json_feed(day, entries))
    store.put_bytes(prefix + NAMES[2], render_atom(day, entries))
    for number in range(pages, 0, -1):
        store.put_bytes(prefix + page_name(number), render_html(day, entries, nav, number))
    log.info("index %s: %d stories (%d copies merged)", day, len(entries), merged)
    keys = [prefix + n for n in NAMES] + [prefix + page_name(n) for n in range(2, pages + 1)]
    return IndexResult(day, len(entries), merged, tuple(keys))


def drop_pages(store: Store, day: date, had: int | None, has: int) -> None:
    """Delete the day's pages beyond the last one it has now, when it had more stories
    before (`had`, from the manifest): nothing links them any more. Oldest first, so what
    is left while this runs is still a run of pages from the first."""
    for number in range(page_count(had or 0), page_count(has), -1):
        store.delete(index_prefix(day) + page_name(number))


def build_site(store: Store, days: list[date]) -> list[IndexResult]:
    """Rebuild `days`, then the links around them, the manifest and the day list.

    A new day changes the "next" link of the day before it and the "previous" link of the
    day after it. Those neighbours are not rebuilt (that would read their articles again):
    only their nav is re-rendered in place. The page is our own output, its nav sits in
    <nav class="days"> elements that escaped content cannot imitate, and the nav depends on
    nothing but the neighbouring days, so a relinked page has the very bytes a rebuild
    would give. A page with no nav to replace (missing, or older than the nav) is rebuilt.

    The order keeps every relative link resolvable at every moment, even when a build stops
    halfway: a day page is written linking only to days whose pages exist, neighbours are
    relinked once the pages they will point to exist, and the manifest and day list come
    last. A big day's further pages link only pages of the same day, never other days, so a
    new neighbour relinks the first page alone; they are written before the first page and
    dropped after it once a rebuild no longer has them, so every page reachable from the
    first has its links resolving too.

    Builds run one at a time (the DAG allows one active run): the store has no
    compare-and-swap for overwrites, so two at once could each drop the other's new day
    from the manifest; rebuilding that day lists it again."""
    if not days:
        return []
    manifest = read_manifest(store)
    written: dict[date, Nav] = {}
    results = []
    for day in days:
        nav = neighbours([*manifest, day], day)
        result = build_day(store, day, nav)
        drop_pages(store, day, manifest.get(day), result.stories)
        manifest[day] = result.stories
        written[day] = nav
        results.append(result)
    around = {d for day in written for d in astuple(neighbours(manifest, day)) if d}
    for day in sorted(set(written) | around):
        nav = neighbours(manifest, day)
        if written.get(day) == nav:
            continue
        key = index_prefix(day) + NAMES[3]
        page = store.get_bytes(key)
        patched = relink(page, nav) if page is not None else None
        if patched is None:
            log.info("index %s: page has no day links to update; rebuilding the day", day)
            stories = build_day(store, day, nav).stories
            drop_pages(store, day, manifest.get(day), stories)
            manifest[day] = stories
        elif patched != page:
            store.put_bytes(key, patched)
    store.put_bytes(MANIFEST, render_manifest(manifest))
    store.put_bytes(HOME, render_home(manifest))
    return results


def pending_days(store: Store, today: date | None = None) -> tuple[list[date], int]:
    """Days touched by commits since the last index build (else today), and the table
    version to record once they are built. Reads only the commits since that build."""
    lake = Lake(store)
    state = json.loads(store.get_bytes(STATE) or b"{}")
    last = int(state.get("version", -1))
    head = lake.articles().version()
    days: set[date] = set()
    for version in range(last + 1, head + 1):
        touched = json.loads(lake.commit_metadata(version).get("newsflow.index_dates", "[]"))
        days.update(date.fromisoformat(d) for d in touched)
    if not days:
        days = {today or datetime.now(UTC).date()}
    return sorted(days), head


def build(store: Store, days: list[date] | None = None) -> list[IndexResult]:
    """Rebuild the given days, or the days touched since the last build, and the site
    around them (day list, neighbours' links)."""
    store.check()
    Lake(store).recover()
    explicit = days is not None
    head = -1
    if not explicit:
        days, head = pending_days(store)
    results = build_site(store, list(days or []))
    if not explicit:
        store.put_bytes(STATE, json.dumps({"version": head}).encode())
    return results
