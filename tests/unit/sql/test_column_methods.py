"""Column.try_cast, isNaN, withField and dropFields: names, types and rows as PySpark 4.3
gives them on the same input (ANSI mode on, Spark 4's default)."""

from __future__ import annotations

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import functions as F


@pytest.fixture
def values(spark):
    rows = [("1.5", 300, 1e20, None), ("99999999999", 5, 2.0, float("nan")),
            ("abc", None, None, 1.0), (" 7 ", 1, 3.5, 2.0)]
    return spark.createDataFrame(rows, "s string, i int, f double, n double")


@pytest.fixture
def structs(spark):
    frame = spark.createDataFrame([(1, "x"), (None, None)], "a int, b string")
    return frame.select(F.when(F.col("a").isNotNull(), F.struct("a", "b")).alias("s"))


def test_try_cast_is_null_where_the_ansi_cast_would_fail(values):
    out = values.select(F.col("s").try_cast("int"), F.col("i").try_cast("tinyint"),
                        F.col("f").try_cast("int"), F.col("s").try_cast("date"),
                        F.col("s").try_cast("double"), (F.col("i") + 1).try_cast("string"))
    assert out.schema.simpleString() == (
        "struct<s:int,i:tinyint,f:int,s:date,s:double,"
        "TRY_CAST((i + 1) AS STRING):string>")
    assert [tuple(r) for r in out.collect()] == [
        (None, None, None, None, 1.5, "301"),
        (None, 5, 2, None, 99999999999.0, "6"),
        (None, None, None, None, None, None),
        (7, 1, 3, None, 7.0, "2")]


def test_is_nan_is_true_only_for_nan(values):
    out = values.select(F.col("n").isNaN())
    assert out.columns == ["isnan(n)"]
    assert [r[0] for r in out.collect()] == [False, True, False, False]


def test_with_field_appends_or_replaces_and_keeps_a_null_struct_null(structs):
    out = structs.select(F.col("s").withField("c", F.lit(1)),
                         F.col("s").withField("a", F.lit("z")).alias("w"))
    assert out.schema.simpleString() == (
        "struct<update_fields(s, WithField(1)):struct<a:int,b:string,c:int>,"
        "w:struct<a:string,b:string>>")
    assert [tuple(r) for r in out.collect()] == [((1, "x", 1), ("z", "x")), (None, None)]


def test_drop_fields_and_chained_updates_fold_into_one_call(structs):
    chained = F.col("s").withField("c", F.lit(1)).withField("a", F.lit(9)).dropFields("b")
    out = structs.select(chained, F.col("s").dropFields("zz").alias("d"))
    assert out.columns == [
        "update_fields(s, WithField(1), WithField(9), dropfield())", "d"]
    assert [tuple(r) for r in out.collect()] == [((9, 1), (1, "x")), (None, None)]


def test_dropping_every_field_is_spark_s_error(structs):
    with pytest.raises(AnalysisException, match="CANNOT_DROP_ALL_FIELDS"):
        structs.select(F.col("s").dropFields("a", "b")).collect()


@pytest.fixture
def nested(spark):
    inner = F.struct(F.lit(1).alias("b"), F.lit(2).alias("c")).alias("a")
    frame = spark.createDataFrame([(1,)], "i int")
    return frame.select(F.struct(inner, F.lit("q").alias("d")).alias("s"))


def test_dotted_names_update_and_drop_fields_of_a_nested_struct(nested):
    s = F.col("s")
    out = nested.select(s.withField("a.e", F.lit(3)), s.withField("a.b", F.lit("z")).alias("r"),
                        s.dropFields("a.b").alias("t"))
    assert out.schema.simpleString() == (
        "struct<update_fields(s, WithField(update_fields(s.a, WithField(3)))):"
        "struct<a:struct<b:int,c:int,e:int>,d:string>,r:struct<a:struct<b:string,c:int>,"
        "d:string>,t:struct<a:struct<c:int>,d:string>>")
    assert [tuple(r) for r in out.collect()] == [
        (((1, 2, 3), "q"), (("z", 2), "q"), ((2,), "q"))]


def test_a_missing_or_non_struct_parent_field_is_spark_s_error(nested):
    with pytest.raises(AnalysisException, match=r"FIELD_NOT_FOUND.*`x` in `a`, `d`"):
        nested.select(F.col("s").withField("x.y", F.lit(3))).collect()
    with pytest.raises(AnalysisException, match=r"FIELD_NOT_FOUND"):
        nested.select(F.col("s").dropFields("x.y")).collect()
    with pytest.raises(AnalysisException, match=r'requires the "STRUCT" type, however "s.d" '
                                                r'has the type "STRING"'):
        nested.select(F.col("s").withField("d.y", F.lit(3))).collect()
