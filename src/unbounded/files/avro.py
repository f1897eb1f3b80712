"""Avro files as Spark's ``avro`` data source reads and writes them (fastavro underneath).

Types map as in Spark's ``SchemaConverters``: a nullable column is the union
``["null", T]``; ``date`` is an ``int`` with logicalType ``date``; ``timestamp`` a
``long`` with ``timestamp-micros``; ``decimal(p, s)`` ``bytes`` with logicalType
``decimal``; structs are records (named ``topLevelRecord`` at the top, as Spark names it);
maps have string keys.

Example:
    >>> import os, tempfile
    >>> import pyarrow as pa
    >>> from unbounded.plan.types import StructType
    >>> path = os.path.join(tempfile.mkdtemp(), "a.avro")
    >>> write_avro(path, pa.table({"id": pa.array([1, None], pa.int64())}), {})
    >>> read_avro(path, StructType.fromDDL("id BIGINT")).to_pylist()
    [{'id': 1}, {'id': None}]
"""

from __future__ import annotations

from typing import Any

import fastavro
import pyarrow as pa

from unbounded.errors import AnalysisException, MalformedRecordError
from unbounded.plan.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

__all__ = ["avro_file_schema", "read_avro", "write_avro"]

_PRIMITIVES: dict[type[DataType], Any] = {
    BooleanType: "boolean", ByteType: "int", ShortType: "int", IntegerType: "int",
    LongType: "long", FloatType: "float", DoubleType: "double", StringType: "string",
    BinaryType: "bytes", DateType: {"type": "int", "logicalType": "date"},
    TimestampType: {"type": "long", "logicalType": "timestamp-micros"},
    TimestampNTZType: {"type": "long", "logicalType": "local-timestamp-micros"},
}
_CODECS = {"uncompressed": "null", "none": "null", "snappy": "snappy", "deflate": "deflate",
           "bzip2": "bzip2", "xz": "xz", "zstandard": "zstandard", "zstd": "zstandard"}


