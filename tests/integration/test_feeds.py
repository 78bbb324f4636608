"""Polling feeds over HTTP on loopback: JSON Feed whatever its content type, conditional
GET, the request's headers, and what is refused unread."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from ingest.config import Feed, Settings
from ingest.net import HttpClient
from ingest.sources.poll import poll
from ingest.state import FeedState
from newsflow_dev.loopback import FixtureServer, Route, send_html
from tests.helpers.feeds import JSON_10, RSS2, jsonfeed


def loopback_settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {
        "allow_networks": ["127.0.0.0/8"],
        "http_retries": 0,
        "total_timeout": 5.0,
        "progress": False,
    }
    return Settings.from_env({}, **{**base, **kw})


@pytest.fixture
def client() -> Iterator[HttpClient]:
    c = HttpClient(loopback_settings())
    yield c
    c.close()


@pytest.mark.parametrize(
    "ctype", ["application/feed+json", "application/json; charset=utf-8", "text/plain", None]
)
def test_json_feed_polled_whatever_its_content_type(client: HttpClient, ctype: str | None) -> None:
    with FixtureServer().running() as srv:
        srv.add("/feed.json", Route(jsonfeed(JSON_10), content_type=ctype, conditional=True))
        feed = Feed("j", srv.url("/feed.json"))
        result = poll(client, feed, FeedState("j", feed.url))
        assert (result.status, result.kind) == ("ok", "json")
        assert [e.title for e in result.entries] == ["Old style", None]
        assert result.entries[1].link == srv.url("/old/b")
        assert result.etag  # conditional GET as for RSS: the next poll is a 304
        state = FeedState("j", feed.url, etag=result.etag)
        assert poll(client, feed, state).status == "not_modified"


def test_malformed_json_feed_over_http_fails_the_feed_only(client: HttpClient) -> None:
    with FixtureServer().running() as srv:
        srv.add("/feed.json", Route(b'{"version": "https://jsonfeed.org/version/1.1", "items": [{',
                                    content_type="application/json"))  # fmt: skip
        feed = Feed("j", srv.url("/feed.json"))
        result = poll(client, feed, FeedState("j", feed.url))
    assert result.status == "failed" and result.error.reason == "feed_parse_error"
    assert "malformed JSON" in result.error.detail


def test_poll_identifies_itself_and_says_what_it_accepts(client: HttpClient) -> None:
    seen: list[dict[str, str]] = []

    def handler(req: BaseHTTPRequestHandler) -> None:
        seen.append(dict(req.headers))
        send_html(req, RSS2, "application/rss+xml")

    with FixtureServer().running() as srv:
        srv.add("/rss", handler)
        feed = Feed("r", srv.url("/rss"))
        assert poll(client, feed, FeedState("r", feed.url, etag='"v1"')).status == "ok"
    (headers,) = seen
    assert headers["User-Agent"] == client.settings.user_agent
    assert headers["If-None-Match"] == '"v1"'
    assert "gzip" in headers["Accept-Encoding"]
    assert "application/feed+json" in headers["Accept"]


def test_a_page_is_still_refused_unread(client: HttpClient) -> None:
    with FixtureServer().running() as srv:
        srv.add("/img", Route(b"\x89PNG....", content_type="image/png"))
        feed = Feed("p", srv.url("/img"))
        result = poll(client, feed, FeedState("p", feed.url))
    assert result.status == "failed" and result.error.reason == "bad_content_type"
