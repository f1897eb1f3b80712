"""date_format's pattern letters as PySpark 4.3 prints them (values read off PySpark 4.3,
local[1]; session zone UTC unless a test sets another)."""

from __future__ import annotations

import pytest

from unbounded.errors import AnalysisException
from unbounded.plan.datetime_format import PatternField, spark_format_parts, spark_to_chrono

TIMES = ("TIMESTAMP'2026-03-08 09:05:07.123456'", "TIMESTAMP'2026-12-31 23:00:00'",
         "TIMESTAMP'0001-01-01 00:00:00'")


def _formatted(spark, pattern):
    sql = ", ".join(f"date_format({t}, '{pattern}')" for t in TIMES)
    return tuple(spark.sql(f"SELECT {sql}").collect()[0])


@pytest.mark.parametrize(("pattern", "expected"), [
    ("D", ("67", "365", "1")), ("DD", ("67", "365", "01")), ("DDD", ("067", "365", "001")),
    ("Q", ("1", "4", "1")), ("QQ", ("01", "04", "01")), ("QQQ", ("Q1", "Q4", "Q1")),
    ("QQQQ", ("1st quarter", "4th quarter", "1st quarter")), ("qq", ("01", "04", "01")),
    ("E", ("Sun", "Thu", "Mon")), ("EE", ("Sun", "Thu", "Mon")),
    ("EEEE", ("Sunday", "Thursday", "Monday")), ("F", ("1", "3", "1")),
    ("G", ("AD", "AD", "AD")), ("GGGG", ("Anno Domini",) * 3),
    ("K", ("9", "11", "0")), ("KK", ("09", "11", "00")), ("k", ("9", "23", "24")),
    ("kk", ("09", "23", "24")), ("L", ("3", "12", "1")), ("LLL", ("Mar", "Dec", "Jan")),
    ("LLLL", ("March", "December", "January")), ("y", ("2026", "2026", "1")),
    ("yyy", ("2026", "2026", "001")), ("yyyyy", ("02026", "02026", "00001")),
    ("S", ("1", "0", "0")), ("SS", ("12", "00", "00")),
    ("SSSSSSS", ("1234560", "0000000", "0000000")),
    ("yyyy[-MM]", ("2026-03", "2026-12", "0001-01")),
    ("yyyy-MM-dd''T''HH:mm:ss.SSS",
     ("2026-03-08T09:05:07.123", "2026-12-31T23:00:00.000", "0001-01-01T00:00:00.000")),
])
def test_pattern_letters_print_as_spark(spark, pattern, expected):
    assert _formatted(spark, pattern) == expected


def test_fields_follow_the_session_zone(spark):
    spark.conf.set("spark.sql.session.timeZone", "+05:30")
    row = spark.sql("SELECT date_format(TIMESTAMP'2026-12-31 20:00:00Z', "
                    "'DD kk QQQ XXX')").collect()[0]
    assert row[0] == "01 01 Q1 +05:30"


@pytest.mark.parametrize(("pattern", "error"), [
    ("e", "DATETIME_WEEK_BASED_PATTERN"), ("w", "DATETIME_WEEK_BASED_PATTERN"),
    ("YYYY", "DATETIME_WEEK_BASED_PATTERN"), ("u", "DATETIME_WEEK_BASED_PATTERN"),
    ("A", "ILLEGAL_CHARACTER"), ("n", "ILLEGAL_CHARACTER"),
    ("EEEEE", "DATETIME_PATTERN_RECOGNITION"), ("ddd", "DATETIME_PATTERN_RECOGNITION"),
])
def test_letters_spark_refuses_are_refused(spark, pattern, error):
    with pytest.raises(AnalysisException, match=error):
        spark.sql(f"SELECT date_format({TIMES[0]}, '{pattern}')").collect()


def test_parsing_reads_day_of_year_and_era_and_refuses_quarters(spark):
    row = spark.sql("SELECT CAST(to_timestamp('2026-067', 'yyyy-DDD') AS STRING), "
                    "CAST(to_date('2026-3', 'yyyy-D') AS STRING), "
                    "CAST(to_timestamp('2026-03-08 AD', 'yyyy-MM-dd G') AS STRING)").collect()[0]
    assert tuple(row) == ("2026-03-08 00:00:00", "2026-01-03", "2026-03-08 00:00:00")
    with pytest.raises(AnalysisException, match="ILLEGAL_CHARACTER"):
        spark_to_chrono("yyyy-QQQ")


def test_quoted_text_decodes_doubled_quotes():
    assert spark_format_parts("'o''clock' h") == ("o'clock %-I",)
    assert spark_format_parts("''DD") == ("'", PatternField("D", 2))
    assert spark_to_chrono("yyyy-MM-dd'T'HH") == "%Y-%m-%dT%H"


@pytest.mark.parametrize(("zone", "pattern", "expected"), [
    ("America/Los_Angeles", "x", ("-08", "-07")), ("America/Los_Angeles", "xx", ("-0800", "-0700")),
    ("America/Los_Angeles", "xxxxx", ("-08:00", "-07:00")),
    ("America/Los_Angeles", "X", ("-08", "-07")), ("America/Los_Angeles", "O", ("GMT-8", "GMT-7")),
    ("America/Los_Angeles", "OOOO", ("GMT-08:00", "GMT-07:00")),
    ("America/Los_Angeles", "ZZZZ", ("GMT-08:00", "GMT-07:00")),
    ("America/Los_Angeles", "ZZZZZ", ("-08:00", "-07:00")),
    ("America/Los_Angeles", "VV", ("America/Los_Angeles",) * 2),
    ("America/Los_Angeles", "z", ("PST", "PDT")),
    ("+05:30", "x", ("+0530",) * 2), ("+05:30", "X", ("+0530",) * 2),
    ("+05:30", "XXX", ("+05:30",) * 2), ("+05:30", "O", ("GMT+5:30",) * 2),
    ("+05:30", "OOOO", ("GMT+05:30",) * 2), ("+05:30", "VV", ("+05:30",) * 2),
    ("+05:30", "z", ("+05:30",) * 2), ("+05:30", "Z", ("+0530",) * 2),
    ("UTC", "O", ("GMT",) * 2), ("UTC", "ZZZZ", ("GMT",) * 2), ("UTC", "ZZZZZ", ("Z",) * 2),
    ("UTC", "VV", ("UTC",) * 2), ("UTC", "z", ("UTC",) * 2), ("UTC", "x", ("+00",) * 2),
    ("UTC", "X", ("Z",) * 2),
])
def test_zone_and_offset_letters_print_as_spark(spark, zone, pattern, expected):
    spark.conf.set("spark.sql.session.timeZone", zone)
    row = spark.sql(f"SELECT date_format(TIMESTAMP'2026-01-08 09:05:07Z', '{pattern}'), "
                    f"date_format(TIMESTAMP'2026-07-08 09:05:07Z', '{pattern}')").collect()[0]
    assert tuple(row) == expected
