"""Run newsflow under a real local Airflow: standalone (scheduler, dag-processor, triggerer,
API server) with the DAGs, an embedded SeaweedFS and the demo publisher site wired in.

    make airflow                       # UI on http://127.0.0.1:8080, Ctrl-C stops everything
    python scripts/airflow_local.py --until-index 300   # exit 0 once the index DAG ran

State lives in .airflow/ (Airflow's SQLite database, the S3 server's data, the feeds file).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from newsflow_dev.demo_site import serve_site, write_feeds_file
from newsflow_dev.embedded_s3 import EmbeddedS3
from newsflow_dev.services import Receiver, redis_server

ROOT = Path(__file__).resolve().parents[2]  # the checkout: dev/newsflow_dev/ is two levels down
BUCKET = "newsflow"


def airflow_env(home: Path, port: int, extra: dict[str, str]) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "10",
        "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
        **extra,
    })  # fmt: skip
    return env


def start_standalone(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`airflow db migrate`, then `airflow standalone` in its own session (so `stop` can end
    every process it started), logging to `log_path`."""
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=600)  # fmt: skip
    log = open(log_path, "ab")  # noqa: SIM115 - lives as long as airflow
    return subprocess.Popen(["airflow", "standalone"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def dag_runs(dag_id: str, env: dict[str, str]) -> list[dict]:
    """`airflow dags list-runs` as JSON, newest first (log lines may precede the JSON)."""
    result = subprocess.run(
        ["airflow", "dags", "list-runs", dag_id, "-o", "json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = (line for line in result.stdout.splitlines() if line.startswith("["))
    return next((json.loads(line) for line in lines), [])


def index_ran(env: dict[str, str]) -> bool:
    return any(
        r.get("state") == "success" and r["run_id"].startswith("asset_triggered__")
        for r in dag_runs("news_daily_index", env)
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, default=ROOT / ".airflow")
    ap.add_argument("--port", type=int, default=8080, help="API server / UI port")
    ap.add_argument("--site-port", type=int, default=8631)
    ap.add_argument(
        "--until-index",
        type=float,
        metavar="SECONDS",
        help="exit 0 once news_daily_index ran on an asset event (1 on timeout)",
    )
    ap.add_argument("--fresh", action="store_true", help="delete the --home state first")
    args = ap.parse_args(argv)
    if args.fresh and args.home.exists():
        shutil.rmtree(args.home)
    args.home.mkdir(parents=True, exist_ok=True)

    with (
        EmbeddedS3(data_dir=args.home / "s3") as s3,
        serve_site(port=args.site_port) as site,
        contextlib.ExitStack() as push,
    ):
        client = s3.client()
        if BUCKET not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
            client.create_bucket(Bucket=BUCKET)
        feeds = write_feeds_file(site, args.home / "feeds.yaml")
        conn = {
            "conn_type": "aws",
            "login": s3.access_key,
            "password": s3.secret_key,
            "extra": {"endpoint_url": s3.endpoint_url, "region_name": s3.region},
        }
        env = airflow_env(args.home, args.port, {
            "AIRFLOW_CONN_NEWSFLOW_S3": json.dumps(conn),
            "NEWSFLOW_STORE_URI": f"s3://{BUCKET}/lake",
            "NEWSFLOW_FEEDS_FILE": str(feeds),
            "INGEST_ALLOW_NETWORKS": "127.0.0.0/8",
            "INGEST_WORKERS": "1",
        })  # fmt: skip
        receiver = _push(push, env, s3.env(), args.home)
        proc = start_standalone(env, args.home / "standalone.log")
        print(f"demo site   {site}  (feeds: {feeds})")
        print(f"S3          {s3.endpoint_url}  bucket {BUCKET}, store s3://{BUCKET}/lake")
        exports = " ".join(f"{k}={v}" for k, v in s3.env().items())
        print(f"CLI         export {exports}")
        print(f"            .venv/bin/ingest status --store s3://{BUCKET}/lake --all")
        print(f"receiver    {receiver or 'not started: install redis-server for news_push'}")
        print(f"Airflow UI  http://127.0.0.1:{args.port}  (log: {args.home / 'standalone.log'})")
        passwords = args.home / "simple_auth_manager_passwords.json.generated"
        try:
            deadline = time.monotonic() + (args.until_index or float("inf"))
            shown = False
            while proc.poll() is None and time.monotonic() < deadline:
                if not shown and passwords.exists():
                    print(f"login       {passwords.read_text().strip()}")
                    shown = True
                if args.until_index and index_ran(env):
                    print("news_daily_index ran on the newsflow_articles asset event")
                    return 0
                time.sleep(5)
            return 1 if args.until_index else (proc.returncode or 0)
        except KeyboardInterrupt:
            return 0
        finally:
            stop(proc)


def _push(stack: contextlib.ExitStack, env: dict[str, str], s3_env: dict[str, str],
          home: Path) -> str | None:  # fmt: skip
    """Redis and `ingest receive` for news_push, when redis-server is installed: the
    doorbell Connection and the callback URL go into `env`. Returns the receiver's URL."""
    if not shutil.which("redis-server"):
        return None
    redis_url = stack.enter_context(redis_server())
    receiver = Receiver(f"s3://{BUCKET}/lake", redis_url, {**os.environ, **s3_env},
                        home / "receiver.log")  # fmt: skip
    receiver.start()
    stack.callback(receiver.stop)
    env["AIRFLOW_CONN_NEWSFLOW_DOORBELL"] = redis_url
    env["NEWSFLOW_PUSH"] = "on"
    env["INGEST_WEBSUB_CALLBACK"] = receiver.url
    return receiver.url


def session_processes(session: int) -> list[int]:
    """Processes of a session: standalone starts one, and its task processes stay in it even
    when they start process groups of their own."""
    pids = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            if os.getsid(pid) == session and pid != os.getpid():
                pids.append(pid)
        except ProcessLookupError:
            continue
    return pids


def stop(proc: subprocess.Popen) -> None:
    """Stop standalone by its process group, then whatever else its session still holds
    (scheduler workers and task processes outlive the parent)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    for pid in session_processes(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
