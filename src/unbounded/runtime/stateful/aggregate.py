"""Streaming aggregation: partial aggregates per key, merged into versioned state.

Each batch: key the rows (windows exploded), drop rows at or below the watermark, reduce
them to one partial buffer row per key, split by key hash into state partitions, and
per partition merge the buffers with the stored ones. What is emitted follows the output
mode: ``update`` the keys changed in this batch, ``complete`` every key, ``append`` the
keys whose window the watermark closed (then removed from state).
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import polars as pl
import pyarrow as pa

from unbounded.engine.aggregates import AGGREGATES, compile_agg_args
from unbounded.engine.ansi import bigint_add_checked, sum_checked
from unbounded.engine.context import CompileContext, EventTimeStats
from unbounded.engine.expressions import compile_expr, compile_named
from unbounded.engine.functions import is_sliding_window
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import (
    AggregateCall,
    Alias,
    ColumnRef,
    Expression,
    FunctionCall,
    walk,
)
from unbounded.plan.logical import Aggregate, WithWatermark, walk_plan
from unbounded.runtime.stateful.base import (
    BatchInfo,
    InputBatch,
    MapSideOutput,
    OperatorContext,
    OperatorOutput,
    frame_of,
    partition_ids,
    split_partitions,
    sum_metrics,
    watermark_delays,
)
from unbounded.runtime.stateful.dense_grouping import (
    DenseBuffer,
    DenseKey,
    DenseKind,
    DensePlan,
    dense_partial,
)
from unbounded.runtime.stateful.hosted import OneStoreFold, StatePartitions
from unbounded.state.base import (
    FOUND_COLUMN,
    OLD_SUFFIX,
    MergeFold,
    StateSchema,
    StateStore,
    SupportsCombineFold,
    SupportsMergeFold,
)

__all__ = ["INLINE_FOLD_ROWS", "PACK_MIN_ROWS", "SMALL_MAP_SIDE_ROWS", "StreamingAggregation"]

_UTC_US = pl.Datetime("us", "UTC")
_GLOBAL_KEY = "__global_key"  # the one key of an aggregation without groupBy columns
_ROWS = "__agg_rows"  # a map-side group's row count, to count the rows of late groups
_PARTITION = "__agg_partition"  # a map-side row's state partition, computed in its task
# Spark's partial aggregation skipping (spark.sql.aggregate.skipPartialAggregate*): once
# the tasks' grouping leaves more than this share of the rows it read, from at least
# this many rows, the tasks send their rows' buffers ungrouped and the state partitions
# group them once; grouping resumes when a batch's keys repeat (RESUME_RATIO).
SKIP_PARTIAL_MIN_ROWS = 100_000
SKIP_PARTIAL_RATIO = 0.9
RESUME_PARTIAL_RATIO = 0.5
# Partial rows from which the combine groups several integer keys as one packed integer
# (below, the extra query for the keys' ranges costs more than it saves).
PACK_MIN_ROWS = 65_536
_MAX_RUNS = 64  # runs of one partition per partition up to which routing slices rows
# Stored plus partial rows (in all partitions) up to which a batch folds its state
# partitions on the query thread: two thread hand-offs cost more than such folds.
INLINE_FOLD_ROWS = 1024


@dataclass(frozen=True)
class _AggPlan:
    """How one output aggregate is computed incrementally."""

    output: str
    partial: list[pl.Expr]  # over input rows, per key; aliased to buffer names
    merge: list[pl.Expr]  # over new buffers b and old buffers b__old (+ FOUND_COLUMN)
    final: pl.Expr  # over buffers
    combine: list[pl.Expr]  # per key, over several partial rows of one batch (group context)
    # The partial buffers of one row on its own (no group context), which ``combine``
    # folds as it folds partial rows; None when the aggregate has no such form.
    row: list[pl.Expr] | None = None
    # ``combine`` over a stored buffer row and partial rows gives what ``merge`` of the
    # stored buffers with the partial rows combined gives (sums and counts).
    combine_merges: bool = False
    # The partial buffers as the dense grouping computes them, or None when it cannot.
    dense: tuple[DenseBuffer, ...] | None = None


def _old(name: str) -> pl.Expr:
    return pl.col(f"{name}{OLD_SUFFIX}")


def _found() -> pl.Expr:
    return pl.col(FOUND_COLUMN)


def _keep_old_else_new(b: str) -> pl.Expr:
    return pl.when(_found()).then(_old(b)).otherwise(pl.col(b)).alias(b)


def _plan_aggregate(index: int, expr: Expression, ctx: CompileContext) -> _AggPlan:
    inner = expr.child if isinstance(expr, Alias) else expr
    if not isinstance(inner, AggregateCall):
        raise AnalysisException(
            f"Streaming aggregation output {expr.display_name()} must be an aggregate function "
            "(count, sum, avg, ...); compute derived values in a select(...) after agg(...).")
    name = expr.display_name()
    args = compile_agg_args(inner, ctx)  # a constant is repeated per row, as in batch
    b = [f"{name}#{inner.name}{'_distinct' if inner.distinct else ''}{j}" for j in range(3)]
    builder = _BUILDERS.get(inner.name)
    if inner.name == "sum" and ctx.ansi and ctx.dtype_of(args[0]) == pl.Int64:
        builder = _checked_sum
    if inner.name == "max" and ctx.dtype_of(args[0]).is_float():
        builder = _nan_max
    if builder is None:
        raise AnalysisException(f"Aggregate {inner.name} is not supported in streaming yet.")
    return replace(builder(name, b, args, inner), dense=_dense_buffers(inner, b, args, ctx))


def _dense_buffers(call: AggregateCall, b: list[str], args: list[pl.Expr],
                   ctx: CompileContext) -> tuple[DenseBuffer, ...] | None:
    """count, and sum or avg of doubles, as ``dense_grouping`` computes them (the same
    buffers ``_count``, ``_sum`` and ``_avg`` aggregate); None for other aggregates."""
    if call.distinct:
        return None
    if call.name == "count":
        kind = DenseKind.COUNT if args else DenseKind.ROWS
        return (DenseBuffer(b[0], kind, pl.Int64(), args[0] if args else None),)
    if call.name in ("sum", "avg", "mean") and args:
        dtype = ctx.dtype_of(args[0])
        if dtype == pl.Float64 or (call.name != "sum" and dtype.is_integer()
                                   and dtype not in (pl.UInt64, pl.Int128)):
            arg = args[0].cast(pl.Float64)
            return (DenseBuffer(b[0], DenseKind.SUM, pl.Float64(), arg),
                    DenseBuffer(b[1], DenseKind.COUNT, pl.Int64(), arg))
    return None


def _count(name: str, b: list[str], args: list[pl.Expr], call: AggregateCall) -> _AggPlan:
    if call.distinct:
        return _distinct_set(name, b, args, final=lambda e: e.list.len().cast(pl.Int64))
    partial = pl.len() if not args else args[0].count()
    row = pl.lit(1) if not args else args[0].is_not_null()
    merge = (pl.when(_found()).then(_old(b[0]) + pl.col(b[0])).otherwise(pl.col(b[0])))
    return _AggPlan(name, [partial.cast(pl.Int64).alias(b[0])], [merge.alias(b[0])],
                    pl.col(b[0]), [pl.col(b[0]).sum()], [row.cast(pl.Int64).alias(b[0])],
                    combine_merges=True)


def _distinct_set(name: str, b: list[str], args: list[pl.Expr],
                  final: Callable[[pl.Expr], pl.Expr]) -> _AggPlan:
    value = args[0] if len(args) == 1 else pl.struct(args)
    partial = value.drop_nulls().unique(maintain_order=True).alias(b[0])
    merged = pl.when(_found()).then(pl.concat_list([_old(b[0]), pl.col(b[0])])) \
        .otherwise(pl.col(b[0])).list.unique(maintain_order=True)
    combine = pl.col(b[0]).explode().drop_nulls().unique(maintain_order=True)
    return _AggPlan(name, [partial], [merged.alias(b[0])], final(pl.col(b[0])), [combine])


def _sum(name: str, b: list[str], args: list[pl.Expr], call: AggregateCall) -> _AggPlan:
    s, n = b[0], b[1]
    merge = [pl.when(_found()).then(_old(s) + pl.col(s)).otherwise(pl.col(s)).alias(s),
             pl.when(_found()).then(_old(n) + pl.col(n)).otherwise(pl.col(n)).alias(n)]
    final = pl.when(pl.col(n) > 0).then(pl.col(s))
    return _AggPlan(name, [args[0].sum().alias(s), args[0].count().cast(pl.Int64).alias(n)],
                    merge, final, [pl.col(s).sum(), pl.col(n).sum()],
                    [args[0].fill_null(0).alias(s),  # as a sum over NULLs only: 0
                     args[0].is_not_null().cast(pl.Int64).alias(n)], combine_merges=True)


def _checked_sum(name: str, b: list[str], args: list[pl.Expr], call: AggregateCall
                 ) -> _AggPlan:
    """ANSI mode: a bigint sum raises ARITHMETIC_OVERFLOW, as in batch, when a task's
    partial sum, the batch's combined sum or the sum merged with the state overflows."""
    plan, s = _sum(name, b, args, call), b[0]
    merged = pl.when(_found()).then(bigint_add_checked(_old(s), pl.col(s))).otherwise(pl.col(s))
    return _AggPlan(name, [sum_checked(args[0], args[0].sum()).alias(s), *plan.partial[1:]],
                    [merged.alias(s), *plan.merge[1:]], plan.final,
                    [sum_checked(pl.col(s), pl.col(s).sum()).alias(s), *plan.combine[1:]],
                    plan.row)


