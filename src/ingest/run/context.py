"""Who a run is: its id and key, this shard and attempt, when it started, and where and how
it works (store, settings). One value every stage reads, none writes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest import ids
from ingest.config import Settings
from ingest.store import Store


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class RunContext:
    store: Store
    settings: Settings
    run_id: str
    shard: int
    started: datetime
    attempt: str  # this try of this shard: staged names never collide with a retry's

    @classmethod
    def new(
        cls, store: Store, settings: Settings, run_id: str | None = None, shard: int = 0
    ) -> RunContext:
        started = datetime.now(UTC)
        return cls(
            store, settings, run_id or new_run_id(started), shard, started, secrets.token_hex(4)
        )

    @property
    def run_key(self) -> str:
        """The run id as it names objects (ingest.ids.run_key)."""
        return ids.run_key(self.run_id)

    @property
    def ingest_date(self) -> str:
        return self.started.date().isoformat()
