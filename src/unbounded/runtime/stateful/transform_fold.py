"""One state partition's batch of ``transformWithStateInPandas`` / ``transformWithState``:
the processor's calls over the partition's keys, its timers, TTL eviction and the writes
to the partition's stores (one per state variable, plus ``timers``).

``TransformFold`` holds the processor as cloudpickle bytes and otherwise names, schemas
and the batch's clock, so it pickles and runs where the partition's stores live: a driver
thread, or the partition's Ray state actor (``runtime/stateful/hosted.py``). The operator
that plans the batches is ``runtime/stateful/transform_state.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import polars as pl
import pyarrow as pa

from unbounded.engine.group_state import KeyedFrames, group_rows, output_tables
from unbounded.engine.stateful_processor import (
    NO_EXPIRY,
    ExpiredTimerInfo,
    HandlePhase,
    KeyState,
    ProcessorRuntime,
    StatefulProcessor,
    StatefulProcessorHandle,
    StateVariable,
    VariableKind,
)
from unbounded.engine.udfs import frame_to_pandas
from unbounded.errors import AnalysisException, PythonException
from unbounded.plan.expressions import PythonFunction
from unbounded.plan.logical import TimeMode
from unbounded.plan.row import Row
from unbounded.plan.types import StructType
from unbounded.runtime.stateful.base import frame_of, sum_metrics
from unbounded.state.base import FOUND_COLUMN, StateStore
from unbounded.testing.faults import fault_point

__all__ = ["EXPIRES", "KEYS", "TIMERS", "VALUE", "VALUES", "StateCodec", "TransformFold",
           "earliest_timer", "load_processor"]

VALUE, VALUES, KEYS, EXPIRES, TIMERS = "__value", "__values", "__keys", "__expires_ms", "__timers"
Key = tuple[Any, ...]


def load_processor(function: PythonFunction) -> StatefulProcessor:
    """A fresh copy of the user's processor, as each Spark task unpickles its own (the
    processor keeps its state variables as attributes)."""
    processor: StatefulProcessor = cloudpickle.loads(function.pickled)
    return processor


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
class StateCodec:
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


@dataclass(frozen=True)
class TransformFold:
    """One state partition's half of a batch. ``stores`` come in ``store_names`` order
    (the variables as declared, then ``TIMERS``); ``rows`` are the partition's input rows
    (keyed by ``gkeys``) and its initial-state rows (first batch only, else empty).
    Returns the output tables, the stores' metrics and the earliest timer left
    (processing time), and is re-runnable on the same version."""

    processor: PythonFunction
    time_mode: TimeMode
    schema: StructType  # the output's
    variables: dict[str, StateVariable]
    gkeys: tuple[str, ...]
    key_names: tuple[str, ...]
    key_schema: pa.Schema
    row_mode: bool  # transformWithState: Rows cross the user boundary
    batch_id: int = 0
    processing_ms: int = 0
    watermark_ms: int = 0

    @property
    def store_names(self) -> tuple[str, ...]:
        return (*self.variables, TIMERS)

    def codec(self, name: str) -> StateCodec:
        """How store ``name`` lays out its columns."""
        return StateCodec(None if name == TIMERS else self.variables[name])

    def __call__(self, stores: Sequence[StateStore], rows: Sequence[pl.DataFrame]
                 ) -> tuple[list[pa.Table], dict[str, int], int | None]:
        named = dict(zip(self.store_names, stores, strict=True))
        try:
            run = _Partition(named)
            initial = rows[1] if len(rows) > 1 and rows[1].height else None
            if rows[0].height or initial is not None or self._has_timers(named[TIMERS]):
                self._run(run, rows[0], initial)
            self._evict_expired(run, self.processing_ms)
            deadline = earliest_timer(named[TIMERS]) \
                if self.time_mode is TimeMode.PROCESSING_TIME else None
            metrics = [s.metrics.to_dict() for s in named.values()]
            _commit_all(list(named.values()), self.batch_id)
        except BaseException:
            for store in named.values():
                store.abort()
            raise
        return run.tables, sum_metrics(metrics), deadline

    def _has_timers(self, store: StateStore) -> bool:
        return self.time_mode is not TimeMode.NONE and store.scan().num_rows > 0

    def _run(self, run: _Partition, rows: pl.DataFrame, initial: pl.DataFrame | None
             ) -> None:
        runtime = ProcessorRuntime(self.time_mode, self.processing_ms, self.watermark_ms)
        processor = load_processor(self.processor)
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
                   lambda: run.tables.extend(output_tables(run.frames, self.schema)))
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
                contents = self.codec(name).decode(found)
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
        names = dict(zip(self.gkeys, self.key_names, strict=True))
        return frame.select(list(self.gkeys)).rename(names)

    def _initial_state(self, run: _Partition, runtime: ProcessorRuntime,
                       processor: StatefulProcessor, initial: pl.DataFrame) -> None:
        groups = initial.partition_by(list(self.gkeys), maintain_order=True)
        keys = self._load(run, pl.concat([self._key_frame(g.head(1)) for g in groups]))
        for key, group in zip(keys, groups, strict=True):
            runtime.current = run.states[key]
            table = group.drop(list(self.gkeys)).to_arrow()
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
        grouped = KeyedFrames.of(rows, list(self.gkeys))
        keys = self._load(run, self._key_frame(grouped.keys))
        for i, key in enumerate(keys):
            runtime.current = run.states[key]
            self._emit(run, "handleInputRows", lambda k=key, i=i: processor.handleInputRows(
                run.users[k], iter(grouped.frames(i)), runtime.timer_values()))

    def _input_row_objects(self, run: _Partition, runtime: ProcessorRuntime,
                           processor: StatefulProcessor, rows: pl.DataFrame) -> None:
        """transformWithState: each key's rows as an iterator of ``Row``."""
        key_rows, data, offsets = group_rows(rows, list(self.gkeys))
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
        mode = self.time_mode
        if mode is TimeMode.NONE:
            return
        threshold = runtime.processing_ms if mode is TimeMode.PROCESSING_TIME \
            else runtime.watermark_ms
        stored = frame_of(run.stores[TIMERS].scan())
        due_keys = stored.filter(pl.col(TIMERS).list.min() <= threshold)
        if due_keys.height:
            self._load(run, due_keys.select(list(self.key_names)))
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
                                    schema=self.schema.to_arrow_schema())

    def _call(self, method: str, call: Any) -> None:
        try:
            call()
        except AnalysisException:
            raise
        except Exception as error:
            raise PythonException(
                f"[TRANSFORM_WITH_STATE_USER_FUNCTION_ERROR] An error occurred in the "
                f"user-defined function {method} of the StatefulProcessor "
                f"`{self.processor.name}`. Reason: {type(error).__name__}: {error}.",
                error_class="TRANSFORM_WITH_STATE_USER_FUNCTION_ERROR", cause=error) from error

    # ---- writing back ------------------------------------------------------------------
    def _write(self, run: _Partition) -> None:
        for name, store in run.stores.items():
            dirty = "timers" if name == TIMERS else name
            keys = [k for k, s in run.states.items() if dirty in s.dirty]
            contents = [self._content(run.states[k], name) for k in keys]
            self._write_store(store, self.codec(name), keys, contents)

    @staticmethod
    def _content(state: KeyState, name: str) -> Any:
        return state.timers if name == TIMERS else state.values.get(name)

    def _write_store(self, store: StateStore, codec: StateCodec, keys: list[Key],
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
            store, codec = run.stores[name], self.codec(name)
            if variable.kind is VariableKind.VALUE:
                store.evict((pl.col(EXPIRES) != NO_EXPIRY) & (pl.col(EXPIRES) <= now_ms))
                continue
            self._evict_elements(store, codec, now_ms)

    def _evict_elements(self, store: StateStore, codec: StateCodec, now_ms: int) -> None:
        expired = pl.element().is_between(0, now_ms)
        rows = frame_of(store.scan()).filter(pl.col(EXPIRES).list.eval(expired).list.any())
        if not rows.height:
            return
        table = rows.to_arrow()
        keys = [tuple(r.values()) for r in table.select(list(self.key_names)).to_pylist()]
        contents = [_live(c, now_ms) for c in codec.decode(table)]
        self._write_store(store, codec, keys, contents)

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


def earliest_timer(store: StateStore) -> int | None:
    """The earliest timer of a ``timers`` store's rows (None: no timer)."""
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
