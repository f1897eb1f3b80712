"""Spark's reading of date and timestamp text without a pattern: CAST from a string, the
casts the analyzer inserts, and JSON values read without a format. Each row is read in
its own shape, as ``SparkDateTimeUtils.stringToTimestamp`` and ``stringToDate`` read it
(Polars would infer one format per column, from its first value).

Accepted after trimming blanks and ASCII controls: ``[+-]yyyy[yy]``, then optionally
``-[m]m``, ``-[d]d``, then ``T`` or a space and ``[h]h[:[m]m[:[s]s[.fraction][zone]]]``;
or a time alone (``[h]h:[m]m...``, or ``T[h]h...`` at the very first character), dated
today in its zone. The fraction keeps six digits (more are truncated); the zone is
``Z``, ``[+-]h[h][[:]mm[[:]ss]]``, ``UTC``/``GMT``/``UT`` with or without an offset, a
short id (``PST``) or a region (``Europe/Paris``, exact case); a time without one is
wall-clock time in the session zone. A date reads ``[+-]yyyy[yyy][-[m]m[-[d]d]]``
followed by nothing, or by a space or ``T`` and anything. Text that does not read, an
impossible date or time, or an unknown zone is NULL (under ANSI mode the cast raises).

The common shape (``yyyy-MM-dd HH:mm:ss[.ffffff]`` in every row of a batch) is one
Polars ``strptime``; any other batch is read by two regular expressions and integer
arithmetic over its columns, with one conversion per distinct region zone named.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from functools import lru_cache

import polars as pl

from unbounded.plan.time_zones import from_local, to_local

__all__ = ["dates_of", "text_to_date", "text_to_timestamp", "text_to_timestamp_ntz",
           "timestamps_of"]

_UTC_US = pl.Datetime("us", "UTC")
_NAIVE_US = pl.Datetime("us")
_DAY_US = 86_400_000_000
_MAX_DAYS = 106_751_990  # the days a Long of microseconds holds (Spark's range)
_BLANKS = "".join(map(chr, range(33))) + "\x7f"  # UTF8String.isWhitespaceOrISOControl
_JAVA_TRIM = "".join(map(chr, range(33)))  # String.trim

_COMMON = r"^\d{4}-\d{2}-\d{2}[ T](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?$"
_COMMON_AWARE = (r"^\d{4}-\d{2}-\d{2}[ T](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
                 r"(?:Z|[+-](?:0\d|1[0-7]):[0-5]\d)$")
_AWARE_FORMAT = "%Y-%m-%d %H:%M:%S%.f%#z"
_COMMON_DATE = r"^\d{4}-\d{2}-\d{2}$"
_DATE_TIME = (r"(?s)^(?P<sign>[+-])?(?P<year>\d{4,6})(?:-(?P<month>\d{1,2})"
              r"(?:-(?P<day>\d{1,2})(?:[ T](?P<time>.*))?)?)?$")
_TIME = (r"(?s)^(?P<hour>\d{1,2})(?::(?P<minute>\d{1,2})(?::(?P<second>\d{1,2})"
         r"(?:\.(?P<fraction>\d*))?(?P<zone>\D.*)?)?)?$")
_DATE = (r"(?s)^(?P<sign>[+-])?(?P<year>\d{4,7})(?:-(?P<month>\d{1,2})"
         r"(?:-(?P<day>\d{1,2})(?:[ T].*)?)?)?$")
_OFFSET = r"^(?:UTC|GMT|UT)?([+-])(\d{1,2}|\d{4}|\d\d:\d\d|\d{6}|\d\d:\d\d:\d\d)$"
_UTC_IDS = ("Z", "UTC", "GMT", "UT")
# java.time.ZoneId.SHORT_IDS
_SHORT_IDS = {
    "EST": "-05:00", "MST": "-07:00", "HST": "-10:00", "ACT": "Australia/Darwin",
    "AET": "Australia/Sydney", "AGT": "America/Argentina/Buenos_Aires",
    "ART": "Africa/Cairo", "AST": "America/Anchorage", "BET": "America/Sao_Paulo",
    "BST": "Asia/Dhaka", "CAT": "Africa/Harare", "CNT": "America/St_Johns",
    "CST": "America/Chicago", "CTT": "Asia/Shanghai", "EAT": "Africa/Addis_Ababa",
    "ECT": "Europe/Paris", "IET": "America/Indiana/Indianapolis", "IST": "Asia/Kolkata",
    "JST": "Asia/Tokyo", "MIT": "Pacific/Apia", "NET": "Asia/Yerevan",
    "NST": "Pacific/Auckland", "PLT": "Asia/Karachi", "PNT": "America/Phoenix",
    "PRT": "America/Puerto_Rico", "PST": "America/Los_Angeles", "SST": "Pacific/Guadalcanal",
    "VST": "Asia/Ho_Chi_Minh"}


# ---- expressions -----------------------------------------------------------------------
def text_to_timestamp(text: pl.Expr, zone: str) -> pl.Expr:
    """Strings as instants (``Datetime("us", "UTC")``); ``zone`` is the session's."""
    return text.map_batches(lambda s: timestamps_of(s, zone), return_dtype=_UTC_US,
                            is_elementwise=True)


