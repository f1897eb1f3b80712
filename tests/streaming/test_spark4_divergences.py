"""Regression tests for divergences from PySpark 4.3 found by comparing the two engines
(issue 9, "Spark 4 semantics"): each one fails without its fix."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unbounded.sql import Row
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream
from unbounded.testing.broker import create_topic, produce_records, unique_topic

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)


def _progress_event_time(spark, tmp_path, df, stream, rows):
    q = (df.writeStream.format("noop").outputMode("append")
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        stream.addData(rows)
        q.processAllAvailable(30)
        return next(p.eventTime for p in q.recentProgress if p.numInputRows)
    finally:
        q.stop()


def test_event_time_avg_of_a_large_batch_is_the_mean_not_an_int64_overflow(spark, tmp_path):
    stream = MemoryStream("ts TIMESTAMP, v LONG", spark)
    df = stream.toDF().withWatermark("ts", "1 minute").select("ts", "v")
    rows = [(T0 + dt.timedelta(seconds=i % 2), i) for i in range(20_000)]
    seen = _progress_event_time(spark, tmp_path, df, stream, rows)
    assert seen["min"] == "2026-01-01T10:00:00.000Z"
    assert seen["avg"] == "2026-01-01T10:00:00.500Z"
    assert seen["max"] == "2026-01-01T10:00:01.000Z"


def test_event_time_avg_of_a_large_aggregated_batch_is_the_mean(spark, tmp_path):
    stream = MemoryStream("ts TIMESTAMP, v LONG", spark)
    df = (stream.toDF().withWatermark("ts", "1 minute")
          .groupBy(F.window("ts", "1 minute")).count())
    rows = [(T0 + dt.timedelta(seconds=i % 2), i) for i in range(20_000)]
    seen = _progress_event_time(spark, tmp_path, df, stream, rows)
    assert seen["avg"] == "2026-01-01T10:00:00.500Z"


@pytest.mark.parametrize("folder", ["out#1", "what?x", "p%20q", "a b"])
def test_local_paths_with_uri_characters_are_plain_paths(spark, tmp_path, folder):
    base = tmp_path / folder
    (base / "in").mkdir(parents=True)
    pq.write_table(pa.table({"id": [1, 2], "s": ["a", "b"]}), str(base / "in" / "p.parquet"))
    query = (spark.readStream.schema("id LONG, s STRING").parquet(str(base / "in"))
             .writeStream.format("parquet").option("checkpointLocation", str(base / "cp"))
             .trigger(availableNow=True).start(str(base / "out")))
    query.awaitTermination(60)
    assert query.exception() is None
    rows = spark.read.parquet(str(base / "out")).orderBy("id").collect()
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "b")]


@pytest.mark.timeout(90)
def test_kafka_headers_are_collected_as_a_list_of_rows(spark, kafka_bootstrap, tmp_path):
    topic = unique_topic("hdr")
    create_topic(kafka_bootstrap, topic)
    produce_records(kafka_bootstrap, topic, [b"v"], key=b"k", headers=[("h", b"1"), ("g", b"")])
    seen: list[Row] = []
    query = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", kafka_bootstrap)
             .option("subscribe", topic).option("startingOffsets", "earliest")
             .option("includeHeaders", "true").load()
             .writeStream.foreachBatch(lambda df, _: seen.extend(df.collect()))
             .option("checkpointLocation", str(tmp_path / "cp")).trigger(availableNow=True)
             .start())
    query.awaitTermination(60)
    assert query.exception() is None
    headers = seen[0]["headers"]
    assert headers == [Row(key="h", value=b"1"), Row(key="g", value=b"")]
    assert all(isinstance(h, Row) for h in headers)
    assert headers[0].key == "h"


def test_reading_a_partitioned_folder_restores_the_partition_columns(spark, tmp_path):
    for key, day in [(1, "2026-01-01"), (2, "2026-01-02")]:
        folder = tmp_path / "out" / f"key={key}" / f"day={day}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"v": [f"v{key}"]}), str(folder / "part-0.parquet"))
    df = spark.read.parquet(str(tmp_path / "out"))
    assert df.dtypes == [("v", "string"), ("key", "int"), ("day", "date")]
    assert sorted(tuple(r) for r in df.collect()) == [
        ("v1", 1, dt.date(2026, 1, 1)), ("v2", 2, dt.date(2026, 1, 2))]
