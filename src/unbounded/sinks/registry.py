"""Sink formats by name: ``writeStream.format(name)`` finds its class here."""

from __future__ import annotations

from typing import Any

from unbounded.config import load_plugin
from unbounded.sinks.base import Sink, SinkContext

__all__ = ["SINK_FORMATS", "create_sink", "sink_class"]

SINK_FORMATS: dict[str, str] = {
    "console": "unbounded.sinks.console:ConsoleSink",
    "memory": "unbounded.sinks.memory:MemorySink",
    "noop": "unbounded.sinks.noop:NoopSink",
    "parquet": "unbounded.sinks.files:FileSink",
    "json": "unbounded.sinks.files:FileSink",
    "csv": "unbounded.sinks.files:FileSink",
    "text": "unbounded.sinks.files:FileSink",
    "orc": "unbounded.sinks.files:FileSink",
    "avro": "unbounded.sinks.files:FileSink",
    "kafka": "unbounded.sinks.kafka:KafkaSink",
    "postgresql": "unbounded.sinks.postgres:PostgresSink",
    "delta": "unbounded.sinks.delta:DeltaSink",
    "foreachbatch": "unbounded.sinks.foreach:ForeachBatchSink",
    "foreach": "unbounded.sinks.foreach:ForeachSink",
}


def sink_class(fmt: str) -> Any:
    return load_plugin(SINK_FORMATS, fmt, "streaming sink")


def create_sink(fmt: str, ctx: SinkContext) -> Sink:
    """Build and validate a sink; a bad option raises before the query starts."""
    sink: Sink = sink_class(fmt)(fmt.lower(), ctx)
    return sink
