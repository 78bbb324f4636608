"""Push under the real scheduler: a hub's notification reaches the receiver (`ingest
receive`), the inbox and the Redis doorbell; the triggerer's AssetWatcher starts news_push,
which commits the article. Then the receiver, the triggerer and the scheduler are each
restarted in the middle of the stream, and no entry is lost or written twice."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ingest.store import open_store
from ingest.websub.inbox import Inbox
from newsflow_dev.airflow_local import dag_runs
from newsflow_dev.loopback import FixtureServer
from newsflow_dev.push_stack import PushStack, committed, doorbell_listening
from newsflow_dev.services import redis_server
from newsflow_dev.websub_hub import LocalHub, Site


@pytest.mark.timeout(1500)
def test_push_started_by_the_doorbell_survives_restarts(tmp_path: Path) -> None:
    hub = LocalHub()
    with (
        redis_server() as redis_url,
        hub.running(),
        FixtureServer("127.0.0.3").running() as srv,
    ):
        site = Site(srv, hub)
        site.add_story(0)
        store_uri = f"file://{tmp_path / 'lake'}"
        feeds = tmp_path / "feeds.yaml"
        feeds.write_text(f"feeds:\n  - name: pub\n    url: {site.topic}\n")
        with PushStack(tmp_path, store_uri, feeds, redis_url) as stack:
            # a first (polling) run discovers the hub and subscribes through the receiver
            stack.first_run()
            hub.settle()
            assert hub.active(site.topic), hub.verifications
            assert committed(store_uri)[srv.url("/news/story-0")]["arrival"] == "poll"
            stack.start_airflow(["news_push"])
            airflow, receiver, env, wait_for = (
                stack.airflow,
                stack.receiver,
                stack.env,
                stack.wait_for,
            )

            latencies: dict[str, float] = {}

            def push(n: int) -> str:
                link = site.add_story(n)
                hub.publish(site.topic, site.feed())
                return link

            def arrives(link: str, since: float, what: str) -> None:
                row = wait_for(what, lambda: committed(store_uri).get(link), 300)
                assert row["arrival"] == "push", row["arrival"]
                latencies[link] = time.monotonic() - since

            t = time.monotonic()
            arrives(push(1), t, "the first pushed story")

            # the receiver is down while a story is published: the hub cannot deliver; the
            # next notification (the whole feed) brings both
            receiver.stop()
            missed = push(2)
            receiver.start()
            t = time.monotonic()
            arrives(push(3), t, "story 3 after the receiver restarted")
            arrives(missed, t, "story 2, published while the receiver was down")

            # the triggerer is down while a story is published: its ring is lost, the
            # notification waits in the inbox and the next ring's run drains both
            airflow.stop("triggerer")
            quiet = push(4)
            assert len(Inbox(open_store(store_uri)).pending()) >= 1
            airflow.start("triggerer")
            wait_for("the doorbell watcher again", lambda: doorbell_listening(redis_url), 180)
            t = time.monotonic()
            arrives(push(5), t, "story 5 after the triggerer restarted")
            arrives(quiet, t, "story 4, notified while the triggerer was down")

            # the scheduler restarts right after a notification
            t = time.monotonic()
            link = push(6)
            airflow.restart("scheduler")
            arrives(link, t, "story 6 across a scheduler restart")

            # a burst of 1,000 notifications (distinct bodies) becomes a few runs
            before = {r["run_id"] for r in dag_runs("news_push", env)}
            sub = hub.active(site.topic)[0]
            t = time.monotonic()
            link = site.add_story(7)
            feed = site.feed()
            statuses = {
                hub.deliver(sub.callback, feed + f"<!-- {i} -->".encode(), sub.secret, site.topic)
                for i in range(1000)
            }
            assert statuses == {202}
            arrives(link, t, "story 7 in a burst of 1,000 notifications")
            store = open_store(store_uri)
            wait_for("the burst to be drained", lambda: not Inbox(store).pending(), 600)

            def settled() -> list[dict] | None:
                """The burst's runs, once every one of them has ended."""
                runs = [r for r in dag_runs("news_push", env) if r["run_id"] not in before]
                return (
                    runs
                    if runs and all(r["state"] in ("success", "failed") for r in runs)
                    else None
                )

            wait_for("the burst's runs to end", settled, 300)
            time.sleep(5)  # a ring that came late may still start one more run
            burst_runs = wait_for("the burst's runs to end", settled, 300)
            assert 1 <= len(burst_runs) <= 10, burst_runs
            assert all(r["state"] == "success" for r in burst_runs), burst_runs
            burst = len(burst_runs)

        rows = committed(store_uri)
        stories = [srv.url(f"/news/story-{n}") for n in range(8)]
        assert sorted(rows) == sorted(stories)  # every story, once (one row per URL)
        assert len({r["article_id"] for r in rows.values()}) == len(rows) == 8
        assert Inbox(open_store(store_uri)).pending() == []
        print(json.dumps({"push_latency_seconds": latencies, "runs_for_1000": burst}))
