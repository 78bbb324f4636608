"""The durable inbox: accepted notifications waiting for the run that ingests them.

One object per notification, `_inbox/<subscription id>/<body digest>`, written before
the receiver answers 2xx: the inbox is the truth, the doorbell only wakes a run up. An
item is consumed (deleted) by the publication of the commit that read it, after that
commit: a crash anywhere before leaves it for the next run, and a run that reads it again
finds its articles committed (the key markers) and writes nothing twice.

A consumed notification leaves a replay marker, `_websub/consumed/<date>/<id>-<digest>`,
for REPLAY_DAYS: the same signed body delivered again within that window is refused.
What a run reads is bounded by MAX_ITEMS_PER_RUN, never by history.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

from ingest.store import Store

log = logging.getLogger(__name__)

INBOX = "_inbox/"
CONSUMED = "_websub/consumed/"
REPLAY_DAYS = 7
MAX_ITEMS_PER_RUN = 1_000
THIN = "thin"  # the item name of a thin ping: one per subscription, repeats coalesce


@dataclass
class Notification:
    """What the receiver accepted. `body` empty: a thin ping (the source is due now)."""

    subscription: str
    source: str
    topic: str
    received_at: str
    content_type: str
    body: bytes = b""

    @property
    def name(self) -> str:
        return digest(self.body) if self.body else THIN

    @property
    def key(self) -> str:
        return item_key(self.subscription, self.name)

    def encode(self) -> bytes:
        head = {k: v for k, v in asdict(self).items() if k != "body"}
        return json.dumps(head, sort_keys=True).encode() + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> Notification:
        head, _, body = raw.partition(b"\n")
        data = json.loads(head)
        if not isinstance(data, dict):
            raise ValueError("inbox item head is not a JSON object")
        return cls(
            subscription=str(data["subscription"]),
            source=str(data["source"]),
            topic=str(data["topic"]),
            received_at=str(data["received_at"]),
            content_type=str(data.get("content_type") or ""),
            body=body,
        )

    @property
    def received(self) -> datetime:
        return datetime.fromisoformat(self.received_at)


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def item_key(subscription: str, name: str) -> str:
    return f"{INBOX}{subscription}/{name}"


def _marker(day: date, subscription: str, name: str) -> str:
    return f"{CONSUMED}{day.isoformat()}/{subscription}-{name}"


class Inbox:
    def __init__(self, store: Store) -> None:
        self.store = store

    def put(self, note: Notification) -> bool:
        """Store a notification; False when it is a replay (the same body for the same
        subscription, waiting or consumed within REPLAY_DAYS). A thin ping that finds one
        waiting is coalesced with it and counts as stored."""
        if note.body and self.consumed_recently(note.subscription, note.name, note.received):
            return False
        stored = self.store.put_bytes(note.key, note.encode(), if_absent=True)
        return stored or not note.body

    def consumed_recently(self, subscription: str, name: str, now: datetime) -> bool:
        today = now.astimezone(UTC).date()
        return any(
            self.store.exists(_marker(today - timedelta(days=n), subscription, name))
            for n in range(REPLAY_DAYS + 1)
        )

    def pending(self, limit: int = MAX_ITEMS_PER_RUN) -> list[tuple[str, Notification]]:
        """(key, notification) of waiting items, oldest first, at most `limit`. An item
        that does not decode is moved aside (`_inbox_bad/`), never silently dropped."""
        keys = []
        for key in self.store.list(INBOX):
            keys.append(key)
            if len(keys) >= 10 * limit:  # a backlog beyond this waits for later runs
                break
        items = []
        for key in keys:
            raw = self.store.get_bytes(key)
            if raw is None:
                continue  # consumed by another run meanwhile
            try:
                items.append((key, Notification.decode(raw)))
            except (ValueError, KeyError, UnicodeDecodeError) as exc:
                aside = "_inbox_bad/" + key[len(INBOX) :]
                log.warning("inbox item %s is unreadable (%s): moved to %s", key, exc, aside)
                self.store.put_bytes(aside, raw)
                self.store.delete(key)
        items.sort(key=lambda kv: (kv[1].received_at, kv[0]))
        return items[:limit]

    def consume(self, keys: list[str], now: datetime | None = None) -> None:
        """After the commit that read them: replay markers first, then the items.
        Idempotent (the publication may run it again after a crash). A run that read
        nothing costs nothing here: old markers are expired by the next one that did
        (replay checks look only at the last REPLAY_DAYS days anyway)."""
        if not keys:
            return
        today = (now or datetime.now(UTC)).date()
        for key in keys:
            subscription, _, name = key[len(INBOX) :].partition("/")
            if name != THIN:
                self.store.put_bytes(_marker(today, subscription, name), b"", if_absent=True)
            self.store.delete(key)
        self.expire_markers(today)

    def expire_markers(self, today: date) -> None:
        oldest = (today - timedelta(days=REPLAY_DAYS)).isoformat()
        for key in self.store.list(CONSUMED):
            day = key[len(CONSUMED) :].split("/", 1)[0]
            if day < oldest:
                self.store.delete(key)

    def depth(self) -> int:
        return sum(1 for _ in self.store.list(INBOX))
