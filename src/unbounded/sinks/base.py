"""The contract every streaming sink keeps: ``add_batch`` is idempotent per batch id.

The runner may hand a sink the same batch id twice (the process died after the sink
wrote and before the commit log did); the sink must then leave its output as if it had
seen the batch once, by a manifest (files), a transaction keyed by the batch id
(Kafka, databases) or by passing the id to the user (foreachBatch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

__all__ = ["MicroBatch", "Sink", "SinkContext", "SupportsCommitCheck",
           "SupportsLastCommittedBatch", "SupportsPrepare"]


@dataclass
class MicroBatch:
    """The rows of one batch, as the partitions the tasks produced (possibly empty)."""

    batch_id: int
    schema: pa.Schema
    partitions: list[pa.Table]

    def table(self) -> pa.Table:
        if not self.partitions:
            return pa.Table.from_batches([], schema=self.schema)
        return pa.concat_tables(self.partitions).combine_chunks()

    @property
    def num_rows(self) -> int:
        return sum(p.num_rows for p in self.partitions)


@dataclass(frozen=True)
class SinkContext:
    """What a sink is built with."""

    query_id: str
    query_name: str | None
    options: dict[str, str]
    output_mode: str
    checkpoint_path: str | None
    partition_by: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def option(self, key: str, default: str | None = None) -> str | None:
        from unbounded.config import option_value

        return option_value(self.options, key, default)


@runtime_checkable
class Sink(Protocol):
    """Where a query's results go."""

    @property
    def description(self) -> str: ...

    def add_batch(self, batch_id: int, batch: MicroBatch) -> None:
        """Make ``batch`` durable; a batch id seen before must not be written twice."""
        ...

    def stop(self) -> None: ...


@runtime_checkable
class SupportsLastCommittedBatch(Protocol):
    """A sink that keeps its own record of the last batch it made durable."""

    def last_committed_batch(self) -> int | None: ...


@runtime_checkable
class SupportsCommitCheck(Protocol):
    """A sink whose own durable record can be checked against the commit log at start-up.

    Invariant: ``last_committed_batch()`` is the highest batch id whose output is
    durable in the sink, read from the sink's storage (not from memory), so a restart can
    tell a lost record (the sink is behind ``commits/N``) from a re-run it will skip.
    ``commit_record(n)`` names where batch ``n`` is recorded, for error messages."""

    def last_committed_batch(self) -> int | None: ...

    def commit_record(self, batch_id: int) -> str: ...


@runtime_checkable
class SupportsPrepare(Protocol):
    """A sink with slow set-up (connections, fencing an earlier run's writers): the
    runner calls ``prepare`` once, on the query thread, while the first batch's tasks
    run, so the set-up overlaps reading. ``add_batch`` must work without it too."""

    def prepare(self) -> None: ...
