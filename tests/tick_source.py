"""A test source with one row per batch that records when each batch is read.

``readStream.format("ticks").option("batches", N)``: batch i reads offset i (a row
``n = i``); ``read_started(i)`` is set when a task starts reading it, so a test can see
whether batch i+1 was read while batch i was still being written.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from unbounded.sql.types import LongType, StructField, StructType

__all__ = ["TickSource", "read_started", "reset"]

_STARTED: defaultdict[int, threading.Event] = defaultdict(threading.Event)


def read_started(batch: int) -> threading.Event:
    return _STARTED[batch]


def reset() -> None:
    _STARTED.clear()


@dataclass(frozen=True)
class TickPartition:
    start: int
    end: int

    def read(self) -> pa.Table:
        _STARTED[self.start].set()
        return pa.table({"n": pa.array(range(self.start, self.end), pa.int64())})


class TickSource:
    def __init__(self, format: str, ctx: Any) -> None:
        self.total = int(ctx.options["batches"])

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
        return min(done + 1, self.total) if respect_limits else self.total

    def partitions(self, start: Any, end: Any) -> list[TickPartition]:
        return [TickPartition(start or 0, end)]

    def commit(self, end: Any) -> None:
        pass

    def stop(self) -> None:
        pass
