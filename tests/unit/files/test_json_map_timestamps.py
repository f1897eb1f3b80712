"""Timestamps as map values in the JSON file reader, batch and streaming: the values
below were read off PySpark 4.3 (local[1], session zone UTC) over the same file."""

from __future__ import annotations

import pytest

from unbounded.sql import functions as F

LINES = [
    '{"id": 1, "m": {"a": "2026-01-02 03:04:05", "b": "2026-01-02T03:04:05+01:00"}, '
    '"s": {"mm": {"z": "2026-01-02"}}}',
    '{"id": 2, "m": {"a": "nope"}, "s": null}',
    '{"id": 3, "m": {"a": null}, "s": {"mm": null}}',
    '{"id": 4, "m": {"a": 1700000000}}',
]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "a.json").write_text("\n".join(LINES) + "\n")
    return str(tmp_path)


def _texts(frame, *columns):
    """Map values as UTC wall-clock text, by id."""
    cols = [F.transform_values(c, lambda _, v: v.cast("string")).alias(c) for c in columns]
    return {r["id"]: tuple(r[c] for c in columns)
            for r in frame.select("id", *cols).collect()}


def test_map_timestamp_values_read_as_spark(spark, folder):
    df = spark.read.schema("id long, m map<string,timestamp>").json(folder)
    assert _texts(df, "m") == {
        1: ({"a": "2026-01-02 03:04:05", "b": "2026-01-02 02:04:05"},), 2: (None,),
        3: ({"a": None},), 4: ({"a": "2023-11-14 22:13:20"},)}


def test_map_in_a_struct_and_the_time_zone_option(spark, folder):
    df = spark.read.option("timeZone", "America/Los_Angeles") \
        .schema("id long, m map<string,timestamp>, s struct<mm: map<string,timestamp>>") \
        .json(folder)
    got = {r["id"]: r["mm"] for r in df.select(
        "id", F.transform_values("s.mm", lambda _, v: v.cast("string")).alias("mm"))
        .collect()}
    assert _texts(df, "m")[1] == ({"a": "2026-01-02 11:04:05", "b": "2026-01-02 02:04:05"},)
    assert got == {1: {"z": "2026-01-02 08:00:00"}, 2: None, 3: None, 4: None}


def test_a_map_value_that_does_not_read_makes_the_record_corrupt(spark, folder):
    df = spark.read.schema("id long, m map<string,timestamp>, _corrupt_record string") \
        .json(folder)
    corrupt = {r["id"]: r["_corrupt_record"] for r in df.collect()}
    assert corrupt == {1: None, 2: LINES[1], 3: None, 4: None}


def test_a_json_stream_reads_map_timestamps(spark, folder):
    stream = spark.readStream.schema("id long, m map<string,timestamp>").json(folder)
    query = stream.select("id", F.transform_values("m", lambda _, v: v.cast("string"))
                          .alias("m")).writeStream.format("memory").queryName("maps").start()
    try:
        query.processAllAvailable(30)
    finally:
        query.stop()
    rows = {r["id"]: r["m"] for r in spark.sql("SELECT * FROM maps").collect()}
    assert rows == {1: {"a": "2026-01-02 03:04:05", "b": "2026-01-02 02:04:05"}, 2: None,
                    3: {"a": None}, 4: {"a": "2023-11-14 22:13:20"}}
