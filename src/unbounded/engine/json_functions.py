"""``from_json`` and ``to_json`` with the options Spark 4 honours for them.

Reading: the JSON syntax options (``allowSingleQuotes``... see ``files/json_syntax.py``),
``mode`` (PERMISSIVE, FAILFAST), ``columnNameOfCorruptRecord``, ``timeZone``,
``timestampFormat`` and ``dateFormat``. Timestamps and dates decode as text first, then
are read in one vectorised pass: with the format when one is given, else as Spark's cast
reads them (an offset names the instant; none means the wall clock in the zone); a JSON
integer for a timestamp is seconds since the epoch. A value that does not convert is
NULL (Spark's partial results) and makes its record malformed: the corrupt-record column
gets the text, FAILFAST raises, and a result that is not a struct is NULL as a whole.
Writing: ``timeZone``, ``timestampFormat``, ``dateFormat`` and ``ignoreNullFields``.

The zone is the ``timeZone`` option, else the session's when the DataFrame was built
(both functions are zone-aware: ``engine/zone_binding.py`` binds it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from unbounded.engine import datetime_functions as dates  # a module: imports are circular
from unbounded.engine.ansi import java_double
from unbounded.engine.context import CompileContext
from unbounded.engine.dtypes import to_polars_dtype
from unbounded.engine.expressions import cast_to
from unbounded.engine.functions import register
from unbounded.errors import AnalysisException, SparkRuntimeException
from unbounded.files.json_strict import strict_decode
from unbounded.files.json_syntax import JsonSyntax, loads
from unbounded.files.json_text import (
    DType,
    has_temporals,
    json_timestamp_text,
    leaves_failed,
    map_leaves,
    timestamps_as_strings,
)
from unbounded.plan import types as T
from unbounded.plan.datetime_format import format_instant, spark_to_chrono
from unbounded.plan.expressions import FunctionCall
from unbounded.plan.timestamp_text import text_to_date

__all__ = ["JsonOptions", "json_options"]

_UTC_US = pl.Datetime("us", "UTC")
_EPOCH_SECONDS = r"^\s*-?\d+\s*$"  # a JSON integer read into a timestamp


@dataclass(frozen=True)
class JsonOptions:
    """The options of one ``from_json``/``to_json`` call, with Spark's defaults."""

    zone: str
    timestamp_format: str | None = None
    date_format: str | None = None
    syntax: JsonSyntax = field(default_factory=JsonSyntax)
    failfast: bool = False
    corrupt_column: str = "_corrupt_record"
    ignore_null_fields: bool = True
    pretty: bool = False


def json_options(call: FunctionCall, ctx: CompileContext) -> JsonOptions:
    """The call's options (keys are case-insensitive, as Spark's)."""
    raw = {str(k).lower(): str(v) for k, v in call.param("options") or ()}
    mode = raw.get("mode", "PERMISSIVE").upper()
    if mode == "DROPMALFORMED":
        raise AnalysisException(
            f"[PARSE_MODE_UNSUPPORTED] The function `{call.name}` doesn't support the "
            "DROPMALFORMED mode. Acceptable modes are PERMISSIVE and FAILFAST.",
            error_class="PARSE_MODE_UNSUPPORTED")
    return JsonOptions(
        zone=raw.get("timezone", ctx.time_zone),
        timestamp_format=raw.get("timestampformat"), date_format=raw.get("dateformat"),
        syntax=_syntax(raw), failfast=mode == "FAILFAST",
        corrupt_column=raw.get("columnnameofcorruptrecord", "_corrupt_record"),
        ignore_null_fields=_flag(raw, "ignorenullfields", True),
        pretty=_flag(raw, "pretty", False))


def _flag(raw: dict[str, str], key: str, default: bool) -> bool:
    return raw[key].strip().lower() == "true" if key in raw else default


def _syntax(raw: dict[str, str]) -> JsonSyntax:
    return JsonSyntax(
        single_quotes=_flag(raw, "allowsinglequotes", True),
        non_numeric_numbers=_flag(raw, "allownonnumericnumbers", True),
        unquoted_field_names=_flag(raw, "allowunquotedfieldnames", False),
        numeric_leading_zeros=_flag(raw, "allownumericleadingzeros", False),
        backslash_escaping_any_character=_flag(raw, "allowbackslashescapinganycharacter",
                                               False),
        unquoted_control_chars=_flag(raw, "allowunquotedcontrolchars", False),
        comments=_flag(raw, "allowcomments", False))


