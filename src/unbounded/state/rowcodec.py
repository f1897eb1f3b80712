"""Rows of an Arrow schema to RocksDB keys and values and back, a column at a time.

Used by the disk state store (``unbounded.state.disk``). A whole Arrow table is encoded
with numpy into one contiguous buffer (:class:`EncodedRows`); per-row Python objects are
only made at the RocksDB binding's boundary, in bulk (``to_list``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from unbounded.errors import AnalysisException

__all__ = ["EncodedRows", "RowCodec"]

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


def _encoded_width(t: pa.DataType) -> int | None:
    """Bytes per row of a column of storage type ``t``; None if it varies."""
    if pa.types.is_struct(t):
        widths = [_encoded_width(f.type) for f in t]
        return None if None in widths else 1 + sum(w for w in widths if w is not None)
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return None
    return 1 + (1 if pa.types.is_boolean(t) else t.bit_width // 8)


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
    mat = raw.reshape(n, width)
    if pa.types.is_floating(t):
        dtype = np.dtype(f"f{width}")
        floats = mat.view(dtype).reshape(n)
        floats = np.where(np.isnan(floats), np.nan, floats + 0.0).astype(dtype)  # -0.0 -> 0.0
        mat = floats.view(np.uint8).reshape(n, width)
    if not valid.all():
        mat = mat.copy()
        mat[~valid] = 0
    return mat


class _Encoder:
    """Accumulates fixed-width byte matrices and variable-width pieces for n rows."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._fixed: list[Bytes2D] = []
        self._pieces: list[pa.Array] = []

    def _matrix(self) -> pa.Array:
        mat = np.ascontiguousarray(np.hstack(self._fixed))
        self._fixed = []
        return pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(mat.shape[1]), self.n, [None, pa.py_buffer(mat)]
        )

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
            self._pieces += [self._matrix().cast(pa.large_binary()), data]
        else:
            self._fixed.append(_fixed_bytes(arr, valid))

    def finish(self) -> EncodedRows:
        if not self._pieces:  # every column fixed-width: the matrix is the whole encoding
            return EncodedRows(self._matrix())
        if self._fixed:
            self._pieces.append(self._matrix().cast(pa.large_binary()))
        return EncodedRows(pc.binary_join_element_wise(*self._pieces, _EMPTY))


class EncodedRows:
    """Encoded rows in one Arrow array: ``fixed_size_binary`` when every row has the same
    width (no per-row work at all), else ``large_binary``.

    >>> rows = RowCodec(pa.schema([("k", pa.int64())])).encode(pa.table({"k": [2, 1]}))
    >>> len(rows), rows.array.type
    (2, FixedSizeBinaryType(fixed_size_binary[9]))
    >>> rows.take(rows.locality_order()).to_list()[0][1]
    1
    """

    def __init__(self, array: pa.Array) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    @property
    def width(self) -> int | None:
        t = self.array.type
        return int(t.byte_width) if pa.types.is_fixed_size_binary(t) else None

    def _matrix(self) -> Bytes2D:
        w, n, off = self.width or 0, len(self.array), self.array.offset
        buf = self.array.buffers()[1]
        data = np.frombuffer(buf, dtype=np.uint8) if buf is not None else np.zeros(0, np.uint8)
        return data[off * w : (off + n) * w].reshape(n, w)

    def take(self, indices: Index) -> EncodedRows:
        if self.width:
            rows = self._matrix().view(f"V{self.width}").reshape(-1)[indices]
            fixed = pa.FixedSizeBinaryArray.from_buffers(
                self.array.type, len(rows), [None, pa.py_buffer(rows)]
            )
            return EncodedRows(fixed)
        return EncodedRows(self.array.take(pa.array(indices, pa.int64())))

    def slice(self, start: int, stop: int) -> EncodedRows:
        return EncodedRows(self.array.slice(start, stop - start))

    def locality_order(self) -> Index:
        """A permutation that brings the rows near RocksDB's (bytewise) key order.

        RocksDB inserts and reads sorted keys several times faster than random ones
        (memtable and block locality). Fixed-width rows sort by their first 8 bytes only,
        which is cheap and close enough; an already ordered input is left as it is.
        """
        w, n = self.width, len(self.array)
        if w is None:
            return np.asarray(pc.sort_indices(self.array).to_numpy(), dtype=np.int64)
        prefix = np.zeros((n, 8), dtype=np.uint8)
        prefix[:, : min(w, 8)] = self._matrix()[:, :8]
        words = prefix.view(">u8").reshape(n)
        if n < 2 or bool(np.all(words[1:] >= words[:-1])):
            return np.arange(n, dtype=np.int64)
        return np.argsort(words, kind="stable").astype(np.int64, copy=False)

    def first_occurrences(self) -> Mask:
        """True for the first row of each distinct encoding."""
        series = pl.Series(self.array.cast(pa.large_binary()))
        return np.asarray(series.is_first_distinct().to_numpy(), dtype=np.bool_)

    def to_list(self) -> list[bytes]:
        """One ``bytes`` per row (what the RocksDB binding takes)."""
        w, n = self.width, len(self.array)
        if w == 0:
            return [b""] * n
        if w is not None:
            out: list[bytes] = self._matrix().view(f"V{w}").reshape(n).tolist()
            return out
        offsets = np.frombuffer(self.array.buffers()[1], dtype=np.int64)
        offsets = offsets[self.array.offset : self.array.offset + n + 1].tolist()
        data = self.array.buffers()[2]
        blob = data.to_pybytes() if data is not None else b""
        return [blob[a:b] for a, b in itertools.pairwise(offsets)]


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
    >>> blobs = codec.encode(pa.table({"k": [1, None], "s": ["a", "bc"]})).to_list()
    >>> [a.to_pylist() for a in codec.decode(blobs)]
    [[1, None], ['a', 'bc']]
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.storage = pa.schema([pa.field(f.name, _storage_type(f.type, f.name)) for f in schema])
        widths = [_encoded_width(f.type) for f in self.storage]
        self.width = None if None in widths else sum(w for w in widths if w is not None)

    def encode(self, table: pa.Table) -> EncodedRows:
        n = table.num_rows
        if not self.schema.names:
            empty = pa.FixedSizeBinaryArray.from_buffers(pa.binary(0), n, [None, pa.py_buffer(b"")])
            return EncodedRows(empty)
        encoder = _Encoder(n)
        for column in table.select(self.schema.names).cast(self.storage).columns:
            encoder.add(column.combine_chunks(), np.ones(n, dtype=np.bool_))
        return encoder.finish()

    def decode(self, blobs: Sequence[bytes]) -> list[pa.Array]:
        """One array per column of ``schema``, with its declared types."""
        if not blobs:
            return [pa.array([], f.type) for f in self.schema]
        data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        if self.width is not None:
            pos = np.arange(len(blobs), dtype=np.int64) * self.width
        else:
            lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
            pos = np.concatenate([[0], np.cumsum(lengths[:-1])]).astype(np.int64)
        fields = zip(self.storage, self.schema, strict=True)
        return [_decode(s.type, data, pos).cast(f.type) for s, f in fields]
