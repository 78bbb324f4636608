"""How a run splits its feeds into shards, without running it."""

from __future__ import annotations

from ingest.config import Feed


def test_feeds_of_one_publisher_share_a_shard() -> None:
    from ingest.run import split_feeds

    urls = {
        "a-world": "https://www.news-a.example/world.xml",
        "a-tech": "https://news-a.example/tech.xml",
        "a-sport": "https://NEWS-A.example/sport.xml",
        "b-main": "https://b.example/rss",
        "c-main": "https://c.example/rss",
        "c-blog": "https://c.example/blog/rss",
    }
    feeds = [Feed(name, url) for name, url in urls.items()]
    shards = split_feeds(feeds, 2)
    assert [[f.name for f in s] for s in shards] == [
        ["a-sport", "a-tech", "a-world"], ["b-main", "c-blog", "c-main"]]  # fmt: skip
    assert split_feeds(list(reversed(feeds)), 2) == shards  # the order read does not matter
    # more shards than publishers: no empty shard
    assert len(split_feeds(feeds, 8)) == 3
    assert sorted(f.name for s in split_feeds(feeds, 8) for f in s) == sorted(urls)
