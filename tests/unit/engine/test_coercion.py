"""Spark's implicit casts (engine/coercion.py) and ANSI sum overflow (engine/ansi.py).

Every expected value is PySpark 4.3's for the same call (local[1], run by hand with
``spark.sql.ansi.enabled`` true and false).
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from unbounded.errors import (
    AnalysisException,
    ArithmeticException,
    DateTimeException,
    NumberFormatException,
)
from unbounded.sql import functions as F

MAX = 2**63 - 1
_OVERFLOW = ("[ARITHMETIC_OVERFLOW] overflow. Use 'try_add' to tolerate overflow and return "
             'NULL instead. If necessary set "spark.sql.ansi.enabled" to "false" to bypass '
             "this error. SQLSTATE: 22003")


@pytest.fixture
def df(spark):
    return spark.createDataFrame(
        [(1, "2", 2.5, "a1", "2024-03-05"), (12, "x", -3.0, None, "bad")],
        "i int, s string, d double, t string, ds string")


@pytest.fixture
def one(spark):
    return spark.createDataFrame([(1, "1.5", "1.0", 2.0, "2024-03-05")],
                                 "i int, s string, t string, d double, ds string")


def _ansi(spark, on: bool) -> None:
    spark.conf.set("spark.sql.ansi.enabled", "true" if on else "false")


def _column(frame, column) -> list:
    return [r[0] for r in frame.select(column.alias("r")).collect()]


def _type(frame, column) -> str:
    return frame.select(column.alias("r")).schema["r"].dataType.simpleString()


# ---- string functions take numbers ---------------------------------------------------
@pytest.mark.parametrize("ansi", [True, False])
@pytest.mark.parametrize(("make", "expected"), [
    (lambda: F.upper("i"), ["1", "12"]),
    (lambda: F.lower("d"), ["2.5", "-3.0"]),
    (lambda: F.initcap("d"), ["2.5", "-3.0"]),
    (lambda: F.substring("i", 1, 1), ["1", "1"]),
    (lambda: F.trim("i"), ["1", "12"]),
    (lambda: F.reverse("i"), ["1", "21"]),
    (lambda: F.lpad("i", 4, "0"), ["0001", "0012"]),
    (lambda: F.regexp_replace("i", "1", "z"), ["z", "z2"]),
    (lambda: F.split("i", "2"), [["1"], ["1", ""]]),
    (lambda: F.instr("i", "2"), [0, 2]),
    (lambda: F.col("i").startswith("1"), [True, True]),
    (lambda: F.col("d").contains("5"), [True, False]),
])
def test_string_functions_cast_numbers_to_string(spark, df, ansi, make, expected):
    _ansi(spark, ansi)
    assert _column(df, make()) == expected


def test_string_functions_cast_dates_and_booleans_as_spark_prints_them(spark, one):
    assert _column(one, F.upper(F.to_date("ds"))) == ["2024-03-05"]
    assert _column(one, F.upper(F.lit(True))) == ["TRUE"]


# ---- numeric functions take numeric strings ------------------------------------------
@pytest.mark.parametrize("make", [lambda: F.sqrt("s"), lambda: F.abs("s"),
                                  lambda: F.round("s"), lambda: F.exp("s"),
                                  lambda: F.isnan("s")])
def test_numeric_functions_on_a_malformed_string_fail_under_ansi(spark, df, make):
    with pytest.raises(NumberFormatException, match=r"\[CAST_INVALID_INPUT\] The value 'x' "
                       r'of the type "STRING" cannot be cast to "DOUBLE"'):
        df.select(make()).collect()


def test_numeric_functions_cast_strings_to_double_without_ansi(spark, df):
    _ansi(spark, False)
    assert _column(df, F.sqrt("s")) == [pytest.approx(1.4142135623730951), None]
    assert _column(df, F.abs("s")) == [2.0, None]
    assert _column(df, F.round("s")) == [2.0, None]
    assert _column(df, F.exp("s")) == [pytest.approx(7.38905609893065), None]
    assert _column(df, F.isnan("s")) == [False, False]


@pytest.mark.parametrize("ansi", [True, False])
def test_numeric_functions_on_numeric_strings(spark, one, ansi):
    _ansi(spark, ansi)
    assert _column(one, F.floor("t")) == [1]
    assert _column(one, F.ceil("s")) == [2]
    assert _column(one, F.log("s")) == [pytest.approx(0.4054651081081644)]
    assert _column(one, -F.col("s")) == [-1.5]


@pytest.mark.parametrize("ansi", [True, False])
def test_date_functions_cast_strings_to_dates(spark, one, ansi):
    _ansi(spark, ansi)
    assert _column(one, F.year("ds")) == [2024]
    assert _column(one, F.date_add("ds", 1)) == [date(2024, 3, 6)]
    assert _column(one, F.hour("ds")) == [0]
    assert _column(one, F.datediff("ds", "ds")) == [0]
    assert _column(one, F.date_trunc("month", "ds")) == [datetime(2024, 3, 1)]


def test_date_functions_on_a_malformed_string(spark, df):
    with pytest.raises(DateTimeException, match=r"The value 'bad' of the type \"STRING\" "
                       r'cannot be cast to "DATE"'):
        df.select(F.year("ds")).collect()
    _ansi(spark, False)
    assert _column(df, F.year("ds")) == [2024, None]


# ---- operators between strings and numbers -------------------------------------------
def test_ansi_arithmetic_with_an_integral_number_is_bigint(spark, df):
    assert _column(df.filter("i = 1"), F.col("s") + 1) == [3]
    assert _type(df, F.col("s") + 1) == "bigint"
    assert _column(df, F.col("i") + F.lit("1")) == [2, 13]
    assert _column(df.filter("i = 1"), F.col("s") * F.col("d")) == [5.0]
    with pytest.raises(NumberFormatException, match=r"The value 'x' of the type \"STRING\" "
                       r'cannot be cast to "BIGINT"'):
        df.select(F.col("s") + 1).collect()


def test_ansi_arithmetic_and_comparison_reject_a_fraction_for_an_integral_number(spark, one):
    for column in (F.col("s") + F.col("i"), F.col("s") == 1, F.col("t").isin(1, 2)):
        with pytest.raises(NumberFormatException, match="cannot be cast to \"BIGINT\""):
            one.select(column).collect()
    assert _column(one, F.col("s") == 1.5) == [True]


def test_arithmetic_without_ansi_computes_in_double_and_gives_null(spark, df, one):
    """Spark's non-ANSI rules cast the string to double, and the schema says so."""
    _ansi(spark, False)
    assert _column(df, F.col("s") + 1) == [3.0, None]
    assert _type(df, F.col("s") + 1) == "double"
    assert _column(df, F.col("s") * F.col("d")) == [5.0, None]
    assert _column(one, F.col("s") / F.col("d")) == [0.75]


