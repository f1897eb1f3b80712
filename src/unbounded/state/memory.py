"""The default state store: versions in memory as Polars frames, files as Arrow IPC.

Like Spark's HDFSBackedStateStoreProvider, every committed version writes a delta file
and every ``min_deltas_for_snapshot``-th version also a full snapshot; recovering
version V reads the newest snapshot at or below V and the deltas after it. The file
format (:class:`StateFileLog`) is shared with the disk provider, so a checkpoint can be
reopened with either provider.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator

import polars as pl
import pyarrow as pa

from unbounded.checkpoint.atomic import fsync_dir, write_atomic_replace
from unbounded.errors import AnalysisException, CheckpointCorruptError
from unbounded.state.base import (
    FOUND_COLUMN,
    OP_COLUMN,
    StateSchema,
    StateSchemaFile,
    StateStoreConf,
    StateStoreId,
    StateStoreMetrics,
    conform,
)

__all__ = [
    "MemoryStateStore",
    "MemoryStateStoreProvider",
    "OpenVersion",
    "StateDelta",
    "StateFileLog",
    "last_changes",
    "to_polars",
]

logger = logging.getLogger(__name__)

OP_UPSERT = 0
OP_DELETE = 1
_FORMAT_KEY = b"unbounded.state.format"
_KIND_KEY = b"unbounded.state.kind"
_FORMAT_VERSION = b"1"
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def to_polars(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def to_arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """``frame`` as Arrow with exactly ``schema``'s types (Polars may pick view types)."""
    return frame.to_arrow().cast(schema)


