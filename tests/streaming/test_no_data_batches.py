"""Batches without new data (the watermark moved, so closed windows are emitted): they
run no partition task, the input's empty result being computed once per query, and emit
exactly the rows a task would have given."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest

from unbounded.executors.base import ShippableTask
from unbounded.runtime import microbatch
from unbounded.runtime.tasks import PartitionTask, TaskResult, run_partition
from unbounded.sql import Row, SparkSession
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


class TaskCount:
    """Counts the partition tasks the micro-batch loop starts, by batch order."""

    def __init__(self) -> None:
        self.tasks: list[PartitionTask] = []

    def __call__(self, task: PartitionTask) -> TaskResult:
        self.tasks.append(task)
        return run_partition(task)


@pytest.fixture
def task_count(monkeypatch: pytest.MonkeyPatch) -> TaskCount:
    count = TaskCount()
    monkeypatch.setattr(microbatch, "run_task", ShippableTask(count))
    return count


def _rows(df: Any) -> list[tuple[Any, ...]]:
    return sorted((tuple(r) for r in df.collect()), key=repr)


def test_no_data_batch_runs_no_task_and_emits_the_closed_window(
        spark: SparkSession, tmp_path: Any, task_count: TaskCount) -> None:
    stream = MemoryStream("ts TIMESTAMP, word STRING", spark)
    counts = (stream.toDF().withWatermark("ts", "10 minutes")
              .groupBy(F.window("ts", "5 minutes"), "word").count())
    batches: dict[int, list[tuple[Any, ...]]] = {}
    query = (counts.writeStream.outputMode("append")
             .foreachBatch(lambda df, i: batches.__setitem__(i, _rows(df)))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        stream.addData([(at(0), "a"), (at(1), "a"), (at(2), "b")])
        query.processAllAvailable(30)
        stream.addData([(at(21), "a")])  # moves the watermark to 10:11
        query.processAllAvailable(30)
    finally:
        query.stop()
    rows_in = {p["batchId"]: p["numInputRows"] for p in query.recentProgress}
    with_data = [b for b, n in rows_in.items() if n]
    without = [b for b, n in rows_in.items() if not n]
    assert sum(rows_in.values()) == 4 and len(with_data) == 2 and without
    window = Row(start=at(0), end=at(5))
    emitted = {b: rows for b, rows in batches.items() if rows}
    assert emitted == {without[-1]: [(window, "a", 2), (window, "b", 1)]}
    # One task per batch with data; the batches without data ran none.
    assert [t.partition is not None for t in task_count.tasks] == [True, True]


def test_an_input_without_data_beside_one_with_data_gets_empty_rows(
        spark: SparkSession, tmp_path: Any, task_count: TaskCount) -> None:
    left = MemoryStream("k LONG, lv STRING", spark)
    right = MemoryStream("k LONG, rv STRING", spark)
    joined = left.toDF().join(right.toDF(), "k")
    batches: list[Sequence[tuple[Any, ...]]] = []
    query = (joined.writeStream.foreachBatch(lambda df, i: batches.append(_rows(df)))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        left.addData([(1, "l1"), (2, "l2")])
        query.processAllAvailable(30)
        right.addData([(2, "r2")])
        query.processAllAvailable(30)
        right.addData([(1, "r1"), (3, "r3")])
        query.processAllAvailable(30)
    finally:
        query.stop()
    assert batches == [[], [(2, "l2", "r2")], [(1, "l1", "r1")]]
    # Each batch ran one task, for the side that had data; the other side's empty rows
    # came from the result computed once.
    assert len(task_count.tasks) == 3
