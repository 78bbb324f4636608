"""WebSub end to end on loopback: a publisher whose feed names a hub, the spec-following
test hub, the real receiver (uvicorn), a real store, and `ingest run` draining the inbox."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from ingest.cli.main import main
from ingest.config import Feed, Settings
from ingest.lake import read_committed
from ingest.run import Run, commit_run, run
from ingest.state import load_feed_states
from ingest.store import LocalStore, Store
from ingest.websub.inbox import INBOX, Inbox
from ingest.websub.subscriptions import SubscriptionStore, callback_url
from newsflow_dev.loopback import FixtureServer, Route
from newsflow_dev.websub_hub import LocalHub, Site
from tests.helpers.websub import running_receiver


def settings(**kw: object) -> Settings:
    base = {
        "allow_networks": ["127.0.0.0/8"],
        "http_retries": 0,
        "total_timeout": 5.0,
        "workers": 1,
        "progress": False,
        "poll_min_interval": 0.0,
    }
    base.update(kw)
    return Settings.from_env({}, **base)


@pytest.fixture
def site() -> Iterator[Site]:
    hub = LocalHub()
    with hub.running(), FixtureServer("127.0.0.3").running() as srv:
        s = Site(srv, hub)
        s.add_story(0)
        yield s


def rows(store: Store) -> dict[str, dict]:
    table: pa.Table = read_committed(store)
    return {r["url"]: r for r in table.to_pylist()}


def subscribe(store: Store, site: Site, receiver_url: str) -> list[Feed]:
    """A first run polls the feed, discovers the hub and subscribes; the hub verifies."""
    feeds = [Feed("pub", site.topic)]
    run(store, feeds, settings(websub_callback=receiver_url))
    site.hub.settle()
    return feeds


def test_discovered_hub_subscription_push_and_exactly_once_ingest(tmp_path, site, capsys) -> None:
    store = LocalStore(tmp_path / "lake")
    with running_receiver(store) as (url, _app):
        feeds = subscribe(store, site, url)
        state = load_feed_states(store)["pub"]
        assert (state.websub_hub, state.websub_topic) == (site.hub.url, site.topic)
        [status] = SubscriptionStore(store).all()
        assert status.state == "active" and status.subscription.topic == site.topic
        [request] = site.hub.requests
        assert request["hub.callback"] == callback_url(url, status.subscription.id)
        assert request["hub.secret"] == status.subscription.secret  # per-subscription secret
        assert site.hub.active(site.topic), site.hub.verifications
        polled = rows(store)
        assert [r["arrival"] for r in polled.values()] == ["poll"]
        assert main(["status", "--store", str(store.root)]) == 0
        shown = capsys.readouterr().out
        assert "push (WebSub)" in shown and site.hub.url in shown
        assert "active" in shown and status.subscription.secret not in shown

        new_link = site.add_story(1)
        before = datetime.now(UTC)
        assert site.hub.publish(site.topic, site.feed()) == [202]
        [(_key, note)] = Inbox(store).pending()
        assert note.source == "pub" and note.body == site.feed()
        assert site.hub.publish(site.topic, site.feed()) == [409]  # replayed: refused

        report = run(store, feeds, settings(push_only=True))
        assert report.notifications == 1 and report.feeds_polled == 0
        got = rows(store)
        assert got[new_link]["arrival"] == "push"
        seen = got[new_link]["first_seen_at"]
        assert before - timedelta(seconds=1) <= seen <= datetime.now(UTC)
        assert report.freshness_by_arrival["push"]["count"] == 1
        assert Inbox(store).pending() == []  # consumed by the commit
        # the same notification again, after it was consumed: still a replay
        assert site.hub.publish(site.topic, site.feed()) == [409]
        assert Inbox(store).pending() == []


def test_an_inbox_item_is_consumed_only_by_the_commit_that_read_it(tmp_path, site) -> None:
    store = LocalStore(tmp_path / "lake")
    with running_receiver(store) as (url, _app):
        feeds = subscribe(store, site, url)
        new_link = site.add_story(1)
        assert site.hub.publish(site.topic, site.feed()) == [202]
    # staged but not committed (the process died before the commit): the item stays
    staged = Run(store, feeds, settings(push_only=True), run_id="push-crash")
    assert staged.stage() is not None
    staged.lease.release()
    assert len(Inbox(store).pending()) == 1 and new_link not in rows(store)
    # the next run reads it again and commits it, once
    report = run(store, feeds, settings(push_only=True))
    assert report.articles_written == 1 and rows(store)[new_link]["arrival"] == "push"
    assert Inbox(store).pending() == []
    # committing the abandoned attempt now changes nothing (its article is committed)
    again = commit_run(store, "push-crash", shards=1)
    assert again.articles_written == 0
    assert sum(1 for r in rows(store) if r == new_link) == 1


def test_an_item_read_again_after_a_crash_past_the_commit_writes_nothing_twice(
    tmp_path, site
) -> None:
    store = LocalStore(tmp_path / "lake")
    with running_receiver(store) as (url, _app):
        feeds = subscribe(store, site, url)
        site.add_story(1)
        assert site.hub.publish(site.topic, site.feed()) == [202]
    [(key, _)] = Inbox(store).pending()
    raw = store.get_bytes(key)
    run(store, feeds, settings(push_only=True))
    store.put_bytes(key, raw)  # as if the process died between the commit and consuming
    report = run(store, feeds, settings(push_only=True))
    assert report.articles_written == 0 and report.skips["already_seen"] >= 1
    assert len(rows(store)) == 2 and Inbox(store).pending() == []


def test_thin_ping_polls_the_source_now(tmp_path, site) -> None:
    store = LocalStore(tmp_path / "lake")
    with running_receiver(store) as (url, _app):
        feeds = subscribe(store, site, url)
        sub = site.hub.active(site.topic)[0]
        new_link = site.add_story(1)
        assert site.hub.deliver(sub.callback, b"", sub.secret, site.topic) == 202
        assert site.hub.deliver(sub.callback, b"", sub.secret, site.topic) == 202  # coalesced
    assert len(Inbox(store).pending()) == 1
    report = run(store, feeds, settings(push_only=True))
    assert report.feeds_polled == 1 and new_link in rows(store)
    assert Inbox(store).pending() == []


def test_removed_source_is_unsubscribed_and_forgotten(tmp_path, site) -> None:
    store = LocalStore(tmp_path / "lake")
    with running_receiver(store) as (url, _app):
        subscribe(store, site, url)
        other = [Feed("other", "http://127.0.0.3:1/none.xml", enabled=False)]
        from ingest.websub.sync import sync_subscriptions

        report = sync_subscriptions(store, other, settings(websub_callback=url))
        site.hub.settle()
        assert report is not None and report.unsubscribed == ["pub"]
        assert site.hub.requests[-1]["hub.mode"] == "unsubscribe"
        assert site.hub.active(site.topic) == []
        [status] = SubscriptionStore(store).all()
        assert status.state == "unsubscribed"
        report = sync_subscriptions(store, other, settings(websub_callback=url))
        assert report is not None and report.forgotten == 1
        assert SubscriptionStore(store).all() == []


def test_leases_are_renewed_before_they_run_out(tmp_path, site) -> None:
    store = LocalStore(tmp_path / "lake")
    site.hub.default_lease = 3 * 3600  # granted: 3 h, renewed 2 h before the end
    with running_receiver(store) as (url, _app):
        feeds = subscribe(store, site, url)
        [status] = SubscriptionStore(store).all()
        assert status.verification is not None and status.verification.lease_seconds == 3 * 3600
        from ingest.net import HttpClient
        from ingest.websub.subscriptions import sync

        client = HttpClient(settings())
        states = load_feed_states(store)
        early = datetime.now(UTC) + timedelta(minutes=30)  # 2.5 h of the lease left
        report = sync(store, feeds, states, client, url, now=early)
        assert report.renewed == [] and len(site.hub.requests) == 1
        soon = datetime.now(UTC) + timedelta(hours=1, minutes=30)  # 1.5 h left
        report = sync(store, feeds, states, client, url, now=soon)
        site.hub.settle()
        client.close()
        assert report.renewed == ["pub"]
        assert [r["hub.mode"] for r in site.hub.requests] == ["subscribe", "subscribe"]
        [renewed] = SubscriptionStore(store).all()
        assert renewed.subscription.secret == status.subscription.secret
        assert renewed.verification is not None
        assert renewed.verification.at > status.verification.at


def test_inbox_keys_live_under_the_inbox_prefix(tmp_path, site) -> None:
    store = LocalStore(tmp_path / "lake")
    with running_receiver(store) as (url, _app):
        subscribe(store, site, url)
        site.add_story(1)
        site.hub.publish(site.topic, site.feed())
    [(key, _)] = Inbox(store).pending()
    assert key.startswith(INBOX) and store.exists(key)


def test_a_notification_for_a_removed_source_is_consumed_and_counted(tmp_path, site) -> None:
    store = LocalStore(tmp_path / "lake")
    with running_receiver(store) as (url, _app):
        subscribe(store, site, url)
        site.add_story(1)
        assert site.hub.publish(site.topic, site.feed()) == [202]
    others = [Feed("other", site.srv.url("/none.xml"), enabled=False)]
    report = run(store, others, settings(push_only=True))
    assert report.skips["push_source_gone"] == 1 and report.articles_written == 0
    assert Inbox(store).pending() == []


def test_an_expired_lease_refuses_content_and_the_next_sync_subscribes_again(
    tmp_path, site
) -> None:
    store = LocalStore(tmp_path / "lake")
    site.hub.default_lease = 2  # the hub grants two seconds
    with running_receiver(store) as (url, _app):
        feeds = subscribe(store, site, url)
        [status] = SubscriptionStore(store).all()
        assert status.verification is not None and status.verification.lease_seconds == 2
        time.sleep(2.5)
        assert site.hub.active(site.topic) == []  # the hub dropped it too
        [status] = SubscriptionStore(store).all()
        assert status.state == "expired"
        secret = status.subscription.secret
        callback = callback_url(url, status.subscription.id)
        assert site.hub.deliver(callback, site.feed(), secret, site.topic) == 410
        assert Inbox(store).pending() == []
        from ingest.websub.sync import sync_subscriptions

        site.hub.default_lease = 3600
        report = sync_subscriptions(store, feeds, settings(websub_callback=url))
        site.hub.settle()
        assert report is not None and report.renewed == ["pub"]
        assert site.hub.active(site.topic) and SubscriptionStore(store).all()[0].state == "active"


def test_link_headers_announce_the_hub_over_the_document(tmp_path) -> None:
    """A poll reads `Link: rel=hub / rel=self` headers first (WebSub 4), the document's
    own links only when the headers name none."""
    from ingest.net import HttpClient
    from ingest.sources import poll
    from ingest.state import FeedState

    body = (
        b'<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
        b'<channel><title>t</title><atom:link rel="hub" href="https://doc-hub.example/"/>'
        b"<item><link>https://news.example/1</link></item></channel></rss>"
    )
    link = '<https://header-hub.example/>; rel="hub", </canonical.xml>; rel="self"'
    with FixtureServer("127.0.0.3").running() as srv:
        srv.add("/h.xml", Route(body, content_type="application/rss+xml", headers={"Link": link}))
        srv.add("/d.xml", Route(body, content_type="application/rss+xml"))
        client = HttpClient(settings())
        try:
            by_header = poll(client, Feed("h", srv.url("/h.xml")), FeedState("h", ""))
            by_document = poll(client, Feed("d", srv.url("/d.xml")), FeedState("d", ""))
        finally:
            client.close()
    assert by_header.hubs == ["https://header-hub.example/"]
    assert by_header.topic == srv.url("/canonical.xml")
    assert by_document.hubs == ["https://doc-hub.example/"] and by_document.topic is None
