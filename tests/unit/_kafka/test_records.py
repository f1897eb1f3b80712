"""RecordBatch v2 codec: round trips, kafka-python cross-checks, offsets and transactions."""

from __future__ import annotations

import struct
import subprocess
import sys
import warnings
from typing import Any

import cramjam
import crc32c
import numpy as np
import pyarrow as pa
import pytest

from unbounded._kafka import records as codec
from unbounded._kafka.records import (
    HEADERS_ARROW,
    decode_batches,
    encode_batch,
    encode_control_batch,
)
from unbounded.errors import MalformedRecordError

with warnings.catch_warnings():  # kafka-python 3.0 reads its schemas with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
    from kafka.record.legacy_records import LegacyRecordBatchBuilder
    from kafka.record.memory_records import MemoryRecords

CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
END = 1 << 62
Row = tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]


# ---------------------------------------------------------------------------- helpers


def rebase(blob: bytes, base_offset: int) -> bytes:
    """Move a batch to ``base_offset`` as the broker does (the field is outside the CRC)."""
    return struct.pack(">q", base_offset) + blob[8:]


def refresh_crc(batch: bytearray) -> bytes:
    struct.pack_into(">I", batch, 17, crc32c.crc32c(bytes(batch[21:])))
    return bytes(batch)


def as_log_append_time(blob: bytes, max_timestamp: int) -> bytes:
    """What a broker with message.timestamp.type=LogAppendTime makes of a batch."""
    batch = bytearray(blob)
    (attributes,) = struct.unpack_from(">h", batch, 21)
    struct.pack_into(">h", batch, 21, attributes | 0x08)
    struct.pack_into(">q", batch, 35, max_timestamp)
    return refresh_crc(batch)


def recompressed(blob: bytes, codec_id: int, compress: Any) -> bytes:
    """The same batch with its records compressed by ``compress`` (another producer's codec)."""
    records = compress(blob[61:])
    batch = bytearray(blob[:61]) + bytes(records)
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    (attributes,) = struct.unpack_from(">h", batch, 21)
    struct.pack_into(">h", batch, 21, attributes | codec_id)
    return refresh_crc(batch)


def kafka_python_batch(rows: list[Row], *, base_offset: int = 0, compression: int = 0,
                       producer_id: int = -1, transactional: bool = False) -> bytes:
    """A batch built by kafka-python (rows: offset delta, timestamp, key, value, headers)."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=compression, is_transactional=transactional,
        producer_id=producer_id, producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=0 if producer_id >= 0 else -1, batch_size=1 << 30)
    for delta, timestamp, key, value, headers in rows:
        assert builder.append(delta, timestamp, key, value, headers) is not None
    return rebase(bytes(builder.build()), base_offset)


def read_with_kafka_python(blob: bytes) -> list[Row]:
    """Every record of every batch, as kafka-python reads it, checking each batch's CRC."""
    out: list[Row] = []
    records = MemoryRecords(blob)
    while (batch := records.next_batch()) is not None:
        assert batch.validate_crc()
        out += [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch]
    return out


def rows_of(decoded: codec.DecodedRecords) -> list[Row]:
    headers = decoded.headers.to_pylist() if decoded.headers is not None else None
    return [
        (
            int(decoded.offsets[i]),
            int(decoded.timestamps_ms[i]),
            decoded.keys[i].as_py(),
            decoded.values[i].as_py(),
            [(h["key"], h["value"]) for h in headers[i]] if headers is not None else [],
        )
        for i in range(len(decoded.offsets))
    ]


def data_batch(
    base_offset: int, count: int, producer_id: int, *, transactional: bool = True
) -> bytes:
    values = pa.array([f"p{producer_id}@{base_offset + i}".encode() for i in range(count)])
    blob = encode_batch(values, timestamp_ms=1_000, producer_id=producer_id, producer_epoch=0,
                        base_sequence=0, transactional=transactional)
    return rebase(blob, base_offset)


def marker(base_offset: int, producer_id: int, *, commit: bool) -> bytes:
    return encode_control_batch(commit=commit, producer_id=producer_id, producer_epoch=0,
                                base_offset=base_offset, timestamp_ms=1_000)


# ---------------------------------------------------------------------------- reference encoder
# One record at a time, straight from the format: the NumPy encoder must write these bytes.
# It was checked to write the same bytes as the encoder before the binary_view one.

Headers = list[tuple[str | bytes, bytes | None]] | None


def zigzag_varint(value: int) -> bytes:
    raw = 2 * value if value >= 0 else -2 * value - 1
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def nullable(data: bytes | None) -> bytes:
    return zigzag_varint(-1) if data is None else zigzag_varint(len(data)) + data


def reference_record(delta: int, timestamp_delta: int, key: bytes | None, value: bytes | None,
                     headers: Headers) -> bytes:
    body = b"\x00" + zigzag_varint(timestamp_delta) + zigzag_varint(delta)
    body += nullable(key) + nullable(value) + zigzag_varint(len(headers or []))
    for name, data in headers or []:
        name_bytes = name.encode() if isinstance(name, str) else name
        body += zigzag_varint(len(name_bytes)) + name_bytes + nullable(data)
    return zigzag_varint(len(body)) + body


