"""The run lock of a checkpoint URL: a lease in the checkpoint plus epoch fencing, on a
real S3 server (moto on loopback, through s3fs); and on a local path, the flock alone or
(a shared file system) the flock and a lease."""

from __future__ import annotations

import os
import time

import pytest

from unbounded.checkpoint import epoch as epoch_module
from unbounded.checkpoint.epoch import EpochFence, newest_epoch
from unbounded.checkpoint.lock import LEASES_DIR, CheckpointLock, LeaseRecord
from unbounded.checkpoint.storage import storage_for
from unbounded.errors import CheckpointConflictError, CheckpointCorruptError, ConcurrentQueryError


class Driver:
    """One driver's start-up and shutdown, as ``StreamExecution`` does them."""

    def __init__(self, checkpoint: str, run_id: str, timeout_ms: int = 60_000, *,
                 lease_on_local_path: bool = False) -> None:
        self.run_id = run_id
        self.lock = CheckpointLock(checkpoint, lease_timeout_ms=timeout_ms,
                                   lease_on_local_path=lease_on_local_path)
        self.checkpoint = checkpoint
        self.fence: EpochFence | None = None

    def start(self) -> Driver:
        self.lock.acquire()
        self.fence = EpochFence.take(self.checkpoint, self.run_id,
                                     expected=self.lock.next_epoch)
        self.lock.hold(self.fence, self.run_id)
        return self

    def stop(self) -> None:
        self.lock.release()
        if self.fence is not None:
            self.fence.release()

    def die(self) -> None:
        """Stop refreshing without ending the lease: what a SIGKILLed driver leaves."""
        lease = self.lock._lease
        assert lease is not None and lease._thread is not None
        lease._stop.set()
        lease._thread.join()
        lease._thread = None
        assert self.fence is not None
        self.fence.release()


@pytest.fixture
def checkpoint(s3_bucket):
    return f"{s3_bucket}/cp"


def _lease(checkpoint: str, epoch: int) -> LeaseRecord:
    path = os.path.join(checkpoint, LEASES_DIR, str(epoch))
    return LeaseRecord.decode(path, storage_for(path).read(path))


def test_a_second_driver_is_refused_while_the_first_holds_the_lease(checkpoint):
    first = Driver(checkpoint, "run-a").start()
    try:
        lease = _lease(checkpoint, 0)
        assert (lease.run_id, lease.epoch) == ("run-a", 0)
        assert lease.expires_at_ms > time.time() * 1000 + 50_000
        with pytest.raises(ConcurrentQueryError, match=r"run run-a, epoch 0.*holds the lease"):
            Driver(checkpoint, "run-b").start()
        assert newest_epoch(checkpoint) == 0  # the refused driver took no epoch
        first.fence.check("offsets/0")  # type: ignore[union-attr]
    finally:
        first.stop()


def test_a_clean_stop_ends_the_lease_so_the_next_run_starts_at_once(checkpoint):
    first = Driver(checkpoint, "run-a").start()
    first.stop()
    assert _lease(checkpoint, 0).expires_at_ms <= time.time() * 1000
    second = Driver(checkpoint, "run-b").start()
    try:
        assert second.fence is not None and second.fence.epoch == 1
        assert storage_for(checkpoint).list(os.path.join(checkpoint, LEASES_DIR)) == ["1"]
    finally:
        second.stop()


def test_the_running_driver_refreshes_its_lease(checkpoint):
    first = Driver(checkpoint, "run-a", timeout_ms=3000).start()
    try:
        written = _lease(checkpoint, 0).expires_at_ms
        time.sleep(1.5)  # a refresh of a 3 s lease comes every second
        assert _lease(checkpoint, 0).expires_at_ms > written
        with pytest.raises(ConcurrentQueryError):
            Driver(checkpoint, "run-b", timeout_ms=3000).start()
    finally:
        first.stop()


def test_after_a_dead_drivers_lease_expires_a_new_driver_takes_over_and_fences_it(checkpoint):
    old = Driver(checkpoint, "run-a", timeout_ms=2000).start()
    old.die()
    with pytest.raises(ConcurrentQueryError, match="holds the lease"):
        Driver(checkpoint, "run-b", timeout_ms=2000).start()
    time.sleep(2.1)
    new = Driver(checkpoint, "run-b", timeout_ms=2000).start()
    try:
        assert new.fence is not None and new.fence.epoch == 1
        with pytest.raises(CheckpointConflictError, match="newer run has started"):
            old.fence.check("commits/3")  # type: ignore[union-attr]
        new.fence.check("commits/3")
    finally:
        new.stop()


