"""Feed documents that both the parsing and the polling tests read (test_feeds)."""

from __future__ import annotations

import json
from typing import Any

RSS2 = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>T</title><link>https://news.example/</link>
<language>en-gb</language>
<item><title>First &amp; foremost</title><link>https://news.example/a/1</link>
<pubDate>Thu, 18 Dec 2025 10:15:00 +0200</pubDate><author>jane@news.example (Jane Doe)</author>
<category>World</category>
<description>&lt;p&gt;Lead &lt;b&gt;text&lt;/b&gt;&lt;/p&gt;</description></item>
<item><title>No link here</title><description>x</description></item>
</channel></rss>"""

JSON_10 = {
    "version": "https://jsonfeed.org/version/1",
    "title": "Old",
    "author": {"name": "Feed Author"},
    "items": [
        {
            "id": "a",
            "url": "https://news.example/old/a",
            "title": "Old style",
            "author": {"name": "Item Author"},
            "date_published": "2025-12-17T08:00:00Z",
        },
        {"id": "b", "url": "/old/b", "date_published": "2025-12-16"},
    ],
}


def jsonfeed(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode("utf-8")
