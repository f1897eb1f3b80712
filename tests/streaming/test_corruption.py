"""Damaged checkpoint files are detected, never read silently and never crash the process:
one flipped bit at (a sample of) every byte offset of each kind of file a real windowed
file-to-file query wrote raises CheckpointCorruptError naming the file."""

from __future__ import annotations

import json
import os
import shutil
import types
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from unbounded.checkpoint.atomic import NAME_ORDER_ENV, set_file_ops
from unbounded.checkpoint.checksum import MARKER_NAME, sidecar_path
from unbounded.checkpoint.logs import CommitLog, OffsetLog, QueryMetadata
from unbounded.errors import CheckpointCorruptError, MissingFileError, StreamingQueryException
from unbounded.files.manifest import FileSinkManifest
from unbounded.runtime.stateful.base import check_partitioning
from unbounded.sources.base import SourceContext
from unbounded.sources.files import FileSourceLog
from unbounded.sources.rate import RateSource
from unbounded.sql import functions as F
from unbounded.state.base import OP_COLUMN, StateSchema, StateSchemaFile, StateStoreId
from unbounded.state.files import StateFileEnvelope, StateFileKind, StateFileLog
from unbounded.state.join_keys import JoinKeysFile, JoinSideKeys
from unbounded.state.transform_meta import (
    OperatorInfo,
    StateVariableInfo,
    TransformWithStateFile,
    VariableType,
)
from unbounded.testing.checkpoint_faults import Fault, FaultyFileOps

MAX_OFFSETS_PER_FILE = 8192  # above every file of the fixture: each byte is flipped


def _write_inputs(folder: Path) -> None:
    folder.mkdir()
    batches = [[("10:01", "a"), ("10:02", "b")], [("10:03", "a"), ("10:16", "c")],
               [("10:31", "a")]]
    for i, rows in enumerate(batches):
        lines = [json.dumps({"ts": f"2026-01-01T{t}:00", "word": w}) for t, w in rows]
        path = folder / f"in-{i}.json"
        path.write_text("\n".join(lines) + "\n")
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))


def _start(spark, tmp_path: Path):
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    spark.conf.set("spark.sql.streaming.stateStore.minDeltasForSnapshot", "2")
    df = (spark.readStream.schema("ts TIMESTAMP, word STRING")
          .option("maxFilesPerTrigger", 1).json(str(tmp_path / "in"))
          .withWatermark("ts", "5 minutes")
          .groupBy(F.window("ts", "5 minutes"), "word").count())
    return (df.writeStream.format("parquet").outputMode("append")
            .option("path", str(tmp_path / "out"))
            .option("checkpointLocation", str(tmp_path / "cp"))
            .trigger(availableNow=True).start())


@pytest.fixture
def query_dirs(spark, tmp_path: Path) -> Path:
    """A checkpoint and output of a windowed file-to-file query that ran three batches."""
    _write_inputs(tmp_path / "in")
    query = _start(spark, tmp_path)
    query.awaitTermination(60)
    assert query.exception() is None
    assert (tmp_path / "cp" / "commits" / "2").exists()
    return tmp_path


def _state_log(state: Path) -> StateFileLog:
    """The state files of partition 0, with the schema their intact delta declares."""
    body = StateFileEnvelope.body("1.delta", (state / "1.delta").read_bytes(),
                                  StateFileKind.DELTA)
    schema = pa.ipc.open_file(body).schema.remove_metadata()
    fields = [f for f in schema if f.name != OP_COLUMN]
    store = StateSchema(pa.schema(fields[:-1]), pa.schema(fields[-1:]))
    return StateFileLog(StateStoreId(str(state.parent.parent), 0, 0), store, 2)


