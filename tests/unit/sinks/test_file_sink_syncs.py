"""The file sink fsyncs a batch's data files together with its manifest entry's two
files (issue 15: one journal commit, not two in a row), and names the entry only once
every data file is durable (``tests/streaming/test_power_loss_durability.py`` judges
the order under both power models)."""

from __future__ import annotations

import os
import threading
import time
from typing import BinaryIO

import pytest

from unbounded.checkpoint import atomic
from unbounded.files.manifest import FileSinkManifest
from unbounded.testing import MemoryStream

__all__: list[str] = []


class _DataWaitsForManifest(atomic.FileOps):
    """A data file's fsync waits (up to 5 s) until a manifest entry's temporary file is
    being fsynced, and records whether one was."""

    def __init__(self) -> None:
        self.manifest_syncing = threading.Event()
        self.seen: list[bool] = []

    def fsync(self, f: BinaryIO, path: str) -> None:
        if f"{os.sep}_spark_metadata{os.sep}" in path:
            self.manifest_syncing.set()
        super().fsync(f, path)

    def fsync_file(self, path: str) -> None:
        self.seen.append(self.manifest_syncing.wait(5))
        self.manifest_syncing.clear()
        super().fsync_file(path)


def _run(spark, tmp_path, batches: int) -> str:
    out = str(tmp_path / "out")
    stream = MemoryStream("id LONG", spark)
    query = (stream.toDF().writeStream.format("parquet")
             .option("checkpointLocation", str(tmp_path / "cp")).start(out))
    try:
        for batch in range(batches):
            stream.addData([(batch * 10 + i,) for i in range(3)])
            query.processAllAvailable()
    finally:
        query.stop()
    return out


def test_data_files_are_fsynced_while_the_manifest_entry_is(spark, tmp_path, monkeypatch):
    ops = _DataWaitsForManifest()
    monkeypatch.setattr(atomic, "file_ops", ops)
    out = _run(spark, tmp_path, 2)
    assert ops.seen == [True, True]
    assert len(FileSinkManifest(out).all_files()) == 2


class _DataSyncFails(atomic.FileOps):
    def fsync_file(self, path: str) -> None:
        time.sleep(0.05)  # the manifest entry's own fsyncs are done by then
        raise OSError(5, "Input/output error", path)


def test_a_failed_data_file_fsync_leaves_no_manifest_entry(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "file_ops", _DataSyncFails())
    with pytest.raises(Exception, match="Input/output error"):
        _run(spark, tmp_path, 1)
    manifest = FileSinkManifest(str(tmp_path / "out"))
    assert manifest.latest_batch_id() is None
    assert [n for n in os.listdir(manifest.metadata_path) if not n.startswith(".")] == []
