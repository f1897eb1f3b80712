"""A file source's log entry and the ``offsets/N`` entry naming it made durable by one
folder fsync where the file system's one journal keeps names in order across folders,
and the sidecar's and entry's data fsynced together (issue 15); what a power cut between
any two steps leaves, and that recovery reads it as written or never written."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from unbounded.checkpoint import atomic, checksum
from unbounded.checkpoint.checksum import (
    deferred_folder_syncs,
    read_checked,
    remove_checked,
    sidecar_path,
    sync_deferred,
    write_checked,
)
from unbounded.checkpoint.epoch import EpochFence
from unbounded.checkpoint.logs import CommitEntry, CommitLog, OffsetEntry, OffsetLog
from unbounded.errors import CheckpointConflictError
from unbounded.files.listing import DataFile
from unbounded.sources.files import FileSourceLog

__all__: list[str] = []


class JournalOps(atomic.FileOps):
    """Records fsyncs and every name made or removed, in order, with its bytes.

    ``across``: names keep their order across folders (one journal, as ext4); otherwise
    only within a folder (as btrfs), or not at all with ``ordered=False``."""

    def __init__(self, *, across: bool, ordered: bool = True) -> None:
        self.across, self.ordered = across, ordered
        self.calls: list[tuple[str, str]] = []
        self.names: list[tuple[str, str, bytes | None]] = []
        self.synced: set[str] = set()

    def keeps_name_order(self, folder: str) -> bool:
        return self.ordered

    def keeps_order_across(self, folder: str, other: str) -> bool:
        return self.across

    def fsync(self, f: BinaryIO, path: str) -> None:
        super().fsync(f, path)
        self.calls.append(("fsync", path))
        self.synced.add(path)

    def fsync_dir(self, path: str) -> None:
        super().fsync_dir(path)
        self.calls.append(("fsync_dir", path))
        self.names.append(("fsync_dir", path, None))

    def link(self, src: str, dst: str) -> None:
        assert src in self.synced, "a name is made only for fsynced data"
        super().link(src, dst)
        self.names.append(("name", dst, Path(dst).read_bytes()))

    def replace(self, src: str, dst: str) -> None:
        assert src in self.synced, "a name is made only for fsynced data"
        super().replace(src, dst)
        self.names.append(("name", dst, Path(dst).read_bytes()))

    def unlink(self, path: str) -> None:
        super().unlink(path)
        self.names.append(("unlink", path, None))

    def folder_syncs(self) -> list[str]:
        return [p for k, p in self.calls if k == "fsync_dir"]


@pytest.fixture(autouse=True)
def _no_pending() -> None:
    checksum._pending.clear()


def _install(monkeypatch: pytest.MonkeyPatch, ops: JournalOps) -> JournalOps:
    monkeypatch.setattr(atomic, "file_ops", ops)
    return ops


def _batch(log: FileSourceLog, offsets: OffsetLog, batch_id: int) -> None:
    """What the trigger does: the source logs its files (deferred), then offsets/N."""
    with deferred_folder_syncs():
        log.add(batch_id, [DataFile(f"/in/{batch_id}.parquet", 10, 1000 + batch_id)])
    offsets.add(batch_id, OffsetEntry([{"logOffset": batch_id}], 1_700_000_000_000))


def _logs(root: Path) -> tuple[FileSourceLog, OffsetLog]:
    return FileSourceLog(str(root / "sources" / "0")), OffsetLog(str(root / "offsets"))


def test_a_source_log_entry_and_its_offsets_entry_share_one_folder_fsync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, offsets = _logs(tmp_path)
    _batch(log, offsets, 0)  # the folders' first writes: their markers
    ops = _install(monkeypatch, JournalOps(across=True))
    _batch(log, offsets, 1)
    assert ops.folder_syncs() == [str(tmp_path / "offsets")]
    assert [k for k, _ in ops.calls].count("fsync") == 4  # two sidecars, two entries
    assert checksum._pending == []


def test_where_order_holds_only_within_a_folder_the_source_log_folder_is_fsynced_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, offsets = _logs(tmp_path)
    _batch(log, offsets, 0)
    ops = _install(monkeypatch, JournalOps(across=False))
    _batch(log, offsets, 1)
    assert ops.folder_syncs() == [str(tmp_path / "sources" / "0"), str(tmp_path / "offsets")]
    made = [os.path.basename(os.path.dirname(p)) + "/" + os.path.basename(p)
            for k, p, _ in ops.names if k == "name"]
    assert made == ["0/.1.crc32c", "0/1", "offsets/.1.crc32c", "offsets/1"]


def test_a_deferred_folder_on_another_file_system_is_fsynced_before_the_next_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deferred where its own journal keeps order, but the next write is elsewhere."""
    log, offsets = _logs(tmp_path)
    _batch(log, offsets, 0)
    source_folder = str(tmp_path / "sources" / "0")

    class TwoDisks(JournalOps):
        def keeps_order_across(self, folder: str, other: str) -> bool:
            return folder == other == source_folder

    ops = _install(monkeypatch, TwoDisks(across=False))
    _batch(log, offsets, 1)
    kinds = [(k, p) for k, p, _ in ops.names]
    synced = kinds.index(("fsync_dir", source_folder))
    assert synced < kinds.index(("name", str(tmp_path / "offsets" / ".1.crc32c")))
    assert ops.folder_syncs() == [source_folder, str(tmp_path / "offsets")]


