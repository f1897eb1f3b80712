"""The ``rate`` source: ``rowsPerSecond`` rows a second with columns timestamp, value.

Replayable: value v belongs to second v // rowsPerSecond after the start time, and its
timestamp is derived from v and the start time alone. The start time is logged once in
``sources/<i>/0``, so a restarted query regenerates identical rows for a logged range.
Offsets are the number of whole seconds since the start (Spark's LongOffset).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from unbounded.checkpoint.checksum import read_checked_text, write_checked
from unbounded.checkpoint.storage import storage_for
from unbounded.errors import CheckpointCorruptError
from unbounded.plan.types import LongType, StructField, StructType, TimestampType
from unbounded.sources.base import InputPartition, Offset, SourceContext, parse_int_option

__all__ = ["RateSource"]

_SCHEMA = StructType([StructField("timestamp", TimestampType()),
                      StructField("value", LongType())])


@dataclass(frozen=True)
class RatePartition:
    start_ms: int
    rows_per_second: int
    first: int
    stop: int
    step: int

    def read(self) -> pa.Table:
        import numpy as np

        values = np.arange(self.first, self.stop, self.step, dtype=np.int64)
        seconds = values // self.rows_per_second
        within = values % self.rows_per_second
        ts_ms = self.start_ms + seconds * 1000 + within * 1000 // self.rows_per_second
        return pa.table({"timestamp": _wrap(ts_ms * 1000, pa.timestamp("us", tz="UTC")),
                         "value": _wrap(values, pa.int64())})


def _wrap(values: Any, arrow_type: pa.DataType) -> pa.Array:
    """A contiguous int64 numpy array as an Arrow array of ``arrow_type``, zero-copy:
    ``pa.array`` would import pandas and ``pyarrow.compute`` (~0.2 s) on a process's
    first batch to check for a pandas object and cast."""
    return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(values)])


class RateSource:
    def __init__(self, fmt: str, ctx: SourceContext) -> None:
        self.rows_per_second = parse_int_option(ctx, "rowsPerSecond", 1) or 1
        self.num_partitions = parse_int_option(ctx, "numPartitions", os.cpu_count() or 2) or 1
        self.start_ms = self._start_time(ctx.metadata_path)

    @staticmethod
    def _start_time(folder: str | None) -> int:
        now = int(time.time() * 1000)
        if folder is None:
            return now
        path = os.path.join(folder, "0")
        if not storage_for(path).exists(path):
            write_checked(path, ("v1\n" + json.dumps({"startTimeMs": now})).encode())
            return now
        version, _, body = read_checked_text(path).partition("\n")
        if version != "v1":
            raise CheckpointCorruptError(f"{path}: unknown rate source log version {version!r}")
        try:
            return int(json.loads(body)["startTimeMs"])
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointCorruptError(f"{path} is not a rate source start time: {e}") from e

    @classmethod
    def infer_schema(cls, fmt: str, ctx: SourceContext) -> StructType:
        parse_int_option(ctx, "rowsPerSecond", 1)
        parse_int_option(ctx, "numPartitions", 1)
        return _SCHEMA

    @property
    def schema(self) -> StructType:
        return _SCHEMA

    @property
    def description(self) -> str:
        return (f"RateStreamV2[rowsPerSecond={self.rows_per_second}, "
                f"numPartitions={self.num_partitions}]")

    def latest_offset(self, start: Offset | None, *, respect_limits: bool = True) -> Offset:
        return max(0, (int(time.time() * 1000) - self.start_ms) // 1000)

    def next_data_due_ms(self, start: Offset | None) -> int:
        """The second after ``start`` is complete (``runtime.triggers.SupportsDataDue``)."""
        return self.start_ms + (int(start or 0) + 1) * 1000

    def partitions(self, start: Offset | None, end: Offset) -> list[InputPartition]:
        first = int(start or 0) * self.rows_per_second
        stop = int(end) * self.rows_per_second
        return [RatePartition(self.start_ms, self.rows_per_second, first + p, stop,
                              self.num_partitions)
                for p in range(self.num_partitions) if first + p < stop]

    def commit(self, end: Offset) -> None:
        """Nothing to release: rows are generated, not stored."""

    def stop(self) -> None:
        """Nothing to release."""
