"""Logical plans compiled to Polars lazy frames, one rule per node type.

Streaming leaves are bound by the caller (``inputs`` maps a relation id to the frame of
the current batch); everything else compiles the same for batch and streaming.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import cached_property, singledispatch
from types import MappingProxyType
from weakref import WeakKeyDictionary

import polars as pl
import pyarrow as pa

from unbounded.engine.aggregates import compile_aggregate
from unbounded.engine.ansi import cast_checked, spark_type_name
from unbounded.engine.coercion import NoCommonType, union_column_type
from unbounded.engine.context import (
    CompileContext,
    EventTimeStats,
    OutputColumn,
    fresh_columns,
    schema_frame,
)
from unbounded.engine.dtypes import arrow_schema_to_polars, polars_schema_to_spark
from unbounded.engine.expressions import cast_to, compile_expr, compile_projection
from unbounded.engine.functions import is_sliding_window
from unbounded.engine.generators import expand_generators
from unbounded.engine.udfs import apply_in_cogroups, apply_in_groups, map_in_batches
from unbounded.engine.windows import with_window_columns
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import Alias, Expression, FunctionCall
from unbounded.plan.logical import (
    Aggregate,
    BoundRelation,
    DataRelation,
    Deduplicate,
    FileRelation,
    Filter,
    FlatMapCoGroupsInPandas,
    FlatMapGroupsInPandas,
    Join,
    Limit,
    LogicalPlan,
    MapInBatches,
    Project,
    Sort,
    StreamingRelation,
    SubqueryAlias,
    Union,
    WithWatermark,
    walk_plan,
)
from unbounded.plan.types import StructField, StructType

__all__ = [
    "Bindings",
    "compile_output",
    "compile_plan",
    "empty_frame",
    "plan_columns",
    "plan_physical_schema",
    "plan_schema",
    "to_display_arrow",
]

Bindings = Mapping[str, pl.LazyFrame]


def empty_frame(schema: StructType) -> pl.LazyFrame:
    return pl.LazyFrame(schema=arrow_schema_to_polars(schema.to_arrow_schema()))


def plan_schema(plan: LogicalPlan) -> StructType:
    """The output schema of ``plan`` as users see it (names may repeat after a join),
    found by compiling it over empty inputs."""
    return _empty_output(plan).schema


def plan_columns(plan: LogicalPlan) -> tuple[OutputColumn, ...]:
    """The output columns of ``plan`` (physical names as ``compile_plan`` produces them,
    display names, qualifiers, lineage), found by compiling it over empty inputs."""
    return _empty_output(plan).columns


def plan_physical_schema(plan: LogicalPlan) -> pl.Schema:
    """The Polars schema of ``compile_plan(plan)`` over empty inputs: the schema an
    expression over ``plan``'s output compiles against (column by column as
    ``plan_columns``)."""
    return _empty_output(plan).physical


@dataclass(frozen=True, eq=False)
class _EmptyOutput:
    """What one node outputs over empty inputs, kept while the node lives. ``frame`` is
    an empty frame of ``physical``, what the node stands for when its parent is
    resolved; ``schema`` (the Spark schema) is derived on first use."""

    physical: pl.Schema
    columns: tuple[OutputColumn, ...]
    frame: pl.LazyFrame
    # The relation id of each leaf below that a compile may bind (streaming and state
    # output leaves), with the schema it was resolved with.
    bound_leaves: Mapping[str, pl.Schema]

    @cached_property
    def schema(self) -> StructType:
        spark = polars_schema_to_spark(self.physical)
        return StructType([StructField(c.name, f.dataType, f.nullable)
                           for c, f in zip(self.columns, spark.fields, strict=True)])


_empty_outputs: WeakKeyDictionary[LogicalPlan, _EmptyOutput] = WeakKeyDictionary()
_empty_outputs_lock = threading.Lock()

# Bindings that stand every child of the node being resolved by its cached empty output:
# resolving a node is one node's work, never a walk or a recompile of the plan below it.
_RESOLVED_CHILDREN: Bindings = MappingProxyType({})


def _empty_output(plan: LogicalPlan) -> _EmptyOutput:
    """``plan``'s output over empty inputs, compiled once per node (nodes are immutable;
    a join's placeholder asks again every batch) over its children's cached outputs.
    Nodes below that no one resolved yet (a plan the runtime rebuilt) are resolved first,
    from the bottom up: no recursion through a deep plan."""
    known = _empty_outputs.get(plan)
    if known is None:
        for node in _unresolved(plan):
            if node not in _empty_outputs:
                _resolve(node)
        known = _empty_outputs[plan]
    return known


def _unresolved(plan: LogicalPlan) -> list[LogicalPlan]:
    """The nodes of ``plan`` not resolved yet, each after the nodes below it."""
    order, stack = [], [plan]
    while stack:
        node = stack.pop()
        if node not in _empty_outputs:
            order.append(node)
            stack.extend(node.children())
    return order[::-1]


def _resolve(plan: LogicalPlan) -> None:
    ctx = CompileContext(pl.Schema(), batch_timestamp_us=0)
    frame = compile_plan(plan, _RESOLVED_CHILDREN, ctx)
    physical = frame.collect_schema()
    columns = _output_columns(plan, physical, ctx)
    known = _EmptyOutput(physical, columns, schema_frame(physical),
                         _bound_leaves(plan, physical))
    with _empty_outputs_lock:
        _empty_outputs[plan] = known


def _bound_leaves(plan: LogicalPlan, physical: pl.Schema) -> Mapping[str, pl.Schema]:
    if isinstance(plan, (StreamingRelation, BoundRelation)):
        return {plan.relation_id: physical}
    below = [_empty_output(c).bound_leaves for c in plan.children()]
    if len(below) == 1:
        return below[0]  # shared down a chain: no copy per node
    return {r: s for leaves in below for r, s in leaves.items()}


def compile_output(
    plan: LogicalPlan, inputs: Bindings, ctx: CompileContext
) -> tuple[pl.LazyFrame, tuple[OutputColumn, ...]]:
    """``compile_plan`` plus the output columns, remembered in ``ctx.plan_columns``.

    A rule that records no columns for its node (most pass rows through) gets its
    child's columns for every physical name the child also had: a filter or a sort keeps
    the qualifiers of its input, as in Spark.
    """
    frame, _, columns = _compile_with_schema(plan, inputs, ctx)
    return frame, columns


def _compile_with_schema(
    plan: LogicalPlan, inputs: Bindings, ctx: CompileContext
) -> tuple[pl.LazyFrame, pl.Schema, tuple[OutputColumn, ...]]:
    """``compile_output`` and the frame's schema, resolved once for both. While a parent
    is resolved over empty inputs, a child is its cached empty output."""
    if inputs is _RESOLVED_CHILDREN:
        known = _empty_output(plan)
        ctx.plan_columns[plan] = known.columns
        return known.frame, known.physical, known.columns
    memo = _compiled.get()
    if memo is None and _deeper_than(plan, _SHALLOW):
        return _compile_bottom_up(plan, inputs, ctx)
    key = (id(plan), id(inputs), id(ctx.plan_columns))
    if memo is not None and key in memo:
        ctx.plan_columns[plan] = memo[key][2]
        return memo[key]
    frame = compile_plan(plan, inputs, ctx)
    schema = _schema_of(plan, frame, inputs, ctx)
    compiled = frame, schema, _output_columns(plan, schema, ctx)
    if memo is not None:
        memo[key] = compiled
    return compiled


# A compile recurses through every node (a few Python frames each): a plan deeper than
# this is compiled from its leaves up instead, each node over its children's remembered
# frames, so a chain of hundreds of steps stays within Python's recursion limit.
_SHALLOW = 64
_Compiled = tuple[pl.LazyFrame, pl.Schema, tuple[OutputColumn, ...]]
_compiled: ContextVar[dict[tuple[int, int, int], _Compiled] | None] = ContextVar(
    "_compiled", default=None)


def _deeper_than(plan: LogicalPlan, depth: int) -> bool:
    level = [plan]
    for _ in range(depth):
        level = [c for p in level for c in p.children()]
        if not level:
            return False
    return True


def _compile_bottom_up(plan: LogicalPlan, inputs: Bindings, ctx: CompileContext) -> _Compiled:
    token = _compiled.set({})
    try:
        for node in reversed(list(walk_plan(plan))):  # children before parents
            _compile_with_schema(node, inputs, ctx)
        return _compile_with_schema(plan, inputs, ctx)
    finally:
        _compiled.reset(token)


def _schema_of(
    plan: LogicalPlan, frame: pl.LazyFrame, inputs: Bindings, ctx: CompileContext
) -> pl.Schema:
    """The schema of ``frame``, ``plan`` compiled. Polars derives it again from the
    leaves on every ask (a cost of the whole plan below, per node), so a compile that
    checks as analysis does (ANSI) and binds each input to a frame of the schema its leaf
    was resolved with takes the node's cached schema: it differs from the cached compile
    only in the rows of its leaves. A node resolved nowhere yet (a plan unpickled by a
    worker) is resolved for a batch compile only."""
    known = _empty_output(plan) if not inputs else _empty_outputs.get(plan)
    if ctx.ansi and known is not None and _bound_as_resolved(known, inputs):
        return known.physical
    return frame.collect_schema()


def _bound_as_resolved(known: _EmptyOutput, inputs: Bindings) -> bool:
    return all(inputs[r].collect_schema() == schema
               for r, schema in known.bound_leaves.items() if r in inputs)


def _output_columns(
    plan: LogicalPlan, schema: pl.Schema, ctx: CompileContext
) -> tuple[OutputColumn, ...]:
    """``plan``'s output columns once compiled to a frame of ``schema`` (the rule's, else
    inherited from its child), recorded in ``ctx.plan_columns``."""
    columns = ctx.plan_columns.get(plan)
    if columns is None or [c.physical for c in columns] != schema.names():
        columns = _inherited_columns(plan, schema.names(), ctx)
    columns = tuple(c.seen_by(plan.plan_id) for c in columns)
    ctx.plan_columns[plan] = columns
    return columns


def _inherited_columns(
    plan: LogicalPlan, names: list[str], ctx: CompileContext
) -> tuple[OutputColumn, ...]:
    children = plan.children()
    return fresh_columns(names, inherit_from=ctx.plan_columns.get(children[0], ())
                         if children else ())


def to_display_arrow(frame: pl.DataFrame, columns: tuple[OutputColumn, ...]) -> pa.Table:
    """A collected frame as users see it: physical names replaced by display names."""
    return frame.to_arrow().rename_columns([c.name for c in columns])


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
    if plan.stands_for is None:
        return bound if bound is not None else empty_frame(plan.schema)
    known = _empty_output(plan.stands_for)
    ctx.plan_columns[plan] = known.columns
    return bound if bound is not None else known.frame


@compile_plan.register
def _(plan: DataRelation, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frame = pl.from_arrow(plan.table)
    assert isinstance(frame, pl.DataFrame)
    return frame.lazy()


@compile_plan.register
def _(plan: FileRelation, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    from unbounded.files.formats import scan_files

    if ctx.relist_files and plan.roots:
        return _static_files.read(plan)
    return scan_files(plan.format, list(plan.paths), plan.schema, dict(plan.options))


class _StaticFiles:
    """The static side of stream-static joins, read once per set of files: every batch
    lists the folders again, and reads them again only when a file was added, removed
    or rewritten (path, size and modification time)."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self.frames: dict[tuple[object, ...], pl.DataFrame] = {}
        self.lock = threading.Lock()

    def read(self, plan: FileRelation) -> pl.LazyFrame:
        from unbounded.files.formats import scan_files
        from unbounded.files.listing import list_data_files

        files = [f for root in plan.roots for f in list_data_files(root.removeprefix("file://"))]
        key = (plan.format, plan.schema, plan.options,
               tuple((f.path, f.size, f.mtime_ms) for f in files))
        with self.lock:
            cached = self.frames.get(key)
        if cached is None:
            cached = scan_files(plan.format, [f.path for f in files], plan.schema,
                                dict(plan.options)).collect()
            with self.lock:
                if len(self.frames) >= self.capacity:
                    self.frames.pop(next(iter(self.frames)))
                self.frames[key] = cached
        return cached.lazy()


