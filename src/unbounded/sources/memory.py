"""The in-memory source behind ``unbounded.testing.MemoryStream``.

Data lives in a process-wide registry keyed by stream id, so a query restarted in the
same process (the recovery tests) replays exactly the batches it logged. Offsets are the
index of the last added block, as Spark's MemoryStream (-1: nothing yet).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pyarrow as pa

from unbounded.errors import AnalysisException
from unbounded.plan.types import StructType
from unbounded.sources.base import InputPartition, Offset, SourceContext

__all__ = ["MemoryData", "MemorySource", "register_memory_data"]


class MemoryData:
    """The blocks added to one memory stream, in order."""

    def __init__(self, schema: StructType) -> None:
        self.schema = schema
        self.blocks: list[pa.Table] = []
        self.lock = threading.Lock()

    def add(self, table: pa.Table) -> int:
        with self.lock:
            self.blocks.append(table)
            return len(self.blocks) - 1

    def latest(self) -> int:
        with self.lock:
            return len(self.blocks) - 1

    def slice(self, start: int, end: int) -> list[pa.Table]:
        with self.lock:
            return self.blocks[start + 1 : end + 1]


_REGISTRY: dict[str, MemoryData] = {}


def register_memory_data(stream_id: str, data: MemoryData) -> None:
    _REGISTRY[stream_id] = data


@dataclass(frozen=True)
class MemoryPartition:
    table: pa.Table

    def read(self) -> pa.Table:
        return self.table


class MemorySource:
    def __init__(self, fmt: str, ctx: SourceContext) -> None:
        stream_id = ctx.option("id")
        if stream_id is None or stream_id not in _REGISTRY:
            raise AnalysisException(f"No memory stream with id {stream_id!r} exists.")
        self.stream_id = stream_id
        self.data = _REGISTRY[stream_id]

    @classmethod
    def infer_schema(cls, fmt: str, ctx: SourceContext) -> StructType:
        stream_id = ctx.option("id")
        if stream_id is None or stream_id not in _REGISTRY:
            raise AnalysisException(f"No memory stream with id {stream_id!r} exists.")
        return _REGISTRY[stream_id].schema

    @property
    def schema(self) -> StructType:
        return self.data.schema

    @property
    def description(self) -> str:
        return f"MemoryStream[{self.stream_id}]"

    def latest_offset(self, start: Offset | None, *, respect_limits: bool = True) -> Offset:
        latest = self.data.latest()
        return None if latest < 0 else latest

    def partitions(self, start: Offset | None, end: Offset) -> list[InputPartition]:
        first = -1 if start is None else int(start)
        return [MemoryPartition(t) for t in self.data.slice(first, int(end))]

    def commit(self, end: Offset) -> None:
        """Memory data stays for the life of the process so restarts can replay."""

    def stop(self) -> None:
        """Nothing to release."""
