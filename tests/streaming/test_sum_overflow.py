"""Streaming bigint sums under ANSI mode: an overflow in a batch, or when a batch's sum
is merged with the state, fails the query with Spark's ARITHMETIC_OVERFLOW (as a batch
query does); with ANSI off the sum wraps, as Spark's does."""

from __future__ import annotations

import pytest

from unbounded.errors import StreamingQueryException
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

MAX = 2**63 - 1
_OVERFLOW = "[ARITHMETIC_OVERFLOW] overflow. Use 'try_add' to tolerate overflow"


def _start(spark, stream, name):
    agg = stream.toDF().groupBy("k").agg(F.sum("v").alias("s"))
    return agg.writeStream.format("memory").queryName(name).outputMode("complete").start()


def _rows(spark, name):
    return sorted(tuple(r) for r in spark.table(name).collect())


def test_overflow_within_one_batch_fails_the_query(spark):
    stream = MemoryStream("k string, v bigint", spark)
    query = _start(spark, stream, "in_batch")
    stream.addData([("a", MAX), ("a", 1), ("b", 1)])
    with pytest.raises(StreamingQueryException, match=r"\[ARITHMETIC_OVERFLOW\]") as failed:
        query.processAllAvailable()
    assert _OVERFLOW in str(failed.value)


def test_overflow_when_merging_with_the_state_fails_the_query(spark):
    stream = MemoryStream("k string, v bigint", spark)
    query = _start(spark, stream, "merged")
    stream.addData([("a", MAX - 1), ("b", 1)])
    query.processAllAvailable()
    assert _rows(spark, "merged") == [("a", MAX - 1), ("b", 1)]
    stream.addData([("a", 1), ("b", 2)])
    query.processAllAvailable()
    assert _rows(spark, "merged") == [("a", MAX), ("b", 3)]
    stream.addData([("a", 1)])
    with pytest.raises(StreamingQueryException, match=r"\[ARITHMETIC_OVERFLOW\]"):
        query.processAllAvailable()


def test_without_ansi_a_streaming_sum_wraps(spark):
    spark.conf.set("spark.sql.ansi.enabled", "false")
    stream = MemoryStream("k string, v bigint", spark)
    query = _start(spark, stream, "wraps")
    stream.addData([("a", MAX)])
    query.processAllAvailable()
    stream.addData([("a", 1), ("a", 2)])
    query.processAllAvailable()
    query.stop()
    assert _rows(spark, "wraps") == [("a", -(2**63) + 2)]
