#!/usr/bin/env python3
"""Screenshots of the daily index site: the day list and the newest day's page, at a phone
and a desktop size, taken with headless Chromium (Debian package `chromium`).

A look at the pages as readers see them, without serving them: they are self-contained
files that link each other relatively, so opening them from disk shows what a reader gets.

    python scripts/screenshot_index.py STORE/index --out shots/

For an S3 store, copy its `index/` prefix to a directory first. Prints the PNG paths.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = ((412, 900), (1280, 900))  # a common phone viewport (CSS pixels), a laptop


def chromium() -> str:
    """The Chromium binary; a clear message when it is missing (scripts/system_deps.sh)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise SystemExit(
            "screenshot_index: chromium is not installed "
            "(Debian package `chromium`; scripts/system_deps.sh installs it)"
        )
    return found


def screenshot(page: Path, out: Path, width: int, height: int) -> Path:
    """One PNG of `page` in a `width`x`height` window at scale 1, so pixels are CSS pixels.

    --no-sandbox: containers and CI run as root, where Chromium will not start sandboxed;
    the pages run no script and load nothing, so the sandbox guards nothing here. A fresh
    profile per call keeps concurrent runs from sharing (and locking) one."""
    with tempfile.TemporaryDirectory(prefix="newsflow-chromium-") as profile:
        result = subprocess.run(
            [
                chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--force-device-scale-factor=1", f"--user-data-dir={profile}",
                f"--window-size={width},{height}", f"--screenshot={out}", page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
    if result.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise SystemExit(f"screenshot_index: chromium failed on {page}:\n{result.stderr}")
    return out


def pages(index_dir: Path) -> list[tuple[str, Path]]:
    """(name, file) of the day list and the newest day's page, from the manifest."""
    home = index_dir / "index.html"
    manifest = index_dir / "days.json"
    if not home.is_file() or not manifest.is_file():
        raise SystemExit(
            f"screenshot_index: {index_dir} holds no index.html/days.json "
            "(give the index/ directory of a store; `ingest index` writes it)"
        )
    days = sorted(json.loads(manifest.read_text("utf-8"))["days"])
    found = [("index", home)]
    if days:
        found.append((f"day-{days[-1]}", index_dir / f"date={days[-1]}" / "latest-news.html"))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("index_dir", type=Path, help="the index/ directory of a local store")
    parser.add_argument("--out", type=Path, default=Path("."), help="where the PNGs go")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, page in pages(args.index_dir):
        for width, height in SIZES:
            print(screenshot(page, args.out / f"{name}-{width}x{height}.png", width, height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
