"""Checksum sidecars of the Spark-format logs: verified on read, optional for Spark's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from unbounded.checkpoint.checksum import read_checked_text, sidecar_path, write_checked
from unbounded.checkpoint.logs import (
    CommitEntry,
    CommitLog,
    OffsetEntry,
    OffsetLog,
    QueryMetadata,
)
from unbounded.errors import CheckpointCorruptError
from unbounded.files.manifest import FileSinkManifest
from unbounded.sources.files import FileSourceLog


def test_an_entry_gets_a_sidecar_with_its_crc32c_and_length(tmp_path: Path) -> None:
    OffsetLog(str(tmp_path)).add(0, OffsetEntry([{"logOffset": 0}], 1_700_000_000_000))
    import crc32c

    body = (tmp_path / "0").read_bytes()
    assert body == (b'v1\n{"batchWatermarkMs":0,"batchTimestampMs":1700000000000,"conf":{}}\n'
                    b'{"logOffset":0}')
    assert (tmp_path / ".0.crc32c").read_text() == \
        f"v1 crc32c={crc32c.crc32c(body):08x} length={len(body)}\n"


def test_logs_written_by_spark_without_a_sidecar_stay_readable(tmp_path: Path) -> None:
    (tmp_path / "offsets").mkdir()
    (tmp_path / "offsets" / "4").write_text(
        'v1\n{"batchWatermarkMs":5,"batchTimestampMs":7,"conf":{}}\n{"logOffset":4}')
    (tmp_path / "commits").mkdir()
    (tmp_path / "commits" / "4").write_text('v1\n{"nextBatchWatermarkMs":9}')
    entry = OffsetLog(str(tmp_path / "offsets")).get(4)
    assert (entry.offsets, entry.batch_watermark_ms, entry.batch_timestamp_ms) == \
        ([{"logOffset": 4}], 5, 7)
    assert CommitLog(str(tmp_path / "commits")).get(4).next_batch_watermark_ms == 9


def test_a_changed_entry_fails_with_expected_and_found_checksums(tmp_path: Path) -> None:
    log = CommitLog(str(tmp_path))
    log.add(0, CommitEntry(5))
    (tmp_path / "0").write_text('v1\n{"nextBatchWatermarkMs":6}')
    with pytest.raises(CheckpointCorruptError) as e:
        log.get(0)
    message = str(e.value)
    assert str(tmp_path / "0") in message
    assert "expected 29 bytes with CRC-32C" in message
    assert "new checkpointLocation" in message


def test_a_damaged_sidecar_is_reported_with_how_to_accept_the_file(tmp_path: Path) -> None:
    write_checked(str(tmp_path / "metadata"), b'{"id":"q"}')
    Path(sidecar_path(str(tmp_path / "metadata"))).write_text("v1 crc32c=zz length=1\n")
    with pytest.raises(CheckpointCorruptError, match=r"\.metadata\.crc32c of .*delete"):
        QueryMetadata.read(str(tmp_path))


def test_an_entry_whose_sidecar_was_deleted_is_refused_naming_both(tmp_path: Path) -> None:
    write_checked(str(tmp_path / "0"), b"v1\n{}")
    Path(sidecar_path(str(tmp_path / "0"))).unlink()
    with pytest.raises(CheckpointCorruptError, match="no checksum file") as e:
        read_checked_text(str(tmp_path / "0"))
    assert str(tmp_path / "0") in str(e.value)
    assert sidecar_path(str(tmp_path / "0")) in str(e.value)


@pytest.mark.parametrize("make", ["offsets", "metadata", "source log", "sink manifest"])
def test_invalid_utf8_in_a_log_names_the_file(tmp_path: Path, make: str) -> None:
    damaged = b"v1\n{\"path\":\"\xff\xfe\"}"
    if make == "offsets":
        (tmp_path / "3").write_bytes(damaged)
        read, name = (lambda: OffsetLog(str(tmp_path)).get(3)), "3"
    elif make == "metadata":
        (tmp_path / "metadata").write_bytes(b'{"id":"\xff"}')
        read, name = (lambda: QueryMetadata.read(str(tmp_path))), "metadata"
    elif make == "source log":
        (tmp_path / "0").write_bytes(damaged)
        read, name = (lambda: FileSourceLog(str(tmp_path))), "0"
    else:
        (tmp_path / "_spark_metadata").mkdir()
        (tmp_path / "_spark_metadata" / "0").write_bytes(damaged)
        read, name = (lambda: FileSinkManifest(str(tmp_path)).all_entries()), "0"
    with pytest.raises(CheckpointCorruptError, match="not valid UTF-8") as e:
        read()
    assert str(e.value).split(" is not valid")[0].endswith(name)
    assert isinstance(e.value.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize("text", ["v1\n{not json", "v1\n[1,2]", "v1\n", ""])
def test_unparseable_offset_entries_name_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "2").write_text(text)
    with pytest.raises(CheckpointCorruptError, match=str(tmp_path / "2")):
        OffsetLog(str(tmp_path)).get(2)


def test_retention_removes_entries_with_their_sidecars(tmp_path: Path) -> None:
    log = OffsetLog(str(tmp_path))
    for batch in range(3):
        log.add(batch, OffsetEntry([None], 0))
    log.purge_before(2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".2.crc32c", ".crc32c-from", "2"]
