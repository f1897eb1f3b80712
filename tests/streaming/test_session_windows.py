"""Session windows on a stream: exact rows per batch as sessions close, merging across
batches, complete mode, restarts, and agreement with the batch query."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest

from unbounded.errors import UnsupportedOperationException
from unbounded.sql import Row
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)
SCHEMA = "ts TIMESTAMP, user STRING, v LONG"


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def s(start: float, end: float) -> tuple[dt.datetime, dt.datetime]:
    """A session window as collected: the struct {start, end} as a tuple."""
    return (at(start), at(end))


def plain(row: Any) -> tuple[Any, ...]:
    return tuple(tuple(v) if isinstance(v, Row) else v for v in row)


class Batches:
    """A foreachBatch sink that keeps each batch's rows, sorted, by batch id."""

    def __init__(self) -> None:
        self.by_id: dict[int, list[tuple[Any, ...]]] = {}

    def __call__(self, df: Any, batch_id: int) -> None:
        self.by_id[batch_id] = sorted((plain(r) for r in df.collect()), key=repr)

    def nonempty(self) -> list[list[tuple[Any, ...]]]:
        return [rows for _, rows in sorted(self.by_id.items()) if rows]

    def all_rows(self) -> list[tuple[Any, ...]]:
        return sorted((r for rows in self.by_id.values() for r in rows), key=repr)


def S(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=repr)


def _sessions(stream: MemoryStream) -> Any:
    return (stream.toDF().withWatermark("ts", "10 minutes")
            .groupBy(F.session_window("ts", "5 minutes"), "user")
            .agg(F.count("*").alias("n"), F.sum("v").alias("total")))


def _start(df: Any, sink: Batches, cp: Any, mode: str) -> Any:
    return (df.writeStream.outputMode(mode).foreachBatch(sink)
            .option("checkpointLocation", str(cp)).start())


def _run(q: Any, stream: MemoryStream, rows: list[tuple[Any, ...]]) -> None:
    stream.addData(rows)
    q.processAllAvailable(30)


def test_append_emits_each_session_once_when_the_watermark_passes_its_end(spark, tmp_path):
    stream = MemoryStream(SCHEMA, spark)
    sink = Batches()
    q = _start(_sessions(stream), sink, tmp_path / "cp", "append")
    _run(q, stream, [(at(0), "a", 1), (at(3), "a", 2), (at(2), "b", 10)])
    assert sink.nonempty() == []
    _run(q, stream, [(at(8), "a", 4), (at(30), "a", 8)])  # 10:08 touches [10:03, 10:08)
    assert sink.nonempty() == [S([(s(0, 13), "a", 3, 7), (s(2, 7), "b", 1, 10)])]
    # Watermark 10:20: 10:12 is late (its window ends 10:17); 10:16 is not (ends 10:21).
    _run(q, stream, [(at(16), "a", 16), (at(12), "a", 32), (at(17), "c", 64)])
    _run(q, stream, [(at(60), "z", 0)])
    q.stop()
    assert sink.nonempty() == [
        S([(s(0, 13), "a", 3, 7), (s(2, 7), "b", 1, 10)]),
        S([(s(16, 21), "a", 1, 16), (s(17, 22), "c", 1, 64), (s(30, 35), "a", 1, 8)]),
    ]
    dropped = sum(p.stateOperators[0]["numRowsDroppedByWatermark"] for p in q.recentProgress)
    assert dropped == 1
    last = q.lastProgress.stateOperators[0]
    assert last["operatorName"] == "sessionWindowStateStoreSaveExec"
    assert last["numRowsTotal"] == 1  # the 11:00 row; the rows of emitted sessions are gone
    removed = sum(p.stateOperators[0]["numRowsRemoved"] for p in q.recentProgress)
    assert removed == 7
    assert all(p.stateOperators[0]["memoryUsedBytes"] >= 0 for p in q.recentProgress)


def test_a_row_that_bridges_two_open_sessions_merges_them(spark, tmp_path):
    stream = MemoryStream(SCHEMA, spark)
    sink = Batches()
    q = _start(_sessions(stream), sink, tmp_path / "cp", "append")
    _run(q, stream, [(at(0), "a", 1), (at(10), "a", 2)])
    _run(q, stream, [(at(5), "a", 4)])  # [10:05, 10:10) joins [10:00, 10:05) and [10:10, ...)
    _run(q, stream, [(at(40), "z", 0)])
    q.stop()
    assert sink.nonempty() == [[(s(0, 15), "a", 3, 7)]]


def test_complete_mode_emits_every_session_and_keeps_all_rows(spark, tmp_path):
    stream = MemoryStream(SCHEMA, spark)
    sink = Batches()
    q = _start(_sessions(stream), sink, tmp_path / "cp", "complete")
    _run(q, stream, [(at(0), "a", 1), (at(3), "a", 2), (at(2), "b", 10)])
    assert sink.nonempty()[-1] == S([(s(0, 8), "a", 2, 3), (s(2, 7), "b", 1, 10)])
    _run(q, stream, [(at(30), "a", 4), (at(8), "a", 8)])
    _run(q, stream, [(at(16), "a", 16), (at(12), "a", 32)])  # not late in complete mode
    q.stop()
    assert sink.nonempty()[-1] == S([(s(0, 21), "a", 5, 59), (s(2, 7), "b", 1, 10),
                                     (s(30, 35), "a", 1, 4)])
    assert q.lastProgress.stateOperators[0]["numRowsTotal"] == 7


