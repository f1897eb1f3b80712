"""Resource hosts on Ray: long-lived actors that keep state partitions' stores.

Each slot maps to one actor (``slot mod actors``; as many actors as slots, up to the
cluster's CPUs), spread over the nodes. An actor builds a resource the first time a call
names its key and keeps it, so a batch ships only its rows. An actor whose process or
node dies is restarted by Ray (``max_restarts=-1``) empty, and the call it was running
is re-run there (up to ``spark.task.maxFailures`` attempts): the resource is rebuilt by
its ``open`` from durable state (the checkpoint) and the call recomputes the same result.
Actors belong to the driver that made them: when it dies, Ray stops them. Each takes no
CPU from Ray's accounting (``num_cpus=0``), so on a cluster of one-CPU nodes the
partition tasks never wait behind them.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import ray
from ray.exceptions import RayError

from unbounded.executors.base import HostCall
from unbounded.executors.ray_errors import raise_surfaced

__all__ = ["ACTOR_PREFIX", "RayHosts"]

R = TypeVar("R")
S = TypeVar("S")
log = logging.getLogger(__name__)
ACTOR_PREFIX = "unbounded-state-"  # actor names: <prefix><hosts id>-<index>


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

    def pid(self) -> int:
        """This actor's process id (tests kill it)."""
        return os.getpid()

    def close(self) -> None:
        for resource in self._resources.values():
            if isinstance(resource, _Closeable):
                resource.close()
        self._resources.clear()


def _cluster_cpus() -> float:
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return resources.get("CPU", 1.0)


class RayHosts:
    """Actors for ``slots`` slots; see the module docstring."""

    def __init__(self, slots: int, max_failures: int) -> None:
        self._max_failures = max_failures
        cpus = int(_cluster_cpus())
        name = f"{ACTOR_PREFIX}{uuid.uuid4().hex[:12]}"
        actor = ray.remote(_Host)
        # Ray types handles per class but not their methods' ``.remote``.
        self._actors: list[Any] = [
            actor.options(name=f"{name}-{i}", num_cpus=0, max_restarts=-1,
                          max_task_retries=max_failures - 1, scheduling_strategy="SPREAD")
            .remote()
            for i in range(max(1, min(slots, cpus)))]

    def map(self, calls: Sequence[HostCall[Any, R]]) -> list[R]:
        refs = [self._actors[c.slot % len(self._actors)].run.remote(c.key, c.open, c.fn)
                for c in calls]
        try:
            results: list[R] = ray.get(refs)
        except RayError as err:
            raise_surfaced(err, self._max_failures)
        return results

    def close(self) -> None:
        if not ray.is_initialized():
            return
        try:
            ray.get([a.close.remote() for a in self._actors], timeout=30)
        except RayError as err:  # a dead actor has nothing left to release
            log.warning("closing state actors: %s", err)
        for actor in self._actors:
            ray.kill(actor)
