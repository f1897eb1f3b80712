"""ANSI mode (spark.sql.ansi.enabled, Spark 4's default): bad casts, overflows and zero
divisors raise Spark's errors with Spark's messages; ``false`` gives NULL (or wraps and
saturates) as Spark does without it. Expected messages are PySpark 4.3's."""

from __future__ import annotations

import polars as pl
import pytest

from unbounded.engine import ansi
from unbounded.errors import (
    ArithmeticException,
    DateTimeException,
    NumberFormatException,
    SparkRuntimeException,
)
from unbounded.testing import MemoryStream

_INVALID = ("cannot be cast to \"{to}\" because it is malformed. Correct the value as per the "
            "syntax, or change its target type. Use `try_cast` to tolerate malformed input and "
            "return NULL instead. SQLSTATE: 22018")
_BYPASS = ('If necessary set "spark.sql.ansi.enabled" to "false" to bypass this error. '
           "SQLSTATE: ")


@pytest.fixture
def df(spark):
    return spark.createDataFrame([("7", 2147483647, 9223372036854775807, 0, 1e10, None)],
                                 "s STRING, i INT, l LONG, z INT, d DOUBLE, n STRING")


ERRORS = [
    ("CAST('abc' AS INT)", NumberFormatException, "CAST_INVALID_INPUT",
     "[CAST_INVALID_INPUT] The value 'abc' of the type \"STRING\" " + _INVALID.format(to="INT")),
    ("CAST('1.5' AS INT)", NumberFormatException, "CAST_INVALID_INPUT",
     "[CAST_INVALID_INPUT] The value '1.5' of the type \"STRING\" " + _INVALID.format(to="INT")),
    ("CAST('x' AS DOUBLE)", NumberFormatException, "CAST_INVALID_INPUT",
     "[CAST_INVALID_INPUT] The value 'x' of the type \"STRING\" " + _INVALID.format(to="DOUBLE")),
    ("CAST('2026-13-01' AS DATE)", DateTimeException, "CAST_INVALID_INPUT",
     "[CAST_INVALID_INPUT] The value '2026-13-01' of the type \"STRING\" "
     + _INVALID.format(to="DATE")),
    ("CAST('maybe' AS BOOLEAN)", SparkRuntimeException, "CAST_INVALID_INPUT",
     "[CAST_INVALID_INPUT] The value 'maybe' of the type \"STRING\" "
     + _INVALID.format(to="BOOLEAN")),
    ("CAST(d AS INT)", ArithmeticException, "CAST_OVERFLOW",
     '[CAST_OVERFLOW] The value 1.0E10D of the type "DOUBLE" cannot be cast to "INT" due to an '
     "overflow. Use `try_cast` to tolerate overflow and return NULL instead. SQLSTATE: 22003"),
    ("CAST(l AS INT)", ArithmeticException, "CAST_OVERFLOW",
     '[CAST_OVERFLOW] The value 9223372036854775807L of the type "BIGINT" cannot be cast to '
     '"INT" due to an overflow. Use `try_cast` to tolerate overflow and return NULL instead. '
     "SQLSTATE: 22003"),
    ("i + 1", ArithmeticException, "ARITHMETIC_OVERFLOW",
     "[ARITHMETIC_OVERFLOW] overflow. Use 'try_add' to tolerate overflow and return NULL "
     "instead. " + _BYPASS + "22003"),
    ("l * 2", ArithmeticException, "ARITHMETIC_OVERFLOW",
     "[ARITHMETIC_OVERFLOW] overflow. Use 'try_multiply' to tolerate overflow and return NULL "
     "instead. " + _BYPASS + "22003"),
    ("-i - 2", ArithmeticException, "ARITHMETIC_OVERFLOW",
     "[ARITHMETIC_OVERFLOW] overflow. Use 'try_subtract' to tolerate overflow and return NULL "
     "instead. " + _BYPASS + "22003"),
    ("i / z", ArithmeticException, "DIVIDE_BY_ZERO",
     "[DIVIDE_BY_ZERO] Division by zero. Use `try_divide` to tolerate divisor being 0 and "
     "return NULL instead. " + _BYPASS + "22012"),
    ("d / 0.0", ArithmeticException, "DIVIDE_BY_ZERO",
     "[DIVIDE_BY_ZERO] Division by zero. Use `try_divide` to tolerate divisor being 0 and "
     "return NULL instead. " + _BYPASS + "22012"),
    ("l % z", ArithmeticException, "REMAINDER_BY_ZERO",
     "[REMAINDER_BY_ZERO] Remainder by zero. Use `try_mod` to tolerate divisor being 0 and "
     "return NULL instead. " + _BYPASS + "22012"),
]


@pytest.mark.parametrize(("sql", "kind", "error_class", "message"), ERRORS,
                         ids=[e[0] for e in ERRORS])
def test_ansi_mode_raises_sparks_error(df, sql, kind, error_class, message):
    with pytest.raises(kind) as raised:
        df.selectExpr(sql).collect()
    assert raised.value.error_class == error_class
    assert str(raised.value) == message


