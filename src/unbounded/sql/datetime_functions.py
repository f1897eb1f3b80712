"""PySpark's date and time functions (``pyspark.sql.functions``), re-exported by
``unbounded.sql.functions``; each compiles through the engine builder of the same name
in ``unbounded/engine/datetime_functions.py``. Arguments PySpark takes as plain Python
values (formats, units, day names) become literals, so a column is named as PySpark
names it (``trunc(d, year)``)."""

from __future__ import annotations

from typing import Any

from unbounded.plan.expressions import FunctionCall, Literal
from unbounded.sql.column import Column
from unbounded.sql.function_call import column_expr, function_call

__all__ = [
    "add_months", "date_diff", "date_from_unix_date", "date_part", "date_sub", "dateadd",
    "datepart", "day", "dayname", "dayofyear", "extract", "from_utc_timestamp", "last_day",
    "make_date", "make_timestamp", "monthname", "months_between", "next_day", "now",
    "quarter", "timestamp_add", "timestamp_diff", "timestamp_micros", "to_unix_timestamp",
    "to_utc_timestamp", "trunc", "unix_date", "unix_micros", "unix_millis", "unix_seconds",
    "weekday", "weekofyear",
]


def _value_or_column(value: Any) -> Column:
    """A Python value as a literal, a Column as itself (never a column name)."""
    return value if isinstance(value, Column) else Column(Literal(value))


def add_months(start: Any, months: Any) -> Column:
    return Column(FunctionCall("add_months", (column_expr(start), column_expr(months))))


def date_sub(start: Any, days: Any) -> Column:
    return Column(FunctionCall("date_sub", (column_expr(start), column_expr(days))))


def dateadd(start: Any, days: Any) -> Column:
    return Column(FunctionCall("date_add", (column_expr(start), column_expr(days))))


def date_diff(end: Any, start: Any) -> Column:
    return function_call("date_diff", end, start)


def weekday(col: Any) -> Column: return function_call("weekday", col)
def dayname(col: Any) -> Column: return function_call("dayname", col)
def monthname(col: Any) -> Column: return function_call("monthname", col)
def last_day(date: Any) -> Column: return function_call("last_day", date)
def dayofyear(col: Any) -> Column: return function_call("dayofyear", col)
def weekofyear(col: Any) -> Column: return function_call("weekofyear", col)
def quarter(col: Any) -> Column: return function_call("quarter", col)
def day(col: Any) -> Column: return function_call("day", col)
def unix_seconds(col: Any) -> Column: return function_call("unix_seconds", col)
def unix_millis(col: Any) -> Column: return function_call("unix_millis", col)
def unix_micros(col: Any) -> Column: return function_call("unix_micros", col)
def unix_date(col: Any) -> Column: return function_call("unix_date", col)
def date_from_unix_date(days: Any) -> Column: return function_call("date_from_unix_date", days)
def timestamp_micros(col: Any) -> Column: return function_call("timestamp_micros", col)


def now() -> Column:
    return Column(FunctionCall("current_timestamp"))


def next_day(date: Any, dayOfWeek: str) -> Column:
    """The first date after ``date`` on ``dayOfWeek`` ("Mon", "monday", "MO", ...)."""
    return Column(FunctionCall("next_day", (column_expr(date), Literal(dayOfWeek))))


def trunc(date: Any, format: str) -> Column:
    """``date`` truncated to its "year", "quarter", "month" or "week"."""
    return Column(FunctionCall("trunc", (column_expr(date), Literal(format))))


def months_between(date1: Any, date2: Any, roundOff: bool = True) -> Column:
    return Column(FunctionCall("months_between", (column_expr(date1), column_expr(date2),
                                                  Literal(roundOff))))


def make_date(year: Any, month: Any, day: Any) -> Column:
    return function_call("make_date", year, month, day)


def make_timestamp(years: Any, months: Any, days: Any, hours: Any, mins: Any, secs: Any,  # noqa: PLR0917 (PySpark's signature)
                   timezone: Any = None) -> Column:
    """A timestamp from its fields; ``timezone`` (a literal) says where they are local."""
    args = [column_expr(c) for c in (years, months, days, hours, mins, secs)]
    if timezone is not None:
        args.append(column_expr(timezone))
    return Column(FunctionCall("make_timestamp", tuple(args)))


def to_unix_timestamp(timestamp: Any, format: Any = None) -> Column:
    fmt = _value_or_column(format if format is not None else "yyyy-MM-dd HH:mm:ss")
    return Column(FunctionCall("to_unix_timestamp", (column_expr(timestamp), fmt.expr)))


def from_utc_timestamp(timestamp: Any, tz: Any) -> Column:
    return Column(FunctionCall("from_utc_timestamp", (column_expr(timestamp),
                                                      _value_or_column(tz).expr)))


def to_utc_timestamp(timestamp: Any, tz: Any) -> Column:
    return Column(FunctionCall("to_utc_timestamp", (column_expr(timestamp),
                                                    _value_or_column(tz).expr)))


def date_part(field: Any, source: Any) -> Column:
    """A field ("YEAR", "DOY", "SECOND", ...) of a date or timestamp; ``field`` is a
    literal Column, as in PySpark (``F.lit("YEAR")``)."""
    return function_call("date_part", field, source)


def _field_call(name: str, field: Any, source: Any) -> Column:
    field_expr, source_expr = column_expr(field), column_expr(source)
    shown = f"{name}({field_expr.display_name()} FROM {source_expr.display_name()})"
    return Column(FunctionCall("date_part", (field_expr, source_expr), (("display", shown),)))


def extract(field: Any, source: Any) -> Column:
    return _field_call("extract", field, source)


def datepart(field: Any, source: Any) -> Column:
    return _field_call("datepart", field, source)


def timestamp_diff(unit: str, start: Any, end: Any) -> Column:
    """Whole ``unit``s (YEAR ... MICROSECOND) from ``start`` to ``end``."""
    return Column(FunctionCall("timestampdiff", (Literal(unit), column_expr(start),
                                                 column_expr(end))))


def timestamp_add(unit: str, quantity: Any, ts: Any) -> Column:
    return Column(FunctionCall("timestampadd", (Literal(unit), column_expr(quantity),
                                                column_expr(ts))))
