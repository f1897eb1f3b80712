"""The state store's files in the checkpoint: Arrow IPC inside a checksummed envelope.

Both providers (memory, disk) write and read the same files through
:class:`StateFileLog`, so a checkpoint can be reopened with either provider. Every file
is validated (length, then checksum) by :class:`StateFileEnvelope` before Arrow or
Polars see one byte of it: a damaged file raises :class:`CheckpointCorruptError` naming
it, instead of crashing the process (Arrow, flatbuffers and Polars do not defend against
hostile input) or being read as different rows.
"""

from __future__ import annotations

import contextlib
import enum
import io
import logging
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

import pyarrow as pa

from unbounded.checkpoint.atomic import keeps_order_across, write_atomic_stream
from unbounded.checkpoint.checksum import RECOVERY_HINT
from unbounded.checkpoint.crc import crc32c
from unbounded.checkpoint.storage import is_url, storage_for
from unbounded.errors import CheckpointCorruptError
from unbounded.state.base import OP_COLUMN, StateSchema, StateStoreId

__all__ = ["StateFileEnvelope", "StateFileKind", "StateFileLog"]

logger = logging.getLogger(__name__)

_FORMAT_KEY = b"unbounded.state.format"
_KIND_KEY = b"unbounded.state.kind"
_FORMAT_VERSION = b"1"
# A delta is written on every batch's latency path and read back only on recovery:
# uncompressed, it costs a third of the CPU of LZ4 (which saves little on hashed keys and
# event times) for about twice the bytes. A snapshot is written once every
# ``minDeltasForSnapshot`` versions and read on every restart, so it stays compressed.
# Arrow's reader tells both apart per buffer: checkpoints of either kind stay readable.
_DELTA_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression=None)
_SNAPSHOT_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


class StateFileKind(enum.IntEnum):
    """What a state file holds (its number is stored in the header)."""

    DELTA = 1
    SNAPSHOT = 2


class StateFileEnvelope:
    """The 28-byte header in front of every state file, and its checks.

    Layout (little-endian)::

        offset  size  field
        0       8     magic b"UNBSTATE"
        8       2     format version (1)
        10      1     kind: 1 = delta, 2 = snapshot
        11      1     reserved, 0
        12      8     body length in bytes
        20      4     CRC-32C of the body
        24      4     CRC-32C of bytes 0-23 (the header itself)
        28      ...   body: an Arrow IPC file (see StateFileLog)

    A reader checks, in order, the file's length against the header size, the header's
    own checksum, the magic, the version (newer ones are rejected), the kind, the body
    length, and the body's checksum; only then is the body handed to Arrow. Any single
    flipped bit, a truncation or an empty file fails one of these checks.

    Example:
        >>> header = StateFileEnvelope.header(StateFileKind.DELTA, b"body")
        >>> len(header), header[:8]
        (28, b'UNBSTATE')
        >>> bytes(StateFileEnvelope.body("x.delta", header + b"body", StateFileKind.DELTA))
        b'body'
    """

    MAGIC = b"UNBSTATE"
    VERSION = 1
    _LAYOUT = struct.Struct("<8sHBBQI")
    SIZE = _LAYOUT.size + 4

    @classmethod
    def header(cls, kind: StateFileKind, body: bytes) -> bytes:
        """The header of ``body``."""
        return cls.header_of(kind, len(body), crc32c(body))

    @classmethod
    def header_of(cls, kind: StateFileKind, length: int, crc: int) -> bytes:
        """The header of a body of ``length`` bytes whose CRC-32C is ``crc`` (streamed)."""
        fields = cls._LAYOUT.pack(cls.MAGIC, cls.VERSION, kind, 0, length, crc)
        return fields + struct.pack("<I", crc32c(fields))

    @classmethod
    def body(cls, path: str, data: pa.Buffer | bytes, kind: StateFileKind) -> pa.Buffer:
        """The verified body of the file ``path`` whose bytes are ``data``."""
        buffer = pa.py_buffer(data) if isinstance(data, bytes) else data
        head = buffer.slice(0, min(cls.SIZE, buffer.size)).to_pybytes()
        length, crc = cls._check_header(path, head, kind)
        body = buffer.slice(cls.SIZE)
        if body.size != length:
            raise _corrupt(path, f"the header records a body of {length} bytes, the file "
                                 f"holds {body.size} (truncated or extended)")
        actual = crc32c(memoryview(body))
        if actual != crc:
            raise _corrupt(path, f"its body has CRC-32C {actual:08x}, the header records "
                                 f"{crc:08x}")
        return body

    @classmethod
    def _check_header(cls, path: str, raw: bytes, kind: StateFileKind) -> tuple[int, int]:
        """The (body length, body CRC-32C) the valid header ``raw`` records."""
        if len(raw) < cls.SIZE:
            raise _corrupt(path, f"it has {len(raw)} bytes, fewer than the "
                                 f"{cls.SIZE}-byte header (empty or truncated)")
        fields, (own_crc,) = raw[: cls._LAYOUT.size], struct.unpack("<I", raw[-4:])
        if crc32c(fields) != own_crc:
            legacy = " (an Arrow file without the header, from an older release)"
            raise _corrupt(path, "its header checksum does not match"
                                 + (legacy if raw.startswith(b"ARROW1") else ""))
        magic, version, found_kind, _, length, crc = cls._LAYOUT.unpack(fields)
        if magic != cls.MAGIC:
            raise _corrupt(path, f"it starts with {magic!r}, not {cls.MAGIC!r}")
        if version != cls.VERSION:
            raise CheckpointCorruptError(
                f"State file {path} has format version {version}; this release reads "
                f"version {cls.VERSION}. Use the unbounded release that wrote it.")
        if found_kind != kind:
            raise _corrupt(path, f"it holds kind {found_kind}, expected {int(kind)}")
        return int(length), int(crc)


