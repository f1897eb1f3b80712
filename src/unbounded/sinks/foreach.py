"""``foreachBatch`` and ``foreach``: user code receives the rows.

The batch id is handed to the user function: a replayed batch arrives again with the
same id, and idempotence is the user's (Spark documents the same contract).
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from unbounded.sinks.base import MicroBatch, SinkContext

__all__ = ["ForeachBatchSink", "ForeachSink"]


class ForeachBatchSink:
    def __init__(self, fn: Callable[[pa.Table, int], None], ctx: SinkContext) -> None:
        self.fn = fn

    @property
    def description(self) -> str:
        return "ForeachBatchSink"

    def add_batch(self, batch_id: int, batch: MicroBatch) -> None:
        self.fn(batch.table(), batch_id)

    def stop(self) -> None:
        """Nothing to release."""


class ForeachSink:
    """Calls ``process_partition(rows, partition_id, epoch_id)`` for each partition."""

    def __init__(self, process_partition: Callable[[pa.Table, int, int], None],
                 ctx: SinkContext) -> None:
        self.process_partition = process_partition

    @property
    def description(self) -> str:
        return "ForeachWriterTable"

    def add_batch(self, batch_id: int, batch: MicroBatch) -> None:
        parts = batch.partitions or [pa.Table.from_batches([], schema=batch.schema)]
        for partition_id, part in enumerate(parts):
            self.process_partition(part, partition_id, batch_id)

    def stop(self) -> None:
        """Nothing to release."""
