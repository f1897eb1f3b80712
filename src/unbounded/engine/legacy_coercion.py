"""Spark's non-ANSI implicit casts (``spark.sql.ansi.enabled=false``), inserted into a
plan's expressions where their result types differ from ANSI's.

Spark's analyzer rewrites ``'2' + i`` into ``CAST('2' AS DOUBLE) + i`` with the session's
rules when a DataFrame is built; the analysed plan then has one type whatever runs it.
The engine compiles under ANSI's rules, so for a non-ANSI session the sql layer passes each
new plan node through :func:`with_legacy_casts`, which writes those casts in explicitly
(the rules, as types, are in ``engine/coercion.py``). An expression that gained a cast
keeps its name: a top-level one is aliased to the name it had.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import polars as pl

from unbounded.engine.coercion import (
    LEGACY_COMMON_TYPE_FUNCTIONS,
    NoCommonType,
    data_diff_types,
    legacy_binary_types,
    legacy_common_type,
    legacy_mix_fails,
    map_diff_types,
    union_column_type,
)
from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import compile_expr
from unbounded.engine.plans import plan_columns, plan_physical_schema
from unbounded.errors import AnalysisException
from unbounded.plan import types as T
from unbounded.plan.expressions import (
    Alias,
    BinaryOp,
    CaseWhen,
    Cast,
    ColumnRef,
    Expression,
    FunctionCall,
    In,
    LambdaFunction,
    Star,
)
from unbounded.plan.logical import Aggregate, Filter, LogicalPlan, Project, Sort, Union

__all__ = ["map_fields", "with_legacy_casts"]

N = TypeVar("N")

# A node -> what it became, None for itself (a value never holds its own key alive).
_done: WeakKeyDictionary[LogicalPlan, LogicalPlan | None] = WeakKeyDictionary()


def with_legacy_casts(plan: LogicalPlan) -> LogicalPlan:
    """``plan`` with non-ANSI casts written into its nodes' expressions, children
    first; each node is rewritten once (a node already seen maps to its rewrite)."""
    if plan in _done:
        return _done[plan] or plan
    rebuilt = map_fields(plan, LogicalPlan, with_legacy_casts)
    if isinstance(rebuilt, (Project, Filter, Aggregate, Sort)):
        rebuilt = _rewrite_node(rebuilt)
    elif isinstance(rebuilt, Union) and not rebuilt.by_name:
        rebuilt = _union_strings(rebuilt)
    _done[plan] = None if rebuilt is plan else rebuilt
    _done[rebuilt] = None
    return rebuilt


def _rewrite_node(plan: LogicalPlan) -> LogicalPlan:
    child = plan.children()[0]
    ctx = CompileContext(plan_physical_schema(child), 0, columns=plan_columns(child),
                         ansi=False)

    def top(expr: Expression) -> Expression:
        new = _coerce(expr, ctx)
        if new is expr or isinstance(expr, (Alias, ColumnRef, Star)):
            return new
        return Alias(new, expr.display_name())  # the name Spark gives the unanalysed one

    if isinstance(plan, Filter):
        return map_fields(plan, Expression, lambda e: _coerce(e, ctx))
    return map_fields(plan, Expression, top)


def _union_strings(plan: Union) -> Union:
    """A UNION column mixing strings with numbers, dates or timestamps is a string
    column without ANSI (``'1' UNION 2`` is '1', '2'): each input casts its column."""
    schemas = [list(plan_physical_schema(p).values()) for p in plan.inputs]
    if len({len(s) for s in schemas}) != 1:
        return plan  # NUM_COLUMNS_MISMATCH, raised when the plan compiles
    to_string = set()
    for i in range(len(schemas[0])):
        types = [s[i] for s in schemas]
        with contextlib.suppress(NoCommonType):  # INCOMPATIBLE_COLUMN_TYPE when compiled
            if union_column_type(types, ansi=False) == pl.String:
                to_string.add(i)
    if not to_string:
        return plan
    inputs = tuple(_strings_at(p, to_string, schemas[k])
                   for k, p in enumerate(plan.inputs))
    return dataclasses.replace(plan, inputs=inputs)


def _strings_at(plan: LogicalPlan, positions: set[int], types: list[pl.DataType]
                ) -> LogicalPlan:
    """``plan`` with its columns at ``positions`` cast to string (as Spark's cast)."""
    if not any(types[i] != pl.String for i in positions):
        return plan
    columns = plan_columns(plan)
    exprs: list[Expression] = []
    for i, column in enumerate(columns):
        ref = ColumnRef(column.name, ordinal=i)
        exprs.append(Alias(Cast(ref, T.StringType()), column.name)
                     if i in positions and types[i] not in (pl.String, pl.Null) else ref)
    return Project(plan, tuple(exprs))


def _coerce(expr: Expression, ctx: CompileContext) -> Expression:
    """``expr`` with the non-ANSI casts, bottom up (a lambda's body is left alone: its
    variables have no type outside the call)."""
    if isinstance(expr, LambdaFunction):
        return expr
    expr = map_fields(expr, Expression, lambda e: _coerce(e, ctx))
    if isinstance(expr, BinaryOp):
        return _binary(expr, ctx)
    if isinstance(expr, FunctionCall) and expr.name.lower() == "div":
        return _div_strings(expr, ctx)
    if isinstance(expr, FunctionCall):
        return _common_args(expr, ctx)
    if isinstance(expr, CaseWhen):
        return _case_values(expr, ctx)
    if isinstance(expr, In):
        return _in_values(expr, ctx)
    return expr


def _binary(expr: BinaryOp, ctx: CompileContext) -> Expression:
    left, right = _dtype(expr.left, ctx), _dtype(expr.right, ctx)
    if left is None or right is None:
        return expr
    lt, rt = legacy_binary_types(expr.op, left, right)
    if lt is None and rt is None:
        return expr
    return BinaryOp(expr.op, _cast(expr.left, lt), _cast(expr.right, rt))


def _common_args(call: FunctionCall, ctx: CompileContext) -> Expression:
    name = call.name.lower()
    if name == "map":
        return _map_args(call, ctx) if len(call.args) % 2 == 0 else call
    first = 0 if name in LEGACY_COMMON_TYPE_FUNCTIONS else 1 if name == "nvl2" else None
    if first is None or len(call.args) - first < 2:
        return call
    shown = {"array": "array", "nvl2": "if"}.get(name, "coalesce")
    values = _to_common(call.args[first:], ctx, lambda d: data_diff_types(
        shown, call.display_name(), d, listed=name == "nvl2"))
    return call if values is None else dataclasses.replace(
        call, args=(*call.args[:first], *values))


def _map_args(call: FunctionCall, ctx: CompileContext) -> Expression:
    """``map(k, v, ...)``: keys and values each take one type, as in ``array``."""
    keys, values = call.args[::2], call.args[1::2]
    shown = call.display_name()
    new_keys = _to_common(keys, ctx, lambda d: map_diff_types("KEY", shown, d)) or keys
    new_values = _to_common(values, ctx, lambda d: map_diff_types("VALUE", shown, d)) or values
    if new_keys is keys and new_values is values:
        return call
    args = tuple(a for pair in zip(new_keys, new_values, strict=True) for a in pair)
    return dataclasses.replace(call, args=args)


def _in_values(expr: In, ctx: CompileContext) -> Expression:
    """Non-ANSI ``IN`` does not cast a string to a boolean (ANSI does)."""
    dtypes = [_dtype(e, ctx) for e in (expr.child, *expr.values)]
    if None not in dtypes and legacy_mix_fails([d for d in dtypes if d is not None]):
        raise data_diff_types("in", expr.display_name(),
                              [d for d in dtypes if d is not None], listed=True)
    return expr


def _div_strings(call: FunctionCall, ctx: CompileContext) -> Expression:
    """``a div b``: a string operand becomes double, as in other arithmetic, which div
    then rejects (``'7' div 2`` is DATATYPE_MISMATCH with ANSI off)."""
    dtypes = [_dtype(a, ctx) for a in call.args]
    if pl.String not in dtypes:
        return call
    args = tuple(_cast(a, _DOUBLE if d == pl.String else None)
                 for a, d in zip(call.args, dtypes, strict=True))
    return dataclasses.replace(call, args=args)


_DOUBLE = T.DoubleType()


def _case_values(expr: CaseWhen, ctx: CompileContext) -> Expression:
    values = [v for _, v in expr.branches]
    if expr.otherwise is not None:
        values.append(expr.otherwise)
    common = _to_common(tuple(values), ctx, lambda d: data_diff_types(
        "casewhen", expr.display_name(), d, listed=True))
    if common is None:
        return expr
    branches = tuple((c, v) for (c, _), v in zip(expr.branches, common, strict=False))
    otherwise = common[-1] if expr.otherwise is not None else None
    return CaseWhen(branches, otherwise)


def _to_common(values: tuple[Expression, ...], ctx: CompileContext,
               who: Callable[[list[pl.DataType]], Exception]
               ) -> tuple[Expression, ...] | None:
    """``values`` cast to their non-ANSI common type (None: as they are); a string
    among booleans raises ``who(types)`` (ANSI would cast it)."""
    dtypes = [_dtype(v, ctx) for v in values]
    if any(d is None for d in dtypes):
        return None
    known = [d for d in dtypes if d is not None]
    if legacy_mix_fails(known):
        raise who(known)
    target = legacy_common_type(known)
    if target is None:
        return None
    return tuple(v if d == pl.String else _cast(v, target)
                 for v, d in zip(values, dtypes, strict=True))


def _cast(expr: Expression, target: T.DataType | None) -> Expression:
    return expr if target is None else Cast(expr, target)


def _dtype(expr: Expression, ctx: CompileContext) -> pl.DataType | None:
    """The type ``expr`` has over the node's input; None where it is not a row value
    here (an aggregate, a lambda variable) or does not compile."""
    try:
        return ctx.dtype_of(compile_expr(expr, ctx))
    except (pl.exceptions.PolarsError, AnalysisException, TypeError, KeyError):
        return None


def map_fields(node: N, kind: type, fn: Callable[[Any], Any]) -> N:
    """``node`` with ``fn`` applied to each field of type ``kind`` (also inside tuples);
    the same object when nothing changed."""
    changes = {}
    for f in dataclasses.fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        new = _map_value(value, kind, fn)
        if new is not value:
            changes[f.name] = new
    return dataclasses.replace(node, **changes) if changes else node  # type: ignore[type-var]


def _map_value(value: Any, kind: type, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, kind):
        return fn(value)
    if isinstance(value, tuple):
        items = tuple(_map_value(v, kind, fn) for v in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value