def _survivors(names: list[tuple[str, str, bytes | None]], keep: int
               ) -> list[tuple[str, str, bytes | None]]:
    """One journal committed in order: a cut keeps every name up to the last folder
    fsync, then the first ``keep`` of those after it."""
    synced = max((i for i, (k, _, _) in enumerate(names) if k == "fsync_dir"), default=-1)
    return names[:synced + 1] + names[synced + 1:][:keep]


def _rebuild(before: dict[str, bytes], names: list[tuple[str, str, bytes | None]],
             root: Path, into: Path) -> None:
    state = dict(before)
    for kind, path, data in names:
        rel = os.path.relpath(path, root)
        if kind == "unlink":
            state.pop(rel, None)
        elif kind == "name":
            assert data is not None
            state[rel] = data
    for rel, data in state.items():
        (into / rel).parent.mkdir(parents=True, exist_ok=True)
        (into / rel).write_bytes(data)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {os.path.relpath(os.path.join(d, n), root): Path(d, n).read_bytes()
            for d, _, names in os.walk(root) for n in names}


def test_every_cut_of_a_grouped_batch_reads_as_written_or_as_never_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cut at each step between the source log's sidecar and the offsets folder fsync,
    on a file system whose one journal keeps names in order: offsets/1 survives only with
    the source log entry it names (and both verify); a source log entry without offsets/1
    verifies and is handed out again, or is gone and written again (the batch is re-planned)."""
    root = tmp_path / "cp"
    log, offsets = _logs(root)
    _batch(log, offsets, 0)
    before = _snapshot(root)
    ops = _install(monkeypatch, JournalOps(across=True))
    _batch(log, offsets, 1)
    names = [n for n in ops.names if not os.path.basename(n[1]).endswith(".tmp")]
    written = {"src": (root / "sources" / "0" / "1").read_bytes(),
               "off": (root / "offsets" / "1").read_bytes()}
    for keep in range(len(names) + 1):
        cut = tmp_path / f"cut-{keep}"
        cut.mkdir()
        _rebuild(before, _survivors(names[:-1], keep), root, cut)
        src, off = cut / "sources" / "0" / "1", cut / "offsets" / "1"
        if off.exists():
            assert src.exists(), f"cut {keep}: offsets/1 names a lost source log entry"
            assert read_checked(str(off)) == written["off"]
        if src.exists():
            assert read_checked(str(src)) == written["src"]
            assert Path(sidecar_path(str(src))).exists()
        else:  # the re-planned batch writes it again
            FileSourceLog(str(cut / "sources" / "0")).add(
                1, [DataFile("/in/1.parquet", 10, 1001)])
            assert read_checked(str(src)) == written["src"]
        assert OffsetLog(str(cut / "offsets")).batch_ids() == ([0, 1] if off.exists() else [0])


def test_a_compaction_after_a_deferred_entry_keeps_the_compacted_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Removals after a deferred write fsync their folder, which makes the deferred names
    durable first (the same journal), and clear them."""
    ops = _install(monkeypatch, JournalOps(across=True))
    log = FileSourceLog(str(tmp_path / "sources" / "0"))
    with deferred_folder_syncs():
        for batch in range(10):  # 9.compact, then removing 0-8
            log.add(batch, [DataFile(f"/in/{batch}.parquet", 10, 1000 + batch)])
    log.close()  # the removals run on a background thread
    kinds = [(k, os.path.basename(p)) for k, p, _ in ops.names]
    compact, first_removal = kinds.index(("name", "9.compact")), kinds.index(("unlink", "0"))
    sync = kinds.index(("fsync_dir", "0"), first_removal)
    assert compact < first_removal < sync
    assert checksum._pending == []


