"""spark.read of a partitionBy folder restores the partition columns, typed as Spark does."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import Row, SparkSession


def write_part(root: Path, folders: str, rows: dict[str, list[object]]) -> None:
    folder = root / folders
    folder.mkdir(parents=True)
    pq.write_table(pa.table(rows), str(folder / "part-0.parquet"))


@pytest.mark.parametrize("fmt", ["parquet", "json", "csv", "orc", "avro"])
def test_a_written_partitioned_folder_reads_back_with_its_columns(
        spark: SparkSession, tmp_path: Path, fmt: str) -> None:
    df = spark.createDataFrame([(1, "a", 10), (2, "b", 20), (3, "c", 10)],
                               "id INT, name STRING, grp INT")
    out = str(tmp_path / "out")
    df.write.partitionBy("grp").format(fmt).option("header", True).save(out)
    back = spark.read.format(fmt).option("header", True).option("inferSchema", True).load(out)
    assert back.columns == ["id", "name", "grp"]
    assert dict(back.dtypes)["grp"] == "int"
    assert sorted(tuple(r) for r in back.collect()) == [(1, "a", 10), (2, "b", 20), (3, "c", 10)]


def test_types_are_inferred_per_column_and_null_is_the_default_partition(
        spark: SparkSession, tmp_path: Path) -> None:
    write_part(tmp_path, "n=1/big=9999999999/x=1.5/ts=2026-01-01 10%3A00%3A00/s=a",
               {"v": ["r1"]})
    write_part(tmp_path, "n=__HIVE_DEFAULT_PARTITION__/big=2/x=2/ts=2026-01-02 00%3A00%3A00/s=7",
               {"v": ["r2"]})
    df = spark.read.parquet(str(tmp_path))
    assert df.dtypes == [("v", "string"), ("n", "int"), ("big", "bigint"), ("x", "double"),
                         ("ts", "timestamp"), ("s", "string")]
    assert sorted(df.collect(), key=lambda r: r.v) == [
        Row(v="r1", n=1, big=9999999999, x=1.5, ts=dt.datetime(2026, 1, 1, 10), s="a"),
        Row(v="r2", n=None, big=2, x=2.0, ts=dt.datetime(2026, 1, 2), s="7")]


def test_inference_off_keeps_strings(spark: SparkSession, tmp_path: Path) -> None:
    write_part(tmp_path, "n=1/d=2026-01-01", {"v": ["r1"]})
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    try:
        df = spark.read.parquet(str(tmp_path))
    finally:
        spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "true")
    assert df.dtypes == [("v", "string"), ("n", "string"), ("d", "string")]
    assert df.collect() == [Row(v="r1", n="1", d="2026-01-01")]


def test_a_user_schema_types_and_places_the_partition_column(
        spark: SparkSession, tmp_path: Path) -> None:
    write_part(tmp_path, "k=5", {"v": ["r1"]})
    df = spark.read.schema("k LONG, v STRING").parquet(str(tmp_path))
    assert df.dtypes == [("k", "bigint"), ("v", "string")]
    assert df.collect() == [Row(k=5, v="r1")]


def test_a_file_sink_folder_reads_only_manifest_files_with_partitions(
        spark: SparkSession, tmp_path: Path) -> None:
    write_part(tmp_path, "day=2026-01-01", {"v": ["kept"]})
    write_part(tmp_path, "day=2026-01-02", {"v": ["uncommitted"]})
    manifest = tmp_path / "_spark_metadata"
    manifest.mkdir()
    entry = {"path": f"file://{tmp_path}/day=2026-01-01/part-0.parquet", "size": 1,
             "isDir": False, "modificationTime": 0, "blockReplication": 1,
             "blockSize": 1, "action": "add"}
    (manifest / "0").write_text("v1\n" + json.dumps(entry) + "\n")
    df = spark.read.parquet(str(tmp_path))
    assert df.collect() == [Row(v="kept", day=dt.date(2026, 1, 1))]


def test_conflicting_folder_layouts_fail(spark: SparkSession, tmp_path: Path) -> None:
    write_part(tmp_path, "a=1", {"v": ["r1"]})
    write_part(tmp_path, "b=1", {"v": ["r2"]})
    with pytest.raises(AnalysisException, match="Conflicting directory structures"):
        spark.read.parquet(str(tmp_path))


def test_a_file_column_named_as_a_partition_takes_its_place_and_value(
        spark: SparkSession, tmp_path: Path) -> None:
    write_part(tmp_path, "k=1/s=x", {"v": ["r1"], "k": ["inner"]})
    df = spark.read.parquet(str(tmp_path))
    assert df.dtypes == [("v", "string"), ("k", "int"), ("s", "string")]
    assert df.collect() == [Row(v="r1", k=1, s="x")]
