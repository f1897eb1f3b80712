"""Maps and arrays of key/value structs stay apart through the engine (Polars' Map type),
with PySpark's collect shapes: a map is a dict, an array of structs a list of Rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unbounded.engine.dtypes import polars_schema_to_spark, to_polars_dtype
from unbounded.sql import Row, SparkSession
from unbounded.sql import functions as F
from unbounded.sql import types as T

KV = T.StructType([T.StructField("key", T.StringType()), T.StructField("value", T.BinaryType())])


@pytest.mark.parametrize("data_type", [
    T.MapType(T.StringType(), T.LongType()),
    T.ArrayType(KV),
    T.ArrayType(T.MapType(T.StringType(), KV)),
    T.MapType(T.StringType(), T.ArrayType(KV)),
    T.StructType([T.StructField("m", T.MapType(T.IntegerType(), T.StringType())),
                  T.StructField("a", T.ArrayType(KV))]),
])
def test_spark_types_round_trip_through_polars(data_type: T.DataType) -> None:
    schema = pl.Schema({"c": to_polars_dtype(data_type)})
    assert polars_schema_to_spark(schema).fields[0].dataType == data_type


@pytest.fixture
def nested(spark: SparkSession, tmp_path: Path) -> object:
    kv = pa.struct([("key", pa.string()), ("value", pa.binary())])
    pq.write_table(pa.table({
        "id": [1, 2],
        "m": pa.array([[("a", 1), ("b", 2)], None], pa.map_(pa.string(), pa.int64())),
        "h": pa.array([[{"key": "a", "value": b"1"}, {"key": "b", "value": None}], []],
                      pa.list_(kv)),
    }), str(tmp_path / "p.parquet"))
    return spark.read.parquet(str(tmp_path))


def test_a_map_collects_as_a_dict_and_an_array_of_structs_as_rows(nested) -> None:
    assert nested.schema.simpleString() == (
        "struct<id:bigint,m:map<string,bigint>,h:array<struct<key:string,value:binary>>>")
    rows = nested.orderBy("id").collect()
    assert rows == [Row(id=1, m={"a": 1, "b": 2},
                        h=[Row(key="a", value=b"1"), Row(key="b", value=None)]),
                    Row(id=2, m=None, h=[])]
    assert isinstance(rows[0].h[0], Row)
    assert rows[0].h[1].key == "b"


def test_lookups_index_a_map_by_key_and_an_array_by_position(nested) -> None:
    out = nested.orderBy("id").select(F.col("m")["b"].alias("mb"), F.col("m").getItem("z"),
                                      F.col("h")[0]["key"].alias("hk"), F.col("h")[1].value)
    assert [tuple(r) for r in out.collect()] == [(2, None, "a", None), (None, None, None, None)]


def test_explode_shows_map_entries_as_two_columns_and_array_structs_as_one(nested) -> None:
    maps = nested.select(F.explode("m"))
    assert maps.columns == ["key", "value"]
    assert sorted(tuple(r) for r in maps.collect()) == [("a", 1), ("b", 2)]
    arrays = nested.select(F.explode("h"))
    assert arrays.columns == ["col"]
    assert arrays.collect() == [Row(col=Row(key="a", value=b"1")),
                                Row(col=Row(key="b", value=None))]
    assert nested.select(F.posexplode("h")).columns == ["pos", "col"]
    assert nested.select(F.posexplode("m")).columns == ["pos", "key", "value"]


def test_created_maps_are_maps(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, "x")], "id long, s string")
    out = df.select(F.create_map("s", "id").alias("m"),
                    F.array(F.struct(F.col("s").alias("key"), F.col("id").alias("value")))
                    .alias("kv"))
    assert out.schema.simpleString() == (
        "struct<m:map<string,bigint>,kv:array<struct<key:string,value:bigint>>>")
    assert out.collect() == [Row(m={"x": 1}, kv=[Row(key="x", value=1)])]
    assert out.select(F.to_json("m"), F.to_json("kv")).collect()[0] == (
        '{"x":1}', '[{"key":"x","value":1}]')


def test_size_and_element_at_take_maps_and_arrays(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, "x")], "id long, s string").select(
        F.create_map("s", "id").alias("m"), F.array("id", "id").alias("a"))
    out = df.select(F.size("m"), F.size("a"), F.element_at("m", F.lit("x")),
                    F.element_at("m", F.lit("z")), F.element_at("a", -1))
    assert [tuple(r) for r in out.collect()] == [(1, 2, 1, None, 1)]
    assert tuple(df.selectExpr("cardinality(m)", "m['x']").collect()[0]) == (1, 1)
