"""SparkSession: builder, conf, createDataFrame, spark.table and spark.read."""

from __future__ import annotations

import datetime as dt
import json
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unbounded.errors import AnalysisException
from unbounded.files.manifest import FileSinkManifest
from unbounded.sql import Row, SparkSession
from unbounded.sql.types import (
    ArrayType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)
from unbounded.testing import MemoryStream


def rows(df):
    return [tuple(r) for r in df.collect()]


@pytest.fixture
def shared():
    session = SparkSession.builder.appName("shared").config("k1", "v1").getOrCreate()
    yield session
    session.stop()


def test_get_or_create_returns_the_active_session_and_applies_new_config(shared):
    again = SparkSession.builder.config("k2", 5).config("flag", True).getOrCreate()
    assert again is shared
    assert SparkSession.getActiveSession() is shared
    assert shared.conf.get("spark.app.name") == "shared"
    assert shared.conf.get("k1") == "v1"
    assert shared.conf.get("k2") == "5"
    assert shared.conf.get("flag") == "true"


def test_stop_clears_the_active_session(shared):
    shared.stop()
    assert SparkSession.getActiveSession() is None
    fresh = SparkSession.builder.getOrCreate()
    try:
        assert fresh is not shared
        assert fresh.conf.get("k1", None) is None
    finally:
        fresh.stop()


def test_builder_config_accepts_a_map(spark):
    session = SparkSession.builder.config(map={"a": 1, "b": "x"}).create()
    assert (session.conf.get("a"), session.conf.get("b")) == ("1", "x")


def test_conf_get_set_unset_and_defaults(spark):
    spark.conf.set("spark.sql.shuffle.partitions", 7)
    assert spark.conf.get("spark.sql.shuffle.partitions") == "7"
    spark.conf.unset("spark.sql.shuffle.partitions")
    assert spark.conf.get("spark.sql.shuffle.partitions") == str(os.cpu_count() or 2)
    assert spark.conf.get("spark.sql.streaming.minBatchesToRetain") == "100"
    assert spark.conf.get("no.such.key", "fallback") == "fallback"
    assert spark.conf.get("no.such.key", None) is None
    with pytest.raises(KeyError, match="SQL_CONF_NOT_FOUND"):
        spark.conf.get("no.such.key")
    spark.conf.set("my.flag", False)
    assert spark.conf.getAll()["my.flag"] == "false"


def test_create_dataframe_from_tuples_infers_long_double_string(spark):
    df = spark.createDataFrame([(1, 2.5, "a"), (2, None, None)])
    assert df.schema == StructType([StructField("_1", LongType()),
                                    StructField("_2", DoubleType()),
                                    StructField("_3", StringType())])
    assert rows(df) == [(1, 2.5, "a"), (2, None, None)]
    named = spark.createDataFrame([(1, "a")], ["id", "name"])
    assert named.columns == ["id", "name"]


def test_create_dataframe_with_ddl_or_struct_type_schema(spark):
    ddl = spark.createDataFrame([(1, ["x"])], "id INT, tags ARRAY<STRING>")
    assert ddl.schema == StructType([StructField("id", IntegerType()),
                                     StructField("tags", ArrayType(StringType()))])
    schema = StructType([StructField("id", LongType()), StructField("ts", TimestampType())])
    typed = spark.createDataFrame([(1, dt.datetime(2024, 1, 1, 12))], schema)
    assert typed.schema == schema
    assert typed.collect()[0].ts == dt.datetime(2024, 1, 1, 12)


def test_create_dataframe_from_dicts_and_rows(spark):
    from_dicts = spark.createDataFrame([{"a": 1, "b": "x"}, {"a": 2, "b": None}])
    assert from_dicts.columns == ["a", "b"]
    assert rows(from_dicts) == [(1, "x"), (2, None)]
    from_rows = spark.createDataFrame([Row(name="alice", age=11), Row(name="bob", age=12)])
    assert from_rows.columns == ["name", "age"]
    assert from_rows.collect() == [Row(name="alice", age=11), Row(name="bob", age=12)]


