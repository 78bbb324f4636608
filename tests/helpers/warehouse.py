"""A DuckDB connection with the Delta (and, for S3, httpfs) extension loaded, as the
warehouse tests read the tables (test_warehouse)."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import duckdb_extension_delta
import duckdb_extension_httpfs


def s3_settings() -> dict[str, str]:
    return {
        "endpoint": os.environ["AWS_ENDPOINT_URL"],
        "key": os.environ["AWS_ACCESS_KEY_ID"],
        "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
        "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }


def _extension(package: object, name: str) -> str:
    (path,) = glob.glob(
        str(Path(package.__file__).parent / f"**/{name}.duckdb_extension"), recursive=True
    )
    return path


def duckdb_connection(root: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"allow_unsigned_extensions": True})
    con.execute(f"LOAD '{_extension(duckdb_extension_delta, 'delta')}'")
    if root.startswith("s3://"):
        con.execute(f"LOAD '{_extension(duckdb_extension_httpfs, 'httpfs')}'")
        s3 = s3_settings()
        con.execute(
            "CREATE SECRET (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path',"
            " USE_SSL false)",
            [s3["key"], s3["secret"], s3["region"], urlsplit(s3["endpoint"]).netloc],
        )
    return con