class _ChecksummingWriter:
    """A binary sink for Arrow's IPC writer that counts and checksums what passes."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.crc = 0
        self.length = 0
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        self.crc = crc32c(data, self.crc)
        self.length += len(memoryview(data))
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()

    def tell(self) -> int:
        return self.length

    def close(self) -> None:
        self.closed = True


class StateFileLog:
    """The files of one state store: ``<store path>/<version>.delta`` and
    ``<version>.snapshot``.

    Each file is a :class:`StateFileEnvelope` header and then an Arrow IPC file
    (lz4-compressed buffers) whose schema metadata carries ``unbounded.state.format =
    "1"`` and ``unbounded.state.kind`` (``delta`` or ``snapshot``); a reader rejects other
    versions. A snapshot holds every row (key then value columns). A delta holds the
    version's changes in the order they were made, with an int8 ``__op`` column: 0 =
    upsert (values set), 1 = delete (values null); a key may appear more than once and
    its last row wins (as in Spark's delta files, which log every put and remove in
    order). For example the delta of a batch that counted key 7 and expired key 3::

        k  count  __op
        7  2      0
        3  null   1

    Files are published with ``write_atomic_stream``: a replayed batch recomputes the
    same version, so it overwrites rather than conflicts; two concurrent runs are fenced
    by the checkpoint's run lock and offset log, not here. A snapshot is written when
    ``version % min_deltas_for_snapshot == 0`` so a replay rewrites the same files.

    Example:
        >>> import tempfile
        >>> schema = StateSchema(pa.schema([("k", pa.int64())]), pa.schema([("n", pa.int64())]))
        >>> log = StateFileLog(StateStoreId(tempfile.mkdtemp(), 0, 0), schema, 10)
        >>> log.write_delta(1, pa.table({"k": [7], "n": [2], "__op": pa.array([0], pa.int8())}))
        >>> log.read_delta(1).to_pydict()
        {'k': [7], 'n': [2], '__op': [0]}
    """

    def __init__(self, store_id: StateStoreId, schema: StateSchema, snapshot_every: int) -> None:
        self.folder = store_id.path
        # <checkpoint>/state/<op>/<partition>[/<store>] -> <checkpoint>/commits
        self._commits = os.path.join(os.path.dirname(store_id.root), "commits")
        self._row_schema = schema.row_schema
        self._delta_schema = self._row_schema.append(pa.field(OP_COLUMN, pa.int8(), False))
        self._every = snapshot_every
        self._empty_delta: bytes | None = None  # an empty delta file's bytes, once made

    def delta_path(self, version: int) -> str:
        return os.path.join(self.folder, f"{version}.delta")

    def snapshot_path(self, version: int) -> str:
        return os.path.join(self.folder, f"{version}.snapshot")

    def snapshot_due(self, version: int) -> bool:
        return version % self._every == 0

    def _with_meta(self, schema: pa.Schema, kind: bytes) -> pa.Schema:
        return schema.with_metadata({_FORMAT_KEY: _FORMAT_VERSION, _KIND_KEY: kind})

    def write_delta(self, version: int, delta: pa.Table) -> None:
        """Stream ``delta`` (rows and ``__op``) into the version's delta file.

        Its data is fsynced before its name is made. Its folder is fsynced too, unless
        the file system commits every name in the order made, in one journal that also
        holds the query's ``commits/`` (``keeps_order_across``): then the folder fsync
        of ``commits/N``, made after this name, makes it durable. A cut before that
        keeps the delta or not, and batch N is uncommitted either way: it re-runs from
        version N-1 and replaces the file. Recovery reads only committed versions."""
        schema = self._with_meta(self._delta_schema, b"delta")
        path, sync_dir = self.delta_path(version), not self._commit_covers()
        if delta.num_rows or delta.schema.types != schema.types \
                or delta.column_names != schema.names:
            self._write(path, StateFileKind.DELTA, schema, [delta], _DELTA_IPC_OPTIONS,
                        sync_dir=sync_dir)
            return
        # A partition a batch left alone: the same bytes each time, encoded once (0.17 of
        # the 0.25 ms a delta file costs in CPU is the encoding through Python's file).
        if self._empty_delta is None:
            buffer = io.BytesIO()
            _fill(buffer, StateFileKind.DELTA, schema, [delta], _DELTA_IPC_OPTIONS)
            self._empty_delta = buffer.getvalue()
        body = self._empty_delta

        def copy(f: BinaryIO) -> None:
            f.write(body)

        _publish(path, copy, sync_dir=sync_dir)

    def _commit_covers(self) -> bool:
        """Whether the folder fsync of the query's ``commits/`` makes this store's new
        names durable (a store outside a checkpoint: no ``commits/``, so no)."""
        return keeps_order_across(self.folder, self._commits)

    def write_snapshot(self, version: int, chunks: Iterable[pa.Table]) -> None:
        """Stream ``chunks`` (row tables) into the snapshot: tmp file, fsync, replace."""
        schema = self._with_meta(self._row_schema, b"snapshot")
        self._write(self.snapshot_path(version), StateFileKind.SNAPSHOT, schema, chunks,
                    _SNAPSHOT_IPC_OPTIONS)

    @staticmethod
    def _write(path: str, kind: StateFileKind, schema: pa.Schema, chunks: Iterable[pa.Table],
               options: pa.ipc.IpcWriteOptions, *, sync_dir: bool = True) -> None:
        """Arrow IPC straight into the temp file, checksummed as it passes (no copy of
        the body in memory), the envelope's header written last over its placeholder."""
        _publish(path, lambda f: _fill(f, kind, schema, chunks, options), sync_dir=sync_dir)

    def versions(self) -> tuple[set[int], set[int]]:
        """The versions that have a delta file and those that have a snapshot file."""
        deltas: set[int] = set()
        snapshots: set[int] = set()
        for name in storage_for(self.folder).list(self.folder):
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

    def _open(self, path: str, kind: StateFileKind, schema: pa.Schema
              ) -> pa.ipc.RecordBatchFileReader:
        try:
            data = (pa.py_buffer(storage_for(path).read(path)) if is_url(path)
                    else pa.memory_map(path).read_buffer())
        except OSError as e:
            raise CheckpointCorruptError(
                f"State file {path} is unreadable: {e}. {RECOVERY_HINT}") from e
        body = StateFileEnvelope.body(path, data, kind)
        try:
            reader = pa.ipc.open_file(body)
        except (OSError, pa.ArrowException) as e:
            raise _corrupt(path, f"its Arrow body does not open ({e})") from e
        self._check_schema(path, reader.schema, kind, schema)
        return reader

    @staticmethod
    def _check_schema(path: str, found: pa.Schema, kind: StateFileKind,
                      schema: pa.Schema) -> None:
        meta = found.metadata or {}
        name = kind.name.lower().encode()
        if meta.get(_FORMAT_KEY) != _FORMAT_VERSION or meta.get(_KIND_KEY) != name:
            raise CheckpointCorruptError(
                f"State file {path} has format {meta.get(_FORMAT_KEY)!r} kind "
                f"{meta.get(_KIND_KEY)!r}; expected format {_FORMAT_VERSION!r} kind {name!r}. "
                "It was written by another unbounded version; use a matching release."
            )
        if not found.remove_metadata().equals(schema):
            raise CheckpointCorruptError(
                f"State file {path} has columns {found.remove_metadata()}, expected {schema}."
            )

    def read_delta(self, version: int) -> pa.Table:
        reader = self._open(self.delta_path(version), StateFileKind.DELTA, self._delta_schema)
        return reader.read_all().replace_schema_metadata(None)

    def snapshot_chunks(self, version: int) -> Iterator[pa.Table]:
        path = self.snapshot_path(version)
        reader = self._open(path, StateFileKind.SNAPSHOT, self._row_schema)
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
            if is_url(path):
                storage_for(path).delete(path)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        logger.debug("state maintenance removed %d files from %s", len(doomed), self.folder)
        return doomed


