"""The offline demo publisher's manifest, loaded without serving it."""

from __future__ import annotations

import pytest

from newsflow_dev.demo_site import DemoSite, load_site
from tests.helpers.demo_site import EXPECTED_FEEDS


@pytest.fixture(scope="module")
def site() -> DemoSite:
    return load_site()


def test_manifest_lists_the_expected_feeds(site: DemoSite) -> None:
    assert {f.path: (f.format, f.entries) for f in site.feeds} == {
        path: (fmt, count) for path, (fmt, _, count) in EXPECTED_FEEDS.items()
    }
