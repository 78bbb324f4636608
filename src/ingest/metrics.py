"""A run's counters as a Prometheus textfile, for node_exporter's textfile collector.

Every run (or the commit of a sharded run) writes one snapshot of its report. The file is
replaced whole, so every value describes the latest run only: per-run numbers are gauges,
not counters (they do not accumulate across runs), and rates come from `*_over_time`.

Every series carries `store`: the store URI with any user, password, query or fragment
removed, so two stores exporting on one host (each to its own `.prom` file) never collide.
There is no `run_id` label (a new series every run) and no `shard` label (the exported
report is the merged one of the whole run, written after the commit).

Metrics (name, type, labels; every label set includes `store`):

    newsflow_run_success                            gauge    store
        1 if the latest run committed, 0 if it failed.
    newsflow_run_last_run_timestamp_seconds         gauge    store
        When the latest run ended, failed or not (Unix time).
    newsflow_run_last_success_timestamp_seconds     gauge    store
        When the latest committed run committed (Unix time); 0 if none is known.
    newsflow_run_duration_seconds                   gauge    store
        Wall time of the run: its slowest shard plus the commit.
    newsflow_run_feeds                              gauge    store, outcome
        Feeds by poll outcome: polled, not_modified, not_due (adaptive polling left it for
        a later run), failed, disabled (all five always present; they add up to the
        configured feeds).
    newsflow_run_feeds_malformed                    gauge    store
        Polled feeds whose XML was malformed but still parsed.
    newsflow_run_entries                            gauge    store
        Entries seen in the polled feeds.
    newsflow_run_entries_skipped                    gauge    store
        Entries not fetched, all reasons (the sum of newsflow_run_skips).
    newsflow_run_entries_rejected                   gauge    store
        Entries fetched or extracted that failed, all reasons (newsflow_run_rejects
        without the feed:* reasons).
    newsflow_run_skips                              gauge    store, reason
        Skipped entries by reason: no_link, filtered, already_seen, duplicate_in_run,
        robots.
    newsflow_run_rejects                            gauge    store, reason
        Rejects by reason code (timeout, too_short, http_404, ...); a failed feed counts
        as feed:<reason>.
    newsflow_run_pages_fetched                      gauge    store
        Article pages fetched.
    newsflow_run_articles_extracted                 gauge    store
        Pages extracted into an article.
    newsflow_run_articles_written                   gauge    store
        New articles committed.
    newsflow_run_articles_dropped_at_commit         gauge    store
        Articles another run committed first (not added again).
    newsflow_run_received_bytes                     gauge    store
        HTTP body bytes received (feeds and pages).
    newsflow_run_publication_to_commit_seconds      summary  store, quantile
        Commit time minus published_at over the articles written that have a
        publication time: quantile 0.5, 0.9 and 1 (the maximum), with _count and _sum.
    newsflow_run_publication_to_commit_by_arrival_seconds  summary  store, arrival, quantile
        The same, for the articles that arrived by push (WebSub) and by poll apart.
    newsflow_run_notifications                      gauge    store
        WebSub notifications the run read from the inbox.

A committed run with nothing new still exports every unlabelled series (at 0), so an
alert on absence means "no run wrote this file", never "a quiet run". The per-reason
series exist only for reasons that occurred; the `_skipped`/`_rejected` totals are always
there. With no latency observed, the summary's quantiles are NaN (the Prometheus
convention: 0 would claim perfectly fresh articles) and `_count` is 0. A failed run exports
only the first three metrics, keeping the previous `last_success`.

`freshness()` is pure and imports nothing outside the standard library, so the commit can
call it without prometheus_client installed; prometheus_client is imported by the
functions that build or write metrics.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.report import QUANTILES, RunReport, freshness

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

__all__ = ["QUANTILES", "freshness"]  # re-exported: the report computes, metrics export

PREFIX = "newsflow_run_"
FEED_OUTCOMES = ("polled", "not_modified", "not_due", "failed", "disabled")


class TextfileError(OSError):
    """The metrics textfile cannot be written where it was asked to be."""


# ------------------------------------------------------------------------ labels


def public_store(uri: str) -> str:
    """The store URI as a label value: no user, password, query or fragment (a URI may
    carry credentials; metrics are readable by anyone who can scrape the host)."""
    if "://" not in uri:
        return uri  # a local path
    scheme, rest = uri.split("://", 1)
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    host, slash, path = rest.partition("/")
    # by hand, not urlsplit: that silently drops tabs and newlines, and the label must
    # show the URI as it was given
    return f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"


# ------------------------------------------------------------------------ registries


@dataclass(eq=False)  # registries key collectors by identity
class _Snapshot:
    """A collector of ready-made families: one run's values, exported as they are."""

    families: list[Metric]

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)

    def describe(self) -> Iterator[Metric]:  # lets the registry check names for clashes
        return iter(self.families)


