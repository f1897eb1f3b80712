"""ORC and Avro (and the text sink): batch round trips, schema inference, and the
streaming file source and sink in those formats."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path

import fastavro
import pyarrow as pa
import pytest
from pyarrow import orc

from unbounded.errors import AnalysisException
from unbounded.files.avro import avro_schema
from unbounded.files.formats import infer_schema, read_files
from unbounded.files.writing import write_partitioned
from unbounded.plan.types import StructType
from unbounded.sql import Row, SparkSession

UTC = dt.UTC
TYPED = pa.table({
    "id": pa.array([1, None], pa.int64()),
    "s": pa.array(["a", None], pa.large_string()),
    "ts": pa.array([dt.datetime(2024, 1, 1, 12, tzinfo=UTC), None], pa.timestamp("us", "UTC")),
    "d": pa.array([dt.date(2024, 1, 2), None]),
    "arr": pa.array([[1, 2], None], pa.list_(pa.int32())),
    "st": pa.array([{"a": 1.5}, None], pa.struct([("a", pa.float64())])),
    "dec": pa.array([Decimal("1.50"), None], pa.decimal128(10, 2)),
})
TYPED_DDL = ("id BIGINT, s STRING, ts TIMESTAMP, d DATE, arr ARRAY<INT>, st STRUCT<a: DOUBLE>, "
             "dec DECIMAL(10,2)")


@pytest.fixture
def spark() -> SparkSession:
    return SparkSession.builder.create()


@pytest.mark.parametrize("fmt", ["orc", "avro"])
def test_typed_columns_round_trip_with_inferred_schema(tmp_path: Path, fmt: str) -> None:
    folder = str(tmp_path / fmt)
    write_partitioned(folder, fmt, TYPED, (), {}, stem="part-00000")
    schema = infer_schema(fmt, [folder], {}, streaming=False)
    assert schema == StructType.fromDDL(TYPED_DDL)
    assert read_files(fmt, [folder], schema, {}).to_pylist() == [
        {"id": 1, "s": "a", "ts": dt.datetime(2024, 1, 1, 12, tzinfo=UTC),
         "d": dt.date(2024, 1, 2), "arr": [1, 2], "st": {"a": 1.5}, "dec": Decimal("1.50")},
        {"id": None, "s": None, "ts": None, "d": None, "arr": None, "st": None, "dec": None},
    ]


def test_avro_schema_is_sparks_nullable_unions_and_logical_types() -> None:
    schema = avro_schema(StructType.fromDDL("id BIGINT, ts TIMESTAMP, d DATE"))
    assert schema == {"type": "record", "name": "topLevelRecord", "fields": [
        {"name": "id", "type": ["null", "long"], "default": None},
        {"name": "ts", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
         "default": None},
        {"name": "d", "type": ["null", {"type": "int", "logicalType": "date"}],
         "default": None},
    ]}


def test_avro_file_written_elsewhere_is_read_by_its_writer_schema(
        tmp_path: Path, spark: SparkSession) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    schema = {"type": "record", "name": "r", "fields": [
        {"name": "name", "type": "string"}, {"name": "n", "type": "int"}]}
    with open(folder / "a.avro", "wb") as out:
        fastavro.writer(out, fastavro.parse_schema(schema), [{"name": "x", "n": 1},
                                                             {"name": "y", "n": 2}])
    df = spark.read.format("avro").load(str(folder))
    assert df.schema == StructType.fromDDL("name STRING, n INT")
    assert df.collect() == [Row(name="x", n=1), Row(name="y", n=2)]


def test_orc_written_by_pyarrow_reads_with_a_subset_schema(tmp_path: Path,
                                                           spark: SparkSession) -> None:
    orc.write_table(pa.table({"a": [1, 2], "b": ["p", "q"]}), str(tmp_path / "x.orc"))
    df = spark.read.schema("b STRING, missing INT").orc(str(tmp_path))
    assert df.collect() == [Row(b="p", missing=None), Row(b="q", missing=None)]


@pytest.mark.parametrize("fmt", ["orc", "avro"])
def test_batch_writer_round_trip(tmp_path: Path, spark: SparkSession, fmt: str) -> None:
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id INT, s STRING")
    out = str(tmp_path / "out")
    df.write.format(fmt).save(out)
    assert sorted(spark.read.format(fmt).load(out).collect()) == [Row(id=1, s="a"),
                                                                  Row(id=2, s="b")]


@pytest.mark.parametrize("fmt", ["orc", "avro", "text"])
def test_streaming_file_sink_and_source_in_format(tmp_path: Path, spark: SparkSession,
                                                  fmt: str) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.json").write_text('{"word": "x"}\n{"word": "y"}\n')
    stream = spark.readStream.schema("word STRING").json(str(source))
    out, checkpoint = str(tmp_path / "out"), str(tmp_path / "ck")
    query = (stream.writeStream.format(fmt).option("checkpointLocation", checkpoint)
             .trigger(availableNow=True).start(out))
    query.awaitTermination(30)
    assert any(name.endswith({"orc": ".orc", "avro": ".avro", "text": ".txt"}[fmt])
               for name in os.listdir(out))
    back = spark.readStream.schema("word STRING" if fmt != "text" else "value STRING") \
        .format(fmt).load(out)
    reread = (back.writeStream.format("memory").queryName(f"back_{fmt}")
              .trigger(availableNow=True).start())
    reread.awaitTermination(30)
    assert sorted(r[0] for r in spark.table(f"back_{fmt}").collect()) == ["x", "y"]


def test_text_sink_rejects_several_columns(tmp_path: Path, spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, "a")], "id INT, s STRING")
    with pytest.raises(AnalysisException, match="single column of type string"):
        df.write.text(str(tmp_path / "out"))
