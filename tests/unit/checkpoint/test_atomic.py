"""Atomic writes leave no temp file behind, and clear the ones killed runs left."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from unbounded.checkpoint import atomic
from unbounded.checkpoint.atomic import write_atomic, write_atomic_replace, write_atomic_stream
from unbounded.errors import CheckpointConflictError


def _enospc(fd: int) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("write", [write_atomic, write_atomic_replace])
def test_a_write_failing_on_a_full_disk_removes_its_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write) -> None:
    write(str(tmp_path / "first"), b"ok")  # the folder's first use (stray clean-up) is done
    monkeypatch.setattr(atomic.os, "fsync", _enospc)
    for _ in range(3):
        with pytest.raises(OSError, match="No space left"):
            write(str(tmp_path / "0"), b"data")
    assert sorted(os.listdir(tmp_path)) == ["first"]


def test_a_stream_whose_producer_fails_removes_its_temp_file(tmp_path: Path) -> None:
    def fill(f) -> None:
        f.write(b"half")
        raise RuntimeError("the producer failed")

    with pytest.raises(RuntimeError, match="producer"):
        write_atomic_stream(str(tmp_path / "snapshot"), fill)
    assert os.listdir(tmp_path) == []


def test_a_conflicting_write_removes_its_temp_file(tmp_path: Path) -> None:
    write_atomic(str(tmp_path / "0"), b"a")
    with pytest.raises(CheckpointConflictError):
        write_atomic(str(tmp_path / "0"), b"b")
    assert os.listdir(tmp_path) == ["0"]
    assert (tmp_path / "0").read_bytes() == b"a"


def test_temp_files_of_killed_runs_are_removed_when_the_folder_is_first_used(
        tmp_path: Path) -> None:
    folder = tmp_path / "offsets"
    folder.mkdir()
    stray = [f".3.{'a' * 32}.tmp", f"..3.crc32c.{'b' * 32}.tmp", f".7.snapshot.{'c' * 32}.tmp"]
    kept = ["2", ".2.crc32c", ".notes.tmp", "x.tmp"]
    for name in stray + kept:
        (folder / name).write_bytes(b"x")
    write_atomic(str(folder / "3"), b"v1")
    assert sorted(os.listdir(folder)) == sorted([*kept, "3"])
    (folder / stray[0]).write_bytes(b"x")  # made by this process after the first use: kept
    write_atomic(str(folder / "4"), b"v1")
    assert stray[0] in os.listdir(folder)


@pytest.mark.parametrize("write", [write_atomic, write_atomic_replace])
def test_a_folder_deleted_after_its_first_use_is_created_again(tmp_path: Path, write) -> None:
    """A checkpoint deleted and reused by the same process (a notebook rerun) still writes."""
    folder = tmp_path / "cp" / "state" / "0" / "0"
    write(str(folder / "1.delta"), b"a")
    shutil.rmtree(tmp_path / "cp")
    write(str(folder / "1.delta"), b"b")
    assert (folder / "1.delta").read_bytes() == b"b"
    assert os.listdir(folder) == ["1.delta"]


@pytest.mark.parametrize("write", [write_atomic, write_atomic_replace])
def test_a_write_into_a_folder_used_before_does_not_look_the_folder_up_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write) -> None:
    """Its temp file's open finds the folder (or makes it again): one ``stat`` less."""
    write(str(tmp_path / "0"), b"a")
    looked_up: list[str] = []
    isdir = os.path.isdir
    monkeypatch.setattr(atomic.os.path, "isdir", lambda p: looked_up.append(p) or isdir(p))
    write(str(tmp_path / "1"), b"b")
    assert looked_up == []
    assert (tmp_path / "1").read_bytes() == b"b"


def test_temp_names_need_no_system_call_and_differ_in_a_forked_child(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic.os, "urandom", lambda n: pytest.fail("urandom called"))
    names = {atomic._temp_beside(str(tmp_path / "0")) for _ in range(100)}
    assert len(names) == 100 and all(atomic.is_temp_name(os.path.basename(n)) for n in names)
    monkeypatch.undo()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next name, to the parent
        os.write(write, atomic._temp_beside(str(tmp_path / "0")).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode()
    os.close(read)
    assert child != atomic._temp_beside(str(tmp_path / "0"))
