"""The commit protocol's refusal of the earlier store layout: no server, a local directory."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ingest.lake import Lake
from ingest.lake.tables import is_legacy
from ingest.store import StoreError


def test_a_store_of_the_earlier_layout_is_refused_until_migrated(tmp_path) -> None:
    from ingest.store import LocalStore

    store = LocalStore(tmp_path / "old")
    store.put_bytes("_manifests/0000000001.json", b"{}")
    assert is_legacy(store)
    with pytest.raises(StoreError, match="ingest migrate --store"):
        Lake(store).recover()


def test_preload_imports_what_the_flush_and_commit_need_off_the_main_thread() -> None:
    """In a fresh interpreter: nothing imported them before, the preload thread did."""
    code = (
        "import sys, threading\n"
        "from ingest.lake.parts import preload_in_background\n"
        "assert 'pyarrow.compute' not in sys.modules, 'already imported: nothing to test'\n"
        "preload_in_background()\n"
        "[t.join(60) for t in threading.enumerate() if t.name == 'preload']\n"
        "print('pyarrow.compute' in sys.modules, 'pyarrow.dataset' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]
