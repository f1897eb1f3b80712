"""Conformance suite for ``StateStoreProvider``/``StateStore``, run against every provider."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from unbounded.errors import AnalysisException, CheckpointCorruptError
from unbounded.state.base import (
    FOUND_COLUMN,
    StateSchema,
    StateStore,
    StateStoreConf,
    StateStoreId,
    StateStoreProvider,
    StateStoreProviderFactory,
)
from unbounded.state.disk import DiskStateStoreProvider
from unbounded.state.memory import MemoryStateStoreProvider
from unbounded.state.registry import create_provider, provider_class

PROVIDERS: dict[str, StateStoreProviderFactory] = {
    "memory": MemoryStateStoreProvider,
    "disk": DiskStateStoreProvider,
}

COUNTS = StateSchema(
    key=pa.schema([("k", pa.int64())]),
    value=pa.schema([("count", pa.int64()), ("sum", pa.float64())]),
)

Factory = Callable[..., StateStoreProvider]


@pytest.fixture(params=sorted(PROVIDERS))
def provider_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(tmp_path: Any, provider_name: str) -> Iterator[Factory]:
    opened: list[StateStoreProvider] = []

    def factory(
        schema: StateSchema = COUNTS,
        name: str | None = None,
        partition: int = 0,
        **conf: Any,
    ) -> StateStoreProvider:
        cls = PROVIDERS[name or provider_name]
        store_id = StateStoreId(str(tmp_path / "state"), 0, partition)
        provider = cls(store_id, schema, StateStoreConf(local_dir=str(tmp_path), **conf))
        opened.append(provider)
        return provider

    yield factory
    for provider in opened:
        provider.close()


def counts(rows: dict[int, tuple[int, float]]) -> pa.Table:
    keys = sorted(rows)
    return pa.table(
        {
            "k": pa.array(keys, pa.int64()),
            "count": pa.array([rows[k][0] for k in keys], pa.int64()),
            "sum": pa.array([rows[k][1] for k in keys], pa.float64()),
        }
    )


def keys(*ks: int | None) -> pa.Table:
    return pa.table({"k": pa.array(ks, pa.int64())})


def contents(table: pa.Table) -> dict[Any, tuple[Any, ...]]:
    names = table.column_names
    out = {}
    for row in table.to_pylist():
        out[row[names[0]]] = tuple(row[n] for n in names[1:])
    assert len(out) == table.num_rows, "a key appears twice"
    return out


def commit_rows(
    provider: StateStoreProvider, version: int, rows: dict[int, tuple[int, float]]
) -> int:
    store = provider.get_store(version)
    store.upsert(counts(rows))
    return store.commit()


def test_providers_satisfy_the_protocols(make: Factory) -> None:
    provider = make()
    assert isinstance(provider, StateStoreProvider)
    assert isinstance(provider.get_store(0), StateStore)


def test_version_zero_is_empty_and_commit_returns_the_next_version(make: Factory) -> None:
    provider = make()
    store = provider.get_store(0)
    assert store.version == 0
    assert store.scan().num_rows == 0
    assert store.scan().schema == COUNTS.row_schema
    store.upsert(counts({1: (1, 1.0)}))
    assert store.commit() == 1
    assert provider.latest_version() == 1
    assert contents(provider.get_store(1).scan()) == {1: (1, 1.0)}


def test_lookup_aligns_values_to_keys_with_found_flag(make: Factory) -> None:
    provider = make()
    commit_rows(provider, 0, {1: (10, 1.5), 2: (20, 2.5)})
    result = provider.get_store(1).lookup(keys(2, 3, 1, 2, None))
    assert result.column_names == ["k", "count", "sum", FOUND_COLUMN]
    assert result.to_pydict() == {
        "k": [2, 3, 1, 2, None],
        "count": [20, None, 10, 20, None],
        "sum": [2.5, None, 1.5, 2.5, None],
        FOUND_COLUMN: [True, False, True, True, False],
    }


def test_lookup_casts_compatible_key_types(make: Factory) -> None:
    provider = make()
    commit_rows(provider, 0, {5: (1, 1.0)})
    result = provider.get_store(1).lookup(pa.table({"k": pa.array([5], pa.int32())}))
    assert result[FOUND_COLUMN].to_pylist() == [True]
    assert result.schema.field("k").type == pa.int64()


def test_upsert_keeps_the_last_row_per_key_and_reads_see_own_writes(make: Factory) -> None:
    provider = make()
    store = provider.get_store(0)
    store.upsert(pa.table({"k": [1, 2, 1], "count": [1, 2, 3], "sum": [0.1, 0.2, 0.3]}))
    assert contents(store.scan()) == {1: (3, 0.3), 2: (2, 0.2)}
    store.upsert(counts({2: (9, 9.0)}))
    assert contents(store.lookup(keys(2))) == {2: (9, 9.0, True)}
    store.commit()
    assert contents(provider.get_store(1).scan()) == {1: (3, 0.3), 2: (9, 9.0)}


def test_upsert_of_new_keys_adds_them_beside_the_stored_rows(make: Factory) -> None:
    provider = make()
    commit_rows(provider, 0, {1: (1, 1.0)})
    store = provider.get_store(1)
    store.upsert(counts({2: (2, 2.0), 3: (3, 3.0)}), distinct=True, new_keys=True)
    assert contents(store.scan()) == {1: (1, 1.0), 2: (2, 2.0), 3: (3, 3.0)}
    store.commit()
    assert contents(provider.get_store(2).scan()) == {1: (1, 1.0), 2: (2, 2.0), 3: (3, 3.0)}


def test_null_key_is_a_key_like_any_other(make: Factory) -> None:
    provider = make()
    store = provider.get_store(0)
    k = pa.array([None, 1], pa.int64())
    store.upsert(pa.table({"k": k, "count": [7, 1], "sum": [7.0, 1.0]}))
    store.commit()
    store = provider.get_store(1)
    assert store.lookup(keys(None))["count"].to_pylist() == [7]
    store.delete(keys(None))
    assert contents(store.scan()) == {1: (1, 1.0)}


def test_abort_discards_changes_and_keeps_committed_versions(make: Factory) -> None:
    provider = make()
    commit_rows(provider, 0, {1: (1, 1.0)})
    store = provider.get_store(1)
    store.upsert(counts({2: (2, 2.0)}))
    store.delete(keys(1))
    store.abort()
    store.abort()  # idempotent
    assert provider.latest_version() == 1
    assert contents(provider.get_store(1).scan()) == {1: (1, 1.0)}
    with pytest.raises(CheckpointCorruptError):
        provider.get_store(2)


def test_store_is_closed_after_commit(make: Factory) -> None:
    provider = make()
    store = provider.get_store(0)
    store.commit()
    with pytest.raises(RuntimeError):
        store.upsert(counts({1: (1, 1.0)}))
    with pytest.raises(RuntimeError):
        store.commit()


def test_older_version_reopens_as_it_was_committed(make: Factory) -> None:
    provider = make()
    commit_rows(provider, 0, {1: (1, 1.0)})
    commit_rows(provider, 1, {1: (2, 2.0), 2: (1, 1.0)})
    commit_rows(provider, 2, {3: (1, 1.0)})
    assert contents(provider.get_store(1).scan()) == {1: (1, 1.0)}
    assert contents(provider.get_store(3).scan()) == {1: (2, 2.0), 2: (1, 1.0), 3: (1, 1.0)}


def test_rerun_of_a_batch_overwrites_its_version(make: Factory) -> None:
    provider = make()
    commit_rows(provider, 0, {1: (1, 1.0)})
    commit_rows(provider, 1, {2: (1, 1.0)})
    commit_rows(provider, 1, {3: (1, 1.0)})  # the replayed batch 2 wins
    assert contents(make().get_store(2).scan()) == {1: (1, 1.0), 3: (1, 1.0)}


def test_delete_removes_only_present_keys(make: Factory) -> None:
    provider = make()
    commit_rows(provider, 0, {1: (1, 1.0), 2: (2, 2.0), 3: (3, 3.0)})
    store = provider.get_store(1)
    store.delete(keys(2, 4, 2))
    assert store.metrics.num_rows_removed == 1
    assert store.commit() == 2
    assert contents(make().get_store(2).scan()) == {1: (1, 1.0), 3: (3, 3.0)}


def test_delete_then_upsert_in_one_batch_keeps_the_upsert(make: Factory) -> None:
    provider = make()
    commit_rows(provider, 0, {1: (1, 1.0)})
    store = provider.get_store(1)
    store.delete(keys(1))
    store.upsert(counts({1: (5, 5.0)}))
    store.upsert(counts({2: (2, 2.0)}))
    store.delete(keys(2))
    store.commit()
    assert contents(make().get_store(2).scan()) == {1: (5, 5.0)}


WINDOWS = StateSchema(
    key=pa.schema(
        [
            ("window", pa.struct([("start", pa.int64()), ("end", pa.int64())])),
            ("user", pa.large_string()),
        ]
    ),
    value=pa.schema([("window_end", pa.int64()), ("n", pa.int64())]),
)


def windows(rows: list[tuple[int, str | None, int | None]]) -> pa.Table:
    return pa.table(
        {
            "window": [{"start": s, "end": s + 10} for s, _, _ in rows],
            "user": pa.array([u for _, u, _ in rows], pa.large_string()),
            "window_end": [None if e is None else e for _, _, e in rows],
            "n": [1] * len(rows),
        },
        schema=WINDOWS.row_schema,
    )


def test_evict_removes_and_returns_rows_matching_the_predicate(make: Factory) -> None:
    provider = make(WINDOWS)
    store = provider.get_store(0)
    store.upsert(windows([(0, "a", 10), (10, "a", 20), (20, None, 30), (30, "b", None)]))
    store.commit()
    store = provider.get_store(1)
    evicted = store.evict(pl.col("window_end") <= 20)
    assert evicted.schema == WINDOWS.row_schema
    assert sorted(evicted["window_end"].to_pylist()) == [10, 20]
    assert store.metrics.num_rows_removed == 2
    assert store.evict(pl.col("window_end") <= 20).num_rows == 0
    store.commit()
    left = make(WINDOWS).get_store(2).scan()
    assert contents(left.select(["user", "window_end"])) == {"b": (None,), None: (30,)}


def test_struct_and_string_keys_are_looked_up_exactly(make: Factory) -> None:
    provider = make(WINDOWS)
    store = provider.get_store(0)
    store.upsert(windows([(0, "a", 10), (0, "ab", 11), (10, "a", 20), (0, None, 12)]))
    window = [{"start": 0, "end": 10}, {"start": 0, "end": 10}, {"start": 5, "end": 15}]
    user = pa.array([None, "ab", "a"], pa.large_string())
    found = store.lookup(pa.table({"window": window, "user": user}))
    assert found["window_end"].to_pylist() == [12, 11, None]
    assert found[FOUND_COLUMN].to_pylist() == [True, True, False]


def test_bad_eviction_predicate_is_an_analysis_error(make: Factory) -> None:
    store = make().get_store(0)
    store.upsert(counts({1: (1, 1.0)}))
    with pytest.raises(AnalysisException):
        store.evict(pl.col("no_such_column") > 1)
    with pytest.raises(AnalysisException):
        store.evict(pl.col("count") + 1)


def test_state_with_no_value_columns(make: Factory) -> None:
    dedup = StateSchema(pa.schema([("id", pa.large_string())]), pa.schema([]))
    provider = make(dedup)
    store = provider.get_store(0)
    store.upsert(pa.table({"id": pa.array(["a", "b", "a"], pa.large_string())}))
    store.commit()
    store = make(dedup).get_store(1)
    assert store.lookup(pa.table({"id": ["b", "c"]}))[FOUND_COLUMN].to_pylist() == [True, False]
    assert sorted(store.scan()["id"].to_pylist()) == ["a", "b"]


def test_fresh_provider_recovers_every_version_across_snapshot_boundaries(
    make: Factory,
) -> None:
    provider = make(min_deltas_for_snapshot=3)
    rng = random.Random(7)
    state: dict[int, tuple[int, float]] = {}
    expected: dict[int, dict[int, tuple[int, float]]] = {0: {}}
    for version in range(8):
        store = provider.get_store(version)
        changed = {k: (rng.randint(0, 99), rng.random()) for k in rng.sample(range(30), 8)}
        store.upsert(counts(changed))
        gone = rng.sample(sorted(state), min(3, len(state)))
        store.delete(keys(*gone))
        state = {k: v for k, v in {**state, **changed}.items() if k not in gone}
        assert store.commit() == version + 1
        expected[version + 1] = dict(state)
    fresh = make(min_deltas_for_snapshot=3)
    assert fresh.latest_version() == 8
    for version, rows in expected.items():
        assert contents(fresh.get_store(version).scan()) == rows, version
    # Versions after a snapshot recover from it alone, without the deltas before it.
    for v in (1, 2, 3):
        os.unlink(os.path.join(fresh.store_id.path, f"{v}.delta"))
    assert contents(make(min_deltas_for_snapshot=3).get_store(5).scan()) == expected[5]
    with pytest.raises(CheckpointCorruptError):
        make(min_deltas_for_snapshot=3).get_store(2)


def test_next_batch_continues_from_a_recovered_version(make: Factory) -> None:
    provider = make(min_deltas_for_snapshot=2)
    for v in range(5):
        commit_rows(provider, v, {v: (v, float(v))})
    fresh = make(min_deltas_for_snapshot=2)
    store = fresh.get_store(5)
    store.upsert(counts({99: (1, 1.0)}))
    assert store.metrics.num_rows_total == 6
    assert store.commit() == 6
    assert set(contents(make().get_store(6).scan())) == {0, 1, 2, 3, 4, 99}


def test_missing_delta_is_reported_as_corrupt_checkpoint(make: Factory) -> None:
    provider = make()
    for v in range(3):
        commit_rows(provider, v, {v: (v, 0.0)})
    os.unlink(os.path.join(provider.store_id.path, "2.delta"))
    with pytest.raises(CheckpointCorruptError, match="missing"):
        make().get_store(3)


def test_maintenance_deletes_old_files_and_keeps_recent_versions_recoverable(
    make: Factory,
) -> None:
    provider = make(min_deltas_for_snapshot=2)
    for v in range(10):
        commit_rows(provider, v, {v: (v, float(v))})
    folder = provider.store_id.path
    before = set(os.listdir(folder))
    provider.maintenance(3)  # keep versions 8, 9, 10: from snapshot 8 on
    after = set(os.listdir(folder))
    assert after < before
    assert "1.delta" not in after and "6.snapshot" not in after and "8.delta" not in after
    assert {"8.snapshot", "9.delta", "10.delta", "10.snapshot"} <= after
    fresh = make(min_deltas_for_snapshot=2)
    for v in (8, 9, 10):
        assert set(contents(fresh.get_store(v).scan())) == set(range(v))
    with pytest.raises(CheckpointCorruptError):
        fresh.get_store(5)


def test_maintenance_without_a_snapshot_keeps_everything(make: Factory) -> None:
    provider = make()  # snapshot every 10
    for v in range(5):
        commit_rows(provider, v, {v: (v, 0.0)})
    provider.maintenance(1)
    assert set(contents(make().get_store(5).scan())) == set(range(5))
    assert contents(make().get_store(1).scan()) == {0: (0, 0.0)}


def test_changed_state_schema_is_rejected_with_a_new_checkpoint_hint(make: Factory) -> None:
    commit_rows(make(), 0, {1: (1, 1.0)})
    changed = StateSchema(
        COUNTS.key, pa.schema([("count", pa.int32()), ("sum", pa.float64()), ("max", pa.int64())])
    )
    with pytest.raises(AnalysisException) as info:
        make(changed, partition=1)
    message = str(info.value)
    assert "state schema" in message and "new checkpoint location" in message
    assert "'count' changed type from int64 to int32" in message
    assert "'max'" in message
    renamed_key = StateSchema(pa.schema([("key", pa.int64())]), COUNTS.value)
    with pytest.raises(AnalysisException, match="'k' was removed"):
        make(renamed_key)


def test_metrics_report_rows_and_memory(make: Factory) -> None:
    provider = make()
    commit_rows(provider, 0, {1: (1, 1.0), 2: (2, 2.0), 3: (3, 3.0)})
    store = provider.get_store(1)
    store.upsert(counts({3: (4, 4.0), 4: (4, 4.0)}))
    store.delete(keys(1))
    store.commit()
    metrics = store.metrics.to_dict()
    assert metrics["numRowsTotal"] == 3
    assert metrics["numRowsUpdated"] == 2
    assert metrics["numRowsRemoved"] == 1
    assert metrics["memoryUsedBytes"] > 0
    assert metrics["commitTimeMs"] >= 0
    assert set(metrics) == {
        "numRowsTotal", "numRowsUpdated", "numRowsRemoved", "memoryUsedBytes", "commitTimeMs"
    }


def test_checkpoint_written_by_one_provider_reads_with_the_other(make: Factory) -> None:
    for v in range(12):  # alternate providers batch by batch, across a snapshot
        commit_rows(make(name="disk" if v % 2 else "memory"), v, {v: (v, float(v))})
    for name in PROVIDERS:
        assert set(contents(make(name=name).get_store(12).scan())) == set(range(12))


def test_registry_maps_spark_provider_names() -> None:
    spark = "org.apache.spark.sql.execution.streaming.state."
    assert provider_class(f"{spark}HDFSBackedStateStoreProvider") is MemoryStateStoreProvider
    assert provider_class(f"{spark}RocksDBStateStoreProvider") is DiskStateStoreProvider
    with pytest.raises(AnalysisException, match="Unknown state store provider"):
        provider_class("com.example.Nope")


def test_create_provider_uses_the_configured_class(tmp_path: Any) -> None:
    conf = StateStoreConf.from_spark_conf(
        {
            "spark.sql.streaming.stateStore.providerClass":
                "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
            "spark.sql.streaming.stateStore.minDeltasForSnapshot": "4",
        }
    )
    provider = create_provider(StateStoreId(str(tmp_path), 1, 0), COUNTS, conf)
    try:
        assert isinstance(provider, DiskStateStoreProvider)
    finally:
        provider.close()
    assert isinstance(create_provider(StateStoreId(str(tmp_path), 2, 0), COUNTS),
                      MemoryStateStoreProvider)
