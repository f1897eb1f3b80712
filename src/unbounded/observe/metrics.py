"""Prometheus metrics of a session's streaming queries (``spark.sql.streaming.metricsEnabled``).

Spark's metrics system reports, per query, the gauges ``inputRate-total``,
``processingRate-total``, ``latency``, ``eventTime-watermark``, ``states-rowsTotal`` and
``states-usedBytes``; its PrometheusServlet prints them. ``StreamingMetrics`` keeps the
same figures per query (labels ``query_name`` and ``query_id``) in Prometheus' units
(seconds, bytes), plus what an operator pages on: a batch-duration histogram, failed
batches, rows dropped by the watermark and source lag where a source reports it
(the ``...Behind...``/``...Outstanding`` figures of ``sources[*].metrics``: Kafka's
``avgOffsetsBehindLatest`` and its min/max, a file source's ``numFilesOutstanding``).
The gauges are read from each query's latest progress when scraped; counters and the
histogram are updated when a batch ends, on the batch thread, which costs a few
dictionary updates.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from unbounded.observe.server import Response

__all__ = ["BATCH_DURATION_BUCKETS", "QueryMetrics", "StreamingMetrics", "watermark_seconds"]

BATCH_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_P = "unbounded_streaming_"


@dataclass
class QueryMetrics:
    """What one query (by id, across its runs in this session) has done."""

    query_id: str
    name: str
    active: bool = True
    last_progress: Mapping[str, Any] | None = None
    batches: int = 0
    input_rows: int = 0
    failed_batches: int = 0
    dropped_by_watermark: int = 0
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(BATCH_DURATION_BUCKETS))
    duration_sum_s: float = 0.0

    @property
    def labels(self) -> list[str]:
        return [self.name, self.query_id]

    def add_batch(self, progress: Mapping[str, Any]) -> None:
        seconds = float(progress.get("batchDuration", 0)) / 1000
        self.last_progress = progress
        self.batches += 1
        self.input_rows += int(progress.get("numInputRows", 0))
        self.dropped_by_watermark += sum(int(op.get("numRowsDroppedByWatermark", 0))
                                         for op in progress.get("stateOperators", []))
        index = bisect_left(BATCH_DURATION_BUCKETS, seconds)
        if index < len(self.bucket_counts):
            self.bucket_counts[index] += 1
        self.duration_sum_s += seconds

    def cumulative_buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip(BATCH_DURATION_BUCKETS, self.bucket_counts, strict=True):
            running += count
            out.append((repr(bound), float(running)))
        out.append(("+Inf", float(self.batches)))
        return out


class StreamingMetrics(Collector):
    """The session's metrics: ``route()`` answers a Prometheus scrape."""

    def __init__(self, dropped_events: Callable[[], int] = lambda: 0) -> None:
        self._queries: dict[str, QueryMetrics] = {}
        self._lock = threading.Lock()
        self._dropped_events = dropped_events
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # ---- updates (called by the session's event hub) -----------------------------------
    def started(self, query_id: str, name: str | None) -> None:
        with self._lock:
            known = self._queries.setdefault(query_id, QueryMetrics(query_id, name or ""))
            known.active, known.name = True, name or ""

    def batch_done(self, query_id: str, progress: Mapping[str, Any]) -> None:
        with self._lock:
            query = self._queries.get(query_id)
            if query is not None:
                query.add_batch(progress)

    def terminated(self, query_id: str, failed: bool) -> None:
        with self._lock:
            query = self._queries.get(query_id)
            if query is not None:
                query.active = False
                query.failed_batches += int(failed)

    # ---- the scrape ----------------------------------------------------------------------
    def route(self) -> Response:
        return Response(generate_latest(self.registry), CONTENT_TYPE_LATEST)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            queries = [QueryMetrics(**vars(q)) for q in self._queries.values()]
        yield from _gauges(queries)
        yield from _counters(queries)
        yield _histogram(queries)
        yield from _source_lag(queries)
        dropped = CounterMetricFamily("unbounded_listener_events_dropped",
                                      "Listener events dropped because the queue was full")
        dropped.add_metric([], float(self._dropped_events()))
        yield dropped


