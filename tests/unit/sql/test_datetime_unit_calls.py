"""SQL calls whose first argument is a bare datetime unit word, as Spark's grammar parses
them (``timestampdiff(HOUR, a, b)``, ``dateadd``/``date_add``/``datediff``/``date_diff``/
``timediff`` with three arguments). Values and error classes are PySpark 4.3's."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from unbounded.errors import ParseException
from unbounded.sql import SparkSession

# 1710050400: 2024-03-10 06:00 UTC, 22:00 PST the day before, hours before the DST change.
CASES = {
    "timestampdiff(HOUR, timestamp_seconds(1710050400), timestamp_seconds(1710097200))":
        {"UTC": 13, "America/Los_Angeles": 14},
    "timestampadd(MINUTE, 90, timestamp_seconds(1710050400))":
        {"UTC": datetime(2024, 3, 10, 7, 30), "America/Los_Angeles": datetime(2024, 3, 10, 7, 30)},
    "timestampadd(minute, 90, timestamp_seconds(1710050400))":
        {"UTC": datetime(2024, 3, 10, 7, 30), "America/Los_Angeles": datetime(2024, 3, 10, 7, 30)},
    "dateadd(HOUR, 2, timestamp_seconds(1710050400))":
        {"UTC": datetime(2024, 3, 10, 8, 0), "America/Los_Angeles": datetime(2024, 3, 10, 8, 0)},
    "date_add(HOUR, 2, timestamp_seconds(1710050400))":
        {"UTC": datetime(2024, 3, 10, 8, 0), "America/Los_Angeles": datetime(2024, 3, 10, 8, 0)},
    "timestampadd(DAY, 1, timestamp_seconds(1710050400))":
        {"UTC": datetime(2024, 3, 11, 6, 0), "America/Los_Angeles": datetime(2024, 3, 11, 5, 0)},
    "timestampadd(YEAR, 1, DATE '2024-02-29')":
        {"UTC": datetime(2025, 2, 28, 0, 0), "America/Los_Angeles": datetime(2025, 2, 28, 8, 0)},
    "datediff(DAY, timestamp_seconds(1710050400), timestamp_seconds(1710197200))":
        {"UTC": 1, "America/Los_Angeles": 1},
    "date_diff(MONTH, DATE '2024-01-31', DATE '2024-03-01')":
        {"UTC": 1, "America/Los_Angeles": 1},
    "timediff(SECOND, timestamp_seconds(1710050400), timestamp_seconds(1710050500))":
        {"UTC": 100, "America/Los_Angeles": 100},
    "timestampdiff(WEEK, DATE '2024-01-01', DATE '2024-03-01')":
        {"UTC": 8, "America/Los_Angeles": 8},
    "timestampdiff(QUARTER, DATE '2024-01-01', DATE '2024-12-01')":
        {"UTC": 3, "America/Los_Angeles": 3},
    "timestampdiff(MILLISECOND, timestamp_seconds(0), timestamp_seconds(1.5D))":
        {"UTC": 1500, "America/Los_Angeles": 1500},
    "datediff(DATE '2024-03-01', DATE '2024-01-31')": {"UTC": 30, "America/Los_Angeles": 30},
    "date_diff(DATE '2024-03-01', DATE '2024-01-31')": {"UTC": 30, "America/Los_Angeles": 30},
    "date_add(DATE '2024-03-01', 3)":
        {"UTC": date(2024, 3, 4), "America/Los_Angeles": date(2024, 3, 4)},
}


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles"])
@pytest.mark.parametrize("sql", CASES)
def test_a_bare_unit_word_is_the_unit(spark: SparkSession, zone: str, sql: str) -> None:
    spark.conf.set("spark.sql.session.timeZone", zone)
    assert spark.sql(f"SELECT {sql} AS r").collect()[0][0] == CASES[sql][zone]


def test_a_quoted_unit_is_rejected_as_spark_rejects_it(spark: SparkSession) -> None:
    with pytest.raises(ParseException) as raised:
        spark.sql("SELECT timestampdiff('HOUR', timestamp_seconds(0), timestamp_seconds(1))")
    assert "[INVALID_PARAMETER_VALUE.DATETIME_UNIT] The value of parameter(s) `unit` in " \
           "`timestampdiff` is invalid: expects one of the units without quotes YEAR, " \
           "QUARTER, MONTH, WEEK, DAY, DAYOFYEAR, HOUR, MINUTE, SECOND, MILLISECOND, " \
           "MICROSECOND, but got the string literal 'HOUR'." in str(raised.value)


def test_an_unknown_unit_word_is_an_unresolved_routine(spark: SparkSession) -> None:
    with pytest.raises(ParseException, match=r"UNRESOLVED_ROUTINE"):
        spark.sql("SELECT timestampdiff(FOO, timestamp_seconds(0), timestamp_seconds(1))")


def test_expr_takes_the_bare_unit_too(spark: SparkSession) -> None:
    df = spark.sql("SELECT timestamp_seconds(0) AS a, timestamp_seconds(5400) AS b")
    assert df.selectExpr("timestampdiff(MINUTE, a, b) AS m").collect()[0].m == 90