def reference_batch(values: list[bytes | None], keys: list[bytes | None] | None,
                    headers: list[Headers] | None, timestamps: list[int], *,
                    producer_id: int = -1, transactional: bool = False) -> bytes:
    """An uncompressed batch at base offset 0, as Kafka's ``DefaultRecordBatch`` writes it."""
    records = b"".join(
        reference_record(i, timestamps[i] - timestamps[0], None if keys is None else keys[i],
                         values[i], None if headers is None else headers[i])
        for i in range(len(values))
    )
    epoch, sequence = (0, 5) if producer_id >= 0 else (-1, -1)
    tail = struct.pack(">hiqqqhii", 0x10 if transactional else 0, len(values) - 1,
                       timestamps[0], max(timestamps), producer_id, epoch, sequence,
                       len(values)) + records
    crc = struct.pack(">I", crc32c.crc32c(tail))
    return struct.pack(">qiib", 0, 9 + len(tail), -1, 2) + crc + tail


class Case:
    """Inputs to encode as Python lists, and as the Arrow arrays handed to encode_batch."""

    def __init__(self, values: list[bytes | None], keys: list[bytes | None] | None = None,
                 headers: list[Headers] | None = None, timestamps: list[int] | int = 1_000,
                 kind: pa.DataType | None = None, producer_id: int = -1) -> None:
        self.values, self.keys, self.headers = values, keys, headers
        self.timestamps, self.producer_id = timestamps, producer_id
        self.kind = pa.large_binary() if kind is None else kind

    def encode(self, compression: str | None = None) -> bytes:
        keys = None if self.keys is None else pa.array(self.keys, self.kind)
        headers = None if self.headers is None else pa.array(self.headers, HEADERS_ARROW)
        stamps = self.timestamps
        timestamp_ms = stamps if isinstance(stamps, int) else np.array(stamps, dtype=np.int64)
        return encode_batch(pa.array(self.values, self.kind), keys, headers,
                            timestamp_ms=timestamp_ms, producer_id=self.producer_id,
                            producer_epoch=0 if self.producer_id >= 0 else -1,
                            base_sequence=5 if self.producer_id >= 0 else -1,
                            transactional=self.producer_id >= 0, compression=compression)

    def reference(self) -> bytes:
        stamps = self.timestamps
        timestamps = [stamps] * len(self.values) if isinstance(stamps, int) else stamps
        headers = None if self.headers is None else [h or [] for h in self.headers]
        return reference_batch(self.values, self.keys, headers, timestamps,
                               producer_id=self.producer_id, transactional=self.producer_id >= 0)


def random_bytes(rng: np.random.Generator, count: int, longest: int,
                 nulls: float = 0.0) -> list[bytes | None]:
    """Values of 0..longest bytes, some at varint and inline-view edges, some null."""
    edges = [0, 1, 4, 12, 13, 63, 64, 127, 128, 8191, 8192, 20_000]
    sizes = [int(rng.choice(edges)) if rng.random() < 0.2 else int(rng.integers(0, longest + 1))
             for _ in range(count)]
    return [None if rng.random() < nulls else rng.integers(0, 256, size, np.uint8).tobytes()
            for size in sizes]


def random_headers(rng: np.random.Generator, count: int) -> list[Headers]:
    """Header lists: null, empty, or up to 3 headers with empty or non-ASCII keys and null,
    empty or long values."""
    lists: list[Headers] = []
    for _ in range(count):
        draw = rng.random()
        entries = int(rng.integers(1, 4))
        lists.append(None if draw < 0.2 else [] if draw < 0.4 else [
            (["", "trace-id", "ünïcode", "k" * 20][int(rng.integers(0, 4))], value)
            for value in random_bytes(rng, entries, 40, nulls=0.3)])
    return lists


