"""docker/: no Docker engine runs here, so the files are parsed and checked against the
project's pinned versions and the settings the DAGs read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]
DOCKER = ROOT / "docker"


def locked(name: str) -> str:
    match = re.search(
        rf"^{re.escape(name)}==([^\s\\]+)", (ROOT / "requirements-dev.lock").read_text(), re.M
    )
    assert match, name
    return match.group(1)


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_dockerfile_uses_the_locked_airflow_version() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    version = re.search(r"^ARG AIRFLOW_VERSION=(\S+)", text, re.M).group(1)
    assert version == locked("apache-airflow")
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python3\.11", text, re.M)
    assert "COPY --chown=airflow:root dags /opt/airflow/dags" in text
    for copied in ("src", "schemas", "pyproject.toml"):
        assert copied in text and (ROOT / copied).exists()


def test_compose_services_health_and_settings() -> None:
    doc = compose()
    services = doc["services"]
    expected = {"postgres", "redis", "s3", "airflow-init", "airflow-apiserver",
                "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                "airflow-worker", "receiver"}  # fmt: skip
    assert expected <= set(services)
    for name in expected - {"airflow-init"}:
        assert "healthcheck" in services[name], name
    assert services["airflow-worker"]["deploy"]["replicas"] >= 2
    build_arg = services["airflow-scheduler"]["build"]["args"]["AIRFLOW_VERSION"]
    assert build_arg == locked("apache-airflow")
    assert services["airflow-scheduler"]["image"].endswith(locked("apache-airflow"))
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    glue = (ROOT / "src" / "newsflow_airflow" / "settings.py").read_text()
    for var in ("NEWSFLOW_STORE_URI", "NEWSFLOW_FEEDS_FILE", "NEWSFLOW_S3_CONN_ID"):
        assert var in env and var in glue, var
    assert f'"{env["NEWSFLOW_S3_CONN_ID"]}"' in glue  # the default the DAGs use
    init = services["airflow-init"]["command"][-1]
    assert f"connections add {env['NEWSFLOW_S3_CONN_ID']} --conn-type aws" in init
    assert "create_bucket" in init and "airflow db migrate" in init
    bucket = env["NEWSFLOW_STORE_URI"].split("/")[2]
    assert f'Bucket="{bucket}"' in init
    # the receiver writes the DAGs' store and rings the Redis the triggerer listens to
    receiver = services["receiver"]
    command = receiver["command"]
    assert receiver["entrypoint"] == ["ingest"] and command[0] == "receive"
    assert command[command.index("--store") + 1] == env["NEWSFLOW_STORE_URI"]
    doorbell = command[command.index("--doorbell") + 1]
    assert doorbell.startswith("redis://redis:")
    assert env["AIRFLOW_CONN_NEWSFLOW_DOORBELL"].startswith("redis://redis:")
    assert env["NEWSFLOW_PUSH"] == "on"  # news_push's watcher
    assert "/healthz" in " ".join(receiver["healthcheck"]["test"])
    assert "INGEST_WEBSUB_CALLBACK" in env


def test_store_credentials_agree() -> None:
    identity = json.loads((DOCKER / "s3.json").read_text())["identities"][0]
    cred = identity["credentials"][0]
    init = compose()["services"]["airflow-init"]["command"][-1]
    assert f"S3_ACCESS_KEY:-{cred['accessKey']}" in init
    assert f"S3_SECRET_KEY:-{cred['secretKey']}" in init
    feeds = yaml.safe_load((DOCKER / "config" / "feeds.yaml").read_text())
    from ingest.config import parse_feeds

    assert parse_feeds(feeds)
