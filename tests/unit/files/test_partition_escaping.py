"""Partition folder names are path-escaped as Spark escapes them
(``ExternalCatalogUtils.escapePathName``) and unescaped on read. The folder names and
values read back are PySpark 4.3's for the same rows."""

from __future__ import annotations

import os

import pytest

from unbounded.files.partitions import escape_path_name, unescape_path_name
from unbounded.sql import SparkSession
from unbounded.testing import MemoryStream

VALUES = ["a:b", "c/d", "e%f", "g=h", "i#j", "k?l", "m n", "o*p", "q'r", 's"t', "u\\v",
          "w{x", "y[z]", "^c", "ü", "\x01x", "", None, "a%3Ab", "tab\tx", "x|y<z>"]
# PySpark 4.3's folders for VALUES written with partitionBy("k").
FOLDERS = ["k=%01x", "k=%5Ec", "k=__HIVE_DEFAULT_PARTITION__", "k=a%253Ab", "k=a%3Ab",
           "k=c%2Fd", "k=e%25f", "k=g%3Dh", "k=i%23j", "k=k%3Fl", "k=m n", "k=o%2Ap",
           "k=q%27r", "k=s%22t", "k=tab%09x", "k=u%5Cv", "k=w%7Bx", "k=x|y<z>",
           "k=y%5Bz%5D", "k=ü"]
# The empty string is NULL's folder too, so it reads back as NULL (PySpark: the same).
READ_BACK = [(i, None if v == "" else v) for i, v in enumerate(VALUES)]


def _folders(path: str) -> list[str]:
    return sorted(n for n in os.listdir(path) if "=" in n)


def test_batch_partition_folders_escape_as_spark_and_read_back(spark: SparkSession,
                                                              tmp_path) -> None:
    df = spark.createDataFrame([(v, i) for i, v in enumerate(VALUES)], "k string, i int")
    df.write.partitionBy("k").parquet(str(tmp_path / "o"))
    assert _folders(str(tmp_path / "o")) == FOLDERS
    back = spark.read.parquet(str(tmp_path / "o"))
    assert back.schema.simpleString() == "struct<i:int,k:string>"
    assert sorted((r.i, r.k) for r in back.collect()) == READ_BACK


def test_partition_column_names_are_escaped_too(spark: SparkSession, tmp_path) -> None:
    spark.createDataFrame([(1, 2)], "`a:b` int, `c=d` int").write.partitionBy(
        "a:b").parquet(str(tmp_path / "o"))
    assert _folders(str(tmp_path / "o")) == ["a%3Ab=1"]
    back = spark.read.parquet(str(tmp_path / "o"))
    assert back.schema.simpleString() == "struct<c=d:int,a:b:int>"


def test_a_timestamp_partition_folder_escapes_its_colons(spark: SparkSession,
                                                         tmp_path) -> None:
    spark.sql("SELECT timestamp_seconds(1710064800) AS t, 1 AS i").write.partitionBy(
        "t").parquet(str(tmp_path / "o"))
    assert _folders(str(tmp_path / "o")) == ["t=2024-03-10 10%3A00%3A00"]
    back = spark.read.parquet(str(tmp_path / "o"))
    assert back.schema.simpleString() == "struct<i:int,t:timestamp>"
    assert [r.t.isoformat() for r in back.collect()] == ["2024-03-10T10:00:00"]


def test_the_file_sink_escapes_and_a_stream_reads_the_values_back(spark: SparkSession,
                                                                  tmp_path) -> None:
    stream = MemoryStream("k string, i int", spark)
    query = stream.toDF().writeStream.format("json").partitionBy("k").option(
        "checkpointLocation", str(tmp_path / "cp")).start(str(tmp_path / "o"))
    stream.addData([("a:b/c", 1), ("50%", 2)])
    query.processAllAvailable()
    query.stop()
    assert _folders(str(tmp_path / "o")) == ["k=50%25", "k=a%3Ab%2Fc"]
    back = spark.readStream.schema("i int, k string").json(str(tmp_path / "o"))
    query = back.writeStream.format("memory").queryName("escaped_back").start()
    query.processAllAvailable()
    query.stop()
    assert sorted(tuple(r) for r in spark.table("escaped_back").collect()) == [
        (1, "a:b/c"), (2, "50%")]


def test_a_partitioned_table_reads_its_escaped_values(spark: SparkSession, tmp_path) -> None:
    spark.conf.set("spark.sql.warehouse.dir", str(tmp_path / "warehouse"))
    df = spark.createDataFrame([("a:b", 1), ("c/d", 2)], "k string, i int")
    df.write.partitionBy("k").saveAsTable("escaped_table")
    assert sorted(tuple(r) for r in spark.table("escaped_table").collect()) == [
        (1, "a:b"), (2, "c/d")]


@pytest.mark.parametrize(("folder", "value"), [
    ("a%2", "a%2"), ("b%zz1", "b%zz1"), ("%C3%A9", "Ã©"), ("%3a", ":")])
def test_unescaping_decodes_each_code_as_one_character_as_spark(folder: str,
                                                                value: str) -> None:
    assert unescape_path_name(folder) == value


def test_escaping_leaves_spaces_and_non_ascii_alone() -> None:
    assert escape_path_name("x y ü }\x7f") == "x y ü }%7F"
