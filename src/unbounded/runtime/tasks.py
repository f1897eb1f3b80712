"""Partition tasks: one input partition pushed through the row-local part of a plan.

A task holds only picklable values (the plan, the partition descriptor, numbers), so an
executor may run it on a thread here or ship it to another process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import polars as pl
import pyarrow as pa

from unbounded.engine.ansi import run_checked
from unbounded.engine.context import CompileContext, EventTimeStats
from unbounded.engine.dtypes import to_polars_dtype
from unbounded.engine.plans import compile_plan
from unbounded.executors.base import Locality, LocalityKind, ShippableTask
from unbounded.files.paths import path_uri
from unbounded.plan.logical import LogicalPlan
from unbounded.plan.types import StructType
from unbounded.runtime.stages import InputId
from unbounded.runtime.stateful.base import MapSide
from unbounded.sources.base import InputPartition, SupportsLazyScan
from unbounded.sources.files import FileInputPartition

__all__ = ["EAGER_READ_BYTES", "POLARS_RESULT_ROWS", "PartitionTask", "TaskResult",
           "run_partition", "run_task", "task_locality"]


# A map side's output under this many rows is handed back as the Polars frame: both
# conversions (to Arrow here, back on the driver) cost a fixed ~0.1 ms per batch, more
# than a small frame's pickling; a larger one goes as Arrow, which Ray's object store
# moves without a copy.
POLARS_RESULT_ROWS = 65_536


@dataclass
class TaskResult:
    """What one task made of its partition, tagged with the input it feeds: Arrow for
    the query's final input (the sink's) and a large operator input, a small operator
    input as the map side's Polars frame (see ``POLARS_RESULT_ROWS``)."""

    input_id: InputId
    rows: pa.Table | pl.DataFrame
    input_rows: int
    event_time: dict[str, EventTimeStats] = field(default_factory=dict)
    dropped_late: int = 0


@dataclass(frozen=True)
class PartitionTask:
    """Run ``plan`` with the streaming leaf ``relation_id`` bound to one partition and
    every other streaming leaf empty (the plan is row-local, so this is exact), then the
    consuming operator's map side, if it has one."""

    input_id: InputId
    plan: LogicalPlan
    relation_id: str | None
    partition: InputPartition | None
    source_schema: StructType | None
    batch_timestamp_us: int
    watermark_us: int
    late_watermark_us: int
    map_side: MapSide | None = None
    ansi: bool = True  # spark.sql.ansi.enabled of the query's session
    partition_index: int = 0  # the partition's place among its source's in this batch
    time_zone: str = "UTC"  # spark.sql.session.timeZone of the query's session


def source_frame(table: pa.Table, schema: StructType) -> pl.LazyFrame:
    """A source's Arrow rows as a frame with exactly the declared column types."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    wanted = {f.name: to_polars_dtype(f.dataType) for f in schema.fields}
    if dict(frame.schema) != wanted:
        frame = frame.select([pl.col(n).cast(t) for n, t in wanted.items()])
    return frame.lazy()


def run_partition(task: PartitionTask) -> TaskResult:
    """Read, the row-local plan and the map side as one lazy Polars query where the
    partition can be scanned lazily (no intermediate frame is materialized). Integral
    overflow is checked by Polars itself; a batch that overflows runs again with
    Spark's checks, which raise Spark's error (``engine/ansi.py: run_checked``)."""
    return run_checked(lambda: _run_partition(task))


def _run_partition(task: PartitionTask) -> TaskResult:
    inputs: dict[str, pl.LazyFrame] = {}
    rows = 0
    if task.partition is not None and task.relation_id is not None:
        inputs[task.relation_id], rows = _scan(task)
    map_side = task.map_side
    own_stats = map_side is not None and map_side.observed_watermark is not None
    ctx = CompileContext(pl.Schema(), task.batch_timestamp_us, task.watermark_us,
                         observe_event_time=not own_stats, relist_files=True,
                         ansi=task.ansi, partition_index=task.partition_index,
                         input_file=_input_file(task.partition), time_zone=task.time_zone)
    frame = compile_plan(task.plan, inputs, ctx)
    if map_side is None:
        return TaskResult(task.input_id, frame.collect().to_arrow(), rows, ctx.event_time)
    out = map_side.run(frame, task.late_watermark_us, input_rows=rows)
    if out.event_time is not None:
        ctx.event_time[out.event_time[0]] = out.event_time[1]
    handed = out.rows if out.rows.height < POLARS_RESULT_ROWS else out.rows.to_arrow()
    return TaskResult(task.input_id, handed, rows, ctx.event_time, out.dropped_late)


@runtime_checkable
class _TopicPartition(Protocol):
    """A partition of a stream's topic (the Kafka source's), read by offsets."""

    topic: str
    partition: int


def task_locality(task: PartitionTask) -> Locality | None:
    """The data a task reads, for placing it near that data: a topic-partition (its
    consumer stays warm on one node) or a file (first path); None for other inputs."""
    part = task.partition
    if isinstance(part, FileInputPartition) and part.paths:
        return Locality(LocalityKind.FILE, part.paths[0])
    if isinstance(part, _TopicPartition):
        return Locality(LocalityKind.STREAM_PARTITION, f"{part.topic}:{part.partition}")
    return None


# A pure function of its task (the same partition gives the same rows), so an executor
# may run it on another node and run it again when an attempt fails.
run_task: ShippableTask[PartitionTask, TaskResult] = ShippableTask(run_partition,
                                                                    task_locality)


# Files of fewer bytes in all are read eagerly even when a lazy scan could be fused
# with the map side: for a 100-row Parquet file the scan's fixed cost (footers, planning,
# Polars' async reader) made a task ~15% dearer in CPU (captured tasks, 6 rounds).
EAGER_READ_BYTES = 256 * 1024


def _scan(task: PartitionTask) -> tuple[pl.LazyFrame, int]:
    assert task.partition is not None and task.source_schema is not None
    if task.map_side is not None and isinstance(task.partition, SupportsLazyScan) \
            and not _small_files(task.partition):
        scanned = task.partition.scan()
        if scanned is not None:
            return scanned
    table = task.partition.read()
    return source_frame(table, task.source_schema), table.num_rows


def _small_files(partition: InputPartition) -> bool:
    """Local files of fewer than ``EAGER_READ_BYTES`` in all (a missing one: not small,
    the scan names it)."""
    if not isinstance(partition, FileInputPartition):
        return False
    try:
        return sum(os.stat(p).st_size for p in partition.paths) < EAGER_READ_BYTES
    except (OSError, ValueError):  # a URL or a missing file: not for stat()
        return False


def _input_file(partition: InputPartition | None) -> str:
    """The file a partition reads, as ``input_file_name()`` shows it (a ``file:`` URI);
    "" when it reads several or is not a file."""
    if isinstance(partition, FileInputPartition) and len(partition.paths) == 1:
        return path_uri(partition.paths[0])
    return ""
