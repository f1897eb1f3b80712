"""JSON values decoded in bulk only where the decoder is as strict as Spark's parser.

Polars' ``json_decode`` converts what Spark refuses: ``1.5`` or ``true`` into an integer
(1), a scalar into an array (``[1]``), ``true`` into a double, and makes an integer out
of its type's range NULL where Spark makes NULL of the field that holds it. pyarrow's
JSON reader refuses all of these (a number for a string field too, whose text Spark
writes its own way), so a row it reads is read as Spark reads it; rows it refuses (and a
few of their neighbours) are left to the caller's row-by-row reader, which applies Spark's rules.

Rows are handed over one per line: a line break inside a row becomes a tab, which is
whitespace between tokens and, like the line break, invalid inside a string. A value
that is not an object is wrapped (``{"v": ...}``) and read with unexpected fields
refused, so text around it cannot pass for another field.
"""

from __future__ import annotations

import io
from typing import Any

import polars as pl
import pyarrow as pa

from unbounded.files.json_text import DType
from unbounded.plan import types as T

__all__ = ["REFUSED", "arrow_json_type", "spark_json_scalar", "strict_decode"]

_PARTS = 16
_SMALLEST = 256
_INTEGERS = {pl.Int8: pa.int8(), pl.Int16: pa.int16(), pl.Int32: pa.int32(),
             pl.Int64: pa.int64(), pl.Float32: pa.float32(), pl.Float64: pa.float64(),
             pl.Boolean: pa.bool_(), pl.String: pa.string()}


def arrow_json_type(dtype: DType) -> pa.DataType | None:
    """The Arrow type pyarrow's reader decodes ``dtype`` as, or None when it does not
    decode it as Spark does (decimals, binary, maps)."""
    if isinstance(dtype, pl.List):
        inner = arrow_json_type(dtype.inner)
        return None if inner is None else pa.list_(inner)
    if isinstance(dtype, pl.Struct):
        fields = [(f.name, arrow_json_type(f.dtype)) for f in dtype.fields]
        if any(t is None for _, t in fields):
            return None
        return pa.struct([pa.field(n, t) for n, t in fields])
    return next((t for p, t in _INTEGERS.items() if dtype == p), None)


