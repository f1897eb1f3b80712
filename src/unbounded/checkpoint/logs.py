"""The checkpoint's logs, in Apache Spark's on-disk formats.

Layout of a checkpoint folder::

    metadata            {"id": "<query uuid>", "unbounded": {...query shape...}}
    offsets/<N>         v1 / batch metadata JSON / one offset JSON per source ("-": none)
    commits/<N>         v1 / {"nextBatchWatermarkMs": <ms>}
    sources/<i>/...     each source's own log (e.g. the files a file source read)
    state/...           state stores

Each entry is written once with ``write_atomic``: the offset entry of batch N is the
write-ahead record of what batch N reads, and the commit entry says batch N is durable.
Each file's CRC-32C is kept in a sidecar ``.<name>.crc32c``, written before the file, and
verified on every read (``unbounded.checkpoint.checksum``); entries Spark wrote have none
and are read as they are, while an entry without one in the part of a folder this engine
wrote (from the id its ``.crc32c-from`` marker records) is refused.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from unbounded.checkpoint.checksum import (
    RECOVERY_HINT,
    FolderSync,
    PreparedEntry,
    read_checked_text,
    remove_checked,
    write_checked,
)
from unbounded.checkpoint.storage import storage_for
from unbounded.errors import CheckpointCorruptError

__all__ = ["BatchLog", "CommitEntry", "CommitLog", "OffsetEntry", "OffsetLog", "QueryMetadata"]

VERSION = 1
_VOID = "-"


def _invalid(path: str, what: str, error: Exception) -> CheckpointCorruptError:
    return CheckpointCorruptError(f"Checkpoint file {path} is damaged: {what} ({error}). "
                                  + RECOVERY_HINT)


def _check_version(path: str, line: str) -> None:
    match = re.fullmatch(r"v(\d+)", line.strip())
    if match is None:
        raise CheckpointCorruptError(
            f"{path} has no version header (expected 'v1', found {line[:20]!r}). "
            + RECOVERY_HINT)
    if int(match.group(1)) > VERSION:
        raise CheckpointCorruptError(
            f"{path} was written in log version v{match.group(1)}, newer than this release "
            f"reads (v{VERSION}). Upgrade unbounded to read this checkpoint."
        )


def _body(lines: list[str]) -> bytes:
    return "\n".join([f"v{VERSION}", *lines]).encode("utf-8")


def _commit_lines(entry: CommitEntry) -> list[str]:
    return [json.dumps({"nextBatchWatermarkMs": entry.next_batch_watermark_ms},
                       separators=(",", ":"))]


class BatchLog:
    """A folder of entries named by batch id, each written once and atomically."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        storage_for(folder).make_folder(folder)

    def path(self, batch_id: int) -> str:
        return os.path.join(self.folder, str(batch_id))

    def batch_ids(self) -> list[int]:
        return sorted(int(n) for n in storage_for(self.folder).list(self.folder)
                      if n.isdigit())

    def latest_id(self) -> int | None:
        ids = self.batch_ids()
        return ids[-1] if ids else None

    def write_lines(self, batch_id: int, lines: list[str], *,
                    sync_in_background: bool = False) -> FolderSync:
        return write_checked(self.path(batch_id), _body(lines),
                             sync_in_background=sync_in_background)

    def read_lines(self, batch_id: int) -> list[str]:
        path = self.path(batch_id)
        lines = read_checked_text(path).split("\n")
        _check_version(path, lines[0])
        return lines[1:]

    def purge_before(self, batch_id: int) -> None:
        """Delete entries with ids below ``batch_id`` (retention)."""
        remove_checked(*(self.path(old) for old in self.batch_ids() if old < batch_id))


@dataclass
class OffsetEntry:
    """What batch N reads: one offset per source, the batch clock and the watermark.

    Example file (Spark's OffsetSeq format)::

        v1
        {"batchWatermarkMs":0,"batchTimestampMs":1700000000000,"conf":{...}}
        {"logOffset":3}
    """

    offsets: list[Any]
    batch_timestamp_ms: int
    batch_watermark_ms: int = 0
    conf: dict[str, str] = field(default_factory=dict)
    watermarks: dict[str, int] = field(default_factory=dict)


