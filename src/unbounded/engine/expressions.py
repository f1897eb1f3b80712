"""Expression nodes compiled to Polars expressions, one rule per node type.

Unsupported nodes raise an error that names them. Scalar functions live in a table
(``unbounded.engine.functions``) so adding one touches no code here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import singledispatch
from typing import Any

import numpy as np
import polars as pl

from unbounded.engine.ansi import (
    arithmetic_checked,
    cast_checked,
    division_checked,
    integral_bounds,
    java_double,
)
from unbounded.engine.coercion import (
    NoCommonType,
    binary_operand_types,
    common_value_type,
    data_diff_types,
)
from unbounded.engine.context import CompileContext, OutputColumn, unique_name
from unbounded.engine.dtypes import polars_schema_to_spark, to_polars_dtype
from unbounded.engine.struct_comparison import compare_structs, struct_common_type
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
    GetField,
    GetItem,
    In,
    LambdaFunction,
    LambdaVariable,
    Like,
    Literal,
    Star,
    UnaryOp,
    walk,
)
from unbounded.plan.time_zones import from_local, to_local
from unbounded.plan.timestamp_text import (
    text_to_date,
    text_to_timestamp,
    text_to_timestamp_ntz,
)

__all__ = [
    "compile_expr", "compile_named", "compile_projection", "dtypes_of", "expand_star",
    "implicit_cast", "lambda_column", "like_to_regex", "string_to_timestamp", "unify_values",
]


@singledispatch
def compile_expr(expr: Expression, ctx: CompileContext) -> pl.Expr:
    raise AnalysisException(
        f"The expression {type(expr).__name__} ({expr.display_name()}) is not supported "
        "by the Polars engine.",
        error_class="UNSUPPORTED_EXPRESSION",
    )


def compile_named(expr: Expression, ctx: CompileContext) -> pl.Expr:
    """Compile ``expr`` and name the result as Spark would."""
    return compile_expr(expr, ctx).alias(expr.display_name())


def expand_star(exprs: tuple[Expression, ...], ctx: CompileContext) -> list[pl.Expr]:
    """Compile a projection list, expanding ``*``, ``alias.*`` and ``struct.*``."""
    return compile_projection(exprs, ctx)[0]


def compile_projection(
    exprs: tuple[Expression, ...], ctx: CompileContext
) -> tuple[list[pl.Expr], tuple[OutputColumn, ...]]:
    """A projection's Polars expressions and its output columns.

    A bare column reference keeps the input column's qualifiers and lineage (Spark keeps
    the attribute); anything else is a new column. Repeated output names get unique
    physical names, so ``select(a.id, b.id)`` works as in Spark.
    """
    pairs: list[tuple[pl.Expr, OutputColumn]] = []
    for e in exprs:
        pairs.extend(_project_one(e, ctx))
    if pairs and not any(_reads_input(e) for e in exprs):
        # Spark keeps one output row per input row; Polars would give one row of constants.
        pairs = [(pl.repeat(o, pl.len()), c) for o, c in pairs]
    taken: set[str] = set()
    out_exprs: list[pl.Expr] = []
    columns: list[OutputColumn] = []
    for compiled, column in pairs:
        physical = unique_name(column.name, taken)
        taken.add(physical)
        out_exprs.append(compiled.alias(physical))
        columns.append(column if column.physical == physical
                       else replace(column, physical=physical))
    return out_exprs, tuple(columns)


def _project_one(e: Expression, ctx: CompileContext) -> list[tuple[pl.Expr, OutputColumn]]:
    if isinstance(e, Star):
        return _expand_one_star(e, ctx)
    if isinstance(e, ColumnRef):
        column, fields = ctx.resolve_column(e)
        if not fields:
            name = e.display_name()
            kept = column if column.name == name else replace(column, name=name)
            return [(pl.col(column.physical), kept)]
    name = e.display_name()
    return [(compile_expr(e, ctx), OutputColumn(name, name))]


def _expand_one_star(e: Star, ctx: CompileContext) -> list[tuple[pl.Expr, OutputColumn]]:
    if e.target is None:
        return [(pl.col(c.physical), c) for c in ctx.columns]
    qualified = ctx.columns_qualified(e.target)
    if qualified:
        return [(pl.col(c.physical), c) for c in qualified]
    struct = compile_expr(ColumnRef(e.target), ctx)
    dtype = ctx.dtype_of(struct)
    if not isinstance(dtype, pl.Struct):
        raise AnalysisException(
            f"[CANNOT_RESOLVE_STAR_EXPAND] Cannot resolve `{e.target}`.* given input columns "
            f"[{', '.join(c.label for c in ctx.columns)}].",
            error_class="CANNOT_RESOLVE_STAR_EXPAND")
    return [(struct.struct.field(f.name), OutputColumn(f.name, f.name)) for f in dtype.fields]


def _reads_input(expr: Expression) -> bool:
    return any(isinstance(n, (ColumnRef, Star)) or
               (isinstance(n, FunctionCall) and n.name.lower() in _PER_ROW)
               for n in walk(expr))


# Functions whose value differs from row to row without reading a column (Polars gives
# them one value per input row already, so they must not be repeated as constants).
_PER_ROW = frozenset({"rand", "random", "randn", "uuid", "monotonically_increasing_id",
                      "raise_error", "uniform", "randstr"})


@compile_expr.register
def _(expr: ColumnRef, ctx: CompileContext) -> pl.Expr:
    column, fields = ctx.resolve_column(expr)
    out = pl.col(column.physical)
    for f in fields:
        out = out.struct.field(f)
    return out


@compile_expr.register
def _(expr: Literal, ctx: CompileContext) -> pl.Expr:
    if isinstance(expr.data_type, T.TimestampType) and isinstance(expr.value, datetime) \
            and expr.value.tzinfo is None:
        # SQL's TIMESTAMP '...' without an offset: wall-clock time in the session zone.
        return from_local(pl.lit(expr.value, dtype=pl.Datetime("us")), ctx.time_zone)
    if expr.data_type is not None:
        return pl.lit(expr.value, dtype=to_polars_dtype(expr.data_type))
    if isinstance(expr.value, bool):
        return pl.lit(expr.value, dtype=pl.Boolean)
    if isinstance(expr.value, int):
        small = -(2**31) <= expr.value < 2**31
        return pl.lit(expr.value, dtype=pl.Int32 if small else pl.Int64)
    if isinstance(expr.value, float):
        return pl.lit(expr.value, dtype=pl.Float64)
    if isinstance(expr.value, datetime):
        # lit(naive datetime) is wall-clock time in the Python process's zone, as
        # PySpark converts it (time.mktime) and as collect() gives timestamps back.
        return pl.lit(expr.value.astimezone(UTC), dtype=pl.Datetime("us", "UTC"))
    return pl.lit(expr.value)


@compile_expr.register
def _(expr: Alias, ctx: CompileContext) -> pl.Expr:
    return compile_expr(expr.child, ctx).alias(expr.name)


_ARITH: dict[str, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a.cast(pl.Float64) / b.cast(pl.Float64),
    "mod": lambda a, b: a % b, "pow": lambda a, b: a.cast(pl.Float64).pow(b),
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
    "and": lambda a, b: a & b, "or": lambda a, b: a | b,
    "eq_null_safe": lambda a, b: a.eq_missing(b),
    "bitand": lambda a, b: a & b, "bitor": lambda a, b: a | b, "bitxor": lambda a, b: a ^ b,
    "concat_op": lambda a, b: pl.concat_str([a.cast(pl.String), b.cast(pl.String)]),
}
_COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge", "eq_null_safe"}


@compile_expr.register
def _(expr: BinaryOp, ctx: CompileContext) -> pl.Expr:
    if expr.op not in _ARITH:
        raise AnalysisException(f"Unknown operator {expr.op!r}")
    left = compile_expr(expr.left, ctx)
    right = compile_expr(expr.right, ctx)
    if expr.op in _COMPARISONS:
        left, right = _coerce_temporal_literal(expr, left, right, ctx)
    dtypes = _operand_dtypes(expr.op, left, right, ctx)
    if dtypes is not None and expr.op in _COMPARISONS and \
            isinstance(dtypes[0], pl.Struct) and isinstance(dtypes[1], pl.Struct):
        return compare_structs(expr, left, right, (dtypes[0], dtypes[1]))
    if dtypes is not None:
        left, right, dtypes = _coerce_string_number(expr.op, left, right, dtypes, ctx)
        if expr.op in _STRING_REJECTING:
            _check_arithmetic_operands(expr, dtypes)
    if expr.op in ("div", "mod"):
        integral = dtypes is not None and all(d.is_integer() for d in dtypes)
        result = _divide(expr.op, left, right, integral)
        return division_checked(expr.op, left, right, result, ctx.dtype_of(result)) \
            if ctx.ansi else result
    result = _ARITH[expr.op](left, right)
    if ctx.ansi and expr.op in ("add", "sub", "mul"):
        return _overflow_checked(expr.op, left, right, result, ctx,
                                 dtype=_result_dtype(dtypes))
    return result


_STRING_REJECTING = frozenset({"add", "sub", "mul", "div", "mod"})


def _check_arithmetic_operands(expr: BinaryOp, dtypes: tuple[pl.DataType, pl.DataType]
                               ) -> None:
    """Spark's analysis errors for arithmetic on strings (ANSI: non-ANSI casts them to
    double first) or booleans, which Polars would compute (concatenate, count as 0/1)."""
    left, right = dtypes
    shown = f'Cannot resolve "{expr.display_name()}" due to data type mismatch: '
    if left == right and left in (pl.String(), pl.Boolean()):
        name = "STRING" if left == pl.String() else "BOOLEAN"
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.BINARY_OP_WRONG_TYPE] {shown}the binary operator requires "
            'the input type ("NUMERIC" or "INTERVAL DAY TO SECOND" or "INTERVAL YEAR TO '
            f'MONTH" or "INTERVAL"), not "{name}". SQLSTATE: 42K09',
            error_class="DATATYPE_MISMATCH.BINARY_OP_WRONG_TYPE")
    if pl.Boolean() in dtypes and all(d == pl.Boolean() or d.is_numeric() for d in dtypes):
        names = [_spark_name(d) for d in dtypes]
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES] {shown}the left and right operands of "
            f'the binary operator have incompatible types ("{names[0]}" and "{names[1]}"). '
            "SQLSTATE: 42K09", error_class="DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES")


def _spark_name(dtype: pl.DataType) -> str:
    spark = polars_schema_to_spark(pl.Schema({"c": dtype}))
    return spark.fields[0].dataType.simpleString().upper()


def _operand_dtypes(op: str, left: pl.Expr, right: pl.Expr, ctx: CompileContext
                    ) -> tuple[pl.DataType, pl.DataType] | None:
    """Both operands' dtypes in one schema query (compiling a plan asks for every
    operator's), or None for an operator no implicit cast applies to."""
    if op not in _ARITHMETIC_OPS and op not in _COMPARISONS:
        return None
    left_t, right_t = dtypes_of([left, right], ctx)
    return left_t, right_t


