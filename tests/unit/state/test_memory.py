"""File layout and caching of the in-memory provider (the default)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from unbounded.errors import CheckpointCorruptError
from unbounded.state.base import OP_COLUMN, StateSchema, StateStoreConf, StateStoreId
from unbounded.state.files import StateFileEnvelope, StateFileKind
from unbounded.state.memory import MemoryStateStoreProvider, to_arrow

SCHEMA = StateSchema(
    key=pa.schema([("k", pa.int64())]),
    value=pa.schema([("count", pa.int64()), ("name", pa.large_string())]),
)


def provider(root: Path, conf: StateStoreConf | None = None) -> MemoryStateStoreProvider:
    return MemoryStateStoreProvider(StateStoreId(str(root / "state"), 3, 1), SCHEMA, conf)


def rows(ks: list[int], count: int = 1) -> pa.Table:
    return pa.table(
        {"k": pa.array(ks, pa.int64()), "count": [count] * len(ks), "name": [f"n{k}" for k in ks]}
    )


def read_ipc(path: Path) -> pa.Table:
    """The Arrow table inside a state file (after its checksummed header)."""
    return pa.ipc.open_file(pa.py_buffer(path.read_bytes()[StateFileEnvelope.SIZE:])).read_all()


def test_files_live_under_operator_then_partition(tmp_path: Path) -> None:
    p = provider(tmp_path)
    store = p.get_store(0)
    store.upsert(rows([1]))
    store.commit()
    assert sorted(os.listdir(tmp_path / "state" / "3")) == ["1", "_metadata"]
    assert os.listdir(tmp_path / "state" / "3" / "1") == ["1.delta"]


def test_schema_file_is_versioned_json(tmp_path: Path) -> None:
    provider(tmp_path)
    doc = json.loads((tmp_path / "state" / "3" / "_metadata" / "schema").read_text())
    assert doc == {
        "version": 1,
        "keySchema": [{"name": "k", "type": "int64", "nullable": True}],
        "valueSchema": [
            {"name": "count", "type": "int64", "nullable": True},
            {"name": "name", "type": "large_string", "nullable": True},
        ],
    }


def test_schema_file_of_unknown_version_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "state" / "3" / "_metadata" / "schema"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 2, "keySchema": [], "valueSchema": []}))
    with pytest.raises(CheckpointCorruptError, match="version 2"):
        provider(tmp_path)


def test_delta_holds_upserts_and_deleted_keys_with_a_marker(tmp_path: Path) -> None:
    p = provider(tmp_path)
    store = p.get_store(0)
    store.upsert(rows([1, 2, 3]))
    store.commit()
    store = p.get_store(1)
    store.upsert(rows([2], count=5))
    store.delete(pa.table({"k": pa.array([3, 9], pa.int64())}))
    store.commit()
    delta = read_ipc(tmp_path / "state" / "3" / "1" / "2.delta")
    meta = delta.schema.metadata
    assert meta[b"unbounded.state.format"] == b"1"
    assert meta[b"unbounded.state.kind"] == b"delta"
    assert delta.column_names == ["k", "count", "name", OP_COLUMN]
    assert sorted(delta.to_pylist(), key=lambda r: r["k"]) == [
        {"k": 2, "count": 5, "name": "n2", OP_COLUMN: 0},
        {"k": 3, "count": None, "name": None, OP_COLUMN: 1},
    ]


def test_a_versions_changes_are_written_as_record_batches_in_order(
        tmp_path: Path) -> None:
    """Each change (an upsert, a delete, an upsert again of the same key) is its own
    record batch of the delta, in the order made; recovery applies the last one."""
    p = provider(tmp_path)
    store = p.get_store(0)
    store.upsert(rows([1, 2]))
    store.delete(pa.table({"k": pa.array([1], pa.int64())}))
    store.upsert(rows([1], count=7))
    store.commit()
    path = tmp_path / "state" / "3" / "1" / "1.delta"
    reader = pa.ipc.open_file(pa.py_buffer(path.read_bytes()[StateFileEnvelope.SIZE:]))
    assert reader.num_record_batches == 3
    assert [(r["k"], r[OP_COLUMN]) for r in reader.read_all().to_pylist()] == [
        (1, 0), (2, 0), (1, 1), (1, 0)]
    recovered = provider(tmp_path).get_store(1).scan().to_pylist()
    assert sorted(recovered, key=lambda r: r["k"]) == [
        {"k": 1, "count": 7, "name": "n1"}, {"k": 2, "count": 1, "name": "n2"}]


def test_snapshot_every_min_deltas_holds_the_whole_state(tmp_path: Path) -> None:
    p = provider(tmp_path)  # default: every 10 versions
    for v in range(11):
        store = p.get_store(v)
        store.upsert(rows([v]))
        store.commit()
    folder = tmp_path / "state" / "3" / "1"
    names = set(os.listdir(folder))
    assert {f"{v}.delta" for v in range(1, 12)} <= names
    assert [n for n in names if n.endswith(".snapshot")] == ["10.snapshot"]
    assert not [n for n in names if n.endswith(".tmp")]
    snapshot = read_ipc(folder / "10.snapshot")
    assert snapshot.schema.metadata[b"unbounded.state.kind"] == b"snapshot"
    assert sorted(snapshot["k"].to_pylist()) == list(range(10))


def test_next_batch_reuses_the_committed_version_from_memory(tmp_path: Path) -> None:
    p = provider(tmp_path)
    store = p.get_store(0)
    store.upsert(rows([1]))
    store.commit()
    os.unlink(tmp_path / "state" / "3" / "1" / "1.delta")
    assert p.get_store(1).scan()["k"].to_pylist() == [1]
    with pytest.raises(CheckpointCorruptError):
        provider(tmp_path).get_store(1)


def test_cache_keeps_only_the_configured_number_of_versions(tmp_path: Path) -> None:
    p = provider(tmp_path, StateStoreConf(max_versions_in_memory=1))
    for v in range(3):
        store = p.get_store(v)
        store.upsert(rows([v]))
        store.commit()
    os.unlink(tmp_path / "state" / "3" / "1" / "2.delta")
    assert sorted(p.get_store(3).scan()["k"].to_pylist()) == [0, 1, 2]
    with pytest.raises(CheckpointCorruptError):
        p.get_store(2)


def test_state_file_of_unknown_format_is_rejected(tmp_path: Path) -> None:
    p = provider(tmp_path)
    store = p.get_store(0)
    store.upsert(rows([1]))
    store.commit()
    path = tmp_path / "state" / "3" / "1" / "1.delta"
    table = read_ipc(path).replace_schema_metadata(
        {"unbounded.state.format": "99", "unbounded.state.kind": "delta"}
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    body = sink.getvalue().to_pybytes()
    path.write_bytes(StateFileEnvelope.header(StateFileKind.DELTA, body) + body)
    with pytest.raises(CheckpointCorruptError, match="format"):
        provider(tmp_path).get_store(1)


def test_torn_state_file_is_reported_as_corrupt(tmp_path: Path) -> None:
    p = provider(tmp_path)
    store = p.get_store(0)
    store.upsert(rows([1]))
    store.commit()
    path = tmp_path / "state" / "3" / "1" / "1.delta"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointCorruptError, match=r"1\.delta is corrupt: it has 20 bytes"):
        provider(tmp_path).get_store(1)


def test_to_arrow_gives_the_schema_exactly_whether_or_not_it_must_cast() -> None:
    frame = pl.DataFrame({"k": [1, 2], "name": ["a", "b"]})
    exact = pa.schema([("k", pa.int64()), ("name", pa.string_view())])
    with_metadata = exact.with_metadata({b"x": b"1"})
    other = pa.schema([("k", pa.int64()), ("name", pa.large_string())])
    for schema in (exact, with_metadata, other):
        table = to_arrow(frame, schema)
        assert table.schema.equals(schema, check_metadata=True)
        assert table.to_pylist() == [{"k": 1, "name": "a"}, {"k": 2, "name": "b"}]


def test_state_rows_whose_types_match_are_converted_without_importing_pyarrow_compute(
) -> None:
    # pyarrow.compute's import costs ~60 ms, once, inside the first snapshot's batch
    # (Table.cast imports it); the aggregations' state rows are Int64 and need no cast.
    script = """
import sys
import polars as pl
import pyarrow as pa
from unbounded.state.memory import to_arrow
schema = pa.schema([("window", pa.int64()), ("count", pa.int64())])
table = to_arrow(pl.DataFrame({"window": [1], "count": [2]}), schema)
assert table.schema.equals(schema) and "pyarrow.compute" not in sys.modules, "imported"
"""
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ})
