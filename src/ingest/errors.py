"""The engine's errors: one base for what goes wrong with one input (a page, a source),
and which failures no retry can fix."""

from __future__ import annotations

from typing import Any

from ingest.config import ConfigError
from ingest.state import StateFileError
from ingest.store import StoreUnusable


class IngestError(Exception):
    """What went wrong with one input, as reject rows and reports record it: a short
    stable `reason`, a `detail` for people, whether a later run may succeed (`transient`)
    and the HTTP `status` when a server gave one. Subclasses say where (fetch, extract)."""

    def __init__(
        self, reason: str, detail: str, *, transient: bool = False, status: int | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.transient = transient
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries (worker pool)
        return (_rebuild, (type(self), self.reason, self.detail, dict(self.__dict__)))


class ExtractError(IngestError):
    """A page that did not become an article. `transient`: the same page may succeed in a
    later run (the run was stopped, a worker was lost), so its source stays due. Here, not
    in ingest.extract, so the run's process never imports trafilatura: only workers do."""

    def __init__(self, reason: str, detail: str, transient: bool = False) -> None:
        super().__init__(reason, detail, transient=transient)


def _rebuild(cls: type[IngestError], reason: str, detail: str, state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    IngestError.__init__(error, reason, detail)
    error.__dict__.update(state)
    return error


def permanent(exc: BaseException) -> bool:
    """Which failures no retry can fix: a bad feeds file, a bad setting, a missing bucket or
    store, refused credentials. Schedulers fail those at once, because retries with
    backoff would only delay the alert by minutes and change nothing."""
    """True for errors that the same input will raise again; False for the transient
    (network, a busy store, a crashed worker) that retries exist for."""
    return isinstance(exc, ConfigError | StateFileError | StoreUnusable)
