"""The address guard (SSRF): a connection resolves its host once, checks every resolved
address and connects to the checked address, so DNS rebinding cannot slip a private
address in between check and use; every redirect hop gets a new guarded connection."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection

from ingest.net.deadline import Deadline, fetch_context
from ingest.net.errors import BlockedAddress, FetchError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata endpoints: refused even when their range is explicitly allowed.
ALWAYS_BLOCKED: tuple[IPAddress, ...] = (
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
)


def effective_address(addr: IPAddress) -> IPAddress:
    """Unwrap IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64 well-known)."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.sixtofour is not None:
            return addr.sixtofour
        if addr in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


def address_refusal(addr: IPAddress, allowed: Iterable[IPNetwork]) -> str | None:
    """Why this address may not be contacted, or None when it may."""
    addr = effective_address(addr)
    if addr in ALWAYS_BLOCKED:
        return f"{addr} is a cloud metadata address"
    if any(addr.version == net.version and addr in net for net in allowed):
        return None
    if not addr.is_global or addr.is_multicast or addr.is_reserved or addr.is_unspecified:
        return f"{addr} is not a public address (allow it with --allow-network)"
    return None


# Name resolution has no timeout of its own: it runs here so a fetch can stop waiting.
resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="resolve")


def resolve(host: str, port: int, timeout: float, deadline: Deadline | None) -> list[Any]:
    future = resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    ends = time.monotonic() + max(timeout, 0.001)
    try:
        while True:  # in slices, so a fetch cut short (SIGTERM) stops waiting at once
            left = ends - time.monotonic()
            if left <= 0 or (deadline is not None and deadline.expired):
                raise FuturesTimeout
            try:
                return future.result(timeout=min(left, 0.25))
            except FuturesTimeout:
                continue
    except FuturesTimeout:
        raise FetchError(
            "timeout", f"resolving {host} took longer than the fetch deadline", transient=True
        ) from None
    except socket.gaierror as exc:
        raise FetchError("dns_error", f"cannot resolve {host}: {exc}", transient=True) from None


def guarded_connection(base: type[HTTPConnection], allowed: tuple[IPNetwork, ...]) -> type:
    class Guarded(base):  # type: ignore[misc, valid-type]
        def _new_conn(self) -> socket.socket:
            host = self._dns_host.strip("[]")
            deadline: Deadline | None = getattr(fetch_context, "deadline", None)
            budget = deadline.remaining() if deadline is not None else 30.0
            infos = resolve(host, self.port, budget, deadline)
            refusals = []
            last: OSError | None = None
            for family, socktype, proto, _, sockaddr in infos:
                addr = ipaddress.ip_address(sockaddr[0].split("%")[0])
                why = address_refusal(addr, allowed)
                if why:
                    refusals.append(why)
                    continue
                sock = socket.socket(family, socktype, proto)
                if deadline is not None:
                    deadline.attach(sock)
                try:
                    for opt in self.socket_options or ():
                        sock.setsockopt(*opt)
                    if self.timeout is not None:
                        sock.settimeout(self.timeout)
                    sock.connect(sockaddr)
                    return sock
                except OSError as exc:
                    sock.close()
                    last = exc
            if refusals and last is None:
                raise BlockedAddress(f"{host}: {refusals[0]}")
            raise urllib3.exceptions.NewConnectionError(self, f"cannot connect to {host}: {last}")

        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            # A pooled connection's socket joins this fetch's deadline before we wait on it.
            deadline: Deadline | None = getattr(fetch_context, "deadline", None)
            if deadline is not None and self.sock is not None:
                deadline.attach(self.sock)
            if self.sock is not None:  # the address that answered, for the raw archive
                with contextlib.suppress(OSError):
                    fetch_context.peer = self.sock.getpeername()[0]
            return super().getresponse(*args, **kwargs)

    return Guarded


def checked_host(url: str) -> str:
    """The pool key of a URL we may request, or a FetchError saying why not."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as exc:
        raise FetchError("bad_url", f"malformed URL {url[:200]!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise FetchError("bad_url", f"not an http(s) URL: {url[:200]!r}")
    if "%" in hostname:  # an IPv6 zone id names a local interface: never a publisher
        raise BlockedAddress(f"{hostname}: IPv6 zone ids are refused")
    return parts.netloc.lower()