NON_ANSI = [
    ("CAST('abc' AS INT)", None), ("CAST('1.5' AS INT)", 1), ("CAST('1e3' AS INT)", None),
    ("CAST(' -7 ' AS DOUBLE)", -7.0), ("CAST(d AS INT)", 2147483647),
    ("CAST(CAST('NaN' AS DOUBLE) AS INT)", 0), ("CAST(l AS INT)", -1),
    ("CAST('2026-13-01' AS DATE)", None), ("i + 1", -2147483648), ("i / z", None),
    ("l % z", None),
]


@pytest.mark.parametrize(("sql", "expected"), NON_ANSI, ids=[e[0] for e in NON_ANSI])
def test_ansi_off_gives_sparks_non_ansi_values(spark, df, sql, expected):
    spark.conf.set("spark.sql.ansi.enabled", "false")
    assert df.selectExpr(sql).collect()[0][0] == expected


VALID = [("CAST(' 12 ' AS INT)", 12), ("CAST(s AS BIGINT)", 7), ("CAST(n AS INT)", None),
         ("CAST('+3' AS INT)", 3), ("i - 1", 2147483646), ("CAST(z AS DOUBLE) / 4", 0.0),
         ("n / z", None)]


@pytest.mark.parametrize(("sql", "expected"), VALID, ids=[e[0] for e in VALID])
def test_ansi_mode_keeps_valid_values_and_nulls(df, sql, expected):
    assert df.selectExpr(sql).collect()[0][0] == expected


def test_the_error_names_the_first_offending_value_of_a_column(spark):
    df = spark.createDataFrame([("1",), (None,), ("2",), ("b4d",), ("x",)], "s STRING")
    with pytest.raises(NumberFormatException, match="The value 'b4d' of the type"):
        df.selectExpr("CAST(s AS INT) AS v").collect()


def test_a_streaming_query_fails_with_the_ansi_error_of_its_session(spark, tmp_path):
    stream = MemoryStream("s STRING", spark)
    query = (stream.toDF().selectExpr("CAST(s AS INT) AS v").writeStream.format("noop")
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    stream.addData([("1",), ("oops",)])
    with pytest.raises(Exception, match="CAST_INVALID_INPUT"):
        query.processAllAvailable(30)
    assert "The value 'oops' of the type \"STRING\"" in str(query.exception())
    assert "python_udf" not in str(query.exception())
    query.stop()


def test_a_streaming_query_with_ansi_off_gives_null(spark, tmp_path):
    spark.conf.set("spark.sql.ansi.enabled", "false")
    stream = MemoryStream("s STRING", spark)
    seen: list = []
    query = (stream.toDF().selectExpr("CAST(s AS INT) AS v").writeStream
             .foreachBatch(lambda d, _: seen.extend(r.v for r in d.collect()))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    stream.addData([("1",), ("oops",)])
    query.processAllAvailable(30)
    query.stop()
    assert seen == [1, None]


def _long_stream_query(spark, tmp_path, seen):
    stream = MemoryStream("l LONG", spark)
    query = (stream.toDF().selectExpr("l * 2 AS v", "-l AS n", "abs(l) + 1 AS a").writeStream
             .foreachBatch(lambda d, _: seen.extend(tuple(r) for r in d.collect()))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    return stream, query


def test_a_streaming_task_checks_integral_overflow_without_calling_python(
        spark, tmp_path, monkeypatch):
    calls: list[int] = []
    checked = ansi.checked

    def counted(*args, **kwargs):
        calls.append(1)
        return checked(*args, **kwargs)

    seen: list = []
    stream, query = _long_stream_query(spark, tmp_path, seen)
    monkeypatch.setattr(ansi, "checked", counted)  # after start(): only the tasks' compiles
    try:
        stream.addData([(1,), (-3,), (None,)])
        query.processAllAvailable(30)
    finally:
        query.stop()
    assert seen == [(2, -1, 2), (-6, 3, 4), (None, None, None)]
    assert calls == []


@pytest.mark.parametrize(("value", "hint"), [
    (2**62, "Use 'try_multiply' to tolerate overflow and return NULL instead. "),
    (-(2**63), ""),
])
def test_a_streaming_task_that_overflows_raises_sparks_error(spark, tmp_path, value, hint):
    seen: list = []
    stream, query = _long_stream_query(spark, tmp_path, seen)
    try:
        stream.addData([(1,), (value,)])
        with pytest.raises(Exception, match="ARITHMETIC_OVERFLOW"):
            query.processAllAvailable(30)
        error = query.exception()
    finally:
        query.stop()
    assert f"[ARITHMETIC_OVERFLOW] overflow. {hint}{_BYPASS}22003" in str(error)
    assert "InvalidOperationError" not in str(error)
    assert seen == []


def test_run_checked_reraises_a_polars_error_when_no_check_was_built():
    runs: list[int] = []

    def work() -> None:
        runs.append(1)
        pl.LazyFrame({"s": ["x"]}).select(pl.col("s").cast(pl.Int8, strict=True)).collect()

    with pytest.raises(pl.exceptions.InvalidOperationError):
        ansi.run_checked(work)
    assert runs == [1]