def test_create_dataframe_from_pandas_and_arrow(spark):
    frame = pd.DataFrame({"a": [1, 2], "s": ["x", None]})
    from_pandas = spark.createDataFrame(frame)
    assert from_pandas.schema == StructType([StructField("a", LongType()),
                                             StructField("s", StringType())])
    assert rows(from_pandas) == [(1, "x"), (2, None)]
    cast = spark.createDataFrame(frame, "a INT, s STRING")
    assert cast.schema["a"].dataType == IntegerType()
    table = pa.table({"x": pa.array([1, 2], pa.int32()), "y": ["p", "q"]})
    from_arrow = spark.createDataFrame(table)
    assert from_arrow.schema == StructType([StructField("x", IntegerType()),
                                            StructField("y", StringType())])
    assert rows(from_arrow) == [(1, "p"), (2, "q")]


def test_create_dataframe_rejects_rows_of_the_wrong_width(spark):
    with pytest.raises(AnalysisException, match="2 values but the schema has 3 columns"):
        spark.createDataFrame([(1, 2)], "a INT, b INT, c INT")


def test_range_gives_a_long_id_column(spark):
    assert rows(spark.range(3)) == [(0,), (1,), (2,)]
    assert rows(spark.range(2, 8, 3)) == [(2,), (5,)]
    assert spark.range(1).schema == StructType([StructField("id", LongType())])


def test_table_reads_a_memory_sink_by_query_name(spark):
    stream = MemoryStream("id LONG", spark)
    q = stream.toDF().writeStream.format("memory").queryName("session_table_q").start()
    try:
        stream.addData([(1,), (2,)])
        q.processAllAvailable(30)
        assert sorted(rows(spark.table("session_table_q"))) == [(1,), (2,)]
    finally:
        q.stop()
    with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
        spark.table("no_such_table")


def test_table_reads_a_temp_view(spark):
    spark.createDataFrame([(1,)], "x INT").createOrReplaceTempView("v1")
    assert rows(spark.table("v1")) == [(1,)]


def test_read_csv_with_header_gives_strings_unless_inferring(spark, tmp_path):
    (tmp_path / "a.csv").write_text("id,name\n1,x\n2,y\n")
    plain = spark.read.csv(str(tmp_path), header=True)
    assert plain.schema == StructType([StructField("id", StringType()),
                                       StructField("name", StringType())])
    assert rows(plain) == [("1", "x"), ("2", "y")]
    inferred = spark.read.option("header", True).option("inferSchema", True).csv(str(tmp_path))
    assert inferred.schema["id"].dataType == IntegerType()
    typed = spark.read.schema("id LONG, name STRING").option("header", "true") \
        .csv(str(tmp_path))
    assert rows(typed) == [(1, "x"), (2, "y")]


def test_read_json_infers_the_schema_of_json_lines(spark, tmp_path):
    (tmp_path / "a.json").write_text('{"id": 1, "name": "x"}\n{"id": 2}\n')
    df = spark.read.json(str(tmp_path))
    assert df.schema == StructType([StructField("id", LongType()),
                                    StructField("name", StringType())])
    assert rows(df) == [(1, "x"), (2, None)]


def test_read_text_and_parquet(spark, tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.txt").write_text("hello\nworld\n")
    assert spark.read.text(str(tmp_path / "t")).collect() == [Row(value="hello"),
                                                               Row(value="world")]
    (tmp_path / "p").mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "p" / "x.parquet")
    assert rows(spark.read.parquet(str(tmp_path / "p"))) == [(1,), (2,)]
    assert spark.read.format("parquet").load(str(tmp_path / "p")).count() == 2


def test_read_honours_a_file_sink_manifest(spark, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    pq.write_table(pa.table({"a": [1]}), out / "part-committed.parquet")
    pq.write_table(pa.table({"a": [99]}), out / "part-orphan.parquet")
    FileSinkManifest(str(out)).add_batch(0, [{"path": str(out / "part-committed.parquet")}])
    assert rows(spark.read.parquet(str(out))) == [(1,)]


def test_read_fails_clearly_on_missing_path_and_unknown_format(spark, tmp_path):
    with pytest.raises(AnalysisException, match="PATH_NOT_FOUND"):
        spark.read.parquet(str(tmp_path / "nope"))
    with pytest.raises(AnalysisException, match="DATA_SOURCE_NOT_FOUND"):
        spark.read.format("nosuchformat").load(str(tmp_path))


def test_streams_is_the_query_manager(spark):
    assert spark.streams.active == []
    assert json.loads(json.dumps(spark.conf.getAll()))["spark.app.name"] == "test"
