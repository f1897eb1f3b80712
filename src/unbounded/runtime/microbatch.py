"""The micro-batch loop: the write-ahead protocol that makes every result exactly-once.

For each batch N: ask the sources where they are, write ``offsets/N`` (the write-ahead
step), run the batch with exactly those offsets, hand the result to the sink with id N,
write ``commits/N``, then let the sources release what is committed. A restart finds an
``offsets/N`` without ``commits/N`` and re-runs batch N with the logged offsets, batch
timestamp and watermark, so the re-run computes the same rows; the sink's per-batch-id
idempotence turns the second delivery into a no-op.

Pipelining (``spark.unbounded.streaming.pipelineBatches``, on by default for the
default and ``availableNow`` triggers): once batch N's partition tasks are done, the
loop constructs batch N+1 (asks the sources, fixes its timestamp and watermark) and
starts its tasks, then runs N's stateful stage, sink and commit. Nothing of N+1 is
durable before ``commits/N``: its ``offsets/N+1`` entry is written only afterwards,
exactly as without pipelining, so recovery is unchanged; a stop or failure in between
drops the read-ahead (the file source's plan for N+1 is then handed out again, as
after a crash between asking the sources and writing the offset log). Spark runs
these phases one after the other.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from unbounded.checkpoint.lock import CheckpointLock
from unbounded.checkpoint.logs import CommitEntry, CommitLog, OffsetEntry, OffsetLog, QueryMetadata
from unbounded.engine.context import CompileContext
from unbounded.engine.plans import compile_plan
from unbounded.errors import AnalysisException, StreamingQueryException
from unbounded.executors.base import Executor, PendingResults
from unbounded.plan.logical import StreamingRelation, streaming_relations
from unbounded.runtime.progress import (
    BatchOutcome,
    DurationTimer,
    Progress,
    ProgressReporter,
    event_time_report,
    now_ms,
)
from unbounded.runtime.recovery import find_resume_point
from unbounded.runtime.spec import QuerySpec
from unbounded.runtime.stateful.base import StatefulOperator, split_stateful
from unbounded.runtime.stateful.factory import create_operator
from unbounded.runtime.tasks import PartitionTask, TaskResult, run_task
from unbounded.runtime.triggers import AvailableNow, Continuous, Once, ProcessingTime
from unbounded.runtime.watermarks import WatermarkTracker
from unbounded.sinks.base import MicroBatch, Sink, SinkContext, SupportsPrepare
from unbounded.sources.base import (
    Offset,
    Source,
    SourceContext,
    SupportsAvailableNow,
    SupportsStatusReports,
)
from unbounded.sources.registry import create_source
from unbounded.testing.faults import fault_point, slow_batch_for_tests

__all__ = ["MicroBatchExecution"]

log = logging.getLogger(__name__)
_POLL_DELAY_S = 0.01


@dataclass(frozen=True)
class _ReadAhead:
    """Batch N+1, constructed and started while batch N finishes."""

    entry: OffsetEntry
    tasks: list[PartitionTask]
    owners: list[int | None]
    pending: PendingResults[TaskResult]
    latest_offset_ms: int


class MicroBatchExecution:
    """One run of a streaming query on its own thread."""

    def __init__(self, spec: QuerySpec, executor: Executor) -> None:
        if isinstance(spec.trigger, Continuous):
            raise AnalysisException(
                "Continuous processing is not supported yet; use trigger(processingTime=...).",
                error_class="UNSUPPORTED_TRIGGER")
        self.spec = spec
        self.executor = executor
        self.run_id = str(uuid.uuid4())
        self.relations: list[StreamingRelation] = streaming_relations(spec.plan)
        self.split = split_stateful(spec.plan)
        self.row_plan = self.split.below if self.split else spec.plan
        self.operator: StatefulOperator | None = None
        self.last_batch_watermark_ms = 0
        self.sources: list[Source] = []
        self.sink: Sink | None = None
        self.exception: StreamingQueryException | None = None
        self.recent_progress: deque[Progress] = deque(
            maxlen=spec.conf_int("spark.sql.streaming.numRecentProgressUpdates", 100))
        self.status = Progress({"message": "Initializing sources", "isDataAvailable": False,
                                "isTriggerActive": False})
        self._stop = threading.Event()
        self._terminated = threading.Event()
        self._idle_checks = 0
        self._progress_lock = threading.Condition()
        self._lock = CheckpointLock(spec.checkpoint)
        self._thread: threading.Thread | None = None
        self._ahead: _ReadAhead | None = None
        self._sink_prepared = False
        self._pipelined = self._pipelining_applies()
        self.reporter: ProgressReporter
        self.watermarks = WatermarkTracker(
            spec.plan, spec.conf.get("spark.sql.streaming.multipleWatermarkPolicy", "min"))
        self._prepare()

    def _pipelining_applies(self) -> bool:
        enabled = self.spec.conf.get("spark.unbounded.streaming.pipelineBatches", "true")
        trigger = self.spec.trigger
        back_to_back = isinstance(trigger, AvailableNow) or (
            isinstance(trigger, ProcessingTime) and trigger.interval_ms == 0)
        return enabled.strip().lower() == "true" and back_to_back

    # ---- start-up ----------------------------------------------------------------------
    def _prepare(self) -> None:
        """Everything that can fail before the query starts, on the caller's thread."""
        cp = self.spec.checkpoint
        os.makedirs(cp, exist_ok=True)
        self._lock.acquire()
        try:
            self.id = self._load_or_create_metadata(cp)
            self.reporter = ProgressReporter(self.id, self.run_id, self.spec.query_name)
            self.offset_log = OffsetLog(os.path.join(cp, "offsets"))
            self.commit_log = CommitLog(os.path.join(cp, "commits"))
            self.sources = [self._create_source(i, rel) for i, rel in enumerate(self.relations)]
            for src in self.sources:
                if isinstance(src, SupportsStatusReports):
                    src.report_status_to(self._source_status)
            self.sink = self.spec.sink_factory(self._sink_context())
            self.operator = create_operator(
                self.split, self.spec, self.fixed_conf, self.executor)
        except BaseException:
            self._release()
            raise

    def _load_or_create_metadata(self, cp: str) -> str:
        formats = [rel.spec.format.lower() for rel in self.relations]
        existing = QueryMetadata.read(cp)
        if existing is None:
            conf = {"spark.sql.shuffle.partitions": self.spec.conf.get(
                "spark.sql.shuffle.partitions", str(os.cpu_count() or 2))}
            meta = QueryMetadata(str(uuid.uuid4()), formats, self.spec.sink_format, conf)
            meta.write(cp)
            self.fixed_conf = conf
            return meta.id
        if existing.sources and existing.sources != formats:
            raise AnalysisException(
                f"The query's sources changed since its checkpoint {cp} was written: the "
                f"checkpoint has {len(existing.sources)} source(s) {existing.sources}, the query "
                f"has {len(formats)} {formats}. Restore the original sources, or start the "
                "changed query with a new checkpointLocation.",
                error_class="CHECKPOINT_QUERY_MISMATCH")
        self.fixed_conf = existing.conf
        return existing.id

    def _create_source(self, index: int, rel: StreamingRelation) -> Source:
        ctx = SourceContext(
            options=rel.spec.options_dict(), schema=rel.spec.schema,
            metadata_path=os.path.join(self.spec.checkpoint, "sources", str(index)),
            source_index=index)
        return create_source(rel.spec.format, ctx)

    def _sink_context(self) -> SinkContext:
        return SinkContext(
            query_id=self.id, query_name=self.spec.query_name,
            options=self.spec.sink_options, output_mode=self.spec.output_mode,
            checkpoint_path=self.spec.checkpoint, partition_by=self.spec.partition_by,
            extra={"executor": self.executor})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"unbounded-query-{self.id}",
                                        daemon=True)
        self._thread.start()

    # ---- the loop ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._run_loop()
        except BaseException as e:
            log.exception("Query %s (run %s) failed", self.spec.query_name or self.id,
                          self.run_id)
            self.exception = StreamingQueryException(
                f"Query {self.spec.query_name or ''} [id = {self.id}, runId = {self.run_id}] "
                f"terminated with exception: {type(e).__name__}: {e}", cause=e)
        finally:
            self._shutdown()

    def _run_loop(self) -> None:
        resume = find_resume_point(self.offset_log, self.commit_log, len(self.sources))
        self.committed = resume.committed_offsets
        self.batch_id = resume.next_batch_id
        self.watermarks.restore(resume.watermark_ms, resume.node_watermarks)
        if resume.rerun is None and self.batch_id > 0:
            self.last_batch_watermark_ms = self.offset_log.get(self.batch_id - 1) \
                .batch_watermark_ms
        trigger = self.spec.trigger
        if isinstance(trigger, AvailableNow):
            for src in self.sources:
                if isinstance(src, SupportsAvailableNow):
                    src.prepare_for_available_now()
        if resume.rerun is not None:
            log.info("Re-running uncommitted batch %d from the offset log", self.batch_id)
            self._trigger(rerun=resume.rerun)
            if isinstance(trigger, Once):
                return
        while not self._stop.is_set():
            started = time.monotonic()
            ran = self._trigger(rerun=None)
            if isinstance(trigger, Once) or (isinstance(trigger, AvailableNow) and not ran):
                return
            if isinstance(trigger, ProcessingTime) and trigger.interval_ms > 0:
                self._wait_next_interval(started, trigger.interval_ms)
            elif not ran:
                self._stop.wait(_POLL_DELAY_S)

    def _wait_next_interval(self, started: float, interval_ms: int) -> None:
        interval = interval_ms / 1000
        elapsed = time.monotonic() - started
        if elapsed < interval:
            self._stop.wait(interval - elapsed)

    def _trigger(self, rerun: OffsetEntry | None) -> bool:
        """One trigger: construct (or replay) a batch and run it; False when idle."""
        timer = DurationTimer()
        self.status = Progress({"message": "Getting offsets from sources",
                                "isDataAvailable": False, "isTriggerActive": True})
        trigger_start = time.perf_counter()
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            entry: OffsetEntry | None = ahead.entry
            timer.durations["latestOffset"] = ahead.latest_offset_ms
        else:
            with timer.measure("latestOffset"):
                entry = rerun or self._next_offsets(self.committed)
        if entry is None:
            self._note_idle()
            return False
        self.status = Progress({"message": "Processing new data", "isDataAvailable": True,
                                "isTriggerActive": True})
        batch_id = self.batch_id
        if rerun is None:
            fault_point("before-offset-write", batch_id)
            with timer.measure("walCommit"):
                self.offset_log.add(batch_id, entry)
            fault_point("after-offset-write", batch_id)
        outcome = self._run_batch(batch_id, entry, timer, ahead)
        fault_point("before-commit-write", batch_id)
        with timer.measure("commitOffsets"):
            self.commit_log.add(batch_id, CommitEntry(self.watermarks.current_ms))
        fault_point("after-commit-write", batch_id)
        self.committed = entry.offsets
        self._release_committed(batch_id, entry)
        timer.durations["triggerExecution"] = int((time.perf_counter() - trigger_start) * 1000)
        assert self.sink is not None
        progress = self.reporter.report(outcome, timer, self.sources, self.sink)
        with self._progress_lock:
            self.recent_progress.append(progress)
            self._progress_lock.notify_all()
        self.status = Progress({"message": "Waiting for next trigger",
                                "isDataAvailable": True, "isTriggerActive": False})
        self.batch_id += 1
        return True

    def _next_offsets(self, starts: Sequence[Offset | None]) -> OffsetEntry | None:
        respect = not isinstance(self.spec.trigger, Once)
        ends: list[Offset] = []
        for src, start in zip(self.sources, starts, strict=True):
            end = src.latest_offset(start, respect_limits=respect)
            ends.append(start if end is None else end)
        if ends == list(starts) and not self._no_data_batch_due():
            return None
        return OffsetEntry(
            offsets=ends, batch_timestamp_ms=now_ms(),
            batch_watermark_ms=self.watermarks.current_ms, conf=dict(self.fixed_conf),
            watermarks=dict(self.watermarks.per_node_ms))

    def _no_data_batch_due(self) -> bool:
        """A batch without new rows runs when the watermark moved on, so a stateful
        operator can emit closed windows and evict state (not under Trigger.Once)."""
        return (self.operator is not None and self.watermarks.enabled
                and not isinstance(self.spec.trigger, Once)
                and self.watermarks.current_ms > self.last_batch_watermark_ms)

    def _run_batch(self, batch_id: int, entry: OffsetEntry, timer: DurationTimer,
                   ahead: _ReadAhead | None) -> BatchOutcome:
        with timer.measure("queryPlanning"):
            tasks, task_source = (ahead.tasks, ahead.owners) if ahead is not None \
                else self._plan_tasks(self.committed, entry)
        with timer.measure("getBatch"):
            pending = ahead.pending if ahead is not None \
                else self.executor.map_async(run_task, tasks)
            self._prepare_sink_once()
            results: list[TaskResult] = pending.result()
        per_source = [0] * len(self.sources)
        for result, src_index in zip(results, task_source, strict=True):
            if src_index is not None:
                per_source[src_index] += result.input_rows
        event_time = event_time_report(results, self.watermarks)
        self.last_batch_watermark_ms = entry.batch_watermark_ms
        self.state_metrics: list[dict[str, Any]] = []
        self._read_ahead(entry)
        with timer.measure("stateful"):
            tables = self._stateful_stage(results, batch_id, entry)
        batch = MicroBatch(batch_id, tables[0].schema, tables)
        assert self.sink is not None
        with timer.measure("addBatch"):
            self.sink.add_batch(batch_id, batch)
        fault_point("after-sink", batch_id)
        slow_batch_for_tests()
        return BatchOutcome(batch_id, list(self.committed), list(entry.offsets), per_source,
                            batch.num_rows, event_time, self.state_metrics)

    def _stateful_stage(self, results: list[TaskResult], batch_id: int,
                        entry: OffsetEntry) -> list[Any]:
        """Run the stateful operator and the plan above it; stateless plans pass through."""
        if self.operator is None or self.split is None:
            return [r.table for r in results]
        merged = pl.from_arrow(pa.concat_tables([r.table for r in results]))
        assert isinstance(merged, pl.DataFrame)
        output = self.operator.process(merged, batch_id, entry.batch_watermark_ms,
                                       dropped=sum(r.dropped_late for r in results))
        self.state_metrics = [output.metrics]
        ctx = CompileContext(pl.Schema(), entry.batch_timestamp_ms * 1000,
                             entry.batch_watermark_ms * 1000)
        bound = {self.split.placeholder.relation_id: output.rows.lazy()}
        final = compile_plan(self.split.above, bound, ctx).collect()
        if batch_id % 10 == 0:
            self.operator.maintenance(
                self.spec.conf_int("spark.sql.streaming.minBatchesToRetain", 100))
        return [final.to_arrow()]

    def _map_side(self) -> Any:
        return None if self.operator is None else self.operator.map_side

    def _prepare_sink_once(self) -> None:
        if not self._sink_prepared and isinstance(self.sink, SupportsPrepare):
            self.sink.prepare()
        self._sink_prepared = True

    def _read_ahead(self, current: OffsetEntry) -> None:
        """Construct batch N+1 from batch N's end offsets and start its tasks."""
        if not self._pipelined or self._stop.is_set():
            return
        started = time.perf_counter()
        entry = self._next_offsets(current.offsets)
        if entry is None:
            return
        latest_ms = int((time.perf_counter() - started) * 1000)
        tasks, owners = self._plan_tasks(current.offsets, entry)
        pending = self.executor.map_async(run_task, tasks)
        self._ahead = _ReadAhead(entry, tasks, owners, pending, latest_ms)

    def _drop_read_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.pending.cancel()

    def _plan_tasks(self, starts: Sequence[Offset | None], entry: OffsetEntry
                    ) -> tuple[list[PartitionTask], list[int | None]]:
        ts_us = entry.batch_timestamp_ms * 1000
        wm_us = entry.batch_watermark_ms * 1000
        tasks: list[PartitionTask] = []
        owners: list[int | None] = []
        for i, (src, rel) in enumerate(zip(self.sources, self.relations, strict=True)):
            start, end = starts[i], entry.offsets[i]
            if end is None or end == start:
                continue
            for part in src.partitions(start, end):
                tasks.append(PartitionTask(self.row_plan, rel.relation_id, part, rel.schema,
                                           ts_us, wm_us, self._map_side()))
                owners.append(i)
        if not tasks:
            tasks.append(PartitionTask(self.row_plan, None, None, None, ts_us, wm_us,
                                       self._map_side()))
            owners.append(None)
        return tasks, owners

    def _release_committed(self, batch_id: int, entry: OffsetEntry) -> None:
        for src, end in zip(self.sources, entry.offsets, strict=True):
            if end is not None:
                src.commit(end)
        retain = self.spec.conf_int("spark.sql.streaming.minBatchesToRetain", 100)
        oldest = batch_id - retain + 1
        if oldest > 0:
            self.offset_log.purge_before(oldest)
            self.commit_log.purge_before(oldest)

    # ---- progress and status -----------------------------------------------------------
    def _source_status(self, message: str) -> None:
        """A source's account of a wait (e.g. retrying unreachable brokers)."""
        self.status = Progress({**self.status, "message": message})

    def _note_idle(self) -> None:
        self.status = Progress({"message": "Waiting for data to arrive",
                                "isDataAvailable": False, "isTriggerActive": False})
        with self._progress_lock:
            self._idle_checks += 1
            self._progress_lock.notify_all()

    # ---- control -----------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        return not self._terminated.is_set()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the loop to stop after the current batch, then wait for it."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def await_termination(self, timeout: float | None = None) -> bool:
        return self._terminated.wait(timeout)

    def process_all_available(self, timeout: float | None = None) -> None:
        """Wait until everything available now is processed (an idle check after now)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress_lock:
            target = self._idle_checks + 2
            while self._idle_checks < target and not self._terminated.is_set():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("processAllAvailable timed out")
                self._progress_lock.wait(0.05 if remaining is None else min(remaining, 0.05))
        if self.exception is not None:
            raise self.exception

    def _shutdown(self) -> None:
        self._drop_read_ahead()
        if self.operator is not None:
            self.operator.close()
        for src in self.sources:
            try:
                src.stop()
            except Exception:
                log.warning("Stopping source %s failed", src.description, exc_info=True)
        if self.sink is not None:
            try:
                self.sink.stop()
            except Exception:
                log.warning("Stopping the sink failed", exc_info=True)
        self._release()
        self.status = Progress({"message": "Stopped", "isDataAvailable": False,
                                "isTriggerActive": False})
        with self._progress_lock:
            self._terminated.set()
            self._progress_lock.notify_all()

    def _release(self) -> None:
        self._lock.release()
        if self.spec.temporary_checkpoint:
            shutil.rmtree(self.spec.checkpoint, ignore_errors=True)

