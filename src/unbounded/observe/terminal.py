"""A progress bar for backfills (``Trigger.AvailableNow`` / ``Trigger.Once``) at a terminal.

One line per source, fed by the run's progress events (never by the batch thread's own
work): Kafka-shaped offsets (topic -> partition -> offset) count offsets done since the
run began, and Spark's ``avgOffsetsBehindLatest`` in the source's progress metrics gives
the total; a file source's ``numFilesProcessed`` / ``numFilesOutstanding`` count files;
other sources count rows, without a total. A line with a total gets an ETA. Nothing is
drawn unless stderr is a terminal.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # observe sits beside runtime: the protocol is for the type checker
    from rich.console import Console
    from rich.progress import TaskID

    from unbounded.runtime.events import QueryEvents

__all__ = ["BackfillBar", "TeeEvents", "backfill_bar", "files_done_and_total",
           "offset_position"]

log = logging.getLogger(__name__)


def offset_position(offset: Any) -> tuple[int, int] | None:
    """(sum of offsets, partitions) of a Kafka-shaped offset, else None."""
    if isinstance(offset, str):
        try:
            offset = json.loads(offset)
        except ValueError:
            return None
    if not isinstance(offset, Mapping) or not offset:
        return None
    parts = [v for topic in offset.values() if isinstance(topic, Mapping)
             for v in topic.values()]
    if not parts or not all(isinstance(v, int) for v in parts):
        return None
    return sum(parts), len(parts)


class BackfillBar:
    """Draws one line per source of a backfill: done / total, rows/s and ETA."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        # rich is imported when a bar is drawn: ~25 ms that other queries do not pay
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"), TextColumn("{task.fields[rate]} rows/s"),
            TimeRemainingColumn(), console=console, transient=False)
        self._clock = clock
        self._tasks: list[TaskID] = []
        self._first: list[int | None] = []
        self._rows: list[int] = []
        self._began = clock()

    def started(self, query_id: str, run_id: str, name: str | None, timestamp: str,
                restarted: bool) -> None:
        self.progress.start()

    def progressed(self, progress: Mapping[str, Any]) -> None:
        for index, source in enumerate(progress.get("sources", [])):
            self._update(index, source)
        self.progress.refresh()

    def idle(self, query_id: str, run_id: str, timestamp: str) -> None:
        return None

    def terminated(self, query_id: str, run_id: str, error: BaseException | None) -> None:
        self.progress.stop()

    def _update(self, index: int, source: Mapping[str, Any]) -> None:
        while len(self._tasks) <= index:
            self._add_task(source, len(self._tasks))
        self._rows[index] += int(source.get("numInputRows", 0))
        rate = self._rows[index] / max(self._clock() - self._began, 1e-3)
        done, total = self._done_and_total(index, source)
        self.progress.update(self._tasks[index], completed=done, total=total,
                             rate=f"{rate:,.0f}")

    def _add_task(self, source: Mapping[str, Any], index: int) -> None:
        from rich.markup import escape

        start = offset_position(source.get("startOffset"))
        kafka = offset_position(source.get("endOffset")) is not None
        files = files_done_and_total(source) is not None
        self._first.append(start[0] if start else (0 if kafka else None))
        self._rows.append(0)
        self._tasks.append(self.progress.add_task(
            escape(str(source.get("description", f"source {index}"))[:40]), total=None,
            unit="offsets" if kafka else "files" if files else "rows", rate="0"))

    def _done_and_total(self, index: int, source: Mapping[str, Any]) -> tuple[int, int | None]:
        files = files_done_and_total(source)
        if files is not None:
            return files
        first, end = self._first[index], offset_position(source.get("endOffset"))
        if first is None or end is None:
            return self._rows[index], None
        done = end[0] - first
        behind = source.get("metrics", {}).get("avgOffsetsBehindLatest")
        if behind is None:
            return done, None
        return done, done + round(float(behind) * end[1])


def files_done_and_total(source: Mapping[str, Any]) -> tuple[int, int] | None:
    """(files read, files read + outstanding) from a file source's progress metrics."""
    metrics = source.get("metrics") or {}
    done, left = metrics.get("numFilesProcessed"), metrics.get("numFilesOutstanding")
    if done is None or left is None:
        return None
    return int(done), int(done) + int(left)


class TeeEvents:
    """Hands each event to ``first``, then to ``second`` (whose failure is not the run's)."""

    def __init__(self, first: QueryEvents, second: QueryEvents) -> None:
        self.first, self.second = first, second

    def started(self, query_id: str, run_id: str, name: str | None, timestamp: str,
                restarted: bool) -> None:
        self.first.started(query_id, run_id, name, timestamp, restarted)
        _quietly(self.second.started, query_id, run_id, name, timestamp, restarted)

    def progressed(self, progress: Mapping[str, Any]) -> None:
        self.first.progressed(progress)
        _quietly(self.second.progressed, progress)

    def idle(self, query_id: str, run_id: str, timestamp: str) -> None:
        self.first.idle(query_id, run_id, timestamp)
        _quietly(self.second.idle, query_id, run_id, timestamp)

    def terminated(self, query_id: str, run_id: str, error: BaseException | None) -> None:
        _quietly(self.second.terminated, query_id, run_id, error)
        self.first.terminated(query_id, run_id, error)


def _quietly(call: Callable[..., None], *args: Any) -> None:
    try:
        call(*args)
    except Exception:  # a broken terminal must not fail the query
        log.warning("Drawing the progress bar failed", exc_info=True)


def backfill_bar(console: Console | None = None) -> BackfillBar | None:
    """A bar for a backfill (the caller knows the trigger) when the console (stderr by
    default) is a terminal."""
    from rich.console import Console

    console = console or Console(file=sys.stderr)
    return BackfillBar(console) if console.is_terminal else None
