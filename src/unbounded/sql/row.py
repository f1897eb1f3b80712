"""``Row``: PySpark's row, a tuple whose fields also read by name."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

__all__ = ["Row", "rows_from_arrow"]


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


def rows_from_arrow(table: pa.Table) -> list[Row]:
    """The rows of ``table`` as PySpark returns them: structs as Rows, maps as dicts.

    >>> t = pa.table({"s": pa.array([{"a": 1}]), "m": pa.array([[("k", 2)]], pa.map_(pa.string(), pa.int64()))})
    >>> rows_from_arrow(t)
    [Row(s=Row(a=1), m={'k': 2})]
    """
    names = table.column_names
    columns = [[_python_value(v, field.type) for v in column.to_pylist()]
               if _is_nested(field.type) else column.to_pylist()
               for field, column in zip(table.schema, table.columns, strict=True)]
    return [Row.from_fields(names, list(values)) for values in zip(*columns, strict=True)] \
        if columns else [Row.from_fields([], []) for _ in range(table.num_rows)]


def _is_nested(t: pa.DataType) -> bool:
    return bool(pa.types.is_struct(t) or pa.types.is_map(t) or pa.types.is_list(t)
                or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _python_value(value: Any, t: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_struct(t):
        fields = [t.field(i) for i in range(t.num_fields)]
        return Row.from_fields([f.name for f in fields],
                               [_python_value(value[f.name], f.type) for f in fields])
    if pa.types.is_map(t):
        return {_python_value(k, t.key_type): _python_value(v, t.item_type) for k, v in value}
    if _is_nested(t):
        return [_python_value(v, t.value_type) for v in value]
    return value