def _registry(families: list[Metric]) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)  # a fresh one: never the global
    registry.register(_Snapshot(families))
    return registry


def _gauge(name: str, doc: str, store: str, value: float) -> Metric:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(PREFIX + name, doc, labels=["store"])
    family.add_metric([store], value)
    return family


def _by_label(name: str, doc: str, store: str, label: str, values: Mapping[str, float]) -> Metric:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(PREFIX + name, doc, labels=["store", label])
    for key, value in sorted(values.items()):
        family.add_metric([store, str(key)], value)
    return family


def _timestamp(value: str | None, default: datetime) -> float:
    return datetime.fromisoformat(value).timestamp() if value else default.timestamp()


def _status(store: str, success: bool, last_run: float, last_success: float) -> list[Metric]:
    return [
        _gauge("success", "1 if the latest run committed, 0 if it failed.", store, int(success)),
        _gauge(
            "last_run_timestamp_seconds",
            "When the latest run ended, failed or not (Unix time).",
            store,
            last_run,
        ),
        _gauge(
            "last_success_timestamp_seconds",
            "When the latest committed run committed (Unix time); 0 if none is known.",
            store,
            last_success,
        ),
    ]


# Gauges read straight from one report field: (metric name, help, report key).
_REPORT_GAUGES = (
    ("duration_seconds", "Wall time of the run: its slowest shard plus the commit.", "seconds"),
    (
        "feeds_malformed",
        "Polled feeds whose XML was malformed but still parsed.",
        "feeds_malformed",
    ),
    ("entries", "Entries seen in the polled feeds.", "entries_seen"),
    ("pages_fetched", "Article pages fetched.", "pages_fetched"),
    ("articles_extracted", "Pages extracted into an article.", "articles_extracted"),
    ("articles_written", "New articles committed.", "articles_written"),
    (
        "articles_dropped_at_commit",
        "Articles another run committed first (not added again).",
        "duplicates_dropped_at_commit",
    ),
    ("received_bytes", "HTTP body bytes received (feeds and pages).", "bytes_received"),
)


def run_metrics(
    report: RunReport | Mapping[str, Any], now: datetime | None = None
) -> CollectorRegistry:
    """A fresh registry with the metrics of one committed run.

    `report` is a RunReport or its `to_dict()` (older reports may lack fields: they read
    as 0). `now` is when the run ended (default: the current time); the success time is
    the report's own commit time, so re-running a committed run id does not move it."""
    data: Mapping[str, Any] = report if isinstance(report, Mapping) else report.to_dict()
    now = now or datetime.now(UTC)
    store = public_store(str(data.get("store", "")))
    rejects: dict[str, float] = dict(data.get("rejects") or {})
    skips: dict[str, float] = dict(data.get("skips") or {})
    feeds = {outcome: data.get(f"feeds_{outcome}") or 0 for outcome in FEED_OUTCOMES}
    page_rejects = sum(v for k, v in rejects.items() if not k.startswith("feed:"))
    return _registry(
        [
            *_status(store, True, now.timestamp(), _timestamp(data.get("finished_at"), now)),
            *(_gauge(name, doc, store, data.get(key) or 0) for name, doc, key in _REPORT_GAUGES),
            _by_label("feeds", "Feeds by poll outcome.", store, "outcome", feeds),
            _gauge(
                "entries_skipped", "Entries not fetched, all reasons.", store, sum(skips.values())
            ),
            _gauge(
                "entries_rejected",
                "Entries fetched or extracted that failed, all reasons (feed failures excluded).",
                store,
                page_rejects,
            ),
            _by_label("skips", "Skipped entries by reason.", store, "reason", skips),
            _by_label(
                "rejects",
                "Rejects by reason code; a failed feed counts as feed:<reason>.",
                store,
                "reason",
                rejects,
            ),
            _latency(store, data.get("freshness_seconds") or {}),
            _latency_by_arrival(store, data.get("freshness_by_arrival") or {}),
            _gauge(
                "notifications",
                "WebSub notifications the run read from the inbox.",
                store,
                data.get("notifications") or 0,
            ),
        ]
    )


