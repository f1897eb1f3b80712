"""Micro-benchmark of the RecordBatch v2 codec: records/s on one core, 100-byte values.

    .venv/bin/python -m bench.kafka_codec

Decoding is timed on a blob of 1M records cut into batches of a given size (the Java
producer's 16 KiB default holds ~140 such records, librdkafka's 1 MiB ~9,000), with
record timestamps 1 ms apart every 10 records, as a busy producer would stamp them.
The 140-records/batch encode also counts assembling the batches into one blob. The
8,700-records/batch encodes are the Kafka sink's: ~1 MiB batches, one timestamp for all
unless stated, with keys, headers or compression added one at a time.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from unbounded._kafka.records import HEADERS_ARROW, decode_batches, encode_batch

__all__ = ["RECORDS", "main"]

RECORDS = 1_000_000
VALUE_BYTES = 100
SINK_BATCH = 8_700
_COLUMNS = ("keys", "headers", "timestamp_ms")
_REPEATS = 3


def _json_values(rows: int) -> pa.Array:
    """100-byte JSON-like values (compressible, unlike random bytes)."""
    template = np.frombuffer(b'{"id": 00000000, "user": "someone", "event": "click", '
                             b'"page": "/products/item-0042", "referrer": "search", "ok": 1}',
                             dtype=np.uint8)
    matrix = np.tile(template[:VALUE_BYTES], (rows, 1))
    ids = np.arange(rows)
    for digit in range(8):
        matrix[:, 7 + digit] = 48 + (ids // 10 ** (7 - digit)) % 10
    offsets = np.arange(rows + 1, dtype=np.int64) * VALUE_BYTES
    return pa.Array.from_buffers(pa.large_binary(), rows,
                                 [None, pa.py_buffer(offsets), pa.py_buffer(matrix)])


def _values(rows: int, *, jitter: int = 0) -> pa.Array:
    """Random 100-byte values, or 100 +- ``jitter`` bytes long."""
    rng = np.random.default_rng(7)
    sizes = np.full(rows, VALUE_BYTES)
    if jitter:
        sizes += rng.integers(-jitter, jitter + 1, rows)
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data = rng.integers(0, 256, int(offsets[-1]), dtype=np.uint8)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.large_binary(), rows, buffers)


def _blob(values: pa.Array, per_batch: int, compression: str | None = None) -> bytes:
    """Batches of ``per_batch`` records with consecutive base offsets, as a fetch returns them."""
    timestamps = 1_700_000_000_000 + np.arange(len(values), dtype=np.int64) // 10
    parts = []
    for start in range(0, len(values), per_batch):
        stop = min(start + per_batch, len(values))
        batch = bytearray(encode_batch(values[start:stop], timestamp_ms=timestamps[start:stop],
                                       compression=compression))
        struct.pack_into(">q", batch, 0, start)  # the base offset is outside the CRC
        parts.append(bytes(batch))
    return b"".join(parts)


def _keys(rows: int) -> pa.Array:
    """Random 16-byte keys, as hashes or UUIDs are."""
    data = np.random.default_rng(8).integers(0, 256, 16 * rows, dtype=np.uint8)
    offsets = np.arange(rows + 1, dtype=np.int64) * 16
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.large_binary(), rows, buffers)


def _headers(rows: int) -> pa.Array:
    """Two headers per record, as tracing adds them."""
    keys = pa.array(["trace-id", "source"] * rows, pa.large_string())
    values = pa.array([b"4bf92f3577b34da6", b"checkout"] * rows, pa.large_binary())
    entries = pa.StructArray.from_arrays([keys, values], fields=list(HEADERS_ARROW.value_type))
    offsets = pa.array(np.arange(0, 2 * rows + 1, 2, dtype=np.int64))
    return pa.LargeListArray.from_arrays(offsets, entries, type=HEADERS_ARROW)


def _sink_batches(values: pa.Array, **columns: Any) -> Callable[[], object]:
    """Encode ``values`` in the Kafka sink's ~1 MiB batches; ``columns`` are full-length
    keys, headers or per-record timestamps, or other encode_batch arguments."""
    def run() -> None:
        for start in range(0, len(values), SINK_BATCH):
            stop = min(start + SINK_BATCH, len(values))
            sliced = {name: column[start:stop] if name in _COLUMNS else column
                      for name, column in columns.items()}
            sliced.setdefault("timestamp_ms", 1_700_000_000_000)
            encode_batch(values[start:stop], **sliced)

    return run


def _best_seconds(run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(_REPEATS):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def _report(label: str, seconds: float) -> None:
    print(f"{label:<52} {RECORDS / seconds / 1e6:6.2f} M records/s  ({seconds * 1e3:6.1f} ms)")


def _decode(label: str, blob: bytes) -> None:
    decoded = decode_batches(blob, 0, RECORDS)
    assert len(decoded.values) == RECORDS and decoded.next_offset == RECORDS
    _report(label, _best_seconds(lambda: decode_batches(blob, 0, RECORDS)))


def main() -> None:
    values = _values(RECORDS)
    for per_batch in (140, 1_000, 10_000, RECORDS):
        _decode(f"decode, {per_batch:>7,} records/batch, no key", _blob(values, per_batch))
    jittered = _values(RECORDS, jitter=20)
    _decode("decode, 140 records/batch, values 80-120 bytes", _blob(jittered, 140))
    text = _json_values(RECORDS)
    for codec in ("lz4", "zstd", "snappy", "gzip"):
        _decode(f"decode, 10,000 records/batch, JSON values, {codec}", _blob(text, 10_000, codec))
    timestamps = 1_700_000_000_000 + np.arange(RECORDS, dtype=np.int64) // 10
    _report("encode, one batch, no key",
            _best_seconds(lambda: encode_batch(values, timestamp_ms=timestamps)))
    _report("encode, 140 records/batch, no key", _best_seconds(lambda: _blob(values, 140)))
    for codec in ("lz4", "zstd"):
        _report(f"encode, one batch, JSON values, {codec}", _best_seconds(
            lambda codec=codec: encode_batch(text, timestamp_ms=timestamps, compression=codec)))
    sink: dict[str, dict[str, Any]] = {
        "no key": {},
        "16-byte keys": {"keys": _keys(RECORDS)},
        "per-record timestamps": {"timestamp_ms": timestamps},
        "2 headers": {"headers": _headers(RECORDS)},
        "lz4": {"compression": "lz4"},
    }
    for label, columns in sink.items():
        _report(f"encode, {SINK_BATCH:,} records/batch, {label}",
                _best_seconds(_sink_batches(values, **columns)))


if __name__ == "__main__":
    main()
