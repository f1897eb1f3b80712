"""Scalar functions by name: each entry compiles one ``FunctionCall`` to Polars.

Adding a function is one decorated builder here plus its constructor in
``unbounded.sql.functions``; the SQL parser finds it by the same name.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import zlib
from collections.abc import Callable
from functools import cache
from typing import Any

import polars as pl

from unbounded.engine.ansi import arithmetic_checked, integral_bounds
from unbounded.engine.coercion import (
    COMMON_TYPE_FUNCTIONS,
    check_same_type_inputs,
    coerced_function,
    data_diff_types,
    function_arg_types,
    spark_type_name,
)
from unbounded.engine.context import CompileContext
from unbounded.engine.dtypes import to_polars_dtype
from unbounded.engine.expressions import (
    compile_expr,
    dtypes_of,
    implicit_cast,
    unify_values,
)
from unbounded.engine.murmur3 import spark_hash
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import FunctionCall, LambdaFunction, Literal

__all__ = ["FUNCTIONS", "compile_function", "function_table", "is_sliding_window",
           "known_function", "map_entries", "register"]

Builder = Callable[[FunctionCall, list[pl.Expr], CompileContext], pl.Expr]
FUNCTIONS: dict[str, Builder] = {}
_UTC_US = pl.Datetime("us", "UTC")


def _register(*names: str) -> Callable[[Builder], Builder]:
    def wrap(fn: Builder) -> Builder:
        for name in names:
            FUNCTIONS[name] = fn
        return fn

    return wrap


register = _register  # for the function families in modules of their own

# Families in modules of their own register their builders when imported. They load on
# the first name this module's table lacks: a query calling none of them (a windowed
# count) starts without them and the libraries they bring (a tenth of our own import).
# ``datetime_functions`` is loaded anyway, by zone binding.
_FAMILIES = ("collection_functions", "datetime_functions", "json_functions",
             "math_functions", "string_functions")


@cache
def _load_families() -> None:
    for family in _FAMILIES:
        importlib.import_module(f"unbounded.engine.{family}")


def function_table() -> dict[str, Builder]:
    """Every scalar function by name, its families loaded (``FUNCTIONS`` may not be)."""
    _load_families()
    return FUNCTIONS


def _builder(name: str) -> Builder | None:
    return FUNCTIONS.get(name) or function_table().get(name)


def known_function(name: str) -> bool:
    return _builder(name.lower()) is not None


def compile_function(call: FunctionCall, ctx: CompileContext) -> pl.Expr:
    builder = _builder(call.name.lower())
    if builder is None:
        raise AnalysisException(
            f"[UNRESOLVED_ROUTINE] Cannot resolve function `{call.name}`; "
            f"supported functions are: {', '.join(sorted(function_table()))}.",
            error_class="UNRESOLVED_ROUTINE",
        )
    # A lambda argument is compiled by its higher-order function, over one row per element.
    args = [pl.lit(None) if isinstance(a, LambdaFunction) else compile_expr(a, ctx)
            for a in call.args]
    zone = call.param("time_zone")  # the session's when the DataFrame was built
    if zone is None or zone == ctx.time_zone:
        return _apply(call, builder, args, ctx)
    running, ctx.time_zone = ctx.time_zone, zone
    try:
        return _apply(call, builder, args, ctx)
    finally:
        ctx.time_zone = running


def _apply(call: FunctionCall, builder: Builder, args: list[pl.Expr],
           ctx: CompileContext) -> pl.Expr:
    """The builder over the compiled arguments, after Spark's implicit casts."""
    if coerced_function(call.name.lower()):
        targets = function_arg_types(call.name.lower(), dtypes_of(args, ctx))
        args = [implicit_cast(a, t, ctx) for a, t in zip(args, targets, strict=True)]
    if call.name.lower() in ("greatest", "least"):
        check_same_type_inputs(call.name.lower(), call.display_name(), dtypes_of(args, ctx))
    name = call.name.lower()
    if name in COMMON_TYPE_FUNCTIONS and len(args) > 1:
        shown = "array" if name == "array" else "coalesce"  # Spark's nvl is a coalesce
        args = unify_values(args, ctx, None if name == "array" else _coalesce_taken(args),
                            who=lambda d: data_diff_types(shown, call.display_name(), d))
    if name == "nvl2" and len(args) == 3:  # its two values: one type
        taken = args[0].is_not_null()
        args = [args[0], *unify_values(args[1:], ctx, [taken, ~taken], who=lambda d:
                                       data_diff_types("if", call.display_name(), d,
                                                       listed=True))]
    return builder(call, args, ctx)


