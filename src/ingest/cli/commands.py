"""What each `ingest` command does; each imports the engine parts it needs when it runs."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from ingest.cli.exits import EXIT_FEED_PROBLEMS, one_line
from ingest.config import Settings, load_feeds
from ingest.report import RunReport
from ingest.store import Store, open_store

log = logging.getLogger("ingest")


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
    # flags first: a bad flag is reported before anything else
    push = {"push_only": True} if args.push_only else {}
    callback = args.websub_callback
    settings = _settings_from(args, lease_wait=args.wait, websub_callback=callback, **push)
    if settings.mp_start_method == "forkserver":
        from ingest.extractor_pool import start_forkserver

        start_forkserver()  # it loads the extractor while this process loads the rest
    from ingest.health import run_health
    from ingest.ids import run_key
    from ingest.run import run

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
    from ingest.ids import run_key
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
    from ingest.health import feed_health, has_problems, render_push, render_table
    from ingest.lake.tables import require_store
    from ingest.state import FEEDS, read_feed_states
    from ingest.websub.inbox import Inbox
    from ingest.websub.subscriptions import SubscriptionStore

    names = [f.name for f in load_feeds(args.feeds)] if args.feeds else None
    store = open_store(args.store)
    require_store(store)
    state = read_feed_states(store)
    rows = feed_health(store, timedelta(hours=args.stale_hours), feeds=names, states=state.states)
    print(render_table(rows, show_all=args.all))
    push = render_push(state.states, SubscriptionStore(store).all(), Inbox(store).depth())
    if push:
        print(push)
    if state.problem is not None:
        print(one_line(f"{FEEDS} is corrupt: {state.problem}"))
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


def cmd_receive(args: argparse.Namespace) -> int:
    """The WebSub receiver: runs until stopped (SIGINT/SIGTERM)."""
    from ingest.websub.serve import serve

    host, port = args.listen
    store = open_store(args.store)
    store.check()
    doorbell = args.doorbell or os.environ.get("INGEST_DOORBELL_URL") or None
    channel = args.channel or os.environ.get("INGEST_DOORBELL_CHANNEL") or "newsflow-inbox"
    logging.getLogger(__name__).info(
        "receiving WebSub notifications on %s:%d into %s (doorbell: %s)",
        host, port, store.uri, "redis " + channel if doorbell else "none",
    )  # fmt: skip
    serve(store, host, port, doorbell, channel, max_body=args.max_body)
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
