"""Dates and timestamps as csv and JSON text, with the options Spark's file formats take
for them: ``timestampFormat``, ``timestampNTZFormat``, ``dateFormat`` and ``timeZone``.

Reading with a pattern is strict, as Spark's formatter is: the text must have the
pattern's shape (``dd`` is two digits, ``d`` one or two, ``.SSS`` one to three fraction
digits, ``[...]`` is optional) and a value that does not match is NULL, so its record
is malformed. A timestamp without an offset in its pattern is a wall-clock time in the
zone; a TIMESTAMP_NTZ whose pattern reads an offset never matches. Each pattern is one
shape check and one Polars strptime per column (per optional variant), never a Python
call per value.

Writing without a pattern uses Spark's defaults: ``yyyy-MM-dd'T'HH:mm:ss.SSSXXX`` in the
zone for a timestamp (``Z`` for a zero offset), ``yyyy-MM-dd'T'HH:mm:ss.SSS`` for a
TIMESTAMP_NTZ and ``yyyy-MM-dd`` for a date; nested values (JSON) are written alike.

Example:
    >>> import datetime
    >>> opts = DatetimeOptions.from_options({"timestampformat": "dd/MM/yyyy HH:mm",
    ...                                      "timezone": "Asia/Kolkata"})
    >>> text = pl.Series(["08/03/2026 10:00", "8/3/2026 10:00"])
    >>> pl.select(read_timestamp(pl.lit(text), opts)).to_series().to_list()  # doctest: +ELLIPSIS
    [datetime.datetime(2026, 3, 8, 4, 30, tzinfo=...), None]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import polars as pl

from unbounded.files.json_text import DType, map_leaves
from unbounded.plan.datetime_format import format_instant, spark_to_chrono
from unbounded.plan.time_zones import from_local, parse_zone

__all__ = [
    "DatetimeOptions",
    "datetimes_as_text",
    "has_datetimes",
    "read_date",
    "read_timestamp",
    "read_timestamp_ntz",
]

_UTC_US = pl.Datetime("us", "UTC")
_NTZ_US = pl.Datetime("us")
_NTZ_DEFAULT = "%Y-%m-%dT%H:%M:%S%.3f"  # yyyy-MM-dd'T'HH:mm:ss[.SSS], the section printed
_TIMESTAMP_DEFAULT = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
_TOKEN = re.compile(r"'(?:[^']|'')*'|([A-Za-z])\1*|.", re.S)
_MAX_VARIANTS = 16
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
# MMM reads only the short names, MMMM only the full ones (chrono's %b/%B take both).
_MONTH_NAMES = {3: "(?i:" + "|".join(m[:3] for m in _MONTHS) + ")",
                4: "(?i:" + "|".join(_MONTHS) + ")"}


@dataclass(frozen=True)
class DatetimeOptions:
    """A reader's or writer's datetime options (``None``: Spark's default shape)."""

    zone: str = "UTC"
    timestamp: str | None = None
    timestamp_ntz: str | None = None
    date: str | None = None
    # enableDateTimeParsingFallback: a value the pattern does not read is read as Spark's
    # cast reads it.
    fallback: bool = False

    @classmethod
    def from_options(cls, lowered: dict[str, str]) -> DatetimeOptions:
        """From options whose keys are lower case."""
        fallback = lowered.get("enabledatetimeparsingfallback", "false").strip().lower()
        return cls(lowered.get("timezone", "UTC"), lowered.get("timestampformat"),
                   lowered.get("timestampntzformat"), lowered.get("dateformat"),
                   fallback == "true")

    @classmethod
    def for_reading(cls, lowered: dict[str, str]) -> DatetimeOptions:
        """From a reader's options; a pattern Spark cannot parse with fails now, before
        any file is read (``QQQ`` formats, it does not parse)."""
        made = cls.from_options(lowered)
        for pattern in (made.timestamp, made.timestamp_ntz, made.date):
            if pattern is not None:
                _variants(pattern)
        return made


# ---- reading ---------------------------------------------------------------------------
def read_timestamp(text: pl.Expr, options: DatetimeOptions) -> pl.Expr:
    """Text read with ``timestampFormat`` as an instant (``Datetime("us", "UTC")``)."""
    assert options.timestamp is not None
    return pl.coalesce([_instant(text, v, options.zone) for v in _variants(options.timestamp)])


def read_timestamp_ntz(text: pl.Expr, options: DatetimeOptions) -> pl.Expr:
    """Text read with ``timestampNTZFormat`` as a wall-clock time (NULL with an offset)."""
    assert options.timestamp_ntz is not None
    return pl.coalesce([_wall_clock(text, v) for v in _variants(options.timestamp_ntz)])


def read_date(text: pl.Expr, options: DatetimeOptions) -> pl.Expr:
    """Text read with ``dateFormat`` as a date."""
    assert options.date is not None
    return pl.coalesce([_shaped(text, v).str.to_date(v.chrono, strict=False)
                        for v in _variants(options.date)])


@dataclass(frozen=True)
class _Variant:
    """One way a pattern reads (an optional section in or out): chrono's format and the
    regular expression the text must match first."""

    chrono: str
    shape: str

    @property
    def has_offset(self) -> bool:
        return "%z" in self.chrono or "%#z" in self.chrono


def _shaped(text: pl.Expr, variant: _Variant) -> pl.Expr:
    return pl.when(text.str.contains(variant.shape)).then(text)


def _instant(text: pl.Expr, variant: _Variant, zone: str) -> pl.Expr:
    shaped = _shaped(text, variant)
    if variant.has_offset:
        return shaped.str.to_datetime(variant.chrono, time_unit="us", time_zone="UTC",
                                      strict=False)
    return _wall_clock_instant(
        shaped.str.to_datetime(variant.chrono, time_unit="us", strict=False), zone)


def _wall_clock_instant(naive: pl.Expr, zone: str) -> pl.Expr:
    """The instants wall-clock times name in ``zone`` (``from_local``), taken over the
    times once computed: ``from_local`` reads its input several times, and each read
    parsed the text again (a zone with rules made a default read 5x slower)."""
    if parse_zone(zone).region is None:
        return from_local(naive, zone)  # a fixed offset reads its input once
    return naive.map_batches(lambda local: pl.select(from_local(pl.lit(local), zone))
                             .to_series(), return_dtype=_UTC_US, is_elementwise=True)


def _wall_clock(text: pl.Expr, variant: _Variant) -> pl.Expr:
    if variant.has_offset:
        return pl.repeat(None, pl.len(), dtype=_NTZ_US)
    return _shaped(text, variant).str.to_datetime(variant.chrono, time_unit="us",
                                                  strict=False)


@lru_cache(maxsize=64)
def _variants(pattern: str) -> tuple[_Variant, ...]:
    """Each reading of ``pattern``, its optional sections in before out."""
    out = []
    for expanded in _expand(_tokens(pattern))[:_MAX_VARIANTS]:
        spark = "".join(expanded)
        # '.SSS' reads one to three digits, as Java's fraction parser: chrono's %.f
        # reads any number after the dot, the shape check bounds them.
        chrono = re.sub(r"(?<!%)\.%[369]f", "%.f", spark_to_chrono(spark))
        out.append(_Variant(chrono, "^" + "".join(_shape(expanded)) + "$"))
    return tuple(out)


def _tokens(pattern: str) -> list[str]:
    return [m.group(0) for m in _TOKEN.finditer(pattern)]


def _expand(tokens: list[str]) -> list[list[str]]:
    """The token lists with each ``[...]`` section both kept and dropped."""
    if "[" not in tokens:
        return [[t for t in tokens if t != "]"]]
    start = tokens.index("[")
    depth, end = 0, len(tokens)
    for i in range(start, len(tokens)):
        depth += {"[": 1, "]": -1}.get(tokens[i], 0)
        if depth == 0:
            end = i
            break
    head, inner, tail = tokens[:start], tokens[start + 1:end], tokens[end + 1:]
    return [head + body + rest for body in _expand(inner) for rest in _expand(tail)] + \
        [head + rest for rest in _expand(tail)]


def _shape(tokens: list[str]) -> list[str]:
    out = []
    for i, token in enumerate(tokens):
        if token.startswith("'"):
            out.append(re.escape("'" if token == "''" else token[1:-1].replace("''", "'")))
        elif token[0].isalpha():
            after_dot = i > 0 and tokens[i - 1] == "."
            out.append(_field_shape(token[0], len(token), after_dot))
        else:
            out.append(re.escape(token))
    return out


def _field_shape(letter: str, width: int, after_dot: bool) -> str:
    """The digits a numeric field reads (Java's widths); text fields are left to chrono."""
    if letter == "y":
        return r"\d{2}" if width == 2 else rf"\d{{{width},}}"
    if letter == "S":
        return rf"\d{{1,{width}}}" if after_dot else rf"\d{{{width}}}"
    if letter == "D":
        return rf"\d{{{width},3}}"
    if letter in "MLdHhKkms" and width <= 2:
        return r"\d{1,2}" if width == 1 else r"\d{2}"
    if letter in "ML" and width in _MONTH_NAMES:
        return _MONTH_NAMES[width]
    return ".+?"


# ---- writing ---------------------------------------------------------------------------
def has_datetimes(dtype: DType) -> bool:
    """Whether a date or a timestamp (either kind) is in ``dtype`` at any depth."""
    dtype = dtype() if isinstance(dtype, type) else dtype
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return True
    if isinstance(dtype, pl.Struct):
        return any(has_datetimes(f.dtype) for f in dtype.fields)
    if isinstance(dtype, pl.List | pl.Array):
        return has_datetimes(dtype.inner)
    if isinstance(dtype, pl.Map):
        return has_datetimes(dtype.key) or has_datetimes(dtype.value)
    return False


def datetimes_as_text(expr: pl.Expr, dtype: pl.DataType, options: DatetimeOptions
                      ) -> pl.Expr:
    """``expr`` with each date and timestamp in it (at any depth) as Spark writes it."""
    def leaf(value: pl.Expr, leaf_type: pl.DataType, _result: pl.DataType) -> pl.Expr:
        return _text(value, leaf_type, options)
    return map_leaves(expr, dtype, leaf, _as_strings(dtype), has_datetimes)


def _as_strings(dtype: DType) -> pl.DataType:
    dtype = dtype() if isinstance(dtype, type) else dtype
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return pl.String()
    if isinstance(dtype, pl.Struct):
        return pl.Struct([pl.Field(f.name, _as_strings(f.dtype)) for f in dtype.fields])
    if isinstance(dtype, pl.List | pl.Array):
        return pl.List(_as_strings(dtype.inner))
    if isinstance(dtype, pl.Map):
        return pl.Map(_as_strings(dtype.key), _as_strings(dtype.value))
    return dtype


def _text(value: pl.Expr, dtype: pl.DataType, options: DatetimeOptions) -> pl.Expr:
    if dtype == pl.Date:
        if options.date is None:
            return value.dt.strftime("%Y-%m-%d")
        return _formatted(value.cast(_UTC_US), options.date, "UTC")
    assert isinstance(dtype, pl.Datetime)
    if dtype.time_zone is None:
        if options.timestamp_ntz is None:
            return value.dt.strftime(_NTZ_DEFAULT)
        return _formatted(value.dt.replace_time_zone("UTC"), options.timestamp_ntz, "UTC")
    return _formatted(value, options.timestamp or _TIMESTAMP_DEFAULT, options.zone)


def _formatted(moment: pl.Expr, pattern: str, zone: str) -> pl.Expr:
    """``moment`` printed with a Spark pattern (the engine's ``date_format``)."""
    return format_instant(moment, pattern, zone)
