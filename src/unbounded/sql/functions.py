"""PySpark's ``pyspark.sql.functions``: constructors of expression nodes.

Every function returns a :class:`Column`; nothing is evaluated until a query runs.
Scalar functions compile through ``unbounded.engine.functions`` by the same name.

>>> upper(col("name")).expr.display_name()
'upper(name)'
"""

from __future__ import annotations

from typing import Any

from unbounded.errors import AnalysisException
from unbounded.plan.expressions import (
    AggregateCall,
    CaseWhen,
    ColumnRef,
    Expression,
    FunctionCall,
    Literal,
    Star,
)
from unbounded.plan.intervals import parse_interval_us
from unbounded.plan.window import RankingCall
from unbounded.sql.column import Column, column_of, to_expr
from unbounded.sql.function_call import column_expr, function_call
from unbounded.sql.types import DataType, parse_data_type, parse_ddl_schema
from unbounded.sql.udf import PandasUDFType, pandas_udf, registered_udf, udf

__all__ = [
    "PandasUDFType", "abs", "approx_count_distinct", "array", "array_contains", "asc",
    "avg", "base64", "broadcast", "call_udf", "ceil", "coalesce", "col", "collect_list",
    "collect_set", "column", "concat", "concat_ws", "count", "countDistinct",
    "count_distinct", "crc32", "create_map", "cume_dist", "current_date",
    "current_timestamp", "date_add", "date_format", "date_trunc", "datediff", "dayofmonth",
    "dayofweek", "dense_rank", "desc", "element_at", "exp", "explode", "explode_outer",
    "expr", "first", "floor", "from_json", "from_unixtime", "get_json_object", "greatest",
    "hash", "hour", "ifnull", "initcap", "instr", "isnan", "isnull", "json_tuple", "lag",
    "last", "lead", "least", "length", "lit", "log", "lower", "lpad", "ltrim", "map_keys",
    "map_values", "max", "max_by", "md5", "mean", "min", "min_by", "minute", "month",
    "nth_value", "ntile", "nullif", "nvl", "pandas_udf", "percent_rank", "percentile_approx",
    "posexplode", "posexplode_outer", "rank", "regexp_extract", "regexp_replace", "reverse",
    "round", "row_number", "rpad", "rtrim", "second", "session_window", "sha1", "sha2", "size",
    "split", "sqrt", "stddev", "struct", "substring", "sum", "sumDistinct", "sum_distinct",
    "timestamp_millis", "timestamp_seconds", "to_date", "to_json", "to_timestamp", "trim",
    "udf", "unix_timestamp", "upper", "variance", "when", "window", "window_time", "year",
]


_c = column_expr
_call = function_call


def col(name: str) -> Column:
    """The column called ``name`` (``"*"`` for all, ``"a.b"`` for a struct field)."""
    if name == "*":
        return Column(Star())
    if name.endswith(".*"):
        return Column(Star(name[:-2]))
    return Column(ColumnRef(name))


column = col


def lit(value: Any) -> Column:
    return value if isinstance(value, Column) else Column(Literal(value))


def expr(sql: str) -> Column:
    """A column from a SQL expression in Spark's dialect, e.g. ``expr("a + 1")``."""
    from unbounded.sql.expr_parser import parse_expression

    return Column(parse_expression(sql))


def call_udf(udfName: str, *cols: Any) -> Column:
    """Call the function ``spark.udf.register`` stored as ``udfName``."""
    registered = registered_udf(udfName)
    if registered is None:
        raise AnalysisException(
            f"[UNRESOLVED_ROUTINE] Cannot resolve routine `{udfName}`; register it with "
            "spark.udf.register first.", error_class="UNRESOLVED_ROUTINE")
    return registered(*cols)


def broadcast(df: Any) -> Any:
    """``df`` marked small enough to copy to every task of a join: a hint for Spark's
    planner. Polars chooses its own join strategy, so ``df`` comes back unchanged."""
    return df


