"""Generators, maps, digests, max_by/min_by, percentile_approx and friends: PySpark 4's
values and column names, from Python and from SQL strings."""

from __future__ import annotations

import hashlib
import zlib

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import Row
from unbounded.sql import functions as F
from unbounded.sql.types import IntegerType, LongType, StringType


@pytest.fixture
def nested(spark):
    return spark.createDataFrame(
        [(1, [1, 2], {"x": 1}), (2, [], None), (3, None, {"y": 2, "z": 3})],
        "id int, a array<int>, m map<string,int>")


def test_explode_drops_empty_and_null_arrays_and_names_the_column_col(nested):
    out = nested.select("id", F.explode("a"))
    assert out.columns == ["id", "col"]
    assert out.collect() == [Row(id=1, col=1), Row(id=1, col=2)]


def test_explode_outer_keeps_a_null_row_for_empty_and_null(nested):
    assert [tuple(r) for r in nested.select("id", F.explode_outer("a")).collect()] == [
        (1, 1), (1, 2), (2, None), (3, None)]


def test_posexplode_gives_pos_and_col(nested):
    out = nested.select("id", F.posexplode("a"))
    assert out.columns == ["id", "pos", "col"]
    assert [tuple(r) for r in out.collect()] == [(1, 0, 1), (1, 1, 2)]
    assert out.schema["pos"].dataType == IntegerType()


def test_exploding_a_map_gives_key_and_value(nested):
    out = nested.select("id", F.explode("m"))
    assert out.columns == ["id", "key", "value"]
    assert [tuple(r) for r in out.collect()] == [(1, "x", 1), (3, "y", 2), (3, "z", 3)]
    pos = nested.select("id", F.posexplode_outer("m"))
    assert [tuple(r) for r in pos.collect()] == [
        (1, 0, "x", 1), (2, None, None, None), (3, 0, "y", 2), (3, 1, "z", 3)]


def test_explode_from_sql_and_with_an_alias(nested):
    assert [tuple(r) for r in nested.selectExpr("id", "explode(a) AS n").collect()] == [
        (1, 1), (1, 2)]
    assert nested.withColumn("n", F.explode("a")).columns == ["id", "a", "m", "n"]
    assert nested.select(F.expr("posexplode(a)")).columns == ["pos", "col"]


def test_two_generators_in_one_select_are_rejected(nested):
    with pytest.raises(AnalysisException, match="MULTI_GENERATOR"):
        nested.select(F.explode("a"), F.explode("m")).collect()


def test_explode_runs_in_a_streaming_query(spark):
    from unbounded.testing import MemoryStream

    stream = MemoryStream("id int, a array<int>", spark)
    query = stream.toDF().select("id", F.explode("a").alias("v")).writeStream \
        .format("memory").queryName("exploded").start()
    stream.addData([(1, [5, 6]), (2, [])])
    query.processAllAvailable()
    query.stop()
    assert sorted(tuple(r) for r in spark.table("exploded").collect()) == [(1, 5), (1, 6)]


def test_map_functions(nested):
    out = nested.select(F.map_keys("m"), F.map_values("m"),
                        F.create_map(F.lit("k"), "id").alias("made"))
    assert out.columns == ["map_keys(m)", "map_values(m)", "made"]
    assert [tuple(r) for r in out.collect()] == [
        (["x"], [1], {"k": 1}), (None, None, {"k": 2}), (["y", "z"], [2, 3], {"k": 3})]
    assert nested.select(F.create_map(F.lit("k"), "id")).columns == ["map(k, id)"]
    assert nested.selectExpr("map_keys(map('a', id))").collect()[0][0] == ["a"]


def test_json_tuple_reads_fields_as_strings(spark):
    df = spark.createDataFrame([('{"a": 1, "b": "x"}',), ('{"b": true}',), (None,)], "s string")
    out = df.select(F.json_tuple("s", "a", "b"))
    assert out.columns == ["c0", "c1"]
    assert [tuple(r) for r in out.collect()] == [("1", "x"), (None, "true"), (None, None)]


def test_digests_match_python_hashlib(spark):
    df = spark.createDataFrame([("Spark",), (None,)], "s string")
    out = df.select(F.md5("s"), F.sha1("s"), F.sha2("s", 256), F.sha2("s", 512),
                    F.sha2("s", 7).alias("bad"), F.crc32("s"))
    assert out.columns[:3] == ["md5(s)", "sha1(s)", "sha2(s, 256)"]
    assert out.columns[5] == "crc32(s)"
    data = b"Spark"
    assert tuple(out.collect()[0]) == (
        hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(),
        hashlib.sha256(data).hexdigest(), hashlib.sha512(data).hexdigest(), None,
        zlib.crc32(data))
    assert tuple(out.collect()[1]) == (None,) * 6
    assert out.schema["crc32(s)"].dataType == LongType()
    assert df.selectExpr("sha2(s, 224)").collect()[0][0] == hashlib.sha224(data).hexdigest()