def varied_cases() -> dict[str, Case]:
    rng = np.random.default_rng(21)
    fixed = [(b"%d-" % i).ljust(100, b"x") for i in range(8_300)]  # offset deltas of 1-3 bytes
    mixed = random_bytes(rng, 400, 300, nulls=0.1)
    keys = random_bytes(rng, 400, 30, nulls=0.3)
    far = [int(t) for t in rng.integers(-(1 << 62), 1 << 62, 400)]  # 10-byte varlong deltas
    near = [1_700_000_000_000 + int(t) for t in rng.integers(-5_000, 5_000, 400)]
    last_has_headers = [*random_headers(rng, 399), [("last", b"v")]]
    return {
        "fixed-size values, one timestamp": Case(fixed, timestamps=1_700_000_000_000),
        "fixed-size values and keys, timestamps 1 ms apart per 10": Case(
            fixed, [v[:16] for v in fixed], timestamps=[i // 10 for i in range(len(fixed))]),
        "one record": Case([b"only"]),
        "one null record with a null key": Case([None], [None]),
        "mixed values with nulls": Case(mixed),
        "mixed values and keys": Case(mixed, keys),
        "null keys only": Case(mixed, [None] * len(mixed)),
        "empty keys and values": Case([b""] * 70, [b""] * 70),
        "timestamps near the first": Case(mixed, timestamps=near),
        "equal per-record timestamps": Case(mixed, timestamps=[7] * len(mixed)),
        "timestamps far apart": Case(mixed, keys, timestamps=far),
        "headers": Case(mixed, headers=random_headers(rng, len(mixed))),
        "headers, keys and timestamps": Case(mixed, keys, random_headers(rng, len(mixed)), near),
        "headers ending the last record": Case(mixed, headers=last_has_headers),
        "empty header lists": Case(mixed[:5], headers=[[], None, [], [], None]),
        "strings": Case([b"x", None, "é".encode(), b""], [b"k", b"", None, b"k" * 13],
                        kind=pa.string()),
        "binary with a producer id": Case(mixed, keys, kind=pa.binary(), producer_id=9),
    }


CASES = varied_cases()


# ---------------------------------------------------------------------------- round trips


def test_values_without_keys_round_trip_with_null_keys_and_offsets_from_zero() -> None:
    values = pa.array([b"a", b"bb", b"ccc"])
    decoded = decode_batches(encode_batch(values, timestamp_ms=1_700), 0, END)
    assert decoded.offsets.tolist() == [0, 1, 2]
    assert decoded.values.type == pa.large_binary() and decoded.keys.type == pa.large_binary()
    assert decoded.values.to_pylist() == [b"a", b"bb", b"ccc"]
    assert decoded.keys.to_pylist() == [None, None, None]
    assert decoded.timestamps_ms.tolist() == [1_700] * 3
    assert decoded.timestamp_types.dtype == np.int32 and decoded.timestamp_types.tolist() == [0] * 3
    assert decoded.headers is None
    assert decoded.next_offset == 3


@pytest.mark.parametrize("compression", [None, "lz4"])
def test_views_decode_the_same_keys_and_values_pointing_into_the_records(
        compression: str | None) -> None:
    keys = pa.array([b"k0", None, b"", b"a key longer than twelve bytes", None] * 40)
    values = pa.array([None, b"", b"v" * 13, b"\xff\xfe not utf-8", b"v4" * 50] * 40)
    batches = [bytearray(encode_batch(values.slice(i, 100), keys.slice(i, 100),
                                      timestamp_ms=5, compression=compression))
               for i in (0, 100)]
    struct.pack_into(">q", batches[1], 0, 100)  # the second batch's base offset
    blob = b"".join(batches)
    copied = decode_batches(blob, 3, 190)
    viewed = decode_batches(blob, 3, 190, views=True)
    assert viewed.keys.type == viewed.values.type == pa.binary_view()
    assert viewed.keys.cast(pa.large_binary()).equals(copied.keys)
    assert viewed.values.cast(pa.large_binary()).equals(copied.values)
    assert viewed.values.to_pylist() == values.to_pylist()[3:190]
    if compression is None:  # the long values' data buffer is the blob itself
        data = viewed.values.buffers()[2]
        assert data.size == len(blob) and data.to_pybytes() == blob


def test_views_of_a_range_without_records_are_empty_binary_views() -> None:
    blob = encode_batch(pa.array([b"a", b"b"]), timestamp_ms=5)
    empty = decode_batches(blob, 2, 10, views=True)
    assert empty.values.type == empty.keys.type == pa.binary_view()
    assert len(empty.values) == 0 and empty.next_offset == 2
    nulls = decode_batches(blob, 0, 10, views=True).keys
    assert nulls.type == pa.binary_view() and nulls.to_pylist() == [None, None]


def test_null_and_empty_keys_and_values_stay_distinct() -> None:
    keys = pa.array([b"k0", None, b"", b"k3", None])
    values = pa.array([None, b"", b"v2", None, b"v4"])
    decoded = decode_batches(encode_batch(values, keys, timestamp_ms=5), 0, END)
    assert decoded.keys.to_pylist() == keys.to_pylist()
    assert decoded.values.to_pylist() == values.to_pylist()
    assert decoded.values.null_count == 2 and decoded.keys.null_count == 2


@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary(), pa.string(), pa.large_string()])
def test_string_and_binary_inputs_encode_the_same_bytes(kind: pa.DataType) -> None:
    texts = ["é", None, "", "plain"]
    blob = encode_batch(pa.array(texts, kind), pa.array(texts, kind), timestamp_ms=9)
    expected = encode_batch(pa.array([None if t is None else t.encode() for t in texts]),
                            pa.array([None if t is None else t.encode() for t in texts]),
                            timestamp_ms=9)
    assert blob == expected
    decoded = decode_batches(blob, 0, END)
    assert decoded.values.to_pylist() == [None if t is None else t.encode() for t in texts]


def test_sliced_inputs_encode_only_their_rows() -> None:
    values = pa.array([b"skip", b"x", None, b"yz", b"tail"]).slice(1, 3)
    keys = pa.array([None, b"k1", b"k2", None, b"k4"]).slice(1, 3)
    decoded = decode_batches(encode_batch(values, keys, timestamp_ms=1), 0, END)
    assert decoded.values.to_pylist() == [b"x", None, b"yz"]
    assert decoded.keys.to_pylist() == [b"k1", b"k2", None]


def test_values_over_16_kib_with_three_byte_lengths_round_trip() -> None:
    rng = np.random.default_rng(1)
    sizes = [16_384, 20_000, 3, 70_000, 2_097_152]
    values = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    blob = encode_batch(pa.array(values), pa.array([b"k" * 17_000, None, b"", None, b"k"]),
                        timestamp_ms=0)
    decoded = decode_batches(blob, 0, END)
    assert decoded.values.to_pylist() == values
    assert decoded.keys.to_pylist() == [b"k" * 17_000, None, b"", None, b"k"]
    assert [r[3] for r in read_with_kafka_python(blob)] == values


