"""ANSI mode (``spark.sql.ansi.enabled``, on by default in Spark 4): a value that does
not convert or overflows raises Spark's error instead of becoming NULL.

Checks are vectorised: the expression computes its non-ANSI result and a boolean
"failed" column (e.g. the input is not NULL but the cast's result is); one Python call
per batch looks for a failed row and raises an error naming its value, else hands the
result back. No Python runs per row.

That call costs ~0.35 ms per batch (Polars calling back into Python). Work that can run
again, a partition task, builds its plan inside ``overflow_as_polars_error()``: integral
``+ - *``, negation and ``abs`` are then checked by Polars itself (a strict cast of the
Int128 result), which raises Polars' ``InvalidOperationError`` for exactly the rows
that overflow, and the caller runs the work again outside it, where the check above
raises Spark's error (``run_checked``). No other check changes.

>>> import polars as pl
>>> from unbounded.plan import types as T
>>> from unbounded.errors import NumberFormatException
>>> frame = pl.DataFrame({"s": ["1", "x"]})
>>> result = pl.col("s").cast(pl.Int32, strict=False)
>>> check = cast_checked(result, pl.col("s"), pl.String, T.IntegerType(), pl.Int32)
>>> try:
...     frame.select(check)
... except NumberFormatException as err:
...     print(err.error_class, str(err)[:79])
CAST_INVALID_INPUT [CAST_INVALID_INPUT] The value 'x' of the type "STRING" cannot be cast to "INT"
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, TypeVar

import polars as pl

from unbounded.engine.dtypes import polars_schema_to_spark
from unbounded.errors import (
    ArithmeticException,
    DateTimeException,
    NumberFormatException,
    SparkRuntimeException,
)
from unbounded.plan import types as T

__all__ = [
    "arithmetic_checked", "bigint_add_checked", "cast_checked", "division_checked",
    "integral_bounds", "overflow_as_polars_error", "run_checked", "sql_value", "sum_checked",
]

_BYPASS = 'If necessary set "spark.sql.ansi.enabled" to "false" to bypass this error.'
_TRY_FUNCTION = {"add": "try_add", "sub": "try_subtract", "mul": "try_multiply"}
_SUFFIX = {"bigint": "L", "smallint": "S", "tinyint": "Y", "double": "D", "float": "F"}


def checked(result: pl.Expr, failed: pl.Expr, value: pl.Expr, dtype: pl.DataType,
            error: Callable[[Any], Exception]) -> pl.Expr:
    """``result``, raising ``error(value)`` for the first row where ``failed`` holds."""
    def check(batch: pl.Series) -> pl.Series:
        frame = batch.struct.unnest()
        bad = frame.filter(pl.col("failed"))
        if bad.height:
            raise error(bad["value"][0])
        return frame["result"]

    both = pl.struct(result.alias("result"), failed.fill_null(False).alias("failed"),
                     value.alias("value"))
    return both.map_batches(check, return_dtype=dtype, is_elementwise=True)


def cast_checked(result: pl.Expr, child: pl.Expr, source: pl.DataType,
                 target: T.DataType, dtype: pl.DataType) -> pl.Expr:
    """A cast that raises where a non-NULL input gave NULL: ``CAST_INVALID_INPUT`` for
    strings, ``CAST_OVERFLOW`` for numbers."""
    source_name = spark_type_name(source)
    target_name = target.simpleString().upper()

    def error(value: Any) -> Exception:
        return _cast_error(value, source_name, target_name, target)

    return checked(result, child.is_not_null() & result.is_null(), child, dtype, error)


def _cast_error(value: Any, source: str, target: str, to: T.DataType) -> Exception:
    shown = sql_value(value, source.lower())
    if source != "STRING":
        return ArithmeticException(
            f'[CAST_OVERFLOW] The value {shown} of the type "{source}" cannot be cast to '
            f'"{target}" due to an overflow. Use `try_cast` to tolerate overflow and return '
            "NULL instead. SQLSTATE: 22003", error_class="CAST_OVERFLOW")
    kind: type[SparkRuntimeException] = NumberFormatException
    if isinstance(to, (T.DateType, T.TimestampType)):
        kind = DateTimeException
    elif isinstance(to, T.BooleanType):
        kind = SparkRuntimeException
    return kind(
        f'[CAST_INVALID_INPUT] The value {shown} of the type "{source}" cannot be cast to '
        f'"{target}" because it is malformed. Correct the value as per the syntax, or change '
        "its target type. Use `try_cast` to tolerate malformed input and return NULL "
        "instead. SQLSTATE: 22018", error_class="CAST_INVALID_INPUT")


def integral_bounds(dtype: pl.DataType) -> tuple[int, int] | None:
    """The range of an integral dtype; None for any other."""
    if not dtype.is_integer():
        return None
    info = {pl.Int8: 8, pl.Int16: 16, pl.Int32: 32, pl.Int64: 64}
    bits = next((b for t, b in info.items() if dtype == t), None)
    return None if bits is None else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


_R = TypeVar("_R")

# Inside ``overflow_as_polars_error``: how many checks were built as Polars' own.
_POLARS_CHECKS: ContextVar[list[int] | None] = ContextVar("_POLARS_CHECKS", default=None)


@contextmanager
def overflow_as_polars_error() -> Iterator[list[int]]:
    """Within it, ``arithmetic_checked(..., same_op=True)`` builds a strict cast of the
    Int128 result, which raises Polars' ``InvalidOperationError`` where the result
    overflows; the list it yields counts those checks. Use through ``run_checked``."""
    built: list[int] = []
    token = _POLARS_CHECKS.set(built)
    try:
        yield built
    finally:
        _POLARS_CHECKS.reset(token)


def run_checked(work: Callable[[], _R]) -> _R:
    """``work()`` with overflow checked by Polars; on Polars' error, when the work built
    such a check, ``work()`` again with Spark's checks, which raise Spark's error (or the
    same Polars error when the check was not its cause). ``work`` must give the same
    answer when run again (a partition task: the same partition, the same rows)."""
    with overflow_as_polars_error() as built:
        try:
            return work()
        except pl.exceptions.InvalidOperationError:
            if not built:
                raise
    return work()


def arithmetic_checked(op: str, wide: pl.Expr, result: pl.Expr, dtype: pl.DataType,
                       bounds: tuple[int, int], *, same_op: bool = False) -> pl.Expr:
    """``result`` of an integral ``op``, raising ``ARITHMETIC_OVERFLOW`` where ``wide``
    (the same operation computed in Int128) leaves the result type's range.

    ``same_op``: ``result`` is ``wide``'s operation in ``dtype``, whose range ``bounds``
    is, so where it does not overflow ``wide`` cast to ``dtype`` is ``result``; inside
    ``overflow_as_polars_error`` that strict cast is the check."""
    built = _POLARS_CHECKS.get()
    if same_op and built is not None:
        built.append(1)
        return wide.cast(dtype, strict=True)
    hint = f"Use '{_TRY_FUNCTION[op]}' to tolerate overflow and return NULL instead. " \
        if op in _TRY_FUNCTION else ""

    def error(_: Any) -> Exception:
        return ArithmeticException(
            f"[ARITHMETIC_OVERFLOW] overflow. {hint}{_BYPASS} SQLSTATE: 22003",
            error_class="ARITHMETIC_OVERFLOW")

    failed = (wide < bounds[0]) | (wide > bounds[1])
    return checked(result, failed, wide, dtype, error)


def sum_checked(values: pl.Expr, result: pl.Expr) -> pl.Expr:
    """``result``, the bigint sum of ``values``, raising ``ARITHMETIC_OVERFLOW`` (Spark's
    message for ``sum``, which adds with ``try_add``'s hint) when the exact sum leaves
    bigint's range; NULL when there is no non-NULL value.

    Spark adds row by row within each partition, so it also fails when only a partial
    sum overflows and the total fits (``MAX, 1, -1``) -- an answer that depends on how
    rows are partitioned. The total is checked here: the same answer in every layout.
    """
    wide = values.cast(pl.Int128).sum()
    return arithmetic_checked("add", wide, result, pl.Int64(), _BIGINT)


def bigint_add_checked(left: pl.Expr, right: pl.Expr) -> pl.Expr:
    """``left + right`` of bigints, raising ``ARITHMETIC_OVERFLOW`` as ``sum`` does (the
    merge of two partial sums)."""
    wide = left.cast(pl.Int128) + right.cast(pl.Int128)
    return arithmetic_checked("add", wide, left + right, pl.Int64(), _BIGINT, same_op=True)


_BIGINT = (-(2**63), 2**63 - 1)


def division_checked(op: str, left: pl.Expr, right: pl.Expr, result: pl.Expr,
                     dtype: pl.DataType) -> pl.Expr:
    """``result`` of ``/`` or ``%``, raising ``DIVIDE_BY_ZERO`` / ``REMAINDER_BY_ZERO``
    where a non-NULL dividend meets a zero divisor (a NULL dividend stays NULL)."""
    def error(_: Any) -> Exception:
        if op == "mod":
            return ArithmeticException(
                "[REMAINDER_BY_ZERO] Remainder by zero. Use `try_mod` to tolerate divisor "
                f"being 0 and return NULL instead. {_BYPASS} SQLSTATE: 22012",
                error_class="REMAINDER_BY_ZERO")
        return ArithmeticException(
            "[DIVIDE_BY_ZERO] Division by zero. Use `try_divide` to tolerate divisor being 0 "
            f"and return NULL instead. {_BYPASS} SQLSTATE: 22012", error_class="DIVIDE_BY_ZERO")

    failed = left.is_not_null() & (right == 0)
    return checked(result, failed, right, dtype, error)


def spark_type_name(dtype: pl.DataType) -> str:
    """Spark's SQL name of a Polars dtype, as error messages show it (``BIGINT``)."""
    spark = polars_schema_to_spark(pl.Schema({"x": dtype})).fields[0].dataType
    return spark.simpleString().upper()


def sql_value(value: Any, type_name: str) -> str:
    """A value as Spark's messages show it: ``'abc'``, ``3000000000L``, ``1.0E10D``.

    >>> sql_value("abc", "string"), sql_value(3, "bigint"), sql_value(1e10, "double")
    ("'abc'", '3L', '1.0E10D')
    """
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return java_double(value) + _SUFFIX.get(type_name, "")
    return f"{value}{_SUFFIX.get(type_name, '')}"


def java_double(value: float) -> str:
    """Java's ``Double.toString``: plain between 1e-3 and 1e7, else ``d.dddE±n``.

    >>> java_double(1.5), java_double(1e10), java_double(-1e-4), java_double(123.0)
    ('1.5', '1.0E10', '-1.0E-4', '123.0')
    """
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(float(value))
        return text if "e" not in text else f"{value:.1f}"
    shortest = Decimal(repr(float(value)))  # the shortest digits that round-trip, as Java
    sign, digits, _ = shortest.as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{shortest.adjusted()}"
