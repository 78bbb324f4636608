"""The schema files are what the writers really write: a real run's Delta tables."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

from ingest import schema
from ingest.config import Feed, Settings
from ingest.run import run
from ingest.store import LocalStore
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss


def test_written_parquet_matches_schema_files(tmp_path: Path) -> None:
    with FixtureServer().running() as srv:
        srv.add(
            "/a",
            Route(
                article_html(
                    "Schema", paragraphs(3), published="2025-12-18T10:00:00+01:00"
                ).encode()
            ),
        )
        srv.add("/gone", Route(b"x", status=404))
        items = [{"title": "a", "link": srv.url("/a")}, {"title": "g", "link": srv.url("/gone")}]
        srv.add("/f.xml", Route(rss(items), content_type="application/rss+xml"))
        store = LocalStore(tmp_path)
        settings = Settings.from_env(
            {}, allow_networks=["127.0.0.0/8"], http_retries=0, workers=1, progress=False
        )
        run(store, [Feed("f", srv.url("/f.xml"))], settings)
    for kind, expected in (("articles", schema.article()), ("rejects", schema.reject())):
        table = DeltaTable(store.table_uri(kind))
        assert f"schema {expected.name} v{expected.version}" in table.metadata().description
        # the table: the schema file's columns, then the partition column
        assert pa.schema(table.schema()).names == [*expected.names, "ingest_date"]
        (path,) = pa.table(table.get_add_actions())["path"].to_pylist()
        data = pq.read_table(io.BytesIO(store.get_bytes(f"{kind}/{unquote(path)}")))
        assert data.schema.equals(expected.arrow, check_metadata=False), kind
        assert data["schema_version"].to_pylist() == [expected.version]
        if kind == "articles":
            published = data["published_at"][0].as_py()
            assert published.utcoffset().total_seconds() == 0 and published.hour == 9
