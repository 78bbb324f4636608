"""The daily index site in a real browser: headless Chromium renders the pages, takes the
screenshots and shows that the CSP stops scripts."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from ingest import index
from ingest.store import LocalStore
from tests.helpers.index import CSP_META, DAY, D, article, assert_site_links_resolve, at, commit

ROOT = Path(__file__).parents[2]


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "chromium is not installed: this test renders the index pages in headless "
            "Chromium. Install the Debian package `chromium` (scripts/system_deps.sh does).",
            pytrace=False,
        )
    return found


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM Chromium built from `page`, after any script it let run."""
    result = subprocess.run(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            f"--user-data-dir={profile}", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout, result.stderr
    return result.stdout


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a well-formed PNG: signature, CRCs, IHDR first, IEND last, and
    image data that inflates to exactly its rows. Fails on a blank (single colour) one."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, chunks, idat = 8, [], b""
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append(kind)
        idat += body if kind == b"IDAT" else b""
        at += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    pixels = zlib.decompress(idat)
    assert depth == 8 and len(pixels) == height * (1 + width * channels)
    assert len(set(pixels)) > 16, "the screenshot is blank"
    return width, height


def test_site_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium()  # fails, not skips, when missing
    store = LocalStore(tmp_path / "store")
    days = [DAY - D, DAY, DAY + D]
    rows = [
        article(10 * k + n, published=at(8 + n, day))
        for k, day in enumerate(days)
        for n in range(k + 2)
    ]
    rows[-1].update(site_name='Die <Zeitung> & "Co"', language="de", title="Hafen <b>zu</b>")
    commit(store, "r1", rows, DAY)
    index.build(store, days)
    site = tmp_path / "store" / "index"
    newest = site / f"date={days[-1].isoformat()}" / "latest-news.html"

    # screenshots at a phone and a desktop size, through the script that documents them
    shots = tmp_path / "shots"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshot_index.py"), str(site), "--out",
         str(shots)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = {
        f"{name}-{w}x{h}.png": (w, h)
        for name in ("index", f"day-{days[-1].isoformat()}")
        for w, h in ((412, 900), (1280, 900))
    }
    assert sorted(p.name for p in shots.iterdir()) == sorted(expected)
    for name, size in expected.items():
        assert png_size((shots / name).read_bytes()) == size, name

    # the DOM Chromium renders is the page: headings, stories, escaped values, no script
    profile = tmp_path / "profile"
    dom = dump_dom(newest, profile)
    assert "<h1>Latest news<small>" in dom and "Friday 19 December 2025" in dom
    assert "Hafen &lt;b&gt;zu&lt;/b&gt;" in dom and 'Die &lt;Zeitung&gt; &amp; "Co"' in dom
    assert '<li lang="de">' in dom and "<script" not in dom and "<b>" not in dom
    home = dump_dom(site / "index.html", profile)
    assert re.findall(r'href="date=([0-9-]+)/', home) == [d.isoformat() for d in reversed(days)]
    assert "<script" not in home

    # the CSP really stops scripts: an injected one runs only once the CSP meta is removed
    probe = '<script>document.documentElement.setAttribute("data-ran", "yes")</script>'
    injected = newest.read_text("utf-8").replace("<body>", "<body>" + probe, 1)
    (tmp_path / "with-csp.html").write_text(injected, "utf-8")
    (tmp_path / "without-csp.html").write_text(injected.replace(CSP_META, ""), "utf-8")
    assert 'data-ran="yes"' not in dump_dom(tmp_path / "with-csp.html", profile)
    assert 'data-ran="yes"' in dump_dom(tmp_path / "without-csp.html", profile)

    assert assert_site_links_resolve(store) > 0
