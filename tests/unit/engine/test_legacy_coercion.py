"""Spark's non-ANSI type coercion (spark.sql.ansi.enabled=false) where its result types
differ from ANSI's: casts written into the plan when the DataFrame is built
(engine/legacy_coercion.py, rules in engine/coercion.py), so the schema and the rows
agree. Every expected type and value is PySpark 4.3's for the same query over the same
row (the opt-in oracle, tests/streaming/test_spark_oracle_session_semantics.py, compares
them live).
"""

from __future__ import annotations

import datetime

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import SparkSession
from unbounded.sql import functions as F

NON_ANSI = [
    ("s + i", "double", 3.0),
    ("t + i", "double", 3.5),
    ("s + l", "double", 5.0),
    ("s + d", "double", 3.5),
    ("s * i", "double", 2.0),
    ("s / i", "double", 2.0),
    ("s - s", "double", 0.0),
    ("s % i", "double", 0.0),
    ("-s", "double", -2.0),
    ("s + s", "double", 4.0),
    ("t * t", "double", 6.25),
    ("i = s", "boolean", False),
    ("i < t", "boolean", True),
    ("i = t", "boolean", False),
    ("l = s", "boolean", False),
    ("d = t", "boolean", False),
    ("b = bs", "boolean", True),
    ("x = i", "boolean", None),
    ("s = 2", "boolean", True),
    ("t = 2", "boolean", True),
    ("coalesce(i, s)", "string", "1"),
    ("coalesce(s, i)", "string", "2"),
    ("coalesce(i, x)", "string", "1"),
    ("CASE WHEN b THEN i ELSE s END", "string", "1"),
    ("IF(b, i, t)", "string", "1"),
    ("nvl(i, s)", "string", "1"),
    ("nvl(s, d)", "string", "2"),
    ("array(i, s)", "array<string>", ["1", "2"]),
    ("i IN (s)", "boolean", False),
    ("s IN (1, 2)", "boolean", True),
    ("t IN (2)", "boolean", False),
    ("concat(i, s)", "string", "12"),
    ("i || s", "string", "12"),
    ("abs(s)", "double", 2.0),
    ("sqrt(s)", "double", 1.4142135623730951),
    ("s + 1.5", "double", 3.5),
    ("CAST(1.5 AS DECIMAL(3,1)) + s", "double", 3.5),
    ("s = CAST(2 AS DECIMAL(3,1))", "boolean", True),
    ("ds = DATE '2024-03-05'", "boolean", True),
    ("date_add(ds, 1)", "date", datetime.date(2024, 3, 6)),
    ("i / i", "double", 1.0),
    ("l div i", "bigint", 3),
    ("s > 10", "boolean", False),
    ("t > 10", "boolean", False),
    ("map(i, s)", "map<int,string>", {1: "2"}),
    ("ceil(t)", "bigint", 3),
    ("round(t)", "double", 3.0),
    ("pow(s, 2)", "double", 4.0),
    ("x + 1", "double", None),
    ("nvl2(x, i, s)", "string", "1"),
]

ANSI = [  # the same queries where ANSI's answer differs (Spark 4's default)
    ("s + i", "bigint", 3),
    ("s * i", "bigint", 2),
    ("s % i", "bigint", 0),
    ("coalesce(i, s)", "bigint", 1),
    ("CASE WHEN b THEN i ELSE s END", "bigint", 1),
    ("nvl(s, d)", "double", 2.0),
    ("ds = DATE '2024-03-05'", "boolean", True),
    ("nvl2(x, i, s)", "bigint", 1),
]


@pytest.fixture
def view(spark: SparkSession) -> SparkSession:
    spark.createDataFrame(
        [(1, 3, "2", "2.5", 1.5, True, "true", "2024-03-05", "x")],
        "i int, l bigint, s string, t string, d double, b boolean, bs string, ds string, "
        "x string").createOrReplaceTempView("v")
    return spark