class OffsetLog(BatchLog):
    """``offsets/N``: the write-ahead log of what each batch reads."""

    def add(self, batch_id: int, entry: OffsetEntry, *,
            sync_in_background: bool = False) -> FolderSync:
        """Write ``offsets/N``. With ``sync_in_background`` its name is made here and its
        folder fsync runs meanwhile: the caller waits on the returned ``FolderSync``
        before batch N has any effect outside the checkpoint (the sink)."""
        meta: dict[str, Any] = {
            "batchWatermarkMs": entry.batch_watermark_ms,
            "batchTimestampMs": entry.batch_timestamp_ms,
            "conf": entry.conf,
        }
        if entry.watermarks:
            meta["unboundedWatermarksMs"] = entry.watermarks
        lines = [json.dumps(meta, separators=(",", ":"))]
        lines += [_VOID if o is None else json.dumps(o, separators=(",", ":"))
                  for o in entry.offsets]
        return self.write_lines(batch_id, lines, sync_in_background=sync_in_background)

    def get(self, batch_id: int) -> OffsetEntry:
        lines = self.read_lines(batch_id)
        try:
            meta = json.loads(lines[0])
            offsets = [None if ln == _VOID else json.loads(ln) for ln in lines[1:]]
            return OffsetEntry(
                offsets=offsets,
                batch_timestamp_ms=int(meta.get("batchTimestampMs", 0)),
                batch_watermark_ms=int(meta.get("batchWatermarkMs", 0)),
                conf=dict(meta.get("conf", {})),
                watermarks={k: int(v)
                            for k, v in meta.get("unboundedWatermarksMs", {}).items()},
            )
        except (ValueError, IndexError, TypeError, AttributeError) as e:
            raise _invalid(self.path(batch_id), "not an offset log entry", e) from e


@dataclass
class CommitEntry:
    """Batch N is durable in the sink and the state stores.

    Example file::

        v1
        {"nextBatchWatermarkMs":0}
    """

    next_batch_watermark_ms: int = 0


class CommitLog(BatchLog):
    """``commits/N``: written after the sink and state made batch N durable."""

    def add(self, batch_id: int, entry: CommitEntry) -> None:
        self.write_lines(batch_id, _commit_lines(entry))

    def prepare(self, batch_id: int, entry: CommitEntry) -> PreparedEntry:
        """``commits/N``'s bytes made durable under a temporary name while the sink
        writes; ``publish()`` once the sink and state are durable names it."""
        return PreparedEntry(self.path(batch_id), _body(_commit_lines(entry)))

    def get(self, batch_id: int) -> CommitEntry:
        lines = self.read_lines(batch_id)
        try:
            data = json.loads(lines[0]) if lines and lines[0] else {}
            return CommitEntry(int(data.get("nextBatchWatermarkMs", 0)))
        except (ValueError, TypeError, AttributeError) as e:
            raise _invalid(self.path(batch_id), "not a commit log entry", e) from e


@dataclass
class QueryMetadata:
    """``metadata``: the query's id and shape, written once at the first run.

    Example file (Spark reads the ``id`` and ignores the rest)::

        {"id":"5f1c...","unbounded":{"version":1,"sources":["kafka"],"sink":"parquet"}}
    """

    id: str
    sources: list[str]
    sink: str
    conf: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, checkpoint: str) -> QueryMetadata | None:
        path = os.path.join(checkpoint, "metadata")
        if not storage_for(path).exists(path):
            return None
        text = read_checked_text(path)
        try:
            data = json.loads(text)
            shape = data.get("unbounded", {})
            if int(shape.get("version", 1)) > VERSION:
                raise CheckpointCorruptError(
                    f"{path} was written by a newer unbounded (version {shape['version']}).")
            return cls(str(data["id"]), list(shape.get("sources", [])),
                       str(shape.get("sink", "")), dict(shape.get("conf", {})))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise _invalid(path, "not valid query metadata", e) from e

    def write(self, checkpoint: str) -> None:
        body = {"id": self.id, "unbounded": {"version": VERSION, "sources": self.sources,
                                             "sink": self.sink, "conf": self.conf}}
        write_checked(os.path.join(checkpoint, "metadata"),
                      json.dumps(body, separators=(",", ":")).encode("utf-8"))