def dtypes_of(exprs: list[pl.Expr], ctx: CompileContext) -> list[pl.DataType]:
    """The dtypes of ``exprs`` over the input columns, in one schema query (compiling a
    plan asks for many; each query costs as much as one)."""
    if not exprs:
        return []
    packed = ctx.dtype_of(pl.struct([e.alias(f"_{i}") for i, e in enumerate(exprs)]))
    assert isinstance(packed, pl.Struct)
    return [_instance(f.dtype) for f in packed.fields]


def _instance(dtype: Any) -> pl.DataType:
    """A dtype instance (a struct's fields may hold the class, ``pl.Int64``)."""
    instance: pl.DataType = dtype() if isinstance(dtype, type) else dtype
    return instance


_ARITHMETIC_OPS = frozenset({"add", "sub", "mul", "div", "mod", "pow"})


def _coerce_string_number(op: str, left: pl.Expr, right: pl.Expr,
                          dtypes: tuple[pl.DataType, pl.DataType], ctx: CompileContext
                          ) -> tuple[pl.Expr, pl.Expr, tuple[pl.DataType, pl.DataType]]:
    """Spark's implicit casts between a string and a number (``engine/coercion.py``),
    with the operands' dtypes after them."""
    lt, rt = binary_operand_types(op, *dtypes, ansi=ctx.ansi)
    if lt is None and rt is None:
        return left, right, dtypes
    after = (dtypes[0] if lt is None else to_polars_dtype(lt),
             dtypes[1] if rt is None else to_polars_dtype(rt))
    return implicit_cast(left, lt, ctx), implicit_cast(right, rt, ctx), after


