"""Kafka RecordBatch v2 (magic 2) byte blobs to and from Arrow columns, whole blobs at a time.

The wire format is Kafka's (``DefaultRecordBatch`` / ``DefaultRecord``), big-endian::

    batch  = baseOffset:int64 batchLength:int32 partitionLeaderEpoch:int32 magic:int8
             crc:uint32 attributes:int16 lastOffsetDelta:int32 baseTimestamp:int64
             maxTimestamp:int64 producerId:int64 producerEpoch:int16 baseSequence:int32
             recordsCount:int32 records
    record = length:varint attributes:int8 timestampDelta:varlong offsetDelta:varint
             keyLength:varint key valueLength:varint value headerCount:varint headers
    header = keyLength:varint key(utf-8) valueLength:varint value

Varints are zigzag LEB128 and a length of -1 means null. ``batchLength`` counts the bytes
after itself; the CRC-32C covers ``attributes`` to the end of the batch; when the
attributes' codec bits are set, ``records`` is one compressed block.

Decoding runs no Python per record except the scan for record starts: each record begins
where the previous one's length says, so that chain is walked in Python, and runs of
equally long records are confirmed with one strided comparison instead. Every field of
every record is then decoded at once with bit tricks, from unaligned 8-byte loads (a
field within 4 bytes of the previous load is shifted out of it, not loaded), and keys
and values are a ``binary_view`` array over the blob (``views=True``: the source's
partitions keep them so) or its cast to ``large_binary``. Encoding runs that backwards:
the varints between two input pieces (say a value and the next record's key) are packed
for all records at once into 64-bit lanes with shifts, and a ``binary_view`` array
alternating those runs with the keys, values and headers, in place, is cast to
``large_binary``, whose data is the records.

Example:
    >>> import pyarrow as pa
    >>> blob = encode_batch(pa.array([b"a", None]), timestamp_ms=1_000)
    >>> out = decode_batches(blob, from_offset=0, until_offset=10)
    >>> out.values.to_pylist(), out.offsets.tolist(), out.next_offset
    ([b'a', None], [0, 1], 2)
"""

from __future__ import annotations

import array
import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import cramjam
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from unbounded.checkpoint.crc import crc32c
from unbounded.errors import MalformedRecordError

__all__ = [
    "HEADERS_ARROW",
    "DecodedRecords",
    "decode_batches",
    "encode_batch",
    "encode_batch_view",
    "encode_control_batch",
]

HEADERS_ARROW: pa.DataType = pa.large_list(
    pa.struct([("key", pa.large_string()), ("value", pa.large_binary())])
)

Int64s = npt.NDArray[np.int64]
UInt64s = npt.NDArray[np.uint64]
Bools = npt.NDArray[np.bool_]

