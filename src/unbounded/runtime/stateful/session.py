"""Streaming session-window aggregation: ``groupBy(session_window(ts, gap), ...).agg(...)``.

A session can grow and merge with its neighbours as long as rows arrive, so partial
aggregates cannot be folded per key. State keeps the input rows of the sessions not yet
emitted instead, reduced to what the aggregation reads: the other grouping keys, each
row's own window ``[ts, ts + gap)`` and the aggregate arguments. Each batch drops late
rows (whose own window ends at or below the watermark, as Spark does), adds the rest to
the state partition of their keys, and recomputes the sessions over the stored rows with
the batch query's code (``engine/sessions.py``). ``append`` emits the sessions whose end
the watermark reached and removes their rows; ``complete`` emits every session and
removes nothing (and drops no row as late). ``update`` is rejected by the analyzer.

State rows are keyed by a row id, ``batch_id * 2**32 + row index``, unique per query, so a
re-run of a batch rewrites the same rows; the state metrics count input rows, not sessions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import polars as pl
import pyarrow as pa

from unbounded.engine.aggregates import compile_aggregate_call
from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import compile_expr, compile_named
from unbounded.engine.sessions import (
    SESSION_END,
    SESSION_START,
    assign_sessions,
    find_session_window,
    session_bounds,
)
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import AggregateCall, Alias, ColumnRef, Expression, Star, walk
from unbounded.plan.logical import Aggregate
from unbounded.runtime.stateful.base import (
    BatchInfo,
    InputBatch,
    MapSide,
    OperatorContext,
    OperatorOutput,
    frame_of,
    partition_ids,
    watermark_delays,
)
from unbounded.runtime.stateful.hosted import StatePartitions
from unbounded.state.base import StateSchema, StateStore

__all__ = ["SessionFold", "StreamingSessionAggregation", "has_session_window"]

_ROW_ID = "__row_id"
_ROWS_PER_BATCH = 1 << 32


def has_session_window(node: Aggregate) -> bool:
    """Whether ``node`` groups by a ``session_window``."""
    return find_session_window(node.keys) is not None


@dataclass(frozen=True)
class _StoredAggregate:
    """One output aggregate over the stored argument columns."""

    output: str
    call: AggregateCall


def _store_arguments(aggs: tuple[Expression, ...], ctx: CompileContext
                     ) -> tuple[list[pl.Expr], list[_StoredAggregate]]:
    """Each aggregate argument as a column to store, and the aggregates rewritten to read
    those columns."""
    columns: list[pl.Expr] = []
    stored: list[_StoredAggregate] = []
    for i, out in enumerate(aggs):
        inner = out.child if isinstance(out, Alias) else out
        if not isinstance(inner, AggregateCall):
            raise AnalysisException(
                f"Streaming aggregation output {out.display_name()} must be an aggregate "
                "function (count, sum, avg, ...); compute derived values in a select(...) "
                "after agg(...).", error_class="UNSUPPORTED_EXPRESSION")
        args: list[Expression] = []
        for j, arg in enumerate(inner.args):
            if isinstance(arg, Star):
                args.append(arg)
                continue
            name = f"__arg{i}_{j}"
            columns.append(compile_expr(arg, ctx).alias(name))
            args.append(ColumnRef(name))
        stored.append(_StoredAggregate(out.display_name(),
                                       AggregateCall(inner.name, tuple(args), inner.distinct)))
    return columns, stored


@dataclass(frozen=True)
class SessionFold:
    """One state partition's half of a batch: its new rows stored, the sessions
    recomputed over the stored rows, those the watermark closed (append) removed, the
    version committed, the emitted sessions aggregated. Names, plan expressions and a
    schema only, so it pickles and runs where the partition's store lives (a driver
    thread or its Ray actor, ``runtime/stateful/hosted.py``)."""

    group_names: tuple[str, ...]
    key_names: tuple[str, ...]
    session_name: str
    bounds_dtype: pl.DataType
    aggs: tuple[_StoredAggregate, ...]
    output_schema: pl.Schema
    evicts: bool
    watermark_us: int = 0
    ansi: bool = True  # the query's, as the aggregates' implicit casts read them
    time_zone: str = "UTC"

    def __call__(self, stores: Sequence[StateStore], rows: Sequence[pl.DataFrame]
                 ) -> tuple[pl.DataFrame, dict[str, int]]:
        store = stores[0]
        try:
            if rows[0].height:
                store.upsert(rows[0].to_arrow())
            sessions = self._closed(store)
            emitted = self._aggregate(sessions)
            store.commit()
        except BaseException:
            store.abort()
            raise
        return emitted, store.metrics.to_dict()

    def _closed(self, store: StateStore) -> pl.DataFrame:
        """The stored rows by session; in append mode only the closed sessions, whose
        rows leave the store."""
        sessions = assign_sessions(frame_of(store.scan()), list(self.group_names),
                                   self.session_name, self.bounds_dtype, tie_break=[_ROW_ID])
        if not self.evicts:
            return sessions
        wm = pl.lit(self.watermark_us, dtype=pl.Int64).cast(self.bounds_dtype)
        sessions = sessions.filter(pl.col(self.session_name).struct.field("end") <= wm)
        if sessions.height:
            store.delete(sessions.select(_ROW_ID).to_arrow())
        return sessions

    def _aggregate(self, sessions: pl.DataFrame) -> pl.DataFrame:
        kctx = CompileContext(sessions.schema, 0, ansi=self.ansi, time_zone=self.time_zone)
        outputs = [compile_aggregate_call(a.call, kctx).alias(a.output) for a in self.aggs]
        out = sessions.group_by(list(self.key_names), maintain_order=True).agg(outputs)
        return out.cast(dict(self.output_schema), strict=False)  # type: ignore[arg-type]


class StreamingSessionAggregation:
    """``groupBy(session_window(...), ...).agg(...)`` on a stream.

    State rows (written through the state store, whose files carry their own version
    header): key ``__row_id`` (int64); values the other grouping keys by display name,
    ``__session_start_us`` and ``__session_end_us`` (int64 epoch microseconds of the
    row's own window) and ``__arg<i>_<j>``, argument ``j`` of aggregate ``i``. For
    ``groupBy(session_window("ts", "5 minutes"), "user").agg(F.sum("v"))``::

        __row_id | user | __session_start_us | __session_end_us | __arg0_0
        4294967296 | "a" | 1767261600000000 | 1767261900000000 | 7
    """

    def __init__(self, node: Aggregate, input_schema: pl.Schema, ctx: OperatorContext,
                 output_schema: pl.Schema) -> None:
        found = find_session_window(node.keys)
        if found is None:
            raise AnalysisException("StreamingSessionAggregation needs a session_window key.")
        key, call = found
        self.ctx = ctx
        self.output_schema = output_schema
        cctx = CompileContext(input_schema, 0, ansi=ctx.ansi, time_zone=ctx.time_zone)
        self.session_name = key.display_name()
        self.key_names = [k.display_name() for k in node.keys]
        self.group_names = [k.display_name() for k in node.keys if k is not key]
        self.group_exprs = [compile_named(k, cctx) for k in node.keys if k is not key]
        self.bounds = session_bounds(call, cctx)
        self.arg_exprs, self.aggs = _store_arguments(node.aggs, cctx)
        self.evicts = ctx.output_mode == "append"
        if self.evicts and not _is_watermarked(call, watermark_delays(node.child)):
            raise AnalysisException(
                "Append output mode for a session window aggregation needs a watermark on "
                "the session window's time column: add withWatermark(...) on it, or use "
                "outputMode('complete').", error_class="UNSUPPORTED_STREAMING_OPERATION")
        self.schema = self._state_schema(input_schema)
        self.fold = SessionFold(tuple(self.group_names), tuple(self.key_names),
                                self.session_name, self.bounds.dtype, tuple(self.aggs),
                                output_schema, self.evicts, ansi=ctx.ansi,
                                time_zone=ctx.time_zone)
        self.state = StatePartitions(ctx, [("", self.schema)])

    def _state_schema(self, input_schema: pl.Schema) -> StateSchema:
        empty = self._rows(pl.DataFrame(schema=input_schema), 0)
        table = empty.to_arrow()
        key = pa.schema([table.schema.field(_ROW_ID)])
        return StateSchema(key, pa.schema([f for f in table.schema if f.name != _ROW_ID]))

    # ---- one batch ---------------------------------------------------------------------
    map_sides: tuple[MapSide | None, ...] = (None,)  # the operator runs on the batch's rows

    def process(self, inputs: Sequence[InputBatch], batch: BatchInfo) -> OperatorOutput:
        started = time.perf_counter()
        rows = self._rows(inputs[0].rows, batch.batch_id)
        dropped = 0
        if self.evicts and batch.late_watermark_us > 0:
            before = rows.height
            rows = rows.filter(pl.col(SESSION_END) > batch.late_watermark_us)
            dropped = before - rows.height
        parts = self._partitions(rows)
        fold = replace(self.fold, watermark_us=batch.watermark_us)
        results = self.state.fold([(rows.filter(parts == p),)
                                   for p in range(self.ctx.num_partitions)],
                                  fold, batch.batch_id)
        out = pl.concat([r[0] for r in results], how="vertical_relaxed")
        metrics: dict[str, Any] = {}
        for _, part in results:
            for name, value in part.items():
                metrics[name] = metrics.get(name, 0) + value
        metrics.update(numRowsDroppedByWatermark=dropped,
                       operatorName="sessionWindowStateStoreSaveExec",  # Spark's name
                       numShufflePartitions=self.ctx.num_partitions,
                       numStateStoreInstances=self.ctx.num_partitions,
                       allUpdatesTimeMs=int((time.perf_counter() - started) * 1000))
        return OperatorOutput(out, metrics)

    def _rows(self, batch: pl.DataFrame, batch_id: int) -> pl.DataFrame:
        """The batch's rows as state rows; rows without a session window are dropped."""
        row_id = (pl.int_range(pl.len(), dtype=pl.Int64) + batch_id * _ROWS_PER_BATCH)
        rows = batch.select([row_id.alias(_ROW_ID), *self.group_exprs, *self.bounds.exprs,
                             *self.arg_exprs])
        start, end = pl.col(SESSION_START), pl.col(SESSION_END)
        return rows.filter(start.is_not_null() & (end > start).fill_null(False))

    def _partitions(self, rows: pl.DataFrame) -> pl.Series:
        if not self.group_names:  # one group: every row in partition 0
            return pl.Series("p", [0] * rows.height, dtype=pl.UInt64)
        return partition_ids(rows, self.group_names, self.ctx.num_partitions)

    def output_watermark_us(self, input_watermark_us: int) -> int:
        return input_watermark_us

    def close(self) -> None:
        self.state.close()

    def maintenance(self, min_versions: int) -> None:
        self.state.maintenance(min_versions)


def _is_watermarked(call: Expression, delays: dict[str, int]) -> bool:
    return any(isinstance(n, ColumnRef) and n.display_name().lower() in delays
               for n in walk(call))

