"""A state store for state larger than memory: the working rows live in a local RocksDB.

Design (see also ``unbounded.state.files``): the checkpoint holds exactly the same
checksummed Arrow IPC delta and snapshot files as the memory provider, so the
checkpoint stays the truth, holds nothing but Arrow, and can be reopened by either
provider. The RocksDB database is
a local working copy in a private temp folder (``StateStoreConf.local_dir``): it holds
the latest committed version, is advanced in place by each batch and rebuilt from the
files after an abort, a restart or a jump to another version. RocksDB's own checkpoints
were not used because SST files would put a second, engine-specific format into the
checkpoint and tie recovery to one RocksDB build.

Keys and values are encoded a whole Arrow table at a time by
:class:`~unbounded.state.rowcodec.RowCodec` into one buffer (no per-row Python for
fixed-width columns). Every bulk read or write is put in near key order first, then cut
into chunks of ``_CHUNK_ROWS``: one multi-get or one ``WriteBatch`` per chunk. Sorted
access is what makes RocksDB fast here (about 8x for memtable inserts of random keys);
chunking keeps memtables and Python lists small. The working copy runs without a
write-ahead log (see ``DiskStateStoreProvider._write_options``).
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Iterator
from typing import cast

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from rocksdict import Options, Rdict, ReadOptions, WriteBatch, WriteOptions

from unbounded.checkpoint.epoch import fence_for
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
from unbounded.state.files import StateFileLog
from unbounded.state.memory import (
    OP_UPSERT,
    OpenVersion,
    eviction_mask,
    last_changes,
    to_arrow,
    to_polars,
)
from unbounded.state.rowcodec import EncodedRows, RowCodec

__all__ = ["DiskStateStore", "DiskStateStoreProvider"]

logger = logging.getLogger(__name__)

_CHUNK_ROWS = 65_536
_WRITE_BUFFER_BYTES = 64 << 20
_WRITE_BUFFERS = 4
Index = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


def _consume(calls: Iterator[object]) -> None:
    """Run a lazy ``map`` of binding calls without a Python-level loop."""
    collections.deque(calls, maxlen=0)


class DiskStateStore(OpenVersion):
    """One open version backed by the provider's RocksDB; see ``StateStore``."""

    def __init__(self, provider: DiskStateStoreProvider, version: int) -> None:
        super().__init__(provider.schema, version)
        self._provider = provider

    @property
    def is_open(self) -> bool:
        return self._status == "open"

    def lookup(self, keys: pa.Table) -> pa.Table:
        self._check_open()
        wanted = conform(keys, self._schema.key)
        found, values = self._provider.get_rows(self._provider.key_codec.encode(wanted))
        positions = pa.array(np.cumsum(found) - 1, mask=~found)
        columns = [*wanted.columns, *(v.take(positions) for v in values), pa.array(found)]
        schema = self._schema.row_schema.append(pa.field(FOUND_COLUMN, pa.bool_()))
        return pa.Table.from_arrays(columns, schema=schema)

    def upsert(self, rows: pa.Table, *, distinct: bool = False, new_keys: bool = False
               ) -> None:
        # A put replaces or inserts alike: ``new_keys`` spares nothing here.
        self._check_open()
        new = to_polars(conform(rows, self._schema.row_schema))
        if not distinct:
            new = new.unique(subset=self._schema.key_names, keep="last", maintain_order=True)
        self._provider.put(to_arrow(new, self._schema.row_schema))
        self._delta.record_upserts(new)
        self._updated += new.height

    def delete(self, keys: pa.Table) -> None:
        self._check_open()
        wanted = conform(keys, self._schema.key)
        encoded = self._provider.key_codec.encode(wanted)
        first = np.flatnonzero(encoded.first_occurrences())
        present = first[self._provider.contains(encoded.take(first))]
        self._provider.remove(encoded.take(present), present=True)
        self._delta.record_deletes(to_polars(wanted.take(pa.array(present, pa.int64()))))
        self._removed += len(present)

    def evict(self, predicate: pl.Expr) -> pa.Table:
        self._check_open()
        doomed: list[bytes] = []
        evicted: list[pa.Table] = []
        for encoded, chunk in self._provider.iterate():
            mask = eviction_mask(to_polars(chunk), predicate)
            doomed += itertools.compress(encoded, mask.to_list())
            evicted.append(chunk.filter(mask.to_arrow()))
        self._provider.remove_listed(doomed)
        empty = pa.Table.from_batches([], schema=self._schema.row_schema)
        out = pa.concat_tables([empty, *evicted])
        self._delta.record_deletes(to_polars(out.select(self._schema.key_names)))
        self._removed += out.num_rows
        return out

    def scan(self) -> pa.Table:
        self._check_open()
        chunks = [chunk for _, chunk in self._provider.iterate()]
        empty = pa.Table.from_batches([], schema=self._schema.row_schema)
        return pa.concat_tables([empty, *chunks])

    def commit(self) -> int:
        self._check_open()
        started = time.monotonic()
        new_version = self._version + 1
        self._provider.publish(new_version, self._delta.to_arrow())
        self._commit_ms = int((time.monotonic() - started) * 1000)
        self._status = "committed"
        return new_version

    def abort(self) -> None:
        if self._status == "open":
            self._status = "aborted"
            self._provider.discard()

    @property
    def metrics(self) -> StateStoreMetrics:
        return StateStoreMetrics(
            num_rows_total=self._provider.num_rows,
            num_rows_updated=self._updated,
            num_rows_removed=self._removed,
            memory_used_bytes=self._provider.memory_used_bytes(),
            commit_time_ms=self._commit_ms,
        )


