"""State partitions kept by the executor's resource hosts (Ray actors), not the driver.

An operator whose per-partition work is a picklable fold of ``(store, rows)`` hands it
here: the batch's rows are split by key hash into the state partitions, and partition
``p``'s fold runs in the host of slot ``p``, on the store its provider opens at the
batch's version. The provider lives in the host between batches (its recent versions in
memory); a host that died is replaced and reopens the provider, which reads the last
committed version from the checkpoint, so the re-run fold computes the same version.
Before a fold commits, the host checks the driver's epoch fence: a driver that a newer
run replaced writes no state through its actors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import polars as pl
import pyarrow as pa

from unbounded.checkpoint.epoch import EpochFence, fence_for
from unbounded.executors.base import HostCall, ResourceHosts, SupportsResourceHosts
from unbounded.runtime.stateful.base import (
    OperatorContext,
    frame_of,
    partition_ids,
    split_partitions,
)
from unbounded.state.base import (
    MergeFold,
    StateSchema,
    StateStore,
    StateStoreId,
    StateStoreMetrics,
    StateStoreProvider,
    SupportsMergeFold,
)
from unbounded.state.registry import create_provider

__all__ = ["FencedStore", "HostedState", "PartitionFold", "fenced"]

R = TypeVar("R")
PartitionFold = Callable[[StateStore, pl.DataFrame], R]
"""One state partition's work in one batch: fold the rows into the open store, commit
it, return what the operator emits. Must pickle and be re-runnable on the same version."""


class FencedStore:
    """``store`` whose ``commit`` first checks the run's epoch fence."""

    def __init__(self, store: StateStore, fence: EpochFence, path: str) -> None:
        self._store, self._fence, self._path = store, fence, path

    @property
    def version(self) -> int:
        return self._store.version

    @property
    def schema(self) -> StateSchema:
        return self._store.schema

    @property
    def metrics(self) -> StateStoreMetrics:
        return self._store.metrics

    def lookup(self, keys: pa.Table) -> pa.Table:
        return self._store.lookup(keys)

    def upsert(self, rows: pa.Table, *, distinct: bool = False, new_keys: bool = False
               ) -> None:
        self._store.upsert(rows, distinct=distinct, new_keys=new_keys)

    def delete(self, keys: pa.Table) -> None:
        self._store.delete(keys)

    def evict(self, predicate: pl.Expr) -> pa.Table:
        return self._store.evict(predicate)

    def scan(self) -> pa.Table:
        return self._store.scan()

    def commit(self) -> int:
        self._fence.check(f"state version {self.version + 1} of {self._path}")
        return self._store.commit()

    def abort(self) -> None:
        self._store.abort()


class _FencedMergeStore(FencedStore):
    """A fenced store over one that folds a batch in one pass (keeps that fast path)."""

    def __init__(self, store: SupportsMergeFold, fence: EpochFence, path: str) -> None:
        assert isinstance(store, StateStore)
        super().__init__(store, fence, path)
        self._merging = store

    def merge_fold(self, rows: pl.DataFrame, merge: Sequence[pl.Expr],
                   evict: pl.Expr | None) -> MergeFold:
        return self._merging.merge_fold(rows, merge, evict)


def fenced(store: StateStore, fence: EpochFence, path: str) -> FencedStore:
    """``store`` behind the fence, keeping its optional abilities."""
    if isinstance(store, SupportsMergeFold):
        return _FencedMergeStore(store, fence, path)
    return FencedStore(store, fence, path)


@dataclass(frozen=True)
class _FoldVersion(Generic[R]):
    """A fold on one version of a partition's store, run in its host."""

    fold: PartitionFold[R]
    rows: pa.Table
    version: int
    fence: EpochFence | None

    def __call__(self, provider: StateStoreProvider) -> R:
        store: StateStore = provider.get_store(self.version)
        if self.fence is not None:
            store = fenced(store, self.fence, provider.store_id.path)
        return self.fold(store, frame_of(self.rows))


def _opened(provider: StateStoreProvider) -> None:
    """Nothing: calling it makes the host open the provider."""


@dataclass(frozen=True)
class _Maintain:
    min_versions: int

    def __call__(self, provider: StateStoreProvider) -> None:
        provider.maintenance(self.min_versions)


class HostedState:
    """One operator's state partitions (one store name) in the executor's hosts."""

    def __init__(self, hosts: ResourceHosts, ctx: OperatorContext, schema: StateSchema,
                 store_name: str) -> None:
        self._hosts, self._ctx = hosts, ctx
        self._ids = [StateStoreId(ctx.state_root, ctx.operator_id, p, store_name)
                     for p in range(ctx.num_partitions)]
        self._opens = [functools.partial(create_provider, i, schema, ctx.store_conf)
                       for i in self._ids]

    @classmethod
    def open(cls, ctx: OperatorContext, schema: StateSchema, store_name: str = ""
             ) -> HostedState | None:
        """Hosted state when the executor keeps resources in hosts and the session lets
        it; None: the operator keeps its stores on the driver."""
        if not isinstance(ctx.executor, SupportsResourceHosts):
            return None
        hosts = ctx.executor.resource_hosts(ctx.num_partitions)
        if hosts is None:
            return None
        hosted = cls(hosts, ctx, schema, store_name)
        hosted.prepare()
        return hosted

    def prepare(self) -> None:
        """Open the providers in the hosts now: a new host process imports the engine
        and reads the schema files while the driver starts the first batch's tasks."""
        self._hosts.prepare([HostCall(p, self._ids[p].path, self._opens[p], _opened)
                             for p in range(self._ctx.num_partitions)])

    def fold(self, frame: pl.DataFrame, keys: list[str], fold: PartitionFold[R],
             version: int) -> list[R]:
        """``fold`` per state partition over its share of ``frame`` (split by the hash
        of ``keys``) on ``version``, in partition order."""
        n = self._ctx.num_partitions
        parts = split_partitions(frame, partition_ids(frame, keys, n), n)
        fence = fence_for(self._ctx.state_root)
        return self._hosts.map([
            HostCall(p, self._ids[p].path, self._opens[p],
                     _FoldVersion(fold, parts[p].to_arrow(), version, fence))
            for p in range(n)])

    def maintenance(self, min_versions: int) -> None:
        self._hosts.map([HostCall(p, self._ids[p].path, self._opens[p], _Maintain(min_versions))
                         for p in range(self._ctx.num_partitions)])

    def close(self) -> None:
        self._hosts.close()
