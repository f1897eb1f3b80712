"""The session's side of a run's events: listeners, Prometheus metrics, JSON log lines.

``QueryObserver`` is what a run calls (it satisfies ``runtime.events.QueryEvents``); it
turns each call into PySpark's event objects for the ``ListenerBus``, into metric updates
when the query started with ``spark.sql.streaming.metricsEnabled=true``, and into one JSON
line per batch, failure and (re)start when ``spark.unbounded.streaming.jsonLogs=true``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from unbounded.errors import UnboundedError
from unbounded.observe.listener import (
    ListenerBus,
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
)
from unbounded.observe.server import UiServer
from unbounded.observe.ui import LIST_PATH, StreamingUi
from unbounded.observe.ui_board import QueryBoard
from unbounded.observe.ui_publish import StatusPublisher

if TYPE_CHECKING:  # prometheus_client (~20 ms) is imported when metrics are turned on
    from unbounded.observe.metrics import StreamingMetrics

__all__ = ["JSON_LOGGER", "PROMETHEUS_PATH", "QueryObserver", "SessionHub", "enable_json_logs",
           "json_line"]

JSON_LOGGER = logging.getLogger("unbounded.events")
PROMETHEUS_PATH = "/metrics/prometheus"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryObserver:
    """One query's events, fanned out to the session's bus, metrics and log."""

    bus: ListenerBus
    metrics: StreamingMetrics | None = None
    json_logs: bool = False
    board: QueryBoard | None = None

    def started(self, query_id: str, run_id: str, name: str | None, timestamp: str,
                restarted: bool) -> None:
        if self.board is not None:
            self.board.started(query_id, run_id, name, timestamp)
        if self.metrics is not None:
            self.metrics.started(query_id, name)
        self.bus.post(QueryStartedEvent(uuid.UUID(query_id), uuid.UUID(run_id), name,
                                        timestamp))
        self._log("restart" if restarted else "start", id=query_id, runId=run_id, name=name,
                  timestamp=timestamp)

    def progressed(self, progress: Mapping[str, Any]) -> None:
        if self.board is not None:
            self.board.progressed(progress)
        if self.metrics is not None:
            self.metrics.batch_done(str(progress["id"]), progress)
        self.bus.post(QueryProgressEvent(progress))
        if self.json_logs:
            self._log("batch", **_batch_summary(progress))

    def idle(self, query_id: str, run_id: str, timestamp: str) -> None:
        self.bus.post(QueryIdleEvent(uuid.UUID(query_id), uuid.UUID(run_id), timestamp))

    def terminated(self, query_id: str, run_id: str, error: BaseException | None) -> None:
        if self.board is not None:
            self.board.terminated(run_id, error)
        if self.metrics is not None:
            self.metrics.terminated(query_id, failed=error is not None)
        text = None if error is None else "".join(traceback.format_exception(error))
        error_class = error.error_class if isinstance(error, UnboundedError) else None
        self.bus.post(QueryTerminatedEvent(uuid.UUID(query_id), uuid.UUID(run_id), text,
                                           error_class))
        if error is not None:
            self._log("failure", id=query_id, runId=run_id, errorClass=error_class,
                      error=f"{type(error).__name__}: {error}")

    def _log(self, event: str, **fields: Any) -> None:
        if self.json_logs:
            JSON_LOGGER.info("%s", json_line(event, fields))


def _batch_summary(progress: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "runId", "name", "batchId", "timestamp", "batchDuration", "numInputRows",
            "inputRowsPerSecond", "processedRowsPerSecond", "durationMs")
    summary = {k: progress.get(k) for k in keys}
    summary["numOutputRows"] = (progress.get("sink") or {}).get("numOutputRows")
    summary["watermark"] = (progress.get("eventTime") or {}).get("watermark")
    summary["stateRows"] = sum(op.get("numRowsTotal", 0)
                               for op in progress.get("stateOperators", []))
    return summary


def json_line(event: str, fields: Mapping[str, Any]) -> str:
    """One compact JSON object: ``{"event": ..., <fields>}``."""
    return json.dumps({"event": event, **fields}, separators=(",", ":"), default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each line."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def enable_json_logs() -> None:
    """Print ``unbounded.events`` lines, bare, on stderr (once per process)."""
    if any(isinstance(h, _StderrHandler) for h in JSON_LOGGER.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    JSON_LOGGER.addHandler(handler)
    JSON_LOGGER.setLevel(logging.INFO)
    JSON_LOGGER.propagate = False


class SessionHub:
    """A session's observability: its listener bus, and (on first need) its HTTP server
    and Prometheus metrics. ``conf`` reads the session's settings (None when unset)."""

    def __init__(self, conf: Callable[[str], str | None]) -> None:
        self._conf = conf
        self.bus = ListenerBus(int(conf("spark.scheduler.listenerbus.eventqueue.capacity")
                                   or 10000))
        self._server: UiServer | None = None
        self._metrics: StreamingMetrics | None = None
        self._lock = threading.Lock()
        self.board: QueryBoard | None = None
        self._publisher: StatusPublisher | None = None
        if (conf("spark.ui.enabled") or "true").strip().lower() != "false":
            self._start_ui()
        if _true(conf("spark.sql.streaming.metricsEnabled")):
            self.metrics()

    def _start_ui(self) -> None:
        """Spark's UI is on by default: the pages are served from the session's start.
        A UI that cannot bind is logged, not fatal: the queries matter more."""
        try:
            server = self.server()
        except OSError as error:
            log.warning("The streaming UI did not start: %s", error)
            return
        board = QueryBoard(int(self._conf("spark.sql.streaming.ui.retainedProgressUpdates")
                               or 100),
                           int(self._conf("spark.sql.streaming.ui.retainedQueries") or 100),
                           {"uiUrl": server.url})
        StreamingUi(board.documents, self._conf("spark.app.name") or "unbounded").mount(server)
        if (self._conf("spark.unbounded.ui.statusFiles") or "true").lower() != "false":
            self._publisher = StatusPublisher(board.document_json)
            board.on_change(self._publisher.changed)
        self.board = board
        log.info("Structured Streaming UI: %s%s/", server.url, LIST_PATH)

    def server(self) -> UiServer:
        """The session's one HTTP server, started on first use (Spark's UI port rules)."""
        with self._lock:
            if self._server is None:
                self._server = UiServer.start(
                    self._conf("spark.driver.bindAddress") or "127.0.0.1",
                    int(self._conf("spark.ui.port") or 4040),
                    int(self._conf("spark.port.maxRetries") or 16))
            return self._server

    def metrics(self) -> StreamingMetrics:
        """The Prometheus metrics, served at ``/metrics/prometheus`` once created."""
        from unbounded.observe.metrics import StreamingMetrics

        server = self.server()
        with self._lock:
            if self._metrics is None:
                self._metrics = StreamingMetrics(lambda: self.bus.dropped)
                server.add_route(PROMETHEUS_PATH, self._metrics.route)
                log.info("Prometheus metrics of streaming queries: %s%s", server.url,
                         PROMETHEUS_PATH)
            return self._metrics

    @property
    def ui_url(self) -> str | None:
        return None if self._server is None else self._server.url

    def observer_for(self, query_conf: Mapping[str, str]) -> QueryObserver:
        """A query's observer; its conf (fixed at start, as Spark) says what it feeds."""
        metrics = self.metrics() if _true(query_conf.get(
            "spark.sql.streaming.metricsEnabled")) else None
        json_logs = _true(query_conf.get("spark.unbounded.streaming.jsonLogs"))
        if json_logs:
            enable_json_logs()
        return QueryObserver(self.bus, metrics, json_logs, self.board)

    def close(self) -> None:
        self.bus.stop()
        if self._publisher is not None:
            self._publisher.close()
        with self._lock:
            server, self._server, self._metrics = self._server, None, None
        if server is not None:
            server.close()


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"
