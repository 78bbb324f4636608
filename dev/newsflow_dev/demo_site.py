"""An offline news publisher ("The Meridian Ledger") served on loopback.

`ingest demo`, the tests and the benchmark need a realistic site to ingest without touching
the network: RSS 2.0, Atom and RSS 1.0 feeds (one with relative links, one entry without a
link, stories repeated across feeds), article pages wrapped in navigation, sidebars and
banners that extraction has to drop, a page in a legacy charset that only its meta tag
declares, and conditional GET so incremental runs can be exercised.

The files live in the `demo_site/` package data directory. Dates are placeholders resolved
against one "now" fixed when the server starts, so a run always looks fresh while every
response stays byte-stable (and its ETag valid) for the server's lifetime.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib import resources
from pathlib import Path

import yaml

from newsflow_dev.loopback import FixtureServer, Route

__all__ = [
    "DemoArticle",
    "DemoFeed",
    "DemoSite",
    "Response",
    "article_paths",
    "load_site",
    "serve_site",
    "write_feeds_file",
]

_PACKAGE = "newsflow_dev"
_DATA_DIR = "demo_site"
_MANIFEST = "site.json"

_PLACEHOLDER = re.compile(r"\{\{(base|year|now|published|ago)(?::([^}:]+))?(?::([^}]+))?\}\}")


@dataclass(frozen=True)
class DemoArticle:
    """One article page; `served_path` is what feeds link to, `path` is its canonical path."""

    slug: str
    section: str
    path: str
    served_path: str
    file: str
    encoding: str
    lang: str
    age_minutes: int
    title: str
    author: str

    @property
    def content_type(self) -> str:
        """Legacy-charset pages get no charset parameter, so clients must read the meta tag."""
        return "text/html; charset=utf-8" if self.encoding == "utf-8" else "text/html"


@dataclass(frozen=True)
class DemoFeed:
    """One feed: its path on the site, syndication format and expected entry count."""

    name: str
    path: str
    file: str
    content_type: str
    format: str
    relative_links: bool
    entries: int


@dataclass(frozen=True)
class Response:
    """A rendered resource, ready to be sent with its validators."""

    body: bytes
    content_type: str
    etag: str
    last_modified: datetime

    def route(self) -> Route:
        return Route(
            self.body,
            content_type=self.content_type,
            headers={"Cache-Control": "max-age=60"},
            conditional=True,
            etag=self.etag,
            last_modified=self.last_modified,
        )


@dataclass
class DemoSite:
    """The site's files (raw bytes by package-relative name) and what to serve where."""

    site_name: str
    files: dict[str, bytes]
    articles: list[DemoArticle]
    feeds: list[DemoFeed]
    other: list[dict[str, str]]

    def article(self, slug: str) -> DemoArticle:
        """Look an article up by slug; KeyError names the slug if it does not exist."""
        for art in self.articles:
            if art.slug == slug:
                return art
        raise KeyError(slug)

    def render(self, base_url: str, now: datetime | None = None) -> dict[str, Response]:
        """Render every resource for `base_url`, keyed by URL path (query strings excluded).

        Public so tests and benchmarks can get the exact served bytes without a server.
        """
        now = _anchor(now)
        base_url = base_url.rstrip("/")
        ages = {a.slug: a.age_minutes for a in self.articles}
        out: dict[str, Response] = {}

        def add(path: str, file: str, ctype: str, encoding: str, modified: datetime) -> None:
            text = self.files[file].decode(encoding)
            body = _substitute(text, base_url, now, ages).encode(encoding)
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            out[path] = Response(body, ctype, etag, modified)

        for art in self.articles:
            published = now - timedelta(minutes=art.age_minutes)
            add(art.path, art.file, art.content_type, art.encoding, published)
        for feed in self.feeds:
            add(feed.path, feed.file, feed.content_type, "utf-8", now)
        for item in self.other:
            add(item["path"], item["file"], item["content_type"], "utf-8", now)
        return out


def _anchor(now: datetime | None) -> datetime:
    """Whole minutes in UTC: HTTP dates have second precision, feeds look hand-published."""
    now = datetime.now(UTC) if now is None else now.astimezone(UTC)
    return now.replace(second=0, microsecond=0)


def _format(moment: datetime, fmt: str) -> str:
    """Date formats used by the templates: machine-readable ones and human bylines."""
    if fmt == "iso":
        return moment.isoformat()
    if fmt == "atom":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if fmt == "rfc822":
        return format_datetime(moment, usegmt=True)
    if fmt == "human":
        return f"{moment.day} {moment:%B %Y, %H:%M} GMT"
    if fmt == "day":
        return f"{moment.day} {moment:%B %Y}"
    if fmt == "short":
        return f"{moment.day} {moment:%b, %H:%M}"
    if fmt == "dmy":
        return moment.strftime("%d.%m.%Y, %H:%M")
    raise ValueError(f"unknown date format in demo site template: {fmt!r}")


def _substitute(text: str, base_url: str, now: datetime, ages: dict[str, int]) -> str:
    """Fill `{{base}}`, `{{year}}`, `{{now:F}}`, `{{published:SLUG:F}}`, `{{ago:MIN:F}}`."""

    def repl(m: re.Match[str]) -> str:
        kind, arg, fmt = m.group(1), m.group(2), m.group(3)
        if kind == "base":
            return base_url
        if kind == "year":
            return str(now.year)
        if kind == "now":
            return _format(now, arg or "iso")
        if kind == "published":
            return _format(now - timedelta(minutes=ages[arg]), fmt or "iso")
        return _format(now - timedelta(minutes=int(arg)), fmt or "iso")

    return _PLACEHOLDER.sub(repl, text)


def load_site() -> DemoSite:
    """Read the manifest and every file it names from the installed package data."""
    root = resources.files(_PACKAGE).joinpath(_DATA_DIR)
    manifest = json.loads(root.joinpath(_MANIFEST).read_text("utf-8"))
    articles = [DemoArticle(**a) for a in manifest["articles"]]
    feeds = [DemoFeed(**f) for f in manifest["feeds"]]
    other = list(manifest["other"])
    names = [a.file for a in articles] + [f.file for f in feeds] + [o["file"] for o in other]
    files = {name: root.joinpath(*name.split("/")).read_bytes() for name in names}
    return DemoSite(manifest["site_name"], files, articles, feeds, other)


@functools.cache
def _cached_site() -> DemoSite:
    return load_site()


def article_paths() -> list[str]:
    """URL paths (with query, as feeds link them) of every article page, in manifest order."""
    return [a.served_path for a in _cached_site().articles]


def write_feeds_file(base_url: str, path: Path) -> Path:
    """Write a feeds file pointing at the site served at `base_url`; the port changes per run."""
    base_url = base_url.rstrip("/")
    doc = {"feeds": [{"name": f.name, "url": base_url + f.path} for f in _cached_site().feeds]}
    header = "# Feeds of the offline demo site (The Meridian Ledger), valid while it is served.\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return path


@contextlib.contextmanager
def serve_site(
    site: DemoSite | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    now: datetime | None = None,
) -> Iterator[str]:
    """Serve the site in a daemon thread and yield its base URL, e.g. `http://127.0.0.1:PORT`.

    Port 0 picks a free port. Everything is rendered once up front against the actual base
    URL and `now` (default: current UTC minute), so feeds carry absolute links to this
    server and validators stay stable. The server is shut down and closed on exit.
    """
    site = load_site() if site is None else site
    with FixtureServer(host, port, server_version="MeridianLedger/1.0").running() as server:
        for path, res in site.render(server.base_url, now).items():
            server.add(path, res.route())
        yield server.base_url