def test_nvl_ifnull_coalesce_greatest_least(spark):
    df = spark.createDataFrame([(None, 2), (3, None)], "a int, b int")
    out = df.select(F.nvl("a", "b"), F.ifnull("a", F.lit(0)), F.coalesce("a", "b"),
                    F.greatest("a", "b"), F.least("a", "b"))
    assert out.columns == ["nvl(a, b)", "ifnull(a, 0)", "coalesce(a, b)", "greatest(a, b)",
                           "least(a, b)"]
    assert [tuple(r) for r in out.collect()] == [(2, 0, 2, 2, 2), (3, 3, 3, 3, 3)]


def test_split_with_a_limit_and_regexp_functions(spark):
    df = spark.createDataFrame([("a1b22c",), (None,)], "s string")
    out = df.select(F.split("s", "[0-9]+", 2), F.split("s", "[0-9]+"),
                    F.regexp_extract("s", r"(\d+)c", 1), F.regexp_extract("s", "(z)", 1),
                    F.regexp_replace("s", "[0-9]", "#"))
    assert out.columns[0] == "split(s, [0-9]+, 2)"
    assert tuple(out.collect()[0]) == (["a", "b22c"], ["a", "b", "c"], "22", "", "a#b##c")
    assert tuple(out.collect()[1]) == (None, None, None, None, None)



def test_split_limits_one_and_above_two_keep_spark_values_and_nulls(spark):
    df = spark.createDataFrame([("a1b22c3d",), (None,)], "s string")
    out = df.select(F.split("s", "[0-9]+", 1), F.split("s", "[0-9]+", 3),
                    F.split("s", "[0-9]+", 10), F.split("s", "2", 3))
    assert tuple(out.collect()[0]) == (["a1b22c3d"], ["a", "b", "c3d"], ["a", "b", "c", "d"],
                                       ["a1b", "", "c3d"])
    assert tuple(out.collect()[1]) == (None, None, None, None)

def test_max_by_min_by_skip_null_orderings(spark):
    df = spark.createDataFrame([("k", "x", 1), ("k", "y", 3), ("k", "z", None), ("j", "w", None)],
                               "g string, name string, o int")
    out = df.groupBy("g").agg(F.max_by("name", "o"), F.min_by("name", "o"))
    assert out.columns == ["g", "max_by(name, o)", "min_by(name, o)"]
    assert sorted(tuple(r) for r in out.collect()) == [("j", None, None), ("k", "y", "x")]
    assert out.schema["max_by(name, o)"].dataType == StringType()


def test_percentile_approx_returns_an_input_value(spark):
    df = spark.createDataFrame([(v,) for v in [5, 1, 4, 2, 3, None]], "v int")
    out = df.agg(F.percentile_approx("v", 0.5).alias("med"),
                 F.percentile_approx("v", [0.0, 0.25, 1.0]).alias("qs"))
    assert tuple(out.collect()[0]) == (3, [1, 2, 5])
    assert df.agg(F.percentile_approx("v", 0.5)).columns == ["percentile_approx(v, 0.5, 10000)"]
    sql = df.agg(F.expr("percentile_approx(v, 0.8) AS p")).collect()
    assert sql == [Row(p=4)]


def test_date_functions_from_python_and_sql(spark):
    import datetime as dt

    df = spark.createDataFrame([(dt.datetime(2024, 3, 5, 13, 45, 10),)], "ts timestamp")
    out = df.select(F.date_trunc("hour", "ts"), F.date_format("ts", "yyyy-MM-dd HH:mm"),
                    F.unix_timestamp("ts"), F.from_unixtime(F.lit(0)))
    assert out.columns == ["date_trunc(hour, ts)", "date_format(ts, yyyy-MM-dd HH:mm)",
                           "unix_timestamp(ts, yyyy-MM-dd HH:mm:ss)",
                           "from_unixtime(0, yyyy-MM-dd HH:mm:ss)"]
    assert tuple(out.collect()[0]) == (dt.datetime(2024, 3, 5, 13), "2024-03-05 13:45",
                                       1709646310, "1970-01-01 00:00:00")
