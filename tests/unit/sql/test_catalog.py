"""spark.catalog: temporary and global temporary views, warehouse tables, databases."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import Row, SparkSession
from unbounded.sql.catalog import Column, Database, Table, TableMetadata, parse_table_name


@pytest.fixture
def warehouse(spark: SparkSession, tmp_path: Path) -> Path:
    folder = tmp_path / "warehouse"
    spark.conf.set("spark.sql.warehouse.dir", str(folder))
    return folder


def test_temp_views_list_exist_and_drop(spark: SparkSession, warehouse: Path) -> None:
    spark.range(2).createOrReplaceTempView("B_view")
    spark.range(3).createTempView("a_view")
    assert spark.catalog.listTables() == [
        Table("a_view", None, [], None, "TEMPORARY", True),
        Table("b_view", None, [], None, "TEMPORARY", True)]
    assert spark.catalog.tableExists("b_VIEW")
    assert spark.catalog.dropTempView("b_view") is True
    assert spark.catalog.dropTempView("b_view") is False
    assert not spark.catalog.tableExists("b_view")
    assert [t.name for t in spark.catalog.listTables()] == ["a_view"]


def test_create_temp_view_refuses_an_existing_name(spark: SparkSession) -> None:
    spark.range(1).createTempView("once")
    with pytest.raises(AnalysisException, match="TEMP_TABLE_OR_VIEW_ALREADY_EXISTS"):
        spark.range(1).createTempView("once")
    spark.range(5).createOrReplaceTempView("once")
    assert spark.table("once").count() == 5


def test_global_temp_views_are_shared_by_sessions(spark: SparkSession) -> None:
    spark.createDataFrame([(1, "x")], "id INT, s STRING").createOrReplaceGlobalTempView("g")
    other = SparkSession.builder.create()
    try:
        assert other.sql("SELECT s FROM global_temp.g").collect() == [Row(s="x")]
        assert other.table("global_temp.g").count() == 1
        assert spark.catalog.tableExists("global_temp.g")
        assert Table("g", None, ["global_temp"], None, "TEMPORARY", True) in \
            spark.catalog.listTables("global_temp")
        with pytest.raises(AnalysisException, match="TEMP_TABLE_OR_VIEW_ALREADY_EXISTS"):
            spark.range(1).createGlobalTempView("g")
        assert other.catalog.dropGlobalTempView("g") is True
        assert not spark.catalog.tableExists("global_temp.g")
        with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
            spark.table("global_temp.g")
    finally:
        other.stop()


def test_saved_table_is_listed_read_and_stored_in_the_warehouse(
        spark: SparkSession, warehouse: Path) -> None:
    spark.createDataFrame([(1, "a"), (2, "b")], "id INT, s STRING").write.saveAsTable("People")
    assert spark.catalog.listTables() == [
        Table("people", "spark_catalog", ["default"], None, "MANAGED", False)]
    assert spark.catalog.tableExists("default.people")
    assert spark.catalog.getTable("people") == Table(
        "people", "spark_catalog", ["default"], None, "MANAGED", False)
    assert sorted(spark.table("people").collect()) == [Row(id=1, s="a"), Row(id=2, s="b")]
    assert spark.sql("SELECT s FROM default.people WHERE id = 2").collect() == [Row(s="b")]
    files = os.listdir(warehouse / "people")
    assert any(f.endswith(".snappy.parquet") for f in files)
    metadata = json.loads((warehouse / "people" / "_unbounded_table.json").read_text())
    assert (metadata["version"], metadata["format"]) == (1, "parquet")


def test_table_metadata_rejects_an_unknown_version(tmp_path: Path) -> None:
    (tmp_path / "_unbounded_table.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(AnalysisException, match="version 99"):
        TableMetadata.read(str(tmp_path))


def test_databases_and_current_database(spark: SparkSession, warehouse: Path) -> None:
    assert spark.catalog.currentDatabase() == "default"
    assert spark.catalog.listDatabases() == [
        Database("default", "spark_catalog", "default database", f"file:{warehouse}")]
    (warehouse / "sales.db").mkdir(parents=True)
    assert spark.catalog.databaseExists("sales")
    spark.catalog.setCurrentDatabase("sales")
    spark.range(2).write.saveAsTable("orders")
    assert os.path.isdir(warehouse / "sales.db" / "orders")
    assert [t.name for t in spark.catalog.listTables("sales")] == ["orders"]
    assert spark.catalog.listTables("default") == []
    with pytest.raises(AnalysisException, match="SCHEMA_NOT_FOUND"):
        spark.catalog.setCurrentDatabase("nope")


def test_missing_table_fails_with_spark_error_class(spark: SparkSession,
                                                    warehouse: Path) -> None:
    with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
        spark.table("missing")
    assert spark.catalog.tableExists("missing") is False


def test_path_tables_in_sql(spark: SparkSession, tmp_path: Path) -> None:
    out = str(tmp_path / "data")
    spark.createDataFrame([(7,)], "n INT").write.json(out)
    assert spark.sql(f"SELECT n FROM json.`{out}`").collect() == [Row(n=7)]


def test_parse_table_name_handles_backquotes() -> None:
    assert parse_table_name("db.t") == ["db", "t"]
    assert parse_table_name("delta.`/a/b.c`") == ["delta", "/a/b.c"]
    assert parse_table_name("`we``ird`") == ["we`ird"]
    with pytest.raises(AnalysisException, match="INVALID_IDENTIFIER"):
        parse_table_name("a..b")


def test_list_columns_of_a_table_and_a_view(spark: SparkSession, warehouse: Path) -> None:
    df = spark.createDataFrame([(1, "a", "x")], "id INT, name STRING, grp STRING")
    df.write.partitionBy("grp").saveAsTable("parts")
    assert spark.catalog.listColumns("parts") == [
        Column("id", None, "int", True, False, False, False),
        Column("name", None, "string", True, False, False, False),
        Column("grp", None, "string", True, True, False, False)]
    df.createOrReplaceTempView("v")
    assert [c.name for c in spark.catalog.listColumns("v")] == ["id", "name", "grp"]


def test_partitioned_table_reads_partition_columns_with_declared_types(
        spark: SparkSession, warehouse: Path) -> None:
    df = spark.createDataFrame([(1, "x", 5), (2, "y", 6), (3, None, 5)],
                               "id INT, g STRING, n INT")
    df.write.partitionBy("g", "n").saveAsTable("parts")
    assert sorted(os.listdir(warehouse / "parts")) == [
        "_SUCCESS", "_unbounded_table.json", "g=__HIVE_DEFAULT_PARTITION__", "g=x", "g=y"]
    table = spark.table("parts")
    assert table.schema.simpleString() == "struct<id:int,g:string,n:int>"
    assert sorted(table.collect(), key=lambda r: r.id) == [
        Row(id=1, g="x", n=5), Row(id=2, g="y", n=6), Row(id=3, g=None, n=5)]
    spark.sql("INSERT INTO parts VALUES (4, 'x', 7)")
    assert spark.sql("SELECT g, sum(id) AS s FROM parts GROUP BY g ORDER BY g").collect() == [
        Row(g=None, s=3), Row(g="x", s=5), Row(g="y", s=2)]
    with pytest.raises(AnalysisException, match="partitioned table"):
        spark.readStream.table("parts")


def test_empty_partitioned_table_has_its_schema(spark: SparkSession, warehouse: Path) -> None:
    spark.sql("CREATE TABLE e (a INT, p STRING) PARTITIONED BY (p)")
    assert spark.table("e").columns == ["a", "p"]
    assert spark.table("e").collect() == []