_static_files = _StaticFiles()


def _child(plan: LogicalPlan, inputs: Bindings, ctx: CompileContext) -> tuple[
    pl.LazyFrame, CompileContext
]:
    """A child compiled, and a context over its output (its columns and qualifiers).
    Rules compile children through here so qualifiers reach the nodes above."""
    frame, schema, columns = _compile_with_schema(plan, inputs, ctx)
    return frame, ctx.with_schema(schema, columns)


@compile_plan.register
def _(plan: Project, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frame, cctx = _child(plan.child, inputs, ctx)
    frame, exprs, cctx = with_window_columns(frame, plan.exprs, cctx)
    selected, columns = compile_projection(exprs, cctx)
    ctx.plan_columns[plan] = columns
    out = frame.select(selected)
    return expand_generators(_explode_sliding_windows(out, exprs, columns), exprs)


def _explode_sliding_windows(frame: pl.LazyFrame, exprs: tuple[Expression, ...],
                             columns: tuple[OutputColumn, ...]) -> pl.LazyFrame:
    """Each row once per sliding window it falls in. A window's column is found by its
    name, the last of that name (``*`` before it may expand to any number of columns)."""
    for e in exprs:
        inner = e.child if isinstance(e, Alias) else e
        if isinstance(inner, FunctionCall) and is_sliding_window(inner):
            named = [c for c in columns if c.name == e.display_name()]
            frame = frame.explode(named[-1].physical)
    return frame


@compile_plan.register
def _(plan: SubqueryAlias, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frame, columns = compile_output(plan.child, inputs, ctx)
    qualifier = frozenset({plan.alias.lower()})
    ctx.plan_columns[plan] = tuple(replace(c, qualifiers=qualifier) for c in columns)
    return frame


@compile_plan.register
def _(plan: Join, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    left, _ = compile_output(plan.left, inputs, ctx)
    right, _ = compile_output(plan.right, inputs, ctx)
    # Imported when a plan has a join (start-up, issue 15).
    from unbounded.engine.joins import join_frames

    return join_frames(plan, left, right, ctx)


@compile_plan.register
def _(plan: Filter, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frame, cctx = _child(plan.child, inputs, ctx)
    return frame.filter(compile_expr(plan.condition, cctx).fill_null(False))


@compile_plan.register
def _(plan: WithWatermark, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    """Passes rows through; in a batch run, records the event-time range for the runtime."""
    frame, cctx = _child(plan.child, inputs, ctx)
    if not ctx.observe_event_time:
        return frame
    materialized = frame.collect()
    column = pl.col(cctx.resolve(plan.column))
    stats = materialized.select(
        column.min().dt.epoch("us").alias("mn"), column.max().dt.epoch("us").alias("mx"),
        column.dt.epoch("us").cast(pl.Int128).sum().alias("sm"), column.count().alias("n"),
    ).row(0)
    seen = EventTimeStats(stats[0], stats[1], int(stats[2] or 0), int(stats[3]))
    ctx.event_time.setdefault(plan.node_id, EventTimeStats()).merge(seen)
    return materialized.lazy()


@compile_plan.register
def _(plan: Union, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frames = [compile_output(p, inputs, ctx)[0] for p in plan.inputs]
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
        aligned.append(f.rename(dict(zip(names, first.names(), strict=True))))
    target = _union_schema([f.collect_schema() for f in aligned], ctx.ansi)
    return pl.concat([_cast_columns(f, target, ctx) for f in aligned], how="vertical")


def _cast_columns(frame: pl.LazyFrame, target: pl.Schema, ctx: CompileContext
                  ) -> pl.LazyFrame:
    """``frame`` in ``target``'s types, each column cast as Spark casts it (a timestamp
    into a string is ``2024-03-05 10:00:00``, a date into a timestamp is midnight in the
    session zone, a string that is no number fails under ANSI)."""
    source = frame.collect_schema()
    if source == target:
        return frame
    return frame.select(_cast_column(name, source[name], dtype, ctx).alias(name)
                        for name, dtype in target.items())


def _cast_column(name: str, source: pl.DataType, dtype: pl.DataType, ctx: CompileContext
                 ) -> pl.Expr:
    column = pl.col(name)
    if source == dtype:
        return column
    if source == pl.Null or not _atomic_type(source) or not _atomic_type(dtype):
        return column.cast(dtype)
    spark = polars_schema_to_spark(pl.Schema({name: dtype})).fields[0].dataType
    cast = cast_to(column, source, spark, ansi=ctx.ansi, zone=ctx.time_zone)
    if not ctx.ansi or dtype == pl.String:
        return cast
    return cast_checked(cast, column, source, spark, dtype)


def _atomic_type(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype.is_temporal() or dtype in (pl.String, pl.Boolean)


def _union_schema(schemas: list[pl.Schema], ansi: bool) -> pl.Schema:
    """Each UNION column's type (``engine/coercion.py``: numbers widen, strings by the
    ANSI mode, else the first input's type that is not NULL), or Spark's
    INCOMPATIBLE_COLUMN_TYPE."""
    out = {}
    for i, (name, dtype) in enumerate(schemas[0].items()):
        types = [list(s.values())[i] for s in schemas]
        try:
            out[name] = union_column_type(types, ansi=ansi) or next(
                (t for t in types if t != pl.Null), dtype)
        except NoCommonType:
            raise _incompatible_column(i, types, ansi) from None
    return pl.Schema(out)


def _no_common_type(types: list[pl.DataType], ansi: bool) -> bool:
    try:
        union_column_type(types, ansi=ansi)
    except NoCommonType:
        return True
    return False


def _ordinal(n: int) -> str:
    return {1: "first", 2: "second", 3: "third"}.get(n, f"{n}th")


def _incompatible_column(index: int, types: list[pl.DataType], ansi: bool
                         ) -> AnalysisException:
    other = next(k for k in range(1, len(types)) if _no_common_type(types[:k + 1], ansi))
    return AnalysisException(
        f"[INCOMPATIBLE_COLUMN_TYPE] UNION can only be performed on tables with compatible "
        f"column types. The {_ordinal(index + 1)} column of the {_ordinal(other + 1)} table "
        f'is "{spark_type_name(types[other])}" type which is not compatible with '
        f'"{spark_type_name(types[0])}" at the same column of the first table.. '
        "SQLSTATE: 42825", error_class="INCOMPATIBLE_COLUMN_TYPE")


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
    return _child(plan.child, inputs, ctx)[0].head(plan.n)


def _user_frame(plan: LogicalPlan, inputs: Bindings, ctx: CompileContext) -> tuple[
    pl.LazyFrame, CompileContext, list[str]
]:
    """A child of user code: its frame, a context over it, and its column names as the
    user code sees them (display names, not the unique physical ones)."""
    frame, cctx = _child(plan, inputs, ctx)
    return frame, cctx, [c.name for c in cctx.columns]


def _record_fresh_columns(plan: LogicalPlan, ctx: CompileContext, schema: StructType) -> None:
    ctx.plan_columns[plan] = fresh_columns(schema.names)


@compile_plan.register
def _(plan: MapInBatches, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frame, _, names = _user_frame(plan.child, inputs, ctx)
    _record_fresh_columns(plan, ctx, plan.schema)
    return map_in_batches(frame, names, plan.function, plan.schema)


@compile_plan.register
def _(plan: FlatMapGroupsInPandas, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    frame, cctx, names = _user_frame(plan.child, inputs, ctx)
    keys = [compile_expr(k, cctx) for k in plan.keys]
    _record_fresh_columns(plan, ctx, plan.schema)
    return apply_in_groups(frame, names, keys, plan.function, plan.schema)


@compile_plan.register
def _(plan: FlatMapCoGroupsInPandas, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    left, lctx, left_names = _user_frame(plan.left, inputs, ctx)
    right, rctx, right_names = _user_frame(plan.right, inputs, ctx)
    keys = ([compile_expr(k, lctx) for k in plan.left_keys],
            [compile_expr(k, rctx) for k in plan.right_keys])
    _record_fresh_columns(plan, ctx, plan.schema)
    return apply_in_cogroups((left, right), (left_names, right_names), keys, plan.function,
                             plan.schema)