# ---- from_json ---------------------------------------------------------------------------
@register("from_json")
def _from_json(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    schema: T.DataType = call.param("schema")
    options = json_options(call, ctx)
    target = to_polars_dtype(schema)
    return args[0].map_batches(lambda s: _from_json_batch(s, schema, target, options),
                               return_dtype=target, is_elementwise=True)


def _from_json_batch(texts: pl.Series, schema: T.DataType, target: pl.DataType,
                     options: JsonOptions) -> pl.Series:
    """One batch, eagerly: decode with temporals as text, read them (once), then apply
    the parse mode to the records where something did not convert."""
    staged = timestamps_as_strings(target, dates=True)
    decoded = _decode(texts, schema, staged, options).struct.unnest()
    frame = decoded.with_columns(texts.alias("text"), _read_temporals(
        pl.col("value"), staged, target, options).alias("parsed"))
    frame = frame.with_columns(failed=pl.col("bad") | leaves_failed(
        pl.col("value"), staged, pl.col("parsed"), target, has_temporals))
    if options.failfast and frame["failed"].any():
        raise _malformed(frame.filter(pl.col("failed"))["text"][0])
    finished = _finish(pl.col("parsed"), pl.col("failed"), pl.col("text"), schema, options)
    return frame.select(finished.alias(texts.name)).to_series()


def _read_temporals(value: pl.Expr, staged: DType, result: DType,
                    options: JsonOptions) -> pl.Expr:
    """The timestamps and dates (decoded as text) read, with Spark's partial results: a
    value that does not convert makes the nearest struct field holding it NULL, so an
    array or a map of them is NULL as a whole (a struct inside one keeps the rest)."""
    if not has_temporals(result):
        return value
    if isinstance(staged, pl.Struct) and isinstance(result, pl.Struct):
        fields = [_read_field(value.struct.field(f.name), f.dtype, r.dtype, options)
                  .alias(f.name) for f, r in zip(staged.fields, result.fields, strict=True)]
        return pl.when(value.is_not_null()).then(pl.struct(fields))
    if isinstance(staged, pl.List) and isinstance(result, pl.List):
        return value.list.eval(_read_temporals(pl.element(), staged.inner, result.inner,
                                               options))
    if isinstance(staged, pl.Map) and isinstance(result, pl.Map):  # as its entries
        entries, out = _entries(staged), _entries(result)
        return _read_temporals(value.cast(entries), entries, out, options).cast(result)
    return _temporal(value, _instance(result), options)


def _entries(dtype: pl.Map) -> pl.List:
    return pl.List(pl.Struct({"key": dtype.key, "value": dtype.value}))


def _instance(dtype: DType) -> pl.DataType:
    return dtype() if isinstance(dtype, type) else dtype


def _read_field(value: pl.Expr, staged: DType, result: DType,
                options: JsonOptions) -> pl.Expr:
    read = _read_temporals(value, staged, result, options)
    if not _loose_temporals(result):
        return read
    failed = leaves_failed(value, staged, read, result, has_temporals)
    return pl.when(failed.not_()).then(read)


def _loose_temporals(dtype: DType) -> bool:
    """An array or map with a timestamp or date outside any struct inside it."""
    if isinstance(dtype, pl.List):
        return _temporal_leaf(dtype.inner) or _loose_temporals(dtype.inner)
    if isinstance(dtype, pl.Map):
        return any(_temporal_leaf(t) or _loose_temporals(t) for t in (dtype.key, dtype.value))
    return False


def _temporal_leaf(dtype: DType) -> bool:
    return dtype == pl.Date or isinstance(dtype, pl.Datetime)


def _finish(parsed: pl.Expr, failed: pl.Expr, text: pl.Expr, schema: T.DataType,
            options: JsonOptions) -> pl.Expr:
    """Spark's PERMISSIVE mode over a record that did not convert."""
    if not isinstance(schema, T.StructType):
        return pl.when(failed.not_()).then(parsed)
    names = [f.name for f in schema.fields]
    if options.corrupt_column not in names:
        return parsed
    fields = [pl.when(failed).then(text).alias(n) if n == options.corrupt_column
              else parsed.struct.field(n) for n in names]
    return pl.when(text.is_not_null()).then(pl.struct(fields))


def _malformed(text: Any) -> Exception:
    return SparkRuntimeException(
        "[MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION] Malformed records are detected "
        f"in record parsing: {text}. Parse Mode: FAILFAST. To process malformed records as "
        "null result, try setting the option 'mode' as 'PERMISSIVE'. SQLSTATE: 22023",
        error_class="MALFORMED_RECORD_IN_PARSING")


def _temporal(text: pl.Expr, result: pl.DataType, options: JsonOptions) -> pl.Expr:
    """One timestamp's or date's JSON text as its value (NULL where it does not read)."""
    text = pl.when(text.str.strip_chars() != "").then(text)
    if result == pl.Date:
        if options.date_format is not None:
            return text.str.to_date(spark_to_chrono(options.date_format), strict=False)
        return text_to_date(text)
    seconds = text.str.contains(_EPOCH_SECONDS)
    epoch = (text.str.strip_chars().cast(pl.Int64, strict=False) * 1_000_000).cast(_UTC_US)
    read = dates.text_to_instant(text, options.zone) if options.timestamp_format is None \
        else dates.parse_timestamp(text, options.timestamp_format, options.zone)
    return pl.when(seconds).then(epoch).otherwise(read)


# ---- decoding, row by row where the vectorised decoder cannot be exact ------------------
class _Mismatch(ValueError):
    """A JSON value that does not convert to the requested type."""


def _decode(series: pl.Series, schema: T.DataType, staged: pl.DataType,
            options: JsonOptions) -> pl.Series:
    """``{value, bad}`` per row. Rows are decoded in bulk where the decoder is as strict
    as Spark (files/json_strict.py) and nothing needs to know which records were
    malformed; the others by Spark's rules, row by row."""
    exact = options.failfast or _corrupt_field(schema, options) is not None
    if exact or _has_map(schema):
        return _rows(series, schema, staged, options)
    values, read = strict_decode(series, staged)
    rest = series.is_not_null() & ~read
    if not rest.any():
        return pl.DataFrame({"value": values, "bad": pl.repeat(False, len(series), eager=True)
                             }).to_struct(series.name)
    slow = _rows(series.filter(rest), schema, staged, options).struct.unnest()
    rows = rest.arg_true().cast(pl.Int64)
    index = pl.int_range(len(series), eager=True).scatter(
        rows, pl.int_range(len(series), len(series) + len(rows), eager=True))
    frame = pl.DataFrame({"value": pl.concat([values, slow["value"]]),
                          "bad": pl.concat([~rest, slow["bad"]]).fill_null(False)})
    return frame[index].to_struct(series.name)


def _rows(series: pl.Series, schema: T.DataType, staged: pl.DataType,
          options: JsonOptions) -> pl.Series:
    rows = [(None, False) if v is None else _json_row(v, schema, options)
            for v in series.to_list()]
    values = pl.Series("value", [r[0] for r in rows], dtype=staged, strict=False)
    return pl.DataFrame({"value": values, "bad": [r[1] for r in rows]}).to_struct(series.name)


def _corrupt_field(schema: T.DataType, options: JsonOptions) -> str | None:
    if isinstance(schema, T.StructType) and options.corrupt_column in schema.fieldNames():
        return options.corrupt_column
    return None


def _has_map(t: T.DataType) -> bool:
    if isinstance(t, T.MapType):
        return True
    if isinstance(t, T.ArrayType):
        return _has_map(t.elementType)
    if isinstance(t, T.StructType):
        return any(_has_map(f.dataType) for f in t.fields)
    return False


def _json_row(text: str, schema: T.DataType, options: JsonOptions) -> tuple[Any, bool]:
    """One row and whether it was malformed; Spark gives a struct of NULLs (not NULL) for
    a record that does not parse."""
    bad: list[bool] = []
    if not text.strip(" \t\n\r"):
        return None, False  # no document: NULL, not a malformed record
    try:
        parsed = loads(text, options.syntax)
        if isinstance(schema, T.StructType):
            return _json_struct(parsed, schema, options, bad, root=True), bool(bad)
        if isinstance(schema, T.ArrayType) and isinstance(schema.elementType, T.StructType) \
                and isinstance(parsed, dict):
            parsed = [parsed]  # Spark reads one object as an array of it
        # A struct's field that did not convert leaves a partial result (not NULL): only
        # FAILFAST needs to know of it.
        return _json_value(parsed, schema, options, bad), options.failfast and bool(bad)
    except (ValueError, _Mismatch, RecursionError):
        if isinstance(schema, T.StructType):
            return {f.name: None for f in schema.fields}, True
        return None, True


def _json_struct(value: Any, t: T.StructType, options: JsonOptions, bad: list[bool],
                 root: bool = False) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Mismatch(t.simpleString())
    skipped = options.corrupt_column if root else None
    return {f.name: None if f.name == skipped else
            _json_field(value.get(f.name), f.dataType, options, bad) for f in t.fields}


def _json_value(value: Any, t: T.DataType, options: JsonOptions, bad: list[bool]) -> Any:
    if value is None:
        return None
    if isinstance(t, T.StructType):
        return _json_struct(value, t, options, bad)
    if isinstance(t, T.ArrayType):
        if not isinstance(value, list):
            raise _Mismatch(t.simpleString())
        return [_json_value(v, t.elementType, options, bad) for v in value]
    if isinstance(t, T.MapType):
        if not isinstance(value, dict):
            raise _Mismatch(t.simpleString())
        return [{"key": k, "value": _json_value(v, t.valueType, options, bad)}
                for k, v in value.items()]
    return _json_scalar(value, t, options)


def _json_field(value: Any, t: T.DataType, options: JsonOptions, bad: list[bool]) -> Any:
    """A struct field; a field that does not convert is NULL (Spark's partial results)
    and marks the record malformed."""
    try:
        return _json_value(value, t, options, bad)
    except _Mismatch:
        bad.append(True)
        return None


_NON_NUMERIC = {"NaN": float("nan"), "Infinity": float("inf"), "+Infinity": float("inf"),
                "+INF": float("inf"), "-Infinity": float("-inf"), "-INF": float("-inf")}
_INTEGRAL_BITS = {T.ByteType: 8, T.ShortType: 16, T.IntegerType: 32, T.LongType: 64}


def _json_scalar(value: Any, t: T.DataType, options: JsonOptions) -> Any:
    if isinstance(t, T.StringType):
        return value if isinstance(value, str) else _jackson_text(value)
    if isinstance(t, T.BooleanType) and isinstance(value, bool):
        return value
    is_int = isinstance(value, int) and not isinstance(value, bool)
    bits = _INTEGRAL_BITS.get(type(t))
    if bits is not None and is_int and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        return value
    if isinstance(t, T.ByteType) and is_int and 128 <= value <= 255:
        return value - 256  # Jackson's getByteValue takes unsigned bytes too
    if isinstance(t, (T.FloatType, T.DoubleType)):
        if is_int or isinstance(value, float):
            return float(value)
        if value in _NON_NUMERIC and options.syntax.non_numeric_numbers:
            return _NON_NUMERIC[value]
    if isinstance(t, T.TimestampType) and (isinstance(value, str) or is_int):
        return str(value)  # read with the others once the batch is decoded
    if isinstance(t, T.DateType) and isinstance(value, str):
        return value
    raise _Mismatch(t.simpleString())


def _jackson_text(value: Any) -> str:
    """A JSON value read into a string field, as Spark's parser copies it: compact, its
    numbers as Java prints them (``1e2`` is ``100.0``, ``1e20`` is ``1.0E20``), text
    unescaped beyond JSON's needs."""
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _jackson_text(v)
                              for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_jackson_text(v) for v in value) + "]"
    if isinstance(value, float) and math.isfinite(value):
        return java_double(value)
    return json.dumps(value, ensure_ascii=False)


