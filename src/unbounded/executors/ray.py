"""The Ray executor: partition tasks run as Ray tasks on the cluster's workers.

Only ``ShippableTask``s leave the driver: each item becomes one Ray task, spread over the
nodes, whose result (Arrow tables inside) comes back through Ray's object store. Ray
re-runs an attempt that raised or whose worker process or node died, up to
``spark.task.maxFailures`` attempts in all, with the same item (the same input
partition), so a retried task reads the same rows. A task whose item names its data
(``ShippableTask.locality``) asks softly for the node ``executors/placement.py`` chooses
(the node that read the same Kafka partition last, a file's hash over the live nodes):
a node that is gone never blocks it. State partitions can live in actors
(``resource_hosts``, ``executors/ray_hosts.py``). With ``spark.speculation`` a slow
task gets a second copy (``executors/speculation.py``); the first copy to succeed gives
the item's one result and the other copies are killed. Everything else (a stateful
operator's fold over its state stores, a sink's writes) runs on a thread pool in the
driver, where those objects live.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from unbounded.executors.base import Locality, PendingResults, ShippableTask
from unbounded.executors.local import LocalExecutor
from unbounded.executors.placement import NodePlacement
from unbounded.executors.ray_errors import raise_surfaced
from unbounded.executors.ray_hosts import (
    INLINE_BYTES,
    INLINE_BYTES_VAR,
    WORKER_ENV,
    HostPool,
    RayHosts,
    cpu_nodes,
)
from unbounded.executors.speculation import SpeculationConf, speculatable

__all__ = ["RayExecutor", "connect"]

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)
_NODES_TTL_S = 2.0  # how long the list of live nodes is reused between batches


@dataclass(frozen=True)
class _Timed(Generic[R]):
    """An attempt's result, how long it ran on its worker (speculation's median) and
    the node it ran on (placement's record)."""

    value: R
    seconds: float
    node: str


def _attempt(task: ShippableTask[Any, Any], item: Any) -> _Timed[Any]:
    """One attempt of a task, on a Ray worker."""
    started = time.perf_counter()
    value = task(item)
    node = str(ray.get_runtime_context().get_node_id())
    return _Timed(value, time.perf_counter() - started, node)


_Settled = Callable[[int, "_Timed[Any]"], None]  # item index, its winning attempt


class _RayResults(Generic[R]):
    """Ray tasks in flight; ``result`` fails with the last attempt's own error."""

    def __init__(self, refs: list[Any], max_failures: int, settled: _Settled) -> None:
        self._refs = refs
        self._max_failures = max_failures
        self._settled = settled

    def result(self) -> list[R]:
        try:
            timed: list[_Timed[R]] = ray.get(self._refs)
        except RayError as err:
            raise_surfaced(err, self._max_failures)
        for index, attempt in enumerate(timed):
            self._settled(index, attempt)
        return [t.value for t in timed]

    def cancel(self) -> None:
        for ref in self._refs:
            ray.cancel(ref)


class _SpeculativeResults(Generic[R]):
    """Ray tasks watched every ``spark.speculation.interval``: a slow one gets a second
    copy, the first copy to succeed is the item's only result, the others are killed.

    A copy's running time counts from its submission (Ray does not report when a queued
    task starts); finished tasks' durations are measured on the worker.
    """

    def __init__(self, launch: Callable[[int, bool], Any], count: int, max_failures: int,
                 conf: SpeculationConf, settled: _Settled) -> None:
        self._launch, self._conf, self._max_failures = launch, conf, max_failures
        self._settled = settled
        self._copies: dict[int, list[Any]] = {i: [launch(i, True)] for i in range(count)}
        self._since = dict.fromkeys(self._copies, time.monotonic())
        self._done: dict[int, _Timed[R]] = {}
        self._speculated: set[int] = set()

    def result(self) -> list[R]:
        while len(self._done) < len(self._copies):
            pending = [r for refs in self._copies.values() for r in refs]
            ready, _ = ray.wait(pending, num_returns=len(pending),
                                timeout=self._conf.interval_s)
            for ref in ready:
                self._settle(ref)
            self._speculate()
        for index, attempt in self._done.items():
            self._settled(index, attempt)
        return [self._done[i].value for i in range(len(self._copies))]

    def _settle(self, ref: Any) -> None:
        index = next((i for i, refs in self._copies.items() if ref in refs), None)
        if index is None:  # both copies finished in one wait; the other one settled it
            return
        self._copies[index].remove(ref)
        try:
            self._done[index] = ray.get(ref)
        except RayError as err:
            if not self._copies[index]:  # no other copy may still succeed
                self.cancel()
                raise_surfaced(err, self._max_failures)
            log.warning("a copy of task %d failed; its other copy runs on: %s", index, err)
            return
        for loser in self._copies[index]:
            ray.cancel(loser, force=True)  # a stalled copy may never look at a flag
        self._copies[index] = []

    def _speculate(self) -> None:
        now = time.monotonic()
        running = {i: now - self._since[i] for i, refs in self._copies.items()
                   if len(refs) == 1 and i not in self._speculated}
        finished = [t.seconds for t in self._done.values()]
        for index in speculatable(self._conf, len(self._copies), finished, running):
            log.info("task %d ran %.2fs, over the speculation threshold: starting a "
                     "second copy", index, running[index])
            self._speculated.add(index)
            self._copies[index].append(self._launch(index, False))  # not near its data:
            # its first copy's node may be the slow one

    def cancel(self) -> None:
        for refs in self._copies.values():
            for ref in refs:
                ray.cancel(ref, force=True)


class RayExecutor:
    """Ships ``ShippableTask``s to Ray; runs other callables on driver threads.

    Joins the Ray runtime this process is already connected to; otherwise connects to
    ``address`` (``ray://host:port``), or with ``None`` to the runtime started on this
    machine (``ray start``) or a new one, which ``shutdown`` then stops.
    """

    def __init__(self, address: str | None, max_failures: int, driver_threads: int,
                 speculation: SpeculationConf | None = None, state_actors: bool = True,
                 ) -> None:
        self.max_failures = max_failures
        self.speculation = speculation or SpeculationConf()
        self.state_actors = state_actors  # spark.unbounded.ray.stateActors
        self._pool: HostPool | None = None
        self.placement = NodePlacement()
        self._nodes: tuple[float, dict[str, float]] = (-_NODES_TTL_S, {})
        self._owns_runtime = connect(address)
        self._options: dict[str, Any] = {"num_cpus": 1, "max_retries": max_failures - 1,
                                         "retry_exceptions": True,
                                         "runtime_env": WORKER_ENV}
        self._attempt = ray.remote(_attempt)
        self._remote = self._attempt.options(**self._options, scheduling_strategy="SPREAD")
        self._driver = LocalExecutor(driver_threads)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if not isinstance(fn, ShippableTask):
            return self._driver.map(fn, items)
        return self.map_async(fn, items).result()

    def map_async(self, fn: Callable[[T], R], items: Sequence[T]) -> PendingResults[R]:
        """Ray queues the tasks; the driver's stateful ``map`` calls never wait for
        them, as those run on the driver's own threads."""
        if not isinstance(fn, ShippableTask):
            return self._driver.map_async(fn, items)
        localities, nodes = self._places(fn, items)

        def launch(index: int, near: bool) -> Any:
            return self._launch(fn, items[index], nodes[index] if near else None)

        def settled(index: int, attempt: _Timed[Any]) -> None:
            self._record(localities[index], nodes[index], attempt.node)

        if self.speculation.enabled:
            return _SpeculativeResults(launch, len(items), self.max_failures,
                                       self.speculation, settled)
        return _RayResults([launch(i, True) for i in range(len(items))], self.max_failures,
                           settled)

    def _places(self, fn: ShippableTask[T, R], items: Sequence[T],
                ) -> tuple[list[Locality | None], list[str | None]]:
        """Each item's data and the node chosen near it (None: spread by Ray)."""
        if fn.locality is None:
            return [None] * len(items), [None] * len(items)
        localities = [fn.locality(item) for item in items]
        if not any(localities):
            return localities, [None] * len(items)
        return localities, self.placement.assign(localities, self._live_nodes())

    def _launch(self, fn: ShippableTask[Any, Any], item: Any, node: str | None) -> Any:
        """One Ray task; on ``node`` if it is alive (soft affinity), else spread."""
        if node is None:
            return self._remote.remote(fn, item)
        near = NodeAffinitySchedulingStrategy(node, soft=True)
        return self._attempt.options(**self._options, scheduling_strategy=near).remote(
            fn, item)

    def _record(self, locality: Locality | None, asked: str | None, ran: str) -> None:
        if locality is None or asked is None:
            return
        self.placement.ran(locality, asked, ran)
        log.debug("task over %s %s asked for node %s, ran on %s", locality.kind.value,
                  locality.key, asked, ran)

    def _live_nodes(self) -> dict[str, float]:
        """The alive nodes that can run tasks (with CPUs) and their CPUs; reused for
        ``_NODES_TTL_S`` (a node that died since is left to soft affinity)."""
        fetched, nodes = self._nodes
        if time.monotonic() - fetched < _NODES_TTL_S:
            return nodes
        nodes = cpu_nodes()
        self._nodes = (time.monotonic(), nodes)
        return nodes

    def resource_hosts(self, slots: int) -> RayHosts | None:
        """Actors that keep state partitions between batches (``executors/ray_hosts.py``),
        unless ``spark.unbounded.ray.stateActors`` is false."""
        if not self.state_actors:
            return None
        if self._pool is None:
            self._pool = HostPool(self.max_failures)
        return self._pool.hosts(slots)

    def shutdown(self) -> None:
        self._driver.shutdown()
        if self._pool is not None:
            self._pool.shutdown()
        if self._owns_runtime and ray.is_initialized():
            ray.shutdown()


def connect(address: str | None) -> bool:
    """Connect unless connected already; True when this call started the connection.

    This driver then sends call arguments up to ``INLINE_BYTES`` inline, as the tasks and
    state actors return theirs (unless ``RAY_max_direct_call_object_size`` is set): a
    process that called ``ray.init`` itself keeps Ray's 100 KB, so a batch's partial rows
    reach the actors through the object store, 10-15 ms later on a loaded machine.
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault(INLINE_BYTES_VAR, str(INLINE_BYTES))  # read by ray.init
    log.info("connecting to Ray at %s", address or "this machine")
    if address is None:
        ray.init(include_dashboard=False, logging_level=logging.WARNING)
    else:
        ray.init(address=address, logging_level=logging.WARNING)
    return True