def _latency(store: str, fresh: Mapping[str, Any]) -> Metric:
    """Publication-to-commit quantiles as a Prometheus summary (NaN where unknown)."""
    from prometheus_client.core import SummaryMetricFamily
    from prometheus_client.samples import Sample

    latency = SummaryMetricFamily(
        PREFIX + "publication_to_commit_seconds",
        "Commit time minus published_at over the articles written with a publication time.",
        labels=["store"],
    )
    for q, key in QUANTILES:
        value = fresh.get(key)
        sample = Sample(
            latency.name, {"store": store, "quantile": q}, math.nan if value is None else value
        )
        latency.samples.append(sample)
    latency.add_metric([store], fresh.get("count") or 0, fresh.get("sum") or 0.0)
    return latency


def _latency_by_arrival(store: str, by_arrival: Mapping[str, Any]) -> Metric:
    """The same summary split by how the articles arrived (push: WebSub; poll)."""
    from prometheus_client.core import SummaryMetricFamily
    from prometheus_client.samples import Sample

    latency = SummaryMetricFamily(
        PREFIX + "publication_to_commit_by_arrival_seconds",
        "Publication-to-commit seconds of the articles written, by arrival (push or poll).",
        labels=["store", "arrival"],
    )
    for arrival in ("push", "poll"):
        fresh = by_arrival.get(arrival) or {}
        for q, key in QUANTILES:
            value = fresh.get(key)
            labels = {"store": store, "arrival": arrival, "quantile": q}
            latency.samples.append(
                Sample(latency.name, labels, math.nan if value is None else value)
            )
        latency.add_metric([store, arrival], fresh.get("count") or 0, fresh.get("sum") or 0.0)
    return latency


def failed_run_metrics(
    store: str, previous: str | os.PathLike[str] | None = None, now: datetime | None = None
) -> CollectorRegistry:
    """A fresh registry for a run that failed: success 0, the run's end time, and the last
    success carried over from the `previous` textfile (if it has one for this store).

    The counters are left out: nothing was committed, and the previous run's numbers
    would pass for this one's."""
    now = now or datetime.now(UTC)
    label = public_store(store)
    last_success = _last_success(previous, label) if previous is not None else None
    return _registry(_status(label, False, now.timestamp(), last_success or 0.0))


def _last_success(path: str | os.PathLike[str], store: str) -> float | None:
    """The last-success time a textfile holds for `store`; None if unreadable or absent."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = Path(path).read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name == PREFIX + "last_success_timestamp_seconds"
                    and sample.labels.get("store") == store
                ):
                    return sample.value
    except (OSError, ValueError):  # missing, or not a textfile we can read: start afresh
        return None
    return None


# ------------------------------------------------------------------------ writing


def check_textfile_path(path: str | os.PathLike[str]) -> Path:
    """Fail before a run, not after it: the directory must exist (nothing is created: a
    mistyped path must not become a directory node_exporter never reads) and the name must
    end in `.prom`, the only files the textfile collector reads."""
    target = Path(path)
    if target.suffix != ".prom":
        raise TextfileError(
            f"metrics file {target} must end in .prom (node_exporter reads only those)"
        )
    if not target.parent.is_dir():
        raise TextfileError(f"metrics file {target}: directory {target.parent} does not exist")
    if target.is_dir():
        raise TextfileError(f"metrics file {target} is a directory")
    return target


def write_textfile(path: str | os.PathLike[str], registry: CollectorRegistry) -> None:
    """Replace `path` atomically: prometheus_client writes a temp file next to it (its name
    does not end in .prom, so the collector never reads it half-written) and renames it."""
    from prometheus_client import write_to_textfile

    target = check_textfile_path(path)
    try:
        write_to_textfile(str(target), registry)  # removes its temp file if it fails
    except OSError as exc:
        raise TextfileError(f"cannot write metrics file {target}: {exc.strerror or exc}") from exc
