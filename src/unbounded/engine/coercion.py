"""Spark's implicit casts: which argument becomes which type before a function runs.

Spark's analyzer inserts casts where a function or operator meets a type it does not
take but can convert to (``ImplicitCastInputTypes``, ``AnsiTypeCoercion``): ``upper(1)``
is ``upper('1')``, ``sqrt('4')`` is ``sqrt(4.0)``, ``'2' > 1`` compares numbers. This
module holds only the rules, as types; ``engine/expressions.py`` (``implicit_cast``)
applies them with Spark's cast, so under ANSI mode a string that is not a number fails
with ``CAST_INVALID_INPUT`` as an explicit cast does, and gives NULL when ANSI is off.

The rules, checked against PySpark 4.3 in both modes:

- string functions cast numbers, booleans, dates and timestamps to string;
- numeric functions (``sqrt``, ``abs``, ``round``...) and ``sum``/``avg`` cast strings
  to double; date functions cast strings to date, time-of-day ones to timestamp;
- arithmetic and comparison between a string and a number: under ANSI both sides become
  bigint when the number is integral, double otherwise (``'2' + 1`` is bigint 3); with
  ANSI off arithmetic is done in double (``'2' + 1`` is 3.0) and a comparison casts the
  string to the number's type; arithmetic between two strings is rejected as in ANSI
  Spark (``'1' - '1'``; Spark without ANSI computes it in double, but a plan's schema is
  derived once, under Spark 4's default);
- ``IN`` between a string and numbers: under ANSI each comparison casts as ``=`` does;
  with ANSI off Spark 3's rules compare them as strings (``'1.0' IN (1)`` is false).

>>> import polars as pl
>>> function_arg_types("upper", [pl.Int32])
[StringType()]
>>> binary_operand_types("add", pl.String, pl.Int32, ansi=True)
(LongType(), LongType())
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from unbounded.plan import types as T

__all__ = ["STRING_AS_DOUBLE_AGGREGATES", "binary_operand_types", "coerced_function",
           "function_arg_types"]

_STRING = T.StringType()
_DOUBLE = T.DoubleType()
_LONG = T.LongType()

# function -> the argument positions Spark declares as strings.
_STRING_ARGS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("upper", "ucase", "lower", "lcase", "initcap", "trim", "ltrim",
                     "rtrim", "reverse", "substring", "substr", "split", "regexp_replace",
                     "regexp_extract", "instr", "lpad", "rpad"), (0,)),
    **dict.fromkeys(("contains", "startswith", "endswith"), (0, 1)),
}
_DOUBLE_ARGS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("sqrt", "exp", "ln", "abs", "round", "floor", "ceil", "ceiling",
                     "isnan"), (0,)),
    "log": (0, 1),
}
_DATE_ARGS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("year", "month", "dayofmonth", "day", "dayofyear", "weekofyear",
                     "quarter", "dayofweek", "date_add"), (0,)),
    "datediff": (0, 1),
}
_TIMESTAMP_ARGS: dict[str, tuple[int, ...]] = dict.fromkeys(
    ("hour", "minute", "second", "date_trunc"), (0,))
_RULES: tuple[tuple[dict[str, tuple[int, ...]], T.DataType], ...] = (
    (_STRING_ARGS, _STRING), (_DOUBLE_ARGS, _DOUBLE), (_DATE_ARGS, T.DateType()),
    (_TIMESTAMP_ARGS, T.TimestampType()),
)
_ARITHMETIC = frozenset({"add", "sub", "mul", "div", "mod", "pow"})
_COMPARISON = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "eq_null_safe"})


def coerced_function(name: str) -> bool:
    """Whether any argument of the function ``name`` may need an implicit cast (so the
    caller asks for argument types only then)."""
    return any(name in table for table, _ in _RULES)


def function_arg_types(name: str, dtypes: Sequence[pl.DataType]) -> list[T.DataType | None]:
    """The type each argument of ``name`` is cast to, None where it stays as it is."""
    targets: list[T.DataType | None] = [None] * len(dtypes)
    for table, target in _RULES:
        for i in table.get(name, ()):
            if i < len(dtypes) and _converts(dtypes[i], target):
                targets[i] = target
    return targets


def _converts(dtype: pl.DataType, target: T.DataType) -> bool:
    """Whether Spark casts a ``dtype`` input implicitly to ``target``: to string from any
    atomic type, to anything else only from string."""
    if isinstance(target, T.StringType):
        return dtype.is_numeric() or dtype == pl.Boolean or dtype.is_temporal()
    return dtype == pl.String


# Aggregates whose string input Spark casts to double (sum('2') is 2.0).
STRING_AS_DOUBLE_AGGREGATES = frozenset({"sum", "avg", "mean", "stddev", "stddev_samp",
                                         "variance", "var_samp"})


def binary_operand_types(op: str, left: pl.DataType, right: pl.DataType, *, ansi: bool
                         ) -> tuple[T.DataType | None, T.DataType | None]:
    """The types both operands of ``op`` are cast to when one is a string and the other
    a number; (None, None) when no cast applies."""
    if op not in _ARITHMETIC and op not in _COMPARISON:
        return None, None
    if left == pl.String and right.is_numeric():
        number, string_left = right, True
    elif right == pl.String and left.is_numeric():
        number, string_left = left, False
    else:
        return None, None
    target = _common_with_string(op, number, ansi)
    if target is None:
        return None, None
    return (target, target if _widens(number, target) else None) if string_left \
        else (target if _widens(number, target) else None, target)


def _common_with_string(op: str, number: pl.DataType, ansi: bool) -> T.DataType | None:
    if ansi:
        return _LONG if number.is_integer() else _DOUBLE
    if op in _ARITHMETIC:
        return _DOUBLE
    return _spark_numeric(number)


def _widens(number: pl.DataType, target: T.DataType) -> bool:
    """Whether the number side is cast as well (an int meeting a bigint string)."""
    return _spark_numeric(number) != target


def _spark_numeric(dtype: pl.DataType) -> T.DataType | None:
    table: list[tuple[type[pl.DataType], T.DataType]] = [
        (pl.Int8, T.ByteType()), (pl.Int16, T.ShortType()), (pl.Int32, T.IntegerType()),
        (pl.Int64, _LONG), (pl.Float32, T.FloatType()), (pl.Float64, _DOUBLE),
    ]
    return next((t for d, t in table if dtype == d), None)
