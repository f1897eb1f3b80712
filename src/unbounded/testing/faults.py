"""Named crash points of the batch loop, for recovery tests.

``UNBOUNDED_FAULT=<point>[@<batch id>]`` makes the process SIGKILL itself when it
reaches that point (of that batch), so a test can prove recovery from exactly there.
The points: before-offset-write, after-offset-write, mid-sink-write, after-sink,
before-commit-write, after-commit-write.
"""

from __future__ import annotations

import os
import signal

__all__ = ["FAULT_POINTS", "fault_point", "slow_batch_for_tests"]

FAULT_POINTS = (
    "before-offset-write",
    "after-offset-write",
    "mid-sink-write",
    "after-sink",
    "before-commit-write",
    "after-commit-write",
)


def fault_point(name: str, batch_id: int) -> None:
    """Die here if the environment asks for it; a no-op otherwise."""
    wanted = os.environ.get("UNBOUNDED_FAULT")
    if not wanted:
        return
    point, _, batch = wanted.partition("@")
    if point == name and (not batch or int(batch) == batch_id):
        os.kill(os.getpid(), signal.SIGKILL)


def slow_batch_for_tests() -> None:
    """``UNBOUNDED_TEST_BATCH_DELAY=<seconds>`` stretches each batch, so a test can act
    while a query is reliably mid-run."""
    delay = os.environ.get("UNBOUNDED_TEST_BATCH_DELAY")
    if delay:
        import time

        time.sleep(float(delay))
