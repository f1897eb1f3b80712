"""One run of a streaming query: what it owns and how it starts and ends.

``StreamExecution`` holds the run's life: the checkpoint lock, the query's metadata and
logs, its sources, sink and stateful operators, its thread, status, progress and stop.
How batches are made is the execution protocol beside it: ``MicroBatchExecution``
today; a continuous protocol (long-running partition readers, epoch commits) will sit
beside it and reuse everything here. Spark splits ``StreamExecution`` from
``MicroBatchExecution``/``ContinuousExecution`` the same way.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections import deque

from unbounded.checkpoint.checksum import deferred_folder_syncs
from unbounded.checkpoint.epoch import EpochFence
from unbounded.checkpoint.lock import DEFAULT_LEASE_TIMEOUT_MS, CheckpointLock
from unbounded.checkpoint.logs import BatchLog, CommitLog, OffsetLog, QueryMetadata
from unbounded.checkpoint.storage import storage_for
from unbounded.engine.context import ansi_enabled, session_time_zone
from unbounded.errors import (
    AnalysisException,
    CheckpointCorruptError,
    StreamingQueryException,
    UnboundedError,
)
from unbounded.executors.base import Executor
from unbounded.plan.logical import StreamingRelation, streaming_relations
from unbounded.runtime.events import NO_EVENTS, QueryEvents
from unbounded.runtime.microbatch import MicroBatchExecution
from unbounded.runtime.progress import Progress, ProgressReporter, iso_ms, now_ms
from unbounded.runtime.recovery import StateLayout, cross_check
from unbounded.runtime.spec import QuerySpec
from unbounded.runtime.stage_runner import StageRunner
from unbounded.runtime.stages import plan_stages
from unbounded.runtime.stateful.base import OperatorContext, StatefulOperator
from unbounded.runtime.stateful.factory import create_operator
from unbounded.runtime.triggers import Continuous
from unbounded.sinks.base import Sink, SinkContext
from unbounded.sources.base import Source, SourceContext, SupportsStatusReports
from unbounded.sources.registry import create_source
from unbounded.state.base import StateStoreConf

__all__ = ["StreamExecution"]

log = logging.getLogger(__name__)
_AWAIT_SLICE_S = 0.1  # longest wait before a pending signal handler runs (await_termination)


class StreamExecution:
    """One run of a streaming query on its own thread."""

    def __init__(self, spec: QuerySpec, executor: Executor,
                 events: QueryEvents = NO_EVENTS) -> None:
        if isinstance(spec.trigger, Continuous):
            raise AnalysisException(
                "Continuous processing is not supported yet; use trigger(processingTime=...).",
                error_class="UNSUPPORTED_TRIGGER")
        self.spec = spec
        self.executor = executor
        self.events = events
        self.run_id = str(uuid.uuid4())
        self.relations: list[StreamingRelation] = streaming_relations(spec.plan)
        self.physical = plan_stages(spec.plan)
        self.sources: list[Source] = []
        self.sink: Sink | None = None
        self.operators: list[StatefulOperator] = []
        self.exception: StreamingQueryException | None = None
        self.recent_progress: deque[Progress] = deque(
            maxlen=spec.conf_int("spark.sql.streaming.numRecentProgressUpdates", 100))
        self.status = Progress({"message": "Initializing sources", "isDataAvailable": False,
                                "isTriggerActive": False})
        self.stop_requested = threading.Event()
        # Ends an idle loop's sleep early: set on stop and while processAllAvailable waits.
        self.wake_idle = threading.Event()
        self._terminated = threading.Event()
        self._idle_checks = 0
        self._last_idle_event_ms: int | None = None
        self._progress_lock = threading.Condition()
        self._lock = CheckpointLock(
            spec.checkpoint, lease_timeout_ms=spec.conf_int(
                "spark.unbounded.checkpoint.leaseTimeoutMs", DEFAULT_LEASE_TIMEOUT_MS),
            lease_on_local_path=spec.conf.get(
                "spark.unbounded.checkpoint.leaseOnLocalPath", "false").lower() == "true")
        self._fence: EpochFence | None = None
        self._thread: threading.Thread | None = None
        self.reporter: ProgressReporter
        self._prepare()
        self.protocol = MicroBatchExecution(self)

    # ---- start-up ----------------------------------------------------------------------
    def _prepare(self) -> None:
        """Everything that can fail before the query starts, on the caller's thread."""
        cp = self.spec.checkpoint
        # durably: a power cut must not take the checkpoint folder's name
        storage_for(cp).make_folder(cp, durable=True)
        self._lock.acquire()
        try:
            with deferred_folder_syncs():  # the run's records: see _open_run
                self._open_run(cp)
            self.stages = StageRunner(
                self.physical, self.operators, self.relations,
                ansi=ansi_enabled(self.spec.conf),
                time_zone=session_time_zone(self.spec.conf),
                output_partitions=int(self.fixed_conf["spark.sql.shuffle.partitions"])
                if self.operators else 1)
            cross_check(self.offset_log, self.commit_log, self.sources, self.sink,
                        fence=self.fence, state=self._state_layout())
        except BaseException:
            self._close_operators()
            self._release()
            raise

    def _open_run(self, cp: str) -> None:
        """Take the epoch, read or write the query's metadata, open the sources, the sink
        and the operators (which write their state metadata). On a file system that
        keeps names in order, the checked entries written here leave their folder fsync
        to the next one (``offsets/N``'s, or ``commits/N``'s when a batch re-runs), which
        comes before any batch has an effect: a power cut before it takes them with
        everything after, as if this run had not started (docs/guarantees.md)."""
        self._fence = EpochFence.take(cp, self.run_id, expected=self._lock.next_epoch)
        self._lock.hold(self._fence, self.run_id)
        self.id = self._load_or_create_metadata(cp)
        self.reporter = ProgressReporter(self.id, self.run_id, self.spec.query_name)
        self.offset_log = OffsetLog(os.path.join(cp, "offsets"))
        self.commit_log = CommitLog(os.path.join(cp, "commits"))
        self.sources = [self._create_source(i, rel) for i, rel in enumerate(self.relations)]
        for src in self.sources:
            if isinstance(src, SupportsStatusReports):
                src.report_status_to(self._source_status)
        self.sink = self.spec.sink_factory(self._sink_context())
        self._create_operators()

    def _state_layout(self) -> StateLayout | None:
        if not self.operators:
            return None
        return StateLayout(os.path.join(self.spec.checkpoint, "state"), len(self.operators),
                           int(self.fixed_conf["spark.sql.shuffle.partitions"]))

    @property
    def fence(self) -> EpochFence:
        """This run's epoch: checked before every checkpoint or sink publish."""
        assert self._fence is not None, "the run has no epoch before _prepare"
        return self._fence

    def _create_operators(self) -> None:
        """Each operator joins ``self.operators`` as it opens, so a later failure closes
        the ones already open."""
        conf = StateStoreConf.from_spark_conf(self.spec.conf)
        for stage in self.physical.operators:
            ctx = OperatorContext(
                state_root=os.path.join(self.spec.checkpoint, "state"),
                num_partitions=int(self.fixed_conf["spark.sql.shuffle.partitions"]),
                store_conf=conf, output_mode=self.spec.output_mode, executor=self.executor,
                operator_id=stage.operator_id, ansi=ansi_enabled(self.spec.conf),
                time_zone=session_time_zone(self.spec.conf))
            self.operators.append(create_operator(
                stage.node, [i.plan for i in stage.inputs], stage.output.schema, ctx))

    def _load_or_create_metadata(self, cp: str) -> str:
        formats = [rel.spec.format.lower() for rel in self.relations]
        existing = QueryMetadata.read(cp)
        if existing is None:
            _refuse_lost_metadata(cp)
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
            source_index=index,
            extra={"conf": dict(self.spec.conf), "planned_schema": rel.schema})
        return create_source(rel.spec.format, ctx)

    def _sink_context(self) -> SinkContext:
        return SinkContext(
            query_id=self.id, query_name=self.spec.query_name,
            options=self.spec.sink_options, output_mode=self.spec.output_mode,
            checkpoint_path=self.spec.checkpoint, partition_by=self.spec.partition_by,
            extra={"executor": self.executor, "conf": dict(self.spec.conf)})

    def start(self) -> None:
        restarted = self.offset_log.latest_id() is not None
        self.events.started(self.id, self.run_id, self.spec.query_name, iso_ms(now_ms()),
                            restarted)
        self._thread = threading.Thread(target=self._run, name=f"unbounded-query-{self.id}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.protocol.run()
        except BaseException as e:
            log.exception("Query %s (run %s) failed", self.spec.query_name or self.id,
                          self.run_id)
            self.exception = self._failure(e)
        finally:
            self._shutdown()

    def _failure(self, cause: BaseException) -> StreamingQueryException:
        """Spark's STREAM_FAILED error, with the cause attached."""
        said = str(cause) if isinstance(cause, UnboundedError) \
            else f"{type(cause).__name__}: {cause}"
        error = StreamingQueryException(
            f"[STREAM_FAILED] Query [id = {self.id}, runId = {self.run_id}] terminated with "
            f"exception: {said} SQLSTATE: XXKST", cause=cause)
        error.__cause__ = cause
        return error

    # ---- progress and status (called by the protocol) ----------------------------------
    def set_status(self, message: str, data_available: bool, trigger_active: bool) -> None:
        self.status = Progress({"message": message, "isDataAvailable": data_available,
                                "isTriggerActive": trigger_active})

    def record_progress(self, progress: Progress) -> None:
        with self._progress_lock:
            self.recent_progress.append(progress)
            self._progress_lock.notify_all()
        self._last_idle_event_ms = now_ms()
        self._log_batch(progress)
        self.events.progressed(progress)

    def _log_batch(self, progress: Progress) -> None:
        """The one INFO line a batch leaves, so a running query is not silent."""
        log.info("Query %s batch %d: %d rows in %d ms, watermark %s",
                 self.spec.query_name or self.id, progress["batchId"],
                 progress["numInputRows"], progress["durationMs"]["triggerExecution"],
                 progress["eventTime"].get("watermark", "none"))

    def note_idle(self) -> None:
        self.set_status("Waiting for data to arrive", False, False)
        with self._progress_lock:
            self._idle_checks += 1
            self._progress_lock.notify_all()
        self._maybe_post_idle()

    def _maybe_post_idle(self) -> None:
        """Spark's QueryIdleEvent: at once when idle before any batch ran, then at most
        once per ``spark.sql.streaming.noDataProgressEventInterval`` (ms)."""
        now = now_ms()
        interval = self.spec.conf_int("spark.sql.streaming.noDataProgressEventInterval", 10000)
        last = self._last_idle_event_ms
        if last is None or now - interval >= last:
            self._last_idle_event_ms = now
            self.events.idle(self.id, self.run_id, iso_ms(now))

    def _source_status(self, message: str) -> None:
        """A source's account of a wait (e.g. retrying unreachable brokers)."""
        self.status = Progress({**self.status, "message": message})

    # ---- control -----------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        return not self._terminated.is_set()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the run to stop after the current batch, then wait for it."""
        self.stop_requested.set()
        self.wake_idle.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def await_termination(self, timeout: float | None = None) -> bool:
        """Wait in short slices: a SIGINT/SIGTERM the kernel delivers to another thread
        only runs its Python handler when the main thread next runs bytecode, and one
        blocked wait until the end would let the handler see no active query, and exit
        by the signal's default action, after the run finished instead of stopping it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return self._terminated.is_set()
            if self._terminated.wait(_AWAIT_SLICE_S if remaining is None
                                     else min(remaining, _AWAIT_SLICE_S)):
                return True

    def process_all_available(self, timeout: float | None = None) -> None:
        """Wait until everything available now is processed (an idle check after now)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress_lock:
            target = self._idle_checks + 2
            while self._idle_checks < target and not self._terminated.is_set():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("processAllAvailable timed out")
                self.wake_idle.set()  # an idle loop asleep until data is due checks now
                self._progress_lock.wait(0.05 if remaining is None else min(remaining, 0.05))
        if self.exception is not None:
            raise self.exception

    # ---- the end -----------------------------------------------------------------------
    def _shutdown(self) -> None:
        self.protocol.abandon()
        self._close_operators()
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
        self.set_status("Stopped", False, False)
        try:
            self.events.terminated(self.id, self.run_id,
                                   None if self.exception is None else self.exception.cause)
        except Exception:  # the run must still end: awaitTermination waits for it
            log.exception("Reporting the end of query %s failed", self.id)
        with self._progress_lock:
            self._terminated.set()
            self._progress_lock.notify_all()

    def _close_operators(self) -> None:
        for operator in self.operators:
            operator.close()

    def _release(self) -> None:
        if self._fence is not None:
            self._fence.release()
        self._lock.release()
        if self.spec.temporary_checkpoint:
            shutil.rmtree(self.spec.checkpoint, ignore_errors=True)


def _refuse_lost_metadata(cp: str) -> None:
    """A checkpoint with logged batches but no ``metadata`` lost its query id. A new id
    would be a guess that breaks exactly-once: the Kafka sink finds the batches it
    committed by the id (``unbounded-sink-<id>``), so a re-run batch would be written
    again. Spark makes a new id here; this engine refuses."""
    logged = [name for name in ("offsets", "commits")
              if BatchLog(os.path.join(cp, name)).latest_id() is not None]
    if logged:
        path = os.path.join(cp, "metadata")
        raise CheckpointCorruptError(
            f"Checkpoint file {path} is missing, but {cp} has logged batches "
            f"({' and '.join(logged)}): the query's id is lost, and sinks that recognise "
            "a re-run batch by it (Kafka) would write it again. Restore the file from a "
            "backup of the checkpoint (or write it back with the query's id, "
            "unbounded.checkpoint.logs.QueryMetadata(id, sources, sink).write(checkpoint)), "
            "or start the query with a new checkpointLocation.")