def test_sync_deferred_fsyncs_what_is_left(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ops = _install(monkeypatch, JournalOps(across=True))
    with deferred_folder_syncs():
        write_checked(str(tmp_path / "0"), b"v1\n{}")
    ops.calls.clear()
    sync_deferred()
    assert ops.folder_syncs() == [str(tmp_path)]
    assert checksum._pending == []


def test_a_deferred_folder_removed_since_is_skipped_and_the_others_still_fsynced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pending list is the process's: one query's end (or next write) may meet the
    folder of another query's temporary checkpoint, deleted when that query stopped."""
    import shutil

    ops = _install(monkeypatch, JournalOps(across=True))
    gone, kept = tmp_path / "temporary" / "epochs", tmp_path / "kept"
    with deferred_folder_syncs():
        write_checked(str(gone / "0"), b"v1\n{}")
        write_checked(str(kept / "0"), b"v1\n{}")
    shutil.rmtree(tmp_path / "temporary")
    ops.calls.clear()
    sync_deferred()
    assert ops.folder_syncs() == [str(kept)]
    assert checksum._pending == []


def test_nothing_is_deferred_where_names_may_be_reordered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ops = _install(monkeypatch, JournalOps(across=False, ordered=False))
    write_checked(str(tmp_path / "0"), b"v1\n{}")
    ops.calls.clear()
    with deferred_folder_syncs():
        write_checked(str(tmp_path / "1"), b"v1\n{}")
    assert ops.folder_syncs() == [str(tmp_path), str(tmp_path)]  # sidecar, entry
    assert checksum._pending == []


def test_the_sidecar_and_entry_data_are_both_fsynced_before_either_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ops = _install(monkeypatch, JournalOps(across=True))
    write_checked(str(tmp_path / "0"), b"v1\n{}")
    ops.calls.clear()
    ops.names.clear()
    write_checked(str(tmp_path / "1"), b"v1\n{\"a\":1}")
    assert [k for k, _ in ops.calls] == ["fsync", "fsync", "fsync_dir"]
    assert [os.path.basename(p) for k, p, _ in ops.names if k == "name"] == [".1.crc32c", "1"]
    assert read_checked(str(tmp_path / "1")) == b"v1\n{\"a\":1}"
    assert sorted(os.listdir(tmp_path)) == [".0.crc32c", ".1.crc32c", ".crc32c-from", "0", "1"]


def test_a_failed_data_fsync_leaves_no_name_and_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FailingSidecar(JournalOps):
        def fsync(self, f: BinaryIO, path: str) -> None:
            if ".crc32c." in os.path.basename(path):
                raise OSError(5, "Input/output error", path)
            super().fsync(f, path)

    write_checked(str(tmp_path / "0"), b"v1\n{}")
    _install(monkeypatch, FailingSidecar(across=True))
    with pytest.raises(OSError, match="Input/output"):
        write_checked(str(tmp_path / "1"), b"v1\n{}")
    assert sorted(os.listdir(tmp_path)) == [".0.crc32c", ".crc32c-from", "0"]


def test_a_second_writer_of_an_entry_is_refused_and_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "3")
    atomic.write_atomic(path, b"v1\nother")
    with pytest.raises(CheckpointConflictError, match="already written"):
        atomic.write_atomic_after(str(tmp_path / ".3.crc32c"), b"x", path, b"v1\n{}",
                                  sync_between=False)
    assert sorted(os.listdir(tmp_path)) == [".3.crc32c", "3"]
    assert Path(path).read_bytes() == b"v1\nother"


