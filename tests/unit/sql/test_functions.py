"""Column operators and ``unbounded.sql.functions``: values and column names as in PySpark."""

from __future__ import annotations

import datetime as dt

import pytest

from unbounded.sql import Row
from unbounded.sql import functions as F
from unbounded.sql.types import IntegerType, LongType, StringType, StructField, StructType

UTC = None  # collect() returns naive local datetimes, as PySpark does


@pytest.fixture
def df(spark):
    return spark.createDataFrame(
        [(1, "alice", 2.5), (2, "bob", None), (3, None, 7.0)],
        "id LONG, name STRING, score DOUBLE")


def values(df, *cols):
    """Each column's values, evaluated one at a time (Spark allows duplicate names)."""
    return [[r[0] for r in df.select(c).collect()] for c in cols]


def names(df, *cols):
    return df.select(*cols).columns


def test_arithmetic_operators_and_their_names(df):
    c = F.col("id")
    cols = [c + 1, c - 1, c * 2, c / 2, c % 2, -c, 10 - c, 2 * c, c ** 2, 2 ** c]
    assert values(df, *cols) == [[2, 3, 4], [0, 1, 2], [2, 4, 6], [0.5, 1.0, 1.5],
                                 [1, 0, 1], [-1, -2, -3], [9, 8, 7], [2, 4, 6],
                                 [1.0, 4.0, 9.0], [2.0, 4.0, 8.0]]
    assert names(df, c + 1, c / 2, c % 2, -c, c ** 2) == [
        "(id + 1)", "(id / 2)", "(id % 2)", "(- id)", "POWER(id, 2)"]


def test_division_by_zero_is_null_and_remainder_takes_the_dividends_sign(spark):
    spark.conf.set("spark.sql.ansi.enabled", "false")  # ANSI: tests/unit/engine/test_ansi.py
    df = spark.createDataFrame([(-7, 3), (7, -3), (1, 0)], "a INT, b INT")
    assert values(df, F.col("a") / F.col("b"), F.col("a") % F.col("b")) == [
        [-7 / 3, 7 / -3, None], [-1, 1, None]]


def test_comparison_operators(df):
    c = F.col("id")
    assert values(df, c == 2, c != 2, c < 2, c <= 2, c > 2, c >= 2) == [
        [False, True, False], [True, False, True], [True, False, False],
        [True, True, False], [False, False, True], [False, True, True]]
    assert names(df, c == 2, c != 2, c >= 2) == ["(id = 2)", "(id != 2)", "(id >= 2)"]


def test_boolean_operators_follow_sql_three_valued_logic(df):
    big = F.col("score") > 3
    assert values(df, big & (F.col("id") > 0), big | (F.col("id") == 2), ~big) == [
        [False, None, True], [False, True, True], [True, None, False]]
    assert names(df, (F.col("id") > 1) & F.col("name").isNull(), ~(F.col("id") == 1)) == [
        "((id > 1) AND (name IS NULL))", "(NOT (id = 1))"]
    with pytest.raises(ValueError, match="Cannot convert column into bool"):
        bool(F.col("id") > 1)


def test_cast_converts_with_sparks_non_ansi_rules(spark):
    spark.conf.set("spark.sql.ansi.enabled", "false")
    df = spark.createDataFrame([("12", 2.7, 1, True), ("x", -2.7, 0, False)],
                               "s STRING, d DOUBLE, i INT, b BOOLEAN")
    assert values(df, F.col("s").cast("int"), F.col("d").cast(IntegerType()),
                  F.col("i").cast("string"), F.col("b").cast("string"),
                  F.col("d").cast("string"), F.col("i").cast("boolean")) == [
        [12, None], [2, -2], ["1", "0"], ["true", "false"], ["2.7", "-2.7"], [True, False]]
    assert names(df, F.col("s").cast("int"), F.col("i").cast(StringType())) == [
        "CAST(s AS INT)", "CAST(i AS STRING)"]


def test_alias_is_null_is_not_null_and_isin(df):
    assert names(df, F.col("id").alias("key")) == ["key"]
    assert values(df, F.col("name").isNull(), F.col("name").isNotNull(),
                  F.col("id").isin(1, 3), F.col("id").isin([2])) == [
        [False, False, True], [True, True, False], [True, False, True], [False, True, False]]
    assert names(df, F.col("name").isNull(), F.col("id").isin(1, 3)) == [
        "(name IS NULL)", "(id IN (1, 3))"]


