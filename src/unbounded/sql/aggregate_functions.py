"""PySpark's statistical, boolean and percentile aggregates (``pyspark.sql.functions``),
re-exported by ``unbounded.sql.functions``; each compiles through the builder of the same
name in ``unbounded/engine/aggregate_functions.py``. Output columns are named as PySpark
names them (``count_if((x > 1))``, ``percentile(x, 0.5, 1)``, ``collect_list(x)`` for
``array_agg``)."""

from __future__ import annotations

from typing import Any

from unbounded.plan.expressions import AggregateCall, Alias, Expression, FunctionCall, Literal
from unbounded.sql.column import Column
from unbounded.sql.function_call import column_expr

__all__ = [
    "any_value", "array_agg", "bool_and", "bool_or", "corr", "count_if", "covar_pop",
    "covar_samp", "every", "first_value", "grouping", "grouping_id", "kurtosis",
    "last_value", "median", "mode",
    "percentile", "product", "skewness", "some", "std", "stddev_pop", "stddev_samp",
    "var_pop", "var_samp",
]


def _agg(name: str, *cols: Any, distinct: bool = False) -> Column:
    return Column(AggregateCall(name, tuple(column_expr(c) for c in cols), distinct))


def stddev_pop(col: Any) -> Column: return _agg("stddev_pop", col)
def stddev_samp(col: Any) -> Column: return _agg("stddev_samp", col)
def std(col: Any) -> Column: return _agg("std", col)
def var_pop(col: Any) -> Column: return _agg("var_pop", col)
def var_samp(col: Any) -> Column: return _agg("var_samp", col)
def corr(col1: Any, col2: Any) -> Column: return _agg("corr", col1, col2)
def covar_pop(col1: Any, col2: Any) -> Column: return _agg("covar_pop", col1, col2)
def covar_samp(col1: Any, col2: Any) -> Column: return _agg("covar_samp", col1, col2)
def skewness(col: Any) -> Column: return _agg("skewness", col)
def kurtosis(col: Any) -> Column: return _agg("kurtosis", col)
def median(col: Any) -> Column: return _agg("median", col)
def count_if(col: Any) -> Column: return _agg("count_if", col)
def bool_and(col: Any) -> Column: return _agg("bool_and", col)
def bool_or(col: Any) -> Column: return _agg("bool_or", col)
def every(col: Any) -> Column: return _agg("every", col)
def some(col: Any) -> Column: return _agg("some", col)
def product(col: Any) -> Column: return _agg("product", col)
def array_agg(col: Any) -> Column: return _agg("collect_list", col)


def grouping(col: Any) -> Column:
    """1 where ``col`` is rolled up in this row of a rollup or cube, else 0 (tinyint)."""
    return _agg("grouping", col)


def grouping_id(*cols: Any) -> Column:
    """The grouping bits of ``cols`` (every key when none), the first the highest."""
    call = _agg("grouping_id", *cols)
    return call if cols else Column(Alias(call.expr, "grouping_id()"))


def mode(col: Any, deterministic: bool = False) -> Column:
    """The most frequent value; of equally frequent ones, the smallest either way."""
    return _agg("mode", col)


def _ignore_nulls(value: Any) -> bool:
    if isinstance(value, Column):
        expr = value.expr
        return bool(expr.value) if isinstance(expr, Literal) else False
    return bool(value)


def any_value(col: Any, ignoreNulls: Any = None) -> Column:
    return _agg("any_value", col, distinct=_ignore_nulls(ignoreNulls))


def first_value(col: Any, ignoreNulls: Any = None) -> Column:
    return _agg("first_value", col, distinct=_ignore_nulls(ignoreNulls))


def last_value(col: Any, ignoreNulls: Any = None) -> Column:
    return _agg("last_value", col, distinct=_ignore_nulls(ignoreNulls))


def percentile(col: Any, percentage: Any, frequency: Any = 1) -> Column:
    """Exact percentile(s) of ``col`` (``percentage`` a number or a list of them), each
    value counted ``frequency`` times."""
    shown: Expression
    if isinstance(percentage, (list, tuple)):
        shown = FunctionCall("array", tuple(Literal(p) for p in percentage))
    else:
        shown = column_expr(percentage)
    return Column(AggregateCall("percentile", (column_expr(col), shown,
                                               column_expr(frequency))))
