"""The wire producer's choices that need no broker: Java's murmur2 partitioning, the
placement of keyed, keyless and explicitly partitioned rows, and batch sizes. Writes
against a broker are in ``tests/streaming/test_kafka_wire_sink.py``."""

from __future__ import annotations

import random
import subprocess
import sys
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from unbounded._kafka import transactions as tx
from unbounded._kafka.records import HEADERS_ARROW, encode_batch
from unbounded._kafka.transactions import assign_partitions, key_partitions, murmur2, row_bytes

with warnings.catch_warnings():  # kafka-python 3.0 reads its schemas with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner import murmur2 as kafka_python_murmur2

# org.apache.kafka.common.utils.UtilsTest#testMurmur2
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_matches_the_java_clients_known_hashes() -> None:
    hashes = murmur2(pa.array(list(JAVA_MURMUR2), pa.binary()))
    assert hashes.astype(np.int32).tolist() == list(JAVA_MURMUR2.values())


@pytest.mark.parametrize("arrow_type", [pa.binary(), pa.large_binary(), pa.string(),
                                        pa.large_string()])
def test_murmur2_matches_kafka_python_for_every_length_and_type(
        arrow_type: pa.DataType) -> None:
    rng = random.Random(7)
    keys = [bytes(rng.randrange(256) for _ in range(n % 71)) for n in range(600)]
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        keys = [k.hex()[:len(k)].encode() for k in keys]
        array = pa.array([k.decode() for k in keys], arrow_type)
    else:
        array = pa.array(keys, arrow_type)
    expected = [kafka_python_murmur2(k) for k in keys]
    assert murmur2(array).tolist() == expected
    assert murmur2(array.slice(123, 200)).tolist() == expected[123:323]


def test_key_partitions_are_the_positive_hash_modulo_the_partition_count() -> None:
    keys = [f"user-{i}".encode() for i in range(1000)]
    got = key_partitions(pa.array(keys), 7).tolist()
    assert got == [(kafka_python_murmur2(k) & 0x7FFFFFFF) % 7 for k in keys]


def test_an_explicit_partition_wins_then_the_key_then_sticky_runs() -> None:
    table = pa.table({
        "value": pa.array([b"v"] * 6),
        "key": pa.array([b"k1", b"k1", None, None, b"k2", None]),
        "partition": pa.array([3, None, 0, None, None, None], pa.int32()),
    })
    got = assign_partitions(table, row_bytes(table), 4, 2, 1_000_000).tolist()
    hashed = [(kafka_python_murmur2(k) & 0x7FFFFFFF) % 4 for k in (b"k1", b"k2")]
    assert got == [3, hashed[0], 0, 2, hashed[1], 2]  # keyless rows: one run from 2


def test_keyless_rows_stay_on_one_partition_until_they_fill_batches() -> None:
    small = np.full(100, 50, np.int64)
    assert set(tx._sticky_partitions(small, 3, 1, 1_000_000).tolist()) == {1}
    large = np.full(3000, 1000, np.int64)  # 3 MB: one contiguous run per partition
    spread = tx._sticky_partitions(large, 3, 1, 1_000_000)
    assert spread.tolist() == [1] * 1000 + [2] * 1000 + [0] * 1000
    table = pa.table({"value": pa.array([b"x"] * 3000)})
    slices = tx._sticky_slices(table, large, 3, 1, 1_000_000)
    assert {p: t.num_rows for p, (t, _) in slices.items()} == {1: 1000, 2: 1000, 0: 1000}


def test_rows_grouped_by_partition_keep_their_order() -> None:
    table = pa.table({"value": pa.array([f"r{i}" for i in range(6)])})
    sizes = np.arange(6, dtype=np.int64)
    groups = tx._split_by_partition(table, sizes, np.array([1, 0, 1, 0, 2, 1]))
    assert {p: t.column("value").to_pylist() for p, (t, _) in groups.items()} == {
        0: ["r1", "r3"], 1: ["r0", "r2", "r5"], 2: ["r4"]}
    assert groups[1][1].tolist() == [0, 2, 5]