def _kinds(root: Path) -> dict[str, tuple[Path, Callable[[], object]]]:
    """Each kind of checkpoint file: one file, and the engine's reader of it."""
    cp, out = root / "cp", root / "out"
    state = cp / "state" / "0" / "0"
    store = _state_log(state)  # now, from the intact delta: the reads below see damage
    return {
        "offsets": (cp / "offsets" / "1", lambda: OffsetLog(str(cp / "offsets")).get(1)),
        "commits": (cp / "commits" / "1", lambda: CommitLog(str(cp / "commits")).get(1)),
        "metadata": (cp / "metadata", lambda: QueryMetadata.read(str(cp))),
        "source log": (cp / "sources" / "0" / "1",
                       lambda: FileSourceLog(str(cp / "sources" / "0"))),
        "sink manifest": (_largest_entry(out / "_spark_metadata"),
                          lambda: FileSinkManifest(str(out)).all_entries()),
        "state delta": (state / "1.delta", lambda: store.read_delta(1)),
        "state snapshot": (state / "2.snapshot",
                           lambda: list(store.snapshot_chunks(2))),
        **_metadata_kinds(cp),
    }


def _metadata_kinds(cp: Path) -> dict[str, tuple[Path, Callable[[], object]]]:
    """The write-once metadata files: the windowed query's state schema and partitioning,
    a join's keys and a rate source's start time (written here by their own writers)."""
    meta = cp / "state" / "0" / "_metadata"
    operator = types.SimpleNamespace(state_root=str(cp / "state"), operator_id=0,
                                     num_partitions=1)
    joins = JoinKeysFile(str(cp / "state"), 7)
    joins.write_once({"left": JoinSideKeys((pl.col("k"),), {}),
                      "right": JoinSideKeys((pl.col("k") + 1,), {"k": "rk"})})
    rate = SourceContext({}, None, str(cp / "sources" / "1"))
    RateSource("rate", rate)
    declared = TransformWithStateFile(str(cp / "state"), 8)
    declared.write(_declared("count"))
    return {
        "state schema": (meta / "schema",
                         lambda: StateSchemaFile(StateStoreId(str(cp / "state"), 0, 0)).read()),
        "state partitioning": (meta / "partitioning", lambda: check_partitioning(operator)),
        "join keys": (Path(joins.path), lambda: JoinKeysFile(str(cp / "state"), 7).read("left")),
        "rate source start": (cp / "sources" / "1" / "0",
                              lambda: RateSource("rate", rate).start_ms),
        "transform-with-state": (Path(declared.path), declared.read),
    }


def _declared(*names: str) -> OperatorInfo:
    return OperatorInfo("transformWithStateInPandasExec", "None", "Update", tuple(
        StateVariableInfo(n, VariableType.VALUE, False) for n in names))


def test_a_changed_transform_with_state_declaration_is_rewritten_checked(tmp_path):
    """The one metadata file rewritten in place: removed with its sidecar, then written
    checked again, so the new declaration reads back and a flip in it is still refused."""
    declared = TransformWithStateFile(str(tmp_path / "state"), 0)
    declared.write(_declared("count"))
    declared.write(_declared("count", "seen"))
    assert declared.read() == _declared("count", "seen")
    path = Path(declared.path)
    path.write_bytes(path.read_bytes().replace(b"seen", b"seem"))
    with pytest.raises(CheckpointCorruptError, match="CRC-32C") as e:
        declared.read()
    assert str(path) in str(e.value)


