"""Thread pools that the whole process shares, made on first use.

The checkpoint's fsyncs and the file source log's removals run beside the query thread
on such pools. Most processes (a UDF worker, a batch job) never need one, so each is
made when first asked for; a forked child has none of its parent's threads, so it makes
its own instead of queueing work that no thread would ever run.
"""

from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

__all__ = ["SharedPool"]

_all: weakref.WeakSet[SharedPool] = weakref.WeakSet()


class SharedPool:
    """A ``ThreadPoolExecutor`` of ``workers`` threads named ``name``-N, made on the
    first :meth:`get` (again in a forked child)."""

    def __init__(self, workers: int, name: str) -> None:
        self.workers, self.name = workers, name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        _all.add(self)

    def get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self.name)
            return self._pool

    def _forget(self) -> None:
        self._pool, self._lock = None, threading.Lock()


def _forget_all() -> None:
    for pool in list(_all):
        pool._forget()


os.register_at_fork(after_in_child=_forget_all)
