"""The ``memory`` sink: results kept in this process, queryable as ``spark.table(name)``.

Idempotent per batch id: a batch id at or below the last one added is ignored, as in
Spark's MemorySink. In complete mode each batch replaces the table.
"""

from __future__ import annotations

import threading

import pyarrow as pa

from unbounded.errors import AnalysisException
from unbounded.sinks.base import MicroBatch, SinkContext

__all__ = ["MemorySink", "memory_table"]

_TABLES: dict[str, MemorySink] = {}
_LOCK = threading.Lock()


def memory_table(name: str) -> pa.Table | None:
    with _LOCK:
        sink = _TABLES.get(name)
    return None if sink is None else sink.table()


class MemorySink:
    def __init__(self, fmt: str, ctx: SinkContext) -> None:
        if not ctx.query_name:
            raise AnalysisException(
                "The memory sink needs a query name: add .queryName('name') so the results "
                "can be read with spark.table('name').")
        self.name = ctx.query_name
        self.complete = ctx.output_mode == "complete"
        self.batches: list[tuple[int, pa.Table]] = []
        self.schema: pa.Schema | None = None
        self.lock = threading.Lock()
        with _LOCK:
            _TABLES[self.name] = self

    @property
    def description(self) -> str:
        return f"MemorySink[{self.name}]"

    def add_batch(self, batch_id: int, batch: MicroBatch) -> None:
        with self.lock:
            if self.batches and batch_id <= self.batches[-1][0]:
                return
            if self.complete:
                self.batches.clear()
            self.schema = batch.schema
            self.batches.append((batch_id, batch.table()))

    def last_committed_batch(self) -> int | None:
        with self.lock:
            return self.batches[-1][0] if self.batches else None

    def table(self) -> pa.Table:
        with self.lock:
            tables = [t for _, t in self.batches]
            schema = self.schema
        if not tables:
            return pa.Table.from_batches([], schema=schema or pa.schema([]))
        return pa.concat_tables(tables).combine_chunks()

    def stop(self) -> None:
        """The table stays readable after the query stops, as in Spark."""
