"""PySpark's date and time functions: names, values and errors as PySpark 4.3 gives them
(each expected value below was read off PySpark 4.3 with the session time zone UTC)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from unbounded.errors import AnalysisException, DateTimeException, IllegalArgumentException
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

D = dt.date
T = dt.datetime


@pytest.fixture
def df(spark):
    rows = [("2024-01-31", "2024-03-15 10:30:00", 1), ("2023-02-28", "2023-12-31 23:59:59", -1),
            (None, None, None), ("2024-02-29", "2024-02-29 00:00:01", 13)]
    return spark.createDataFrame(rows, "d string, ts string, n int").select(
        F.to_date("d").alias("d"), F.to_timestamp("ts").alias("ts"), "n")


def _rows(frame):
    return frame.columns, [tuple(r) for r in frame.collect()]


def test_month_and_day_arithmetic(df):
    names, rows = _rows(df.select(
        F.add_months("d", "n"), F.add_months("d", 1), F.date_sub("d", 3),
        F.date_diff("d", F.lit("2024-01-01")), F.dateadd("d", 2)))
    assert names == ["add_months(d, n)", "add_months(d, 1)", "date_sub(d, 3)",
                     "date_diff(d, 2024-01-01)", "date_add(d, 2)"]
    assert rows == [
        (D(2024, 2, 29), D(2024, 2, 29), D(2024, 1, 28), 30, D(2024, 2, 2)),
        (D(2023, 1, 28), D(2023, 3, 28), D(2023, 2, 25), -307, D(2023, 3, 2)),
        (None, None, None, None, None),
        (D(2025, 3, 29), D(2024, 3, 29), D(2024, 2, 26), 59, D(2024, 3, 2)),
    ]


def test_day_names_and_calendar_steps(df):
    names, rows = _rows(df.select(
        F.weekday("d"), F.dayname("d"), F.monthname("d"), F.last_day("d"),
        F.next_day("d", "Mon"), F.next_day("d", "friday")))
    assert names == ["weekday(d)", "dayname(d)", "monthname(d)", "last_day(d)",
                     "next_day(d, Mon)", "next_day(d, friday)"]
    assert rows == [
        (2, "Wed", "Jan", D(2024, 1, 31), D(2024, 2, 5), D(2024, 2, 2)),
        (1, "Tue", "Feb", D(2023, 2, 28), D(2023, 3, 6), D(2023, 3, 3)),
        (None, None, None, None, None, None),
        (3, "Thu", "Feb", D(2024, 2, 29), D(2024, 3, 4), D(2024, 3, 1)),
    ]


def test_trunc_to_a_unit_or_null(df):
    names, rows = _rows(df.select(
        F.trunc("d", "year"), F.trunc("d", "mm"), F.trunc("d", "week"),
        F.trunc("d", "quarter"), F.trunc("d", "bogus"), F.trunc("ts", "month")))
    assert names == ["trunc(d, year)", "trunc(d, mm)", "trunc(d, week)",
                     "trunc(d, quarter)", "trunc(d, bogus)", "trunc(ts, month)"]
    assert rows == [
        (D(2024, 1, 1), D(2024, 1, 1), D(2024, 1, 29), D(2024, 1, 1), None, D(2024, 3, 1)),
        (D(2023, 1, 1), D(2023, 2, 1), D(2023, 2, 27), D(2023, 1, 1), None, D(2023, 12, 1)),
        (None, None, None, None, None, None),
        (D(2024, 1, 1), D(2024, 2, 1), D(2024, 2, 26), D(2024, 1, 1), None, D(2024, 2, 1)),
    ]


def test_construction_and_epochs(df):
    names, rows = _rows(df.select(
        F.make_date(F.lit(2024), F.lit(2), F.lit(29)),
        F.make_timestamp(F.lit(2024), F.lit(2), F.lit(29), F.lit(1), F.lit(2), F.lit(3.5)),
        F.unix_seconds("ts"), F.unix_millis("ts"), F.unix_micros("ts"), F.unix_date("d"),
        F.date_from_unix_date("n")))
    assert names == ["make_date(2024, 2, 29)", "make_timestamp(2024, 2, 29, 1, 2, 3.5)",
                     "unix_seconds(ts)", "unix_millis(ts)", "unix_micros(ts)", "unix_date(d)",
                     "date_from_unix_date(n)"]
    stamp = T(2024, 2, 29, 1, 2, 3, 500000)
    assert rows == [
        (D(2024, 2, 29), stamp, 1710498600, 1710498600000, 1710498600000000, 19753,
         D(1970, 1, 2)),
        (D(2024, 2, 29), stamp, 1704067199, 1704067199000, 1704067199000000, 19416,
         D(1969, 12, 31)),
        (D(2024, 2, 29), stamp, None, None, None, None, None),
        (D(2024, 2, 29), stamp, 1709164801, 1709164801000, 1709164801000000, 19782,
         D(1970, 1, 14)),
    ]


def test_months_between_zones_and_micros(df):
    names, rows = _rows(df.select(
        F.months_between("ts", "d"), F.months_between("ts", "d", False),
        F.from_utc_timestamp("ts", "America/New_York"), F.to_utc_timestamp("ts", "Asia/Tokyo"),
        F.to_unix_timestamp("ts"), F.timestamp_micros("n")))
    assert names == ["months_between(ts, d, true)", "months_between(ts, d, false)",
                     "from_utc_timestamp(ts, America/New_York)",
                     "to_utc_timestamp(ts, Asia/Tokyo)",
                     "to_unix_timestamp(ts, yyyy-MM-dd HH:mm:ss)", "timestamp_micros(n)"]
    assert rows == [
        (1.49798387, 1.497983870967742, T(2024, 3, 15, 6, 30), T(2024, 3, 15, 1, 30),
         1710498600, T(1970, 1, 1, 0, 0, 0, 1)),
        (10.0, 10.0, T(2023, 12, 31, 18, 59, 59), T(2023, 12, 31, 14, 59, 59), 1704067199,
         T(1969, 12, 31, 23, 59, 59, 999999)),
        (None, None, None, None, None, None),
        (0.0, 0.0, T(2024, 2, 28, 19, 0, 1), T(2024, 2, 28, 15, 0, 1), 1709164801,
         T(1970, 1, 1, 0, 0, 0, 13)),
    ]


def test_fields(df):
    names, rows = _rows(df.select(
        F.date_part(F.lit("YEAR"), "ts"), F.extract(F.lit("doy"), "ts"),
        F.date_part(F.lit("seconds"), "ts"), F.datepart(F.lit("week"), "d"),
        F.dayofyear("d"), F.weekofyear("d"), F.quarter("d"), F.day("d")))
    assert names == ["date_part(YEAR, ts)", "extract(doy FROM ts)", "date_part(seconds, ts)",
                     "datepart(week FROM d)", "dayofyear(d)", "weekofyear(d)", "quarter(d)",
                     "day(d)"]
    assert rows == [
        (2024, 75, Decimal("0.000000"), 5, 31, 5, 1, 31),
        (2023, 365, Decimal("59.000000"), 9, 59, 9, 1, 28),
        (None, None, None, None, None, None, None, None),
        (2024, 60, Decimal("1.000000"), 9, 60, 9, 1, 29),
    ]


def test_timestamp_diff_and_add(df):
    names, rows = _rows(df.select(F.timestamp_diff("HOUR", "d", "ts"),
                                  F.timestamp_add("MONTH", "n", "ts")))
    assert names == ["timestampdiff(HOUR, d, ts)", "timestampadd(MONTH, n, ts)"]
    assert rows == [(1066, T(2024, 4, 15, 10, 30)), (7367, T(2023, 11, 30, 23, 59, 59)),
                    (None, None), (0, T(2025, 3, 29, 0, 0, 1))]


def test_whole_months_between_timestamps_truncate_toward_zero(spark):
    frame = spark.createDataFrame(
        [("2024-01-31 12:00:00", "2024-02-29 11:59:59"), ("2024-03-01 00:00:00",
                                                          "2023-12-31 00:00:00")],
        "a string, b string").select(F.to_timestamp("a").alias("a"),
                                     F.to_timestamp("b").alias("b"))
    got = [tuple(r) for r in frame.select(
        F.timestamp_diff("MONTH", "a", "b"), F.timestamp_diff("YEAR", "a", "b"),
        F.timestamp_diff("WEEK", "a", "b"), F.timestamp_diff("DAY", "b", "a")).collect()]
    assert got == [(0, 0, 4, -28), (-2, 0, -8, 61)]  # PySpark 4.3's values


def test_sql_strings_reach_the_same_functions(spark):
    row = spark.sql("SELECT add_months(date'2024-01-31', 1) AS a, "
                    "next_day(date'2024-01-01', 'TU') AS b, "
                    "months_between(date'2024-03-31', date'2024-02-29') AS c, "
                    "date_diff(date'2024-03-01', '2024-02-01') AS d").collect()[0]
    assert tuple(row) == (D(2024, 2, 29), D(2024, 1, 2), 1.0, 29)


def test_invalid_fields_raise_spark_errors_under_ansi(spark):
    with pytest.raises(DateTimeException, match=r"\[DATETIME_FIELD_OUT_OF_BOUNDS"
                       r"\.WITHOUT_SUGGESTION\] Invalid date 'FEBRUARY 30'\.  SQLSTATE: 22023"):
        spark.sql("SELECT make_date(2024, 2, 30)").collect()
    with pytest.raises(DateTimeException, match=r"Invalid value for MonthOfYear "
                       r"\(valid values 1 - 12\): 13"):
        spark.range(1).select(F.make_date(F.lit(2024), F.lit(13), F.lit(1))).collect()
    with pytest.raises(IllegalArgumentException,
                       match=r"\[ILLEGAL_DAY_OF_WEEK\] Illegal input for day of week: xx"):
        spark.sql("SELECT next_day(date'2024-01-01', 'xx')").collect()
    with pytest.raises(AnalysisException, match=r"\[INVALID_EXTRACT_FIELD\] Cannot extract "
                       r"`fortnight` from \"current_date\(\)\"\. SQLSTATE: 42601"):
        spark.range(1).select(F.date_part(F.lit("fortnight"), F.current_date()))


def test_invalid_fields_give_null_with_ansi_off(spark):
    spark.conf.set("spark.sql.ansi.enabled", "false")
    row = spark.sql("SELECT make_date(2024, 2, 30) AS a, "
                    "next_day(date'2024-01-01', 'xx') AS b").collect()[0]
    assert tuple(row) == (None, None)


def test_in_a_streaming_query(spark):
    events = MemoryStream("d DATE, n INT", spark)
    out = events.toDF().select(F.add_months("d", "n").alias("m"), F.last_day("d").alias("l"),
                               F.weekday("d").alias("w"))
    query = out.writeStream.format("memory").queryName("dates").start()
    try:
        events.addData([(D(2024, 1, 31), 1), (D(2023, 12, 15), 2)])
        query.processAllAvailable(30)
    finally:
        query.stop()
    got = sorted(tuple(r) for r in spark.sql("SELECT * FROM dates").collect())
    assert got == [(D(2024, 2, 15), D(2023, 12, 31), 4), (D(2024, 2, 29), D(2024, 1, 31), 2)]
