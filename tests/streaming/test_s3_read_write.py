"""Batch reads and writes, and the streaming file source, at an S3 URL (issue 13):
``df.write`` uploads its files under the URL (never a local folder named ``s3:``),
``spark.read`` and ``readStream`` list and open objects through the store, partitions
are discovered from ``col=value`` prefixes, and a URL that names nothing is
PATH_NOT_FOUND. Against moto's S3 server on loopback."""

from __future__ import annotations

import os

import fsspec
import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import functions as F

pytestmark = pytest.mark.timeout(180)
ROWS = [("a", 1, "x"), ("b", 2, "y"), ("c", 3, "x")]


def _fs():
    return fsspec.filesystem("s3", use_listings_cache=False)


def _frame(spark):
    return spark.createDataFrame(ROWS, "word STRING, n INT, part STRING")


def _sorted(df) -> list[tuple]:
    return sorted(tuple(r) for r in df.collect())


@pytest.mark.parametrize("fmt", ["parquet", "json", "csv", "orc", "avro"])
def test_a_batch_write_to_s3_reads_back_through_the_store(spark, s3_bucket, fmt,
                                                           tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a local 's3:' folder would appear here
    out = f"{s3_bucket}/{fmt}"
    writer = _frame(spark).write.format(fmt)
    if fmt == "csv":
        writer = writer.option("header", "true")
    writer.save(out)
    objects = list(_fs().find(out))
    assert any(p.endswith("/_SUCCESS") for p in objects)
    assert len([p for p in objects if "/part-" in p]) >= 1
    assert not os.path.exists(tmp_path / "s3:")
    reader = spark.read.format(fmt)
    if fmt == "csv":
        reader = reader.option("header", "true").schema("word STRING, n INT, part STRING")
    # JSON's inferred schema sorts its fields, as Spark's does
    assert _sorted(reader.load(out).select("word", "n", "part")) == sorted(ROWS)


def test_partitioned_write_at_s3_discovers_its_partitions(spark, s3_bucket):
    out = f"{s3_bucket}/by_part"
    _frame(spark).write.partitionBy("part").parquet(out)
    assert sorted(p.split("/")[-1] for p in _fs().ls(out)) == ["_SUCCESS", "part=x", "part=y"]
    df = spark.read.parquet(out)
    assert df.columns == ["word", "n", "part"]
    assert _sorted(df) == sorted(ROWS)
    assert _sorted(df.where("part = 'y'").select("word")) == [("b",)]


def test_save_modes_at_s3(spark, s3_bucket):
    out = f"{s3_bucket}/modes"
    _frame(spark).write.parquet(out)
    with pytest.raises(AnalysisException, match="PATH_ALREADY_EXISTS"):
        _frame(spark).write.parquet(out)
    _frame(spark).write.mode("ignore").parquet(out)
    assert len(spark.read.parquet(out).collect()) == 3
    _frame(spark).write.mode("append").parquet(out)
    assert len(spark.read.parquet(out).collect()) == 6
    spark.createDataFrame([("z", 9, "q")], "word STRING, n INT, part STRING") \
        .write.mode("overwrite").parquet(out)
    assert _sorted(spark.read.parquet(out)) == [("z", 9, "q")]


def test_a_missing_url_is_path_not_found(spark, s3_bucket):
    with pytest.raises(AnalysisException, match=r"PATH_NOT_FOUND.*s3://.*/nothing"):
        spark.read.parquet(f"{s3_bucket}/nothing").collect()


def test_writers_that_stay_local_refuse_a_url(spark, s3_bucket, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AnalysisException, match="not supported at a URL"):
        _frame(spark).write.format("delta").save(f"{s3_bucket}/delta")
    assert not os.path.exists(tmp_path / "s3:")


def test_read_stream_from_an_s3_folder_takes_each_object_once(spark, s3_bucket, tmp_path):
    source = f"{s3_bucket}/in"
    fs = _fs()
    fs.pipe(f"{source}/a.json", b'{"word": "a", "n": 1}\n{"word": "b", "n": 2}\n')
    fs.pipe(f"{source}/_hidden.json", b'{"word": "h", "n": 0}\n')

    def run() -> None:
        rows = spark.readStream.schema("word STRING, n INT").json(source)
        query = (rows.writeStream.format("parquet").option("path", str(tmp_path / "out"))
                 .option("checkpointLocation", str(tmp_path / "cp"))
                 .trigger(availableNow=True).start())
        query.awaitTermination(60)
        assert query.exception() is None, query.exception()

    run()
    fs.pipe(f"{source}/b.json", b'{"word": "c", "n": 3}\n')
    run()
    assert _sorted(spark.read.parquet(str(tmp_path / "out"))) == [
        ("a", 1), ("b", 2), ("c", 3)]


def test_read_stream_from_s3_discovers_partitions_and_deletes_committed_objects(
        spark, s3_bucket, tmp_path):
    source = f"{s3_bucket}/parted"
    fs = _fs()
    fs.pipe(f"{source}/day=1/a.json", b'{"word": "a"}\n')
    fs.pipe(f"{source}/day=2/b.json", b'{"word": "b"}\n')
    rows = spark.readStream.schema("word STRING").option("cleanSource", "delete").json(source)
    assert rows.columns == ["word", "day"]
    query = (rows.writeStream.format("parquet").option("path", str(tmp_path / "out"))
             .option("checkpointLocation", str(tmp_path / "cp"))
             .trigger(availableNow=True).start())
    query.awaitTermination(60)
    assert query.exception() is None, query.exception()
    assert _sorted(spark.read.parquet(str(tmp_path / "out"))) == [("a", 1), ("b", 2)]
    assert [p for p in fs.find(source) if p.endswith(".json")] == []


def test_archiving_source_objects_at_a_url_is_refused(spark, s3_bucket, tmp_path):
    _fs().pipe(f"{s3_bucket}/in/a.json", b'{"word": "a"}\n')
    with pytest.raises(AnalysisException, match="cannot do"):
        (spark.readStream.schema("word STRING").option("cleanSource", "archive")
         .option("sourceArchiveDir", str(tmp_path / "archive")).json(f"{s3_bucket}/in")
         .writeStream.format("console").start())


def test_the_state_reader_reads_a_checkpoint_at_s3(spark, s3_bucket, tmp_path):
    source, checkpoint = tmp_path / "in", f"{s3_bucket}/cp"
    source.mkdir()
    (source / "0.json").write_text('{"k":"a","v":1}\n{"k":"b","v":2}\n{"k":"a","v":3}\n')
    counts = (spark.readStream.schema("k STRING, v LONG").json(str(source))
              .groupBy("k").agg(F.count("*").alias("n")))
    query = (counts.writeStream.format("memory").queryName("s3_counts")
             .outputMode("complete").option("checkpointLocation", checkpoint)
             .trigger(availableNow=True).start())
    query.awaitTermination(60)
    assert query.exception() is None, query.exception()
    state = spark.read.format("statestore").load(checkpoint)
    assert sorted((r.key.k, r.value[0]) for r in state.collect()) == [("a", 2), ("b", 1)]
    assert spark.read.format("state-metadata").load(checkpoint).count() == 1
