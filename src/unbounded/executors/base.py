"""The executor contract: run a batch's partition tasks, return results in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

__all__ = ["Executor", "HostCall", "Locality", "LocalityKind", "PendingResults",
           "ResourceHosts", "ShippableTask", "SupportsResourceHosts"]

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")


class LocalityKind(Enum):
    """How a task's data prefers a node."""

    STREAM_PARTITION = "stream-partition"  # sticky: the node that read it last
    FILE = "file"  # stable: the path's hash over the live nodes


@dataclass(frozen=True)
class Locality:
    """What a task reads, as placement sees it: ``key`` names the data (``topic:3``, a
    file's path); tasks with equal keys read the same data."""

    kind: LocalityKind
    key: str


@dataclass(frozen=True)
class ShippableTask(Generic[T, R]):
    """A task body that depends on nothing but its item: an executor may run it in
    another process, on another node, and run it again after a failure.

    ``fn`` is a module-level function (pickled by reference) whose result is a pure
    function of the item. Callables that are not wrapped (closures over state stores or
    sinks on the driver) always run in the driver's process, where their effects land.
    ``locality`` (also module-level) names the data an item reads, so an executor that
    can choose nodes runs it near that data; it never changes the result.
    """

    fn: Callable[[T], R]
    locality: Callable[[T], Locality | None] | None = None

    def __call__(self, item: T) -> R:
        return self.fn(item)


@runtime_checkable
class PendingResults(Protocol[R]):
    """Tasks started ahead of need; ``result`` waits for all of them."""

    def result(self) -> list[R]:
        """The results in the order of the items; re-raises the first task's error."""
        ...

    def cancel(self) -> None:
        """Drop tasks not yet started; tasks already running finish and are discarded."""
        ...


@runtime_checkable
class Executor(Protocol):
    """Runs independent tasks; results come back in the order of ``items``.

    An executor may ship a ``ShippableTask`` and its items (picklable) to other processes
    (Ray) and retry it there; every other callable runs in the driver's process. The
    local executor runs both on a thread pool.
    """

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]: ...

    def map_async(self, fn: Callable[[T], R], items: Sequence[T]) -> PendingResults[R]:
        """Start the tasks and return at once. They must not wait for capacity that
        ``map`` calls made meanwhile need: the micro-batch loop reads batch N+1 this
        way while batch N's stateful stage runs through ``map``."""
        ...

    def shutdown(self) -> None: ...


@dataclass(frozen=True)
class HostCall(Generic[S, R]):
    """``fn`` applied to the resource ``key`` on host ``slot``; the host builds the
    resource with ``open`` the first time, and again after it lost it. All three pickle
    (module-level functions, frozen dataclasses)."""

    slot: int
    key: str
    open: Callable[[], S]
    fn: Callable[[S], R]


@runtime_checkable
class ResourceHosts(Protocol):
    """Long-lived processes that keep keyed resources (state partitions' stores) between
    calls, so a batch ships only its rows to them.

    Invariants: the calls of one slot run one at a time, in order; a host may lose its
    resources at any moment (its process died) and is then replaced, so a resource must
    be rebuildable by ``open`` from durable state, and ``fn`` must give the same result
    when it runs again after being cut off (the host re-runs the call).
    """

    def map(self, calls: Sequence[HostCall[Any, R]]) -> list[R]:
        """The calls' results in order; the slots run in parallel."""
        ...

    def prepare(self, calls: Sequence[HostCall[Any, Any]]) -> None:
        """Start ``calls`` now and return (to open resources while the driver does other
        work); they run before later calls of their slots. Their results and errors are
        dropped: a later call opens a resource that is still missing, and fails alike."""
        ...

    def close(self) -> None:
        """Release the resources and stop the hosts."""
        ...


@runtime_checkable
class SupportsResourceHosts(Protocol):
    """An executor that can keep resources in processes of its own (the Ray executor's
    actors); without it, resources stay in the driver."""

    def resource_hosts(self, slots: int) -> ResourceHosts | None:
        """Hosts for ``slots`` slots (several slots may share one process); None when
        the session keeps resources on the driver."""
        ...
