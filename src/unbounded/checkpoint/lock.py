"""The run lock: at most one live run of a query per checkpoint.

A local checkpoint folder: an exclusive ``flock`` on ``<checkpoint>/.lock``; the kernel
releases it when the process dies (even by SIGKILL), so a crashed run never blocks its
restart. Once held, temp files an interrupted write left in the checkpoint's root are
removed: no later write may go there (``metadata`` is written once), so the lazy
clean-up of ``atomic.py`` would never reach them.

A checkpoint URL (an object store, reached from every node; no ``flock`` there), or a
local path on a shared file system with ``spark.unbounded.checkpoint.leaseOnLocalPath``
(NFS and the like may not carry ``flock`` between nodes; the ``flock`` stays): a lease,
:class:`RunLease`. The run of epoch ``n`` (``checkpoint/epoch.py``) keeps
``leases/<n>`` alive by rewriting its expiry every third of the lease timeout
(``spark.unbounded.checkpoint.leaseTimeoutMs``, default 60 s). A driver that starts reads
the lease of the newest epoch: while it is live, the driver refuses to start; once it
expired (its run died, or was cut off from the store) the driver takes the next epoch
with a conditional create, so of two drivers racing for one expired lease only one
wins, and a paused old run is fenced at its next publish. Each run writes only its own
epoch's lease, so a stale run can never extend a newer one's. A run that stops ends its
lease at once, so a clean restart need not wait. Expiries are wall-clock times: the
timeout must be longer than the clock skew between the nodes.

Format of ``leases/<n>`` (replaced whole: an object PUT is atomic)::

    v1
    {"runId":"5f1c...","epoch":3,"host":"node-1","pid":4242,"expiresAtMs":1700000060000}
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from unbounded.checkpoint.atomic import remove_stray_temps
from unbounded.checkpoint.checksum import RECOVERY_HINT
from unbounded.checkpoint.epoch import EpochFence, newest_epoch
from unbounded.checkpoint.storage import is_url, storage_for
from unbounded.errors import CheckpointConflictError, CheckpointCorruptError, ConcurrentQueryError

__all__ = ["DEFAULT_LEASE_TIMEOUT_MS", "LEASES_DIR", "CheckpointLock", "LeaseRecord", "RunLease"]

log = logging.getLogger(__name__)

DEFAULT_LEASE_TIMEOUT_MS = 60_000
LEASES_DIR = "leases"
_VERSION = "v1"


def _now_ms() -> int:
    return int(time.time() * 1000)


class CheckpointLock:
    """The run lock of one checkpoint: ``flock`` for a folder, a lease for a URL.

    ``acquire`` before the run takes its epoch (``EpochFence.take(..., expected=
    lock.next_epoch)``), ``hold(fence)`` once it has, ``release`` when it ends."""

    def __init__(self, checkpoint: str, *, lease_timeout_ms: int = DEFAULT_LEASE_TIMEOUT_MS,
                 lease_on_local_path: bool = False) -> None:
        """``lease_on_local_path``: hold a lease on a local path too, besides the
        ``flock``, for a shared file system whose locks other nodes may not see
        (``spark.unbounded.checkpoint.leaseOnLocalPath``)."""
        self.checkpoint = checkpoint
        self.path = os.path.join(checkpoint, ".lock")
        self._fd: int | None = None
        leased = is_url(checkpoint) or lease_on_local_path
        self._lease = RunLease(checkpoint, lease_timeout_ms) if leased else None
        self.next_epoch: int | None = None
        """Under a lease, the epoch the run must take: one above the lease it found
        expired (None without a lease: the ``flock`` already excludes other runs)."""

    def acquire(self) -> None:
        if not is_url(self.checkpoint):
            self._flock()
        if self._lease is None:
            return
        try:
            self.next_epoch = self._lease.refuse_if_held()
        except BaseException:
            self.release()
            raise

    def _flock(self) -> None:
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

    def hold(self, fence: EpochFence, run_id: str) -> None:
        """Start keeping the lease of ``fence``'s epoch alive (a no-op without a lease:
        the ``flock`` lasts as long as the process)."""
        if self._lease is not None:
            self._lease.hold(fence, run_id)

    def release(self) -> None:
        if self._lease is not None:
            self._lease.release()
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class LeaseRecord:
    """One lease file's fields."""

    run_id: str
    epoch: int
    expires_at_ms: int
    host: str = ""
    pid: int = 0

    def encode(self) -> bytes:
        body = {"runId": self.run_id, "epoch": self.epoch, "host": self.host,
                "pid": self.pid, "expiresAtMs": self.expires_at_ms}
        return f"{_VERSION}\n{json.dumps(body, separators=(',', ':'))}".encode()

    @classmethod
    def decode(cls, path: str, data: bytes) -> LeaseRecord:
        """Parse a lease file; another version or a damaged file names ``path``."""
        version, _, body = data.decode("utf-8", errors="replace").partition("\n")
        try:
            if version.strip() != _VERSION:
                raise ValueError(f"version {version[:20]!r}, not {_VERSION!r}")
            f = json.loads(body)
            return cls(str(f["runId"]), int(f["epoch"]), int(f["expiresAtMs"]),
                       str(f.get("host", "")), int(f.get("pid", 0)))
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointCorruptError(
                f"The run lease {path} is damaged ({e}). Delete it if no run of this "
                "query is active; otherwise " + RECOVERY_HINT) from e


