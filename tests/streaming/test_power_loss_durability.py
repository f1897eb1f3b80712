"""A power cut never loses a file a committed batch names (issue 10): judged from the real
system calls a query makes, not from our own file-system seam, so a write that bypasses
the seam is judged too.

The model (POSIX): after a power cut a file holds its data only if an fsync of its inode
came after its last write, and a name survives only if its folder was fsynced after the
name was made (``mkdir``, ``link``, ``rename``/``replace``, or creating the file, which
came before its first fsync); a folder this test did not see made existed before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pytest

from unbounded.checkpoint import atomic
from unbounded.files.manifest import FileSinkManifest
from unbounded.files.writing import write_partitioned
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream
from unbounded.testing.checkpoint_faults import FaultyFileOps

__all__: list[str] = []


@dataclass
class DiskModel:
    """The durability events of one run, in order: ``(kind, path, inode)``."""

    events: list[tuple[str, str, int]] = field(default_factory=list)

    def _last(self, kind: str, *, path: str = "", inode: int = -1) -> int:
        found = [i for i, (k, p, n) in enumerate(self.events)
                 if k == kind and (p == path or (inode >= 0 and n == inode))]
        return found[-1] if found else -1

    def _name_made(self, path: str) -> int:
        """When ``path``'s name was made; -1: before the run."""
        made = max(self._last("mkdir", path=path), self._last("name", path=path))
        if made >= 0 or os.path.isdir(path):
            return made
        return self._last("fsync", inode=os.stat(path).st_ino)

    def _name_durable(self, path: str) -> bool:
        made = self._name_made(path)
        if made < 0:
            return True
        parent = os.path.dirname(path)
        synced = self._last("fsync", path=parent)
        return synced > made and self._name_durable(parent)

    def survives(self, path: str) -> str | None:
        """None if ``path`` survives a power cut now, else why not."""
        if not os.path.isdir(path) and self._last("fsync", inode=os.stat(path).st_ino) < 0:
            return f"{path}: its data was never fsynced"
        if not self._name_durable(path):
            return f"{path}: a folder fsync after its name (or a parent's) was made is missing"
        return None


@pytest.fixture
def disk(monkeypatch) -> Iterator[DiskModel]:
    model = DiskModel()
    real = {n: getattr(os, n) for n in ("mkdir", "fsync", "link", "replace", "rename")}

    def mkdir(path, *args, **kwargs):
        real["mkdir"](path, *args, **kwargs)
        model.events.append(("mkdir", os.path.abspath(path), -1))

    def fsync(fd):
        real["fsync"](fd)
        path = os.readlink(f"/proc/self/fd/{fd if isinstance(fd, int) else fd.fileno()}")
        model.events.append(("fsync", path, os.fstat(fd).st_ino))

    def naming(kind):
        def call(src, dst, *args, **kwargs):
            real[kind](src, dst, *args, **kwargs)
            model.events.append(("name", os.path.abspath(dst), -1))
        return call

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "fsync", fsync)
    for kind in ("link", "replace", "rename"):
        monkeypatch.setattr(os, kind, naming(kind))
    return model