@pytest.mark.parametrize("provider", ["memory", "disk"])
def test_open_sessions_survive_a_restart_between_batches(spark, tmp_path, provider):
    spark.conf.set("spark.sql.streaming.stateStore.providerClass", provider)
    stream = MemoryStream(SCHEMA, spark)
    sink = Batches()
    cp = tmp_path / "cp"
    q = _start(_sessions(stream), sink, cp, "append")
    _run(q, stream, [(at(0), "a", 1), (at(2), "a", 2)])
    q.stop()
    q = _start(_sessions(stream), sink, cp, "append")
    _run(q, stream, [(at(6), "a", 4)])
    q.stop()
    q = _start(_sessions(stream), sink, cp, "append")
    _run(q, stream, [(at(30), "z", 0)])
    q.stop()
    assert sink.nonempty() == [[(s(0, 11), "a", 3, 7)]]


def test_rerun_of_an_uncommitted_batch_emits_the_same_sessions(spark, tmp_path):
    stream = MemoryStream(SCHEMA, spark)
    sink = Batches()
    cp = tmp_path / "cp"
    q = _start(_sessions(stream), sink, cp, "append")
    _run(q, stream, [(at(0), "a", 1), (at(2), "a", 2)])
    _run(q, stream, [(at(4), "a", 4), (at(30), "b", 8)])
    q.stop()
    last = max(b for b, rows in sink.by_id.items() if rows)
    first = sink.by_id[last]
    for later in range(last + 1, max(sink.by_id) + 1):
        os.unlink(cp / "commits" / str(later))
        os.unlink(cp / "offsets" / str(later))
    os.unlink(cp / "commits" / str(last))  # as if the process died before this commit
    sink.by_id.clear()
    q = _start(_sessions(stream), sink, cp, "append")
    q.processAllAvailable(30)
    q.stop()
    assert sink.by_id[last] == first == [(s(0, 9), "a", 3, 7)]


def test_dynamic_gap_column_per_row(spark, tmp_path):
    stream = MemoryStream(SCHEMA, spark)
    gap = F.when(F.col("user") == "slow", "20 minutes").when(F.col("v") < 0, "0 seconds") \
        .otherwise("2 minutes")
    df = (stream.toDF().withWatermark("ts", "0 seconds")
          .groupBy(F.session_window("ts", gap), "user").agg(F.count("*").alias("n")))
    sink = Batches()
    q = _start(df, sink, tmp_path / "cp", "append")
    _run(q, stream, [(at(0), "slow", 1), (at(15), "slow", 1), (at(0), "fast", 1),
                     (at(3), "fast", 1), (at(4), "fast", -1)])  # a gap of 0 is no window
    _run(q, stream, [(at(100), "z", 1)])
    q.stop()
    # The watermark 10:15 closes the 2-minute sessions; the 20-minute one waits for 11:40.
    assert sink.nonempty() == [S([(s(0, 2), "fast", 1), (s(3, 5), "fast", 1)]),
                               [(s(0, 35), "slow", 2)]]


def test_streamed_sessions_equal_the_batch_query_closed_by_the_final_watermark(spark,
                                                                               tmp_path):
    blocks = [[(at(m), u, m) for m in ms for u in us] for ms, us in [
        ([0, 4, 9], ["a", "b"]), ([2, 14, 31], ["a"]), ([20, 26, 8], ["b", "c"]),
        ([45, 47], ["a", "c"]), ([70], ["z"])]]
    stream = MemoryStream(SCHEMA, spark)
    sink = Batches()
    q = _start(_sessions(stream), sink, tmp_path / "cp", "append")
    for block in blocks:
        _run(q, stream, block)
    q.stop()
    final_watermark = at(70 - 10)
    # 10:08 of b and c is late when it arrives (watermark 10:21); Spark drops it too.
    flat = [r for block in blocks for r in block if not (r[0] == at(8) and r[1] in "bc")]
    batch = spark.createDataFrame(flat, SCHEMA).groupBy(
        F.session_window("ts", "5 minutes"), "user").agg(
        F.count("*").alias("n"), F.sum("v").alias("total"))
    expected = [plain(r) for r in batch.collect() if r[0]["end"] <= final_watermark]
    assert sink.all_rows() == S(expected)
    assert len(expected) > 5


def test_output_columns_and_types_equal_the_batch_query(spark, tmp_path):
    stream = MemoryStream(SCHEMA, spark)
    df = (stream.toDF().withWatermark("ts", "1 minute")
          .groupBy("user", F.session_window("ts", "1 minute").alias("sw"))
          .agg(F.collect_list("v").alias("vs"), F.avg("v").alias("mean")))
    batch = spark.createDataFrame([(at(0), "a", 1)], SCHEMA).groupBy(
        "user", F.session_window("ts", "1 minute").alias("sw")).agg(
        F.collect_list("v").alias("vs"), F.avg("v").alias("mean"))
    assert df.schema == batch.schema
    sink = Batches()
    q = _start(df, sink, tmp_path / "cp", "append")
    _run(q, stream, [(at(1), "a", 2), (at(0), "a", 1), (at(1.5), "a", 3)])
    _run(q, stream, [(at(10), "z", 0)])
    q.stop()
    assert sink.nonempty() == [[("a", s(0, 2.5), [1, 2, 3], 2.0)]]


def test_update_mode_is_rejected_before_the_query_starts(spark, tmp_path):
    stream = MemoryStream(SCHEMA, spark)
    with pytest.raises(UnsupportedOperationException,
                       match="Update output mode is not supported with session windows"):
        _start(_sessions(stream), Batches(), tmp_path / "cp", "update")
    assert not (tmp_path / "cp" / "offsets").exists()
