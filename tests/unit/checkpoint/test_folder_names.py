"""Each folder's name is made durable once per process (issue 15: a fresh checkpoint
fsynced the same parents 40 times): a parent fsynced after a folder existed covers it,
whichever write fsynced it; a folder deleted and made again is new. Where one in-order
journal holds the parent and the folder, the fsync after the first name inside makes
the folder's name durable too, and its parent is not fsynced for it at all."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from unbounded.checkpoint import atomic
from unbounded.checkpoint.atomic import NAME_ORDER_ENV, FileOps
from unbounded.checkpoint.checksum import MARKER_NAME, read_checked, write_checked
from unbounded.checkpoint.storage import storage_for

__all__: list[str] = []


class CountingOps(FileOps):
    """Records the folders fsynced, in order."""

    def __init__(self) -> None:
        self.dir_syncs: list[str] = []

    def fsync_dir(self, path: str) -> None:
        super().fsync_dir(path)
        self.dir_syncs.append(os.path.abspath(path))


@pytest.fixture
def ops(monkeypatch) -> Iterator[CountingOps]:
    """Counting, on a file system whose names may be reordered (``strict``) unless a
    test says otherwise."""
    monkeypatch.setenv(NAME_ORDER_ENV, "strict")
    counting = CountingOps()
    previous = atomic.set_file_ops(counting)
    try:
        yield counting
    finally:
        atomic.set_file_ops(previous)


def test_a_new_folder_chain_fsyncs_each_parent_once(tmp_path, ops):
    leaf = tmp_path / "a" / "b" / "c"
    atomic.make_dirs(str(leaf))
    atomic.make_dirs(str(leaf))
    atomic.sync_folder_name(str(leaf))
    atomic.sync_folder_name(str(leaf.parent))
    assert ops.dir_syncs == [str(leaf.parent), str(tmp_path / "a"), str(tmp_path)]
    assert all(atomic.name_is_durable(str(p)) for p in (leaf, leaf.parent, tmp_path / "a"))


def test_a_folder_made_plainly_is_covered_by_a_later_fsync_of_its_parent(tmp_path, ops):
    storage_for(str(tmp_path / "logs")).make_folder(str(tmp_path / "logs"))
    assert not atomic.name_is_durable(str(tmp_path / "logs"))
    atomic.make_dirs(str(tmp_path / "other"))  # fsyncs tmp_path: logs/ is in it by now
    atomic.sync_folder_name(str(tmp_path / "logs"))
    assert ops.dir_syncs == [str(tmp_path)]


def test_a_folder_found_existing_is_fsynced_into_its_parent_once(tmp_path, ops):
    os.mkdir(tmp_path / "found")  # by someone else: this process does not know it
    atomic.sync_folder_name(str(tmp_path / "found"))
    atomic.sync_folder_name(str(tmp_path / "found"))
    assert ops.dir_syncs == [str(tmp_path)]


def test_a_parent_fsynced_before_the_folder_existed_does_not_cover_it(tmp_path, ops):
    atomic.fsync_dir(str(tmp_path))
    os.mkdir(tmp_path / "late")
    atomic.sync_folder_name(str(tmp_path / "late"))
    assert ops.dir_syncs == [str(tmp_path), str(tmp_path)]


def test_a_folder_deleted_and_made_again_is_fsynced_again(tmp_path, ops):
    atomic.make_dirs(str(tmp_path / "cp" / "offsets"))
    shutil.rmtree(tmp_path / "cp")
    atomic.make_dirs(str(tmp_path / "cp" / "offsets"))
    assert ops.dir_syncs == [str(tmp_path / "cp"), str(tmp_path)] * 2


@pytest.mark.parametrize(("order", "syncs", "parent_syncs"),
                         [("kept", 1, 0), ("strict", 3, 1)])
def test_a_first_entry_in_a_new_folder_fsyncs_it_once_where_names_keep_order(
        tmp_path, ops, monkeypatch, order, syncs, parent_syncs):
    """The marker ``.crc32c-from`` is named before the entry: where a cut keeps names in
    order the entry's folder fsync covers it, and offsets/'s own name made before;
    elsewhere each has its own (and the sidecar its own, before the entry's name)."""
    atomic.make_dirs(str(tmp_path / "cp"))
    monkeypatch.setenv(NAME_ORDER_ENV, order)
    before = len(ops.dir_syncs)
    write_checked(str(tmp_path / "cp" / "offsets" / "0"), b"v1\n{}")
    new = ops.dir_syncs[before:]
    assert new.count(str(tmp_path / "cp" / "offsets")) == syncs
    assert new.count(str(tmp_path / "cp")) == parent_syncs  # offsets/'s own name
    assert len(new) == syncs + parent_syncs
    assert os.path.exists(tmp_path / "cp" / "offsets" / MARKER_NAME)
    assert read_checked(str(tmp_path / "cp" / "offsets" / "0")) == b"v1\n{}"


def test_on_an_in_order_journal_new_folders_ride_on_the_fsync_inside(tmp_path, ops,
                                                                     monkeypatch):
    monkeypatch.setenv(NAME_ORDER_ENV, "kept")
    atomic.make_dirs(str(tmp_path / "a" / "b"))
    atomic.sync_folder_name(str(tmp_path / "a" / "b"))
    assert ops.dir_syncs == []
    atomic.write_atomic(str(tmp_path / "a" / "b" / "x"), b"x")
    assert ops.dir_syncs == [str(tmp_path / "a" / "b")]
