"""The warehouse contract: DuckDB, Polars, pyarrow.dataset and pandas read what we commit,
by glob with Hive partitioning, on local disk and over S3, and all agree."""

from __future__ import annotations

import datetime as dt
import glob
import os
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import duckdb_extension_httpfs
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from fixture_server import FixtureServer, Route, article_html, paragraphs, rss
from pyarrow import fs

from ingest import index
from ingest.config import Feed, Settings
from ingest.ddl import ddl
from ingest.pipeline import run
from ingest.store import Store

pytestmark = pytest.mark.integration


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
        srv.add("/f.xml", Route(rss(items), content_type="application/rss+xml"))
        settings = Settings.from_env(
            {},
            allow_networks=["127.0.0.0/8"],
            http_retries=0,
            workers=2,
            part_rows=3,
            progress=False,
        )
        report = run(store, [Feed("wh", srv.url("/f.xml"))], settings)
    assert report.articles_written == 7
    assert report.dates_touched == ["2025-12-16", "2025-12-17", "2025-12-18"]
    index.build(store, [dt.date.fromisoformat(d) for d in report.dates_touched])
    return store, store.url_for("").rstrip("/")


def s3_settings() -> dict[str, str]:
    return {
        "endpoint": os.environ["AWS_ENDPOINT_URL"],
        "key": os.environ["AWS_ACCESS_KEY_ID"],
        "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
        "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }


def duckdb_connection(root: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"allow_unsigned_extensions": True})
    if root.startswith("s3://"):
        (extension,) = glob.glob(
            str(Path(duckdb_extension_httpfs.__file__).parent / "**/httpfs.duckdb_extension"),
            recursive=True,
        )
        con.execute(f"LOAD '{extension}'")
        s3 = s3_settings()
        con.execute(
            "CREATE SECRET (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path',"
            " USE_SSL false)",
            [s3["key"], s3["secret"], s3["region"], urlsplit(s3["endpoint"]).netloc],
        )
    return con


def read_duckdb(root: str, prefix: str, partition: str) -> pa.Table:
    con = duckdb_connection(root)
    return con.execute(
        f"SELECT * FROM read_parquet('{root}/{prefix}/**/*.parquet', hive_partitioning = true, "
        f"hive_types = {{'{partition}': DATE}})"
    ).to_arrow_table()


def read_polars(root: str, prefix: str) -> pl.DataFrame:
    options = None
    if root.startswith("s3://"):
        s3 = s3_settings()
        options = {"aws_endpoint_url": s3["endpoint"], "aws_access_key_id": s3["key"],
                   "aws_secret_access_key": s3["secret"], "aws_region": s3["region"],
                   "aws_allow_http": "true"}  # fmt: skip
    return pl.scan_parquet(
        f"{root}/{prefix}/**/*.parquet", hive_partitioning=True, try_parse_hive_dates=True,
        storage_options=options,
    ).collect()  # fmt: skip


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


def read_pyarrow(root: str, prefix: str, partition: str) -> pa.Table:
    return parquet_dataset(root, prefix, partition).to_table()


def read_pandas(root: str, prefix: str, partition: str) -> pd.DataFrame:
    if prefix == "index":  # a folder with other renderings: hand pandas the Parquet files
        return parquet_dataset(root, prefix, partition).to_table().to_pandas()
    filesystem, base = arrow_filesystem(root)
    partitioning = ds.partitioning(pa.schema([(partition, pa.date32())]), flavor="hive")
    return pd.read_parquet(f"{base}/{prefix}", engine="pyarrow", filesystem=filesystem,
                           partitioning=partitioning)  # fmt: skip


@pytest.mark.parametrize(
    ("prefix", "partition", "key", "rows"),
    [("articles", "ingest_date", "article_id", 7), ("index", "date", "article_id", 7)],
)
def test_every_reader_sees_the_same_rows(
    lake: tuple[Store, str], prefix: str, partition: str, key: str, rows: int
) -> None:
    _, root = lake
    duck = read_duckdb(root, prefix, partition)
    polars = read_polars(root, prefix)
    arrow = read_pyarrow(root, prefix, partition)
    pandas = read_pandas(root, prefix, partition)
    ids = sorted(duck[key].to_pylist())
    assert len(ids) == len(set(ids)) == rows
    assert sorted(polars[key].to_list()) == ids
    assert sorted(arrow[key].to_pylist()) == ids
    assert sorted(pandas[key].tolist()) == ids

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


@pytest.mark.parametrize("dialect", ["athena", "trino", "spark"])
def test_other_dialects_name_every_column_and_the_partition(dialect: str) -> None:
    from ingest import schema

    text = ddl(dialect, "s3://news/lake")
    for table, partition in (("articles", "ingest_date"), ("latest_news", "date")):
        assert f"{table} (" in text
        assert f"{partition} date" in text.lower()
    for field in schema.article().fields + schema.index().fields:
        assert f"  {field.name} " in text
    expected = "s3://news/lake/articles/" if dialect == "athena" else "s3a://news/lake/articles/"
    assert expected in text
