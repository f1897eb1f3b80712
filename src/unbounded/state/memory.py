"""The default state store: versions in memory as Polars frames, files as Arrow IPC.

Like Spark's HDFSBackedStateStoreProvider, every committed version writes a delta file
and every ``min_deltas_for_snapshot``-th version also a full snapshot; recovering
version V reads the newest snapshot at or below V and the deltas after it. The file
format (:class:`~unbounded.state.files.StateFileLog`, checksummed and validated before
Arrow reads it) is shared with the disk provider, so a checkpoint can be reopened with
either provider.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

import polars as pl
import pyarrow as pa

from unbounded.checkpoint.epoch import fence_for
from unbounded.errors import AnalysisException
from unbounded.state import pieces as pieces_module
from unbounded.state import slot_sums
from unbounded.state.base import (
    FOUND_COLUMN,
    OLD_SUFFIX,
    OP_COLUMN,
    MergeFold,
    StateSchema,
    StateSchemaFile,
    StateStoreConf,
    StateStoreId,
    StateStoreMetrics,
    conform,
)
from unbounded.state.files import StateFileLog
from unbounded.state.pieces import Pieces, Replaced, piece_column

__all__ = [
    "MAX_STATE_CHUNKS",
    "NEAR_MIN_ROWS",
    "SMALL_MERGE_ROWS",
    "KeyedFrame",
    "MemoryStateStore",
    "MemoryStateStoreProvider",
    "OpenVersion",
    "StateDelta",
    "StateFileLog",
    "combine_rows",
    "key_hashes",
    "last_changes",
    "merge_rows",
    "to_polars",
]

logger = logging.getLogger(__name__)

OP_UPSERT = 0
OP_DELETE = 1
_NEW = "__new"  # marks, in a merge's join, the rows the batch brought
_EVICT = "__evict"
_HASH, _AT = "__hash", "__at"  # a merge's key hashes and stored row positions
SMALL_MERGE_ROWS = 2048  # stored + new rows up to which a merge takes one full join
NEAR_MIN_ROWS = 65_536  # stored rows from which a hashed merge probes only ``_near`` ones
MAX_STATE_CHUNKS = 16  # chunks of a state frame beyond which a merge rechunks it
_TRUE = pl.Series("", [True], dtype=pl.Boolean)
_UPSERT = pl.Series(OP_COLUMN, [OP_UPSERT], dtype=pl.Int8)
_DELETE = pl.Series(OP_COLUMN, [OP_DELETE], dtype=pl.Int8)


def to_polars(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def to_arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """``frame`` as Arrow with exactly ``schema``'s types (Polars may pick view types);
    not cast when they match already, which would import ``pyarrow.compute`` (~60 ms)."""
    table = frame.to_arrow()
    return table if table.schema.equals(schema, check_metadata=True) else table.cast(schema)


class StateDelta:
    """The changes of one version, kept in order; see :class:`StateFileLog`."""

    def __init__(self, schema: StateSchema) -> None:
        self._keys = schema.key_names
        self._value_types, self._empty, self._empty_arrow = _delta_layout(schema)
        self._nulls = [pl.Series(n, [None], dtype=t) for n, t in self._value_types.items()]
        self._changes: list[pl.DataFrame] = []

    def record_upserts(self, rows: pl.DataFrame) -> None:
        if rows.height:
            columns = self._empty.columns[:-1]
            rows = rows if rows.columns == columns else rows.select(columns)
            self._changes.append(rows.hstack([_UPSERT.new_from_index(0, rows.height)]))

    def record_deletes(self, keys: pl.DataFrame) -> None:
        if keys.height:  # built from Series, not a query (see ``pieces.filtered``)
            n = keys.height
            nulls = [null.new_from_index(0, n) for null in self._nulls]
            self._changes.append(pl.DataFrame([*(keys.get_column(k) for k in self._keys),
                                               *nulls, _DELETE.new_from_index(0, n)]))

    def to_arrow(self) -> pa.Table:
        if not self._changes:  # a partition the batch left alone: built once per schema
            return self._empty_arrow
        tables = [change.to_arrow() for change in self._changes]
        if all(t.schema == tables[0].schema for t in tables[1:]):
            return pa.concat_tables(tables)  # a record batch per change, none copied
        return pl.concat(self._changes, how="vertical_relaxed").to_arrow()


@functools.lru_cache(maxsize=64)
def _delta_layout(schema: StateSchema) -> tuple[pl.Schema, pl.DataFrame, pa.Table]:
    """The value columns' Polars types and an empty delta, as Polars and as Arrow
    (built once per schema: a store is opened on every batch)."""
    value_types = to_polars(pa.Table.from_batches([], schema=schema.value)).schema
    empty = to_polars(pa.Table.from_batches([], schema=schema.row_schema)).with_columns(
        pl.lit(None, pl.Int8).alias(OP_COLUMN))
    return value_types, empty, empty.to_arrow()


def last_changes(delta: pa.Table, key_names: list[str]) -> pl.DataFrame:
    """A delta's net effect: the last change of each key, in order."""
    return to_polars(delta).unique(subset=key_names, keep="last", maintain_order=True)


