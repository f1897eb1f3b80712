"""Spark types: DDL parsing, the Arrow mapping, the StructType API and printSchema text."""

from __future__ import annotations

import pyarrow as pa
import pytest

from unbounded.errors import ParseException
from unbounded.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    NullType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
    from_arrow_type,
    parse_data_type,
    parse_ddl_schema,
)


def test_ddl_column_list_parses_every_primitive_type_name():
    schema = parse_ddl_schema(
        "a STRING, b LONG, c BIGINT, d INT, e INTEGER, f DOUBLE, g BOOLEAN, h TIMESTAMP, "
        "i DATE, j BINARY, k FLOAT, l SHORT, m TINYINT, n DECIMAL(12, 3), o TIMESTAMP_NTZ")
    assert [(f.name, f.dataType) for f in schema.fields] == [
        ("a", StringType()), ("b", LongType()), ("c", LongType()), ("d", IntegerType()),
        ("e", IntegerType()), ("f", DoubleType()), ("g", BooleanType()),
        ("h", TimestampType()), ("i", DateType()), ("j", BinaryType()), ("k", FloatType()),
        ("l", ShortType()), ("m", ByteType()), ("n", DecimalType(12, 3)),
        ("o", TimestampNTZType())]
    assert all(f.nullable for f in schema.fields)


def test_ddl_parses_nested_types_not_null_and_backquoted_names():
    schema = parse_ddl_schema(
        "id LONG NOT NULL, tags ARRAY<STRING>, attrs MAP<STRING, ARRAY<INT>>, "
        "`odd name` STRUCT<x: INT, inner: STRUCT<y: DOUBLE>>")
    assert schema == StructType([
        StructField("id", LongType(), False),
        StructField("tags", ArrayType(StringType())),
        StructField("attrs", MapType(StringType(), ArrayType(IntegerType()))),
        StructField("odd name", StructType([
            StructField("x", IntegerType()),
            StructField("inner", StructType([StructField("y", DoubleType())]))])),
    ])
    assert schema.simpleString() == (
        "struct<id:bigint,tags:array<string>,attrs:map<string,array<int>>,"
        "odd name:struct<x:int,inner:struct<y:double>>>")


def test_struct_string_and_single_type_strings_parse():
    assert parse_ddl_schema("struct<a:int,b:string>") == StructType(
        [StructField("a", IntegerType()), StructField("b", StringType())])
    assert parse_data_type("array<map<string,bigint>>") == ArrayType(
        MapType(StringType(), LongType()))
    assert StructType.fromDDL("id LONG, name STRING").names == ["id", "name"]


@pytest.mark.parametrize("bad", ["id NOPE", "id ARRAY<INT", "id INT,", "id INT extra"])
def test_bad_ddl_raises_parse_exception_naming_the_text(bad):
    with pytest.raises(ParseException, match="Cannot parse data type"):
        parse_ddl_schema(bad)


def test_every_type_maps_to_one_arrow_type_and_back():
    pairs = [
        (StringType(), pa.large_string()), (BinaryType(), pa.large_binary()),
        (BooleanType(), pa.bool_()), (ByteType(), pa.int8()), (ShortType(), pa.int16()),
        (IntegerType(), pa.int32()), (LongType(), pa.int64()), (FloatType(), pa.float32()),
        (DoubleType(), pa.float64()), (DateType(), pa.date32()),
        (TimestampType(), pa.timestamp("us", tz="UTC")),
        (TimestampNTZType(), pa.timestamp("us")), (DecimalType(10, 2), pa.decimal128(10, 2)),
        (ArrayType(LongType()), pa.large_list(pa.int64())),
        (MapType(StringType(), IntegerType()), pa.map_(pa.large_string(), pa.int32())),
        (NullType(), pa.null()),
    ]
    for spark_type, arrow_type in pairs:
        assert spark_type.to_arrow() == arrow_type
        assert from_arrow_type(arrow_type) == spark_type
    assert from_arrow_type(pa.string()) == StringType()
    assert from_arrow_type(pa.list_(pa.int32())) == ArrayType(IntegerType())


def test_struct_type_maps_to_an_arrow_schema_with_nullability():
    schema = StructType([StructField("id", LongType(), False),
                         StructField("s", StructType([StructField("x", StringType())]))])
    arrow = schema.to_arrow_schema()
    assert arrow == pa.schema([pa.field("id", pa.int64(), nullable=False),
                               pa.field("s", pa.struct([pa.field("x", pa.large_string())]))])
    assert StructType.from_arrow(arrow) == schema


def test_struct_type_api_add_index_iterate_and_compare():
    schema = StructType().add("id", LongType(), False).add("name", "string")
    schema.add(StructField("score", DoubleType()))
    assert schema.names == schema.fieldNames() == ["id", "name", "score"]
    assert len(schema) == 3
    assert schema["name"] == StructField("name", StringType(), True)
    assert schema[0].nullable is False
    assert [f.name for f in schema] == ["id", "name", "score"]
    with pytest.raises(KeyError):
        schema["missing"]
    assert schema == StructType.fromDDL("id LONG NOT NULL, name STRING, score DOUBLE")
    assert schema != StructType.fromDDL("id LONG, name STRING, score DOUBLE")
    assert repr(StructType.fromDDL("id LONG")) == \
        "StructType([StructField('id', LongType(), True)])"


def test_type_names_follow_pyspark():
    assert [t.simpleString() for t in (ByteType(), ShortType(), IntegerType(), LongType())] \
        == ["tinyint", "smallint", "int", "bigint"]
    assert [t.typeName() for t in (ByteType(), ShortType(), IntegerType(), LongType())] \
        == ["byte", "short", "integer", "long"]
    assert DecimalType(10, 2).simpleString() == "decimal(10,2)"
    assert MapType(StringType(), LongType()).simpleString() == "map<string,bigint>"


def test_json_value_uses_pyspark_json_names():
    schema = StructType.fromDDL("id LONG, tags ARRAY<INT>, d DECIMAL(5,1)")
    assert schema.json() == (
        '{"type":"struct","fields":['
        '{"name":"id","type":"long","nullable":true,"metadata":{}},'
        '{"name":"tags","type":{"type":"array","elementType":"integer","containsNull":true},'
        '"nullable":true,"metadata":{}},'
        '{"name":"d","type":"decimal(5,1)","nullable":true,"metadata":{}}]}')


def test_tree_string_matches_sparks_print_schema_for_nested_types():
    schema = StructType.fromDDL(
        "id LONG NOT NULL, tags ARRAY<STRING>, m MAP<STRING, INT>, "
        "s STRUCT<a: INT, b: ARRAY<STRUCT<c: DOUBLE>>>, d DECIMAL(10,2)")
    assert schema.treeString() == (
        "root\n"
        " |-- id: long (nullable = false)\n"
        " |-- tags: array (nullable = true)\n"
        " |    |-- element: string (containsNull = true)\n"
        " |-- m: map (nullable = true)\n"
        " |    |-- key: string\n"
        " |    |-- value: integer (valueContainsNull = true)\n"
        " |-- s: struct (nullable = true)\n"
        " |    |-- a: integer (nullable = true)\n"
        " |    |-- b: array (nullable = true)\n"
        " |    |    |-- element: struct (containsNull = true)\n"
        " |    |    |    |-- c: double (nullable = true)\n"
        " |-- d: decimal(10,2) (nullable = true)\n")