def _avg(name: str, b: list[str], args: list[pl.Expr], call: AggregateCall) -> _AggPlan:
    plan = _sum(name, b, [args[0].cast(pl.Float64)], call)
    final = pl.when(pl.col(b[1]) > 0).then(pl.col(b[0]) / pl.col(b[1]))
    return _AggPlan(name, plan.partial, plan.merge, final, plan.combine, plan.row,
                    combine_merges=True)


def _extreme(horizontal: Callable[..., pl.Expr], method: str) -> Callable[..., _AggPlan]:
    def build(name: str, b: list[str], args: list[pl.Expr], call: AggregateCall) -> _AggPlan:
        merge = pl.when(_found()).then(horizontal(_old(b[0]), pl.col(b[0]))) \
            .otherwise(pl.col(b[0]))
        return _AggPlan(name, [getattr(args[0], method)().alias(b[0])], [merge.alias(b[0])],
                        pl.col(b[0]), [getattr(pl.col(b[0]), method)()], [args[0].alias(b[0])])

    return build


def _nan_max(name: str, b: list[str], args: list[pl.Expr], call: AggregateCall) -> _AggPlan:
    """``max`` of a floating-point column: NaN is above every number, as Spark orders it
    (Polars' ``max`` skips NaN; its comparisons already order it so)."""
    old, new = _old(b[0]), pl.col(b[0])
    larger = pl.when(new.is_null() | (old >= new)).then(old).otherwise(new)
    merge = pl.when(_found() & old.is_not_null()).then(larger).otherwise(new)
    return _AggPlan(name, [args[0].nan_max().alias(b[0])], [merge.alias(b[0])], new,
                    [new.nan_max()], [args[0].alias(b[0])])


def _first(name: str, b: list[str], args: list[pl.Expr], call: AggregateCall) -> _AggPlan:
    value = args[0].drop_nulls() if call.distinct else args[0]
    merge = pl.coalesce(_old(b[0]), pl.col(b[0])) if call.distinct else _keep_old_else_new(b[0])
    combine = pl.col(b[0]).drop_nulls() if call.distinct else pl.col(b[0])
    return _AggPlan(name, [value.first().alias(b[0])], [merge.alias(b[0])], pl.col(b[0]),
                    [combine.first()])


