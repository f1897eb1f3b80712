"""State partitions held by resource hosts: each partition's fold sees its keys only,
a host that lost its resources reopens them from the checkpoint, and a run fenced by a
newer one commits nothing. The hosts here run in-process (the contract's semantics);
tests/streaming/test_ray.py runs the same code in Ray actors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from unbounded.checkpoint.epoch import EpochFence
from unbounded.errors import CheckpointConflictError
from unbounded.executors.base import HostCall, SupportsResourceHosts
from unbounded.runtime.stateful.base import OperatorContext, partition_ids
from unbounded.runtime.stateful.hosted import HostedState, StatePartitions, fenced
from unbounded.state.base import (
    FOUND_COLUMN,
    OLD_SUFFIX,
    StateSchema,
    StateStore,
    StateStoreConf,
    StateStoreId,
    SupportsCombineFold,
    SupportsMergeFold,
)
from unbounded.state.memory import MemoryStateStoreProvider

SCHEMA = StateSchema(pa.schema([("k", pa.int64())]), pa.schema([("n", pa.int64())]))


class _InProcessHosts:
    """ResourceHosts whose slots are dicts here; ``lose`` drops them as a dead host."""

    def __init__(self) -> None:
        self.resources: dict[str, Any] = {}
        self.closed = False

    def map(self, calls: Sequence[HostCall[Any, Any]]) -> list[Any]:
        out = []
        for call in calls:
            if call.key not in self.resources:
                self.resources[call.key] = call.open()
            out.append(call.fn(self.resources[call.key]))
        return out

    def prepare(self, calls: Sequence[HostCall[Any, Any]]) -> None:
        self.map(calls)

    def lose(self) -> None:
        self.resources.clear()

    def close(self) -> None:
        self.closed = True


class _Executor:
    def __init__(self) -> None:
        self.hosts = _InProcessHosts()

    def resource_hosts(self, slots: int) -> _InProcessHosts:
        return self.hosts


def _add_counts(store: StateStore, rows: pl.DataFrame) -> list[tuple[int, int]]:
    """Count per key, added to the stored count; returns the new (key, count) rows."""
    old = pl.from_arrow(store.lookup(rows.select("k").to_arrow()))
    assert isinstance(old, pl.DataFrame)
    new = rows.with_columns(pl.col("n") + old["n"].fill_null(0))
    store.upsert(new.to_arrow(), distinct=True)
    store.commit()
    return sorted(new.iter_rows())


def _hosted(tmp_path, executor) -> HostedState:
    ctx = OperatorContext(str(tmp_path / "state"), 2, StateStoreConf(), "update", executor)
    assert isinstance(executor, SupportsResourceHosts)
    hosted = HostedState.open(ctx, SCHEMA)
    assert hosted is not None
    return hosted


def test_each_partitions_fold_sees_the_keys_hashed_to_it_and_results_come_in_order(tmp_path):
    hosted = _hosted(tmp_path, _Executor())
    rows = pl.DataFrame({"k": list(range(10)), "n": [1] * 10})
    parts = partition_ids(rows, ["k"], 2).to_list()
    results = hosted.fold(rows, ["k"], _add_counts, 0)
    assert results == [[(k, 1) for k in range(10) if parts[k] == p] for p in (0, 1)]


def test_a_host_that_lost_its_stores_reopens_them_at_the_committed_version(tmp_path):
    executor = _Executor()
    hosted = _hosted(tmp_path, executor)
    rows = pl.DataFrame({"k": [1, 2, 3], "n": [1, 1, 1]})
    hosted.fold(rows, ["k"], _add_counts, 0)
    hosted.fold(rows, ["k"], _add_counts, 1)
    executor.hosts.lose()
    again = hosted.fold(rows, ["k"], _add_counts, 2)
    assert sorted(r for part in again for r in part) == [(1, 3), (2, 3), (3, 3)]


def test_a_fold_of_a_run_that_a_newer_run_fenced_commits_nothing(tmp_path, monkeypatch):
    # A host process has no run registered: its providers find no fence of their own.
    monkeypatch.setattr("unbounded.state.memory.fence_for", lambda path: None)
    checkpoint = tmp_path
    old = EpochFence.take(str(checkpoint), "old-run")
    try:
        hosted = _hosted(tmp_path, _Executor())
        hosted.fold(pl.DataFrame({"k": [1], "n": [1]}), ["k"], _add_counts, 0)
        _newer_run_takes_epoch(checkpoint)
        with pytest.raises(CheckpointConflictError, match="state version 2"):
            hosted.fold(pl.DataFrame({"k": [1], "n": [1]}), ["k"], _add_counts, 1)
    finally:
        old.release()
    written = {p.name for p in (tmp_path / "state" / "0").rglob("2.delta")}
    assert written == set()


def _newer_run_takes_epoch(checkpoint) -> None:
    """A newer run of the query starts in another process."""
    code = "import sys; from unbounded.checkpoint.epoch import EpochFence as E; " \
           "E.take(sys.argv[1], 'new-run')"
    subprocess.run([sys.executable, "-c", code, str(checkpoint)], check=True, timeout=60)


def test_a_fenced_store_keeps_the_one_pass_fold_of_the_store_it_wraps(tmp_path):
    provider = MemoryStateStoreProvider(StateStoreId(str(tmp_path), 0, 0), SCHEMA)
    fence = EpochFence.take(str(tmp_path), "run")
    try:
        store = fenced(provider.get_store(0), fence, "p")
        assert isinstance(store, SupportsMergeFold)
        merge = [pl.when(pl.col(FOUND_COLUMN)).then(pl.col("n") + pl.col(f"n{OLD_SUFFIX}"))
                 .otherwise(pl.col("n")).alias("n")]
        store.merge_fold(pl.DataFrame({"k": [1], "n": [5]}), merge, None)
        assert store.commit() == 1
        store = fenced(provider.get_store(1), fence, "p")
        assert isinstance(store, SupportsCombineFold)
        # Small frames are left to merge_fold (None); its memory store's answer, passed on.
        assert store.combine_fold(pl.DataFrame({"k": [1, 1], "n": [1, 2]}),
                                  [pl.col("n").sum()], None) is None
    finally:
        fence.release()
    assert provider.get_store(1).scan().to_pydict() == {"k": [1], "n": [5]}


def test_close_stops_the_hosts(tmp_path):
    executor = _Executor()
    _hosted(tmp_path, executor).close()
    assert executor.hosts.closed


class _DriverOnly:
    """An executor without hosts: state partitions fold on its (here: calling) thread."""

    def map(self, fn, items):
        return [fn(item) for item in items]


def _pair_counts(stores: Sequence[StateStore], rows: Sequence[pl.DataFrame]
                 ) -> list[list[tuple[int, int]]]:
    """A two-store fold (as a join's): each input's counts added into its own store."""
    return [_add_counts(store, part) for store, part in zip(stores, rows, strict=True)]


def _partitions(tmp_path, executor) -> StatePartitions:
    ctx = OperatorContext(str(tmp_path / "state"), 2, StateStoreConf(), "update", executor)
    return StatePartitions(ctx, [("left", SCHEMA), ("right", SCHEMA)])


def test_a_fold_over_two_stores_gives_the_same_state_on_the_driver_and_in_hosts(tmp_path):
    left = pl.DataFrame({"k": [0, 1], "n": [1, 1]})
    right = pl.DataFrame({"k": [1, 2], "n": [5, 5]})
    parts = [(left.filter(pl.col("k") % 2 == p), right.filter(pl.col("k") % 2 == p))
             for p in (0, 1)]
    on_driver = _partitions(tmp_path, _DriverOnly())
    assert on_driver.hosted is None
    first = on_driver.fold(parts, _pair_counts, 0)
    on_driver.close()
    in_hosts = _partitions(tmp_path, _Executor())  # resumes the driver's version 1
    assert in_hosts.hosted is not None
    second = in_hosts.fold(parts, _pair_counts, 1)
    in_hosts.close()
    assert first == [[[(0, 1)], [(2, 5)]], [[(1, 1)], [(1, 5)]]]
    assert second == [[[(0, 2)], [(2, 10)]], [[(1, 2)], [(1, 10)]]]
    back = _partitions(tmp_path, _DriverOnly())  # and back: version 2 from the hosts
    assert back.fold(parts, _pair_counts, 2)[1] == [[(1, 3)], [(1, 15)]]
    back.close()


class _Refusing:
    """An executor that must not be asked: an inline fold runs on the calling thread."""

    def map(self, fn, items):
        raise AssertionError("an inline fold went to the executor")


def test_an_inline_fold_runs_every_partition_in_order_on_the_calling_thread(tmp_path):
    left = pl.DataFrame({"k": [0, 1], "n": [1, 1]})
    right = pl.DataFrame({"k": [1, 2], "n": [5, 5]})
    parts = [(left.filter(pl.col("k") % 2 == p), right.filter(pl.col("k") % 2 == p))
             for p in (0, 1)]
    inline = _partitions(tmp_path, _Refusing())
    assert inline.fold(parts, _pair_counts, 0, inline=True) == [
        [[(0, 1)], [(2, 5)]], [[(1, 1)], [(1, 5)]]]
    with pytest.raises(AssertionError, match="went to the executor"):
        inline.fold(parts, _pair_counts, 1)
    inline.close()