def apply_delta(frame: pl.DataFrame, delta: pa.Table, key_names: list[str]) -> pl.DataFrame:
    changes = last_changes(delta, key_names)
    kept = frame.join(changes.select(key_names), on=key_names, how="anti", nulls_equal=True)
    upserts = changes.filter(pl.col(OP_COLUMN) == OP_UPSERT).drop(OP_COLUMN)
    return pl.concat([kept, upserts.select(frame.columns)])


def merge_rows(state: pl.DataFrame, rows: pl.DataFrame, merge: Sequence[pl.Expr],
               schema: StateSchema, evict: pl.Expr | None
               ) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series | None]:
    """``state`` with ``rows`` merged in (see ``SupportsMergeFold``), the merged rows,
    and which rows of the new state ``evict`` selects when that came for free (None:
    not evaluated). ``rows`` and ``state`` have the same columns and types.

    Small frames take one full join and one projection (the fewest queries, each with
    a fixed cost); larger ones a left join for the merged rows and an anti join for the
    untouched ones, which Polars runs about twice as fast as a full join."""
    if state.height + rows.height <= SMALL_MERGE_ROWS:
        return _merge_small(state, rows, merge, schema, evict)
    keys = schema.key_names
    joined = rows.join(_flagged(state, FOUND_COLUMN), on=keys, how="left", nulls_equal=True,
                       suffix=OLD_SUFFIX)
    merged = _like(joined.select(*keys, *_merge_by_column(merge, schema).values()), state)
    kept = state.join(rows.select(keys), on=keys, how="anti", nulls_equal=True)
    return pl.concat([kept, merged]), merged, None


def _hashable(keys: pl.DataFrame) -> bool:
    """Key columns whose equal values hash equal and compare equal: not floats (NaN,
    -0.0) nor nested types, for which the merge joins on the columns themselves."""
    return all(t.is_integer() or t.is_temporal() or t in (pl.Boolean, pl.String, pl.Binary)
               for t in keys.dtypes)


class KeyedFrame(NamedTuple):
    """State rows and the ``key_hashes`` of their key columns, row for row."""

    frame: pl.DataFrame
    hashes: pl.Series


def _merge_hashed(state: pl.DataFrame, rows: pl.DataFrame, merge: Sequence[pl.Expr],
                  schema: StateSchema, *, hashes: pl.Series | None = None,
                  evict: pl.Expr | None = None
                  ) -> tuple[KeyedFrame, pl.DataFrame, pl.DataFrame | None] | None:
    """``merge_rows`` through the positions of the keys both frames hold (see
    ``_matching_positions``), without a join over the key columns; None when two
    different keys share a hash. The stored values of a batch row are gathered from
    its match's position (null, and ``FOUND_COLUMN`` false, where it has none).
    ``hashes`` are ``state``'s key hashes when known; the new state's are returned.
    With ``evict``, the returned state is already without the rows it selects, which
    are returned third (None without ``evict``); see ``_split``."""
    keys = schema.key_names
    stored_hashes = key_hashes(state.select(keys)) if hashes is None else hashes
    new_hashes = key_hashes(rows.select(keys))
    matched = _matching_positions(state.select(keys), stored_hashes, rows.select(keys),
                                  new_hashes)
    if matched is None:
        return None
    found, stored, new = matched
    joined = rows.hstack(_stored_values(state.drop(keys), stored, new, rows.height))
    merged = _like(joined.select(*keys, *_merge_by_column(merge, schema).values()), state)
    if evict is None:
        kept = ~found
        return KeyedFrame(pl.concat([state.filter(kept), merged]),
                          pl.concat([stored_hashes.filter(kept), new_hashes])), merged, None
    stays, evicted = _split(KeyedFrame(state, stored_hashes), found, evict)
    new_stays, new_evicted = _split(KeyedFrame(merged, new_hashes), None, evict)
    return KeyedFrame(pl.concat([stays.frame, new_stays.frame]),
                      pl.concat([stays.hashes, new_stays.hashes])), merged, \
        pl.concat([evicted, new_evicted])


def _split(keyed: KeyedFrame, replaced: pl.Series | None, evict: pl.Expr
           ) -> tuple[KeyedFrame, pl.DataFrame]:
    """The rows of ``keyed`` neither ``replaced`` (a mask, or None) nor selected by
    ``evict``, with their hashes, and the rows ``evict`` selects that are not replaced:
    the merged-then-evicted state taken from the stored rows in one pass, instead of
    copying them once for the merge and again for the eviction. Row order is that of
    filtering the merged state, so the state and the delta are the same as before."""
    frame = keyed.frame
    out = eviction_mask(frame, evict)
    gone = out if replaced is None else out & ~replaced
    if not gone.any():
        if replaced is None:
            return keyed, frame.clear()
        kept = ~replaced
        return KeyedFrame(frame.filter(kept), keyed.hashes.filter(kept)), frame.clear()
    stays = ~out if replaced is None else ~(out | replaced)
    return KeyedFrame(frame.filter(stays), keyed.hashes.filter(stays)), frame.filter(gone)