def test_of_two_drivers_racing_for_an_expired_lease_one_takes_the_epoch(checkpoint):
    """Both see the lease of epoch 0 expired; only one may take epoch 1, and the other
    is refused rather than fencing the winner with epoch 2."""
    Driver(checkpoint, "run-a", timeout_ms=200).start().die()
    time.sleep(0.3)
    one = Driver(checkpoint, "run-b")
    two = Driver(checkpoint, "run-c")
    one.lock.acquire()
    two.lock.acquire()  # both pass the lease check before either took an epoch
    assert one.lock.next_epoch == two.lock.next_epoch == 1
    one.fence = EpochFence.take(checkpoint, "run-b", expected=1)
    try:
        with pytest.raises(ConcurrentQueryError, match=r"took epoch 1 \(s3://.*/epochs/1\)"):
            EpochFence.take(checkpoint, "run-c", expected=two.lock.next_epoch)
        one.fence.check("offsets/0")
        assert newest_epoch(checkpoint) == 1
    finally:
        one.fence.release()


def test_the_conditional_create_refuses_a_second_writer_of_one_epoch(checkpoint,
                                                                      monkeypatch):
    """Two drivers that listed the epochs in the same instant both try ``epochs/1``: S3
    refuses the second conditional PUT, so they cannot both hold epoch 1."""
    first = EpochFence.take(checkpoint, "run-a")
    second = EpochFence.take(checkpoint, "run-b")
    try:
        monkeypatch.setattr(epoch_module, "_epochs", lambda folder: [0])  # a stale listing
        with pytest.raises(ConcurrentQueryError, match=r"took epoch 1 \(s3://.*/epochs/1\)"):
            EpochFence.take(checkpoint, "run-c")
        monkeypatch.undo()
        assert second.record()["runId"] == "run-b"
        second.check("offsets/0")
    finally:
        first.release()
        second.release()


def test_an_epoch_whose_driver_died_before_its_lease_expires_a_timeout_after_its_start(
        checkpoint):
    fence = EpochFence.take(checkpoint, "run-a")  # no lease written: died right after
    try:
        with pytest.raises(ConcurrentQueryError, match="run run-a, epoch 0"):
            Driver(checkpoint, "run-b").start()
        Driver(checkpoint, "run-b", timeout_ms=1).lock.acquire()  # long expired by then
    finally:
        fence.release()


def test_a_damaged_lease_is_a_corrupt_checkpoint_error_naming_its_url(checkpoint):
    Driver(checkpoint, "run-a").start().stop()
    path = f"{checkpoint}/{LEASES_DIR}/0"
    storage_for(path).replace(path, b"v1\n{\"runId\":")
    with pytest.raises(CheckpointCorruptError, match=rf"The run lease {path} is damaged"):
        Driver(checkpoint, "run-b").start()


def _drop_flock(driver: Driver) -> None:
    """What a node of a shared file system that does not carry ``flock`` sees: no lock."""
    fd = driver.lock._fd
    assert fd is not None
    os.close(fd)
    driver.lock._fd = None


def test_a_local_path_keeps_its_flock_and_writes_no_lease_by_default(tmp_path):
    checkpoint = str(tmp_path / "cp")
    os.makedirs(checkpoint)
    first = Driver(checkpoint, "run-a").start()
    try:
        with pytest.raises(ConcurrentQueryError, match="Another run of this query is active"):
            Driver(checkpoint, "run-b").start()
        assert not os.path.exists(os.path.join(checkpoint, LEASES_DIR))
    finally:
        first.stop()


def test_on_a_shared_file_system_the_lease_refuses_a_driver_the_flock_does_not(tmp_path):
    checkpoint = str(tmp_path / "cp")
    os.makedirs(checkpoint)
    first = Driver(checkpoint, "run-a", lease_on_local_path=True).start()
    try:
        assert _lease(checkpoint, 0).run_id == "run-a"
        _drop_flock(first)
        second = Driver(checkpoint, "run-b", lease_on_local_path=True)
        with pytest.raises(ConcurrentQueryError, match=r"run run-a, epoch 0.*holds the lease"):
            second.start()
        assert second.lock._fd is None  # the refused driver let its flock go
        first.fence.check("offsets/0")  # type: ignore[union-attr]
    finally:
        first.stop()
    third = Driver(checkpoint, "run-c", lease_on_local_path=True).start()
    try:
        assert third.fence is not None and third.fence.epoch == 1
    finally:
        third.stop()
