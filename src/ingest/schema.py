"""Load the versioned schema files in schemas/ and derive Arrow schemas from them.

The JSON files are the single source of truth: Parquet writers, DDL and tests all
derive from them, so a column cannot drift between code and contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import pyarrow as pa

_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
    "float64": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "list<string>": pa.list_(pa.string()),
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    nullable: bool
    description: str


@dataclass(frozen=True)
class Schema:
    name: str
    version: int
    description: str
    fields: tuple[Field, ...]
    sort_key: tuple[str, ...]

    @property
    def arrow(self) -> pa.Schema:
        return pa.schema(
            [pa.field(f.name, _TYPES[f.type], nullable=f.nullable) for f in self.fields],
            metadata={"newsflow.schema": f"{self.name}.v{self.version}"},
        )

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


def parse_schema(doc: dict) -> Schema:
    """Validate a schema document; unknown types are an error, not a silent string."""
    fields = []
    for raw in doc["fields"]:
        if raw["type"] not in _TYPES:
            raise ValueError(
                f"schema {doc['name']}: unknown type {raw['type']!r} for {raw['name']}"
            )
        fields.append(Field(raw["name"], raw["type"], bool(raw["nullable"]), raw["description"]))
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise ValueError(f"schema {doc['name']}: duplicate column names")
    return Schema(
        name=doc["name"],
        version=int(doc["version"]),
        description=doc.get("description", ""),
        fields=tuple(fields),
        sort_key=tuple(doc.get("sort_key", ())),
    )


@cache
def load(name: str, version: int = 1) -> Schema:
    text = resources.files("ingest.schemas").joinpath(f"{name}.v{version}.json").read_text("utf-8")
    return parse_schema(json.loads(text))


def article() -> Schema:
    return load("article", 1)


def reject() -> Schema:
    return load("reject", 1)


def index() -> Schema:
    return load("index", 1)


def compatibility_problems(released: Schema, current: Schema) -> list[str]:
    """What makes `current` unreadable by consumers of `released` (same name and version).

    Compatible: descriptions edited, nullable columns appended. Anything else (a column
    removed, renamed, reordered, retyped, made non-nullable, or a non-nullable one added)
    needs a new major version in a new file (and a new place in the store).
    """
    problems = []
    if (released.name, released.version) != (current.name, current.version):
        return [f"comparing {released.name} v{released.version} with {current.name} "
                f"v{current.version}"]  # fmt: skip
    old, new = released.fields, current.fields
    for i, field in enumerate(old):
        if i >= len(new):
            problems.append(f"column {field.name!r} removed")
            continue
        other = new[i]
        if other.name != field.name:
            problems.append(f"column {i + 1} is {other.name!r}, was {field.name!r}")
        elif other.type != field.type:
            problems.append(f"column {field.name!r} changed type {field.type} -> {other.type}")
        elif field.nullable and not other.nullable:
            problems.append(f"column {field.name!r} became non-nullable")
    for field in new[len(old) :]:
        if not field.nullable:
            problems.append(f"new column {field.name!r} must be nullable")
    return problems


def markdown(s: Schema) -> str:
    """The column table of the schema docs (schemas/README.md), generated from the file."""
    lines = [
        f"### {s.name} v{s.version}",
        "",
        s.description,
        "",
        "| column | type | nullable | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for f in s.fields:
        lines.append(
            f"| `{f.name}` | {f.type} | {'yes' if f.nullable else 'no'} | {f.description} |"
        )
    return "\n".join(lines) + "\n"
