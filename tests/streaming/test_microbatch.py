"""The micro-batch loop in one process: batches, restarts, triggers, progress, errors."""

from __future__ import annotations

import os

import pytest

from unbounded.checkpoint.logs import CommitLog, OffsetLog
from unbounded.errors import AnalysisException, StreamingQueryException
from unbounded.runtime.microbatch import PURGE_EVERY, _purge_due
from unbounded.sql import functions as F
from unbounded.testing import (
    AddData,
    CheckAnswer,
    MemoryStream,
    StartStream,
    StopStream,
    run_stream_test,
)


def _rows(spark, name):
    return [tuple(r) for r in spark.table(name).collect()]


def test_stateless_query_sees_each_row_once_across_restarts(spark, tmp_path):
    stream = MemoryStream("id LONG, word STRING", spark)
    df = stream.toDF().where(F.col("id") > 1).select("id", F.upper("word").alias("w"))
    collected: list[tuple] = []

    def start():
        def sink(batch, batch_id):
            collected.extend(tuple(r) for r in batch.collect())

        return (df.writeStream.foreachBatch(sink)
                .option("checkpointLocation", str(tmp_path / "cp")).start())

    run_stream_test(
        start, lambda: collected,
        AddData(stream, [(1, "a"), (2, "b")]),
        CheckAnswer([(2, "B")]),
        StopStream(),
        AddData(stream, [(3, "c")]),
        StartStream(),
        CheckAnswer([(2, "B"), (3, "C")]),
        AddData(stream, [(4, "d"), (0, "z")]),
        CheckAnswer([(2, "B"), (3, "C"), (4, "D")]),
    )


def test_uncommitted_batch_is_rerun_with_logged_offsets_and_timestamp(spark, tmp_path):
    stream = MemoryStream("id LONG", spark)
    df = stream.toDF().withColumn("ts", F.current_timestamp())
    cp = str(tmp_path / "cp")
    seen: list[tuple[int, list]] = []

    def sink(batch, batch_id):
        seen.append((batch_id, sorted(tuple(r) for r in batch.collect())))

    q = df.writeStream.foreachBatch(sink).option("checkpointLocation", cp).start()
    stream.addData([(1,), (2,)])
    q.processAllAvailable(30)
    stream.addData([(3,)])
    q.processAllAvailable(30)
    q.stop()
    assert [b for b, _ in seen] == [0, 1]
    os.unlink(os.path.join(cp, "commits", "1"))  # as if the process died before commit 1
    stream.addData([(4,)])
    q = df.writeStream.foreachBatch(sink).option("checkpointLocation", cp).start()
    q.processAllAvailable(30)
    q.stop()
    assert [b for b, _ in seen] == [0, 1, 1, 2]
    assert seen[2] == seen[1], "the re-run of batch 1 must read the same rows at the same time"
    assert [r[0] for r in seen[3][1]] == [4]


def test_trigger_once_runs_one_batch_then_stops(spark, tmp_path):
    stream = MemoryStream("id LONG", spark)
    stream.addData([(1,)])
    stream.addData([(2,)])
    q = (stream.toDF().writeStream.format("memory").queryName("once_q").trigger(once=True)
         .start())
    assert q.awaitTermination(30)
    assert sorted(_rows(spark, "once_q")) == [(1,), (2,)]
    assert len(q.recentProgress) == 1


def test_available_now_processes_everything_then_stops(spark, tmp_path):
    stream = MemoryStream("id LONG", spark)
    for i in range(3):
        stream.addData([(i,)])
    q = (stream.toDF().writeStream.format("memory").queryName("an_q")
         .trigger(availableNow=True).start())
    assert q.awaitTermination(30)
    assert not q.isActive
    assert sorted(_rows(spark, "an_q")) == [(0,), (1,), (2,)]


