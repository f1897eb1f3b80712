"""Spark's time zone ids (``spark.sql.session.timeZone``): a region
(``America/Los_Angeles``), ``UTC``/``Z``, or an offset (``+05:30``, ``-8``, ``GMT+01:00``),
parsed once, and Arrow tables shown as wall-clock times in one.

The engine's conversions over Polars expressions are in ``engine/time_zones.py``.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa

from unbounded.errors import IllegalArgumentException

__all__ = ["ZoneRule", "in_zone", "offset_text", "parse_zone"]

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
