from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from unbounded.errors import AnalysisException, CheckpointCorruptError
from unbounded.sources import files as files_module
from unbounded.sources.base import Source, SourceContext, SupportsAvailableNow
from unbounded.sources.files import FileInputPartition, FileSource
from unbounded.sql.types import StructType

SCHEMA = StructType.fromDDL("v LONG")
HOUR_S = 3600


class Folder:
    """An input folder whose files get increasing, explicit modification times."""

    def __init__(self, root: Path) -> None:
        self.root = root / "in"
        self.root.mkdir()
        self.checkpoint = root / "checkpoint" / "sources" / "0"
        self.clock = 1_700_000_000

    def add(self, name: str, *values: int, mtime: int | None = None) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f'{{"v": {v}}}\n' for v in values))
        self.clock += 10
        stamp = self.clock if mtime is None else mtime
        os.utime(path, (stamp, stamp))
        return str(path)

    def source(self, **options: str) -> FileSource:
        ctx = SourceContext({"path": str(self.root), **options}, SCHEMA, str(self.checkpoint))
        return FileSource("json", ctx)


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return Folder(tmp_path)


def read(source: FileSource, start: Any, end: Any) -> list[int]:
    tables = [p.read() for p in source.partitions(start, end)]
    return [r["v"] for t in tables for r in t.to_pylist()]


def batch_paths(source: FileSource, start: Any, end: Any) -> list[str]:
    parts = source.partitions(start, end)
    assert all(isinstance(p, FileInputPartition) for p in parts)
    return [os.path.basename(p) for part in parts
            for p in part.paths]  # type: ignore[attr-defined]


def test_file_source_keeps_the_source_contracts(folder: Folder) -> None:
    source = folder.source()
    assert isinstance(source, Source)
    assert isinstance(source, SupportsAvailableNow)
    assert source.schema == SCHEMA


def test_no_files_gives_no_offset(folder: Folder) -> None:
    assert folder.source().latest_offset(None) is None


def test_max_files_per_trigger_splits_the_backlog_into_batches(folder: Folder) -> None:
    for i in range(5):
        folder.add(f"f{i}.json", i)
    source = folder.source(maxFilesPerTrigger="2")
    start, seen = None, []
    while (end := source.latest_offset(start)) != start:
        seen.append(read(source, start, end))
        start = end
    assert seen == [[0, 1], [2, 3], [4]]
    assert start == {"logOffset": 2}


def test_new_files_after_a_batch_form_the_next_batch(folder: Folder) -> None:
    folder.add("a.json", 1)
    source = folder.source()
    first = source.latest_offset(None)
    assert source.latest_offset(first) == first
    folder.add("b.json", 2, 3)
    second = source.latest_offset(first)
    assert second == {"logOffset": 1}
    assert read(source, first, second) == [2, 3]


def test_max_bytes_per_trigger_takes_at_least_one_file(folder: Folder) -> None:
    folder.add("big.json", *range(100))
    folder.add("s1.json", 1)
    folder.add("s2.json", 2)
    source = folder.source(maxBytesPerTrigger="15")
    first = source.latest_offset(None)
    assert batch_paths(source, None, first) == ["big.json"]
    second = source.latest_offset(first)
    assert batch_paths(source, first, second) == ["s1.json"]  # each is 9 bytes


def test_respect_limits_false_takes_every_new_file(folder: Folder) -> None:
    for i in range(3):
        folder.add(f"f{i}.json", i)
    source = folder.source(maxFilesPerTrigger="1")
    end = source.latest_offset(None, respect_limits=False)
    assert read(source, None, end) == [0, 1, 2]


def test_latest_first_takes_newest_files_first(folder: Folder) -> None:
    for i in range(3):
        folder.add(f"f{i}.json", i)
    source = folder.source(maxFilesPerTrigger="1", latestFirst="true")
    first = source.latest_offset(None)
    assert read(source, None, first) == [2]


def test_metadata_log_is_written_in_sparks_format_before_the_offset(folder: Folder) -> None:
    path = folder.add("a.json", 1)
    source = folder.source()
    assert source.latest_offset(None) == {"logOffset": 0}
    lines = (folder.checkpoint / "0").read_text().split("\n")
    assert lines[0] == "v1"
    assert lines[1] == (
        f'{{"path":"file://{path}","timestamp":{folder.clock * 1000},"batchId":0}}')


def test_restart_replays_the_logged_files_of_a_batch(folder: Folder) -> None:
    folder.add("a.json", 1)
    folder.add("b.json", 2)
    first = folder.source(maxFilesPerTrigger="1").latest_offset(None)
    folder.add("c.json", 3, mtime=folder.clock - 100)  # older than a batch-0 file
    restarted = folder.source(maxFilesPerTrigger="1")
    assert batch_paths(restarted, None, first) == ["a.json"]
    assert read(restarted, None, first) == [1]


