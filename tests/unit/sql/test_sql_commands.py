"""spark.sql commands: temporary views, tables, INSERT, databases, SHOW TABLES."""

from __future__ import annotations

from pathlib import Path

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import Row, SparkSession


@pytest.fixture
def spark_wh(spark: SparkSession, tmp_path: Path) -> SparkSession:
    spark.conf.set("spark.sql.warehouse.dir", str(tmp_path / "warehouse"))
    return spark


def test_temp_views_by_sql(spark_wh: SparkSession) -> None:
    assert spark_wh.sql("CREATE TEMP VIEW nums AS SELECT 1 AS n").collect() == []
    with pytest.raises(AnalysisException, match="TEMP_TABLE_OR_VIEW_ALREADY_EXISTS"):
        spark_wh.sql("CREATE TEMPORARY VIEW nums AS SELECT 2 AS n")
    spark_wh.sql("CREATE OR REPLACE TEMPORARY VIEW nums AS SELECT 2 AS n")
    assert spark_wh.table("nums").collect() == [Row(n=2)]
    spark_wh.sql("CREATE GLOBAL TEMP VIEW gnums AS SELECT 3 AS n")
    assert spark_wh.sql("SELECT n FROM global_temp.gnums").collect() == [Row(n=3)]
    spark_wh.sql("DROP VIEW nums")
    spark_wh.sql("DROP VIEW global_temp.gnums")
    assert spark_wh.catalog.listTables() == []
    with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
        spark_wh.sql("DROP VIEW nums")
    spark_wh.sql("DROP VIEW IF EXISTS nums")


def test_create_insert_select_and_drop_a_table(spark_wh: SparkSession, tmp_path: Path) -> None:
    spark_wh.sql("CREATE TABLE people (id INT, name STRING) USING json")
    spark_wh.sql("INSERT INTO people VALUES (1, 'a'), (2, NULL)")
    spark_wh.sql("INSERT INTO TABLE people SELECT 3, 'c'")
    assert spark_wh.sql("SELECT * FROM people ORDER BY id").collect() == [
        Row(id=1, name="a"), Row(id=2, name=None), Row(id=3, name="c")]
    spark_wh.sql("INSERT OVERWRITE TABLE people SELECT 9, 'z'")
    assert spark_wh.table("people").collect() == [Row(id=9, name="z")]
    with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_ALREADY_EXISTS"):
        spark_wh.sql("CREATE TABLE people (id INT) USING json")
    spark_wh.sql("CREATE TABLE IF NOT EXISTS people (id INT) USING json")
    spark_wh.sql("DROP TABLE people")
    assert not (tmp_path / "warehouse" / "people").exists()
    with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
        spark_wh.sql("DROP TABLE people")
    spark_wh.sql("DROP TABLE IF EXISTS people")


def test_create_table_as_select_with_format(spark_wh: SparkSession, tmp_path: Path) -> None:
    spark_wh.sql("CREATE TABLE ctas USING orc AS "
                 "SELECT * FROM VALUES (1, 'x'), (3, 'y') AS v(a, b)")
    assert spark_wh.table("ctas").collect() == [Row(a=1, b="x"), Row(a=3, b="y")]
    assert any(p.suffix == ".orc" for p in (tmp_path / "warehouse" / "ctas").iterdir())
    spark_wh.sql("CREATE OR REPLACE TABLE ctas AS SELECT 5 AS a")
    assert spark_wh.table("ctas").collect() == [Row(a=5)]


def test_databases_use_and_show_tables(spark_wh: SparkSession) -> None:
    spark_wh.sql("CREATE DATABASE sales")
    with pytest.raises(AnalysisException, match="SCHEMA_ALREADY_EXISTS"):
        spark_wh.sql("CREATE DATABASE sales")
    spark_wh.sql("CREATE SCHEMA IF NOT EXISTS sales")
    spark_wh.sql("USE sales")
    spark_wh.sql("CREATE TABLE orders AS SELECT 1 AS id")
    spark_wh.sql("CREATE TEMP VIEW recent AS SELECT 2 AS id")
    show = spark_wh.sql("SHOW TABLES")
    assert show.columns == ["namespace", "tableName", "isTemporary"]
    assert show.collect() == [Row(namespace="sales", tableName="orders", isTemporary=False),
                              Row(namespace="", tableName="recent", isTemporary=True)]
    assert spark_wh.sql("SHOW TABLES IN default").collect() == [
        Row(namespace="", tableName="recent", isTemporary=True)]
    assert spark_wh.sql("SHOW TABLES LIKE 'ord*'").collect() == [
        Row(namespace="sales", tableName="orders", isTemporary=False)]


def test_values_as_a_relation(spark: SparkSession) -> None:
    df = spark.sql("SELECT * FROM VALUES (1, 'a'), (2, 'b')")
    assert df.columns == ["col1", "col2"]
    assert df.schema.simpleString() == "struct<col1:int,col2:string>"
    assert df.collect() == [Row(col1=1, col2="a"), Row(col1=2, col2="b")]


@pytest.mark.parametrize(("statement", "construct"), [
    ("CREATE VIEW v AS SELECT 1", "persistent views"),
    ("SHOW FUNCTIONS", "SHOW FUNCTIONS"),
    ("DROP DATABASE sales", "DROP DATABASE"),
    ("ALTER TABLE t ADD COLUMN x INT", "ALTER"),
])
def test_unsupported_commands_name_themselves(spark_wh: SparkSession, statement: str,
                                              construct: str) -> None:
    with pytest.raises(AnalysisException, match="UNSUPPORTED_SQL") as info:
        spark_wh.sql(statement)
    assert construct in str(info.value)


def test_insert_from_a_stream_fails_as_in_spark(spark_wh: SparkSession) -> None:
    spark_wh.sql("CREATE TABLE sink_table (value BIGINT, timestamp TIMESTAMP)")
    spark_wh.readStream.format("rate").load().createOrReplaceTempView("ticks")
    with pytest.raises(AnalysisException, match="writeStream"):
        spark_wh.sql("INSERT INTO sink_table SELECT value, timestamp FROM ticks")
