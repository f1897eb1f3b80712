"""The chaos suite's power-cut model (``testing/checkpoint_faults.FaultyFileOps``) for a
data file written by name: as POSIX, its name is durable once its folder is fsynced
after it appeared, whichever comes first of that folder fsync and the file's own
fsync (the file sink fsyncs its data files on the fsync pool)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unbounded.checkpoint import atomic
from unbounded.testing.checkpoint_faults import FaultyFileOps


@pytest.fixture
def ops(monkeypatch: pytest.MonkeyPatch) -> FaultyFileOps:
    faulty = FaultyFileOps([])
    monkeypatch.setattr(atomic, "file_ops", faulty)
    return faulty


def written(folder: Path) -> str:
    path = str(folder / "part-0.parquet")
    Path(path).write_bytes(b"data")
    atomic.note_written(path)
    return path


def test_a_folder_fsync_before_the_file_s_own_fsync_keeps_its_name(
        tmp_path: Path, ops: FaultyFileOps) -> None:
    path = written(tmp_path)
    atomic.fsync_dir(str(tmp_path))
    atomic.fsync_file(path)
    ops.lose_unsynced()
    assert Path(path).read_bytes() == b"data"


def test_without_a_folder_fsync_after_it_appeared_the_file_is_lost(
        tmp_path: Path, ops: FaultyFileOps) -> None:
    atomic.fsync_dir(str(tmp_path))
    path = written(tmp_path)
    atomic.fsync_file(path)
    ops.lose_unsynced()
    assert not os.path.exists(path)


def test_without_its_own_fsync_the_file_keeps_its_name_but_not_its_data(
        tmp_path: Path, ops: FaultyFileOps) -> None:
    path = written(tmp_path)
    atomic.fsync_dir(str(tmp_path))
    ops.lose_unsynced()
    assert Path(path).read_bytes() == b""
