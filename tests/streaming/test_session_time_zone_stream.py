"""A streaming query reads timestamps in the session time zone it started with, in its
partition tasks and in its aggregation keys, as Spark fixes a query's zone at start;
window() boundaries stay on the epoch. Expected values are PySpark 4.3's for the same
rows in batch (hour() of these instants in America/Los_Angeles)."""

from __future__ import annotations

from datetime import UTC, datetime

from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

# 2024-03-10 06:00 UTC (22:00 PST on the 9th) every 30 minutes: eight rows.
ROWS = [(datetime.fromtimestamp(1710050400 + i * 1800, UTC),) for i in range(8)]


def test_a_streaming_aggregation_keys_on_hours_of_the_zone_it_started_with(spark):
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    stream = MemoryStream("ts timestamp", spark)
    hours = stream.toDF().groupBy(F.hour("ts").alias("h")).count()
    query = hours.writeStream.format("memory").queryName("hours").outputMode(
        "complete").start()
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # too late for this query
    stream.addData(ROWS)
    query.processAllAvailable()
    query.stop()
    got = sorted(tuple(r) for r in spark.table("hours").collect())
    assert got == [(0, 2), (1, 2), (22, 2), (23, 2)]


def test_stream_tasks_format_in_the_session_zone_and_windows_stay_on_the_epoch(spark):
    spark.conf.set("spark.sql.session.timeZone", "Asia/Kolkata")
    stream = MemoryStream("ts timestamp", spark)
    shown = stream.toDF().select(F.date_format("ts", "yyyy-MM-dd HH:mm").alias("local"),
                                 F.window("ts", "1 day").start.alias("day"))
    query = shown.writeStream.format("memory").queryName("local").start()
    stream.addData(ROWS[:1])
    query.processAllAvailable()
    query.stop()
    assert [tuple(r) for r in spark.table("local").collect()] == [
        ("2024-03-10 11:30", datetime(2024, 3, 10))]


def test_timestamp_partition_folders_are_wall_clock_times_of_the_session_zone(spark,
                                                                               tmp_path):
    """Spark names them by CAST(ts AS STRING) in the session zone, path-escaped (':' is
    %3A); reading them back, batch or stream, gives the same instant."""
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    stream = MemoryStream("id int, ts timestamp", spark)
    query = stream.toDF().writeStream.format("parquet").partitionBy("ts").option(
        "checkpointLocation", str(tmp_path / "cp")).start(str(tmp_path / "out"))
    stream.addData([(1, datetime.fromtimestamp(1710064800, UTC))])  # 10:00 UTC
    query.processAllAvailable()
    query.stop()
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("ts=")) \
        == ["ts=2024-03-10 03%3A00%3A00"]
    assert [tuple(r) for r in spark.read.parquet(str(tmp_path / "out")).collect()] == [
        (1, datetime(2024, 3, 10, 10, 0))]
    back = spark.readStream.schema("id int, ts timestamp").parquet(str(tmp_path / "out"))
    query = back.writeStream.format("memory").queryName("back").start()
    query.processAllAvailable()
    query.stop()
    assert [tuple(r) for r in spark.table("back").collect()] == [
        (1, datetime(2024, 3, 10, 10, 0))]


def test_the_console_sink_prints_in_the_session_zone(spark, capsys):
    spark.conf.set("spark.sql.session.timeZone", "Asia/Kolkata")
    stream = MemoryStream("ts timestamp", spark)
    query = stream.toDF().writeStream.format("console").start()
    stream.addData([(datetime.fromtimestamp(0, UTC),)])
    query.processAllAvailable()
    query.stop()
    assert "|1970-01-01 05:30:00|" in capsys.readouterr().out.splitlines()


def test_a_stream_reads_in_the_zone_its_dataframe_was_built_in(spark, tmp_path):
    """PySpark 4.3: a streaming DataFrame built in Los Angeles, started after the zone
    changed to UTC, still reads there (l=1710097200, h=16)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("2024-03-10 12:00:00\n")
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    df = spark.readStream.text(str(tmp_path / "in")).select(
        F.col("value").cast("timestamp").cast("long").alias("l"),
        F.hour(F.timestamp_seconds(F.lit(0))).alias("h"))
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    query = df.writeStream.format("memory").queryName("built").start()
    query.processAllAvailable()
    query.stop()
    assert [tuple(r) for r in spark.table("built").collect()] == [(1710097200, 16)]