def _fill(f: BinaryIO, kind: StateFileKind, schema: pa.Schema, chunks: Iterable[pa.Table],
          options: pa.ipc.IpcWriteOptions) -> None:
    f.write(bytes(StateFileEnvelope.SIZE))
    body = _ChecksummingWriter(f)
    with pa.ipc.new_file(body, schema, options=options) as writer:
        for chunk in chunks:
            writer.write_table(_conformed(chunk, schema))
    f.seek(0)
    f.write(StateFileEnvelope.header_of(kind, body.length, body.crc))


def _publish(path: str, fill: Callable[[BinaryIO], None], *, sync_dir: bool) -> None:
    """``fill``'s bytes as the file ``path``: through a temp file, fsynced, then renamed
    (``write_atomic_stream``); at a URL, one PUT of the whole body."""
    if is_url(path):
        buffer = io.BytesIO()
        fill(buffer)
        storage_for(path).replace(path, buffer.getvalue())
    else:
        write_atomic_stream(path, fill, sync_dir=sync_dir)


def _conformed(chunk: pa.Table, schema: pa.Schema) -> pa.Table:
    """``chunk`` with ``schema``: relabelled without a copy when only nullability or
    metadata differ and no NULL meets a non-nullable field (what ``cast`` would do too,
    at the price of a pass over the columns and, on a process's first state write, the
    import of ``pyarrow.compute``); otherwise ``cast``, which converts or refuses."""
    if chunk.column_names == schema.names and chunk.schema.types == schema.types and all(
            f.nullable or c.null_count == 0 for f, c in zip(schema, chunk.columns, strict=True)):
        return pa.Table.from_arrays(chunk.columns, schema=schema)
    return chunk.cast(schema)


def _corrupt(path: str, what: str) -> CheckpointCorruptError:
    return CheckpointCorruptError(f"State file {path} is corrupt: {what}. {RECOVERY_HINT}")