def test_restart_never_emits_a_seen_file_again(folder: Folder) -> None:
    folder.add("a.json", 1)
    source = folder.source()
    first = source.latest_offset(None)
    restarted = folder.source()
    assert restarted.latest_offset(first) == first
    folder.add("b.json", 2)
    second = restarted.latest_offset(first)
    assert read(restarted, first, second) == [2]


def test_batch_logged_before_a_crash_is_handed_out_again(folder: Folder) -> None:
    folder.add("a.json", 1)
    folder.add("b.json", 2)
    source = folder.source(maxFilesPerTrigger="1")
    first = source.latest_offset(None)
    source.latest_offset(first)  # batch 1 logged, then the run dies before using it
    restarted = folder.source(maxFilesPerTrigger="1")
    again = restarted.latest_offset(first)
    assert again == {"logOffset": 1}
    assert read(restarted, first, again) == [2]
    assert restarted.latest_offset(again) == again


def test_corrupt_log_version_is_rejected(folder: Folder) -> None:
    folder.checkpoint.mkdir(parents=True)
    (folder.checkpoint / "0").write_text('v9\n{"path":"file:///x","timestamp":1,"batchId":0}')
    with pytest.raises(CheckpointCorruptError, match="v9"):
        folder.source()


def test_available_now_reads_only_files_present_at_prepare(folder: Folder) -> None:
    folder.add("a.json", 1)
    folder.add("b.json", 2)
    source = folder.source(maxFilesPerTrigger="1")
    source.prepare_for_available_now()
    folder.add("late.json", 3)
    start, seen = None, []
    while (end := source.latest_offset(start)) != start:
        seen.extend(read(source, start, end))
        start = end
    assert seen == [1, 2]


def test_max_file_age_ignores_files_older_than_the_newest_minus_age(folder: Folder) -> None:
    folder.add("new.json", 1, mtime=10 * HOUR_S)
    folder.add("old.json", 2, mtime=0)
    source = folder.source(maxFileAge="1 hour")
    first = source.latest_offset(None)
    assert sorted(read(source, None, first)) == [1, 2]  # the first listing takes all
    folder.add("stale.json", 3, mtime=5 * HOUR_S)
    folder.add("fresh.json", 4, mtime=10 * HOUR_S - 60)
    second = source.latest_offset(first)
    assert read(source, first, second) == [4]


def test_file_name_only_treats_same_names_as_the_same_file(folder: Folder) -> None:
    folder.add("x/data.json", 1)
    source = folder.source(fileNameOnly="true")
    first = source.latest_offset(None)
    folder.add("y/data.json", 2)
    assert source.latest_offset(first) == first


def test_hidden_files_are_never_read(folder: Folder) -> None:
    folder.add("_tmp.json", 1)
    folder.add(".part.json", 2)
    folder.add("ok.json", 3)
    source = folder.source()
    end = source.latest_offset(None)
    assert read(source, None, end) == [3]


def test_clean_source_delete_removes_files_of_committed_batches(folder: Folder) -> None:
    a = folder.add("a.json", 1)
    b = folder.add("b.json", 2)
    source = folder.source(maxFilesPerTrigger="1", cleanSource="delete")
    first = source.latest_offset(None)
    second = source.latest_offset(first)
    source.commit(first)
    assert not os.path.exists(a)
    assert os.path.exists(b)
    source.commit(second)
    assert not os.path.exists(b)


def test_clean_source_archive_keeps_the_full_path_under_the_archive_dir(
        folder: Folder, tmp_path: Path) -> None:
    a = folder.add("sub/a.json", 1)
    archive = tmp_path / "archive"
    source = folder.source(cleanSource="archive", sourceArchiveDir=str(archive))
    end = source.latest_offset(None)
    assert os.path.exists(a)  # nothing moves before the batch is committed
    source.commit(end)
    assert not os.path.exists(a)
    moved = archive / a.lstrip("/")
    assert moved.read_text() == '{"v": 1}\n'


def test_clean_source_archive_needs_a_dir_outside_the_source(folder: Folder) -> None:
    with pytest.raises(AnalysisException, match="sourceArchiveDir"):
        folder.source(cleanSource="archive")
    with pytest.raises(AnalysisException, match="inside the source path"):
        folder.source(cleanSource="archive", sourceArchiveDir=str(folder.root / "done"))


