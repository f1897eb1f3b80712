"""spark.sql.session.timeZone governs how instants read as wall-clock times (casts to and
from strings and dates, fields, formats, truncation, SQL literals, show()), while
collect() gives naive datetimes in the Python process's zone and window() is zone-free.

Every expected value here is PySpark 4.3's answer to the same query (the opt-in oracle,
tests/streaming/test_spark_oracle_time_zone.py, compares the two live). The Python
process's zone is pinned to UTC unless a test says otherwise.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from unbounded.errors import IllegalArgumentException
from unbounded.sql import SparkSession
from unbounded.sql import functions as F

# 1710064800 is 2024-03-10 10:00 UTC, hours after Los Angeles moved to daylight time.
QUERY = """SELECT TIMESTAMP '2024-03-10 01:30:00' AS lit_ts,
    CAST('2024-03-10 02:30:00' AS TIMESTAMP) AS gap_ts,
    CAST('2024-11-03 01:30:00' AS TIMESTAMP) AS overlap_ts,
    CAST('2024-03-10T12:00:00Z' AS TIMESTAMP) AS z_ts,
    CAST(CAST('2024-03-10' AS DATE) AS TIMESTAMP) AS d2ts,
    CAST(timestamp_seconds(1710064800) AS DATE) AS ts2d,
    CAST(timestamp_seconds(1710064800) AS STRING) AS ts2s,
    unix_timestamp('2024-03-10 12:00:00') AS ut,
    from_unixtime(1710064800) AS fut,
    hour(timestamp_seconds(1710064800)) AS h,
    minute(timestamp_seconds(1710064800 + 1800)) AS mi,
    dayofweek(timestamp_seconds(1710064800)) AS dow,
    date_trunc('DAY', timestamp_seconds(1710064800)) AS dt_day,
    date_trunc('HOUR', timestamp_seconds(1710064800)) AS dt_hour,
    date_format(timestamp_seconds(1710064800), 'yyyy-MM-dd HH:mm:ss XXX') AS dfmt,
    to_timestamp('2024-03-10 12:00', 'yyyy-MM-dd HH:mm') AS tots,
    to_date(timestamp_seconds(1710064800)) AS todate,
    unix_timestamp(TIMESTAMP '2024-03-10 12:00:00') AS ut2,
    from_utc_timestamp(timestamp_seconds(1710064800), 'Asia/Tokyo') AS fu,
    to_utc_timestamp(timestamp_seconds(1710064800), 'Asia/Tokyo') AS tu"""

EXPECTED = {
    "America/Los_Angeles": {
        "lit_ts": datetime(2024, 3, 10, 9, 30),
        "gap_ts": datetime(2024, 3, 10, 10, 30),  # 02:30 does not exist: 03:30 PDT
        "overlap_ts": datetime(2024, 11, 3, 8, 30),  # 01:30 twice: the earlier, PDT
        "z_ts": datetime(2024, 3, 10, 12, 0),
        "d2ts": datetime(2024, 3, 10, 8, 0),
        "ts2d": date(2024, 3, 10),
        "ts2s": "2024-03-10 03:00:00",
        "ut": 1710097200,
        "fut": "2024-03-10 03:00:00",
        "h": 3,
        "mi": 30,
        "dow": 1,
        "dt_day": datetime(2024, 3, 10, 8, 0),
        "dt_hour": datetime(2024, 3, 10, 10, 0),
        "dfmt": "2024-03-10 03:00:00 -07:00",
        "tots": datetime(2024, 3, 10, 19, 0),
        "todate": date(2024, 3, 10),
        "ut2": 1710097200,
        "fu": datetime(2024, 3, 10, 19, 0),
        "tu": datetime(2024, 3, 10, 1, 0),
    },
    "Asia/Kolkata": {
        "lit_ts": datetime(2024, 3, 9, 20, 0),
        "gap_ts": datetime(2024, 3, 9, 21, 0),
        "overlap_ts": datetime(2024, 11, 2, 20, 0),
        "z_ts": datetime(2024, 3, 10, 12, 0),
        "d2ts": datetime(2024, 3, 9, 18, 30),
        "ts2d": date(2024, 3, 10),
        "ts2s": "2024-03-10 15:30:00",
        "ut": 1710052200,
        "fut": "2024-03-10 15:30:00",
        "h": 15,
        "mi": 0,
        "dow": 1,
        "dt_day": datetime(2024, 3, 9, 18, 30),
        "dt_hour": datetime(2024, 3, 10, 9, 30),
        "dfmt": "2024-03-10 15:30:00 +05:30",
        "tots": datetime(2024, 3, 10, 6, 30),
        "todate": date(2024, 3, 10),
        "ut2": 1710052200,
        "fu": datetime(2024, 3, 10, 19, 0),
        "tu": datetime(2024, 3, 10, 1, 0),
    },
    "+08:00": {
        "lit_ts": datetime(2024, 3, 9, 17, 30),
        "gap_ts": datetime(2024, 3, 9, 18, 30),
        "overlap_ts": datetime(2024, 11, 2, 17, 30),
        "z_ts": datetime(2024, 3, 10, 12, 0),
        "d2ts": datetime(2024, 3, 9, 16, 0),
        "ts2d": date(2024, 3, 10),
        "ts2s": "2024-03-10 18:00:00",
        "ut": 1710043200,
        "fut": "2024-03-10 18:00:00",
        "h": 18,
        "mi": 30,
        "dow": 1,
        "dt_day": datetime(2024, 3, 9, 16, 0),
        "dt_hour": datetime(2024, 3, 10, 10, 0),
        "dfmt": "2024-03-10 18:00:00 +08:00",
        "tots": datetime(2024, 3, 10, 4, 0),
        "todate": date(2024, 3, 10),
        "ut2": 1710043200,
        "fu": datetime(2024, 3, 10, 19, 0),
        "tu": datetime(2024, 3, 10, 1, 0),
    },
    "UTC": {
        "lit_ts": datetime(2024, 3, 10, 1, 30),
        "gap_ts": datetime(2024, 3, 10, 2, 30),
        "overlap_ts": datetime(2024, 11, 3, 1, 30),
        "z_ts": datetime(2024, 3, 10, 12, 0),
        "d2ts": datetime(2024, 3, 10, 0, 0),
        "ts2d": date(2024, 3, 10),
        "ts2s": "2024-03-10 10:00:00",
        "ut": 1710072000,
        "fut": "2024-03-10 10:00:00",
        "h": 10,
        "mi": 30,
        "dow": 1,
        "dt_day": datetime(2024, 3, 10, 0, 0),
        "dt_hour": datetime(2024, 3, 10, 10, 0),
        "dfmt": "2024-03-10 10:00:00 Z",
        "tots": datetime(2024, 3, 10, 12, 0),
        "todate": date(2024, 3, 10),
        "ut2": 1710072000,
        "fu": datetime(2024, 3, 10, 19, 0),
        "tu": datetime(2024, 3, 10, 1, 0),
    },
}

SHOWN = {  # show() of lit_ts, gap_ts, overlap_ts, z_ts, d2ts, fu
    "America/Los_Angeles": "|2024-03-10 01:30:00|2024-03-10 03:30:00|2024-11-03 01:30:00|"
                           "2024-03-10 05:00:00|2024-03-10 00:00:00|2024-03-10 12:00:00|",
    "Asia/Kolkata": "|2024-03-10 01:30:00|2024-03-10 02:30:00|2024-11-03 01:30:00|"
                    "2024-03-10 17:30:00|2024-03-10 00:00:00|2024-03-11 00:30:00|",
    "+08:00": "|2024-03-10 01:30:00|2024-03-10 02:30:00|2024-11-03 01:30:00|"
              "2024-03-10 20:00:00|2024-03-10 00:00:00|2024-03-11 03:00:00|",
}


QUERY_DST = """SELECT
 date_trunc('HOUR', timestamp_seconds(1730622600 + 3600)) AS trunc_overlap_hour,
 date_trunc('DAY', timestamp_seconds(1730622600 + 3600)) AS trunc_overlap_day,
 date_trunc('MONTH', timestamp_seconds(1710064800)) AS trunc_month,
 timestampdiff(HOUR, timestamp_seconds(1710050400), timestamp_seconds(1710097200)) AS diff_hours,
 timestampdiff(DAY, timestamp_seconds(1710050400), timestamp_seconds(1710136800)) AS diff_days,
 timestampadd(DAY, 1, timestamp_seconds(1710050400)) AS add_day,
 timestampadd(MONTH, 1, timestamp_seconds(1710050400)) AS add_month,
 months_between(timestamp_seconds(1710097200), timestamp_seconds(1707465600)) AS mb,
 make_timestamp(2024, 3, 10, 2, 30, 0) AS mk_gap,
 make_timestamp(2024, 3, 10, 2, 30, 0, 'UTC') AS mk_utc,
 to_timestamp('2024-03-10 02:30', 'yyyy-MM-dd HH:mm') AS tots_gap,
 to_timestamp('2024-03-10 02:30 +0100', 'yyyy-MM-dd HH:mm Z') AS tots_off,
 date_format(timestamp_seconds(1710064800), 'yyyy-MM-dd HH:mm z') AS fmt_z,
 from_unixtime(0) AS fu0,
 year(timestamp_seconds(1704067200)) AS y_newyear,
 hour('2024-03-10 12:00:00') AS hour_str,
 CAST(timestamp_seconds(1710064800) AS DATE) AS d,
 extract(HOUR FROM timestamp_seconds(1710064800)) AS ex_hour,
 date_part('DAY', timestamp_seconds(1710064800)) AS dp_day,
 unix_timestamp('2024-03-10 02:30:00') AS ut_gap,
 to_date('2024-03-10 23:30:00') AS todate_str,
 weekday(timestamp_seconds(1710064800)) AS wd,
 date_add(timestamp_seconds(1710064800), 1) AS dadd,
 CAST(timestamp_seconds(1710064800) AS TIMESTAMP_NTZ) AS ntz,
 timestamp_seconds(1710064800) = '2024-03-10 03:00:00' AS cmp_str"""

EXPECTED_DST = {  # collected with the Python process in America/Los_Angeles
    "America/Los_Angeles": {
        "trunc_overlap_hour": datetime(2024, 11, 3, 1, 0, fold=1),
        "trunc_overlap_day": datetime(2024, 11, 3, 0, 0),
        "trunc_month": datetime(2024, 3, 1, 0, 0),
        "diff_hours": 14,
        "diff_days": 1,
        "add_day": datetime(2024, 3, 10, 22, 0),
        "add_month": datetime(2024, 4, 9, 22, 0),
        "mb": 1.04704301,
        "mk_gap": datetime(2024, 3, 10, 3, 30),
        "mk_utc": datetime(2024, 3, 9, 18, 30),
        "tots_gap": datetime(2024, 3, 10, 3, 30),
        "tots_off": datetime(2024, 3, 9, 17, 30),
        "fmt_z": "2024-03-10 03:00 PDT",
        "fu0": "1969-12-31 16:00:00",
        "y_newyear": 2023,
        "hour_str": 12,
        "d": date(2024, 3, 10),
        "ex_hour": 3,
        "dp_day": 10,
        "ut_gap": 1710066600,
        "todate_str": date(2024, 3, 10),
        "wd": 6,
        "dadd": date(2024, 3, 11),
        "ntz": datetime(2024, 3, 10, 3, 0),
        "cmp_str": True,
    },
    "Asia/Kolkata": {
        "trunc_overlap_hour": datetime(2024, 11, 3, 1, 30, fold=1),
        "trunc_overlap_day": datetime(2024, 11, 2, 11, 30),
        "trunc_month": datetime(2024, 2, 29, 10, 30),
        "diff_hours": 13,
        "diff_days": 1,
        "add_day": datetime(2024, 3, 10, 23, 0),
        "add_month": datetime(2024, 4, 9, 23, 0),
        "mb": 1.04704301,
        "mk_gap": datetime(2024, 3, 9, 13, 0),
        "mk_utc": datetime(2024, 3, 9, 18, 30),
        "tots_gap": datetime(2024, 3, 9, 13, 0),
        "tots_off": datetime(2024, 3, 9, 17, 30),
        "fmt_z": "2024-03-10 15:30 IST",
        "fu0": "1970-01-01 05:30:00",
        "y_newyear": 2024,
        "hour_str": 12,
        "d": date(2024, 3, 10),
        "ex_hour": 15,
        "dp_day": 10,
        "ut_gap": 1710018000,
        "todate_str": date(2024, 3, 10),
        "wd": 6,
        "dadd": date(2024, 3, 11),
        "ntz": datetime(2024, 3, 10, 15, 30),
        "cmp_str": False,
    },
    "+08:00": {
        "trunc_overlap_hour": datetime(2024, 11, 3, 1, 0, fold=1),
        "trunc_overlap_day": datetime(2024, 11, 2, 9, 0),
        "trunc_month": datetime(2024, 2, 29, 8, 0),
        "diff_hours": 13,
        "diff_days": 1,
        "add_day": datetime(2024, 3, 10, 23, 0),
        "add_month": datetime(2024, 4, 9, 23, 0),
        "mb": 1.04704301,
        "mk_gap": datetime(2024, 3, 9, 10, 30),
        "mk_utc": datetime(2024, 3, 9, 18, 30),
        "tots_gap": datetime(2024, 3, 9, 10, 30),
        "tots_off": datetime(2024, 3, 9, 17, 30),
        "fmt_z": "2024-03-10 18:00 +08:00",
        "fu0": "1970-01-01 08:00:00",
        "y_newyear": 2024,
        "hour_str": 12,
        "d": date(2024, 3, 10),
        "ex_hour": 18,
        "dp_day": 10,
        "ut_gap": 1710009000,
        "todate_str": date(2024, 3, 10),
        "wd": 6,
        "dadd": date(2024, 3, 11),
        "ntz": datetime(2024, 3, 10, 18, 0),
        "cmp_str": False,
    },
}


@pytest.mark.parametrize("zone", EXPECTED_DST)
def test_truncation_differences_and_parsing_follow_the_zones_daylight_saving(
        spark: SparkSession, monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    _set_process_zone(monkeypatch, "America/Los_Angeles")
    spark.conf.set("spark.sql.session.timeZone", zone)
    row = spark.sql(QUERY_DST).collect()[0].asDict()
    assert row == EXPECTED_DST[zone]
    assert row["trunc_overlap_hour"].fold == 1  # the second 01:00 of 2024-11-03 there


def _set_process_zone(monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()


@pytest.fixture(autouse=True)
def _process_in_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _set_process_zone(monkeypatch, "UTC")
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("zone", EXPECTED)
def test_datetime_expressions_read_instants_in_the_session_zone(spark: SparkSession,
                                                                zone: str) -> None:
    spark.conf.set("spark.sql.session.timeZone", zone)
    assert spark.sql(QUERY).collect()[0].asDict() == EXPECTED[zone]


@pytest.mark.parametrize("zone", SHOWN)
def test_show_prints_wall_clock_times_in_the_session_zone(
        spark: SparkSession, zone: str, capsys: pytest.CaptureFixture[str]) -> None:
    spark.conf.set("spark.sql.session.timeZone", zone)
    spark.sql(QUERY).select("lit_ts", "gap_ts", "overlap_ts", "z_ts", "d2ts", "fu").show()
    assert capsys.readouterr().out.splitlines()[3] == SHOWN[zone]


def test_collect_and_create_dataframe_use_the_python_process_zone_not_the_session_zone(
        spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> None:
    _set_process_zone(monkeypatch, "America/Los_Angeles")
    spark.conf.set("spark.sql.session.timeZone", "Asia/Kolkata")
    df = spark.createDataFrame([(datetime(2024, 3, 10, 12, 0),)], "ts timestamp")
    assert df.collect()[0].ts == datetime(2024, 3, 10, 12, 0)
    row = df.select(F.col("ts").cast("string").alias("s"),
                    F.unix_timestamp("ts").alias("u")).collect()[0]
    assert (row.s, row.u) == ("2024-03-11 00:30:00", 1710097200)  # 12:00 PDT
    lit = spark.range(1).select(F.lit(datetime(2024, 3, 10, 12, 0)).cast("long")).collect()
    assert lit[0][0] == 1710097200


def test_window_boundaries_are_on_the_epoch_whatever_the_zone(spark: SparkSession) -> None:
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    events = spark.createDataFrame([(1710050400 + i * 1800,) for i in range(8)], "s long") \
        .select(F.timestamp_seconds("s").alias("ts"))
    counted = events.groupBy(F.window("ts", "1 day")).count()
    assert [(r[0].start, r[1]) for r in counted.collect()] == [(datetime(2024, 3, 10), 8)]
    hours = events.groupBy(F.hour("ts").alias("h")).count().orderBy("h").collect()
    assert [tuple(r) for r in hours] == [(0, 2), (1, 2), (22, 2), (23, 2)]


def test_an_unknown_session_zone_fails_when_set_as_spark(spark: SparkSession) -> None:
    with pytest.raises(IllegalArgumentException) as raised:
        spark.conf.set("spark.sql.session.timeZone", "Mars/Olympus")
    assert str(raised.value) == (
        "[INVALID_CONF_VALUE.TIME_ZONE] The value 'Mars/Olympus' in the config "
        '"spark.sql.session.timeZone" is invalid. Cannot resolve the given timezone. '
        "SQLSTATE: 22022")
    with pytest.raises(IllegalArgumentException, match=r"INVALID_CONF_VALUE\.TIME_ZONE"):
        spark.sql("SET TIME ZONE 'Mars/Olympus'")
    assert spark.conf.get("spark.sql.session.timeZone") != "Mars/Olympus"


@pytest.mark.parametrize(("statement", "zone"), [
    ("SET TIME ZONE 'America/Los_Angeles'", "America/Los_Angeles"),
    ("SET TIME ZONE INTERVAL '+08:00' HOUR TO MINUTE", "+08:00"),
    ("SET spark.sql.session.timeZone=Asia/Kolkata", "Asia/Kolkata"),
])
def test_set_time_zone_in_sql_sets_the_session_zone(spark: SparkSession, statement: str,
                                                    zone: str) -> None:
    assert [tuple(r) for r in spark.sql(statement).collect()] == [
        ("spark.sql.session.timeZone", zone)]
    assert spark.sql("SELECT hour(timestamp_seconds(0))").collect()[0][0] == {
        "America/Los_Angeles": 16, "+08:00": 8, "Asia/Kolkata": 5}[zone]


def test_the_default_session_zone_is_the_machines(python_env: dict[str, str]) -> None:
    code = ("from unbounded.sql import SparkSession\n"
            "s = SparkSession.builder.create()\n"
            "print(s.conf.get('spark.sql.session.timeZone'))\n"
            "print(s.sql('SELECT hour(timestamp_seconds(0))').collect()[0][0])\n")
    env = {**python_env, "TZ": "Asia/Kolkata"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, timeout=120).stdout
    assert out.splitlines() == ["Asia/Kolkata", "5"]


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-10", datetime(2024, 3, 10, 8, 0)),  # a date alone: midnight there (PST)
    ("2024-03-10 12:00:00-05:00", datetime(2024, 3, 10, 17, 0)),  # its own offset
    ("2024-03-10 12:00:00.5+01", datetime(2024, 3, 10, 11, 0, 0, 500000)),
])
def test_a_string_names_the_instant_of_its_offset_else_of_the_session_zone(
        spark: SparkSession, text: str, expected: datetime) -> None:
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    assert spark.sql(f"SELECT CAST('{text}' AS TIMESTAMP)").collect()[0][0] == expected


CSV = "id,ts\n1,2024-03-10 02:30:00\n2,2024-03-10T12:00:00Z\n3,2024-11-03 01:30:00\n"
READ_IN_LOS_ANGELES = [(1, datetime(2024, 3, 10, 10, 30)), (2, datetime(2024, 3, 10, 12, 0)),
                       (3, datetime(2024, 11, 3, 8, 30))]


def test_csv_and_json_timestamps_without_offset_are_read_in_the_session_zone(
        spark: SparkSession, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(CSV)
    (tmp_path / "a.json").write_text('{"id":1,"ts":"2024-03-10 02:30:00"}\n'
                                     '{"id":2,"ts":"2024-03-10T12:00:00Z"}\n')
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    reader = spark.read.schema("id int, ts timestamp")
    csv = reader.option("header", "true").csv(str(tmp_path / "a.csv"))
    assert [tuple(r) for r in csv.collect()] == READ_IN_LOS_ANGELES
    json = spark.read.schema("id int, ts timestamp").json(str(tmp_path / "a.json"))
    assert [tuple(r) for r in json.collect()] == READ_IN_LOS_ANGELES[:2]
    utc = spark.read.schema("id int, ts timestamp").option("timeZone", "UTC")
    assert [tuple(r) for r in utc.json(str(tmp_path / "a.json")).collect()] == [
        (1, datetime(2024, 3, 10, 2, 30)), (2, datetime(2024, 3, 10, 12, 0))]


def test_a_csv_stream_reads_timestamps_in_the_session_zone(spark: SparkSession,
                                                           tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text(CSV)
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    stream = spark.readStream.schema("id int, ts timestamp").option("header", "true") \
        .csv(str(tmp_path / "in"))
    query = stream.writeStream.format("memory").queryName("zoned_csv").start()
    query.processAllAvailable()
    query.stop()
    rows = sorted(tuple(r) for r in spark.table("zoned_csv").collect())
    assert rows == READ_IN_LOS_ANGELES


def test_a_dataframe_keeps_the_zone_it_was_built_in_as_spark(spark: SparkSession) -> None:
    """Spark fixes a time-zone-aware expression's zone when the DataFrame is analysed:
    the cast below reads Los Angeles, the hour() added after the change reads UTC
    (PySpark 4.3: l=1710097200, h=0)."""
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    built = spark.sql("SELECT CAST(CAST('2024-03-10 12:00:00' AS TIMESTAMP) AS LONG) AS l")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    later = built.select("l", F.hour(F.timestamp_seconds(F.lit(0))).alias("h"))
    assert [tuple(r) for r in later.collect()] == [(1710097200, 0)]
    assert [tuple(r) for r in built.collect()] == [(1710097200,)]
