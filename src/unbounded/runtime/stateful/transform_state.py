"""``groupBy(...).transformWithStateInPandas(...)`` and its Row-based twin
``transformWithState(...)`` on a stream: a user ``StatefulProcessor`` with value, list and
map state, timers and TTL. The two differ only in what crosses the user boundary (pandas
DataFrames or ``Row``s; the processor arrives wrapped in ``RowProcessor`` for Rows).

Each batch, per state partition: late rows are dropped (event time only, as Spark), the
rows are grouped once and the processor (a fresh copy, ``init`` first, ``close`` last) is
called per key with the key's rows as pandas DataFrames (Arrow slices); in the first
batch ``handleInitialState`` runs first for the initial state's keys. Then every timer at
or before the batch's threshold (processing time: the batch timestamp; event time: the
watermark) fires, earliest first, through ``handleExpiredTimer`` and is deleted. Last,
values whose TTL passed are evicted. Times come from ``offsets/N``, so a re-run of a
batch makes the same calls.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import polars as pl
import pyarrow as pa

from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import compile_expr
from unbounded.engine.group_state import KeyedFrames, group_rows, output_tables
from unbounded.engine.plans import compile_output, to_display_arrow
from unbounded.engine.stateful_processor import (
    NO_EXPIRY,
    ExpiredTimerInfo,
    HandlePhase,
    KeyState,
    ProcessorRuntime,
    RowProcessor,
    StatefulProcessor,
    StatefulProcessorHandle,
    StateVariable,
    VariableKind,
)
from unbounded.engine.udfs import frame_to_pandas
from unbounded.errors import AnalysisException, PythonException
from unbounded.plan.logical import TimeMode, TransformWithStateInPandas
from unbounded.plan.row import Row
from unbounded.runtime.stateful.base import (
    BatchInfo,
    InputBatch,
    MapSide,
    OperatorContext,
    OperatorOutput,
    PartitionedState,
    frame_of,
    map_partitions,
    partition_ids,
    split_partitions,
    sum_metrics,
)
from unbounded.runtime.stateful.user_input import UserInput
from unbounded.state.base import FOUND_COLUMN, StateSchema, StateStore
from unbounded.state.transform_meta import OperatorInfo, TransformWithStateFile, store_folder
from unbounded.testing.faults import fault_point

__all__ = ["StreamingTransformWithState"]

VALUE, VALUES, KEYS, EXPIRES, TIMERS = "__value", "__values", "__keys", "__expires_ms", "__timers"
_KEY = "__gkey"
Key = tuple[Any, ...]


def _naive(t: pa.DataType) -> pa.DataType:
    """Timestamps without zone (UTC wall time), as PySpark hands state values back."""
    if pa.types.is_timestamp(t):
        return pa.timestamp(t.unit)
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_naive(f.type)) for f in t])
    if pa.types.is_list(t):
        return pa.list_(_naive(t.value_type))
    return t


def _tuples(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """A struct (or list of struct) column as Python tuples (lists of tuples)."""
    def one(v: Any) -> Any:
        if isinstance(v, dict):
            return tuple(v.values())
        return None if v is None else [tuple(d.values()) for d in v]
    return [one(v) for v in column.cast(_naive(column.type)).to_pylist()]


@dataclass(frozen=True)
class _Codec:
    """How one state variable (or the timers) is laid out as columns of its store."""

    variable: StateVariable | None  # None: the timers

    def columns(self) -> list[pa.Field]:
        v = self.variable
        if v is None:
            return [pa.field(TIMERS, pa.list_(pa.int64()))]
        value = pa.struct(list(v.value_schema.to_arrow_schema()))
        if v.kind is VariableKind.VALUE:
            return [pa.field(VALUE, value), pa.field(EXPIRES, pa.int64())]
        fields = [pa.field(VALUES, pa.list_(value)), pa.field(EXPIRES, pa.list_(pa.int64()))]
        if v.kind is VariableKind.MAP:
            assert v.key_schema is not None
            fields.insert(0, pa.field(KEYS, pa.list_(pa.struct(list(
                v.key_schema.to_arrow_schema())))))
        return fields

    def decode(self, rows: pa.Table) -> list[Any]:
        """Each row's content as ``KeyState`` holds it (None: absent)."""
        kind = self.variable.kind if self.variable else None
        if kind is None:
            return [None if t is None else set(t) for t in rows.column(TIMERS).to_pylist()]
        stamps = rows.column(EXPIRES).to_pylist()
        values = _tuples(rows.column(VALUE if kind is VariableKind.VALUE else VALUES))
        if kind is VariableKind.VALUE:
            return [None if v is None else (v, s) for v, s in zip(values, stamps, strict=True)]
        if kind is VariableKind.LIST:
            return [None if v is None else list(zip(v, s, strict=True))
                    for v, s in zip(values, stamps, strict=True)]
        keys = _tuples(rows.column(KEYS))
        return [None if v is None else {k: (x, t) for k, x, t in zip(ks, v, s, strict=True)}
                for ks, v, s in zip(keys, values, stamps, strict=True)]

    def encode(self, keys: pa.Table, contents: list[Any]) -> pa.Table:
        """Key rows plus the columns of their (non-empty) contents."""
        names = [f.name for f in self.columns()]
        data = [self._row(c) for c in contents]
        for name, field_ in zip(names, self.columns(), strict=True):
            keys = keys.append_column(field_, pa.array([d[name] for d in data], field_.type))
        return keys

    def _row(self, content: Any) -> dict[str, Any]:
        v = self.variable
        if v is None:
            return {TIMERS: sorted(content)}
        fields = v.value_schema.names
        if v.kind is VariableKind.VALUE:
            return {VALUE: dict(zip(fields, content[0], strict=True)), EXPIRES: content[1]}
        pairs: list[tuple[Any, Any]] = list(content.items()) \
            if v.kind is VariableKind.MAP else [((), item) for item in content]
        row = {VALUES: [dict(zip(fields, x, strict=True)) for _, (x, _) in pairs],
               EXPIRES: [t for _, (_, t) in pairs]}
        if v.kind is VariableKind.MAP:
            assert v.key_schema is not None
            row[KEYS] = [dict(zip(v.key_schema.names, k, strict=True)) for k, _ in pairs]
        return row