def test_missing_path_fails_in_infer_schema_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    ctx = SourceContext({"path": missing}, SCHEMA, None)
    with pytest.raises(AnalysisException, match=missing):
        FileSource.infer_schema("json", ctx)


def test_infer_schema_needs_a_schema_for_json(folder: Folder) -> None:
    folder.add("a.json", 1)
    ctx = SourceContext({"path": str(folder.root)}, None, None)
    with pytest.raises(AnalysisException, match="Schema must be specified"):
        FileSource.infer_schema("json", ctx)
    inferred = SourceContext({"path": str(folder.root), "inferSchema": "true"}, None, None)
    assert FileSource.infer_schema("json", inferred) == StructType.fromDDL("v LONG")


def test_text_source_has_a_value_column(folder: Folder) -> None:
    ctx = SourceContext({"path": str(folder.root)}, None, None)
    assert FileSource.infer_schema("text", ctx) == StructType.fromDDL("value STRING")


def test_partitions_split_a_batch_and_pickle(folder: Folder,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_module, "_parallelism", lambda: 4)
    for i in range(3):
        folder.add(f"f{i}.json", i)
    source = folder.source(nullValue="NA")
    end = source.latest_offset(None)
    parts = source.partitions(None, end)
    assert len(parts) == 3
    clone = pickle.loads(pickle.dumps(parts[0]))
    assert clone == parts[0]
    assert clone.read() == pa.table({"v": pa.array([0], pa.int64())})
    assert dict(clone.options) == {"nullValue": "NA"}  # source options stay out


def test_many_small_files_share_partitions(folder: Folder,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_module, "_parallelism", lambda: 2)
    for i in range(10):
        folder.add(f"f{i}.json", i)
    source = folder.source()
    end = source.latest_offset(None)
    parts = source.partitions(None, end)
    assert len(parts) == 2
    assert read(source, None, end) == list(range(10))


def test_declared_schema_contradicting_parquet_files_is_rejected_before_start(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from unbounded.errors import AnalysisException
    from unbounded.plan.types import StructType
    from unbounded.sources.base import SourceContext
    from unbounded.sources.files import FileSource

    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.table({"a": [1], "b": ["x"]}), folder / "f.parquet")
    wrong = SourceContext({"path": str(folder)}, StructType.fromDDL("a LONG, b LONG"), None)
    with pytest.raises(AnalysisException, match="column `b` is string"):
        FileSource.infer_schema("parquet", wrong)
    fine = SourceContext({"path": str(folder)}, StructType.fromDDL("a LONG, c DOUBLE"), None)
    assert FileSource.infer_schema("parquet", fine).names == ["a", "c"]


def test_source_log_compacts_every_tenth_batch_and_reloads_each_batch_once(tmp_path):
    from unbounded.files.listing import DataFile
    from unbounded.sources.files import FileSourceLog

    folder = tmp_path / "sources" / "0"
    folder.mkdir(parents=True)
    log = FileSourceLog(str(folder))
    for batch in range(25):
        log.add(batch, [DataFile(f"/in/f{batch}.json", 10, 1_700_000_000_000 + batch)])
    visible = [n for n in os.listdir(folder) if not n.startswith(".")]
    assert sorted(visible, key=lambda n: int(n.split(".")[0])) == [
        "19.compact", "20", "21", "22", "23", "24"]
    # A crash after writing 19.compact but before deleting what it covers leaves both.
    (folder / "5").write_text('v1\n{"path":"file:///in/f5.json","timestamp":1,"batchId":5}')
    again = FileSourceLog(str(folder))
    assert [e.path for e in again.files_between(-1, 24)] == [f"/in/f{b}.json"
                                                             for b in range(25)]


def test_a_compaction_removes_what_it_covers_off_the_calling_thread_and_add_waits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from unbounded.files.listing import DataFile
    from unbounded.sources.files import FileSourceLog

    removing = threading.Event()
    release = threading.Event()
    threads: list[str] = []

    def slow_remove(*paths: str) -> None:
        threads.append(threading.current_thread().name)
        removing.set()
        assert release.wait(10)
        remove_checked(*paths)

    remove_checked = files_module.remove_checked
    monkeypatch.setattr(files_module, "remove_checked", slow_remove)
    folder = tmp_path / "sources" / "0"
    folder.mkdir(parents=True)
    log = FileSourceLog(str(folder))
    for batch in range(10):
        log.add(batch, [DataFile(f"/in/f{batch}.json", 10, 1_700_000_000_000 + batch)])
    assert removing.wait(10)  # 9.compact is written; 0-8 go on another thread
    assert threads != [threading.current_thread().name]
    assert "9.compact" in os.listdir(folder) and "0" in os.listdir(folder)
    release.set()
    log.add(10, [DataFile("/in/f10.json", 10, 1_700_000_000_010)])  # waits for them first
    visible = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    assert visible == ["10", "9.compact"]
    assert [e.path for e in FileSourceLog(str(folder)).files_between(-1, 10)] == [
        f"/in/f{b}.json" for b in range(11)]


