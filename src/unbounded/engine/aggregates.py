"""Aggregate functions (count, sum, avg, ...) compiled to Polars group-by expressions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import polars as pl

from unbounded.engine.ansi import sum_checked
from unbounded.engine.coercion import STRING_AS_DOUBLE_AGGREGATES
from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import compile_expr, compile_named, implicit_cast
from unbounded.engine.functions import is_sliding_window
from unbounded.engine.sessions import assign_sessions, find_session_window, session_bounds
from unbounded.errors import AnalysisException
from unbounded.plan import types as T
from unbounded.plan.expressions import (
    AggregateCall,
    Alias,
    ColumnRef,
    Expression,
    FunctionCall,
    Literal,
    PythonUDF,
    Star,
    walk,
)

__all__ = ["AGGREGATES", "compile_agg_args", "compile_aggregate", "compile_aggregate_call"]

AggBuilder = Callable[[list[pl.Expr], AggregateCall], pl.Expr]


def _count(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    if not args:
        return pl.len().cast(pl.Int64)
    if call.distinct:
        return pl.struct(args).drop_nulls().n_unique().cast(pl.Int64) if len(args) > 1 \
            else args[0].drop_nulls().n_unique().cast(pl.Int64)
    return args[0].count().cast(pl.Int64)


def _sum(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    value = args[0].unique() if call.distinct else args[0]
    return pl.when(value.count() > 0).then(value.sum()).otherwise(None)


def _ansi_sum(call: AggregateCall, arg: pl.Expr, ctx: CompileContext) -> pl.Expr:
    """ANSI mode: a bigint sum that overflows raises ARITHMETIC_OVERFLOW (without ANSI it
    wraps, as Spark's does)."""
    result = _sum([arg], call)
    if not ctx.ansi or ctx.dtype_of(arg) != pl.Int64:
        return result
    return sum_checked(arg.unique() if call.distinct else arg, result)


def _widen_sum_input(arg: pl.Expr, ctx: CompileContext) -> pl.Expr:
    """Spark sums integers as bigint and floats as double (no cast when already so)."""
    dtype = ctx.dtype_of(arg)
    target = pl.Int64 if dtype.is_integer() else pl.Float64 if dtype.is_float() else None
    return arg if target is None or dtype == target else arg.cast(target)


def _by(pick: str) -> AggBuilder:
    """``max_by``/``min_by``: the value at the first row whose ordering value is the
    largest (smallest); rows whose ordering value is NULL are skipped, as in Spark."""
    def build(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
        index = args[1].arg_max() if pick == "max" else args[1].arg_min()
        return args[0].get(index, null_on_oob=True)

    return build


def _percentile_approx(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    """The smallest value with at least ``p`` of the non-NULL values at or below it (Spark's
    answer, exact while the group is smaller than ``accuracy``)."""
    values = args[0].drop_nulls().sort()
    percentages = call.args[1]
    if not isinstance(percentages, Literal):
        raise AnalysisException("percentile_approx needs a literal percentage (or a list).",
                                error_class="NON_FOLDABLE_INPUT")
    ps = percentages.value
    picks = [_nth_percentile(values, float(p)) for p in (ps if isinstance(ps, list) else [ps])]
    return pl.concat_list(picks) if isinstance(ps, list) else picks[0]


def _nth_percentile(values: pl.Expr, p: float) -> pl.Expr:
    position = (values.len().cast(pl.Float64) * p).ceil().cast(pl.Int64) - 1
    return values.get(pl.max_horizontal(position, pl.lit(0, dtype=pl.Int64)), null_on_oob=True)


AGGREGATES: dict[str, AggBuilder] = {
    "count": _count,
    "sum": _sum,
    "avg": lambda a, c: a[0].cast(pl.Float64).mean(),
    "mean": lambda a, c: a[0].cast(pl.Float64).mean(),
    "min": lambda a, c: a[0].min(),
    "max": lambda a, c: a[0].max(),
    "first": lambda a, c: a[0].drop_nulls().first() if c.distinct else a[0].first(),
    "last": lambda a, c: a[0].drop_nulls().last() if c.distinct else a[0].last(),
    "count_distinct": lambda a, c: _count(a, AggregateCall("count", (), True)),
    "approx_count_distinct": lambda a, c: a[0].drop_nulls().n_unique().cast(pl.Int64),
    # implode: one list per group, also without groupBy (a select) and over a window.
    "collect_list": lambda a, c: a[0].drop_nulls().implode(),
    "collect_set": lambda a, c: a[0].drop_nulls().unique(maintain_order=True).implode(),
    "stddev": lambda a, c: a[0].cast(pl.Float64).std(),
    "stddev_samp": lambda a, c: a[0].cast(pl.Float64).std(),
    "variance": lambda a, c: a[0].cast(pl.Float64).var(),
    "var_samp": lambda a, c: a[0].cast(pl.Float64).var(),
    "max_by": _by("max"),
    "min_by": _by("min"),
    "percentile_approx": _percentile_approx,
    "approx_percentile": _percentile_approx,
}


def compile_agg_args(call: AggregateCall, ctx: CompileContext) -> list[pl.Expr]:
    """The column arguments of an aggregate, one value per input row, typed as Spark
    aggregates them; every engine path (batch, streaming, window) compiles them here.

    A constant argument (``count(lit(1))``, ``sum(lit(2) * 3)``) is repeated once per
    row: Polars aggregates a bare literal as a single value, so ``count`` would be 1 and
    ``sum`` the constant itself, where Spark counts and sums every row. A column
    argument is left as it is, so the common case costs nothing extra.
    """
    exprs = [a for a in call.args if not isinstance(a, Star)]
    args = [_per_row(compile_expr(e, ctx), e) for e in exprs]
    if args and call.name in STRING_AS_DOUBLE_AGGREGATES and ctx.dtype_of(args[0]) == pl.String:
        args[0] = implicit_cast(args[0], T.DoubleType(), ctx)  # Spark: sum('2') is 2.0
    if call.name == "sum":
        args[0] = _widen_sum_input(args[0], ctx)
    return args


def _per_row(arg: pl.Expr, expr: Expression) -> pl.Expr:
    reads_rows = any(isinstance(n, (ColumnRef, Star)) for n in walk(expr))
    return arg if reads_rows else pl.repeat(arg, pl.len())


def compile_aggregate_call(call: AggregateCall, ctx: CompileContext) -> pl.Expr:
    builder = AGGREGATES.get(call.name)
    if builder is None:
        raise AnalysisException(
            f"Unknown aggregate function {call.name!r}; supported: {', '.join(AGGREGATES)}.",
            error_class="UNRESOLVED_ROUTINE",
        )
    args = compile_agg_args(call, ctx)
    if call.name == "sum" or (call.name == "try_sum" and not ctx.dtype_of(args[0]).is_integer()):
        return _ansi_sum(replace(call, name="sum"), _widen_sum_input(args[0], ctx), ctx)
    if call.name == "max" and ctx.dtype_of(args[0]).is_float():
        return args[0].nan_max()  # Spark orders NaN above every number; Polars' max skips it
    return builder(args, call)


def _compile_agg_output(expr: Expression, ctx: CompileContext) -> pl.Expr:
    """An output column of an aggregation: an aggregate call, possibly inside arithmetic."""
    inner = expr.child if isinstance(expr, Alias) else expr
    if isinstance(inner, AggregateCall):
        return compile_aggregate_call(inner, ctx).alias(expr.display_name())
    if isinstance(inner, PythonUDF) and inner.is_aggregate:  # a grouped-agg pandas UDF
        return compile_expr(inner, ctx).alias(expr.display_name())
    if not any(isinstance(n, AggregateCall) for n in walk(inner)):
        raise AnalysisException(
            f"[MISSING_AGGREGATION] The expression {expr.display_name()} is neither grouped "
            "nor aggregated. Add it to groupBy(...) or wrap it in an aggregate function.",
            error_class="MISSING_AGGREGATION",
        )
    raise AnalysisException(  # compile_aggregate computes these after the aggregation
        f"Expressions over aggregates ({expr.display_name()}) are not supported here; "
        "compute them in a select(...) after agg(...).",
        error_class="UNSUPPORTED_EXPRESSION",
    )


_AGG_COLUMN = "__unbounded_agg"


def _over_aggregates(expr: Expression) -> bool:
    """An output that computes over aggregates (``sum(x) / count(x)``), not one itself."""
    inner = expr.child if isinstance(expr, Alias) else expr
    if isinstance(inner, (AggregateCall, PythonUDF)):
        return False
    nodes = list(walk(inner))  # a constant (lit("count")) is an output of its own too
    return any(isinstance(n, AggregateCall) for n in nodes) or not any(
        isinstance(n, ColumnRef) for n in nodes)


def _lift_aggregates(expr: Expression, lifted: dict[str, Alias]) -> Expression:
    """``expr`` with each aggregate call replaced by a column that the aggregation
    computes first (recorded in ``lifted``, equal calls once), as Spark projects over
    an aggregate's results."""
    if isinstance(expr, AggregateCall):
        name = next((n for n, a in lifted.items() if a.child == expr),
                    f"{_AGG_COLUMN}{len(lifted)}")
        lifted[name] = Alias(expr, name)
        return ColumnRef(name)
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(expr):  # type: ignore[arg-type]
        value = getattr(expr, f.name)
        if isinstance(value, Expression):
            changes[f.name] = _lift_aggregates(value, lifted)
        elif isinstance(value, tuple) and value and all(isinstance(v, Expression)
                                                        for v in value):
            changes[f.name] = tuple(_lift_aggregates(v, lifted) for v in value)
    return dataclasses.replace(expr, **changes) if changes else expr  # type: ignore[type-var]


def _aggregate_then_project(
    grouped: Callable[[list[pl.Expr]], pl.LazyFrame], ctx: CompileContext,
    key_names: list[str], aggs: tuple[Expression, ...],
) -> pl.LazyFrame:
    """The aggregation of the plain outputs and of every aggregate the derived ones use,
    then the outputs in order, the derived ones computed over those columns."""
    lifted: dict[str, Alias] = {}
    derived = {i: _lift_aggregates(a.child if isinstance(a, Alias) else a, lifted)
               for i, a in enumerate(aggs) if _over_aggregates(a)}
    plain = [_compile_agg_output(a, ctx) for i, a in enumerate(aggs) if i not in derived]
    frame = grouped(plain + [_compile_agg_output(a, ctx) for a in lifted.values()])
    after = ctx.with_schema(frame.collect_schema())
    outputs = [compile_expr(derived[i], after).alias(a.display_name()) if i in derived
               else pl.col(a.display_name()) for i, a in enumerate(aggs)]
    return frame.select([*(pl.col(k) for k in key_names), *outputs])


def compile_aggregate(
    frame: pl.LazyFrame,
    ctx: CompileContext,
    keys: tuple[Expression, ...],
    aggs: tuple[Expression, ...],
) -> pl.LazyFrame:
    """Group ``frame`` by ``keys`` (sliding windows exploded first) and aggregate."""
    if not keys:
        if any(_over_aggregates(a) for a in aggs):
            return _aggregate_then_project(frame.select, ctx, [], aggs)
        return frame.select([_compile_agg_output(a, ctx) for a in aggs])
    key_names = [k.display_name() for k in keys]
    session = find_session_window(keys)
    if session is not None:
        return _compile_session_aggregate(frame, ctx, keys, aggs, session)
    keyed = frame.with_columns([compile_named(k, ctx) for k in keys])
    for k in keys:
        inner = k.child if isinstance(k, Alias) else k
        if isinstance(inner, FunctionCall) and is_sliding_window(inner):
            keyed = keyed.explode(k.display_name())
        elif isinstance(inner, FunctionCall) and inner.name == "window":
            # Spark filters out rows whose event time is NULL: no {NULL, NULL} window.
            keyed = keyed.filter(pl.col(k.display_name()).struct.field("start").is_not_null())
    kctx = ctx.with_schema(keyed.collect_schema())
    if any(_over_aggregates(a) for a in aggs):
        by_keys = keyed.group_by(key_names, maintain_order=True)
        return _aggregate_then_project(by_keys.agg, kctx, key_names, aggs)
    outputs = [_compile_agg_output(a, kctx) for a in aggs]
    return keyed.group_by(key_names, maintain_order=True).agg(outputs)


def _compile_session_aggregate(
    frame: pl.LazyFrame,
    ctx: CompileContext,
    keys: tuple[Expression, ...],
    aggs: tuple[Expression, ...],
    session: tuple[Expression, FunctionCall],
) -> pl.LazyFrame:
    """Group by merged session windows (``engine/sessions.py``) and the other keys."""
    key, call = session
    others = [k for k in keys if k is not key]
    bounds = session_bounds(call, ctx)
    # Bounds first: a key may shadow an input column the session window reads.
    keyed = frame.with_columns(bounds.exprs).with_columns([compile_named(k, ctx) for k in others])
    keyed = assign_sessions(keyed, [k.display_name() for k in others], key.display_name(),
                            bounds.dtype)
    kctx = ctx.with_schema(keyed.collect_schema())
    outputs = [_compile_agg_output(a, kctx) for a in aggs]
    return keyed.group_by([k.display_name() for k in keys], maintain_order=True).agg(outputs)


# Statistical, boolean and exact-percentile aggregates: importing them adds their builders.
# struct_functions (try_cast, update_fields) is scalar; it is imported here because every
# plan compile imports this module (its place is functions.py's family list).
from unbounded.engine import aggregate_functions, struct_functions  # noqa: E402, F401