_HEADER = struct.Struct(">qiibIhiqqqhii")
_LOG_OVERHEAD = 12  # baseOffset and batchLength precede what batchLength counts
_MAGIC_AT = 16
_CRC_AT = 17
_CRC_FROM = 21
_CODEC_MASK = 0x07
_LOG_APPEND_TIME = 0x08
_TRANSACTIONAL = 0x10
_CONTROL = 0x20
_CODECS = {None: 0, "none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024
_LZ4_FAST = 1
_MIN_RUN_WINDOW = 64
_VIEW_LIMIT = 1 << 31  # binary_view offsets are int32: address big blobs in overlapping chunks
_VIEW_CHUNK = 1 << 30
_HIGH_BITS = np.uint64(0x8080808080808080)
_LOW_BITS = np.uint64(0x7F7F7F7F7F7F7F7F)
_SWAR64_ROUNDS = [
    (np.uint64(1), np.uint64(0x007F007F007F007F), np.uint64(0x3F803F803F803F80)),
    (np.uint64(2), np.uint64(0x00003FFF00003FFF), np.uint64(0x0FFFC0000FFFC000)),
    (np.uint64(4), np.uint64(0x000000000FFFFFFF), np.uint64(0x00FFFFFFF0000000)),
]
_CONTINUATIONS = np.array(  # by varint size: continuation bits of its first 8 bytes
    [int.from_bytes(b"\x80" * min(max(size - 1, 0), 8), "little") for size in range(11)],
    dtype=np.uint64,
)
_LARGE_BINARY = pa.large_binary()
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


@dataclass(frozen=True, eq=False)
class DecodedRecords:
    """The records of a fetched blob as columns, in offset order.

    ``next_offset`` is where the next fetch starts: one past the last complete batch
    (control and skipped batches included), never below the requested ``from_offset``.
    It can pass ``until_offset`` when the last batch straddles it.
    """

    offsets: Int64s
    timestamps_ms: Int64s
    timestamp_types: npt.NDArray[np.int32]
    keys: pa.Array
    values: pa.Array
    headers: pa.Array | None
    next_offset: int


class _Batch(NamedTuple):
    """A batch header as on the wire, plus where the batch starts in its blob."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int
    start: int = 0

    @property
    def end(self) -> int:
        return self.start + _LOG_OVERHEAD + self.batch_length

    @property
    def records_start(self) -> int:
        return self.start + _HEADER.size

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def codec(self) -> int:
        return self.attributes & _CODEC_MASK

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & _CONTROL)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & _TRANSACTIONAL)


def _corrupt(offset: int, why: str, *, last: int | None = None) -> MalformedRecordError:
    where = f"batch at offset {offset}" if last is None else f"batches at offsets {offset}-{last}"
    return MalformedRecordError(
        f"Kafka record {where} is corrupt: {why}. The broker sent bytes "
        "that do not parse as RecordBatch v2; fetch the offset again, and if it persists "
        "inspect the partition's log segment (kafka-dump-log.sh).",
        error_class="KAFKA_CORRUPT_RECORD_BATCH",
    )


# ---------------------------------------------------------------------------- byte access


class _Bytes:
    """A blob readable as bytes and as unaligned little-endian 4- or 8-byte words.

    Loads near the end read from a zero-padded copy of the last bytes, so a word may be
    loaded at any position up to the end of the blob.
    """

    def __init__(self, data: memoryview) -> None:
        self.view = data
        self.size = len(data)
        # extended slices of bytes are ~10x faster than of a memoryview (record scan)
        owner = data.obj
        self.scan: bytes | bytearray | memoryview = data
        if isinstance(owner, bytes | bytearray) and len(owner) == len(data):
            self.scan = owner
        self.u8: npt.NDArray[np.uint8] = np.frombuffer(data, dtype=np.uint8)
        self.tail_start = max(self.size - 8, 0)
        tail = np.zeros(24, dtype=np.uint8)
        tail[: self.size - self.tail_start] = self.u8[self.tail_start :]
        self._words = {width: _unaligned_words(self.u8, width) for width in (4, 8)}
        self._tail_words = {width: _unaligned_words(tail, width) for width in (4, 8)}

    def load(self, pos: Int64s, width: int) -> npt.NDArray[np.unsignedinteger[Any]]:
        words, last = self._words[width], self.size - width
        if pos.size == 0 or int(pos.max()) <= last:
            return words[pos]
        if last >= 0:  # the few past the last word (the blob's last records) redone
            out = words[np.minimum(pos, last)]
            over = np.flatnonzero(pos > last)
            out[over] = self._tail_words[width][np.clip(pos[over] - self.tail_start, 0, 16)]
            return out
        out = self._tail_words[width][np.clip(pos - self.tail_start, 0, 16)]
        inside = pos <= last
        out[inside] = words[pos[inside]]
        return out


def _unaligned_words(u8: npt.NDArray[np.uint8], width: int) -> npt.NDArray[np.unsignedinteger[Any]]:
    count = max(len(u8) - width + 1, 0)
    return np.ndarray(shape=(count,), dtype=np.dtype(f"<u{width}"), buffer=u8, strides=(1,))


def _byte_view(data: bytes | memoryview | bytearray) -> memoryview:
    view = memoryview(data)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


# ---------------------------------------------------------------------------- varints


def _read_uvarint(view: memoryview, pos: int) -> tuple[int, int]:
    """(unsigned value, byte count) of the LEB128 varint at ``pos``."""
    value = 0
    for size in range(1, 11):
        byte = view[pos + size - 1]
        value |= (byte & 0x7F) << (7 * (size - 1))
        if byte < 0x80:
            return value, size
    raise ValueError(f"varint at {pos} is longer than 10 bytes")


def _decode_varints(
    data: _Bytes, pos: Int64s, words: npt.NDArray[np.uint32] | None = None
) -> tuple[Int64s, Int64s]:
    """(zigzag-decoded value, byte count) of the varint at each position.

    One 4-byte load per position (or ``words``, those 4 bytes loaded already) covers
    varints up to 2**28, which is nearly all of them (lengths, offset deltas, timestamp
    deltas under 37 hours); longer ones are redone.
    """
    if words is None:
        words = data.load(pos, 4)
    if not (words & np.uint32(0x80)).any():
        return _unzigzag32(words & np.uint32(0x7F)), np.ones(len(pos), dtype=np.int64)
    raw, sizes = _swar_varints32(words)
    values = _unzigzag32(raw)
    longer = np.flatnonzero(sizes == 0)
    if longer.size:
        values[longer], sizes[longer] = _decode_long_varints(data, pos[longer])
    return values, sizes


def _unzigzag32(raw: npt.NDArray[np.uint32]) -> Int64s:
    signs = np.uint32(0) - (raw & np.uint32(1))
    return ((raw >> np.uint32(1)) ^ signs).view(np.int32).astype(np.int64)


def _swar_varints32(words: npt.NDArray[np.uint32]) -> tuple[npt.NDArray[np.uint32], Int64s]:
    """Decode the LEB128 varint in the low bytes of each word, merging 7-bit groups
    pairwise in two shift-and-mask rounds; size 0 marks a varint longer than 4 bytes."""
    stops = ~words & np.uint32(0x80808080)
    mask = ((stops & (~stops + np.uint32(1))) << np.uint32(1)) - np.uint32(1)
    bits = words & mask & np.uint32(0x7F7F7F7F)
    bits = (bits & np.uint32(0x007F007F)) | ((bits >> np.uint32(1)) & np.uint32(0x3F803F80))
    bits = (bits & np.uint32(0x00003FFF)) | ((bits >> np.uint32(2)) & np.uint32(0x0FFFC000))
    sizes = (np.bitwise_count(mask) >> np.uint8(3)).astype(np.int64)
    sizes[stops == 0] = 0
    return bits, sizes


def _decode_long_varints(data: _Bytes, pos: Int64s) -> tuple[Int64s, Int64s]:
    """The 8-byte version of the above, and Python for the rare varlong past 2**56."""
    words = data.load(pos, 8)
    stops = ~words & _HIGH_BITS
    mask = ((stops & (~stops + np.uint64(1))) << np.uint64(1)) - np.uint64(1)
    bits = words & mask & _LOW_BITS
    for shift, keep, move in _SWAR64_ROUNDS:
        bits = (bits & keep) | ((bits >> shift) & move)
    sizes = (np.bitwise_count(mask) >> np.uint8(3)).astype(np.int64)
    for i in np.flatnonzero(stops == 0).tolist():
        value, sizes[i] = _read_uvarint(data.view, int(pos[i]))
        bits[i] = value & 0xFFFFFFFFFFFFFFFF
    signs = np.uint64(0) - (bits & np.uint64(1))
    return ((bits >> np.uint64(1)) ^ signs).view(np.int64), sizes


# ---------------------------------------------------------------------------- arrow


def _validity(valid: Bools) -> pa.Buffer | None:
    if valid.all():
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _gather_binary(data: _Bytes, buffer: pa.Buffer, pos: Int64s, lengths: Int64s,
                   kind: pa.DataType = _LARGE_BINARY, *,
                   heads: npt.NDArray[np.uint32] | None = None) -> pa.Array:
    """``data[pos:pos + length]`` per row as ``kind``, null where the length is negative.

    Arrow's binary_view holds (length, buffer, offset) per value, so a view array over the
    blob costs 16 bytes a row to build and copies no value (it keeps the blob alive); the
    cast to large_binary is one memcpy per value. ``heads``: the 4 bytes at each
    position, when the caller has them.
    """
    valid = lengths >= 0
    if not valid.any():
        return pa.nulls(len(pos), kind)
    sizes = np.where(valid, lengths, 0)
    chunks, views = _views(data, buffer, pos, sizes, heads)
    view_array = pa.Array.from_buffers(
        pa.binary_view(), len(pos), [_validity(valid), pa.py_buffer(views), *chunks]
    )
    return view_array if kind == pa.binary_view() else view_array.cast(kind)


def _views(
    data: _Bytes, buffer: pa.Buffer, pos: Int64s, sizes: Int64s,
    heads: npt.NDArray[np.uint32] | None = None,
) -> tuple[list[pa.Buffer], npt.NDArray[np.uint64]]:
    """Arrow view structs: length and first 4 bytes, then buffer index and offset, or the
    value itself when at most 12 bytes long (zero-padded, as the format requires)."""
    views = np.empty((len(pos), 2), dtype=np.uint64)
    head = (data.load(pos, 4) if heads is None else heads).astype(np.uint64)
    if int(sizes.min()) < 4:
        head &= _BYTE_MASKS[np.minimum(sizes, 4)]
    views[:, 0] = sizes.astype(np.uint64) | (head << np.uint64(32))
    chunks, index, offset = _view_chunks(buffer, data.size, pos)
    views[:, 1] = index | (offset.astype(np.uint64) << np.uint64(32))
    inline = np.flatnonzero(sizes <= 12)
    if inline.size:
        rest = data.load(pos[inline] + 4, 8) & _BYTE_MASKS[np.clip(sizes[inline] - 4, 0, 8)]
        views[inline, 1] = rest
    return chunks, views


def _view_chunks(
    buffer: pa.Buffer, size: int, pos: Int64s
) -> tuple[list[pa.Buffer], UInt64s, Int64s]:
    """Data buffers and (buffer index, offset) per value; views address buffers with int32
    offsets, so a blob over 2 GiB is split into overlapping 2 GiB windows 1 GiB apart."""
    if size < _VIEW_LIMIT:
        return [buffer], np.zeros(len(pos), dtype=np.uint64), pos
    starts = range(0, size, _VIEW_CHUNK)
    chunks = [buffer.slice(start, min(2 * _VIEW_CHUNK, size - start)) for start in starts]
    return chunks, (pos // _VIEW_CHUNK).astype(np.uint64), pos % _VIEW_CHUNK


# ---------------------------------------------------------------------------- compression


def _decompress(codec: int, block: memoryview) -> memoryview:
    if codec == 1:
        return memoryview(cramjam.gzip.decompress(block))
    if codec == 2:
        return memoryview(_snappy_decompress(block))
    if codec == 3:
        return memoryview(cramjam.lz4.decompress(block))
    if codec == 4:
        return memoryview(cramjam.zstd.decompress(block))
    raise ValueError(f"unknown compression codec {codec}")


def _compress(codec: int, records: memoryview, level: int | None) -> memoryview:
    """Compress a records section; lz4 defaults to its fast mode, as librdkafka does."""
    if codec == 1:
        return memoryview(cramjam.gzip.compress(records, level=level))
    if codec == 2:
        return memoryview(_snappy_compress(memoryview(records)))
    if codec == 3:
        level = _LZ4_FAST if level is None else level
        return memoryview(cramjam.lz4.compress(records, level=level))
    if codec == 4:
        return memoryview(cramjam.zstd.compress(records, level=level))
    return memoryview(records)


def _snappy_decompress(block: memoryview) -> bytes:
    """Kafka's Java client writes xerial-framed snappy; librdkafka may write it raw."""
    if len(block) <= 16 or bytes(block[:8]) != _XERIAL_MAGIC:
        return bytes(cramjam.snappy.decompress_raw(block))
    parts, pos = [], 16
    while pos < len(block):
        (size,) = struct.unpack_from(">i", block, pos)
        if size < 0:
            raise ValueError(f"negative xerial snappy block size {size}")
        parts.append(cramjam.snappy.decompress_raw(block[pos + 4 : pos + 4 + size]))
        pos += 4 + size
    return b"".join(parts)


def _snappy_compress(records: memoryview) -> bytes:
    parts: list[object] = [_XERIAL_HEADER]
    for start in range(0, len(records), _XERIAL_BLOCK):
        block = cramjam.snappy.compress_raw(records[start : start + _XERIAL_BLOCK])
        parts += (struct.pack(">i", len(block)), block)
    return b"".join(parts)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- batches


def _read_batches(view: memoryview) -> list[_Batch]:
    """Every complete batch of the blob; a truncated trailing batch is left out."""
    batches, pos, size = [], 0, len(view)
    while pos + _CRC_AT <= size:
        if view[pos + _MAGIC_AT] != 2:
            _reject_magic(view, pos)
        if pos + _HEADER.size > size:
            break
        batch = _Batch._make((*_HEADER.unpack_from(view, pos), pos))
        if batch.end > size:
            break
        if batch.batch_length < _HEADER.size - _LOG_OVERHEAD:
            raise _corrupt(batch.base_offset, f"batch length {batch.batch_length} is too short")
        batches.append(batch)
        pos = batch.end
    return batches


def _reject_magic(view: memoryview, pos: int) -> None:
    (base_offset,), magic = struct.unpack_from(">q", view, pos), view[pos + _MAGIC_AT]
    if magic < 2:
        raise MalformedRecordError(
            f"Kafka messages at offset {base_offset} use the legacy message format "
            f"(magic {magic}, before Kafka 0.11), which this reader does not decode. "
            "Read such topics with the librdkafka (confluent-kafka) reader, or rewrite the "
            "topic with a Kafka 0.11+ producer.",
            error_class="KAFKA_UNSUPPORTED_MESSAGE_FORMAT",
        )
    raise _corrupt(base_offset, f"unknown magic byte {magic}")


def _check_crc(view: memoryview, batch: _Batch) -> None:
    actual = crc32c(view[batch.start + _CRC_FROM : batch.end])
    if actual != batch.crc:
        why = f"CRC-32C is {actual:#010x}, the header says {batch.crc:#010x}"
        raise _corrupt(batch.base_offset, why)


class _AbortedTransactions:
    """read_committed filtering exactly as Kafka's Java consumer (``CompletedFetch``) does.

    A producer counts as aborted once a batch of its reaches the first offset of one of
    its aborted transactions, and stops at its ABORT marker; its transactional batches
    in between are dropped.
    """

    def __init__(self, aborted: Sequence[tuple[int, int]], view: memoryview) -> None:
        self._pending = sorted(aborted, key=lambda pair: pair[1], reverse=True)
        self._producers: set[int] = set()
        self._view = view

    def drops(self, batch: _Batch) -> bool:
        if batch.producer_id < 0:
            return False
        last_offset = batch.next_offset - 1
        while self._pending and self._pending[-1][1] <= last_offset:
            self._producers.add(self._pending.pop()[0])
        if batch.is_control and _is_abort_marker(self._view, batch):
            self._producers.discard(batch.producer_id)
            return False
        return batch.is_transactional and batch.producer_id in self._producers


def _is_abort_marker(view: memoryview, batch: _Batch) -> bool:
    """Whether a control batch's first record key says ABORT (version int16, type 0)."""
    if batch.records_count < 1:
        return False
    records = view[batch.records_start : batch.end]
    records = _decompress(batch.codec, records) if batch.codec else records
    pos = 1 + _read_uvarint(records, 0)[1]  # skip the length varint and attributes
    for _ in range(3):  # timestampDelta, offsetDelta, keyLength
        raw, size = _read_uvarint(records, pos)
        pos += size
    key_length = (raw >> 1) ^ -(raw & 1)
    return key_length >= 4 and struct.unpack_from(">h", records, pos + 2)[0] == 0


def _wanted_batches(
    view: memoryview,
    batches: list[_Batch],
    from_offset: int,
    until_offset: int,
    aborted: Sequence[tuple[int, int]],
) -> list[_Batch]:
    """Batches holding data records to return: no control markers, no aborted ones."""
    filter_ = _AbortedTransactions(aborted, view) if aborted else None
    wanted = []
    for batch in batches:
        if filter_ is not None and filter_.drops(batch):
            continue
        in_range = batch.next_offset > from_offset and batch.base_offset < until_offset
        if in_range and batch.records_count > 0 and not batch.is_control:
            wanted.append(batch)
    return wanted


def _records_source(
    view: memoryview, batches: list[_Batch]
) -> tuple[memoryview, list[tuple[int, int]]]:
    """One buffer holding every wanted batch's records, and each batch's span in it.

    Without compression that is the blob itself; otherwise the records of all batches are
    joined into one buffer so that the rest of decoding sees a single address space.
    """
    if not any(batch.codec for batch in batches):
        return view, [(batch.records_start, batch.end) for batch in batches]
    parts, spans, pos = [], [], 0
    for batch in batches:
        block = view[batch.records_start : batch.end]
        part = _decompress(batch.codec, block) if batch.codec else block
        parts.append(part)
        spans.append((pos, pos + len(part)))
        pos += len(part)
    return memoryview(b"".join(parts)), spans


# ---------------------------------------------------------------------------- record starts


def _scan_records(data: _Bytes, pos: int, end: int, count: int, found: _Starts) -> None:
    """Find where each of ``count`` records in ``data[pos:end]`` starts.

    The decoder's only per-record Python loop: a record starts where the previous one's
    length says. Once two records in a row have one size, a window of further records at
    that stride is confirmed at once by comparing their length prefixes, the window
    growing while it keeps matching, so equally sized records cost a few steps a batch.
    Lengths are read unsigned here; ``_record_fields`` rejects negative ones.
    """
    scan, previous, window = data.scan, -1, _MIN_RUN_WINDOW
    append, singles_before, in_runs = found.singles.append, len(found.singles), 0
    while pos < end:
        first = scan[pos]
        if first < 0x80:
            size = 1 + (first >> 1)
        elif scan[pos + 1] < 0x80:
            size = 2 + (((first & 0x7F) | (scan[pos + 1] << 7)) >> 1)
        else:
            raw, head = _read_uvarint(data.view, pos)
            size = head + (raw >> 1)
        # a run needs this size twice and a next record whose prefix starts alike
        if size != previous or pos + size >= end or scan[pos + size] != first:
            append(pos)
            pos += size
            previous = size
            continue
        left = count - in_runs - (len(found.singles) - singles_before)
        limit = min(left, (end - pos) // size)
        if limit * size != end - pos:  # not all the rest at this size: gallop
            limit = min(limit, window)
        run = _run_length(data, pos, size, _read_uvarint(data.view, pos)[1], limit)
        window = window * 4 if run == limit else _MIN_RUN_WINDOW
        found.runs += (len(found.singles), pos, size, run)
        pos += size * run
        in_runs += run
    if pos != end or in_runs + len(found.singles) - singles_before != count:
        raise ValueError(f"records do not fill their batch (count {count}, end {end})")


def _run_length(data: _Bytes, pos: int, size: int, head: int, limit: int) -> int:
    """How many records from ``pos`` on (at most ``limit``) repeat its length prefix."""
    run = limit
    for i in range(head):
        if limit < 512:  # bytes beat NumPy's call overhead on short windows
            column = bytes(data.scan[pos + i : pos + i + size * limit : size])
            run = min(run, len(column) - len(column.lstrip(column[:1])))
        else:
            column_array = data.u8[pos + i : pos + i + size * limit : size]
            differ = np.flatnonzero(column_array != column_array[0])
            run = min(run, int(differ[0]) if differ.size else limit)
    return max(run, 1)


class _Starts:
    """Record starts found by the scan: single positions, plus runs of equally spaced
    records stored as (singles found before it, first position, stride, count)."""

    def __init__(self) -> None:
        self.singles = array.array("q")
        self.runs: list[int] = []

    def positions(self) -> Int64s:
        """Every record start in order: one cumulative sum over the gaps between
        consecutive starts (a run's stride inside a run, the jump from the previous
        segment's last record at each single and each run's first record)."""
        singles = np.frombuffer(self.singles, dtype=np.int64)
        if not self.runs:
            return singles
        before, first, stride, count = np.array(self.runs, dtype=np.int64).reshape(-1, 4).T
        # segments (a single, or a run) in record order: run r follows the singles found
        # before it and the runs before it; ``before`` never decreases
        slots = len(singles) + len(count)
        run_slot = before + np.arange(len(count))
        single_slot = np.arange(len(singles)) + np.searchsorted(before, np.arange(len(singles)),
                                                                side="right")
        seg_first, seg_stride = np.empty(slots, np.int64), np.zeros(slots, np.int64)
        seg_count = np.ones(slots, np.int64)
        seg_first[single_slot], seg_first[run_slot] = singles, first
        seg_stride[run_slot], seg_count[run_slot] = stride, count
        seg_last = seg_first + seg_stride * (seg_count - 1)
        gaps = np.repeat(seg_stride, seg_count)
        gaps[np.cumsum(seg_count) - seg_count] = seg_first - np.concatenate(([0], seg_last[:-1]))
        return np.cumsum(gaps)


# ---------------------------------------------------------------------------- record fields


@dataclass
class _Fields:
    """Per-record columns as decoded so far; arrays are aligned row by row."""

    batch: Int64s  # index into the wanted batches
    ends: Int64s
    cursor: Int64s  # position of the next field to decode
    offsets: Int64s
    timestamp_deltas: Int64s
    # 8 bytes loaded at ``loaded_at`` per row: a field within 4 bytes of the last load
    # is read from them (shifts), not gathered from the blob again (a cache-missing
    # unaligned load per record, the decoder's main cost)
    loaded_at: Int64s | None = None
    loaded: UInt64s | None = None

    def keep(self, rows: Bools) -> None:
        for name in ("batch", "ends", "cursor", "offsets", "timestamp_deltas"):
            setattr(self, name, getattr(self, name)[rows])
        self.loaded_at = self.loaded = None

    def read(self, data: _Bytes) -> Int64s:
        """Decode the varint at each cursor and move the cursors past it."""
        values, sizes = _decode_varints(data, self.cursor, self.words_at_cursor(data))
        self.cursor = self.cursor + sizes
        return values

    def words_at_cursor(self, data: _Bytes) -> npt.NDArray[np.uint32]:
        """The 4 bytes at each cursor: shifted out of the last 8-byte load when every
        cursor is 0-4 bytes past it, else 8 bytes loaded at the cursors afresh."""
        words = self.loaded_words(self.cursor)
        if words is not None:
            return words
        self.loaded_at = self.cursor
        self.loaded = data.load(self.cursor, 8).astype(np.uint64, copy=False)
        return self.loaded.astype(np.uint32)

    def loaded_words(self, pos: Int64s) -> npt.NDArray[np.uint32] | None:
        """The 4 bytes at each row's ``pos`` out of the last load, None unless every
        ``pos`` is 0-4 bytes past it."""
        if self.loaded is None or self.loaded_at is None or not pos.size:
            return None
        skip = pos - self.loaded_at
        if int(skip.min()) < 0 or int(skip.max()) > 4:
            return None
        return (self.loaded >> (skip.astype(np.uint64) << np.uint64(3))).astype(np.uint32)

    def read_bytes(
        self, data: _Bytes
    ) -> tuple[Int64s, Int64s, npt.NDArray[np.uint32] | None]:
        """(start, length, first 4 bytes if loaded already) of the nullable byte string
        at each cursor, cursors moved past."""
        lengths = self.read(data)
        starts = self.cursor
        self.cursor = starts + np.maximum(lengths, 0)
        return starts, lengths, self.loaded_words(starts)


def _record_fields(data: _Bytes, starts: Int64s, batch: Int64s, wanted: list[_Batch]) -> _Fields:
    fields = _Fields(batch, starts, starts, starts, starts)
    lengths, heads = _decode_varints(data, starts, fields.words_at_cursor(data))
    if lengths.size and int(lengths.min()) <= 0:
        raise ValueError(f"record length {int(lengths.min())}")
    fields.ends, fields.cursor = starts + heads + lengths, starts + heads + 1
    fields.timestamp_deltas = fields.read(data)
    base_offsets = np.array([b.base_offset for b in wanted], dtype=np.int64)
    fields.offsets = base_offsets[batch] + fields.read(data)
    return fields


def _timestamps(fields: _Fields, wanted: list[_Batch]) -> tuple[Int64s, npt.NDArray[np.int32]]:
    log_append = np.array([bool(b.attributes & _LOG_APPEND_TIME) for b in wanted])
    base = np.array([b.base_timestamp for b in wanted], dtype=np.int64)[fields.batch]
    if not log_append.any():
        return base + fields.timestamp_deltas, np.zeros(len(base), dtype=np.int32)
    maximum = np.array([b.max_timestamp for b in wanted], dtype=np.int64)[fields.batch]
    per_record = log_append[fields.batch]
    timestamps = np.where(per_record, maximum, base + fields.timestamp_deltas)
    return timestamps, per_record.astype(np.int32)


def _check_ends(header_counts: Int64s, fields: _Fields) -> None:
    """Records without headers must end right after their header count."""
    bad = (fields.cursor > fields.ends) | (header_counts < 0)
    bad |= (header_counts == 0) & (fields.cursor != fields.ends)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"record at offset {int(fields.offsets[row])} overruns its length")


def _decode_headers(data: _Bytes, buffer: pa.Buffer, counts: Int64s, fields: _Fields) -> pa.Array:
    """Headers as HEADERS_ARROW, decoded one header index at a time across all records."""
    bounds = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=bounds[1:])
    total = int(bounds[-1])
    key_at, key_len = np.zeros(total, np.int64), np.zeros(total, np.int64)
    value_at, value_len = np.zeros(total, np.int64), np.zeros(total, np.int64)
    rows = np.flatnonzero(counts > 0)
    cursor = fields.cursor.copy()
    for index in range(int(counts.max()) if len(counts) else 0):
        rows = rows[counts[rows] > index]
        slot = bounds[rows] + index
        key_len[slot], sizes = _decode_varints(data, cursor[rows])
        key_at[slot] = cursor[rows] + sizes
        value_len[slot], sizes = _decode_varints(data, key_at[slot] + np.maximum(key_len[slot], 0))
        value_at[slot] = key_at[slot] + np.maximum(key_len[slot], 0) + sizes
        cursor[rows] = value_at[slot] + np.maximum(value_len[slot], 0)
    if (key_len < 0).any() or (cursor != fields.ends).any():
        raise ValueError("record headers overrun their record")
    keys = _utf8(_gather_binary(data, buffer, key_at, key_len))
    values = _gather_binary(data, buffer, value_at, value_len)
    entries = pa.StructArray.from_arrays([keys, values], fields=list(HEADERS_ARROW.value_type))
    return pa.LargeListArray.from_arrays(pa.array(bounds), entries, type=HEADERS_ARROW)


