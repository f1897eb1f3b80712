"""Sink formats by name: ``writeStream.format(name)`` finds its class here."""

from __future__ import annotations

import importlib
from typing import Any

from unbounded.errors import AnalysisException
from unbounded.sinks.base import Sink, SinkContext

__all__ = ["SINK_FORMATS", "create_sink", "sink_class"]

SINK_FORMATS: dict[str, str] = {
    "console": "unbounded.sinks.console:ConsoleSink",
    "memory": "unbounded.sinks.memory:MemorySink",
    "noop": "unbounded.sinks.noop:NoopSink",
    "parquet": "unbounded.sinks.files:FileSink",
    "json": "unbounded.sinks.files:FileSink",
    "csv": "unbounded.sinks.files:FileSink",
    "kafka": "unbounded.sinks.kafka:KafkaSink",
    "foreachbatch": "unbounded.sinks.foreach:ForeachBatchSink",
    "foreach": "unbounded.sinks.foreach:ForeachSink",
}


def sink_class(fmt: str) -> Any:
    target = SINK_FORMATS.get(fmt.lower())
    if target is None:
        raise AnalysisException(
            f"[DATA_SOURCE_NOT_FOUND] Failed to find the streaming sink {fmt!r}. "
            f"Supported formats: {', '.join(sorted(SINK_FORMATS))}.",
            error_class="DATA_SOURCE_NOT_FOUND",
        )
    module_name, _, cls_name = target.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)


def create_sink(fmt: str, ctx: SinkContext) -> Sink:
    """Build and validate a sink; a bad option raises before the query starts."""
    sink: Sink = sink_class(fmt)(fmt.lower(), ctx)
    return sink
