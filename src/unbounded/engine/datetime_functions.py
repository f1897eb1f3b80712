"""Engine builders of PySpark's date and time functions (Polars expressions with Spark's
semantics), registered by name in ``engine.functions.FUNCTIONS`` when imported (which
``engine/functions.py`` does on the first name its own table lacks).

A timestamp is an instant; its fields, its date, its text and the instant a string names
are read in the session time zone (``ctx.time_zone``, plan/time_zones.py), as Spark's
time-zone-aware expressions are, while epochs and ``window()`` are zone-free. A date
argument may be a date, a timestamp (its date in the session zone) or a string (Spark's
implicit cast). Formats, units and field names are literals, as Spark requires for most
of them; a column there fails at analysis naming the function.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from unbounded.engine.ansi import checked
from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import cast_to
from unbounded.engine.functions import FUNCTIONS, register
from unbounded.errors import AnalysisException, DateTimeException, IllegalArgumentException
from unbounded.plan import types as T
from unbounded.plan.datetime_format import format_instant, spark_to_chrono
from unbounded.plan.expressions import FunctionCall, Literal
from unbounded.plan.time_zones import from_local, to_local
from unbounded.plan.timestamp_text import text_to_timestamp

__all__ = ["DATE_PARTS", "TIMESTAMP_UNITS", "ZONE_AWARE_FUNCTIONS", "day_of_week_number",
           "parse_timestamp", "text_to_instant"]

Builder = Callable[[FunctionCall, list[pl.Expr], CompileContext], pl.Expr]
_UTC_US = pl.Datetime("us", "UTC")
_DAY_US = 86_400_000_000
_MONTHS = ("JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST",
           "SEPTEMBER", "OCTOBER", "NOVEMBER", "DECEMBER")


# ---- argument helpers ------------------------------------------------------------------
def _as_date(arg: pl.Expr, ctx: CompileContext) -> pl.Expr:
    dtype = ctx.dtype_of(arg)
    if dtype == pl.Date:
        return arg
    if isinstance(dtype, pl.Datetime):
        return to_local(arg, ctx.time_zone).dt.date()
    if dtype == pl.String:
        return cast_to(arg, dtype, T.DateType())
    return arg.cast(pl.Date)


def _as_timestamp(arg: pl.Expr, ctx: CompileContext) -> pl.Expr:
    dtype = ctx.dtype_of(arg)
    if isinstance(dtype, pl.Datetime):
        return arg.cast(_UTC_US) if dtype.time_zone else arg.dt.replace_time_zone("UTC")
    if dtype == pl.Date:
        return from_local(arg.cast(pl.Datetime("us")), ctx.time_zone)
    return cast_to(arg, dtype, T.TimestampType(), zone=ctx.time_zone)


def _as_local(arg: pl.Expr, ctx: CompileContext) -> pl.Expr:
    """The wall-clock time (naive) of a timestamp, date or string in the session zone."""
    dtype = ctx.dtype_of(arg)
    if dtype == pl.Date:
        return arg.cast(pl.Datetime("us"))
    if isinstance(dtype, pl.Datetime) or dtype == pl.String:
        return to_local(_as_timestamp(arg, ctx), ctx.time_zone)
    return arg.dt.replace_time_zone(None)  # not a time: analysis fails naming the call


def _literal_text(call: FunctionCall, index: int, what: str) -> str:
    arg = call.args[index] if index < len(call.args) else None
    if not isinstance(arg, Literal) or not isinstance(arg.value, str):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.NON_FOLDABLE_INPUT] {call.name}: the {what} must be a "
            "string literal.", error_class="DATATYPE_MISMATCH.NON_FOLDABLE_INPUT")
    return arg.value


def _since_midnight(arg: pl.Expr, ctx: CompileContext) -> pl.Expr:
    """Microseconds from the first instant of the argument's day in the session zone."""
    local = _as_local(arg, ctx)
    midnight = from_local(local.dt.truncate("1d"), ctx.time_zone)
    moment = from_local(local, ctx.time_zone) if ctx.dtype_of(arg) == pl.Date \
        else _as_timestamp(arg, ctx)
    return moment.dt.epoch("us") - midnight.dt.epoch("us")


