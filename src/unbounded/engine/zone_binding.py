"""The session time zone bound into a plan's expressions when its DataFrame is built.

Spark resolves a time-zone-aware expression (a cast between timestamps and strings or
dates, ``hour``, ``date_format``, a ``TIMESTAMP '...'`` literal...) with the session zone
of the moment it analyses the DataFrame: a DataFrame built in Los Angeles reads its
timestamps there even if the zone changes before ``collect()`` or ``start()``, while a
``select`` added afterwards reads in the new zone. :func:`with_time_zone` does the same:
each new plan node's casts get ``time_zone``, its date and time function calls a
``time_zone`` param, and its SQL timestamp literals without an offset become instants.
What nothing bound (an implicit cast the engine inserts) reads the running query's zone.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo

from unbounded.engine.datetime_functions import ZONE_AWARE_FUNCTIONS
from unbounded.engine.legacy_coercion import map_fields
from unbounded.plan import types as T
from unbounded.plan.expressions import Cast, Expression, FunctionCall, Literal
from unbounded.plan.logical import LogicalPlan
from unbounded.plan.time_zones import parse_zone

__all__ = ["with_time_zone"]

# A node -> what it became, None for itself (a value never holds its own key alive).
_bound: WeakKeyDictionary[LogicalPlan, LogicalPlan | None] = WeakKeyDictionary()


def with_time_zone(plan: LogicalPlan, zone: str) -> LogicalPlan:
    """``plan`` with ``zone`` bound where nothing was bound yet; a node seen before maps
    to what it became then (its zone stays the one of its own DataFrame)."""
    if plan in _bound:
        return _bound[plan] or plan
    rebuilt = map_fields(plan, LogicalPlan, lambda child: with_time_zone(child, zone))
    rebuilt = map_fields(rebuilt, Expression, lambda e: _bind(e, zone))
    _bound[plan] = None if rebuilt is plan else rebuilt
    _bound[rebuilt] = None
    return rebuilt


def _bind(expr: Expression, zone: str) -> Expression:
    expr = map_fields(expr, Expression, lambda e: _bind(e, zone))
    if isinstance(expr, Cast) and expr.time_zone is None:
        return dataclasses.replace(expr, time_zone=zone)
    if isinstance(expr, FunctionCall) and expr.name.lower() in ZONE_AWARE_FUNCTIONS \
            and expr.param("time_zone") is None:
        return dataclasses.replace(expr, params=(*expr.params, ("time_zone", zone)))
    if isinstance(expr, Literal) and isinstance(expr.data_type, T.TimestampType) \
            and isinstance(expr.value, datetime) and expr.value.tzinfo is None:
        return Literal(_instant(expr.value, zone), expr.data_type)
    return expr


def _instant(wall_clock: datetime, zone: str) -> datetime:
    """The instant a wall-clock time names in ``zone``: fold 0 reads a time in a gap with
    the offset before it (later by the gap) and one in an overlap as the earlier, as Java
    does."""
    rule = parse_zone(zone)
    tz = ZoneInfo(rule.region) if rule.region is not None \
        else timezone(timedelta(microseconds=rule.offset_us))
    return wall_clock.replace(tzinfo=tz, fold=0).astimezone(UTC)
