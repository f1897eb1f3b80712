"""A batch's partition tasks run while its ``offsets/N`` entry is being made durable
(issue 15): they only compute, so the write-ahead fsyncs no longer sit in front of them.
A kill at that point (``before-offset-write``) is covered by
``tests/streaming/test_crash_recovery.py``: the batch is re-planned, each row once."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from unbounded.checkpoint import atomic
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

__all__: list[str] = []


class _WaitForTasks(atomic.FileOps):
    """Before naming ``offsets/1``, waits (up to 10 s) for batch 1's task to have run:
    for the file it leaves (the task's function is pickled, so a file, not an Event)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.seen: list[bool] = []

    def link(self, src: str, dst: str) -> None:
        if dst.endswith(os.path.join("offsets", "1")):
            deadline = time.monotonic() + 10
            while not os.path.exists(self.marker) and time.monotonic() < deadline:
                time.sleep(0.01)
            self.seen.append(os.path.exists(self.marker))
        super().link(src, dst)


def _marking(marker: str) -> Callable[[int], int]:
    def mark(x: int) -> int:
        if x >= 100:  # batch 1's rows
            with open(marker, "w"):
                pass
        return x * 2
    return mark


def test_a_batch_s_tasks_run_before_its_offsets_entry_is_named(
        spark, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = str(tmp_path / "batch-1-task-ran")
    ops = _WaitForTasks(marker)
    monkeypatch.setattr(atomic, "file_ops", ops)
    stream = MemoryStream("id LONG", spark)
    doubled = F.udf(_marking(marker), "long")
    query = (stream.toDF().select(doubled("id").alias("twice")).writeStream
             .format("memory").queryName("twice")
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        stream.addData([(1,), (2,)])
        query.processAllAvailable()
        stream.addData([(100,)])
        query.processAllAvailable()
    finally:
        query.stop()
    assert ops.seen == [True]
    rows = spark.sql("select twice from twice").collect()
    assert sorted(r["twice"] for r in rows) == [2, 4, 200]
