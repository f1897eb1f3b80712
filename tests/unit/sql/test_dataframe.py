"""DataFrame transformations and batch actions, with the values PySpark returns."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import Row
from unbounded.sql import functions as F
from unbounded.sql.types import DoubleType, LongType, StringType, StructField, StructType
from unbounded.testing import MemoryStream


@pytest.fixture
def people(spark):
    return spark.createDataFrame(
        [(1, "alice", 2.5), (2, "bob", None), (3, None, 7.0)],
        "id LONG, name STRING, score DOUBLE")


def rows(df):
    return [tuple(r) for r in df.collect()]


def test_schema_columns_dtypes_and_repr(people):
    assert people.schema == StructType([StructField("id", LongType()),
                                        StructField("name", StringType()),
                                        StructField("score", DoubleType())])
    assert people.columns == ["id", "name", "score"]
    assert people.dtypes == [("id", "bigint"), ("name", "string"), ("score", "double")]
    assert repr(people) == "DataFrame[id: bigint, name: string, score: double]"
    assert people.isStreaming is False


def test_select_by_name_column_and_expression(people):
    out = people.select("id", (F.col("id") * 10).alias("x"), people.name, people["score"])
    assert out.columns == ["id", "x", "name", "score"]
    assert rows(out) == [(1, 10, "alice", 2.5), (2, 20, "bob", None), (3, 30, None, 7.0)]
    assert people.select(["name", "id"]).columns == ["name", "id"]
    assert people.select("*").columns == ["id", "name", "score"]


def test_select_of_only_constants_keeps_one_row_per_input_row(people):
    out = people.select(F.lit(1).alias("one"), F.lit("k").alias("k"))
    assert rows(out) == [(1, "k"), (1, "k"), (1, "k")]
    assert people.limit(0).select(F.lit(1)).count() == 0


def test_select_expr_parses_spark_sql_and_names_columns_like_spark(people):
    out = people.selectExpr("id * 2", "CAST(id AS STRING) as s", "upper(name)",
                            "score IS NULL AS missing")
    assert out.columns == ["(id * 2)", "s", "upper(name)", "missing"]
    assert rows(out) == [(2, "1", "ALICE", False), (4, "2", "BOB", True),
                         (6, "3", None, False)]


def test_filter_and_where_take_a_column_or_a_sql_string(people):
    assert rows(people.filter(F.col("id") > 1).select("id")) == [(2,), (3,)]
    assert rows(people.where("name = 'bob' OR score > 5").select("id")) == [(2,), (3,)]
    assert rows(people.where(F.col("name").isNull()).select("id")) == [(3,)]
    # NULL conditions drop the row, as in SQL
    assert rows(people.filter("score > 1").select("id")) == [(1,), (3,)]


def test_with_column_replaces_in_place_or_appends(people):
    replaced = people.withColumn("id", F.col("id") + 100)
    assert replaced.columns == ["id", "name", "score"]
    assert rows(replaced.select("id")) == [(101,), (102,), (103,)]
    added = people.withColumn("flag", F.col("score") > 3)
    assert added.columns == ["id", "name", "score", "flag"]
    assert rows(added.select("flag")) == [(False,), (None,), (True,)]
    with pytest.raises(TypeError, match="needs a Column"):
        people.withColumn("x", 1)  # type: ignore[arg-type]


def test_with_columns_replaces_and_adds_in_one_step(people):
    out = people.withColumns({"name": F.upper("name"), "k": F.lit("x")})
    assert out.columns == ["id", "name", "score", "k"]
    assert rows(out) == [(1, "ALICE", 2.5, "x"), (2, "BOB", None, "x"), (3, None, 7.0, "x")]


def test_with_column_renamed_is_case_insensitive_and_a_no_op_for_missing(people):
    assert people.withColumnRenamed("name", "who").columns == ["id", "who", "score"]
    assert people.withColumnRenamed("NAME", "who").columns == ["id", "who", "score"]
    assert people.withColumnRenamed("nope", "x").columns == ["id", "name", "score"]
    assert rows(people.withColumnRenamed("id", "key").select("key")) == [(1,), (2,), (3,)]


def test_drop_by_name_and_by_column_ignores_unknown_names(people):
    assert people.drop("name", "score").columns == ["id"]
    assert people.drop(F.col("name")).columns == ["id", "score"]
    assert people.drop("missing").columns == ["id", "name", "score"]


def test_union_is_by_position_and_takes_the_first_inputs_names(spark, people):
    other = spark.createDataFrame([("zed", 9)], ["a", "b"])
    out = people.select("name", "id").union(other)
    assert out.columns == ["name", "id"]
    assert rows(out) == [("alice", 1), ("bob", 2), (None, 3), ("zed", 9)]
    with pytest.raises(AnalysisException, match="NUM_COLUMNS_MISMATCH"):
        people.union(other).collect()


def test_union_by_name_matches_columns_by_name(spark, people):
    other = spark.createDataFrame([("zed", 9)], "name STRING, id LONG")
    out = people.select("id", "name").unionByName(other)
    assert out.columns == ["id", "name"]
    assert rows(out) == [(1, "alice"), (2, "bob"), (3, None), (9, "zed")]
    with pytest.raises(AnalysisException, match="allowMissingColumns"):
        people.unionByName(other)


def test_union_by_name_with_missing_columns_fills_nulls(spark, people):
    other = spark.createDataFrame([(9, True)], "id LONG, vip BOOLEAN")
    out = people.select("id", "name").unionByName(other, allowMissingColumns=True)
    assert out.columns == ["id", "name", "vip"]
    assert rows(out) == [(1, "alice", None), (2, "bob", None), (3, None, None),
                         (9, None, True)]


def test_collect_count_first_take_and_rows_read_by_name(people):
    collected = people.collect()
    assert collected[0] == Row(id=1, name="alice", score=2.5)
    assert collected[0].name == "alice" and collected[0]["score"] == 2.5
    assert collected[0].asDict() == {"id": 1, "name": "alice", "score": 2.5}
    assert people.count() == 3
    assert people.first() == Row(id=1, name="alice", score=2.5)
    assert [r.id for r in people.take(2)] == [1, 2]


def test_collect_returns_structs_as_rows_and_maps_as_dicts(spark):
    df = spark.createDataFrame([(1, [1, 2], {"k": 5}, (7, "x"))],
                               "i INT, arr ARRAY<INT>, m MAP<STRING, INT>, "
                               "st STRUCT<a: INT, b: STRING>")
    [row] = df.collect()
    assert row == Row(i=1, arr=[1, 2], m={"k": 5}, st=Row(a=7, b="x"))
    assert row.st.b == "x"
    assert row.asDict(recursive=True) == {"i": 1, "arr": [1, 2], "m": {"k": 5},
                                          "st": {"a": 7, "b": "x"}}


def test_show_prints_sparks_table_with_a_blank_line_after(people, capsys):
    people.show()
    assert capsys.readouterr().out == (
        "+---+-----+-----+\n"
        "| id| name|score|\n"
        "+---+-----+-----+\n"
        "|  1|alice|  2.5|\n"
        "|  2|  bob| NULL|\n"
        "|  3| NULL|  7.0|\n"
        "+---+-----+-----+\n"
        "\n")


def test_show_num_rows_adds_the_only_showing_footer(people, capsys):
    people.show(2)
    assert capsys.readouterr().out == (
        "+---+-----+-----+\n"
        "| id| name|score|\n"
        "+---+-----+-----+\n"
        "|  1|alice|  2.5|\n"
        "|  2|  bob| NULL|\n"
        "+---+-----+-----+\n"
        "only showing top 2 rows\n"
        "\n")
    people.show(1)
    assert capsys.readouterr().out.endswith("only showing top 1 row\n\n")


def test_show_truncates_long_cells_to_20_or_n_characters(spark, capsys):
    df = spark.createDataFrame([("a" * 30, True)], "s STRING, b BOOLEAN")
    df.show()
    assert capsys.readouterr().out == (
        "+--------------------+----+\n"
        "|                   s|   b|\n"
        "+--------------------+----+\n"
        "|aaaaaaaaaaaaaaaaa...|true|\n"
        "+--------------------+----+\n"
        "\n")
    df.show(truncate=5)
    assert capsys.readouterr().out.splitlines()[3] == "|aa...|true|"
    df.show(truncate=False)
    assert capsys.readouterr().out == (
        "+------------------------------+----+\n"
        "|s                             |b   |\n"
        "+------------------------------+----+\n"
        "|aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa|true|\n"
        "+------------------------------+----+\n"
        "\n")


def test_show_formats_nested_and_temporal_values_like_spark(spark, capsys):
    df = spark.createDataFrame(
        [([1, 2], (1, "x"), dt.datetime(2024, 1, 2, 3, 4, 5), dt.date(2024, 1, 2))],
        "arr ARRAY<INT>, st STRUCT<a: INT, b: STRING>, ts TIMESTAMP, d DATE")
    df.show()
    assert capsys.readouterr().out.splitlines()[3] == \
        "|[1, 2]|{1, x}|2024-01-02 03:04:05|2024-01-02|"


def test_print_schema_prints_the_tree_and_a_blank_line(people, capsys):
    people.printSchema()
    assert capsys.readouterr().out == (
        "root\n"
        " |-- id: long (nullable = true)\n"
        " |-- name: string (nullable = true)\n"
        " |-- score: double (nullable = true)\n"
        "\n")


def test_explain_prints_the_plan_under_a_physical_plan_header(people, capsys):
    people.filter(F.col("id") > 1).select("name").explain()
    out = capsys.readouterr().out
    assert out.startswith("== Physical Plan ==\n")
    assert out.splitlines()[1:4] == ["Project [name]", "+- Filter (id > 1)",
                                     "   +- LocalRelation [id, name, score]"]


def test_to_arrow_keeps_the_spark_to_arrow_mapping(people):
    table = people.toArrow()
    assert table.schema == pa.schema([("id", pa.int64()), ("name", pa.large_string()),
                                      ("score", pa.float64())])
    assert table.to_pydict() == {"id": [1, 2, 3], "name": ["alice", "bob", None],
                                 "score": [2.5, None, 7.0]}


def test_to_pandas_gives_object_strings_and_naive_timestamps(spark):
    df = spark.createDataFrame([(1, "x", dt.datetime(2024, 1, 2, 3, 4, 5), 1.5),
                                (2, None, None, None)],
                               "id LONG, s STRING, ts TIMESTAMP, v DOUBLE")
    frame = df.toPandas()
    assert list(frame.columns) == ["id", "s", "ts", "v"]
    assert str(frame["id"].dtype) == "int64"
    assert frame["s"].dtype == object and frame["s"].tolist() == ["x", None]
    assert str(frame["ts"].dtype) == "datetime64[ns]"
    assert frame["ts"][0] == pd.Timestamp("2024-01-02 03:04:05") and pd.isna(frame["ts"][1])
    assert frame["v"][0] == 1.5 and pd.isna(frame["v"][1])


def test_group_by_agg_and_count_in_batch_mode(spark):
    df = spark.createDataFrame([("a", 1), ("b", 2), ("a", 3), ("a", None)], "k STRING, v LONG")
    counted = df.groupBy("k").count().orderBy("k")
    assert counted.columns == ["k", "count"]
    assert rows(counted) == [("a", 3), ("b", 1)]
    agg = df.groupBy("k").agg(F.sum("v"), F.max("v").alias("mx"), F.count("v"),
                              F.avg("v")).orderBy("k")
    assert agg.columns == ["k", "sum(v)", "mx", "count(v)", "avg(v)"]
    assert rows(agg) == [("a", 4, 3, 2, 2.0), ("b", 2, 2, 1, 2.0)]
    assert rows(df.groupBy("k").agg({"v": "min"}).orderBy("k")) == [("a", 1), ("b", 2)]
    assert rows(df.agg(F.count("*"), F.sum("v"))) == [(4, 6)]
    assert df.agg(F.count("*")).columns == ["count(1)"]


def test_streaming_dataframe_reports_streaming_and_refuses_batch_actions(spark):
    stream = MemoryStream("id LONG", spark)
    df = stream.toDF().select((F.col("id") + 1).alias("x"))
    assert df.isStreaming is True
    assert df.columns == ["x"]
    for action in (df.collect, df.count, df.show, df.toArrow, df.toPandas):
        with pytest.raises(AnalysisException, match=r"writeStream\.start\(\)"):
            action()


def test_write_stream_is_only_for_streaming_dataframes(people):
    with pytest.raises(AnalysisException, match="only on streaming"):
        people.writeStream  # noqa: B018
