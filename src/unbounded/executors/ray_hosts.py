"""Resource hosts on Ray: long-lived actors that keep state partitions' stores.

Each slot maps to one actor (``slot mod actors``; as many actors as slots, up to the
cluster's CPUs), actor ``i`` on the ``i``-th node with CPUs. An actor builds a resource
the first time a call names its key and keeps it, so a batch ships only its rows;
``map`` sends each actor one call carrying all its slots' calls (with Spark's 200 state
partitions on a few actors, a batch pays a few actor round trips, not 200). An actor
whose process or node dies is restarted by Ray (``max_restarts=-1``) empty, and the call
it was running is re-run there (up to ``spark.task.maxFailures`` attempts): the resource
is rebuilt by its ``open`` from durable state (the checkpoint) and the call recomputes
the same result. Actors belong to the driver that made them: when it dies, Ray stops
them. A session keeps its actors for its later queries (``HostPool``); a stopped query
releases its resources in them. An actor holds no CPU while it runs (Ray's default for
actors: a free CPU to be placed, none held), so on a cluster of one-CPU nodes the
partition tasks never wait behind it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import ray
from ray.exceptions import ActorUnavailableError, RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from unbounded.executors.base import HostCall
from unbounded.executors.ray_errors import raise_own, raise_surfaced

__all__ = ["ACTOR_PREFIX", "INLINE_BYTES", "INLINE_BYTES_VAR", "WORKER_ENV", "HostPool",
           "RayHosts", "cpu_nodes"]

R = TypeVar("R")
S = TypeVar("S")
log = logging.getLogger(__name__)
ACTOR_PREFIX = "unbounded-state-"  # actor names: <prefix><pool id>-<index>
_UNREACHABLE_WAIT_S = 120.0  # Ray declares a silent node dead well within this
# Ray puts a task's argument or result over 100 KB in the object store, and the reader
# pulls it from the writer's node: under load 10-15 ms per hop on the critical path, where
# a batch's partial rows for one state partition (~440 KB in the windowed bench) would
# travel inline in the call itself. Up to 1 MiB travels inline here (the process that
# calls or returns decides; larger values still go through the store, zero-copy).
INLINE_BYTES_VAR = "RAY_max_direct_call_object_size"
INLINE_BYTES = 1024 * 1024
# Polars sizes its pool by the machine's cores in every process, so each of a node's Ray
# workers would run that many threads; an actor (and a one-CPU task) gets one, as Ray
# gives OMP_NUM_THREADS (and with it Arrow's pool). A batch's small folds on a busy node
# took half the time (issue 13's profile: 35-40 ms per partition against 64-86 ms).
WORKER_ENV: dict[str, Any] = {"env_vars": {
    "POLARS_MAX_THREADS": "1",
    INLINE_BYTES_VAR: os.environ.get(INLINE_BYTES_VAR, str(INLINE_BYTES))}}


@runtime_checkable
class _Closeable(Protocol):
    def close(self) -> None: ...


class _Host:
    """One actor's resources by key, each built on first use."""

    def __init__(self) -> None:
        self._resources: dict[str, Any] = {}

    def run(self, key: str, open_: Callable[[], S], fn: Callable[[S], R]) -> R:
        if key not in self._resources:
            self._resources[key] = open_()
        resource: S = self._resources[key]
        return fn(resource)

    def run_all(self, calls: list[HostCall[Any, Any]]) -> list[Any]:
        """Several slots' calls of one batch, in order: one actor call per batch (a
        call's fixed cost is paid once, and the fold they share is pickled once)."""
        return [self.run(c.key, c.open, c.fn) for c in calls]

    def pid(self) -> int:
        """This actor's process id (tests kill it)."""
        return os.getpid()

    def node(self) -> str:
        """The id of the Ray node this actor runs on (tests remove it)."""
        return str(ray.get_runtime_context().get_node_id())

    def release(self, keys: list[str]) -> None:
        """Close and forget the resources ``keys`` (their query stopped)."""
        for key in keys:
            resource = self._resources.pop(key, None)
            if isinstance(resource, _Closeable):
                resource.close()


def cpu_nodes() -> dict[str, float]:
    """The alive nodes that can run work (with CPUs), by id, and their CPUs."""
    return {str(n["NodeID"]): float(n["Resources"].get("CPU", 0.0))
            for n in ray.nodes()  # type: ignore[no-untyped-call]
            if n["Alive"] and n["Resources"].get("CPU", 0.0) > 0}


def _cluster_cpus() -> float:
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return resources.get("CPU", 1.0)