_SIGNED_BITS = {pl.Int8: 8, pl.Int16: 16, pl.Int32: 32, pl.Int64: 64}


def _result_dtype(dtypes: tuple[pl.DataType, pl.DataType] | None) -> pl.DataType | None:
    """The dtype of ``+ - *`` when both operands are signed integers (the wider one, as
    Polars and Spark type it) or a float; None: ask Polars."""
    if dtypes is None:
        return None
    bits = [next((b for t, b in _SIGNED_BITS.items() if d == t), None) for d in dtypes]
    if None not in bits:
        return dtypes[0] if bits[0] >= bits[1] else dtypes[1]  # type: ignore[operator]
    return pl.Float64() if any(d.is_float() for d in dtypes) else None


def _divide(op: str, left: pl.Expr, right: pl.Expr, integral: bool = False) -> pl.Expr:
    """Spark's non-ANSI ``/`` and ``%``: NULL for a zero divisor, never inf."""
    if op == "div":
        return pl.when(right == 0).then(None).otherwise(_ARITH["div"](left, right))
    # Spark's remainder takes the sign of the dividend (-7 % 3 = -1); Polars' the divisor's.
    # Integers move by one divisor (abs() overflows for the type's minimum); floats go
    # through abs(), exact where adding a divisor back would round.
    if integral:
        floored = left % right
        remainder = pl.when((floored != 0) & ((floored < 0) != (left < 0))) \
            .then(floored - right).otherwise(floored)
        return pl.when(right == 0).then(None).otherwise(remainder)
    magnitude = left.abs() % right.abs()
    return pl.when(right == 0).then(None).when(left < 0).then(-magnitude).otherwise(magnitude)


