"""What every stateful operator shares: the plan split, key partitioning, state access.

The physical plan (``runtime/stages.py``) gives each stateful node its inputs; the node
runs against its state stores, one per state partition (key hash modulo
``spark.sql.shuffle.partitions``, fixed at the first run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import polars as pl
import pyarrow as pa

from unbounded.checkpoint.checksum import read_checked_json, write_checked
from unbounded.checkpoint.storage import storage_for
from unbounded.engine.context import EventTimeStats
from unbounded.errors import AnalysisException, CheckpointCorruptError
from unbounded.executors.base import Executor
from unbounded.plan.analyzer import event_time_columns
from unbounded.plan.logical import LogicalPlan
from unbounded.state.base import (
    StateSchema,
    StateStore,
    StateStoreConf,
    StateStoreId,
    StateStoreProvider,
)
from unbounded.state.registry import create_provider

__all__ = ["BatchInfo", "CallsUserFunctions", "InputBatch", "MapSide", "MapSideOutput",
           "OperatorContext", "OperatorOutput", "PartitionedState", "StatefulOperator",
           "SupportsTimeouts", "frame_of",
           "map_partitions", "partition_ids", "split_partitions", "sum_metrics", "watermark_delays"]

R = TypeVar("R")
_PARTITION = "__state_partition"
_PROBE = pl.DataFrame({"a": [1, 2, None], "s": ["x", None, "z"]})


def watermark_delays(plan: LogicalPlan) -> dict[str, int]:
    """Event-time column (lower-cased) -> watermark delay in ms, for the plan below an
    operator (an upstream time-window aggregation's window counts)."""
    return event_time_columns(plan)


@dataclass(frozen=True)
class OperatorContext:
    """Where and how an operator keeps state."""

    state_root: str
    num_partitions: int
    store_conf: StateStoreConf
    output_mode: str
    executor: Executor
    operator_id: int = 0
    ansi: bool = True  # spark.sql.ansi.enabled: how the operator's own expressions fail
    time_zone: str = "UTC"  # spark.sql.session.timeZone: how they read timestamps


@dataclass
class OperatorOutput:
    rows: pl.DataFrame
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchInfo:
    """The batch an operator runs, with its clock in microseconds.

    As in Spark 3.4+, two watermarks: ``watermark_us`` (this batch's, logged in
    ``offsets/N``) evicts state and closes windows; ``late_watermark_us`` (the previous
    batch's) filters late input rows. A row an upstream operator emits in this batch is
    older than this batch's watermark but not than the previous one, so a chained
    operator keeps it. Both are logged, so a re-run sees the same values.
    """

    batch_id: int
    timestamp_us: int
    watermark_us: int
    late_watermark_us: int


@dataclass
class InputBatch:
    """One input's rows for this batch (what its map side made of them, if it has one),
    how many late rows the map side already dropped, and how many rows it read (0:
    not known)."""

    rows: pl.DataFrame
    dropped_late: int = 0
    input_rows: int = 0


@dataclass
class MapSideOutput:
    rows: pl.DataFrame
    dropped_late: int = 0
    # Statistics of a watermark column computed in the same pass: (node id, stats).
    event_time: tuple[str, EventTimeStats] | None = None


@runtime_checkable
class MapSide(Protocol):
    """An operator's per-task stage, run where the rows are read (a thread here, another
    process later), so it must pickle. It reduces one partition's rows before they are
    routed to state partitions."""

    @property
    def observed_watermark(self) -> str | None:
        """The withWatermark node whose event-time statistics ``run`` computes itself
        (the task then does not); None when it computes none."""
        ...

    def run(self, rows: pl.LazyFrame, watermark_us: int, *,
            input_rows: int | None = None) -> MapSideOutput:
        """``rows`` reduced; ``input_rows``: how many rows ``rows`` holds, when known
        (a hint for choosing how to run, never a change to the answer)."""
        ...


class StatefulOperator(Protocol):
    """A node that keeps state across batches, with one input per child."""

    @property
    def map_sides(self) -> tuple[MapSide | None, ...]:
        """Per input, the stage its partition tasks run (None: rows pass as they are)."""
        ...

    def process(self, inputs: Sequence[InputBatch], batch: BatchInfo) -> OperatorOutput:
        """Fold the inputs into the state (version ``batch_id`` -> ``batch_id + 1``) and
        return the rows the output mode emits; a re-run of a batch recomputes the same
        version from the same input."""
        ...

    def output_watermark_us(self, input_watermark_us: int) -> int:
        """The watermark the operator's output carries to a stateful operator after it
        (Spark's per-operator propagation): its input's, unless it may still emit rows
        older than that (a join emits rows as old as the state it keeps)."""
        ...

    def maintenance(self, min_versions: int) -> None:
        """Delete state files no longer needed to recover the last ``min_versions``."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class SupportsTimeouts(Protocol):
    """An operator whose state can time out on processing time, which passes without
    new rows: the micro-batch loop asks it whether a batch without data is due."""

    def timeouts_due(self, batch_timestamp_ms: int) -> bool:
        """Whether a batch with this timestamp would time out some stored key."""
        ...


class CallsUserFunctions:
    """Mix-in of an operator that calls user functions with a batch's rows
    (``applyInPandasWithState``, ``transformWithState``): the micro-batch loop runs it
    only once the batch's ``offsets/N`` is durable, as Spark does, since the function
    may act outside the checkpoint. The built-in operators only compute and write their
    state, so they run while that folder fsync is under way."""


def partition_ids(frame: pl.DataFrame, keys: list[str], n: int) -> pl.Series:
    return frame.select((pl.struct(keys).hash(seed=0) % n).alias("p"))["p"]


def check_partitioning(ctx: OperatorContext) -> None:
    """Refuse to reuse state whose keys were partitioned by a different hash.

    Format of ``<state>/<operator>/_metadata/partitioning`` (JSON, written once)::

        {"version": 1, "numPartitions": 2, "probe": [812..., 3...]}

    The key hash comes from Polars, which does not promise the same values across its
    releases; a probe recorded at the first run detects a change before any key is
    looked up in the wrong partition.
    """
    folder = os.path.join(ctx.state_root, str(ctx.operator_id), "_metadata")
    path = os.path.join(folder, "partitioning")
    probe = partition_ids(_PROBE, ["a", "s"], 1 << 30).to_list()
    current = {"version": 1, "numPartitions": ctx.num_partitions, "probe": probe}
    store = storage_for(path)
    if not store.exists(path):
        store.make_folder(folder, durable=True)  # state/ and state/<op>/ survive a power cut
        write_checked(path, json.dumps(current).encode())
        return
    recorded = read_checked_json(path, "state partitioning JSON")
    if recorded.get("version") != 1:
        raise CheckpointCorruptError(
            f"{path} has partitioning version {recorded.get('version')!r}; this release "
            "reads version 1. Upgrade unbounded to use this checkpoint.")
    if recorded.get("numPartitions") != ctx.num_partitions:
        raise AnalysisException(
            f"The state in {folder} has {recorded.get('numPartitions')} partitions but the "
            f"query now asks for {ctx.num_partitions}; the number of state partitions is fixed "
            "at the first run. Start with a new checkpoint to change it.",
            error_class="STATE_PARTITIONS_CHANGED")
    if recorded.get("probe") != probe:
        raise AnalysisException(
            f"The state in {folder} was partitioned by a key hash that this installation "
            f"computes differently (Polars {pl.__version__}). Install the Polars release the "
            "checkpoint was written with, or start with a new checkpoint.",
            error_class="STATE_PARTITIONING_CHANGED")


class PartitionedState:
    """An operator's state stores, one per state partition.

    All are opened when the operator is built, so a changed state schema or partitioning
    fails before the query starts rather than in its first batch.
    """

    def __init__(self, ctx: OperatorContext, schema: StateSchema, store_name: str = "") -> None:
        check_partitioning(ctx)
        self.providers: list[StateStoreProvider] = [
            create_provider(StateStoreId(ctx.state_root, ctx.operator_id, p, store_name), schema,
                            ctx.store_conf)
            for p in range(ctx.num_partitions)]

    def store(self, partition: int, version: int) -> StateStore:
        return self.providers[partition].get_store(version)

    def maintenance(self, min_versions: int) -> None:
        for provider in self.providers:
            provider.maintenance(min_versions)

    def close(self) -> None:
        for provider in self.providers:
            provider.close()


def split_partitions(frame: pl.DataFrame, parts: pl.Series, n: int) -> list[pl.DataFrame]:
    """``frame``'s rows per state partition (``parts`` holds each row's), in one pass."""
    grouped = frame.with_columns(parts.alias(_PARTITION)).partition_by(
        _PARTITION, as_dict=True, include_key=False)
    empty = frame.clear()
    return [grouped.get((p,), empty) for p in range(n)]


def map_partitions(ctx: OperatorContext, frame: pl.DataFrame, keys: list[str],
                   fn: Callable[[int, pl.DataFrame], R]) -> list[R]:
    """Split ``frame`` by key hash into the state partitions and run ``fn`` on each (in
    parallel on the executor), in partition order."""
    parts = split_partitions(frame, partition_ids(frame, keys, ctx.num_partitions),
                             ctx.num_partitions)
    return ctx.executor.map(lambda p: fn(p, parts[p]), list(range(ctx.num_partitions)))


def frame_of(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def sum_metrics(parts: list[dict[str, int]]) -> dict[str, Any]:
    """Per-partition store metrics added up into one operator's figures."""
    total: dict[str, Any] = {}
    for metrics in parts:
        for k, v in metrics.items():
            total[k] = total.get(k, 0) + v
    return total
