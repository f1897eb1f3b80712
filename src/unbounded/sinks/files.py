"""The file sink (parquet, orc, avro, json, csv, text): exactly-once through a manifest log.

Each batch writes new data files, fsyncs them, then records them in
``<path>/_spark_metadata/<batchId>`` (Spark's format, see ``unbounded.files.manifest``). Readers
(ours and Apache Spark) list only files in the manifest, so files of a batch that
crashed before its manifest entry are invisible; a batch id already in the manifest is
skipped on replay.

The output folder may be an fsspec URL (``s3://bucket/out``): data files are uploaded
under their unique names, and the manifest entry, the batch's commit point, is published
with the storage layer's ``create`` (on S3 a conditional PUT that a second writer of the
same batch cannot overwrite), so the output stays exactly-once across restarts there too.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass

import pyarrow as pa

from unbounded.checkpoint.atomic import fsync_file_in_background, make_dirs, sync_folder_name
from unbounded.checkpoint.checksum import defer_folder_sync, deferred_folder_syncs
from unbounded.checkpoint.epoch import fence_for
from unbounded.checkpoint.storage import (
    FsspecStorage,
    is_url,
    normalize_location,
    storage_for,
)
from unbounded.config import DEFAULTS
from unbounded.errors import AnalysisException
from unbounded.executors.base import Executor
from unbounded.executors.local import LocalExecutor
from unbounded.files.manifest import FileSinkManifest
from unbounded.files.paths import local_path, path_uri
from unbounded.files.writing import file_extension, write_partitioned
from unbounded.sinks.base import MicroBatch, SinkContext
from unbounded.testing.faults import fault_point

__all__ = ["FileSink"]

log = logging.getLogger(__name__)

# A batch whose parts hold fewer rows than this in all is written as one file: each file
# costs a writer, a footer, an fsync and a manifest entry, more than a small part's rows.
SMALL_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class _WriteTask:
    folder: str
    fmt: str
    index: int
    table: pa.Table
    partition_by: tuple[str, ...]
    options: tuple[tuple[str, str], ...]
    zone: str = "UTC"  # the session time zone: timestamp partition folders' wall clock


def _manifest_entry(path: str) -> dict[str, object]:
    size, mtime_ms = _size_and_mtime(path)
    return {"path": path_uri(path), "size": size, "isDir": False,
            "modificationTime": mtime_ms, "blockReplication": 1,
            "blockSize": 33554432, "action": "add"}


def _size_and_mtime(path: str) -> tuple[int, int]:
    store = storage_for(path)
    if isinstance(store, FsspecStorage):
        return store.stat(path)
    stat = os.stat(path)
    return stat.st_size, int(stat.st_mtime * 1000)


def _run_write(task: _WriteTask) -> list[dict[str, object]]:
    """Write one task's rows: one file, or one per partition-column value."""
    stem = f"part-{task.index:05d}-{uuid.uuid4()}.c000"
    paths = write_partitioned(task.folder, task.fmt, task.table, task.partition_by,
                              dict(task.options), stem=stem, zone=task.zone, sync=False)
    return [_manifest_entry(p) for p in paths]


def _coalesced(parts: list[pa.Table]) -> list[pa.Table]:
    """The non-empty parts, as one table when they are few rows of one schema in all
    (the tasks' outputs of a small batch: one file instead of one per task; the table
    keeps the parts as its chunks, so nothing is copied)."""
    tables = [p for p in parts if p.num_rows > 0]
    if len(tables) < 2 or sum(t.num_rows for t in tables) >= SMALL_BATCH_ROWS \
            or any(not t.schema.equals(tables[0].schema) for t in tables[1:]):
        return tables
    return [pa.concat_tables(tables)]


class FileSink:
    def __init__(self, fmt: str, ctx: SinkContext) -> None:
        path = ctx.option("path")
        if not path:
            raise AnalysisException(
                f"The {fmt} sink needs an output path: .option('path', '/out/dir') or "
                ".start('/out/dir').", error_class="MISSING_PATH")
        if ctx.output_mode not in ("append",):
            raise AnalysisException(
                f"Data source {fmt} does not support {ctx.output_mode} output mode; file "
                "sinks support only append. Use outputMode('append') (with a watermark for "
                "aggregations).", error_class="UNSUPPORTED_OUTPUT_MODE")
        file_extension(fmt)  # an unwritable format fails before the query starts
        self.fmt = fmt
        self.path = normalize_location(local_path(path))
        self.partition_by = ctx.partition_by
        self.options = tuple((k, v) for k, v in ctx.options.items() if k != "path")
        conf = ctx.extra.get("conf", {})
        self.zone: str = conf.get("spark.sql.session.timeZone") or \
            DEFAULTS["spark.sql.session.timeZone"]
        self._make_output_folder()
        self.manifest = FileSinkManifest(self.path)
        self._fence = fence_for(ctx.checkpoint_path)
        executor = ctx.extra.get("executor")
        self.executor: Executor = executor if executor is not None else LocalExecutor()

    def _make_output_folder(self) -> None:
        """A local folder is made with its name durable (an earlier run may have made
        it, not durably); an object store has no folders to make."""
        if is_url(self.path):
            return
        make_dirs(self.path)
        sync_folder_name(self.path)

    @property
    def description(self) -> str:
        return f"FileSink[{self.path}]"

    def last_committed_batch(self) -> int | None:
        return self.manifest.latest_checked_batch_id()

    def commit_record(self, batch_id: int) -> str:
        return self.manifest.entry_path(batch_id)

    def add_batch(self, batch_id: int, batch: MicroBatch) -> None:
        latest = self.manifest.latest_batch_id()
        if latest is not None and batch_id <= latest:
            log.info("Skipping batch %d: already committed to %s", batch_id, self.path)
            return
        tasks = [_WriteTask(self.path, self.fmt, i, t, self.partition_by, self.options,
                            self.zone)
                 for i, t in enumerate(_coalesced(batch.partitions))]
        entries = [e for written in self.executor.map(_run_write, tasks) for e in written]
        # The data files' fsyncs run with the manifest entry's two (one journal commit);
        # the entry is named once all succeeded. An object's PUT is durable once answered.
        synced = []
        if not is_url(self.path):
            paths = [local_path(str(e["path"])) for e in entries]
            synced = [fsync_file_in_background(path) for path in paths]
            for folder in {os.path.dirname(path) for path in paths}:
                defer_folder_sync(folder)
        fault_point("mid-sink-write", batch_id)
        if self._fence is not None:
            self._fence.check(self.manifest.entry_path(batch_id))
        # The data files' names and the manifest entry's wait for the folder fsync of
        # commits/N (which follows the sink), where one journal commits names in the
        # order made: a cut that keeps commits/N keeps them (made before it), one that
        # takes commits/N re-runs the batch, and a manifest entry kept without it makes
        # the re-run skip the sink as before. Elsewhere each folder is fsynced here.
        with deferred_folder_syncs():
            self.manifest.add_batch(batch_id, entries, after=synced)

    def stop(self) -> None:
        """Nothing to release."""
