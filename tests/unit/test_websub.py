"""WebSub pure logic: discovery from documents and Link headers, signatures, the
subscription states, and what `sync` decides (with a recording hub client)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from ingest.config import ConfigError, Feed, parse_feeds
from ingest.sources.jsonfeed import parse_json_feed
from ingest.sources.rss import parse_rss
from ingest.state import FeedState
from ingest.store import LocalStore
from ingest.websub.discovery import from_link_header, parse_link_header
from ingest.websub.inbox import Inbox, Notification
from ingest.websub.receiver import signature_ok
from ingest.websub.subscriptions import (
    Status,
    Subscription,
    SubscriptionStore,
    Verification,
    sync,
    wanted,
)

FEED = Feed("pub", "https://news.example/feed.xml")
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_link_header_values_with_quoted_commas_and_several_rels() -> None:
    header = (
        '<https://hub.example/>; rel="hub", <https://news.example/feed>; rel=self; '
        'title="a, b; c", <https://h2.example/>; rel="hub alternate", garbage, <x'
    )
    assert parse_link_header(header) == [
        ("https://hub.example/", {"hub"}),
        ("https://news.example/feed", {"self"}),
        ("https://h2.example/", {"hub", "alternate"}),
    ]
    found = from_link_header(header, "https://news.example/x")
    assert found.hubs == ["https://hub.example/", "https://h2.example/"]
    assert found.topic == "https://news.example/feed"


def test_link_header_relative_and_hostile_targets() -> None:
    found = from_link_header('</hub>; rel=hub, <javascript:x>; rel=hub, <feed>; rel=self',
                             "https://news.example/a/b")  # fmt: skip
    assert (
        found.hubs == ["https://news.example/hub"] and found.topic == "https://news.example/a/feed"
    )
    assert parse_link_header("<a>; rel=hub, " * 5000) == []  # over the size bound: not read


def test_rss_and_atom_announce_hub_and_self() -> None:
    rss = (
        b'<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
        b"<channel><title>t</title><link>https://news.example/</link>"
        b'<atom:link rel="hub" href="https://hub.example/"/>'
        b'<atom:link rel="self" href="https://news.example/feed.xml"/>'
        b"<item><link>https://news.example/1</link></item></channel></rss>"
    )
    result = parse_rss(rss, FEED, FEED.url, "application/rss+xml")
    assert result.hubs == ["https://hub.example/"] and result.topic == FEED.url
    atom = (
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        b'<link rel="hub" href="/hub"/><link rel="self" href="atom.xml"/>'
        b'<entry><title>x</title><link href="https://news.example/1"/></entry></feed>'
    )
    result = parse_rss(atom, FEED, "https://news.example/a/f", "application/atom+xml")
    assert result.hubs == ["https://news.example/hub"]
    assert result.topic == "https://news.example/a/atom.xml"


def test_json_feed_hubs() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "t",
        "feed_url": "https://news.example/feed.json",
        "hubs": [{"type": "rssCloud", "url": "https://cloud.example/"},
                 {"type": "WebSub", "url": "https://hub.example/"}, "junk"],
        "items": [],
    }  # fmt: skip
    result = parse_json_feed(json.dumps(doc).encode(), FEED, FEED.url, "application/feed+json")
    assert result.hubs == ["https://hub.example/"]
    assert result.topic == "https://news.example/feed.json"


def test_feeds_file_hub_is_validated() -> None:
    [feed] = parse_feeds({"feeds": [{"name": "a", "url": FEED.url, "hub": "https://hub.example/"}]})
    assert feed.hub == "https://hub.example/"
    for bad in ("ftp://hub.example/", 5, "https://"):
        with pytest.raises(ConfigError, match="'hub'"):
            parse_feeds({"feeds": [{"name": "a", "url": FEED.url, "hub": bad}]})


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_signatures(algorithm: str) -> None:
    body = b"<rss/>"
    good = hmac.new(b"s3cret", body, getattr(hashlib, algorithm)).hexdigest()
    assert signature_ok(f"{algorithm}={good}", "s3cret", body)
    assert signature_ok(f"{algorithm.upper()}={good.upper()}", "s3cret", body)
    assert not signature_ok(f"{algorithm}={good}", "other", body)
    assert not signature_ok(f"{algorithm}={good}", "s3cret", body + b" ")
    assert not signature_ok(f"md5={good}", "s3cret", body)
    assert not signature_ok(None, "s3cret", body)


def test_wanted_sources() -> None:
    feeds = [
        Feed("announced", "https://a.example/f"),
        Feed("configured", "https://b.example/f", hub="https://myhub.example/"),
        Feed("disabled", "https://c.example/f", enabled=False),
        Feed("plain", "https://d.example/f"),
    ]
    states = {
        "announced": FeedState("announced", "", websub_hub="https://hub.example/",
                               websub_topic="https://a.example/self"),
        "configured": FeedState("configured", "", websub_hub="https://hub.example/"),
        "disabled": FeedState("disabled", "", websub_hub="https://hub.example/"),
    }  # fmt: skip
    assert wanted(feeds, states) == {
        "announced": ("https://hub.example/", "https://a.example/self"),
        "configured": ("https://myhub.example/", "https://b.example/f"),
    }


def status(mode="subscribe", verified: str | None = "subscribe", lease=3600, age=0.0) -> Status:
    sub = Subscription("a" * 32, "pub", FEED.url, "https://hub.example/", mode,
                       (NOW - timedelta(seconds=age + 1)).isoformat(), secret="x")  # fmt: skip
    ver = None
    if verified:
        ver = Verification(verified, FEED.url, (NOW - timedelta(seconds=age)).isoformat(), lease)
    return Status(sub, ver)


def test_subscription_states() -> None:
    assert status(verified=None).state == "pending"
    assert status().accepts_content(NOW)
    old = status(lease=60, age=120)
    assert not old.accepts_content(NOW)
    assert status(verified="denied").state == "denied"
    assert status(mode="unsubscribe", verified="unsubscribe").state == "unsubscribed"
    assert not status(mode="unsubscribe").accepts_content(NOW)
    assert not status(verified=None).accepts_content(NOW)


class RecordingHub:
    """Stands in for HttpClient.post_form: records the hub requests, answers `status`."""

    def __init__(self, status: int = 202) -> None:
        self.status = status
        self.sent: list[dict[str, str]] = []

    def post_form(self, url: str, fields: dict[str, str], max_bytes: int = 0):
        self.sent.append({"url": url, **fields})
        return self.status, {}, b"no" if self.status >= 400 else b""


def test_sync_subscribes_once_and_retries_only_after_silence(tmp_path) -> None:
    store = LocalStore(tmp_path)
    feeds = [Feed("pub", FEED.url, hub="https://hub.example/")]
    hub = RecordingHub()
    first = sync(store, feeds, {}, hub, "https://recv.example/", now=NOW)  # type: ignore[arg-type]
    assert first.subscribed == ["pub"]
    [sent] = hub.sent
    assert sent["hub.mode"] == "subscribe" and sent["hub.topic"] == FEED.url
    assert sent["hub.callback"].startswith("https://recv.example/websub/")
    assert len(sent["hub.secret"]) >= 32 and sent["hub.lease_seconds"].isdigit()
    later = NOW + timedelta(minutes=10)
    assert sync(store, feeds, {}, hub, "https://recv.example/", now=later).renewed == []  # type: ignore[arg-type]
    much_later = NOW + timedelta(hours=2)
    report = sync(store, feeds, {}, hub, "https://recv.example/", now=much_later)  # type: ignore[arg-type]
    assert report.renewed == ["pub"] and len(hub.sent) == 2
    assert hub.sent[1]["hub.secret"] == sent["hub.secret"]  # the same subscription


def test_sync_records_a_refusing_hub_and_never_raises(tmp_path) -> None:
    store = LocalStore(tmp_path)
    feeds = [Feed("pub", FEED.url, hub="https://hub.example/")]
    report = sync(store, feeds, {}, RecordingHub(400), "https://r/", now=NOW)  # type: ignore[arg-type]
    assert report.failed["pub"].startswith("hub answered 400")
    [st] = SubscriptionStore(store).all()
    assert st.state == "pending" and st.subscription.last_error.startswith("hub answered 400")


def test_sync_moves_to_a_new_hub(tmp_path) -> None:
    store = LocalStore(tmp_path)
    hub = RecordingHub()
    sync(store, [Feed("pub", FEED.url, hub="https://old.example/")], {}, hub, "https://r/", now=NOW)  # type: ignore[arg-type]
    [st] = SubscriptionStore(store).all()
    SubscriptionStore(store).record(
        st.subscription.id, Verification("subscribe", FEED.url, NOW.isoformat(), 3600)
    )
    report = sync(
        store, [Feed("pub", FEED.url, hub="https://new.example/")], {}, hub, "https://r/", now=NOW
    )  # type: ignore[arg-type]
    assert report.unsubscribed == ["pub"] and report.subscribed == ["pub"]
    assert [(s["url"], s["hub.mode"]) for s in hub.sent[1:]] == [
        ("https://old.example/", "unsubscribe"),
        ("https://new.example/", "subscribe"),
    ]


def test_inbox_replay_window_and_thin_pings(tmp_path) -> None:
    store = LocalStore(tmp_path)
    inbox = Inbox(store)
    fat = Notification("a" * 32, "pub", FEED.url, NOW.isoformat(), "application/rss+xml", b"<rss/>")
    assert inbox.put(fat) and not inbox.put(fat)
    thin = Notification("a" * 32, "pub", FEED.url, NOW.isoformat(), "", b"")
    assert inbox.put(thin) and inbox.put(thin)  # coalesced, not refused
    keys = [k for k, _ in inbox.pending()]
    assert len(keys) == 2
    inbox.consume(keys, now=NOW)
    assert inbox.pending() == [] and not inbox.put(fat)  # consumed: still a replay
    week_later = Notification(
        **{**fat.__dict__, "received_at": (NOW + timedelta(days=9)).isoformat()}
    )
    assert inbox.put(week_later)  # past the replay window
    store.put_bytes("_inbox/" + "b" * 32 + "/junk", b"not json\n")
    assert [n.body for _, n in inbox.pending()] == [b"<rss/>"]
    assert store.exists("_inbox_bad/" + "b" * 32 + "/junk")


def test_receive_command_line() -> None:
    from ingest.cli.parser import build_parser

    args = build_parser().parse_args(
        ["receive", "--store", "s3://b/lake", "--listen", "[::1]:9000"]
    )
    assert args.listen == ("::1", 9000) and args.max_body == 5 * 1024 * 1024
    assert build_parser().parse_args(["receive", "--store", "x"]).listen == ("127.0.0.1", 8632)
    for bad in ("8080", "host:", "host:99999", "host:x"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["receive", "--store", "x", "--listen", bad])
