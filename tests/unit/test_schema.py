"""The schema files are the contract: well-formed, documented, and changed only compatibly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest import schema

SCHEMAS = Path(__file__).parents[2] / "schemas"


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


SNAPSHOTS = Path(__file__).parents[1] / "schema_snapshots"


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
        (lambda f: f.pop(), "column 'first_seen_at' removed"),
        (lambda f: f[2].update(name="final"), "column 3 is 'final', was 'final_url'"),
        (lambda f: f[-12].update(type="int64"), "column 'run_id' changed type string -> int64"),
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
