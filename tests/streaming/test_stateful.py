"""Event time and state: windows, output modes, deduplication, with exact rows per batch."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from unbounded.errors import AnalysisException, UnsupportedOperationException
from unbounded.sql import Row
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def w(start: float, end: float) -> Row:
    return Row(start=at(start), end=at(end))


class Batches:
    """A foreachBatch sink that keeps each batch's rows, sorted, by batch id."""

    def __init__(self) -> None:
        self.by_id: dict[int, list[tuple]] = {}

    def __call__(self, df, batch_id: int) -> None:
        self.by_id[batch_id] = sorted((tuple(r) for r in df.collect()), key=repr)

    def nonempty(self) -> list[list[tuple]]:
        return [rows for _, rows in sorted(self.by_id.items()) if rows]


def S(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=repr)


def _start(df, sink, cp, mode):
    return (df.writeStream.outputMode(mode).foreachBatch(sink)
            .option("checkpointLocation", str(cp)).start())


def _run(df, sink, cp, mode, stream, *blocks):
    """Start the query, feed ``blocks`` one batch each, wait for each, stop."""
    q = _start(df, sink, cp, mode)
    try:
        for block in blocks:
            stream.addData(block)
            q.processAllAvailable(30)
        if not blocks:
            q.processAllAvailable(30)
    finally:
        q.stop()
    return q


def _windowed_counts(spark):
    stream = MemoryStream("ts TIMESTAMP, word STRING", spark)
    df = (stream.toDF().withWatermark("ts", "10 minutes")
          .groupBy(F.window("ts", "5 minutes"), "word").count())
    return stream, df


def test_update_mode_emits_changed_windows_and_drops_late_rows(spark, tmp_path):
    stream, df = _windowed_counts(spark)
    sink = Batches()
    q = _start(df, sink, tmp_path / "cp", "update")
    stream.addData([(at(0), "a"), (at(1), "a"), (at(2), "b")])
    q.processAllAvailable(30)
    stream.addData([(at(3), "a"), (at(21), "a")])  # watermark is now 10:02 - 10 min
    q.processAllAvailable(30)
    stream.addData([(at(4), "a"), (at(12), "c")])  # 10:04 is late: watermark is 10:11
    q.processAllAvailable(30)
    q.stop()
    assert sink.nonempty() == [S([(w(0, 5), "a", 2), (w(0, 5), "b", 1)]),
                               S([(w(0, 5), "a", 3), (w(20, 25), "a", 1)]),
                               S([(w(10, 15), "c", 1)])]
    dropped = sum(p.stateOperators[0]["numRowsDroppedByWatermark"] for p in q.recentProgress)
    assert dropped == 1


def test_append_mode_emits_each_window_once_when_the_watermark_closes_it(spark, tmp_path):
    stream, df = _windowed_counts(spark)
    sink = Batches()
    q = _start(df, sink, tmp_path / "cp", "append")
    stream.addData([(at(0), "a"), (at(1), "a"), (at(6), "b")])
    q.processAllAvailable(30)
    assert sink.nonempty() == []
    stream.addData([(at(16), "a")])  # watermark becomes 10:06: closes [10:00, 10:05)
    q.processAllAvailable(30)
    assert sink.nonempty() == [[(w(0, 5), "a", 2)]]
    stream.addData([(at(40), "z")])  # closes [10:05,10:10) and [10:15,10:20)
    q.processAllAvailable(30)
    q.stop()
    assert sink.nonempty() == [[(w(0, 5), "a", 2)],
                               S([(w(5, 10), "b", 1), (w(15, 20), "a", 1)])]
    assert q.lastProgress.stateOperators[0]["numRowsTotal"] == 1  # only the 10:40 window


