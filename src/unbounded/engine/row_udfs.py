"""Row-at-a-time Python UDFs over Arrow columns: one Python call per row.

What costs time here is the interpreter, not the data: a Python call per row. So the
arguments are converted a column at a time (``to_pylist``, or NumPy's ``tolist`` for a
numeric column without nulls), the function is called from a list comprehension (CPython
3.11 inlines a Python-to-Python call made there; ``map``/``starmap`` call from C and cost
about a sixth more per row) and the results go back to Arrow in one ``pa.array``, all
``CHUNK_ROWS`` rows at a time so the Python values stay in the CPU cache. Measured (CPU
time, float64, the bench's ``2 * x + 1``): ~16 ns a row to Python values, ~97 for the
call, of which the function's own body is ~65, ~15 back to Arrow. This module needs only
pyarrow and cloudpickle, so the UDF worker processes (``engine/udf_workers.py``) start
quickly.
"""

from __future__ import annotations

import calendar
import operator
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import cloudpickle
import pyarrow as pa

from unbounded.plan import types as T
from unbounded.plan.row import values_from_arrow

__all__ = ["CHUNK_ROWS", "RowFailure", "call_rows", "load_function", "python_values",
           "rows_to_arrow", "to_arrow"]


# Rows converted and called at a time: their Python values (~50 bytes a row each way)
# stay within the CPU's caches; much smaller chunks pay their per-chunk overhead.
CHUNK_ROWS = 16_384


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
                  return_type: T.DataType, arrow: bool = False) -> pa.Array:
    """``function`` called on each of the ``n`` rows of ``columns``, as an Arrow array,
    ``CHUNK_ROWS`` rows at a time: a chunk's Python values are freed before the next
    chunk's are made, so their memory is reused while still in the CPU cache (the whole
    batch at once cost ~20% more per row). A failure names the batch-wide row.
    ``arrow``: the UDF is PySpark's Arrow-optimised one (``useArrow=True``), whose
    datetimes convert a little differently (``python_values``, ``to_arrow``)."""
    if n <= CHUNK_ROWS:
        return to_arrow(call_rows(function, columns, n, arrow), return_type, arrow)
    parts = []
    for start in range(0, n, CHUNK_ROWS):
        size = min(CHUNK_ROWS, n - start)
        chunk = [c.slice(start, size) for c in columns]
        try:
            parts.append(to_arrow(call_rows(function, chunk, size, arrow), return_type, arrow))
        except RowFailure as failure:
            raise RowFailure(start + failure.index, failure.error) from failure.error
    return pa.concat_arrays(parts)


def call_rows(function: Callable[..., Any], columns: list[pa.Array], n: int,
              arrow: bool = False) -> list[Any]:
    """One call per row, in row order; a failure is a ``RowFailure`` naming the row."""
    rows = [iter(python_values(c, arrow)) for c in columns]
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


def python_values(column: pa.Array, arrow: bool = False) -> list[Any]:
    """Python values as PySpark 4.3 passes them: a TIMESTAMP as a naive datetime in the
    Python process's local zone (not the session zone; ``fold=1`` on the second of two
    equal wall clocks, but always 0 with ``useArrow``), a TIMESTAMP_NTZ as its wall clock,
    structs as Rows, maps as dicts; numbers without nulls through NumPy (the same Python
    ints, floats and bools, built a little faster)."""
    if column.null_count == 0 and any(test(column.type) for test in _PLAIN_NUMBERS):
        numbers: list[Any] = column.to_numpy(zero_copy_only=False).tolist()
        return numbers
    if _nested(column.type):  # structs as Rows, maps as dicts, as PySpark passes them
        return values_from_arrow(column, T.from_arrow_type(column.type))
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        return _local_datetimes(column, 0 if arrow else None)
    values: list[Any] = column.to_pylist()
    return values


def _local_datetimes(column: pa.Array, fold: int | None) -> list[datetime | None]:
    """Instants as naive local datetimes: ``TimestampType.fromInternal`` (pickled UDFs:
    the later of two equal wall clocks at a DST change has ``fold=1``), or with ``fold``
    (Arrow UDFs: ``astimezone().replace(tzinfo=None)``, fold 0)."""
    micros = column.cast(pa.timestamp("us", column.type.tz)).cast(pa.int64()).to_pylist()
    values = [None if m is None else _local(m) for m in micros]
    return values if fold is None else [v if v is None else v.replace(fold=fold)
                                        for v in values]


def _local(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000).replace(microsecond=micros % 1_000_000)


def _nested(dtype: pa.DataType) -> bool:
    """Whether Arrow's Python values differ from PySpark's somewhere inside ``dtype``."""
    if pa.types.is_struct(dtype) or pa.types.is_map(dtype):
        return True
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner = dtype.value_type
        return _nested(inner) or pa.types.is_timestamp(inner)
    return False


