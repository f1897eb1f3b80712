"""State partitions kept by the executor's resource hosts (Ray actors) or the driver.

An operator's per-partition work is a picklable fold of ``(stores, rows)``: the
partition's stores at the batch's version (one per store name: an aggregation's or a
deduplication's one, a join's ``left`` and ``right``) and its share of each input,
routed by the recorded key hash. ``StatePartitions`` runs it on driver threads, or in
the host of slot ``p`` for partition ``p`` when the executor has hosts; both read and
write the same checkpoint files, so a query resumes with its state moved either way.
In a host the providers live between batches (their recent versions in memory); a
host that died is replaced and reopens them, which reads the last committed version
from the checkpoint, so the re-run fold computes the same version. Before a fold
commits, the host checks the driver's epoch fence: a driver that a newer run replaced
writes no state through its actors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import polars as pl
import pyarrow as pa

from unbounded.checkpoint.epoch import EpochFence, fence_for
from unbounded.checkpoint.storage import StoreOptions, store_options
from unbounded.executors.base import HostCall, ResourceHosts, SupportsResourceHosts
from unbounded.runtime.stateful.base import (
    OperatorContext,
    PartitionedState,
    frame_of,
    partition_ids,
    split_partitions,
)
from unbounded.state.base import (
    MergeFold,
    StateSchema,
    StateStore,
    StateStoreConf,
    StateStoreId,
    StateStoreMetrics,
    StateStoreProvider,
    SupportsCombineFold,
    SupportsMergeFold,
)
from unbounded.state.registry import create_provider

__all__ = ["FencedStore", "HostedState", "OneStoreFold", "PartitionFold", "StatePartitions",
           "StoresFold", "fenced"]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
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

    def combine_fold(self, rows: pl.DataFrame, combine: Sequence[pl.Expr],
                     evict: pl.Expr | None) -> MergeFold | None:
        if isinstance(self._merging, SupportsCombineFold):
            return self._merging.combine_fold(rows, combine, evict)
        return None


def fenced(store: StateStore, fence: EpochFence, path: str) -> FencedStore:
    """``store`` behind the fence, keeping its optional abilities."""
    if isinstance(store, SupportsMergeFold):
        return _FencedMergeStore(store, fence, path)
    return FencedStore(store, fence, path)


class StoresFold(Protocol[R_co]):
    """One state partition's work in one batch over several stores (a join's two
    sides): fold each input's rows into the open stores, commit them, return what the
    operator emits. Must pickle and be re-runnable on the same version."""

    def __call__(self, stores: Sequence[StateStore], rows: Sequence[pl.DataFrame]
                 ) -> R_co: ...


@dataclass(frozen=True)
class OneStoreFold(Generic[R]):
    """A ``PartitionFold`` as a ``StoresFold`` over one store."""

    fold: PartitionFold[R]

    def __call__(self, stores: Sequence[StateStore], rows: Sequence[pl.DataFrame]) -> R:
        return self.fold(stores[0], rows[0])


class _Providers:
    """One state partition's providers (one per store name), a host's resource."""

    def __init__(self, providers: list[StateStoreProvider]) -> None:
        self.providers = providers

    def stores(self, version: int, fence: EpochFence | None) -> list[StateStore]:
        opened = [p.get_store(version) for p in self.providers]
        if fence is None:
            return opened
        return [fenced(s, fence, p.store_id.path)
                for s, p in zip(opened, self.providers, strict=True)]

    def maintenance(self, min_versions: int) -> None:
        for provider in self.providers:
            provider.maintenance(min_versions)

    def close(self) -> None:
        for provider in self.providers:
            provider.close()


@dataclass(frozen=True)
class _OpenProviders:
    """Opens one partition's providers in a host (from the checkpoint, after a loss)."""

    ids: tuple[StateStoreId, ...]
    schemas: tuple[StateSchema, ...]
    conf: StateStoreConf
    store: StoreOptions | None = None  # the driver's options of a URL checkpoint

    def __call__(self) -> _Providers:
        if self.store is not None:
            self.store.install()
        return _Providers([create_provider(i, s, self.conf)
                           for i, s in zip(self.ids, self.schemas, strict=True)])


@dataclass(frozen=True)
class _FoldVersion(Generic[R]):
    """A fold on one version of a partition's stores, run in its host."""

    fold: StoresFold[R]
    rows: tuple[pa.Table, ...]
    version: int
    fence: EpochFence | None

    def __call__(self, providers: _Providers) -> R:
        return self.fold(providers.stores(self.version, self.fence),
                         [frame_of(t) for t in self.rows])


def _opened(providers: _Providers) -> None:
    """Nothing: calling it makes the host open the providers."""


@dataclass(frozen=True)
class _Maintain:
    min_versions: int

    def __call__(self, providers: _Providers) -> None:
        providers.maintenance(self.min_versions)