def _sync_folder(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _run_query(spark, root: str, partition_by: tuple[str, ...]) -> MemoryStream:
    stream = MemoryStream("id LONG, part STRING", spark)
    writer = (stream.toDF().writeStream.format("parquet")
              .option("checkpointLocation", os.path.join(root, "checkpoint")))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    query = writer.start(os.path.join(root, "out", "table"))
    for batch in range(3):
        stream.addData([(batch * 10 + i, f"p{i % 2}") for i in range(4)])
        query.processAllAvailable()
    query.stop()
    return stream


def _named_by_commits(root: str) -> list[str]:
    """Every file a committed batch depends on: the data files, the manifest entries,
    the offset and commit logs and the query's metadata."""
    out, checkpoint = os.path.join(root, "out", "table"), os.path.join(root, "checkpoint")
    manifest = FileSinkManifest(out)
    logs = [os.path.join(checkpoint, folder, name) for folder in ("offsets", "commits")
            for name in os.listdir(os.path.join(checkpoint, folder)) if name.isdigit()]
    return [*manifest.all_files(), *(manifest.entry_path(b) for b in range(3)), *logs,
            os.path.join(checkpoint, "metadata")]


@pytest.mark.parametrize("partition_by", [(), ("part",)], ids=["flat", "partitioned"])
def test_a_power_cut_after_a_commit_loses_no_file_the_batch_names(spark, tmp_path, disk,
                                                                  partition_by):
    root = str(tmp_path / "fresh")  # the query makes out/table/ and checkpoint/ in it
    os.mkdir(root)
    _sync_folder(root)
    _sync_folder(str(tmp_path))
    _run_query(spark, root, partition_by)
    files = _named_by_commits(root)
    assert len(files) >= 3 * 2 + 3 + 1
    assert [why for p in files if (why := disk.survives(p))] == []
    rows = pl.concat([pl.read_parquet(p) for p in FileSinkManifest(
        os.path.join(root, "out", "table")).all_files()])
    assert sorted(rows["id"].to_list()) == [b * 10 + i for b in range(3) for i in range(4)]


def test_a_power_cut_after_a_commit_keeps_the_state_store(spark, tmp_path, disk):
    root = str(tmp_path / "fresh")
    os.mkdir(root)
    _sync_folder(root)
    _sync_folder(str(tmp_path))
    stream = MemoryStream("id LONG, part STRING", spark)
    query = (stream.toDF().groupBy("part").agg(F.count("id").alias("n")).writeStream
             .outputMode("update").format("memory").queryName("counts")
             .option("checkpointLocation", os.path.join(root, "cp")).start())
    for batch in range(3):
        stream.addData([(batch * 10 + i, f"p{i % 2}") for i in range(4)])
        query.processAllAvailable()
    query.stop()
    state = [os.path.join(folder, name)
             for folder, _, names in os.walk(os.path.join(root, "cp", "state"))
             for name in names if not name.startswith(".")]
    assert len(state) >= 2 * 3
    assert [why for p in state if (why := disk.survives(p))] == []


def test_the_model_flags_a_file_whose_folder_was_never_synced(tmp_path, disk):
    folder = tmp_path / "new"
    os.mkdir(folder)
    path = folder / "data"
    with open(path, "wb") as f:
        f.write(b"x")
        f.flush()
        os.fsync(f.fileno())
    assert "folder fsync" in (disk.survives(str(path)) or "")
    _sync_folder(str(folder))
    assert "folder fsync" in (disk.survives(str(path)) or ""), "the new folder's own name"
    _sync_folder(str(tmp_path))
    assert disk.survives(str(path)) is None


def test_the_chaos_power_model_keeps_every_file_a_committed_batch_names(spark, tmp_path,
                                                                       monkeypatch):
    """The fault-injecting file system of ``make chaos`` sees the sink's data files and
    folders too: a cut after the query stopped takes nothing its manifest lists."""
    ops = FaultyFileOps([])
    monkeypatch.setattr(atomic, "file_ops", ops)
    root = str(tmp_path / "fresh")
    os.mkdir(root)
    _run_query(spark, root, ("part",))
    ops.lose_unsynced()
    out = os.path.join(root, "out", "table")
    rows = pl.concat([pl.read_parquet(p) for p in FileSinkManifest(out).existing_files()])
    assert sorted(rows["id"].to_list()) == [b * 10 + i for b in range(3) for i in range(4)]


def test_a_cut_before_the_data_folder_is_synced_takes_the_new_files_and_folders(tmp_path,
                                                                              monkeypatch):
    ops = FaultyFileOps([])
    monkeypatch.setattr(atomic, "file_ops", ops)
    table = pa.table({"k": ["a", "b"], "v": [1, 2]})
    written = write_partitioned(str(tmp_path / "out"), "parquet", table, ("k",), {},
                                stem="part-0")
    atomic.fsync_dir(os.path.dirname(written[0]))  # k=a/ holds its file, k=b/ does not
    ops.lose_unsynced()
    assert os.path.exists(written[0]), "k=a's name was fsynced into out/ when it was made"
    assert os.path.getsize(written[0]) > 0
    assert not os.path.exists(written[1])
    assert os.path.isdir(os.path.dirname(written[1]))