def _last(name: str, b: list[str], args: list[pl.Expr], call: AggregateCall) -> _AggPlan:
    value = args[0].drop_nulls() if call.distinct else args[0]
    merge = pl.coalesce(pl.col(b[0]), _old(b[0])) if call.distinct else pl.col(b[0])
    combine = pl.col(b[0]).drop_nulls() if call.distinct else pl.col(b[0])
    return _AggPlan(name, [value.last().alias(b[0])], [merge.alias(b[0])], pl.col(b[0]),
                    [combine.last()])


def _collect(unique: bool) -> Callable[..., _AggPlan]:
    def build(name: str, b: list[str], args: list[pl.Expr], call: AggregateCall) -> _AggPlan:
        if unique:
            return _distinct_set(name, b, args, final=lambda e: e)
        merged = pl.when(_found()).then(pl.concat_list([_old(b[0]), pl.col(b[0])])) \
            .otherwise(pl.col(b[0]))
        return _AggPlan(name, [args[0].drop_nulls().alias(b[0])], [merged.alias(b[0])],
                        pl.col(b[0]), [pl.col(b[0]).explode().drop_nulls()])

    return build


def _moments(sqrt: bool, ddof: int = 1) -> Callable[..., _AggPlan]:
    """Count, mean and M2 per key, merged with Chan's parallel formula; ``ddof`` 1 for
    the sample statistic, 0 for the population one."""

    def build(name: str, b: list[str], args: list[pl.Expr], call: AggregateCall) -> _AggPlan:
        x = args[0].cast(pl.Float64)
        n, mean, m2 = b
        partial = [x.count().cast(pl.Float64).alias(n), x.mean().fill_null(0.0).alias(mean),
                   ((x - x.mean()) ** 2).sum().alias(m2)]
        total = _old(n) + pl.col(n)
        delta = pl.col(mean) - _old(mean)
        safe_total = pl.when(total > 0).then(total).otherwise(1.0)
        merge = [
            pl.when(_found()).then(total).otherwise(pl.col(n)).alias(n),
            pl.when(_found()).then(_old(mean) + delta * pl.col(n) / safe_total)
            .otherwise(pl.col(mean)).alias(mean),
            pl.when(_found()).then(_old(m2) + pl.col(m2) + delta**2 * _old(n) * pl.col(n)
                                   / safe_total).otherwise(pl.col(m2)).alias(m2),
        ]
        variance = pl.when(pl.col(n) > ddof).then(pl.col(m2) / (pl.col(n) - ddof))
        count = pl.col(n).sum()
        safe_count = pl.when(count > 0).then(count).otherwise(1.0)
        mean_all = (pl.col(n) * pl.col(mean)).sum() / safe_count
        combine = [count, mean_all,
                   pl.col(m2).sum() + (pl.col(n) * (pl.col(mean) - mean_all) ** 2).sum()]
        return _AggPlan(name, partial, merge, variance.sqrt() if sqrt else variance, combine)

    return build


def _kept_rows(name: str, b: list[str], args: list[pl.Expr], call: AggregateCall) -> _AggPlan:
    """median, percentile, corr and the other aggregates without a mergeable buffer here:
    a key's argument rows stay in state and the batch aggregate runs over them when the
    key is emitted. Spark keeps a TypedImperativeAggregate's object instead (a value
    count map, a sketch, moments), so this state grows with the rows of a key."""
    rows = pl.struct([a.alias(f"a{i}") for i, a in enumerate(args)])
    merged = pl.when(_found()).then(pl.concat_list([_old(b[0]), pl.col(b[0])])) \
        .otherwise(pl.col(b[0]))
    fields = [pl.element().struct.field(f"a{i}") for i in range(len(args))]
    final = pl.col(b[0]).list.eval(AGGREGATES[call.name](fields, call)).list.first()
    return _AggPlan(name, [rows.alias(b[0])], [merged.alias(b[0])], final,
                    [pl.col(b[0]).explode()])


# Partial rows from which a partition's combine runs on Polars' streaming engine: below
# it the in-memory engine is as fast alone (1.1 vs 1.4 ms at 11k rows) and does not wait
# for the streaming threads the read-ahead scans hold; above it streaming is 2-4x faster.
_STREAMING_COMBINE_ROWS = 65_536

# Order-insensitive aggregates computed over their kept rows (``_kept_rows``).
_KEPT_ROWS = ("median", "percentile", "percentile_approx", "approx_percentile", "mode",
              "corr", "covar_pop", "covar_samp", "skewness", "kurtosis", "product",
              *(f"regr_{s}" for s in ("count", "avgx", "avgy", "sxx", "syy", "sxy", "slope",
                                      "intercept", "r2")))

_BUILDERS: dict[str, Callable[..., _AggPlan]] = {
    **dict.fromkeys(_KEPT_ROWS, _kept_rows),
    "count": _count, "sum": _sum, "avg": _avg, "mean": _avg,
    "min": _extreme(pl.min_horizontal, "min"), "max": _extreme(pl.max_horizontal, "max"),
    "first": _first, "last": _last,
    "count_distinct": lambda n, b, a, c: _count(n, b, a, AggregateCall("count", (), True)),
    "approx_count_distinct": lambda n, b, a, c: _count(n, b, a, AggregateCall("count", (), True)),
    "collect_list": _collect(False), "collect_set": _collect(True),
    "stddev": _moments(True), "stddev_samp": _moments(True),
    "variance": _moments(False), "var_samp": _moments(False),
    "std": _moments(True), "stddev_pop": _moments(True, 0), "var_pop": _moments(False, 0),
    "count_if": lambda n, b, a, c: _count(n, b, [pl.when(a[0].cast(pl.Boolean)).then(1)],
                                          AggregateCall("count", (), False)),
    "bool_and": _extreme(pl.min_horizontal, "min"), "every": _extreme(pl.min_horizontal, "min"),
    "bool_or": _extreme(pl.max_horizontal, "max"), "some": _extreme(pl.max_horizontal, "max"),
    "first_value": _first, "any_value": _first, "last_value": _last,
}


