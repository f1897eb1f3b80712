"""Checkpoints at an S3 URL, beyond the logs and the state (issue 13): the Delta source
keeps its start record there, `unbounded checkpoint inspect` and `validate` read a URL
checkpoint and its sink's manifest, and `rewind`, which moves files aside by renaming
them, refuses a URL naming what is unsupported. Against moto's S3 server on loopback."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

from s3_fixtures import fsspec_s3_env
from unbounded.cli import main
from unbounded.files.manifest import FileSinkManifest
from unbounded.sql import functions as F
from unbounded.tools.inspect import inspect_checkpoint
from unbounded.tools.rewind import UnsupportedLocationError, plan_rewind
from unbounded.tools.validate import validate_checkpoint

pytestmark = pytest.mark.timeout(180)


def _run(query) -> None:
    query.awaitTermination(60)
    assert query.exception() is None, query.exception()


def _output_rows(output: str, *columns: str) -> list[tuple]:
    fs = fsspec.filesystem("s3", use_listings_cache=False)
    tables = [pq.read_table(io.BytesIO(fs.cat_file(f)))
              for f in FileSinkManifest(output).existing_files()]
    return sorted(tuple(r[c] for c in columns) for t in tables for r in t.to_pylist())


def _delta_query(spark, table: Path, output: str, checkpoint: str):
    return (spark.readStream.format("delta").load(str(table)).selectExpr("id", "id * 2 AS d")
            .writeStream.format("parquet").option("path", output)
            .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())


def test_the_delta_source_keeps_its_start_in_an_s3_checkpoint_and_resumes(
        spark, tmp_path, s3_bucket, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a URL taken for a local path would show up here
    table, output, checkpoint = tmp_path / "t", f"{s3_bucket}/out", f"{s3_bucket}/cp"
    write_deltalake(str(table), pa.table({"id": [1, 2]}), mode="append")
    write_deltalake(str(table), pa.table({"id": [3]}), mode="append")
    _run(_delta_query(spark, table, output, checkpoint))
    fs = fsspec.filesystem("s3", use_listings_cache=False)
    start = fs.cat_file(f"{checkpoint}/sources/0/delta-start").decode()
    assert json.loads(start.split("\n")[-1])["reservoirVersion"] == 1
    assert not (tmp_path / "s3:").exists()

    write_deltalake(str(table), pa.table({"id": [4, 5]}), mode="append")
    _run(_delta_query(spark, table, output, checkpoint))
    assert _output_rows(output, "id", "d") == [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10)]


def _write_events(folder: Path, index: int, rows: list[tuple[str, str]]) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / f"in-{index}.json"
    path.write_text("".join(json.dumps({"ts": f"2026-01-01T{t}:00", "word": w}) + "\n"
                            for t, w in rows))
    os.utime(path, (1_700_000_000 + index, 1_700_000_000 + index))


@pytest.fixture
def windowed(spark, tmp_path, s3_bucket) -> tuple[str, str]:
    """A windowed count with its checkpoint and output on S3, after 3 batches."""
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    for i, rows in enumerate([[("10:01", "a")], [("10:02", "b")], [("10:20", "a")]]):
        _write_events(tmp_path / "in", i, rows)
    checkpoint, output = f"{s3_bucket}/cp", f"{s3_bucket}/out"
    df = (spark.readStream.schema("ts TIMESTAMP, word STRING")
          .option("maxFilesPerTrigger", 1).json(str(tmp_path / "in"))
          .withWatermark("ts", "5 minutes").groupBy(F.window("ts", "5 minutes"), "word")
          .count())
    _run(df.writeStream.format("parquet").outputMode("append").option("path", output)
         .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())
    return checkpoint, output


def test_inspect_reads_a_checkpoint_and_its_sink_at_an_s3_url(windowed):
    checkpoint, output = windowed
    report = inspect_checkpoint(checkpoint, output)
    assert report.path == checkpoint
    assert [(b.batch_id, b.committed) for b in report.batches] == [
        (0, True), (1, True), (2, True), (3, True)]  # 3: the no-data batch closing 10:00
    (operator,) = report.operators
    assert operator.num_partitions == 2
    assert sorted(s.partition_id for s in operator.stores) == [0, 1]
    assert all(s.latest_version == 4 and s.size_bytes > 0 for s in operator.stores)
    sink = report.sink_manifest
    assert sink is not None and sink.error is None and sink.path == output
    assert sink.batch_ids == [0, 1, 2, 3]
    assert sink.num_files == 1 and sink.size_bytes > 0  # the window 10:00 (a, b) in one


def test_inspect_on_the_command_line_reads_an_s3_checkpoint(windowed, capsys):
    checkpoint, _ = windowed
    assert main(["checkpoint", "inspect", "--json", checkpoint]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["path"] == checkpoint and len(doc["batches"]) == 4


def _damage(url: str) -> None:
    fs = fsspec.filesystem("s3", use_listings_cache=False)
    data = bytearray(fs.cat_file(url))
    data[len(data) // 2] ^= 0x04
    fs.pipe_file(url, bytes(data))


def test_validate_finds_an_s3_checkpoint_and_its_sink_sound(windowed):
    checkpoint, output = windowed
    assert validate_checkpoint(checkpoint, output) == []


def test_validate_names_each_damaged_or_missing_object_of_an_s3_checkpoint(windowed):
    checkpoint, output = windowed
    _damage(f"{checkpoint}/offsets/1")
    _damage(f"{checkpoint}/state/0/1/2.delta")
    (data_file,) = FileSinkManifest(output).all_files()
    fsspec.filesystem("s3", use_listings_cache=False).rm_file(data_file)
    problems = {p.file: p.message for p in validate_checkpoint(checkpoint, output)}
    assert set(problems) == {f"{checkpoint}/offsets/1", f"{checkpoint}/state/0/1/2.delta",
                             data_file}
    assert "CRC-32C" in problems[f"{checkpoint}/offsets/1"]
    assert problems[data_file] == (f"listed in the file sink manifest {output}/"
                                   "_spark_metadata but missing")


def test_rewind_refuses_an_s3_checkpoint_naming_what_is_unsupported(windowed):
    checkpoint, output = windowed
    with pytest.raises(UnsupportedLocationError, match=r"'unbounded checkpoint rewind' "
                       rf"does not support {checkpoint}: a folder at a URL .* an object "
                       "store has no rename"):
        plan_rewind(checkpoint, 1)
    with pytest.raises(UnsupportedLocationError, match=rf"does not support {output}"):
        plan_rewind("/tmp/local-cp", 1, output)


def test_the_command_line_validates_and_refuses_to_rewind_an_s3_checkpoint(
        windowed, s3_server, python_env):
    checkpoint, _ = windowed
    env = {**python_env, **fsspec_s3_env(s3_server)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "unbounded.cli", "checkpoint", *args],
                              capture_output=True, text=True, env=env, timeout=120,
                              check=False)

    validated = cli("validate", checkpoint)
    assert (validated.returncode, validated.stdout) == (0, f"{checkpoint}: sound\n")
    refused = cli("rewind", "--to", "1", "--yes", checkpoint)
    assert refused.returncode == 1, refused.stderr
    assert f"Refused: 'unbounded checkpoint rewind' does not support {checkpoint}" \
        in refused.stderr