def strict_decode(texts: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    """``(values, read)``: each row's value where pyarrow read it; ``read`` is False for
    a NULL or blank row and for rows of a part pyarrow refused."""
    n = len(texts)
    arrow = arrow_json_type(dtype if isinstance(dtype, pl.Struct)
                            else pl.Struct({"v": dtype}))
    present = texts.is_not_null() & (texts.str.strip_chars() != "")
    rows = present.arg_true() if arrow is not None else pl.Series([], dtype=pl.UInt32)
    lines = texts.gather(rows).str.replace_all(r"[\r\n]", "\t")
    if not isinstance(dtype, pl.Struct):
        lines = '{"v":' + lines + "}"
    parts = [] if arrow is None else _read_parts(lines, arrow, isinstance(dtype, pl.Struct))
    return _placed(parts, rows, n, dtype)


def _read_parts(lines: pl.Series, arrow: pa.DataType, is_object: bool
                 ) -> list[tuple[int, pl.Series]]:
    """(offset, values) of the parts pyarrow read: the whole batch at once, else parts
    of it (see ``_split``)."""
    whole = _read(lines, arrow, is_object)
    return [(0, whole)] if whole is not None else _split(lines, arrow, is_object, 0)


def _split(lines: pl.Series, arrow: pa.DataType, is_object: bool, offset: int
           ) -> list[tuple[int, pl.Series]]:
    """Rows pyarrow refused as a whole, read in 16 parts, a refused part split again
    down to ``_SMALLEST`` rows: a few refused rows leave only their neighbourhood to the
    row reader. When every part is refused the rows are refused alike (a number for a
    string field, say) and splitting stops."""
    if len(lines) <= _SMALLEST:
        return []
    size = -(-len(lines) // _PARTS)
    parts = [(start, _read(lines.slice(start, size), arrow, is_object))
             for start in range(0, len(lines), size)]
    if all(p is None for _, p in parts):
        return []
    out = [(offset + start, p) for start, p in parts if p is not None]
    for start, p in parts:
        if p is None:
            out += _split(lines.slice(start, size), arrow, is_object, offset + start)
    return out


def _read(lines: pl.Series, arrow: pa.DataType, is_object: bool) -> pl.Series | None:
    import pyarrow.json as pajson
    if len(lines) == 0:
        return None
    data = lines.str.join("\n").item().encode()
    options = pajson.ParseOptions(explicit_schema=pa.schema(list(arrow)),
                                  unexpected_field_behavior="ignore" if is_object else "error")
    # A block must hold a whole row (pyarrow refuses a row across two blocks).
    longest = lines.str.len_bytes().cast(pl.Int64).max()
    longest = longest if isinstance(longest, int) else 0
    blocks = pajson.ReadOptions(block_size=max(1 << 20, 2 * longest + 2))
    try:
        table = pajson.read_json(io.BytesIO(data), read_options=blocks, parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != len(lines):  # two documents on one row
        return None
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.to_struct() if is_object else frame.to_series()


def _placed(parts: list[tuple[int, pl.Series]], rows: pl.Series, n: int,
            dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    """The parts' values at their rows of the batch (NULL elsewhere), and the mask."""
    if not parts:
        return pl.repeat(None, n, dtype=dtype, eager=True), pl.repeat(False, n, eager=True)
    values = pl.concat([p.cast(dtype) for _, p in parts])
    at = pl.concat([rows.slice(start, len(p)) for start, p in parts]).cast(pl.Int64)
    index = pl.repeat(None, n, dtype=pl.Int64, eager=True).scatter(
        at, pl.int_range(len(values), eager=True))
    return values.gather(index), index.is_not_null()


class _Refused:
    """A JSON value Spark's parser does not convert to the field's type."""

    def __repr__(self) -> str:
        return "REFUSED"


REFUSED: Any = _Refused()  # fails an Arrow conversion, so the record counts as malformed
_INTEGRAL_RANGES = {T.ByteType: (-128, 255), T.ShortType: (-(2 ** 15), 2 ** 15 - 1),
                    T.IntegerType: (-(2 ** 31), 2 ** 31 - 1),
                    T.LongType: (-(2 ** 63), 2 ** 63 - 1)}
_NON_NUMERIC = {"NaN": float("nan"), "Infinity": float("inf"), "+Infinity": float("inf"),
                "+INF": float("inf"), "-Infinity": float("-inf"), "-INF": float("-inf")}


def spark_json_scalar(value: Any, data_type: T.DataType) -> Any:
    """A parsed JSON scalar in a boolean or numeric field as Spark's parser converts it
    (``REFUSED`` where it does not: ``1.5`` or ``true`` for an integer, a number out of
    range, ``true`` for a double); a TINYINT takes 128..255 as Jackson's getByteValue,
    wrapped. Other types pass through.

    >>> spark_json_scalar(200, T.ByteType()), spark_json_scalar(1.5, T.IntegerType())
    (-56, REFUSED)
    """
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    bounds = _INTEGRAL_RANGES.get(type(data_type))
    if bounds is not None:
        if not (isinstance(value, int) and is_number and bounds[0] <= value <= bounds[1]):
            return REFUSED
        return value - 256 if value > 127 and isinstance(data_type, T.ByteType) else value
    if isinstance(data_type, T.FloatType | T.DoubleType):
        if isinstance(value, str):
            return _NON_NUMERIC.get(value, REFUSED)
        return float(value) if is_number else REFUSED
    if isinstance(data_type, T.BooleanType):
        return value if isinstance(value, bool) else REFUSED
    return value
