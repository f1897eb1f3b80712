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
batch makes the same calls. That per-partition work is ``TransformFold``
(``transform_fold.py``), run by ``StatePartitions`` on driver threads or in the
partition's Ray state actor; this operator keys and routes the rows and keeps the
processing-time deadlines.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import polars as pl
import pyarrow as pa

from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import compile_expr
from unbounded.engine.plans import compile_output, to_display_arrow
from unbounded.engine.stateful_processor import (
    ProcessorRuntime,
    RowProcessor,
    StatefulProcessorHandle,
    StateVariable,
)
from unbounded.errors import AnalysisException
from unbounded.plan.logical import TimeMode, TransformWithStateInPandas
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
from unbounded.runtime.stateful.transform_fold import (
    TIMERS,
    StateCodec,
    TransformFold,
    earliest_timer,
    load_processor,
)
from unbounded.runtime.stateful.user_input import UserInput
from unbounded.state.base import StateSchema
from unbounded.state.transform_meta import OperatorInfo, TransformWithStateFile, store_folder

__all__ = ["StreamingTransformWithState"]

_KEY = "__gkey"


class StreamingTransformWithState(CallsUserFunctions):
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
        self.row_mode = isinstance(load_processor(node.processor), RowProcessor)
        self._record_declarations()
        self.fold = TransformFold(node.processor, node.time_mode, node.schema, self.variables,
                                  tuple(self.gkeys), tuple(self.key_names), self.key_schema,
                                  self.row_mode)
        self.state = StatePartitions(ctx, [
            (self._folder(n), self._schema(self.fold.codec(n))) for n in self.fold.store_names])
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

    def _schema(self, codec: StateCodec) -> StateSchema:
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
        processor = load_processor(self.node.processor)
        processor.init(StatefulProcessorHandle(runtime))
        processor.close()
        return runtime.variables

    def _stored_deadlines(self) -> list[int | None]:
        """Each partition's earliest timer in its newest state, so a restarted query still
        runs the batch that fires it."""
        if self.node.time_mode is not TimeMode.PROCESSING_TIME:
            return [None] * self.ctx.num_partitions
        deadlines: list[int | None] = []
        for provider in self.state.local[-1].providers:  # the timers (stored last)
            version = provider.latest_version()
            store = provider.get_store(version) if version else None
            deadlines.append(earliest_timer(store) if store is not None else None)
            if store is not None:
                store.abort()
        return deadlines

    # ---- one batch ---------------------------------------------------------------------
    def process(self, inputs: Sequence[InputBatch], batch: BatchInfo) -> OperatorOutput:
        started = time.perf_counter()
        rows, dropped = self.input.rows(inputs[0].rows, batch.late_watermark_us)
        keyed = rows.with_columns(self.key_exprs)
        n = self.ctx.num_partitions
        parts = split_partitions(keyed, partition_ids(keyed, self.gkeys, n), n)
        initial = self._initial_parts() if batch.batch_id == 0 else None
        per_partition = [(part,) if initial is None else (part, initial[p])
                         for p, part in enumerate(parts)]
        fold = replace(self.fold, batch_id=batch.batch_id,
                       processing_ms=batch.timestamp_us // 1000,
                       watermark_ms=batch.watermark_us // 1000)
        results = self.state.fold(per_partition, fold, batch.batch_id)
        for p, result in enumerate(results):
            self.deadlines[p] = result[2]
        metrics = sum_metrics([r[1] for r in results])
        metrics.update(operatorName="transformWithStateInPandasExec",
                       numRowsDroppedByWatermark=dropped,
                       numShufflePartitions=self.ctx.num_partitions,
                       numStateStoreInstances=self.ctx.num_partitions * len(self.state.local),
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

    def timeouts_due(self, batch_timestamp_ms: int) -> bool:
        """A processing-time timer fires when the batch timestamp reaches it."""
        return any(d is not None and d <= batch_timestamp_ms for d in self.deadlines)

    def output_watermark_us(self, input_watermark_us: int) -> int:
        return input_watermark_us

    def maintenance(self, min_versions: int) -> None:
        self.state.maintenance(min_versions)

    def close(self) -> None:
        self.state.close()