def _utf8(keys: pa.Array) -> pa.Array:
    """Header keys as strings; invalid UTF-8 becomes U+FFFD, as Java's consumer reads it."""
    try:
        return keys.cast(pa.large_string())
    except pa.ArrowInvalid:
        texts = [key.decode("utf-8", "replace") for key in keys.to_pylist()]
        return pa.array(texts, pa.large_string())


def _decode_records(
    source: memoryview,
    spans: list[tuple[int, int]],
    wanted: list[_Batch],
    offset_range: tuple[int, int],
    include_headers: bool,
    *,
    kind: pa.DataType,
) -> tuple[Int64s, Int64s, npt.NDArray[np.int32], pa.Array, pa.Array, pa.Array | None]:
    found = _Starts()
    data, buffer = _Bytes(source), pa.py_buffer(source)
    for (start, end), batch in zip(spans, wanted, strict=True):
        _scan_records(data, start, end, batch.records_count, found)
    counts = np.array([b.records_count for b in wanted], dtype=np.int64)
    batch_of = np.repeat(np.arange(len(wanted)), counts)
    fields = _record_fields(data, found.positions(), batch_of, wanted)
    in_range = (fields.offsets >= offset_range[0]) & (fields.offsets < offset_range[1])
    if not in_range.all():
        fields.keep(in_range)
    key_at, key_lengths, key_heads = fields.read_bytes(data)
    value_at, value_lengths, value_heads = fields.read_bytes(data)
    header_counts = fields.read(data)
    _check_ends(header_counts, fields)  # before any gather: views must stay in the buffer
    keys = _gather_binary(data, buffer, key_at, key_lengths, kind, heads=key_heads)
    values = _gather_binary(data, buffer, value_at, value_lengths, kind, heads=value_heads)
    headers = _decode_headers(data, buffer, header_counts, fields) if include_headers else None
    timestamps, types = _timestamps(fields, wanted)
    return fields.offsets, timestamps, types, keys, values, headers