@dataclass
class _Partition:
    """One batch partition's open stores, loaded keys and output."""

    stores: dict[str, StateStore]  # variable name (or TIMERS) -> store
    states: dict[Key, KeyState] = field(default_factory=dict)
    users: dict[Key, Key] = field(default_factory=dict)  # key -> the key the user sees
    tables: list[pa.Table] = field(default_factory=list)
    frames: list[Any] = field(default_factory=list)  # pandas output, converted at the end


class StreamingTransformWithState:
    """``transformWithStateInPandas`` on a stream.

    State layout: one store per state variable per partition (folder ``var-<name>``,
    so a variable added later gets its own store), plus ``timers``; every store is keyed
    by the grouping keys (display names), one row per key, so a batch looks its keys up
    once per store. Columns (epoch ms; -1: no TTL)::

        value  var-count: user | __value {n: 3}        | __expires_ms 1767261900000
        list   var-seen:  user | __values [{x: 1}, ...] | __expires_ms [-1, ...]
        map    var-last:  user | __keys [{k: "a"}] | __values [{v: 1}] | __expires_ms [-1]
        timers timers:    user | __timers [1767261900000, ...]

    The variables are found as Spark's driver does: a copy of the processor runs
    ``init`` at construction (then ``close``).
    """

    map_sides: tuple[MapSide | None, ...] = (None,)

    def __init__(self, node: TransformWithStateInPandas, input_schema: pl.Schema,
                 ctx: OperatorContext) -> None:
        if not node.keys:
            raise AnalysisException("transformWithStateInPandas on a stream needs grouping "
                                    "keys: groupBy(col, ...).", error_class="UNSUPPORTED_PLAN")
        self.node, self.ctx = node, ctx
        self.input = UserInput.of(node.child, input_schema,
                                  event_time_mode=node.time_mode is TimeMode.EVENT_TIME)
        cctx = CompileContext(input_schema, 0, ansi=ctx.ansi, time_zone=ctx.time_zone)
        self.gkeys = [f"{_KEY}{i}" for i in range(len(node.keys))]
        self.key_exprs = [compile_expr(k, cctx).alias(g)
                          for k, g in zip(node.keys, self.gkeys, strict=True)]
        self.key_names = [k.display_name() for k in node.keys]
        self.key_schema = self._key_schema(input_schema)
        self.variables = self._declared_variables()
        self.row_mode = isinstance(self._processor(), RowProcessor)  # transformWithState
        self._record_declarations()
        self.codecs = {n: _Codec(v) for n, v in self.variables.items()}
        self.codecs[TIMERS] = _Codec(None)
        self.states = {n: PartitionedState(ctx, self._schema(c), self._folder(n))
                       for n, c in self.codecs.items()}
        self.empty_input = frame_to_pandas(pl.DataFrame(schema=input_schema).to_arrow())
        self.deadlines = self._stored_deadlines()

    def _record_declarations(self) -> None:
        """What the processor declares, for the statestore reader's ``operatorProperties``
        and its checks (state/transform_meta.py), as Spark's operator records them."""
        name = ("transformWithStateInPySparkExec" if self.row_mode
                else "transformWithStateInPandasExec")
        TransformWithStateFile(self.ctx.state_root, self.ctx.operator_id).write(
            OperatorInfo.of(name, self.node.time_mode.value, self.node.output_mode,
                            [(n, v.kind.value, v.ttl_ms is not None)
                             for n, v in self.variables.items()]))

    def _key_schema(self, input_schema: pl.Schema) -> pa.Schema:
        keys = pl.DataFrame(schema=input_schema).select(self.key_exprs).to_arrow()
        return pa.schema([pa.field(n, t) for n, t in
                          zip(self.key_names, keys.schema.types, strict=True)])

    def _schema(self, codec: _Codec) -> StateSchema:
        try:
            return StateSchema(self.key_schema, pa.schema(codec.columns()))
        except ValueError as e:
            raise AnalysisException(
                f"transformWithStateInPandas keys its state by the grouping columns: {e}. "
                "Rename the grouping column.", error_class="UNSUPPORTED_PLAN") from e

    @staticmethod
    def _folder(name: str) -> str:
        return "timers" if name == TIMERS else store_folder(name)

    def _declared_variables(self) -> dict[str, StateVariable]:
        runtime = ProcessorRuntime(self.node.time_mode, -1, -1)
        processor = self._processor()
        processor.init(StatefulProcessorHandle(runtime))
        processor.close()
        return runtime.variables

    def _processor(self) -> StatefulProcessor:
        """A fresh copy per batch partition, as each Spark task unpickles its own (the
        processor keeps its state variables as attributes)."""
        processor: StatefulProcessor = cloudpickle.loads(self.node.processor.pickled)
        return processor

    def _stored_deadlines(self) -> list[int | None]:
        """Each partition's earliest timer in its newest state, so a restarted query still
        runs the batch that fires it."""
        if self.node.time_mode is not TimeMode.PROCESSING_TIME:
            return [None] * self.ctx.num_partitions
        deadlines: list[int | None] = []
        for provider in self.states[TIMERS].providers:
            version = provider.latest_version()
            store = provider.get_store(version) if version else None
            deadlines.append(_earliest(store) if store is not None else None)
            if store is not None:
                store.abort()
        return deadlines

    # ---- one batch ---------------------------------------------------------------------
    def process(self, inputs: Sequence[InputBatch], batch: BatchInfo) -> OperatorOutput:
        started = time.perf_counter()
        rows, dropped = self.input.rows(inputs[0].rows, batch.late_watermark_us)
        keyed = rows.with_columns(self.key_exprs)
        initial = self._initial_parts() if batch.batch_id == 0 else None
        results = map_partitions(self.ctx, keyed, self.gkeys, lambda p, part: self._partition(
            p, part, None if initial is None else initial[p], batch))
        for p, result in enumerate(results):
            self.deadlines[p] = result[2]
        metrics = sum_metrics([r[1] for r in results])
        metrics.update(operatorName="transformWithStateInPandasExec",
                       numRowsDroppedByWatermark=dropped,
                       numShufflePartitions=self.ctx.num_partitions,
                       numStateStoreInstances=self.ctx.num_partitions * len(self.states),
                       allUpdatesTimeMs=int((time.perf_counter() - started) * 1000))
        tables = [t for r in results for t in r[0]]
        target = self.node.schema.to_arrow_schema()
        return OperatorOutput(frame_of(pa.concat_tables(tables) if tables
                                       else target.empty_table()), metrics)

    def _initial_parts(self) -> list[pl.DataFrame] | None:
        """The initial state's rows, keyed like the stream's and split by partition."""
        plan = self.node.initial_state
        if plan is None:
            return None
        ansi, zone = self.ctx.ansi, self.ctx.time_zone
        frame, columns = compile_output(
            plan, {}, CompileContext(pl.Schema(), 0, ansi=ansi, time_zone=zone))
        rows = frame_of(to_display_arrow(frame.collect(), columns))
        cctx = CompileContext(rows.schema, 0, ansi=ansi, time_zone=zone)
        key_types = pl.DataFrame(self.key_schema.empty_table()).dtypes
        keyed = rows.with_columns(
            compile_expr(k, cctx).cast(t).alias(g)
            for k, g, t in zip(self.node.initial_keys, self.gkeys, key_types, strict=True))
        n = self.ctx.num_partitions
        return split_partitions(keyed, partition_ids(keyed, self.gkeys, n), n)

    def _partition(self, partition: int, rows: pl.DataFrame, initial: pl.DataFrame | None,
                   batch: BatchInfo) -> tuple[list[pa.Table], dict[str, int], int | None]:
        stores = {n: s.store(partition, batch.batch_id) for n, s in self.states.items()}
        try:
            run = _Partition(stores)
            if rows.height or (initial is not None and initial.height) or self._has_timers(
                    stores[TIMERS]):
                self._run(run, rows, initial, batch)
            self._evict_expired(run, batch.timestamp_us // 1000)
            deadline = _earliest(stores[TIMERS]) \
                if self.node.time_mode is TimeMode.PROCESSING_TIME else None
            metrics = [s.metrics.to_dict() for s in stores.values()]
            _commit_all(list(stores.values()), batch.batch_id)
        except BaseException:
            for store in stores.values():
                store.abort()
            raise
        return run.tables, sum_metrics(metrics), deadline

    def _has_timers(self, store: StateStore) -> bool:
        return self.node.time_mode is not TimeMode.NONE and store.scan().num_rows > 0

    def _run(self, run: _Partition, rows: pl.DataFrame, initial: pl.DataFrame | None,
             batch: BatchInfo) -> None:
        runtime = ProcessorRuntime(self.node.time_mode, batch.timestamp_us // 1000,
                                   batch.watermark_us // 1000)
        processor = self._processor()
        self._call("init", lambda: processor.init(StatefulProcessorHandle(runtime)))
        if runtime.variables != self.variables:
            raise AnalysisException(
                "The StatefulProcessor declared other state variables in init() than when "
                f"the query started: {sorted(runtime.variables)} vs {sorted(self.variables)}. "
                "Declare the same variables in every call of init().",
                error_class="STATEFUL_PROCESSOR_VARIABLES_CHANGED")
        runtime.phase = HandlePhase.INITIALIZED
        if initial is not None and initial.height:
            self._initial_state(run, runtime, processor, initial)
        self._input_rows(run, runtime, processor, rows)
        runtime.phase = HandlePhase.DATA_PROCESSED
        self._timers(run, runtime, processor)
        runtime.current = None
        runtime.phase = HandlePhase.CLOSED
        self._call("close", processor.close)
        self._call("handleInputRows or handleExpiredTimer (their output)",
                   lambda: run.tables.extend(output_tables(run.frames, self.node.schema)))
        self._write(run)

    # ---- keys and their state ----------------------------------------------------------
    def _load(self, run: _Partition, key_rows: pl.DataFrame) -> list[Key]:
        """The keys of ``key_rows`` (grouping-key columns by display name), their state
        looked up in every store once."""
        table = key_rows.to_arrow().cast(self.key_schema)
        keys = [tuple(r.values()) for r in table.to_pylist()]
        users = keys if self.row_mode else _user_keys(table)
        fresh = [i for i, k in enumerate(keys) if k not in run.states]
        if fresh:
            lookup = table.take(fresh)
            for i in fresh:
                run.states[keys[i]] = KeyState()
                run.users[keys[i]] = users[i]
            for name, store in run.stores.items():
                found = store.lookup(lookup)
                contents = self.codecs[name].decode(found)
                for i, there, content in zip(fresh, found.column(FOUND_COLUMN).to_pylist(),
                                             contents, strict=True):
                    self._place(run.states[keys[i]], name, content if there else None)
        return keys

    @staticmethod
    def _place(state: KeyState, name: str, content: Any) -> None:
        if name == TIMERS:
            state.timers = content or set()
        else:
            state.values[name] = content

    def _key_frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(self.gkeys).rename(dict(zip(self.gkeys, self.key_names,
                                                        strict=True)))

    def _initial_state(self, run: _Partition, runtime: ProcessorRuntime,
                       processor: StatefulProcessor, initial: pl.DataFrame) -> None:
        groups = initial.partition_by(self.gkeys, maintain_order=True)
        keys = self._load(run, pl.concat([self._key_frame(g.head(1)) for g in groups]))
        for key, group in zip(keys, groups, strict=True):
            runtime.current = run.states[key]
            table = group.drop(self.gkeys).to_arrow()
            seeds = _rows_of(table) if self.row_mode else [frame_to_pandas(table)]
            for seed in seeds:  # transformWithState: once per initial-state Row, as PySpark
                self._call("handleInitialState", lambda k=key, d=seed: processor.
                           handleInitialState(run.users[k], d, runtime.timer_values()))

    def _input_rows(self, run: _Partition, runtime: ProcessorRuntime,
                    processor: StatefulProcessor, rows: pl.DataFrame) -> None:
        if not rows.height:
            return
        if self.row_mode:
            self._input_row_objects(run, runtime, processor, rows)
            return
        grouped = KeyedFrames.of(rows, self.gkeys)
        keys = self._load(run, self._key_frame(grouped.keys))
        for i, key in enumerate(keys):
            runtime.current = run.states[key]
            self._emit(run, "handleInputRows", lambda k=key, i=i: processor.handleInputRows(
                run.users[k], iter(grouped.frames(i)), runtime.timer_values()))

    def _input_row_objects(self, run: _Partition, runtime: ProcessorRuntime,
                           processor: StatefulProcessor, rows: pl.DataFrame) -> None:
        """transformWithState: each key's rows as an iterator of ``Row``."""
        key_rows, data, offsets = group_rows(rows, self.gkeys)
        keys = self._load(run, self._key_frame(key_rows))
        objects = _rows_of(data.to_arrow())
        for i, key in enumerate(keys):
            runtime.current = run.states[key]
            mine = objects[offsets[i]:offsets[i + 1]]
            self._emit(run, "handleInputRows", lambda k=key, r=mine: processor.handleInputRows(
                run.users[k], iter(r), runtime.timer_values()))

    def _timers(self, run: _Partition, runtime: ProcessorRuntime,
                processor: StatefulProcessor) -> None:
        """Fire every timer at or before the threshold, earliest first, then delete it."""
        mode = self.node.time_mode
        if mode is TimeMode.NONE:
            return
        threshold = runtime.processing_ms if mode is TimeMode.PROCESSING_TIME \
            else runtime.watermark_ms
        stored = frame_of(run.stores[TIMERS].scan())
        due_keys = stored.filter(pl.col(TIMERS).list.min() <= threshold)
        if due_keys.height:
            self._load(run, due_keys.select(self.key_names))
        order = {k: i for i, k in enumerate(run.states)}
        due = sorted(((t, order[k], k) for k, s in run.states.items() for t in s.timers
                      if t <= threshold))
        for expiry, _, key in due:
            runtime.current = state = run.states[key]
            self._emit(run, "handleExpiredTimer", lambda k=key, t=expiry:
                       processor.handleExpiredTimer(  # by keyword, as PySpark calls it
                           key=run.users[k], timerValues=runtime.timer_values(),
                           expiredTimerInfo=ExpiredTimerInfo(t)))
            state.timers.discard(expiry)
            state.dirty.add("timers")

    # ---- calls -------------------------------------------------------------------------
    def _emit(self, run: _Partition, method: str, call: Any) -> None:
        """Run a handler and take its DataFrames while its key is still the current one
        (the handler is usually a generator)."""
        import pandas as pd

        def consume() -> None:
            result = call()
            if result is None:
                return
            if isinstance(result, (pd.DataFrame, Row)) or not isinstance(result, Iterable):
                raise TypeError("[UDF_RETURN_TYPE] Return type of the user-defined function "
                                f"should be iterator of {self._yields()}, but is "
                                f"{type(result).__name__}.")
            if self.row_mode:
                run.tables.append(self._rows_table(list(result)))
                return
            run.frames.extend(f for f in result
                              if not (isinstance(f, pd.DataFrame) and f.empty))
        self._call(method, consume)

    def _yields(self) -> str:
        return "pyspark.sql.Row" if self.row_mode else "pandas.DataFrame"

    def _rows_table(self, rows: list[Any]) -> pa.Table:
        """Yielded ``Row``s by field name (a missing field is null), as PySpark's
        ``RecordBatch.from_pylist(row.asDict(True))``."""
        wrong = next((r for r in rows if not isinstance(r, Row)), None)
        if wrong is not None:
            raise TypeError(f"[UDF_RETURN_TYPE] transformWithState's handlers must yield "
                            f"pyspark.sql.Row, got {type(wrong).__name__}.")
        return pa.Table.from_pylist([r.asDict(True) for r in rows],
                                    schema=self.node.schema.to_arrow_schema())

    def _call(self, method: str, call: Any) -> None:
        try:
            call()
        except AnalysisException:
            raise
        except Exception as error:
            raise PythonException(
                f"[TRANSFORM_WITH_STATE_USER_FUNCTION_ERROR] An error occurred in the "
                f"user-defined function {method} of the StatefulProcessor "
                f"`{self.node.processor.name}`. Reason: {type(error).__name__}: {error}.",
                error_class="TRANSFORM_WITH_STATE_USER_FUNCTION_ERROR", cause=error) from error

    # ---- writing back ------------------------------------------------------------------
    def _write(self, run: _Partition) -> None:
        for name, store in run.stores.items():
            dirty = "timers" if name == TIMERS else name
            keys = [k for k, s in run.states.items() if dirty in s.dirty]
            contents = [self._content(run.states[k], name) for k in keys]
            self._write_store(store, self.codecs[name], keys, contents)

    @staticmethod
    def _content(state: KeyState, name: str) -> Any:
        return state.timers if name == TIMERS else state.values.get(name)

    def _write_store(self, store: StateStore, codec: _Codec, keys: list[Key],
                     contents: list[Any]) -> None:
        kept = [i for i, c in enumerate(contents) if c]
        gone = [i for i, c in enumerate(contents) if not c]
        if kept:
            store.upsert(codec.encode(self._key_table([keys[i] for i in kept]),
                                      [contents[i] for i in kept]), distinct=True)
        if gone:
            store.delete(self._key_table([keys[i] for i in gone]))

    def _key_table(self, keys: list[Key]) -> pa.Table:
        return pa.Table.from_pylist([dict(zip(self.key_names, k, strict=True)) for k in keys],
                                    schema=self.key_schema)

    def _evict_expired(self, run: _Partition, now_ms: int) -> None:
        """Spark's TTL cleanup at the end of a batch: expired values leave the store."""
        for name, variable in self.variables.items():
            if variable.ttl_ms is None:
                continue
            store, codec = run.stores[name], self.codecs[name]
            if variable.kind is VariableKind.VALUE:
                store.evict((pl.col(EXPIRES) != NO_EXPIRY) & (pl.col(EXPIRES) <= now_ms))
                continue
            self._evict_elements(store, codec, now_ms)

    def _evict_elements(self, store: StateStore, codec: _Codec, now_ms: int) -> None:
        expired = pl.element().is_between(0, now_ms)
        rows = frame_of(store.scan()).filter(pl.col(EXPIRES).list.eval(expired).list.any())
        if not rows.height:
            return
        table = rows.to_arrow()
        keys = [tuple(r.values()) for r in table.select(self.key_names).to_pylist()]
        contents = [_live(c, now_ms) for c in codec.decode(table)]
        self._write_store(store, codec, keys, contents)

    def timeouts_due(self, batch_timestamp_ms: int) -> bool:
        """A processing-time timer fires when the batch timestamp reaches it."""
        return any(d is not None and d <= batch_timestamp_ms for d in self.deadlines)

    def output_watermark_us(self, input_watermark_us: int) -> int:
        return input_watermark_us

    def maintenance(self, min_versions: int) -> None:
        for state in self.states.values():
            state.maintenance(min_versions)

    def close(self) -> None:
        for state in self.states.values():
            state.close()


def _commit_all(stores: list[StateStore], batch_id: int) -> None:
    """Commit the variables' stores one by one: a crash in between (the test point
    ``mid-state-commit``) leaves some at version N+1, which a re-run of batch N rewrites."""
    for i, store in enumerate(stores):
        if i == 1:
            fault_point("mid-state-commit", batch_id)
        store.commit()


def _live(content: Any, now_ms: int) -> Any:
    def ok(stamp: int) -> bool:
        return stamp == NO_EXPIRY or now_ms < stamp
    if isinstance(content, dict):
        return {k: v for k, v in content.items() if ok(v[1])}
    return [item for item in content if ok(item[1])]


def _earliest(store: StateStore) -> int | None:
    timers = frame_of(store.scan())
    if not timers.height:
        return None
    earliest = timers.select(pl.col(TIMERS).list.min().min()).item()
    return None if earliest is None else int(earliest)


def _rows_of(table: pa.Table) -> list[Row]:
    """Rows as PySpark's transformWithState builds them: ``as_py`` values by column."""
    names = table.column_names
    columns = [c.to_pylist() for c in table.columns]
    return [Row.from_fields(names, list(values)) for values in zip(*columns, strict=True)]


def _user_keys(keys: pa.Table) -> list[Key]:
    """Keys as PySpark passes them: values of pandas Series (NumPy scalars)."""
    frame = frame_to_pandas(keys)
    columns = [frame[c].array for c in frame.columns]
    return [tuple(c[i] for c in columns) for i in range(len(frame))]
