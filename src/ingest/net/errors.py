"""What a fetch that did not give a usable body says about it."""

from __future__ import annotations

from typing import Any

from ingest.errors import IngestError


class FetchError(IngestError):
    """A fetch that did not produce a usable body."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        status: int | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, detail, transient=transient, status=status)
        self.retry_after = retry_after  # seconds the server asked us to wait (429/503)


class BlockedAddress(FetchError):
    def __init__(self, detail: str) -> None:
        super().__init__("blocked_address", detail)

    def __reduce__(self) -> tuple[Any, ...]:
        return (BlockedAddress, (self.detail,))
