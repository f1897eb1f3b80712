"""PySpark's streaming API: DataStreamReader/Writer, StreamingQuery and its manager."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from unbounded.checkpoint.storage import normalize_location
from unbounded.engine.context import session_time_zone
from unbounded.errors import AnalysisException, StreamingQueryException
from unbounded.observe.hub import SessionHub
from unbounded.observe.listener import (
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
    StreamingQueryListener,
)
from unbounded.observe.terminal import BackfillBar, TeeEvents, backfill_bar
from unbounded.plan.analyzer import check_streaming_query
from unbounded.plan.logical import SourceSpec, StreamingRelation
from unbounded.runtime.events import QueryEvents
from unbounded.runtime.execution import StreamExecution
from unbounded.runtime.observed import split_observed
from unbounded.runtime.progress import Progress
from unbounded.runtime.spec import QuerySpec
from unbounded.runtime.triggers import AvailableNow, Once, ProcessingTime, Trigger, make_trigger
from unbounded.sinks.base import Sink, SinkContext
from unbounded.sinks.foreach import ForeachBatchSink, ForeachSink
from unbounded.sinks.registry import create_sink, sink_class
from unbounded.sources.base import SourceContext
from unbounded.sources.registry import source_schema
from unbounded.sql.options import OptionsBuilder
from unbounded.sql.row import rows_from_arrow
from unbounded.sql.types import StructType, parse_ddl_schema

if TYPE_CHECKING:
    from rich.console import Console

    from unbounded.session import SparkSession
    from unbounded.sql.dataframe import DataFrame

__all__ = ["DataStreamReader", "DataStreamWriter", "QueryIdleEvent", "QueryProgressEvent",
           "QueryStartedEvent", "QueryTerminatedEvent", "StreamingQuery",
           "StreamingQueryException", "StreamingQueryListener", "StreamingQueryManager"]

_TEMP_CHECKPOINT_SINKS = {"console", "memory", "noop"}
_OUTPUT_MODES = ("append", "update", "complete")


class DataStreamReader(OptionsBuilder):
    """``spark.readStream``: builds a streaming DataFrame from a source."""

    def __init__(self, session: SparkSession) -> None:
        self._session = session
        self._format = "parquet"
        self._options: dict[str, str] = {}
        self._schema: StructType | None = None

    def format(self, source: str) -> DataStreamReader:
        self._format = source
        return self

    def schema(self, schema: StructType | str) -> DataStreamReader:
        self._schema = parse_ddl_schema(schema) if isinstance(schema, str) else schema
        return self

    def load(self, path: str | None = None, format: str | None = None,
             schema: StructType | str | None = None, **options: Any) -> DataFrame:
        from unbounded.sql.dataframe import DataFrame

        if format is not None:
            self.format(format)
        if schema is not None:
            self.schema(schema)
        self.options(**options)
        if path is not None:
            self._options["path"] = path
        ctx = SourceContext(dict(self._options), self._schema, None,
                            extra={"conf": self._session.conf.getAll()})
        resolved = source_schema(self._format, ctx)
        given = tuple(self._options.items())
        if self._format.lower() in ("csv", "json"):  # Spark's timeZone default for them
            given = (("timeZone", session_time_zone(self._session.conf.getAll())), *given)
        spec = SourceSpec(self._format.lower(), given, self._schema)
        return DataFrame(StreamingRelation(spec, resolved), self._session)

    def _file(self, fmt: str, path: str, schema: StructType | str | None,
              options: dict[str, Any]) -> DataFrame:
        return self.format(fmt).load(path, schema=schema, **options)

    def csv(self, path: str, schema: StructType | str | None = None, **options: Any) -> DataFrame:
        return self._file("csv", path, schema, options)

    def json(self, path: str, schema: StructType | str | None = None, **options: Any) -> DataFrame:
        return self._file("json", path, schema, options)

    def parquet(self, path: str, **options: Any) -> DataFrame:
        return self._file("parquet", path, None, options)

    def text(self, path: str, **options: Any) -> DataFrame:
        return self._file("text", path, None, options)

    def orc(self, path: str, **options: Any) -> DataFrame:
        return self._file("orc", path, None, options)

    def table(self, tableName: str) -> DataFrame:
        """Stream the rows added to a warehouse table (or a streaming view)."""
        catalog = self._session.catalog
        named = catalog._resolve(tableName)  # TABLE_OR_VIEW_NOT_FOUND when missing
        if named.isStreaming:
            return named
        found = catalog._table(tableName)
        if found is None:
            raise AnalysisException(
                f"readStream.table({tableName!r}): only warehouse tables and streaming views "
                "can be read as a stream.", error_class="UNSUPPORTED_STREAMING_TABLE")
        location, metadata = found
        if metadata.partition_columns:
            raise AnalysisException(
                f"readStream.table({tableName!r}): streaming reads of a partitioned table "
                f"(partitioned by {', '.join(metadata.partition_columns)}) are not supported "
                "yet; read it with spark.table(...) or write it unpartitioned.",
                error_class="UNSUPPORTED_STREAMING_TABLE")
        return self.format(metadata.format).schema(metadata.schema).load(location)


class DataStreamWriter(OptionsBuilder):
    """``df.writeStream``: where and how a streaming query writes its results."""

    def __init__(self, df: DataFrame) -> None:
        self._df = df
        self._format = "parquet"  # spark.sql.sources.default
        self._options: dict[str, str] = {}
        self._output_mode = "append"
        self._trigger: Trigger = ProcessingTime(0)
        self._query_name: str | None = None
        self._partition_by: tuple[str, ...] = ()
        self._custom_sink: Callable[[SinkContext], Sink] | None = None

    def format(self, source: str) -> DataStreamWriter:
        self._format = source.lower()
        return self

    def outputMode(self, outputMode: str) -> DataStreamWriter:
        mode = outputMode.lower()
        if mode not in _OUTPUT_MODES:
            raise AnalysisException(
                f"Unknown output mode {outputMode}. Accepted output modes are 'append', "
                "'complete', 'update'.", error_class="INVALID_OUTPUT_MODE")
        self._output_mode = mode
        return self

    def trigger(self, processingTime: str | None = None, once: bool | None = None,
                continuous: str | None = None,
                availableNow: bool | None = None) -> DataStreamWriter:
        self._trigger = make_trigger(processingTime, once, continuous, availableNow)
        return self

    def queryName(self, queryName: str) -> DataStreamWriter:
        self._query_name = queryName
        return self

    def partitionBy(self, *cols: str) -> DataStreamWriter:
        if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
            cols = tuple(cols[0])
        self._partition_by = tuple(cols)
        return self

    def foreachBatch(self, func: Callable[[DataFrame, int], None]) -> DataStreamWriter:
        session = self._df.sparkSession

        def call(table: pa.Table, batch_id: int) -> None:
            from unbounded.plan.logical import DataRelation
            from unbounded.sql.dataframe import DataFrame

            func(DataFrame(DataRelation(table), session), batch_id)

        self._format = "foreachbatch"
        self._custom_sink = lambda ctx: ForeachBatchSink(call, ctx)
        return self

    def foreach(self, f: Any) -> DataStreamWriter:
        """``f`` is a function of a Row, or an object with process(row) and optionally
        open(partition_id, epoch_id) -> bool and close(error)."""
        if not callable(f) and not hasattr(f, "process"):
            raise TypeError("foreach needs a function or an object with a 'process' method")

        def process_partition(table: pa.Table, partition_id: int, epoch_id: int) -> None:
            _run_foreach_writer(f, table, partition_id, epoch_id)

        self._format = "foreach"
        self._custom_sink = lambda ctx: ForeachSink(process_partition, ctx)
        return self

    def start(self, path: str | None = None, format: str | None = None,
              outputMode: str | None = None, partitionBy: Any = None,
              queryName: str | None = None, **options: Any) -> StreamingQuery:
        if format is not None:
            self.format(format)
        if outputMode is not None:
            self.outputMode(outputMode)
        if partitionBy is not None:
            self.partitionBy(partitionBy)
        if queryName is not None:
            self.queryName(queryName)
        self.options(**options)
        if path is not None:
            self._options["path"] = path
        return self._df.sparkSession.streams._start(self._build_spec())

    def toTable(self, tableName: str, format: str | None = None,
                outputMode: str | None = None, partitionBy: Any = None,
                queryName: str | None = None, **options: Any) -> StreamingQuery:
        """Write to the warehouse table ``tableName`` (created with this stream's schema
        when missing, in ``format``, Parquet by default), or to a path-based Delta table
        named ``delta.`/path```."""
        from unbounded.sql.catalog import parse_table_name

        parts = parse_table_name(tableName)
        if len(parts) == 2 and parts[0].lower() == "delta" and "/" in parts[1]:
            return self.format("delta").start(parts[1], outputMode=outputMode,
                                              partitionBy=partitionBy, queryName=queryName,
                                              **options)
        if format is not None:
            self.format(format)
        if partitionBy is not None:
            self.partitionBy(partitionBy)
        if outputMode is not None:
            self.outputMode(outputMode)
        self.options(**options)
        # A query that cannot start must not leave a new table behind.
        check_streaming_query(split_observed(self._df._plan)[0], self._output_mode)
        self._checkpoint_location(self._df.sparkSession)
        location = self._table_location(tableName)
        return self.start(location, queryName=queryName)

    def _table_location(self, name: str) -> str:
        """The folder of table ``name``; a missing table is created with this schema."""
        from unbounded.files.writing import WRITE_FORMATS
        from unbounded.sql.catalog import TableMetadata

        catalog = self._df.sparkSession.catalog
        existing = catalog._table(name)
        if existing is not None:
            location, metadata = existing
            if [n.lower() for n in metadata.schema.names] != \
                    [n.lower() for n in self._df.columns]:
                raise AnalysisException(
                    f"[INCOMPATIBLE_DATA_FOR_TABLE] Cannot write to table {name}: its "
                    f"columns are {metadata.schema.names}, the stream has {self._df.columns}.",
                    error_class="INCOMPATIBLE_DATA_FOR_TABLE")
            self._format = metadata.format
            self._partition_by = metadata.partition_columns
            return location
        if self._format not in WRITE_FORMATS:
            raise AnalysisException(
                f"toTable({name!r}): tables are stored as files; format {self._format!r} "
                f"is not one of {', '.join(WRITE_FORMATS)}.",
                error_class="UNSUPPORTED_DATA_SOURCE_FOR_TABLE")
        order = [c for c in self._df.columns if c not in self._partition_by]
        schema = self._df.select(*order, *self._partition_by).schema
        metadata = TableMetadata(self._format, schema, self._partition_by)
        return catalog._create_table(name, metadata, replace=False)

    def _build_spec(self) -> QuerySpec:
        session = self._df.sparkSession
        plan, observed = split_observed(self._df._plan)
        check_streaming_query(plan, self._output_mode)
        factory = self._custom_sink
        if factory is None:
            fmt = self._format
            sink_class(fmt)  # fail early on an unknown format
            factory = lambda ctx: create_sink(fmt, ctx)  # noqa: E731
        checkpoint, temporary = self._checkpoint_location(session)
        return QuerySpec(
            plan=plan, sink_format=self._format, sink_factory=factory,
            sink_options=dict(self._options), output_mode=self._output_mode,
            checkpoint=checkpoint, temporary_checkpoint=temporary, trigger=self._trigger,
            query_name=self._query_name, partition_by=self._partition_by,
            conf=session.conf.getAll(), observed=observed)

    def _checkpoint_location(self, session: SparkSession) -> tuple[str, bool]:
        explicit = self._options.get("checkpointLocation")
        if explicit:
            return normalize_location(explicit), False
        root = session.conf.get("spark.sql.streaming.checkpointLocation", None)
        if root:
            leaf = self._query_name or str(__import__("uuid").uuid4())
            return normalize_location(os.path.join(root, leaf)), False
        if self._format in _TEMP_CHECKPOINT_SINKS or self._custom_sink is not None:
            return tempfile.mkdtemp(prefix="unbounded-checkpoint-"), True
        raise AnalysisException(
            "checkpointLocation must be specified either through "
            "option(\"checkpointLocation\", ...) or "
            "SparkSession.conf.set(\"spark.sql.streaming.checkpointLocation\", ...).",
            error_class="CHECKPOINT_LOCATION_REQUIRED")


def _run_foreach_writer(f: Any, table: pa.Table, partition_id: int, epoch_id: int) -> None:
    rows = iter(rows_from_arrow(table))
    if not hasattr(f, "process"):
        for row in rows:
            f(row)
        return
    opened = f.open(partition_id, epoch_id) if hasattr(f, "open") else True
    error: BaseException | None = None
    try:
        if opened:
            for row in rows:
                f.process(row)
    except BaseException as e:
        error = e
        raise
    finally:
        if hasattr(f, "close"):
            f.close(error)


class StreamingQuery:
    """A handle on a running (or finished) query."""

    def __init__(self, execution: StreamExecution) -> None:
        self._execution = execution

    @property
    def id(self) -> str:
        return self._execution.id

    @property
    def runId(self) -> str:
        return self._execution.run_id

    @property
    def name(self) -> str | None:
        return self._execution.spec.query_name

    @property
    def isActive(self) -> bool:
        return self._execution.is_active

    @property
    def status(self) -> Progress:
        return self._execution.status

    @property
    def lastProgress(self) -> Progress | None:
        recent = self._execution.recent_progress
        return recent[-1] if recent else None

    @property
    def recentProgress(self) -> list[Progress]:
        return list(self._execution.recent_progress)

    def awaitTermination(self, timeout: float | None = None) -> bool | None:
        finished = self._execution.await_termination(timeout)
        if self._execution.exception is not None:
            raise self._execution.exception
        return finished if timeout is not None else None

    def processAllAvailable(self, timeout: float | None = None) -> None:
        self._execution.process_all_available(timeout)

    def stop(self) -> None:
        self._execution.stop()

    def exception(self) -> StreamingQueryException | None:
        return self._execution.exception

    def explain(self, extended: bool = False) -> None:
        """Print the query's plan; ``extended=True`` adds the parsed, analysed and
        optimised logical plans before the physical one, as Spark's sections do."""
        from unbounded.engine.plans import plan_schema
        from unbounded.sql.explain import explain_text

        plan = self._execution.spec.plan
        schema = ", ".join(f"{f.name}: {f.dataType.simpleString()}"
                           for f in plan_schema(plan).fields)
        print(explain_text(plan, schema, "extended" if extended else "simple"))

    def __repr__(self) -> str:
        return f"<StreamingQuery id={self.id} name={self.name} active={self.isActive}>"