def _overflow_checked(op: str, left: pl.Expr, right: pl.Expr, result: pl.Expr,
                      ctx: CompileContext, *, dtype: pl.DataType | None = None) -> pl.Expr:
    """ANSI: integral ``+ - *`` raise ARITHMETIC_OVERFLOW instead of wrapping (``dtype``:
    the result's, when already known)."""
    dtype = ctx.dtype_of(result) if dtype is None else dtype
    bounds = integral_bounds(dtype)
    if bounds is None:
        return result
    wide = _ARITH[op](left.cast(pl.Int128), right.cast(pl.Int128))
    return arithmetic_checked(op, wide, result, dtype, bounds,
                              same_op=result.meta.eq(_ARITH[op](left, right)))


def _coerce_temporal_literal(
    expr: BinaryOp, left: pl.Expr, right: pl.Expr, ctx: CompileContext
) -> tuple[pl.Expr, pl.Expr]:
    """Spark casts a string literal compared with a timestamp or date to that type."""
    def as_temporal(lit: Literal, other: pl.Expr) -> pl.Expr | None:
        if not isinstance(lit.value, str):
            return None
        dtype = ctx.dtype_of(other)
        if isinstance(dtype, pl.Datetime):
            return cast_to(pl.lit(lit.value), pl.String(), T.TimestampType(),
                           zone=ctx.time_zone)
        if isinstance(dtype, pl.Date):
            return text_to_date(pl.lit(lit.value))
        return None

    # ``is None`` checks: an Expr has no truth value, so ``as_temporal(...) or right`` raises.
    new_right = as_temporal(expr.right, left) if isinstance(expr.right, Literal) else None
    new_left = as_temporal(expr.left, right) if isinstance(expr.left, Literal) else None
    return (left if new_left is None else new_left), (right if new_right is None else new_right)


