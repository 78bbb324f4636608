"""The daily latest-news index: one list per UTC day, in four renderings.

A story belongs to day D when its publication time (UTC) falls on D, or its fetch time
when page and feed gave no date. Syndicated copies (same content hash, or SimHash within
NEAR_DUPLICATE_BITS) appear once, with the other sources listed. Rebuilding is
deterministic: nothing in the output depends on when it was built.
"""

from __future__ import annotations

import html
import io
import json
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from ingest import schema
from ingest.lake import ARTICLES, Lake, open_table, write_parquet
from ingest.lake.tables import read_data_file
from ingest.store import Store
from ingest.text import xml_safe

log = logging.getLogger(__name__)

NEAR_DUPLICATE_BITS = 3
SUMMARY_CHARS = 300
STATE = "_state/index.json"
NAMES = ("latest-news.parquet", "latest-news.json", "latest-news.xml", "latest-news.html")
_COLUMNS = [
    "article_id", "canonical_url", "source", "title", "published_at", "published_at_source",
    "fetched_at", "language", "summary", "text", "content_sha256", "simhash",
]  # fmt: skip


@dataclass(frozen=True)
class IndexResult:
    day: date
    stories: int
    copies_merged: int
    keys: tuple[str, ...]


def index_prefix(day: date) -> str:
    return f"index/date={day.isoformat()}/"


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
    """Committed articles that belong to `day` (publication time, else fetch time, UTC)."""
    start = datetime.combine(day, time(), UTC)
    end = start + timedelta(days=1)
    table = open_table(store, ARTICLES)
    tables = []
    for path in _candidate_files(table, start, end) if table is not None else []:
        rows = read_data_file(store, ARTICLES, path, _COLUMNS)
        when = pc.coalesce(rows["published_at"], rows["fetched_at"])
        mask = pc.and_(pc.greater_equal(when, pa.scalar(start)), pc.less(when, pa.scalar(end)))
        tables.append(rows.filter(mask))
    if not tables:
        return schema.article().arrow.empty_table().select(_COLUMNS)
    return pa.concat_tables(tables)


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


def build_entries(table: pa.Table) -> list[dict[str, Any]]:
    """Rows of the index schema, newest first, one per story."""
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
                "summary": shorten(shown["summary"] or _lead(shown["title"], shown["text"])),
                "article_id": shown["article_id"],
                "other_sources": sorted({r["source"] for r in others} - {shown["source"]}),
                "other_article_ids": sorted(r["article_id"] for r in others),
                "schema_version": schema.index().version,
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


def render_json_feed(day: date, entries: list[dict[str, Any]]) -> bytes:
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1); our extras live under _newsflow."""
    items = []
    for e in entries:
        item: dict[str, Any] = {
            "id": e["article_id"],
            "url": e["url"],
            "title": e["title"] or e["url"],
            "date_published": _iso(e["published_at"]),
            "authors": [{"name": e["source"]}],
            "_newsflow": {"rank": e["rank"], "source": e["source"],
                          "other_sources": e["other_sources"]},
        }  # fmt: skip
        if e["summary"]:
            item["summary"] = e["summary"]
            item["content_text"] = e["summary"]
        else:
            item["content_text"] = e["title"] or e["url"]
        if e["language"]:
            item["language"] = e["language"]
        items.append(item)
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": f"Latest news — {day.isoformat()}",
        "description": "Stories published on this day (UTC), newest first.",
        "items": items,
    }
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")


ATOM = "http://www.w3.org/2005/Atom"


def render_atom(day: date, entries: list[dict[str, Any]]) -> bytes:
    """Atom 1.0; `updated` is the newest story's time, so rebuilding gives the same bytes.

    Every text goes through xml_safe: rows committed before text was cleaned on the way
    in may still hold control characters, and one would make the whole file invalid."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "id", f"urn:newsflow:index:{day.isoformat()}")
    _text(feed, "title", f"Latest news — {day.isoformat()}")
    newest = entries[0]["published_at"] if entries else datetime.combine(day, time(), UTC)
    _text(feed, "updated", _iso(newest))
    _text(ET.SubElement(feed, f"{{{ATOM}}}author"), "name", "newsflow")
    for e in entries:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
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


_CSS = """body{font:16px/1.45 Georgia,serif;max-width:46rem;margin:2rem auto;padding:0 1rem;
color:#1a1a1a}h1{font:700 1.6rem Helvetica,Arial,sans-serif;border-bottom:3px solid #1a1a1a;
padding-bottom:.4rem}ol{list-style:none;padding:0}li{padding:.8rem 0;border-bottom:1px solid
#ddd}li a{font:700 1.1rem Helvetica,Arial,sans-serif;color:#0b3d91;text-decoration:none}
li a:hover{text-decoration:underline}.meta{color:#666;font-size:.85rem;margin:.2rem 0}
.also{color:#666;font-size:.8rem}p{margin:.3rem 0}.empty{color:#666}"""


def _safe_href(url: str) -> str | None:
    return url if url.lower().startswith(("http://", "https://")) else None


def render_html(day: date, entries: list[dict[str, Any]]) -> bytes:
    """A self-contained page; every value is escaped, links only for http(s) URLs."""

    def esc(value: str) -> str:
        return html.escape(xml_safe(value))

    items = []
    for e in entries:
        title = esc(e["title"] or e["url"])
        href = _safe_href(e["url"])
        headline = f'<a href="{esc(href)}">{title}</a>' if href else title
        when = e["published_at"].astimezone(UTC)
        meta = (
            f'<p class="meta">{esc(e["source"])} · <time datetime="{_iso(when)}">'
            f"{when.strftime('%d %b %Y, %H:%M')} UTC</time></p>"
        )
        summary = f"<p>{esc(e['summary'])}</p>" if e["summary"] else ""
        also = (
            f'<p class="also">Also from: {esc(", ".join(e["other_sources"]))}</p>'
            if e["other_sources"]
            else ""
        )
        items.append(f"<li>{headline}{meta}{summary}{also}</li>")
    body = (
        f"<ol>{''.join(items)}</ol>" if items else '<p class="empty">No stories for this day.</p>'
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Latest news — {day.isoformat()}</title><style>{_CSS}</style></head>"
        f'<body><h1>Latest news</h1><p class="meta">{day.strftime("%d %B %Y")} · '
        f"{len(entries)} stories, newest first</p>{body}</body></html>\n"
    )
    return page.encode("utf-8")


# ---------------------------------------------------------------------------- writing


def build_day(store: Store, day: date) -> IndexResult:
    """Rebuild one day's index; each object is replaced atomically, readers never see a
    half-written file."""
    table = stories_of_day(store, day)
    entries = build_entries(table)
    prefix = index_prefix(day)
    outputs = {
        NAMES[0]: render_parquet(entries),
        NAMES[1]: render_json_feed(day, entries),
        NAMES[2]: render_atom(day, entries),
        NAMES[3]: render_html(day, entries),
    }
    for name, data in outputs.items():
        store.put_bytes(prefix + name, data)
    merged = table.num_rows - len(entries)
    log.info("index %s: %d stories (%d copies merged)", day, len(entries), merged)
    return IndexResult(day, len(entries), merged, tuple(prefix + n for n in outputs))


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
    """Rebuild the given days, or the days touched since the last build."""
    store.check()
    Lake(store).recover()
    explicit = days is not None
    head = -1
    if not explicit:
        days, head = pending_days(store)
    results = [build_day(store, day) for day in days or []]
    if not explicit:
        store.put_bytes(STATE, json.dumps({"version": head}).encode())
    return results
