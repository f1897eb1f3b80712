"""A map side's grouping over a dense range of integer keys, without a hash table.

The keys of a windowed aggregation over a batch (a few window starts times a few thousand
integer keys) span a small range of combinations. Numbered within the batch's ranges (a
tumbling window by its index, ``(ts - offset) // duration``, which also spares the
modulo of its start), every row's combination is an index into arrays of that size, and
numpy's ``bincount`` counts and sums the rows per index in one pass each: ~2 ms per 500k
rows where Polars' hash grouping by ``(window, key)`` took ~22 ms
(`docs/perf/windowed-profile.md`). Only row counts, non-NULL counts and Float64
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

__all__ = ["DenseBuffer", "DenseKey", "DenseKind", "DensePlan", "dense_partial", "max_slots"]

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


@dataclass(frozen=True)
class DenseKey:
    """One grouping key: ``expr`` gives each row's number for it (an integer), and the
    key's value is ``number * step + offset`` (a tumbling window's start: its index
    times the duration plus the window offset; other keys: the value itself)."""

    name: str
    expr: pl.Expr
    step: int = 1
    offset: int = 0


@dataclass(frozen=True)
class DensePlan:
    """A map side's keys and partial buffers (in the hash grouping's column order)."""

    keys: tuple[DenseKey, ...]
    buffers: tuple[DenseBuffer, ...]


def max_slots(rows: int) -> int:
    """The largest key range a batch of ``rows`` groups densely: beyond, the arrays
    (8 bytes a slot per buffer) cost more than the hash table they replace."""
    return max(4 * rows, 1 << 16)


def dense_partial(rows: pl.DataFrame, plan: DensePlan) -> pl.DataFrame | None:
    """``rows`` grouped by ``plan``'s keys, one row per combination present, in
    ascending key order (NULL last), with ``plan``'s buffers; None when a key's numbers
    are not integers of at most 32 bits or Int64, or the keys' ranges hold more
    combinations than ``max_slots``."""
    numbered = rows.with_columns(k.expr.alias(f"{_CODE}{i}") for i, k in enumerate(plan.keys))
    columns = [numbered.get_column(f"{_CODE}{i}") for i in range(len(plan.keys))]
    if any(c.dtype not in _INTEGER_KEYS for c in columns):
        return None
    ranges = [_range(c) for c in columns]
    slots = math.prod(span for _, span, _ in ranges)
    if slots > max_slots(rows.height) or any(
            null is not None and low + null >= 2**63 for low, _, null in ranges):
        return None
    code = _code(columns, ranges)
    counts = np.bincount(code, minlength=slots)
    groups = _Groups(code, counts, np.flatnonzero(counts), slots)
    out = [_unpacked(key, column.dtype, groups.present, ranges[i], ranges[i + 1:])
           for i, (key, column) in enumerate(zip(plan.keys, columns, strict=True))]
    args = rows.select(b.arg.alias(b.name) for b in plan.buffers if b.arg is not None)
    out += [_buffer(args, b, groups) for b in plan.buffers]
    return pl.DataFrame(out)


@dataclass(frozen=True)
class _Groups:
    code: np.ndarray  # each row's slot
    rows: np.ndarray  # rows per slot
    present: np.ndarray  # the slots with rows, ascending
    slots: int


_Range = tuple[int, int, int | None]  # lowest number, slots, the NULL slot or None


def _range(numbers: pl.Series) -> _Range:
    """A key's numbers as slots: one per number from the lowest to the highest, and one
    more for NULL when there is one (only NULLs: that slot alone)."""
    low, high, nulls = numbers.min(), numbers.max(), numbers.null_count()
    low, high = (0, -1) if low is None else (int(low), int(high))  # type: ignore[arg-type]
    values = high - low + 1
    return low, values + (1 if nulls else 0), values if nulls else None


def _code(columns: Sequence[pl.Series], ranges: Sequence[_Range]) -> np.ndarray:
    """Each row's combination of key numbers as one Int64 in ``[0, slots)``, the last
    key varying fastest (so ascending codes are ascending keys); numpy in place."""
    code: np.ndarray | None = None
    stride = 1
    for column, (low, span, null) in zip(reversed(columns), reversed(ranges), strict=True):
        if null is not None:
            column = column.cast(pl.Int64).fill_null(low + null)
        offset = np.subtract(column.to_numpy(), low, dtype=np.int64)
        if stride != 1:
            np.multiply(offset, stride, out=offset)
        code = offset if code is None else np.add(code, offset, out=code)
        stride *= span
    assert code is not None
    return code


def _unpacked(key: DenseKey, dtype: pl.DataType, present: np.ndarray, number: _Range,
              faster: Sequence[_Range]) -> pl.Series:
    low, span, null = number
    index = present // math.prod(s for _, s, _ in faster) % span
    values = pl.Series(key.name, (index + low) * key.step + key.offset, pl.Int64)
    if null is not None:
        values = values.scatter(np.flatnonzero(index == null), None)
    return values.cast(dtype)


def _buffer(args: pl.DataFrame, buffer: DenseBuffer, groups: _Groups) -> pl.Series:
    """``buffer`` per group present; ``args`` holds each buffer's argument (one query)."""
    present = groups.present
    if buffer.kind is DenseKind.ROWS:
        return pl.Series(buffer.name, groups.rows[present]).cast(buffer.dtype)
    arg = args.get_column(buffer.name)
    if buffer.kind is DenseKind.COUNT:
        counted = groups.rows if not arg.null_count() else np.bincount(
            groups.code[arg.is_not_null().to_numpy()], minlength=groups.slots)
        return pl.Series(buffer.name, counted[present]).cast(buffer.dtype)
    doubles = arg.cast(pl.Float64)
    values = (doubles.fill_null(0.0) if doubles.null_count() else doubles).to_numpy()
    sums = np.bincount(groups.code, weights=values, minlength=groups.slots)
    return pl.Series(buffer.name, sums[present], pl.Float64).cast(buffer.dtype)