def test_like_and_substr(df):
    assert values(df, F.col("name").like("a%"), F.col("name").like("_o_"),
                  F.col("name").substr(1, 3), F.col("name").substr(2, 2)) == [
        [True, False, None], [False, True, None], ["ali", "bob", None], ["li", "ob", None]]
    assert names(df, F.col("name").like("a%"), F.col("name").substr(1, 3)) == [
        "name LIKE a%", "substring(name, 1, 3)"]


def test_when_otherwise_chains_and_defaults_to_null(df):
    c = F.col("id")
    chained = F.when(c == 1, "one").when(c == 2, "two").otherwise("many")
    assert values(df, chained, F.when(c == 1, "one")) == [
        ["one", "two", "many"], ["one", None, None]]
    assert names(df, chained) == ["CASE WHEN (id = 1) THEN one WHEN (id = 2) THEN two "
                                  "ELSE many END"]
    with pytest.raises(ValueError, match="otherwise"):
        chained.otherwise("again")


def test_struct_and_get_field(df):
    nested = df.select(F.struct("id", "name").alias("s"))
    assert nested.schema == StructType([StructField("s", StructType(
        [StructField("id", LongType()), StructField("name", StringType())]))])
    assert nested.collect()[0] == Row(s=Row(id=1, name="alice"))
    out = nested.select(F.col("s").getField("name"), F.col("s.id"))
    assert out.columns == ["s.name", "id"]
    assert [tuple(r) for r in out.collect()] == [("alice", 1), ("bob", 2), (None, 3)]
    assert names(df, F.struct("id", "name")) == ["struct(id, name)"]


def test_col_lit_and_expr(df):
    assert values(df, F.lit(1), F.lit("a"), F.lit(None), F.lit(2.5), F.lit(True)) == [
        [1, 1, 1], ["a", "a", "a"], [None, None, None], [2.5, 2.5, 2.5],
        [True, True, True]]
    assert names(df, F.lit(1), F.lit("a"), F.lit(None), F.lit(True)) == [
        "1", "a", "NULL", "true"]
    assert df.select(F.lit(1)).schema["1"].dataType == IntegerType()
    assert values(df, F.expr("id * 10 + 1"), F.expr("coalesce(name, 'none')")) == [
        [11, 21, 31], ["alice", "bob", "none"]]
    assert names(df, F.expr("id + 1"), F.expr("upper(name) AS u")) == ["(id + 1)", "u"]


def test_string_functions(df):
    assert values(df, F.coalesce("name", F.lit("?")), F.concat("name", F.lit("-"), "id"),
                  F.upper("name"), F.lower(F.lit("AbC")), F.length("name")) == [
        ["alice", "bob", "?"], ["alice-1", "bob-2", None], ["ALICE", "BOB", None],
        ["abc", "abc", "abc"], [5, 3, None]]
    assert names(df, F.coalesce("name", F.lit("?")), F.concat("name", F.lit("-"), "id"),
                 F.upper("name"), F.length("name")) == [
        "coalesce(name, ?)", "concat(name, -, id)", "upper(name)", "length(name)"]


def test_split_takes_a_regex_and_an_optional_limit(spark):
    df = spark.createDataFrame([("a,b,c", "a1b22c", "x.y")], "s STRING, t STRING, u STRING")
    assert values(df, F.split("s", ","), F.split("t", "[0-9]+"), F.split("s", ",", 2),
                  F.split("u", "\\.")) == [
        [["a", "b", "c"]], [["a", "b", "c"]], [["a", "b,c"]], [["x", "y"]]]
    assert names(df, F.split("s", ",")) == ["split(s, ,, -1)"]


def test_from_json_parses_structs_and_malformed_records_give_null_fields(spark):
    df = spark.createDataFrame(
        [('{"a": 1, "b": {"c": "x"}}',), ('{"a": "oops", "b": {"c": "y"}}',), ("bad",),
         (None,)], "j STRING")
    parsed = df.select(F.from_json("j", "a INT, b STRUCT<c: STRING>").alias("p"))
    assert parsed.schema.simpleString() == "struct<p:struct<a:int,b:struct<c:string>>>"
    assert [r.p for r in parsed.collect()] == [
        Row(a=1, b=Row(c="x")), Row(a=None, b=Row(c="y")), Row(a=None, b=None), None]
    assert names(df, F.from_json("j", "a INT")) == ["from_json(j)"]


