"""``groupBy(...).applyInPandasWithState(...)`` on a stream: user-defined state per key.

Each batch: late rows are dropped (event-time timeouts only, as Spark), the rows are keyed
and routed to their state partition, and each partition groups its rows once; the user
function is called per key with the key's rows as pandas DataFrames (Arrow slices) and
its ``GroupState``. Then every stored key whose timeout is older than the batch's
threshold (the batch timestamp for processing-time timeouts, the watermark for event
time) and that got no rows is called with one empty DataFrame and ``hasTimedOut`` true.
What each call left is written back by Spark's rule (``GroupState.outcome``). Processing
time is the batch timestamp logged in ``offsets/N``, so a re-run makes the same calls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import compile_expr
from unbounded.engine.group_state import (
    NO_TIMESTAMP,
    STORED_TIMEOUT,
    STORED_VALUE,
    GroupCalls,
    UserFunction,
    call_groups,
    group_rows,
)
from unbounded.engine.state_workers import run_job
from unbounded.errors import AnalysisException
from unbounded.plan.logical import FlatMapGroupsInPandasWithState, GroupStateTimeoutKind
from unbounded.runtime.stateful.base import (
    BatchInfo,
    CallsUserFunctions,
    InputBatch,
    MapSide,
    OperatorContext,
    OperatorOutput,
    frame_of,
    partition_ids,
    split_partitions,
    sum_metrics,
)
from unbounded.runtime.stateful.hosted import StatePartitions
from unbounded.runtime.stateful.user_input import UserInput
from unbounded.state.base import FOUND_COLUMN, StateSchema, StateStore

__all__ = ["GroupStateFold", "StreamingGroupsWithState"]

STATE = "groupState"
TIMEOUT = "timeoutTimestamp"
_KEY = "__gkey"


@dataclass(frozen=True)
class GroupStateFold:
    """One state partition's half of a batch: the user function called per key with rows
    and per timed-out key, each call's outcome written back by Spark's rule, the version
    committed. It holds the user function as cloudpickle bytes and otherwise names, types
    and the batch's clock, so it pickles and runs where the partition's store lives (a
    driver thread or its Ray actor, ``hosted.py``); it returns the output rows, the
    store's metrics and the partition's earliest processing-time timeout left."""

    user: UserFunction
    gkeys: tuple[str, ...]
    key_names: tuple[str, ...]
    timeout: GroupStateTimeoutKind
    processing_ms: int = 0
    watermark_ms: int = 0

    def __call__(self, stores: Sequence[StateStore], rows: Sequence[pl.DataFrame]
                 ) -> tuple[pa.Table, dict[str, int], int | None]:
        store = stores[0]
        try:
            keys, data, offsets = group_rows(rows[0], list(self.gkeys))
            keys = keys.rename(dict(zip(self.gkeys, self.key_names, strict=True)))
            stored = frame_of(store.scan()) if self._times_out() else None
            due = self._due(stored, keys)
            job = GroupCalls(self.user, self.processing_ms, self.watermark_ms,
                             self._with_stored(keys, store.lookup(keys.to_arrow())),
                             data.to_arrow(), offsets, self._due_calls(due, keys))
            result = run_job(call_groups, job, job.size)
            self._write(store, self._call_keys(keys, due), result.outcomes)
            store.commit()
        except BaseException:
            store.abort()
            raise
        deadline = self._deadline(stored, due, keys, result.outcomes)
        return result.output, store.metrics.to_dict(), deadline

    def _times_out(self) -> bool:
        return self.timeout is not GroupStateTimeoutKind.NONE

    # ---- the calls' input ----------------------------------------------------------------
    def _with_stored(self, keys: pl.DataFrame, found: pa.Table) -> pa.Table:
        """The keys with rows, each with its stored state and timeout (none if absent)."""
        stored_timeout = pc.if_else(found.column(FOUND_COLUMN), found.column(TIMEOUT),
                                    pa.scalar(NO_TIMESTAMP, pa.int64()))
        return (keys.to_arrow().append_column(STORED_VALUE, found.column(STATE))
                .append_column(STORED_TIMEOUT, stored_timeout))

    def _due_calls(self, due: pl.DataFrame | None, keys: pl.DataFrame) -> pa.Table:
        """The timed-out keys with their stored state and timeout."""
        if due is None:
            return self._with_stored(keys.clear(), self._no_state())
        return due.rename({STATE: STORED_VALUE, TIMEOUT: STORED_TIMEOUT}).to_arrow()

    def _no_state(self) -> pa.Table:
        return pa.table({STATE: pa.array([], self.user.state_type),
                         TIMEOUT: pa.array([], pa.int64()),
                         FOUND_COLUMN: pa.array([], pa.bool_())})

    @staticmethod
    def _call_keys(keys: pl.DataFrame, due: pl.DataFrame | None) -> pl.DataFrame:
        """Every call's key row, in call order."""
        return keys if due is None else pl.concat([keys, due.select(keys.columns)])

    # ---- timeouts ----------------------------------------------------------------------
    def _threshold(self) -> int:
        if self.timeout is GroupStateTimeoutKind.PROCESSING_TIME:
            return self.processing_ms
        return self.watermark_ms

    def _due(self, stored: pl.DataFrame | None, keys: pl.DataFrame
             ) -> pl.DataFrame | None:
        """Stored keys whose timeout passed and that got no rows in this batch."""
        if stored is None:
            return None
        timeout = pl.col(TIMEOUT)
        due = stored.filter((timeout != NO_TIMESTAMP) & (timeout < self._threshold()))
        return due.join(keys, on=list(self.key_names), how="anti", nulls_equal=True)

    # ---- writing back ------------------------------------------------------------------
    def _write(self, store: StateStore, keys: pl.DataFrame, outcomes: pa.Table) -> None:
        """Each call's outcome by Spark's rule: written (value and timeout) or deleted."""
        write, delete = outcomes.column("write"), outcomes.column("delete")
        if pc.any(write).as_py():
            written = outcomes.filter(write)
            store.upsert(keys.filter(pl.Series(write)).to_arrow()
                         .append_column(STATE, written.column(STORED_VALUE))
                         .append_column(TIMEOUT, written.column(STORED_TIMEOUT)),
                         distinct=True)
        if pc.any(delete).as_py():
            store.delete(keys.filter(pl.Series(delete)).to_arrow())

    def _deadline(self, stored: pl.DataFrame | None, due: pl.DataFrame | None,
                  keys: pl.DataFrame, outcomes: pa.Table) -> int | None:
        """The earliest processing-time timeout left in the partition."""
        if self.timeout is not GroupStateTimeoutKind.PROCESSING_TIME or stored is None:
            return None
        untouched = stored.join(keys, on=list(self.key_names), how="anti", nulls_equal=True)
        if due is not None:
            untouched = untouched.join(due.select(list(self.key_names)), on=list(self.key_names),
                                       how="anti", nulls_equal=True)
        kept = outcomes.filter(pc.invert(outcomes.column("delete"))).column(STORED_TIMEOUT)
        candidates = [t for t in [_earliest(untouched[TIMEOUT]), *kept.to_pylist()]
                      if t is not None and t != NO_TIMESTAMP]
        return min(candidates) if candidates else None