def test_url_files_split_by_size_also_for_a_batch_planned_before_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spark's source log has no sizes: a batch read back from it asks the store, and at a
    URL as well as on disk (before, URL files counted 0 bytes and shared one task)."""
    import fsspec

    monkeypatch.setattr(files_module, "_parallelism", lambda: 1)
    monkeypatch.setattr(files_module, "_MAX_PARTITION_BYTES", 64)
    fs = fsspec.filesystem("memory")
    root = f"memory://split-{os.getpid()}-{tmp_path.name}/in"
    for i in range(4):
        fs.pipe(f"{root}/f{i}.json", "".join(f'{{"v": {i}}}\n' for _ in range(8)).encode())
    checkpoint = str(tmp_path / "checkpoint" / "sources" / "0")

    def source() -> FileSource:
        return FileSource("json", SourceContext({"path": root}, SCHEMA, checkpoint))

    try:
        first = source()
        end = first.latest_offset(None)
        assert len(first.partitions(None, end)) == 4  # 4 x 72 bytes, 64 a task
        restarted = source()  # the batch is read back from the log, without sizes
        parts = restarted.partitions(None, end)
        assert len(parts) == 4
        assert sorted(v for p in parts for v in p.read()["v"].to_pylist()) == \
            sorted(i for i in range(4) for _ in range(8))
    finally:
        fs.rm(root.rsplit("/", 1)[0], recursive=True)


def test_available_now_still_reads_a_file_whose_seen_name_a_purge_forgets(
        folder: Folder) -> None:
    """The fixed listing drops only files that can never be new again: here
    ``y/data.json`` is not new while ``x/data.json``'s name is remembered, and becomes
    new once ``maxFileAge`` forgets that name (as Spark's seen-files map does)."""
    folder.add("x/data.json", 1, mtime=0)
    folder.add("y/data.json", 2, mtime=2 * HOUR_S)
    folder.add("z/new.json", 3, mtime=3 * HOUR_S)
    source = folder.source(fileNameOnly="true", maxFileAge="1 hour", maxFilesPerTrigger="1")
    source.prepare_for_available_now()
    start, seen = None, []
    while (end := source.latest_offset(start)) != start:
        seen.append(read(source, start, end))
        start = end
    assert seen == [[1], [3], [2]]


def test_seen_files_tell_which_files_may_become_new() -> None:
    from unbounded.files.listing import DataFile

    seen = files_module._SeenFiles(max_age_ms=100, file_name_only=False)
    seen.add("/in/a", 1_000)
    seen.purge()
    assert not seen.may_become_new(DataFile("/in/a", 1, 1_000))  # seen at this mtime
    assert seen.may_become_new(DataFile("/in/a", 1, 1_050))  # changed since: a purge
    assert seen.may_become_new(DataFile("/in/b", 1, 950))  # new now
    assert not seen.may_become_new(DataFile("/in/c", 1, 800))  # older than the age limit


def test_source_log_counts_files_through_a_batch_as_a_full_count_would(tmp_path):
    """``files_through`` counts on from its last call; asked for an earlier batch, or
    after a counted batch is written again, it counts anew."""
    from unbounded.files.listing import DataFile
    from unbounded.sources.files import FileSourceLog

    folder = tmp_path / "sources" / "0"
    folder.mkdir(parents=True)
    log = FileSourceLog(str(folder))

    def files(batch: int, n: int) -> list[DataFile]:
        return [DataFile(f"/in/f{batch}-{i}.json", 10, 1_700_000_000_000 + batch)
                for i in range(n)]

    for batch in range(12):
        log.add(batch, files(batch, batch % 3 + 1))

    def counted(through: int) -> int:
        return sum(len(e) for b, e in log.batches.items() if b <= through)

    for through in [-1, 0, 3, 3, 11, 2, 7]:
        assert log.files_through(through) == counted(through)
    assert log.files_total() == counted(11) == FileSourceLog(str(folder)).files_total()
    log = FileSourceLog(None)  # in memory: a batch may be written again
    for batch in range(12):
        log.add(batch, files(batch, 2))
    assert log.files_through(11) == 24
    log.add(11, files(11, 7))  # counted already: rewritten with other files
    assert log.files_through(11) == counted(11) == log.files_total() == 29
