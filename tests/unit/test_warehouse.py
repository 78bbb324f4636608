"""The DDL without a server: DuckDB's on a fresh local store, and the other dialects' text."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.ddl import ddl
from tests.helpers.warehouse import duckdb_connection


def test_duckdb_ddl_works_on_a_fresh_store(tmp_path: Path) -> None:
    """Before the first reject or article: the tables exist and read as empty."""
    from ingest.lake import Lake
    from ingest.store import LocalStore

    store = LocalStore(tmp_path / "fresh")
    Lake(store).recover()
    con = duckdb_connection(str(store.root))
    for statement in ddl("duckdb", str(store.root)).split(";\n"):
        if "latest_news" not in statement and statement.strip():
            con.execute(statement)
    assert con.execute("SELECT count(*) FROM articles").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM rejects").fetchone() == (0,)


@pytest.mark.parametrize(
    ("dialect", "articles"),
    [
        ("athena", "LOCATION 's3://news/lake/articles/'\nTBLPROPERTIES ('table_type' = 'DELTA')"),
        ("trino", "table_name => 'articles', table_location => 's3://news/lake/articles'"),
        ("spark", "articles\nUSING DELTA\nLOCATION 's3a://news/lake/articles'"),
    ],
)
def test_other_dialects_read_the_delta_tables_and_declare_the_index(
    dialect: str, articles: str
) -> None:
    from ingest import schema

    text = ddl(dialect, "s3://news/lake")
    assert articles in text
    assert articles.replace("articles", "rejects") in text
    assert "latest_news (" in text and "date date" in text.lower()
    for field in schema.index().fields:
        assert f"  {field.name} " in text
