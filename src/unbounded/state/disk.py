"""A state store for state larger than memory: the working rows live in a local RocksDB.

Design (see also ``StateFileLog``): the checkpoint holds exactly the same Arrow IPC
delta and snapshot files as the memory provider, so the checkpoint stays the truth,
holds nothing but Arrow, and can be reopened by either provider. The RocksDB database is
a local working copy in a private temp folder (``StateStoreConf.local_dir``): it holds
the latest committed version, is advanced in place by each batch and rebuilt from the
files after an abort, a restart or a jump to another version. RocksDB's own checkpoints
were not used because SST files would put a second, engine-specific format into the
checkpoint and tie recovery to one RocksDB build.

Keys and values are encoded by :class:`RowCodec`, a column-at-a-time numpy codec;
writes go through one ``WriteBatch`` per operation and reads through multi-get.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from rocksdict import Options, Rdict, WriteBatch

from unbounded.errors import AnalysisException
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
from unbounded.state.memory import (
    OP_UPSERT,
    StateDelta,
    StateFileLog,
    eviction_mask,
    to_arrow,
    to_polars,
)

__all__ = ["DiskStateStore", "DiskStateStoreProvider", "RowCodec"]

logger = logging.getLogger(__name__)

_CHUNK_ROWS = 65_536
_EMPTY = pa.scalar(b"", pa.large_binary())
Mask = npt.NDArray[np.bool_]
Bytes2D = npt.NDArray[np.uint8]
Index = npt.NDArray[np.int64]


def _storage_type(t: pa.DataType, name: str) -> pa.DataType:
    """The type a column is encoded as; view and dictionary types are normalised."""
    if pa.types.is_dictionary(t):
        return _storage_type(t.value_type, name)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.large_binary()
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _storage_type(f.type, name)) for f in t])
    if pa.types.is_boolean(t) or _fixed_width(t):
        return t
    raise AnalysisException(
        f"State column {name!r} has type {t}, which the disk state store cannot encode. "
        "Use the default provider (spark.sql.streaming.stateStore.providerClass="
        "HDFSBackedStateStoreProvider) for this query.",
        error_class="STATE_STORE_UNSUPPORTED_TYPE",
    )


def _fixed_width(t: pa.DataType) -> bool:
    kinds = (pa.types.is_integer, pa.types.is_floating, pa.types.is_temporal,
             pa.types.is_decimal, pa.types.is_fixed_size_binary)
    return any(k(t) for k in kinds) and t.bit_width % 8 == 0


def _validity(arr: pa.Array) -> Mask:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=np.bool_)
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)


def _fixed_bytes(arr: pa.Array, valid: Mask) -> Bytes2D:
    """Each value's bytes as an (n, width) matrix; nulls zeroed, floats canonical."""
    n, t = len(arr), arr.type
    if pa.types.is_boolean(t):
        flags = np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_)
        return (flags & valid).astype(np.uint8).reshape(n, 1)
    width = t.bit_width // 8
    buf = arr.buffers()[1]
    if buf is None or n == 0:
        return np.zeros((n, width), dtype=np.uint8)
    raw = np.frombuffer(buf, dtype=np.uint8)[arr.offset * width : (arr.offset + n) * width]
    mat = raw.reshape(n, width).copy()
    if pa.types.is_floating(t):
        dtype = np.dtype(f"f{width}")
        floats = mat.view(dtype).reshape(n)
        floats = np.where(np.isnan(floats), np.nan, floats + 0.0).astype(dtype)  # -0.0 -> 0.0
        mat = floats.view(np.uint8).reshape(n, width).copy()
    mat[~valid] = 0
    return mat


