"""Subscriptions brought in line after a commit, as one step a run or a DAG task calls."""

from __future__ import annotations

import logging

from ingest.config import Feed, Settings
from ingest.net import HttpClient
from ingest.state import load_feed_states
from ingest.store import Store
from ingest.websub.subscriptions import SyncReport, sync

log = logging.getLogger(__name__)


def sync_subscriptions(store: Store, feeds: list[Feed], settings: Settings) -> SyncReport | None:
    """Subscribe, renew and unsubscribe at the hubs (ingest.websub.subscriptions.sync)
    when a callback URL is set. A failure is logged, never raised: the articles are
    committed, and polling goes on without push."""
    if not settings.websub_callback:
        return None
    client = HttpClient(settings)
    try:
        return sync(store, feeds, load_feed_states(store), client, settings.websub_callback)
    except Exception:
        log.exception("websub: subscriptions not synced (the next run tries again)")
        return None
    finally:
        client.close()
