"""The aggregates that merge into state (population statistics, count_if, booleans,
first/last values) give, over a stream in several batches, what the batch query gives
over all of it."""

from __future__ import annotations

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

BATCHES = [
    [("a", 1.0, True), ("a", 2.0, False), ("b", 5.0, None)],
    [("a", 4.0, None), ("c", 3.0, True), ("b", None, True)],
    [("c", 3.0, True), ("a", None, True)],
]


def _aggregates():
    return [F.stddev_pop("x"), F.var_pop("x"), F.std("x"), F.count_if(F.col("x") > 1),
            F.bool_and("b"), F.bool_or("b"), F.every("b"), F.some("b"),
            F.first_value("x"), F.any_value("x"), F.last_value("x")]


def _rounded(rows):
    return sorted(tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in rows)


def test_streaming_aggregates_equal_the_batch_query(spark):
    events = MemoryStream("k STRING, x DOUBLE, b BOOLEAN", spark)
    query = (events.toDF().groupBy("k").agg(*_aggregates()).writeStream
             .outputMode("complete").format("memory").queryName("stats").start())
    try:
        for rows in BATCHES:
            events.addData(rows)
            query.processAllAvailable(30)
    finally:
        query.stop()
    streamed = spark.sql("SELECT * FROM stats").collect()
    everything = spark.createDataFrame([r for rows in BATCHES for r in rows],
                                       "k STRING, x DOUBLE, b BOOLEAN")
    batch = everything.groupBy("k").agg(*_aggregates()).collect()
    assert _rounded(streamed) == _rounded(batch)
    by_key = {r[0]: tuple(r) for r in streamed}
    assert by_key["a"][4:9] == (2, False, True, False, True)  # count_if, booleans
    assert by_key["b"][1:4] == (0.0, 0.0, None)  # one value: population 0, sample NULL


def test_an_aggregate_without_a_streaming_form_fails_before_start(spark):
    events = MemoryStream("k STRING, x DOUBLE", spark)
    with pytest.raises(AnalysisException, match="max_by is not supported in streaming"):
        events.toDF().groupBy("k").agg(F.max_by("k", "x")).writeStream.outputMode(
            "complete").format("memory").queryName("m").start()


def test_max_of_doubles_is_nan_once_a_nan_arrives_as_in_batch(spark):
    events = MemoryStream("k STRING, x DOUBLE", spark)
    query = (events.toDF().groupBy("k").agg(F.max("x"), F.min("x")).writeStream
             .outputMode("complete").format("memory").queryName("extremes").start())
    try:
        for rows in ([("a", 1.0), ("b", float("nan")), ("c", None)],
                     [("a", float("nan")), ("b", 2.0), ("c", 3.0)]):
            events.addData(rows)
            query.processAllAvailable(30)
    finally:
        query.stop()
    got = {r[0]: (str(r[1]), r[2]) for r in spark.sql("SELECT * FROM extremes").collect()}
    assert got == {"a": ("nan", 1.0), "b": ("nan", 2.0), "c": ("3.0", 3.0)}
