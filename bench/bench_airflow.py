"""Benchmark: what Airflow adds to a run. The same real pages through `news_ingest` under a
real scheduler (airflow standalone, LocalExecutor, as `make airflow` runs it) and through
`ingest run`, both into a fresh store on an embedded S3 server (SeaweedFS).

The pages are those of bench_real_pages.py (the real-page corpus, served on loopback by a
few publishers). For each case it measures, over `--repeat` runs each into a fresh store:

* DAG: wall time from the DAG run's start (Airflow's `start_date`) to the commit (the run
  report's `finished_at`), and to the DAG run's end (`end_date`: `announce`, `feed_health`);
* CLI: wall time of `ingest run` as a whole process, and its commit time the same way;
* both: the run's publication-to-commit latency (p50 from the run report).

Cases: the page sample with the DAG's default shards and with one shard, and a one-page
run, so the fixed cost of a DAG run (one-page DAG minus one-page CLI) and of each extra
mapped shard (default shards minus one shard) can be told apart from the work. A one-page
run has one feed, hence one shard whatever is asked for. Airflow start-up is not timed.

    .venv/bin/python bench/bench_airflow.py [--pages 200] [--repeat 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_real_pages import FirstRequest, _ingest_command, load_pages, serve

BUCKET = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stamp(value: str) -> float:
    """An ISO time; one without a zone (Airflow's SQLite columns) is UTC."""
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def wipe(s3: Any, prefix: str) -> None:
    client = s3.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})


def report_of(s3: Any, prefix: str) -> dict[str, Any]:
    """The one run report under `prefix` (a fresh store holds exactly one)."""
    client = s3.client()
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/_reports/")
    keys = [o["Key"] for o in listing.get("Contents", [])]
    if len(keys) != 1:
        raise RuntimeError(f"expected one run report under {prefix}, found {keys}")
    return json.loads(client.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read())


def _p50(report: dict[str, Any]) -> float | None:
    return (report.get("freshness_seconds") or {}).get("p50")


def cli_run(s3: Any, feeds: Path, workers: int, n: int) -> dict[str, Any]:
    prefix = f"cli-{n}"
    env = {**os.environ, **s3.env(), "INGEST_ALLOW_NETWORKS": "127.0.0.0/8"}
    cmd = [*_ingest_command(), "run", "--store", f"s3://{BUCKET}/{prefix}", "--feeds",
           str(feeds), "--workers", str(workers), "--no-progress"]  # fmt: skip
    started = time.time()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    ended = time.time()
    report = report_of(s3, prefix)
    wipe(s3, prefix + "/")
    return {
        "wall": ended - started,
        "to_commit": _stamp(report["finished_at"]) - started,
        "articles": report["articles_written"],
        "latency_p50": _p50(report),
    }


