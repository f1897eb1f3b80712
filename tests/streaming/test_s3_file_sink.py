"""The file sink writing to an S3 URL (issue 13): data files are uploaded, the
``_spark_metadata`` entry published with a conditional create is the batch's commit
point, so across a restart, and a crash between the data files and the entry, every row
is in the output once as the manifest lists it. Against moto's S3 server on loopback."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest

from s3_fixtures import fsspec_s3_env
from unbounded.errors import CheckpointConflictError, ConcurrentQueryError
from unbounded.files.listing import list_data_files
from unbounded.files.manifest import FileSinkManifest

pytestmark = pytest.mark.timeout(180)
JOB = os.path.join(os.path.dirname(__file__), "s3_sink_job.py")
LEASE_MS = 3000


def _fs():
    return fsspec.filesystem("s3", use_listings_cache=False)


def _write_input(folder: Path, index: int, rows: list[tuple[str, int]]) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / f"in-{index}.json"
    path.write_text("".join(json.dumps({"word": w, "n": n}) + "\n" for w, n in rows))
    os.utime(path, (1_700_000_000 + index, 1_700_000_000 + index))


def _start(spark, tmp_path: Path, output: str, checkpoint: str):
    rows = (spark.readStream.schema("word STRING, n INT").option("maxFilesPerTrigger", 1)
            .json(str(tmp_path / "in")).selectExpr("word", "n * 10 AS n10"))
    return (rows.writeStream.format("parquet").option("path", output)
            .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())


def _run(query) -> None:
    query.awaitTermination(60)
    assert query.exception() is None, query.exception()


def _rows(urls: list[str]) -> list[tuple]:
    fs = _fs()
    rows = [r for u in urls for r in pq.read_table(io.BytesIO(fs.cat_file(u))).to_pylist()]
    return sorted((r["word"], r["n10"]) for r in rows)


def _data_objects(output: str) -> list[str]:
    return sorted(f"s3://{p}" for p in _fs().find(output) if p.endswith(".parquet"))


def test_a_file_sink_at_an_s3_url_restarts_and_lists_each_row_once(
        spark, tmp_path, s3_bucket):
    output, checkpoint = f"{s3_bucket}/out", f"{s3_bucket}/cp"
    _write_input(tmp_path / "in", 0, [("a", 1), ("b", 2)])
    _write_input(tmp_path / "in", 1, [("c", 3)])
    _run(_start(spark, tmp_path, output, checkpoint))
    manifest = FileSinkManifest(output)
    assert manifest.latest_batch_id() == 1
    assert _rows(manifest.existing_files()) == [("a", 10), ("b", 20), ("c", 30)]

    _write_input(tmp_path / "in", 2, [("d", 4)])
    _run(_start(spark, tmp_path, output, checkpoint))
    files = manifest.existing_files()
    assert all(f.startswith(f"{output}/part-") for f in files)
    assert sorted(files) == _data_objects(output)
    assert _rows(files) == [("a", 10), ("b", 20), ("c", 30), ("d", 40)]
    assert sorted(f.path for f in list_data_files(output)) == sorted(files)


def test_a_crash_between_the_data_files_and_the_manifest_entry_writes_each_row_once(
        spark, tmp_path, s3_bucket, s3_server, python_env):
    """The child driver uploads batch 1's data files and is SIGKILLed before the entry
    ``_spark_metadata/1``; the restart runs batch 1 again. The dead attempt's file stays in
    the bucket, but the manifest, which readers follow, lists only the committed ones."""
    output, checkpoint = f"{s3_bucket}/out", f"{s3_bucket}/cp"
    _write_input(tmp_path / "in", 0, [("a", 1)])
    _write_input(tmp_path / "in", 1, [("b", 2), ("c", 3)])
    env = {**python_env, **fsspec_s3_env(s3_server), "UNBOUNDED_FAULT": "mid-sink-write@1"}
    child = subprocess.run([sys.executable, JOB, str(tmp_path / "in"), output, checkpoint,
                            str(LEASE_MS)], env=env, capture_output=True, timeout=120,
                           check=False)
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    assert FileSinkManifest(output).latest_batch_id() == 0
    orphans = _data_objects(output)
    assert len(orphans) == 2  # batch 0's, and batch 1's that no entry names

    spark.conf.set("spark.unbounded.checkpoint.leaseTimeoutMs", str(LEASE_MS))
    deadline = time.monotonic() + 4 * LEASE_MS / 1000
    while True:  # the killed driver's lease expires first
        try:
            query = _start(spark, tmp_path, output, checkpoint)
            break
        except ConcurrentQueryError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    _run(query)
    files = FileSinkManifest(output).existing_files()
    assert _rows(files) == [("a", 10), ("b", 20), ("c", 30)]
    assert len(_data_objects(output)) == 3 and len(files) == 2
    assert sorted(f.path for f in list_data_files(output)) == sorted(files)


def test_a_manifest_entry_at_an_s3_url_is_published_once(s3_bucket):
    """Two writers of one batch: the conditional create refuses the second."""
    output = f"{s3_bucket}/out"
    _fs().pipe_file(f"{output}/part-0.parquet", b"x")
    first, second = FileSinkManifest(output), FileSinkManifest(output)
    first.add_batch(0, [{"path": f"{output}/part-0.parquet", "size": 1}])
    with pytest.raises(CheckpointConflictError, match=r"_spark_metadata/0 was already "
                       "written"):
        second.add_batch(0, [{"path": f"{output}/part-1.parquet", "size": 1}])
    assert first.all_files() == [f"{output}/part-0.parquet"]


def test_a_url_folder_without_a_manifest_lists_its_visible_objects(s3_bucket):
    fs = _fs()
    for name in ("a.json", "sub/b.json", "_SUCCESS", ".hidden", "_tmp/c.json",
                 "k=1/d.json"):
        fs.pipe_file(f"{s3_bucket}/in/{name}", b"{}\n")
    listed = [f.path for f in list_data_files(f"{s3_bucket}/in")]
    assert sorted(listed) == [f"{s3_bucket}/in/{n}" for n in ("a.json", "k=1/d.json",
                                                              "sub/b.json")]
    assert {f.size for f in list_data_files(f"{s3_bucket}/in")} == {3}


def test_the_manifest_at_an_s3_url_compacts_and_deletes_the_entries_it_covers(s3_bucket):
    """Every second batch is a compact file holding every live entry; log files older
    than the previous compact file are deleted, through the store."""
    output = f"{s3_bucket}/out"
    manifest = FileSinkManifest(output, compact_interval=2)
    for batch in range(6):
        manifest.add_batch(batch, [{"path": f"{output}/part-{batch}.parquet", "size": 1}])
    names = sorted(n.rsplit("/", 1)[1] for n in _fs().ls(manifest.metadata_path,
                                                             detail=False))
    assert [n for n in names if not n.startswith(".")] == ["3.compact", "4", "5.compact"]
    assert FileSinkManifest(output).all_files() == [f"{output}/part-{b}.parquet"
                                                    for b in range(6)]


def test_a_partitioned_file_sink_at_an_s3_url_writes_partition_folders(
        spark, tmp_path, s3_bucket):
    output, checkpoint = f"{s3_bucket}/out", f"{s3_bucket}/cp"
    _write_input(tmp_path / "in", 0, [("a", 1), ("b", 2), ("a", 3)])
    rows = (spark.readStream.schema("word STRING, n INT").json(str(tmp_path / "in")))
    _run(rows.writeStream.format("json").partitionBy("word").option("path", output)
         .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())
    files = sorted(FileSinkManifest(output).existing_files())
    assert [f.removeprefix(f"{output}/").split("/")[0] for f in files] == ["word=a", "word=b"]
    assert [sorted(json.loads(line)["n"] for line in _fs().cat_file(f).decode().split())
            for f in files] == [[1, 3], [2]]