def _largest_entry(folder: Path) -> Path:
    """The manifest entry of a batch that wrote files (some batches write none)."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return max(entries, key=lambda p: p.stat().st_size)


def _sample(size: int) -> list[int]:
    """Every offset of a small file; an even spread with the first and last of a large one."""
    if size <= MAX_OFFSETS_PER_FILE:
        return list(range(size))
    step = size / (MAX_OFFSETS_PER_FILE - 1)
    return sorted({min(size - 1, round(i * step)) for i in range(MAX_OFFSETS_PER_FILE)})


def _flip_scan(path: Path, read: Callable[[], object]) -> tuple[int, int]:
    """(offsets tried, flips read without an error) for one bit per sampled offset."""
    intact = path.read_bytes()
    read()  # the intact file reads
    silent = []
    for offset in _sample(len(intact)):
        damaged = bytearray(intact)
        damaged[offset] ^= 1 << (offset % 8)
        path.write_bytes(bytes(damaged))
        try:
            read()
            silent.append(offset)
        except CheckpointCorruptError as e:
            assert path.name in str(e), str(e)
            assert str(path) in str(e), str(e)  # the whole path: a bare "1" matches anything
    path.write_bytes(intact)
    return len(_sample(len(intact))), len(silent)


_METADATA_KINDS = ["state schema", "state partitioning", "join keys", "rate source start",
                   "transform-with-state"]


@pytest.mark.parametrize("kind", ["offsets", "commits", "metadata", "source log",
                                  "sink manifest", "state delta", "state snapshot",
                                  "epoch", "checksum sidecar", *_METADATA_KINDS])
def test_one_flipped_bit_anywhere_in_a_checkpoint_file_is_detected(query_dirs, kind):
    offsets, read_offsets = _kinds(query_dirs)["offsets"]
    path, read = {**_kinds(query_dirs), "epoch": _epoch_kind(query_dirs / "cp"),
                  "checksum sidecar": (Path(sidecar_path(str(offsets))), read_offsets)}[kind]
    tried, silent = _flip_scan(path, read)
    assert tried == path.stat().st_size > 20  # every byte of the file
    assert silent == 0


@pytest.mark.parametrize("kind", ["offsets", "source log", "state delta", "state snapshot",
                                  *_METADATA_KINDS])
def test_truncated_and_empty_checkpoint_files_are_detected(query_dirs, kind):
    path, read = _kinds(query_dirs)[kind]
    intact = path.read_bytes()
    for damaged in (b"", intact[:1], intact[: len(intact) // 2], intact[:-1]):
        path.write_bytes(damaged)
        with pytest.raises(CheckpointCorruptError, match=path.name) as e:
            read()
        assert str(path) in str(e.value)


def test_restart_over_a_damaged_state_file_fails_naming_the_file(spark, query_dirs):
    state = query_dirs / "cp" / "state" / "0" / "0"
    latest = max(state.glob("*.snapshot"), key=lambda p: int(p.name.split(".")[0]))
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0x10
    latest.write_bytes(bytes(data))
    (query_dirs / "in" / "in-3.json").write_text('{"ts":"2026-01-01T10:50:00","word":"z"}\n')
    query = _start(spark, query_dirs)
    with pytest.raises(StreamingQueryException) as failed:
        query.awaitTermination(60)
    assert isinstance(failed.value.cause, CheckpointCorruptError)
    assert str(latest) in str(failed.value.cause)
    assert "CRC-32C" in str(failed.value.cause)


def _sink_output(tmp_path: Path, names: list[str]) -> Path:
    """An output folder whose manifest lists ``names`` (only ``p1.parquet`` exists)."""
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    out.mkdir()
    pq.write_table(pa.table({"id": [1, 2]}), out / "p1.parquet")
    pq.write_table(pa.table({"id": [3]}), out / "p2.parquet")
    FileSinkManifest(str(out)).add_batch(0, [{"path": str(out / n)} for n in names])
    return out


def test_reading_sink_output_with_a_listed_file_missing_fails_naming_it(spark, tmp_path):
    out = _sink_output(tmp_path, ["p1.parquet", "p2.parquet"])
    (out / "p2.parquet").unlink()
    with pytest.raises(MissingFileError, match=r"p2\.parquet.*ignoreMissingFiles") as e:
        spark.read.parquet(str(out)).collect()
    assert e.value.getErrorClass() == "FAILED_READ_FILE.FILE_NOT_EXIST"
    rows = spark.read.option("ignoreMissingFiles", True).parquet(str(out)).collect()
    assert [r.id for r in rows] == [1, 2]
    spark.conf.set("spark.sql.files.ignoreMissingFiles", "true")
    assert [r.id for r in spark.read.parquet(str(out)).collect()] == [1, 2]


def test_manifest_paths_are_literal_not_globs(spark, tmp_path):
    out = _sink_output(tmp_path, ["p1.parquet", "p*.parquet"])
    with pytest.raises(MissingFileError, match=r"p%2A\.parquet|p\*\.parquet"):
        spark.read.parquet(str(out)).collect()
    rows = spark.read.parquet(str(out), ignoreMissingFiles=True).collect()
    assert [r.id for r in rows] == [1, 2]


def _edit_watermark(path: Path) -> None:
    """Change ``batchWatermarkMs`` in an ``offsets/N`` entry, keeping it valid JSON."""
    lines = path.read_text().split("\n")
    meta = json.loads(lines[1])
    meta["batchWatermarkMs"] += 60_000
    lines[1] = json.dumps(meta)
    path.write_text("\n".join(lines))


def _as_spark_wrote_it(root: Path) -> None:
    """Remove every checksum file unbounded writes under ``root`` (sidecars and the
    ``.crc32c-from`` markers) and add Hadoop's ``.<name>.crc`` beside each log entry, as
    Spark's checkpoint on a local disk has them."""
    for path in list(root.rglob(".*")):
        if path.name == MARKER_NAME or path.name.endswith(".crc32c"):
            path.unlink()
    for path in list(root.rglob("*")):
        if path.is_file() and path.name.split(".")[0].isdigit() and path.suffix != ".delta":
            (path.parent / f".{path.name}.crc").write_bytes(b"crc\x00\x00\x00\x01")


