"""DAG integrity and a real end-to-end `dag.test()` against SeaweedFS and a loopback site.

Airflow reads its configuration at import, so each check runs in a fresh interpreter with
its own AIRFLOW_HOME (SQLite), set up by `airflow db migrate`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DAGS = ROOT / "dags"


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "PYTHONPATH": os.pathsep.join([str(DAGS), str(ROOT / "src")]),
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    result = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return env


def python(code: str, env: dict[str, str], timeout: int = 300) -> dict:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dag_integrity(airflow_home: dict[str, str]) -> None:
    got = python(
        """
        import json, time
        from airflow.dag_processing.dagbag import DagBag
        t = time.monotonic()
        bag = DagBag(dag_folder=__import__("os").environ["AIRFLOW__CORE__DAGS_FOLDER"])
        out = {"errors": {k: str(v)[:500] for k, v in bag.import_errors.items()},
               "seconds": time.monotonic() - t, "dags": {}}
        for dag_id, dag in bag.dags.items():
            out["dags"][dag_id] = {
                "tags": sorted(dag.tags), "doc": bool(dag.doc_md),
                "description": dag.description,
                "tasks": {t.task_id: {"owner": t.owner, "retries": t.retries,
                                      "doc": bool(t.doc_md),
                                      "callback": bool(t.on_failure_callback),
                                      "map_index_template":
                                          getattr(t, "map_index_template", None)}
                          for t in dag.tasks}}
        print(json.dumps(out))
        """,
        airflow_home,
    )
    assert got["errors"] == {}
    assert set(got["dags"]) == {
        "news_ingest", "news_daily_index", "news_maintenance", "news_reextract",
        "news_push"}  # fmt: skip
    assert got["seconds"] < 30
    for dag_id, dag in got["dags"].items():
        assert "newsflow" in dag["tags"] and dag["doc"] and dag["description"], dag_id
        for task_id, t in dag["tasks"].items():
            assert t["owner"] == "newsflow" and t["doc"], (dag_id, task_id)
            if (dag_id, task_id) == ("news_ingest", "feed_health"):
                # it only reports: no retry, and its own alert instead of the callback's
                assert t["retries"] == 0 and not t["callback"]
            else:
                assert t["retries"] >= 1 and t["callback"], (dag_id, task_id)
    shard = got["dags"]["news_ingest"]["tasks"]["ingest_shard"]
    assert shard["map_index_template"] == "{{ shard_label }}"


def test_dag_test_end_to_end(airflow_home: dict[str, str], s3_bucket, tmp_path: Path) -> None:
    from ingest.lake import read_committed
    from ingest.store import open_store
    from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss

    endpoint, bucket = s3_bucket
    # two publishers (hosts), so the feeds make two shards
    with FixtureServer().running() as one, FixtureServer("127.0.0.2").running() as two:
        feeds_yaml = "feeds:\n"
        for f in range(3):
            srv = one if f < 2 else two
            items = []
            for i in range(2):
                n = f * 10 + i
                html = article_html(f"Airflow story {n}", paragraphs(700 + n),
                                    published="2025-12-18T10:00:00+00:00")  # fmt: skip
                srv.add(f"/a/{n}", Route(html.encode()))
                items.append({"title": f"a{n}", "link": srv.url(f"/a/{n}")})
            srv.add(f"/f{f}.xml", Route(rss(items), content_type="application/rss+xml"))
            feeds_yaml += f"  - name: af-{f}\n    url: {srv.url(f'/f{f}.xml')}\n"
        (tmp_path / "feeds.yaml").write_text(feeds_yaml)
        conn = {
            "conn_type": "aws",
            "login": endpoint.access_key,
            "password": endpoint.secret_key,
            "extra": {"endpoint_url": endpoint.endpoint_url, "region_name": "us-east-1"},
        }
        env = {k: v for k, v in airflow_home.items() if not k.startswith("AWS_")}
        env.update({
            "AIRFLOW_CONN_NEWSFLOW_S3": json.dumps(conn),
            "NEWSFLOW_STORE_URI": f"s3://{bucket}/lake",
            "NEWSFLOW_FEEDS_FILE": str(tmp_path / "feeds.yaml"),
            "INGEST_ALLOW_NETWORKS": "127.0.0.0/8",
            "INGEST_WORKERS": "2",
        })  # fmt: skip
        got = python(
            """
            import json, os
            from airflow.dag_processing.dagbag import DagBag
            from airflow.models.asset import AssetEvent
            from airflow.utils.session import create_session
            bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
            run = bag.get_dag("news_ingest").test(run_conf={"shards": 2})
            tis = run.get_task_instances()
            states = {ti.task_id + str(ti.map_index): str(ti.state) for ti in tis}
            labels = sorted(ti.rendered_map_index for ti in tis if ti.task_id == "ingest_shard")
            commit = next(ti for ti in tis if ti.task_id == "commit")
            counters = commit.xcom_pull(task_ids="commit", key="counters")
            with create_session() as session:
                events = [(e.asset.name, e.extra) for e in session.query(AssetEvent).all()]
            dates = events[0][1]["dates"] if events else []
            index_run = bag.get_dag("news_daily_index").test(run_conf={"dates": dates})
            upkeep = bag.get_dag("news_maintenance").test(run_conf={"retention_hours": 1})
            again = bag.get_dag("news_reextract").test()
            # a Variable naming another store than the one the assets name (a usable one:
            # the same bucket, another prefix) is refused, not written to
            elsewhere = os.environ["NEWSFLOW_STORE_URI"] + "-elsewhere"
            os.environ["AIRFLOW_VAR_NEWSFLOW_STORE_URI"] = elsewhere
            mismatch = bag.get_dag("news_maintenance").test()
            mismatch_tries = [ti.try_number for ti in mismatch.get_task_instances()]
            del os.environ["AIRFLOW_VAR_NEWSFLOW_STORE_URI"]
            reextracted = {ti.task_id + str(ti.map_index): str(ti.state)
                           for ti in again.get_task_instances()}
            print(json.dumps({"state": str(run.state), "states": states, "events": events,
                              "labels": labels, "counters": counters,
                              "index_state": str(index_run.state),
                              "maintenance_state": str(upkeep.state),
                              "reextract_state": str(again.state),
                              "mismatch_state": str(mismatch.state),
                              "mismatch_tries": mismatch_tries,
                              "reextract_tasks": reextracted}))
            """,
            env,
            timeout=600,
        )
    assert got["state"].endswith("success"), got
    assert sum(k.startswith("ingest_shard") for k in got["states"]) == 2
    assert got["labels"] == ["af-0 +1", "af-2"]  # shards named by their feeds
    assert got["states"]["feed_health-1"].endswith("success")
    counters = got["counters"]
    assert counters["articles_written"] == 6 and counters["feeds_failed"] == 0
    assert counters["feeds_total"] == 3 and counters["entries_seen"] == 6
    article_events = [extra for name, extra in got["events"] if name == "newsflow_articles"]
    assert article_events == [{"dates": ["2025-12-18"], "run_id": article_events[0]["run_id"],
                               "articles": 6, "counters": counters}]  # fmt: skip
    assert got["index_state"].endswith("success")
    assert got["maintenance_state"].endswith("success")
    # the store has one source of truth: a Variable naming another fails at once
    assert got["mismatch_state"].endswith("failed") and got["mismatch_tries"] == [1]
    assert not any(open_store(f"s3://{bucket}/lake-elsewhere").list(""))  # nothing written
    # re-extraction from the raw archive: one mapped task per ingest day; nothing changed
    # (same extractor), so no asset event
    assert got["reextract_state"].endswith("success"), got["reextract_tasks"]
    assert got["reextract_tasks"]["reextract_day0"].endswith("success")
    assert got["reextract_tasks"]["announce-1"].endswith("skipped")
    store = open_store(f"s3://{bucket}/lake")
    ids = read_committed(store)["article_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 6
    assert store.exists("index/date=2025-12-18/latest-news.html")


@pytest.mark.timeout(900)
def test_real_scheduler_asset_event_triggers_the_index(tmp_path: Path) -> None:
    """scheduler + dag-processor + triggerer + API server (airflow standalone): the ingest
    run's asset event starts news_daily_index by itself."""
    import socket

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "airflow_local.py"), "--home", str(tmp_path),
         "--port", str(free_port()), "--site-port", str(free_port()), "--until-index", "600"],
        capture_output=True, text=True, timeout=840,
    )  # fmt: skip
    log = (tmp_path / "standalone.log").read_text(errors="replace")[-4000:]
    assert result.returncode == 0, (result.stdout, result.stderr[-2000:], log)
    assert "news_daily_index ran on the newsflow_articles asset event" in result.stdout
    # the CLI can be pointed at the same store
    assert re.search(r"export AWS_ENDPOINT_URL=http://127.0.0.1:\d+ AWS_ACCESS_KEY_ID=\S+ "
                     r"AWS_SECRET_ACCESS_KEY=\S+", result.stdout)  # fmt: skip
