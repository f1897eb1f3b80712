"""The run lock: at most one live run of a query per checkpoint.

An exclusive ``flock`` on ``<checkpoint>/.lock``; the kernel releases it when the
process dies (even by SIGKILL), so a crashed run never blocks its restart. Once held,
temp files an interrupted write left in the checkpoint's root are removed: no later
write may go there (``metadata`` is written once), so the lazy clean-up of
``atomic.py`` would never reach them.
"""

from __future__ import annotations

import fcntl
import os

from unbounded.checkpoint.atomic import remove_stray_temps
from unbounded.errors import ConcurrentQueryError

__all__ = ["CheckpointLock"]


class CheckpointLock:
    def __init__(self, checkpoint: str) -> None:
        self.path = os.path.join(checkpoint, ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConcurrentQueryError(
                "Another run of this query is active on the checkpoint "
                f"{os.path.dirname(self.path)}. Stop it first, or start this query with "
                "another checkpointLocation."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        remove_stray_temps(os.path.dirname(self.path))

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