@dataclass(frozen=True)
class MapSideAggregation:
    """The per-task half of a streaming aggregation: key the rows (windows exploded),
    drop rows at or below the watermark, and reduce them to one partial-buffer row per
    key. It holds only Polars expressions and names, so it pickles and runs wherever the
    task runs; the stateful half combines the tasks' partial rows with the stored ones.
    A tumbling window stays its start in microseconds through the partial rows and the
    state (integer keys hash, group and join about twice as fast as struct keys) and
    becomes Spark's ``window`` struct only in the operator's output.
    """

    key_exprs: tuple[pl.Expr, ...]
    key_names: tuple[str, ...]
    sliding: tuple[str, ...]
    partial: tuple[pl.Expr, ...]
    tumbling: tuple[tuple[str, int], ...]  # window key name -> duration (us)
    event_time: str | None  # the key that carries event time (None: nothing is late)
    # The withWatermark node right below the aggregation, whose event-time statistics the
    # fused path computes in the same pass: (node id, column).
    watermark: tuple[str, str] | None = None
    # first/last/collect_list depend on row order, which Polars guarantees within groups
    # on its in-memory engine; a re-run batch must rebuild exactly the same state.
    order_sensitive: bool = False
    # Each row's own buffers, typed as the partial rows (None: some aggregate has none),
    # sent instead of the grouped ones while ``skip_partial`` holds.
    row_partial: tuple[pl.Expr, ...] | None = None
    skip_partial: bool = False
    # When positive, each output row is tagged with its state partition (``_PARTITION``)
    # here in the task, so the driver only splits the rows by it.
    num_partitions: int = 0
    # The keys and every partial buffer (and the row count) as the dense grouping
    # computes them, for a large input whose key ranges are narrow; None: hashing only.
    dense: DensePlan | None = None

    @property
    def observed_watermark(self) -> str | None:
        # Sliding windows repeat rows, so they take the eager path, which leaves the
        # statistics to the task.
        return self.watermark[0] if self.watermark is not None and not self.sliding else None

    def run(self, rows: pl.LazyFrame, watermark_us: int, *,
            input_rows: int | None = None) -> MapSideOutput:
        if self.sliding:
            return self._run_eager(rows.collect(), watermark_us)
        small = input_rows is not None and input_rows < SMALL_MAP_SIDE_ROWS
        if self.dense is not None and not small and not self.skip_partial:
            return self._run_dense(rows, watermark_us)
        return self._run_fused(rows, watermark_us, small=small)

    def _run_dense(self, rows: pl.LazyFrame, watermark_us: int) -> MapSideOutput:
        """As ``_run_fused``, from the rows read into memory: the event-time statistics
        over them, then the partial rows by ``dense_partial`` when the keys' ranges are
        narrow, else by the hash grouping (the same rows either way)."""
        assert self.dense is not None
        frame = rows.collect(engine="streaming")
        times = None if self.watermark is None else self.watermark[1]
        partial, summary = dense_partial(frame, self.dense, times)
        stats = None
        if self.watermark is not None:
            assert summary is not None
            stats = self.watermark[0], self._event_time_stats(frame.lazy(), tuple(summary))
        if partial is None:
            keyed = frame.lazy().with_columns(self.key_exprs)
            partial = self._reduced(keyed).collect(engine="streaming")
        partial = self._tagged(partial.lazy()).collect(engine="in-memory")
        partial, dropped = self._drop_late(partial, watermark_us)
        return MapSideOutput(self._grouped_by_partition(partial), dropped, stats)

    def _run_fused(self, rows: pl.LazyFrame, watermark_us: int, *,
                   small: bool = False) -> MapSideOutput:
        """The partial rows, the late-row count and the watermark column's statistics,
        from one scan on Polars' streaming engine (the in-memory one for a ``small``
        input or order-sensitive aggregates). Lateness is a function of the event-time
        key, so whole groups are late: the rows are grouped first, with their count, and
        late groups are dropped from the small grouped frame. The statistics are a
        sibling query over the unkeyed rows (see ``_event_time_stats``)."""
        queries = [self._tagged(self._reduced(rows.with_columns(self.key_exprs)))]
        if self.watermark is not None:
            ts = pl.col(self.watermark[1]).dt.epoch("us")
            # Int64 wraps; the exact sum is recovered from min/max (_exact_sum).
            queries.append(rows.select(ts.min().alias("min"), ts.max().alias("max"),
                                       ts.sum().alias("sum"), ts.count().alias("n")))
        partial, *totals = pl.collect_all(
            queries, engine="in-memory" if self.order_sensitive or small else "streaming")
        partial, dropped = self._drop_late(partial, watermark_us)
        stats = None
        if self.watermark is not None:
            stats = self.watermark[0], self._event_time_stats(rows, totals[0].row(0))
        return MapSideOutput(self._grouped_by_partition(partial), dropped, stats)

    def _drop_late(self, partial: pl.DataFrame, watermark_us: int) -> tuple[pl.DataFrame, int]:
        """``partial`` without its late and window-less keys, and the rows they held
        (usually there are none: then nothing is filtered)."""
        counted = _ROWS in partial.columns
        dropped = [column.is_null() for column in
                   (partial.get_column(name) for name, _ in self.tumbling)
                   if column.null_count()]
        late = 0
        if self.event_time is not None and watermark_us > 0 and partial.height:
            is_late = self._late_rows(partial, watermark_us)
            if is_late is not None:
                late = int(partial.get_column(_ROWS).filter(is_late).sum()) if counted \
                    else int(is_late.sum())
                dropped.append(is_late)
        if dropped:
            partial = partial.filter(~functools.reduce(operator.or_, dropped))
        if counted:
            partial.drop_in_place(_ROWS)  # a frame of this task's own: no query, no copy
        return partial, late

    def _late_rows(self, partial: pl.DataFrame, watermark_us: int) -> pl.Series | None:
        """``_late`` over ``partial`` (NULL: not late), or None when no row is late: a
        tumbling window's earliest start tells without a query (Series arithmetic and
        comparisons each run one), as in most batches."""
        assert self.event_time is not None
        tumbling_us = dict(self.tumbling).get(self.event_time)
        if tumbling_us is not None:
            earliest = partial.get_column(self.event_time).min()
            if earliest is None or int(earliest) + tumbling_us > watermark_us:  # type: ignore[arg-type]
                return None
        is_late = partial.select(self._late(watermark_us).fill_null(False)).to_series()
        return is_late if is_late.any() else None

    def _event_time_stats(self, rows: pl.LazyFrame, row: tuple[Any, ...]) -> EventTimeStats:
        low, high, wrapped, count = row
        if not count:
            return EventTimeStats(None, None, 0, 0)
        exact = _exact_sum(wrapped, low, high, count)
        if exact is None:  # a span too wide to place the wrapped sum: sum again, wide
            assert self.watermark is not None
            ts = pl.col(self.watermark[1]).dt.epoch("us").cast(pl.Int128)
            exact = int(rows.select(ts.sum()).collect(engine="streaming").item())
        return EventTimeStats(low, high, exact, int(count))

    def _run_eager(self, rows: pl.DataFrame, watermark_us: int) -> MapSideOutput:
        keyed = rows.with_columns(self.key_exprs)
        for name in self.sliding:
            keyed = keyed.explode(name)
        keyed = keyed.filter(self._has_window())
        dropped = 0
        if self.event_time is not None and watermark_us > 0:
            before = keyed.height
            keyed = keyed.filter(~self._late(watermark_us).fill_null(False))
            dropped = before - keyed.height
        reduced = keyed.group_by(list(self.key_names)).agg(self.partial)
        return MapSideOutput(self._grouped_by_partition(self._tagged(reduced.lazy()).collect()),
                             dropped)

    def _reduced(self, rows: pl.LazyFrame) -> pl.LazyFrame:
        """One partial-buffer row per key, or per row while partial grouping is skipped."""
        if self.skip_partial and self.row_partial is not None:
            return rows.select(*self.key_names, *self.row_partial)
        return rows.group_by(list(self.key_names)).agg(*self.partial, pl.len().alias(_ROWS))

    def _grouped_by_partition(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Tagged ``rows`` in partition order (stable), so that the driver cuts each
        task's rows into partitions by slicing (``_route``) instead of copying them:
        one chunk per partition, about four times cheaper than a stable sort."""
        if self.num_partitions <= 1 or rows.height <= 1:
            return rows
        parts = rows.partition_by(_PARTITION, maintain_order=True, as_dict=True)
        return pl.concat([parts[k] for k in sorted(parts)], rechunk=False)

    def _tagged(self, rows: pl.LazyFrame) -> pl.LazyFrame:
        """``rows`` with their state partition, as ``partition_ids`` computes it."""
        if self.num_partitions <= 0:
            return rows
        return rows.with_columns(
            (pl.struct(list(self.key_names)).hash(seed=0) % self.num_partitions)
            .alias(_PARTITION))

    def _has_window(self) -> pl.Expr:
        """Spark drops rows whose event time is NULL: they have no window (not even
        {NULL, NULL}); a sliding window's empty list already explodes to no row."""
        present = [pl.col(name).is_not_null() for name, _ in self.tumbling]
        return pl.all_horizontal(present) if present else pl.lit(True)

    def _late(self, watermark_us: int) -> pl.Expr:
        """Rows at or below the watermark (for a window key: whose window end is)."""
        assert self.event_time is not None
        durations = dict(self.tumbling)
        column = pl.col(self.event_time)
        if self.event_time in durations:
            return column + durations[self.event_time] <= watermark_us
        if self.event_time in self.sliding:
            column = column.struct.field("end")
        return column <= pl.lit(watermark_us, dtype=pl.Int64).cast(_UTC_US)


# A map side over fewer input rows runs on Polars' in-memory engine: the streaming
# engine's fixed cost per query (~0.4 ms CPU of a ~2 ms task at 100 rows, measured)
# outweighs its parallelism there. The same query either way, so the same answer.
SMALL_MAP_SIDE_ROWS = 10_000


@dataclass(frozen=True)
class AggregationFold:
    """One state partition's half of a batch: the tasks' partial rows combined per key,
    merged with the stored buffers, closed windows evicted, the version committed, and
    what the output mode emits returned with the store's metrics. It holds only names
    and Polars expressions, so it pickles and runs where the partition's store lives:
    a driver thread, or the partition's Ray actor (``runtime/stateful/hosted.py``).
    """

    key_names: tuple[str, ...]
    combine: tuple[pl.Expr, ...]
    merges: tuple[pl.Expr, ...]
    output_mode: str
    # The key that closes: (name, tumbling duration in us or None, is a window struct).
    closing: tuple[str, int | None, bool] | None
    watermark_us: int = 0  # this batch's, which evicts
    order_sensitive: bool = False  # as MapSideAggregation's
    # Every aggregate's ``combine`` also merges stored buffers (``_AggPlan``), so a
    # store that can groups the partial rows with the stored rows of their keys once.
    combine_merges: bool = False

    def _combine(self, partials: pl.DataFrame) -> pl.DataFrame:
        """The tasks' partial rows of one state partition, one row per key; on Polars'
        streaming engine (about 1.5x faster at a million keys) when there are many
        rows, unless an aggregate depends on row order, which only the in-memory engine
        keeps within groups. Fewer rows stay in memory: the streaming engine's threads
        are busy with the next batch's read-ahead scans, and a small query queued
        behind them waited 15-40 ms for ~1 ms of work."""
        if partials.height <= 1:
            return partials
        packed = _packed_key(partials, self.key_names) \
            if partials.height >= PACK_MIN_ROWS else None
        if packed is not None:  # the same groups, on one integer column (~1.5x faster)
            key, keys = packed
            return partials.lazy().group_by(key).agg(self.combine) \
                .select(*keys, pl.exclude(_PACKED)) \
                .collect(engine="in-memory" if self.order_sensitive else "streaming")
        if self.order_sensitive or partials.height < _STREAMING_COMBINE_ROWS:
            return partials.group_by(list(self.key_names)).agg(self.combine)
        return partials.lazy().group_by(list(self.key_names)).agg(self.combine) \
            .collect(engine="streaming")

    def _closed(self, watermark_us: int) -> pl.Expr:
        assert self.closing is not None
        name, tumbling_us, is_window = self.closing
        if tumbling_us is not None:  # kept as the window's start (us) until the output
            return pl.col(name) + tumbling_us <= watermark_us
        column = pl.col(name).struct.field("end") if is_window else pl.col(name)
        return column <= pl.lit(watermark_us, dtype=pl.Int64).cast(_UTC_US)

    def __call__(self, store: StateStore, partials: pl.DataFrame
                 ) -> tuple[pl.DataFrame, dict[str, int]]:
        watermark_us = self.watermark_us
        try:
            evict = self._closed(watermark_us) \
                if self.closing is not None and watermark_us > 0 else None
            fold = self._combine_fold(store, partials, evict)
            if fold is None:
                fold = self._merge_fold(store, self._combine(partials), evict)
            mode = self.output_mode
            if mode == "complete":
                emitted = frame_of(store.scan())
            elif mode == "update":
                emitted = fold.merged
            else:
                emitted = fold.evicted
            store.commit()
        except BaseException:
            store.abort()
            raise
        return emitted, store.metrics.to_dict()

    def _combine_fold(self, store: StateStore, partials: pl.DataFrame,
                      evict: pl.Expr | None) -> MergeFold | None:
        """The partial rows grouped with the stored rows of their keys in one pass, when
        the aggregates allow it and the store can (a large batch of packable keys)."""
        if not self.combine_merges or partials.height < PACK_MIN_ROWS or \
                not isinstance(store, SupportsCombineFold):
            return None
        return store.combine_fold(partials, list(self.combine), evict)

    def _merge_fold(self, store: StateStore, partial: pl.DataFrame, evict: pl.Expr | None
                    ) -> MergeFold:
        if isinstance(store, SupportsMergeFold):
            return store.merge_fold(partial, list(self.merges), evict)
        return self._fold(store, partial, evict)

    def _fold(self, store: StateStore, partial: pl.DataFrame, evict: pl.Expr | None
              ) -> MergeFold:
        """``merge_fold`` for a store without it: lookup, merge, upsert, evict."""
        merged = self._merge(store.lookup(partial.select(self.key_names).to_arrow()),
                             partial)
        if merged.height:
            store.upsert(merged.to_arrow(), distinct=True)
        evicted = merged.clear() if evict is None else frame_of(store.evict(evict))
        return MergeFold(merged, evicted)

    def _merge(self, old: pa.Table, partial: pl.DataFrame) -> pl.DataFrame:
        if partial.height == 0:
            return partial
        old_frame = frame_of(old).drop(list(self.key_names))
        renamed = old_frame.rename({c: f"{c}{OLD_SUFFIX}" for c in old_frame.columns
                                    if c != FOUND_COLUMN})
        both = pl.concat([partial, renamed], how="horizontal")
        return both.select([*self.key_names, *self.merges])


class StreamingAggregation:
    """``groupBy(...).agg(...)`` on a stream."""

    def __init__(self, node: Aggregate, input_schema: pl.Schema, ctx: OperatorContext,
                 output_schema: pl.Schema) -> None:
        self.node = node
        self.ctx = ctx
        self.output_schema = output_schema
        # Built once: an empty frame of a struct schema costs ~0.12 ms, a clone ~1 us.
        self._no_rows = pl.DataFrame(schema=output_schema)
        self._state_rows = INLINE_FOLD_ROWS + 1  # after the last batch; unknown at first
        cctx = CompileContext(input_schema, 0, ansi=ctx.ansi, time_zone=ctx.time_zone)
        self.key_names = [k.display_name() for k in node.keys] or [_GLOBAL_KEY]
        # Tumbling windows group by their start in microseconds (a far cheaper key than
        # the struct); the struct is rebuilt on the aggregated rows.
        self.tumbling = {k.display_name(): _tumbling_start(k, cctx) for k in node.keys
                         if _is_tumbling(k)}
        self.key_exprs = [
            self.tumbling[k.display_name()][0].alias(k.display_name())
            if k.display_name() in self.tumbling else compile_named(k, cctx)
            for k in node.keys] or [pl.lit(0, dtype=pl.Int8).alias(_GLOBAL_KEY)]
        self.sliding = [k.display_name() for k in node.keys if _is_sliding(k)]
        keyed_schema = pl.LazyFrame(schema=input_schema).with_columns(self.key_exprs)
        for name in self.sliding:
            keyed_schema = keyed_schema.explode(name)
        kctx = CompileContext(keyed_schema.collect_schema(), 0, ansi=ctx.ansi,
                              time_zone=ctx.time_zone)
        self.aggs = [_plan_aggregate(i, a, kctx) for i, a in enumerate(node.aggs)]
        # Complete mode keeps every key: the watermark neither drops rows nor evicts state.
        self.event_time = None if ctx.output_mode == "complete" else _event_time_key(
            node, watermark_delays(node.child))
        self.map_side = MapSideAggregation(
            tuple(self.key_exprs), tuple(self.key_names), tuple(self.sliding),
            tuple(e for a in self.aggs for e in a.partial),
            tuple((name, d) for name, (_, d) in self.tumbling.items()),
            self.event_time[0] if self.event_time else None,
            _own_watermark(node), _order_sensitive(node))
        self.combine = [c.alias(p.meta.output_name()) for a in self.aggs
                        for c, p in zip(a.combine, a.partial, strict=True)]
        self.merges = [e for a in self.aggs for e in a.merge]
        self.fold = AggregationFold(
            tuple(self.key_names), tuple(self.combine), tuple(self.merges), ctx.output_mode,
            _closing_key(self.event_time, self.tumbling),
            order_sensitive=self.map_side.order_sensitive,
            combine_merges=all(a.combine_merges for a in self.aggs))
        empty = self.map_side.run(pl.LazyFrame(schema=input_schema), 0, input_rows=0).rows
        self.schema = StateSchema(empty.select(self.key_names).to_arrow().schema,
                                  empty.drop(self.key_names).to_arrow().schema)
        self.map_side = replace(self.map_side, row_partial=_row_partial(self.aggs, empty),
                                num_partitions=ctx.num_partitions,
                                dense=_dense_plan(node, self.aggs, input_schema, cctx))
        self._skipping = replace(self.map_side, skip_partial=True)
        self.skip_partial = False  # see SKIP_PARTIAL_RATIO; decided batch by batch
        self.state = StatePartitions(ctx, [("", self.schema)])  # in Ray actors or here

    @property
    def map_sides(self) -> tuple[MapSideAggregation]:
        return (self._skipping if self.skip_partial else self.map_side,)

    # ---- one batch ---------------------------------------------------------------------
    def process(self, inputs: Sequence[InputBatch], batch: BatchInfo) -> OperatorOutput:
        """The input holds the partial rows the tasks' map side produced."""
        started = time.perf_counter()
        partials, dropped = inputs[0].rows, inputs[0].dropped_late
        fold = OneStoreFold(replace(self.fold, watermark_us=batch.watermark_us))
        parts = _route(partials, self.key_names, self.ctx.num_partitions)
        inline = self._state_rows + partials.height <= INLINE_FOLD_ROWS
        results = self.state.fold([(part,) for part in parts], fold, batch.batch_id,
                                  inline=inline)
        out = self._finalize(_emitted([r[0] for r in results], partials))
        metrics: dict[str, Any] = sum_metrics([r[1] for r in results])
        self._state_rows = int(metrics.get("numRowsTotal", INLINE_FOLD_ROWS + 1))
        self._judge_partial(inputs[0], metrics.get("numRowsUpdated", 0))
        metrics.update(numRowsDroppedByWatermark=dropped, operatorName="stateStoreSave",
                       numShufflePartitions=self.ctx.num_partitions,
                       numStateStoreInstances=self.ctx.num_partitions,
                       allUpdatesTimeMs=int((time.perf_counter() - started) * 1000))
        return OperatorOutput(out, metrics)

    def _judge_partial(self, given: InputBatch, combined: int) -> None:
        """Skip the tasks' grouping from the next batches on when it barely reduced
        this one; resume it when this batch's ``combined`` keys show rows repeating."""
        on_time = given.input_rows - given.dropped_late
        if self.map_side.row_partial is None or on_time < SKIP_PARTIAL_MIN_ROWS:
            return
        if self.skip_partial:
            self.skip_partial = combined / on_time >= RESUME_PARTIAL_RATIO
        else:
            self.skip_partial = given.rows.height / on_time > SKIP_PARTIAL_RATIO

    def _finalize(self, buffers: pl.DataFrame) -> pl.DataFrame:
        if buffers.height == 0:  # most small batches emit nothing: no query for that
            return self._no_rows.clone()
        finals = [a.final.alias(a.output) for a in self.aggs]
        keys = [_window_struct(pl.col(k), self.tumbling[k][1]).alias(k)
                if k in self.tumbling else pl.col(k)
                for k in self.key_names if k != _GLOBAL_KEY]
        out = buffers.select([*keys, *finals])
        if out.schema == self.output_schema:
            return out
        return out.cast(dict(self.output_schema), strict=False)  # type: ignore[arg-type]

    def output_watermark_us(self, input_watermark_us: int) -> int:
        return input_watermark_us

    def close(self) -> None:
        self.state.close()

    def maintenance(self, min_versions: int) -> None:
        self.state.maintenance(min_versions)



def _closing_key(event_time: tuple[str, bool] | None,
                 tumbling: dict[str, tuple[pl.Expr, int]]) -> tuple[str, int | None, bool] | None:
    if event_time is None:
        return None
    name, is_window = event_time
    return name, tumbling[name][1] if name in tumbling else None, is_window


def _emitted(frames: list[pl.DataFrame], partials: pl.DataFrame) -> pl.DataFrame:
    """The state partitions' emitted rows as one frame. A small batch's rows come from
    at most one partition: then no concatenation (a Polars query) is needed; the types
    a relaxed concatenation would widen to are set by ``_finalize``'s cast."""
    if not frames:
        return partials.clear()
    filled = [f for f in frames if f.height]
    if len(filled) <= 1:
        return filled[0] if filled else frames[0]
    return pl.concat(frames, how="vertical_relaxed")


def _route(rows: pl.DataFrame, keys: list[str], n: int) -> list[pl.DataFrame]:
    """``rows`` per state partition (key hash modulo ``n``, computed by the tasks when
    they tagged the rows). A batch of no rows or one row, as small batches and batches
    without data are, needs no partitioning pass."""
    parts = rows.get_column(_PARTITION) if _PARTITION in rows.columns else None
    if parts is not None:  # in place on a copy: DataFrame.drop runs a lazy query
        rows = rows.clone()
        rows.drop_in_place(_PARTITION)
    if rows.height == 0:
        return [rows] * n
    if parts is None:
        parts = partition_ids(rows, keys, n)
    if rows.height == 1:
        target = parts.item()
        return [rows if p == target else rows.clear() for p in range(n)]
    return _sliced(rows, parts, n) or split_partitions(rows, parts, n)


def _sliced(rows: pl.DataFrame, parts: pl.Series, n: int) -> list[pl.DataFrame] | None:
    """``rows`` per partition as zero-copy slices of their runs of one partition (the
    tasks send their rows in partition order); None when the runs are many."""
    runs = parts.rle()
    if runs.len() > _MAX_RUNS * n:
        return None
    pieces: list[list[pl.DataFrame]] = [[] for _ in range(n)]
    offset = 0
    for length, value in runs.struct.unnest().iter_rows():
        pieces[value].append(rows.slice(offset, length))
        offset += length
    return [pl.concat(p) if p else rows.clear() for p in pieces]


_PACKED = "__packed_key"
_PACKABLE = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)
_MAX_PACKED = 2**62