def test_a_log_written_by_spark_reads_unverified_as_it_was(query_dirs):
    """No sidecar anywhere in the folder: Spark wrote it, and it reads as written."""
    offsets = query_dirs / "cp" / "offsets"
    before = OffsetLog(str(offsets)).get(1)
    _as_spark_wrote_it(offsets)
    assert OffsetLog(str(offsets)).get(1) == before


def test_an_edit_with_its_sidecar_kept_is_detected(query_dirs):
    path = query_dirs / "cp" / "offsets" / "1"
    _edit_watermark(path)
    with pytest.raises(CheckpointCorruptError, match=str(path)):
        OffsetLog(str(path.parent)).get(1)


def test_an_edit_with_its_sidecar_deleted_between_checked_entries_is_detected(query_dirs):
    path = query_dirs / "cp" / "offsets" / "1"
    _edit_watermark(path)
    Path(sidecar_path(str(path))).unlink()
    with pytest.raises(CheckpointCorruptError, match=str(path)):
        OffsetLog(str(path.parent)).get(1)


def _epoch_kind(cp: Path) -> tuple[Path, Callable[[], object]]:
    from unbounded.checkpoint.epoch import EpochFence

    newest = max((p for p in (cp / "epochs").iterdir() if p.name.isdigit()),
                 key=lambda p: int(p.name))
    return newest, lambda: EpochFence(str(cp), int(newest.name)).record()


@pytest.mark.parametrize("kind", ["offsets", "commits", "metadata", "source log",
                                  "sink manifest", "epoch", *_METADATA_KINDS])
def test_an_entry_of_each_sidecar_kind_whose_sidecar_was_deleted_is_refused(query_dirs,
                                                                          kind):
    """Intact content, sidecar gone: the entry cannot be told from an edited one."""
    kinds = {**_kinds(query_dirs), "epoch": _epoch_kind(query_dirs / "cp")}
    path, read = kinds[kind]
    read()
    Path(sidecar_path(str(path))).unlink()
    with pytest.raises(CheckpointCorruptError, match="no checksum file") as e:
        read()
    assert str(path) in str(e.value)
    assert sidecar_path(str(path)) in str(e.value)
    assert "accept_unverified" in str(e.value)
    assert "unbounded checkpoint validate" in str(e.value)  # how to find the rest


@pytest.mark.parametrize("kind", ["state delta", "state snapshot"])
def test_a_state_file_without_its_embedded_checksum_is_refused(query_dirs, kind):
    """State files carry their checksum in a header: a bare Arrow body is refused."""
    path, read = _kinds(query_dirs)[kind]
    data = path.read_bytes()
    path.write_bytes(data[len(StateFileEnvelope.header_of(StateFileKind.DELTA, 0, 0)):])
    with pytest.raises(CheckpointCorruptError) as e:
        read()
    assert str(path) in str(e.value)


def _stateless(spark, root: Path):
    df = (spark.readStream.schema("ts TIMESTAMP, word STRING")
          .option("maxFilesPerTrigger", 1).json(str(root / "in")))
    return (df.writeStream.format("parquet").option("path", str(root / "out"))
            .option("checkpointLocation", str(root / "cp"))
            .trigger(availableNow=True).start())


