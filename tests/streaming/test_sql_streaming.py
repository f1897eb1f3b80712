"""spark.sql over streaming views: a windowed GROUP BY written with toTable, read back
with spark.table and readStream.table; stream-static joins in SQL."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import Row, SparkSession

T0 = dt.datetime(2024, 1, 1)


def write_events(folder: Path, name: str, minutes_and_keys: list[tuple[int, str, int]]) -> None:
    folder.mkdir(exist_ok=True)
    lines = [json.dumps({"ts": f"2024-01-01T00:{m:02d}:00Z", "k": k, "v": v})
             for m, k, v in minutes_and_keys]
    (folder / name).write_text("\n".join(lines) + "\n")


@pytest.fixture
def events(spark: SparkSession, tmp_path: Path) -> Path:
    spark.conf.set("spark.sql.warehouse.dir", str(tmp_path / "warehouse"))
    source = tmp_path / "events"
    write_events(source, "a.json", [(0, "a", 1), (1, "b", 2), (1, "a", 3), (3, "a", 4),
                                    (5, "b", 5)])
    stream = spark.readStream.schema("ts TIMESTAMP, k STRING, v INT").json(str(source))
    stream.withWatermark("ts", "1 minute").createOrReplaceTempView("events")
    return source


WINDOWED = ("SELECT window.start AS start, k, count(*) AS n, sum(v) AS total FROM events "
            "GROUP BY window(ts, '2 minutes'), k")


def test_streaming_window_group_by_to_table_then_read_back(
        spark: SparkSession, events: Path, tmp_path: Path) -> None:
    counts = spark.sql(WINDOWED)
    assert counts.isStreaming
    query = (counts.writeStream.option("checkpointLocation", str(tmp_path / "ck"))
             .trigger(availableNow=True).toTable("window_counts"))
    query.awaitTermination(60)
    # watermark 5 - 1 = 4 minutes: windows ending at 2 and 4 are final, [4, 6) is open
    closed = [Row(start=T0, k="a", n=2, total=4), Row(start=T0, k="b", n=1, total=2),
              Row(start=T0.replace(minute=2), k="a", n=1, total=4)]
    assert sorted(spark.table("window_counts").collect()) == closed
    assert spark.sql("SELECT sum(n) AS rows FROM window_counts").collect() == [Row(rows=4)]

    back = spark.readStream.table("window_counts")
    assert back.isStreaming
    reread = (back.writeStream.format("memory").queryName("window_counts_copy")
              .trigger(availableNow=True).start())
    reread.awaitTermination(30)
    assert sorted(spark.table("window_counts_copy").collect()) == closed


def test_second_run_appends_to_the_same_table(spark: SparkSession, events: Path,
                                              tmp_path: Path) -> None:
    def run() -> None:
        query = (spark.sql(WINDOWED).writeStream
                 .option("checkpointLocation", str(tmp_path / "ck"))
                 .trigger(availableNow=True).toTable("window_counts"))
        query.awaitTermination(60)

    run()
    write_events(events, "b.json", [(9, "c", 7)])
    run()
    # the new event moves the watermark to 8 minutes: [4, 6) closes, b's 5th minute row
    assert sorted(spark.table("window_counts").collect())[-1] == Row(
        start=T0.replace(minute=4), k="b", n=1, total=5)
    assert spark.table("window_counts").count() == 4


def test_stream_static_join_in_sql(spark: SparkSession, events: Path, tmp_path: Path) -> None:
    spark.createDataFrame([("a", "Alpha"), ("b", "Beta")], "k STRING, label STRING") \
        .createOrReplaceTempView("labels")
    joined = spark.sql("SELECT e.v, l.label FROM events e JOIN labels l ON e.k = l.k "
                       "WHERE e.v > 2")
    assert joined.isStreaming
    query = (joined.writeStream.format("memory").queryName("joined")
             .trigger(availableNow=True).start())
    query.awaitTermination(30)
    assert sorted(spark.table("joined").collect()) == [
        Row(v=3, label="Alpha"), Row(v=4, label="Alpha"), Row(v=5, label="Beta")]


def test_table_written_in_json_keeps_its_format(spark: SparkSession, events: Path,
                                                tmp_path: Path) -> None:
    projected = spark.sql("SELECT k, v FROM events WHERE v >= 4")
    query = (projected.writeStream.format("json")
             .option("checkpointLocation", str(tmp_path / "ck2"))
             .trigger(availableNow=True).toTable("big_values"))
    query.awaitTermination(30)
    assert sorted(spark.table("big_values").collect()) == [Row(k="a", v=4), Row(k="b", v=5)]
    folder = tmp_path / "warehouse" / "big_values"
    assert any(p.suffix == ".json" for p in folder.iterdir())


def test_batch_action_on_streaming_sql_fails_as_in_spark(spark: SparkSession,
                                                         events: Path) -> None:
    with pytest.raises(AnalysisException, match="writeStream"):
        spark.sql("SELECT k FROM events").collect()


def test_delta_path_tables_still_work_with_to_table(spark: SparkSession, events: Path,
                                                    tmp_path: Path) -> None:
    target = tmp_path / "delta_out"
    query = (spark.sql("SELECT k, v FROM events").writeStream
             .option("checkpointLocation", str(tmp_path / "ck3"))
             .trigger(availableNow=True).toTable(f"delta.`{target}`"))
    query.awaitTermination(60)
    assert (target / "_delta_log").is_dir()


def test_partitioned_stream_table_reads_back_its_partition_column(
        spark: SparkSession, events: Path, tmp_path: Path) -> None:
    query = (spark.sql("SELECT v, k FROM events WHERE v > 1").writeStream
             .option("checkpointLocation", str(tmp_path / "ck4")).partitionBy("k")
             .trigger(availableNow=True).toTable("by_key"))
    query.awaitTermination(30)
    assert sorted(os.listdir(tmp_path / "warehouse" / "by_key")) == [
        "_spark_metadata", "_unbounded_table.json", "k=a", "k=b"]
    assert sorted(spark.table("by_key").collect()) == [
        Row(v=2, k="b"), Row(v=3, k="a"), Row(v=4, k="a"), Row(v=5, k="b")]
