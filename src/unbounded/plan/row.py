"""``Row``: PySpark's row, a tuple whose fields also read by name, and Arrow values as
PySpark hands them to Python (structs as Rows, maps as dicts).

It lives under ``plan`` (re-exported by ``unbounded.sql``) because the engine needs it
too: a row UDF receives struct arguments as Rows, as in PySpark.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from unbounded.plan.types import ArrayType, DataType, MapType, StructType, TimestampType

__all__ = ["Row", "rows_from_arrow", "values_from_arrow"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Row(tuple[Any, ...]):
    """A row of a result.

    >>> r = Row(name="Alice", age=11)
    >>> r.name, r["age"], r.asDict()
    ('Alice', 11, {'name': 'Alice', 'age': 11})
    """

    __fields__: tuple[str, ...]

    def __new__(cls, *args: Any, **kwargs: Any) -> Row:
        if args and kwargs:
            raise ValueError("Can not use both args and kwargs to create Row")
        row = super().__new__(cls, tuple(kwargs.values()) if kwargs else args)
        row.__fields__ = tuple(kwargs) if kwargs else ()
        return row

    @classmethod
    def from_fields(cls, fields: list[str], values: list[Any]) -> Row:
        row = super().__new__(cls, tuple(values))
        row.__fields__ = tuple(fields)
        return row

    def asDict(self, recursive: bool = False) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if recursive and isinstance(v, Row):
                return v.asDict(True)
            if recursive and isinstance(v, list):
                return [conv(x) for x in v]
            return v

        return {k: conv(v) for k, v in zip(self.__fields__, self, strict=True)}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return super().__getitem__(self.__fields__.index(key))
            except ValueError:
                raise KeyError(key) from None
        return super().__getitem__(key)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[self.__fields__.index(name)]
        except ValueError:
            raise AttributeError(name) from None

    def __contains__(self, item: object) -> bool:
        return item in self.__fields__ if self.__fields__ else super().__contains__(item)

    def __repr__(self) -> str:
        if self.__fields__:
            return "Row(" + ", ".join(f"{k}={v!r}" for k, v in
                                      zip(self.__fields__, self, strict=True)) + ")"
        return "<Row(" + ", ".join(repr(v) for v in self) + ")>"

    def __reduce__(self) -> Any:
        return (Row.from_fields, (list(self.__fields__), list(self)))


def rows_from_arrow(table: pa.Table, schema: StructType | None = None) -> list[Row]:
    """The rows of ``table`` as PySpark returns them: structs as Rows, maps as dicts.

    ``schema`` (the Spark schema) is the one the result was planned with; without it
    the table's Arrow types say (a ``map`` is a map, a list of structs a list).

    >>> m = pa.array([[("k", 2)]], pa.map_(pa.string(), pa.int64()))
    >>> rows_from_arrow(pa.table({"s": pa.array([{"a": 1}]), "m": m}))
    [Row(s=Row(a=1), m={'k': 2})]
    """
    spark = schema if schema is not None else StructType.from_arrow(table.schema)
    names = table.column_names
    columns = [values_from_arrow(column, field.dataType)
               for field, column in zip(spark.fields, table.columns, strict=True)]
    if not columns:
        return [Row.from_fields([], []) for _ in range(table.num_rows)]
    return [Row.from_fields(names, list(values)) for values in zip(*columns, strict=True)]


def values_from_arrow(column: pa.Array | pa.ChunkedArray, data_type: DataType) -> list[Any]:
    """The values of one column as PySpark returns them (``data_type``: its Spark type).

    >>> values_from_arrow(pa.array([{"a": 1}, None]), StructType.from_arrow(
    ...     pa.schema([("a", pa.int64())])))
    [Row(a=1), None]
    """
    values: list[Any] = column.to_pylist()
    if not _needs_conversion(data_type):
        return values
    return [_python_value(v, data_type) for v in values]


def _needs_conversion(t: DataType) -> bool:
    return isinstance(t, (StructType, MapType, ArrayType, TimestampType))


def _python_value(value: Any, t: DataType) -> Any:
    if value is None:
        return None
    if isinstance(t, TimestampType):
        # Naive wall-clock time in the Python process's zone (not the session's), as
        # PySpark's collect() makes it (fromtimestamp: the second of two 01:30s has fold=1).
        micros = (value - _EPOCH) // _MICROSECOND
        return datetime.fromtimestamp(micros // 1_000_000).replace(
            microsecond=micros % 1_000_000)
    if isinstance(t, StructType):
        return Row.from_fields(t.names, [_python_value(value.get(f.name), f.dataType)
                                         for f in t.fields])
    if isinstance(t, MapType):
        pairs = ((p["key"], p["value"]) if isinstance(p, dict) else p for p in value)
        return {_python_value(k, t.keyType): _python_value(v, t.valueType) for k, v in pairs}
    if isinstance(t, ArrayType):
        return [_python_value(v, t.elementType) for v in value]
    return value