def text_to_timestamp_ntz(text: pl.Expr) -> pl.Expr:
    """Strings as wall-clock times (TIMESTAMP_NTZ): a zone in the text must be valid and
    is dropped; a time alone is NULL (it names no date)."""
    return text.map_batches(_local_times_of, return_dtype=_NAIVE_US, is_elementwise=True)


def text_to_date(text: pl.Expr) -> pl.Expr:
    """Strings as dates (``stringToDate``)."""
    return text.map_batches(dates_of, return_dtype=pl.Date, is_elementwise=True)


# ---- batches -----------------------------------------------------------------------------
def timestamps_of(text: pl.Series, zone: str) -> pl.Series:
    """One batch of strings as instants, each row read in its own shape."""
    text = text.cast(pl.String)
    trimmed = text.str.strip_chars(_BLANKS)
    naive, aware = trimmed.str.contains(_COMMON), trimmed.str.contains(_COMMON_AWARE)
    out = pl.repeat(None, len(text), dtype=_UTC_US, eager=True).alias(text.name)
    if naive.any():
        out = _where(naive, _in_zone(_common_local(trimmed), zone), out)
    if aware.any():
        spaced = trimmed.str.replace("T", " ", literal=True)
        out = _where(aware, spaced.str.strptime(_UTC_US, _AWARE_FORMAT, strict=False), out)
    rest = trimmed.is_not_null() & ~naive & ~aware
    if rest.any():
        rows = rest.arg_true()
        fields = _timestamp_fields(text.gather(rows), trimmed.gather(rows))
        out = out.scatter(rows, _instants(fields, zone))
    return out


def _local_times_of(text: pl.Series) -> pl.Series:
    text = text.cast(pl.String)
    trimmed = text.str.strip_chars(_BLANKS)
    naive = trimmed.str.contains(_COMMON)
    if naive.all():
        return _common_local(trimmed).alias(text.name)
    fields = _timestamp_fields(text, trimmed)
    ok = fields["ok"] & ~fields["just_time"] & _known_zone(fields["zone"])
    return pl.select(pl.when(ok).then(fields["local"])).to_series().alias(text.name)


def _where(mask: pl.Series, value: pl.Series, other: pl.Series) -> pl.Series:
    return pl.select(pl.when(mask).then(value).otherwise(other)).to_series().alias(other.name)


def dates_of(text: pl.Series) -> pl.Series:
    """One batch of strings as dates, each row read in its own shape."""
    trimmed = text.cast(pl.String).str.strip_chars(_BLANKS)
    if trimmed.str.contains(_COMMON_DATE).all():
        return trimmed.str.strptime(pl.Date, "%Y-%m-%d", strict=False).alias(text.name)
    parts = trimmed.str.extract_groups(_DATE).struct.unnest()
    days = parts.select(_civil_days()).to_series()
    fits = days.is_between(-(2 ** 31), 2 ** 31 - 1)
    return pl.select(pl.when(fits).then(days).cast(pl.Int32).cast(pl.Date)) \
        .to_series().alias(text.name)


