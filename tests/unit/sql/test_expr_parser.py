"""SQL expression strings parsed into expression nodes, checked by shape and by value.

Expected values are what Spark 3.5 returns for the same SQL (non-ANSI mode).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from unbounded.engine.aggregates import compile_aggregate
from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import compile_expr
from unbounded.engine.functions import function_table
from unbounded.errors import AnalysisException, ParseException
from unbounded.plan.expressions import (
    AggregateCall,
    Alias,
    BinaryOp,
    CaseWhen,
    Cast,
    ColumnRef,
    Expression,
    FunctionCall,
    GetField,
    GetItem,
    In,
    Like,
    Literal,
    Star,
    UnaryOp,
)
from unbounded.sql import functions as F
from unbounded.sql import types as T
from unbounded.sql.expr_parser import parse_expression


def evaluate(sql: str, data: dict[str, Any] | None = None,
             schema: dict[str, pl.DataType] | None = None) -> list[Any]:
    """The values of ``sql`` over a small frame, as the engine computes them with
    spark.sql.ansi.enabled=false (NULL for a bad cast or a zero divisor); ANSI mode is
    tested in tests/unit/engine/test_ansi.py."""
    frame = pl.DataFrame(data if data is not None else {"_row": [0]}, schema=schema)
    ctx = CompileContext(frame.schema, batch_timestamp_us=0, ansi=False)
    compiled = compile_expr(parse_expression(sql), ctx)
    return frame.lazy().select(compiled.alias("r")).collect()["r"].to_list()


def one(sql: str, data: dict[str, Any] | None = None) -> Any:
    values = evaluate(sql, data)
    assert len(values) == 1
    return values[0]


def aggregate(sqls: list[str], data: dict[str, Any], keys: tuple[str, ...] = ()) -> pl.DataFrame:
    frame = pl.DataFrame(data)
    ctx = CompileContext(frame.schema, batch_timestamp_us=0)
    key_exprs = tuple(parse_expression(k) for k in keys)
    aggs = tuple(parse_expression(s) for s in sqls)
    return compile_aggregate(frame.lazy(), ctx, key_exprs, aggs).collect()


# ---- node shapes ---------------------------------------------------------------------
@pytest.mark.parametrize(("sql", "built"), [
    ("split(s, ',')", F.split(F.col("s"), ",")),
    ("split(s, ',', 2)", F.split(F.col("s"), ",", 2)),
    ("regexp_replace(s, '[0-9]+', 'N')", F.regexp_replace(F.col("s"), "[0-9]+", "N")),
    ("regexp_extract(s, '(a)(b)', 2)", F.regexp_extract(F.col("s"), "(a)(b)", 2)),
    ("date_format(ts, 'yyyy-MM-dd')", F.date_format(F.col("ts"), "yyyy-MM-dd")),
    ("to_timestamp(s, 'yyyy-MM-dd HH:mm')", F.to_timestamp(F.col("s"), "yyyy-MM-dd HH:mm")),
    ("to_timestamp(s)", F.to_timestamp(F.col("s"))),
    ("date_trunc('hour', ts)", F.date_trunc("hour", F.col("ts"))),
    ("concat_ws('-', a, b)", F.concat_ws("-", F.col("a"), F.col("b"))),
    ("get_json_object(j, '$.a.b')", F.get_json_object(F.col("j"), "$.a.b")),
    ("from_json(j, 'a INT, b STRING')", F.from_json(F.col("j"), "a INT, b STRING")),
    ("from_unixtime(n, 'yyyy')", F.from_unixtime(F.col("n"), "yyyy")),
    ("window(ts, '5 minutes')", F.window(F.col("ts"), "5 minutes")),
    ("window(ts, '10 minutes', '5 minutes')", F.window(F.col("ts"), "10 minutes", "5 minutes")),
    ("window(ts, '10 minutes', '5 minutes', '1 minute')",
     F.window(F.col("ts"), "10 minutes", "5 minutes", "1 minute")),
    ("window(ts, INTERVAL 10 MINUTES)", F.window(F.col("ts"), "10 minutes")),
    ("session_window(ts, '30 seconds')", F.session_window(F.col("ts"), "30 seconds")),
    ("round(x, 2)", F.round(F.col("x"), 2)),
    ("round(x)", F.round(F.col("x"))),
    ("substring(s, 2, 3)", F.substring(F.col("s"), 2, 3)),
    ("instr(s, 'b')", F.instr(F.col("s"), "b")),
    ("lpad(s, 5, '0')", F.lpad(F.col("s"), 5, "0")),
    ("element_at(a, 1)", F.element_at(F.col("a"), 1)),
    ("array_contains(a, 'x')", F.array_contains(F.col("a"), "x")),
    ("coalesce(a, b, 0)", F.coalesce(F.col("a"), F.col("b"), F.lit(0))),
    ("upper(s)", F.upper(F.col("s"))),
    ("current_timestamp()", F.current_timestamp()),
    ("current_timestamp", F.current_timestamp()),
    ("current_date()", F.current_date()),
    ("count(*)", F.count("*")),
    ("count(1)", F.count(F.lit(1))),
    ("count(x)", F.count(F.col("x"))),
    ("count(DISTINCT x)", F.count_distinct(F.col("x"))),
    ("count(DISTINCT x, y)", F.count_distinct(F.col("x"), F.col("y"))),
    ("sum(x)", F.sum(F.col("x"))),
    ("sum(DISTINCT x)", F.sum_distinct(F.col("x"))),
    ("avg(x)", F.avg(F.col("x"))),
    ("mean(x)", F.mean(F.col("x"))),
    ("MIN(x)", F.min(F.col("x"))),
    ("max(x)", F.max(F.col("x"))),
    ("first(x)", F.first(F.col("x"))),
    ("first(x, true)", F.first(F.col("x"), ignorenulls=True)),
    ("first(x) IGNORE NULLS", F.first(F.col("x"), ignorenulls=True)),
    ("last(x)", F.last(F.col("x"))),
    ("collect_list(x)", F.collect_list(F.col("x"))),
    ("collect_set(x)", F.collect_set(F.col("x"))),
    ("approx_count_distinct(x)", F.approx_count_distinct(F.col("x"))),
    ("a BETWEEN 1 AND 3", F.col("a").between(1, 3)),
    ("struct(a, b)", F.struct(F.col("a"), F.col("b"))),
])
def test_sql_call_builds_the_same_node_as_the_python_function(sql: str, built: Any) -> None:
    assert parse_expression(sql) == built.expr


# One SQL call for each function that both sql/functions.py and the engine know.
SAMPLE_CALLS = {
    "abs": "abs(x)", "array": "array(x, x)", "array_contains": "array_contains(arr, 1)",
    "base64": "base64(s)", "ceil": "ceil(x)", "coalesce": "coalesce(x, 1)",
    "concat": "concat(s, s)", "concat_ws": "concat_ws(',', s, s)",
    "current_date": "current_date()", "current_timestamp": "current_timestamp()",
    "date_add": "date_add(d, 1)", "date_format": "date_format(ts, 'yyyy')",
    "date_trunc": "date_trunc('day', ts)", "datediff": "datediff(d, d)",
    "dayofmonth": "dayofmonth(d)", "dayofweek": "dayofweek(d)",
    "element_at": "element_at(arr, 1)", "exp": "exp(x)", "floor": "floor(x)",
    "from_json": "from_json(j, 'a INT')", "from_unixtime": "from_unixtime(x)",
    "get_json_object": "get_json_object(j, '$.a')", "greatest": "greatest(x, 1)",
    "hash": "hash(s)", "hour": "hour(ts)", "initcap": "initcap(s)", "instr": "instr(s, 'a')",
    "isnan": "isnan(x)", "least": "least(x, 1)", "length": "length(s)", "log": "log(x)",
    "lower": "lower(s)", "lpad": "lpad(s, 3, '*')", "ltrim": "ltrim(s)", "md5": "md5(s)",
    "minute": "minute(ts)", "month": "month(d)", "nullif": "nullif(x, 1)",
    "regexp_extract": "regexp_extract(s, '(a)', 1)",
    "regexp_replace": "regexp_replace(s, 'a', 'b')", "reverse": "reverse(s)",
    "round": "round(x, 1)", "rpad": "rpad(s, 3, '*')", "rtrim": "rtrim(s)",
    "second": "second(ts)",
    "size": "size(arr)", "split": "split(s, 'a')", "sqrt": "sqrt(x)",
    "struct": "struct(x, s)", "substring": "substring(s, 1, 2)",
    "timestamp_millis": "timestamp_millis(x)", "timestamp_seconds": "timestamp_seconds(x)",
    "to_date": "to_date(s)", "to_json": "to_json(struct(x))", "to_timestamp": "to_timestamp(s)",
    "trim": "trim(s)", "unix_timestamp": "unix_timestamp(ts)", "upper": "upper(s)",
    "window": "window(ts, '1 minute')", "window_time": "window_time(window(ts, '1 minute'))",
    "year": "year(d)",
    "crc32": "crc32(s)", "sha1": "sha1(s)", "sha2": "sha2(s, 256)", "nvl": "nvl(x, 1)",
    "ifnull": "ifnull(x, 1)", "map_keys": "map_keys(map(s, x))",
    "map_values": "map_values(map(s, x))", "explode": "explode(arr)",
    "explode_outer": "explode_outer(arr)", "posexplode": "posexplode(arr)",
    "posexplode_outer": "posexplode_outer(arr)", "json_tuple": "json_tuple(j, 'a', 'b')",
}
# Dates and times (engine/datetime_functions.py).
SAMPLE_CALLS.update({
    "add_months": "add_months(d, 1)", "date_sub": "date_sub(d, 1)",
    "date_diff": "date_diff(d, d)", "weekday": "weekday(d)", "dayname": "dayname(d)",
    "monthname": "monthname(d)", "last_day": "last_day(d)",
    "next_day": "next_day(d, 'Mon')", "trunc": "trunc(d, 'year')",
    "months_between": "months_between(ts, d)", "make_date": "make_date(x, 1, 1)",
    "make_timestamp": "make_timestamp(x, 1, 1, 0, 0, 1.5)", "unix_seconds": "unix_seconds(ts)",
    "unix_millis": "unix_millis(ts)", "unix_micros": "unix_micros(ts)",
    "unix_date": "unix_date(d)", "date_from_unix_date": "date_from_unix_date(x)",
    "to_unix_timestamp": "to_unix_timestamp(ts)",
    "from_utc_timestamp": "from_utc_timestamp(ts, 'Europe/Paris')",
    "to_utc_timestamp": "to_utc_timestamp(ts, 'Europe/Paris')",
    "date_part": "date_part('YEAR', ts)", "dayofyear": "dayofyear(d)",
    "weekofyear": "weekofyear(d)", "quarter": "quarter(d)", "day": "day(d)",
    "timestamp_micros": "timestamp_micros(x)",
})
# Arrays, maps and higher-order functions (engine/collection_functions.py).
SAMPLE_CALLS.update({
    "array_append": "array_append(arr, 1)", "array_prepend": "array_prepend(arr, 1)",
    "array_insert": "array_insert(arr, 1, 5)", "array_compact": "array_compact(arr)",
    "array_distinct": "array_distinct(arr)", "array_except": "array_except(arr, arr)",
    "array_intersect": "array_intersect(arr, arr)", "array_union": "array_union(arr, arr)",
    "array_join": "array_join(arr, ',')", "array_max": "array_max(arr)",
    "array_min": "array_min(arr)", "array_position": "array_position(arr, 1)",
    "array_remove": "array_remove(arr, 1)", "array_repeat": "array_repeat(x, 2)",
    "array_size": "array_size(arr)", "array_sort": "array_sort(arr)",
    "sort_array": "sort_array(arr)", "arrays_overlap": "arrays_overlap(arr, arr)",
    "arrays_zip": "arrays_zip(arr, arr)", "slice": "slice(arr, 1, 2)",
    "flatten": "flatten(array(arr, arr))", "sequence": "sequence(x, 5)",
    "shuffle": "shuffle(arr)", "get": "get(arr, 0)", "try_element_at": "try_element_at(arr, 1)",
    "cardinality": "cardinality(arr)", "transform": "transform(arr, v -> v + x)",
    "filter": "filter(arr, (v, i) -> i > 0)", "exists": "exists(arr, v -> v > 1)",
    "forall": "forall(arr, v -> v > 1)", "aggregate": "aggregate(arr, x, (a, v) -> a + v)",
    "reduce": "reduce(arr, x, (a, v) -> a + v, a -> a * 2)",
    "zip_with": "zip_with(arr, arr, (a, b) -> a * b)",
    "map_filter": "map_filter(map(s, x), (k, v) -> v > 0)",
    "transform_keys": "transform_keys(map(s, x), (k, v) -> upper(k))",
    "transform_values": "transform_values(map(s, x), (k, v) -> v + 1)",
    "map_zip_with": "map_zip_with(map(s, x), map(s, x), (k, a, b) -> a + b)",
    "map_concat": "map_concat(map(s, x), map('k', 1))", "map_entries": "map_entries(map(s, x))",
    "map_from_arrays": "map_from_arrays(arr, arr)",
    "map_from_entries": "map_from_entries(arrays_zip(arr, arr))",
    "map_contains_key": "map_contains_key(map(s, x), 'k')", "str_to_map": "str_to_map(s)",
    "named_struct": "named_struct('a', x, 'b', s)",
    "inline": "inline(arrays_zip(arr, arr))", "inline_outer": "inline_outer(arrays_zip(arr, arr))",
    "stack": "stack(2, x, x)",
})

# Math, string and misc functions (engine/math_functions.py, engine/string_functions.py).
SAMPLE_CALLS.update({
    "acos": "acos(x)", "acosh": "acosh(x)", "asin": "asin(x)", "asinh": "asinh(x)",
    "atan": "atan(x)", "atan2": "atan2(x, 1)", "atanh": "atanh(x)", "bin": "bin(x)",
    "bit_count": "bit_count(x)", "bit_get": "bit_get(x, 1)", "bround": "bround(x, 1)",
    "cbrt": "cbrt(x)", "conv": "conv(s, 16, 10)", "cos": "cos(x)", "cosh": "cosh(x)",
    "cot": "cot(x)", "csc": "csc(x)", "degrees": "degrees(x)", "e": "e()", "expm1": "expm1(x)",
    "factorial": "factorial(x)", "getbit": "getbit(x, 1)", "hex": "hex(x)",
    "hypot": "hypot(x, 1)", "ln": "ln(x)", "log10": "log10(x)", "log1p": "log1p(x)",
    "log2": "log2(x)", "nanvl": "nanvl(x, 1.0)", "negative": "negative(x)", "pi": "pi()",
    "pmod": "pmod(x, 3)", "positive": "positive(x)", "radians": "radians(x)",
    "rint": "rint(x)", "sec": "sec(x)", "shiftleft": "shiftleft(x, 1)",
    "shiftright": "shiftright(x, 1)", "shiftrightunsigned": "shiftrightunsigned(x, 1)",
    "sign": "sign(x)", "signum": "signum(x)", "sin": "sin(x)", "sinh": "sinh(x)",
    "tan": "tan(x)", "tanh": "tanh(x)", "try_add": "try_add(x, 1)",
    "try_divide": "try_divide(x, 2)", "try_mod": "try_mod(x, 2)",
    "try_multiply": "try_multiply(x, 2)", "try_subtract": "try_subtract(x, 1)",
    "unhex": "unhex(s)", "width_bucket": "width_bucket(x, 0, 10, 5)",
    "assert_true": "assert_true(x > 0)", "equal_null": "equal_null(x, 1)",
    "input_file_name": "input_file_name()",
    "monotonically_increasing_id": "monotonically_increasing_id()",
    "nullifzero": "nullifzero(x)", "nvl2": "nvl2(x, 1, 2)",
    "raise_error": "raise_error('boom')", "rand": "rand(1)", "randn": "randn(1)",
    "sha": "sha(s)", "spark_partition_id": "spark_partition_id()", "typeof": "typeof(x)",
    "uuid": "uuid()", "xxhash64": "xxhash64(x, s)", "zeroifnull": "zeroifnull(x)",
    "ascii": "ascii(s)", "bit_length": "bit_length(s)", "btrim": "btrim(s)", "char": "char(x)",
    "chr": "chr(x)", "contains": "contains(s, 'a')",
    "decode": "decode(encode(s, 'UTF-8'), 'UTF-8')", "elt": "elt(x, s, 'b')",
    "encode": "encode(s, 'UTF-8')", "endswith": "endswith(s, 'a')",
    "find_in_set": "find_in_set(s, 'a,b')", "format_number": "format_number(x, 2)",
    "format_string": "format_string('%s', s)", "ilike": "ilike(s, 'a%')", "left": "left(s, 2)",
    "levenshtein": "levenshtein(s, 'a')", "like": "like(s, 'a%')", "locate": "locate('a', s)",
    "mask": "mask(s)", "octet_length": "octet_length(s)", "overlay": "overlay(s, 'x', 2)",
    "parse_url": "parse_url(s, 'HOST')", "position": "position('a', s)",
    "printf": "printf('%s', s)", "quote": "quote(s)", "regexp": "regexp(s, 'a+')",
    "regexp_count": "regexp_count(s, 'a')",
    "regexp_extract_all": "regexp_extract_all(s, '(a)')",
    "regexp_instr": "regexp_instr(s, 'a')", "regexp_like": "regexp_like(s, 'a')",
    "regexp_substr": "regexp_substr(s, 'a')", "repeat": "repeat(s, 2)", "right": "right(s, 2)",
    "rlike": "rlike(s, 'a')", "soundex": "soundex(s)", "split_part": "split_part(s, ',', 1)",
    "startswith": "startswith(s, 'a')", "substring_index": "substring_index(s, ',', 1)",
    "translate": "translate(s, 'a', 'b')", "unbase64": "unbase64(s)",
    "url_decode": "url_decode(s)", "url_encode": "url_encode(s)",
    "replace": "replace(s, 'a', 'b')", "substr": "substr(s, 2)", "char_length": "char_length(s)",
    "character_length": "character_length(s)", "lcase": "lcase(s)", "ucase": "ucase(s)",
    "try_url_decode": "try_url_decode(s)", "is_valid_utf8": "is_valid_utf8(s)",
    "make_valid_utf8": "make_valid_utf8(s)", "validate_utf8": "validate_utf8(s)",
    "try_validate_utf8": "try_validate_utf8(s)", "to_base32": "to_base32(s)",
    "from_base32": "from_base32(s)", "try_parse_url": "try_parse_url(s, 'HOST')",
    "to_binary": "to_binary(s, 'utf-8')", "try_to_binary": "try_to_binary(s)",
    "jaro_winkler_similarity": "jaro_winkler_similarity(s, 'a')", "randstr": "randstr(3, 1)",
    "current_catalog": "current_catalog()", "current_database": "current_database()",
    "current_schema": "current_schema()", "current_user": "current_user()", "user": "user()",
    "session_user": "session_user()", "version": "version()",
    "input_file_block_length": "input_file_block_length()",
    "input_file_block_start": "input_file_block_start()", "uniform": "uniform(1, 5, 0)",
    "ceiling": "ceiling(x)",
    "to_number": "to_number(s, '999')", "try_to_number": "try_to_number(s, '999')",
    "to_char": "to_char(x, '999')", "to_varchar": "to_varchar(x, '999')",
    "sentences": "sentences(s)",
})

def test_sample_calls_cover_every_function_of_both_the_api_and_the_engine() -> None:
    shared = {n for n in F.__all__ if n in function_table()}
    assert shared - set(SAMPLE_CALLS) == set()


@pytest.mark.parametrize("name", sorted(SAMPLE_CALLS))
def test_every_shared_function_parses_and_compiles(name: str) -> None:
    node = parse_expression(SAMPLE_CALLS[name])
    assert isinstance(node, FunctionCall)
    assert node.name == {"substr": "substring"}.get(name, name)  # SQL's substr is substring
    schema = pl.Schema({"x": pl.Int64, "s": pl.String, "d": pl.Date, "j": pl.String,
                        "arr": pl.List(pl.Int64), "ts": pl.Datetime("us", "UTC")})
    compiled = compile_expr(node, CompileContext(schema, batch_timestamp_us=0))
    pl.LazyFrame(schema=schema).select(compiled).collect()


def test_engine_only_functions_keep_their_spark_name() -> None:
    assert parse_expression("nvl(a, b)") == FunctionCall("nvl", (ColumnRef("a"), ColumnRef("b")))
    assert parse_expression("UCASE(s)") == FunctionCall("ucase", (ColumnRef("s"),))
    assert parse_expression("stddev_samp(x)") == AggregateCall("stddev_samp", (ColumnRef("x"),))


def test_substr_without_length_reads_to_the_end() -> None:
    assert parse_expression("substr(s, 2)") == FunctionCall(
        "substring", (ColumnRef("s"),), (("pos", 2), ("len", None)))


@pytest.mark.parametrize(("sql", "node"), [
    ("a", ColumnRef("a")),
    ("`my col`", ColumnRef("my col")),
    ("a.b", ColumnRef("a.b")),
    ("`a`.`b`", ColumnRef("a.b")),
    ("a.b.c", ColumnRef("a.b.c")),
    ("`a.b`", ColumnRef("`a.b`")),
    ("`a.b`.c", GetField(ColumnRef("`a.b`"), "c")),
    ("m['k']", GetItem(ColumnRef("m"), Literal("k"))),
    ("arr[0]", GetItem(ColumnRef("arr"), Literal(0))),
    ("s.arr[1].f", GetField(GetItem(ColumnRef("s.arr"), Literal(1)), "f")),
    ("*", Star()),
    ("t.*", Star("t")),
])
def test_column_references(sql: str, node: Expression) -> None:
    assert parse_expression(sql) == node


@pytest.mark.parametrize(("sql", "node"), [
    ("'it''s'", Literal("it's")),  # PySpark 4.3: a doubled quote is one quote
    ("'it' 's'", Literal("its")),  # adjacent literals are concatenated
    ("'it\\'s'", Literal("it's")),
    ("'a\\tb'", Literal("a\tb")),
    ('"double"', Literal("double")),
    ("'a' 'b'", Literal("ab")),
    ("42", Literal(42)),
    ("-42", Literal(-42)),
    ("3000000000", Literal(3000000000)),
    ("1.5", Literal(1.5)),
    ("1e3", Literal(1000.0)),
    ("true", Literal(True)),
    ("FALSE", Literal(False)),
    ("NULL", Literal(None)),
    ("X'0AFF'", Literal(b"\n\xff", T.BinaryType())),
    ("DATE '2024-03-15'", Literal(date(2024, 3, 15), T.DateType())),
    # Without an offset: wall-clock time, read in the session zone when compiled.
    ("TIMESTAMP '2024-03-15 10:11:12.5'",
     Literal(datetime(2024, 3, 15, 10, 11, 12, 500000), T.TimestampType())),
    ("TIMESTAMP '2024-03-15 10:11:12+02:00'",
     Literal(datetime(2024, 3, 15, 8, 11, 12, tzinfo=UTC), T.TimestampType())),
    ("INTERVAL 90 SECONDS", Literal(timedelta(seconds=90))),
])
def test_literals(sql: str, node: Literal) -> None:
    parsed = parse_expression(sql)
    assert parsed == node
    assert type(parsed.value) is type(node.value)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("type_text", "expected"), [
    ("STRING", T.StringType()), ("VARCHAR(10)", T.StringType()),
    ("BIGINT", T.LongType()), ("LONG", T.LongType()), ("INT", T.IntegerType()),
    ("INTEGER", T.IntegerType()), ("SMALLINT", T.ShortType()), ("TINYINT", T.ByteType()),
    ("DOUBLE", T.DoubleType()), ("FLOAT", T.FloatType()), ("BOOLEAN", T.BooleanType()),
    ("BINARY", T.BinaryType()), ("DATE", T.DateType()), ("TIMESTAMP", T.TimestampType()),
    ("TIMESTAMP_NTZ", T.TimestampNTZType()), ("DECIMAL(10,2)", T.DecimalType(10, 2)),
    ("DECIMAL", T.DecimalType(10, 0)), ("ARRAY<STRING>", T.ArrayType(T.StringType())),
    ("MAP<STRING, BIGINT>", T.MapType(T.StringType(), T.LongType())),
    ("STRUCT<a: INT, b: ARRAY<DOUBLE>>", T.StructType([
        T.StructField("a", T.IntegerType()), T.StructField("b", T.ArrayType(T.DoubleType()))])),
])
def test_cast_maps_spark_type_names(type_text: str, expected: T.DataType) -> None:
    assert parse_expression(f"CAST(v AS {type_text})") == Cast(ColumnRef("v"), expected)


def test_operators_build_the_nodes_column_methods_build() -> None:
    a, b = F.col("a"), F.col("b")
    assert parse_expression("a + b * 2 - 1") == ((a + b * 2) - 1).expr
    assert parse_expression("a / b % 3") == ((a / b) % 3).expr
    assert parse_expression("-a") == (-a).expr
    assert parse_expression("a = 1 AND b <> 2 OR NOT a >= b") == (
        ((a == 1) & (b != 2)) | ~(a >= b)).expr
    assert parse_expression("a == 1") == (a == 1).expr
    assert parse_expression("a != 1") == (a != 1).expr
    assert parse_expression("a <=> b") == a.eqNullSafe(b).expr
    assert parse_expression("a IS NULL") == a.isNull().expr
    assert parse_expression("a IS NOT NULL") == a.isNotNull().expr
    assert parse_expression("a IN (1, 2)") == a.isin(1, 2).expr
    assert parse_expression("a NOT IN (1, 2)") == (~a.isin(1, 2)).expr
    assert parse_expression("a LIKE 'x%'") == a.like("x%").expr
    assert parse_expression("a NOT LIKE 'x%'") == (~a.like("x%")).expr
    assert parse_expression("a ILIKE 'x%'") == a.ilike("x%").expr
    assert parse_expression("a RLIKE '^x'") == a.rlike("^x").expr
    assert parse_expression("a & b") == a.bitwiseAND(b).expr


def test_concat_operator_is_one_concat_call() -> None:
    assert parse_expression("a || b || 'c'") == FunctionCall(
        "concat", (ColumnRef("a"), ColumnRef("b"), Literal("c")))


def test_if_and_case_become_case_when() -> None:
    cond = BinaryOp("gt", ColumnRef("a"), Literal(1))
    assert parse_expression("IF(a > 1, 'x', 'y')") == CaseWhen(
        ((cond, Literal("x")),), Literal("y"))
    assert parse_expression("CASE a WHEN 1 THEN 'one' WHEN 2 THEN 'two' END") == CaseWhen((
        (BinaryOp("eq", ColumnRef("a"), Literal(1)), Literal("one")),
        (BinaryOp("eq", ColumnRef("a"), Literal(2)), Literal("two")),
    ))


def test_alias_names_the_column() -> None:
    parsed = parse_expression("upper(s) AS `Shout Out`")
    assert parsed == Alias(FunctionCall("upper", (ColumnRef("s"),)), "Shout Out")
    assert parse_expression("a b") == Alias(ColumnRef("a"), "b")


def test_like_escape_clause_is_rewritten_to_backslash() -> None:
    parsed = parse_expression("s LIKE '50!%' ESCAPE '!'")
    assert parsed == Like(ColumnRef("s"), "50\\%", "like")


def test_spark_display_names() -> None:
    assert parse_expression("a + 1").display_name() == "(a + 1)"
    assert parse_expression("count(*)").display_name() == "count(1)"
    assert parse_expression("upper(name)").display_name() == "upper(name)"
    assert parse_expression("x AS y").display_name() == "y"
    assert parse_expression("a IS NOT NULL").display_name() == "(a IS NOT NULL)"


# ---- errors --------------------------------------------------------------------------
@pytest.mark.parametrize(("sql", "fragment"), [
    ("a +", "Syntax error at or near '+'"),
    ("a, b", "Syntax error at or near ','"),
    ("", "Syntax error"),
    ("'open", "unclosed quote"),
    ("CAST(a AS)", "Syntax error"),
])
def test_syntax_errors_raise_parse_exception_quoting_the_sql(sql: str, fragment: str) -> None:
    with pytest.raises(ParseException) as info:
        parse_expression(sql)
    assert fragment in str(info.value)
    assert repr(sql) in str(info.value)
    assert info.value.getErrorClass() == "PARSE_SYNTAX_ERROR"


@pytest.mark.parametrize(("sql", "fragment"), [
    ("sum(x) OVER w", "Named windows"),
    ("SELECT a FROM t", "SELECT statements"),
    ("a; b", "Several statements"),
    ("a IN (SELECT 1)", "IN with a subquery"),
    ("no_such_fn(a)", "Cannot resolve function `no_such_fn`"),
    ("typed_null()", "Cannot resolve function `typed_null`"),
    ("split(s, p)", "argument `pattern` of split() must be a literal"),
    ("round(x, 'two')", "argument `scale` of round() must be a literal of type int"),
    ("substring(s)", "needs the argument `pos`"),
    ("upper(a, b)", "takes at most 1 arguments"),
    ("avg(DISTINCT x)", "avg(DISTINCT ...) is not supported"),
    ("a LIKE b", "LIKE needs a string literal pattern"),
    ("CAST(a AS INTERVAL DAY)", "data type INTERVAL DAY"),
    ("TIMESTAMP 'noon'", "Cannot parse the TIMESTAMP value 'noon'"),
    ("window(ts, '5 parsecs')", "Unknown interval unit 'parsecs'"),
    ("window(ts, '1 minute', '5 minutes')", "slide duration"),
])
def test_unsupported_constructs_raise_parse_exception_naming_them(sql: str, fragment: str) -> None:
    with pytest.raises(ParseException) as info:
        parse_expression(sql)
    assert fragment in str(info.value)
    assert repr(sql) in str(info.value)


def test_parse_exception_is_an_analysis_exception_and_value_error() -> None:
    with pytest.raises(AnalysisException):
        parse_expression("a +")
    with pytest.raises(ValueError, match="no_such_fn"):
        parse_expression("no_such_fn(1)")


# ---- values, compared with Spark's answers -------------------------------------------
def test_cast_binary_to_string_decodes_utf8() -> None:
    assert evaluate("CAST(value AS STRING)", {"value": [b"hello", None]}) == ["hello", None]


@pytest.mark.parametrize(("sql", "expected"), [
    ("CAST('12' AS INT)", 12),
    ("CAST(' 7 ' AS BIGINT)", 7),
    ("CAST('abc' AS INT)", None),
    ("CAST(3.7 AS INT)", 3),
    ("CAST(-3.7 AS INT)", -3),
    ("CAST(true AS STRING)", "true"),
    ("CAST('true' AS BOOLEAN)", True),
    ("CAST('no' AS BOOLEAN)", False),
    ("CAST('2.5' AS DOUBLE)", 2.5),
    ("CAST(5 AS STRING)", "5"),
    ("CAST('2024-03-15' AS DATE)", date(2024, 3, 15)),
    ("CAST('2024-03-15 10:11:12' AS TIMESTAMP)", datetime(2024, 3, 15, 10, 11, 12, tzinfo=UTC)),
    ("CAST(TIMESTAMP '2024-03-15 10:11:12' AS STRING)", "2024-03-15 10:11:12"),
    ("CAST(TIMESTAMP '1970-01-01 00:01:40' AS BIGINT)", 100),
])
def test_cast_values(sql: str, expected: Any) -> None:
    assert one(sql) == expected


@pytest.mark.parametrize(("sql", "expected"), [
    ("7 / 2", 3.5),
    ("1 / 0", None),
    ("7 % 0", None),
    ("7 % 3", 1),
    ("-7 % 3", -1),
    ("7 DIV 2", 3),
    ("-7 DIV 2", -3),
    ("7 DIV 0", None),
    ("2 + 3 * 4", 14),
    ("-(2 - 5)", 3),
    ("power(2, 10)", 1024.0),
    ("5 & 3", 1),
    ("5 | 3", 7),
    ("5 ^ 3", 6),
])
def test_arithmetic_values(sql: str, expected: Any) -> None:
    assert one(sql) == expected


@pytest.mark.parametrize(("sql", "expected"), [
    ("'abc' LIKE 'a%'", True),
    ("'abc' LIKE 'a_'", False),
    ("'abc' LIKE 'a_c'", True),
    ("'a.c' LIKE 'a.c'", True),
    ("'abc' LIKE 'a.c'", False),
    ("'50%' LIKE '50!%' ESCAPE '!'", True),
    ("'500' LIKE '50!%' ESCAPE '!'", False),
    ("'ABC' ILIKE 'a%'", True),
    ("'ABC' LIKE 'a%'", False),
    ("'xabcx' RLIKE 'ab'", True),
    ("'xabcx' RLIKE '^ab'", False),
    ("'abc' NOT LIKE 'a%'", False),
    ("NULL LIKE 'a%'", None),
])
def test_pattern_matching_values(sql: str, expected: Any) -> None:
    assert one(sql) == expected


@pytest.mark.parametrize(("sql", "expected"), [
    ("NULL = 1", None),
    ("NULL <=> NULL", True),
    ("1 <=> NULL", False),
    ("NULL AND false", False),
    ("NULL OR true", True),
    ("NULL AND true", None),
    ("NOT NULL", None),
    ("2 BETWEEN 1 AND 3", True),
    ("4 BETWEEN 1 AND 3", False),
    ("2 NOT BETWEEN 1 AND 3", False),
    ("3 IN (1, 2, 3)", True),
    ("4 IN (1, 2, 3)", False),
    ("4 NOT IN (1, 2, 3)", True),
    ("NULL IS NULL", True),
    ("1 IS NOT NULL", True),
    ("'b' > 'a'", True),
])
def test_predicate_values(sql: str, expected: Any) -> None:
    assert one(sql) == expected


def test_is_true_treats_null_as_false() -> None:
    assert evaluate("b IS TRUE", {"b": [True, False, None]}) == [True, False, False]
    assert evaluate("b IS NOT TRUE", {"b": [True, False, None]}) == [False, True, True]


def test_in_with_a_null_input_is_null() -> None:
    assert evaluate("a IN (1, 2)", {"a": [1, 5, None]}) == [True, False, None]


def test_case_when_searched_and_simple_forms() -> None:
    data = {"n": [1, 2, 3, None]}
    assert evaluate("CASE WHEN n = 1 THEN 'one' WHEN n = 2 THEN 'two' ELSE 'many' END",
                    data) == ["one", "two", "many", "many"]
    assert evaluate("CASE n WHEN 1 THEN 'one' WHEN 2 THEN 'two' END",
                    data) == ["one", "two", None, None]


def test_if_coalesce_and_nvl() -> None:
    data = {"a": [1, None, 3], "b": [10, 20, None]}
    assert evaluate("IF(a > 1, 'big', 'small')", data) == ["small", "small", "big"]
    assert evaluate("coalesce(a, b, -1)", data) == [1, 20, 3]
    assert evaluate("nvl(a, b)", data) == [1, 20, 3]
    assert evaluate("ifnull(b, 0)", data) == [10, 20, 0]
    assert evaluate("nullif(a, 1)", data) == [None, None, 3]


def test_concat_operator_is_null_when_any_input_is_null() -> None:
    data = {"a": ["x", None], "b": ["y", "z"]}
    assert evaluate("a || '-' || b", data) == ["x-y", None]
    assert evaluate("concat_ws('-', a, b)", data) == ["x-y", "z"]


@pytest.mark.parametrize(("sql", "expected"), [
    ("upper('abc')", "ABC"),
    ("length('héllo')", 5),
    ("substring('hello', 2, 3)", "ell"),
    ("substr('hello', -3)", "llo"),
    ("substr('hello', 2)", "ello"),
    ("split('a,b,,c', ',')", ["a", "b", "", "c"]),
    ("split('a1b22c', '[0-9]+')", ["a", "b", "c"]),
    ("regexp_replace('a1b22', '[0-9]+', '#')", "a#b#"),
    ("regexp_extract('key=val', '(\\\\w+)=(\\\\w+)', 2)", "val"),
    ("regexp_extract('nothing', '(\\\\d+)', 1)", ""),
    ("instr('hello', 'l')", 3),
    ("instr('hello', 'z')", 0),
    ("lpad('7', 3, '0')", "007"),
    ("trim('  a  ')", "a"),
    ("initcap('hello world')", "Hello World"),
    ("reverse('abc')", "cba"),
    ("contains('hello', 'ell')", True),
    ("get_json_object('{\"a\": {\"b\": 3}}', '$.a.b')", "3"),
    ("round(2.5)", 3.0),
    ("round(-2.5)", -3.0),
    ("round(3.14159, 2)", 3.14),
    ("abs(-4)", 4),
    ("greatest(1, 5, 3)", 5),
    ("least(4, 2, 9)", 2),
    ("size(array(1, 2, 3))", 3),
    ("array_contains(array(1, 2), 2)", True),
    ("element_at(array(10, 20, 30), -1)", 30),
    ("log(10, 100)", 2.0),
    ("sqrt(16)", 4.0),
])
def test_scalar_function_values(sql: str, expected: Any) -> None:
    assert one(sql) == expected


@pytest.mark.parametrize(("sql", "expected"), [
    ("year(DATE '2024-03-15')", 2024),
    ("month(DATE '2024-03-15')", 3),
    ("dayofmonth(DATE '2024-03-15')", 15),
    ("dayofweek(DATE '2024-03-17')", 1),  # a Sunday
    ("EXTRACT(YEAR FROM DATE '2024-03-15')", 2024),
    ("hour(TIMESTAMP '2024-03-15 10:11:12')", 10),
    ("date_format(TIMESTAMP '2024-03-15 10:11:12', 'yyyy/MM/dd HH:mm')", "2024/03/15 10:11"),
    ("to_timestamp('2024-03-15 10:11:12')", datetime(2024, 3, 15, 10, 11, 12, tzinfo=UTC)),
    ("to_timestamp('15/03/2024', 'dd/MM/yyyy')", datetime(2024, 3, 15, tzinfo=UTC)),
    ("to_date('2024-03-15')", date(2024, 3, 15)),
    ("date_add(DATE '2024-02-28', 2)", date(2024, 3, 1)),
    ("datediff(DATE '2024-03-01', DATE '2024-02-28')", 2),
    ("date_trunc('hour', TIMESTAMP '2024-03-15 10:11:12')",
     datetime(2024, 3, 15, 10, tzinfo=UTC)),
    ("unix_timestamp(TIMESTAMP '1970-01-01 00:02:00')", 120),
    ("from_unixtime(0)", "1970-01-01 00:00:00"),
    ("current_timestamp()", datetime(1970, 1, 1, tzinfo=UTC)),
    ("TIMESTAMP '2024-03-15 10:00:00' - INTERVAL 90 MINUTES",
     datetime(2024, 3, 15, 8, 30, tzinfo=UTC)),
])
def test_datetime_function_values(sql: str, expected: Any) -> None:
    assert one(sql) == expected


def test_timestamp_literal_compares_with_a_timestamp_column() -> None:
    data = {"ts": [datetime(2024, 1, 1, 9), datetime(2024, 1, 1, 11)]}
    schema = {"ts": pl.Datetime("us", "UTC")}
    assert evaluate("ts > TIMESTAMP '2024-01-01 10:00:00'", data, schema) == [False, True]
    assert evaluate("ts > '2024-01-01 10:00:00'", data, schema) == [False, True]


def test_tumbling_window_groups_timestamps_into_five_minute_buckets() -> None:
    data = {"ts": [datetime(2024, 1, 1, 10, 7, 30)]}
    schema = {"ts": pl.Datetime("us", "UTC")}
    (bucket,) = evaluate("window(ts, '5 minutes')", data, schema)
    assert bucket == {"start": datetime(2024, 1, 1, 10, 5, tzinfo=UTC),
                      "end": datetime(2024, 1, 1, 10, 10, tzinfo=UTC)}


def test_nested_access_on_structs_maps_and_arrays() -> None:
    data = {
        "s": [{"a": 1, "inner": {"b": "x"}}],
        "m": pl.Series([{"k": 5, "j": 6}], dtype=pl.Map(pl.String, pl.Int64)),
        "kv": [[{"key": "k", "value": 5}, {"key": "j", "value": 6}]],  # an array, not a map
        "arr": [[10, 20]],
        "my col": [7],
    }
    assert one("s.a", data) == 1
    assert one("s.inner.b", data) == "x"
    assert one("s['a']", data) == 1
    assert one("m['j']", data) == 6
    assert one("m['missing']", data) is None
    assert one("kv[1].key", data) == "j"
    assert one("kv[1]['value']", data) == 6
    assert one("arr[0]", data) == 10
    assert one("arr[5]", data) is None
    assert one("`my col` + 1", data) == 8


def test_struct_and_named_struct_name_their_fields() -> None:
    data = {"a": [1], "b": ["x"]}
    assert one("struct(a, b AS c)", data) == {"a": 1, "c": "x"}
    assert one("named_struct('p', a, 'q', b)", data) == {"p": 1, "q": "x"}


def test_from_json_with_a_ddl_schema() -> None:
    data = {"j": ['{"a": 1, "b": "x"}', '{"a": 2}']}
    assert evaluate("from_json(j, 'a INT, b STRING')", data) == [
        {"a": 1, "b": "x"}, {"a": 2, "b": None}]


def test_aggregates_over_a_group() -> None:
    data = {"k": ["a", "a", "a", "b"], "x": [1, None, 1, 5]}
    result = aggregate([
        "count(*) AS rows", "count(x) AS non_null", "count(DISTINCT x) AS distinct_x",
        "sum(x) AS total", "avg(x) AS mean", "min(x) AS lo", "max(x) AS hi",
        "collect_list(x) AS xs", "collect_set(x) AS uniq",
        "approx_count_distinct(x) AS approx", "sum(DISTINCT x) AS distinct_total",
    ], data, keys=("k",))
    rows = {r["k"]: r for r in result.to_dicts()}
    assert rows["a"] == {"k": "a", "rows": 3, "non_null": 2, "distinct_x": 1, "total": 2,
                         "mean": 1.0, "lo": 1, "hi": 1, "xs": [1, 1], "uniq": [1],
                         "approx": 1, "distinct_total": 1}
    assert rows["b"]["rows"] == 1
    assert rows["b"]["total"] == 5


def test_first_and_last_respect_ignore_nulls() -> None:
    data = {"x": [None, 2, 3, None]}
    result = aggregate(["first(x) AS f", "first(x, true) AS fi", "last(x) AS l",
                        "last(x) IGNORE NULLS AS li"], data).to_dicts()
    assert result == [{"f": None, "fi": 2, "l": None, "li": 3}]


def test_sum_of_only_nulls_is_null() -> None:
    result = aggregate(["sum(x) AS s", "count(x) AS c"], {"x": [None, None]},)
    assert result.to_dicts() == [{"s": None, "c": 0}]


def test_filter_condition_selects_rows() -> None:
    frame = pl.DataFrame({"a": [1, 2, 3, 4], "s": ["x", "yy", None, "zzz"]})
    ctx = CompileContext(frame.schema, batch_timestamp_us=0)
    condition = compile_expr(parse_expression("a % 2 = 0 AND length(s) > 1"), ctx)
    assert frame.lazy().filter(condition).collect()["a"].to_list() == [2, 4]


def test_parsed_expressions_are_usable_as_columns() -> None:
    column = F.expr("a * 2 AS doubled")
    assert column.expr == Alias(BinaryOp("mul", ColumnRef("a"), Literal(2)), "doubled")
    assert isinstance(parse_expression("NOT a"), UnaryOp)
    assert isinstance(parse_expression("a IN (1)"), In)
