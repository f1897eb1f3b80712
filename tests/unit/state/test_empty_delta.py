"""A state partition that a batch leaves alone still commits a new version as an empty
delta (as Spark's HDFS-backed store does), so the last committed batch has a version in
every partition; the empty delta's Arrow table is built once per schema."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from unbounded.state.base import OLD_SUFFIX, StateSchema, StateStoreId
from unbounded.state.files import StateFileEnvelope
from unbounded.state.memory import MemoryStateStoreProvider, StateDelta

SCHEMA = StateSchema(key=pa.schema([("w", pa.int64())]), value=pa.schema([("n", pa.int64())]))
MERGE = [(pl.col("n") + pl.col(f"n{OLD_SUFFIX}").fill_null(0)).alias("n")]


def _delta(root: Path, version: int) -> pa.Table:
    body = (root / "0" / "0" / f"{version}.delta").read_bytes()[StateFileEnvelope.SIZE:]
    return pa.ipc.open_file(pa.py_buffer(body)).read_all()


def test_an_untouched_partition_commits_an_empty_delta_and_keeps_its_rows(
        tmp_path: Path) -> None:
    provider = MemoryStateStoreProvider(StateStoreId(str(tmp_path), 0, 0), SCHEMA)
    store = provider.get_store(0)
    store.merge_fold(pl.DataFrame({"w": [0], "n": [2]}), MERGE, None)
    assert store.commit() == 1
    untouched = provider.get_store(1)
    fold = untouched.merge_fold(pl.DataFrame(schema={"w": pl.Int64, "n": pl.Int64}), MERGE,
                                pl.col("w") + 5 <= 0)
    assert (fold.merged.height, fold.evicted.height) == (0, 0)
    assert untouched.commit() == 2
    assert _delta(tmp_path, 2).num_rows == 0
    assert _delta(tmp_path, 2).schema.names == ["w", "n", "__op"]
    assert _delta(tmp_path, 1).to_pylist() == [{"w": 0, "n": 2, "__op": 0}]
    reopened = MemoryStateStoreProvider(StateStoreId(str(tmp_path), 0, 0), SCHEMA)
    assert reopened.get_store(2).scan().to_pylist() == [{"w": 0, "n": 2}]


def test_the_empty_delta_is_built_once_per_schema() -> None:
    assert StateDelta(SCHEMA).to_arrow() is StateDelta(SCHEMA).to_arrow()
    assert StateDelta(SCHEMA).to_arrow().num_rows == 0


def test_an_empty_delta_is_the_same_file_as_one_encoded_anew(tmp_path: Path) -> None:
    """Empty deltas are copies of bytes encoded once per store; byte for byte what
    encoding each anew writes (envelope, checksum, schema metadata), and they read back."""
    from unbounded.state.files import _DELTA_IPC_OPTIONS, StateFileKind, StateFileLog, _fill

    log = StateFileLog(StateStoreId(str(tmp_path), 0, 0), SCHEMA, 10)
    empty = pa.Table.from_batches([], schema=log._delta_schema)
    for version in (1, 2):
        log.write_delta(version, empty)
    anew = tmp_path / "anew"
    with anew.open("wb") as f:
        _fill(f, StateFileKind.DELTA, log._with_meta(log._delta_schema, b"delta"), [empty],
              _DELTA_IPC_OPTIONS)
    for version in (1, 2):
        assert Path(log.delta_path(version)).read_bytes() == anew.read_bytes()
        assert log.read_delta(version).num_rows == 0
    log.write_delta(3, pa.table({"w": [1], "n": [2], "__op": pa.array([0], pa.int8())}))
    assert log.read_delta(3).to_pydict() == {"w": [1], "n": [2], "__op": [0]}
