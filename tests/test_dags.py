"""DAG integrity and a real end-to-end `dag.test()` against SeaweedFS and a loopback site.

Airflow reads its configuration at import, so each check runs in a fresh interpreter with
its own AIRFLOW_HOME (SQLite), set up by `airflow db migrate`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[1]
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
                "tasks": {t.task_id: {"owner": t.owner, "retries": t.retries,
                                      "doc": bool(t.doc_md),
                                      "callback": bool(t.on_failure_callback)}
                          for t in dag.tasks}}
        print(json.dumps(out))
        """,
        airflow_home,
    )
    assert got["errors"] == {}
    assert set(got["dags"]) == {"news_ingest", "news_daily_index"}
    assert got["seconds"] < 30
    for dag_id, dag in got["dags"].items():
        assert "newsflow" in dag["tags"] and dag["doc"], dag_id
        for task_id, t in dag["tasks"].items():
            assert t["owner"] == "newsflow" and t["retries"] >= 1, (dag_id, task_id)
            assert t["doc"] and t["callback"], (dag_id, task_id)