def when(condition: Column, value: Any) -> Column:
    return Column(CaseWhen(((condition.expr, to_expr(value)),)))


def asc(name: str) -> Column:
    return col(name).asc()


def desc(name: str) -> Column:
    return col(name).desc()


# ---- scalar functions ----------------------------------------------------------------
def coalesce(*cols: Any) -> Column: return _call("coalesce", *cols)
def nullif(a: Any, b: Any) -> Column: return _call("nullif", a, b)
def isnull(c: Any) -> Column: return column_of(c).isNull()
def isnan(c: Any) -> Column: return _call("isnan", c)
def greatest(*cols: Any) -> Column: return _call("greatest", *cols)
def least(*cols: Any) -> Column: return _call("least", *cols)
def abs(c: Any) -> Column: return _call("abs", c)
def ceil(c: Any) -> Column: return _shown("ceil", c, "CEIL")
def floor(c: Any) -> Column: return _shown("floor", c, "FLOOR")
def sqrt(c: Any) -> Column: return _shown("sqrt", c, "SQRT")
def exp(c: Any) -> Column: return _shown("exp", c, "EXP")


def _shown(name: str, c: Any, shown: str) -> Column:
    """``name(c)`` named as PySpark names its column (``SQRT(x)``, ``ln(x)``)."""
    arg = _c(c)
    return Column(FunctionCall(name, (arg,), (("display", f"{shown}({arg.display_name()})"),)))


def log(arg1: Any, arg2: Any = None) -> Column:
    """The natural logarithm of ``arg1``, or the logarithm of ``arg2`` in base ``arg1``."""
    if arg2 is None:
        return _shown("log", arg1, "ln")
    base, value = to_expr(arg1), _c(arg2)
    shown = f"LOG({base.display_name()}, {value.display_name()})"
    return Column(FunctionCall("log", (base, value), (("display", shown),)))


def upper(c: Any) -> Column: return _call("upper", c)
def lower(c: Any) -> Column: return _call("lower", c)
def initcap(c: Any) -> Column: return _call("initcap", c)
def length(c: Any) -> Column: return _call("length", c)
def trim(c: Any) -> Column: return _call("trim", c)
def ltrim(c: Any) -> Column: return _call("ltrim", c)
def rtrim(c: Any) -> Column: return _call("rtrim", c)
def reverse(c: Any) -> Column: return _call("reverse", c)
def concat(*cols: Any) -> Column: return _call("concat", *cols)
def array(*cols: Any) -> Column: return _call("array", *cols)
def size(c: Any) -> Column: return _call("size", c)
def hash(*cols: Any) -> Column: return _call("hash", *cols)
def base64(c: Any) -> Column: return _call("base64", c)
def md5(c: Any) -> Column: return _call("md5", c)
def sha1(c: Any) -> Column: return _call("sha1", c)
def crc32(c: Any) -> Column: return _call("crc32", c)
def nvl(col1: Any, col2: Any) -> Column: return _call("nvl", col1, col2)
def ifnull(col1: Any, col2: Any) -> Column: return _call("ifnull", col1, col2)
def map_keys(c: Any) -> Column: return _call("map_keys", c)
def map_values(c: Any) -> Column: return _call("map_values", c)


def sha2(c: Any, numBits: int) -> Column:
    """SHA-2 hex digest; ``numBits`` is 224, 256 (or 0), 384 or 512, else NULL."""
    return Column(FunctionCall("sha2", (_c(c), Literal(numBits))))


def create_map(*cols: Any) -> Column:
    """A map from alternating key and value columns: ``create_map(k1, v1, k2, v2)``."""
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    return _call("map", *cols)


# ---- generators: one input row becomes zero or more output rows ----------------------
def _generator(name: str, c: Any) -> Column:
    # The projection names the rows ``col`` (``pos``, ``key``, ``value``), as Spark does.
    return Column(FunctionCall(name, (_c(c),)))


