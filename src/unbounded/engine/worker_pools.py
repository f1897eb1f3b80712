"""What the two pools of worker processes (row UDFs, user-state calls) share: how many
workers a process may start, and one pool per process, stopped at its exit.

A pool holds pipes to child interpreters, which a forked child cannot use, so a pool
belongs to the process that made it and a fork makes its own.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = ["ProcessPool", "configured_workers", "pool_of_this_process", "usable_cores"]


class ProcessPool(Protocol):
    """A pool that knows the process that made it and can stop its workers."""

    pid: int

    def stop(self) -> None: ...


P = TypeVar("P", bound=ProcessPool)
_LOCK = threading.Lock()


def usable_cores() -> int:
    """Cores this process may run on (its affinity on Linux; all of them elsewhere)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def configured_workers(env: str, default: int) -> int:
    """``env`` if set, else ``default``; none in a Ray worker process (raylet starts them
    with ``RAY_RAYLET_PID``), where Ray already runs one task per core."""
    configured = os.environ.get(env, "").strip()
    if configured:
        return max(int(configured), 0)
    if "RAY_RAYLET_PID" in os.environ:
        return 0
    return max(default, 0)


def pool_of_this_process(pools: list[P], make: Callable[[], P]) -> P:
    """The pool in ``pools`` (a one-element holder) if this process made it, else a new
    one from ``make``, which is stopped when the process exits."""
    with _LOCK:
        if not pools or pools[0].pid != os.getpid():
            pools[:] = [make()]
            atexit.register(_stop_if_own, pools[0])
        return pools[0]


def _stop_if_own(pool: ProcessPool) -> None:
    if pool.pid == os.getpid():
        pool.stop()