def _empty(next_offset: int, include_headers: bool, kind: pa.DataType) -> DecodedRecords:
    none = np.zeros(0, dtype=np.int64)
    return DecodedRecords(
        offsets=none,
        timestamps_ms=none.copy(),
        timestamp_types=np.zeros(0, dtype=np.int32),
        keys=pa.nulls(0, kind),
        values=pa.nulls(0, kind),
        headers=pa.nulls(0, HEADERS_ARROW) if include_headers else None,
        next_offset=next_offset,
    )


def decode_batches(
    data: bytes | memoryview,
    from_offset: int,
    until_offset: int,
    *,
    include_headers: bool = False,
    aborted: Sequence[tuple[int, int]] = (),
    verify_crc: bool = False,
    views: bool = False,
) -> DecodedRecords:
    """Decode the records with ``from_offset <= offset < until_offset`` from a fetched blob.

    Args:
        data: concatenated record batches, as in a Fetch response partition; a truncated
            trailing batch is ignored.
        from_offset: first offset wanted; a fetch returns whole batches, so earlier
            records of the first batch are dropped.
        until_offset: first offset not wanted.
        include_headers: decode record headers into ``headers`` (else ``None``).
        aborted: the Fetch response's aborted transactions as (producer_id, first_offset)
            pairs; their records are dropped as a read_committed Java consumer would.
        verify_crc: check every complete batch's CRC-32C.
        views: keys and values as ``binary_view`` arrays over ``data`` (or over the
            decompressed records), which copies no value but keeps that buffer alive;
            else ``large_binary`` arrays of their own.

    Raises:
        MalformedRecordError: a batch does not parse, fails its CRC, or uses the
            pre-0.11 message format.

    Example:
        >>> import pyarrow as pa
        >>> blob = encode_batch(pa.array(["a", "b", "c"]), timestamp_ms=5)
        >>> decode_batches(blob, 1, 2).values.to_pylist()
        [b'b']
    """
    view = _byte_view(data)
    batches = _read_batches(view)
    next_offset = max(from_offset, batches[-1].next_offset) if batches else from_offset
    if verify_crc:
        for batch in batches:
            _check_crc(view, batch)
    kind = pa.binary_view() if views else pa.large_binary()
    try:
        wanted = _wanted_batches(view, batches, from_offset, until_offset, aborted)
        if not wanted:
            return _empty(next_offset, include_headers, kind)
        source, spans = _records_source(view, wanted)
        offset_range = (from_offset, until_offset)
        columns = _decode_records(source, spans, wanted, offset_range, include_headers,
                                  kind=kind)
    except (ValueError, IndexError, struct.error, cramjam.DecompressionError) as error:
        if isinstance(error, MalformedRecordError):
            raise
        last = batches[-1].next_offset - 1
        raise _corrupt(batches[0].base_offset, str(error), last=last) from error
    offsets, timestamps, types, keys, values, headers = columns
    return DecodedRecords(offsets, timestamps, types, keys, values, headers, next_offset)