def _answer(spark: SparkSession, expr: str) -> tuple[str, object]:
    df = spark.sql(f"SELECT {expr} AS r FROM v")
    return df.schema["r"].dataType.simpleString(), df.collect()[0][0]


@pytest.mark.parametrize(("expr", "dtype", "value"), NON_ANSI, ids=[c[0] for c in NON_ANSI])
def test_non_ansi_types_and_values_are_sparks(view: SparkSession, expr: str, dtype: str,
                                              value: object) -> None:
    view.conf.set("spark.sql.ansi.enabled", "false")
    assert _answer(view, expr) == (dtype, value)


@pytest.mark.parametrize(("expr", "dtype", "value"), ANSI, ids=[c[0] for c in ANSI])
def test_ansi_types_and_values_are_sparks(view: SparkSession, expr: str, dtype: str,
                                          value: object) -> None:
    assert _answer(view, expr) == (dtype, value)


def test_a_column_that_gained_a_cast_keeps_its_name(spark: SparkSession) -> None:
    spark.conf.set("spark.sql.ansi.enabled", "false")
    df = spark.createDataFrame([(1, "2")], "i int, s string")
    out = df.select(F.col("s") + F.col("i"), F.coalesce("i", "s"))
    assert out.columns == ["(s + i)", "coalesce(i, s)"]
    assert [f.dataType.simpleString() for f in out.schema.fields] == ["double", "string"]
    assert [tuple(r) for r in out.collect()] == [(3.0, "1")]


def test_casts_reach_aggregates_and_filters(spark: SparkSession) -> None:
    spark.conf.set("spark.sql.ansi.enabled", "false")
    df = spark.createDataFrame([("a", "2"), ("a", "x"), ("b", "5")], "k string, s string")
    summed = df.filter(F.col("s") + 1 > 2).groupBy("k").agg(F.sum(F.col("s") * 2).alias("t"))
    assert summed.schema["t"].dataType.simpleString() == "double"
    assert sorted(tuple(r) for r in summed.collect()) == [("a", 4.0), ("b", 10.0)]


@pytest.mark.parametrize("expr", ["s + s", "s - s", "t * t"])
def test_ansi_arithmetic_between_two_strings_is_rejected_as_spark(view: SparkSession,
                                                                    expr: str) -> None:
    rows = view.sql("SELECT * FROM v")
    with pytest.raises(AnalysisException) as raised:
        rows.selectExpr(expr)  # at the call, as PySpark's eager analysis
    assert raised.value.error_class == "DATATYPE_MISMATCH.BINARY_OP_WRONG_TYPE"
    assert str(raised.value).startswith(
        f'[DATATYPE_MISMATCH.BINARY_OP_WRONG_TYPE] Cannot resolve "({expr})" due to data '
        'type mismatch: the binary operator requires the input type ("NUMERIC"')


@pytest.mark.parametrize("ansi", ["true", "false"])
@pytest.mark.parametrize(("expr", "error_class", "types"), [
    ("i + b", "BINARY_OP_DIFF_TYPES", '("INT" and "BOOLEAN")'),
    ("b * d", "BINARY_OP_DIFF_TYPES", '("BOOLEAN" and "DOUBLE")'),
    ("b - b", "BINARY_OP_WRONG_TYPE", 'not "BOOLEAN"'),
])
def test_arithmetic_on_booleans_is_rejected_in_both_modes_as_spark(
        view: SparkSession, ansi: str, expr: str, error_class: str, types: str) -> None:
    view.conf.set("spark.sql.ansi.enabled", ansi)
    rows = view.sql("SELECT * FROM v")
    with pytest.raises(AnalysisException) as raised:
        rows.selectExpr(expr)
    assert raised.value.error_class == f"DATATYPE_MISMATCH.{error_class}"
    assert f'Cannot resolve "({expr})" due to data type mismatch' in str(raised.value)
    assert types in str(raised.value)
