"""The micro-batch protocol: the write-ahead steps that make every result exactly-once.

For each batch N: ask the sources where they are, write ``offsets/N`` (the write-ahead
step; the batch's partition tasks, which only compute, already run meanwhile), run the
batch with exactly those offsets, hand the result to the sink with id N,
write ``commits/N``, then let the sources release what is committed. A restart finds an
``offsets/N`` without ``commits/N`` and re-runs batch N with the logged offsets, batch
timestamp and watermark, so the re-run computes the same rows; the sink's per-batch-id
idempotence turns the second delivery into a no-op.

Pipelining (``spark.unbounded.streaming.pipelineBatches``, on by default for the
default and ``availableNow`` triggers): once batch N's partition tasks are done, the
loop constructs batch N+1 (asks the sources, fixes its timestamp and watermark) and
starts its tasks, then runs N's stateful stages, sink and commit. Nothing of N+1 is
durable before ``commits/N``: its ``offsets/N+1`` entry is written only afterwards,
exactly as without pipelining, so recovery is unchanged; a stop or failure in between
drops the read-ahead (the file source's plan for N+1 is then handed out again, as
after a crash between asking the sources and writing the offset log). Spark runs
these phases one after the other.

The run's lifecycle (lock, sources, sink, operators, thread, stop) is
``runtime/execution.py``'s; this module only makes batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from unbounded.checkpoint.checksum import (
    FolderSync,
    PreparedEntry,
    deferred_folder_syncs,
    sync_deferred,
)
from unbounded.checkpoint.logs import CommitEntry, OffsetEntry
from unbounded.engine.context import EventTimeStats
from unbounded.executors.base import PendingResults
from unbounded.plan.logical import WithWatermark, walk_plan
from unbounded.runtime.observed import evaluate_observed
from unbounded.runtime.progress import BatchOutcome, DurationTimer, event_time_report, now_ms
from unbounded.runtime.recovery import find_resume_point
from unbounded.runtime.stage_runner import PlannedTasks, merge_event_time
from unbounded.runtime.stateful.base import BatchInfo, CallsUserFunctions, SupportsTimeouts
from unbounded.runtime.tasks import TaskResult, run_task
from unbounded.runtime.triggers import AvailableNow, Once, ProcessingTime, SupportsDataDue
from unbounded.runtime.watermarks import WatermarkTracker
from unbounded.sinks.base import MicroBatch, SupportsPrepare
from unbounded.sources.base import Offset, SupportsAvailableNow
from unbounded.testing.faults import fault_point, slow_batch_for_tests

if TYPE_CHECKING:
    from unbounded.runtime.execution import StreamExecution

__all__ = ["PURGE_EVERY", "MicroBatchExecution"]

log = logging.getLogger(__name__)
_POLL_DELAY_S = 0.01
_DUE_MARGIN_MS = 0.5  # a source's clock is read in whole ms: wake just after its due time
_DUE_WAIT_MAX_S = 1.0  # the longest idle sleep on due times alone (a clock set back)
PURGE_EVERY = 10  # batches between retention purges of the offset and commit logs


@dataclass(frozen=True)
class _Marks:
    """The watermarks a batch is constructed with, read on the query thread (a read-ahead
    batch may be constructed on another thread while batch N's stages run)."""

    current_ms: int
    per_node_ms: dict[str, int]
    last_batch_ms: int  # the watermark the previous batch ran with


@dataclass(frozen=True)
class _ReadAhead:
    """Batch N+1, constructed and started while batch N finishes."""

    entry: OffsetEntry
    planned: PlannedTasks
    pending: PendingResults[TaskResult]
    latest_offset_ms: int


def _clock(batch_id: int, entry: OffsetEntry, previous_watermark_ms: int) -> BatchInfo:
    return BatchInfo(batch_id, entry.batch_timestamp_ms * 1000, entry.batch_watermark_ms * 1000,
                     previous_watermark_ms * 1000)


class MicroBatchExecution:
    """Constructs, runs and commits micro-batches for one run of a query."""

    def __init__(self, query: StreamExecution) -> None:
        self.query = query
        self.spec = query.spec
        self.watermarks = WatermarkTracker(
            query.spec.plan, query.spec.conf.get("spark.sql.streaming.multipleWatermarkPolicy",
                                                 "min"))
        self.last_batch_watermark_ms = 0
        self.batch_id = 0
        self.committed: list[Offset | None] = []
        self._ahead: _ReadAhead | None = None
        self._sink_prepared = False
        self._pipelined = self._pipelining_applies()
        self._stages_only_compute = not any(
            isinstance(op, CallsUserFunctions) for op in query.operators)
        # Batch N+1 is constructed beside N's stages and sink, on the read-ahead lane,
        # when nothing it reads can change meanwhile: no user function runs in a stage,
        # no operator's timeouts decide whether a batch is due.
        self._ahead_beside = self._pipelined and self._stages_only_compute and not any(
            isinstance(op, SupportsTimeouts) for op in query.operators)
        self._ahead_lane: ThreadPoolExecutor | None = None
        self._ahead_future: Future[_ReadAhead | None] | None = None

    def _pipelining_applies(self) -> bool:
        enabled = self.spec.conf.get("spark.unbounded.streaming.pipelineBatches", "true")
        trigger = self.spec.trigger
        back_to_back = isinstance(trigger, AvailableNow) or (
            isinstance(trigger, ProcessingTime) and trigger.interval_ms == 0)
        # A watermark above an operator is observed only after the batch's stages ran,
        # too late for a read-ahead batch to use it.
        late_marks = any(isinstance(n, WithWatermark) for op in self.query.physical.operators
                         for i in op.inputs if i.upstream is not None for n in walk_plan(i.plan))
        return enabled.strip().lower() == "true" and back_to_back and not late_marks

    # ---- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        query = self.query
        resume = find_resume_point(query.offset_log, query.commit_log, len(query.sources))
        self.committed = list(resume.committed_offsets)
        self.batch_id = resume.next_batch_id
        self.watermarks.restore(resume.watermark_ms, resume.node_watermarks)
        self.last_batch_watermark_ms = resume.previous_batch_watermark_ms
        trigger = self.spec.trigger
        if isinstance(trigger, AvailableNow):
            for src in query.sources:
                if isinstance(src, SupportsAvailableNow):
                    src.prepare_for_available_now()
        if resume.rerun is not None:
            log.info("Re-running uncommitted batch %d from the offset log", self.batch_id)
            self._trigger(rerun=resume.rerun)
            if isinstance(trigger, Once):
                return
        stop = query.stop_requested
        while not stop.is_set():
            started = time.monotonic()
            ran = self._trigger(rerun=None)
            if isinstance(trigger, Once) or (isinstance(trigger, AvailableNow) and not ran):
                return
            if isinstance(trigger, ProcessingTime) and trigger.interval_ms > 0:
                self._wait_next_interval(started, trigger.interval_ms)
            elif not ran:
                self._idle_sleep()

    def _idle_sleep(self) -> None:
        """Sleep until the next poll, or until a stop or ``processAllAvailable`` wakes the
        loop (an idle check is what the latter waits for)."""
        wake = self.query.wake_idle
        wake.wait(self._idle_wait_s())
        wake.clear()

    def _idle_wait_s(self) -> float:
        """Seconds until the next poll of the sources: the poll interval, or less when a
        source says its next rows are due sooner (the ``rate`` source's next second),
        so their batch starts then and not up to a poll interval late. When every
        source says when its rows are due and no operator has processing-time timeouts,
        nothing can change before then: the loop sleeps until the first of them (at most
        ``_DUE_WAIT_MAX_S``) instead of polling every interval (~100 empty triggers a
        second, 0.1-0.3 ms of CPU each)."""
        sources = self.query.sources
        dues = [src.next_data_due_ms(start)
                for src, start in zip(sources, self.committed, strict=True)
                if isinstance(src, SupportsDataDue)]
        polled = len(dues) < len(sources) or any(
            isinstance(op, SupportsTimeouts) for op in self.query.operators)
        wait = _POLL_DELAY_S if polled or not dues else _DUE_WAIT_MAX_S
        if dues:
            due_in = (min(dues) + _DUE_MARGIN_MS) / 1000 - time.time()
            wait = min(wait, max(0.0, due_in))
        return wait

    def _wait_next_interval(self, started: float, interval_ms: int) -> None:
        interval = interval_ms / 1000
        elapsed = time.monotonic() - started
        if elapsed < interval:
            self.query.stop_requested.wait(interval - elapsed)
        elif elapsed > interval:  # Spark's ProcessingTimeExecutor warning, word for word
            log.warning("Current batch is falling behind. The trigger interval is %d "
                        "milliseconds, but spent %d milliseconds", interval_ms,
                        int(elapsed * 1000))

    def _trigger(self, rerun: OffsetEntry | None) -> bool:
        """One trigger: construct (or replay) a batch and run it; False when idle."""
        query = self.query
        timer = DurationTimer()
        query.set_status("Getting offsets from sources", False, True)
        trigger_start = time.perf_counter()
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            entry: OffsetEntry | None = ahead.entry
            timer.durations["latestOffset"] = ahead.latest_offset_ms
        else:
            with timer.measure("latestOffset"):
                entry = rerun or self._next_offsets(self.committed)
        if entry is None:
            query.note_idle()
            return False
        query.set_status("Processing new data", True, True)
        batch_id = self.batch_id
        offsets_durable = FolderSync.DONE
        if rerun is None:
            ahead = ahead or self._start_tasks(batch_id, entry, timer)
            fault_point("before-offset-write", batch_id)
            try:
                with timer.measure("walCommit"):
                    query.fence.check(query.offset_log.path(batch_id))
                    offsets_durable = query.offset_log.add(batch_id, entry,
                                                           sync_in_background=True)
            except BaseException:
                ahead.pending.cancel()
                raise
            fault_point("after-offset-write", batch_id)
        try:
            outcome, commit = self._run_batch(batch_id, entry, timer, ahead, offsets_durable)
            fault_point("before-commit-write", batch_id)
            try:
                with timer.measure("commitOffsets"):
                    query.fence.check(query.commit_log.path(batch_id))
                    commit.publish()
            except BaseException:
                commit.discard()
                raise
            fault_point("after-commit-write", batch_id)
        except BaseException:
            self._drop_read_ahead()
            raise
        self._join_read_ahead()  # before the sources release what N committed
        self.committed = list(entry.offsets)
        self._release_committed(batch_id, entry)
        timer.durations["triggerExecution"] = int((time.perf_counter() - trigger_start) * 1000)
        assert query.sink is not None
        query.record_progress(query.reporter.report(outcome, timer, query.sources, query.sink))
        query.set_status("Waiting for next trigger", True, False)
        self.batch_id += 1
        return True

    def _marks(self) -> _Marks:
        return _Marks(self.watermarks.current_ms, dict(self.watermarks.per_node_ms),
                      self.last_batch_watermark_ms)

    def _next_offsets(self, starts: Sequence[Offset | None], marks: _Marks | None = None
                      ) -> OffsetEntry | None:
        marks = marks or self._marks()
        respect = not isinstance(self.spec.trigger, Once)
        ends: list[Offset | None] = []
        # A source's log entry is named by offsets/N alone, whose write makes it durable.
        with deferred_folder_syncs():
            for src, start in zip(self.query.sources, starts, strict=True):
                end = src.latest_offset(start, respect_limits=respect)
                ends.append(start if end is None else end)
        now = now_ms()
        if ends == list(starts) and not self._no_data_batch_due(now, marks):
            return None
        return OffsetEntry(
            offsets=ends, batch_timestamp_ms=now,
            batch_watermark_ms=marks.current_ms, conf=dict(self.query.fixed_conf),
            watermarks=marks.per_node_ms)

    def _no_data_batch_due(self, now: int, marks: _Marks) -> bool:
        """A batch without new rows runs when the watermark moved on, so a stateful
        operator can emit closed windows and evict state, or when an operator's
        processing-time timeouts are due at ``now`` (not under Trigger.Once)."""
        if isinstance(self.spec.trigger, Once):
            return False
        return (bool(self.query.operators) and self.watermarks.enabled
                and marks.current_ms > marks.last_batch_ms) or any(
            isinstance(op, SupportsTimeouts) and op.timeouts_due(now)
            for op in self.query.operators)

    def _run_batch(self, batch_id: int, entry: OffsetEntry, timer: DurationTimer,
                   ahead: _ReadAhead | None, offsets_durable: FolderSync
                   ) -> tuple[BatchOutcome, PreparedEntry]:
        """Batch N's stages, then its sink. ``offsets/N`` is named already; its folder
        fsync (``offsets_durable``) runs while the built-in operators fold and write
        their state (read back only for committed versions, and replaced when batch N
        re-runs), and is waited for before the sink or a user function sees the batch:
        no output of batch N exists before its offsets are durable."""
        query = self.query
        clock = _clock(batch_id, entry, self.last_batch_watermark_ms)
        with timer.measure("queryPlanning"):
            planned = ahead.planned if ahead is not None \
                else self._plan_tasks(self.committed, entry, clock)
        with timer.measure("getBatch"):
            pending = ahead.pending if ahead is not None \
                else query.executor.map_async(run_task, planned.tasks)
            self._prepare_sink_once()
            results: list[TaskResult] = planned.complete(pending.result())
        per_source = [0] * len(query.sources)
        for result, src_index in zip(results, planned.result_owners, strict=True):
            if src_index is not None:
                per_source[src_index] += result.input_rows
        event_time = merge_event_time(r.event_time for r in results)
        self._advance_watermark(event_time)
        self.last_batch_watermark_ms = entry.batch_watermark_ms
        self._read_ahead(entry)
        if not self._stages_only_compute:
            with timer.measure("walCommit"):
                offsets_durable.wait()
        with timer.measure("addBatch"):  # Spark's addBatch runs the whole query
            stages = query.stages.run(results, clock)
        self._advance_watermark(stages.event_time)
        merge_event_time([stages.event_time], into=event_time)
        if query.operators and batch_id % 10 == 0:
            query.stages.maintenance(
                self.spec.conf_int("spark.sql.streaming.minBatchesToRetain", 100))
        batch = MicroBatch(batch_id, stages.tables[0].schema, stages.tables)
        commit = self._sink_batch(batch, timer, offsets_durable)
        report = event_time_report(event_time, entry.batch_watermark_ms) \
            if self.watermarks.enabled else {}
        return BatchOutcome(batch_id, list(self.committed), list(entry.offsets), per_source,
                            batch.num_rows, report, stages.state_metrics,
                            evaluate_observed(self.spec.observed, stages.tables)), commit

    def _sink_batch(self, batch: MicroBatch, timer: DurationTimer,
                    offsets_durable: FolderSync) -> PreparedEntry:
        """Hand the batch to the sink, once ``offsets/N`` is durable, while ``commits/N``'s
        bytes are made durable (the watermark it records is final once the stages ran);
        only its name waits for the sink, so the commit costs one data fsync less on the
        batch's path."""
        query = self.query
        assert query.sink is not None
        commit = query.commit_log.prepare(batch.batch_id, CommitEntry(self.watermarks.current_ms))
        try:
            with timer.measure("walCommit"):
                offsets_durable.wait()
            with timer.measure("addBatch"):
                query.sink.add_batch(batch.batch_id, batch)
            fault_point("after-sink", batch.batch_id)
            slow_batch_for_tests()
        except BaseException:
            commit.discard()
            raise
        return commit

    def _advance_watermark(self, seen: dict[str, EventTimeStats]) -> None:
        """The one place the watermark moves: event times seen in this batch set the
        value the next batch runs with (logged in its ``offsets`` entry)."""
        if self.watermarks.enabled and seen:
            self.watermarks.observe(seen)

    def _prepare_sink_once(self) -> None:
        if not self._sink_prepared and isinstance(self.query.sink, SupportsPrepare):
            self.query.sink.prepare()
        self._sink_prepared = True

    def _plan_tasks(self, starts: Sequence[Offset | None], entry: OffsetEntry,
                    clock: BatchInfo) -> PlannedTasks:
        return self.query.stages.plan_tasks(self.query.sources, starts, entry.offsets, clock)

    def _start_tasks(self, batch_id: int, entry: OffsetEntry, timer: DurationTimer
                     ) -> _ReadAhead:
        """Start batch N's partition tasks before ``offsets/N`` is written: they only
        compute, and nothing of the batch is durable before the offsets are (the state
        stages and the sink run after), as for a read-ahead batch; so the tasks run while
        the offsets are fsynced instead of after."""
        with timer.measure("queryPlanning"):
            planned = self._plan_tasks(self.committed, entry,
                                       _clock(batch_id, entry, self.last_batch_watermark_ms))
        pending = self.query.executor.map_async(run_task, planned.tasks)
        return _ReadAhead(entry, planned, pending, timer.durations.get("latestOffset", 0))

    def _read_ahead(self, current: OffsetEntry) -> None:
        """Construct batch N+1 from batch N's end offsets and start its tasks: on the
        read-ahead lane while N's stages and sink run (joined before N's sources release
        what it committed, see ``_ahead_beside``), else here."""
        if not self._pipelined or self.query.stop_requested.is_set():
            return
        marks = self._marks()
        if not self._ahead_beside:
            self._ahead = self._construct_ahead(current, marks)
            return
        if self._ahead_lane is None:
            self._ahead_lane = ThreadPoolExecutor(1, thread_name_prefix="unbounded-ahead-lane")
        self._ahead_future = self._ahead_lane.submit(self._construct_ahead, current, marks)

    def _construct_ahead(self, current: OffsetEntry, marks: _Marks) -> _ReadAhead | None:
        started = time.perf_counter()
        entry = self._next_offsets(current.offsets, marks)
        if entry is None:
            return None
        latest_ms = int((time.perf_counter() - started) * 1000)
        planned = self._plan_tasks(current.offsets, entry,
                                   _clock(self.batch_id + 1, entry, current.batch_watermark_ms))
        pending = self.query.executor.map_async(run_task, planned.tasks)
        return _ReadAhead(entry, planned, pending, latest_ms)

    def _join_read_ahead(self) -> None:
        """Wait for batch N+1's construction on the lane (raising its error)."""
        future, self._ahead_future = self._ahead_future, None
        if future is not None:
            self._ahead = future.result()

    def _drop_read_ahead(self) -> None:
        """Batch N failed or the run ends: wait for N+1's construction to finish (so no
        write of it lands later) and drop it; nothing of it is durable but the sources'
        own logs, which a restart reads as it reads a crash's."""
        try:
            self._join_read_ahead()
        except BaseException:
            log.debug("The read-ahead batch failed while it was dropped", exc_info=True)
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.pending.cancel()

    def abandon(self) -> None:
        """Drop the read-ahead batch (the run is ending; nothing of it is durable)."""
        self._drop_read_ahead()
        if self._ahead_lane is not None:
            self._ahead_lane.shutdown(wait=True)
            self._ahead_lane = None
        sync_deferred()

    def _release_committed(self, batch_id: int, entry: OffsetEntry) -> None:
        for src, end in zip(self.query.sources, entry.offsets, strict=True):
            if end is not None:
                src.commit(end)
        retain = self.spec.conf_int("spark.sql.streaming.minBatchesToRetain", 100)
        oldest = batch_id - retain + 1
        if oldest > 0 and _purge_due(batch_id, retain):
            self.query.fence.check(f"the retention purge of batches before {oldest}")
            self.query.offset_log.purge_before(oldest)
            self.query.commit_log.purge_before(oldest)


def _purge_due(batch_id: int, retain: int) -> bool:
    """Whether batch ``batch_id`` purges the logs: every ``min(PURGE_EVERY, retain)``
    batches, not every batch as Spark does. A purge lists each log's folder and fsyncs
    it (2 folder fsyncs, 1-10 ms on a shared disk); spacing them keeps at least
    ``retain`` entries (the setting is a minimum) and fewer than ``2 * retain``."""
    return (batch_id + 1) % min(PURGE_EVERY, retain) == 0
