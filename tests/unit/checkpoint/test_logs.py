from __future__ import annotations

import os
import threading

import pytest

from unbounded.checkpoint.atomic import write_atomic
from unbounded.checkpoint.lock import CheckpointLock
from unbounded.checkpoint.logs import CommitEntry, CommitLog, OffsetEntry, OffsetLog, QueryMetadata
from unbounded.errors import CheckpointConflictError, CheckpointCorruptError, ConcurrentQueryError


def test_offset_entry_is_written_in_sparks_format_and_read_back(tmp_path):
    log = OffsetLog(str(tmp_path / "offsets"))
    log.add(3, OffsetEntry([{"logOffset": 3}, None], 1700000000123, 42,
                           {"spark.sql.shuffle.partitions": "2"}))
    lines = (tmp_path / "offsets" / "3").read_text().split("\n")
    assert lines[0] == "v1"
    assert lines[1].startswith('{"batchWatermarkMs":42,"batchTimestampMs":1700000000123')
    assert lines[2:] == ['{"logOffset":3}', "-"]
    entry = log.get(3)
    assert entry.offsets == [{"logOffset": 3}, None]
    assert (entry.batch_timestamp_ms, entry.batch_watermark_ms) == (1700000000123, 42)


def test_second_writer_of_one_batch_fails_loudly(tmp_path):
    log = CommitLog(str(tmp_path / "commits"))
    log.add(0, CommitEntry(0))
    with pytest.raises(CheckpointConflictError, match="another run"):
        log.add(0, CommitEntry(5))
    assert log.get(0).next_batch_watermark_ms == 0


def test_newer_log_version_is_rejected_with_the_fix(tmp_path):
    folder = tmp_path / "commits"
    folder.mkdir()
    (folder / "0").write_text('v9\n{"nextBatchWatermarkMs":0}')
    with pytest.raises(CheckpointCorruptError, match="Upgrade unbounded"):
        CommitLog(str(folder)).get(0)


def test_temporary_files_never_count_as_entries(tmp_path):
    folder = tmp_path / "offsets"
    folder.mkdir()
    (folder / ".5.abc.tmp").write_text("v1\n{}")
    assert OffsetLog(str(folder)).latest_id() is None


def test_purge_keeps_recent_entries(tmp_path):
    log = CommitLog(str(tmp_path / "c"))
    for i in range(6):
        log.add(i, CommitEntry(i))
    log.purge_before(4)
    assert log.batch_ids() == [4, 5]


def test_concurrent_atomic_writers_exactly_one_wins(tmp_path):
    target = str(tmp_path / "entry")
    wins, losses = [], []

    def write(i: int) -> None:
        try:
            write_atomic(target, f"writer {i}".encode())
            wins.append(i)
        except CheckpointConflictError:
            losses.append(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(wins) == 1 and len(losses) == 7
    with open(target) as f:
        assert f.read() == f"writer {wins[0]}"
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_metadata_round_trip_keeps_spark_readable_id(tmp_path):
    QueryMetadata("abc", ["kafka"], "parquet", {"spark.sql.shuffle.partitions": "4"}).write(
        str(tmp_path))
    text = (tmp_path / "metadata").read_text()
    assert text.startswith('{"id":"abc"')
    meta = QueryMetadata.read(str(tmp_path))
    assert meta is not None and meta.sources == ["kafka"] and meta.conf[
        "spark.sql.shuffle.partitions"] == "4"


def test_lock_is_exclusive_and_released(tmp_path):
    first = CheckpointLock(str(tmp_path))
    first.acquire()
    with pytest.raises(ConcurrentQueryError, match=str(tmp_path)):
        CheckpointLock(str(tmp_path)).acquire()
    first.release()
    again = CheckpointLock(str(tmp_path))
    again.acquire()
    again.release()