def _packed_key(frame: pl.DataFrame, keys: Sequence[str]
                ) -> tuple[pl.Expr, list[pl.Expr]] | None:
    """Several integer key columns (a window's start and a key, say) as one Int64 that
    numbers their combinations within ``frame``'s ranges of values (NULL one more value
    of its column), and the expressions that give the columns back from it; None for
    one key, other types, or ranges whose product passes 2**62."""
    if len(keys) < 2:
        return None
    if any(frame.schema[name] not in _PACKABLE for name in keys):
        return None
    bounds = frame.select(*(e.alias(f"{i}_{j}") for i, name in enumerate(keys) for j, e in
                            enumerate((pl.col(name).min(), pl.col(name).max(),
                                       pl.col(name).null_count())))).row(0)
    packed: pl.Expr = pl.lit(0, pl.Int64)
    unpacked, stride = [], 1
    for i in reversed(range(len(keys))):
        name, (low, high, nulls) = keys[i], bounds[3 * i: 3 * i + 3]
        low, high = (0, 0) if low is None else (low, high)  # only NULLs
        null = high - low + 1 if nulls else None
        span = high - low + 1 + (null is not None)
        offset = pl.col(name).cast(pl.Int64) - low
        packed = packed + (offset if null is None else offset.fill_null(null)) * stride
        value = pl.col(_PACKED) // stride % span
        if null is not None:
            value = pl.when(value != null).then(value)
        unpacked.append((value + low).cast(frame.schema[name]).alias(name))
        stride *= span
        if stride > _MAX_PACKED:
            return None
    return packed.alias(_PACKED), unpacked[::-1]


