"""Spark's time zone ids (``spark.sql.session.timeZone``): a region
(``America/Los_Angeles``), ``UTC``/``Z``, or an offset (``+05:30``, ``-8``, ``GMT+01:00``),
parsed once; the two conversions every zone-aware expression is made of; Arrow tables
shown as wall-clock times in a zone.

A timestamp is an instant: Polars ``Datetime("us", "UTC")``, whatever the session zone.
The zone only says how an instant reads as a wall-clock time (``to_local``: its fields,
its text, its date) and which instant a wall-clock time names (``from_local``: a string
or a date cast to a timestamp). As Java's ``ZonedDateTime.of``, a wall-clock time in a
daylight-saving gap moves later by the gap's length, and one in an overlap is the earlier
instant. See docs/design/session-conf-semantics.md.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from functools import lru_cache

import polars as pl
import pyarrow as pa

from unbounded.errors import IllegalArgumentException

__all__ = ["ZoneRule", "from_local", "in_zone", "offset_text", "parse_zone", "to_local"]

_UTC = pl.Datetime("us", "UTC")

_OFFSET = re.compile(r"^(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?(?::?(\d{2}))?$")
_UTC_NAMES = {"Z", "UTC", "GMT", "UT", "ETC/UTC", "ETC/GMT", "ZULU", "UCT", "ETC/UCT",
              "ETC/ZULU", "ETC/UNIVERSAL", "UNIVERSAL", "GMT0", "ETC/GMT0"}


@dataclass(frozen=True)
class ZoneRule:
    """A parsed zone: an IANA ``region`` Polars knows, or a fixed offset from UTC."""

    region: str | None
    offset_us: int = 0

    @property
    def is_utc(self) -> bool:
        return self.region is None and self.offset_us == 0


@lru_cache(maxsize=64)
def parse_zone(zone_id: str) -> ZoneRule:
    """Spark's zone id as a rule; an unknown id fails as Spark's conf check does.

    >>> parse_zone("+05:30").offset_us, parse_zone("America/Los_Angeles").region
    (19800000000, 'America/Los_Angeles')
    """
    text = zone_id.strip()
    if text.upper() in _UTC_NAMES:
        return ZoneRule(None)
    offset = _OFFSET.match(text)
    if offset is not None:
        return ZoneRule(None, _offset_us(*offset.groups()))
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _invalid_zone(zone_id) from None
    return ZoneRule(text)


def _offset_us(sign: str, hours: str, minutes: str | None, seconds: str | None) -> int:
    total = int(hours) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
    if int(hours) > 18 or int(minutes or 0) > 59 or total > 18 * 3600:
        raise _invalid_zone(f"{sign}{hours}:{minutes or '00'}")
    return (-1 if sign == "-" else 1) * total * 1_000_000


def _invalid_zone(zone_id: str) -> IllegalArgumentException:
    return IllegalArgumentException(
        f"[INVALID_CONF_VALUE.TIME_ZONE] The value '{zone_id}' in the config "
        '"spark.sql.session.timeZone" is invalid. Cannot resolve the given timezone. '
        "SQLSTATE: 22022", error_class="INVALID_CONF_VALUE.TIME_ZONE")


def in_zone(table: pa.Table, zone_id: str) -> pa.Table:
    """``table`` with its timestamps (nested ones too) labelled with the zone, so that
    Python values read as wall-clock times there (``show()`` prints them so)."""
    rule = parse_zone(zone_id)
    tz = rule.region or offset_text(rule.offset_us)
    fields = [f.with_type(_zoned(f.type, tz)) for f in table.schema]
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema.equals(table.schema) else table.cast(schema)


def offset_text(offset_us: int) -> str:
    """An offset as ISO text: ``+05:30``."""
    minutes = abs(offset_us) // 60_000_000
    return f"{'-' if offset_us < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"


def _zoned(t: pa.DataType, tz: str) -> pa.DataType:
    if pa.types.is_timestamp(t) and t.tz is not None:
        return pa.timestamp(t.unit, tz)
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_zoned(t.field(i).type, tz))
                          for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(_zoned(t.key_type, tz), _zoned(t.item_type, tz))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        item = t.value_field.with_type(_zoned(t.value_type, tz))
        return pa.list_(item) if pa.types.is_list(t) else pa.large_list(item)
    return t


def to_local(ts: pl.Expr, zone_id: str) -> pl.Expr:
    """The wall-clock time (naive ``Datetime("us")``) of the instant ``ts`` in the zone."""
    rule = parse_zone(zone_id)
    naive = ts.cast(_UTC).dt.replace_time_zone(None)
    if rule.region is None:
        return naive if rule.is_utc else naive + pl.duration(microseconds=rule.offset_us)
    return ts.cast(_UTC).dt.convert_time_zone(rule.region).dt.replace_time_zone(None)


def from_local(local: pl.Expr, zone_id: str) -> pl.Expr:
    """The instant (``Datetime("us", "UTC")``) a naive wall-clock time names in the zone:
    in a gap, the time moved later by the gap; in an overlap, the earlier instant."""
    rule = parse_zone(zone_id)
    if rule.region is None:
        shifted = local if rule.is_utc else local - pl.duration(microseconds=rule.offset_us)
        return shifted.dt.replace_time_zone("UTC")
    zone = rule.region
    exact = local.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    # A gap: read with the offset in force just before it (a day earlier).
    before = (local - pl.duration(days=1)).dt.replace_time_zone("UTC") \
        .dt.convert_time_zone(zone)
    offset = (before.dt.base_utc_offset() + before.dt.dst_offset()).cast(pl.Duration("us"))
    moved = (local - offset).dt.replace_time_zone("UTC")
    return pl.when(exact.is_null() & local.is_not_null()).then(moved) \
        .otherwise(exact.dt.convert_time_zone("UTC"))
