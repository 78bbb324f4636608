"""The schema files are the contract: well-formed, and what the writers really write."""

from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from ingest import schema
from ingest.config import Feed, Settings
from ingest.run import run
from ingest.store import LocalStore
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss

SCHEMAS = Path(__file__).parents[1] / "schemas"


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.v*.json")), ids=lambda p: p.name)
def test_schema_files_are_well_formed(path: Path) -> None:
    doc = json.loads(path.read_text("utf-8"))
    parsed = schema.parse_schema(doc)
    assert path.name == f"{parsed.name}.v{parsed.version}.json"
    assert all(f.description.strip() for f in parsed.fields), "every column is documented"
    assert "schema_version" in parsed.names
    if parsed.name in ("article", "reject"):
        assert "run_id" in parsed.names
    assert set(parsed.sort_key) <= set(parsed.names)


def test_installed_package_reads_the_repo_schema_files() -> None:
    on_disk = json.loads((SCHEMAS / "article.v1.json").read_text("utf-8"))
    assert schema.article() == schema.parse_schema(on_disk)


def test_unknown_type_is_rejected() -> None:
    doc = {
        "name": "x",
        "version": 1,
        "fields": [{"name": "a", "type": "decimal", "nullable": True, "description": "d"}],
    }
    with pytest.raises(ValueError, match="unknown type 'decimal'"):
        schema.parse_schema(doc)


@pytest.mark.integration
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


SNAPSHOTS = Path(__file__).parent / "schema_snapshots"


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.v*.json")), ids=lambda p: p.name)
def test_released_schema_changes_only_compatibly(path: Path) -> None:
    snapshot = SNAPSHOTS / path.name
    assert snapshot.is_file(), f"{path.name} has no snapshot: copy it to {SNAPSHOTS.name}/"
    released = schema.parse_schema(json.loads(snapshot.read_text("utf-8")))
    current = schema.parse_schema(json.loads(path.read_text("utf-8")))
    problems = schema.compatibility_problems(released, current)
    assert problems == [], f"{path.name}: incompatible change, make it a new version: {problems}"


def _variant(change) -> list[str]:
    doc = json.loads((SCHEMAS / "article.v1.json").read_text("utf-8"))
    released = schema.parse_schema(doc)
    changed = json.loads(json.dumps(doc))
    change(changed["fields"])
    return schema.compatibility_problems(released, schema.parse_schema(changed))


def _new(nullable: bool) -> dict:
    return {"name": "extra", "type": "string", "nullable": nullable, "description": "d"}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda f: f.append(_new(True)), None),
        (lambda f: f[0].update(description="reworded"), None),
        (lambda f: f.pop(), "column 'extractor' removed"),
        (lambda f: f[2].update(name="final"), "column 3 is 'final', was 'final_url'"),
        (lambda f: f[-10].update(type="int64"), "column 'run_id' changed type string -> int64"),
        (lambda f: f[6].update(nullable=False), "column 'title' became non-nullable"),
        (lambda f: f.append(_new(False)), "new column 'extra' must be nullable"),
        (lambda f: f.insert(0, f.pop(1)), "column 1 is 'url', was 'article_id'"),
    ],
)
def test_compatibility_rules(change, problem: str | None) -> None:
    problems = _variant(change)
    assert (problems[0] if problems else None) == problem


def test_schema_docs_are_generated_from_the_files() -> None:
    docs = (SCHEMAS / "README.md").read_text("utf-8")
    for s in (schema.article(), schema.reject(), schema.index()):
        assert schema.markdown(s) in docs, f"schemas/README.md is stale for {s.name}"