def test_rows_of_several_topics_are_split_and_a_null_topic_is_refused() -> None:
    table = pa.table({"value": ["a", "b", "c"], "topic": ["t1", "t2", "t1"]})
    split = tx._split_by_topic(table, None)
    assert {t: rows.column("value").to_pylist() for t, rows in split.items()} == {
        "t1": ["a", "c"], "t2": ["b"]}
    assert list(tx._split_by_topic(table, "forced")) == ["forced"]
    with pytest.raises(Exception, match="null 'topic'"):
        tx._split_by_topic(pa.table({"value": ["a"], "topic": pa.array([None], pa.string())}),
                           None)


def test_row_bytes_bound_the_encoded_size_with_keys_and_headers() -> None:
    headers = pa.array([[{"key": "h", "value": b"12345"}], None, []], HEADERS_ARROW)
    table = pa.table({"value": pa.array([b"x" * 10, None, b"y"]),
                      "key": pa.array([b"kk", b"k", None]), "headers": headers})
    sizes = row_bytes(table)
    for i in range(3):
        row = table.slice(i, 1)
        encoded = encode_batch(row.column("value").chunk(0), row.column("key").chunk(0),
                               row.column("headers").chunk(0), timestamp_ms=0)
        assert len(encoded) - 61 <= sizes[i]  # 61: the batch header
    assert sizes[0] - sizes[2] >= 11 + 6  # value, key and header bytes counted


@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary(), pa.string(), pa.large_string()])
def test_value_lengths_are_arrows_binary_lengths_with_nulls_as_zero(kind: pa.DataType) -> None:
    texts = ["ab", None, "", "xyz" * 10, None, "q"]
    values = pa.array([t if t is None or kind in (pa.string(), pa.large_string())
                       else t.encode() for t in texts], kind)
    column = pa.chunked_array([values.slice(1, 4), values.slice(0, 0), values], kind)
    wanted = pc.fill_null(pc.binary_length(column), 0).to_numpy()
    assert tx._lengths(column).tolist() == wanted.tolist()
    assert tx._lengths(pa.chunked_array([], kind)).tolist() == []


def test_row_bytes_import_no_pandas() -> None:
    # pyarrow's fill_null with a Python 0 imported pandas: ~0.5 s of a fresh process's
    # first Kafka batch
    code = ("import sys, polars as pl\n"
            "from unbounded._kafka.transactions import row_bytes\n"
            "t = pl.DataFrame({'value': ['a', None, 'bcd'], 'key': [b'k', None, b'']}).to_arrow()\n"
            "assert 'pandas' not in sys.modules\n"
            "print(row_bytes(t).tolist(), 'pandas' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == ["[26,", "24,", "27]", "False"]


def test_batches_are_cut_at_the_byte_budget_and_a_big_row_stands_alone() -> None:
    sizes = np.array([400, 400, 400, 5000, 100, 100], np.int64)
    assert tx._batch_bounds(sizes, 1000) == [0, 2, 3, 4, 6]
    assert tx._batch_bounds(np.zeros(0, np.int64), 1000) == [0]


def test_sequence_numbers_wrap_to_zero_after_int32_max() -> None:
    assert tx._add_sequence(5, 10) == 15
    assert tx._add_sequence(2**31 - 1, 1) == 0
    assert tx._add_sequence(2**31 - 3, 10) == 7


def test_error_codes_are_judged_fenced_then_fatal_then_retriable() -> None:
    with pytest.raises(Exception, match="fenced") as fenced:
        tx._check_codes([51, 90], "EndTxn", "tid")
    assert type(fenced.value).__name__ == "ConcurrentQueryError"
    with pytest.raises(Exception, match="refused") as fatal:
        tx._check_codes([51, 10], "Produce", "tid")
    assert fatal.value.error_class == "KAFKA_TRANSACTION_FAILED"  # type: ignore[attr-defined]
    with pytest.raises(tx._Retry) as moved:
        tx._check_codes([16], "AddOffsetsToTxn", "tid")
    assert moved.value.refresh
    tx._check_codes([0, 0], "EndTxn", "tid")
