"""The tree stays clean: ruff lint and format are part of the test suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def ruff() -> str:
    found = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    assert Path(found).exists(), "ruff is not installed (it is in the dev lock)"
    return found


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args: list[str]) -> None:
    # no cache: a cached verdict can outlive a change of settings (first-party packages)
    result = subprocess.run([ruff(), *args, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_engine_never_imports_airflow() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "src" / "ingest").rglob("*.py")
        if "import airflow" in p.read_text("utf-8") or "from airflow" in p.read_text("utf-8")
    ]
    assert offenders == []


def test_every_package_ships_in_the_wheel() -> None:
    """setuptools builds the wheel (and so the Docker image) from an explicit package list;
    an editable install finds unlisted subpackages anyway, so only this catches a gap."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {"ingest.schemas"}
    for top, base in (("ingest", "src/ingest"), ("newsflow_airflow", "src/newsflow_airflow"),
                      ("newsflow_dev", "dev/newsflow_dev")):  # fmt: skip
        for init in (ROOT / base).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / base)
            found.add(".".join([top, *rel.parts]))
    assert listed == found