class RunLease:
    """The lease that keeps a second driver off a checkpoint URL (module docstring)."""

    def __init__(self, checkpoint: str, timeout_ms: int) -> None:
        self.checkpoint = checkpoint
        self.timeout_ms = timeout_ms
        self.folder = os.path.join(checkpoint, LEASES_DIR)
        self._record: LeaseRecord | None = None
        self._fence: EpochFence | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def path(self, epoch: int) -> str:
        return os.path.join(self.folder, str(epoch))

    def current(self) -> LeaseRecord | None:
        """The lease of the newest epoch; for an epoch whose run died before writing its
        lease, one that expires a timeout after that run started."""
        epoch = newest_epoch(self.checkpoint)
        if epoch is None:
            return None
        path = self.path(epoch)
        try:
            return LeaseRecord.decode(path, storage_for(path).read(path))
        except FileNotFoundError:
            fields = EpochFence(self.checkpoint, epoch).record()
            return LeaseRecord(str(fields.get("runId", "")), epoch,
                               int(fields.get("startedAtMs", 0)) + self.timeout_ms,
                               str(fields.get("host", "")), int(fields.get("pid", 0)))

    def refuse_if_held(self) -> int:
        """Raise ``ConcurrentQueryError`` while another run's lease is live; else the
        epoch to take (the one after the expired lease's)."""
        lease = self.current()
        now = _now_ms()
        if lease is None:
            return 0
        if lease.expires_at_ms <= now:
            return lease.epoch + 1
        raise ConcurrentQueryError(
            f"Another run of this query (run {lease.run_id}, epoch {lease.epoch}, on host "
            f"{lease.host or '?'} pid {lease.pid}) holds the lease of the checkpoint "
            f"{self.checkpoint} for {(lease.expires_at_ms - now) / 1000:.1f} s more. Stop "
            "it first; if it died, start this query again once its lease has expired "
            "(spark.unbounded.checkpoint.leaseTimeoutMs), or use another "
            "checkpointLocation.")

    def hold(self, fence: EpochFence, run_id: str) -> None:
        """Write this run's lease, drop older epochs' leases, then refresh it until
        :meth:`release`."""
        self._fence = fence
        self._record = LeaseRecord(run_id, fence.epoch, 0, socket.gethostname(), os.getpid())
        self._write(_now_ms() + self.timeout_ms)
        store = storage_for(self.folder)
        for name in store.list(self.folder):
            if name.isdigit() and int(name) < fence.epoch:
                store.delete(self.path(int(name)))
        self._thread = threading.Thread(target=self._keep_alive, daemon=True,
                                        name=f"unbounded-lease-{fence.epoch}")
        self._thread.start()

    def _write(self, expires_at_ms: int) -> None:
        assert self._record is not None
        record = LeaseRecord(self._record.run_id, self._record.epoch, expires_at_ms,
                             self._record.host, self._record.pid)
        path = self.path(record.epoch)
        storage_for(path).replace(path, record.encode())

    def _keep_alive(self) -> None:
        """Refresh every third of the timeout; stop once a newer run took over."""
        while not self._stop.wait(self.timeout_ms / 3000):
            assert self._fence is not None
            try:
                self._fence.check("its run lease")
                self._write(_now_ms() + self.timeout_ms)
            except CheckpointConflictError:
                log.warning("A newer run took over the checkpoint %s; this run's lease "
                            "is no longer refreshed", self.checkpoint)
                return
            except OSError:  # the store is unreachable: the next refresh tries again
                log.warning("Refreshing the run lease of %s failed", self.checkpoint,
                            exc_info=True)

    def release(self) -> None:
        """Stop refreshing and end the lease now, so the next run need not wait."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        try:
            assert self._fence is not None
            self._fence.check("the end of its run lease")
            self._write(_now_ms())
        except (CheckpointConflictError, OSError):
            log.warning("Could not end the run lease of %s; the next run waits for it to "
                        "expire", self.checkpoint, exc_info=True)
