"""Aggregates over a literal or constant expression count every row, as Spark does
(Polars alone aggregates a bare literal as one value), grouped and global."""

from __future__ import annotations

import datetime as dt

import pytest

from unbounded.sql import functions as F
from unbounded.sql.types import LongType


@pytest.fixture
def df(spark):
    return spark.createDataFrame([("a", 1), ("a", None), ("a", 3), ("b", 4)], "k string, v int")


def test_count_and_sum_of_literals_count_every_row_per_group(df):
    out = df.groupBy("k").agg(F.count(F.lit(1)), F.sum(F.lit(2)), F.avg(F.lit(3)),
                              F.sum(F.lit(2) * 3).alias("six"), F.count(F.lit(None)))
    assert out.columns == ["k", "count(1)", "sum(2)", "avg(3)", "six", "count(NULL)"]
    assert sorted(tuple(r) for r in out.collect()) == [("a", 3, 6, 3.0, 18, 0),
                                                       ("b", 1, 2, 3.0, 6, 0)]
    assert out.schema["sum(2)"].dataType == LongType()


def test_other_aggregates_of_literals(df):
    out = df.groupBy("k").agg(F.min(F.lit(5)), F.max(F.lit(5)), F.first(F.lit(7)),
                              F.last(F.lit(7)), F.collect_list(F.lit(1)),
                              F.count_distinct(F.lit(1)), F.collect_set(F.lit(1)))
    assert sorted(tuple(r) for r in out.collect()) == [("a", 5, 5, 7, 7, [1, 1, 1], 1, [1]),
                                                       ("b", 5, 5, 7, 7, [1], 1, [1])]


def test_global_aggregates_of_literals_give_one_row(df):
    out = df.agg(F.count(F.lit(1)), F.sum(F.lit(2)), F.collect_list(F.lit(1)),
                 F.collect_list("v"))
    assert [tuple(r) for r in out.collect()] == [(4, 8, [1, 1, 1, 1], [1, 3, 4])]
    empty = df.where("v > 100").agg(F.count(F.lit(1)), F.sum(F.lit(2)))
    assert [tuple(r) for r in empty.collect()] == [(0, None)]


def test_sql_count_of_a_literal(df):
    assert sorted(tuple(r) for r in df.groupBy("k").agg(F.expr("count(1)")).collect()) == [
        ("a", 3), ("b", 1)]


def test_sum_of_integers_is_a_bigint(df, spark):
    assert df.groupBy("k").agg(F.sum("v")).schema["sum(v)"].dataType == LongType()
    big = spark.createDataFrame([("a", 2_000_000_000), ("a", 2_000_000_000)], "k string, v int")
    assert [tuple(r) for r in big.groupBy("k").agg(F.sum("v")).collect()] == [("a", 4_000_000_000)]


def test_tumbling_and_sliding_windows_skip_rows_with_null_event_time(spark):
    df = spark.createDataFrame(
        [(dt.datetime(2024, 1, 1, 0, 0, 5), 1), (None, 2), (dt.datetime(2024, 1, 1, 0, 0, 7), 3)],
        "ts timestamp, v int")
    tumbling = df.groupBy(F.window("ts", "10 seconds")).agg(F.count(F.lit(1)).alias("n"))
    assert [(r.window.start, r.n) for r in tumbling.collect()] == [
        (dt.datetime(2024, 1, 1), 2)]
    sliding = df.groupBy(F.window("ts", "10 seconds", "5 seconds")).agg(F.sum("v").alias("s"))
    assert sorted((r.window.start, r.s) for r in sliding.collect()) == [
        (dt.datetime(2024, 1, 1), 4), (dt.datetime(2024, 1, 1, 0, 0, 5), 4)]


def test_a_sliding_window_after_star_repeats_each_row_per_window(spark):
    df = spark.createDataFrame([(1, dt.datetime(2026, 1, 1, 0, 0, 7))], "v INT, ts TIMESTAMP")
    rows = df.select("*", F.window("ts", "10 seconds", "5 seconds")).collect()
    assert sorted((r.v, r.window.start.second) for r in rows) == [(1, 0), (1, 5)]