def to_arrow(results: list[Any], return_type: T.DataType, arrow: bool = False) -> pa.Array:
    """The results converted as PySpark 4.3 converts them, with or without ``useArrow``:
    through Arrow (an int widens to double, a float is truncated to an int, a bool or an
    out-of-range int for an int column fails the batch), and to text as Spark prints it
    (``true``, ``[1, 2]``) for a string column."""
    if isinstance(return_type, T.StringType) and not set(map(type, results)) <= _TEXT:
        results = [v if v is None or type(v) is str else _java_string(v) for v in results]
    elif (convert := _datetime_converter(return_type, arrow)) is not None:
        results = [None if v is None else convert(v) for v in results]
    return pa.array(results, type=return_type.to_arrow())


_Convert = Callable[[Any], Any]


def _datetime_converter(data_type: T.DataType, arrow: bool) -> _Convert | None:
    """How a non-null result of ``data_type`` has its datetimes read as PySpark reads
    them (inside arrays, maps and structs too), or None when it holds none."""
    if isinstance(data_type, (T.TimestampType, T.TimestampNTZType)):
        return _DATETIME_RESULTS[isinstance(data_type, T.TimestampType), arrow]
    if isinstance(data_type, T.ArrayType):
        inner = _datetime_converter(data_type.elementType, arrow)
        return None if inner is None else lambda v: [_or_none(inner, x) for x in v]
    if isinstance(data_type, T.MapType):
        return _map_converter(data_type, arrow)
    if isinstance(data_type, T.StructType):
        return _struct_converter(data_type, arrow)
    return None


def _map_converter(data_type: T.MapType, arrow: bool) -> _Convert | None:
    keys = _datetime_converter(data_type.keyType, arrow) or _same
    values = _datetime_converter(data_type.valueType, arrow) or _same
    if keys is _same and values is _same:
        return None
    return lambda v: {keys(k): _or_none(values, x) for k, x in v.items()} \
        if isinstance(v, dict) else v


def _struct_converter(data_type: T.StructType, arrow: bool) -> _Convert | None:
    """A struct result as a tuple (a Row, positional as Arrow reads it) or a dict (by
    name), its datetime fields converted."""
    fields = {f.name: _datetime_converter(f.dataType, arrow) or _same
              for f in data_type.fields}
    if all(c is _same for c in fields.values()):
        return None
    order = list(fields.values())

    def convert(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: _or_none(fields.get(k, _same), x) for k, x in v.items()}
        if isinstance(v, tuple) and len(v) == len(order):
            return tuple(_or_none(c, x) for c, x in zip(order, v, strict=True))
        return v
    return convert


def _same(value: Any) -> Any:
    return value


def _or_none(convert: _Convert, value: Any) -> Any:
    return None if value is None else convert(value)


def _instant(value: Any) -> datetime:
    """A pickled UDF's TIMESTAMP result as ``TimestampType.toInternal`` reads it: an
    aware datetime's instant, a naive one in the process's local zone (its ``mktime``
    ignores fold, so of two equal wall clocks the earlier, and reads a wall clock in a
    DST gap with the offset before it: fold 0, here without glibc's memory of earlier
    calls); anything else fails with PySpark's AttributeError (``.tzinfo``)."""
    seconds = calendar.timegm(value.utctimetuple()) if value.tzinfo \
        else value.replace(microsecond=0, fold=0).timestamp()
    return _EPOCH + timedelta(seconds=int(seconds), microseconds=value.microsecond)


def _arrow_instant(value: Any) -> datetime:
    """An Arrow UDF's TIMESTAMP result as PySpark 4.3 converts it:
    ``astimezone(timezone.utc)`` (a naive one local, by its fold), datetimes only."""
    _require(isinstance(value, datetime))
    return value.astimezone(UTC)  # type: ignore[no-any-return]


def _wall_clock(value: Any) -> datetime:
    """A pickled UDF's TIMESTAMP_NTZ result as ``TimestampNTZType.toInternal`` reads
    it: its wall clock (``timetuple()``: an aware one's zone is dropped)."""
    seconds = calendar.timegm(value.timetuple())
    return _NAIVE_EPOCH + timedelta(seconds=seconds, microseconds=value.microsecond)


def _arrow_wall_clock(value: Any) -> datetime:
    """An Arrow UDF's TIMESTAMP_NTZ result: naive datetimes only."""
    _require(isinstance(value, datetime) and value.tzinfo is None)
    return value  # type: ignore[no-any-return]


def _require(condition: bool) -> None:
    """PySpark's Arrow result converters ``assert`` the type: a bare AssertionError."""
    if not condition:
        raise AssertionError


# (TIMESTAMP rather than TIMESTAMP_NTZ, Arrow UDF) -> converter of one non-null result
_DATETIME_RESULTS: dict[tuple[bool, bool], Callable[[Any], datetime]] = {
    (True, False): _instant, (True, True): _arrow_instant,
    (False, False): _wall_clock, (False, True): _arrow_wall_clock,
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


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
