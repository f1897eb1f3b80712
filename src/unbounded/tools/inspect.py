"""What a checkpoint holds, read without changing a byte of it.

:func:`inspect_checkpoint` returns a :class:`CheckpointReport`: the query's id, sources,
sink and fixed configuration, one :class:`BatchRecord` per offset log entry (its offsets
per source, clock, watermark and whether it committed), the versions and sizes of every
state store, and, given the file sink's output folder, its manifest. A damaged file does
not stop the report: the entry carries the error and ``unbounded checkpoint validate``
names every problem. The checkpoint (and the sink's folder) may be a URL
(``s3://bucket/cp``): everything is read through the checkpoint's storage layer.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from unbounded.checkpoint.logs import CommitLog, OffsetLog, QueryMetadata
from unbounded.checkpoint.storage import normalize_location, storage_for
from unbounded.errors import CheckpointCorruptError
from unbounded.files.manifest import FileSinkManifest
from unbounded.tools.sink import manifest_batches
from unbounded.tools.stores import operator_ids, partitioning, store_files, store_ids

__all__ = [
    "BatchRecord",
    "CheckpointReport",
    "NotACheckpointError",
    "OperatorRecord",
    "SinkRecord",
    "StoreRecord",
    "inspect_checkpoint",
    "iso_ms",
]


class NotACheckpointError(FileNotFoundError):
    """The folder has no ``metadata`` file: no query ever started on it."""


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as an ISO-8601 UTC timestamp (``None`` stays ``None``).

    >>> iso_ms(1700000000123)
    '2023-11-14T22:13:20.123+00:00'
    """
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class BatchRecord:
    """One offset log entry, and its commit if there is one."""

    batch_id: int
    committed: bool
    timestamp_ms: int | None = None
    watermark_ms: int | None = None
    next_watermark_ms: int | None = None
    offsets: list[Any] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class StoreRecord:
    partition_id: int
    store_name: str
    path: str
    latest_version: int
    delta_versions: list[int]
    snapshot_versions: list[int]
    size_bytes: int


@dataclass(frozen=True)
class OperatorRecord:
    operator_id: int
    num_partitions: int | None
    stores: list[StoreRecord]
    error: str | None = None


@dataclass(frozen=True)
class SinkRecord:
    """The file sink's manifest: its batches and the files it lists."""

    path: str
    batch_ids: list[int]
    num_files: int = 0
    size_bytes: int = 0
    error: str | None = None


@dataclass(frozen=True)
class CheckpointReport:
    path: str
    query_id: str
    sources: list[str]
    sink: str
    fixed_conf: dict[str, str]
    batches: list[BatchRecord]
    operators: list[OperatorRecord]
    sink_manifest: SinkRecord | None

    @property
    def last_committed(self) -> int | None:
        return max((b.batch_id for b in self.batches if b.committed), default=None)

    @property
    def watermark_ms(self) -> int | None:
        """The watermark the next batch runs with (the last commit's)."""
        done = [b for b in self.batches if b.committed]
        return done[-1].next_watermark_ms if done else None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values; times also as ISO-8601 strings (``...Iso`` keys)."""
        doc = asdict(self)
        doc["lastCommittedBatch"] = self.last_committed
        doc["watermarkMs"] = self.watermark_ms
        doc["watermarkIso"] = iso_ms(self.watermark_ms)
        for batch in doc["batches"]:
            batch["timestampIso"] = iso_ms(batch["timestamp_ms"])
            batch["watermarkIso"] = iso_ms(batch["watermark_ms"])
        return doc


def _log_ids(checkpoint: str, name: str) -> list[int]:
    folder = os.path.join(checkpoint, name)
    return sorted(int(n) for n in storage_for(folder).list(folder) if n.isdigit())


def _batch(checkpoint: str, batch_id: int, committed: bool) -> BatchRecord:
    try:
        entry = OffsetLog(os.path.join(checkpoint, "offsets")).get(batch_id)
        commit = CommitLog(os.path.join(checkpoint, "commits")).get(batch_id) \
            if committed else None
    except CheckpointCorruptError as e:
        return BatchRecord(batch_id, committed, error=str(e))
    return BatchRecord(batch_id, committed, entry.batch_timestamp_ms, entry.batch_watermark_ms,
                       None if commit is None else commit.next_batch_watermark_ms,
                       entry.offsets)


def _batches(checkpoint: str) -> list[BatchRecord]:
    commits = set(_log_ids(checkpoint, "commits"))
    return [_batch(checkpoint, b, b in commits) for b in _log_ids(checkpoint, "offsets")]


def _operator(state_root: str, operator_id: int) -> OperatorRecord:
    stores = [store_files(s) for s in store_ids(state_root, operator_id)]
    records = [StoreRecord(s.store_id.partition_id, s.store_id.store_name, s.store_id.path,
                           s.latest_version, list(s.deltas), list(s.snapshots), s.size_bytes)
               for s in stores]
    try:
        doc = partitioning(state_root, operator_id)
    except CheckpointCorruptError as e:
        return OperatorRecord(operator_id, None, records, str(e))
    return OperatorRecord(operator_id, None if doc is None else int(doc["numPartitions"]),
                          records)


def _operators(checkpoint: str) -> list[OperatorRecord]:
    root = os.path.join(checkpoint, "state")
    return [_operator(root, op) for op in operator_ids(root)]


def _sink(path: str) -> SinkRecord:
    manifest = FileSinkManifest(normalize_location(path))
    ids = sorted(manifest_batches(manifest))
    try:
        entries = manifest.all_entries()
    except CheckpointCorruptError as e:
        return SinkRecord(manifest.path, ids, error=str(e))
    return SinkRecord(manifest.path, ids, len(entries),
                      sum(int(e.get("size", 0)) for e in entries))


def inspect_checkpoint(checkpoint: str, sink_path: str | None = None) -> CheckpointReport:
    """Read the checkpoint (and the file sink's manifest under ``sink_path``)."""
    meta = QueryMetadata.read(checkpoint)
    if meta is None:
        raise NotACheckpointError(f"{checkpoint} is not a checkpoint (no metadata file)")
    return CheckpointReport(
        normalize_location(checkpoint), meta.id, meta.sources, meta.sink, meta.conf,
        _batches(checkpoint), _operators(checkpoint),
        None if sink_path is None else _sink(sink_path))
