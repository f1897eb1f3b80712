"""The executor contract: run a batch's partition tasks, return results in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

__all__ = ["Executor", "PendingResults"]

T = TypeVar("T")
R = TypeVar("R")


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

    ``fn`` and every item must be picklable for executors that ship tasks to other
    processes (Ray); the local executor runs them on a thread pool.
    """

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]: ...

    def map_async(self, fn: Callable[[T], R], items: Sequence[T]) -> PendingResults[R]:
        """Start the tasks and return at once. They must not wait for capacity that
        ``map`` calls made meanwhile need: the micro-batch loop reads batch N+1 this
        way while batch N's stateful stage runs through ``map``."""
        ...

    def shutdown(self) -> None: ...