@compile_expr.register
def _(expr: UnaryOp, ctx: CompileContext) -> pl.Expr:
    child = compile_expr(expr.child, ctx)
    if expr.op == "not":
        # NOT NULL is NULL; an untyped NULL literal has Polars' Null dtype, which ``~`` rejects.
        return ~child.cast(pl.Boolean) if ctx.dtype_of(child) == pl.Null else ~child
    if expr.op == "neg":
        if ctx.dtype_of(child) == pl.String:  # Spark: -'1.5' is -1.5
            return -implicit_cast(child, T.DoubleType(), ctx)
        bounds = integral_bounds(ctx.dtype_of(child)) if ctx.ansi else None
        if bounds is not None:  # ANSI: -(min value) overflows
            wide = pl.lit(0, pl.Int128) - child.cast(pl.Int128)  # Int128 has no negate
            return arithmetic_checked("neg", wide, -child,
                                      ctx.dtype_of(child), bounds, same_op=True)
        return -child
    if expr.op == "isnull":
        return child.is_null()
    if expr.op == "isnotnull":
        return child.is_not_null()
    if expr.op == "bitnot":
        return ~child
    raise AnalysisException(f"Unknown unary operator {expr.op!r}")


@compile_expr.register
def _(expr: Cast, ctx: CompileContext) -> pl.Expr:
    child = compile_expr(expr.child, ctx)
    source = ctx.dtype_of(child)
    result = cast_to(child, source, expr.to, ansi=ctx.ansi,
                     zone=expr.time_zone or ctx.time_zone)
    if not ctx.ansi or isinstance(expr.to, (T.StringType, T.BinaryType)) \
            or source in (pl.Null, to_polars_dtype(expr.to)):
        return result
    # ANSI: a non-NULL value that casts to NULL did not convert (malformed or overflow).
    return cast_checked(result, child, source, expr.to, ctx.dtype_of(result))


def implicit_cast(value: pl.Expr, target: T.DataType | None, ctx: CompileContext) -> pl.Expr:
    """A cast Spark's analyzer inserts (None: none), failing under ANSI mode as an
    explicit cast does."""
    if target is None:
        return value
    source = ctx.dtype_of(value)
    result = cast_to(value, source, target, ansi=ctx.ansi, zone=ctx.time_zone)
    if not ctx.ansi or isinstance(target, T.StringType) or source == pl.Null:
        return result
    return cast_checked(result, value, source, target, to_polars_dtype(target))


def unify_values(values: list[pl.Expr], ctx: CompileContext,
                 used: list[pl.Expr] | None = None, *,
                 who: Callable[[list[pl.DataType]], Exception] | None = None
                 ) -> list[pl.Expr]:
    """``values`` cast to their common type when they mix strings with other types
    (``engine/coercion.py``); under ANSI a string is checked only where ``used[i]``
    holds, the rows whose value is returned (Spark evaluates them lazily). Types that
    share none raise ``who(dtypes)``, the caller's DATA_DIFF_TYPES."""
    dtypes = dtypes_of(values, ctx)
    try:
        target = common_value_type(dtypes)
    except NoCommonType:
        if who is None:
            raise AnalysisException(f"No common type for {dtypes}.") from None
        raise who(dtypes) from None
    if target is None:
        return values
    out = []
    for i, (value, dtype) in enumerate(zip(values, dtypes, strict=True)):
        if used is not None and ctx.ansi and dtype == pl.String:
            value = pl.when(used[i]).then(value)
        out.append(value if dtype == to_polars_dtype(target) else
                   implicit_cast(value, target, ctx))
    return out


_INTEGRAL = (T.IntegerType, T.LongType, T.ShortType, T.ByteType)