def explode(col: Any) -> Column: return _generator("explode", col)
def explode_outer(col: Any) -> Column: return _generator("explode_outer", col)
def posexplode(col: Any) -> Column: return _generator("posexplode", col)
def posexplode_outer(col: Any) -> Column: return _generator("posexplode_outer", col)


def json_tuple(col: Any, *fields: Any) -> Column:
    """One string column per field (``c0``, ``c1``...) read from a JSON object column."""
    fields = tuple(str(_constant(f).value) for f in fields)  # names, or lit(...) from SQL
    if not fields:
        raise AnalysisException("json_tuple needs at least one field name.",
                                error_class="WRONG_NUM_ARGS")
    return Column(FunctionCall("json_tuple", (_c(col),), (("fields", fields),)))
def current_timestamp() -> Column: return _call("current_timestamp")
def current_date() -> Column: return _call("current_date")
def year(c: Any) -> Column: return _call("year", c)
def month(c: Any) -> Column: return _call("month", c)
def dayofmonth(c: Any) -> Column: return _call("dayofmonth", c)
def dayofweek(c: Any) -> Column: return _call("dayofweek", c)
def hour(c: Any) -> Column: return _call("hour", c)
def minute(c: Any) -> Column: return _call("minute", c)
def second(c: Any) -> Column: return _call("second", c)
def timestamp_seconds(c: Any) -> Column: return _call("timestamp_seconds", c)
def timestamp_millis(c: Any) -> Column: return _call("timestamp_millis", c)
def window_time(c: Any) -> Column: return _call("window_time", c)


def round(c: Any, scale: int = 0) -> Column:
    return _call("round", c, scale=scale)


def concat_ws(sep: str, *cols: Any) -> Column:
    return _call("concat_ws", *cols, sep=sep)


def substring(c: Any, pos: int, len: int) -> Column:
    return _call("substring", c, pos=pos, len=len)


def split(c: Any, pattern: str, limit: int = -1) -> Column:
    return _call("split", c, pattern=pattern, limit=limit)


def regexp_replace(c: Any, pattern: str, replacement: str) -> Column:
    return _call("regexp_replace", c, pattern=pattern, replacement=replacement)


def regexp_extract(c: Any, pattern: str, idx: int = 1) -> Column:
    return _call("regexp_extract", c, pattern=pattern, idx=idx)


def instr(c: Any, substr: str) -> Column:
    return _call("instr", c, substr=substr)


def lpad(c: Any, len: int, pad: str) -> Column:
    return _call("lpad", c, len=len, pad=pad)


def rpad(c: Any, len: int, pad: str) -> Column:
    return _call("rpad", c, len=len, pad=pad)


def array_contains(c: Any, value: Any) -> Column:
    return Column(FunctionCall("array_contains", (_c(c), to_expr(value))))


def element_at(c: Any, index: Any) -> Column:
    return Column(FunctionCall("element_at", (_c(c), to_expr(index))))


def struct(*cols: Any) -> Column:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    return _call("struct", *cols)


def from_json(c: Any, schema: DataType | str, options: dict[str, str] | None = None) -> Column:
    """Parse a JSON string column; a malformed value gives NULL (PERMISSIVE)."""
    parsed = schema if isinstance(schema, DataType) else _schema_from_string(schema)
    return _call("from_json", c, schema=parsed, options=_json_options(options))


def _json_options(options: dict[str, str] | None) -> tuple[tuple[str, str], ...] | None:
    """Options as sorted pairs (a plan node's params are hashable); PySpark's bools are
    the strings Spark reads."""
    if not options:
        return None
    return tuple(sorted((k, str(v).lower() if isinstance(v, bool) else str(v))
                        for k, v in options.items()))


def _schema_from_string(text: str) -> DataType:
    stripped = text.strip()
    if stripped.lower().startswith(("array<", "map<", "struct<")):
        return parse_data_type(stripped)
    return parse_ddl_schema(stripped)