class StateFileLog:
    """The files of one operator partition: ``<root>/<operator>/<partition>/<version>.delta``
    and ``<version>.snapshot``.

    Both are Arrow IPC files (lz4-compressed buffers) whose schema metadata carries
    ``unbounded.state.format = "1"`` and ``unbounded.state.kind`` (``delta`` or
    ``snapshot``); a reader rejects other format versions. A snapshot holds every row
    (key then value columns). A delta holds the version's changes in the order they were
    made, with an int8 ``__op`` column: 0 = upsert (values set), 1 = delete (values
    null); a key may appear more than once and its last row wins (as in Spark's delta
    files, which log every put and remove in order). For example the delta of a batch
    that counted key 7 and expired key 3::

        k  count  __op
        7  2      0
        3  null   1

    Files are published with ``write_atomic_replace``: a replayed batch recomputes the
    same version, so it overwrites rather than conflicts; two concurrent runs are fenced
    by the checkpoint's run lock and offset log, not here. A snapshot is written when
    ``version % min_deltas_for_snapshot == 0`` so a replay rewrites the same files.
    """

    def __init__(self, store_id: StateStoreId, schema: StateSchema, snapshot_every: int) -> None:
        self.folder = store_id.path
        self._row_schema = schema.row_schema
        self._delta_schema = self._row_schema.append(pa.field(OP_COLUMN, pa.int8(), False))
        self._every = snapshot_every

    def delta_path(self, version: int) -> str:
        return os.path.join(self.folder, f"{version}.delta")

    def snapshot_path(self, version: int) -> str:
        return os.path.join(self.folder, f"{version}.snapshot")

    def snapshot_due(self, version: int) -> bool:
        return version % self._every == 0

    def _with_meta(self, schema: pa.Schema, kind: bytes) -> pa.Schema:
        return schema.with_metadata({_FORMAT_KEY: _FORMAT_VERSION, _KIND_KEY: kind})

    def write_delta(self, version: int, delta: pa.Table) -> None:
        table = delta.cast(self._with_meta(self._delta_schema, b"delta"))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema, options=_IPC_OPTIONS) as writer:
            writer.write_table(table)
        write_atomic_replace(self.delta_path(version), sink.getvalue().to_pybytes())

    def write_snapshot(self, version: int, chunks: Iterable[pa.Table]) -> None:
        """Stream ``chunks`` (row tables) into the snapshot: tmp file, fsync, replace."""
        path = self.snapshot_path(version)
        os.makedirs(self.folder, exist_ok=True)
        tmp = os.path.join(self.folder, f".{version}.snapshot.{uuid.uuid4().hex}.tmp")
        schema = self._with_meta(self._row_schema, b"snapshot")
        try:
            with open(tmp, "wb") as f:
                with pa.ipc.new_file(f, schema, options=_IPC_OPTIONS) as writer:
                    for chunk in chunks:
                        writer.write_table(chunk.cast(schema))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_dir(self.folder)

    def versions(self) -> tuple[set[int], set[int]]:
        """The versions that have a delta file and those that have a snapshot file."""
        deltas: set[int] = set()
        snapshots: set[int] = set()
        names = os.listdir(self.folder) if os.path.isdir(self.folder) else []
        for name in names:
            stem, _, ext = name.partition(".")
            if stem.isdigit() and ext in ("delta", "snapshot"):
                (deltas if ext == "delta" else snapshots).add(int(stem))
        return deltas, snapshots

    def latest_version(self) -> int:
        deltas, snapshots = self.versions()
        return max(deltas | snapshots, default=0)

    def plan(self, version: int, cached: Iterable[int] = ()) -> tuple[int, list[int]]:
        """Where recovering ``version`` starts (a cached version, a snapshot, or 0 for
        the empty state; a cached start is preferred) and the deltas to apply after it."""
        if version == 0:
            return 0, []
        deltas, snapshots = self.versions()
        base = max((s for s in snapshots if s <= version), default=0)
        start = max((c for c in cached if base <= c <= version), default=base)
        needed = list(range(start + 1, version + 1))
        missing = [v for v in needed if v not in deltas]
        if missing:
            raise CheckpointCorruptError(
                f"Cannot recover state version {version} in {self.folder}: the delta files "
                f"for versions {missing[:10]} are missing (latest version on disk is "
                f"{max(deltas | snapshots, default=0)}). The checkpoint is incomplete or "
                "was cleaned up too aggressively; restore it or use a new checkpoint location."
            )
        return start, needed

    def _open(self, path: str, kind: bytes, schema: pa.Schema) -> pa.ipc.RecordBatchFileReader:
        try:
            reader = pa.ipc.open_file(pa.OSFile(path))
        except (OSError, pa.ArrowInvalid) as e:
            raise CheckpointCorruptError(f"State file {path} is unreadable: {e}") from e
        meta = reader.schema.metadata or {}
        if meta.get(_FORMAT_KEY) != _FORMAT_VERSION or meta.get(_KIND_KEY) != kind:
            raise CheckpointCorruptError(
                f"State file {path} has format {meta.get(_FORMAT_KEY)!r} kind "
                f"{meta.get(_KIND_KEY)!r}; expected format {_FORMAT_VERSION!r} kind {kind!r}. "
                "It was written by another unbounded version; use a matching release."
            )
        if not reader.schema.remove_metadata().equals(schema):
            raise CheckpointCorruptError(
                f"State file {path} has columns {reader.schema.remove_metadata()}, "
                f"expected {schema}."
            )
        return reader

    def read_delta(self, version: int) -> pa.Table:
        reader = self._open(self.delta_path(version), b"delta", self._delta_schema)
        return reader.read_all().replace_schema_metadata(None)

    def snapshot_chunks(self, version: int) -> Iterator[pa.Table]:
        reader = self._open(self.snapshot_path(version), b"snapshot", self._row_schema)
        for i in range(reader.num_record_batches):
            yield pa.Table.from_batches([reader.get_batch(i)]).replace_schema_metadata(None)

    def maintenance(self, min_versions_to_retain: int) -> list[str]:
        """Delete files not needed to recover the latest ``min_versions_to_retain``
        versions: everything before the newest snapshot at or below the oldest of them."""
        deltas, snapshots = self.versions()
        oldest = max(deltas | snapshots, default=0) - min_versions_to_retain + 1
        base = max((s for s in snapshots if s <= oldest), default=None)
        if base is None:
            return []
        doomed = [self.snapshot_path(s) for s in snapshots if s < base]
        doomed += [self.delta_path(d) for d in deltas if d <= base]
        for path in doomed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        logger.debug("state maintenance removed %d files from %s", len(doomed), self.folder)
        return doomed