def cast_to(child: pl.Expr, source: pl.DataType, target: T.DataType,
            *, ansi: bool = False, zone: str = "UTC") -> pl.Expr:
    """Spark's cast; a value that does not convert becomes NULL (under ANSI mode the
    caller turns those NULLs into errors). Non-ANSI numbers out of an integral type's
    range wrap (integers) or saturate (floating point, NaN to 0) as in Spark. Timestamps
    meet strings and dates as wall-clock times in ``zone``, the session time zone."""
    if isinstance(target, _INTEGRAL) and (source == pl.String or source.is_numeric()):
        return _cast_to_integral(child, source, to_polars_dtype(target), ansi)
    if source == pl.String and isinstance(target, (T.DoubleType, T.FloatType)):
        return child.str.strip_chars().cast(to_polars_dtype(target), strict=False)
    if isinstance(source, pl.Datetime) or isinstance(target, T.TimestampType) or \
            (isinstance(target, (T.DateType, T.TimestampNTZType)) and source == pl.String):
        return _cast_temporal(child, source, target, zone)
    return _cast_other(child, source, target)


def _cast_to_integral(child: pl.Expr, source: pl.DataType, dtype: pl.DataType,
                      ansi: bool) -> pl.Expr:
    if source == pl.String:
        # Spark: optional sign and digits; non-ANSI also takes a fraction (truncated),
        # never an exponent ('1e3' is NULL).
        text = child.str.strip_chars()
        pattern = r"^[+-]?\d+$" if ansi else r"^[+-]?(\d+\.?\d*|\.\d+)$"
        whole = text.str.replace(r"\..*$", "").str.strip_prefix("+")
        whole = pl.when(whole.is_in(["", "-"])).then(pl.lit("0")).otherwise(whole)
        parsed = pl.when(text.str.contains(pattern)).then(whole).cast(pl.Int64, strict=False)
        return parsed.cast(dtype, strict=False)
    bounds = integral_bounds(dtype)
    if ansi or bounds is None or source == pl.Boolean:
        return child.cast(dtype, strict=False)
    if source.is_float():
        clipped = child.clip(float(bounds[0]), float(bounds[1]))
        return pl.when(child.is_nan()).then(0).otherwise(clipped).cast(dtype, strict=False)
    span = bounds[1] - bounds[0] + 1
    wrapped = (child.cast(pl.Int128) - bounds[0]) % span + bounds[0]
    return wrapped.cast(dtype, strict=False)


def _cast_temporal(child: pl.Expr, source: pl.DataType, target: T.DataType,
                   zone: str) -> pl.Expr:
    """Casts from a timestamp, or to a timestamp or date (where the zone matters)."""
    if isinstance(source, pl.Datetime) and source.time_zone is None:  # TIMESTAMP_NTZ
        return from_local(child, zone) if isinstance(target, T.TimestampType) \
            else _cast_from_timestamp(child.dt.replace_time_zone("UTC"), target, "UTC")
    if isinstance(source, pl.Datetime):
        return _cast_from_timestamp(child, target, zone)
    if isinstance(target, T.TimestampNTZType):  # from a string: its wall-clock time
        return text_to_timestamp_ntz(child)
    if isinstance(target, T.DateType):  # from a string
        return text_to_date(child)
    if source == pl.String:
        return string_to_timestamp(child, zone)
    if source.is_numeric():
        return (child.cast(pl.Float64) * 1_000_000).cast(pl.Int64) \
            .cast(pl.Datetime("us", "UTC"))
    if source == pl.Date:
        return from_local(child.cast(pl.Datetime("us")), zone)
    return child.cast(to_polars_dtype(target), strict=False)


def _cast_from_timestamp(child: pl.Expr, target: T.DataType, zone: str) -> pl.Expr:
    if isinstance(target, T.StringType):
        return to_local(child, zone).dt.strftime("%Y-%m-%d %H:%M:%S%.f") \
            .str.strip_suffix(".000000").str.replace(r"(\.\d*?)0+$", "$1")
    if isinstance(target, T.DateType):
        return to_local(child, zone).dt.date()
    if isinstance(target, T.TimestampNTZType):
        return to_local(child, zone)
    if isinstance(target, (T.LongType, T.IntegerType, T.DoubleType)):
        seconds = child.dt.epoch("us").cast(pl.Float64) / 1_000_000
        return seconds if isinstance(target, T.DoubleType) else seconds.floor().cast(
            to_polars_dtype(target))
    return child.cast(to_polars_dtype(target), strict=False)