@pytest.mark.parametrize("ansi", [True, False])
def test_comparisons_between_strings_and_numbers(spark, df, ansi):
    _ansi(spark, ansi)
    assert _column(df, F.col("i") == F.lit("12")) == [False, True]
    assert _column(df, F.col("d") < "3") == [True, True]
    assert _column(df, F.col("i").isin("1", "3")) == [True, False]


def test_comparisons_without_ansi_cast_the_string_to_the_number(spark, df, one):
    _ansi(spark, False)
    assert _column(df, F.col("s") == 2) == [True, None]
    assert _column(df, F.col("s") > 1) == [True, None]
    assert _column(df, F.col("i") == F.col("s")) == [False, None]
    assert _column(one, F.col("s") == 1) == [True]  # '1.5' as an int is 1
    assert _column(one, F.col("t").isin(1, 2)) == [False]  # IN compares as strings


# ---- aggregates ----------------------------------------------------------------------
def test_sum_and_avg_of_strings_are_doubles(spark):
    frame = spark.createDataFrame([("2",), ("x",)], "s string")
    with pytest.raises(NumberFormatException, match="The value 'x'"):
        frame.agg(F.sum("s")).collect()
    _ansi(spark, False)
    assert [tuple(r) for r in frame.agg(F.sum("s"), F.avg("s")).collect()] == [(2.0, 2.0)]


@pytest.fixture
def big(spark):
    return spark.createDataFrame([(1, MAX), (1, 1), (2, 5)], "k int, v bigint")


@pytest.mark.parametrize("query", [
    lambda b: b.groupBy("k").agg(F.sum("v")),
    lambda b: b.agg(F.sum("v")),
    lambda b: b.agg(F.sum_distinct("v")),
])
def test_ansi_bigint_sum_overflow_raises_arithmetic_overflow(spark, big, query):
    with pytest.raises(ArithmeticException) as raised:
        query(big).collect()
    assert str(raised.value) == _OVERFLOW
    assert raised.value.error_class == "ARITHMETIC_OVERFLOW"


