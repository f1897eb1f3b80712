"""Spark's implicit casts in streaming queries: the partition tasks compile with the
query's spark.sql.ansi.enabled, so a malformed string fails the batch under ANSI and is
NULL without it, as in batch."""

from __future__ import annotations

import pytest

from unbounded.errors import StreamingQueryException
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream


def _query(spark, stream, name):
    df = stream.toDF().select(F.upper("i").alias("u"), (F.col("s") + 1).alias("p"),
                              F.coalesce("i", "s").alias("c"))
    return df.writeStream.format("memory").queryName(name).outputMode("append").start()


def test_implicit_casts_in_a_stream(spark):
    stream = MemoryStream("i int, s string", spark)
    query = _query(spark, stream, "casts")
    stream.addData([(1, "2"), (None, "5")])
    query.processAllAvailable()
    query.stop()
    assert sorted((tuple(r) for r in spark.table("casts").collect()), key=lambda r: r[1]) \
        == [("1", 3, 1), (None, 6, 5)]


def test_a_malformed_string_fails_the_batch_under_ansi_and_is_null_without(spark):
    stream = MemoryStream("i int, s string", spark)
    query = _query(spark, stream, "strict")
    stream.addData([(1, "x")])
    with pytest.raises(StreamingQueryException, match=r"\[CAST_INVALID_INPUT\] The value 'x'"):
        query.processAllAvailable()
    spark.conf.set("spark.sql.ansi.enabled", "false")
    lenient = MemoryStream("i int, s string", spark)
    query = _query(spark, lenient, "lenient")
    lenient.addData([(1, "x")])
    query.processAllAvailable()
    query.stop()
    # Non-ANSI: 'x' + 1 is a NULL double, coalesce(1, 'x') the string '1'.
    assert [tuple(r) for r in spark.table("lenient").collect()] == [("1", None, "1")]