def test_removal_is_unchanged_by_grouping(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ops = _install(monkeypatch, JournalOps(across=True))
    paths = [str(tmp_path / str(i)) for i in range(3)]
    for path in paths:
        write_checked(path, b"v1\n{}")
    ops.calls.clear()
    remove_checked(*paths)
    assert ops.calls == [("fsync_dir", str(tmp_path))]


def _visible(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if not atomic.is_temp_name(n))


def test_a_prepared_commit_is_only_temporary_files_until_published(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """commits/N's bytes are fsynced while the sink writes; a kill or cut before it is
    published leaves temporary files alone (the batch re-runs, a restart removes them)."""
    log = CommitLog(str(tmp_path / "commits"))
    log.add(0, CommitEntry(0))
    ops = _install(monkeypatch, JournalOps(across=True))
    prepared = log.prepare(1, CommitEntry(5000))
    assert _visible(tmp_path / "commits") == [".0.crc32c", ".crc32c-from", "0"]
    assert not [k for k, _, _ in ops.names if k == "name"]
    assert log.batch_ids() == [0]
    prepared.publish()
    assert log.batch_ids() == [0, 1]
    assert log.get(1) == CommitEntry(5000)
    assert [os.path.basename(p) for k, p, _ in ops.names if k == "name"] == [".1.crc32c", "1"]
    assert ops.folder_syncs() == [str(tmp_path / "commits")]
    assert sorted(os.listdir(tmp_path / "commits")) == [
        ".0.crc32c", ".1.crc32c", ".crc32c-from", "0", "1"]


def test_a_discarded_or_refused_commit_leaves_no_file(tmp_path: Path) -> None:
    log = CommitLog(str(tmp_path / "commits"))
    log.add(0, CommitEntry(0))
    log.prepare(1, CommitEntry(5)).discard()
    assert sorted(os.listdir(tmp_path / "commits")) == [".0.crc32c", ".crc32c-from", "0"]
    late = log.prepare(1, CommitEntry(5))
    log.add(1, CommitEntry(7))  # another run named commits/1 meanwhile
    with pytest.raises(CheckpointConflictError, match="already written"):
        late.publish()
    assert sorted(os.listdir(tmp_path / "commits")) == [
        ".0.crc32c", ".1.crc32c", ".crc32c-from", "0", "1"]
    assert log.get(1) == CommitEntry(7)


def test_temporary_files_a_killed_run_left_before_publishing_are_removed_on_restart(
        tmp_path: Path) -> None:
    folder = tmp_path / "commits"
    CommitLog(str(folder)).add(0, CommitEntry(0))
    CommitLog(str(folder)).prepare(1, CommitEntry(5))  # the run is killed here
    assert len(os.listdir(folder)) == 5  # the two temporary files too
    assert atomic.remove_stray_temps(str(folder))  # what a new process's first write does
    assert sorted(os.listdir(folder)) == [".0.crc32c", ".crc32c-from", "0"]
    assert CommitLog(str(folder)).batch_ids() == [0]


def test_a_forked_child_writes_with_its_own_fsync_threads(tmp_path: Path) -> None:
    """The parent's pool threads do not exist in a fork: a child that reused the pool
    would wait forever for its sidecar's fsync."""
    write_checked(str(tmp_path / "0"), b"v1\n{}")  # the parent's pool has a thread now
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        write_checked(str(tmp_path / "1"), b"v1\n{}")
        os._exit(0)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0
    assert read_checked(str(tmp_path / "1")) == b"v1\n{}"


def test_an_entry_is_still_written_once_the_fsync_pool_takes_no_work(tmp_path: Path) -> None:
    """At interpreter exit the pool refuses new work; a query thread still writing then
    fsyncs inline instead of failing its batch."""
    atomic._fsync_pool().shutdown()
    try:
        write_checked(str(tmp_path / "0"), b"v1\n{}")
        log = CommitLog(str(tmp_path / "commits"))
        log.prepare(0, CommitEntry(3)).publish()
    finally:
        atomic._pool._forget()
    assert read_checked(str(tmp_path / "0")) == b"v1\n{}"
    assert log.get(0) == CommitEntry(3)


def _take_second_epoch(cp: Path, ops: JournalOps, monkeypatch: pytest.MonkeyPatch) -> None:
    EpochFence.take(str(cp), "run-a")
    _install(monkeypatch, ops)
    with deferred_folder_syncs():  # as a run's start does
        EpochFence.take(str(cp), "run-b")


def test_a_new_epoch_and_the_older_one_s_removal_ride_on_the_next_folder_fsync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart's epoch (start-up, issue 15): on a journal that keeps names in order
    across folders, ``epochs/1`` and the removal of ``epochs/0`` are made durable by the
    next checked write's folder fsync; a cut before it keeps a prefix of the names (the
    run never started, or an older epoch is back below the newest)."""
    cp = tmp_path / "cp"
    ops = JournalOps(across=True)
    _take_second_epoch(cp, ops, monkeypatch)
    assert ops.folder_syncs() == []
    assert sorted(os.listdir(cp / "epochs")) == [".1.crc32c", ".crc32c-from", "1"]
    write_checked(str(cp / "offsets" / "0"), b"v1\n{}")
    assert ops.folder_syncs() == [str(cp / "offsets")]
    assert checksum._pending == []


def test_where_order_is_not_kept_across_folders_the_epoch_folder_is_fsynced_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cp = tmp_path / "cp"
    ops = JournalOps(across=False)
    _take_second_epoch(cp, ops, monkeypatch)
    assert ops.folder_syncs() == [str(cp / "epochs")] * 2  # epochs/1, then the removal
    assert checksum._pending == []
