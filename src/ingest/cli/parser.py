"""The `ingest` command line: one sub-parser per command."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from ingest import __version__
from ingest.cli.commands import (
    cmd_ddl,
    cmd_demo,
    cmd_index,
    cmd_maintain,
    cmd_migrate,
    cmd_receive,
    cmd_reextract,
    cmd_run,
    cmd_status,
)

DEMO_PORT = 8631


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingest", description="newsflow: news feeds -> articles as Parquet on object storage"
    )
    parser.add_argument("--version", action="version", version=f"newsflow {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--allow-network",
        action="append",
        metavar="CIDR",
        help="let the fetch guard reach this private range, e.g. 127.0.0.0/8 (repeatable; "
        "also INGEST_ALLOW_NETWORKS). Cloud metadata addresses stay refused.",
    )
    common.add_argument(
        "--workers", type=_positive_int, help="extraction processes (default: cores)"
    )
    common.add_argument("--user-agent", help="User-Agent sent to publishers (INGEST_USER_AGENT)")
    common.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_run(sub, common)
    _add_index(sub)
    _add_status(sub)
    _add_maintain(sub)
    _add_migrate(sub)
    _add_reextract(sub, common)
    _add_receive(sub)
    _add_ddl(sub)
    _add_demo(sub, common)
    return parser


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {value!r}")
    return number


def _percent(value: str) -> float:
    number = _non_negative_float(value)
    if not 0 < number <= 100:
        raise argparse.ArgumentTypeError(f"not a percentage in (0, 100]: {value!r}")
    return number


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {value!r}")
    return number


def _add_run(sub: Any, common: argparse.ArgumentParser) -> None:
    p_run = sub.add_parser("run", parents=[common], help="one ingestion run")
    p_run.add_argument("--feeds", required=True, metavar="PATH", help="feeds YAML file")
    p_run.add_argument(
        "--store",
        required=True,
        metavar="URI",
        help="local directory, file:///path or s3://bucket/prefix",
    )
    p_run.add_argument(
        "--run-id",
        metavar="ID",
        help="re-using a committed run id changes nothing (default: new id)",
    )
    p_run.add_argument(
        "--wait",
        type=_non_negative_float,
        metavar="SECONDS",
        help="when another run holds the store, wait this long for it before giving up "
        "(exit 75); default 0, also INGEST_LEASE_WAIT",
    )
    p_run.add_argument(
        "--all",
        action="store_true",
        help="poll every enabled source now, also those adaptive polling says are not due",
    )
    p_run.add_argument(
        "--fail-on-feed-errors",
        type=_percent,
        nargs="?",
        const=100.0,
        metavar="PERCENT",
        help="exit 3 after the commit when at least PERCENT of the feeds failed (alone: "
        "when every feed failed); what was ingested stays committed",
    )
    p_run.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="write the run's metrics here in Prometheus text format (for node_exporter's "
        "textfile collector; replaced atomically)",
    )
    p_run.add_argument(
        "--websub-callback",
        metavar="URL",
        help="public base URL of `ingest receive` (hubs call <URL>/websub/<id>): subscribe "
        "sources that announce a WebSub hub, after the commit (INGEST_WEBSUB_CALLBACK)",
    )
    p_run.add_argument(
        "--push-only",
        action="store_true",
        help="ingest what the WebSub inbox holds and poll only the sources it says changed "
        "(what the news_push DAG runs); by default a run drains the inbox and polls",
    )
    p_run.set_defaults(func=cmd_run)


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _add_receive(sub: Any) -> None:
    p = sub.add_parser(
        "receive", help="the WebSub receiver: takes hubs' notifications into the store's inbox"
    )
    p.add_argument("--store", required=True, metavar="URI", help="the store runs ingest into")
    p.add_argument("--listen", type=_listen, default=("127.0.0.1", 8632), metavar="HOST:PORT",
                   help="where to listen (127.0.0.1:8632); a TLS proxy goes in front")  # fmt: skip
    p.add_argument(
        "--doorbell",
        metavar="URL",
        help="Redis URL (redis://host:6379/0) to publish to after each accepted notification "
        "(INGEST_DOORBELL_URL); without it the inbox waits for the next run",
    )
    p.add_argument("--channel", metavar="NAME",
                   help="Redis channel (INGEST_DOORBELL_CHANNEL; newsflow-inbox)")  # fmt: skip
    p.add_argument("--max-body", type=_positive_int, default=5 * 1024 * 1024, metavar="BYTES",
                   help="largest notification accepted (5 MiB)")  # fmt: skip
    p.set_defaults(func=cmd_receive)


def _add_index(sub: Any) -> None:
    p_index = sub.add_parser("index", help="(re)build the daily latest-news index")
    p_index.add_argument(
        "--store",
        required=True,
        metavar="URI",
        help="local directory, file:///path or s3://bucket/prefix",
    )
    p_index.add_argument(
        "--date",
        action="append",
        type=_day,
        metavar="YYYY-MM-DD",
        help="day to rebuild (repeatable); default: the days that runs since the last index "
        "build touched, else today (UTC)",
    )
    p_index.set_defaults(func=cmd_index)


def _add_status(sub: Any) -> None:
    p_status = sub.add_parser("status", help="failing and stale feeds, from the store")
    p_status.add_argument("--store", required=True, metavar="URI")
    p_status.add_argument(
        "--stale-hours",
        type=float,
        default=24.0,
        help="a feed is stale after this long without a new article (24)",
    )
    p_status.add_argument("--all", action="store_true", help="list healthy feeds too")
    p_status.add_argument(
        "--feeds",
        metavar="PATH",
        help="the current feeds file: feeds only in the state are listed as removed, feeds "
        "not polled yet as new",
    )
    p_status.add_argument(
        "--fail-on-problems",
        action="store_true",
        help="exit 3 when a feed is failing or stale or the state file is corrupt (for monitoring)",
    )
    p_status.set_defaults(func=cmd_status)


def _add_maintain(sub: Any) -> None:
    p_maintain = sub.add_parser(
        "maintain", help="compact, vacuum and checkpoint the tables; drop abandoned staging"
    )
    p_maintain.add_argument("--store", required=True, metavar="URI")
    p_maintain.add_argument(
        "--retention-hours",
        type=_positive_int,
        default=168,
        help="keep files a table version of the last H hours still uses (168: readers and "
        "time travel within a week keep working)",
    )
    p_maintain.add_argument(
        "--staging-days",
        type=_non_negative_float,
        default=2.0,
        help="drop staging of runs that never committed after this many days (2)",
    )
    p_maintain.add_argument(
        "--report-days",
        type=_non_negative_float,
        default=90.0,
        help="keep run report files this many days (90); commits keep their own copy",
    )
    p_maintain.add_argument(
        "--raw-days",
        type=_non_negative_float,
        default=None,
        help="delete raw WARC files of ingest days older than this (default: keep them)",
    )
    p_maintain.add_argument(
        "--rebuild-keys",
        action="store_true",
        help="rewrite the committed-key markers from every row of the table (when the log "
        "no longer reaches back to them; reads the whole table)",
    )
    p_maintain.set_defaults(func=cmd_maintain)


def _add_migrate(sub: Any) -> None:
    p_migrate = sub.add_parser(
        "migrate", help="convert a store of the earlier manifest layout to the Delta tables"
    )
    p_migrate.add_argument("--store", required=True, metavar="URI")
    p_migrate.set_defaults(func=cmd_migrate)


def _add_reextract(sub: Any, common: argparse.ArgumentParser) -> None:
    p_re = sub.add_parser(
        "reextract",
        parents=[common],
        help="re-run today's extraction over archived raw pages (no network); update rows",
    )
    p_re.add_argument("--store", required=True, metavar="URI")
    p_re.add_argument("--from", dest="start", type=_day, metavar="YYYY-MM-DD",
                      help="first ingest date (partition) to re-extract")  # fmt: skip
    p_re.add_argument("--to", dest="end", type=_day, metavar="YYYY-MM-DD",
                      help="last ingest date (partition) to re-extract")  # fmt: skip
    p_re.add_argument(
        "--where-extractor-older-than",
        dest="older_than",
        type=_positive_int,
        metavar="RULES_VERSION",
        help="only rows made by extraction rules older than this version (see `extractor`)",
    )
    p_re.add_argument(
        "--no-index",
        dest="index",
        action="store_false",
        help="do not rebuild the index days whose stories changed",
    )
    p_re.set_defaults(func=cmd_reextract)


def _add_ddl(sub: Any) -> None:
    p_ddl = sub.add_parser("ddl", help="print table definitions for a warehouse")
    p_ddl.add_argument("--dialect", required=True, choices=["duckdb", "athena", "trino", "spark"])
    p_ddl.add_argument(
        "--store",
        default="./data",
        metavar="URI",
        help="store root the tables point at (default ./data)",
    )
    p_ddl.set_defaults(func=cmd_ddl)


def _add_demo(sub: Any, common: argparse.ArgumentParser) -> None:
    p_demo = sub.add_parser(
        "demo", parents=[common], help="run the whole pipeline offline on a bundled demo site"
    )
    p_demo.add_argument("--store", default="./data", metavar="URI", help="default ./data")
    p_demo.add_argument(
        "--port",
        type=int,
        default=DEMO_PORT,
        help=f"loopback port of the demo site (default {DEMO_PORT})",
    )
    p_demo.add_argument(
        "--s3", action="store_true", help="write to an embedded S3 server (SeaweedFS) instead"
    )
    p_demo.set_defaults(func=cmd_demo)


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {value!r}") from None
