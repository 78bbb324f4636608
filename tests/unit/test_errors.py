"""One base error for what goes wrong with one input; it survives the trip back from a
worker process with every field."""

from __future__ import annotations

import pickle

import pytest

from ingest.config import ConfigError
from ingest.errors import ExtractError, IngestError, permanent
from ingest.net import FetchError


@pytest.mark.parametrize(
    "error",
    [
        FetchError("http_503", "busy", status=503, transient=True, retry_after=30.0),
        FetchError("too_large", "11 MB"),
        ExtractError("aborted", "the run is stopping", transient=True),
        ExtractError("too_short", "3 words"),
    ],
)
def test_errors_cross_processes_whole(error: IngestError) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and isinstance(back, IngestError)
    assert vars(back) == vars(error) and str(back) == str(error)
    assert (back.reason, back.detail, back.transient) == (error.reason, error.detail,
                                                          error.transient)  # fmt: skip


def test_status_is_there_for_every_kind() -> None:
    assert ExtractError("x", "y").status is None
    assert FetchError("http_404", "gone", status=404).status == 404


def test_permanent_is_what_no_retry_fixes() -> None:
    assert permanent(ConfigError("bad feeds file"))
    assert not permanent(FetchError("timeout", "slow", transient=True))
