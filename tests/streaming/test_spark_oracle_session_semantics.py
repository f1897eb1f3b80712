"""Apache Spark as the oracle for two session settings: ``spark.sql.session.timeZone``
(casts, datetime functions, SQL literals, show(), across a daylight-saving change) and
``spark.sql.ansi.enabled=false`` (Spark's non-ANSI result types). The same queries run
in PySpark and in unbounded in this process; types, rows and shown text must agree.

Opt-in, because it starts a JVM: ``UNBOUNDED_SPARK_ORACLE=1 pytest
tests/streaming/test_spark_oracle_session_semantics.py`` with ``pyspark`` installed
(``pip install -e '.[oracle]'``; Java 17+).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from spark_oracle import ORACLE_MARKS, require_spark_oracle, started_pyspark
from unbounded.sql import SparkSession

require_spark_oracle()

pytestmark = [*ORACLE_MARKS]

ZONES = ["America/Los_Angeles", "Asia/Kolkata", "+08:00", "UTC", "Europe/London"]

# 1710064800: 2024-03-10 10:00 UTC, hours after Los Angeles moved to daylight time;
# 1730626200: 2024-11-03 09:30 UTC, the second 01:30 there.
TIME_ZONE_EXPRESSIONS = [
    "TIMESTAMP '2024-03-10 01:30:00'",
    "TIMESTAMP '2024-03-10 01:30:00+02:00'",
    "CAST('2024-03-10 02:30:00' AS TIMESTAMP)",
    "CAST('2024-11-03 01:30:00' AS TIMESTAMP)",
    "CAST('2024-03-10T12:00:00Z' AS TIMESTAMP)",
    "CAST('2024-03-10' AS TIMESTAMP)",
    "CAST('2024-03-10 12:00:00.5+01' AS TIMESTAMP)",
    "CAST('2024-03-10 12:00:00-05:00' AS TIMESTAMP)",
    "CAST(CAST('2024-03-10' AS DATE) AS TIMESTAMP)",
    "CAST(timestamp_seconds(1710064800) AS DATE)",
    "CAST(timestamp_seconds(1710064800) AS STRING)",
    "CAST(timestamp_seconds(1710064800) AS TIMESTAMP_NTZ)",
    "CAST(TIMESTAMP_NTZ '2024-03-10 02:30:00' AS TIMESTAMP)",
    "unix_timestamp('2024-03-10 12:00:00')",
    "unix_timestamp('2024-03-10 02:30:00')",
    "from_unixtime(1710064800)",
    "from_unixtime(0, 'yyyy-MM-dd HH:mm XXX')",
    "hour(timestamp_seconds(1710064800))",
    "minute(timestamp_seconds(1710066600))",
    "hour('2024-03-10 12:00:00')",
    "dayofweek(timestamp_seconds(1710064800))",
    "year(timestamp_seconds(1704067200))",
    "date_trunc('DAY', timestamp_seconds(1710064800))",
    "date_trunc('HOUR', timestamp_seconds(1730626200))",
    "date_trunc('MONTH', timestamp_seconds(1710064800))",
    "date_format(timestamp_seconds(1710064800), 'yyyy-MM-dd HH:mm:ss XXX')",
    "date_format(timestamp_seconds(1710064800), 'yyyy-MM-dd HH:mm z')",
    "to_timestamp('2024-03-10 02:30', 'yyyy-MM-dd HH:mm')",
    "to_timestamp('2024-03-10 02:30 +0100', 'yyyy-MM-dd HH:mm Z')",
    "to_date(timestamp_seconds(1710064800))",
    "from_utc_timestamp(timestamp_seconds(1710064800), 'Asia/Tokyo')",
    "to_utc_timestamp(timestamp_seconds(1710064800), 'Asia/Tokyo')",
    "make_timestamp(2024, 3, 10, 2, 30, 0)",
    "months_between(timestamp_seconds(1710097200), timestamp_seconds(1707465600))",
    "weekday(timestamp_seconds(1710064800))",
    "date_add(timestamp_seconds(1710064800), 1)",
    "timestamp_seconds(1710064800) = '2024-03-10 03:00:00'",
    "window(timestamp_seconds(1710064800), '1 day').start",
    # JSON timestamps, nested ones too, read and written in the zone
    """unix_timestamp(from_json('{"a":{"t":"2024-03-10 02:30:00"}}', """
    """'a struct<t:timestamp>').a.t)""",
    """unix_timestamp(from_json('{"a":[{"t":"2024-03-10 12:00:00"}]}', """
    """'a array<struct<t:timestamp>>').a[0].t)""",
    """unix_timestamp(from_json('{"t":"2024-03-10T12:00:00Z"}', 't timestamp').t)""",
    "to_json(named_struct('a', named_struct('t', timestamp_seconds(1710064800.5D))))",
    "to_json(array(named_struct('t', timestamp_seconds(1730626200))))",
    "to_json(map('k', timestamp_seconds(1710064800)))",
    # a string compared with a timestamp in the zone, as in a join key
    "timestamp_seconds(1710064800) >= '2024-03-10 03:00:00'",
]
# A bare unit word (a quoted one is Spark's INVALID_PARAMETER_VALUE.DATETIME_UNIT).
UNIT_EXPRESSIONS = [
    "timestampdiff(HOUR, timestamp_seconds(1710050400), timestamp_seconds(1710097200))",
    "timestampadd(DAY, 1, timestamp_seconds(1710050400))",
    "timestampadd(MONTH, 1, timestamp_seconds(1710050400))",
    "timestampadd(MINUTE, 90, timestamp_seconds(1710050400))",
    "dateadd(HOUR, 2, timestamp_seconds(1710050400))",
    "date_add(HOUR, 2, timestamp_seconds(1710050400))",
    "datediff(DAY, timestamp_seconds(1710050400), timestamp_seconds(1710197200))",
    "date_diff(MONTH, DATE '2024-01-31', DATE '2024-03-01')",
    "timediff(SECOND, timestamp_seconds(1710050400), timestamp_seconds(1710050500))",
    "timestampadd(YEAR, 1, DATE '2024-02-29')",
    "timestampdiff('HOUR', timestamp_seconds(1710050400), timestamp_seconds(1710097200))",
]

COERCION_EXPRESSIONS = [
    "s + i", "t + i", "s + l", "s + d", "s * i", "s / i", "s - s", "s % i", "-s", "s + s",
    "t * t", "i = s", "i < t", "i = t", "l = s", "d = t", "b = bs", "x = i", "s = 2",
    "t = 2", "coalesce(i, s)", "coalesce(s, i)", "coalesce(i, x)",
    "CASE WHEN b THEN i ELSE s END", "IF(b, i, t)", "nvl(i, s)", "nvl(s, d)",
    "nvl2(x, i, s)", "array(i, s)", "i IN (s)", "s IN (1, 2)", "t IN (2)", "concat(i, s)",
    "i || s", "abs(s)", "sqrt(s)", "s + 1.5", "CAST(1.5 AS DECIMAL(3,1)) + s",
    "s = CAST(2 AS DECIMAL(3,1))", "ds = DATE '2024-03-05'", "date_add(ds, 1)", "i / i",
    "l div i", "s > 10", "t > 10", "map(i, s)", "ceil(t)", "round(t)", "pow(s, 2)",
    "x + 1", "ts = tss", "ts > '2024-03-05'", "nvl2(x, i, s)", "greatest(i, s)",
    "i + b", "s div i", "least(s, d)", "greatest(i, l)", "array(i, t)", "array(s, d)",
    "t div i", "x div i", "d div i", "i div d", "s div s", "s div d", "7.5 div 2",
    "-7 div 2", "i div 0", "NULL div i", "CAST(-9223372036854775808 AS BIGINT) div -1",
    "md5(i)", "sha2(i, 256)", "crc32(d)", "sha1(b)", "md5(s)",
    "named_struct('a', 1, 'b', 2) = named_struct('b', 1, 'a', 2)",
    "named_struct('a', 1, 'b', 2) < named_struct('b', 2, 'a', 1)",
    "named_struct('a', 1) = named_struct('a', 'x')",
    "named_struct('a', 1) <=> named_struct('b', 1)",
    "named_struct('a', 1) IN (named_struct('b', 1))",
    "named_struct('a', CAST(NULL AS INT), 'b', 2) < named_struct('a', 1, 'b', 1)",
    "named_struct('a', 1) = named_struct('b', CAST(1 AS BIGINT))",
    "array(bs, b)", "array(ds, dt)", "array(tss, ts)", "array(ds, dt, ts)", "array(s, b)",
    "array(i, b)", "array(bs, b, i)", "coalesce(bs, b)", "coalesce(ds, dt)", "nvl(bs, b)",
    "nvl2(x, ds, dt)", "CASE WHEN i = 1 THEN bs ELSE b END", "IF(b, ds, dt)",
    "map(1, bs, 2, b)", "map(1, s, 2, i)", "map(bs, 1, i, 2)", "b IN ('true')",
    "dt IN ('2024-03-05')", "b IN ('true', 'x')", "coalesce(i, b)",
]
# Spark rejects these at analysis (or, under ANSI, types them otherwise); unbounded
# still answers: each is listed in the README's differences.
KNOWN: set[tuple[str, str]] = set()


@pytest.fixture(scope="module")
def pyspark_session() -> Iterator[Any]:
    with started_pyspark("unbounded-oracle-conf", **{
            "spark.sql.shuffle.partitions": "1",
    }) as session:
        yield session


@pytest.fixture
def both(pyspark_session: Any, spark: SparkSession) -> tuple[Any, SparkSession]:
    row = [(1, 3, "2", "2.5", 1.5, True, "true", "2024-03-05", "x", "2024-03-05 10:00:00")]
    schema = ("i int, l bigint, s string, t string, d double, b boolean, bs string, "
              "ds string, x string, tss string")
    for session in (pyspark_session, spark):
        # Spark fixes a view's zone when it is analysed (see the README): UTC for both.
        session.conf.set("spark.sql.session.timeZone", "UTC")
        session.createDataFrame(row, schema).selectExpr(
            "*", "CAST(tss AS TIMESTAMP) AS ts").createOrReplaceTempView("v")
    return pyspark_session, spark


def _answer(session: Any, sql: str) -> tuple[str, Any]:
    try:
        df = session.sql(sql)
        return df.schema["r"].dataType.simpleString(), df.collect()[0][0]
    except Exception as err:  # the error class is the answer
        text = str(err)
        return "error", text[text.find("["):text.find("]") + 1] if "[" in text else text


def _same(sessions: tuple[Any, SparkSession], conf: dict[str, str], spark_sql: str,
          our_sql: str | None = None) -> None:
    settings = {"spark.sql.ansi.enabled": "true", "spark.sql.session.timeZone": "UTC", **conf}
    for session in sessions:
        for key, value in settings.items():
            session.conf.set(key, value)
    expected = _answer(sessions[0], spark_sql)
    assert _answer(sessions[1], our_sql or spark_sql) == expected


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("expr", TIME_ZONE_EXPRESSIONS)
def test_datetime_expressions_match_spark_in_the_session_zone(both, zone, expr):
    _same(both, {"spark.sql.session.timeZone": zone}, f"SELECT {expr} AS r")


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("expr", UNIT_EXPRESSIONS)
def test_timestamp_add_and_diff_match_spark_across_dst(both, zone, expr):
    _same(both, {"spark.sql.session.timeZone": zone}, f"SELECT {expr} AS r")


@pytest.mark.parametrize("zone", ZONES)
def test_show_prints_what_spark_prints(both, zone, capsys):
    shown = []
    for session in both:
        session.conf.set("spark.sql.ansi.enabled", "true")
        session.conf.set("spark.sql.session.timeZone", zone)
        session.sql("SELECT TIMESTAMP '2024-03-10 01:30:00' AS a, "
                    "CAST('2024-11-03 01:30:00' AS TIMESTAMP) AS b, "
                    "timestamp_seconds(1710064800) AS c, "
                    "CAST('2024-03-05 10:00:00' AS TIMESTAMP) AS d").show()
        shown.append(capsys.readouterr().out)
    assert shown[1] == shown[0]


@pytest.mark.parametrize("ansi", ["true", "false"])
@pytest.mark.parametrize("expr", COERCION_EXPRESSIONS)
def test_result_types_and_values_match_spark_with_and_without_ansi(both, ansi, expr):
    if (ansi, expr) in KNOWN:
        pytest.xfail("a known difference, listed in the README")
    _same(both, {"spark.sql.ansi.enabled": ansi, "spark.sql.session.timeZone": "UTC"},
          f"SELECT {expr} AS r FROM v")


def test_partition_folders_are_escaped_and_read_back_as_spark(both, tmp_path):
    values = ["a:b", "c/d", "e%f", "g=h", "i#j", "m n", "", None, "y[z]", "\x01x"]
    found = []
    for i, session in enumerate(both):
        session.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
        out = str(tmp_path / f"out{i}")
        df = session.createDataFrame([(v, n) for n, v in enumerate(values)], "k string, n int")
        df.write.partitionBy("k").parquet(out)
        session.sql("SELECT timestamp_seconds(1710064800) AS t, 1 AS n").write.partitionBy(
            "t").parquet(out + "_t")
        back = session.read.parquet(out)
        found.append((sorted(p for p in os.listdir(out) if "=" in p),
                      sorted(p for p in os.listdir(out + "_t") if "=" in p),
                      sorted((r.n, r.k) for r in back.collect()),
                      [tuple(r) for r in session.read.parquet(out + "_t").collect()]))
    assert found[1] == found[0]


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles"])
def test_a_join_of_a_timestamp_with_a_string_matches_spark(both, zone):
    answers = []
    for session in both:
        session.conf.set("spark.sql.session.timeZone", zone)
        left = session.sql("SELECT timestamp_seconds(1710064800) AS ts")
        right = session.createDataFrame([("2024-03-10 03:00:00",), ("2024-03-10 10:00:00",)],
                                        "s string")
        answers.append(sorted(r.s for r in left.join(right, left.ts == right.s).collect()))
    assert answers[1] == answers[0]
