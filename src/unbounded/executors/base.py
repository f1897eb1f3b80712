"""The executor contract: run a batch's partition tasks, return results in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

__all__ = ["Executor"]

T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class Executor(Protocol):
    """Runs independent tasks; results come back in the order of ``items``.

    ``fn`` and every item must be picklable for executors that ship tasks to other
    processes (Ray); the local executor runs them on a thread pool.
    """

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]: ...

    def shutdown(self) -> None: ...
