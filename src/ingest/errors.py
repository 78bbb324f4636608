"""Which failures no retry can fix: a bad feeds file, a bad setting, a missing bucket or
store, refused credentials. Schedulers fail those at once, because retries with backoff
would only delay the alert by minutes and change nothing."""

from __future__ import annotations

from ingest.config import ConfigError
from ingest.state import StateFileError
from ingest.store import StoreUnusable


def permanent(exc: BaseException) -> bool:
    """True for errors that the same input will raise again; False for the transient
    (network, a busy store, a crashed worker) that retries exist for."""
    return isinstance(exc, ConfigError | StateFileError | StoreUnusable)