def string_to_timestamp(text: pl.Expr, zone: str) -> pl.Expr:
    """Spark's string to timestamp, each row in its own shape (plan/timestamp_text.py):
    a time with an offset or zone names that instant; one without is wall-clock time in
    ``zone``; a date alone is its midnight there."""
    return text_to_timestamp(text, zone)


def _cast_other(child: pl.Expr, source: pl.DataType, target: T.DataType) -> pl.Expr:
    if isinstance(target, T.StringType):
        if source == pl.Binary:
            return child.cast(pl.String, strict=False)
        if source == pl.Boolean:
            return pl.when(child).then(pl.lit("true")).when(~child).then(pl.lit("false"))
        if source.is_float():
            return _java_float_text(child, source)
        return child.cast(pl.String, strict=False)
    if isinstance(target, T.BinaryType) and source == pl.String:
        return child.cast(pl.Binary)
    if isinstance(target, T.BooleanType) and source == pl.String:
        lowered = child.str.strip_chars().str.to_lowercase()
        return pl.when(lowered.is_in(["true", "t", "yes", "y", "1"])).then(True) \
            .when(lowered.is_in(["false", "f", "no", "n", "0"])).then(False)
    return child.cast(to_polars_dtype(target), strict=False)


def _java_float_text(child: pl.Expr, source: pl.DataType) -> pl.Expr:
    """A double or float as Java prints it (Spark's cast to string): ``1.0E20``,
    ``1.0E-5``, ``1.23456789E8``; Polars writes ``1e+20`` and ``123456789.0``."""
    single = source == pl.Float32

    def java(value: float) -> str:
        if not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return java_double(float(str(np.float32(value))) if single else value)

    def text(series: pl.Series) -> pl.Series:
        values = [None if v is None else java(v) for v in series.to_list()]
        return pl.Series(series.name, values, dtype=pl.String)

    return child.map_batches(text, return_dtype=pl.String, is_elementwise=True)


@compile_expr.register
def _(expr: CaseWhen, ctx: CompileContext) -> pl.Expr:
    conds = [compile_expr(c, ctx) for c, _ in expr.branches]
    values = [compile_expr(v, ctx) for _, v in expr.branches]
    if expr.otherwise is not None:
        values.append(compile_expr(expr.otherwise, ctx))
    values = unify_values(values, ctx, _branch_taken(conds), who=lambda dtypes: data_diff_types(
        "casewhen", expr.display_name(), dtypes, listed=True))
    chain: Any = pl.when(conds[0]).then(values[0])
    for cond, value in zip(conds[1:], values[1:], strict=False):
        chain = chain.when(cond).then(value)
    if expr.otherwise is not None:
        return chain.otherwise(values[-1])  # type: ignore[no-any-return]
    return chain  # type: ignore[no-any-return]


def _branch_taken(conds: list[pl.Expr]) -> list[pl.Expr]:
    """Per branch (and the ELSE after them), the rows whose value CASE returns."""
    taken, none_before = [], pl.lit(True)
    for cond in conds:
        holds = cond.fill_null(False)
        taken.append(none_before & holds)
        none_before = none_before & ~holds
    return [*taken, none_before]


@compile_expr.register
def _(expr: In, ctx: CompileContext) -> pl.Expr:
    child = compile_expr(expr.child, ctx)
    values = [v.value for v in expr.values if isinstance(v, Literal)]
    if len(values) == len(expr.values) and not _text_meets_typed(child, values, ctx):
        if not _mixes_text_and_numbers(child, values, ctx):
            return child.is_in(pl.Series(values))
        if not ctx.ansi:  # Spark 3's rules: a string and a number compare as strings
            texts = [None if v is None else str(v) for v in values]
            return implicit_cast(child, T.StringType(), ctx).is_in(pl.Series(texts))
    # Each comparison casts as ``=`` does (a number IN ('1', '3') compares numbers).
    _check_struct_values(expr, child, ctx)
    out = pl.lit(False)
    for v in expr.values:
        out = out | compile_expr(BinaryOp("eq", expr.child, v), ctx)
    return out


