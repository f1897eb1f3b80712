"""A map side's grouping over a dense range of integer keys, without a hash table.

The keys of a windowed aggregation over a batch (a few window starts times a few thousand
integer keys) span a small range of combinations. Numbered within the batch's ranges
(each window start divided by its duration), every row's combination is an index into
arrays of that size, and numpy's ``bincount`` counts and sums the rows per index in one
pass each: ~2 ms per 500k rows where Polars' hash grouping by ``(window, key)`` took
~22 ms (`docs/perf/windowed-profile.md`). Only row counts, non-NULL counts and Float64
sums are computed this way; a batch whose ranges are wide falls back to the hash
grouping. Sums add each index's values in row order, as Spark's partial aggregation
does (Polars' streaming grouping adds them in an order its threads decide).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["DenseBuffer", "DenseKind", "dense_partial", "max_slots"]

_CODE = "__dense_code"
_INTEGER_KEYS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)


class DenseKind(enum.Enum):
    """What a partial buffer holds per key."""

    ROWS = "rows"  # the group's row count (count(*))
    COUNT = "count"  # the argument's non-NULL values (count(x), a sum's count)
    SUM = "sum"  # the Float64 argument's sum over non-NULL values (0.0 when none)


@dataclass(frozen=True)
class DenseBuffer:
    """One partial buffer column: its name, kind, dtype and argument (None for ROWS)."""

    name: str
    kind: DenseKind
    dtype: pl.DataType
    arg: pl.Expr | None = None


def max_slots(rows: int) -> int:
    """The largest key range a batch of ``rows`` groups densely: beyond, the arrays
    (8 bytes a slot per buffer) cost more than the hash table they replace."""
    return max(4 * rows, 1 << 16)


def dense_partial(keyed: pl.DataFrame, keys: Sequence[tuple[str, int]],
                  buffers: Sequence[DenseBuffer]) -> pl.DataFrame | None:
    """``keyed`` grouped by the ``keys`` columns (name, step: a value's distance to the
    next possible one, a tumbling window's duration), one row per combination present,
    in ascending key order (NULL last), with ``buffers``; None when a key is not an
    integer of at most 32 bits or Int64, or the keys' ranges hold more combinations than
    ``max_slots``."""
    if any(keyed.schema[name] not in _INTEGER_KEYS for name, _ in keys):
        return None
    ranges = _ranges(keyed, keys)
    slots = math.prod(span for _, _, span, _ in ranges)
    if slots > max_slots(keyed.height):
        return None
    code = keyed.select(_code(keys, ranges)).to_series().to_numpy()
    rows = np.bincount(code, minlength=slots)
    groups = _Groups(code, rows, np.flatnonzero(rows), slots)
    columns = [_unpacked(name, keyed.schema[name], groups.present, ranges[i], ranges[i + 1:])
               for i, (name, _) in enumerate(keys)]
    columns += [_buffer(keyed, b, groups) for b in buffers]
    return pl.DataFrame(columns)


@dataclass(frozen=True)
class _Groups:
    code: np.ndarray  # each row's slot
    rows: np.ndarray  # rows per slot
    present: np.ndarray  # the slots with rows, ascending
    slots: int


def _ranges(keyed: pl.DataFrame, keys: Sequence[tuple[str, int]]
            ) -> list[tuple[int, int, int, int | None]]:
    """Per key: (lowest value, step, slots, the NULL slot or None); only NULLs: one slot."""
    bounds = keyed.select(*(e.alias(f"{i}_{j}") for i, (name, _) in enumerate(keys)
                            for j, e in enumerate((pl.col(name).min(), pl.col(name).max(),
                                                   pl.col(name).null_count())))).row(0)
    out: list[tuple[int, int, int, int | None]] = []
    for i, (_, step) in enumerate(keys):
        low, high, nulls = bounds[3 * i: 3 * i + 3]
        low, high = (0, 0) if low is None else (int(low), int(high))
        values = (high - low) // step + 1
        out.append((low, step, values + (1 if nulls else 0), values if nulls else None))
    return out


def _code(keys: Sequence[tuple[str, int]], ranges: list[tuple[int, int, int, int | None]]
          ) -> pl.Expr:
    """Each row's combination of keys as one Int64 in ``[0, slots)``, the last key
    varying fastest (so ascending codes are ascending keys)."""
    code: pl.Expr = pl.lit(0, pl.Int64)
    stride = 1
    for (name, _), (low, step, span, null) in zip(reversed(keys), reversed(ranges),
                                                  strict=True):
        offset = (pl.col(name).cast(pl.Int64) - low) // step
        code = code + (offset if null is None else offset.fill_null(null)) * stride
        stride *= span
    return code.alias(_CODE)


def _unpacked(name: str, dtype: pl.DataType, present: np.ndarray,
              key: tuple[int, int, int, int | None],
              faster: Sequence[tuple[int, int, int, int | None]]) -> pl.Series:
    low, step, span, null = key
    index = present // math.prod(s for _, _, s, _ in faster) % span
    values = pl.Series(name, index * step + low, pl.Int64)
    if null is not None:
        values = values.scatter(np.flatnonzero(index == null), None)
    return values.cast(dtype)


def _buffer(keyed: pl.DataFrame, buffer: DenseBuffer, groups: _Groups) -> pl.Series:
    present = groups.present
    if buffer.kind is DenseKind.ROWS:
        return pl.Series(buffer.name, groups.rows[present]).cast(buffer.dtype)
    assert buffer.arg is not None
    arg = keyed.select(buffer.arg.alias(buffer.name)).to_series()
    if buffer.kind is DenseKind.COUNT:
        counted = groups.rows if not arg.null_count() else np.bincount(
            groups.code[arg.is_not_null().to_numpy()], minlength=groups.slots)
        return pl.Series(buffer.name, counted[present]).cast(buffer.dtype)
    doubles = arg.cast(pl.Float64)
    values = (doubles.fill_null(0.0) if doubles.null_count() else doubles).to_numpy()
    sums = np.bincount(groups.code, weights=values, minlength=groups.slots)
    return pl.Series(buffer.name, sums[present], pl.Float64).cast(buffer.dtype)
