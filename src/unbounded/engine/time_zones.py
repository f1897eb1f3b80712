"""The session time zone (``spark.sql.session.timeZone``) and the two conversions every
zone-aware function is made of.

A timestamp is an instant: Polars ``Datetime("us", "UTC")``, whatever the session zone.
The zone only says how an instant reads as a wall-clock time (its fields, its text, its
date) and which instant a wall-clock time names (a string or a date cast to a timestamp).
As Java's ``ZonedDateTime.of``, a wall-clock time in a daylight-saving gap moves later by
the gap's length, and one in an overlap is the earlier instant.

Zones are Spark's ids, parsed by ``plan/time_zones.py``. The default is the machine's
zone, as Spark's is the JVM's (``config.local_zone_id``).
"""

from __future__ import annotations

import polars as pl

from unbounded.plan.time_zones import parse_zone

__all__ = ["from_local", "to_local"]

_UTC = pl.Datetime("us", "UTC")


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