def test_headers_round_trip_with_null_values_and_records_without_headers() -> None:
    headers = pa.array(
        [[("trace", b"abc"), ("empty", b""), ("gone", None)], [], None, [("ü-key", b"\x00" * 300)]],
        HEADERS_ARROW,
    )
    values = pa.array([b"v0", b"v1", None, b"v3"])
    decoded = decode_batches(encode_batch(values, headers=headers, timestamp_ms=1), 0, END,
                             include_headers=True)
    assert decoded.headers is not None and decoded.headers.type == HEADERS_ARROW
    assert decoded.headers.to_pylist() == [
        [{"key": "trace", "value": b"abc"}, {"key": "empty", "value": b""},
         {"key": "gone", "value": None}],
        [],
        [],
        [{"key": "ü-key", "value": b"\x00" * 300}],
    ]
    assert decoded.values.to_pylist() == values.to_pylist()


def test_headers_of_string_and_binary_list_variants_are_accepted() -> None:
    kind = pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())]))
    headers = pa.array([[("a", "1")], [("b", None), ("c", "3")]], kind)
    decoded = decode_batches(encode_batch(pa.array([b"x", b"y"]), headers=headers, timestamp_ms=1),
                             0, END, include_headers=True)
    assert decoded.headers is not None
    assert decoded.headers.to_pylist() == [
        [{"key": "a", "value": b"1"}],
        [{"key": "b", "value": None}, {"key": "c", "value": b"3"}],
    ]


def test_headers_are_skipped_but_values_still_decode_without_include_headers() -> None:
    headers = pa.array([[("h", b"1" * 50)], [], [("h", None), ("i", b"2")]], HEADERS_ARROW)
    decoded = decode_batches(encode_batch(pa.array([b"a", b"b", b"c"]), headers=headers,
                                          timestamp_ms=1), 0, END)
    assert decoded.headers is None
    assert decoded.values.to_pylist() == [b"a", b"b", b"c"]


def test_decoding_without_headers_requested_returns_empty_header_lists() -> None:
    decoded = decode_batches(encode_batch(pa.array([b"a"]), timestamp_ms=1), 0, END,
                             include_headers=True)
    assert decoded.headers is not None and decoded.headers.to_pylist() == [[]]


@pytest.mark.parametrize("compression", sorted(CODECS))
def test_each_compression_codec_round_trips_and_sets_its_attribute_bits(compression: str) -> None:
    values = pa.array([f"value {i % 7}".encode() * (i % 5) for i in range(500)])
    keys = pa.array([None if i % 3 else f"k{i}".encode() for i in range(500)])
    blob = encode_batch(values, keys, timestamp_ms=np.arange(500, dtype=np.int64),
                        compression=compression)
    (attributes,) = struct.unpack_from(">h", blob, 21)
    assert attributes & 0x07 == CODECS[compression]
    decoded = decode_batches(blob, 0, END, verify_crc=True)
    assert decoded.values.to_pylist() == values.to_pylist()
    assert decoded.keys.to_pylist() == keys.to_pylist()
    assert decoded.timestamps_ms.tolist() == list(range(500))


def test_raw_unframed_snappy_from_other_producers_decodes() -> None:
    blob = encode_batch(pa.array([b"raw snappy"] * 20), timestamp_ms=3)
    raw = recompressed(blob, 2, cramjam.snappy.compress_raw)
    assert decode_batches(raw, 0, END, verify_crc=True).values.to_pylist() == [b"raw snappy"] * 20


def test_multi_block_xerial_snappy_round_trips() -> None:
    values = pa.array([bytes([i % 251]) * 1_000 for i in range(100)])  # 100 KB: 4 blocks
    blob = encode_batch(values, timestamp_ms=3, compression="snappy")
    assert blob[61:69] == b"\x82SNAPPY\x00"
    assert decode_batches(blob, 0, END).values.to_pylist() == values.to_pylist()


def test_per_record_timestamps_round_trip_with_deltas_from_the_first() -> None:
    timestamps = np.array([1_000, 999, 5_000_000_000, -7, 1_000], dtype=np.int64)
    blob = encode_batch(pa.array([b"a"] * 5), timestamp_ms=timestamps)
    base_timestamp, max_timestamp = struct.unpack_from(">qq", blob, 27)
    assert (base_timestamp, max_timestamp) == (1_000, 5_000_000_000)
    assert decode_batches(blob, 0, END).timestamps_ms.tolist() == timestamps.tolist()
    assert [r[1] for r in read_with_kafka_python(blob)] == timestamps.tolist()


def test_log_append_time_batches_give_every_record_the_max_timestamp() -> None:
    blob = encode_batch(pa.array([b"a", b"b"]), timestamp_ms=np.array([10, 20], dtype=np.int64))
    appended = as_log_append_time(blob, 99_999)
    decoded = decode_batches(appended + rebase(blob, 2), 0, END, verify_crc=True)
    assert decoded.timestamps_ms.tolist() == [99_999, 99_999, 10, 20]
    assert decoded.timestamp_types.tolist() == [1, 1, 0, 0]