class StateDelta:
    """The changes of one version, kept in order; see :class:`StateFileLog`."""

    def __init__(self, schema: StateSchema) -> None:
        self._keys = schema.key_names
        self._value_types = to_polars(pa.Table.from_batches([], schema=schema.value)).schema
        self._empty = to_polars(pa.Table.from_batches([], schema=schema.row_schema)).with_columns(
            pl.lit(None, pl.Int8).alias(OP_COLUMN)
        )
        self._changes: list[pl.DataFrame] = []

    def record_upserts(self, rows: pl.DataFrame) -> None:
        op = pl.lit(OP_UPSERT, pl.Int8).alias(OP_COLUMN)
        self._changes.append(rows.with_columns(op).select(self._empty.columns))

    def record_deletes(self, keys: pl.DataFrame) -> None:
        nulls = [pl.lit(None, t).alias(n) for n, t in self._value_types.items()]
        op = pl.lit(OP_DELETE, pl.Int8).alias(OP_COLUMN)
        self._changes.append(keys.select(self._keys).with_columns(*nulls, op)
                             .select(self._empty.columns))

    def to_arrow(self) -> pa.Table:
        changes = [c for c in self._changes if c.height]
        if not changes:
            return self._empty.to_arrow()
        return pl.concat(changes, how="vertical_relaxed").to_arrow()


def last_changes(delta: pa.Table, key_names: list[str]) -> pl.DataFrame:
    """A delta's net effect: the last change of each key, in order."""
    return to_polars(delta).unique(subset=key_names, keep="last", maintain_order=True)


def apply_delta(frame: pl.DataFrame, delta: pa.Table, key_names: list[str]) -> pl.DataFrame:
    changes = last_changes(delta, key_names)
    kept = frame.join(changes.select(key_names), on=key_names, how="anti", nulls_equal=True)
    upserts = changes.filter(pl.col(OP_COLUMN) == OP_UPSERT).drop(OP_COLUMN)
    return pl.concat([kept, upserts.select(frame.columns)])


def eviction_mask(frame: pl.DataFrame, predicate: pl.Expr) -> pl.Series:
    """The rows ``predicate`` selects (null counts as not selected)."""
    try:
        mask = frame.select(predicate.fill_null(False).alias("__evict")).to_series()
    except pl.exceptions.PolarsError as e:
        raise AnalysisException(
            f"The state eviction predicate {predicate} cannot be evaluated over the state "
            f"columns {frame.columns}: {e}",
            error_class="STATE_STORE_BAD_PREDICATE",
        ) from e
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

    def lookup(self, keys: pa.Table) -> pa.Table:
        self._check_open()
        wanted = to_polars(conform(keys, self._schema.key))
        present = self._frame.with_columns(pl.lit(True).alias(FOUND_COLUMN))
        out = wanted.join(
            present, on=self._keys, how="left", nulls_equal=True, maintain_order="left"
        ).with_columns(pl.col(FOUND_COLUMN).fill_null(False))
        return to_arrow(out, self._schema.row_schema.append(pa.field(FOUND_COLUMN, pa.bool_())))

    def upsert(self, rows: pa.Table, *, distinct: bool = False) -> None:
        self._check_open()
        new = to_polars(conform(rows, self._schema.row_schema))
        if not distinct:
            new = new.unique(subset=self._keys, keep="last", maintain_order=True)
        kept = self._frame.join(new, on=self._keys, how="anti", nulls_equal=True)
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

    def commit(self) -> int:
        self._check_open()
        started = time.monotonic()
        new_version = self._version + 1
        self._provider.publish(new_version, self._frame, self._delta.to_arrow())
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
            memory_used_bytes=int(self._frame.estimated_size()),
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
        self._cache: OrderedDict[int, pl.DataFrame] = OrderedDict()
        self._empty = to_polars(pa.Table.from_batches([], schema=schema.row_schema))

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
            self._cache.popitem(last=False)

    def publish(self, version: int, frame: pl.DataFrame, delta: pa.Table) -> None:
        """Make ``frame`` durable as ``version`` (called by the store's ``commit``)."""
        self._files.write_delta(version, delta)
        if self._files.snapshot_due(version):
            self._files.write_snapshot(version, [to_arrow(frame, self.schema.row_schema)])
        self._remember(version, frame)

    def latest_version(self) -> int:
        return self._files.latest_version()

    def maintenance(self, min_versions_to_retain: int | None = None) -> None:
        retain = min_versions_to_retain or self._conf.min_versions_to_retain
        self._files.maintenance(retain)

    def close(self) -> None:
        self._cache.clear()