def test_complete_mode_keeps_every_window(spark, tmp_path):
    stream, df = _windowed_counts(spark)
    sink = Batches()
    _run(df, sink, tmp_path / "cp", "complete", stream,
         [(at(0), "a")],
         [(at(30), "a"), (at(0), "a")])
    assert sink.nonempty()[-1] == S([(w(0, 5), "a", 2), (w(30, 35), "a", 1)])


def test_state_survives_restart_between_batches(spark, tmp_path):
    stream, df = _windowed_counts(spark)
    sink = Batches()
    q = _run(df, sink, tmp_path / "cp", "update", stream, [(at(0), "a"), (at(1), "a")])
    stream.addData([(at(2), "a")])
    q = _start(df, sink, tmp_path / "cp", "update")
    q.processAllAvailable(30)
    q.stop()
    assert sink.nonempty()[-1] == [(w(0, 5), "a", 3)]


def test_rerun_of_an_uncommitted_stateful_batch_recomputes_the_same_rows(spark, tmp_path):
    stream, df = _windowed_counts(spark)
    sink = Batches()
    cp = tmp_path / "cp"
    q = _run(df, sink, cp, "update", stream, [(at(0), "a")], [(at(1), "a"), (at(2), "b")])
    last = max(b for b, rows in sink.by_id.items() if rows)
    first = sink.by_id[last]
    for later in range(last + 1, max(sink.by_id) + 1):  # no-data batches after it
        os.unlink(cp / "commits" / str(later))
        os.unlink(cp / "offsets" / str(later))
    os.unlink(cp / "commits" / str(last))  # as if the process died before this commit
    sink.by_id.clear()
    q = _start(df, sink, cp, "update")
    q.processAllAvailable(30)
    q.stop()
    assert sink.by_id[last] == first == S([(w(0, 5), "a", 2), (w(0, 5), "b", 1)])


def test_sliding_windows_count_a_row_in_every_window_that_covers_it(spark, tmp_path):
    stream = MemoryStream("ts TIMESTAMP, v LONG", spark)
    df = stream.toDF().groupBy(F.window("ts", "10 minutes", "5 minutes")).agg(
        F.sum("v").alias("total"))
    sink = Batches()
    _run(df, sink, tmp_path / "cp", "complete", stream, [(at(7), 1), (at(12), 10)])
    assert sink.nonempty()[-1] == S([(w(0, 10), 1), (w(5, 15), 11), (w(10, 20), 10)])


def test_aggregates_over_plain_keys_match_a_batch_query(spark, tmp_path):
    stream = MemoryStream("k STRING, v LONG", spark)
    aggs = [F.count("*").alias("n"), F.sum("v").alias("s"), F.avg("v").alias("a"),
            F.min("v").alias("lo"), F.max("v").alias("hi"),
            F.count_distinct("v").alias("d"), F.collect_set("v").alias("set")]
    df = stream.toDF().groupBy("k").agg(*aggs)
    sink = Batches()
    q = _start(df, sink, tmp_path / "cp", "complete")
    data = [[("x", 1), ("y", 5)], [("x", 3), ("x", 1)], [("y", None), ("z", 7)]]
    for block in data:
        stream.addData(block)
        q.processAllAvailable(30)
    q.stop()
    flat = [r for block in data for r in block]
    batch = spark.createDataFrame(flat, "k STRING, v LONG").groupBy("k").agg(*aggs)
    normalise = lambda rows: sorted(((*r[:7], sorted(r[7])) for r in rows), key=repr)  # noqa: E731
    assert normalise(sink.nonempty()[-1]) == normalise(tuple(r) for r in batch.collect())


def test_drop_duplicates_without_watermark_remembers_every_key(spark, tmp_path):
    stream = MemoryStream("id LONG, v STRING", spark)
    sink = Batches()
    _run(stream.toDF().dropDuplicates(["id"]), sink, tmp_path / "cp", "append", stream,
         [(1, "a"), (1, "b"), (2, "c")],
         [(2, "d"), (3, "e")])
    assert sink.nonempty() == [S([(1, "a"), (2, "c")]), [(3, "e")]]


