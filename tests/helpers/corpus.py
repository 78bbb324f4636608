"""The real-page corpus (`../shared/corpora/trafilatura-eval/`, or $NEWSFLOW_EVAL_CORPUS)
as the extraction tests read it: pages decoded as the engine decodes a fetched page."""

from __future__ import annotations

import functools
import gzip
import json
import os
from pathlib import Path

import pytest

from ingest.net import decode_html


@functools.cache
def corpus() -> tuple[Path, dict[str, str]]:
    """The corpus directory and a file name -> URL map; a missing corpus is a failure."""
    override = os.environ.get("NEWSFLOW_EVAL_CORPUS")
    root = (
        Path(override)
        if override
        else Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "trafilatura-eval"
    )
    index = root / "evaldata.json"
    if not index.is_file():
        pytest.fail(
            f"real-page corpus not found at {root}: it belongs beside the repository "
            "(../shared/corpora/trafilatura-eval/) or at $NEWSFLOW_EVAL_CORPUS"
        )
    data = json.loads(index.read_text("utf-8"))
    return root, {item["file"]: url for url, item in data.items()}


def corpus_files() -> list[str]:
    """Every page the corpus holds (its index names a few it does not)."""
    root, urls = corpus()
    return [file for file in sorted(urls) if (root / "pages" / f"{file}.gz").is_file()]


def raw_page(file: str) -> bytes:
    root, _ = corpus()
    return gzip.decompress((root / "pages" / f"{file}.gz").read_bytes())


def corpus_page(file: str) -> tuple[str, str]:
    """(html decoded as the engine decodes a page without charset header, URL)."""
    _, urls = corpus()
    return decode_html(raw_page(file), ""), urls[file]
