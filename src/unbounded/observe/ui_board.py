"""The session's record of its queries for the UI, fed by each run's events.

Spark's ``StreamingQueryStatusListener`` keeps, per run, the query's identity, its
state and its recent progress (``spark.sql.streaming.ui.retainedProgressUpdates``), and
forgets the oldest finished runs beyond ``spark.sql.streaming.ui.retainedQueries``.
``QueryBoard`` does the same. The batch thread only appends the progress record under a
lock; its batch point (``ui_model.batch_point``) and that point's JSON text are built when
someone first asks (a page, the status file publisher) and kept, so a batch costs
nothing more while nobody looks and each point is built and encoded once however often
the run's document is asked for. Whoever wants to know of a change (the publisher) is
told by callback.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from unbounded.errors import UnboundedError
from unbounded.observe.ui_model import DOCUMENT_VERSION, batch_point, epoch_ms

__all__ = ["QueryBoard"]

Changed = Callable[[str], None]


class _Batch:
    """One batch of a run: its progress, and its point and point JSON once asked for."""

    __slots__ = ("_json", "_point", "progress")

    def __init__(self, progress: Mapping[str, Any]) -> None:
        self.progress = progress
        self._point: dict[str, Any] | None = None
        self._json: str | None = None

    def point(self) -> dict[str, Any]:
        if self._point is None:
            self._point = batch_point(self.progress)
        return self._point

    def json(self) -> str:
        if self._json is None:
            self._json = _dumps(self.point())
        return self._json


@dataclass
class _Run:
    """One run of a query; ``batches`` keeps the newest batches only."""

    query_id: str
    run_id: str
    name: str | None
    start_ms: int | None
    batches: deque[_Batch]
    status: str = "RUNNING"
    end_ms: int | None = None
    exception: str | None = None
    error_class: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def head(self) -> dict[str, Any]:
        return {"version": DOCUMENT_VERSION, "id": self.query_id, "runId": self.run_id,
                "name": self.name, "status": self.status, "startMs": self.start_ms,
                "endMs": self.end_ms, "exception": self.exception,
                "errorClass": self.error_class, "pid": os.getpid(), "source": "session",
                **self.extra}

    def document(self) -> dict[str, Any]:
        return {**self.head(), "batches": [b.point() for b in self.batches]}

    def document_json(self) -> str:
        """``json.dumps(document())`` compactly, reusing each batch's encoded point."""
        head = _dumps(self.head())
        points = ",".join(b.json() for b in self.batches)
        return f'{head[:-1]},"batches":[{points}]}}'


class QueryBoard:
    """Runs of a session's queries, newest last.

    >>> board = QueryBoard(retained_batches=2)
    >>> board.started("q", "r", "counts", "2023-11-14T22:13:20.000Z")
    >>> for n in range(3):
    ...     board.progressed({"runId": "r", "batchId": n, "timestamp": "2023-11-14T22:13:21Z"})
    >>> [b["batchId"] for b in board.document("r")["batches"]]
    [1, 2]
    >>> board.terminated("r", None)
    >>> board.document("r")["status"]
    'FINISHED'
    """

    def __init__(self, retained_batches: int = 100, retained_finished: int = 100,
                 extra: Mapping[str, Any] | None = None) -> None:
        self._retained_batches = retained_batches
        self._retained_finished = retained_finished
        self._extra = dict(extra or {})
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._listeners: list[Changed] = []

    def on_change(self, callback: Changed) -> None:
        """Call ``callback(run_id)`` after each change (on the thread that made it)."""
        self._listeners.append(callback)

    def started(self, query_id: str, run_id: str, name: str | None, timestamp: str) -> None:
        run = _Run(query_id, run_id, name, epoch_ms(timestamp),
                   deque(maxlen=self._retained_batches), extra=dict(self._extra))
        with self._lock:
            self._runs[run_id] = run
        self._changed(run_id)

    def progressed(self, progress: Mapping[str, Any]) -> None:
        with self._lock:
            run = self._runs.get(str(progress.get("runId")))
            if run is None:
                return
            run.batches.append(_Batch(progress))
        self._changed(run.run_id)

    def terminated(self, run_id: str, error: BaseException | None) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return
            run.end_ms = _now_ms()
            run.status = "FINISHED" if error is None else "FAILED"
            if error is not None:
                run.exception = "".join(traceback.format_exception(error))
                run.error_class = error.error_class if isinstance(error, UnboundedError) \
                    else None
            forgotten = self._forget_old()
        for changed in [run_id, *forgotten]:
            self._changed(changed)

    def document(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else run.document()

    def document_json(self, run_id: str) -> str | None:
        """The run's document as compact JSON text (what the status files hold)."""
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else run.document_json()

    def documents(self) -> list[dict[str, Any]]:
        with self._lock:
            return [run.document() for run in self._runs.values()]

    def _forget_old(self) -> list[str]:
        finished = [r.run_id for r in self._runs.values() if r.status != "RUNNING"]
        old = finished[:max(0, len(finished) - self._retained_finished)]
        for run_id in old:
            del self._runs[run_id]
        return old

    def _changed(self, run_id: str) -> None:
        for callback in self._listeners:
            callback(run_id)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _now_ms() -> int:
    return int(time.time() * 1000)
