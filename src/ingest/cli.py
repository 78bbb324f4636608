"""The `ingest` command. User errors end with one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path

from ingest import __version__
from ingest.config import ConfigError, Settings, load_feeds
from ingest.ids import run_key
from ingest.report import RunReport
from ingest.store import Store, StoreError, open_store

log = logging.getLogger("ingest")

EXIT_USER_ERROR = 1
EXIT_FEED_PROBLEMS = 3  # the run itself worked; feeds failed or went stale
EXIT_STORE_BUSY = 75  # EX_TEMPFAIL: another run holds the store; try again later
EXIT_TERMINATED = 143
DEMO_PORT = 8631
MAX_ERROR_CHARS = 500


def _settings_from(args: argparse.Namespace, **extra: object) -> Settings:
    flags: dict[str, object] = {
        "allow_networks": args.allow_network or None,
        "workers": args.workers,
        "user_agent": args.user_agent,
        "progress": False if args.no_progress else None,
    }
    if extra.get("allow_networks") and args.allow_network:
        extra["allow_networks"] = [*extra["allow_networks"], *args.allow_network]  # type: ignore[misc]
    return Settings.from_env(**{**flags, **extra})


def cmd_run(args: argparse.Namespace) -> int:
    from ingest.health import run_health
    from ingest.run import run

    # flags first: a bad flag is reported before anything else
    settings = _settings_from(args, lease_wait=args.wait)
    if args.run_id is not None:
        run_key(args.run_id)  # a bad run id stops the run before it writes anything
    if args.metrics_file:
        from ingest import metrics

        metrics.check_textfile_path(args.metrics_file)  # refused before the run, not after
    feeds = load_feeds(args.feeds)
    store = open_store(args.store)
    try:
        report = run(store, feeds, settings, run_id=args.run_id, poll_all=args.all)
    except Exception:
        if args.metrics_file:  # the failure is what the monitoring stack must see
            metrics.write_textfile(
                args.metrics_file,
                metrics.failed_run_metrics(store.uri, previous=args.metrics_file),
            )
        raise
    print(report.summary())
    if args.metrics_file:
        metrics.write_textfile(args.metrics_file, metrics.run_metrics(report))
    if args.fail_on_feed_errors is not None:
        health = run_health(
            report.to_dict(), max_failed=None, max_failed_percent=args.fail_on_feed_errors
        )
        if health.unhealthy:
            print(f"ingest: feed errors: {health.message()}", file=sys.stderr)
            return EXIT_FEED_PROBLEMS
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ingest.run import run
    from newsflow_dev.demo_site import write_feeds_file

    settings = _settings_from(args, allow_networks=["127.0.0.0/8"], per_host_concurrency=8)
    demo = _demo_site(args.port)
    with demo as base_url, tempfile.TemporaryDirectory(prefix="newsflow-demo-") as tmp:
        feeds_path = write_feeds_file(base_url, Path(tmp) / "feeds.yaml")
        feeds = load_feeds(feeds_path)
        print(f"demo site serving {len(feeds)} feeds at {base_url}")
        if args.s3:
            from newsflow_dev.embedded_s3 import EmbeddedS3

            with EmbeddedS3() as endpoint:
                endpoint.client().create_bucket(Bucket="newsflow")
                os.environ.update(endpoint.env())
                print(f"embedded S3 (SeaweedFS) at {endpoint.endpoint_url}, bucket 'newsflow'")
                store = open_store("s3://newsflow/demo")
                report = run(store, feeds, settings)
                print(report.summary())
                _show_output(store, report)
                print("(the embedded S3 server stops now; its data goes with it)")
        else:
            store = open_store(args.store)
            report = run(store, feeds, settings)
            print(report.summary())
            _show_output(store, report)
    return 0


@contextlib.contextmanager
def _demo_site(port: int) -> Iterator[str]:
    """Serve on a fixed port so article URLs (and ids) stay the same from run to run."""
    from newsflow_dev.demo_site import serve_site

    with contextlib.ExitStack() as stack:
        try:
            base_url = stack.enter_context(serve_site(port=port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            log.warning(
                "port %d is busy: the demo site takes a free port, so its article URLs (and "
                "ids) differ from earlier demo runs; pass --port to choose",
                port,
            )
            base_url = stack.enter_context(serve_site(port=0))
        yield base_url


def _show_output(store: Store, report: RunReport) -> None:
    """Where the output is and what it holds: the demo's whole point."""
    from ingest.lake import read_committed, report_key

    articles = read_committed(store)
    table = store.table_uri("articles")
    print(f"\n{articles.num_rows} articles in the Delta table {table}")
    where = store.url_for(report_key(run_key(report.run_id), report.to_dict()))
    print(f"rejects: {store.table_uri('rejects')}   run report: {where}")
    newest = articles.sort_by([("published_at", "descending")]).slice(0, 5).to_pylist()
    for row in newest:
        when = row["published_at"].strftime("%Y-%m-%d %H:%M") if row["published_at"] else "?"
        print(f"  {when}  {row['source']:<18} {row['title']}  ({row['word_count']} words)")
    print(
        "\nRead it with DuckDB's delta extension, for example:\n"
        f"  SELECT published_at, source, title FROM delta_scan('{table}') "
        "ORDER BY published_at DESC LIMIT 20;"
    )
    from ingest.index import build

    results = build(store, [date.fromisoformat(d) for d in report.dates_touched])
    if results:
        print("\nDaily latest-news index (Parquet, JSON Feed, Atom, HTML):")
    for result in results:
        where = store.url_for(result.keys[0].rsplit("/", 1)[0])
        print(f"  {result.day}: {result.stories} stories -> {where}/latest-news.html")


