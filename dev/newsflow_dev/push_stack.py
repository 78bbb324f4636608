"""The push path as deployed, on loopback, for the push test and the freshness benchmark:
`ingest receive` ringing Redis, a first polling run that subscribes through it, and
Airflow's components as separate processes with news_push's watcher on."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis

from ingest.lake import read_committed
from ingest.store import open_store
from newsflow_dev.airflow_local import airflow_env
from newsflow_dev.services import AirflowProcesses, Receiver, free_port

CHANNEL = "newsflow-inbox"
T = TypeVar("T")


def committed(store_uri: str) -> dict[str, dict[str, Any]]:
    """The articles table's rows by URL ({} before the first commit)."""
    try:
        rows = read_committed(open_store(store_uri)).to_pylist()
    except Exception:
        return {}
    return {r["url"]: r for r in rows}


def doorbell_listening(redis_url: str) -> bool:
    """The triggerer's watcher is subscribed to the doorbell channel."""
    [(_, count)] = redis.Redis.from_url(redis_url).pubsub_numsub(CHANNEL)
    return count > 0


class PushStack:
    """`with PushStack(...) as stack:` starts the receiver; `first_run()` then polls (and
    subscribes), `start_airflow(dags)` starts Airflow and waits for the watcher."""

    def __init__(self, tmp: Path, store_uri: str, feeds: Path, redis_url: str, **env: str) -> None:
        self.store_uri, self.feeds, self.redis_url = store_uri, feeds, redis_url
        api_port = free_port()
        self.env = airflow_env(tmp / "airflow", api_port, {
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": "push-stack-secret",
            "AIRFLOW_CONN_NEWSFLOW_DOORBELL": redis_url,
            "NEWSFLOW_PUSH": "on",
            "NEWSFLOW_STORE_URI": store_uri,
            "NEWSFLOW_FEEDS_FILE": str(feeds),
            "INGEST_ALLOW_NETWORKS": "127.0.0.0/8",
            "INGEST_WORKERS": "1",
            "INGEST_POLL_MIN_INTERVAL": "0",
            **env,
        })  # fmt: skip
        self.receiver = Receiver(store_uri, redis_url, self.env, tmp / "receiver.log")
        self.airflow = AirflowProcesses(self.env, tmp / "logs", api_port)

    def __enter__(self) -> PushStack:
        self.receiver.start()
        self.env["INGEST_WEBSUB_CALLBACK"] = self.receiver.url
        return self

    def __exit__(self, *exc: object) -> None:
        self.airflow.stop_all()
        self.receiver.stop()

    def first_run(self) -> None:
        """`ingest run`: polls the feeds, discovers the hubs and subscribes at them."""
        ingest = str(Path(sys.executable).with_name("ingest"))
        done = subprocess.run([ingest, "run", "--store", self.store_uri, "--feeds",
                               str(self.feeds), "--no-progress"], env=self.env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"the first run failed: {done.stderr[-3000:]}")

    def start_airflow(self, dags: list[str]) -> None:
        self.airflow.migrate()
        self.airflow.start_all()
        for dag in dags:
            self.wait_for(f"{dag} to be parsed",
                          lambda d=dag: self.airflow.cli("dags", "unpause", d).returncode == 0,
                          180)  # fmt: skip
        self.wait_for("the doorbell watcher", lambda: doorbell_listening(self.redis_url), 180)

    def wait_for(self, what: str, check: Callable[[], T], timeout: float) -> T:
        """`check()`'s first truthy value, polled every second; TimeoutError (with the
        Airflow logs' tails) when there is none in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            time.sleep(1)
        raise TimeoutError(f"timed out waiting for {what}\n{self.airflow.log_tail()}")