def _stored_values(values: pl.DataFrame, stored: pl.Series, new: pl.Series, height: int
                   ) -> list[pl.Series]:
    """The stored ``values`` of a batch's ``height`` rows under their ``OLD_SUFFIX``
    names (null where the batch row has no stored match) and ``FOUND_COLUMN``: the
    ``stored`` rows' values put at ``new``. Numbers are scattered into null columns
    (the matches are usually few), other types gathered through one position per row."""
    if all(t.is_integer() or t.is_float() or t == pl.Boolean for t in values.dtypes):
        columns = [pl.repeat(None, height, dtype=c.dtype, eager=True)
                   .scatter(new, c.gather(stored)).alias(f"{c.name}{OLD_SUFFIX}")
                   for c in values.get_columns()]
        found = pl.repeat(False, height, eager=True).scatter(new, True)
        return [*columns, found.alias(FOUND_COLUMN)]
    slot = pl.repeat(None, height, dtype=pl.UInt32, eager=True).scatter(new, stored)
    old = values.select(pl.all().gather(slot).name.suffix(OLD_SUFFIX))
    return [*old.get_columns(), slot.is_not_null().alias(FOUND_COLUMN)]


def _matching_positions(stored: pl.DataFrame, stored_hashes: pl.Series, new: pl.DataFrame,
                        new_hashes: pl.Series
                        ) -> tuple[pl.Series, pl.Series, pl.Series] | None:
    """Which rows of ``stored`` hold a key of ``new`` (both of unique keys), and the
    row positions of those pairs in each, found through one 64-bit hash of the key
    columns, which Polars matches several times faster than two or more key columns
    (a set probe over all stored rows, then a join of the few that hit); each pair's
    keys are then compared, so a hash collision returns None instead of a wrong match.
    Only the stored rows within ``new``'s key range are probed (``_near``)."""
    near = _near(stored, new) if stored.height >= NEAR_MIN_ROWS else None
    if near is None:
        found = stored_hashes.is_in(new_hashes.implode())
        hits = found.arg_true()
    else:
        candidates = near.arg_true()
        hits = candidates.filter(stored_hashes.filter(near).is_in(new_hashes.implode()))
        found = pl.repeat(False, stored.height, eager=True).scatter(hits, True)
    probe = pl.DataFrame([stored_hashes.gather(hits).alias(_HASH),
                          hits.cast(pl.UInt32).alias(_AT)])
    build = pl.DataFrame([new_hashes.alias(_HASH), _positions(new.height, _NEW)])
    pairs = probe.join(build, on=_HASH, how="inner")
    at, to = pairs.get_column(_AT), pairs.get_column(_NEW)
    if not all(stored.get_column(c).gather(at).eq_missing(new.get_column(c).gather(to)).all()
               for c in stored.columns):
        return None
    return found, at, to


_PACKABLE = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32,
             pl.Date, pl.Datetime, pl.Duration, pl.Time)
_MAX_PACKED = 2**62
_PACKED = "__packed"


class _Packing(NamedTuple):
    """Key columns as one Int64 (``value``), valid where ``inside`` holds, and the
    expressions that give the columns back from it (named ``_PACKED``)."""

    value: pl.Expr
    inside: pl.Expr
    unpacked: list[pl.Expr]


def _packing(new: pl.DataFrame) -> _Packing | None:
    """One Int64 per row that numbers the key combinations within ``new``'s ranges
    (each column's offset from ``new``'s minimum, in mixed radix): equal for equal keys
    within the ranges and only for them. None for other types, NULLs in ``new`` or
    ranges whose product passes 2**62; None for no rows too (no ranges)."""
    if not new.height or any(t not in _PACKABLE for t in new.dtypes) or \
            any(new.null_count().row(0)):
        return None
    physical = [pl.col(n).to_physical().cast(pl.Int64) for n in new.columns]
    bounds = new.select(*(e for i, c in enumerate(physical)
                          for e in (c.min().alias(f"{i}l"), c.max().alias(f"{i}h")))).row(0)
    packed: pl.Expr = pl.lit(0, pl.Int64)
    inside: pl.Expr = pl.lit(True)
    unpacked: list[pl.Expr] = []
    stride = 1
    for i in reversed(range(len(physical))):
        low, high = bounds[2 * i], bounds[2 * i + 1]
        packed = packed + (physical[i] - low) * stride
        inside = inside & physical[i].is_between(low, high)
        value = pl.col(_PACKED) // stride % (high - low + 1) + low
        unpacked.append(value.cast(new.dtypes[i]).alias(new.columns[i]))
        stride *= high - low + 1
        if stride > _MAX_PACKED:
            return None
    return _Packing(packed, inside, unpacked[::-1])