class DiskStateStoreProvider:
    """Serves versions of one operator partition from a local RocksDB working copy.

    Only one store is open at a time: opening another aborts the first. ``close()`` (or
    garbage collection) deletes the working copy; committed state stays in the files.
    """

    _MEMORY_PROPERTIES = (
        "rocksdb.cur-size-all-mem-tables",
        "rocksdb.estimate-table-readers-mem",
        "rocksdb.block-cache-usage",
    )

    def __init__(
        self, store_id: StateStoreId, schema: StateSchema, conf: StateStoreConf | None = None
    ) -> None:
        self._store_id = store_id
        self.schema = schema
        self._conf = conf or StateStoreConf()
        self.key_codec = RowCodec(schema.key)
        self.value_codec = RowCodec(schema.value)
        StateSchemaFile(store_id).write_or_check(schema)
        self._files = StateFileLog(store_id, schema, self._conf.min_deltas_for_snapshot)
        self._fence = fence_for(store_id.root)  # a newer run's start fences our commits
        prefix = f"unbounded-state-{store_id.operator_id}-{store_id.partition_id}-"
        self._workdir = tempfile.mkdtemp(prefix=prefix, dir=self._conf.local_dir)
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._workdir, True)
        self._db: Rdict | None = None
        self._db_version: int | None = None  # None: the working copy matches no version
        self._store: DiskStateStore | None = None
        self.num_rows = 0

    @property
    def store_id(self) -> StateStoreId:
        return self._store_id

    def get_store(self, version: int) -> DiskStateStore:
        if version < 0:
            raise ValueError(f"state versions start at 0, not {version}")
        if self._store is not None and self._store.is_open:
            logger.warning("opening state version %d aborts the open version %d",
                           version, self._store.version)
            self._store.abort()
        self._advance_to(version)
        self._db_version = None  # the store changes the working copy from here on
        self._store = DiskStateStore(self, version)
        return self._store

    def _advance_to(self, version: int) -> None:
        if self._db is not None and self._db_version == version:
            return
        cached = [self._db_version] if self._db is not None and self._db_version is not None else []
        start, deltas = self._files.plan(version, cached)
        if start not in cached:
            self._reset_db()
            if start > 0:
                for chunk in self._files.snapshot_chunks(start):
                    self.put(chunk, new_keys=True)
        for v in deltas:
            self._apply_delta(self._files.read_delta(v))
        self._db_version = version

    def _reset_db(self) -> None:
        self._close_db()
        path = os.path.join(self._workdir, "db")
        shutil.rmtree(path, ignore_errors=True)
        self._db = Rdict(path, self._db_options())
        self._db.set_write_options(self._write_options())
        self.num_rows = 0

    @staticmethod
    def _db_options() -> Options:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(_WRITE_BUFFER_BYTES)
        options.set_max_write_buffer_number(_WRITE_BUFFERS)
        options.set_max_background_jobs(2)
        return options

    @staticmethod
    def _write_options() -> WriteOptions:
        """No write-ahead log: the working copy is never reopened after a crash (each
        provider makes a fresh temp folder and rebuilds it from the Arrow files), so
        RocksDB's own durability would be paid for and never used."""
        options = WriteOptions()
        options.disable_wal = True  # type: ignore[method-assign,assignment]  # a property
        return options

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _apply_delta(self, changes: pa.Table) -> None:
        delta = to_arrow(last_changes(changes, self.schema.key_names), changes.schema)
        upsert = pc.equal(delta[OP_COLUMN], OP_UPSERT)
        self.put(delta.filter(upsert).drop_columns([OP_COLUMN]))
        deleted = delta.filter(pc.invert(upsert)).select(self.schema.key_names)
        self.remove(self.key_codec.encode(deleted))

    @property
    def db(self) -> Rdict:
        if self._db is None:
            raise RuntimeError("the disk state store provider is closed")
        return self._db

    def _multi_get(self, keys: list[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        values: list[bytes | None] = self.db[keys]  # type: ignore[index,assignment]
        return values

    def _chunks(self, keys: EncodedRows, order: Index) -> Iterator[tuple[Index, list[bytes]]]:
        """``keys`` in ``order`` as slices of at most ``_CHUNK_ROWS``: (rows, bytes)."""
        for start in range(0, len(keys), _CHUNK_ROWS):
            rows = order[start : start + _CHUNK_ROWS]
            yield rows, keys.take(rows).to_list()

    def get_rows(self, keys: EncodedRows) -> tuple[Mask, list[pa.Array]]:
        """Whether each key is present, and the value columns of the present ones (in
        the order of ``keys``)."""
        order = keys.locality_order()
        found = np.zeros(len(keys), dtype=np.bool_)
        present: list[bytes] = []
        for rows, chunk in self._chunks(keys, order):
            raw = np.array(self._multi_get(chunk), dtype=object)
            hit = raw != None  # noqa: E711 - elementwise over an object array
            found[rows] = hit
            present += raw[hit].tolist()
        by_key = np.argsort(order[found[order]])  # read order -> key order
        values = self.value_codec.decode(present)
        return found, [v.take(pa.array(by_key)) for v in values]

    def contains(self, keys: EncodedRows) -> Mask:
        """Whether each key is present."""
        found = np.zeros(len(keys), dtype=np.bool_)
        for rows, chunk in self._chunks(keys, keys.locality_order()):
            found[rows] = np.array(self._multi_get(chunk), dtype=object) != None  # noqa: E711
        return found

    def put(self, rows: pa.Table, *, new_keys: bool = False) -> None:
        """Insert or replace ``rows`` (one row per key); ``new_keys`` promises that none
        is present yet, which skips the read that keeps ``num_rows`` exact."""
        keys = self.key_codec.encode(rows)
        values = self.value_codec.encode(rows)
        new_keys = new_keys or self.num_rows == 0
        for order, chunk in self._chunks(keys, keys.locality_order()):
            if not new_keys:
                self.num_rows -= len(chunk) - self._multi_get(chunk).count(None)
            self.num_rows += len(chunk)
            batch = WriteBatch(raw_mode=True)
            _consume(map(batch.put, chunk, values.take(order).to_list()))
            self.db.write(batch)

    def remove(self, keys: EncodedRows, *, present: bool = False) -> None:
        """Delete ``keys`` (each at most once); ``present`` promises they all exist."""
        for _, chunk in self._chunks(keys, keys.locality_order()):
            self.remove_listed(chunk, present=present)

    def remove_listed(self, keys: list[bytes], *, present: bool = True) -> None:
        """Delete encoded ``keys`` (each at most once)."""
        for start in range(0, len(keys), _CHUNK_ROWS):
            chunk = keys[start : start + _CHUNK_ROWS]
            gone = len(chunk) if present else len(chunk) - self._multi_get(chunk).count(None)
            self.num_rows -= gone
            batch = WriteBatch(raw_mode=True)
            _consume(map(batch.delete, chunk))
            self.db.write(batch)

    def iterate(self) -> Iterator[tuple[list[bytes], pa.Table]]:
        """Every row, in chunks: the encoded keys and the decoded rows."""
        snapshot = self.db.snapshot()  # keys and values read in step from one version
        keys_in = snapshot.keys(read_opt=self._scan_options())
        values_in = snapshot.values(read_opt=self._scan_options())
        while keys := cast("list[bytes]", list(itertools.islice(keys_in, _CHUNK_ROWS))):
            values = cast("list[bytes]", list(itertools.islice(values_in, len(keys))))
            arrays = [*self.key_codec.decode(keys), *self.value_codec.decode(values)]
            yield keys, pa.Table.from_arrays(arrays, schema=self.schema.row_schema)

    @staticmethod
    def _scan_options() -> ReadOptions:
        options = ReadOptions()
        options.fill_cache(False)  # type: ignore[call-arg]  # a full scan would only evict the hot blocks
        options.set_readahead_size(2 << 20)
        return options

    def publish(self, version: int, delta: pa.Table) -> None:
        """Make the working copy durable as ``version`` (called by ``commit``)."""
        if self._fence is not None:
            self._fence.check(self._files.delta_path(version))
        self._files.write_delta(version, delta)
        if self._files.snapshot_due(version):
            self._files.write_snapshot(version, (chunk for _, chunk in self.iterate()))
        self._db_version = version

    def discard(self) -> None:
        """Forget the working copy's changes; the next ``get_store`` rebuilds it."""
        self._db_version = None

    def memory_used_bytes(self) -> int:
        if self._db is None:
            return 0
        return sum(self._db.property_int_value(p) or 0 for p in self._MEMORY_PROPERTIES)

    def latest_version(self) -> int:
        return self._files.latest_version()

    def maintenance(self, min_versions_to_retain: int | None = None) -> None:
        retain = min_versions_to_retain or self._conf.min_versions_to_retain
        self._files.maintenance(retain)

    def close(self) -> None:
        self._close_db()
        self._db_version = None
        self._cleanup()
