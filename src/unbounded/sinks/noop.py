"""The ``noop`` sink: runs the query and discards the rows (for benchmarks)."""

from __future__ import annotations

from unbounded.sinks.base import MicroBatch, SinkContext

__all__ = ["NoopSink"]


class NoopSink:
    def __init__(self, fmt: str, ctx: SinkContext) -> None:
        """Takes no options."""

    @property
    def description(self) -> str:
        return "NoopSink"

    def add_batch(self, batch_id: int, batch: MicroBatch) -> None:
        """Discard."""

    def stop(self) -> None:
        """Nothing to release."""