# ---------------------------------------------------------------------------- encoding


class _Column(NamedTuple):
    """A binary column read in place: its data buffer, where each value starts and ends in
    it, and each value's length (-1 for nulls)."""

    buffer: pa.Buffer
    bounds: Int64s
    lengths: Int64s
    null_count: int

    @property
    def sizes(self) -> Int64s:
        return np.maximum(self.lengths, 0)


class _Headers(NamedTuple):
    """Header entries of all records, flattened: record i owns entries bounds[i]:bounds[i+1]."""

    counts: Int64s
    bounds: Int64s
    keys: _Column
    values: _Column


_OFFSET_WIDTHS = {pa.binary(): np.int32, pa.string(): np.int32,
                  pa.large_binary(): np.int64, pa.large_string(): np.int64}


def _binary_column(array: pa.Array | pa.ChunkedArray) -> _Column:
    """Starts and lengths of a (large) binary or string column, read off its offsets."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    kind, rows = array.type, len(array)
    if kind not in _OFFSET_WIDTHS:
        raise TypeError(f"Kafka keys, values and headers must be binary or string, not {kind}")
    offsets, data = array.buffers()[1:3]
    bounds = np.frombuffer(offsets, dtype=_OFFSET_WIDTHS[kind])[array.offset :][: rows + 1]
    bounds = bounds.astype(np.int64, copy=False)
    lengths = np.diff(bounds)
    if array.null_count:
        lengths[_nulls(array)] = -1
    data = pa.py_buffer(b"") if data is None else data
    return _Column(data, bounds, lengths, array.null_count)


def _nulls(array: pa.Array) -> Bools:
    """Where the array is null, read off its validity bitmap (Arrow's is_valid() would
    import pandas on the way to NumPy)."""
    bits = np.unpackbits(np.frombuffer(array.buffers()[0], dtype=np.uint8), bitorder="little")
    return ~bits[array.offset : array.offset + len(array)].astype(bool)


def _rows_of(array: pa.Array | pa.ChunkedArray, rows: int) -> pa.Array:
    if len(array) != rows:
        raise ValueError(f"got {len(array)} keys or header lists for {rows} values")
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _header_entries(headers: pa.Array | pa.ChunkedArray, rows: int) -> _Headers | None:
    """The entries of HEADERS_ARROW-like lists (None when there are none) and their counts."""
    headers = _rows_of(headers, rows)
    if not pa.types.is_large_list(headers.type):
        headers = headers.cast(pa.large_list(headers.type.value_field))
    offsets = np.frombuffer(headers.buffers()[1], dtype=np.int64)
    counts = np.diff(offsets[headers.offset : headers.offset + rows + 1])
    if headers.null_count:
        counts[_nulls(headers)] = 0  # flatten() drops what null lists span
    entries = headers.flatten()
    if len(entries) == 0:
        return None
    if entries.null_count:
        raise ValueError("Kafka header entries must not be null")
    by_name = dict(zip([f.name for f in entries.type], entries.flatten(), strict=True))
    keys = _binary_column(by_name["key"])
    if (keys.lengths < 0).any():
        raise ValueError("Kafka header keys must not be null")
    return _Headers(counts, _offsets(counts), keys, _binary_column(by_name["value"]))


def _offsets(sizes: Int64s) -> Int64s:
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets


# ---------------------------------------------------------------------------- varints


class _Varints(NamedTuple):
    """Zigzag varints as the little-endian words of their first 8 bytes (``high``: bytes 8
    and 9 of varlongs past 2**56), with their sizes. An int stands for the same value in
    every row, which then costs no NumPy call per record."""

    words: UInt64s | int
    sizes: Int64s | int
    widest: int
    narrowest: int
    high: UInt64s | int = 0


_ZERO = _Varints(0, 1, 1, 1)  # attributes, a timestamp delta or a header count of 0
_NULL = _Varints(1, 1, 1, 1)  # zigzag(-1): a null key's length
_WORD = (1 << 64) - 1
_OFFSET_TABLE_MIN = 1 << 12
_OFFSET_TABLE_MAX = 1 << 17


def _zigzag(values: Int64s) -> UInt64s:
    return ((values << 1) ^ (values >> 63)).view(np.uint64)


def _varint_size(zigzagged: int) -> int:
    return max(1, -(-zigzagged.bit_length() // 7))


def _uvarint_bytes(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _constant_varint(zigzagged: int) -> _Varints:
    encoded = _uvarint_bytes(zigzagged)
    words, high = int.from_bytes(encoded[:8], "little"), int.from_bytes(encoded[8:], "little")
    return _Varints(words, len(encoded), len(encoded), len(encoded), high)


def _varints(values: Int64s | int) -> _Varints:
    """Encode a column, skipping the steps for bytes that no varint has: at a few thousand
    rows each NumPy call costs more than the arithmetic it does."""
    if isinstance(values, int):
        return _constant_varint(2 * values if values >= 0 else -2 * values - 1)
    zigzagged = _zigzag(values)
    top, bottom = int(zigzagged.max()), int(zigzagged.min())
    if top == bottom:
        return _constant_varint(top)
    widest, narrowest = _varint_size(top), _varint_size(bottom)
    sizes: Int64s | int = widest
    if narrowest < widest:
        sizes = np.full(len(values), narrowest, dtype=np.int64)
        for k in range(narrowest, widest):
            sizes += zigzagged >= np.uint64(1 << (7 * k))
    words = _spread_groups(zigzagged, widest)
    if widest > 1:
        words = words | _CONTINUATIONS[sizes]
    if widest <= 8:
        return _Varints(words, sizes, widest, narrowest)
    high = (zigzagged >> np.uint64(56)) & np.uint64(0x7F)
    high |= (zigzagged >> np.uint64(63)) * np.uint64(0x180)
    return _Varints(words, sizes, widest, narrowest, high)


def _spread_groups(zigzagged: UInt64s, widest: int) -> UInt64s:
    """Move each 7-bit group of the low 56 bits to its own byte (inverse of decoding)."""
    bits = zigzagged
    for shift, keep, move in reversed(_SWAR64_ROUNDS):
        if widest > int(shift):  # else no group moves in this round
            bits = (bits & keep) | ((bits & move) << shift)
    return bits


@functools.cache
def _offset_delta_table(capacity: int) -> tuple[UInt64s, Int64s]:
    deltas = _varints(np.arange(capacity, dtype=np.int64))
    words = np.asarray(deltas.words, dtype=np.uint64)
    sizes = np.asarray(deltas.sizes, dtype=np.int64)
    words.flags.writeable = sizes.flags.writeable = False  # shared by every batch
    return words, sizes


def _offset_deltas(rows: int) -> _Varints:
    """Varints of 0..rows-1, cut from a cached table: every batch starts with the same ones."""
    capacity = max(_OFFSET_TABLE_MIN, 1 << (rows - 1).bit_length())
    if capacity > _OFFSET_TABLE_MAX:
        return _varints(np.arange(rows, dtype=np.int64))
    (words, sizes), widest = _offset_delta_table(capacity), _varint_size(2 * (rows - 1))
    return _Varints(words[:rows], sizes[:rows] if widest > 1 else 1, widest, 1)


def _take(varints: _Varints, rows: Int64s) -> _Varints:
    def pick(column: Any) -> Any:
        return column if isinstance(column, int) else column[rows]

    return varints._replace(words=pick(varints.words), sizes=pick(varints.sizes),
                            high=pick(varints.high))


def _total(*terms: Int64s | int) -> Int64s | int:
    """Add the ints in Python first: each NumPy addition is a call."""
    total: Int64s | int = sum(term for term in terms if isinstance(term, int))
    for term in terms:
        if not isinstance(term, int):
            total = total + term
    return total


# ---------------------------------------------------------------------------- varint runs


class _Run:
    """For every row, the varints between two input pieces, packed little-endian into
    64-bit lanes with shifts rather than scattered byte by byte."""

    def __init__(self, parts: list[_Varints], rows: int) -> None:
        self.span = sum(part.widest for part in parts)  # the longest a row can be
        self.lanes = np.zeros((max(2, -(-self.span // 8)), rows), dtype=np.uint64)
        offset: Int64s | int = 0
        low = top = 0  # the least and the largest offset of any row
        for part in parts:
            self._place(part.words, offset, (low, top), part.widest)
            if part.widest > 8:
                self._place(part.high, offset + 8, (low + 8, top + 8), part.widest - 8)
            offset = _total(offset, part.sizes)
            low, top = low + part.narrowest, top + part.widest
        self.lengths = offset

    def _place(self, words: UInt64s | int, offset: Int64s | int, bounds: tuple[int, int],
               width: int) -> None:
        """OR ``words`` in at byte ``offset`` of each row, touching only the lanes that the
        offset ``bounds`` and the ``width`` of the widest word allow."""
        if isinstance(words, int) and not words:
            return
        if isinstance(offset, int):
            for lane in range(offset // 8, (offset + width - 1) // 8 + 1):
                self.lanes[lane] |= _shifted(words, 8 * offset - 64 * lane)
            return
        low, top = bounds
        bits = (offset << 3).view(np.uint64)
        word = np.uint64(words) if isinstance(words, int) else words
        for lane in range(low // 8, (top + width - 1) // 8 + 1):
            # NumPy shifts by 64 or more give 0, and uint64 subtraction wraps negative
            # shifts past that, so rows with no bytes in this lane add nothing
            start = np.uint64(64 * lane)
            if top >= 8 * lane:  # words that start in this lane
                self.lanes[lane] |= word << (bits - start)
            if low < 8 * lane:  # words that started in an earlier one
                self.lanes[lane] |= word >> (start - bits)

    def drop_first_byte(self) -> None:
        """Remove the first byte of the first row: it stood for a record before the first."""
        first = sum(int(word) << (64 * lane) for lane, word in enumerate(self.lanes[:, 0]))
        for lane in range(len(self.lanes)):
            self.lanes[lane, 0] = (first >> (8 + 64 * lane)) & _WORD
        lengths = np.full(self.lanes.shape[1], self.lengths, dtype=np.int64)
        lengths[0] -= 1
        self.lengths = lengths

    def views(self, first_buffer: int) -> tuple[list[pa.Buffer], npt.NDArray[np.uint64]]:
        """binary_view structs of the runs: inline up to 12 bytes, else pointing into the
        lanes, returned as the buffer to put at ``first_buffer``."""
        lanes, lengths = self.lanes, np.asarray(self.lengths, dtype=np.int64)
        views = np.empty((lanes.shape[1], 2), dtype=np.uint64)
        views[:, 0] = (lanes[0] << np.uint64(32)) | lengths.view(np.uint64)
        views[:, 1] = (lanes[0] >> np.uint64(32)) | (lanes[1] << np.uint64(32))
        if self.span <= 12:
            return [], views
        long = np.flatnonzero(np.broadcast_to(lengths > 12, (len(views),)))
        if not long.size:
            return [], views
        at = (long * 8 * len(lanes)).astype(np.uint64)
        views[long, 1] = np.uint64(first_buffer) | (at << np.uint64(32))
        return [pa.py_buffer(np.ascontiguousarray(lanes.T))], views


def _shifted(words: UInt64s | int, bits: int) -> UInt64s | int:
    """``words`` moved ``bits`` left (right when negative) within 64 bits."""
    if isinstance(words, int):
        return (words << bits if bits >= 0 else words >> -bits) & _WORD
    return words << np.uint64(bits) if bits >= 0 else words >> np.uint64(-bits)


# ---------------------------------------------------------------------------- records


class _RecordColumns(NamedTuple):
    """A batch's input columns, and its records' varints but their lengths: attributes
    (0), timestampDelta, offsetDelta, keyLength, valueLength, headerCount, and each
    header's key and value length (``_ZERO`` without headers)."""

    values: _Column
    keys: _Column | None
    headers: _Headers | None
    timestamp_deltas: _Varints
    offset_deltas: _Varints
    key_lengths: _Varints
    value_lengths: _Varints
    header_counts: _Varints = _ZERO
    entry_key_lengths: _Varints = _ZERO
    entry_value_lengths: _Varints = _ZERO

    @property
    def rows(self) -> int:
        return len(self.values.lengths)


