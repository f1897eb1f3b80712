"""Spark types to Polars types and back, through their common Arrow form."""

from __future__ import annotations

from functools import lru_cache

import polars as pl
import pyarrow as pa

from unbounded.plan.types import (
    ArrayType,
    DataType,
    MapType,
    StructField,
    StructType,
)

__all__ = ["arrow_schema_to_polars", "polars_schema_to_spark", "to_polars_dtype"]


def to_polars_dtype(data_type: DataType) -> pl.DataType:
    """The Polars dtype that holds values of ``data_type``."""
    return _cached_polars_dtype(data_type)


@lru_cache(maxsize=512)
def _cached_polars_dtype(data_type: DataType) -> pl.DataType:
    # from_batches, not pa.array([]): the latter imports pandas (0.2 s) on first use.
    empty = pa.Table.from_batches([], schema=pa.schema([("x", data_type.to_arrow())]))
    return pl.from_arrow(empty).schema["x"]  # type: ignore[union-attr]


def arrow_schema_to_polars(schema: pa.Schema) -> pl.Schema:
    empty = pa.Table.from_batches([], schema=schema)
    return pl.from_arrow(empty).schema  # type: ignore[union-attr]


def polars_schema_to_spark(schema: pl.Schema, nullable: bool = True) -> StructType:
    """The Spark schema of a Polars frame, every field nullable.

    Polars has a Map type (Arrow's map), so a ``map<k, v>`` and an
    ``array<struct<key, value>>`` (Kafka's headers) stay apart both ways.
    """
    empty = pl.DataFrame(schema=schema).to_arrow()
    struct = StructType.from_arrow(empty.schema)
    return StructType([_nullable(f) for f in struct.fields])


def _nullable(f: StructField) -> StructField:
    return StructField(f.name, _nullable_type(f.dataType), True)


def _nullable_type(t: DataType) -> DataType:
    if isinstance(t, ArrayType):
        return ArrayType(_nullable_type(t.elementType))
    if isinstance(t, MapType):
        return MapType(_nullable_type(t.keyType), _nullable_type(t.valueType))
    if isinstance(t, StructType):
        return StructType([_nullable(f) for f in t.fields])
    return t
