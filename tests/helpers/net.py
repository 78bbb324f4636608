"""The guarded HTTP client as the net tests make it: loopback allowed, no retries."""

from __future__ import annotations

from ingest.config import Settings
from ingest.net import HttpClient

LOOPBACK = ["127.0.0.0/8"]


def client(**kw: object) -> HttpClient:
    base = {"allow_networks": LOOPBACK, "http_retries": 0, "total_timeout": 5.0}
    base.update(kw)
    return HttpClient(Settings.from_env({}, **base))