# ---- to_json -----------------------------------------------------------------------------
@register("to_json")
def _to_json(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    options = json_options(call, ctx)
    dtype = ctx.dtype_of(args[0])

    def leaf(value: pl.Expr, dt: pl.DataType, _result: pl.DataType) -> pl.Expr:
        return _temporal_text(value, dt, options)

    texts = timestamps_as_strings(dtype, dates=True)
    value = map_leaves(pl.col("v"), dtype, leaf, texts, has_temporals)
    compact = _json_text(value, texts, options.ignore_null_fields)

    # One batch at a time over the argument's values: the text refers to the value once
    # per field, and Polars would evaluate an argument it cannot share (from_json's
    # Python call) once per reference.
    def batch(values: pl.Series) -> pl.Series:
        out = values.to_frame("v").select(compact).to_series().alias(values.name)
        return _pretty_batch(out) if options.pretty else out

    return args[0].map_batches(batch, return_dtype=pl.String, is_elementwise=True)


def _pretty_batch(texts: pl.Series) -> pl.Series:
    return pl.Series(texts.name, [None if t is None else _pretty(json.loads(
        t, parse_int=_Raw, parse_float=_Raw, parse_constant=_Raw)) for t in texts.to_list()],
        dtype=pl.String)


class _Raw(str):
    """A number's JSON text, kept as written."""


def _pretty(value: Any, depth: int = 0) -> str:
    """Jackson's default pretty printer: two spaces per enclosing object, ``" : "``
    between a name and its value, arrays on one line (``[ 1, 2 ]``)."""
    if isinstance(value, dict):
        if not value:
            return "{ }"
        inner = "  " * (depth + 1)
        members = ",\n".join(f"{inner}{json.dumps(k, ensure_ascii=False)} : "
                             f"{_pretty(v, depth + 1)}" for k, v in value.items())
        return "{\n" + members + "\n" + "  " * depth + "}"
    if isinstance(value, list):
        return "[ " + ", ".join(_pretty(v, depth) for v in value) + " ]" if value else "[ ]"
    if isinstance(value, _Raw):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _temporal_text(value: pl.Expr, dtype: pl.DataType, options: JsonOptions) -> pl.Expr:
    """A timestamp or date as Spark's JSON writer prints it."""
    if dtype == pl.Date:
        if options.date_format is None:
            return value.dt.strftime("%Y-%m-%d")
        return format_instant(value.cast(_UTC_US), options.date_format, "UTC")
    if options.timestamp_format is None:
        return json_timestamp_text(value, options.zone)
    return format_instant(value, options.timestamp_format, options.zone)


def _json_text(value: pl.Expr, dtype: object, ignore_nulls: bool) -> pl.Expr:
    """JSON of a value; NULL struct fields are left out unless ``ignoreNullFields`` is
    false."""
    if isinstance(dtype, pl.Struct) and dtype.fields:
        parts = [_member(value.struct.field(f.name), f.name, f.dtype, ignore_nulls)
                 for f in dtype.fields]
        body = pl.concat_str(parts, separator=",", ignore_nulls=True)
        return pl.when(value.is_not_null()).then(pl.lit("{") + body + pl.lit("}"))
    if isinstance(dtype, pl.List):
        items = value.list.eval(_json_text(pl.element(), dtype.inner, ignore_nulls)
                                .fill_null(pl.lit("null")))
        return pl.lit("[") + items.list.join(",") + pl.lit("]")
    if isinstance(dtype, pl.Map):
        entries = pl.List(pl.Struct({"key": dtype.key, "value": dtype.value}))
        pairs = value.cast(entries).list.eval(pl.concat_str([
            _encoded(pl.element().struct.field("key").cast(pl.String)), pl.lit(":"),
            _json_text(pl.element().struct.field("value"), dtype.value, ignore_nulls)
            .fill_null(pl.lit("null"))]))
        return pl.lit("{") + pairs.list.join(",") + pl.lit("}")
    if dtype in (pl.Float32, pl.Float64):  # Java's text (1.0E10); NaN and infinities quoted
        text = cast_to(value, pl.Float32() if dtype == pl.Float32 else pl.Float64(),
                       T.StringType())
        return pl.when(value.is_nan() | value.is_infinite()) \
            .then(pl.lit('"') + text + pl.lit('"')).otherwise(text)
    return _encoded(value)


def _encoded(value: pl.Expr) -> pl.Expr:
    """Polars' JSON text of one scalar value."""
    return pl.struct(value.alias("v")).struct.json_encode().str.slice(5).str.head(-1)


def _member(value: pl.Expr, name: str, dtype: DType, ignore_nulls: bool) -> pl.Expr:
    key = pl.lit(json.dumps(name) + ":")
    text = _json_text(value, dtype, ignore_nulls)
    if ignore_nulls:
        return pl.when(value.is_not_null()).then(key + text)
    return key + text.fill_null(pl.lit("null"))
