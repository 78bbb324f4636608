"""The warehouse contract: DuckDB, Polars, deltalake (pyarrow, pandas) read the Delta tables
we commit, on local disk and over S3, and agree, before and after `ingest maintain`; the
daily index is read as plain Parquet by glob with Hive partitioning."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable
from pyarrow import fs

from ingest import index
from ingest.config import Feed, Settings
from ingest.ddl import ddl
from ingest.lake.maintain import maintain
from ingest.run import run
from ingest.store import Store
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss
from tests.helpers.warehouse import duckdb_connection, s3_settings

DELTA_TABLES = ("articles", "rejects")


@pytest.fixture
def lake(store: Store, request: pytest.FixtureRequest) -> tuple[Store, str]:
    """A store holding articles, rejects and an index built by real runs."""
    with FixtureServer().running() as srv:
        items = []
        for i in range(7):
            published = f"2025-12-{16 + i % 3}T{8 + i:02d}:15:00+00:00"
            html = article_html(f"Warehouse story {i}", paragraphs(300 + i), published=published)
            srv.add(f"/w/{i}", Route(html.encode()))
            items.append({"title": f"W{i}", "link": srv.url(f"/w/{i}")})
        srv.add("/gone", Route(b"x", status=404))
        items.append({"title": "gone", "link": srv.url("/gone")})
        settings = Settings.from_env(
            {},
            allow_networks=["127.0.0.0/8"],
            http_retries=0,
            workers=2,
            part_rows=3,
            progress=False,
        )
        reports = []
        for first, last in ((0, 3), (3, 5), (5, 8)):  # three runs: three small files
            srv.add(f"/f{first}.xml", Route(rss(items[first:last]), content_type="text/xml"))
            reports.append(run(store, [Feed(f"wh{first}", srv.url(f"/f{first}.xml"))], settings))
    assert sum(r.articles_written for r in reports) == 7
    touched = sorted({d for r in reports for d in r.dates_touched})
    assert touched == ["2025-12-16", "2025-12-17", "2025-12-18"]
    index.build(store, [dt.date.fromisoformat(d) for d in touched])
    return store, store.url_for("").rstrip("/")


def read_duckdb(root: str, prefix: str, partition: str) -> pa.Table:
    con = duckdb_connection(root)
    if prefix in DELTA_TABLES:
        return con.execute(f"SELECT * FROM delta_scan('{root}/{prefix}')").to_arrow_table()
    return con.execute(
        f"SELECT * FROM read_parquet('{root}/{prefix}/**/*.parquet', hive_partitioning = true, "
        f"hive_types = {{'{partition}': DATE}})"
    ).to_arrow_table()


def polars_options(root: str) -> dict[str, str] | None:
    if not root.startswith("s3://"):
        return None
    s3 = s3_settings()
    return {"aws_endpoint_url": s3["endpoint"], "aws_access_key_id": s3["key"],
            "aws_secret_access_key": s3["secret"], "aws_region": s3["region"],
            "aws_allow_http": "true"}  # fmt: skip


def read_polars(root: str, prefix: str) -> pl.DataFrame:
    if prefix in DELTA_TABLES:
        return pl.scan_delta(f"{root}/{prefix}", storage_options=polars_options(root)).collect()
    return pl.scan_parquet(
        f"{root}/{prefix}/**/*.parquet", hive_partitioning=True, try_parse_hive_dates=True,
        storage_options=polars_options(root),
    ).collect()  # fmt: skip


def delta_table(store: Store, prefix: str) -> DeltaTable:
    return DeltaTable(store.table_uri(prefix), storage_options=store.storage_options())


def arrow_filesystem(root: str) -> tuple[fs.FileSystem, str]:
    if root.startswith("s3://"):
        s3 = s3_settings()
        parts = urlsplit(s3["endpoint"])
        filesystem = fs.S3FileSystem(
            access_key=s3["key"], secret_key=s3["secret"], region=s3["region"],
            endpoint_override=parts.netloc, scheme=parts.scheme,
        )  # fmt: skip
        return filesystem, root[len("s3://") :]
    return fs.LocalFileSystem(), root


def parquet_dataset(root: str, prefix: str, partition: str) -> ds.Dataset:
    """The *.parquet files under prefix (index/ also holds the JSON, Atom and HTML files)."""
    filesystem, base = arrow_filesystem(root)
    selector = fs.FileSelector(f"{base}/{prefix}", recursive=True)
    files = sorted(
        i.path for i in filesystem.get_file_info(selector) if i.path.endswith(".parquet")
    )
    partitioning = ds.partitioning(pa.schema([(partition, pa.date32())]), flavor="hive")
    return ds.dataset(files, format="parquet", filesystem=filesystem, partitioning=partitioning,
                      partition_base_dir=f"{base}/{prefix}")  # fmt: skip


def read_pyarrow(store: Store, root: str, prefix: str, partition: str) -> pa.Table:
    if prefix in DELTA_TABLES:
        return pa.table(delta_table(store, prefix).to_pyarrow_table())
    return parquet_dataset(root, prefix, partition).to_table()


def read_pandas(store: Store, root: str, prefix: str, partition: str) -> pd.DataFrame:
    if prefix in DELTA_TABLES:
        return delta_table(store, prefix).to_pandas()
    # index/ also holds the other renderings: hand pandas the Parquet files
    return parquet_dataset(root, prefix, partition).to_table().to_pandas()


def read_all(store: Store, root: str, prefix: str, partition: str, key: str) -> list[str]:
    """The sorted keys, after checking that every reader returned the same ones."""
    duck = read_duckdb(root, prefix, partition)
    ids = sorted(duck[key].to_pylist())
    assert sorted(read_polars(root, prefix)[key].to_list()) == ids
    assert sorted(read_pyarrow(store, root, prefix, partition)[key].to_pylist()) == ids
    assert sorted(read_pandas(store, root, prefix, partition)[key].tolist()) == ids
    return ids


@pytest.mark.parametrize(
    ("prefix", "partition", "key", "rows"),
    [
        ("articles", "ingest_date", "article_id", 7),
        ("rejects", "ingest_date", "url", 1),
        ("index", "date", "article_id", 7),
    ],
)
def test_every_reader_sees_the_same_rows(
    lake: tuple[Store, str], prefix: str, partition: str, key: str, rows: int
) -> None:
    store, root = lake
    duck = read_duckdb(root, prefix, partition)
    polars = read_polars(root, prefix)
    arrow = read_pyarrow(store, root, prefix, partition)
    pandas = read_pandas(store, root, prefix, partition)
    ids = read_all(store, root, prefix, partition, key)
    assert len(ids) == len(set(ids)) == rows
    if prefix == "rejects":
        return

    # timestamps: tz-aware UTC everywhere (DuckDB names its session zone, Etc/UTC here)
    assert duck.schema.field("published_at").type.tz in ("UTC", "Etc/UTC")
    assert duck.schema.field("published_at").type.unit == "us"
    assert polars.schema["published_at"] == pl.Datetime("us", "UTC")
    assert arrow.schema.field("published_at").type == pa.timestamp("us", tz="UTC")
    assert str(pandas["published_at"].dt.tz) == "UTC"
    # lists are lists
    list_column = "authors" if prefix == "articles" else "other_sources"
    assert pa.types.is_list(duck.schema.field(list_column).type)
    assert polars.schema[list_column] == pl.List(pl.String)
    assert pa.types.is_list(arrow.schema.field(list_column).type)
    assert all(hasattr(v, "__len__") and not isinstance(v, str) for v in pandas[list_column])
    # the partition column is a date
    assert duck.schema.field(partition).type == pa.date32()
    assert polars.schema[partition] == pl.Date
    assert arrow.schema.field(partition).type == pa.date32()
    assert isinstance(pandas[partition].iloc[0], dt.date)


def test_maintenance_changes_files_never_what_readers_count(lake: tuple[Store, str]) -> None:
    store, root = lake
    before = read_all(store, root, "articles", "ingest_date", "article_id")
    rejects = read_all(store, root, "rejects", "ingest_date", "url")
    files_before = len(delta_table(store, "articles").file_uris())
    assert files_before >= 3  # part_rows=3: the run wrote several small files
    result = maintain(store, retention_hours=0)  # vacuum at once: nobody else is reading
    assert result.compacted["articles"] == files_before
    assert len(delta_table(store, "articles").file_uris()) == 1
    assert result.vacuumed["articles"] == files_before
    assert read_all(store, root, "articles", "ingest_date", "article_id") == before
    assert read_all(store, root, "rejects", "ingest_date", "url") == rejects
    again = maintain(store, retention_hours=0)
    assert again.compacted["articles"] == 0 and again.vacuumed["articles"] == 0


def test_index_partitions_are_publication_days(lake: tuple[Store, str]) -> None:
    _, root = lake
    con = duckdb_connection(root)
    got = con.execute(
        f"SELECT date, count(*), bool_and(CAST(published_at AS DATE) = date) "
        f"FROM read_parquet('{root}/index/**/*.parquet', hive_partitioning = true) "
        "GROUP BY date ORDER BY date"
    ).fetchall()
    assert [(str(d), n, ok) for d, n, ok in got] == [
        ("2025-12-16", 3, True), ("2025-12-17", 2, True), ("2025-12-18", 2, True),
    ]  # fmt: skip


def test_duckdb_ddl_runs_against_the_store(lake: tuple[Store, str]) -> None:
    _, root = lake
    con = duckdb_connection(root)
    con.execute(ddl("duckdb", root))
    assert con.execute("SELECT count(*) FROM articles").fetchone() == (7,)
    assert con.execute("SELECT count(*) FROM rejects").fetchone() == (1,)
    assert con.execute("SELECT count(DISTINCT date) FROM latest_news").fetchone() == (3,)
    columns = {r[0]: r[1] for r in con.execute("DESCRIBE articles").fetchall()}
    assert columns["ingest_date"] == "DATE"
    assert columns["published_at"] == "TIMESTAMP WITH TIME ZONE"
    assert columns["authors"] == "VARCHAR[]"
