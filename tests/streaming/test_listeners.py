"""StreamingQueryListener, progress fields, observe() and query errors, end to end with
MemoryStream queries (PySpark 4's API is the oracle)."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime

import pytest

from unbounded.errors import StreamingQueryException
from unbounded.sql import SparkSession
from unbounded.sql import functions as F
from unbounded.sql.streaming import (
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
    StreamingQueryListener,
)
from unbounded.testing import MemoryStream


class Recorder(StreamingQueryListener):
    def __init__(self) -> None:
        self.events: list[object] = []
        self.threads: set[str] = set()

    def _keep(self, event: object) -> None:
        self.threads.add(threading.current_thread().name)
        self.events.append(event)

    def onQueryStarted(self, event: QueryStartedEvent) -> None:
        self._keep(event)

    def onQueryProgress(self, event: QueryProgressEvent) -> None:
        self._keep(event)

    def onQueryIdle(self, event: QueryIdleEvent) -> None:
        self._keep(event)

    def onQueryTerminated(self, event: QueryTerminatedEvent) -> None:
        self._keep(event)


def _drain(spark: SparkSession) -> None:
    assert spark.streams._hub.bus.wait_until_empty(30)


def _kinds(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events if not isinstance(e, QueryIdleEvent)]


def test_listener_sees_start_progress_terminated_in_order_with_pyspark_fields(spark):
    listener = Recorder()
    spark.streams.addListener(listener)
    stream = MemoryStream("id LONG", spark)
    q = stream.toDF().writeStream.format("memory").queryName("listened").start()
    for batch in ([(1,), (2,)], [(3,)]):
        stream.addData(batch)
        q.processAllAvailable(30)
    q.stop()
    _drain(spark)
    assert _kinds(listener.events) == ["QueryStartedEvent", "QueryProgressEvent",
                                       "QueryProgressEvent", "QueryTerminatedEvent"]
    started, *_ = listener.events
    assert isinstance(started, QueryStartedEvent)
    assert (started.id, started.runId, started.name) == (uuid.UUID(q.id), uuid.UUID(q.runId),
                                                         "listened")
    assert started.timestamp.endswith("Z") and started.jobTags == set()
    progress = [e.progress for e in listener.events if isinstance(e, QueryProgressEvent)]
    assert [(p.batchId, p.numInputRows, p.sink.numOutputRows) for p in progress] == [
        (0, 2, 2), (1, 1, 1)]
    assert progress[-1] is q.lastProgress
    ended = listener.events[-1]
    assert isinstance(ended, QueryTerminatedEvent)
    assert (ended.id, ended.runId, ended.exception, ended.errorClassOnException) == (
        uuid.UUID(q.id), uuid.UUID(q.runId), None, None)
    assert listener.threads == {"unbounded-listener-bus"}


def test_an_idle_query_posts_one_idle_event_per_interval(spark):
    spark.conf.set("spark.sql.streaming.noDataProgressEventInterval", "3600000")
    listener = Recorder()
    spark.streams.addListener(listener)
    stream = MemoryStream("id LONG", spark)
    q = stream.toDF().writeStream.format("noop").start()
    for _ in range(3):
        q.processAllAvailable(30)  # several idle triggers
    q.stop()
    _drain(spark)
    idle = [e for e in listener.events if isinstance(e, QueryIdleEvent)]
    assert len(idle) == 1  # at once (no batch ran yet), then not within the hour
    assert (idle[0].id, idle[0].runId) == (uuid.UUID(q.id), uuid.UUID(q.runId))
    assert q.recentProgress == []  # idle triggers add no progress (Spark 3.5+)


def test_a_raising_listener_is_logged_and_neither_the_query_nor_others_stop(spark, caplog):
    class Broken(Recorder):
        def onQueryProgress(self, event: QueryProgressEvent) -> None:
            raise RuntimeError("listener bug")

    broken, good = Broken(), Recorder()
    spark.streams.addListener(broken)
    spark.streams.addListener(good)
    stream = MemoryStream("id LONG", spark)
    q = stream.toDF().writeStream.format("memory").queryName("survives").start()
    for i in range(3):
        stream.addData([(i,)])
        q.processAllAvailable(30)
    assert q.isActive and q.exception() is None
    q.stop()
    _drain(spark)
    assert _kinds(good.events).count("QueryProgressEvent") == 3
    assert sorted(r.id for r in spark.table("survives").collect()) == [0, 1, 2]
    assert "listener bug" in caplog.text


def test_a_slow_listener_does_not_hold_batches_and_full_queue_drops_are_counted():
    spark = SparkSession.builder.config(
        "spark.scheduler.listenerbus.eventqueue.capacity", "2").config(
        "spark.sql.streaming.noDataProgressEventInterval", "3600000").create()
    release = threading.Event()

    class Stuck(Recorder):
        def onQueryStarted(self, event: QueryStartedEvent) -> None:
            release.wait(60)
            self._keep(event)

    stuck = Stuck()
    spark.streams.addListener(stuck)
    try:
        stream = MemoryStream("id LONG", spark)
        stream.addData([(0,)])  # the first trigger has data: no idle event at all
        q = stream.toDF().writeStream.format("memory").queryName("not_held").start()
        q.processAllAvailable(30)
        for i in range(1, 6):
            stream.addData([(i,)])
            q.processAllAvailable(30)
        # all six batches ran while the listener was still in its first call
        assert [p.batchId for p in q.recentProgress] == [0, 1, 2, 3, 4, 5]
        assert stuck.events == []
        assert spark.streams.droppedListenerEvents >= 4
        q.stop()
    finally:
        release.set()
        spark.stop()
    # started + 6 progress + terminated: each one delivered or counted as dropped
    assert len(stuck.events) + spark.streams.droppedListenerEvents == 8
    assert not any(isinstance(e, QueryIdleEvent) for e in stuck.events)


def test_removed_listener_gets_no_more_events(spark):
    listener = Recorder()
    spark.streams.addListener(listener)
    spark.streams.removeListener(listener)
    q = MemoryStream("id LONG", spark).toDF().writeStream.format("noop").start()
    q.stop()
    _drain(spark)
    assert listener.events == []


def test_add_listener_rejects_other_objects(spark):
    with pytest.raises(TypeError, match="StreamingQueryListener"):
        spark.streams.addListener(object())


def test_a_failed_query_reports_the_cause_to_listeners_and_in_pyspark_shape(spark, tmp_path):
    listener = Recorder()
    spark.streams.addListener(listener)
    stream = MemoryStream("id LONG", spark)

    def boom(df, batch_id):
        raise ZeroDivisionError("bad batch")

    q = (stream.toDF().writeStream.foreachBatch(boom)
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    stream.addData([(1,)])
    with pytest.raises(StreamingQueryException) as caught:
        q.awaitTermination(30)
    error = q.exception()
    assert caught.value is error
    assert str(error) == (f"[STREAM_FAILED] Query [id = {q.id}, runId = {q.runId}] terminated "
                          "with exception: ZeroDivisionError: bad batch SQLSTATE: XXKST")
    assert error.getErrorClass() == "STREAM_FAILED"
    assert isinstance(error.cause, ZeroDivisionError) and error.__cause__ is error.cause
    _drain(spark)
    ended = listener.events[-1]
    assert isinstance(ended, QueryTerminatedEvent)
    assert ended.exception is not None and "ZeroDivisionError: bad batch" in ended.exception
    assert "Traceback" in ended.exception and ended.errorClassOnException is None


def test_progress_carries_every_spark_field(spark):
    stream = MemoryStream("ts TIMESTAMP, k STRING", spark)
    df = (stream.toDF().withWatermark("ts", "10 seconds")
          .groupBy(F.window("ts", "10 seconds"), "k").count())
    q = df.writeStream.format("memory").queryName("fields").outputMode("update").start()
    stream.addData([(datetime(2024, 1, 1, 0, 0, 5), "a"), (datetime(2024, 1, 1, 0, 0, 7), "b")])
    q.processAllAvailable(30)
    p = q.recentProgress[0]
    q.stop()
    assert set(p) >= {"id", "runId", "name", "timestamp", "batchId", "batchDuration",
                      "numInputRows", "inputRowsPerSecond", "processedRowsPerSecond",
                      "durationMs", "eventTime", "stateOperators", "sources", "sink",
                      "observedMetrics"}
    assert set(p.durationMs) == {"latestOffset", "queryPlanning", "getBatch", "walCommit",
                                 "addBatch", "commitOffsets", "triggerExecution"}
    assert p.batchDuration == p.durationMs["triggerExecution"]
    assert p.eventTime == {"watermark": "1970-01-01T00:00:00.000Z",
                           "min": "2024-01-01T00:00:05.000Z", "max": "2024-01-01T00:00:07.000Z",
                           "avg": "2024-01-01T00:00:06.000Z"}
    op = p.stateOperators[0]
    assert set(op) == {"operatorName", "numRowsTotal", "numRowsUpdated", "allUpdatesTimeMs",
                       "numRowsRemoved", "allRemovalsTimeMs", "commitTimeMs", "memoryUsedBytes",
                       "numRowsDroppedByWatermark", "numShufflePartitions",
                       "numStateStoreInstances", "customMetrics"}
    assert (op.operatorName, op.numRowsTotal, op.numRowsUpdated) == ("stateStoreSave", 2, 2)
    assert set(p.sources[0]) == {"description", "startOffset", "endOffset", "latestOffset",
                                 "numInputRows", "inputRowsPerSecond", "processedRowsPerSecond",
                                 "metrics"}
    assert p.sink == {"description": "MemorySink[fields]", "numOutputRows": 2, "metrics": {}}
    assert p.observedMetrics == {}


def test_recent_progress_is_bounded_by_num_recent_progress_updates(spark):
    spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", "3")
    stream = MemoryStream("id LONG", spark)
    q = stream.toDF().writeStream.format("noop").start()
    for i in range(5):
        stream.addData([(i,)])
        q.processAllAvailable(30)
    q.stop()
    assert [p.batchId for p in q.recentProgress] == [2, 3, 4]


def test_observe_reports_batch_level_aggregates_per_micro_batch(spark):
    stream = MemoryStream("id LONG, name STRING", spark)
    observed = stream.toDF().observe(
        "metric", F.count(F.lit(1)).alias("rows"), F.max("id").alias("max_id"),
        F.count("name").alias("named"))
    q = observed.writeStream.format("memory").queryName("observed").start()
    stream.addData([(1, "a"), (7, None)])
    q.processAllAvailable(30)
    stream.addData([(3, "c")])
    q.processAllAvailable(30)
    q.stop()
    assert [p.observedMetrics for p in q.recentProgress] == [
        {"metric": {"rows": 2, "max_id": 7, "named": 1}},
        {"metric": {"rows": 1, "max_id": 3, "named": 1}}]
    assert q.lastProgress.observedMetrics["metric"].max_id == 3
    assert sorted(r.id for r in spark.table("observed").collect()) == [1, 3, 7]


def test_observe_over_an_aggregation_sees_the_rows_the_sink_gets(spark):
    stream = MemoryStream("k STRING", spark)
    counts = stream.toDF().groupBy("k").count()
    q = (counts.observe("out", F.sum("count").alias("total"), F.count(F.lit(1)).alias("keys"))
         .writeStream.format("memory").queryName("obs_agg").outputMode("complete").start())
    stream.addData([("a",), ("a",), ("b",)])
    q.processAllAvailable(30)
    q.stop()
    assert q.lastProgress.observedMetrics == {"out": {"total": 3, "keys": 2}}


def test_observe_rejects_a_column_outside_an_aggregate_and_a_buried_position(spark):
    from unbounded.errors import AnalysisException

    df = MemoryStream("id LONG", spark).toDF()
    with pytest.raises(AnalysisException, match="NON_AGGREGATE_FUNC_ARG_IS_ATTRIBUTE"):
        df.observe("m", F.col("id"))
    buried = df.observe("m", F.count(F.lit(1))).filter("id > 0")
    with pytest.raises(AnalysisException, match="last transformation before writeStream"):
        buried.writeStream.format("noop").start()


def test_observe_on_a_batch_dataframe_keeps_its_rows(spark):
    df = spark.range(4).observe("m", F.max("id").alias("mx"))
    assert [r.id for r in df.filter("id > 1").collect()] == [2, 3]


def _failing_query(spark, tmp_path, name):
    stream = MemoryStream("id LONG", spark)

    def boom(df, batch_id):
        raise ValueError(f"{name} failed")

    q = (stream.toDF().writeStream.foreachBatch(boom).queryName(name)
         .option("checkpointLocation", str(tmp_path / name)).start())
    stream.addData([(1,)])
    with pytest.raises(StreamingQueryException):
        q.awaitTermination(30)
    return q


def test_await_any_termination_keeps_the_latest_failure_over_later_clean_stops(spark, tmp_path):
    clean = MemoryStream("id LONG", spark).toDF().writeStream.format("noop").start()
    failed = _failing_query(spark, tmp_path, "first")
    clean.stop()  # a clean stop after a failure does not hide it (Spark)
    with pytest.raises(StreamingQueryException, match="first failed") as caught:
        spark.streams.awaitAnyTermination()
    assert caught.value is failed.exception()
    later = _failing_query(spark, tmp_path, "second")
    with pytest.raises(StreamingQueryException, match="second failed") as caught:
        spark.streams.awaitAnyTermination(5)
    assert caught.value is later.exception()


def test_reset_terminated_forgets_failures_and_waits_for_the_next_termination(spark, tmp_path):
    _failing_query(spark, tmp_path, "gone")
    spark.streams.resetTerminated()
    assert spark.streams.awaitAnyTermination(0.2) is False
    q = MemoryStream("id LONG", spark).toDF().writeStream.format("noop").start()
    q.stop()
    assert spark.streams.awaitAnyTermination(5) is True
    assert spark.streams.awaitAnyTermination() is None  # without timeout: returns None


def test_await_any_termination_rejects_a_negative_timeout(spark):
    with pytest.raises(ValueError, match="positive"):
        spark.streams.awaitAnyTermination(-1)


def test_a_query_ends_even_when_reporting_its_end_fails(spark, monkeypatch):
    from unbounded.observe.hub import QueryObserver

    def broken(self, query_id, run_id, error):
        raise RuntimeError("observer bug")

    monkeypatch.setattr(QueryObserver, "terminated", broken)
    q = MemoryStream("id LONG", spark).toDF().writeStream.format("noop").start()
    q.stop()
    assert q.awaitTermination(10) is True and not q.isActive
    assert spark.streams.awaitAnyTermination(5) is True