def _common_local(trimmed: pl.Series) -> pl.Series:
    spaced = trimmed.str.replace("T", " ", literal=True)
    return spaced.str.strptime(_NAIVE_US, "%Y-%m-%d %H:%M:%S%.f", strict=False)


def _in_zone(local: pl.Series, zone: str) -> pl.Series:
    return pl.select(from_local(pl.lit(local), zone)).to_series()


# ---- fields ------------------------------------------------------------------------------
def _timestamp_fields(raw: pl.Series, trimmed: pl.Series) -> pl.DataFrame:
    """Per row: ``local`` (the wall-clock time, today's date for a time alone),
    ``zone`` (its text, NULL when none), ``just_time`` and ``ok`` (it reads)."""
    dated = trimmed.str.extract_groups(_DATE_TIME).struct.unnest()
    clock_only = pl.when(raw.str.starts_with("T")).then(trimmed.str.slice(1)) \
        .when(trimmed.str.contains(r"^\d{1,2}:")).then(trimmed)
    frame = pl.DataFrame(dated).with_columns(
        just_time=pl.col("year").is_null() & clock_only.is_not_null(),
        clock=pl.coalesce(pl.col("time"), pl.when(pl.col("year").is_null()).then(clock_only)))
    frame = pl.concat([frame, frame["clock"].str.extract_groups(_TIME).struct.unnest()],
                      how="horizontal")
    return frame.select(_local_micros().alias("local"), _zone_text().alias("zone"),
                        "just_time", _reads().alias("ok"))


def _reads() -> pl.Expr:
    """The text has one of Spark's shapes and its fields are in range."""
    shaped = (pl.col("year").is_not_null() | pl.col("just_time")) & \
        (pl.col("clock").is_null() | pl.col("hour").is_not_null())
    clock = (_int("hour", 0) <= 23) & (_int("minute", 0) <= 59) & (_int("second", 0) <= 59)
    dated = pl.col("just_time") | _civil_days().is_between(-_MAX_DAYS, _MAX_DAYS)
    return (shaped & clock & dated).fill_null(False)


def _int(name: str, default: int) -> pl.Expr:
    return pl.col(name).cast(pl.Int64, strict=False).fill_null(default)


def _civil_days() -> pl.Expr:
    """Days since 1970-01-01 of the proleptic Gregorian date in the ``sign``, ``year``,
    ``month``, ``day`` columns (NULL for an impossible one: Feb 30, month 13)."""
    sign = pl.when(pl.col("sign") == "-").then(-1).otherwise(1)
    year, month, day = sign * _int("year", 0), _int("month", 1), _int("day", 1)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    longest = pl.when(month == 2).then(pl.when(leap).then(29).otherwise(28)) \
        .when(month.is_in([4, 6, 9, 11])).then(30).otherwise(31)
    valid = pl.col("year").is_not_null() & month.is_between(1, 12) & day.is_between(1, longest)
    shifted = year - (month <= 2).cast(pl.Int64)  # the year from March (days_from_civil)
    era = shifted // 400
    of_era = shifted - era * 400
    of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    of_cycle = of_era * 365 + of_era // 4 - of_era // 100 + of_year
    return pl.when(valid).then(era * 146_097 + of_cycle - 719_468)


def _local_micros() -> pl.Expr:
    """The wall-clock time in microseconds since the epoch, before the zone; a time
    alone counts from 1970-01-01 (its date is today's in its zone, added later)."""
    fraction = pl.col("fraction").fill_null("").str.slice(0, 6).str.pad_end(6, "0")
    of_day = ((_int("hour", 0) * 60 + _int("minute", 0)) * 60 + _int("second", 0)) \
        * 1_000_000 + fraction.cast(pl.Int64, strict=False)
    days = pl.when(pl.col("just_time")).then(0).otherwise(_civil_days())
    return (days * _DAY_US + of_day).cast(_NAIVE_US)


