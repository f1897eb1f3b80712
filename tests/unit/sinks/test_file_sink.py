"""The file sink: formats, partition folders, manifest, replay and reading it back."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest

from unbounded.errors import AnalysisException
from unbounded.files.manifest import FileSinkManifest
from unbounded.sinks.base import MicroBatch, SinkContext
from unbounded.sinks.files import FileSink
from unbounded.testing import MemoryStream


def _ctx(path, partition_by=(), mode="append", **options):
    return SinkContext("qid", None, {"path": str(path), **options}, mode, None, partition_by)


def _batch(batch_id, rows, schema=("id", "name")):
    table = pa.table({n: [r[i] for r in rows] for i, n in enumerate(schema)})
    return MicroBatch(batch_id, table.schema, [table])


def _data_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root)
                  for f in fs if "_spark_metadata" not in d)


def _run(spark, fmt, out, cp, rows, **writer):
    stream = MemoryStream("id LONG, name STRING", spark)
    w = stream.toDF().writeStream.format(fmt).option("checkpointLocation", str(cp))
    for key, value in writer.items():
        w = w.option(key, value)
    q = w.start(str(out))
    try:
        for block in rows:
            stream.addData(block)
            q.processAllAvailable(30)
    finally:
        q.stop()


@pytest.mark.parametrize("fmt", ["parquet", "json", "csv"])
def test_each_format_round_trips_through_spark_read(spark, tmp_path, fmt):
    out = tmp_path / "out"
    _run(spark, fmt, out, tmp_path / "cp", [[(1, "a"), (2, "b")], [(3, None)]])
    assert FileSinkManifest(str(out)).latest_batch_id() == 1
    reader = spark.read.schema("id LONG, name STRING") if fmt != "parquet" else spark.read
    df = getattr(reader, fmt)(str(out))
    assert sorted(tuple(r) for r in df.collect()) == [(1, "a"), (2, "b"), (3, None)]
    suffix = {"parquet": ".snappy.parquet", "json": ".json", "csv": ".csv"}[fmt]
    assert all(f.startswith("part-") and f.endswith(suffix) for f in _data_files(out))


def test_json_files_hold_one_object_per_line(spark, tmp_path):
    out = tmp_path / "out"
    _run(spark, "json", out, tmp_path / "cp", [[(1, "a"), (2, "b")]])
    [name] = _data_files(out)
    lines = (out / name).read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == [1, 2]


def test_csv_header_option_writes_a_header_line(spark, tmp_path):
    out = tmp_path / "out"
    _run(spark, "csv", out, tmp_path / "cp", [[(1, "a")]], header="true")
    [name] = _data_files(out)
    assert (out / name).read_text().splitlines() == ["id,name", "1,a"]


def test_partition_by_writes_column_equals_value_folders(spark, tmp_path):
    out = tmp_path / "out"
    stream = MemoryStream("id LONG, country STRING", spark)
    q = (stream.toDF().writeStream.format("parquet").partitionBy("country")
         .option("checkpointLocation", str(tmp_path / "cp")).start(str(out)))
    try:
        stream.addData([(1, "de"), (2, "fr"), (3, "de"), (4, None)])
        q.processAllAvailable(30)
    finally:
        q.stop()
    folders = sorted({f.split(os.sep)[0] for f in _data_files(out)})
    assert folders == ["country=__HIVE_DEFAULT_PARTITION__", "country=de", "country=fr"]
    de_files = [f for f in _data_files(out) if f.startswith("country=de")]
    read_de = spark.read.parquet(*(str(out / f) for f in de_files))
    assert read_de.columns == ["id"]
    assert sorted(r.id for r in read_de.collect()) == [1, 3]


def test_a_replayed_batch_id_is_skipped(tmp_path):
    sink = FileSink("parquet", _ctx(tmp_path))
    sink.add_batch(0, _batch(0, [(1, "a")]))
    first = _data_files(tmp_path)
    sink.add_batch(0, _batch(0, [(1, "a"), (9, "again")]))
    assert _data_files(tmp_path) == first
    assert sink.last_committed_batch() == 0
    sink.add_batch(1, _batch(1, [(2, "b")]))
    assert len(_data_files(tmp_path)) == 2
    assert FileSinkManifest(str(tmp_path)).latest_batch_id() == 1


def _parts_batch(batch_id, *parts):
    tables = [pa.table({"id": list(ids)}) for ids in parts]
    return MicroBatch(batch_id, tables[0].schema, tables)


def test_a_small_batch_s_parts_are_written_as_one_file_with_every_row(spark, tmp_path):
    sink = FileSink("parquet", _ctx(tmp_path))
    sink.add_batch(0, _parts_batch(0, [1, 2], [], [3]))
    assert len(_data_files(tmp_path)) == 1
    assert sorted(r.id for r in spark.read.parquet(str(tmp_path)).collect()) == [1, 2, 3]
    [listed] = FileSinkManifest(str(tmp_path)).all_files()
    assert listed.endswith(_data_files(tmp_path)[0])


def test_a_large_batch_s_parts_are_written_one_file_each(tmp_path, monkeypatch):
    monkeypatch.setattr("unbounded.sinks.files.SMALL_BATCH_ROWS", 4)
    sink = FileSink("parquet", _ctx(tmp_path))
    sink.add_batch(0, _parts_batch(0, [1, 2], [3, 4]))
    assert len(_data_files(tmp_path)) == 2


def test_reader_ignores_files_not_in_the_manifest(spark, tmp_path):
    sink = FileSink("parquet", _ctx(tmp_path))
    sink.add_batch(0, _batch(0, [(1, "a")]))
    # a crashed attempt of batch 1 left a file but no manifest entry
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [666], "name": ["ghost"]}),
                   tmp_path / "part-00000-crashed.c000.snappy.parquet")
    assert [tuple(r) for r in spark.read.parquet(str(tmp_path)).collect()] == [(1, "a")]


def test_empty_batches_write_no_files_but_are_recorded(tmp_path):
    sink = FileSink("json", _ctx(tmp_path))
    sink.add_batch(0, MicroBatch(0, pa.schema([("id", pa.int64())]), []))
    assert _data_files(tmp_path) == []
    assert FileSinkManifest(str(tmp_path)).latest_batch_id() == 0


def test_file_sink_needs_a_path_and_append_mode(tmp_path):
    with pytest.raises(AnalysisException, match="needs an output path"):
        FileSink("parquet", SinkContext("q", None, {}, "append", None))
    with pytest.raises(AnalysisException, match="does not support complete output mode"):
        FileSink("parquet", _ctx(tmp_path, mode="complete"))
