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

The keys' ranges come from one query over the rows, which also computes the caller's
summary (the event-time statistics); each key's numbers are written into kept arrays
chunk by chunk (``_borrowed``), as fresh arrays cost more in page faults than the
arithmetic.
"""

from __future__ import annotations

import contextlib
import enum
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import polars as pl

__all__ = ["DenseBuffer", "DenseKey", "DenseKind", "DensePlan", "TimeSummary", "dense_partial",
           "max_slots", "time_summary"]

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
    """One grouping key: ``expr`` gives each row's integer value, and the key is its
    number ``(value - offset) // step`` (floor), whose value is ``number * step +
    offset``: a tumbling window's start from the event time (the duration and the window
    offset); other keys: the value itself (step 1, offset 0)."""

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


def dense_partial(rows: pl.DataFrame, plan: DensePlan, times: str | None = None
                  ) -> tuple[pl.DataFrame | None, TimeSummary | None]:
    """``rows`` grouped by ``plan``'s keys, one row per combination present, in
    ascending key order (NULL last), with ``plan``'s buffers; None when a key's values
    are not integers of at most 32 bits or Int64 (a timestamp key keeps the hash
    grouping, which keeps its type), or the keys' ranges hold more combinations than
    ``max_slots``. Also the ``TimeSummary`` of the column ``times`` (None without one)."""
    values = rows.with_columns(k.expr.alias(f"{_CODE}{i}") for i, k in enumerate(plan.keys))
    columns = [values.get_column(f"{_CODE}{i}") for i in range(len(plan.keys))]
    summary = None if times is None else time_summary(rows.get_column(times))
    if any(c.dtype not in _INTEGER_KEYS for c in columns):
        return None, summary
    ranges = [_range(key, *_bounds(column)) for key, column in zip(plan.keys, columns,
                                                                    strict=True)]
    if any(r is None for r in ranges):
        return None, summary
    known = [r for r in ranges if r is not None]
    slots = math.prod(r.slots for r in known)
    if slots > max_slots(rows.height):
        return None, summary
    with _borrowed(rows.height, np.int64) as code, \
            _borrowed(rows.height if len(known) > 1 else 0, np.int64) as spare:
        _code(columns, known, code, spare)
        counts = np.bincount(code, minlength=slots)
        groups = _Groups(code, counts, np.flatnonzero(counts), slots)
        out = [_unpacked(key, column.dtype, groups.present, known[i], known[i + 1:])
               for i, (key, column) in enumerate(zip(plan.keys, columns, strict=True))]
        args = rows.select(b.arg.alias(b.name) for b in plan.buffers if b.arg is not None)
        out += [_buffer(args, b, groups) for b in plan.buffers]
    return pl.DataFrame(out), summary


class TimeSummary(NamedTuple):
    """A timestamp column's epoch microseconds: lowest, highest (None without values),
    their sum modulo 2**64 (any integer congruent to it) and the non-NULL count."""

    low: int | None
    high: int | None
    wrapped_sum: int
    n: int  # non-NULL values


def time_summary(column: pl.Series) -> TimeSummary:
    """``column``'s ``TimeSummary``: from its chunks in numpy when it holds microseconds
    and no NULL (Polars' aggregates ran on its thread pool for ~3x the CPU), else one
    Polars query."""
    physical = _physical(column)
    if physical.dtype != pl.Int64 or physical.null_count():
        ts = pl.col(column.name).dt.epoch("us")
        row = column.to_frame().select(ts.min(), ts.max().alias("max"), ts.sum().alias("sum"),
                                       ts.count().alias("n")).row(0)
        return TimeSummary(row[0], row[1], int(row[2]), int(row[3]))
    chunks = [c.to_numpy() for c in physical.get_chunks() if c.len()]
    if not chunks:
        return TimeSummary(None, None, 0, 0)
    return TimeSummary(min(int(c.min()) for c in chunks), max(int(c.max()) for c in chunks),
                       sum(int(c.sum()) for c in chunks), physical.len())


def _physical(column: pl.Series) -> pl.Series:
    """A microsecond timestamp as its Int64 epoch microseconds (no copy); else as is."""
    dtype = column.dtype
    if isinstance(dtype, pl.Datetime) and dtype.time_unit == "us":
        return column.to_physical()
    return column


# Arrays of up to ``_KEPT_BYTES`` each, ``_KEPT`` of them at most, lent to one call at a
# time: a fresh 4 MB array is ~1000 page faults on first touch (~3 ms of a ~20 ms task,
# more than the arithmetic over it). Results never point into them (they are copies).
# Six: two tasks at once (one per core) borrow three each (4 kept: 11 of 60 fresh a run).
_KEPT = 6
_KEPT_BYTES = 8 << 20
_kept: list[np.ndarray] = []
_kept_lock = threading.Lock()


@contextlib.contextmanager
def _borrowed(n: int, dtype: type[np.generic]) -> Iterator[np.ndarray]:
    """An uninitialised array of ``n`` elements of the 8-byte ``dtype``: the smallest
    kept one that fits, else a fresh one (kept afterwards while there is room)."""
    size = 8 * n
    if not size:
        yield np.empty(0, dtype)
        return
    with _kept_lock:
        fits = [i for i, a in enumerate(_kept) if a.size >= size]
        found = _kept.pop(min(fits, key=lambda i: _kept[i].size)) if fits else None
    held = found if found is not None else np.empty(size, np.uint8)
    try:
        yield held[:size].view(dtype)
    finally:
        if held.size <= _KEPT_BYTES:
            with _kept_lock:
                if len(_kept) < _KEPT:
                    _kept.append(held)


@dataclass(frozen=True)
class _Groups:
    code: np.ndarray  # each row's slot
    rows: np.ndarray  # rows per slot
    present: np.ndarray  # the slots with rows, ascending
    slots: int


@dataclass(frozen=True)
class _Range:
    """A key's numbers as slots: one per number from the lowest to the highest, and one
    more for NULL when there is one (only NULLs: that slot alone)."""

    base: int  # the value of the lowest number (its slot 0)
    step: int
    numbers: int  # the slots of numbers; NULL's, when present, is the next one
    nulls: bool

    @property
    def slots(self) -> int:
        return self.numbers + self.nulls


def _bounds(column: pl.Series) -> tuple[int | None, int | None, int]:
    """The lowest and highest value and the NULL count: from the chunks in numpy when
    there is no NULL (as ``time_summary``), else by Polars."""
    nulls = column.null_count()
    chunks = [c.to_numpy() for c in column.get_chunks() if c.len()] if not nulls else []
    if chunks:
        return min(int(c.min()) for c in chunks), max(int(c.max()) for c in chunks), 0
    low, high = column.min(), column.max()
    return (None if low is None else int(low),  # type: ignore[arg-type]
            None if high is None else int(high), nulls)  # type: ignore[arg-type]


def _range(key: DenseKey, low: int | None, high: int | None, nulls: int) -> _Range | None:
    """None when a slot's offset ``value - base`` would not fit an Int64."""
    if low is None or high is None:
        return _Range(0, key.step, 0, bool(nulls))
    first, last = (low - key.offset) // key.step, (high - key.offset) // key.step
    base = first * key.step + key.offset
    if base < -(2**63) or high - base >= 2**63:
        return None
    return _Range(base, key.step, last - first + 1, bool(nulls))


def _code(columns: Sequence[pl.Series], ranges: Sequence[_Range], code: np.ndarray,
          spare: np.ndarray) -> None:
    """Each row's combination of key numbers as one Int64 in ``[0, slots)`` into
    ``code``, the last key varying fastest (so ascending codes are ascending keys);
    numpy in place, ``spare`` holding the other keys' numbers in turn."""
    stride = 1
    for i, (column, known) in enumerate(zip(reversed(columns), reversed(ranges), strict=True)):
        numbers = spare if i else code
        _numbers(column, known, numbers)
        if stride != 1:
            np.multiply(numbers, stride, out=numbers)
        if i:
            np.add(code, numbers, out=code)
        stride *= known.slots


def _numbers(column: pl.Series, known: _Range, out: np.ndarray) -> None:
    """Each row's slot of one key into ``out``, from the column's chunks as they are
    (a column of several chunks would be copied whole to one array first)."""
    filled = column.fill_null(known.base) if known.nulls else column
    start = 0
    for chunk in filled.get_chunks():
        end = start + chunk.len()
        np.subtract(chunk.to_numpy(), known.base, out=out[start:end], dtype=np.int64)
        start = end
    if known.step != 1:
        np.floor_divide(out, known.step, out=out)
    if known.nulls:
        out[column.is_null().to_numpy()] = known.numbers


def _copied(column: pl.Series, out: np.ndarray) -> np.ndarray:
    """``column`` (no NULLs) copied chunk by chunk into ``out``."""
    start = 0
    for chunk in column.get_chunks():
        end = start + chunk.len()
        np.copyto(out[start:end], chunk.to_numpy())
        start = end
    return out


def _unpacked(key: DenseKey, dtype: pl.DataType, present: np.ndarray, known: _Range,
              faster: Sequence[_Range]) -> pl.Series:
    index = present // math.prod(r.slots for r in faster) % known.slots
    values = pl.Series(key.name, index * known.step + known.base, pl.Int64)
    if known.nulls:
        values = values.scatter(np.flatnonzero(index == known.numbers), None)
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
    with _borrowed(len(doubles), np.float64) as weights:
        _copied(doubles.fill_null(0.0) if doubles.null_count() else doubles, weights)
        sums = np.bincount(groups.code, weights=weights, minlength=groups.slots)
    return pl.Series(buffer.name, sums[present], pl.Float64).cast(buffer.dtype)
