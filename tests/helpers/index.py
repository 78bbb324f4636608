"""Articles committed for a day, and checks of the index site built from them (test_index,
in tests/integration and tests/system)."""

from __future__ import annotations

import posixpath
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

from ingest import ids, index, schema
from ingest.extract import fingerprints
from ingest.lake import CommitRequest, Lake, PartWriter
from ingest.report import RunReport
from ingest.store import Store

DAY = date(2025, 12, 18)
BODY = " ".join(f"Sentence {i} about the harbour strike and the wage talks." for i in range(60))


def article(
    n: int,
    *,
    source: str = "wire",
    text: str | None = None,
    title: str | None = None,
    published: datetime | None = None,
    fetched: datetime | None = None,
    summary: str | None = None,
) -> dict:
    url = f"https://{source}.example/story/{n}"
    text = text if text is not None else f"Story {n}\n" + BODY.replace("harbour", f"topic{n}")
    sha, sim = fingerprints(text)
    return {
        "article_id": ids.article_id(url), "url": url, "final_url": url, "canonical_url": url,
        "source": source, "feed_url": f"https://{source}.example/feed", "authors": [],
        "title": title or f"Story {n}", "published_at": published,
        "published_at_source": "page" if published else None, "updated_at": None,
        "fetched_at": fetched or datetime(2025, 12, 18, 23, 0, tzinfo=UTC),
        "language": "en", "site_name": None, "summary": summary, "text": text,
        "word_count": len(text.split()), "categories": [], "tags": [], "image_url": None,
        "content_sha256": sha, "simhash": sim, "http_status": 200, "run_id": "r",
        "schema_version": 1,
    }  # fmt: skip


def commit(store: Store, run_id: str, rows: list[dict], ingest_day: date) -> None:
    key = ids.run_key(run_id)
    writer = PartWriter(store, schema.article(), "articles", key, ingest_day.isoformat(), 100)
    for row in rows:
        writer.add(row)
    from ingest.normalize import index_date

    Lake(store).commit(CommitRequest(
        run_id=run_id, run_key=key, parts=writer.close(),
        article_ids=[r["article_id"] for r in rows], feed_states={},
        report=RunReport(run_id, store.uri, f"{ingest_day}T00:00:00+00:00").to_dict(),
        index_dates=sorted({index_date(r).isoformat() for r in rows}),
    ))  # fmt: skip


def at(hour: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


D = timedelta(days=1)
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{index.CSP}">'
VIEWPORT_META = '<meta name="viewport" content="width=device-width, initial-scale=1">'


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each `.site` span."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.sites: list[str] = []
        self._in_site = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_site = tag == "span" and dict(attrs).get("class") == "site"

    def handle_data(self, data: str) -> None:
        if self._in_site:
            self.sites.append(data)
            self._in_site = False


def references(page: str) -> list[str]:
    """Every URL the page refers to (href and src of any element)."""
    return [v for _, attrs in Tags(page).tags for k, v in attrs.items() if k in ("href", "src")]


def assert_site_links_resolve(store: Store) -> int:
    """Each relative link of each page names an object that exists; others are http(s)."""
    checked = 0
    for key in [k for k in store.list("index/") if k.endswith(".html")]:
        for ref in references(store.get_bytes(key).decode()):
            if urlsplit(ref).scheme:
                assert urlsplit(ref).scheme in ("http", "https"), (key, ref)
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(key), ref))
            assert store.exists(target), f"{key} links {ref}: {target} does not exist"
            checked += 1
    return checked