def _stored_hits(stored: pl.DataFrame, new: pl.DataFrame, packing: _Packing, *,
                 near_only: bool = True) -> pl.Series:
    """The positions of the ``stored`` keys (unique) that ``new`` holds, in order, through
    their ``_packing`` over ``new`` (probing only the ``_near`` stored rows unless not
    ``near_only``; a stored key outside ``new``'s ranges packs to NULL)."""
    near = _near(stored, new) if near_only and stored.height >= NEAR_MIN_ROWS else None
    candidates = stored if near is None else stored.filter(near)
    probe = candidates.select(pl.when(packing.inside).then(packing.value)).to_series()
    hit = probe.is_in(new.select(packing.value).to_series().implode()).fill_null(False)
    return hit.arg_true() if near is None else near.arg_true().filter(hit)


def combine_rows(state: pl.DataFrame, rows: pl.DataFrame, combine: Sequence[pl.Expr],
                 keys: list[str], *, near_only: bool = True
                 ) -> tuple[pl.DataFrame, pl.Series] | None:
    """``rows`` (several per key) grouped with the stored rows of their keys into one
    row per key by ``combine``, and which stored rows those were (a mask over
    ``state``); None when the keys do not pack (``_packing``). Stored rows come first in
    each group. The batch's rows are grouped once, with the few stored rows they meet,
    instead of grouped and then matched with the stored keys and merged."""
    packing = _packing(rows.select(keys))
    if packing is None:
        return None
    hits = _stored_hits(state.select(keys), rows.select(keys), packing, near_only=near_only)
    both = pl.concat([state.gather(hits), rows]) if hits.len() else rows
    grouped = both.lazy().group_by(packing.value.alias(_PACKED)).agg(*combine) \
        .select(*packing.unpacked, pl.exclude(_PACKED)) \
        .collect(engine="streaming" if both.height >= NEAR_MIN_ROWS else "in-memory")
    found = pl.repeat(False, state.height, eager=True).scatter(hits, True)
    return _like(grouped.select(state.columns), state), found


def _near(stored: pl.DataFrame, new: pl.DataFrame) -> pl.Series | None:
    """A mask of the ``stored`` keys that may equal one of ``new``'s: those within
    ``new``'s range of values in an integer or temporal key column (a window's start),
    or NULL there where ``new`` has a NULL; the first column whose range leaves out at
    least half the stored rows, or None. A batch of a high-cardinality windowed query
    touches one or two of the stored windows."""
    for name in stored.columns:
        column = new.get_column(name)
        if not (column.dtype.is_integer() or column.dtype.is_temporal()):
            continue
        values = stored.get_column(name)
        near = values.is_between(column.min(), column.max()).fill_null(False) \
            if column.null_count() < column.len() else values.is_null()
        if column.null_count():
            near = near | values.is_null()
        if 2 * near.sum() <= near.len():
            return near
    return None


def key_hashes(keys: pl.DataFrame) -> pl.Series:
    """One 64-bit hash per row of ``keys``; equal rows hash equal within a process."""
    return keys.hash_rows()


def _size(series: pl.Series | None) -> int:
    return 0 if series is None else int(series.estimated_size())


def _positions(n: int, name: str) -> pl.Series:
    return pl.int_range(0, n, dtype=pl.UInt32, eager=True).alias(name)


def _merge_small(state: pl.DataFrame, rows: pl.DataFrame, merge: Sequence[pl.Expr],
                 schema: StateSchema, evict: pl.Expr | None
                 ) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series | None]:
    """``merge_rows`` as one full join and one projection, which also evaluates ``evict``
    when it reads only key columns."""
    keys = schema.key_names
    joined = _flagged(rows, _NEW).join(
        _flagged(state, FOUND_COLUMN), on=keys, how="full", coalesce=True, nulls_equal=True,
        suffix=OLD_SUFFIX, maintain_order="left")
    new = pl.col(_NEW).fill_null(False)
    values = [pl.when(new).then(e).otherwise(pl.col(n + OLD_SUFFIX)).alias(n)
              for n, e in _merge_by_column(merge, schema).items()]
    fused = evict is not None and set(evict.meta.root_names()) <= set(keys)
    extra = [evict.fill_null(False).alias(_EVICT)] if fused and evict is not None else []
    try:
        out = joined.select(*keys, *values, new, *extra)
    except pl.exceptions.PolarsError:
        if evict is not None:
            eviction_mask(state, evict)  # raises the predicate's error, if it is the cause
        raise
    mask = _checked_mask(out.drop_in_place(_EVICT), evict) if extra else None
    brought = out.drop_in_place(_NEW)
    out = _like(out, state)
    return out, _brought_rows(out, brought, rows.height), mask


