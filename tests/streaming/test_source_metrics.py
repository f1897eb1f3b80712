"""What a source says is left to read, in ``progress.sources[*].metrics``: Kafka's offsets
behind latest (Spark's ``KafkaMicroBatchStream.metrics``), the file source's files
outstanding (ours), and the backfill bar that turns them into a total."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import unbounded.sql.streaming as streaming
from unbounded.observe import terminal
from unbounded.sql import SparkSession


def _metrics(query: Any) -> list[dict[str, str]]:
    return [dict(p["sources"][0]["metrics"]) for p in query.recentProgress]


def _files(folder: Path, count: int) -> str:
    folder.mkdir()
    for i in range(count):
        (folder / f"{i}.json").write_text(f'{{"v": {i}}}\n')
    return str(folder)


def _bar_console(monkeypatch: pytest.MonkeyPatch) -> Console:
    console = Console(file=io.StringIO(), force_terminal=True, width=160, record=True)
    monkeypatch.setattr(streaming, "backfill_bar",
                        lambda console_=None: terminal.backfill_bar(console))
    return console


def test_file_source_reports_files_outstanding_and_processed_per_batch(
        spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    console = _bar_console(monkeypatch)
    stream = spark.readStream.schema("v long").option("maxFilesPerTrigger", 2) \
        .json(_files(tmp_path / "in", 5))
    query = stream.writeStream.format("memory").queryName("files_left") \
        .option("checkpointLocation", str(tmp_path / "ckpt")) \
        .trigger(availableNow=True).start()
    query.awaitTermination(60)
    assert _metrics(query) == [
        {"numFilesOutstanding": "3", "numFilesProcessed": "2"},
        {"numFilesOutstanding": "1", "numFilesProcessed": "4"},
        {"numFilesOutstanding": "0", "numFilesProcessed": "5"}]
    assert "5/5 files" in console.export_text()


def test_file_source_counts_files_that_arrive_between_runs(
        spark: SparkSession, tmp_path: Path) -> None:
    folder = _files(tmp_path / "in", 2)
    def run() -> Any:
        query = spark.readStream.schema("v long").option("maxFilesPerTrigger", 1) \
            .json(folder).writeStream.format("noop") \
            .option("checkpointLocation", str(tmp_path / "ckpt")) \
            .trigger(availableNow=True).start()
        query.awaitTermination(60)
        return query
    assert _metrics(run())[-1] == {"numFilesOutstanding": "0", "numFilesProcessed": "2"}
    for i in (7, 8, 9):
        (tmp_path / "in" / f"{i}.json").write_text(f'{{"v": {i}}}\n')
    assert _metrics(run()) == [
        {"numFilesOutstanding": "2", "numFilesProcessed": "3"},
        {"numFilesOutstanding": "1", "numFilesProcessed": "4"},
        {"numFilesOutstanding": "0", "numFilesProcessed": "5"}]


def test_kafka_source_reports_offsets_behind_latest_as_spark(
        spark: SparkSession, kafka_bootstrap: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from unbounded.testing.broker import create_topic, produce_records, unique_topic

    topic = unique_topic("behind")
    create_topic(kafka_bootstrap, topic, partitions=2)
    produce_records(kafka_bootstrap, topic, [b"a%d" % i for i in range(12)], partition=0)
    produce_records(kafka_bootstrap, topic, [b"b%d" % i for i in range(6)], partition=1)
    console = _bar_console(monkeypatch)
    query = spark.readStream.format("kafka") \
        .option("kafka.bootstrap.servers", kafka_bootstrap).option("subscribe", topic) \
        .option("startingOffsets", "earliest").option("maxOffsetsPerTrigger", 9) \
        .load().writeStream.format("noop") \
        .option("checkpointLocation", str(tmp_path / "ckpt")) \
        .trigger(availableNow=True).start()
    query.awaitTermination(60)
    assert [p["sources"][0]["endOffset"] for p in query.recentProgress] == [
        {topic: {"0": 6, "1": 3}}, {topic: {"0": 12, "1": 6}}]
    assert _metrics(query) == [
        {"minOffsetsBehindLatest": "3", "maxOffsetsBehindLatest": "6",
         "avgOffsetsBehindLatest": "4.5"},
        {"minOffsetsBehindLatest": "0", "maxOffsetsBehindLatest": "0",
         "avgOffsetsBehindLatest": "0.0"}]
    assert "18/18 offsets" in console.export_text()