class _Encoder:
    """Accumulates fixed-width byte matrices and variable-width pieces for n rows."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._fixed: list[Bytes2D] = []
        self._pieces: list[pa.Array] = []

    def _flush(self) -> None:
        if self._fixed:
            mat = np.ascontiguousarray(np.hstack(self._fixed))
            fixed = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(mat.shape[1]), self.n, [None, pa.py_buffer(mat)]
            )
            self._pieces.append(fixed.cast(pa.large_binary()))
            self._fixed = []

    def add(self, arr: pa.Array, parent_valid: Mask) -> None:
        valid = parent_valid & _validity(arr)
        self._fixed.append(valid.astype(np.uint8).reshape(self.n, 1))
        t = arr.type
        if pa.types.is_struct(t):
            for i in range(t.num_fields):
                self.add(arr.field(i), valid)
        elif pa.types.is_large_string(t) or pa.types.is_large_binary(t):
            data = pc.if_else(pa.array(valid), arr.cast(pa.large_binary()), _EMPTY)
            lengths = np.asarray(pc.binary_length(data).to_numpy(), dtype=np.uint32)
            self._fixed.append(lengths.view(np.uint8).reshape(self.n, 4))
            self._flush()
            self._pieces.append(data)
        else:
            self._fixed.append(_fixed_bytes(arr, valid))

    def finish(self) -> list[bytes]:
        self._flush()
        joined = (
            self._pieces[0]
            if len(self._pieces) == 1
            else pc.binary_join_element_wise(*self._pieces, _EMPTY)
        )
        out: list[bytes] = joined.to_pylist()
        return out


def _gather(data: Bytes2D, pos: Index, width: int) -> Bytes2D:
    out: Bytes2D = data[pos[:, None] + np.arange(width)]
    return out


def _bitmap(valid: Mask) -> pa.Buffer:
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _decode(t: pa.DataType, data: Bytes2D, pos: Index) -> pa.Array:
    """Read one column of type ``t`` for every row, advancing ``pos`` in place."""
    n = len(pos)
    valid = data[pos].astype(np.bool_)
    pos += 1
    if pa.types.is_struct(t):
        children = [_decode(f.type, data, pos) for f in t]
        return pa.StructArray.from_arrays(children, fields=list(t), mask=pa.array(~valid))
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        lengths = _gather(data, pos, 4).view(np.uint32).reshape(n).astype(np.int64)
        pos += 4
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        idx = np.repeat(pos - offsets[:-1], lengths) + np.arange(offsets[-1])
        values = np.ascontiguousarray(data[idx])
        pos += lengths
        buffers = [_bitmap(valid), pa.py_buffer(offsets), pa.py_buffer(values)]
        return pa.Array.from_buffers(t, n, buffers)
    if pa.types.is_boolean(t):
        flags = data[pos].astype(np.bool_)
        pos += 1
        return pa.array(flags, mask=~valid)
    width = t.bit_width // 8
    mat = np.ascontiguousarray(_gather(data, pos, width))
    pos += width
    return pa.Array.from_buffers(t, n, [_bitmap(valid), pa.py_buffer(mat)])


class RowCodec:
    """Rows of one schema to bytes and back, a column at a time with numpy.

    Per column: a validity byte (1 = set), then a fixed-width value in native byte order
    (zeroed when null; -0.0 and NaN canonicalised), or a uint32 length and the bytes of
    a string/binary value, or for a struct its children. Equal rows encode to equal
    bytes, so an encoded key is a RocksDB key. The encoding only lives in the local
    working database, which is rebuilt from the Arrow files, so it may change freely.

    >>> codec = RowCodec(pa.schema([("k", pa.int64()), ("s", pa.string())]))
    >>> blobs = codec.encode(pa.table({"k": [1, None], "s": ["a", "bc"]}))
    >>> [a.to_pylist() for a in codec.decode(blobs)]
    [[1, None], ['a', 'bc']]
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.storage = pa.schema([pa.field(f.name, _storage_type(f.type, f.name)) for f in schema])

    def encode(self, table: pa.Table) -> list[bytes]:
        n = table.num_rows
        if not self.schema.names:
            return [b""] * n
        encoder = _Encoder(n)
        for column in table.select(self.schema.names).cast(self.storage).columns:
            encoder.add(column.combine_chunks(), np.ones(n, dtype=np.bool_))
        return encoder.finish()

    def decode(self, blobs: Sequence[bytes]) -> list[pa.Array]:
        """One array per column of ``schema``, with its declared types."""
        if not blobs:
            return [pa.array([], f.type) for f in self.schema]
        packed = pa.array(blobs, pa.large_binary())
        offsets = np.frombuffer(packed.buffers()[1], dtype=np.int64)[: len(blobs) + 1]
        data_buf = packed.buffers()[2]
        data = np.frombuffer(data_buf or pa.py_buffer(b""), dtype=np.uint8)
        pos = offsets[:-1].copy()
        fields = zip(self.storage, self.schema, strict=True)
        return [_decode(s.type, data, pos).cast(f.type) for s, f in fields]


