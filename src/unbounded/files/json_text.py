"""Timestamps in JSON text, as Spark writes them (``to_json``, the JSON writer) and the
nested values they sit in.

Spark's JSON timestamp format is ``yyyy-MM-dd'T'HH:mm:ss.SSSXXX`` in the session zone (or
the ``timeZone`` option): milliseconds always, ``Z`` for a zero offset, the offset the
zone has at that instant otherwise (``2024-03-10T03:00:00.000-07:00`` in Los Angeles).
A timestamp nested in a struct, an array or a map is written and read the same way.

Example:
    >>> from datetime import datetime, UTC
    >>> ts = pl.Series([datetime(2024, 3, 10, 10, 0, tzinfo=UTC)])
    >>> pl.select(json_timestamp_text(pl.lit(ts), "America/Los_Angeles")).item()
    '2024-03-10T03:00:00.000-07:00'
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
from polars.datatypes import DataTypeClass

from unbounded.plan.time_zones import to_local

__all__ = [
    "DType",
    "has_instants",
    "has_temporals",
    "json_timestamp_text",
    "leaves_failed",
    "map_leaves",
    "timestamps_as_strings",
    "timestamps_as_text",
]

# A struct's field or a list's inner type may be the class itself (pl.Int64).
DType = pl.DataType | DataTypeClass
Leaf = Callable[[pl.Expr, pl.DataType, pl.DataType], pl.Expr]


def _instance(dtype: DType) -> pl.DataType:
    return dtype() if isinstance(dtype, DataTypeClass) else dtype


def has_instants(dtype: DType) -> bool:
    """Whether a timestamp (an instant) is in ``dtype`` at any depth."""
    dtype = _instance(dtype)
    if isinstance(dtype, pl.Datetime):
        return dtype.time_zone is not None
    if isinstance(dtype, pl.Struct):
        return any(has_instants(f.dtype) for f in dtype.fields)
    if isinstance(dtype, (pl.List, pl.Array)):
        return has_instants(dtype.inner)
    if isinstance(dtype, pl.Map):
        return has_instants(dtype.key) or has_instants(dtype.value)
    return False


def has_temporals(dtype: DType) -> bool:
    """Whether an instant or a date is in ``dtype`` at any depth."""
    dtype = _instance(dtype)
    if dtype == pl.Date:
        return True
    if isinstance(dtype, pl.Struct):
        return any(has_temporals(f.dtype) for f in dtype.fields)
    if isinstance(dtype, (pl.List, pl.Array)):
        return has_temporals(dtype.inner)
    if isinstance(dtype, pl.Map):
        return has_temporals(dtype.key) or has_temporals(dtype.value)
    return has_instants(dtype)


def timestamps_as_strings(dtype: DType, *, dates: bool = False) -> pl.DataType:
    """``dtype`` with every instant (and date, with ``dates``) a string: the shape JSON
    text decodes into first."""
    dtype = _instance(dtype)
    if (isinstance(dtype, pl.Datetime) and dtype.time_zone is not None) or \
            (dates and dtype == pl.Date):
        return pl.String()
    if isinstance(dtype, pl.Struct):
        return pl.Struct([pl.Field(f.name, timestamps_as_strings(f.dtype, dates=dates))
                          for f in dtype.fields])
    if isinstance(dtype, pl.List):
        return pl.List(timestamps_as_strings(dtype.inner, dates=dates))
    if isinstance(dtype, pl.Map):
        return pl.Map(timestamps_as_strings(dtype.key, dates=dates),
                      timestamps_as_strings(dtype.value, dates=dates))
    return dtype


def map_leaves(expr: pl.Expr, dtype: DType, leaf: Leaf, result: DType,
               where: Callable[[DType], bool] = has_instants) -> pl.Expr:
    """``expr`` (of ``dtype``) reshaped to ``result``: each value where one of the two
    has an instant (or what ``where`` asks for) is passed to ``leaf(value, its dtype, its
    result dtype)``, inside structs, lists and maps at any depth; a NULL struct stays
    NULL."""
    dtype, result = _instance(dtype), _instance(result)
    if not (where(dtype) or where(result)):
        return expr
    if isinstance(dtype, pl.Struct) and isinstance(result, pl.Struct):
        fields = [map_leaves(expr.struct.field(f.name), f.dtype, leaf, r.dtype, where)
                  .alias(f.name) for f, r in zip(dtype.fields, result.fields, strict=True)]
        return pl.when(expr.is_not_null()).then(pl.struct(fields))
    if isinstance(dtype, pl.List) and isinstance(result, pl.List):
        return expr.list.eval(map_leaves(pl.element(), dtype.inner, leaf, result.inner, where))
    if isinstance(dtype, pl.Map) and isinstance(result, pl.Map):  # as its entries
        listed = map_leaves(expr.cast(_entries(dtype)), _entries(dtype), leaf,
                            _entries(result), where)
        return listed.cast(result)
    return leaf(expr, dtype, result)


def leaves_failed(before: pl.Expr, dtype: DType, after: pl.Expr, result: DType,
                  where: Callable[[DType], bool] = has_instants) -> pl.Expr:
    """Whether ``after`` (``before`` passed through :func:`map_leaves` with the same
    ``where``) has fewer non-NULL leaves: some value did not convert (a malformed
    record). Only the subtrees ``where`` selects are counted."""
    return (_present(before, dtype, result, where)
            != _present(after, result, result, where)).fill_null(False)


def _present(expr: pl.Expr, dtype: DType, result: DType,
             where: Callable[[DType], bool]) -> pl.Expr:
    """How many non-NULL leaves ``expr`` has in the subtrees ``where`` selects."""
    dtype, result = _instance(dtype), _instance(result)
    if not (where(dtype) or where(result)):
        return pl.lit(0, dtype=pl.Int64)
    if isinstance(dtype, pl.Struct) and isinstance(result, pl.Struct):
        return pl.sum_horizontal(
            [_present(expr.struct.field(f.name), f.dtype, r.dtype, where)
             for f, r in zip(dtype.fields, result.fields, strict=True)])
    if isinstance(dtype, pl.List) and isinstance(result, pl.List):
        inner = _present(pl.element(), dtype.inner, result.inner, where)
        return expr.list.eval(inner).list.sum().fill_null(0)
    if isinstance(dtype, pl.Map) and isinstance(result, pl.Map):
        return _present(expr.cast(_entries(dtype)), _entries(dtype), _entries(result), where)
    return expr.is_not_null().cast(pl.Int64)


def _entries(dtype: pl.Map) -> pl.List:
    return pl.List(pl.Struct({"key": dtype.key, "value": dtype.value}))


def json_timestamp_text(ts: pl.Expr, zone: str) -> pl.Expr:
    """An instant as Spark's JSON text: its wall clock in ``zone`` and that offset."""
    local = to_local(ts, zone)
    offset = (local.dt.epoch("s") - ts.dt.epoch("s")) // 60
    minutes = offset.abs()
    sign = pl.when(offset < 0).then(pl.lit("-")).otherwise(pl.lit("+"))
    text = pl.concat_str([sign, (minutes // 60).cast(pl.String).str.zfill(2), pl.lit(":"),
                          (minutes % 60).cast(pl.String).str.zfill(2)])
    suffix = pl.when(offset == 0).then(pl.lit("Z")).otherwise(text)
    return local.dt.strftime("%Y-%m-%dT%H:%M:%S%.3f") + suffix


def timestamps_as_text(expr: pl.Expr, dtype: pl.DataType, zone: str) -> pl.Expr:
    """``expr`` with each instant in it (at any depth) replaced by its JSON text."""
    def leaf(value: pl.Expr, dtype: pl.DataType, result: pl.DataType) -> pl.Expr:
        return json_timestamp_text(value, zone)
    return map_leaves(expr, dtype, leaf, timestamps_as_strings(dtype))
