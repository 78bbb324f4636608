"""Event-driven runs: the inbox asset and the watcher that turns a doorbell ring into an
asset event (Airflow's own event-driven scheduling, `AssetWatcher` + `MessageQueueTrigger`).

The receiver (`ingest receive --doorbell redis://…`) publishes one message on the Redis
channel NEWSFLOW_DOORBELL_CHANNEL (default `newsflow-inbox`) per accepted notification,
after it is in the inbox. The triggerer listens through the Redis Connection
NEWSFLOW_DOORBELL_CONN_ID (default `newsflow_doorbell`, e.g.
AIRFLOW_CONN_NEWSFLOW_DOORBELL=redis://127.0.0.1:6379; pub/sub channels ignore the db),
when NEWSFLOW_PUSH=on.
Kept apart from the other glue: only news_push pays for importing the providers.
"""

from __future__ import annotations

import os

from airflow.sdk import Asset, AssetWatcher

from newsflow_airflow.settings import store_uri

CHANNEL = os.environ.get("NEWSFLOW_DOORBELL_CHANNEL", "newsflow-inbox")
CONN_ID = os.environ.get("NEWSFLOW_DOORBELL_CONN_ID", "newsflow_doorbell")
# The Redis trigger looks for a message, then sleeps this long when there was none: the
# latency it adds to a ring (a second of Redis GETs per triggerer is cheap).
POLL_SECONDS = float(os.environ.get("NEWSFLOW_DOORBELL_POLL_SECONDS", "1"))

# A deployment switch, so that an Airflow without Redis runs no trigger that can only fail:
# off, news_push has no watcher (it can still be triggered by hand; every news_ingest run
# drains the inbox anyway).
ENABLED = os.environ.get("NEWSFLOW_PUSH", "off").strip().lower() in ("1", "true", "yes", "on")


def _watchers() -> list[AssetWatcher]:
    if not ENABLED:
        return []
    # imported only here: it discovers every provider's queues when imported
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    doorbell = MessageQueueTrigger(
        scheme="redis+pubsub", channels=[CHANNEL], redis_conn_id=CONN_ID, poll_interval=POLL_SECONDS
    )
    return [AssetWatcher(name="newsflow_doorbell", trigger=doorbell)]


INBOX = Asset(name="newsflow_inbox", uri=f"{store_uri()}/_inbox/", watchers=_watchers())