def _micros_of_day(ts: pl.Expr) -> pl.Expr:
    return ts.dt.epoch("us") - ts.dt.date().cast(pl.Int64) * _DAY_US


# ---- months and days -------------------------------------------------------------------
@register("add_months")
def _add_months(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The same day ``n`` months on, or that month's last day when it is shorter."""
    return _as_date(args[0], ctx).dt.offset_by(pl.format("{}mo", args[1].cast(pl.Int64)))


@register("date_add")
def _date_add(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _as_date(args[0], ctx) + pl.duration(days=args[1])


@register("date_sub")
def _date_sub(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _as_date(args[0], ctx) - pl.duration(days=args[1])


@register("datediff", "date_diff")
def _datediff(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    end, start = _as_date(args[0], ctx), _as_date(args[1], ctx)
    return (end - start).dt.total_days().cast(pl.Int32)


@register("weekday")
def _weekday(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return (_as_date(args[0], ctx).dt.weekday() - 1).cast(pl.Int32)  # Monday = 0


@register("dayname")
def _dayname(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _as_date(args[0], ctx).dt.strftime("%a")


@register("monthname")
def _monthname(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _as_date(args[0], ctx).dt.strftime("%b")


@register("last_day")
def _last_day(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _as_date(args[0], ctx).dt.month_end()


_DAYS_OF_WEEK = {name: i + 1 for i, day in enumerate(
    ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"))
    for name in (day[:2], day[:3], day)}


def day_of_week_number(text: str) -> int | None:
    """Spark's day names for ``next_day``: two or three letters or the whole name, any
    case; Monday = 1."""
    return _DAYS_OF_WEEK.get(text.strip().upper())


@register("next_day")
def _next_day(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The first date after the argument that falls on the named day."""
    name = _literal_text(call, 1, "day of week")
    target = day_of_week_number(name)
    date = _as_date(args[0], ctx)
    if target is None:  # as Spark: NULL, or under ANSI an error once a date comes
        nothing = pl.lit(None, dtype=pl.Date)
        if not ctx.ansi:
            return nothing
        return checked(nothing, date.is_not_null(), pl.lit(name), pl.Date(),
                       _illegal_day_of_week)
    ahead = (target - date.dt.weekday() - 1) % 7 + 1
    return date + pl.duration(days=ahead)


def _illegal_day_of_week(name: str) -> Exception:
    return IllegalArgumentException(
        f"[ILLEGAL_DAY_OF_WEEK] Illegal input for day of week: {name}. SQLSTATE: 22009",
        error_class="ILLEGAL_DAY_OF_WEEK")


_TRUNC_UNITS = {"year": "1y", "yyyy": "1y", "yy": "1y", "month": "1mo", "mon": "1mo",
                "mm": "1mo", "week": "1w", "quarter": "1q"}


@register("trunc")
def _trunc(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """A date truncated to its year, quarter, month or week (Monday); NULL for another
    unit, as Spark."""
    unit = _TRUNC_UNITS.get(_literal_text(call, 1, "format").lower())
    if unit is None:
        return pl.lit(None, dtype=pl.Date)
    return _as_date(args[0], ctx).dt.truncate(unit)


@register("months_between")
def _months_between(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Spark's ``DateTimeUtils.monthsBetween``: whole months when the days of month are
    equal or both are their month's last, else the day and time difference over 31-day
    months, rounded to 8 digits (half up) unless ``roundOff`` is false."""
    t1, t2 = _as_local(args[0], ctx), _as_local(args[1], ctx)
    d1, d2 = t1.dt.date(), t2.dt.date()
    # The time of day is the time since the day's first instant (23 or 25 hours a day
    # across a DST change), as Spark's monthsBetween counts it.
    of_day1, of_day2 = (_since_midnight(a, ctx) for a in args[:2])
    months = (d1.dt.year() * 12 + d1.dt.month() - d2.dt.year() * 12 - d2.dt.month()
              ).cast(pl.Float64)
    whole = (d1.dt.day() == d2.dt.day()) | ((d1 == d1.dt.month_end())
                                            & (d2 == d2.dt.month_end()))
    days = (d1.dt.day() - d2.dt.day()).cast(pl.Float64) \
        + (of_day1 - of_day2).cast(pl.Float64) / _DAY_US
    diff = pl.when(whole).then(months).otherwise(months + days / 31.0)
    round_off = call.args[2] if len(call.args) > 2 else Literal(True)
    if not isinstance(round_off, Literal) or not isinstance(round_off.value, bool):
        raise AnalysisException("months_between: roundOff must be a boolean literal.",
                                error_class="DATATYPE_MISMATCH.NON_FOLDABLE_INPUT")
    if round_off.value:
        diff = (diff * 1e8 + 0.5).floor() / 1e8
    return diff


# ---- construction ----------------------------------------------------------------------
@register("make_date")
def _make_date(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    year, month, day = (a.cast(pl.Int32) for a in args)
    valid = _valid_date(year, month, day)
    safe = pl.date(year, pl.when(valid).then(month).otherwise(1),
                   pl.when(valid).then(day).otherwise(1))
    result = pl.when(valid).then(safe)
    if not ctx.ansi:
        return result
    given = pl.all_horizontal([year.is_not_null(), month.is_not_null(), day.is_not_null()])
    value = pl.struct(year.alias("y"), month.alias("m"), day.alias("d"))
    return checked(result, given & ~valid, value, pl.Date(), _invalid_date)


def _valid_date(year: pl.Expr, month: pl.Expr, day: pl.Expr) -> pl.Expr:
    month_ok = month.is_between(1, 12)
    first = pl.date(year, pl.when(month_ok).then(month).otherwise(1), 1)
    return month_ok & day.is_between(1, first.dt.month_end().dt.day())


def _invalid_date(value: dict[str, int]) -> Exception:
    """Java's message for the first invalid field, as Spark shows it."""
    month, day = value["m"], value["d"]
    if not 1 <= month <= 12:
        text = f"Invalid value for MonthOfYear (valid values 1 - 12): {month}"
    elif not 1 <= day <= 31:
        text = f"Invalid value for DayOfMonth (valid values 1 - 28/31): {day}"
    else:
        text = f"Invalid date '{_MONTHS[month - 1]} {day}'"
    return DateTimeException(
        f"[DATETIME_FIELD_OUT_OF_BOUNDS.WITHOUT_SUGGESTION] {text}.  SQLSTATE: 22023",
        error_class="DATETIME_FIELD_OUT_OF_BOUNDS.WITHOUT_SUGGESTION")


@register("make_timestamp")
def _make_timestamp(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """A timestamp from its fields (seconds with a fraction), in the time zone given as a
    literal sixth argument, else the session's."""
    year, month, day, hour, minute = (a.cast(pl.Int32) for a in args[:5])
    micros = (args[5].cast(pl.Float64) * 1_000_000).round(0).cast(pl.Int64)
    valid = (_valid_date(year, month, day) & hour.is_between(0, 23)
             & minute.is_between(0, 59) & micros.is_between(0, 60_000_000 - 1))
    date = pl.date(year, pl.when(valid).then(month).otherwise(1),
                   pl.when(valid).then(day).otherwise(1))
    local = date.cast(pl.Datetime("us")) + pl.duration(
        hours=hour, minutes=minute, microseconds=micros)
    zone = _literal_text(call, 6, "time zone") if len(call.args) > 6 else ctx.time_zone
    moment = from_local(local, zone)
    result = pl.when(valid).then(moment)
    if not ctx.ansi:
        return result
    given = pl.all_horizontal([a.is_not_null() for a in args[:6]])
    value = pl.struct(year.alias("y"), month.alias("m"), day.alias("d"),
                      hour.alias("h"), minute.alias("mi"), micros.alias("us"))
    return checked(result, given & ~valid, value, _UTC_US, _invalid_timestamp)


def _invalid_timestamp(value: dict[str, int]) -> Exception:
    if not 0 <= value["h"] <= 23:
        text = f"Invalid value for HourOfDay (valid values 0 - 23): {value['h']}"
    elif not 0 <= value["mi"] <= 59:
        text = f"Invalid value for MinuteOfHour (valid values 0 - 59): {value['mi']}"
    elif not 0 <= value["us"] < 60_000_000:
        text = f"Invalid value for SecondOfMinute (valid values 0 - 59): {value['us'] // 10**6}"
    else:
        return _invalid_date(value)
    return DateTimeException(
        f"[DATETIME_FIELD_OUT_OF_BOUNDS.WITHOUT_SUGGESTION] {text}.  SQLSTATE: 22023",
        error_class="DATETIME_FIELD_OUT_OF_BOUNDS.WITHOUT_SUGGESTION")


# ---- epochs ----------------------------------------------------------------------------
def _epoch(unit_us: int) -> Builder:
    def build(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
        return _as_timestamp(args[0], ctx).dt.epoch("us") // unit_us  # floor, as Spark

    return build


for _epoch_name, _epoch_unit in (("unix_seconds", 1_000_000), ("unix_millis", 1_000),
                                 ("unix_micros", 1)):
    FUNCTIONS[_epoch_name] = _epoch(_epoch_unit)


@register("timestamp_seconds")
def _timestamp_seconds(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return (args[0].cast(pl.Float64) * 1_000_000).round(0).cast(pl.Int64).cast(_UTC_US)


@register("timestamp_millis")
def _timestamp_millis(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return (args[0].cast(pl.Int64) * 1_000).cast(_UTC_US)


@register("timestamp_micros")
def _timestamp_micros(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].cast(pl.Int64).cast(_UTC_US)


@register("unix_date")
def _unix_date(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _as_date(args[0], ctx).cast(pl.Int32)


@register("date_from_unix_date")
def _date_from_unix_date(call: FunctionCall, args: list[pl.Expr],
                         ctx: CompileContext) -> pl.Expr:
    return args[0].cast(pl.Int32).cast(pl.Date)


@register("to_unix_timestamp")
def _to_unix_timestamp(call: FunctionCall, args: list[pl.Expr],
                       ctx: CompileContext) -> pl.Expr:
    """``unix_timestamp`` with its format as a literal argument (Spark shows it so)."""
    fmt = _literal_text(call, 1, "format") if len(call.args) > 1 else None
    inner = FunctionCall("unix_timestamp", call.args[:1], (("format", fmt),) if fmt else ())
    return FUNCTIONS["unix_timestamp"](inner, args[:1], ctx)


# ---- time zones ------------------------------------------------------------------------
@register("from_utc_timestamp")
def _from_utc_timestamp(call: FunctionCall, args: list[pl.Expr],
                        ctx: CompileContext) -> pl.Expr:
    """The wall-clock time in the zone of a UTC instant, as a timestamp read as UTC."""
    zone = _literal_text(call, 1, "time zone")
    return _as_timestamp(args[0], ctx).dt.convert_time_zone(zone).dt.replace_time_zone("UTC")


@register("to_utc_timestamp")
def _to_utc_timestamp(call: FunctionCall, args: list[pl.Expr],
                      ctx: CompileContext) -> pl.Expr:
    """A wall-clock time in the zone (held as UTC) as the instant it names; in a
    daylight-saving overlap the earlier instant, as Java's ``ZonedDateTime.of``."""
    zone = _literal_text(call, 1, "time zone")
    local = _as_timestamp(args[0], ctx).dt.replace_time_zone(None)
    return local.dt.replace_time_zone(zone, ambiguous="earliest").dt.convert_time_zone("UTC")


# ---- fields ----------------------------------------------------------------------------
def _second_fraction(ts: pl.Expr) -> pl.Expr:
    micros = ts.dt.second().cast(pl.Int64) * 1_000_000 + ts.dt.microsecond()
    return (micros.cast(pl.Float64) / 1_000_000).cast(pl.Decimal(8, 6))


DATE_PARTS: dict[str, Callable[[pl.Expr], pl.Expr]] = {}
for _names, _part in (
        (("YEAR", "Y", "YEARS", "YR", "YRS"), lambda t: t.dt.year().cast(pl.Int32)),
        (("YEAROFWEEK",), lambda t: t.dt.iso_year().cast(pl.Int32)),
        (("QUARTER", "QTR"), lambda t: t.dt.quarter().cast(pl.Int32)),
        (("MONTH", "MON", "MONS", "MONTHS"), lambda t: t.dt.month().cast(pl.Int32)),
        (("WEEK", "W", "WEEKS"), lambda t: t.dt.week().cast(pl.Int32)),
        (("DAY", "D", "DAYS"), lambda t: t.dt.day().cast(pl.Int32)),
        (("DAYOFWEEK", "DOW"), lambda t: (t.dt.weekday() % 7 + 1).cast(pl.Int32)),
        (("DAYOFWEEK_ISO", "DOW_ISO"), lambda t: t.dt.weekday().cast(pl.Int32)),
        (("DOY",), lambda t: t.dt.ordinal_day().cast(pl.Int32)),
        (("HOUR", "H", "HOURS", "HR", "HRS"), lambda t: t.dt.hour().cast(pl.Int32)),
        (("MINUTE", "M", "MIN", "MINS", "MINUTES"), lambda t: t.dt.minute().cast(pl.Int32)),
        (("SECOND", "S", "SEC", "SECONDS", "SECS"), _second_fraction)):
    for _n in _names:
        DATE_PARTS[_n] = _part


@register("date_part")
def _date_part(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    field = _literal_text(call, 0, "field")
    part = DATE_PARTS.get(field.upper())
    if part is None:
        raise AnalysisException(
            f"[INVALID_EXTRACT_FIELD] Cannot extract `{field}` from "
            f'"{call.args[1].display_name()}". SQLSTATE: 42601',
            error_class="INVALID_EXTRACT_FIELD")
    dtype = ctx.dtype_of(args[1])
    source = args[1] if dtype == pl.Date and field.upper() not in _TIME_FIELDS \
        else _as_local(args[1], ctx)
    return part(source)


_TIME_FIELDS = {n for n, p in DATE_PARTS.items()
                if n.startswith(("H", "M", "S")) and not n.startswith("MON")}


# ---- timestampadd / timestampdiff ------------------------------------------------------
TIMESTAMP_UNITS: dict[str, int] = {"MICROSECOND": 1, "MILLISECOND": 1_000,
                                   "SECOND": 1_000_000, "MINUTE": 60_000_000,
                                   "HOUR": 3_600_000_000, "DAY": _DAY_US,
                                   "WEEK": 7 * _DAY_US}
_MONTH_UNITS = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}


def _unit(call: FunctionCall) -> str:
    unit = _literal_text(call, 0, "unit").upper()
    if unit not in TIMESTAMP_UNITS and unit not in _MONTH_UNITS:
        raise AnalysisException(
            f"[INVALID_PARAMETER_VALUE.DATETIME_UNIT] The value of parameter(s) `unit` in "
            f"`{call.name}` is invalid: expects one of the units without quotes YEAR, "
            "QUARTER, MONTH, WEEK, DAY, DAYOFYEAR, HOUR, MINUTE, SECOND, MILLISECOND, "
            f"MICROSECOND, but got the string literal '{unit}'.",
            error_class="INVALID_PARAMETER_VALUE.DATETIME_UNIT")
    return unit


@register("timestampadd")
def _timestamp_add(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    unit = _unit(call)
    ts, amount = _as_timestamp(args[2], ctx), args[1].cast(pl.Int64)
    if unit in _MONTH_UNITS:  # on the wall clock of the session zone
        local = to_local(ts, ctx.time_zone)
        moved = local.dt.offset_by(pl.format("{}mo", amount * _MONTH_UNITS[unit]))
        return from_local(moved, ctx.time_zone)
    if unit in ("DAY", "WEEK"):  # days too: a day across a DST change is 23 or 25 hours
        local = to_local(ts, ctx.time_zone)
        moved = local + pl.duration(microseconds=amount * TIMESTAMP_UNITS[unit])
        return from_local(moved, ctx.time_zone)
    return ts + pl.duration(microseconds=amount * TIMESTAMP_UNITS[unit])


@register("timestampdiff")
def _timestamp_diff(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Whole units from start to end, truncated toward zero (Java's ``until`` between the
    wall-clock times in the session zone)."""
    unit = _unit(call)
    start, end = _as_local(args[1], ctx), _as_local(args[2], ctx)
    if unit in _MONTH_UNITS:
        months = _whole_months(start, end)
        return _truncated_div(months, _MONTH_UNITS[unit])
    return _truncated_div(end.dt.epoch("us") - start.dt.epoch("us"), TIMESTAMP_UNITS[unit])


def _whole_months(start: pl.Expr, end: pl.Expr) -> pl.Expr:
    raw = (end.dt.year() * 12 + end.dt.month() - start.dt.year() * 12 - start.dt.month()
           ).cast(pl.Int64)
    # The rest of a month: day of month and time of day, compared as one number.
    rest_start = start.dt.day().cast(pl.Int64) * _DAY_US + _micros_of_day(start)
    rest_end = end.dt.day().cast(pl.Int64) * _DAY_US + _micros_of_day(end)
    return (pl.when((raw > 0) & (rest_end < rest_start)).then(raw - 1)
            .when((raw < 0) & (rest_end > rest_start)).then(raw + 1).otherwise(raw))


def _truncated_div(value: pl.Expr, by: int) -> pl.Expr:
    quotient = value.abs() // by
    return pl.when(value < 0).then(-quotient).otherwise(quotient)


# ---- the session zone: current date, parsing, formatting, fields, truncation ----------
@register("current_date")
def _current_date(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The batch time's date in the session zone."""
    now = pl.lit(ctx.batch_timestamp_us, dtype=pl.Int64).cast(_UTC_US)
    return to_local(now, ctx.time_zone).dt.date()


@register("to_timestamp", "cast_timestamp")
def _to_timestamp(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """A string parsed with a Spark pattern: wall-clock time in the session zone unless
    the pattern reads an offset; without a pattern, Spark's cast."""
    fmt = call.param("format")
    if fmt is None or ctx.dtype_of(args[0]) != pl.String:
        return _as_timestamp(args[0], ctx)
    return parse_timestamp(args[0], fmt, ctx.time_zone)


def text_to_instant(text: pl.Expr, zone: str) -> pl.Expr:
    """Spark's reading of timestamp text without a pattern (``2026-03-08``,
    ``2026-03-08T09:05``, ``2026-3-8 9:05:07.5+01:00``, ``... UTC``), each row in its own
    shape (plan/timestamp_text.py): an offset or zone names the instant, none means the
    wall clock in ``zone``."""
    return text_to_timestamp(text, zone)


def parse_timestamp(text: pl.Expr, pattern: str, zone: str) -> pl.Expr:
    """Text read with a Spark pattern: wall-clock time in ``zone`` unless the pattern
    reads an offset; NULL where it does not match."""
    chrono = spark_to_chrono(pattern)
    if "%z" in chrono or "%:z" in chrono:
        return text.str.to_datetime(chrono, time_unit="us", time_zone="UTC", strict=False)
    return from_local(text.str.to_datetime(chrono, time_unit="us", strict=False), zone)


@register("to_date")
def _to_date(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    fmt = call.param("format")
    if fmt is None or ctx.dtype_of(args[0]) != pl.String:
        return _as_date(args[0], ctx)
    return args[0].str.to_date(spark_to_chrono(fmt), strict=False)


@register("unix_timestamp")
def _unix_timestamp(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    if not args:
        return pl.lit(ctx.batch_timestamp_us // 1_000_000, dtype=pl.Int64)
    return _to_timestamp(call, args, ctx).dt.epoch("s")


@register("from_unixtime")
def _from_unixtime(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    moment = (args[0].cast(pl.Int64) * 1_000_000).cast(_UTC_US)
    return format_instant(moment, call.param("format", "yyyy-MM-dd HH:mm:ss"), ctx.time_zone)


@register("date_format")
def _date_format(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return format_instant(_as_timestamp(args[0], ctx), str(call.param("format")), ctx.time_zone)


def _local_field(part: Callable[[pl.Expr], pl.Expr]) -> Builder:
    def build(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
        return part(_as_local(args[0], ctx))

    return build


for _field_name, _field in (
        ("year", DATE_PARTS["YEAR"]), ("quarter", DATE_PARTS["QUARTER"]),
        ("month", DATE_PARTS["MONTH"]), ("weekofyear", DATE_PARTS["WEEK"]),
        ("day", DATE_PARTS["DAY"]), ("dayofmonth", DATE_PARTS["DAY"]),
        ("dayofyear", DATE_PARTS["DOY"]), ("dayofweek", DATE_PARTS["DAYOFWEEK"]),
        ("hour", DATE_PARTS["HOUR"]), ("minute", DATE_PARTS["MINUTE"]),
        ("second", lambda t: t.dt.second().cast(pl.Int32))):
    FUNCTIONS[_field_name] = _local_field(_field)


_DATE_TRUNC_UNITS = {"year": "1y", "yyyy": "1y", "yy": "1y", "quarter": "1q",
                     "month": "1mo", "mm": "1mo", "mon": "1mo", "week": "1w", "day": "1d",
                     "dd": "1d", "hour": "1h", "minute": "1m", "second": "1s",
                     "millisecond": "1ms", "microsecond": "1us"}


@register("date_trunc")
def _date_trunc(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Truncated on the session zone's wall clock. As Java's ``ZonedDateTime.truncatedTo``,
    the instant keeps its offset when the truncated time is valid with it (an overlap);
    units from a week up start at midnight (the earlier instant in an overlap)."""
    unit = str(call.param("unit")).lower()
    if unit not in _DATE_TRUNC_UNITS:
        raise AnalysisException(f"date_trunc does not know the unit {unit!r}")
    ts = _as_timestamp(args[0], ctx)
    local = to_local(ts, ctx.time_zone)
    truncated = local.dt.truncate(_DATE_TRUNC_UNITS[unit])
    earliest = from_local(truncated, ctx.time_zone)
    if unit in ("hour", "minute", "second", "millisecond", "microsecond", "day", "dd"):
        kept = ts - (local - truncated)
        return pl.when(to_local(kept, ctx.time_zone) == truncated).then(kept) \
            .otherwise(earliest)
    return earliest


# Every function above reads the session zone (or may, through an implicit cast): a
# DataFrame binds its zone into their calls when it is built (engine/zone_binding.py).
ZONE_AWARE_FUNCTIONS = frozenset(
    {n for n, b in FUNCTIONS.items() if b.__module__ == __name__}
    | {"try_cast", "from_json", "to_json"})