def _record_columns(values: _Column, keys: _Column | None, headers: _Headers | None,
                    timestamp_deltas: Int64s | None) -> _RecordColumns:
    columns = _RecordColumns(
        values, keys, headers,
        _ZERO if timestamp_deltas is None else _varints(timestamp_deltas),
        _offset_deltas(len(values.lengths)),
        _NULL if keys is None else _varints(keys.lengths), _varints(values.lengths),
    )
    if headers is None:
        return columns
    return columns._replace(header_counts=_varints(headers.counts),
                            entry_key_lengths=_varints(headers.keys.lengths),
                            entry_value_lengths=_varints(headers.values.lengths))


def _data_sizes(column: _Column, lengths: _Varints) -> Int64s | int:
    """Bytes each value takes in the section; one int when they all have the same length."""
    return max(int(column.lengths[0]), 0) if isinstance(lengths.words, int) else column.sizes


def _record_lengths(columns: _RecordColumns) -> _Varints:
    """Each record's length varint: the bytes after it in the record."""
    terms = [1, columns.timestamp_deltas.sizes, columns.offset_deltas.sizes,
             columns.key_lengths.sizes, columns.value_lengths.sizes, columns.header_counts.sizes,
             _data_sizes(columns.values, columns.value_lengths)]
    if columns.keys is not None:
        terms.append(_data_sizes(columns.keys, columns.key_lengths))
    if columns.headers is not None:
        terms.append(_entry_bytes(columns, columns.headers))
    return _varints(_total(*terms))