def test_drop_duplicates_with_watermark_evicts_old_keys(spark, tmp_path):
    stream = MemoryStream("id LONG, ts TIMESTAMP", spark)
    df = stream.toDF().withWatermark("ts", "5 minutes").dropDuplicates(["id", "ts"])
    sink = Batches()
    q = _start(df, sink, tmp_path / "cp", "append")
    stream.addData([(1, at(0)), (1, at(0))])
    q.processAllAvailable(30)
    stream.addData([(2, at(20))])
    q.processAllAvailable(30)
    stream.addData([(1, at(0)), (3, at(16))])  # (1, 10:00) is late now
    q.processAllAvailable(30)
    q.stop()
    assert sink.nonempty() == [[(1, at(0))], [(2, at(20))], [(3, at(16))]]
    assert q.lastProgress.stateOperators[0]["numRowsTotal"] == 2


def test_drop_duplicates_within_watermark_expires_keys_after_the_delay(spark, tmp_path):
    stream = MemoryStream("id LONG, ts TIMESTAMP", spark)
    df = stream.toDF().withWatermark("ts", "5 minutes").dropDuplicatesWithinWatermark(["id"])
    sink = Batches()
    q = _start(df, sink, tmp_path / "cp", "append")
    stream.addData([(1, at(0)), (1, at(1))])
    q.processAllAvailable(30)
    stream.addData([(1, at(4))])  # within 5 minutes of the first: duplicate
    q.processAllAvailable(30)
    stream.addData([(9, at(30))])  # watermark 10:25 expires key 1
    q.processAllAvailable(30)
    stream.addData([(1, at(31))])
    q.processAllAvailable(30)
    q.stop()
    assert sink.nonempty() == [[(1, at(0))], [(9, at(30))], [(1, at(31))]]


def test_watermark_is_logged_and_restored(spark, tmp_path):
    stream, df = _windowed_counts(spark)
    sink = Batches()
    cp = tmp_path / "cp"
    _run(df, sink, cp, "update", stream, [(at(30), "a")])
    _run(df, sink, cp, "update", stream, [(at(0), "late")])
    assert all(r[1] != "late" for rows in sink.nonempty() for r in rows)
    latest = max(int(n) for n in os.listdir(cp / "offsets") if n.isdigit())
    header = (cp / "offsets" / str(latest)).read_text().split("\n")[1]
    watermark_ms = int(at(20).replace(tzinfo=dt.UTC).timestamp() * 1000)
    assert f"\"batchWatermarkMs\":{watermark_ms}" in header


def test_append_without_watermark_is_rejected_with_sparks_reason(spark):
    stream = MemoryStream("ts TIMESTAMP, word STRING", spark)
    df = stream.toDF().groupBy(F.window("ts", "1 minute")).count()
    with pytest.raises(UnsupportedOperationException,
                       match="Append output mode not supported when there are streaming "
                             "aggregations on streaming DataFrames/DataSets without watermark"):
        df.writeStream.outputMode("append").format("memory").queryName("x").start()


def test_changed_state_schema_fails_with_what_changed(spark, tmp_path):
    stream = MemoryStream("k STRING, v LONG", spark)
    sink = Batches()
    _run(stream.toDF().groupBy("k").count(), sink, tmp_path / "cp", "update", stream,
         [("a", 1)])
    changed = stream.toDF().groupBy("k").agg(F.sum("v"))
    with pytest.raises(AnalysisException, match="state schema"):
        _start(changed, sink, tmp_path / "cp", "update")


