"""The file sink (parquet, json, csv): exactly-once through a manifest log.

Each batch writes new data files, fsyncs them, then records them in
``<path>/_spark_metadata/<batchId>`` (Spark's format, see ``unbounded.files.manifest``). Readers
(ours and Apache Spark) list only files in the manifest, so files of a batch that
crashed before its manifest entry are invisible; a batch id already in the manifest is
skipped on replay.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from unbounded.checkpoint.atomic import fsync_dir
from unbounded.checkpoint.epoch import fence_for
from unbounded.errors import AnalysisException
from unbounded.executors.base import Executor
from unbounded.executors.local import LocalExecutor
from unbounded.files.manifest import FileSinkManifest
from unbounded.files.paths import local_path, path_uri
from unbounded.sinks.base import MicroBatch, SinkContext
from unbounded.testing.faults import fault_point

__all__ = ["FileSink"]

log = logging.getLogger(__name__)
_EXTENSIONS = {"parquet": ".snappy.parquet", "json": ".json", "csv": ".csv"}


@dataclass(frozen=True)
class _WriteTask:
    folder: str
    fmt: str
    index: int
    table: pa.Table
    partition_by: tuple[str, ...]
    options: tuple[tuple[str, str], ...]


def _write_file(path: str, fmt: str, table: pa.Table, options: dict[str, str]) -> dict[str, object]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path, compression=options.get("compression", "snappy"))
    else:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        if fmt == "json":
            frame.write_ndjson(path)
        else:
            header = options.get("header", "false").lower() == "true"
            frame.write_csv(path, include_header=header,
                            separator=options.get("sep", options.get("delimiter", ",")))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    stat = os.stat(path)
    return {"path": path_uri(path), "size": stat.st_size, "isDir": False,
            "modificationTime": int(stat.st_mtime * 1000), "blockReplication": 1,
            "blockSize": 33554432, "action": "add"}


def _run_write(task: _WriteTask) -> list[dict[str, object]]:
    """Write one task's rows: one file, or one per partition-column value."""
    options = dict(task.options)
    name = f"part-{task.index:05d}-{uuid.uuid4()}.c000{_EXTENSIONS[task.fmt]}"
    if not task.partition_by:
        return [_write_file(os.path.join(task.folder, name), task.fmt, task.table, options)]
    frame = pl.from_arrow(task.table)
    assert isinstance(frame, pl.DataFrame)
    entries = []
    for key, group in frame.partition_by(list(task.partition_by), as_dict=True).items():
        sub = os.path.join(task.folder, *(
            f"{col}={_partition_value(v)}" for col, v in zip(task.partition_by, key,
                                                               strict=True)))
        data = group.drop(list(task.partition_by)).to_arrow()
        entries.append(_write_file(os.path.join(sub, name), task.fmt, data, options))
    return entries


def _partition_value(value: object) -> str:
    return "__HIVE_DEFAULT_PARTITION__" if value is None else str(value)


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
        self.fmt = fmt
        self.path = os.path.abspath(local_path(path))
        self.partition_by = ctx.partition_by
        self.options = tuple((k, v) for k, v in ctx.options.items() if k != "path")
        os.makedirs(self.path, exist_ok=True)
        self.manifest = FileSinkManifest(self.path)
        self._fence = fence_for(ctx.checkpoint_path)
        executor = ctx.extra.get("executor")
        self.executor: Executor = executor if executor is not None else LocalExecutor()

    @property
    def description(self) -> str:
        return f"FileSink[{self.path}]"

    def last_committed_batch(self) -> int | None:
        return self.manifest.latest_batch_id()

    def commit_record(self, batch_id: int) -> str:
        return self.manifest.entry_path(batch_id)

    def add_batch(self, batch_id: int, batch: MicroBatch) -> None:
        latest = self.manifest.latest_batch_id()
        if latest is not None and batch_id <= latest:
            log.info("Skipping batch %d: already committed to %s", batch_id, self.path)
            return
        tasks = [_WriteTask(self.path, self.fmt, i, t, self.partition_by, self.options)
                 for i, t in enumerate(p for p in batch.partitions if p.num_rows > 0)]
        entries = [e for written in self.executor.map(_run_write, tasks) for e in written]
        for folder in {os.path.dirname(local_path(str(e["path"]))) for e in entries}:
            fsync_dir(folder)
        fault_point("mid-sink-write", batch_id)
        if self._fence is not None:
            self._fence.check(self.manifest.entry_path(batch_id))
        self.manifest.add_batch(batch_id, entries)

    def stop(self) -> None:
        """Nothing to release."""
