"""Logical plans compiled to Polars lazy frames, one rule per node type.

Streaming leaves are bound by the caller (``inputs`` maps a relation id to the frame of
the current batch); everything else compiles the same for batch and streaming.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import singledispatch

import polars as pl

from unbounded.engine.aggregates import compile_aggregate
from unbounded.engine.context import CompileContext, EventTimeStats
from unbounded.engine.dtypes import arrow_schema_to_polars, polars_schema_to_spark
from unbounded.engine.expressions import compile_expr, expand_star
from unbounded.engine.functions import is_sliding_window
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import Alias, Expression, FunctionCall
from unbounded.plan.logical import (
    Aggregate,
    BoundRelation,
    DataRelation,
    Deduplicate,
    FileRelation,
    Filter,
    Limit,
    LogicalPlan,
    Project,
    Sort,
    StreamingRelation,
    Union,
    WithWatermark,
)
from unbounded.plan.types import StructType

__all__ = ["Bindings", "compile_plan", "empty_frame", "plan_schema"]

Bindings = Mapping[str, pl.LazyFrame]


def empty_frame(schema: StructType) -> pl.LazyFrame:
    return pl.LazyFrame(schema=arrow_schema_to_polars(schema.to_arrow_schema()))


def plan_schema(plan: LogicalPlan) -> StructType:
    """The output schema of ``plan``, found by compiling it over empty inputs."""
    ctx = CompileContext(pl.Schema(), batch_timestamp_us=0)
    frame = compile_plan(plan, _EmptyBindings(), ctx)
    return polars_schema_to_spark(frame.collect_schema())


class _EmptyBindings(dict[str, pl.LazyFrame]):
    def __missing__(self, key: str) -> pl.LazyFrame:
        raise KeyError(key)


@singledispatch
def compile_plan(plan: LogicalPlan, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    raise AnalysisException(
        f"The plan node {type(plan).__name__} is not supported by the Polars engine.",
        error_class="UNSUPPORTED_PLAN",
    )


@compile_plan.register
def _(plan: StreamingRelation, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    bound = inputs.get(plan.relation_id)
    return bound if bound is not None else empty_frame(plan.schema)


@compile_plan.register
def _(plan: BoundRelation, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    bound = inputs.get(plan.relation_id)
    return bound if bound is not None else empty_frame(plan.schema)


@compile_plan.register
def _(plan: DataRelation, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frame = pl.from_arrow(plan.table)
    assert isinstance(frame, pl.DataFrame)
    return frame.lazy()


@compile_plan.register
def _(plan: FileRelation, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    from unbounded.files.formats import scan_files

    return scan_files(plan.format, list(plan.paths), plan.schema, dict(plan.options))


def _child(plan: LogicalPlan, inputs: Bindings, ctx: CompileContext) -> tuple[
    pl.LazyFrame, CompileContext
]:
    frame = compile_plan(plan, inputs, ctx)
    return frame, ctx.with_schema(frame.collect_schema())


@compile_plan.register
def _(plan: Project, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frame, cctx = _child(plan.child, inputs, ctx)
    out = frame.select(expand_star(plan.exprs, cctx))
    return _explode_sliding_windows(out, plan.exprs)


def _explode_sliding_windows(frame: pl.LazyFrame, exprs: tuple[Expression, ...]) -> pl.LazyFrame:
    for e in exprs:
        inner = e.child if isinstance(e, Alias) else e
        if isinstance(inner, FunctionCall) and is_sliding_window(inner):
            frame = frame.explode(e.display_name())
    return frame


@compile_plan.register
def _(plan: Filter, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frame, cctx = _child(plan.child, inputs, ctx)
    return frame.filter(compile_expr(plan.condition, cctx).fill_null(False))


@compile_plan.register
def _(plan: WithWatermark, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    """Passes rows through; in a batch run, records the event-time range for the runtime."""
    frame = compile_plan(plan.child, inputs, ctx)
    if not ctx.observe_event_time:
        return frame
    materialized = frame.collect()
    column = pl.col(CompileContext(materialized.schema, 0).resolve(plan.column))
    stats = materialized.select(
        column.min().dt.epoch("us").alias("mn"), column.max().dt.epoch("us").alias("mx"),
        column.dt.epoch("us").sum().alias("sm"), column.count().alias("n"),
    ).row(0)
    seen = EventTimeStats(stats[0], stats[1], int(stats[2] or 0), int(stats[3]))
    ctx.event_time.setdefault(plan.node_id, EventTimeStats()).merge(seen)
    return materialized.lazy()


@compile_plan.register
def _(plan: Union, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frames = [compile_plan(p, inputs, ctx) for p in plan.inputs]
    first = frames[0].collect_schema()
    if plan.by_name:
        return pl.concat(frames, how="diagonal_relaxed" if plan.allow_missing else "vertical")
    aligned = [frames[0]]
    for f in frames[1:]:
        names = f.collect_schema().names()
        if len(names) != len(first):
            raise AnalysisException(
                f"[NUM_COLUMNS_MISMATCH] UNION can only be performed on inputs with the same "
                f"number of columns, but the first input has {len(first)} columns and another "
                f"has {len(names)}.", error_class="NUM_COLUMNS_MISMATCH")
        renamed = f.rename(dict(zip(names, first.names(), strict=True)))
        aligned.append(renamed.cast(dict(first)))  # type: ignore[arg-type]
    return pl.concat(aligned, how="vertical")


@compile_plan.register
def _(plan: Aggregate, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frame, cctx = _child(plan.child, inputs, ctx)
    return compile_aggregate(frame, cctx, plan.keys, plan.aggs)


@compile_plan.register
def _(plan: Deduplicate, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frame, cctx = _child(plan.child, inputs, ctx)
    subset = [cctx.resolve(k) for k in plan.keys] if plan.keys else None
    return frame.unique(subset=subset, keep="first", maintain_order=True)


@compile_plan.register
def _(plan: Sort, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frame, cctx = _child(plan.child, inputs, ctx)
    by = [compile_expr(o.child, cctx) for o in plan.orders]
    descending = [not o.ascending for o in plan.orders]
    nulls_last = [not (o.nulls_first if o.nulls_first is not None else o.ascending)
                  for o in plan.orders]
    return frame.sort(by, descending=descending, nulls_last=nulls_last, maintain_order=True)


@compile_plan.register
def _(plan: Limit, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    return compile_plan(plan.child, inputs, ctx).head(plan.n)