@pytest.mark.parametrize(("policy", "expected_minutes"), [("min", 5), ("max", 30)])
def test_global_watermark_follows_the_multiple_watermark_policy(spark, tmp_path, policy,
                                                               expected_minutes):
    spark.conf.set("spark.sql.streaming.multipleWatermarkPolicy", policy)
    left = MemoryStream("ts TIMESTAMP, word STRING", spark)
    right = MemoryStream("ts TIMESTAMP, word STRING", spark)
    both = left.toDF().withWatermark("ts", "0 seconds").union(
        right.toDF().withWatermark("ts", "0 seconds"))
    df = both.groupBy(F.window("ts", "5 minutes"), "word").count()
    sink = Batches()
    left.addData([(at(30), "a")])  # both before the start, so one batch sees both inputs
    right.addData([(at(5), "b")])
    q = _start(df, sink, tmp_path / "cp", "update")
    q.processAllAvailable(30)
    q.stop()
    assert q.lastProgress.eventTime["watermark"] == at(expected_minutes).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z")


def test_trigger_once_runs_no_batch_without_data(spark, tmp_path):
    stream, df = _windowed_counts(spark)
    stream.addData([(at(0), "a"), (at(30), "a")])
    sink = Batches()
    q = (df.writeStream.outputMode("append").foreachBatch(sink).trigger(once=True)
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    assert q.awaitTermination(30)
    assert list(sink.by_id) == [0] and sink.by_id[0] == []
    q = (df.writeStream.outputMode("append").foreachBatch(sink).trigger(availableNow=True)
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    assert q.awaitTermination(30)
    assert sink.nonempty() == [[(w(0, 5), "a", 1)]], "availableNow runs the no-data batch"


def test_window_fields_are_selectable_after_aggregation(spark, tmp_path):
    stream, df = _windowed_counts(spark)
    flat = df.select(F.col("window.start").alias("start"), F.col("window.end"), "word", "count")
    sink = Batches()
    _run(flat, sink, tmp_path / "cp", "update", stream, [(at(1), "a")])
    assert sink.nonempty() == [[(at(0), at(5), "a", 1)]]


def test_state_partitions_stay_as_first_run_fixed_them(spark, tmp_path):
    stream, df = _windowed_counts(spark)
    sink = Batches()
    cp = tmp_path / "cp"
    q = _run(df, sink, cp, "update", stream, [(at(0), "a")])
    spark.conf.set("spark.sql.shuffle.partitions", "5")
    stream.addData([(at(1), "a")])
    q = _start(df, sink, cp, "update")
    q.processAllAvailable(30)
    q.stop()
    assert sorted(os.listdir(cp / "state" / "0")) == ["0", "1", "_metadata"]
    assert sink.nonempty()[-1] == [(w(0, 5), "a", 2)]
    assert q.lastProgress.stateOperators[0]["numShufflePartitions"] == 2


def test_rocksdb_provider_keeps_aggregation_state_across_restarts(spark, tmp_path):
    spark.conf.set("spark.sql.streaming.stateStore.providerClass",
                   "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider")
    stream, df = _windowed_counts(spark)
    sink = Batches()
    cp = tmp_path / "cp"
    q = _run(df, sink, cp, "update", stream, [(at(0), "a"), (at(0), "b")])
    stream.addData([(at(2), "a")])
    q = _start(df, sink, cp, "update")
    q.processAllAvailable(30)
    q.stop()
    assert sink.nonempty()[-1] == [(w(0, 5), "a", 2)]


def test_first_last_and_collect_list_follow_row_order_within_a_batch(spark, tmp_path):
    stream = MemoryStream("k STRING, v LONG", spark)
    df = stream.toDF().groupBy("k").agg(F.first("v").alias("f"), F.last("v").alias("l"),
                                         F.collect_list("v").alias("all"))
    sink = Batches()
    _run(df, sink, tmp_path / "cp", "complete", stream,
         [("a", i) for i in range(300_000)],
         [("a", 5000), ("a", 5001)])
    [(key, first, last, values)] = sink.nonempty()[-1]
    assert (key, first, last) == ("a", 0, 5001)
    assert values == [*range(300_000), 5000, 5001]