def _run_to_end(query) -> None:
    query.awaitTermination(60)
    assert query.exception() is None


def test_a_checkpoint_spark_began_and_unbounded_continued_checks_only_its_own_entries(
        spark, tmp_path):
    _write_inputs(tmp_path / "in")
    _run_to_end(_stateless(spark, tmp_path))
    shutil.rmtree(tmp_path / "cp" / "epochs")  # Spark has no epochs
    _as_spark_wrote_it(tmp_path)
    (tmp_path / "in" / "in-3.json").write_text('{"ts":"2026-01-01T10:50:00","word":"z"}\n')
    _run_to_end(_stateless(spark, tmp_path))
    rows = spark.read.parquet(str(tmp_path / "out")).collect()
    assert sorted((r.word, r.ts.strftime("%H:%M")) for r in rows) == [
        ("a", "10:01"), ("a", "10:03"), ("a", "10:31"), ("b", "10:02"), ("c", "10:16"),
        ("z", "10:50")]
    cp = tmp_path / "cp"
    for folder in (cp / "offsets", cp / "commits", cp / "sources" / "0",
                   tmp_path / "out" / "_spark_metadata"):
        assert (folder / MARKER_NAME).read_text().startswith("v1 first=3 "), folder
        assert (folder / ".3.crc32c").exists() and not (folder / ".2.crc32c").exists()
    offsets = OffsetLog(str(cp / "offsets"))
    assert offsets.get(2).offsets == [{"logOffset": 2}]  # Spark's entry, unverified
    Path(sidecar_path(str(cp / "offsets" / "3"))).unlink()
    with pytest.raises(CheckpointCorruptError, match=str(cp / "offsets" / "3")):
        offsets.get(3)
    assert offsets.get(2).offsets == [{"logOffset": 2}]


@pytest.mark.parametrize("order", ["strict", "kept"])
def test_a_crash_between_a_sidecar_and_its_entry_reads_as_never_written(spark, tmp_path,
                                                                       monkeypatch, order):
    """The run fails where a crash would stop it: commits/1's sidecar written (durable
    where names are not kept in order), the entry not yet linked. Then a power cut, then
    a restart: batch 1 re-runs, rows once."""
    monkeypatch.setenv(NAME_ORDER_ENV, order)
    _write_inputs(tmp_path / "in")
    faulty = FaultyFileOps([Fault("eio", "rename", 1, False, "*/commits/1")])
    previous = set_file_ops(faulty)
    try:
        query = _start(spark, tmp_path)
        with pytest.raises(StreamingQueryException):
            query.awaitTermination(60)
        faulty.lose_unsynced()
    finally:
        set_file_ops(previous)
    commits = tmp_path / "cp" / "commits"
    # Kept order: no folder fsync since the sidecar's name, so the cut may drop it too.
    assert (commits / ".1.crc32c").exists() == (order == "strict")
    assert not (commits / "1").exists()
    assert CommitLog(str(commits)).batch_ids() == [0]
    _run_to_end(_start(spark, tmp_path))
    rows = spark.read.parquet(str(tmp_path / "out")).collect()
    assert sorted((r.word, r.window.start.strftime("%H:%M"), r["count"]) for r in rows) == [
        ("a", "10:00", 2), ("b", "10:00", 1), ("c", "10:15", 1)]
    ids = CommitLog(str(commits)).batch_ids()
    assert ids[:3] == [0, 1, 2] and ids == list(range(len(ids)))
    CommitLog(str(commits)).get(1)  # its sidecar matches the entry written on the re-run


def test_a_restart_with_metadata_deleted_is_refused_not_given_a_new_query_id(spark,
                                                                           query_dirs):
    """A new query id would hide the batches a Kafka sink committed under the old one
    (chaos: 172 duplicated records after deleting metadata mid-run); Spark makes a new id,
    this engine refuses and names the file."""
    metadata = query_dirs / "cp" / "metadata"
    metadata.unlink()
    with pytest.raises(CheckpointCorruptError, match="query's id is lost") as e:
        _start(spark, query_dirs)
    assert str(metadata) in str(e.value)
    assert not metadata.exists()