def test_progress_carries_sparks_fields(spark):
    stream = MemoryStream("id LONG", spark)
    q = stream.toDF().writeStream.format("memory").queryName("prog_q").start()
    stream.addData([(1,), (2,), (3,)])
    q.processAllAvailable(30)
    p = q.lastProgress
    q.stop()
    assert p.batchId == 0 and p["numInputRows"] == 3
    assert set(p.durationMs) >= {"latestOffset", "getBatch", "queryPlanning", "addBatch",
                                 "walCommit", "commitOffsets", "triggerExecution"}
    assert p.sources[0].endOffset == 0 and p.sources[0]["numInputRows"] == 3
    assert p.sink.numOutputRows == 3
    assert '"batchId":0' in p.json and p.id == q.id and p.runId == q.runId
    assert q.status["isTriggerActive"] in (True, False)


def test_a_failing_batch_terminates_the_query_with_the_cause(spark, tmp_path):
    stream = MemoryStream("id LONG", spark)

    def boom(df, batch_id):
        raise ValueError("sink exploded")

    q = (stream.toDF().writeStream.foreachBatch(boom)
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    stream.addData([(1,)])
    with pytest.raises(StreamingQueryException, match="sink exploded"):
        q.awaitTermination(30)
    assert isinstance(q.exception().cause, ValueError)
    assert not os.path.exists(tmp_path / "cp" / "commits" / "0")


def test_two_runs_on_one_checkpoint_exactly_one_runs(spark, tmp_path):
    stream = MemoryStream("id LONG", spark)
    cp = str(tmp_path / "cp")
    q = stream.toDF().writeStream.format("noop").option("checkpointLocation", cp).start()
    try:
        with pytest.raises(Exception, match="Another run of this query is active"):
            stream.toDF().writeStream.format("noop").option("checkpointLocation", cp).start()
        assert q.isActive
    finally:
        q.stop()


def test_changed_sources_are_rejected_before_start(spark, tmp_path):
    cp = str(tmp_path / "cp")
    a = MemoryStream("id LONG", spark)
    q = a.toDF().writeStream.format("noop").option("checkpointLocation", cp).start()
    q.stop()
    rate = spark.readStream.format("rate").load().select("value")
    with pytest.raises(AnalysisException, match="sources changed"):
        rate.union(a.toDF()).writeStream.format("noop").option("checkpointLocation", cp).start()


def test_old_log_entries_are_purged_beyond_min_batches_to_retain(spark, tmp_path):
    # A purge runs every min(PURGE_EVERY, retain) batches: here after batches 1, 3 and 5,
    # so between 2 and 3 entries are kept, never fewer than minBatchesToRetain.
    spark.conf.set("spark.sql.streaming.minBatchesToRetain", "2")
    stream = MemoryStream("id LONG", spark)
    cp = tmp_path / "cp"
    q = stream.toDF().writeStream.format("noop").option("checkpointLocation", str(cp)).start()
    kept = []
    for i in range(6):
        stream.addData([(i,)])
        q.processAllAvailable(30)
        kept.append(OffsetLog(str(cp / "offsets")).batch_ids())
    q.stop()
    assert kept == [[0], [0, 1], [0, 1, 2], [2, 3], [2, 3, 4], [4, 5]]
    assert CommitLog(str(cp / "commits")).batch_ids() == [4, 5]


def test_default_retention_purges_every_ten_batches_and_keeps_at_least_a_hundred():
    assert PURGE_EVERY == 10
    due = [b for b in range(100, 140) if _purge_due(b, 100)]
    assert due == [109, 119, 129, 139]
    assert [b for b in range(6) if _purge_due(b, 1)] == [0, 1, 2, 3, 4, 5]


def test_checkpoint_location_is_required_for_file_sinks(spark, tmp_path):
    stream = MemoryStream("id LONG", spark)
    with pytest.raises(AnalysisException, match="checkpointLocation must be specified"):
        stream.toDF().writeStream.format("parquet").start(str(tmp_path / "out"))


def test_unknown_formats_and_modes_fail_before_start(spark):
    stream = MemoryStream("id LONG", spark)
    with pytest.raises(AnalysisException, match="Failed to find the streaming sink"):
        stream.toDF().writeStream.format("nosuch").start()
    with pytest.raises(AnalysisException, match="Failed to find the streaming data source"):
        spark.readStream.format("nosuch").load()
    with pytest.raises(AnalysisException, match="Unknown output mode"):
        stream.toDF().writeStream.outputMode("sometimes")
    with pytest.raises(AnalysisException, match="Complete output mode not supported"):
        stream.toDF().writeStream.outputMode("complete").format("noop").start()


def test_streaming_dataframe_refuses_batch_actions(spark):
    stream = MemoryStream("id LONG", spark)
    with pytest.raises(AnalysisException, match=r"writeStream.start\(\)"):
        stream.toDF().collect()


def test_rate_source_replays_identical_rows_for_a_logged_range(spark, tmp_path):
    from unbounded.sources.base import SourceContext
    from unbounded.sources.rate import RateSource

    ctx = SourceContext({"rowsPerSecond": "7", "numPartitions": "3"}, None, str(tmp_path))
    first = RateSource("rate", ctx)
    again = RateSource("rate", ctx)
    read = lambda src: sorted(  # noqa: E731
        r for p in src.partitions(2, 5) for r in zip(*p.read().to_pydict().values(), strict=True))
    rows = read(first)
    assert rows == read(again)
    assert [v for _, v in rows] == list(range(14, 35))


def test_processing_time_trigger_spaces_batches(spark):
    stream = MemoryStream("id LONG", spark)
    q = (stream.toDF().writeStream.format("memory").queryName("pt_q")
         .trigger(processingTime="200 milliseconds").start())
    stream.addData([(1,)])
    q.processAllAvailable(30)
    stream.addData([(2,)])
    q.processAllAvailable(30)
    q.stop()
    batches = q.recentProgress
    assert [p.batchId for p in batches] == [0, 1]


def test_streams_manager_tracks_active_and_terminated_queries(spark):
    stream = MemoryStream("id LONG", spark)
    first = stream.toDF().writeStream.format("noop").queryName("m1").start()
    second = stream.toDF().writeStream.format("noop").queryName("m2").start()
    assert {q.name for q in spark.streams.active} == {"m1", "m2"}
    assert spark.streams.get(first.id) is first
    assert spark.streams.awaitAnyTermination(0.2) is False
    with pytest.raises(AnalysisException, match="already active"):
        stream.toDF().writeStream.format("noop").queryName("m1").start()
    first.stop()
    assert spark.streams.awaitAnyTermination(10) is True
    assert [q.name for q in spark.streams.active] == ["m2"]
    spark.streams.resetTerminated()
    assert spark.streams.awaitAnyTermination(0.2) is False
    second.stop()


def test_stop_between_batches_leaves_every_logged_batch_committed(spark, tmp_path):
    stream = MemoryStream("id LONG", spark)
    cp = tmp_path / "cp"
    q = stream.toDF().writeStream.format("noop").option("checkpointLocation", str(cp)).start()
    for i in range(3):
        stream.addData([(i,)])
    q.processAllAvailable(30)
    q.stop()
    assert not q.isActive and q.exception() is None
    assert sorted(os.listdir(cp / "offsets")) == sorted(os.listdir(cp / "commits"))


def test_an_overrun_processing_time_batch_starts_the_next_at_once(spark, monkeypatch,
                                                                  tmp_path):
    from datetime import datetime

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        (folder / f"f{i}.json").write_text(f'{{"id": {i}}}\n')
        os.utime(folder / f"f{i}.json", (1_700_000_000 + i, 1_700_000_000 + i))
    monkeypatch.setenv("UNBOUNDED_TEST_BATCH_DELAY", "0.5")  # each batch overruns 200 ms
    q = (spark.readStream.schema("id LONG").option("maxFilesPerTrigger", 1)
         .json(str(folder)).writeStream.format("noop")
         .trigger(processingTime="300 milliseconds").start())
    try:
        q.processAllAvailable(60)
    finally:
        q.stop()
    progress = q.recentProgress
    ends = [datetime.fromisoformat(p.timestamp.replace("Z", "+00:00")) for p in progress]
    idle = [(b - a).total_seconds() - p.batchDuration / 1000
            for a, b, p in zip(ends, ends[1:], progress[1:], strict=False)]
    assert len(progress) == 4
    assert all(gap < 0.15 for gap in idle), idle