@dataclass(frozen=True)
class _Termination:
    """What ``awaitAnyTermination`` reports: the latest terminated query's error, kept
    while later queries stop cleanly (Spark's ``lastTerminatedQueryException``)."""

    exception: StreamingQueryException | None


@dataclass(frozen=True)
class _ManagedEvents:
    """A run's events: the session's observer first, then the manager's own record, so
    ``awaitAnyTermination`` sees a termination before ``awaitTermination`` returns."""

    observer: QueryEvents
    manager: StreamingQueryManager

    def started(self, query_id: str, run_id: str, name: str | None, timestamp: str,
                restarted: bool) -> None:
        self.observer.started(query_id, run_id, name, timestamp, restarted)

    def progressed(self, progress: Mapping[str, Any]) -> None:
        self.observer.progressed(progress)

    def idle(self, query_id: str, run_id: str, timestamp: str) -> None:
        self.observer.idle(query_id, run_id, timestamp)

    def terminated(self, query_id: str, run_id: str, error: BaseException | None) -> None:
        try:
            self.observer.terminated(query_id, run_id, error)
        finally:
            self.manager._notify_termination(run_id)



def backfill_bar_for(trigger: Trigger, console: Console | None = None) -> BackfillBar | None:
    """A progress bar for a backfill (``availableNow`` / ``once``) at a terminal."""
    return backfill_bar(console) if isinstance(trigger, (AvailableNow, Once)) else None