class StreamingGroupsWithState(CallsUserFunctions):
    """``applyInPandasWithState`` on a stream.

    State rows (through the state store): the grouping keys by display name, then
    ``groupState`` (a struct of the declared state schema; null when the state was
    removed but a timeout is still set) and ``timeoutTimestamp`` (epoch ms, -1 for none),
    Spark's state format 2. For ``groupBy("user")`` with state ``n long``::

        user | groupState | timeoutTimestamp
        "a"  | {n: 3}     | 1767261900000
    """

    def __init__(self, node: FlatMapGroupsInPandasWithState, input_schema: pl.Schema,
                 ctx: OperatorContext) -> None:
        if not node.keys:
            raise AnalysisException("applyInPandasWithState on a stream needs grouping "
                                    "keys: groupBy(col, ...).", error_class="UNSUPPORTED_PLAN")
        self.node, self.ctx = node, ctx
        self.input = UserInput.of(node.child, input_schema,
                                  event_time_mode=node.timeout is GroupStateTimeoutKind.EVENT_TIME)
        cctx = CompileContext(input_schema, 0, ansi=ctx.ansi, time_zone=ctx.time_zone)
        self.gkeys = [f"{_KEY}{i}" for i in range(len(node.keys))]
        self.key_exprs = [compile_expr(k, cctx).alias(g) for k, g in
                          zip(node.keys, self.gkeys, strict=True)]
        self.key_names = [k.display_name() for k in node.keys]
        self.state_type = pa.struct(list(node.state_schema.to_arrow_schema()))
        self.schema = self._state_schema(input_schema)
        self.state = StatePartitions(ctx, [("", self.schema)])
        user = UserFunction(node.function.pickled, node.function.name, node.schema,
                            self.state_type, node.timeout.value, self.input.event_time is not None)
        self.fold = GroupStateFold(user, tuple(self.gkeys), tuple(self.key_names), node.timeout)
        self.deadlines = self._stored_deadlines()

    def _state_schema(self, input_schema: pl.Schema) -> StateSchema:
        keys = pl.DataFrame(schema=input_schema).select(self.key_exprs).to_arrow()
        key = pa.schema([pa.field(n, t) for n, t in zip(self.key_names, keys.schema.types,
                                                        strict=True)])
        try:
            return StateSchema(key, pa.schema([(STATE, self.state_type), (TIMEOUT, pa.int64())]))
        except ValueError as e:
            raise AnalysisException(
                f"applyInPandasWithState keeps its state as the grouping keys plus {STATE!r} "
                f"and {TIMEOUT!r}: {e}. Rename the grouping column.",
                error_class="UNSUPPORTED_PLAN") from e

    def _stored_deadlines(self) -> list[int | None]:
        """Each partition's earliest processing-time timeout in its newest state, so a
        restarted query still runs the batch that times those keys out."""
        if self.node.timeout is not GroupStateTimeoutKind.PROCESSING_TIME:
            return [None] * self.ctx.num_partitions
        deadlines: list[int | None] = []
        for provider in self.state.local[0].providers:
            version = provider.latest_version()
            store = provider.get_store(version) if version else None
            rows = frame_of(store.scan()) if store is not None else None
            if store is not None:
                store.abort()
            deadlines.append(_earliest(rows[TIMEOUT]) if rows is not None else None)
        return deadlines

    # ---- one batch ---------------------------------------------------------------------
    map_sides: tuple[MapSide | None, ...] = (None,)  # the operator runs on the batch's rows

    def process(self, inputs: Sequence[InputBatch], batch: BatchInfo) -> OperatorOutput:
        started = time.perf_counter()
        rows, dropped = self.input.rows(inputs[0].rows, batch.late_watermark_us)
        keyed = rows.with_columns(self.key_exprs)
        n = self.ctx.num_partitions
        parts = split_partitions(keyed, partition_ids(keyed, self.gkeys, n), n)
        fold = replace(self.fold, processing_ms=batch.timestamp_us // 1000,
                       watermark_ms=batch.watermark_us // 1000)
        results = self.state.fold([(part,) for part in parts], fold, batch.batch_id)
        tables = [r[0] for r in results]
        for p, result in enumerate(results):
            self.deadlines[p] = result[2]
        metrics = sum_metrics([r[1] for r in results])
        metrics.update(operatorName="applyInPandasWithState", numRowsDroppedByWatermark=dropped,
                       numShufflePartitions=self.ctx.num_partitions,
                       numStateStoreInstances=self.ctx.num_partitions,
                       allUpdatesTimeMs=int((time.perf_counter() - started) * 1000))
        return OperatorOutput(self._output(tables), metrics)

    def _output(self, tables: list[pa.Table]) -> pl.DataFrame:
        target = self.node.schema.to_arrow_schema()
        return frame_of(pa.concat_tables(tables) if tables else target.empty_table())

    def timeouts_due(self, batch_timestamp_ms: int) -> bool:
        return any(d is not None and d < batch_timestamp_ms for d in self.deadlines)

    def output_watermark_us(self, input_watermark_us: int) -> int:
        return input_watermark_us

    def maintenance(self, min_versions: int) -> None:
        self.state.maintenance(min_versions)

    def close(self) -> None:
        self.state.close()


def _earliest(timeouts: pl.Series) -> int | None:
    pending = timeouts.filter(timeouts != NO_TIMESTAMP)
    return int(pending.min()) if pending.len() else None  # type: ignore[arg-type]
