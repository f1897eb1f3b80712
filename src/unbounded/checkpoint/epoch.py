"""Fencing by epoch: once a newer run of a query has started, an older one writes nothing.

The run lock (``checkpoint/lock.py``) keeps two live runs apart only while its file is
there and the file system shares ``flock``s. A process paused long enough (SIGSTOP, a
VM freeze) can outlive it: the lock file is deleted, a new run starts and moves on, and
the old process, resumed, would write into log slots that retention already purged.

So each run takes an epoch, one higher than any before it, published under
``<checkpoint>/epochs/<n>`` with the no-replace atomic write (two runs cannot take the
same number), and then removes the older epoch files. Before every publish (offset and
commit log entries, source log entries, state versions, the sink's manifest) a writer
calls :meth:`EpochFence.check`: two ``stat`` calls (two HEAD requests on an object
store), which pass only while its own epoch file exists and no ``epochs/<n + 1>`` does.
A paused run thus fails at its next publish, whatever retention removed and even with
the lock file gone. The check sits right before each rename or link; a process stopped
inside that window of a few instructions can still publish that one file (the
no-replace writes then conflict instead).

On an object store (a checkpoint URL, :mod:`unbounded.checkpoint.storage`) the epoch file
is published with a conditional create (``If-None-Match: *`` on S3), so two drivers on
different nodes cannot take the same epoch either; the run lease
(:class:`unbounded.checkpoint.lock.CheckpointLock`) decides whether a driver may take one.

Format of ``epochs/<n>`` (checksummed like every checkpoint file)::

    v1
    {"epoch":3,"runId":"5f1c...","pid":4242,"host":"node-1","startedAtMs":1700000000000}

Writers that are built deep inside a run (state providers, sinks, source logs) find
their run's fence with :func:`fence_for`, a per-process registry keyed by checkpoint
folder, so the fence needs no new parameter through every constructor between them.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, NoReturn

from unbounded.checkpoint.checksum import (
    RECOVERY_HINT,
    read_checked_text,
    remove_checked,
    write_checked,
)
from unbounded.checkpoint.storage import normalize_location, storage_for
from unbounded.errors import CheckpointConflictError, CheckpointCorruptError, ConcurrentQueryError

__all__ = ["EPOCHS_DIR", "EpochFence", "fence_for", "newest_epoch"]

EPOCHS_DIR = "epochs"
_VERSION = "v1"
_registry: dict[str, EpochFence] = {}
_registry_lock = threading.Lock()


def _epochs(folder: str) -> list[int]:
    return sorted(int(n) for n in storage_for(folder).list(folder) if n.isdigit())


def newest_epoch(checkpoint: str) -> int | None:
    """The highest epoch taken in ``checkpoint`` (None before the first run took one)."""
    taken = _epochs(os.path.join(checkpoint, EPOCHS_DIR))
    return taken[-1] if taken else None


@dataclass(frozen=True)
class EpochFence:
    """One run's epoch in one checkpoint; :meth:`check` before publishing anything.

    Example:
        >>> import tempfile
        >>> cp = tempfile.mkdtemp()
        >>> first = EpochFence.take(cp, "run-a")
        >>> first.check("offsets/0")
        >>> second = EpochFence.take(cp, "run-b")
        >>> (first.epoch, second.epoch)
        (0, 1)
        >>> first.check("offsets/1")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unbounded.errors.CheckpointConflictError: Epoch conflict: this run holds epoch 0 ...
    """

    checkpoint: str
    epoch: int

    @property
    def folder(self) -> str:
        return os.path.join(self.checkpoint, EPOCHS_DIR)

    @functools.cached_property
    def _paths(self) -> tuple[str, str]:
        """This epoch's file and the next one's: what :meth:`check` stats."""
        return (os.path.join(self.folder, str(self.epoch)),
                os.path.join(self.folder, str(self.epoch + 1)))

    @classmethod
    def take(cls, checkpoint: str, run_id: str, *, expected: int | None = None) -> EpochFence:
        """Publish a new epoch above every earlier one and register it for this process.

        ``expected``: the epoch the run lease was checked for (one above the epoch whose
        lease had expired); another run that took an epoch since wins, and this one is
        refused rather than fencing it."""
        folder = os.path.join(checkpoint, EPOCHS_DIR)
        storage_for(folder).make_folder(folder)
        taken = _epochs(folder)
        epoch = taken[-1] + 1 if taken else 0
        if expected is not None and epoch != expected:
            _raise_taken(expected, folder)
        body = {"epoch": epoch, "runId": run_id, "pid": os.getpid(),
                "host": socket.gethostname(), "startedAtMs": int(time.time() * 1000)}
        path = os.path.join(folder, str(epoch))
        try:
            write_checked(path, f"{_VERSION}\n{json.dumps(body, separators=(',', ':'))}".encode())
        except CheckpointConflictError:
            _raise_taken(epoch, folder)
        # An older epoch a power cut brings back is below the newest, which no check
        # reads: the removal needs no folder fsync of its own (one journal in order).
        for old in taken:
            remove_checked(os.path.join(folder, str(old)), sync_now=False)
        fence = cls(normalize_location(checkpoint), epoch)
        with _registry_lock:
            _registry[fence.checkpoint] = fence
        return fence

    def check(self, what: str) -> None:
        """Raise ``CheckpointConflictError`` if a newer run has taken an epoch since.

        ``what`` names the write that is refused, for the message."""
        own, newer = self._paths
        store = storage_for(own)
        if store.exists(own) and not store.exists(newer):
            return
        raise CheckpointConflictError(
            f"Epoch conflict: this run holds epoch {self.epoch} of the checkpoint "
            f"{self.checkpoint}, but a newer run has started since (newest epoch: "
            f"{newest_epoch(self.checkpoint)}); it was paused or cut off while the newer "
            f"run took over, so it stops without writing {what}. The newer run owns the "
            "checkpoint; nothing needs repair.",
            error_class="CHECKPOINT_EPOCH_FENCED")

    def record(self) -> dict[str, Any]:
        """The epoch file's fields (which run took it, when), for diagnostics; a file of
        another version or a damaged one raises ``CheckpointCorruptError``."""
        path = self._paths[0]
        version, _, body = read_checked_text(path).partition("\n")
        if version.strip() != _VERSION:
            raise CheckpointCorruptError(
                f"{path} starts with {version[:20]!r}, not {_VERSION!r}: written by another "
                "version of unbounded, or damaged. " + RECOVERY_HINT)
        try:
            fields = json.loads(body)
        except ValueError as e:
            raise CheckpointCorruptError(f"{path} is not an epoch record ({e}). "
                                         + RECOVERY_HINT) from e
        if not isinstance(fields, dict):
            raise CheckpointCorruptError(f"{path} is not an epoch record. " + RECOVERY_HINT)
        return fields

    def release(self) -> None:
        """Forget this fence in the registry (the run ended); its epoch file stays."""
        with _registry_lock:
            if _registry.get(self.checkpoint) is self:
                del _registry[self.checkpoint]


def _raise_taken(epoch: int, folder: str) -> NoReturn:
    raise ConcurrentQueryError(
        f"Another run of this query took epoch {epoch} ({os.path.join(folder, str(epoch))}) "
        "while this one was starting. Stop the other run first, or use another "
        "checkpointLocation.")


def fence_for(path: str | None) -> EpochFence | None:
    """The fence of this process's live run whose checkpoint holds ``path`` (or is it).

    None outside a run (a store or sink used on its own), where there is nothing to fence."""
    if path is None:
        return None
    current = normalize_location(path)
    with _registry_lock:
        while True:
            fence = _registry.get(current)
            if fence is not None:
                return fence
            parent = os.path.dirname(current)
            if parent == current:
                return None
            current = parent