def to_json(c: Any, options: dict[str, str] | None = None) -> Column:
    return _call("to_json", c, options=_json_options(options))


def get_json_object(c: Any, path: str) -> Column:
    return _call("get_json_object", c, path=path)


def to_timestamp(c: Any, format: str | None = None) -> Column:
    return _call("to_timestamp", c, format=format)


def to_date(c: Any, format: str | None = None) -> Column:
    return _call("to_date", c, format=format)


def unix_timestamp(c: Any = None, format: str = "yyyy-MM-dd HH:mm:ss") -> Column:
    if c is None:
        return _call("unix_timestamp")
    return _call("unix_timestamp", c, format=format)


def from_unixtime(c: Any, format: str = "yyyy-MM-dd HH:mm:ss") -> Column:
    return _call("from_unixtime", c, format=format)


def date_format(c: Any, format: str) -> Column:
    return _call("date_format", c, format=format)


def date_trunc(format: str, c: Any) -> Column:
    return _call("date_trunc", c, unit=format)


def date_add(c: Any, days: Any) -> Column:
    return Column(FunctionCall("date_add", (_c(c), to_expr(days))))


def datediff(end: Any, start: Any) -> Column:
    return _call("datediff", end, start)


def window(
    timeColumn: Any,
    windowDuration: str,
    slideDuration: str | None = None,
    startTime: str | None = None,
) -> Column:
    """Event-time windows: tumbling, or sliding when ``slideDuration`` is shorter."""
    duration = parse_interval_us(windowDuration)
    slide = parse_interval_us(slideDuration) if slideDuration else duration
    start = parse_interval_us(startTime) if startTime else 0
    if duration <= 0 or slide <= 0:
        raise AnalysisException("The window duration and slide must be positive.")
    if slide > duration:
        raise AnalysisException(
            f"The slide duration ({slideDuration}) must be less than or equal to the "
            f"windowDuration ({windowDuration}).")
    return _call("window", timeColumn, duration_us=duration, slide_us=slide, start_us=start)


def session_window(timeColumn: Any, gapDuration: Any) -> Column:
    """Session windows closed by a gap of inactivity (a string or a column expression)."""
    if isinstance(gapDuration, str):
        return _call("session_window", timeColumn, gap_us=parse_interval_us(gapDuration))
    return Column(FunctionCall("session_window", (_c(timeColumn), _c(gapDuration))))


# ---- aggregates ----------------------------------------------------------------------
def _agg(name: str, c: Any = None, distinct: bool = False) -> Column:
    args: tuple[Expression, ...] = () if c is None else (_c(c),)
    return Column(AggregateCall(name, args, distinct))


def count(c: Any) -> Column:
    if (isinstance(c, str) and c == "*") or (isinstance(c, Column) and isinstance(c.expr, Star)):
        return Column(AggregateCall("count", (Star(),)))
    if isinstance(c, Column) and isinstance(c.expr, Literal):
        return Column(AggregateCall("count", (c.expr,)))
    return _agg("count", c)


def sum(c: Any) -> Column: return _agg("sum", c)
def sum_distinct(c: Any) -> Column: return _agg("sum", c, distinct=True)
def avg(c: Any) -> Column: return _agg("avg", c)
def mean(c: Any) -> Column: return _agg("mean", c)
def min(c: Any) -> Column: return _agg("min", c)
def max(c: Any) -> Column: return _agg("max", c)
def collect_list(c: Any) -> Column: return _agg("collect_list", c)
def collect_set(c: Any) -> Column: return _agg("collect_set", c)
def stddev(c: Any) -> Column: return _agg("stddev", c)
def variance(c: Any) -> Column: return _agg("variance", c)


sumDistinct = sum_distinct


def first(c: Any, ignorenulls: bool = False) -> Column:
    return _agg("first", c, distinct=ignorenulls)


def last(c: Any, ignorenulls: bool = False) -> Column:
    return _agg("last", c, distinct=ignorenulls)