def _entry_bytes(columns: _RecordColumns, headers: _Headers) -> Int64s:
    """All bytes of each record's headers but their count."""
    total = _offsets(headers.keys.sizes + _total(headers.values.sizes,
                     columns.entry_key_lengths.sizes, columns.entry_value_lengths.sizes))
    return total[headers.bounds[1:]] - total[headers.bounds[:-1]]


def _head_parts(columns: _RecordColumns) -> list[_Varints]:
    """The varints before a record's first input piece, behind the previous record's tail:
    its header count if it had no headers (else its last header value ended it)."""
    tail = _ZERO
    if columns.headers is not None:
        ended = np.ones(columns.rows, dtype=np.int64)  # the first row's is dropped later
        ended[1:] = columns.headers.counts[:-1] == 0
        tail = _Varints(0, ended, 1, 0)
    parts = [tail, _record_lengths(columns), _ZERO, columns.timestamp_deltas]
    parts += [columns.offset_deltas, columns.key_lengths]
    return parts if columns.keys is not None else [*parts, columns.value_lengths]


# ---------------------------------------------------------------------------- sections


class _Section:
    """A records section as an Arrow binary_view array: runs of varints alternating with
    input pieces (keys, values, header keys and values). Its cast to large_binary copies
    each piece into place, once."""

    def __init__(self, pieces: int) -> None:
        # row 0 holds room for the batch header (or nothing); the records follow it
        self._rows = np.empty((2 * pieces + 2, 2), dtype=np.uint64)
        self.views = self._rows[1:]
        self.buffers: list[pa.Buffer] = []

    def put_column(self, column: _Column, slots: slice | Int64s) -> None:
        """Put a column's values at ``slots`` among the input pieces."""
        buffers, views = _input_views(column)
        if self.buffers or column.null_count:
            views = views.copy()
            views[column.lengths < 0] = 0  # an empty piece
            views[:, 1] += np.where(column.sizes > 12, np.uint64(len(self.buffers)), 0)
        self._put(slice(1, None, 2), slots, views)
        self.buffers += buffers

    def put_runs(self, runs: _Run, slots: slice | Int64s) -> None:
        """Put the runs before the input pieces at ``slots``."""
        buffers, views = runs.views(len(self.buffers))
        self._put(slice(0, -1, 2), slots, views)
        self.buffers += buffers

    def _put(self, rows: slice, slots: slice | Int64s, views: npt.NDArray[np.uint64]) -> None:
        # whole structs as one 16-byte item each: NumPy moves 2-column rows ~7x slower
        structs = np.ascontiguousarray(views).view(_VIEW)[:, 0]
        self.views.view(_VIEW)[rows, 0][slots] = structs

    def array(self, last_run: int, room: int) -> pa.Array:
        """The binary_view array, ended by a run of ``last_run`` zero bytes (a header count)
        and started by ``room`` zero bytes (over 12, or none) for the batch header."""
        self.views[-1] = (last_run, 0)
        self._rows[0] = (room, len(self.buffers)) if room else (0, 0)
        buffers = [None, pa.py_buffer(self._rows), *self.buffers]
        if room:
            buffers.append(pa.py_buffer(bytes(room)))
        return pa.Array.from_buffers(pa.binary_view(), len(self._rows), buffers)


def _concatenated(pieces: pa.Array) -> memoryview:
    joined = pieces.cast(pa.large_binary())
    size = int(np.frombuffer(joined.buffers()[1], dtype=np.int64)[len(pieces)])
    # a view, not Buffer.slice: a sliced Buffer is read-only, and the header goes in place
    return memoryview(joined.buffers()[2]).cast("B")[:size]


_VIEW = np.dtype("V16")  # one binary_view struct


def _input_views(column: _Column) -> tuple[list[pa.Buffer], npt.NDArray[np.uint64]]:
    """binary_view structs of a column's values and the buffers they point into: made by
    Arrow without copying values, but for a column whose bytes span over 2 GiB, which is
    addressed in windows as the decoder does."""
    try:
        return _cast_views(column)
    except pa.ArrowCapacityError:
        data = _Bytes(memoryview(column.buffer))
        return _views(data, column.buffer, column.bounds[:-1], column.sizes)


def _cast_views(column: _Column) -> tuple[list[pa.Buffer], npt.NDArray[np.uint64]]:
    """Cast a copy of the column that starts at offset 0 and at its first byte: Arrow's
    cast makes views for the rows before a slice too, and refuses data over 2 GiB."""
    bounds, rows = column.bounds, len(column.lengths)
    first, last = int(bounds[0]), int(bounds[-1])
    offsets, data = pa.py_buffer(bounds - first), column.buffer.slice(first, last - first)
    rebased = pa.Array.from_buffers(pa.large_binary(), rows, [None, offsets, data])
    cast = rebased.cast(pa.binary_view())
    views = np.frombuffer(cast.buffers()[1], dtype=np.uint64).reshape(rows, 2)
    return cast.buffers()[2:], views


def _record_slots(rows: int, keyed: bool, headers: _Headers | None) -> list[slice | Int64s]:
    """Where each record's key (if keyed) and value go among the input pieces, which are
    in record order: key, value, then each header's key and value."""
    per_record = 1 + keyed
    if headers is None:
        first: slice | Int64s = slice(0, None, per_record)
        return [first, slice(1, None, 2)] if keyed else [first]
    first = per_record * np.arange(rows) + 2 * headers.bounds[:-1]
    return [first, first + 1] if keyed else [first]


def _entry_slots(rows: int, keyed: bool, headers: _Headers) -> Int64s:
    """Where each header key goes among the input pieces; its value follows it."""
    record = np.repeat(np.arange(rows), headers.counts)
    return (1 + keyed) * (record + 1) + 2 * np.arange(len(record))


def _put_headers(section: _Section, columns: _RecordColumns, headers: _Headers) -> None:
    """Header keys and values, each behind its length and the first behind the count."""
    keys = _entry_slots(columns.rows, columns.keys is not None, headers)
    section.put_column(headers.keys, keys)
    section.put_column(headers.values, keys + 1)
    section.put_runs(_Run([columns.entry_key_lengths], len(keys)), keys)
    section.put_runs(_Run([columns.entry_value_lengths], len(keys)), keys + 1)
    # a record's first header key also follows its header count: redo those runs
    records = np.flatnonzero(headers.counts)
    firsts = headers.bounds[records]
    parts = [_take(columns.header_counts, records), _take(columns.entry_key_lengths, firsts)]
    section.put_runs(_Run(parts, len(records)), keys[firsts])


