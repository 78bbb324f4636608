"""The HTTP client's address guard and its errors, before any connection is made: what it
refuses never reaches a server."""

from __future__ import annotations

import pytest

from ingest.config import Settings
from ingest.net import FetchError, HttpClient
from tests.helpers.net import LOOPBACK, client


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/latest/meta-data/",  # decimal
        "http://0251.0376.0251.0376/",  # octal
        "http://0xa9fea9fe/",  # hex
        "http://[::ffff:169.254.169.254]/",  # IPv4-mapped IPv6
        "http://[::ffff:a9fe:a9fe]/",
    ],
)
def test_metadata_address_refused_in_any_spelling(url: str) -> None:
    c = client(allow_networks=[*LOOPBACK, "169.254.0.0/16", "::ffff:0:0/96"])
    with pytest.raises(FetchError) as err:
        c.get(url)
    assert err.value.reason == "blocked_address"
    assert "metadata" in err.value.detail


def test_userinfo_does_not_hide_the_real_host() -> None:
    # The host of this URL is 127.0.0.1 (nothing listens on port 1), not the metadata address.
    with pytest.raises(FetchError) as err:
        client().get("http://169.254.169.254:80@127.0.0.1:1/")
    assert err.value.reason == "connection_error"
    with pytest.raises(FetchError) as err:
        HttpClient(Settings.from_env({}, http_retries=0)).get("http://169.254.169.254@127.0.0.1:1/")
    assert err.value.reason == "blocked_address" and "127.0.0.1" in err.value.detail


def test_errors_survive_pickling() -> None:
    """Feed parsing runs in worker processes: its errors must cross back intact."""
    import pickle

    from ingest.net import BlockedAddress

    err = FetchError("http_503", "down", status=503, transient=True)
    back = pickle.loads(pickle.dumps(err))
    assert (back.reason, back.detail, back.status, back.transient) == (
        "http_503",
        "down",
        503,
        True,
    )
    blocked = pickle.loads(pickle.dumps(BlockedAddress("10.0.0.1 is private")))
    assert isinstance(blocked, BlockedAddress) and blocked.reason == "blocked_address"


def test_ipv6_zone_id_and_malformed_urls_refused_by_the_guard() -> None:
    with pytest.raises(FetchError) as err:
        client(allow_networks=["::/0", "0.0.0.0/0"]).get("http://[::1%25lo]/")
    assert err.value.reason == "blocked_address" and "zone" in err.value.detail
    for bad in ("https://[::1", "http://example.org:99999/"):
        with pytest.raises(FetchError) as err:
            client().get(bad)
        assert err.value.reason == "bad_url", bad
