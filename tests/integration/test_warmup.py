"""Extraction workers load dateparser's locales before their first page, from the compile
cache, and read dates exactly as a cold process does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ingest.extractor_pool import ExtractorPool

# Absolute dates in a dozen languages and orders (relative ones depend on the clock).
DATES = [
    "3 février 2024",
    "12. März 2021, 14:05 Uhr",
    "15 de agosto de 2019",
    "10 октября 2020 г.",
    "2020年5月3日",
    "Pubblicato il 7 giugno 2018",
    "June 4th, 2022 at 9:30 pm",
    "4 Haziran 2017",
    "2019. május 21.",
    "21 stycznia 2016",
    "30/11/2015",
    "qzx 12",
]
READ_DATES = """
import json, sys
from htmldate.extractors import get_external_parser
if sys.argv[1] == "warm":
    from ingest.warmup import warm_extractor
    warm_extractor()
parser = get_external_parser()
out = []
for text in json.loads(sys.argv[2]):
    data = parser.get_date_data(text)
    out.append([str(data["date_obj"]), data["locale"], data["period"]])
print(json.dumps(out))
"""


def _python(cache: Path, *args: str) -> str:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_install_step_builds_the_cache_and_a_second_finds_it(tmp_path: Path) -> None:
    first = _python(tmp_path, "-m", "ingest.warmup")
    second = _python(tmp_path, "-m", "ingest.warmup")
    compiled = int(first.split(" cached, ")[1].split()[0])
    assert compiled > 500, first  # every locale's patterns, parsed in Python once
    assert " 0 compiled" in second, second
    assert list((tmp_path / "newsflow").glob("regex-*.marshal"))


def test_warm_process_reads_dates_as_a_cold_one(tmp_path: Path) -> None:
    _python(tmp_path, "-m", "ingest.warmup")  # the cache exists: the warm side uses it
    cold = json.loads(_python(tmp_path, "-c", READ_DATES, "cold", json.dumps(DATES)))
    warm = json.loads(_python(tmp_path, "-c", READ_DATES, "warm", json.dumps(DATES)))
    assert warm == cold
    assert sum(date != "None" for date, _, _ in cold) >= 10  # the samples are dates


def _worker_state() -> tuple[bool, int]:
    from dateparser.languages.loader import LocaleDataLoader

    from ingest import warmup

    return warmup._warm, len(LocaleDataLoader._loaded_locales)


@pytest.mark.parametrize("start_method", ["forkserver", "fork"])
def test_a_worker_is_warm_after_its_first_page(start_method: str) -> None:
    pool = ExtractorPool(workers=1, timeout=60, start_method=start_method)
    page = "<html><body><article><p>" + "Undated words. " * 40 + "</p></article></body></html>"
    try:
        pool.start()
        if start_method == "forkserver":  # a fork child inherits whatever this process loaded
            assert pool.call(_worker_state, what="state") == (False, 0)  # feeds need none
        pool.extract(
            page.encode(), "text/html", "https://n.example/a"
        )  # the page itself holds no date
        warm, locales = pool.call(_worker_state, what="state")
    finally:
        pool.close()
    assert warm
    assert locales > 100


@pytest.mark.parametrize("start_method", ["forkserver", "fork"])
def test_warm_readies_an_idle_worker_before_any_page(start_method: str) -> None:
    """What a run does once it has pages to fetch: the worker warms while they download."""
    pool = ExtractorPool(workers=1, timeout=60, start_method=start_method)
    try:
        pool.start()
        if start_method == "forkserver":
            assert pool.call(_worker_state, what="state") == (False, 0)
        pool.warm()
        pool.warm()  # once per pool: the second call sends nothing
        warm, locales = pool.call(_worker_state, what="state")  # queued behind the warm-up
    finally:
        pool.close()
    assert warm
    assert locales > 100


def _wait_for(path: str) -> None:
    while not os.path.exists(path):
        time.sleep(0.01)


def test_warm_sends_nothing_to_a_pool_with_no_free_slot(tmp_path: Path) -> None:
    """A warm-up job takes a slot like any job: a full pool gets none (its workers warm on
    their first page), so it never holds more jobs than it admits."""
    pool = ExtractorPool(workers=1, timeout=60, start_method="forkserver")
    release = tmp_path / "release"
    try:
        pool.start()
        with ThreadPoolExecutor(2) as callers:
            busy = [callers.submit(pool.call, _wait_for, str(release), what="busy") for _ in "ab"]
            deadline = time.monotonic() + 30
            while pool._slots._value and time.monotonic() < deadline:  # both jobs admitted
                time.sleep(0.01)
            pool.warm()
            release.touch()
            for job in busy:
                job.result(timeout=30)
        warm, locales = pool.call(_worker_state, what="state")
    finally:
        pool.close()
    assert (warm, locales) == (False, 0)
