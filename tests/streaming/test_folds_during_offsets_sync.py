"""A batch's built-in state folds run while the folder fsync that makes ``offsets/N``
durable is under way (issue 15): its name is made first, the folds only compute and
write state (read back for committed versions only), and the sink waits for the fsync
(``tests/streaming/test_power_loss_durability.py`` judges that order)."""

from __future__ import annotations

import os
import time

import pytest

from unbounded.checkpoint import atomic
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

__all__: list[str] = []


class _SlowOffsetsSync(atomic.FileOps):
    """The folder fsync after ``offsets/1`` is named waits (up to 5 s) for batch 1's
    state (version 2's delta) to be named, and records whether it was."""

    def __init__(self) -> None:
        self.armed = False
        self.delta_named = False
        self.seen: list[bool] = []

    def link(self, src: str, dst: str) -> None:
        super().link(src, dst)
        if dst.endswith(os.path.join("offsets", "1")):
            self.armed = True

    def replace(self, src: str, dst: str) -> None:
        super().replace(src, dst)
        if dst.endswith(f"{os.sep}2.delta"):
            self.delta_named = True

    def fsync_dir(self, path: str) -> None:
        if self.armed and os.path.basename(path) == "offsets":
            self.armed = False
            deadline = time.monotonic() + 5
            while not self.delta_named and time.monotonic() < deadline:
                time.sleep(0.01)
            self.seen.append(self.delta_named)
        super().fsync_dir(path)


def test_a_batch_s_state_is_written_while_its_offsets_folder_is_fsynced(
        spark, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    ops = _SlowOffsetsSync()
    monkeypatch.setattr(atomic, "file_ops", ops)
    stream = MemoryStream("id LONG, part STRING", spark)
    query = (stream.toDF().groupBy("part").agg(F.count("id").alias("n")).writeStream
             .outputMode("update").format("memory").queryName("counts_during_sync")
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        stream.addData([(1, "a"), (2, "b")])
        query.processAllAvailable()
        stream.addData([(3, "a")])
        query.processAllAvailable()
    finally:
        query.stop()
    assert ops.seen == [True]
    rows = spark.sql("select part, n from counts_during_sync").collect()
    assert sorted((r["part"], r["n"]) for r in rows) == [("a", 1), ("a", 2), ("b", 1)]
