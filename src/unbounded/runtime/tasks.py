"""Partition tasks: one input partition pushed through the row-local part of a plan.

A task holds only picklable values (the plan, the partition descriptor, numbers), so an
executor may run it on a thread here or ship it to another process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from unbounded.engine.context import CompileContext, EventTimeStats
from unbounded.engine.dtypes import to_polars_dtype
from unbounded.engine.plans import compile_plan
from unbounded.plan.logical import LogicalPlan
from unbounded.plan.types import StructType
from unbounded.sources.base import InputPartition, SupportsLazyScan

__all__ = ["PartitionTask", "TaskResult", "run_task"]


@dataclass
class TaskResult:
    table: pa.Table
    input_rows: int
    event_time: dict[str, EventTimeStats] = field(default_factory=dict)
    dropped_late: int = 0


@dataclass(frozen=True)
class PartitionTask:
    """Run ``plan`` with the streaming leaf ``relation_id`` bound to one partition and
    every other streaming leaf empty (the plan is row-local, so this is exact)."""

    plan: LogicalPlan
    relation_id: str | None
    partition: InputPartition | None
    source_schema: StructType | None
    batch_timestamp_us: int
    watermark_us: int
    map_side: Any = None  # a stateful operator's per-task stage (picklable), if any


def source_frame(table: pa.Table, schema: StructType) -> pl.LazyFrame:
    """A source's Arrow rows as a frame with exactly the declared column types."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    wanted = {f.name: to_polars_dtype(f.dataType) for f in schema.fields}
    if dict(frame.schema) != wanted:
        frame = frame.select([pl.col(n).cast(t) for n, t in wanted.items()])
    return frame.lazy()


def run_task(task: PartitionTask) -> TaskResult:
    if getattr(task.map_side, "fused", False):
        return _run_fused(task)
    inputs: dict[str, pl.LazyFrame] = {}
    rows = 0
    if task.partition is not None and task.relation_id is not None:
        assert task.source_schema is not None
        table = task.partition.read()
        rows = table.num_rows
        inputs[task.relation_id] = source_frame(table, task.source_schema)
    ctx = CompileContext(pl.Schema(), task.batch_timestamp_us, task.watermark_us,
                         observe_event_time=True)
    out = compile_plan(task.plan, inputs, ctx).collect()
    dropped = 0
    if task.map_side is not None:
        out, dropped = task.map_side(out, task.watermark_us // 1000)
    return TaskResult(out.to_arrow(), rows, ctx.event_time, dropped)


def _run_fused(task: PartitionTask) -> TaskResult:
    """Read, the plan below the aggregation and the map-side aggregation as one lazy
    Polars query on its streaming engine (no intermediate frame is materialized)."""
    inputs: dict[str, pl.LazyFrame] = {}
    rows = 0
    if task.partition is not None and task.relation_id is not None:
        assert task.source_schema is not None
        scanned = task.partition.scan() if isinstance(task.partition, SupportsLazyScan) \
            else None
        if scanned is None:
            table = task.partition.read()
            scanned = source_frame(table, task.source_schema), table.num_rows
        inputs[task.relation_id], rows = scanned
    own_stats = task.map_side.watermark is not None
    ctx = CompileContext(pl.Schema(), task.batch_timestamp_us, task.watermark_us,
                         observe_event_time=not own_stats)
    frame = compile_plan(task.plan, inputs, ctx)
    partial, dropped, stats = task.map_side.run_lazy(frame, task.watermark_us // 1000)
    if stats is not None:
        ctx.event_time[task.map_side.watermark[0]] = stats
    return TaskResult(partial.to_arrow(), rows, ctx.event_time, dropped)
