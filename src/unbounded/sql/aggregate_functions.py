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
    "any_value",
    "approxCountDistinct",
    "approx_percentile",
    "array_agg",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
    "corr",
    "count_if",
    "covar_pop",
    "covar_samp",
    "every",
    "first_value",
    "grouping",
    "grouping_id",
    "kurtosis",
    "last_value",
    "listagg",
    "listagg_distinct",
    "median",
    "mode",
    "percentile",
    "product",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "skewness",
    "some",
    "std",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "string_agg_distinct",
    "try_avg",
    "try_sum",
    "var_pop",
    "var_samp",
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


def bit_and(col: Any) -> Column: return _agg("bit_and", col)
def bit_or(col: Any) -> Column: return _agg("bit_or", col)
def bit_xor(col: Any) -> Column: return _agg("bit_xor", col)
def try_sum(col: Any) -> Column: return _agg("try_sum", col)
def try_avg(col: Any) -> Column: return _agg("try_avg", col)


def approxCountDistinct(col: Any, rsd: float | None = None) -> Column:
    """Exact here, which Spark's error bound allows."""
    return _agg("approx_count_distinct", col)


def approx_percentile(col: Any, percentage: Any, accuracy: Any = 10000) -> Column:
    shown: Expression = FunctionCall("array", tuple(Literal(p) for p in percentage)) \
        if isinstance(percentage, (list, tuple)) else column_expr(percentage)
    return Column(AggregateCall("approx_percentile", (column_expr(col), shown,
                                                      column_expr(accuracy))))


def _joined(name: str, col: Any, delimiter: Any, distinct: bool) -> Column:
    separator = delimiter.expr if isinstance(delimiter, Column) else Literal(delimiter)
    return Column(AggregateCall(name, (column_expr(col), separator), distinct))


def listagg(col: Any, delimiter: Any = None) -> Column:
    """The non-NULL values as one string, joined by ``delimiter`` (none by default)."""
    return _joined("listagg", col, delimiter, False)


def listagg_distinct(col: Any, delimiter: Any = None) -> Column:
    return _joined("listagg", col, delimiter, True)


def string_agg(col: Any, delimiter: Any = None) -> Column:
    return _joined("string_agg", col, delimiter, False)


def string_agg_distinct(col: Any, delimiter: Any = None) -> Column:
    return _joined("string_agg", col, delimiter, True)


def _regr(stat: str) -> Any:
    def build(y: Any, x: Any) -> Column:
        return _agg(f"regr_{stat}", y, x)

    build.__name__ = f"regr_{stat}"
    build.__doc__ = f"Spark's regr_{stat}(y, x), over the rows where both are non-NULL."
    return build


regr_count = _regr("count")
regr_avgx = _regr("avgx")
regr_avgy = _regr("avgy")
regr_sxx = _regr("sxx")
regr_syy = _regr("syy")
regr_sxy = _regr("sxy")
regr_slope = _regr("slope")
regr_intercept = _regr("intercept")
regr_r2 = _regr("r2")
