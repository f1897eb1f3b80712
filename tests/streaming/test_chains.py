"""Chains of stateful operators (Spark 3.4+): each operator keeps its own state, sees the
watermark its upstream passes on, and filters late rows with the previous batch's
watermark, so rows an upstream operator emits in a batch are not late downstream.
"""

from __future__ import annotations

import datetime as dt

import pytest

from unbounded.errors import UnsupportedOperationException
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def _run(df, stream, tmp_path, steps, mode="append"):
    """Feed each step, wait for it (and the batches without data it triggers); the rows
    emitted per step."""
    emitted: dict[int, list[tuple]] = {}
    q = (df.writeStream.outputMode(mode)
         .foreachBatch(lambda d, b: emitted.__setitem__(b, [tuple(r) for r in d.collect()]))
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    per_step = []
    try:
        for rows in steps:
            seen = set(emitted)
            stream.addData(rows)
            q.processAllAvailable(30)
            per_step.append(sorted((r for b in sorted(emitted) if b not in seen
                                    for r in emitted[b]), key=repr))
    finally:
        q.stop()
    return per_step


def _window(row_window) -> tuple[dt.datetime, dt.datetime]:
    return row_window.start, row_window.end


def test_chained_window_aggregations_through_window_time(spark, tmp_path):
    events = MemoryStream("k STRING, ts TIMESTAMP", spark)
    five = (events.toDF().withWatermark("ts", "10 minutes")
            .groupBy(F.window("ts", "5 minutes"), "k").count())
    hourly = (five.groupBy(F.window(F.window_time("window"), "1 hour"))
              .agg(F.sum("count").alias("total"), F.count("*").alias("windows")))
    steps = _run(hourly, events, tmp_path, [
        [("a", at(1)), ("a", at(2)), ("b", at(7))],
        # The watermark reaches 10:20: the 5-minute windows close and reach the hourly
        # aggregation in the same batch; they are older than 10:20 but not late there.
        [("a", at(30))],
        [("a", at(90))],  # watermark 11:20: the hour [10:00, 11:00) closes
    ])
    assert steps[0] == [] and steps[1] == []
    assert [(_window(w), total, n) for w, total, n in steps[2]] == [((at(0), at(60)), 4, 3)]


def test_dedup_feeds_a_windowed_aggregation(spark, tmp_path):
    events = MemoryStream("id INT, ts TIMESTAMP", spark)
    counts = (events.toDF().withWatermark("ts", "10 minutes").dropDuplicates(["id", "ts"])
              .groupBy(F.window("ts", "5 minutes")).count())
    steps = _run(counts, events, tmp_path, [
        [(1, at(1)), (1, at(1)), (2, at(2))],
        [(2, at(2)), (3, at(20))],  # id 2 again: still in the dedup state, dropped
    ])
    assert steps[0] == []
    assert [(_window(w), n) for w, n in steps[1]] == [((at(0), at(5)), 2)]


def test_several_aggregations_outside_append_mode_are_rejected(spark, tmp_path):
    events = MemoryStream("k STRING, ts TIMESTAMP", spark)
    twice = (events.toDF().withWatermark("ts", "10 minutes")
             .groupBy(F.window("ts", "5 minutes"), "k").count()
             .groupBy("k").agg(F.sum("count")))
    with pytest.raises(UnsupportedOperationException,
                       match="Multiple streaming aggregations are not supported"):
        twice.writeStream.outputMode("update").foreachBatch(lambda d, b: None).option(
            "checkpointLocation", str(tmp_path / "cp")).start()
