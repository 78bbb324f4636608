"""The store the earlier engine wrote (the manifest layout), unpacked for `ingest migrate`."""

from __future__ import annotations

import tarfile
from pathlib import Path

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_store_v1.tar.gz"


def unpack(tmp_path: Path) -> Path:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "store"