def _check_struct_values(expr: In, child: pl.Expr, ctx: CompileContext) -> None:
    """Structs IN structs of other field types: Spark's error names ``in``."""
    dtypes = dtypes_of([child, *(compile_expr(v, ctx) for v in expr.values)], ctx)
    if isinstance(dtypes[0], pl.Struct) and any(
            not isinstance(d, pl.Struct) or struct_common_type(dtypes[0], d) is None
            for d in dtypes[1:] if d != pl.Null):
        raise data_diff_types("in", expr.display_name(), dtypes, listed=True)


def _text_meets_typed(child: pl.Expr, values: list[Any], ctx: CompileContext) -> bool:
    """A boolean, date or timestamp IN strings: each string is cast as ``=`` does."""
    dtype = ctx.dtype_of(child)
    typed = dtype in (pl.Boolean, pl.Date) or isinstance(dtype, pl.Datetime)
    return typed and any(isinstance(v, str) for v in values)


def _mixes_text_and_numbers(child: pl.Expr, values: list[Any], ctx: CompileContext) -> bool:
    texts = any(isinstance(v, str) for v in values)
    numbers = any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    dtype = ctx.dtype_of(child)
    return (texts and dtype.is_numeric()) or (numbers and dtype == pl.String)


def like_to_regex(pattern: str, escape: str = "\\") -> str:
    """SQL LIKE pattern as an anchored regular expression.

    >>> like_to_regex("a%b_c")
    '^a.*b.c$'
    """
    import re

    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return "^" + "".join(out) + "$"


@compile_expr.register
def _(expr: Like, ctx: CompileContext) -> pl.Expr:
    child = compile_expr(expr.child, ctx)
    if ctx.dtype_of(child) != pl.String:  # Spark casts the input to string (NULL stays NULL)
        child = child.cast(pl.String, strict=False)
    if expr.kind == "rlike":
        return child.str.contains(expr.pattern)
    regex = like_to_regex(expr.pattern)
    regex = ("(?is)" if expr.kind == "ilike" else "(?s)") + regex
    return child.str.contains(regex)


@compile_expr.register
def _(expr: GetField, ctx: CompileContext) -> pl.Expr:
    child = compile_expr(expr.child, ctx)
    if isinstance(ctx.dtype_of(child), pl.Map):  # col["k"] on a map is a lookup in Spark
        return child.map.get(pl.lit(expr.field_name))
    return child.struct.field(expr.field_name)


@compile_expr.register
def _(expr: GetItem, ctx: CompileContext) -> pl.Expr:
    child = compile_expr(expr.child, ctx)
    dtype = ctx.dtype_of(child)
    if isinstance(dtype, pl.Map):
        return child.map.get(compile_expr(expr.key, ctx))
    if isinstance(dtype, pl.Struct) and isinstance(expr.key, Literal):
        return child.struct.field(str(expr.key.value))
    return child.list.get(compile_expr(expr.key, ctx), null_on_oob=True)


def lambda_column(name: str) -> str:
    """The column a lambda variable reads while its body runs over one row per element
    (``engine/collection_functions.py`` adds it to the body's input)."""
    return f"__lambda_{name}"


@compile_expr.register
def _(expr: LambdaVariable, ctx: CompileContext) -> pl.Expr:
    physical = lambda_column(expr.name)
    if physical not in ctx.schema:
        raise AnalysisException(
            f"[UNRESOLVED_COLUMN] The lambda variable `{expr.name}` is used outside the "
            "lambda function that declares it.", error_class="UNRESOLVED_COLUMN")
    return pl.col(physical)


@compile_expr.register
def _(expr: LambdaFunction, ctx: CompileContext) -> pl.Expr:
    raise AnalysisException(
        f"[INVALID_LAMBDA_FUNCTION_CALL] {expr.display_name()} can only be an argument of a "
        "higher-order function such as transform, filter or aggregate.",
        error_class="INVALID_LAMBDA_FUNCTION_CALL")


@compile_expr.register
def _(expr: FunctionCall, ctx: CompileContext) -> pl.Expr:
    from unbounded.engine.functions import compile_function

    return compile_function(expr, ctx)
