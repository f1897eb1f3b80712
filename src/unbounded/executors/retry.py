"""Task attempts for executors that do not retry on their own (the local thread pool).

Spark's ``local[N, F]`` gives each task F attempts in local mode; the Ray executor lets
Ray re-run attempts instead, as only Ray sees a worker process die.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from unbounded.executors.base import Executor, PendingResults, ShippableTask

__all__ = ["RetryingExecutor"]

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Attempts(Generic[T, R]):
    """``task`` run up to ``attempts`` times on the same item; the last error stands."""

    task: ShippableTask[T, R]
    attempts: int

    def __call__(self, item: T) -> R:
        for attempt in range(1, self.attempts):
            try:
                return self.task(item)
            except Exception as err:
                log.warning("task attempt %d of %d failed: %s", attempt, self.attempts, err)
        try:
            return self.task(item)
        except Exception as err:
            err.add_note(f"The partition task failed {self.attempts} time(s) "
                         f"(local[N, {self.attempts}]).")
            raise


class RetryingExecutor:
    """``inner`` with each ``ShippableTask`` given ``attempts`` attempts (others once:
    a driver-side fold over state stores is not safe to repeat half-done)."""

    def __init__(self, inner: Executor, attempts: int) -> None:
        self.inner = inner
        self.attempts = attempts

    def _wrap(self, fn: Callable[[T], R]) -> Callable[[T], R]:
        if isinstance(fn, ShippableTask):
            return ShippableTask(_Attempts(fn, self.attempts))
        return fn

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return self.inner.map(self._wrap(fn), items)

    def map_async(self, fn: Callable[[T], R], items: Sequence[T]) -> PendingResults[R]:
        return self.inner.map_async(self._wrap(fn), items)

    def shutdown(self) -> None:
        self.inner.shutdown()
