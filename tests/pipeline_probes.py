"""A test source and sink that record when the runner reads, prepares and writes.

``readStream.format("ticks").option("batches", N)``: batch i reads offset i (a row
``n = i``); ``read_started(i)`` is set when a task starts reading it, so a test can see
whether batch i+1 was read while batch i was still being written. With option
``waitForPrepare`` the read of batch 0 waits (bounded) for ``PreparingSink.prepare``
and records in ``READ_SAW_PREPARE`` whether it came, i.e. whether the sink's set-up ran
while the first batch was being read.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from unbounded.sql.types import LongType, StructField, StructType

__all__ = ["LATEST_SAW_SINK", "READ_SAW_PREPARE", "PreparingSink", "TickSource", "read_started",
           "reset", "sink_ran"]

_STARTED: defaultdict[int, threading.Event] = defaultdict(threading.Event)
_SINK_RAN: defaultdict[int, threading.Event] = defaultdict(threading.Event)
LATEST_SAW_SINK: list[bool] = []
_PREPARED = threading.Event()
READ_SAW_PREPARE: list[bool] = []
_WAIT_S = 10.0


def read_started(batch: int) -> threading.Event:
    return _STARTED[batch]


def sink_ran(batch: int) -> threading.Event:
    """Set by a test's sink while it writes ``batch``."""
    return _SINK_RAN[batch]


def reset() -> None:
    _STARTED.clear()
    _SINK_RAN.clear()
    LATEST_SAW_SINK.clear()
    _PREPARED.clear()
    READ_SAW_PREPARE.clear()


@dataclass(frozen=True)
class TickPartition:
    start: int
    end: int
    wait_for_prepare: bool = False

    def read(self) -> pa.Table:
        _STARTED[self.start].set()
        if self.wait_for_prepare and self.start == 0:
            READ_SAW_PREPARE.append(_PREPARED.wait(_WAIT_S))
        return pa.table({"n": pa.array(range(self.start, self.end), pa.int64())})


class TickSource:
    def __init__(self, format: str, ctx: Any) -> None:
        self.total = int(ctx.options["batches"])
        self.wait_for_prepare = ctx.options.get("waitForPrepare") == "true"
        # Asked for batch i+1's end, wait (bounded) for the sink to write batch i.
        self.latest_waits_for_sink = ctx.options.get("latestWaitsForSink") == "true"
        self.fail_latest_from = int(ctx.options.get("failLatestFrom", -1))

    @classmethod
    def infer_schema(cls, format: str, ctx: Any) -> StructType:
        return StructType([StructField("n", LongType())])

    @property
    def schema(self) -> StructType:
        return self.infer_schema("ticks", None)

    @property
    def description(self) -> str:
        return "ticks"

    def latest_offset(self, start: Any, *, respect_limits: bool = True) -> Any:
        done = start or 0
        if done == self.fail_latest_from:
            raise OSError(f"the ticks after {done} cannot be listed")
        if self.latest_waits_for_sink and start is not None and done < self.total:
            LATEST_SAW_SINK.append(_SINK_RAN[done - 1].wait(3.0))
        return min(done + 1, self.total) if respect_limits else self.total

    def partitions(self, start: Any, end: Any) -> list[TickPartition]:
        return [TickPartition(start or 0, end, self.wait_for_prepare)]

    def commit(self, end: Any) -> None:
        pass

    def stop(self) -> None:
        pass


class PreparingSink:
    """Collects rows; ``prepare`` is the slow set-up the runner should overlap."""

    rows: list[int] = []

    def __init__(self, format: str, ctx: Any) -> None:
        pass

    @property
    def description(self) -> str:
        return "preparing"

    def prepare(self) -> None:
        _PREPARED.set()

    def add_batch(self, batch_id: int, batch: Any) -> None:
        PreparingSink.rows.extend(batch.table().column("n").to_pylist())

    def stop(self) -> None:
        pass
