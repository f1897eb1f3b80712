"""Fewer fsyncs per log entry where the file system keeps names in order (issue 15), and
what a power cut between any two steps of a write leaves (issue 10's rules still hold)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import pytest

from unbounded.checkpoint import atomic
from unbounded.checkpoint.atomic import NAME_ORDER_ENV, FileOps, parse_mountinfo
from unbounded.checkpoint.checksum import (
    read_checked,
    remove_checked,
    sidecar_path,
    write_checked,
)
from unbounded.checkpoint.logs import CommitEntry, CommitLog
from unbounded.errors import CheckpointCorruptError
from unbounded.files.listing import DataFile
from unbounded.files.manifest import FileSinkManifest
from unbounded.sources.files import FileSourceLog

__all__: list[str] = []


class RecordingOps(FileOps):
    """Records fsyncs and namespace changes, with the bytes each new name points at."""

    def __init__(self, *, ordered: bool) -> None:
        self.ordered = ordered
        self.calls: list[tuple[str, str]] = []
        self.names: list[tuple[str, str, bytes | None]] = []  # (kind, name, bytes)
        self.synced: set[str] = set()

    def keeps_name_order(self, folder: str) -> bool:
        return self.ordered

    def fsync(self, f: BinaryIO, path: str) -> None:
        super().fsync(f, path)
        self.calls.append(("fsync", path))
        self.synced.add(path)

    def fsync_dir(self, path: str) -> None:
        super().fsync_dir(path)
        self.calls.append(("fsync_dir", path))

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

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.calls if k == kind)


@pytest.fixture
def ops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> RecordingOps:
    recording = RecordingOps(ordered=request.param)
    monkeypatch.setattr(atomic, "file_ops", recording)
    return recording


@pytest.mark.parametrize(("ops", "folder_fsyncs"), [(True, 1), (False, 2)],
                         indirect=["ops"], ids=["kept", "strict"])
def test_an_entry_costs_one_folder_fsync_where_names_keep_their_order(
        tmp_path: Path, ops: RecordingOps, folder_fsyncs: int) -> None:
    write_checked(str(tmp_path / "0"), b"v1\n{}")  # the folder's first write: its marker
    ops.calls.clear()
    write_checked(str(tmp_path / "1"), b"v1\n{\"a\":1}")
    assert ops.count("fsync") == 2  # the sidecar's data and the entry's
    assert ops.count("fsync_dir") == folder_fsyncs
    assert ops.calls[-1] == ("fsync_dir", str(tmp_path)), "the entry's name is durable last"


def _replay(names: list[tuple[str, str, bytes | None]], before: dict[str, bytes],
            into: Path) -> None:
    """Make ``into`` hold the folder as a cut that kept only ``names`` leaves it."""
    into.mkdir()
    state = dict(before)
    for kind, path, data in names:
        name = os.path.basename(path)
        if kind == "unlink":
            state.pop(name, None)
        else:
            assert data is not None
            state[name] = data
    for name, data in state.items():
        (into / name).write_bytes(data)


@pytest.mark.parametrize("ops", [True], indirect=True, ids=["kept"])
def test_every_prefix_of_an_entry_s_unsynced_names_reads_as_written_or_never_written(
        tmp_path: Path, ops: RecordingOps) -> None:
    """On a file system that keeps names in order, a cut before the one folder fsync
    keeps a prefix of the names made since the last one: none, the sidecar, the sidecar
    and the entry (its temp name too, or not). Each reads as the entry never written
    (the batch re-runs and writes it again) or written and verified: never an entry
    without its sidecar, which an unordered file system could keep (and which is why it
    stays strict there: the reader would refuse such an entry as damaged)."""
    log = tmp_path / "commits"
    CommitLog(str(log)).add(0, CommitEntry(0))
    before = {p.name: p.read_bytes() for p in log.iterdir()}
    ops.names.clear()
    CommitLog(str(log)).add(1, CommitEntry(5))
    kinds = [(k, os.path.basename(p)) for k, p, _ in ops.names]
    assert [n for k, n in kinds if k == "name"][-2:] == [".1.crc32c", "1"]
    written = (log / "1").read_bytes()
    for keep in range(len(ops.names) + 1):
        folder = tmp_path / f"cut-{keep}"
        _replay(ops.names[:keep], before, folder)
        assert not ((folder / "1").exists() and not Path(sidecar_path(str(folder / "1"))).exists())
        if (folder / "1").exists():
            assert read_checked(str(folder / "1")) == written
            assert CommitLog(str(folder)).batch_ids() == [0, 1]
        else:
            assert CommitLog(str(folder)).batch_ids() == [0]
            CommitLog(str(folder)).add(1, CommitEntry(5))  # the re-run: as if never written
            assert read_checked(str(folder / "1")) == written


@pytest.mark.parametrize("ops", [True], indirect=True, ids=["kept"])
def test_the_state_an_unordered_file_system_could_leave_is_refused_not_read(
        tmp_path: Path, ops: RecordingOps) -> None:
    """The entry's name kept, its sidecar's lost: what the strict order prevents where
    the file system may reorder names. Reported, never read unverified."""
    write_checked(str(tmp_path / "0"), b"v1\n{}")
    write_checked(str(tmp_path / "1"), b"v1\n{}")
    os.unlink(sidecar_path(str(tmp_path / "1")))
    with pytest.raises(CheckpointCorruptError, match="has no checksum file"):
        read_checked(str(tmp_path / "1"))


@pytest.mark.parametrize("ops", [True, False], indirect=True, ids=["kept", "strict"])
def test_removing_entries_fsyncs_their_folder_once_before_any_sidecar_goes(
        tmp_path: Path, ops: RecordingOps) -> None:
    paths = [str(tmp_path / str(i)) for i in range(5)]
    for path in paths:
        write_checked(path, b"v1\n{}")
    ops.calls.clear()
    ops.names.clear()
    remove_checked(*paths)
    assert ops.calls == [("fsync_dir", str(tmp_path))]
    removed = [os.path.basename(p) for _, p, _ in ops.names]
    assert removed == ["0", "1", "2", "3", "4", *(f".{i}.crc32c" for i in range(5))]


@pytest.mark.parametrize("ops", [True], indirect=True, ids=["kept"])
def test_a_file_source_log_compaction_fsyncs_its_folder_once(
        tmp_path: Path, ops: RecordingOps) -> None:
    log = FileSourceLog(str(tmp_path / "sources" / "0"))
    for batch in range(9):
        log.add(batch, [DataFile(f"/in/{batch}.parquet", 10, 1000 + batch)])
    ops.calls.clear()
    log.add(9, [DataFile("/in/9.parquet", 10, 1009)])  # 9.compact covers 0-8
    log.close()  # the removals run on a background thread
    assert sorted(os.listdir(tmp_path / "sources" / "0")) == [
        ".9.compact.crc32c", ".crc32c-from", "9.compact"]
    assert ops.count("fsync_dir") == 2  # 9.compact's name, then the 9 removals at once


@pytest.mark.parametrize("ops", [True], indirect=True, ids=["kept"])
def test_a_sink_manifest_compaction_fsyncs_its_folder_once(
        tmp_path: Path, ops: RecordingOps) -> None:
    manifest = FileSinkManifest(str(tmp_path / "out"), compact_interval=3)
    for batch in range(5):
        manifest.add_batch(batch, [{"path": str(tmp_path / "out" / f"{batch}.parquet")}])
    ops.calls.clear()
    manifest.add_batch(5, [{"path": str(tmp_path / "out" / "5.parquet")}])
    names = sorted(n for n in os.listdir(tmp_path / "out" / "_spark_metadata")
                   if not n.startswith("."))
    assert names == ["2.compact", "3", "4", "5.compact"]
    assert ops.count("fsync_dir") == 2  # 5.compact's name, then removing 0 and 1 at once


def test_name_order_follows_the_mount_s_file_system_type(
        monkeypatch: pytest.MonkeyPatch) -> None:
    mounts = parse_mountinfo(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "40 27 0:50 / /mnt/share rw - nfs4 host:/x rw\n"
        "41 40 254:1 / /mnt/share/local\\040disk rw - xfs /dev/vdb rw\n")
    assert mounts == [("/", "ext4"), ("/mnt/share", "nfs4"), ("/mnt/share/local disk", "xfs")]
    monkeypatch.setattr(atomic, "_mounts", lambda: mounts)
    monkeypatch.setattr(atomic, "_mount_types", {})
    monkeypatch.delenv(NAME_ORDER_ENV, raising=False)
    ops = FileOps()
    assert ops.keeps_name_order("/var/cp/offsets")
    assert not ops.keeps_name_order("/mnt/share/cp/offsets")
    assert ops.keeps_name_order("/mnt/shared/x")  # on "/" (ext4), not on the share
    assert ops.keeps_name_order("/mnt/share/local disk/cp")
    monkeypatch.setenv(NAME_ORDER_ENV, "strict")
    assert not ops.keeps_name_order("/var/cp/offsets")
    monkeypatch.setenv(NAME_ORDER_ENV, "kept")
    assert ops.keeps_name_order("/mnt/share/cp/offsets")