def _runs(env: dict[str, str]) -> list[dict[str, Any]]:
    """news_ingest's DAG runs, newest first, read from Airflow's metadata database. Not
    `airflow dags list-runs`: each call of that is a whole Airflow process (seconds of CPU),
    which would compete with the run being measured for the machine's cores."""
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    query = ("SELECT run_id, state, start_date, end_date FROM dag_run "
             "WHERE dag_id = 'news_ingest' ORDER BY id DESC")  # fmt: skip
    for _ in range(50):
        try:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
                rows = conn.execute(query).fetchall()
            break
        except sqlite3.OperationalError:  # locked by a writer, or not created yet
            time.sleep(0.2)
    else:
        raise RuntimeError(f"cannot read {db}")
    keys = ("run_id", "state", "start_date", "end_date")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def dag_run(env: dict[str, str], s3: Any, conf: dict[str, Any], timeout: float) -> dict:
    before = {r["run_id"] for r in _runs(env)}
    subprocess.run(["airflow", "dags", "trigger", "news_ingest", "--conf", json.dumps(conf)],
                   env=env, check=True, capture_output=True, timeout=120)  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in _runs(env) if r["run_id"] not in before]
        if runs and runs[0]["state"] in ("success", "failed"):
            run = runs[0]
            break
        time.sleep(1)
    else:
        raise RuntimeError(f"news_ingest did not finish in {timeout:.0f} s")
    if run["state"] != "success":
        raise RuntimeError(f"news_ingest {run['run_id']} ended {run['state']}")
    report = report_of(s3, "lake")
    wipe(s3, "lake/")
    start = _stamp(run["start_date"])
    return {
        "to_commit": _stamp(report["finished_at"]) - start,
        "to_end": _stamp(run["end_date"]) - start,
        "articles": report["articles_written"],
        "latency_p50": _p50(report),
    }


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from newsflow_dev.airflow_local import airflow_env, start_standalone, stop
    from newsflow_dev.embedded_s3 import EmbeddedS3

    result: dict[str, Any] = {"pages": args.pages, "repeat": args.repeat}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="newsflow-bench-") as tmp:
        s3 = stack.enter_context(EmbeddedS3())
        s3.client().create_bucket(Bucket=BUCKET)
        sites = {}
        for name, count in (("pages", args.pages), ("one", 1)):
            feeds_yaml, _ = serve(stack, load_pages(count), args.publishers, FirstRequest())
            sites[name] = Path(tmp) / f"feeds-{name}.yaml"
            sites[name].write_text(feeds_yaml)
        conn = {"conn_type": "aws", "login": s3.access_key, "password": s3.secret_key,
                "extra": {"endpoint_url": s3.endpoint_url, "region_name": s3.region}}  # fmt: skip
        env = airflow_env(Path(tmp) / "airflow", free_port(), {
            "AIRFLOW_CONN_NEWSFLOW_S3": json.dumps(conn),
            "NEWSFLOW_STORE_URI": f"s3://{BUCKET}/lake",
            "NEWSFLOW_FEEDS_FILE": str(sites["pages"]),
            "NEWSFLOW_INGEST_SCHEDULE": "@once",
            "INGEST_ALLOW_NETWORKS": "127.0.0.0/8",
            "INGEST_WORKERS": str(args.task_workers),
            # only news_ingest runs: no index or maintenance run beside a measured one
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        })  # fmt: skip
        proc = start_standalone(env, Path(tmp) / "standalone.log")
        try:
            print("waiting for the @once run (Airflow start-up, not timed)", file=sys.stderr)
            _wait_first(env, s3)
            cases = [
                ("dag", "pages", {}, f"DAG, {args.pages} pages, default shards"),
                ("dag", "pages", {"shards": 1}, f"DAG, {args.pages} pages, 1 shard"),
                ("cli", "pages", None, f"CLI, {args.pages} pages"),
                ("dag", "one", {"shards": 1}, "DAG, 1 page, 1 shard"),
                ("cli", "one", None, "CLI, 1 page"),
            ]
            rows: dict[str, list[dict[str, Any]]] = {label: [] for *_, label in cases}
            for n in range(args.repeat):
                for kind, site, conf, label in cases:
                    subprocess.run(["airflow", "variables", "set", "newsflow_feeds_file",
                                    str(sites[site])], env=env, check=True,
                                   capture_output=True)  # fmt: skip
                    if kind == "cli":
                        row = cli_run(s3, sites[site], args.cli_workers, n)
                    else:
                        row = dag_run(env, s3, conf or {}, args.timeout)
                    rows[label].append(row)
                    print(f"  {n + 1}/{args.repeat} {label}: {row}", file=sys.stderr)
        finally:
            stop(proc)
    result["cases"] = {
        label: {key: _median(found, key) for key in found[0]} for label, found in rows.items()
    }
    return result


def _wait_first(env: dict[str, str], s3: Any, timeout: float = 600) -> None:
    """Unpause news_ingest once parsed; its @once run is Airflow's warm-up, untimed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _paused(env):
        subprocess.run(["airflow", "dags", "unpause", "news_ingest"], env=env, capture_output=True)
        time.sleep(3)
    while time.monotonic() < deadline:
        runs = _runs(env)
        if runs and runs[0]["state"] in ("success", "failed"):
            wipe(s3, "lake/")
            return
        time.sleep(3)
    raise RuntimeError("the first news_ingest run did not finish")


def _paused(env: dict[str, str]) -> bool:
    """news_ingest not parsed yet, or paused."""
    out = subprocess.run(["airflow", "dags", "list", "-o", "json"], env=env,
                         capture_output=True, text=True).stdout  # fmt: skip
    listing = next((json.loads(line) for line in out.splitlines() if line.startswith("[")), [])
    found = [d for d in listing if d.get("dag_id") == "news_ingest"]
    return not found or str(found[0].get("is_paused")).lower() == "true"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--task-workers", type=int, default=1,
                    help="INGEST_WORKERS per shard task (make airflow: 1)")  # fmt: skip
    ap.add_argument("--cli-workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900, help="per DAG run")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    result = measure(args)
    for label, row in result["cases"].items():
        print(f"{label:<34} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