def _exact_sum(wrapped: int, low: int, high: int, count: int) -> int | None:
    """The exact sum of ``count`` Int64 values within ``[low, high]`` whose sum wrapped
    modulo 2**64 is ``wrapped``: the one value congruent to it in ``[count * low,
    count * high]``, or None when that range is 2**64 wide or more (ambiguous)."""
    if count * (high - low) >= 2**64:
        return None
    return count * low + (wrapped - count * low) % 2**64


def _dense_plan(node: Aggregate, aggs: list[_AggPlan], input_schema: pl.Schema,
                ctx: CompileContext) -> DensePlan | None:
    """The keys (a tumbling window as its time, numbered by its index) and every
    aggregate's dense buffers with the row count; None when an aggregate has none, a
    window slides, or a key renames an input column (the aggregates' arguments then read
    the key, as in the hash grouping, which reads them over the keyed rows)."""
    if any(a.dense is None for a in aggs):
        return None
    keys = [] if node.keys else [DenseKey(_GLOBAL_KEY, pl.lit(0, dtype=pl.Int8))]
    for key in node.keys:
        name = key.display_name()
        renames = name in input_schema and not (isinstance(key, ColumnRef)
                                                and key.display_name() == name)
        if _is_sliding(key) or renames:
            return None
        if _is_tumbling(key):
            ts, duration, offset = _window_time(key, ctx, physical=True)
            keys.append(DenseKey(name, ts, duration, offset))
        else:
            keys.append(DenseKey(name, compile_named(key, ctx)))
    rows = DenseBuffer(_ROWS, DenseKind.ROWS, pl.Series(dtype=pl.get_index_type()).dtype)
    return DensePlan(tuple(keys), (*(b for a in aggs for b in a.dense or ()), rows))