def count_distinct(c: Any, *cols: Any) -> Column:
    return Column(AggregateCall("count", tuple(_c(x) for x in (c, *cols)), distinct=True))


countDistinct = count_distinct


def approx_count_distinct(c: Any, rsd: float | None = None) -> Column:
    return _agg("approx_count_distinct", c)


def max_by(col: Any, ord: Any) -> Column:
    """The value of ``col`` at the row with the largest ``ord`` (NULL orderings skipped)."""
    return Column(AggregateCall("max_by", (_c(col), _c(ord))))


def min_by(col: Any, ord: Any) -> Column:
    """The value of ``col`` at the row with the smallest ``ord`` (NULL orderings skipped)."""
    return Column(AggregateCall("min_by", (_c(col), _c(ord))))


def percentile_approx(col: Any, percentage: Any, accuracy: Any = 10000) -> Column:
    """The smallest value with at least ``percentage`` of the rows at or below it; a list
    of percentages gives an array. Exact for groups smaller than ``accuracy``."""
    return Column(AggregateCall("percentile_approx",
                                (_c(col), _constant(percentage), to_expr(accuracy))))


def _constant(value: Any) -> Literal:
    """A literal (or a list of literals, given as a list or as ``array(...)``)."""
    if isinstance(value, (list, tuple)):
        return Literal([_constant(v).value for v in value])
    expr = to_expr(value)
    if isinstance(expr, FunctionCall) and expr.name == "array":
        return Literal([_constant(Column(a)).value for a in expr.args])
    if not isinstance(expr, Literal):
        raise AnalysisException(f"Expected a literal, got {expr.display_name()}.",
                                error_class="NON_FOLDABLE_INPUT")
    return expr


# ---- window functions: used with .over(Window...) --------------------------------------
def row_number() -> Column: return Column(RankingCall("row_number"))
def rank() -> Column: return Column(RankingCall("rank"))
def dense_rank() -> Column: return Column(RankingCall("dense_rank"))
def percent_rank() -> Column: return Column(RankingCall("percent_rank"))
def cume_dist() -> Column: return Column(RankingCall("cume_dist"))
def ntile(n: int) -> Column: return Column(RankingCall("ntile", (Literal(n),)))


def lag(col: Any, offset: int = 1, default: Any = None) -> Column:
    """The value ``offset`` rows before in the window's order (``default`` past the start)."""
    return Column(RankingCall("lag", (_c(col), Literal(offset), to_expr(default))))


def lead(col: Any, offset: int = 1, default: Any = None) -> Column:
    """The value ``offset`` rows after in the window's order (``default`` past the end)."""
    return Column(RankingCall("lead", (_c(col), Literal(offset), to_expr(default))))


def nth_value(col: Any, offset: int, ignoreNulls: bool | None = False) -> Column:
    """The value at the ``offset``-th row of the window frame (the ``offset``-th non-NULL
    value with ``ignoreNulls``); NULL while the frame holds fewer, so with an ordered
    window's default frame it is NULL until the ``offset``-th row."""
    args = (_c(col), to_expr(offset))
    return Column(RankingCall("nth_value", (*args, Literal(True)) if ignoreNulls else args))


# ---- families kept in modules of their own, re-exported here as PySpark has them ------
from unbounded.sql import (  # noqa: E402
    aggregate_functions,
    collection_functions,
    datetime_functions,
    math_functions,
    string_functions,
)
from unbounded.sql.aggregate_functions import *  # noqa: E402, F403
from unbounded.sql.collection_functions import *  # noqa: E402, F403
from unbounded.sql.datetime_functions import *  # noqa: E402, F403
from unbounded.sql.math_functions import *  # noqa: E402, F403
from unbounded.sql.string_functions import *  # noqa: E402, F403

__all__ += aggregate_functions.__all__
__all__ += collection_functions.__all__
__all__ += datetime_functions.__all__
__all__ += math_functions.__all__
__all__ += string_functions.__all__
