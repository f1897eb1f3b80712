"""PySpark's ``StreamingQueryListener``, its events, and the bus that delivers them.

A listener is called on the session's one dispatcher thread, never on a query's thread:
the batch loop only puts an event on a bounded queue
(``spark.scheduler.listenerbus.eventqueue.capacity``, Spark's name, default 10000). When
the queue is full the event is dropped and counted (``ListenerBus.dropped``, shown as
``spark.streams.droppedListenerEvents`` and the Prometheus counter
``unbounded_listener_events_dropped_total``), as Spark's ``AsyncEventQueue`` drops and
counts. One thread and one FIFO queue deliver every query's events in the order they were
posted. A listener that raises is logged and the others still get the event.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "ListenerBus",
    "QueryIdleEvent",
    "QueryProgressEvent",
    "QueryStartedEvent",
    "QueryTerminatedEvent",
    "StreamingQueryListener",
]

log = logging.getLogger(__name__)


class QueryStartedEvent:
    """A query (re)started: ``id`` survives restarts, ``runId`` is this run's."""

    def __init__(self, id: uuid.UUID, runId: uuid.UUID, name: str | None, timestamp: str,
                 jobTags: set[str] | None = None) -> None:
        self.id, self.runId, self.name, self.timestamp = id, runId, name, timestamp
        self.jobTags: set[str] = set(jobTags or ())

    def __repr__(self) -> str:
        return f"QueryStartedEvent(id={self.id}, runId={self.runId}, name={self.name!r})"


class QueryProgressEvent:
    """A batch finished; ``progress`` is what ``query.lastProgress`` returns."""

    def __init__(self, progress: Mapping[str, Any]) -> None:
        self.progress = progress

    def __repr__(self) -> str:
        return f"QueryProgressEvent(batchId={self.progress.get('batchId')})"


class QueryIdleEvent:
    """The query found no new data (at most once per
    ``spark.sql.streaming.noDataProgressEventInterval``, as Spark)."""

    def __init__(self, id: uuid.UUID, runId: uuid.UUID, timestamp: str) -> None:
        self.id, self.runId, self.timestamp = id, runId, timestamp

    def __repr__(self) -> str:
        return f"QueryIdleEvent(id={self.id}, timestamp={self.timestamp})"


class QueryTerminatedEvent:
    """A query ended; ``exception`` is the cause's traceback text when it failed and
    ``errorClassOnException`` the cause's error class when it has one."""

    def __init__(self, id: uuid.UUID, runId: uuid.UUID, exception: str | None,
                 errorClassOnException: str | None = None) -> None:
        self.id, self.runId = id, runId
        self.exception, self.errorClassOnException = exception, errorClassOnException

    def __repr__(self) -> str:
        return f"QueryTerminatedEvent(id={self.id}, failed={self.exception is not None})"


Event = QueryStartedEvent | QueryProgressEvent | QueryIdleEvent | QueryTerminatedEvent


class StreamingQueryListener(ABC):
    """Subclass it and pass an instance to ``spark.streams.addListener``.

    >>> class Printer(StreamingQueryListener):
    ...     def onQueryStarted(self, event): print("started", event.name)
    ...     def onQueryProgress(self, event): pass
    ...     def onQueryTerminated(self, event): pass
    >>> Printer().onQueryIdle(None) is None
    True
    """

    @abstractmethod
    def onQueryStarted(self, event: QueryStartedEvent) -> None:
        """Called after the query started (on the listener thread)."""

    @abstractmethod
    def onQueryProgress(self, event: QueryProgressEvent) -> None:
        """Called after each batch with the batch's progress."""

    def onQueryIdle(self, event: QueryIdleEvent) -> None:  # noqa: B027 (optional, as PySpark)
        """Called when the query is idle, waiting for data."""

    @abstractmethod
    def onQueryTerminated(self, event: QueryTerminatedEvent) -> None:
        """Called when the query stopped or failed."""


def _deliver(listener: StreamingQueryListener, event: Event) -> None:
    if isinstance(event, QueryStartedEvent):
        listener.onQueryStarted(event)
    elif isinstance(event, QueryProgressEvent):
        listener.onQueryProgress(event)
    elif isinstance(event, QueryIdleEvent):
        listener.onQueryIdle(event)
    else:
        listener.onQueryTerminated(event)


_STOP = object()


class ListenerBus:
    """A bounded queue and one daemon thread that hands each event to every listener."""

    def __init__(self, capacity: int = 10000,
                 deliver: Callable[[StreamingQueryListener, Event], None] = _deliver) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(capacity, 1))
        self._listeners: list[StreamingQueryListener] = []
        self._lock = threading.Lock()
        self._deliver = deliver
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def add(self, listener: StreamingQueryListener) -> None:
        with self._lock:
            self._listeners.append(listener)
            self._ensure_thread()

    def remove(self, listener: StreamingQueryListener) -> None:
        with self._lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    @property
    def listeners(self) -> list[StreamingQueryListener]:
        with self._lock:
            return list(self._listeners)

    def post(self, event: Event) -> None:
        """Never blocks: a full queue drops the event and counts it."""
        if not self._listeners:
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._count_drop()

    def _count_drop(self) -> None:
        with self._lock:
            self.dropped += 1
            first = self.dropped == 1
        if first:
            log.warning("The listener queue is full (a listener is slower than the "
                        "queries); dropping events. Raise "
                        "spark.scheduler.listenerbus.eventqueue.capacity or speed up the "
                        "listener; spark.streams.droppedListenerEvents counts them.")

    def wait_until_empty(self, timeout: float | None = None) -> bool:
        """True once every posted event was delivered (tests and shutdown use it)."""
        done = threading.Event()
        with self._queue.all_tasks_done:
            if not self._queue.unfinished_tasks:
                return True
        def join_then_set() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=join_then_set, daemon=True).start()
        return done.wait(timeout)

    def stop(self) -> None:
        """Deliver what is queued, then end the dispatcher thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(10)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._dispatch, daemon=True,
                                            name="unbounded-listener-bus")
            self._thread.start()

    def _dispatch(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is _STOP:
                    return
                for listener in self.listeners:
                    self._call(listener, event)
            finally:
                self._queue.task_done()

    def _call(self, listener: StreamingQueryListener, event: Event) -> None:
        try:
            self._deliver(listener, event)
        except Exception:
            log.exception("Listener %s failed on %r; the query goes on", listener, event)
