"""What a partition task hands back: the map side's Polars frame for an operator's
input (the fold works on Polars, so no Arrow round trip per batch), Arrow for the
sink's input (issue 15: the fixed cost of a small batch)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from unbounded.executors.base import ShippableTask
from unbounded.runtime import microbatch, tasks
from unbounded.runtime.tasks import PartitionTask, TaskResult, run_partition
from unbounded.sources.files import FileInputPartition
from unbounded.sql import SparkSession
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

__all__: list[str] = []

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)


class Results(list[TaskResult]):
    def __call__(self, task: PartitionTask) -> TaskResult:
        result = run_partition(task)
        self.append(result)
        return result


@pytest.fixture
def results(monkeypatch: pytest.MonkeyPatch) -> Results:
    seen = Results()
    monkeypatch.setattr(microbatch, "run_task", ShippableTask(seen))
    return seen


def _collected(df: Any, into: list[tuple[Any, ...]]) -> None:
    into.extend(tuple(r) for r in df.collect())


def _word_counts(spark: SparkSession, tmp_path: Any,
                 batches: list[list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """Each of ``batches`` counted by word (update mode): the rows each batch emitted."""
    stream = MemoryStream("ts TIMESTAMP, word STRING", spark)
    counts = stream.toDF().groupBy("word").count()
    out: list[tuple[Any, ...]] = []
    query = (counts.writeStream.outputMode("update")
             .foreachBatch(lambda df, _: _collected(df, out))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        for batch in batches:
            stream.addData(batch)
            query.processAllAvailable(30)
    finally:
        query.stop()
    return sorted(out)


def test_an_aggregation_s_tasks_hand_back_polars_frames_and_count_every_row(
        spark: SparkSession, tmp_path: Any, results: Results) -> None:
    out = _word_counts(spark, tmp_path, [[(T0, "a"), (T0, "a"), (T0, "b")], [(T0, "a")]])
    assert results and all(isinstance(r.rows, pl.DataFrame) for r in results)
    assert out == [("a", 2), ("a", 3), ("b", 1)]


def test_a_large_map_side_output_is_handed_back_as_arrow(
        spark: SparkSession, tmp_path: Any, results: Results,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "POLARS_RESULT_ROWS", 0)  # every output is "large"
    out = _word_counts(spark, tmp_path, [[(T0, "a"), (T0, "b"), (T0, "c"), (T0, "a")]])
    assert results and all(isinstance(r.rows, pa.Table) for r in results)
    assert out == [("a", 2), ("b", 1), ("c", 1)]


def test_a_stateless_query_s_tasks_hand_back_arrow_for_the_sink(
        spark: SparkSession, tmp_path: Any, results: Results) -> None:
    stream = MemoryStream("ts TIMESTAMP, word STRING", spark)
    upper = stream.toDF().select(F.upper("word").alias("w"))
    out: list[tuple[Any, ...]] = []
    query = (upper.writeStream.foreachBatch(lambda df, _: _collected(df, out))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        stream.addData([(T0, "a"), (T0, "b")])
        query.processAllAvailable(30)
    finally:
        query.stop()
    assert results and all(isinstance(r.rows, pa.Table) for r in results)
    assert sorted(out) == [("A",), ("B",)]


def _parquet_word_counts(spark: SparkSession, tmp_path: Any) -> tuple[list[Any], int]:
    """Word counts over two small Parquet files; also how many rows the tasks read."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i, words in enumerate([["a", "b", "a"], ["b"]]):
        pl.DataFrame({"word": words}).write_parquet(folder / f"part-{i}.parquet")
    counts = spark.readStream.schema("word STRING").parquet(str(folder)) \
        .groupBy("word").count()
    out: list[tuple[Any, ...]] = []
    query = (counts.writeStream.outputMode("update").trigger(availableNow=True)
             .foreachBatch(lambda df, _: _collected(df, out))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        query.awaitTermination(30)
    finally:
        query.stop()
    return sorted(out), sum(r["numInputRows"] for r in query.recentProgress)


def test_small_parquet_files_are_read_eagerly_not_scanned(
        spark: SparkSession, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_scan(self: Any) -> None:
        raise AssertionError("a small file was scanned lazily")

    monkeypatch.setattr(FileInputPartition, "scan", no_scan)
    assert _parquet_word_counts(spark, tmp_path) == ([("a", 2), ("b", 2)], 4)


def test_larger_parquet_files_are_scanned_lazily_with_the_same_answer(
        spark: SparkSession, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[int] = []
    scan = FileInputPartition.scan

    def counted(self: Any) -> Any:
        scans.append(1)
        return scan(self)

    monkeypatch.setattr(tasks, "EAGER_READ_BYTES", 1)  # every file is "large"
    monkeypatch.setattr(FileInputPartition, "scan", counted)
    assert _parquet_word_counts(spark, tmp_path) == ([("a", 2), ("b", 2)], 4)
    assert scans
