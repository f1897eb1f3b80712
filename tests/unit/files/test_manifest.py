from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from unbounded.errors import CheckpointConflictError, CheckpointCorruptError
from unbounded.files.formats import read_files
from unbounded.files.manifest import FileSinkManifest
from unbounded.sql.types import StructType


def data_file(folder: Path, name: str, text: str = "x\n") -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def manifest_lines(folder: Path, name: str) -> list[str]:
    return (folder / "_spark_metadata" / name).read_text().split("\n")


def test_empty_folder_has_no_batches(tmp_path: Path) -> None:
    manifest = FileSinkManifest(str(tmp_path))
    assert manifest.latest_batch_id() is None
    assert manifest.all_files() == []


def test_add_batch_writes_sparks_sink_log_format(tmp_path: Path) -> None:
    path = data_file(tmp_path, "part-0.json", "{}\n")
    FileSinkManifest(str(tmp_path)).add_batch(0, [{"path": path}])
    lines = manifest_lines(tmp_path, "0")
    assert lines[0] == "v1"
    entry = json.loads(lines[1])
    assert entry == {
        "path": f"file://{path}", "size": 3, "isDir": False,
        "modificationTime": os.stat(path).st_mtime_ns // 1_000_000,
        "blockReplication": 1, "blockSize": entry["blockSize"], "action": "add",
    }
    assert len(lines) == 2


def test_all_files_lists_every_added_file_in_order(tmp_path: Path) -> None:
    manifest = FileSinkManifest(str(tmp_path))
    a, b, c = (data_file(tmp_path, n) for n in ("a", "b", "c"))
    manifest.add_batch(0, [{"path": a}, {"path": b}])
    manifest.add_batch(1, [{"path": c}])
    assert manifest.all_files() == [a, b, c]
    assert manifest.latest_batch_id() == 1
    assert manifest.has_batch(1) and not manifest.has_batch(2)


def test_compaction_batch_is_written_as_compact_file_holding_all_live_entries(
        tmp_path: Path) -> None:
    manifest = FileSinkManifest(str(tmp_path), compact_interval=3)
    paths = [data_file(tmp_path, f"p{i}") for i in range(5)]
    for batch_id, path in enumerate(paths):
        manifest.add_batch(batch_id, [{"path": path}])
    names = sorted(n for n in os.listdir(tmp_path / "_spark_metadata") if not n.startswith("."))
    assert names == ["0", "1", "2.compact", "3", "4"]
    compact = manifest_lines(tmp_path, "2.compact")
    assert compact[0] == "v1"
    assert [json.loads(line)["path"] for line in compact[1:]] == [
        f"file://{p}" for p in paths[:3]]
    assert manifest.all_files() == paths
    assert manifest.latest_batch_id() == 4


def test_reader_starts_from_the_latest_compact_file(tmp_path: Path) -> None:
    manifest = FileSinkManifest(str(tmp_path), compact_interval=2)
    paths = [data_file(tmp_path, f"p{i}") for i in range(3)]
    for batch_id, path in enumerate(paths):
        manifest.add_batch(batch_id, [{"path": path}])
    os.remove(tmp_path / "_spark_metadata" / "0")  # retention may drop pre-compact files
    assert manifest.all_files() == paths


def test_default_compact_interval_is_ten(tmp_path: Path) -> None:
    manifest = FileSinkManifest(str(tmp_path))
    for batch_id in range(10):
        manifest.add_batch(batch_id, [{"path": data_file(tmp_path, f"p{batch_id}")}])
    assert os.path.exists(tmp_path / "_spark_metadata" / "9.compact")
    assert not os.path.exists(tmp_path / "_spark_metadata" / "9")
    assert len(manifest.all_files()) == 10


def test_delete_action_removes_a_file(tmp_path: Path) -> None:
    manifest = FileSinkManifest(str(tmp_path), compact_interval=2)
    a, b = data_file(tmp_path, "a"), data_file(tmp_path, "b")
    manifest.add_batch(0, [{"path": a}, {"path": b}])
    assert manifest.all_files() == [a, b]
    manifest.add_batch(1, [{"path": a, "action": "delete"}])
    assert manifest.all_files() == [b]
    compact = manifest_lines(tmp_path, "1.compact")
    assert [json.loads(line)["path"] for line in compact[1:]] == [f"file://{b}"]


def test_second_write_of_a_batch_fails(tmp_path: Path) -> None:
    manifest = FileSinkManifest(str(tmp_path))
    manifest.add_batch(0, [{"path": data_file(tmp_path, "a")}])
    with pytest.raises(CheckpointConflictError):
        manifest.add_batch(0, [{"path": data_file(tmp_path, "b")}])


def test_unknown_version_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "_spark_metadata").mkdir()
    (tmp_path / "_spark_metadata" / "0").write_text('v2\n{"path":"file:///x"}\n')
    with pytest.raises(CheckpointCorruptError, match="v2"):
        FileSinkManifest(str(tmp_path)).all_files()


def test_missing_batch_in_the_middle_is_corruption(tmp_path: Path) -> None:
    manifest = FileSinkManifest(str(tmp_path))
    for batch_id in range(3):
        manifest.add_batch(batch_id, [{"path": data_file(tmp_path, f"p{batch_id}")}])
    os.remove(tmp_path / "_spark_metadata" / "1")
    with pytest.raises(CheckpointCorruptError, match="batch 1"):
        manifest.all_files()


def test_reads_hadoop_style_file_uris_written_by_spark(tmp_path: Path) -> None:
    path = data_file(tmp_path, "part 0.txt")
    meta = tmp_path / "_spark_metadata"
    meta.mkdir()
    uri = "file:" + path.replace(" ", "%20")
    (meta / "0").write_text("v1\n" + json.dumps({"path": uri, "action": "add"}))
    assert FileSinkManifest(str(tmp_path)).all_files() == [path]


def test_reading_the_folder_skips_files_not_in_the_manifest(tmp_path: Path) -> None:
    manifest = FileSinkManifest(str(tmp_path))
    committed = data_file(tmp_path, "part-0.txt", "committed\n")
    data_file(tmp_path, "part-1.txt", "from a crashed batch\n")
    manifest.add_batch(0, [{"path": committed}])
    table = read_files("text", [str(tmp_path)], StructType.fromDDL("value STRING"), {})
    assert table.column("value").to_pylist() == ["committed"]


def test_log_files_older_than_the_previous_compaction_are_deleted(tmp_path):
    from unbounded.files.manifest import FileSinkManifest

    out = tmp_path / "out"
    out.mkdir()
    manifest = FileSinkManifest(str(out))
    for batch in range(30):
        data = out / f"part-{batch}.parquet"
        data.write_bytes(b"x")
        manifest.add_batch(batch, [{"path": str(data)}])
    visible = [n for n in os.listdir(out / "_spark_metadata") if not n.startswith(".")]
    names = sorted(visible, key=lambda n: int(n.split(".")[0]))
    assert names == ["19.compact", *map(str, range(20, 29)), "29.compact"]
    assert len(manifest.all_files()) == 30
    assert manifest.latest_batch_id() == 29