def _like(frame: pl.DataFrame, state: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (the state's columns) cast to the state's types where they differ."""
    if frame.dtypes == state.dtypes:
        return frame
    return frame.cast(dict(zip(state.columns, state.dtypes, strict=True)))


def _brought_rows(state: pl.DataFrame, brought: pl.Series, count: int) -> pl.DataFrame:
    """The ``count`` rows ``brought`` marks: the first ones, as the join kept the batch's
    rows first in their order (checked, for Polars releases that would not)."""
    head = brought.head(count)
    if head.len() == count and head.all():
        return state.head(count)
    return state.filter(brought)


def _flagged(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """``frame`` with a constant true column ``name``, appended without running a query."""
    return frame.hstack([_TRUE.new_from_index(0, frame.height).alias(name)])


def _merge_by_column(merge: Sequence[pl.Expr], schema: StateSchema) -> dict[str, pl.Expr]:
    """The merge expression of each value column, in the state's column order."""
    by_name = {e.meta.output_name(): e for e in merge}
    missing = [n for n in schema.value_names if n not in by_name]
    if missing:
        raise ValueError(f"merge expressions are missing for the state columns {missing}")
    return {n: by_name[n] for n in schema.value_names}


def eviction_mask(frame: pl.DataFrame, predicate: pl.Expr) -> pl.Series:
    """The rows ``predicate`` selects (null counts as not selected)."""
    try:
        mask = frame.select(predicate.fill_null(False).alias(_EVICT)).to_series()
    except pl.exceptions.PolarsError as e:
        raise AnalysisException(
            f"The state eviction predicate {predicate} cannot be evaluated over the state "
            f"columns {frame.columns}: {e}",
            error_class="STATE_STORE_BAD_PREDICATE",
        ) from e
    return _checked_mask(mask, predicate)


def _checked_mask(mask: pl.Series, predicate: pl.Expr | None) -> pl.Series:
    if mask.dtype != pl.Boolean:
        raise AnalysisException(
            f"The state eviction predicate {predicate} returns {mask.dtype}, not a boolean.",
            error_class="STATE_STORE_BAD_PREDICATE",
        )
    return mask


class OpenVersion:
    """What every provider's open store shares: its version, schema, change log and the
    open/committed/aborted status that guards it."""

    def __init__(self, schema: StateSchema, version: int) -> None:
        self._version = version
        self._schema = schema
        self._delta = StateDelta(schema)
        self._updated = 0
        self._removed = 0
        self._commit_ms = 0
        self._status = "open"

    @property
    def version(self) -> int:
        return self._version

    @property
    def schema(self) -> StateSchema:
        return self._schema

    def _check_open(self) -> None:
        if self._status != "open":
            raise RuntimeError(f"state store version {self._version} is already {self._status}")


class MemoryStateStore(OpenVersion):
    """One open version held as a Polars frame; see ``StateStore`` for the contract."""

    def __init__(
        self, provider: MemoryStateStoreProvider, version: int, frame: pl.DataFrame
    ) -> None:
        super().__init__(provider.schema, version)
        self._provider = provider
        self._keys = provider.schema.key_names
        self._frame = frame
        # The key hashes of a frame this store held; they count only while that frame
        # is still ``_frame`` (checked by identity), so no other change can stale them.
        self._keyed = provider.keyed(version)
        # The frame in pieces by window (``state/pieces.py``), under the same rule.
        self._pieces = provider.pieces(version)

    def lookup(self, keys: pa.Table) -> pa.Table:
        self._check_open()
        wanted = to_polars(conform(keys, self._schema.key))
        present = self._frame.with_columns(pl.lit(True).alias(FOUND_COLUMN))
        out = wanted.join(
            present, on=self._keys, how="left", nulls_equal=True, maintain_order="left"
        ).with_columns(pl.col(FOUND_COLUMN).fill_null(False))
        return to_arrow(out, self._schema.row_schema.append(pa.field(FOUND_COLUMN, pa.bool_())))

    def upsert(self, rows: pa.Table, *, distinct: bool = False, new_keys: bool = False
               ) -> None:
        self._check_open()
        new = to_polars(conform(rows, self._schema.row_schema))
        if not distinct:
            new = new.unique(subset=self._keys, keep="last", maintain_order=True)
        kept = self._frame if new_keys else self._frame.join(
            new, on=self._keys, how="anti", nulls_equal=True)
        self._frame = pl.concat([kept, new])
        self._delta.record_upserts(new)
        self._updated += new.height

    def delete(self, keys: pa.Table) -> None:
        self._check_open()
        wanted = to_polars(conform(keys, self._schema.key))
        found = self._frame.join(wanted, on=self._keys, how="semi", nulls_equal=True)
        self._remove(found)

    def _remove(self, rows: pl.DataFrame) -> None:
        self._frame = self._frame.join(rows, on=self._keys, how="anti", nulls_equal=True)
        self._delta.record_deletes(rows)
        self._removed += rows.height

    def evict(self, predicate: pl.Expr) -> pa.Table:
        self._check_open()
        mask = eviction_mask(self._frame, predicate)
        evicted = self._frame.filter(mask)
        self._frame = self._frame.filter(~mask)
        self._delta.record_deletes(evicted)
        self._removed += evicted.height
        return to_arrow(evicted, self._schema.row_schema)

    def scan(self) -> pa.Table:
        self._check_open()
        return to_arrow(self._frame, self._schema.row_schema)

    def merge_fold(self, rows: pl.DataFrame, merge: Sequence[pl.Expr],
                   evict: pl.Expr | None) -> MergeFold:
        self._check_open()
        empty = self._provider.empty
        state, merged, mask, gone = self._frame, empty, None, None
        if rows.height:
            state, merged, mask, gone = self._merge(self._conformed(rows), merge, evict)
        evicted = empty if gone is None or not gone.height else gone  # gone: evicted already
        if gone is None and mask is None and evict is not None and state.height:
            mask = eviction_mask(state, evict)
        if mask is not None and mask.any():
            hashes = self._hashes(state)
            evicted, state = state.filter(mask), state.filter(~mask)
            self._keyed = None if hashes is None else KeyedFrame(state, hashes.filter(~mask))
        return self._record(state, merged, evicted)

    def combine_fold(self, rows: pl.DataFrame, combine: Sequence[pl.Expr],
                     evict: pl.Expr | None) -> MergeFold | None:
        self._check_open()
        state = self._frame
        if state.height + rows.height <= SMALL_MERGE_ROWS:
            return None
        rows = self._conformed(rows)
        pieces = self._pieces_for(evict, rows)
        if pieces is not None:
            return self._combine_pieces(pieces, rows, combine, evict)
        combined = combine_rows(state, rows, combine, self._keys)
        if combined is None:
            return None
        merged, found = combined
        self._keyed = None  # the new state's key hashes are not computed
        if evict is None:
            return self._record(pl.concat([state.filter(~found), merged]), merged,
                                self._provider.empty)
        out, new_out = eviction_mask(state, evict), eviction_mask(merged, evict)
        stays = pl.concat([state.filter(~(out | found)), merged.filter(~new_out)])
        return self._record(stays, merged,
                            pl.concat([state.filter(out & ~found), merged.filter(new_out)]))

    def _pieces_for(self, evict: pl.Expr | None, rows: pl.DataFrame) -> Pieces | None:
        """The state in pieces by the one key column ``evict`` reads (kept from the last
        batch, or split now), or None when it cannot or should not be split: also when
        the pieces with ``rows``' windows added would pass ``MAX_PIECES``."""
        column = piece_column(evict, self._provider.empty.schema, self._keys)
        if column is None or column in self._provider.unsplittable:
            return None
        known = self._pieces
        if known is not None and known.frame is self._frame and known.column == column:
            pieces: Pieces | None = known
        else:
            pieces = Pieces.split(self._frame, column)
        if pieces is None or len(pieces.parts.keys() | set(pieces.values_of(rows))) \
                > pieces_module.MAX_PIECES:
            # a state whose pieces outgrew the limit over batches stays whole from now
            # on, as one that held too many values when first split
            self._provider.unsplittable.add(column)
            return None
        return pieces

    def _combine_pieces(self, pieces: Pieces, rows: pl.DataFrame,
                        combine: Sequence[pl.Expr], evict: pl.Expr | None
                        ) -> MergeFold | None:
        """``combine_fold`` over the pieces of the batch's windows only, one window at a
        time; closed pieces are then evicted whole. The rows and changes are those of the
        whole-frame fold."""
        combined = self._combined_by_piece(pieces, rows, combine)
        if combined is None:
            return None
        parts = dict(pieces.parts)
        for v, (part, replaced) in combined.items():
            parts[v] = part if v not in parts else \
                pieces_module.updated(parts[v], part, replaced, self._keys)
        gone = self._closed_pieces(Pieces.of(pieces.column, parts, self._provider.empty), evict)
        evicted = [parts.pop(v) for v in gone]
        kept_pieces = Pieces.of(pieces.column, {v: p for v, p in parts.items() if p.height},
                                self._provider.empty)
        merged = [part for part, _ in combined.values()]
        self._pieces, self._keyed = kept_pieces, None
        return self._record(kept_pieces.frame,
                            pl.concat(merged) if merged else self._provider.empty,
                            pl.concat(evicted) if evicted else self._provider.empty,
                            compacted=True)

    def _combined_by_piece(self, pieces: Pieces, rows: pl.DataFrame,
                           combine: Sequence[pl.Expr]
                           ) -> dict[object, tuple[pl.DataFrame, Replaced]] | None:
        """For each window of ``rows``: its rows grouped with the stored rows of their keys
        (``combine_rows``, or ``sum_by_slots`` when ``combine`` sums every value), and
        which rows of its piece they replace; None if a window's keys do not pack
        (nothing is changed before every window is done)."""
        sums = slot_sums.sums_only(combine, self._schema.value_names)
        empty = self._provider.empty
        out: dict[object, tuple[pl.DataFrame, Replaced]] = {}
        for v, part in pieces.split_rows(rows, pieces.values_of(rows)).items():
            stored = pieces.parts.get(v, empty)
            slotted = slot_sums.sum_by_slots(stored, part, self._keys,
                                             constant=(pieces.column,)) if sums else None
            if slotted is not None:
                out[v] = slotted.grouped, Replaced(slotted.found, slotted.of_found)
                continue
            combined = combine_rows(stored, part, combine, self._keys, near_only=False)
            if combined is None:
                return None
            out[v] = combined[0], Replaced(combined[1].arg_true().to_numpy(), None)
        return out

    @staticmethod
    def _closed_pieces(pieces: Pieces, evict: pl.Expr | None) -> list[object]:
        """The values of the pieces ``evict`` selects (whole: see ``Pieces.probe``)."""
        if evict is None or not pieces.parts:
            return []
        mask = eviction_mask(pieces.probe(), evict)
        return [v for v, out in zip(pieces.parts, mask.to_list(), strict=True) if out]

    def _record(self, state: pl.DataFrame, merged: pl.DataFrame, evicted: pl.DataFrame,
                *, compacted: bool = False) -> MergeFold:
        """Make ``state`` the open version, ``merged`` and ``evicted`` its changes
        (``compacted``: its pieces are kept in few chunks already)."""
        self._frame = state if compacted else self._compacted(state)
        self._delta.record_upserts(merged)
        self._delta.record_deletes(evicted)
        self._updated += merged.height
        self._removed += evicted.height
        return MergeFold(merged, evicted)

    def _merge(self, rows: pl.DataFrame, merge: Sequence[pl.Expr], evict: pl.Expr | None
               ) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series | None, pl.DataFrame | None]:
        """``merge_rows`` and, when the eviction came with it, the evicted rows (the
        state is then without them); a large merge over keys that hash goes through
        the key hashes (kept for the next batch, so the stored keys are hashed once)
        and evicts in the same pass."""
        state = self._frame
        if state.height + rows.height > SMALL_MERGE_ROWS and _hashable(rows.select(self._keys)):
            hashed = _merge_hashed(state, rows, merge, self._schema,
                                   hashes=self._hashes(), evict=evict)
            if hashed is not None:
                self._keyed = hashed[0]
                return hashed[0].frame, hashed[1], None, hashed[2]
        return (*merge_rows(state, rows, merge, self._schema, evict), None)

    def _compacted(self, state: pl.DataFrame) -> pl.DataFrame:
        """``state`` in one chunk once it has more than ``MAX_STATE_CHUNKS``: a large
        merge appends the merged rows as a chunk on every batch, and joins, gathers and
        filters slow down as chunks multiply over a long-running query. The key hashes
        count too: a merge that evicts in its pass can leave them in more chunks."""
        hashes = self._hashes(state)
        if state.n_chunks() <= MAX_STATE_CHUNKS and \
                (hashes is None or hashes.n_chunks() <= MAX_STATE_CHUNKS):
            return state
        state = state.rechunk()
        self._keyed = None if hashes is None else KeyedFrame(state, hashes.rechunk())
        return state

    def _hashes(self, frame: pl.DataFrame | None = None) -> pl.Series | None:
        """The key hashes of ``frame`` (default ``_frame``), if known."""
        keyed, frame = self._keyed, self._frame if frame is None else frame
        return keyed.hashes if keyed is not None and keyed.frame is frame else None

    def _conformed(self, rows: pl.DataFrame) -> pl.DataFrame:
        """``rows`` in the state's columns and types (usually already so: no copy)."""
        empty = self._provider.empty
        if rows.columns == empty.columns and rows.dtypes == empty.dtypes:
            return rows
        return rows.select(empty.columns).cast(dict(zip(empty.columns, empty.dtypes, strict=True)))

    def commit(self) -> int:
        self._check_open()
        started = time.monotonic()
        new_version = self._version + 1
        pieces = self._pieces if self._pieces is not None and \
            self._pieces.frame is self._frame else None
        self._provider.publish(new_version, self._frame, self._delta.to_arrow(),
                               self._hashes(), pieces)
        self._commit_ms = int((time.monotonic() - started) * 1000)
        self._status = "committed"
        return new_version

    def abort(self) -> None:
        if self._status == "open":
            self._status = "aborted"

    @property
    def metrics(self) -> StateStoreMetrics:
        return StateStoreMetrics(
            num_rows_total=self._frame.height,
            num_rows_updated=self._updated,
            num_rows_removed=self._removed,
            memory_used_bytes=int(self._frame.estimated_size()) + _size(self._hashes()),
            commit_time_ms=self._commit_ms,
        )


class MemoryStateStoreProvider:
    """Keeps recent versions of one operator partition in memory (the last
    ``max_versions_in_memory``), so batch N+1 reuses what batch N committed.

    >>> import tempfile
    >>> schema = StateSchema(pa.schema([("k", pa.int64())]), pa.schema([("n", pa.int64())]))
    >>> provider = MemoryStateStoreProvider(StateStoreId(tempfile.mkdtemp(), 0, 0), schema)
    >>> store = provider.get_store(0)
    >>> store.upsert(pa.table({"k": [1, 2], "n": [10, 20]}))
    >>> store.commit()
    1
    >>> provider.get_store(1).lookup(pa.table({"k": [2, 3]})).to_pydict()
    {'k': [2, 3], 'n': [20, None], '__found': [True, False]}
    """

    def __init__(
        self, store_id: StateStoreId, schema: StateSchema, conf: StateStoreConf | None = None
    ) -> None:
        self._store_id = store_id
        self.schema = schema
        self._conf = conf or StateStoreConf()
        StateSchemaFile(store_id).write_or_check(schema)
        self._files = StateFileLog(store_id, schema, self._conf.min_deltas_for_snapshot)
        self._fence = fence_for(store_id.root)  # a newer run's start fences our commits
        self._cache: OrderedDict[int, pl.DataFrame] = OrderedDict()
        self._keyed: dict[int, KeyedFrame] = {}  # of cached versions whose hashes are known
        self._pieces: dict[int, Pieces] = {}  # of cached versions kept in pieces
        # Key columns found to hold too many values to split the state by (``Pieces``).
        self.unsplittable: set[str] = set()
        self._empty = to_polars(pa.Table.from_batches([], schema=schema.row_schema))

    @property
    def empty(self) -> pl.DataFrame:
        """No rows, in the state's columns and Polars types."""
        return self._empty

    @property
    def store_id(self) -> StateStoreId:
        return self._store_id

    def get_store(self, version: int) -> MemoryStateStore:
        if version < 0:
            raise ValueError(f"state versions start at 0, not {version}")
        return MemoryStateStore(self, version, self._load(version))

    def _load(self, version: int) -> pl.DataFrame:
        if version in self._cache:
            self._cache.move_to_end(version)
            return self._cache[version]
        start, deltas = self._files.plan(version, self._cache.keys())
        frame = self._cache.get(start)
        if frame is None:
            frame = self._read_snapshot(start) if start > 0 else self._empty
        for v in deltas:
            frame = apply_delta(frame, self._files.read_delta(v), self.schema.key_names)
        self._remember(version, frame)
        return frame

    def _read_snapshot(self, version: int) -> pl.DataFrame:
        chunks = [to_polars(c) for c in self._files.snapshot_chunks(version)]
        return pl.concat([self._empty, *chunks])

    def _remember(self, version: int, frame: pl.DataFrame) -> None:
        self._cache[version] = frame
        self._cache.move_to_end(version)
        while len(self._cache) > self._conf.max_versions_in_memory:
            gone = self._cache.popitem(last=False)[0]
            self._keyed.pop(gone, None)
            self._pieces.pop(gone, None)

    def keyed(self, version: int) -> KeyedFrame | None:
        """Cached ``version``'s frame with its key hashes, when they are known."""
        return self._keyed.get(version)

    def pieces(self, version: int) -> Pieces | None:
        """Cached ``version``'s frame in pieces, when it was kept so."""
        return self._pieces.get(version)

    def publish(self, version: int, frame: pl.DataFrame, delta: pa.Table,
                hashes: pl.Series | None = None, pieces: Pieces | None = None) -> None:
        """Make ``frame`` durable as ``version`` (called by the store's ``commit``);
        ``hashes`` are its key hashes and ``pieces`` its pieces, if known, kept with it
        in memory only."""
        if self._fence is not None:
            self._fence.check(self._files.delta_path(version))
        self._files.write_delta(version, delta)
        if self._files.snapshot_due(version):
            self._files.write_snapshot(version, [to_arrow(frame, self.schema.row_schema)])
        self._remember(version, frame)
        self._keyed.pop(version, None)
        if hashes is not None:
            self._keyed[version] = KeyedFrame(frame, hashes)
        self._pieces.pop(version, None)
        if pieces is not None:
            self._pieces[version] = pieces

    def latest_version(self) -> int:
        return self._files.latest_version()

    def maintenance(self, min_versions_to_retain: int | None = None) -> None:
        retain = min_versions_to_retain or self._conf.min_versions_to_retain
        self._files.maintenance(retain)

    def close(self) -> None:
        self._cache.clear()
        self._keyed.clear()
        self._pieces.clear()