def _row_partial(aggs: list[_AggPlan], partial: pl.DataFrame
                 ) -> tuple[pl.Expr, ...] | None:
    """Every aggregate's per-row buffers cast to the partial rows' types, or None."""
    rows = [e for a in aggs for e in (a.row if a.row is not None else [None])]
    if any(e is None for e in rows):
        return None
    return tuple(e.cast(partial.schema[e.meta.output_name()]) for e in rows if e is not None)


def _is_sliding(key: Expression) -> bool:
    inner = key.child if isinstance(key, Alias) else key
    return isinstance(inner, FunctionCall) and is_sliding_window(inner)


def _event_time_key(node: Aggregate, delays: dict[str, int]) -> tuple[str, bool] | None:
    """The grouping key that carries event time: a window over, or the column itself of,
    a watermarked column; (key name, is a window)."""
    for key in node.keys:
        inner = key.child if isinstance(key, Alias) else key
        if isinstance(inner, ColumnRef) and inner.display_name().lower() in delays:
            return key.display_name(), False
        if isinstance(inner, FunctionCall) and inner.name == "window" and any(
            isinstance(a, ColumnRef) and a.display_name().lower() in delays for a in walk(inner)
        ):
            return key.display_name(), True
    return None



def _is_tumbling(key: Expression) -> bool:
    inner = key.child if isinstance(key, Alias) else key
    return isinstance(inner, FunctionCall) and inner.name == "window" and \
        not is_sliding_window(inner)


