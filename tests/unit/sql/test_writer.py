"""DataFrame.write: formats, save modes, partitionBy, options, saveAsTable, insertInto."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import Row, SparkSession


@pytest.fixture
def people(spark: SparkSession, tmp_path: Path):  # type: ignore[no-untyped-def]
    spark.conf.set("spark.sql.warehouse.dir", str(tmp_path / "warehouse"))
    return spark.createDataFrame([(1, "a", "x"), (2, "b", "y"), (3, "c", "x")],
                                 "id INT, name STRING, grp STRING")


def data_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and not p.name.startswith(("_", ".")))


@pytest.mark.parametrize("fmt", ["parquet", "orc", "avro", "json"])
def test_each_format_round_trips_rows(people, tmp_path: Path, fmt: str) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    people.write.format(fmt).save(str(out))
    spark = people.sparkSession
    back = spark.read.format(fmt).load(str(out)).select("id", "name", "grp")  # JSON sorts
    assert sorted(back.collect()) == [
        Row(id=1, name="a", grp="x"), Row(id=2, name="b", grp="y"), Row(id=3, name="c", grp="x")]
    assert (out / "_SUCCESS").exists()
    assert not (out / "_temporary").exists()


def test_csv_options_header_and_separator(people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "csv"
    people.write.option("header", True).option("sep", ";").csv(str(out))
    (only,) = data_files(out)
    assert (out / only).read_text().splitlines() == ["id;name;grp", "1;a;x", "2;b;y", "3;c;x"]


def test_text_writes_one_line_per_row(people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "txt"
    people.select("name").write.text(str(out))
    (only,) = data_files(out)
    assert (out / only).read_text() == "a\nb\nc\n"


def test_save_modes(people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = str(tmp_path / "modes")
    spark = people.sparkSession
    people.write.parquet(out)
    with pytest.raises(AnalysisException, match="PATH_ALREADY_EXISTS"):
        people.write.parquet(out)
    with pytest.raises(AnalysisException, match="PATH_ALREADY_EXISTS"):
        people.write.mode("errorifexists").parquet(out)
    people.limit(1).write.mode("append").parquet(out)
    assert spark.read.parquet(out).count() == 4
    people.limit(1).write.mode("ignore").parquet(out)
    assert spark.read.parquet(out).count() == 4
    people.filter("id = 3").write.mode("overwrite").parquet(out)
    assert spark.read.parquet(out).collect() == [Row(id=3, name="c", grp="x")]
    with pytest.raises(AnalysisException, match="INVALID_SAVE_MODE"):
        people.write.mode("sometimes")


def test_partition_by_writes_hive_folders_without_the_column(people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "parts"
    people.write.partitionBy("grp").format("json").save(str(out))
    files = data_files(out)
    assert [f.split(os.sep)[0] for f in files] == ["grp=x", "grp=y"]
    spark = people.sparkSession
    x_rows = spark.read.json(str(out / "grp=x")).collect()
    assert sorted(x_rows) == [Row(id=1, name="a"), Row(id=3, name="c")]


def test_partition_by_unknown_column_fails(people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AnalysisException, match="nope"):
        people.write.partitionBy("nope").parquet(str(tmp_path / "x"))


def test_write_on_a_stream_points_to_write_stream(spark: SparkSession) -> None:
    stream = spark.readStream.format("rate").load()
    with pytest.raises(AnalysisException, match="writeStream"):
        stream.write  # noqa: B018


def test_save_as_table_modes(people) -> None:  # type: ignore[no-untyped-def]
    spark = people.sparkSession
    people.write.saveAsTable("t")
    with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_ALREADY_EXISTS"):
        people.write.saveAsTable("t")
    people.write.mode("ignore").saveAsTable("t")
    assert spark.table("t").count() == 3
    # append matches columns by name, as Spark's saveAsTable does
    people.select("grp", "name", "id").filter("id = 1").write.mode("append").saveAsTable("t")
    assert sorted(spark.table("t").collect())[:2] == [Row(id=1, name="a", grp="x")] * 2
    people.select("id").write.mode("overwrite").format("json").saveAsTable("t")
    assert sorted(spark.table("t").collect()) == [Row(id=1), Row(id=2), Row(id=3)]
    with pytest.raises(AnalysisException, match="doesn't match the specified format"):
        people.select("id").write.mode("append").format("parquet").saveAsTable("t")


def test_insert_into_matches_by_position_and_casts(people) -> None:  # type: ignore[no-untyped-def]
    spark = people.sparkSession
    people.write.saveAsTable("target")
    spark.createDataFrame([(9, "z", "q")], "num LONG, label STRING, g STRING") \
        .write.insertInto("target")
    assert sorted(spark.table("target").collect())[-1] == Row(id=9, name="z", grp="q")
    spark.createDataFrame([(7, "n", "m")], "a INT, b STRING, c STRING") \
        .write.insertInto("target", overwrite=True)
    assert spark.table("target").collect() == [Row(id=7, name="n", grp="m")]
    with pytest.raises(AnalysisException, match="INSERT_COLUMN_ARITY_MISMATCH"):
        spark.range(1).write.insertInto("target")
    with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
        spark.range(1).write.insertInto("absent")


def test_foreach_batch_writes_each_batch_with_the_batch_writer(spark: SparkSession,
                                                               tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.json").write_text('{"n": 1}\n{"n": 2}\n')
    out = str(tmp_path / "out")

    def write(batch, batch_id: int) -> None:  # type: ignore[no-untyped-def]
        batch.write.mode("append").format("orc").save(out)

    query = (spark.readStream.schema("n INT").json(str(src)).writeStream
             .foreachBatch(write).trigger(availableNow=True).start())
    query.awaitTermination(30)
    assert sorted(spark.read.orc(out).collect()) == [Row(n=1), Row(n=2)]


def test_delta_batch_writes_modes_versions_and_idempotent_txn(people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spark = people.sparkSession
    table = str(tmp_path / "delta")
    people.write.format("delta").save(table)
    with pytest.raises(AnalysisException, match="DELTA_PATH_EXISTS"):
        people.write.format("delta").save(table)
    people.limit(1).write.format("delta").mode("append").save(table)
    assert spark.read.format("delta").load(table).count() == 4
    assert spark.read.format("delta").option("versionAsOf", 0).load(table).count() == 3
    # foreachBatch's idempotent form: a txnVersion already committed by the app is skipped
    for _ in range(2):
        (people.limit(1).write.format("delta").mode("append")
         .option("txnAppId", "job").option("txnVersion", 7).save(table))
    assert spark.read.format("delta").load(table).count() == 5
    people.select("id").filter("id = 2").write.format("delta").mode("overwrite") \
        .option("overwriteSchema", "true").save(table)
    assert spark.read.format("delta").load(table).collect() == [Row(id=2)]