def watermark_seconds(progress: Mapping[str, Any]) -> float | None:
    """The progress's ``eventTime.watermark`` (ISO text) as Unix seconds, if any."""
    text = (progress.get("eventTime") or {}).get("watermark")
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


_LABELS = ["query_name", "query_id"]
_GAUGES: tuple[tuple[str, str, Callable[[Mapping[str, Any]], float | None]], ...] = (
    ("input_rows_per_second", "Rows arriving per second (Spark: inputRate-total)",
     lambda p: float(p.get("inputRowsPerSecond", 0.0))),
    ("processed_rows_per_second", "Rows processed per second (Spark: processingRate-total)",
     lambda p: float(p.get("processedRowsPerSecond", 0.0))),
    ("latency_seconds", "Duration of the latest batch (Spark: latency)",
     lambda p: float(p.get("batchDuration", 0)) / 1000),
    ("event_time_watermark_seconds", "Event-time watermark, Unix seconds "
     "(Spark: eventTime-watermark)", watermark_seconds),
    ("state_rows", "Rows in state over all operators (Spark: states-rowsTotal)",
     lambda p: float(sum(op.get("numRowsTotal", 0) for op in p.get("stateOperators", [])))),
    ("state_memory_bytes", "Memory used by state (Spark: states-usedBytes)",
     lambda p: float(sum(op.get("memoryUsedBytes", 0) for op in p.get("stateOperators", [])))),
    ("last_batch_id", "Id of the latest finished batch", lambda p: float(p.get("batchId", 0))),
)


def _gauges(queries: list[QueryMetrics]) -> Iterator[Metric]:
    active = GaugeMetricFamily(_P + "query_active", "1 while the query runs", labels=_LABELS)
    for q in queries:
        active.add_metric(q.labels, 1.0 if q.active else 0.0)
    yield active
    for name, doc, read in _GAUGES:
        family = GaugeMetricFamily(_P + name, doc, labels=_LABELS)
        for q in queries:
            value = read(q.last_progress) if q.last_progress is not None else None
            if value is not None:
                family.add_metric(q.labels, value)
        yield family


def _counters(queries: list[QueryMetrics]) -> Iterator[Metric]:
    for name, doc, attr in (
            ("batches", "Batches finished", "batches"),
            ("input_rows", "Input rows processed", "input_rows"),
            ("failed_batches", "Batches that failed (each ends its run)", "failed_batches"),
            ("rows_dropped_by_watermark", "Late rows dropped by the watermark",
             "dropped_by_watermark")):
        family = CounterMetricFamily(_P + name, doc, labels=_LABELS)
        for q in queries:
            family.add_metric(q.labels, float(getattr(q, attr)))
        yield family


def _histogram(queries: list[QueryMetrics]) -> Metric:
    family = HistogramMetricFamily(_P + "batch_duration_seconds",
                                   "Duration of each batch (triggerExecution)", labels=_LABELS)
    for q in queries:
        family.add_metric(q.labels, q.cumulative_buckets(), q.duration_sum_s)
    return family


def _source_lag(queries: list[QueryMetrics]) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        _P + "source_lag", "Lag a source reports in its progress metrics (e.g. Kafka's "
        "avgOffsetsBehindLatest, a file source's numFilesOutstanding)",
        labels=[*_LABELS, "source", "metric"])
    for q in queries:
        for source in (q.last_progress or {}).get("sources", []):
            for metric, value in (source.get("metrics") or {}).items():
                number = _number(value) if _LAG_WORDS.search(metric) else None
                if number is not None:
                    family.add_metric([*q.labels, str(source.get("description", "")),
                                       str(metric)], number)
    yield family


_LAG_WORDS = re.compile("Behind|Outstanding")  # lag figures, not counts of work done


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
