"""The default executor: a thread pool in this process.

Polars and Arrow release the GIL in their kernels, so partition tasks on threads use
every core without pickling data between processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["LocalExecutor"]

T = TypeVar("T")
R = TypeVar("R")


class LocalExecutor:
    """Runs tasks on up to ``max_workers`` threads (default: the number of cores)."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or os.cpu_count() or 2
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="unbounded-task")

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) <= 1:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
