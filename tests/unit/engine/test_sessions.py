"""Session windows in batch queries; expected rows are what PySpark 4.3 returns."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from unbounded.engine.sessions import SESSION_END, SESSION_START, assign_sessions
from unbounded.errors import AnalysisException
from unbounded.sql import Row
from unbounded.sql import functions as F

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)
SCHEMA = "k STRING, ts TIMESTAMP, v LONG"


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def s(start: float, end: float) -> tuple[dt.datetime, dt.datetime]:
    return (at(start), at(end))


def rows(df: Any) -> list[tuple[Any, ...]]:
    plain = (tuple(tuple(v) if isinstance(v, Row) else v for v in r) for r in df.collect())
    return sorted(plain, key=repr)


def S(expected: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(expected, key=repr)


@pytest.fixture
def events(spark: Any) -> Any:
    data = [("a", at(0), 1), ("a", at(5), 2), ("a", at(10.5), 3), ("a", None, 4),
            ("b", at(3), 5), ("a", at(7), 6)]
    return spark.createDataFrame(data, SCHEMA)


def test_overlapping_and_touching_windows_merge_across_out_of_order_rows(events):
    out = events.groupBy(F.session_window("ts", "5 minutes"), "k").agg(
        F.count("*").alias("n"), F.sum("v").alias("total"))
    # [10:00,10:05) touches [10:05,10:10), which overlaps [10:07,10:12) and [10:10:30,...).
    assert rows(out) == S([(s(0, 15.5), "a", 4, 12), (s(3, 8), "b", 1, 5)])


def test_session_window_column_is_a_struct_of_timestamps_named_like_the_key(events):
    out = events.groupBy("k", F.session_window("ts", "2 minutes").alias("sw")).count()
    assert out.columns == ["k", "sw", "count"]
    assert out.schema["sw"].dataType.simpleString() == "struct<start:timestamp,end:timestamp>"
    assert rows(out) == S([("a", s(0, 2), 1), ("a", s(5, 9), 2), ("a", s(10.5, 12.5), 1),
                           ("b", s(3, 5), 1)])


def test_without_other_keys_all_rows_form_one_group(events):
    out = events.groupBy(F.session_window("ts", "2 minutes")).count()
    assert rows(out) == S([(s(0, 2), 1), (s(3, 9), 3), (s(10.5, 12.5), 1)])


def test_dynamic_gap_drops_rows_whose_gap_is_not_a_positive_interval(events):
    gap = (F.when(F.col("v") == 2, "0 seconds").when(F.col("v") == 3, "-1 minutes")
           .when(F.col("v") == 5, "garbage").otherwise("5 minutes"))
    out = events.groupBy(F.session_window("ts", gap), "k").agg(
        F.collect_list("v").alias("vs"))
    assert rows(out) == S([(s(0, 5), "a", [1]), (s(7, 12), "a", [6])])


def test_a_session_ends_at_the_latest_end_of_its_rows_not_the_last_rows_end(spark):
    data = [("a", at(20), "5 minutes"), ("a", at(0), "30 minutes"), ("a", at(40), "1 minute"),
            ("a", at(29), "2 minutes")]
    df = spark.createDataFrame(data, "k STRING, ts TIMESTAMP, g STRING")
    out = df.groupBy(F.session_window("ts", F.col("g")), "k").count()
    assert rows(out) == S([(s(0, 31), "a", 3), (s(40, 41), "a", 1)])


def test_interval_typed_gap_expression(events):
    out = events.groupBy(F.session_window("ts", F.expr("INTERVAL 3 MINUTES")), "k").count()
    assert rows(out) == S([(s(0, 3), "a", 1), (s(5, 10), "a", 2), (s(10.5, 13.5), "a", 1),
                           (s(3, 6), "b", 1)])


def test_sessions_are_per_combination_of_several_keys_and_null_keys_group(spark):
    data = [("a", "x", at(0)), ("a", "y", at(1)), ("a", "x", at(2)), (None, None, at(0)),
            (None, None, at(3))]
    df = spark.createDataFrame(data, "k STRING, j STRING, ts TIMESTAMP")
    out = df.groupBy("k", F.session_window("ts", "3 minutes"), "j").count()
    assert rows(out) == S([("a", s(0, 5), "x", 2), ("a", s(1, 4), "y", 1),
                           (None, s(0, 6), None, 2)])


def test_zero_or_negative_static_gap_yields_no_sessions(events):
    for gap in ("0 seconds", "-5 minutes"):
        assert events.groupBy(F.session_window("ts", gap), "k").count().collect() == []


def test_order_sensitive_aggregates_see_rows_in_event_time_order(spark):
    data = [("a", at(3), 3), ("a", at(0), 1), ("a", at(1), 2)]
    df = spark.createDataFrame(data, SCHEMA)
    out = df.groupBy(F.session_window("ts", "5 minutes"), "k").agg(
        F.first("v").alias("first"), F.collect_list("v").alias("vs"))
    assert rows(out) == [(s(0, 8), "a", 1, [1, 2, 3])]


def test_a_non_interval_gap_is_rejected_with_its_type(events):
    with pytest.raises(AnalysisException, match="gap duration of session_window"):
        events.groupBy(F.session_window("ts", F.col("v"))).count().collect()


def test_a_session_window_with_another_window_key_is_rejected(events):
    with pytest.raises(AnalysisException, match="Multiple time/session window"):
        events.groupBy(F.session_window("ts", "1 minute"), F.window("ts", "1 minute")).count() \
            .collect()


def test_assign_sessions_merges_per_group_in_start_order():
    frame = pl.DataFrame({"k": ["a", "b", "a", "a"], SESSION_START: [10, 0, 0, 30],
                          SESSION_END: [15, 40, 10, 35]})
    out = assign_sessions(frame, ["k"], "sw", pl.Int64)
    assert out.columns == ["k", "sw"]
    assert out.rows() == [("a", {"start": 0, "end": 15}), ("a", {"start": 0, "end": 15}),
                          ("a", {"start": 30, "end": 35}), ("b", {"start": 0, "end": 40})]