class StreamingQueryManager:
    """``spark.streams``: the queries of a session, and its listeners."""

    def __init__(self, session: SparkSession) -> None:
        self._session = session
        self._queries: list[StreamingQuery] = []
        self._last_terminated: _Termination | None = None
        self._changed = threading.Condition()
        self._signals_installed = False
        self._hub = SessionHub(lambda key: session.conf.get(key, None))

    def _start(self, spec: QuerySpec) -> StreamingQuery:
        for q in self.active:
            if spec.query_name is not None and q.name == spec.query_name:
                raise AnalysisException(
                    f"Cannot start query with name {spec.query_name} as a query with that "
                    "name is already active in this SparkSession.")
        events = _ManagedEvents(self._observer(spec), self)
        execution = StreamExecution(spec, self._session._executor(), events)
        query = StreamingQuery(execution)
        with self._changed:
            self._queries.append(query)
        self._install_signal_handlers()
        execution.start()
        return query

    def _observer(self, spec: QuerySpec) -> QueryEvents:
        """The session's observer, and a progress bar for a backfill at a terminal."""
        observer = self._hub.observer_for(spec.conf)
        bar = backfill_bar_for(spec.trigger)
        return observer if bar is None else TeeEvents(observer, bar)

    def _notify_termination(self, run_id: str) -> None:
        """Spark's notifyQueryTermination: a failure replaces the record, a clean stop
        only fills an empty one."""
        with self._changed:
            query = next((q for q in self._queries if q.runId == run_id), None)
            error = None if query is None else query.exception()
            if self._last_terminated is None or error is not None:
                self._last_terminated = _Termination(error)
            self._changed.notify_all()

    # ---- listeners -------------------------------------------------------------------
    def addListener(self, listener: StreamingQueryListener) -> None:
        """Deliver the session's query events to ``listener``, on the listener thread."""
        if not isinstance(listener, StreamingQueryListener):
            raise TypeError("addListener needs a StreamingQueryListener, got "
                            f"{type(listener).__name__}")
        self._hub.bus.add(listener)

    def removeListener(self, listener: StreamingQueryListener) -> None:
        self._hub.bus.remove(listener)

    @property
    def droppedListenerEvents(self) -> int:
        """Events not delivered because the listener queue was full (ours; Spark counts
        them in its listener bus metrics)."""
        return self._hub.bus.dropped

    def _install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM stop every query cleanly (a batch is never half committed)."""
        if self._signals_installed or threading.current_thread() is not threading.main_thread():
            return
        self._signals_installed = True
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                active = self.active
                for q in active:
                    threading.Thread(target=q.stop, daemon=True).start()
                if active and signum == signal.SIGINT and \
                        previous is signal.default_int_handler:
                    return  # awaitTermination returns once the queries have stopped
                if callable(previous):
                    previous(signum, frame)
                elif previous == signal.SIG_DFL and signum == signal.SIGTERM and not active:
                    signal.signal(signum, signal.SIG_DFL)
                    os.kill(os.getpid(), signum)

            signal.signal(sig, handler)

    @property
    def active(self) -> list[StreamingQuery]:
        with self._changed:
            return [q for q in self._queries if q.isActive]

    def get(self, id: str) -> StreamingQuery | None:
        return next((q for q in self.active if q.id == id), None)

    def awaitAnyTermination(self, timeout: float | None = None) -> bool | None:
        """Wait until a query of this session terminated since it was created or since
        ``resetTerminated()``; raise the error of the latest one that failed."""
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be a positive integer or float. Got {timeout}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._last_terminated is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                # short waits let a signal handler run on the main thread
                self._changed.wait(0.1 if remaining is None else min(remaining, 0.1))
            last = self._last_terminated
        if last.exception is not None:
            raise last.exception
        return True if timeout is not None else None

    def resetTerminated(self) -> None:
        """Forget past terminations, so ``awaitAnyTermination`` waits for a new one."""
        with self._changed:
            self._last_terminated = None
            self._queries = [q for q in self._queries if q.isActive]

    def _close(self) -> None:
        """The session stops: listeners get what is queued, the HTTP server closes."""
        self._hub.close()