class _Names:
    """Record names must be unique in one Avro schema: Spark names nested ones after
    their field path."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def unique(self, name: str) -> str:
        candidate, n = name, 0
        while candidate in self.used:
            n += 1
            candidate = f"{name}_{n}"
        self.used.add(candidate)
        return candidate


def _avro_type(t: DataType, path: str, names: _Names) -> Any:
    primitive = _PRIMITIVES.get(type(t))
    if primitive is not None:
        return primitive
    if isinstance(t, DecimalType):
        return {"type": "bytes", "logicalType": "decimal", "precision": t.precision,
                "scale": t.scale}
    if isinstance(t, ArrayType):
        return {"type": "array", "items": _nullable(_avro_type(t.elementType, path, names))}
    if isinstance(t, MapType):
        if not isinstance(t.keyType, StringType):
            raise AnalysisException(
                f"Avro maps have string keys; {t.simpleString()} cannot be written as Avro. "
                "Cast the keys to string first.",
                error_class="UNSUPPORTED_DATA_TYPE_FOR_DATASOURCE")
        return {"type": "map", "values": _nullable(_avro_type(t.valueType, path, names))}
    if isinstance(t, StructType):
        return _record(t, path, names)
    raise AnalysisException(
        f"The avro data source does not support the type {t.simpleString()}.",
        error_class="UNSUPPORTED_DATA_TYPE_FOR_DATASOURCE")


def _nullable(avro: Any) -> Any:
    return ["null", avro]


def _record(struct: StructType, name: str, names: _Names) -> dict[str, Any]:
    fields = [{"name": f.name,
               "type": _nullable(_avro_type(f.dataType, f"{name}.{f.name}", names)),
               "default": None}
              for f in struct.fields]
    return {"type": "record", "name": names.unique(name.replace(".", "_")), "fields": fields}


def avro_schema(struct: StructType, record_name: str = "topLevelRecord") -> dict[str, Any]:
    """The Avro writer schema of ``struct`` (every field nullable, as Spark writes it)."""
    return _record(struct, record_name, _Names())


def write_avro(path: str, table: pa.Table, options: dict[str, str]) -> None:
    """Write ``table`` as one Avro container file (option ``compression``, default snappy
    when cramjam/python-snappy can do it, else deflate)."""
    struct = StructType.from_arrow(table.schema)
    schema = fastavro.parse_schema(avro_schema(struct, options.get("recordName",
                                                                    "topLevelRecord")))
    codec = _CODECS.get(options.get("compression", "snappy").lower())
    if codec is None:
        raise AnalysisException(
            f"Unknown avro compression {options['compression']!r}; use one of "
            f"{', '.join(sorted(_CODECS))}.", error_class="INVALID_OPTION")
    with open(path, "wb") as out:
        fastavro.writer(out, schema, table.to_pylist(), codec=_usable_codec(codec))


def _usable_codec(codec: str) -> str:
    """snappy needs an optional module; fall back to deflate (still Spark-readable)."""
    if codec != "snappy":
        return codec
    try:
        import cramjam  # noqa: F401
    except ImportError:
        return "deflate"
    return codec


def read_avro(path: str, schema: StructType) -> pa.Table:
    """The records of one Avro file as a table of ``schema`` (missing fields NULL)."""
    try:
        with open(path, "rb") as f:
            records = [r for r in fastavro.reader(f) if isinstance(r, dict)]
    except (ValueError, EOFError, fastavro.read.SchemaResolutionError) as e:
        raise MalformedRecordError(
            f"Cannot read {path} as Avro: {e}. Remove the file from the input folder, or "
            "read the folder with the format its files are in.") from e
    names = [f.name for f in schema.fields]
    rows = [{n: r.get(n) for n in names} for r in records]
    return pa.Table.from_pylist(rows, schema=schema.to_arrow_schema())


def avro_file_schema(path: str) -> StructType:
    """The Spark schema of an Avro file, from the writer schema in its header."""
    with open(path, "rb") as f:
        writer_schema = fastavro.reader(f).writer_schema
    converted = _spark_type(writer_schema)
    if not isinstance(converted, StructType):
        raise AnalysisException(
            f"The Avro file {path} holds {writer_schema!r} records, not a record type; "
            "Spark reads only record schemas at the top level.", error_class="INVALID_SCHEMA")
    return converted


_AVRO_PRIMITIVES: dict[str, DataType] = {
    "boolean": BooleanType(), "int": IntegerType(), "long": LongType(),
    "float": FloatType(), "double": DoubleType(), "string": StringType(),
    "bytes": BinaryType(), "fixed": BinaryType(), "enum": StringType(),
}
_LOGICAL: dict[str, DataType] = {
    "date": DateType(), "timestamp-micros": TimestampType(),
    "timestamp-millis": TimestampType(), "local-timestamp-micros": TimestampNTZType(),
    "local-timestamp-millis": TimestampNTZType(),
}


def _spark_type(avro: Any) -> DataType:
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            raise AnalysisException(
                f"Avro unions of several types ({avro!r}) are not supported.",
                error_class="UNSUPPORTED_DATA_TYPE_FOR_DATASOURCE")
        return _spark_type(branches[0])
    if isinstance(avro, str):
        return _AVRO_PRIMITIVES.get(avro) or _unknown(avro)
    return _complex_type(avro)


def _complex_type(avro: dict[str, Any]) -> DataType:
    logical = avro.get("logicalType")
    if logical == "decimal":
        return DecimalType(int(avro["precision"]), int(avro.get("scale", 0)))
    if logical in _LOGICAL:
        return _LOGICAL[logical]
    kind = avro["type"]
    if kind == "record":
        return StructType([StructField(f["name"], _spark_type(f["type"]))
                           for f in avro["fields"]])
    if kind == "array":
        return ArrayType(_spark_type(avro["items"]))
    if kind == "map":
        return MapType(StringType(), _spark_type(avro["values"]))
    return _spark_type(kind)


def _unknown(avro: str) -> DataType:
    raise AnalysisException(f"The Avro type {avro!r} is not supported.",
                            error_class="UNSUPPORTED_DATA_TYPE_FOR_DATASOURCE")