def test_from_json_into_a_map_keeps_nested_values_as_json_text(spark):
    df = spark.createDataFrame([('{"a": 1, "b": {"c": "x"}, "d": "s"}',)], "j STRING")
    [row] = df.select(F.from_json("j", "MAP<STRING, STRING>").alias("m")).collect()
    assert row.m == {"a": "1", "b": '{"c":"x"}', "d": "s"}


def test_to_json_leaves_out_null_fields(spark):
    df = spark.createDataFrame([(1, "a", None, 2.5, True, [1, 2])],
                               "i INT, s STRING, n STRING, d DOUBLE, b BOOLEAN, arr ARRAY<INT>")
    out = df.select(F.to_json(F.struct("i", "s", "n", "d", "b", "arr")).alias("j"))
    assert out.collect() == [Row(j='{"i":1,"s":"a","d":2.5,"b":true,"arr":[1,2]}')]
    assert names(df, F.to_json(F.struct("i"))) == ["to_json(struct(i))"]


def test_get_json_object_extracts_scalars_objects_and_array_items(spark):
    df = spark.createDataFrame([('{"a": 1, "b": {"c": "x"}, "arr": [10, 20]}',), ("{}",)],
                               "j STRING")
    assert values(df, F.get_json_object("j", "$.a"), F.get_json_object("j", "$.b.c"),
                  F.get_json_object("j", "$.b"), F.get_json_object("j", "$.arr[1]")) == [
        ["1", None], ["x", None], ['{"c":"x"}', None], ["20", None]]
    assert names(df, F.get_json_object("j", "$.a")) == ["get_json_object(j, $.a)"]


def test_timestamps_parse_convert_and_format(spark):
    df = spark.createDataFrame([("2024-01-02 03:04:05", "02/01/2024", 1700000000)],
                               "s STRING, d STRING, e LONG")
    [row] = df.select(
        F.to_timestamp("s").alias("a"), F.to_timestamp("d", "dd/MM/yyyy").alias("b"),
        F.timestamp_seconds("e").alias("c"),
        F.date_format(F.to_timestamp("s"), "yyyy-MM-dd HH:mm").alias("f"),
        F.date_format("s", "dd.MM.yy").alias("g")).collect()
    assert row == Row(a=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                      b=dt.datetime(2024, 1, 2, tzinfo=UTC),
                      c=dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
                      f="2024-01-02 03:04", g="02.01.24")
    assert names(df, F.to_timestamp("s"), F.to_timestamp("d", "dd/MM/yyyy"),
                 F.timestamp_seconds("e"), F.date_format("s", "yyyy")) == [
        "to_timestamp(s)", "to_timestamp(d, dd/MM/yyyy)", "timestamp_seconds(e)",
        "date_format(s, yyyy)"]


def test_current_timestamp_is_one_value_for_the_whole_query(df):
    out = df.select(F.current_timestamp().alias("now"), "id")
    assert out.columns == ["now", "id"]
    stamps = {r.now for r in out.collect()}
    assert len(stamps) == 1
    [stamp] = stamps
    now_utc = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # session time zone: UTC
    assert abs((now_utc - stamp).total_seconds()) < 60
    assert names(df, F.current_timestamp()) == ["current_timestamp()"]


def test_hash_is_sparks_murmur3_with_seed_42(spark):
    df = spark.createDataFrame(
        [(1, 1, "Spark", 1.0, True), (0, 0, "", 0.0, False), (-1, -1, None, None, None)],
        "i INT, l LONG, s STRING, d DOUBLE, b BOOLEAN")
    # Spark: SELECT hash(1) = -559580957, hash(1L) = -1712319331, hash('Spark') = 228093765
    assert values(df, F.hash("i"), F.hash("l"), F.hash("s"), F.hash("d"), F.hash("b")) == [
        [-559580957, 933211791, -1604776387], [-1712319331, -1670924195, -939490007],
        [228093765, 142593372, 42], [-460888942, -1670924195, 42],
        [-559580957, 933211791, 42]]
    # several columns chain the seed; a NULL leaves it unchanged
    assert values(df, F.hash("s", "i")) == [[205329825, 1143746540, -1604776387]]
    assert names(df, F.hash("i", "s")) == ["hash(i, s)"]
    assert df.select(F.hash("i")).schema["hash(i)"].dataType == IntegerType()
    assert values(df, F.expr("hash(i)")) == values(df, F.hash("i"))
