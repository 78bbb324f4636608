"""Running the receiver on uvicorn, with the limits uvicorn lacks for hostile clients."""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ingest.store import Store
from ingest.websub.doorbell import DEFAULT_CHANNEL, doorbell
from ingest.websub.receiver import HEADER_SECONDS, MAX_BODY, MAX_CONNECTIONS, Receiver

log = logging.getLogger(__name__)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for request headers: uvicorn has none
    before the first request, and a byte now and then cancels its keep-alive timer, so a
    slow-loris client would hold a connection forever. The body has the app's deadline."""

    header_seconds = HEADER_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        self.loop.call_later(self.header_seconds, self._headers_deadline, self.cycle)

    def _headers_deadline(self, cycle_then: object) -> None:
        # still on the request that was current when armed (or none), and it is not being
        # served: the next request's headers did not arrive in time
        idle = self.cycle is cycle_then and (self.cycle is None or self.cycle.response_complete)
        if idle and not self.transport.is_closing():
            log.info("closing a connection that sent no complete request headers in time")
            self.transport.close()


def serve(
    store: Store,
    host: str,
    port: int,
    doorbell_url: str | None = None,
    channel: str = DEFAULT_CHANNEL,
    max_body: int = MAX_BODY,
) -> None:
    app = Receiver(store, doorbell(doorbell_url, channel), max_body=max_body)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=GuardedH11Protocol,
        lifespan="off",
        limit_concurrency=MAX_CONNECTIONS,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,
        server_header=False,
        log_config=None,
        access_log=False,
    )
    uvicorn.Server(config).run()