def _coalesce_taken(args: list[pl.Expr]) -> list[pl.Expr]:
    """Per argument, the rows whose value ``coalesce`` returns: every earlier one NULL."""
    return [pl.all_horizontal([a.is_null() for a in args[:i]]) if i else pl.lit(True)
            for i in range(len(args))]


def is_sliding_window(call: FunctionCall) -> bool:
    """A sliding window maps one row to several windows (the plan explodes them)."""
    if call.name != "window":
        return False
    slide = call.param("slide_us")
    return slide is not None and slide != call.param("duration_us")


# ---- null handling and general ------------------------------------------------------
@_register("coalesce", "nvl", "ifnull")
def _coalesce(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return pl.coalesce(args)


@_register("nullif")
def _nullif(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return pl.when(args[0] == args[1]).then(None).otherwise(args[0])


@_register("isnan")
def _isnan(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].cast(pl.Float64).is_nan().fill_null(False)


@_register("greatest")
def _greatest(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return pl.max_horizontal(args)


@_register("least")
def _least(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return pl.min_horizontal(args)


@_register("struct", "named_struct")
def _struct(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    names = call.param("names") or tuple(a.display_name() for a in call.args)
    return pl.struct([a.alias(n) for a, n in zip(args, names, strict=True)])


@_register("array")
def _array(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    if not args:  # Spark's array(): an empty array<void>
        return pl.lit([], dtype=pl.List(pl.Null))
    # concat_list splices list arguments; array(xs, ys) nests them as Spark does.
    if any(isinstance(d, (pl.List, pl.Array)) for d in dtypes_of(args, ctx)):
        args = [a.repeat_by(1) for a in args]
    return pl.concat_list(args)


@_register("hash")
def _hash(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Spark's Murmur3 ``hash`` (seed 42), bit-identical; see ``unbounded.engine.murmur3``."""
    if not args:
        raise AnalysisException("hash() needs at least one argument.",
                                error_class="WRONG_NUM_ARGS")
    for arg, expr in zip(args, call.args, strict=True):
        if isinstance(ctx.dtype_of(arg), (pl.List, pl.Array)):
            raise AnalysisException(
                f"hash() does not support array or map values yet ({expr.display_name()}); "
                "hash its elements or cast it to a string.", error_class="DATATYPE_MISMATCH")
    fields = [a.alias(f"_{i}") for i, a in enumerate(args)]
    return pl.struct(fields).map_batches(_hash_batch, return_dtype=pl.Int32,
                                         is_elementwise=True)


def _hash_batch(series: pl.Series) -> pl.Series:
    table = series.struct.unnest().to_arrow()
    return pl.Series(series.name, spark_hash(table.columns), dtype=pl.Int32)


# ---- maths ---------------------------------------------------------------------------
@_register("abs")
def _abs(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """ANSI: the absolute value of an integral type's minimum overflows, as in Spark."""
    dtype = ctx.dtype_of(args[0])
    bounds = integral_bounds(dtype) if ctx.ansi else None
    if bounds is None:
        return args[0].abs()
    wide = args[0].cast(pl.Int128).abs()
    return arithmetic_checked("abs", wide, args[0].abs(), dtype, bounds, same_op=True)


@_register("round")
def _round(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].round(int(call.param("scale", 0)), mode="half_away_from_zero")


@_register("floor")
def _floor(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].cast(pl.Float64).floor().cast(pl.Int64)


@_register("ceil", "ceiling")
def _ceil(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].cast(pl.Float64).ceil().cast(pl.Int64)


@_register("sqrt")
def _sqrt(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].cast(pl.Float64).sqrt()


@_register("exp")
def _exp(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].cast(pl.Float64).exp()


@_register("log", "ln")
def _log(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    # Spark: NULL where the value (or the base) is not positive, never -inf or NaN.
    value = args[-1].cast(pl.Float64)
    if len(args) == 2:
        base = args[0].cast(pl.Float64)
        return pl.when((value > 0) & (base > 0)).then(value.log() / base.log())
    return pl.when(value > 0).then(value.log())


# ---- strings -------------------------------------------------------------------------
@_register("upper", "ucase")
def _upper(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].str.to_uppercase()


@_register("lower", "lcase")
def _lower(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].str.to_lowercase()


@_register("length", "char_length", "character_length")
def _length(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    if ctx.dtype_of(args[0]) == pl.Binary:
        return args[0].bin.size().cast(pl.Int32)
    return args[0].cast(pl.String).str.len_chars().cast(pl.Int32)


@_register("trim")
def _trim(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].str.strip_chars(" ")


@_register("ltrim")
def _ltrim(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].str.strip_chars_start(" ")


@_register("rtrim")
def _rtrim(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].str.strip_chars_end(" ")


@_register("reverse")
def _reverse(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    if isinstance(ctx.dtype_of(args[0]), pl.List):
        return args[0].list.reverse()
    return args[0].str.reverse()


@_register("concat")
def _concat(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    # Spark: concat is NULL when any input is NULL.
    if args and isinstance(ctx.dtype_of(args[0]), pl.List):
        return pl.concat_list(args)
    return pl.concat_str([a.cast(pl.String) for a in args], ignore_nulls=False)


@_register("concat_ws")
def _concat_ws(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return pl.concat_str([a.cast(pl.String) for a in args], separator=call.param("sep"),
                         ignore_nulls=True)


@_register("substring", "substr")
def _substring(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    pos = int(call.param("pos", 1))
    length = call.param("len")
    start = pos - 1 if pos > 0 else pos
    return args[0].str.slice(start, None if length is None else int(length))


@_register("split")
def _split(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    pattern = str(call.param("pattern"))
    limit = int(call.param("limit", -1))
    literal = not _is_regex(pattern)
    if limit == 1:  # no split: the whole string (NULL stays NULL)
        return pl.when(args[0].is_not_null()).then(pl.concat_list(args[0]))
    if limit > 2 and not literal:  # Polars replaces one regex match at most
        return args[0].map_batches(lambda s: _split_batch(s, re.compile(pattern), limit),
                                   return_dtype=pl.List(pl.String), is_elementwise=True)
    if limit > 1:
        # The first limit-1 matches become a separator no input holds, then split on it.
        marked = args[0].str.replace(pattern, _SPLIT_MARK, literal=literal, n=limit - 1)
        return marked.str.split(_SPLIT_MARK)
    return args[0].str.split(pattern, literal=literal)


_SPLIT_MARK = "\x00\x01split\x01\x00"


def _split_batch(series: pl.Series, pattern: re.Pattern[str], limit: int) -> pl.Series:
    values = [None if v is None else pattern.split(v, limit - 1) for v in series.to_list()]
    return pl.Series(series.name, values, dtype=pl.List(pl.String))


def _is_regex(pattern: str) -> bool:
    return any(ch in pattern for ch in ".^$*+?()[]{}|\\")


@_register("regexp_replace")
def _regexp_replace(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    replacement = str(call.param("replacement")).replace("$", "$")
    return args[0].str.replace_all(str(call.param("pattern")), replacement)


@_register("regexp_extract")
def _regexp_extract(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    found = args[0].str.extract(str(call.param("pattern")), int(call.param("idx", 1)))
    return pl.when(args[0].is_not_null()).then(found.fill_null(""))  # no match: ""


@_register("contains")
def _contains(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].str.contains(args[1], literal=True)


@_register("startswith")
def _startswith(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].str.starts_with(args[1])


@_register("endswith")
def _endswith(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].str.ends_with(args[1])


# ---- collections ---------------------------------------------------------------------
@_register("size", "cardinality")
def _size(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    value = args[0]
    length = value.map.len() if isinstance(ctx.dtype_of(value), pl.Map) else value.list.len()
    # Spark: size(NULL) is -1 (spark.sql.legacy.sizeOfNull), but NULL under ANSI mode.
    return length.cast(pl.Int32) if ctx.ansi else length.cast(pl.Int32).fill_null(-1)


@_register("array_contains")
def _array_contains(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].list.contains(args[1])


@_register("element_at")
def _element_at(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    index = args[1]
    if isinstance(ctx.dtype_of(args[0]), pl.Map):  # element_at(map, key): the key's value
        return args[0].map.get(index)
    got = args[0].list.get(pl.when(index > 0).then(index - 1).otherwise(index),
                           null_on_oob=True)
    return _element_at_checked(got, args[0], index, ctx)


def _element_at_checked(got: pl.Expr, array: pl.Expr, index: pl.Expr,
                        ctx: CompileContext) -> pl.Expr:
    """Spark 4: index 0 always fails; an index past the end fails under ANSI mode."""
    from unbounded.engine.ansi import checked
    from unbounded.errors import SparkRuntimeException

    def zero(_: Any) -> Exception:
        return SparkRuntimeException(
            "[INVALID_INDEX_OF_ZERO] The index 0 is invalid. An index shall be either < 0 or "
            "> 0 (the first element has index 1). SQLSTATE: 22003",
            error_class="INVALID_INDEX_OF_ZERO")

    def outside(value: Any) -> Exception:
        return SparkRuntimeException(
            f"[INVALID_ARRAY_INDEX_IN_ELEMENT_AT] The index {value['i']} is out of bounds. "
            f"The array has {value['n']} elements. Use `try_element_at` to tolerate accessing "
            "element at invalid index and return NULL instead. SQLSTATE: 22003",
            error_class="INVALID_ARRAY_INDEX_IN_ELEMENT_AT")

    dtype = ctx.dtype_of(got)
    out = checked(got, index == 0, index, dtype, zero)
    if not ctx.ansi:
        return out
    length = array.list.len()
    past = index.abs() > length
    return checked(out, past, pl.struct(index.alias("i"), length.alias("n")), dtype, outside)


# ---- JSON (from_json and to_json: engine/json_functions.py) ------------------------
@_register("get_json_object")
def _get_json_object(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].str.json_path_match(str(call.param("path")))


# ---- date and time -------------------------------------------------------------------
@_register("current_timestamp")  # now(): the parser and F.now() call it so
def _current_timestamp(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return pl.lit(ctx.batch_timestamp_us, dtype=pl.Int64).cast(_UTC_US)


# current_date, to_timestamp, date_format, hour, date_trunc and the other date functions
# (the ones the session time zone governs): engine/datetime_functions.py


# ---- event-time windows --------------------------------------------------------------
@_register("window")
def _window(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Tumbling windows as a struct; sliding windows as a list of structs to explode."""
    duration = int(call.param("duration_us"))
    slide = int(call.param("slide_us") or duration)
    start_offset = int(call.param("start_us") or 0)
    ts = args[0].cast(_UTC_US).dt.epoch("us")
    last_start = ts - (ts - start_offset) % slide
    if slide == duration:
        return _window_struct(last_start, duration)
    count = -(-duration // slide)
    candidates = [
        pl.when(ts < last_start - i * slide + duration).then(
            _window_struct(last_start - i * slide, duration))
        for i in range(count)
    ]
    return pl.concat_list(candidates).list.drop_nulls()


def _window_struct(start_us: pl.Expr, duration_us: int) -> pl.Expr:
    return pl.struct(
        start_us.cast(_UTC_US).alias("start"),
        (start_us + duration_us).cast(_UTC_US).alias("end"),
    )


@_register("window_time")
def _window_time(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return (args[0].struct.field("end").dt.epoch("us") - 1).cast(_UTC_US)


# ---- binary and digests --------------------------------------------------------------
@_register("base64")
def _base64(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0].cast(pl.Binary).bin.encode("base64")


def _digest(series: pl.Series, digest: Callable[[bytes], str | int | None],
            dtype: pl.DataType) -> pl.Series:
    """One batch through ``digest``: Polars and Arrow have no MD5/SHA/CRC32 kernels, so
    the values are visited in Python (a list comprehension over the whole batch, never a
    per-row expression call)."""
    values = series.cast(pl.Binary).to_list()
    return pl.Series(series.name, [None if v is None else digest(v) for v in values],
                     dtype=dtype)


def _digest_expr(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext,
                 digest: Callable[[bytes], str | int | None], dtype: pl.DataType) -> pl.Expr:
    """Spark's digests take BINARY; a string (or NULL) is cast, any other type is
    DATATYPE_MISMATCH in both ANSI modes (``md5(1)``)."""
    source = args[0]
    if ctx.dtype_of(source) not in (pl.Binary, pl.String, pl.Null):
        raise AnalysisException(
            f'[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve "{call.display_name()}"'
            ' due to data type mismatch: The first parameter requires the "BINARY" type, '
            f'however "{call.args[0].display_name()}" has the type '
            f'"{spark_type_name(ctx.dtype_of(source))}". SQLSTATE: 42K09',
            error_class="DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE")
    return source.map_batches(lambda s: _digest(s, digest, dtype), return_dtype=dtype,
                              is_elementwise=True)


@_register("md5")
def _md5(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _digest_expr(call, args, ctx, lambda b: hashlib.md5(b).hexdigest(), pl.String())


@_register("sha1", "sha")
def _sha1(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _digest_expr(call, args, ctx, lambda b: hashlib.sha1(b).hexdigest(), pl.String())


_SHA2 = {0: hashlib.sha256, 224: hashlib.sha224, 256: hashlib.sha256, 384: hashlib.sha384,
         512: hashlib.sha512}


@_register("sha2")
def _sha2(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Spark's sha2: an unsupported bit length gives NULL."""
    bits = call.args[1] if len(call.args) > 1 else None
    if not isinstance(bits, Literal):
        raise AnalysisException("sha2() needs a literal bit length (224, 256, 384, 512).",
                                error_class="NON_FOLDABLE_INPUT")
    algorithm = _SHA2.get(int(bits.value))
    if algorithm is None:
        return pl.lit(None, dtype=pl.String)
    return _digest_expr(call, args, ctx, lambda b: algorithm(b).hexdigest(), pl.String())


@_register("crc32")
def _crc32(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _digest_expr(call, args, ctx, zlib.crc32, pl.Int64())


# ---- maps (Polars' Map; an array of key/value structs stays a List) -----------------
@_register("map_keys")
def _map_keys(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _entries(args[0], ctx).list.eval(pl.element().struct.field("key"))


@_register("map_values")
def _map_values(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _entries(args[0], ctx).list.eval(pl.element().struct.field("value"))


def _entries(arg: pl.Expr, ctx: CompileContext) -> pl.Expr:
    """A map's entries as a list of key/value structs (an array is returned as is)."""
    dtype = ctx.dtype_of(arg)
    return map_entries(arg, dtype) if isinstance(dtype, pl.Map) else arg


def map_entries(value: pl.Expr, dtype: pl.Map) -> pl.Expr:
    """The entries of a Map column as a list of ``key``/``value`` structs."""
    return value.cast(pl.List(pl.Struct({"key": dtype.key, "value": dtype.value})))


# ---- generators: expanded into rows by the projection (engine/generators.py) ---------
@_register("explode", "explode_outer")
def _explode(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    # A map stays a Map: the projection explodes its entries into key and value columns.
    value = args[0]
    dtype = ctx.dtype_of(value)
    if isinstance(dtype, pl.Map):
        return value
    if isinstance(dtype, pl.Array):
        return value.arr.to_list()
    if not isinstance(dtype, pl.List):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] {call.name}() needs an array or a map, "
            f"got {call.args[0].display_name()}.", error_class="DATATYPE_MISMATCH")
    return value


@_register("posexplode", "posexplode_outer")
def _posexplode(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    value = _explode(call, args, ctx)
    pos = pl.int_range(pl.len(), dtype=pl.Int32).alias("pos")
    dtype = ctx.dtype_of(value)
    if isinstance(dtype, pl.Map):
        entry = [pl.element().struct.field("key"), pl.element().struct.field("value")]
        return map_entries(value, dtype).list.eval(pl.struct(pos, *entry))
    return value.list.eval(pl.struct(pos, pl.element().alias("col")))


@_register("json_tuple")
def _json_tuple(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    fields: tuple[str, ...] = call.param("fields") or ()
    return pl.struct([_json_field_text(args[0], f).alias(f"c{i}")
                      for i, f in enumerate(fields)])


def _json_field_text(text: pl.Expr, name: str) -> pl.Expr:
    return text.str.json_path_match("$." + name if name.isidentifier() else
                                    "$['" + name.replace("'", "\\'") + "']")


@_register("typed_null")
def _typed_null(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return pl.lit(None, dtype=to_polars_dtype(call.param("type")))