def test_fixed_size_records_across_varint_width_changes_decode_in_order() -> None:
    # offset deltas cross 64 and 8192 (1 -> 2 -> 3 byte varints): the run scan must re-sync
    values = pa.array([i.to_bytes(4, "big") * 25 for i in range(10_000)])
    blob = encode_batch(values, timestamp_ms=np.arange(10_000, dtype=np.int64) // 3)
    decoded = decode_batches(blob, 0, END)
    assert decoded.values.equals(values.cast(pa.large_binary()))
    assert decoded.offsets.tolist() == list(range(10_000))
    assert decoded.timestamps_ms.tolist() == (np.arange(10_000) // 3).tolist()


def test_variable_size_records_decode_like_kafka_python() -> None:
    rng = np.random.default_rng(3)
    values = [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes()
              for n in rng.integers(0, 300, 2_000)]
    keys = [None if i % 4 == 0 else f"key-{i}".encode() for i in range(2_000)]
    blob = encode_batch(pa.array(values), pa.array(keys), timestamp_ms=42)
    assert read_with_kafka_python(blob) == [(i, 42, keys[i], values[i], []) for i in range(2_000)]
    assert rows_of(decode_batches(blob, 0, END)) == [(i, 42, keys[i], values[i], [])
                                                     for i in range(2_000)]


def test_a_memoryview_into_a_larger_buffer_decodes() -> None:
    blob = encode_batch(pa.array([b"abc"] * 300), timestamp_ms=1)
    view = memoryview(b"junk" + blob + b"more")[4 : 4 + len(blob)]
    assert decode_batches(view, 0, END).values.to_pylist() == [b"abc"] * 300


def test_values_in_blobs_past_the_view_offset_limit_use_chunked_buffers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # binary_view offsets are int32; shrink the limits to exercise the >2 GiB path
    monkeypatch.setattr(codec, "_VIEW_LIMIT", 64)
    monkeypatch.setattr(codec, "_VIEW_CHUNK", 32)
    values = [f"value number {i:03}".encode() for i in range(40)]  # 16 bytes: not inline
    decoded = decode_batches(encode_batch(pa.array(values), timestamp_ms=1), 0, END)
    assert decoded.values.to_pylist() == values


# ---------------------------------------------------------------------------- encoder bytes


@pytest.fixture
def validated_views(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check every binary_view array the encoder builds the way Arrow would (buffer indexes,
    bounds, inline bytes): a wrong view would be read out of bounds, not raise."""
    build = codec._Section.array

    def validated(self: Any, *args: Any) -> pa.Array:
        array = build(self, *args)
        array.validate(full=True)
        return array

    monkeypatch.setattr(codec._Section, "array", validated)


@pytest.mark.usefixtures("validated_views")
@pytest.mark.parametrize("name", sorted(CASES))
def test_encoded_bytes_equal_a_record_by_record_reference_encoder(name: str) -> None:
    case = CASES[name]
    assert case.encode() == case.reference()


@pytest.mark.parametrize("compression", sorted(CODECS))
def test_compressed_records_are_the_reference_records(compression: str) -> None:
    case = CASES["headers, keys and timestamps"]
    blob, reference = case.encode(compression), case.reference()
    assert bytes(codec._decompress(CODECS[compression], memoryview(blob[61:]))) == reference[61:]
    assert blob[21:61] == struct.pack(">h", CODECS[compression]) + reference[23:61]


def test_sliced_and_chunked_inputs_encode_like_their_rows() -> None:
    case = CASES["headers, keys and timestamps"]
    values, keys = pa.array(case.values), pa.array(case.keys)
    headers = pa.array(case.headers, HEADERS_ARROW)
    stamps = np.array(case.timestamps, dtype=np.int64)
    sliced = encode_batch(values[3:300], keys[3:300], headers[3:300], timestamp_ms=stamps[3:300])
    expected = Case(case.values[3:300], case.keys[3:300], case.headers[3:300],
                    case.timestamps[3:300])
    assert sliced == expected.reference()
    chunked = [pa.chunked_array([column[:100], column[100:]]) for column in (values, keys, headers)]
    assert encode_batch(*chunked, timestamp_ms=stamps) == case.reference()


@pytest.mark.usefixtures("validated_views")
def test_columns_spanning_over_2_gib_are_viewed_in_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrow refuses to cast those to binary_view; windows are shrunk (to more than a value)
    def refuse(column: Any) -> Any:
        raise pa.ArrowCapacityError("input array too large for efficient conversion")

    monkeypatch.setattr(codec, "_cast_views", refuse)
    monkeypatch.setattr(codec, "_VIEW_LIMIT", 256)
    monkeypatch.setattr(codec, "_VIEW_CHUNK", 128)
    values = [None if i % 7 == 0 else bytes([i % 251]) * (i % 100) for i in range(600)]
    headers: list[Headers] = [[("h", b"v" * (i % 50)), ("ü", None)] if i % 3 else None
                              for i in range(600)]
    case = Case(values, [b"key %d" % i for i in range(600)], headers)
    assert case.encode() == case.reference()


def test_offset_deltas_past_the_cached_table_are_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_OFFSET_TABLE_MAX", 0)
    case = CASES["fixed-size values, one timestamp"]
    assert case.encode() == case.reference()


def test_encoding_keys_nulls_and_headers_does_not_import_pandas() -> None:
    # importing pandas costs a query's first batch 0.16 s; pa.array, pa.scalar and
    # Arrow-to-NumPy conversions of some types do it, so the inputs are built from buffers
    code = """if True:
        import sys
        import numpy as np
        import pyarrow as pa
        from unbounded._kafka.records import HEADERS_ARROW, encode_batch

        def column(data, ends, valid=None, kind=pa.large_binary()):
            bounds = pa.py_buffer(np.array([0, *ends], dtype=np.int64))
            bits = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
            return pa.Array.from_buffers(kind, len(ends), [bits, bounds, pa.py_buffer(data)])

        valid = np.array([1, 0, 1], dtype=bool)
        names = column(b"ab", [1, 2], kind=pa.large_string())
        entries = pa.StructArray.from_arrays([names, column(b"12", [1, 2])],
                                             fields=list(HEADERS_ARROW.value_type))
        ends = pa.py_buffer(np.array([0, 1, 1, 2], dtype=np.int64))
        headers = pa.LargeListArray.from_buffers(
            HEADERS_ARROW, 3, [pa.py_buffer(np.packbits(valid, bitorder="little")), ends],
            children=[entries])
        encode_batch(column(b"xz", [1, 1, 2], valid), column(b"kkk", [1, 1, 3], valid),
                     headers, timestamp_ms=np.array([1, 2, 3]), compression="lz4")
        assert "pandas" not in sys.modules
    """
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- kafka-python


def test_batches_built_by_kafka_python_decode_identically() -> None:
    first = [(0, 100, b"k0", b"v0", [("h", b"x")]), (1, 90, None, b"v1", []),
             (2, 150, b"k2", None, [("a", None), ("b", b"")])]
    second = [(0, 200, None, b"w" * 20_000, []), (1, 201, b"", b"", [])]
    blob = kafka_python_batch(first, base_offset=10) + kafka_python_batch(
        second, base_offset=13, compression=1)
    decoded = decode_batches(blob, 0, END, include_headers=True, verify_crc=True)
    assert rows_of(decoded) == read_with_kafka_python(blob)
    assert decoded.offsets.tolist() == [10, 11, 12, 13, 14]
    assert decoded.next_offset == 15


def test_batches_we_build_are_read_by_kafka_python_with_valid_crcs() -> None:
    headers = pa.array([[("h1", b"v")], [], [("h2", None)]], HEADERS_ARROW)
    for compression in (None, "gzip"):
        blob = encode_batch(pa.array([b"a", None, b"c" * 500]), pa.array([None, b"k", b""]),
                            headers, timestamp_ms=np.array([5, 7, 6], dtype=np.int64),
                            producer_id=7, producer_epoch=1, base_sequence=3,
                            transactional=True, compression=compression)
        assert read_with_kafka_python(blob) == [
            (0, 5, None, b"a", [("h1", b"v")]),
            (1, 7, b"k", None, []),
            (2, 6, b"", b"c" * 500, [("h2", None)]),
        ]
        batch = DefaultRecordBatch(blob)
        assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (7, 1, 3)
        assert batch.is_transactional and not batch.is_control_batch
        assert batch.last_offset_delta == 2 and batch.max_timestamp == 7


@pytest.mark.parametrize("spacing", [0, 1_000])
def test_tiny_records_with_multi_byte_fields_encode_correctly(spacing: int) -> None:
    # 7-byte rows with 2-byte offset deltas: the 8-byte varint stores overlap the next row
    values = pa.array([b""] * 300 + [None] * 300)
    blob = encode_batch(values, timestamp_ms=np.arange(600, dtype=np.int64) * spacing)
    assert read_with_kafka_python(blob) == [
        (i, i * spacing, None, b"" if i < 300 else None, []) for i in range(600)
    ]


def test_compression_level_is_passed_to_the_codec() -> None:
    values = pa.array([b"abcdefgh" * 50] * 200)
    fast = encode_batch(values, timestamp_ms=1, compression="zstd", compression_level=1)
    small = encode_batch(values, timestamp_ms=1, compression="zstd", compression_level=19)
    assert fast != small
    for blob in (fast, small):
        assert decode_batches(blob, 0, END).values.equals(values.cast(pa.large_binary()))


def test_control_batches_we_build_are_markers_to_kafka_python() -> None:
    for commit in (False, True):
        batch = DefaultRecordBatch(marker(40, 3, commit=commit))
        assert batch.validate_crc() and batch.is_control_batch and batch.is_transactional
        assert (batch.base_offset, batch.producer_id) == (40, 3)
        (record,) = list(batch)
        assert record.commit is commit and record.abort is not commit


# ---------------------------------------------------------------------------- offsets


def test_records_outside_from_and_until_offsets_are_dropped_inside_a_batch() -> None:
    blob = rebase(encode_batch(pa.array([str(i).encode() for i in range(10)]), timestamp_ms=1),
                  100)
    decoded = decode_batches(blob, 103, 107)
    assert decoded.offsets.tolist() == [103, 104, 105, 106]
    assert decoded.values.to_pylist() == [b"3", b"4", b"5", b"6"]
    assert decoded.next_offset == 110


def test_offset_gaps_left_by_compaction_are_kept() -> None:
    rows = [(0, 1, b"a", b"0", []), (3, 1, b"b", b"3", []), (4, 1, b"c", b"4", []),
            (9, 1, b"d", b"9", [])]
    blob = kafka_python_batch(rows, base_offset=50)
    decoded = decode_batches(blob, 52, 59)
    assert decoded.offsets.tolist() == [53, 54]
    assert decoded.next_offset == 60
    in_a_gap = decode_batches(blob, 55, 59, include_headers=True)
    assert in_a_gap.offsets.tolist() == [] and in_a_gap.values.type == pa.large_binary()
    assert in_a_gap.headers is not None and in_a_gap.next_offset == 60


def test_a_truncated_trailing_batch_is_ignored() -> None:
    first = encode_batch(pa.array([b"a", b"b"]), timestamp_ms=1)
    second = rebase(encode_batch(pa.array([b"c", b"d"]), timestamp_ms=1), 2)
    for cut in (1, 17, 61, len(second) - 1):
        decoded = decode_batches(first + second[:cut], 0, END)
        assert decoded.values.to_pylist() == [b"a", b"b"]
        assert decoded.next_offset == 2


def test_a_blob_without_a_complete_batch_leaves_next_offset_at_from_offset() -> None:
    partial = rebase(encode_batch(pa.array([b"x"]), timestamp_ms=1), 30)[:40]
    for blob in (b"", partial):
        decoded = decode_batches(blob, 30, END, include_headers=True)
        assert decoded.next_offset == 30 and len(decoded.offsets) == 0
        assert decoded.values.type == pa.large_binary() and decoded.headers is not None


def test_next_offset_counts_skipped_batches_but_never_goes_below_from_offset() -> None:
    old = encode_batch(pa.array([b"a", b"b"]), timestamp_ms=1)
    blob = old + marker(2, 5, commit=True)
    decoded = decode_batches(blob, 2, END)
    assert len(decoded.offsets) == 0 and decoded.next_offset == 3
    assert decode_batches(old, 10, END).next_offset == 10


def test_control_batches_are_skipped() -> None:
    blob = data_batch(0, 2, 5) + marker(2, 5, commit=True) + data_batch(3, 1, 5)
    decoded = decode_batches(blob, 0, END)
    assert decoded.offsets.tolist() == [0, 1, 3]
    assert decoded.next_offset == 4


def test_aborted_transactions_are_dropped_as_the_java_consumer_does() -> None:
    blob = b"".join([
        data_batch(0, 2, 1),                         # producer 1, transaction to be aborted
        data_batch(2, 2, 2),                         # producer 2, committed
        data_batch(4, 2, 1),                         # producer 1, same aborted transaction
        data_batch(6, 1, 9, transactional=False),    # idempotent, not transactional
        marker(7, 1, commit=False),
        data_batch(8, 2, 2),
        marker(10, 2, commit=True),
        data_batch(11, 2, 1),                        # producer 1's next transaction, committed
        marker(13, 1, commit=True),
    ])
    committed = decode_batches(blob, 0, END, aborted=[(1, 0)])
    assert committed.offsets.tolist() == [2, 3, 6, 8, 9, 11, 12]
    assert committed.values.to_pylist()[0] == b"p2@2"
    assert committed.next_offset == 14
    uncommitted = decode_batches(blob, 0, END)
    assert uncommitted.offsets.tolist() == [0, 1, 2, 3, 4, 5, 6, 8, 9, 11, 12]


def test_an_aborted_transaction_starting_later_only_drops_from_its_first_offset() -> None:
    blob = data_batch(0, 2, 1) + marker(2, 1, commit=True) + data_batch(3, 2, 1) + marker(
        5, 1, commit=False)
    decoded = decode_batches(blob, 0, END, aborted=[(1, 3), (8, 0)])
    assert decoded.offsets.tolist() == [0, 1]


# ---------------------------------------------------------------------------- errors


def test_verify_crc_rejects_a_damaged_batch() -> None:
    damaged = bytearray(encode_batch(pa.array([b"abc"]), timestamp_ms=1))
    damaged[-2] ^= 0xFF
    assert decode_batches(bytes(damaged), 0, END).values.to_pylist() != [b"abc"]
    with pytest.raises(MalformedRecordError, match="offset 0 is corrupt: CRC-32C"):
        decode_batches(bytes(damaged), 0, END, verify_crc=True)


def test_a_record_length_that_overruns_its_batch_is_reported_as_corrupt() -> None:
    damaged = bytearray(rebase(encode_batch(pa.array([b"abc", b"def"]), timestamp_ms=1), 77))
    damaged[61] = 0x7E  # first record claims 63 bytes
    with pytest.raises(MalformedRecordError, match="offsets 77-78 is corrupt") as caught:
        decode_batches(bytes(damaged), 0, END)
    assert caught.value.error_class == "KAFKA_CORRUPT_RECORD_BATCH"


def test_a_damaged_control_batch_is_reported_as_corrupt() -> None:
    damaged = bytearray(marker(5, 1, commit=False))
    damaged[61:] = b"\xff" * (len(damaged) - 61)  # no varint ends in the record
    with pytest.raises(MalformedRecordError, match="is corrupt"):
        decode_batches(data_batch(0, 2, 1) + bytes(damaged), 0, END, aborted=[(1, 0)])


def test_header_keys_that_are_not_utf8_are_replaced_as_java_does() -> None:
    blob = encode_batch(pa.array([b"v"]), headers=pa.array(
        [[(b"ok\xff", b"1")]], pa.list_(pa.struct([("key", pa.binary()), ("value", pa.binary())]))),
        timestamp_ms=1)
    decoded = decode_batches(blob, 0, END, include_headers=True)
    assert decoded.headers is not None
    assert decoded.headers.to_pylist() == [[{"key": "ok\ufffd", "value": b"1"}]]


def test_legacy_message_format_names_the_offset_and_the_way_out() -> None:
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    builder.append(0, timestamp=1, key=None, value=b"old")
    legacy = rebase(bytes(builder.build()), 1234)
    with pytest.raises(MalformedRecordError, match=r"offset 1234.*librdkafka") as caught:
        decode_batches(legacy, 1234, END)
    assert caught.value.error_class == "KAFKA_UNSUPPORTED_MESSAGE_FORMAT"


def test_encoding_rejects_empty_batches_bad_lengths_and_unknown_codecs() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        encode_batch(pa.array([], pa.binary()), timestamp_ms=1)
    with pytest.raises(ValueError, match="2 timestamps for 1 values"):
        encode_batch(pa.array([b"a"]), timestamp_ms=np.array([1, 2], dtype=np.int64))
    with pytest.raises(ValueError, match="keys or header lists"):
        encode_batch(pa.array([b"a"]), pa.array([b"k", b"l"]), timestamp_ms=1)
    with pytest.raises(ValueError, match="unknown compression"):
        encode_batch(pa.array([b"a"]), timestamp_ms=1, compression="brotli")
    with pytest.raises(TypeError, match="binary or string"):
        encode_batch(pa.array([1]), timestamp_ms=1)
    with pytest.raises(ValueError, match="header keys must not be null"):
        encode_batch(pa.array([b"a"]), headers=pa.array([[(None, b"v")]], HEADERS_ARROW),
                     timestamp_ms=1)


def test_random_damage_raises_malformed_record_error_or_decodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # damaged lengths must never let a view point outside the blob (that would crash Arrow)
    gather = codec._gather_binary

    def gather_inside(data: Any, buffer: Any, pos: Any, lengths: Any, *kind: Any,
                      **heads: Any) -> Any:
        assert ((pos >= 0) & (pos + np.maximum(lengths, 0) <= data.size)).all()
        return gather(data, buffer, pos, lengths, *kind, **heads)

    monkeypatch.setattr(codec, "_gather_binary", gather_inside)
    rng = np.random.default_rng(11)
    headers = pa.array([[("a", b"1")], [], [("bb", None)]] * 10, HEADERS_ARROW)
    blobs = [encode_batch(pa.array([b"x" * (i % 40) for i in range(30)]),
                          pa.array([None, b"k", b""] * 10), headers, timestamp_ms=5,
                          compression=compression) for compression in (None, "lz4")]
    for attempt in range(300):
        blob = bytearray(blobs[attempt % 2])
        for position in rng.integers(12, len(blob), 1 + attempt % 3):
            blob[position] = int(rng.integers(0, 256))
        try:
            decoded = decode_batches(bytes(blob), 0, END, include_headers=bool(attempt % 2),
                                     views=attempt % 4 < 2)
        except MalformedRecordError:
            continue
        assert len(decoded.values) == len(decoded.offsets) == len(decoded.keys)


def test_record_starts_of_singles_and_runs_come_out_in_record_order() -> None:
    rng = np.random.default_rng(1)
    for _ in range(500):
        found, expected, pos = codec._Starts(), [], int(rng.integers(0, 100))
        for _ in range(int(rng.integers(0, 12))):
            if rng.random() < 0.5:
                found.singles.append(pos)
                expected.append(pos)
                pos += int(rng.integers(1, 50))
            else:
                stride, count = int(rng.integers(1, 40)), int(rng.integers(1, 30))
                found.runs += (len(found.singles), pos, stride, count)
                expected.extend(pos + stride * k for k in range(count))
                pos += stride * count + int(rng.integers(0, 5))
        starts = found.positions()
        assert starts.dtype == np.int64 and starts.tolist() == expected


@pytest.mark.parametrize("width", [4, 8])
def test_words_loaded_anywhere_in_a_blob_are_its_bytes_then_zeros(width: int) -> None:
    rng = np.random.default_rng(3)
    for size in [1, 3, 4, 7, 8, 9, 20, 64]:
        blob = bytes(rng.integers(0, 256, size, dtype=np.uint8))
        data = codec._Bytes(memoryview(blob))
        padded = blob + bytes(width)
        expected = [int.from_bytes(padded[p:p + width], "little") for p in range(size)]
        every = np.arange(size, dtype=np.int64)
        assert data.load(every, width).tolist() == expected
        assert data.load(every[::-1].copy(), width).tolist() == expected[::-1]
        assert data.load(every[-1:], width).tolist() == expected[-1:]


@pytest.mark.parametrize("name", sorted(CASES))
def test_fields_shifted_out_of_earlier_loads_decode_as_fresh_loads_do(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = CASES[name].encode()
    shifted = decode_batches(blob, 0, END, include_headers=True, views=True)
    monkeypatch.setattr(codec._Fields, "loaded_words", lambda self, pos: None)
    loaded = decode_batches(blob, 0, END, include_headers=True, views=True)
    assert shifted.offsets.tolist() == loaded.offsets.tolist()
    assert shifted.timestamps_ms.tolist() == loaded.timestamps_ms.tolist()
    for column in ("keys", "values", "headers"):
        assert getattr(shifted, column).equals(getattr(loaded, column)), column
    assert shifted.values.to_pylist() == CASES[name].values
