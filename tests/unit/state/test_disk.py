"""The RocksDB working copy of the disk provider: bulk, out-of-order reads and writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from unbounded.state.base import FOUND_COLUMN, StateSchema, StateStoreConf, StateStoreId
from unbounded.state.disk import DiskStateStoreProvider
from unbounded.state.memory import MemoryStateStoreProvider
from unbounded.state.rowcodec import RowCodec

SCHEMA = StateSchema(
    key=pa.schema([("k", pa.int64())]),
    value=pa.schema([("count", pa.int64()), ("name", pa.large_string())]),
)
N = 3 * 65_536 + 17  # more than one chunk


def provider(root: Path, cls: type = DiskStateStoreProvider) -> DiskStateStoreProvider:
    conf = StateStoreConf(local_dir=str(root), min_deltas_for_snapshot=1)
    out: DiskStateStoreProvider = cls(StateStoreId(str(root / "state"), 0, 0), SCHEMA, conf)
    return out


def rows(ks: np.ndarray, count: int) -> pa.Table:
    return pa.table({"k": ks, "count": np.full(len(ks), count), "name": [f"n{k}" for k in ks]})


def test_lookup_of_shuffled_keys_returns_rows_in_request_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    store = provider(tmp_path).get_store(0)
    store.upsert(rows(rng.permutation(N), 1))
    asked = rng.integers(-5, N + 5, 50_000)
    got = store.lookup(pa.table({"k": asked})).to_pydict()
    assert got["k"] == asked.tolist()
    assert got[FOUND_COLUMN] == [0 <= k < N for k in asked]
    assert got["name"] == [f"n{k}" if 0 <= k < N else None for k in asked]


def test_row_count_stays_exact_across_overwrites_and_deletes(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    store = provider(tmp_path).get_store(0)
    store.upsert(rows(rng.permutation(N), 1))
    store.upsert(rows(rng.integers(0, 2 * N, N), 2))  # about half new keys, with repeats
    expected = len(set(range(N)) | set(store.scan()["k"].to_pylist()))
    assert store.metrics.num_rows_total == expected
    doomed = rng.integers(-10, 2 * N, 20_000)
    store.delete(pa.table({"k": doomed}))
    assert store.metrics.num_rows_total == store.scan().num_rows


def test_restores_a_shuffled_snapshot_written_by_the_memory_provider(tmp_path: Path) -> None:
    keys = np.random.default_rng(9).permutation(N)
    writer = provider(tmp_path, MemoryStateStoreProvider).get_store(0)
    writer.upsert(rows(keys, 3))
    writer.commit()
    restored = provider(tmp_path).get_store(1)
    assert restored.metrics.num_rows_total == N
    got = restored.lookup(pa.table({"k": keys[:1000]}))
    assert got["count"].to_pylist() == [3] * 1000


def test_working_copy_is_written_without_a_write_ahead_log(tmp_path: Path) -> None:
    disk = provider(tmp_path)
    disk.get_store(0).upsert(rows(np.arange(10), 1))
    wal = [p for p in (Path(disk.db.path())).iterdir() if p.suffix == ".log" and p.stat().st_size]
    assert wal == []


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (pa.array([3, None, -1, 0], pa.int32()), [0, None, 3, -1]),
        (pa.array([1.5, -0.0, None, None], pa.float64()), [None, 0.0, 1.5, None]),
        (pa.array(["", None, "ab", "é"], pa.string()), ["é", None, "", "ab"]),
        (pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": None}, {"a": 2, "b": ""}]),
         [{"a": 2, "b": ""}, None, {"a": 1, "b": "x"}, {"a": None, "b": None}]),
        (pa.array([True, None, False, True]), [True, None, True, False]),
    ],
)
def test_codec_round_trips_every_encodable_type(column: pa.Array, expected: list[object]) -> None:
    codec = RowCodec(pa.schema([("c", column.type)]))
    shuffled = codec.encode(pa.table({"c": column})).take(np.array([3, 1, 0, 2]))
    (decoded,) = codec.decode(shuffled.to_list())
    assert decoded.to_pylist() == expected


def test_fixed_width_rows_encode_without_per_row_offsets() -> None:
    codec = RowCodec(pa.schema([("k", pa.int64()), ("t", pa.timestamp("us"))]))
    encoded = codec.encode(pa.table({"k": [1, 2], "t": pa.array([0, 1], pa.timestamp("us"))}))
    assert codec.width == encoded.width == 18