class HostPool:
    """The session's host actors: started when a query first needs them and kept for
    its later queries (an actor's start, a process importing the engine, takes seconds;
    a query stopped and started again finds them ready). ``shutdown`` stops them."""

    def __init__(self, max_failures: int) -> None:
        self._max_failures = max_failures
        self._name = f"{ACTOR_PREFIX}{uuid.uuid4().hex[:12]}"
        self._actors: list[Any] = []  # Ray types handles, not their methods' ``.remote``
        self._lock = threading.Lock()

    def hosts(self, slots: int) -> RayHosts:
        """Hosts for ``slots`` slots: one actor per slot up to the cluster's CPUs."""
        wanted = max(1, min(slots, int(_cluster_cpus())))
        with self._lock:
            while len(self._actors) < wanted:
                self._actors.append(self._start(len(self._actors)))
            return RayHosts(self._actors[:wanted], self._max_failures)

    def _start(self, index: int) -> Any:
        """Actor ``index`` on the ``index``-th node (by id) with CPUs, softly (a restart
        after the node is lost goes to another): Ray's ``SPREAD`` let two actors share
        a node while another had none. Ray's default for an actor (a CPU to be placed,
        none held while it runs) and not ``num_cpus=0``, under which Ray ignored a soft
        node affinity (Ray 2.60)."""
        nodes = sorted(cpu_nodes())
        where: Any = NodeAffinitySchedulingStrategy(nodes[index % len(nodes)], soft=True) \
            if nodes else "SPREAD"
        return ray.remote(_Host).options(
            name=f"{self._name}-{index}", max_restarts=-1,
            max_task_retries=self._max_failures - 1, scheduling_strategy=where,
            runtime_env=WORKER_ENV).remote()

    def shutdown(self) -> None:
        with self._lock:
            actors, self._actors = self._actors, []
        if ray.is_initialized():
            for actor in actors:
                ray.kill(actor)


class RayHosts:
    """One query's view of the pool's actors; ``close`` releases its resources there."""

    def __init__(self, actors: list[Any], max_failures: int) -> None:
        self._actors, self._max_failures = actors, max_failures
        self._keys: list[set[str]] = [set() for _ in actors]

    def _index(self, call: HostCall[Any, Any]) -> int:
        index = call.slot % len(self._actors)
        self._keys[index].add(call.key)
        return index

    def _submit(self, calls: Sequence[HostCall[Any, R]]) -> list[Any]:
        return [self._actors[i].run.remote(c.key, c.open, c.fn)
                for c, i in ((c, self._index(c)) for c in calls)]

    def prepare(self, calls: Sequence[HostCall[Any, Any]]) -> None:
        """Opening calls: their errors need no reporting, as every later call opens its
        resource again if it is missing and raises the same error."""
        self._submit(calls)

    def map(self, calls: Sequence[HostCall[Any, R]]) -> list[R]:
        """The calls grouped by actor, one ``run_all`` per actor; results in order."""
        groups: dict[int, list[int]] = {}
        for n, call in enumerate(calls):
            groups.setdefault(self._index(call), []).append(n)
        refs = {i: self._send(i, [calls[n] for n in ns]) for i, ns in groups.items()}
        results: list[Any] = [None] * len(calls)
        for i, ns in groups.items():
            for n, value in zip(ns, self._result(refs[i], i, [calls[n] for n in ns]),
                                strict=True):
                results[n] = value
        return results

    def _send(self, index: int, calls: list[HostCall[Any, R]]) -> Any:
        return self._actors[index].run_all.remote(calls)

    def _result(self, ref: Any, index: int, calls: list[HostCall[Any, R]]) -> list[R]:
        """The calls' results. An actor that Ray cannot reach yet (its node just died,
        not yet declared dead and restarted) gets the calls again until it answers:
        Ray does not retry those calls itself, and a call may run twice by contract."""
        deadline = time.monotonic() + _UNREACHABLE_WAIT_S
        while True:
            try:
                result: list[R] = ray.get(ref)
                return result
            except ActorUnavailableError as err:
                if time.monotonic() > deadline:
                    raise_surfaced(err, self._max_failures, "state partition's call")
                log.info("state actor unreachable, calling again: %s", err)
                time.sleep(0.5)
                ref = self._send(index, calls)
            except RayTaskError as err:  # the fold's own error, which Ray does not retry
                raise_own(err)
            except RayError as err:  # the actor died more often than Ray restarts calls
                raise_surfaced(err, self._max_failures, "state partition's call")

    def close(self) -> None:
        if not ray.is_initialized():
            return
        try:
            ray.get([a.release.remote(sorted(keys))
                     for a, keys in zip(self._actors, self._keys, strict=True)], timeout=30)
        except RayError as err:  # a dead actor has nothing left to release
            log.warning("releasing state partitions in their actors: %s", err)
