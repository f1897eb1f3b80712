"""Progress reports: Spark's StreamingQueryProgress fields, read as attributes or keys.

PySpark 4 returns objects whose fields read as attributes (``p.batchId``) while older code
indexes them like dicts (``p["batchId"]``); ``Progress`` supports both.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from unbounded.engine.context import EventTimeStats

if TYPE_CHECKING:
    from unbounded.sinks.base import Sink
    from unbounded.sources.base import Source

__all__ = ["DURATION_PARTS", "BatchOutcome", "DurationTimer", "Progress", "ProgressReporter",
           "ReportsSourceMetrics", "event_time_report", "iso_ms", "now_ms",
           "state_operator_report"]

# Spark's durationMs keys of a batch; each is present (0 when the step did not run).
DURATION_PARTS = ("latestOffset", "queryPlanning", "getBatch", "walCommit", "addBatch",
                  "commitOffsets", "triggerExecution")

# Spark's StateOperatorProgress fields; others an operator reports go to customMetrics.
_STATE_FIELDS = ("numRowsTotal", "numRowsUpdated", "allUpdatesTimeMs", "numRowsRemoved",
                 "allRemovalsTimeMs", "commitTimeMs", "memoryUsedBytes",
                 "numRowsDroppedByWatermark", "numShufflePartitions", "numStateStoreInstances")


@runtime_checkable
class ReportsSourceMetrics(Protocol):
    """A source that reports figures about itself in ``sources[*].metrics`` (Spark's
    ``ReportsSourceMetrics``; e.g. Kafka's ``avgOffsetsBehindLatest``, the file source's
    ``numFilesOutstanding``).

    ``metrics(latest_consumed)`` gets the end offset of the batch just run and returns
    text values, as Spark does; Prometheus shows the numeric ones as source lag.
    """

    def metrics(self, latest_consumed: Any) -> dict[str, str]: ...


class Progress(dict[str, Any]):
    """A progress record (or a nested part of one)."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__({k: _wrap(v) for k, v in data.items()})

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def json(self) -> str:  # type: ignore[override]
        return json.dumps(self, separators=(",", ":"), default=str)

    @property
    def prettyJson(self) -> str:
        return json.dumps(self, indent=2, default=str)

    def __str__(self) -> str:
        return self.prettyJson


def _wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, Progress):
        return Progress(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def now_ms() -> int:
    return int(time.time() * 1000)


class DurationTimer:
    """Collects the named durations of one trigger (Spark's durationMs)."""

    def __init__(self) -> None:
        self.durations: dict[str, int] = {}

    def measure(self, name: str) -> Span:
        return Span(self, name)


class Span:
    def __init__(self, timer: DurationTimer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        spent = int((time.perf_counter() - self.start) * 1000)
        self.timer.durations[self.name] = self.timer.durations.get(self.name, 0) + spent


@dataclass
class BatchOutcome:
    """What one batch did, for its progress report."""

    batch_id: int
    start_offsets: list[Any]
    end_offsets: list[Any]
    rows_per_source: list[int]
    output_rows: int
    event_time: dict[str, Any]
    state_metrics: list[dict[str, Any]]
    observed: dict[str, dict[str, Any]] = field(default_factory=dict)


class ProgressReporter:
    """Builds each batch's progress record (Spark's StreamingQueryProgress fields)."""

    def __init__(self, query_id: str, run_id: str, name: str | None) -> None:
        self.query_id, self.run_id, self.name = query_id, run_id, name
        self._last_trigger_at: float | None = None

    def report(self, outcome: BatchOutcome, timer: DurationTimer, sources: list[Source],
               sink: Sink) -> Progress:
        per_source = outcome.rows_per_source
        rows = sum(per_source)
        seconds = max(timer.durations["triggerExecution"], 1) / 1000
        since_last = self._since_last_trigger()
        source_reports = [
            {"description": src.description, "startOffset": start, "endOffset": end,
             "latestOffset": end, "numInputRows": n,
             "inputRowsPerSecond": n / since_last if since_last else 0.0,
             "processedRowsPerSecond": n / seconds, "metrics": _source_metrics(src, end)}
            for src, start, end, n in zip(sources, outcome.start_offsets,
                                          outcome.end_offsets, per_source, strict=True)
        ]
        progress: dict[str, Any] = {
            "id": self.query_id, "runId": self.run_id, "name": self.name,
            "timestamp": iso_ms(now_ms()), "batchId": outcome.batch_id,
            "batchDuration": timer.durations["triggerExecution"],
            "numInputRows": rows,
            "inputRowsPerSecond": rows / since_last if since_last else 0.0,
            "processedRowsPerSecond": rows / seconds,
            "durationMs": {**dict.fromkeys(DURATION_PARTS, 0), **timer.durations},
            "eventTime": outcome.event_time,
            "stateOperators": [state_operator_report(m) for m in outcome.state_metrics],
            "sources": source_reports,
            "sink": {"description": sink.description,
                     "numOutputRows": outcome.output_rows, "metrics": {}},
            "observedMetrics": outcome.observed,
        }
        return Progress(progress)

    def _since_last_trigger(self) -> float:
        now = time.monotonic()
        last = self._last_trigger_at
        self._last_trigger_at = now
        return 0.0 if last is None else now - last


def _source_metrics(source: Source, end: Any) -> dict[str, str]:
    if not isinstance(source, ReportsSourceMetrics):
        return {}
    return {k: str(v) for k, v in source.metrics(end).items()}


def state_operator_report(metrics: dict[str, Any]) -> dict[str, Any]:
    """Every field of Spark's StateOperatorProgress (0 when an operator did not say);
    figures beyond them are the operator's ``customMetrics``."""
    custom = {k: v for k, v in metrics.items()
              if k not in _STATE_FIELDS and k not in ("operatorName", "customMetrics")}
    report: dict[str, Any] = {"operatorName": metrics.get("operatorName", "")}
    report.update({k: metrics.get(k, 0) for k in _STATE_FIELDS})
    report["customMetrics"] = {**metrics.get("customMetrics", {}), **custom}
    return report


def event_time_report(stats: dict[str, EventTimeStats], watermark_ms: int) -> dict[str, Any]:
    """Spark's ``eventTime`` progress: the batch's event-time range and the watermark it
    ran with (moving the watermark is the runner's job, not this report's)."""
    report: dict[str, Any] = {"watermark": iso_ms(watermark_ms)}
    total = EventTimeStats()
    for seen in stats.values():
        total.merge(seen)
    if total.count:
        report.update(min=iso_ms((total.min_us or 0) // 1000),
                      max=iso_ms((total.max_us or 0) // 1000),
                      avg=iso_ms(total.sum_us // total.count // 1000))
    return report


def iso_ms(ms: int) -> str:
    text = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "Z"