def _tumbling_start(key: Expression, ctx: CompileContext) -> tuple[pl.Expr, int]:
    """The window start in microseconds as an Int64 expression, and the duration. It is
    ``(ts - offset) // duration * duration + offset`` (``//`` and ``%`` both floor), so
    the dense grouping keys a window by that index (``_dense_plan``)."""
    ts, duration, offset = _window_time(key, ctx)
    return ts - (ts - offset) % duration, duration


def _window_time(key: Expression, ctx: CompileContext, *, physical: bool = False
                 ) -> tuple[pl.Expr, int, int]:
    """A window key's time in epoch microseconds (Int64; ``physical``: the timestamp's
    own Int64 values, the same numbers without a conversion on Polars' thread pool),
    duration and offset (us)."""
    inner = key.child if isinstance(key, Alias) else key
    assert isinstance(inner, FunctionCall)
    ts = compile_expr(inner.args[0], ctx).cast(_UTC_US)
    ts = ts.to_physical() if physical else ts.dt.epoch("us")
    return ts, int(inner.param("duration_us")), int(inner.param("start_us") or 0)


def _window_struct(start_us: pl.Expr, duration_us: int) -> pl.Expr:
    return pl.struct(start_us.cast(_UTC_US).alias("start"),
                     (start_us + duration_us).cast(_UTC_US).alias("end"))


def _own_watermark(node: Aggregate) -> tuple[str, str] | None:
    """The withWatermark right below the aggregation, when it is the only one there: the
    fused task path computes its event-time statistics itself."""
    marks = [n for n in walk_plan(node.child) if isinstance(n, WithWatermark)]
    if len(marks) == 1 and marks[0] is node.child:
        return node.child.node_id, node.child.column
    return None


def _order_sensitive(node: Aggregate) -> bool:
    return any(isinstance(n, AggregateCall) and n.name in ("first", "last", "collect_list")
               for a in node.aggs for n in walk(a))