class DiskStateStore:
    """One open version backed by the provider's RocksDB; see ``StateStore``."""

    def __init__(self, provider: DiskStateStoreProvider, version: int) -> None:
        self._provider = provider
        self._version = version
        self._schema = provider.schema
        self._delta = StateDelta(provider.schema)
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

    @property
    def is_open(self) -> bool:
        return self._status == "open"

    def _check_open(self) -> None:
        if self._status != "open":
            raise RuntimeError(f"state store version {self._version} is already {self._status}")

    def lookup(self, keys: pa.Table) -> pa.Table:
        self._check_open()
        wanted = conform(keys, self._schema.key)
        raw = self._provider.get_many(self._provider.key_codec.encode(wanted))
        found = np.fromiter((v is not None for v in raw), dtype=np.bool_, count=len(raw))
        values = self._provider.value_codec.decode([v for v in raw if v is not None])
        positions = pa.array(np.cumsum(found) - 1, mask=~found)
        columns = [*wanted.columns, *(v.take(positions) for v in values), pa.array(found)]
        schema = self._schema.row_schema.append(pa.field(FOUND_COLUMN, pa.bool_()))
        return pa.Table.from_arrays(columns, schema=schema)

    def upsert(self, rows: pa.Table) -> None:
        self._check_open()
        new = to_polars(conform(rows, self._schema.row_schema))
        new = new.unique(subset=self._schema.key_names, keep="last", maintain_order=True)
        self._provider.put(to_arrow(new, self._schema.row_schema))
        self._delta.record_upserts(new)
        self._updated += new.height

    def delete(self, keys: pa.Table) -> None:
        self._check_open()
        wanted = conform(keys, self._schema.key)
        encoded = self._provider.key_codec.encode(wanted)
        raw = self._provider.get_many(encoded)
        present = [i for i, v in enumerate(raw) if v is not None]
        found = to_polars(wanted.take(pa.array(present, pa.int64()))).unique(maintain_order=True)
        self._provider.remove(list(dict.fromkeys(encoded[i] for i in present)))
        self._delta.record_deletes(found)
        self._removed += found.height

    def evict(self, predicate: pl.Expr) -> pa.Table:
        self._check_open()
        doomed: list[bytes] = []
        evicted: list[pa.Table] = []
        for encoded, chunk in self._provider.iterate():
            mask = eviction_mask(to_polars(chunk), predicate)
            doomed += itertools.compress(encoded, mask.to_list())
            evicted.append(chunk.filter(mask.to_arrow()))
        self._provider.remove(doomed)
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
        self._db = Rdict(path, Options(raw_mode=True))
        self.num_rows = 0

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _apply_delta(self, delta: pa.Table) -> None:
        upsert = pc.equal(delta[OP_COLUMN], OP_UPSERT)
        self.put(delta.filter(upsert).drop_columns([OP_COLUMN]))
        deleted = delta.filter(pc.invert(upsert)).select(self.schema.key_names)
        self.remove(self.key_codec.encode(deleted))

    @property
    def db(self) -> Rdict:
        if self._db is None:
            raise RuntimeError("the disk state store provider is closed")
        return self._db

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        values: list[bytes | None] = self.db[keys]  # type: ignore[index,assignment]
        return values

    def put(self, rows: pa.Table, *, new_keys: bool = False) -> None:
        """Insert or replace ``rows`` (one row per key); ``new_keys`` promises that none
        is present yet, which skips the read that keeps ``num_rows`` exact."""
        keys = self.key_codec.encode(rows)
        values = self.value_codec.encode(rows)
        self.num_rows += len(keys) if new_keys else sum(v is None for v in self.get_many(keys))
        batch = WriteBatch(raw_mode=True)
        for k, v in zip(keys, values, strict=True):
            batch.put(k, v)
        self.db.write(batch)

    def remove(self, keys: list[bytes]) -> None:
        """Delete encoded ``keys``."""
        self.num_rows -= sum(v is not None for v in self.get_many(keys))
        batch = WriteBatch(raw_mode=True)
        for k in keys:
            batch.delete(k)
        self.db.write(batch)

    def iterate(self) -> Iterator[tuple[list[bytes], pa.Table]]:
        """Every row, in chunks: the encoded keys and the decoded rows."""
        items = self.db.items()
        while chunk := list(itertools.islice(items, _CHUNK_ROWS)):
            keys = [k for k, _ in chunk]
            values = [v for _, v in chunk]
            arrays = [*self.key_codec.decode(keys), *self.value_codec.decode(values)]  # type: ignore[arg-type]
            yield keys, pa.Table.from_arrays(arrays, schema=self.schema.row_schema)  # type: ignore[misc]

    def publish(self, version: int, delta: pa.Table) -> None:
        """Make the working copy durable as ``version`` (called by ``commit``)."""
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
