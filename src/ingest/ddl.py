"""Ready-to-run table definitions for warehouses.

`articles` and `rejects` are Delta tables: every engine reads them through its Delta
reader, which takes the schema and the committed files from the table's log (a glob would
also see files that compaction replaced or a crashed write left). The daily index stays
plain Parquet files, one per day, declared from the schema file.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest import schema
from ingest.schema import Schema

DIALECTS = ("duckdb", "athena", "trino", "spark")

_TYPES: dict[str, dict[str, str]] = {
    "duckdb": {"string": "VARCHAR", "int32": "INTEGER", "int64": "BIGINT", "bool": "BOOLEAN",
               "float64": "DOUBLE", "date": "DATE", "timestamp": "TIMESTAMPTZ",
               "list<string>": "VARCHAR[]"},
    "athena": {"string": "string", "int32": "int", "int64": "bigint", "bool": "boolean",
               "float64": "double", "date": "date", "timestamp": "timestamp",
               "list<string>": "array<string>"},
    "trino": {"string": "varchar", "int32": "integer", "int64": "bigint", "bool": "boolean",
              "float64": "double", "date": "date", "timestamp": "timestamp(3)",
              "list<string>": "array(varchar)"},
    "spark": {"string": "STRING", "int32": "INT", "int64": "BIGINT", "bool": "BOOLEAN",
              "float64": "DOUBLE", "date": "DATE", "timestamp": "TIMESTAMP",
              "list<string>": "ARRAY<STRING>"},
}  # fmt: skip


@dataclass(frozen=True)
class Table:
    name: str
    schema: Schema
    prefix: str  # under the store root
    partition: str
    delta: bool


TABLES = (
    Table("articles", schema.article(), "articles", "ingest_date", delta=True),
    Table("rejects", schema.reject(), "rejects", "ingest_date", delta=True),
    Table("latest_news", schema.index(), "index", "date", delta=False),
)


def _location(root: str, prefix: str, dialect: str) -> str:
    root = root.rstrip("/")
    if dialect == "spark" and root.startswith("s3://"):
        root = "s3a://" + root[len("s3://") :]  # Hadoop's S3 connector scheme
    return f"{root}/{prefix}/"


def _quote(value: str) -> str:
    return value.replace("'", "''")


def delta_ddl(table: Table, root: str, dialect: str) -> str:
    """The engine's Delta reader on the table's location; columns come from the log."""
    where = _quote(_location(root, table.prefix, dialect).rstrip("/"))
    comment = (
        f"-- {table.name}: Delta table, {table.schema.name} v{table.schema.version} "
        f"(see schemas/), partitioned by {table.partition}"
    )
    if dialect == "duckdb":
        return (
            f"{comment}\n-- needs the delta extension (and httpfs with an S3 secret for s3://)\n"
            f"CREATE OR REPLACE VIEW {table.name} AS SELECT * FROM delta_scan('{where}');\n"
        )
    if dialect == "athena":
        return (
            f"{comment}\nCREATE EXTERNAL TABLE IF NOT EXISTS {table.name}\n"
            f"LOCATION '{where}/'\nTBLPROPERTIES ('table_type' = 'DELTA');\n"
        )
    if dialect == "trino":
        return (
            f"{comment}\n-- Trino's Delta Lake connector, catalog 'delta'\n"
            f"CALL delta.system.register_table(schema_name => 'newsflow', "
            f"table_name => '{table.name}', table_location => '{where}');\n"
        )
    return f"{comment}\nCREATE TABLE IF NOT EXISTS {table.name}\nUSING DELTA\nLOCATION '{where}';\n"


def table_ddl(table: Table, root: str, dialect: str) -> str:
    if table.delta:
        return delta_ddl(table, root, dialect)
    types = _TYPES[dialect]
    cols = [(f.name, types[f.type]) for f in table.schema.fields]
    where = _quote(_location(root, table.prefix, dialect))
    comment = f"-- {table.name}: {table.schema.name} v{table.schema.version}, from schemas/"
    if dialect == "duckdb":
        columns = ", ".join(f"'{n}': '{t}'" for n, t in cols)
        return (
            f"{comment}\nCREATE OR REPLACE VIEW {table.name} AS\nSELECT * FROM read_parquet(\n"
            f"  '{where}**/*.parquet',\n  hive_partitioning = true,\n"
            f"  hive_types = {{'{table.partition}': DATE}},\n  union_by_name = true\n);\n"
            f"-- column types: {{{columns}}}\n"
            "-- (DuckDB binds a view when it is created: the prefix must hold a file by then)\n"
        )
    body = ",\n".join(f"  {n} {t}" for n, t in cols)
    if table.prefix == "index" and dialect in ("athena", "trino"):
        comment += (
            f"\n-- {dialect} reads every file under a location, and index/date=D/ also holds"
            "\n-- latest-news.json/.xml/.html: query the index from DuckDB, Spark or Polars"
            "\n-- (they glob *.parquet), or copy the Parquet files to a location of their own."
        )
    if dialect == "athena":
        return (
            f"{comment}\nCREATE EXTERNAL TABLE IF NOT EXISTS {table.name} (\n{body}\n)\n"
            f"PARTITIONED BY ({table.partition} date)\nSTORED AS PARQUET\n"
            f"LOCATION '{where}'\nTBLPROPERTIES (\n  'projection.enabled' = 'true',\n"
            f"  'projection.{table.partition}.type' = 'date',\n"
            f"  'projection.{table.partition}.format' = 'yyyy-MM-dd',\n"
            f"  'projection.{table.partition}.range' = '2020-01-01,NOW',\n"
            f"  'projection.{table.partition}.interval' = '1',\n"
            f"  'projection.{table.partition}.interval.unit' = 'DAYS',\n"
            f"  'storage.location.template' = '{where}{table.partition}=${{{table.partition}}}/'\n"
            ");\n"
        )
    if dialect == "trino":
        return (
            f"{comment}\nCREATE TABLE IF NOT EXISTS hive.newsflow.{table.name} (\n{body},\n"
            f"  {table.partition} date\n)\nWITH (\n  format = 'PARQUET',\n"
            f"  external_location = '{where}',\n  partitioned_by = ARRAY['{table.partition}']\n);\n"
            f"CALL hive.system.sync_partition_metadata('newsflow', '{table.name}', 'ADD');\n"
        )
    return (
        f"{comment}\nCREATE TABLE IF NOT EXISTS {table.name} (\n{body},\n"
        f"  {table.partition} DATE\n)\nUSING PARQUET\nPARTITIONED BY ({table.partition})\n"
        f"LOCATION '{where}'\nOPTIONS (pathGlobFilter '*.parquet');\n"
        f"MSCK REPAIR TABLE {table.name};\n"
    )


def ddl(dialect: str, root: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    header = f"-- newsflow tables for {dialect}; store root {root}\n"
    if dialect == "trino":
        header += "CREATE SCHEMA IF NOT EXISTS delta.newsflow;\n"
        header += "CREATE SCHEMA IF NOT EXISTS hive.newsflow;\n"
    return header + "\n".join(table_ddl(t, root, dialect) for t in TABLES)
