"""Source formats by name: ``readStream.format(name)`` finds its class here."""

from __future__ import annotations

from typing import Any

from unbounded.config import load_plugin
from unbounded.plan.types import StructType
from unbounded.sources.base import Source, SourceContext

__all__ = ["SOURCE_FORMATS", "create_source", "source_class", "source_schema"]

SOURCE_FORMATS: dict[str, str] = {
    "rate": "unbounded.sources.rate:RateSource",
    "memory": "unbounded.sources.memory:MemorySource",
    "socket": "unbounded.sources.socket:SocketSource",
    "kafka": "unbounded.sources.kafka:KafkaSource",
    "csv": "unbounded.sources.files:FileSource",
    "json": "unbounded.sources.files:FileSource",
    "parquet": "unbounded.sources.files:FileSource",
    "delta": "unbounded.sources.delta:DeltaSource",
    "text": "unbounded.sources.files:FileSource",
    "orc": "unbounded.sources.files:FileSource",
    "avro": "unbounded.sources.files:FileSource",
}


def source_class(fmt: str) -> Any:
    return load_plugin(SOURCE_FORMATS, fmt, "streaming data source")


def source_schema(fmt: str, ctx: SourceContext) -> StructType:
    """The schema a source will produce, checked before the query starts."""
    schema: StructType = source_class(fmt).infer_schema(fmt.lower(), ctx)
    return schema


def create_source(fmt: str, ctx: SourceContext) -> Source:
    source: Source = source_class(fmt)(fmt.lower(), ctx)
    return source
