"""Rows as the JSON lines Spark's JSON writer prints, built column by column in Polars.

What Spark does and Polars' own encoder does not: a NULL field is left out of its object,
at any depth (``ignoreNullFields``, default true; a NULL array element or map value is
still written); decimals are numbers (``1.50``), NaN and the infinities are the strings
``"NaN"``, ``"Infinity"``, ``"-Infinity"``; binary is base64 text; a map is an object.
Dates and timestamps are expected as text already (``datetime_text.datetimes_as_text``).

Example:
    >>> frame = pl.DataFrame({"a": [1, None], "s": [{"x": None, "y": "q"}, None]})
    >>> json_lines(frame, ignore_nulls=True).to_list()
    ['{"a":1,"s":{"y":"q"}}', '{}']
"""

from __future__ import annotations

import json

import polars as pl

from unbounded.files.json_text import DType

__all__ = ["java_float_text", "json_lines"]


def json_lines(frame: pl.DataFrame, *, ignore_nulls: bool) -> pl.Series:
    """One JSON object per row of ``frame``."""
    members = [_member(name, pl.col(name), dtype, ignore_nulls)
               for name, dtype in frame.schema.items()]
    return frame.select(_object(members).alias("json")).to_series()


def _object(members: list[pl.Expr]) -> pl.Expr:
    if not members:
        return pl.lit("{}")
    return pl.lit("{") + pl.concat_str(members, separator=",", ignore_nulls=True) + pl.lit("}")


def _member(name: str, value: pl.Expr, dtype: DType, ignore_nulls: bool) -> pl.Expr:
    """``"name":value``; NULL (left out) for a NULL value when ``ignore_nulls``."""
    text = _value(value, dtype, ignore_nulls)
    return pl.lit(json.dumps(name, ensure_ascii=False) + ":") + \
        (text if ignore_nulls else text.fill_null("null"))


def _value(value: pl.Expr, dtype: DType, ignore_nulls: bool) -> pl.Expr:
    """A value's JSON text, NULL for a NULL value."""
    dtype = dtype() if isinstance(dtype, type) else dtype
    if isinstance(dtype, pl.Struct):
        members = [_member(f.name, value.struct.field(f.name), f.dtype, ignore_nulls)
                   for f in dtype.fields]
        return pl.when(value.is_not_null()).then(_object(members))
    if isinstance(dtype, pl.List | pl.Array):
        return _array(value.cast(pl.List(dtype.inner)), dtype.inner, ignore_nulls)
    if isinstance(dtype, pl.Map):
        return _map(value, dtype, ignore_nulls)
    return _scalar(value, dtype)


def _array(value: pl.Expr, inner: DType, ignore_nulls: bool) -> pl.Expr:
    elements = value.list.eval(_value(pl.element(), inner, ignore_nulls).fill_null("null"))
    return pl.lit("[") + elements.list.join(",") + pl.lit("]")


def _map(value: pl.Expr, dtype: pl.Map, ignore_nulls: bool) -> pl.Expr:
    """An object of the entries; a NULL value is written (Spark keeps map entries)."""
    entries = pl.List(pl.Struct({"key": dtype.key, "value": dtype.value}))
    entry = _scalar(pl.element().struct.field("key").cast(pl.String), pl.String()) + \
        pl.lit(":") + _value(pl.element().struct.field("value"), dtype.value,
                             ignore_nulls).fill_null("null")
    listed = value.cast(entries).list.eval(entry)
    return pl.lit("{") + listed.list.join(",") + pl.lit("}")


def _scalar(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Boolean:
        return pl.when(value).then(pl.lit("true")).when(value.not_()).then(pl.lit("false"))
    if dtype.is_float():  # NaN and the infinities are JSON strings
        text = java_float_text(value)
        return pl.when(value.is_finite()).then(text).otherwise(pl.lit('"') + text + pl.lit('"'))
    if dtype.is_numeric():  # integers and decimals: their digits
        return value.cast(pl.String)
    if dtype == pl.Binary:
        return _quoted(value.bin.encode("base64"))
    if dtype == pl.Null:
        return pl.lit(None, dtype=pl.String)
    return _quoted(value.cast(pl.String))


def java_float_text(value: pl.Expr) -> pl.Expr:
    """A float as Java's ``Double.toString`` prints it (Spark's csv and JSON writers):
    ``NaN``, ``Infinity``, ``-Infinity``, plain from 1e-3 to 1e7 (Polars' text there),
    else ``1.2345E7`` / ``1.0E-5`` with the same shortest digits."""
    text = value.cast(pl.String)
    magnitude = value.abs()
    plain_range = (magnitude >= 1e-3) & (magnitude < 1e7) | (value == 0) | value.is_nan()
    other = pl.when(plain_range.not_()).then(text)  # the regexes skip NULLs cheaply
    sci = other.str.extract_groups(r"^(-?)(\d)(?:\.(\d+))?e([+-]?\d+)$")
    plain = other.str.extract_groups(r"^(-?)(\d+)\.(\d+)$")
    whole, fraction = plain.struct.field("2"), plain.struct.field("3")
    joined = whole + fraction
    significant = joined.str.strip_chars_start("0")
    digits = pl.coalesce([sci.struct.field("2") + sci.struct.field("3").fill_null(""),
                          significant]).str.strip_chars_end("0").replace("", "0")
    exponent = pl.coalesce([sci.struct.field("4").cast(pl.Int64),
                            whole.str.len_chars().cast(pl.Int64) - 1
                            - (joined.str.len_chars() - significant.str.len_chars())])
    tail = pl.when(digits.str.len_chars() > 1).then(digits.str.slice(1)).otherwise(pl.lit("0"))
    scientific = pl.concat_str([pl.coalesce([sci.struct.field("1"), plain.struct.field("1")]),
                                digits.str.head(1), pl.lit("."), tail, pl.lit("E"),
                                exponent.cast(pl.String)])
    return pl.when(value.is_nan()).then(pl.lit("NaN")) \
        .when(value == float("inf")).then(pl.lit("Infinity")) \
        .when(value == float("-inf")).then(pl.lit("-Infinity")) \
        .when(plain_range).then(text).otherwise(scientific)


def _quoted(text: pl.Expr) -> pl.Expr:
    """A JSON string (Polars escapes it: ``{"v":"..."}`` without its first 5 and last
    character)."""
    encoded = pl.struct(text.alias("v")).struct.json_encode()
    return pl.when(text.is_not_null()).then(encoded.str.slice(5, encoded.str.len_chars() - 6))