def _zone_text() -> pl.Expr:
    """The zone as ``ZoneId.of`` is given it: trimmed, ``+h:`` and ``:m`` padded
    (Spark's getZoneId), a short id replaced by what it stands for."""
    text = pl.col("zone").str.strip_chars(_JAVA_TRIM)
    text = text.str.replace(r"([+-])(\d):", "${1}0${2}:") \
        .str.replace(r"([+-])(\d\d):(\d)$", "${1}${2}:0${3}")
    return text.replace(_SHORT_IDS)


# ---- zones -------------------------------------------------------------------------------
def _zone_offsets(zone: pl.Series) -> pl.Series:
    """The fixed offset (microseconds) a zone text names, NULL for a region or none."""
    parts = zone.str.extract_groups(_OFFSET).struct.unnest()
    digits = parts["2"].str.replace_all(":", "")
    wide = pl.select(pl.when(digits.str.len_chars() == 1).then("0" + digits)
                     .otherwise(digits).str.pad_end(6, "0")).to_series()
    hours = wide.str.slice(0, 2).cast(pl.Int64)
    minutes, seconds = wide.str.slice(2, 2).cast(pl.Int64), wide.str.slice(4, 2).cast(pl.Int64)
    total = hours * 3600 + minutes * 60 + seconds
    valid = (hours <= 18) & (minutes <= 59) & (seconds <= 59) & (total <= 18 * 3600)
    signed = pl.select(pl.when(parts["1"] == "-").then(-total).otherwise(total)).to_series()
    return pl.select(pl.when(zone.is_in(list(_UTC_IDS))).then(0)
                     .when(valid).then(signed * 1_000_000)).to_series()


def _instants(fields: pl.DataFrame, session_zone: str) -> pl.Series:
    """Each row's wall-clock time read in its own zone (the session's when it names
    none); a time alone is dated today there."""
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    frame = fields.with_columns(offset=_zone_offsets(fields["zone"]))
    local, just_time = pl.col("local").cast(pl.Int64), pl.col("just_time")
    today = pl.when(just_time).then(_today(now_us, session_zone) * _DAY_US).otherwise(0)
    at_session = from_local((local + today).cast(_NAIVE_US), session_zone)
    today_there = (now_us + pl.col("offset")) // _DAY_US * _DAY_US
    at_offset = (local + pl.when(just_time).then(today_there).otherwise(0)
                 - pl.col("offset")).cast(_UTC_US)
    out = frame.select(pl.when(pl.col("zone").is_null()).then(at_session)
                       .otherwise(at_offset)).to_series()
    out = _region_instants(out, frame, now_us)
    return frame.select(pl.when(pl.col("ok")).then(pl.lit(out))).to_series()


def _today(now_us: int, zone: str) -> int:
    """Today's date (days since the epoch) in the zone: Spark dates a time alone so."""
    moment = pl.lit(now_us, dtype=pl.Int64).cast(_UTC_US)
    return int(pl.select(to_local(moment, zone).dt.date().cast(pl.Int32)).item())


def _region_instants(out: pl.Series, frame: pl.DataFrame, now_us: int) -> pl.Series:
    """Rows naming a region, one conversion per distinct region; an unknown one stays
    NULL (``out`` holds NULL there, as the offsets do)."""
    named = frame["zone"].is_not_null() & frame["offset"].is_null() & frame["ok"]
    for region in frame["zone"].filter(named).unique().to_list():
        if not _known_region(region):
            continue
        rows = (named & (frame["zone"] == region)).arg_true()
        local = frame["local"].gather(rows).cast(pl.Int64)
        days = frame["just_time"].gather(rows).cast(pl.Int64) * _today(now_us, region)
        out = out.scatter(rows, _in_zone((local + days * _DAY_US).cast(_NAIVE_US), region))
    return out


def _known_zone(zone: pl.Series) -> pl.Series:
    """No zone, or one that reads (offsets and regions)."""
    regions = [z for z in zone.drop_nulls().unique().to_list() if _known_region(z)]
    return zone.is_null() | _zone_offsets(zone).is_not_null() | zone.is_in(regions)


@lru_cache(maxsize=1)
def _regions() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _known_region(name: str) -> bool:
    """A region id as Java names it (exact case)."""
    return name in _regions() and name not in ("localtime", "posixrules", "Factory")
