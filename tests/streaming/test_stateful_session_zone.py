"""A string compared with a timestamp inside a stateful operator (a stream-stream join's
condition, a streaming aggregation's or session window's key) names an instant in the
zone the query started with, as Spark's analyzer binds it. The values are PySpark 4.3's
for the same rows in batch: 2024-03-10 10:00 UTC is 03:00 in Los Angeles (PDT)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from unbounded.sql import functions as F
from unbounded.sql.streaming_state import GroupStateTimeout
from unbounded.testing import MemoryStream

TEN_UTC = datetime.fromtimestamp(1710064800, UTC)


def _run(spark, df, name, mode="append"):
    query = df.writeStream.format("memory").queryName(name).outputMode(mode).start()
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # too late for the query
    return query


def test_a_join_condition_compares_a_string_in_the_querys_zone(spark):
    """03:00 in Los Angeles is not after 10:00 UTC; 10:00 there (17:00 UTC) is."""
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    lstream = MemoryStream("k int, ts timestamp", spark)
    rstream = MemoryStream("k int, s string", spark)
    lhs, rhs = lstream.toDF(), rstream.toDF()
    joined = lhs.join(rhs, (lhs.k == rhs.k) & (lhs.ts >= rhs.s)).select(lhs.k, "s")
    query = _run(spark, joined, "zone_join")
    lstream.addData([(1, TEN_UTC), (2, TEN_UTC)])
    rstream.addData([(1, "2024-03-10 03:00:00"), (2, "2024-03-10 10:00:00")])
    query.processAllAvailable()
    query.stop()
    assert [tuple(x) for x in spark.table("zone_join").collect()] == [
        (1, "2024-03-10 03:00:00")]


def test_a_join_key_casts_a_string_to_a_timestamp_in_the_querys_zone(spark):
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    lstream, rstream = MemoryStream("ts timestamp", spark), MemoryStream("s string", spark)
    lhs, rhs = lstream.toDF(), rstream.toDF()
    query = _run(spark, lhs.join(rhs, lhs.ts == rhs.s), "zone_join_key")
    lstream.addData([(TEN_UTC,)])
    rstream.addData([("2024-03-10 03:00:00",), ("2024-03-10 10:00:00",)])
    query.processAllAvailable()
    query.stop()
    assert [tuple(x) for x in spark.table("zone_join_key").collect()] == [
        (datetime(2024, 3, 10, 10, 0), "2024-03-10 03:00:00")]


def test_a_batch_join_key_casts_a_string_to_a_timestamp_in_the_session_zone(spark):
    """PySpark 4.3: the string side is cast to a timestamp (it joined them as strings)."""
    lhs = spark.createDataFrame([(TEN_UTC,)], "ts timestamp")
    rhs = spark.createDataFrame([("2024-03-10 03:00:00",), ("2024-03-10 10:00:00",)],
                                "s string")
    for zone, text in [("UTC", "2024-03-10 10:00:00"),
                       ("America/Los_Angeles", "2024-03-10 03:00:00")]:
        spark.conf.set("spark.sql.session.timeZone", zone)
        assert [r.s for r in lhs.join(rhs, lhs.ts == rhs.s).collect()] == [text]


def test_an_aggregation_key_compares_a_string_in_the_querys_zone(spark):
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    stream = MemoryStream("ts timestamp", spark)
    keyed = stream.toDF().groupBy((F.col("ts") == "2024-03-10 03:00:00").alias("m")).count()
    query = _run(spark, keyed, "zone_agg", "complete")
    stream.addData([(TEN_UTC,), (datetime.fromtimestamp(1710068400, UTC),)])
    query.processAllAvailable()
    query.stop()
    assert sorted(tuple(x) for x in spark.table("zone_agg").collect()) == [
        (False, 1), (True, 1)]


def test_a_session_window_key_compares_a_string_in_the_querys_zone(spark):
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    stream = MemoryStream("ts timestamp", spark)
    keyed = stream.toDF().groupBy(F.session_window("ts", "10 minutes"),
                                  (F.col("ts") == "2024-03-10 03:00:00").alias("m")).count()
    query = _run(spark, keyed.select("m", "count"), "zone_session", "complete")
    stream.addData([(TEN_UTC,), (datetime.fromtimestamp(1710068400, UTC),)])
    query.processAllAvailable()
    query.stop()
    assert sorted(tuple(x) for x in spark.table("zone_session").collect()) == [
        (False, 1), (True, 1)]


def test_a_group_state_key_compares_a_string_in_the_querys_zone(spark):
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    stream = MemoryStream("ts timestamp", spark)

    def count(key, frames, state):
        yield pd.DataFrame({"m": [key[0]], "n": [sum(len(f) for f in frames)]})

    keyed = stream.toDF().groupBy((F.col("ts") == "2024-03-10 03:00:00").alias("m")) \
        .applyInPandasWithState(count, "m boolean, n long", "n long", "update",
                                GroupStateTimeout.NoTimeout)
    query = _run(spark, keyed, "zone_group_state", "update")
    stream.addData([(TEN_UTC,), (datetime.fromtimestamp(1710068400, UTC),)])
    query.processAllAvailable()
    query.stop()
    assert sorted(tuple(x) for x in spark.table("zone_group_state").collect()) == [
        (False, 1), (True, 1)]
