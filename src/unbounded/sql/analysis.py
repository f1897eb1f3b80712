"""Eager analysis: a DataFrame's plan is resolved when the DataFrame is built.

PySpark's analyzer runs at each transformation, so ``df.select("nope")`` fails at that
line, not later inside an action or a streaming query's thread. Resolving a plan here is
deriving its output (``plan_columns``: cached per immutable node and derived from its
children's cached outputs, so each call compiles its own node only), then evaluating the
new node's own expressions over an empty frame of its input's schema: Polars finds some
type errors only when it runs (``"a" - "b"``, ``upper`` of a number). A Polars error met
on the way is a type error in the user's expressions; it is reported as Spark's
``DATATYPE_MISMATCH`` naming the expression and its input types, never as Polars' text
or plan. Expressions holding a Python UDF are not evaluated: user code runs only when an
action does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import polars as pl

from unbounded.engine.aggregates import compile_aggregate_call
from unbounded.engine.context import CompileContext
from unbounded.engine.dtypes import polars_schema_to_spark
from unbounded.engine.expressions import compile_expr
from unbounded.engine.plans import plan_columns, plan_physical_schema
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import (
    AggregateCall,
    Alias,
    ColumnRef,
    Expression,
    PythonUDF,
    Star,
    contains_node,
)
from unbounded.plan.logical import Aggregate, Filter, LogicalPlan, Project

__all__ = ["analyze", "engine_error"]


def analyze(plan: LogicalPlan) -> None:
    """Resolve ``plan`` now; raise Spark's AnalysisException when it cannot be."""
    if isinstance(plan, Filter):
        _check_filter(plan, _input_context(plan))
    try:
        plan_columns(plan)
    except pl.exceptions.PolarsError as err:
        raise engine_error(plan, err) from None
    if isinstance(plan, (Project, Filter, Aggregate)):
        culprit = _failing_expression(plan, _input_context(plan))
        if culprit is not None:
            raise _mismatch(*culprit)


def engine_error(plan: LogicalPlan, err: Exception) -> AnalysisException:
    """A Polars error met while resolving or running ``plan`` as Spark's error: the
    expression that fails and its input types when it can be found."""
    culprit = _failing_expression(plan, _input_context(plan))
    if culprit is None:
        return AnalysisException(
            f"[DATATYPE_MISMATCH] Cannot resolve {plan.describe()} due to data type "
            f"mismatch: {_first_line(err)}.", error_class="DATATYPE_MISMATCH")
    return _mismatch(*culprit)


def _mismatch(node: Expression, input_types: list[str]) -> AnalysisException:
    shown = ", ".join(f'"{t}"' for t in input_types)
    return AnalysisException(
        f'[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve "{node.display_name()}" '
        f"due to data type mismatch: its inputs have the types ({shown}), which it does not "
        "take. Cast them with .cast(...) to the type it expects.",
        error_class="DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE")


def _check_filter(plan: Filter, ctx: CompileContext | None) -> None:
    if ctx is None:
        return
    try:
        dtype = ctx.dtype_of(compile_expr(plan.condition, ctx))
    except pl.exceptions.PolarsError:
        return  # a type error inside the condition: reported as such below
    if dtype not in (pl.Boolean, pl.Null):
        name, shown = plan.condition.display_name(), _spark_type(dtype)
        raise AnalysisException(
            f'[DATATYPE_MISMATCH.FILTER_NOT_BOOLEAN] Cannot resolve "{name}" due to data type '
            f'mismatch: Filter expression "{name}" of type "{shown}" is not a boolean.',
            error_class="DATATYPE_MISMATCH.FILTER_NOT_BOOLEAN")


def _input_context(plan: LogicalPlan) -> CompileContext | None:
    """The compile context of a one-input node's input (None for joins and leaves),
    from the input's cached schema and columns: what the node compiles against."""
    children = plan.children()
    if len(children) != 1:
        return None
    # ANSI off: analysis checks types; a bad literal value fails when the action runs.
    return CompileContext(plan_physical_schema(children[0]), 0,
                          columns=plan_columns(children[0]), ansi=False)


def _failing_expression(
    plan: LogicalPlan, ctx: CompileContext | None
) -> tuple[Expression, list[str]] | None:
    """The innermost expression of ``plan`` that fails over an empty input, with the
    Spark types of its inputs; None when no single expression is to blame."""
    if ctx is None:
        return None
    # A bare reference cannot fail once the node resolved; a projection has many.
    tops = [e for e in _expressions(plan)
            if not isinstance(e, ColumnRef) and not contains_node(e, PythonUDF)]
    if _all_compile(tops, ctx):
        return None
    for top in tops:
        for node in _post_order(top):
            if not _compiles(node, ctx):
                return node, [_spark_type(_dtype(c, ctx)) for c in node.children()
                              if not isinstance(c, Star)]
    return None


def _all_compile(exprs: list[Expression], ctx: CompileContext) -> bool:
    """Whether every expression runs over an empty input: one Polars query for all."""
    if not exprs:
        return True
    compiled = []
    for i, e in enumerate(exprs):
        try:
            compiled.append(_compile(e, ctx).alias(f"_t{i}"))
        except (AnalysisException, pl.exceptions.PolarsError):
            return False
    try:
        ctx.empty_input.select(compiled).collect()
    except pl.exceptions.PolarsError:
        return False
    return True


def _compiles(node: Expression, ctx: CompileContext) -> bool:
    try:
        ctx.empty_input.select(_compile(node, ctx).alias("_t")).collect()
    except pl.exceptions.PolarsError:
        return False
    except AnalysisException:
        return True  # not compilable alone (a star, a window): not the type error
    return True


def _compile(node: Expression, ctx: CompileContext) -> pl.Expr:
    # An aggregate's output is an aliased call (``count(1) AS n``): compiled as its call,
    # so that a groupBy that resolves is checked in one query (``_all_compile``) rather
    # than node by node; the name does not matter, each check renames it.
    if isinstance(node, Alias) and isinstance(node.child, AggregateCall):
        node = node.child
    if isinstance(node, AggregateCall):
        return compile_aggregate_call(node, ctx)
    return compile_expr(node, ctx)


def _dtype(node: Expression, ctx: CompileContext) -> pl.DataType:
    return ctx.dtype_of(_compile(node, ctx))


def _expressions(plan: LogicalPlan) -> Iterator[Expression]:
    for f in dataclasses.fields(plan):
        value = getattr(plan, f.name)
        values = value if isinstance(value, tuple) else (value,)
        yield from (v for v in values if isinstance(v, Expression))


def _post_order(expr: Expression) -> Iterator[Expression]:
    for child in expr.children():
        yield from _post_order(child)
    yield expr


def _spark_type(dtype: pl.DataType) -> str:
    return polars_schema_to_spark(pl.Schema({"x": dtype})).fields[0].dataType.simpleString()


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
