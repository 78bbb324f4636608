"""Shared fixtures: one real S3 server (embedded SeaweedFS) per test session.

Starting weed takes about a second, so the server is session-scoped and isolation comes
from a fresh bucket per test. If weed cannot start, the fixture errors: S3 tests must never
be skipped silently.

The directory is a test's kind: tests/unit/ is pure logic, tests/integration/ talks to
SeaweedFS, loopback HTTP or engine processes, tests/system/ runs real Airflow, headless
Chromium or the corpus gate. The markers follow the directory (below), so
`-m "not integration and not slow"` selects exactly tests/unit/.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.store import LocalStore, Store, open_store
from newsflow_dev.embedded_s3 import EmbeddedS3, S3Endpoint

# Most tests run the pipeline several times in a row and mean "poll again": no adaptive
# polling interval for them, in this process and in every `ingest`/Airflow process they
# start. The adaptive polling tests set their own interval.
os.environ.setdefault("INGEST_POLL_MIN_INTERVAL", "0")

TESTS = Path(__file__).parent
MARKS = {
    TESTS / "integration": [pytest.mark.integration],
    TESTS / "system": [pytest.mark.integration, pytest.mark.slow],
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by its directory: integration/ and system/ tests carry no marker of
    their own."""
    for item in items:
        for directory, marks in MARKS.items():
            if item.path.is_relative_to(directory):
                for mark in marks:
                    item.add_marker(mark)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Endpoint]:
    """The endpoint of one embedded S3 server shared by the whole session."""
    with EmbeddedS3() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(
    s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[S3Endpoint, str]]:
    """A fresh bucket, with AWS_* env vars set so boto3's default chain reaches the server."""
    bucket = f"test-{uuid.uuid4().hex[:20]}"
    s3_server.client().create_bucket(Bucket=bucket)
    # Stray profile/session settings would be mixed into the credential chain.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    yield s3_server, bucket
    _drop_bucket(s3_server, bucket)


def _drop_bucket(endpoint: S3Endpoint, bucket: str) -> None:
    """Empty and delete a test's bucket. SeaweedFS gives every bucket its own volumes and
    caps their number by free disk / volume size: hundreds of buckets kept for the whole
    session exhaust it, and late tests then fail with InternalError on their first PUT."""
    client = endpoint.client()
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            for start in range(0, len(keys), 1000):
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys[start : start + 1000]})
        client.delete_bucket(Bucket=bucket)
    except Exception as exc:  # a test that broke the bucket must not fail the next one
        print(f"could not drop test bucket {bucket}: {exc}")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The same test against a local directory and against a real S3 bucket."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    _, bucket = request.getfixturevalue("s3_bucket")
    return open_store(f"s3://{bucket}/lake")
