"""A shared pool is made on first use, once, and afresh in a forked child."""

from __future__ import annotations

import os

from unbounded.checkpoint.pools import SharedPool


def test_the_pool_is_made_on_first_use_and_then_shared() -> None:
    shared = SharedPool(2, "test-shared")
    first = shared.get()
    try:
        assert shared.get() is first
        assert first.submit(lambda: 7).result(timeout=10) == 7
    finally:
        first.shutdown()


def test_a_forked_child_runs_work_on_a_pool_of_its_own() -> None:
    """The parent's pool threads do not exist in a child: work queued on the parent's
    pool object there would never run (a wait on it would hang)."""
    shared = SharedPool(1, "test-forked")
    parent = shared.get()
    parent.submit(lambda: None).result(timeout=10)  # its thread is running
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the work ran on a new pool
        code = 1
        try:
            pool = shared.get()
            if pool is not parent and pool.submit(lambda: 5).result(timeout=10) == 5:
                code = 0
        finally:
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        parent.shutdown()
