"""The feeds the demo site is expected to serve (test_demo_site)."""

from __future__ import annotations

EXPECTED_FEEDS = {
    "/world/rss.xml": ("rss20", "application/rss+xml", 6),
    "/economy/rss.xml": ("rss20", "application/rss+xml", 7),
    "/science/atom.xml": ("atom10", "application/atom+xml", 6),
    "/top.rdf": ("rss10", "application/rdf+xml", 3),
}
