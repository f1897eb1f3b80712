"""Streaming aggregation over literals and NULL event times gives PySpark's answers."""

from __future__ import annotations

import datetime as dt

from unbounded.sql import functions as F
from unbounded.testing import MemoryStream


def _run(spark, df, name, batches, stream, mode="complete"):
    query = df.writeStream.format("memory").queryName(name).outputMode(mode).start()
    for rows in batches:
        stream.addData(rows)
        query.processAllAvailable()
    query.stop()
    return sorted(tuple(r) for r in spark.table(name).collect())


def test_count_and_sum_of_literals_count_rows_across_batches(spark):
    stream = MemoryStream("k string, v int", spark)
    agg = stream.toDF().groupBy("k").agg(
        F.count(F.lit(1)).alias("n"), F.sum(F.lit(2)).alias("twos"),
        F.avg(F.lit(3)).alias("threes"), F.max(F.lit(5)).alias("five"),
        F.collect_list(F.lit(1)).alias("ones"), F.count(F.lit(None)).alias("none"))
    out = _run(spark, agg, "lits", [[("a", 1), ("a", 2), ("b", 3)], [("a", 4)]], stream)
    assert out == [("a", 3, 6, 3.0, 5, [1, 1, 1], 0), ("b", 1, 2, 3.0, 5, [1], 0)]


def test_global_count_of_a_literal(spark):
    stream = MemoryStream("v int", spark)
    agg = stream.toDF().agg(F.count(F.lit(1)).alias("n"), F.sum(F.lit(1)).alias("s"))
    assert _run(spark, agg, "glob", [[(1,), (2,)], [(3,)]], stream) == [(3, 3)]


def test_window_aggregation_skips_rows_with_null_event_time(spark):
    stream = MemoryStream("ts timestamp, v int", spark)
    t0 = dt.datetime(2024, 1, 1)
    agg = stream.toDF().groupBy(F.window("ts", "10 seconds")).agg(F.count("*").alias("n"))
    out = _run(spark, agg, "win", [[(t0, 1), (None, 2), (t0 + dt.timedelta(seconds=3), 3)]],
               stream)
    assert [(w.start, n) for w, n in out] == [(t0, 2)]
    sliding = stream.toDF().groupBy(F.window("ts", "10 seconds", "5 seconds")).agg(
        F.count("*").alias("n"))
    out = _run(spark, sliding, "slide", [[(None, 5)]], stream)
    assert [(w.start, n) for w, n in out] == [
        (t0 - dt.timedelta(seconds=5), 2), (t0, 2)]


def test_streaming_sum_of_integers_does_not_overflow(spark):
    stream = MemoryStream("k string, v int", spark)
    agg = stream.toDF().groupBy("k").agg(F.sum("v").alias("s"))
    out = _run(spark, agg, "bigsum", [[("a", 2_000_000_000), ("a", 2_000_000_000)]], stream)
    assert out == [("a", 4_000_000_000)]