class HostedState:
    """One operator's state partitions (one or more store names) in the executor's
    hosts: partition ``p``'s stores are one resource of the host of slot ``p``."""

    def __init__(self, hosts: ResourceHosts, ctx: OperatorContext,
                 stores: Sequence[tuple[str, StateSchema]]) -> None:
        self._hosts, self._ctx = hosts, ctx
        names = tuple(name for name, _ in stores)
        schemas = tuple(schema for _, schema in stores)
        checkpoint = store_options(os.path.dirname(ctx.state_root))  # state/, epochs/
        self._opens = [_OpenProviders(
            tuple(StateStoreId(ctx.state_root, ctx.operator_id, p, n) for n in names),
            schemas, ctx.store_conf, checkpoint) for p in range(ctx.num_partitions)]
        self._keys = [",".join(i.path for i in o.ids) for o in self._opens]

    @classmethod
    def open(cls, ctx: OperatorContext, schema: StateSchema, store_name: str = ""
             ) -> HostedState | None:
        """Hosted state of one store name (see ``open_stores``)."""
        return cls.open_stores(ctx, [(store_name, schema)])

    @classmethod
    def open_stores(cls, ctx: OperatorContext, stores: Sequence[tuple[str, StateSchema]]
                    ) -> HostedState | None:
        """Hosted state when the executor keeps resources in hosts and the session lets
        it; None: the operator keeps its stores on the driver."""
        if not isinstance(ctx.executor, SupportsResourceHosts):
            return None
        hosts = ctx.executor.resource_hosts(ctx.num_partitions)
        if hosts is None:
            return None
        hosted = cls(hosts, ctx, stores)
        hosted.prepare()
        return hosted

    def _call(self, p: int, fn: Callable[[_Providers], R]) -> HostCall[_Providers, R]:
        return HostCall(p, self._keys[p], self._opens[p], fn)

    def prepare(self) -> None:
        """Open the providers in the hosts now: a new host process imports the engine
        and reads the schema files while the driver starts the first batch's tasks."""
        self._hosts.prepare([self._call(p, _opened) for p in range(self._ctx.num_partitions)])

    def fold(self, frame: pl.DataFrame, keys: list[str], fold: PartitionFold[R],
             version: int) -> list[R]:
        """``fold`` per state partition over its share of ``frame`` (split by the hash
        of ``keys``) on ``version``, in partition order."""
        n = self._ctx.num_partitions
        parts = split_partitions(frame, partition_ids(frame, keys, n), n)
        return self.fold_parts([(part,) for part in parts], OneStoreFold(fold), version)

    def fold_parts(self, parts: Sequence[Sequence[pl.DataFrame]], fold: StoresFold[R],
                   version: int) -> list[R]:
        """``fold`` per state partition over its rows ``parts[p]`` (one frame per input)
        on ``version``, in partition order."""
        fence = fence_for(self._ctx.state_root)
        return self._hosts.map([
            self._call(p, _FoldVersion(fold, tuple(f.to_arrow() for f in frames), version,
                                       fence))
            for p, frames in enumerate(parts)])

    def maintenance(self, min_versions: int) -> None:
        self._hosts.map([self._call(p, _Maintain(min_versions))
                         for p in range(self._ctx.num_partitions)])

    def close(self) -> None:
        self._hosts.close()


class StatePartitions:
    """An operator's state partitions wherever they live: in the executor's hosts (Ray
    actors) when it has them, else on the driver. The same fold runs in either place on
    the same checkpoint files, so a query resumes with its state moved either way.

    The driver opens every store at start in both cases, so a changed state schema or
    partitioning fails before the query starts.
    """

    def __init__(self, ctx: OperatorContext, stores: Sequence[tuple[str, StateSchema]]
                 ) -> None:
        self._ctx = ctx
        self.local = [PartitionedState(ctx, schema, name) for name, schema in stores]
        self.hosted = HostedState.open_stores(ctx, stores)

    def fold(self, parts: Sequence[Sequence[pl.DataFrame]], fold: StoresFold[R],
             version: int, *, inline: bool = False) -> list[R]:
        """``fold`` of every partition ``p`` over ``parts[p]`` on ``version``, in
        partition order (in parallel on the executor or the hosts). ``inline`` runs the
        local folds one after another on the calling thread, for a batch whose rows and
        state are a handful: handing them to the executor's threads and waking the
        caller again costs more than the folds (a fold may run anywhere, by contract)."""
        if self.hosted is not None:
            return self.hosted.fold_parts(parts, fold, version)
        def run(p: int) -> R:
            return fold([s.store(p, version) for s in self.local], parts[p])

        partitions = list(range(self._ctx.num_partitions))
        return [run(p) for p in partitions] if inline else self._ctx.executor.map(run, partitions)

    def maintenance(self, min_versions: int) -> None:
        if self.hosted is not None:
            self.hosted.maintenance(min_versions)
            return
        for state in self.local:
            state.maintenance(min_versions)

    def close(self) -> None:
        if self.hosted is not None:
            self.hosted.close()
        for state in self.local:
            state.close()
