"""Row-at-a-time Python UDFs over Arrow columns: one Python call per row.

What costs time here is the interpreter, not the data: a Python call per row. So the
arguments are converted a column at a time (``to_pylist``, or NumPy's ``tolist`` for a
numeric column without nulls), the function is called from a list comprehension (CPython
3.11 inlines a Python-to-Python call made there; ``map``/``starmap`` call from C and cost
about a quarter more per row) and the results go back to Arrow in one ``pa.array``. This
module needs only pyarrow and cloudpickle, so the UDF worker processes
(``engine/udf_workers.py``) start quickly.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import cloudpickle
import pyarrow as pa

from unbounded.plan import types as T
from unbounded.plan.row import values_from_arrow

__all__ = ["RowFailure", "call_rows", "load_function", "python_values", "rows_to_arrow",
           "to_arrow"]


class RowFailure(Exception):
    """The function raised ``error`` on the row at ``index`` of the batch."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


@lru_cache(maxsize=512)
def load_function(pickled: bytes) -> Callable[..., Any]:
    """The user function, unpickled once per process (a plan compiles every batch)."""
    function: Callable[..., Any] = cloudpickle.loads(pickled)
    return function


def rows_to_arrow(function: Callable[..., Any], columns: list[pa.Array], n: int,
                  return_type: T.DataType) -> pa.Array:
    """``function`` called on each of the ``n`` rows of ``columns``, as an Arrow array."""
    return to_arrow(call_rows(function, columns, n), return_type)


def call_rows(function: Callable[..., Any], columns: list[pa.Array], n: int) -> list[Any]:
    """One call per row, in row order; a failure is a ``RowFailure`` naming the row."""
    rows = [iter(python_values(c)) for c in columns]
    position = rows[0] if rows else iter(range(n))
    try:
        return _call_each(function, rows, position)
    except Exception as error:
        # Row i was taken from every iterator before the call on it: i + 1 are gone.
        raise RowFailure(n - operator.length_hint(position) - 1, error) from error


def _call_each(function: Callable[..., Any], rows: list[Iterator[Any]],
               position: Iterator[Any]) -> list[Any]:
    if len(rows) == 1:
        return [function(a) for a in position]
    if len(rows) == 2:
        return [function(a, b) for a, b in zip(rows[0], rows[1], strict=True)]
    if not rows:
        return [function() for _ in position]
    return [function(*args) for args in zip(*rows, strict=True)]


_PLAIN_NUMBERS = (pa.types.is_integer, pa.types.is_float64, pa.types.is_float32,
                  pa.types.is_boolean)


def python_values(column: pa.Array) -> list[Any]:
    """Python values as PySpark passes them: timestamps as naive datetimes in the
    session time zone (UTC), structs as Rows, maps as dicts; numbers without nulls
    through NumPy (the same Python ints, floats and bools, built a little faster)."""
    if column.null_count == 0 and any(test(column.type) for test in _PLAIN_NUMBERS):
        numbers: list[Any] = column.to_numpy(zero_copy_only=False).tolist()
        return numbers
    if _nested(column.type):  # structs as Rows, maps as dicts, as PySpark passes them
        return values_from_arrow(column, T.from_arrow_type(column.type))
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        column = column.cast(pa.timestamp(column.type.unit))
    values: list[Any] = column.to_pylist()
    return values


def _nested(dtype: pa.DataType) -> bool:
    """Whether Arrow's Python values differ from PySpark's somewhere inside ``dtype``."""
    if pa.types.is_struct(dtype) or pa.types.is_map(dtype):
        return True
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner = dtype.value_type
        return _nested(inner) or pa.types.is_timestamp(inner)
    return False


def to_arrow(results: list[Any], return_type: T.DataType) -> pa.Array:
    """The results converted as PySpark 4.3 converts them, with or without ``useArrow``:
    through Arrow (an int widens to double, a float is truncated to an int, a bool or an
    out-of-range int for an int column fails the batch), and to text as Spark prints it
    (``true``, ``[1, 2]``) for a string column."""
    if isinstance(return_type, T.StringType) and not set(map(type, results)) <= _TEXT:
        results = [v if v is None or type(v) is str else _java_string(v) for v in results]
    return pa.array(results, type=return_type.to_arrow())


_TEXT = frozenset({str, type(None)})


def _java_string(value: Any) -> str:
    """``value`` as Spark prints it in a string column."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_java_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_java_string(k)}={_java_string(v)}"
                               for k, v in value.items()) + "}"
    return "null" if value is None else str(value)
