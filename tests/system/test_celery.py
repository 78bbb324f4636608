"""CeleryExecutor on PostgreSQL and Redis (Debian packages started on loopback): two
workers share the mapped shard tasks and the engine's invariants hold."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ingest.lake import read_committed
from ingest.store import open_store
from newsflow_dev.airflow_local import airflow_env, dag_runs
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss
from newsflow_dev.services import free_port, redis_server, start, stop

ROOT = Path(__file__).parents[2]


PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


@pytest.fixture
def postgres() -> Iterator[str]:
    assert PG_BIN is not None, "PostgreSQL server programs are missing (apt: postgresql)"
    root = Path(tempfile.mkdtemp(prefix="newsflow-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-U", "airflow",
                    "--auth=trust"], check=True, capture_output=True)  # fmt: skip
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-w",
                    "-l", str(root / "log"), "start"], check=True, capture_output=True)  # fmt: skip
    try:
        subprocess.run([*as_pg, str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                        "-U", "airflow", "airflow"], check=True, capture_output=True)  # fmt: skip
        yield f"postgresql+psycopg2://airflow@127.0.0.1:{port}/airflow"
    finally:
        subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def redis() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.mark.timeout(900)
def test_two_celery_workers_share_the_shards(
    postgres: str, redis: str, s3_bucket, tmp_path: Path
) -> None:
    endpoint, bucket = s3_bucket
    airflow = str(Path(sys.executable).with_name("airflow"))
    # four publishers (hosts in 127.0.0.0/8): four shards, one per publisher
    hosts = [FixtureServer(f"127.0.0.{h}") for h in range(1, 5)]
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(h.running()) for h in hosts]
        feeds_yaml = "feeds:\n"
        for f in range(4):
            srv = servers[f]
            items = []
            for i in range(3):
                n = f * 10 + i
                srv.add(
                    f"/c/{n}",
                    Route(article_html(f"Celery story {n}", paragraphs(900 + n)).encode()),
                )
                items.append({"title": f"c{n}", "link": srv.url(f"/c/{n}")})
            srv.add(f"/f{f}.xml", Route(rss(items), content_type="application/rss+xml"))
            feeds_yaml += f"  - name: cf-{f}\n    url: {srv.url(f'/f{f}.xml')}\n"
        (tmp_path / "feeds.yaml").write_text(feeds_yaml)
        api_port = free_port()
        conn = {
            "conn_type": "aws",
            "login": endpoint.access_key,
            "password": endpoint.secret_key,
            "extra": {"endpoint_url": endpoint.endpoint_url, "region_name": "us-east-1"},
        }
        env = airflow_env(tmp_path / "airflow", api_port, {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres,
            "AIRFLOW__CELERY__BROKER_URL": redis,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.replace("+psycopg2", ""),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__API_AUTH__JWT_SECRET": "test-secret",
            "NEWSFLOW_INGEST_SCHEDULE": "@once",
            "AIRFLOW_CONN_NEWSFLOW_S3": json.dumps(conn),
            "NEWSFLOW_STORE_URI": f"s3://{bucket}/lake",
            "NEWSFLOW_FEEDS_FILE": str(tmp_path / "feeds.yaml"),
            "INGEST_ALLOW_NETWORKS": "127.0.0.0/8",
            "INGEST_WORKERS": "1",
        })  # fmt: skip
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True,
                       timeout=600)  # fmt: skip
        logs = tmp_path / "logs"
        logs.mkdir()
        procs = [
            start([airflow, "api-server", "--port", str(api_port)], env, logs / "api.log"),
            start([airflow, "scheduler"], env, logs / "scheduler.log"),
            start([airflow, "dag-processor"], env, logs / "dag-processor.log"),
        ]
        for name in ("w1", "w2"):
            worker_env = {**env, "AIRFLOW__CELERY__WORKER_LOG_SERVER_PORT": str(free_port())}
            procs.append(start([airflow, "celery", "worker", "--celery-hostname",
                                f"{name}@%h", "--concurrency", "2"], worker_env,
                               logs / f"{name}.log"))  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            state = None
            while time.monotonic() < deadline:
                runs = dag_runs("news_ingest", env)
                state = runs[0]["state"] if runs else None
                if state in ("success", "failed"):
                    break
                time.sleep(5)
        finally:
            stop(procs)
        worker_logs = {n: (logs / f"{n}.log").read_text(errors="replace") for n in ("w1", "w2")}
        assert state == "success", {n: t[-3000:] for n, t in worker_logs.items()}
    # which worker ran each shard: Celery's task id is the task instance's executor id
    import psycopg2

    parts = urlsplit(postgres.replace("+psycopg2", ""))
    with psycopg2.connect(host=parts.hostname, port=parts.port, user="airflow",
                          dbname="airflow") as db, db.cursor() as cur:  # fmt: skip
        cur.execute("SELECT map_index, external_executor_id, try_number FROM task_instance "
                    "WHERE dag_id = 'news_ingest' AND task_id = 'ingest_shard'")  # fmt: skip
        rows = cur.fetchall()
    assert len(rows) == 4 and all(tries == 1 for _, _, tries in rows), rows
    shards = {index: celery_id for index, celery_id, _ in rows}
    ran_on = {
        index: [n for n, text in worker_logs.items() if f"[{celery_id}] succeeded" in text]
        for index, celery_id in shards.items()
    }
    assert all(len(workers) == 1 for workers in ran_on.values()), ran_on
    assert {w for workers in ran_on.values() for w in workers} == {"w1", "w2"}, ran_on
    ids = read_committed(open_store(f"s3://{bucket}/lake"))["article_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 12
