"""Sums grouped by integer keys through a slot array over the keys' range.

A high-cardinality windowed aggregation folds ~500k partial rows a batch into state
whose ``combine`` is a sum per value column (counts, sums, averages' buffers). Polars
groups them, and finds the stored rows of their keys, through hash tables; here each
row's key, packed into one integer over the batch's key ranges, indexes a slot array
directly. One scatter of row numbers gives each group a representative row and one
gather gives every row its group. A stored key is probed in the same array as in a
sparse set: a slot counts only when the batch row it names holds that key, so the array
is never cleared and its untouched pages are never mapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import polars as pl

__all__ = ["MAX_SLOTS", "SLOTS_PER_ROW", "SUMMED_TYPES", "SlotSums", "sum_by_slots",
           "sums_only"]

MAX_SLOTS = 1 << 25  # slots (8 bytes each) beyond which the hash grouping is used
SLOTS_PER_ROW = 64  # nor when the key range is this sparse among the batch's rows
SUMMED_TYPES = (pl.Int64, pl.Float64)
_KEY_TYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32,
              pl.Date, pl.Datetime, pl.Duration, pl.Time)


def sums_only(combine: Sequence[pl.Expr], values: Sequence[str]) -> bool:
    """Whether ``combine`` is ``pl.col(v).sum().alias(v)`` for each value column ``v``."""
    return len(combine) == len(values) and all(
        any(e.meta.eq(pl.col(v).sum().alias(v)) for e in combine) for v in values)


class SlotSums(NamedTuple):
    """``sum_by_slots``' groups (one row per key), the positions of the stored rows of
    their keys (ascending), and the group of each of those (its row in ``grouped``)."""

    grouped: pl.DataFrame
    found: np.ndarray
    of_found: np.ndarray


def sum_by_slots(stored: pl.DataFrame, rows: pl.DataFrame, keys: Sequence[str], *,
                 constant: Sequence[str] = ()) -> SlotSums | None:
    """``rows`` (several per key) and the ``stored`` rows of their keys (unique keys)
    grouped into one row per key, each value column summed (nulls count as 0, as in
    Polars' ``sum``; the stored value first, then the batch's in row order), with the
    stored rows that were (``SlotSums``). Both frames have the same columns: the
    ``keys``, then values of ``SUMMED_TYPES``; the ``constant`` keys hold one value
    across both frames (a piece's window) and are not looked at. None when the other
    keys are not integers (or dates, times), hold NULLs, or span too many slots
    (``MAX_SLOTS``, ``SLOTS_PER_ROW``).

    >>> rows = pl.DataFrame({"k": [7, 3, 7], "n": [1, 2, 3]})
    >>> sums = sum_by_slots(pl.DataFrame({"k": [7, 9], "n": [10, 1]}), rows, ["k"])
    >>> sorted(sums.grouped.rows()), sums.found.tolist(), sums.grouped.row(sums.of_found[0])
    ([(3, 2), (7, 14)], [0], (7, 14))
    """
    values = [c for c in rows.columns if c not in keys]
    packed_keys = [k for k in keys if k not in constant]
    if not 0 < rows.height < 2**31 or not packed_keys or \
            any(rows.schema[k] not in _KEY_TYPES for k in packed_keys) or \
            any(rows.schema[v] not in SUMMED_TYPES for v in values) or \
            any(f.get_column(k).null_count() for f in (rows, stored) for k in packed_keys):
        return None
    columns = [_integers(rows.get_column(k)) for k in packed_keys]
    ranges = [(int(c.min()), int(c.max()) - int(c.min()) + 1) for c in columns]
    slots = 1
    for _, span in ranges:
        slots *= span
        if slots > min(MAX_SLOTS, SLOTS_PER_ROW * rows.height):
            return None
    packed, _ = _packed(columns, ranges)
    slot_rows = _slot_array(slots)
    group, leads, count = _groups(packed, slot_rows)
    found, found_rows = _found([_integers(stored.get_column(k)) for k in packed_keys],
                               ranges, packed, slot_rows)
    groups = _Groups(group, count, found, group[found_rows])
    lead_rows = pl.Series(leads)
    out = {k: rows.get_column(k).filter(lead_rows) for k in keys}
    out.update((v, _summed(stored.get_column(v), rows.get_column(v), groups)) for v in values)
    return SlotSums(pl.DataFrame([out[c] for c in rows.columns]), found, groups.of_found)


def _slot_array(size: int) -> np.ndarray:
    """``size`` slots holding anything: never cleared (see ``_found``), so the pages no
    row touches are never mapped."""
    return np.empty(size, dtype=np.int32)


def _groups(packed: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The group of each row (numbered in the order of their lead rows), which rows
    lead a group (the one whose number its slot kept), and the number of groups; each
    touched slot is left holding its group's lead row."""
    order = np.arange(packed.size, dtype=slots.dtype)
    slots[packed] = order
    lead_of_row = slots[packed]
    leads = lead_of_row == order
    numbers = np.cumsum(leads, dtype=np.int64) - 1
    return numbers[lead_of_row], leads, int(numbers[-1]) + 1


def _found(columns: list[np.ndarray], ranges: list[tuple[int, int]], packed: np.ndarray,
           slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the stored rows (their key ``columns``) whose key a batch row
    holds, and that row's position. A stored key inside the ranges reads its slot,
    which counts only if it names a batch row of the same packed key: a slot no batch
    row wrote may hold anything."""
    probe, inside = _packed(columns, ranges)
    np.putmask(probe, ~inside, 0)
    named = slots[probe].astype(np.int64)
    valid = inside & (named.view(np.uint64) < packed.size)
    np.putmask(named, ~valid, 0)
    found = np.flatnonzero(valid & (packed[named] == probe))
    return found, named[found]


class _Groups(NamedTuple):
    """Each batch row's group, how many groups, the stored rows found (positions)
    and their groups."""

    of_row: np.ndarray
    number: int
    found: np.ndarray
    of_found: np.ndarray


def _summed(stored: pl.Series, new: pl.Series, groups: _Groups) -> pl.Series:
    """One sum of ``new`` per group, each starting from its stored value, if any, then
    adding the batch's in row order."""
    totals = np.zeros(groups.number, dtype=np.float64 if new.dtype == pl.Float64 else np.int64)
    if groups.found.size:
        totals[groups.of_found] = _numbers(stored.gather(groups.found))
    np.add.at(totals, groups.of_row, _numbers(new))
    return pl.Series(new.name, totals, dtype=new.dtype)


def _numbers(column: pl.Series) -> np.ndarray:
    """``column`` as numbers, NULL as 0."""
    return (column.fill_null(0) if column.null_count() else column).to_numpy()


def _integers(column: pl.Series) -> np.ndarray:
    """``column``'s values (no NULLs) as int64 numbers."""
    return column.to_physical().cast(pl.Int64).to_numpy()


def _packed(columns: Sequence[np.ndarray], ranges: list[tuple[int, int]]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's offsets from the ranges' lows in mixed radix (the first key highest),
    and whether the row is inside all ranges (its packed value is exact only there)."""
    packed, inside = columns[0] - ranges[0][0], None
    for i, (column, (low, span)) in enumerate(zip(columns, ranges, strict=True)):
        offset = packed if i == 0 else column - low
        within = offset.view(np.uint64) < span
        inside = within if inside is None else inside & within
        if i:
            packed = packed * span + offset
    assert inside is not None
    return packed, inside
