"""The default executor: a thread pool in this process.

Polars and Arrow release the GIL in their kernels, so partition tasks on threads use
every core without pickling data between processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["LocalExecutor"]

T = TypeVar("T")
R = TypeVar("R")


class _Futures(Generic[R]):
    def __init__(self, futures: list[Future[R]]) -> None:
        self._futures = futures

    def result(self) -> list[R]:
        return [f.result() for f in self._futures]

    def cancel(self) -> None:
        for f in self._futures:
            f.cancel()


class LocalExecutor:
    """Runs tasks on up to ``max_workers`` threads (default: the number of cores).

    ``map_async`` has a pool of its own, so tasks started ahead never hold the threads
    that the current batch's ``map`` calls wait for.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or os.cpu_count() or 2
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="unbounded-task")
        self._ahead = ThreadPoolExecutor(self.max_workers, thread_name_prefix="unbounded-ahead")

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) <= 1:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))

    def map_async(self, fn: Callable[[T], R], items: Sequence[T]) -> _Futures[R]:
        return _Futures([self._ahead.submit(fn, item) for item in items])

    def shutdown(self) -> None:
        self._ahead.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