def test_sum_without_ansi_wraps_as_spark(spark, big):
    _ansi(spark, False)
    assert [tuple(r) for r in big.groupBy("k").agg(F.sum("v")).orderBy("k").collect()] \
        == [(1, -(2**63)), (2, 5)]
    assert big.agg(F.sum("v")).collect()[0][0] == -9223372036854775803


def test_sums_in_range_and_int_sums_are_unchanged_under_ansi(spark, big):
    assert [tuple(r) for r in big.filter("v < 10").groupBy("k").agg(F.sum("v"))
            .orderBy("k").collect()] == [(1, 1), (2, 5)]
    ints = spark.createDataFrame([(2**31 - 1,), (2**31 - 1,)], "v int")
    assert ints.agg(F.sum("v")).collect()[0][0] == 4294967294
    empty = big.filter("v > 10 and v < 0")
    assert empty.agg(F.sum("v")).collect()[0][0] is None


# ---- values of one common type -------------------------------------------------------
@pytest.fixture
def mixed(spark):
    return spark.createDataFrame([(1, "2", 2.5), (12, "x", -3.0), (None, "7", None)],
                                 "i int, s string, d double")


def test_coalesce_and_case_take_bigint_and_check_only_the_strings_they_return(spark, mixed):
    assert _column(mixed, F.coalesce("i", "s")) == [1, 12, 7]
    assert _type(mixed, F.coalesce("i", "s")) == "bigint"
    assert _column(mixed, F.nvl("i", "s")) == [1, 12, 7]
    assert _column(mixed, F.coalesce("d", "s")) == [2.5, -3.0, 7.0]
    case = F.when(F.col("i") > 1, F.col("i")).otherwise(F.col("s"))
    assert _column(mixed, case) == [2, 12, 7]
    assert _type(mixed, case) == "bigint"


def test_a_returned_malformed_string_fails_under_ansi_and_is_null_without(spark, mixed):
    with pytest.raises(NumberFormatException, match="The value 'x'"):
        mixed.select(F.when(F.col("i") > 1, F.col("s")).otherwise(F.col("i"))).collect()
    _ansi(spark, False)
    # Non-ANSI: a CASE mixing strings and numbers is a string (Spark's stringPromotion).
    assert _column(mixed, F.when(F.col("i") > 1, F.col("s")).otherwise(F.col("i"))) \
        == ["1", "x", None]


@pytest.mark.parametrize("ansi", [True, False])
def test_greatest_and_least_of_strings_and_numbers_fail_analysis_in_both_modes(
        spark, mixed, ansi):
    """PySpark 4.3 (both modes): no string promotion for greatest/least."""
    _ansi(spark, ansi)
    with pytest.raises(AnalysisException) as raised:
        mixed.select(F.greatest("i", "s"))
    assert str(raised.value) == (
        '[DATATYPE_MISMATCH.DATA_DIFF_TYPES] Cannot resolve "greatest(i, s)" due to data '
        "type mismatch: Input to `greatest` should all be the same type, but it's "
        '["INT", "STRING"]. SQLSTATE: 42K09')
    with pytest.raises(AnalysisException, match=r'DATA_DIFF_TYPES.*\["STRING", "DOUBLE"\]'):
        mixed.select(F.least("s", "d"))
    assert _column(mixed, F.greatest("i", "d")) == [2.5, 12.0, None]


def test_array_of_strings_and_numbers_is_numeric_under_ansi_and_string_without(spark):
    """PySpark 4.3: array(1, '2') is array<bigint> [1, 2] (array(1, 2.5D, '3')
    array<double>), array(1, 'a') fails at run time with CAST_INVALID_INPUT; with ANSI
    off both are array<string>."""
    for sql, kind, value in [("array(1, '2')", "array<bigint>", [1, 2]),
                             ("array('2', 1)", "array<bigint>", [2, 1]),
                             ("array(1, 2.5D, '3')", "array<double>", [1.0, 2.5, 3.0])]:
        df = spark.sql(f"SELECT {sql} AS r")
        assert (df.schema["r"].dataType.simpleString(), df.collect()[0].r) == (kind, value)
    with pytest.raises(NumberFormatException, match=r"CAST_INVALID_INPUT.*'a'.*BIGINT"):
        spark.sql("SELECT array(1, 'a') AS r").collect()
    _ansi(spark, False)
    df = spark.sql("SELECT array(1, 'a', NULL) AS r")
    assert (df.schema["r"].dataType.simpleString(), df.collect()[0].r) == (
        "array<string>", ["1", "a", None])