def cmd_index(args: argparse.Namespace) -> int:
    from ingest.index import build
    from ingest.lake.tables import require_store

    store = open_store(args.store)
    require_store(store)
    results = build(store, args.date or None)
    for result in results:
        merged = (
            f", {result.copies_merged} syndicated copies merged" if result.copies_merged else ""
        )
        where = store.url_for(result.keys[0].rsplit("/", 1)[0])
        print(f"{result.day}: {result.stories} stories{merged} -> {where}/latest-news.*")
    if results:
        print(f"day list -> {store.url_for('index/index.html')}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Read-only: a damaged state file is reported as a problem, not repaired (the next
    run keeps it aside and starts those feeds afresh)."""
    from ingest.health import feed_health, has_problems, render_table
    from ingest.lake.tables import require_store
    from ingest.state import FEEDS, read_feed_states

    names = [f.name for f in load_feeds(args.feeds)] if args.feeds else None
    store = open_store(args.store)
    require_store(store)
    state = read_feed_states(store)
    rows = feed_health(store, timedelta(hours=args.stale_hours), feeds=names, states=state.states)
    print(render_table(rows, show_all=args.all))
    if state.problem is not None:
        print(_one_line(f"{FEEDS} is corrupt: {state.problem}"))
    problems = has_problems(rows) or state.problem is not None
    return EXIT_FEED_PROBLEMS if args.fail_on_problems and problems else 0


def cmd_maintain(args: argparse.Namespace) -> int:
    from ingest.lake.maintain import maintain

    store = open_store(args.store)
    store.check()
    result = maintain(
        store,
        retention_hours=args.retention_hours,
        staging_days=args.staging_days,
        report_days=args.report_days,
        raw_days=args.raw_days,
        rebuild_keys=args.rebuild_keys,
    )
    print(result.summary())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from ingest.lake.migrate import migrate
    from ingest.lake.tables import require_store

    store = open_store(args.store)
    require_store(store)  # before check(), which would create a mistyped local directory
    store.check()
    result = migrate(store)
    if result.already_done:
        print(f"{store.uri} already uses the Delta tables: nothing to do")
    else:
        print(
            f"migrated {result.articles} articles, {result.rejects} rejects and "
            f"{result.feeds} feed states into the Delta tables of {store.uri}"
        )
    return 0


def cmd_reextract(args: argparse.Namespace) -> int:
    from ingest.lake.tables import require_store
    from ingest.reextract import reextract

    settings = _settings_from(args)
    store = open_store(args.store)
    require_store(store)
    result = reextract(
        store,
        start=args.start,
        end=args.end,
        older_than=args.older_than,
        workers=settings.workers,
        extract_timeout=settings.extract_timeout,
        start_method=settings.mp_start_method,
        progress=settings.progress and sys.stderr.isatty(),
    )
    print(result.summary())
    if result.index_dates and args.index:
        from ingest.index import build

        for built in build(store, sorted(date.fromisoformat(d) for d in result.index_dates)):
            print(f"{built.day}: {built.stories} stories (index rebuilt)")
    return 0


def cmd_ddl(args: argparse.Namespace) -> int:
    from ingest.ddl import ddl
    from ingest.lake.tables import require_store

    store = open_store(args.store)
    require_store(store)  # DDL for a store that does not exist would read nothing, silently
    print(ddl(args.dialect, store.uri), end="")
    return 0


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {value!r}") from None


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
    p_run.set_defaults(func=cmd_run)

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

    p_migrate = sub.add_parser(
        "migrate", help="convert a store of the earlier manifest layout to the Delta tables"
    )
    p_migrate.add_argument("--store", required=True, metavar="URI")
    p_migrate.set_defaults(func=cmd_migrate)

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

    p_ddl = sub.add_parser("ddl", help="print table definitions for a warehouse")
    p_ddl.add_argument("--dialect", required=True, choices=["duckdb", "athena", "trino", "spark"])
    p_ddl.add_argument(
        "--store",
        default="./data",
        metavar="URI",
        help="store root the tables point at (default ./data)",
    )
    p_ddl.set_defaults(func=cmd_ddl)

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


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so every `finally` (lease, temp files) runs."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def user_error(exc: BaseException) -> tuple[str, int] | None:
    """The one place an exception becomes the line a user reads: (line, exit code), or
    None for a bug, which keeps its traceback."""
    from ingest.lease import StoreBusy
    from ingest.metrics import TextfileError
    from ingest.state import StateFileError

    if isinstance(exc, StoreBusy):
        return str(exc), EXIT_STORE_BUSY
    if isinstance(exc, ConfigError | StoreError | StateFileError | TextfileError):
        return str(exc), EXIT_USER_ERROR
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", EXIT_USER_ERROR
    if isinstance(exc, ValueError):  # e.g. a run id that cannot name objects
        return str(exc), EXIT_USER_ERROR
    if type(exc).__module__.startswith(("botocore", "boto3", "s3transfer")):
        log.debug("object store failure", exc_info=True)
        return (
            f"object store failed mid-run: {exc}; nothing of this run was committed unless "
            "its commit finished: re-run to continue",
            EXIT_USER_ERROR,
        )
    return None


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "trafilatura", "htmldate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("ingest: interrupted; the next run finishes or discards this one", file=sys.stderr)
        return 130
    except Terminated:
        print("ingest: terminated; the next run finishes or discards this one", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:
        known = user_error(exc)
        if known is None:
            raise
        line, code = known
        print(f"ingest: error: {_one_line(line)}", file=sys.stderr)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
