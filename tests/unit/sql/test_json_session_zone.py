"""Timestamps in JSON, nested ones too, follow the session time zone as Spark's do:
``from_json`` and the JSON reader read text without an offset in the zone, ``to_json``
and the JSON writer write ``yyyy-MM-dd'T'HH:mm:ss.SSSXXX`` there. Every expected value
is PySpark 4.3's (1710064800 is 2024-03-10 10:00 UTC, 03:00 PDT, 15:30 at +05:30)."""

from __future__ import annotations

import os

import pytest

from unbounded.sql import SparkSession
from unbounded.sql import functions as F

FROM_JSON = {
    """from_json('{"a":{"t":"2024-03-10 02:30:00"}}', 'a struct<t:timestamp>').a.t""":
        {"America/Los_Angeles": 1710066600, "+05:30": 1710018000},
    """from_json('{"t":"2024-03-10 02:30:00"}', 't timestamp').t""":
        {"America/Los_Angeles": 1710066600, "+05:30": 1710018000},
    """from_json('{"t":"2024-03-10T12:00:00"}', 't timestamp').t""":
        {"America/Los_Angeles": 1710097200, "+05:30": 1710052200},
    """from_json('{"t":"2024-03-10T12:00:00Z"}', 't timestamp').t""":
        {"America/Los_Angeles": 1710072000, "+05:30": 1710072000},
    """from_json('{"a":[{"t":"2024-03-10 12:00:00"}]}', 'a array<struct<t:timestamp>>').a[0].t""":
        {"America/Los_Angeles": 1710097200, "+05:30": 1710052200},
}
TO_JSON = {
    "to_json(named_struct('t', timestamp_seconds(1710064800)))": {
        "America/Los_Angeles": '{"t":"2024-03-10T03:00:00.000-07:00"}',
        "+05:30": '{"t":"2024-03-10T15:30:00.000+05:30"}',
        "UTC": '{"t":"2024-03-10T10:00:00.000Z"}'},
    "to_json(named_struct('a', named_struct('t', timestamp_seconds(1710064800))))": {
        "America/Los_Angeles": '{"a":{"t":"2024-03-10T03:00:00.000-07:00"}}',
        "+05:30": '{"a":{"t":"2024-03-10T15:30:00.000+05:30"}}',
        "UTC": '{"a":{"t":"2024-03-10T10:00:00.000Z"}}'},
    "to_json(array(named_struct('t', timestamp_seconds(1710064800))))": {
        "America/Los_Angeles": '[{"t":"2024-03-10T03:00:00.000-07:00"}]',
        "+05:30": '[{"t":"2024-03-10T15:30:00.000+05:30"}]',
        "UTC": '[{"t":"2024-03-10T10:00:00.000Z"}]'},
    "to_json(map('k', timestamp_seconds(1710064800)))": {
        "America/Los_Angeles": '{"k":"2024-03-10T03:00:00.000-07:00"}',
        "+05:30": '{"k":"2024-03-10T15:30:00.000+05:30"}',
        "UTC": '{"k":"2024-03-10T10:00:00.000Z"}'},
    "to_json(named_struct('t', timestamp_seconds(1710064800), 'd', DATE '2024-03-10'))": {
        "America/Los_Angeles": '{"t":"2024-03-10T03:00:00.000-07:00","d":"2024-03-10"}',
        "+05:30": '{"t":"2024-03-10T15:30:00.000+05:30","d":"2024-03-10"}',
        "UTC": '{"t":"2024-03-10T10:00:00.000Z","d":"2024-03-10"}'},
    "to_json(named_struct('t', timestamp_seconds(1710064800.5D)))": {
        "America/Los_Angeles": '{"t":"2024-03-10T03:00:00.500-07:00"}',
        "+05:30": '{"t":"2024-03-10T15:30:00.500+05:30"}',
        "UTC": '{"t":"2024-03-10T10:00:00.500Z"}'},
}


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "+05:30"])
@pytest.mark.parametrize("sql", FROM_JSON)
def test_from_json_reads_timestamps_in_the_session_zone(spark: SparkSession, zone: str,
                                                        sql: str) -> None:
    spark.conf.set("spark.sql.session.timeZone", zone)
    assert spark.sql(f"SELECT unix_timestamp({sql})").collect()[0][0] == FROM_JSON[sql][zone]


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "+05:30", "UTC"])
@pytest.mark.parametrize("sql", TO_JSON)
def test_to_json_writes_timestamps_in_the_session_zone(spark: SparkSession, zone: str,
                                                       sql: str) -> None:
    spark.conf.set("spark.sql.session.timeZone", zone)
    assert spark.sql(f"SELECT {sql}").collect()[0][0] == TO_JSON[sql][zone]


@pytest.mark.parametrize(("zone", "line", "seconds"), [
    ("America/Los_Angeles",
     '{"a":{"t":"2024-03-10T03:00:00.000-07:00"},"u":"2024-03-10T03:00:00.000-07:00"}\n',
     (1710066600, 1710097200)),
    ("UTC", '{"a":{"t":"2024-03-10T10:00:00.000Z"},"u":"2024-03-10T10:00:00.000Z"}\n',
     (1710037800, 1710072000)),
])
def test_the_json_writer_and_reader_use_the_session_zone_in_nested_fields(
        spark: SparkSession, tmp_path, zone: str, line: str, seconds: tuple[int, int]
) -> None:
    spark.conf.set("spark.sql.session.timeZone", zone)
    ts = F.timestamp_seconds("s")
    spark.createDataFrame([(1710064800,)], "s long").select(
        F.struct(ts.alias("t")).alias("a"), ts.alias("u")).write.json(str(tmp_path / "o"))
    written = [n for n in os.listdir(tmp_path / "o") if n.endswith(".json")]
    assert [(tmp_path / "o" / n).read_text() for n in written] == [line]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.json").write_text(
        '{"a":{"t":"2024-03-10 02:30:00"},"u":"2024-03-10 12:00:00"}\n')
    df = spark.read.schema("a struct<t:timestamp>, u timestamp").json(str(tmp_path / "in"))
    row = df.select(F.unix_timestamp("a.t"), F.unix_timestamp("u")).collect()[0]
    assert tuple(row) == seconds