def _section(columns: _RecordColumns, room: int) -> memoryview:
    """The records section of a batch: offset deltas 0..n-1, timestamps relative to the
    first; behind ``room`` zero bytes (for the batch header, saving a copy to prepend it)."""
    rows, keys, headers = columns.rows, columns.keys, columns.headers
    entries = 0 if headers is None else len(headers.keys.lengths)
    section = _Section(rows * (1 + (keys is not None)) + 2 * entries)
    slots = _record_slots(rows, keys is not None, headers)
    if keys is not None:
        section.put_column(keys, slots[0])
    section.put_column(columns.values, slots[-1])
    heads = _Run(_head_parts(columns), rows)
    heads.drop_first_byte()
    section.put_runs(heads, slots[0])
    if keys is not None:
        section.put_runs(_Run([columns.value_lengths], rows), slots[1])
    if headers is None:
        return _concatenated(section.array(1, room))
    _put_headers(section, columns, headers)
    return _concatenated(section.array(int(headers.counts[-1] == 0), room))


def _records(values: pa.Array, keys: pa.Array | None, headers: pa.Array | None,
             timestamp_deltas: Int64s | None, room: int = 0) -> memoryview:
    value_column = _binary_column(values)
    rows = len(value_column.lengths)
    key_column = None if keys is None else _binary_column(_rows_of(keys, rows))
    entries = None if headers is None else _header_entries(headers, rows)
    return _section(_record_columns(value_column, key_column, entries, timestamp_deltas), room)


def _frame_batch(records: memoryview, header: _Batch) -> bytes:
    """Prefix the (maybe compressed) records with ``header``, filling length and CRC."""
    header = header._replace(batch_length=_HEADER.size - _LOG_OVERHEAD + len(records))
    fixed = bytearray(_HEADER.pack(*header[:-1]))
    crc = crc32c(records, crc32c(bytes(fixed[_CRC_FROM:])))
    struct.pack_into(">I", fixed, _CRC_AT, crc)
    return b"".join([fixed, records])


def _frame_in_place(view: memoryview, header: _Batch) -> memoryview:
    """Write ``header`` (length and CRC filled) into the room left before the records."""
    if view.readonly:  # Arrow made a buffer it does not let us write: copy it once
        view = memoryview(bytearray(view))
    header = header._replace(batch_length=len(view) - _LOG_OVERHEAD)
    view[: _HEADER.size] = _HEADER.pack(*header[:-1])
    struct.pack_into(">I", view, _CRC_AT, crc32c(view[_CRC_FROM:]))
    return view


def _timestamp_deltas(timestamp_ms: int | Int64s, rows: int) -> tuple[int, int, Int64s | None]:
    """The first and the largest timestamp, and each record's delta from the first (None
    when all are 0, as with one timestamp for all)."""
    timestamps = np.asarray(timestamp_ms, dtype=np.int64)
    if timestamps.ndim == 0:
        return int(timestamps), int(timestamps), None
    if timestamps.shape != (rows,):
        raise ValueError(f"got {timestamps.size} timestamps for {rows} values")
    deltas = timestamps - timestamps[0]
    return int(timestamps[0]), int(timestamps.max()), deltas if deltas.any() else None


def _batch(
    values: pa.Array,
    *,
    keys: pa.Array | None,
    headers: pa.Array | None,
    timestamp_ms: int | Int64s,
    header: _Batch,
    codec: int,
    level: int | None = None,
) -> bytes | memoryview:
    """The batch; uncompressed, a view of the records' own buffer with the header written
    into room left before them (prepending it would copy every record once more)."""
    rows = len(values)
    if rows == 0:
        raise ValueError("a Kafka record batch needs at least one record")
    first, latest, deltas = _timestamp_deltas(timestamp_ms, rows)
    header = header._replace(
        attributes=header.attributes | codec,
        last_offset_delta=rows - 1,
        base_timestamp=first,
        max_timestamp=latest,
        records_count=rows,
    )
    if codec == 0:
        return _frame_in_place(_records(values, keys, headers, deltas, _HEADER.size), header)
    records = _records(values, keys, headers, deltas)
    return _frame_batch(_compress(codec, records, level), header)


def encode_batch(
    values: pa.Array,
    keys: pa.Array | None = None,
    headers: pa.Array | None = None,
    *,
    timestamp_ms: int | Int64s,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    compression: str | None = None,
    compression_level: int | None = None,
) -> bytes:
    """Encode one RecordBatch v2 (base offset 0, as a producer sends it).

    Args:
        values: record values; binary, large_binary, string or large_string, nulls allowed.
        keys: record keys, same types, or None for no keys.
        headers: HEADERS_ARROW-like list<struct<key, value>> per record, or None.
        timestamp_ms: CreateTime for all records, or one per record.
        producer_id: idempotent/transactional producer id (-1: none).
        producer_epoch: the producer's epoch (-1: none).
        base_sequence: sequence number of the first record (-1: none).
        transactional: set the batch's isTransactional bit.
        compression: None, "none", "gzip", "snappy" (xerial-framed), "lz4" (frame) or "zstd".
        compression_level: the codec's level; None for its default (lz4: fast mode).

    Example:
        >>> import pyarrow as pa
        >>> blob = encode_batch(pa.array([b"v"]), pa.array([b"k"]), timestamp_ms=7)
        >>> len(blob), decode_batches(blob, 0, 1).keys.to_pylist()
        (70, [b'k'])
    """
    return bytes(encode_batch_view(
        values, keys, headers, timestamp_ms=timestamp_ms, producer_id=producer_id,
        producer_epoch=producer_epoch, base_sequence=base_sequence, transactional=transactional,
        compression=compression, compression_level=compression_level))


def encode_batch_view(
    values: pa.Array,
    keys: pa.Array | None = None,
    headers: pa.Array | None = None,
    *,
    timestamp_ms: int | Int64s,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    compression: str | None = None,
    compression_level: int | None = None,
) -> bytes | memoryview:
    """:func:`encode_batch` without its final copy: an uncompressed batch is a view of
    the buffer its records were assembled in (the Kafka sink sends it as it is).

    Example:
        >>> import pyarrow as pa
        >>> view = encode_batch_view(pa.array([b"v"]), timestamp_ms=7)
        >>> bytes(view) == encode_batch(pa.array([b"v"]), timestamp_ms=7)
        True
    """
    if compression not in _CODECS:
        raise ValueError(f"unknown compression {compression!r}; use one of gzip, snappy, lz4, zstd")
    header = _Batch(0, 0, -1, 2, 0, _TRANSACTIONAL if transactional else 0, 0, 0, 0,
                    producer_id, producer_epoch, base_sequence, 0)
    codec = _CODECS[compression]
    return _batch(values, keys=keys, headers=headers, timestamp_ms=timestamp_ms, header=header,
                  codec=codec, level=compression_level)


def encode_control_batch(
    *, commit: bool, producer_id: int, producer_epoch: int, base_offset: int, timestamp_ms: int
) -> bytes:
    """A transaction marker batch, as the broker writes one at a COMMIT or ABORT.

    Example:
        >>> marker = encode_control_batch(commit=False, producer_id=1, producer_epoch=0,
        ...                               base_offset=9, timestamp_ms=0)
        >>> decode_batches(marker, 0, 100).next_offset
        10
    """
    key = pa.array([struct.pack(">hh", 0, 1 if commit else 0)])
    value = pa.array([struct.pack(">hi", 0, 0)])  # version, coordinator epoch
    header = _Batch(base_offset, 0, -1, 2, 0, _TRANSACTIONAL | _CONTROL, 0, 0, 0,
                    producer_id, producer_epoch, -1, 0)
    return bytes(_batch(value, keys=key, headers=None, timestamp_ms=timestamp_ms, header=header,
                        codec=0))
