"""``encode_batch_view``: the Kafka sink's batches, uncompressed ones with their header
written in place before the records instead of prepended by a copy."""

from __future__ import annotations

import struct

import crc32c
import pyarrow as pa
import pytest

from unbounded._kafka.records import HEADERS_ARROW, decode_batches, encode_batch_view

VALUES = pa.array([f"value {i}".encode() * (i % 5) for i in range(300)], pa.large_binary())
KEYS = pa.array([None if i % 4 == 0 else f"k{i}" for i in range(300)])
HEADERS = pa.array([[("h", b"x" * (i % 3))] if i % 2 else None for i in range(300)],
                   HEADERS_ARROW)


@pytest.mark.parametrize("compression", [None, "gzip", "snappy", "lz4", "zstd"])
@pytest.mark.parametrize("columns", ["values", "keys", "headers"])
def test_a_batch_view_decodes_to_its_rows_with_a_valid_length_and_crc(
        compression: str | None, columns: str) -> None:
    keys = KEYS if columns != "values" else None
    headers = HEADERS if columns == "headers" else None
    view = encode_batch_view(VALUES, keys, headers, timestamp_ms=11, producer_id=5,
                             producer_epoch=1, base_sequence=7, transactional=True,
                             compression=compression)
    blob = bytes(view)
    assert struct.unpack_from(">i", blob, 8)[0] == len(blob) - 12
    assert struct.unpack_from(">I", blob, 17)[0] == crc32c.crc32c(blob[21:])
    assert struct.unpack_from(">qhi", blob, 43) == (5, 1, 7)  # producer id, epoch, sequence
    decoded = decode_batches(blob, 0, 300, include_headers=True, verify_crc=True)
    assert decoded.values.to_pylist() == VALUES.to_pylist()
    expected_keys = [None] * 300 if keys is None else [
        None if k is None else k.encode() for k in KEYS.to_pylist()]
    assert decoded.keys.to_pylist() == expected_keys


def test_an_uncompressed_batch_is_a_view_of_the_records_buffer_not_a_copy() -> None:
    view = encode_batch_view(VALUES, timestamp_ms=0)
    assert isinstance(view, memoryview)
    assert view.obj is not None and not isinstance(view.obj, bytes)
