"""Python data (rows, dicts, pandas, Arrow) as an Arrow table for ``createDataFrame``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from unbounded.errors import AnalysisException
from unbounded.sql.row import Row
from unbounded.sql.types import StructType

__all__ = ["table_from_data"]


def table_from_data(data: Any, schema: StructType | list[str] | None) -> pa.Table:
    if isinstance(data, pa.Table):
        table = data
    elif type(data).__name__ == "DataFrame" and hasattr(data, "to_dict"):
        table = pa.Table.from_pandas(data, preserve_index=False)
    else:
        return _from_rows(list(data), schema)
    if isinstance(schema, StructType):
        return table.rename_columns(schema.names).cast(schema.to_arrow_schema())
    if isinstance(schema, list):
        return table.rename_columns(schema)
    return table


def _from_rows(rows: list[Any], schema: StructType | list[str] | None) -> pa.Table:
    names = _names(rows, schema)
    columns: list[list[Any]] = [[] for _ in names]
    for row in rows:
        values = _values(row, names)
        if len(values) != len(names):
            raise AnalysisException(
                f"A row has {len(values)} values but the schema has {len(names)} columns: "
                f"{row!r}")
        for i, v in enumerate(values):
            columns[i].append(_instant(v))
    if isinstance(schema, StructType):
        return pa.table([pa.array(c, f.dataType.to_arrow()) for c, f in
                         zip(columns, schema.fields, strict=True)], schema=schema.to_arrow_schema())
    return pa.table(dict(zip(names, [_infer_array(c) for c in columns], strict=True)))


def _infer_array(values: list[Any]) -> pa.Array:
    array = pa.array(values)
    if pa.types.is_string(array.type):
        return array.cast(pa.large_string())
    if pa.types.is_timestamp(array.type):
        return array.cast(pa.timestamp("us", tz="UTC"))
    return array


def _instant(value: Any) -> Any:
    """A naive datetime as the instant it names in the Python process's zone, as PySpark
    reads one (``time.mktime``), whatever the session zone."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.astimezone()
    return value


def _names(rows: list[Any], schema: StructType | list[str] | None) -> list[str]:
    if isinstance(schema, StructType):
        return schema.names
    if isinstance(schema, list):
        return schema
    if not rows:
        raise AnalysisException("Cannot infer a schema from empty data; pass a schema.")
    first = rows[0]
    if isinstance(first, Row) and first.__fields__:
        return list(first.__fields__)
    if isinstance(first, dict):
        return list(first)
    return [f"_{i + 1}" for i in range(len(first))]


def _values(row: Any, names: list[str]) -> list[Any]:
    if isinstance(row, dict):
        return [row.get(n) for n in names]
    if isinstance(row, Row) and row.__fields__:
        return [row[n] for n in names]
    if isinstance(row, (tuple, list)):
        return list(row)
    return [row]
