"""PySpark's array and map functions: column names, values and errors as PySpark 4.3 gives
them (every expected value below was read off PySpark 4.3, ANSI mode on unless said)."""

from __future__ import annotations

import pytest

from unbounded.errors import AnalysisException, SparkRuntimeException
from unbounded.sql import Row
from unbounded.sql import functions as F

XS = "xs array<int>, ys array<int>, y int"
# A plain array, one holding NULLs, a NULL array and an empty one.
ROWS = [([1, 2, 3, 2], [2, 5], 10), ([None, 4, None], [4], 20), (None, [1], 30), ([], [], 40)]


@pytest.fixture
def df(spark):
    return spark.createDataFrame(ROWS, XS)


@pytest.fixture
def maps(spark):
    rows = [({"a": 1, "b": 2}, {"b": 20, "c": 30}, ["a", "b"], [1, 2]),
            ({"x": None}, {}, ["z"], [9]), (None, None, None, None)]
    return spark.createDataFrame(
        rows, "m map<string,int>, n map<string,int>, ks array<string>, vs array<int>")


def _one(frame, column):
    """The single output column's name, Spark type and values."""
    out = frame.select(column)
    return out.columns[0], out.schema.fields[0].dataType.simpleString(), \
        [r[0] for r in out.collect()]


@pytest.mark.parametrize(("column", "name", "dtype", "values"), [
    (F.array_append("xs", 9), "array_append(xs, 9)", "array<int>",
     [[1, 2, 3, 2, 9], [None, 4, None, 9], None, [9]]),
    (F.array_append("xs", F.lit(None)), "array_append(xs, NULL)", "array<int>",
     [[1, 2, 3, 2, None], [None, 4, None, None], None, [None]]),
    (F.array_prepend("xs", 9), "array_prepend(xs, 9)", "array<int>",
     [[9, 1, 2, 3, 2], [9, None, 4, None], None, [9]]),
    (F.array_insert("xs", 2, 9), "array_insert(xs, 2, 9)", "array<int>",
     [[1, 9, 2, 3, 2], [None, 9, 4, None], None, [None, 9]]),
    (F.array_insert("xs", -1, 9), "array_insert(xs, -1, 9)", "array<int>",
     [[1, 2, 3, 2, 9], [None, 4, None, 9], None, [9]]),
    (F.array_insert("xs", 6, 9), "array_insert(xs, 6, 9)", "array<int>",
     [[1, 2, 3, 2, None, 9], [None, 4, None, None, None, 9], None,
      [None, None, None, None, None, 9]]),
    (F.array_insert("xs", -6, 9), "array_insert(xs, -6, 9)", "array<int>",
     [[9, None, 1, 2, 3, 2], [9, None, None, None, 4, None], None,
      [9, None, None, None, None, None]]),
    (F.array_compact("xs"), "array_compact(xs)", "array<int>", [[1, 2, 3, 2], [4], None, []]),
    (F.array_distinct("xs"), "array_distinct(xs)", "array<int>",
     [[1, 2, 3], [None, 4], None, []]),
    (F.array_except("xs", "ys"), "array_except(xs, ys)", "array<int>",
     [[1, 3], [None], None, []]),
    (F.array_intersect("xs", "ys"), "array_intersect(xs, ys)", "array<int>",
     [[2], [4], None, []]),
    (F.array_union("xs", "ys"), "array_union(xs, ys)", "array<int>",
     [[1, 2, 3, 5], [None, 4], None, []]),
    (F.array_join("xs", ","), "array_join(xs, ,)", "string", ["1,2,3,2", "4", None, ""]),
    (F.array_join("xs", ",", "N"), "array_join(xs, ,, N)", "string",
     ["1,2,3,2", "N,4,N", None, ""]),
    (F.array_max("xs"), "array_max(xs)", "int", [3, 4, None, None]),
    (F.array_min("xs"), "array_min(xs)", "int", [1, 4, None, None]),
    (F.array_position("xs", 2), "array_position(xs, 2)", "bigint", [2, 0, None, 0]),
    (F.array_remove("xs", 2), "array_remove(xs, 2)", "array<int>",
     [[1, 3], [None, 4, None], None, []]),
    (F.array_repeat("y", 2), "array_repeat(y, 2)", "array<int>",
     [[10, 10], [20, 20], [30, 30], [40, 40]]),
    (F.array_size("xs"), "array_size(xs)", "int", [4, 3, None, 0]),
    (F.cardinality("xs"), "cardinality(xs)", "int", [4, 3, None, 0]),
    (F.sort_array("xs"), "sort_array(xs, true)", "array<int>",
     [[1, 2, 2, 3], [None, None, 4], None, []]),
    (F.sort_array("xs", asc=False), "sort_array(xs, false)", "array<int>",
     [[3, 2, 2, 1], [4, None, None], None, []]),
    (F.arrays_overlap("xs", "ys"), "arrays_overlap(xs, ys)", "boolean",
     [True, True, None, False]),
    (F.slice("xs", 2, 2), "slice(xs, 2, 2)", "array<int>", [[2, 3], [4, None], None, []]),
    (F.slice("xs", -2, 2), "slice(xs, -2, 2)", "array<int>", [[3, 2], [4, None], None, []]),
    (F.flatten(F.array("xs", "ys")), "flatten(array(xs, ys))", "array<int>",
     [[1, 2, 3, 2, 2, 5], [None, 4, None, 4], None, []]),
    (F.sequence(F.lit(1), F.lit(10), F.lit(3)), "sequence(1, 10, 3)", "array<int>",
     [[1, 4, 7, 10]] * 4),
    (F.get("xs", 1), "get(xs, 1)", "int", [2, 4, None, None]),
    (F.get("xs", 5), "get(xs, 5)", "int", [None, None, None, None]),
    (F.try_element_at("xs", F.lit(5)), "try_element_at(xs, 5)", "int",
     [None, None, None, None]),
])
def test_array_function_matches_pyspark(df, column, name, dtype, values):
    assert _one(df, column) == (name, dtype, values)


def test_array_sort_puts_nulls_last_and_shows_spark_default_comparator(df):
    name, dtype, values = _one(df, F.array_sort("xs"))
    assert name.startswith("array_sort(xs, lambdafunction((IF(((namedlambdavariable() IS "
                           "NULL) AND (namedlambdavariable() IS NULL)), 0, ")
    assert name.endswith(", namedlambdavariable(), namedlambdavariable()))")
    assert (dtype, values) == ("array<int>", [[1, 2, 2, 3], [4, None, None], None, []])


def test_arrays_zip_pads_the_shorter_array_with_nulls(df):
    name, dtype, values = _one(df, F.arrays_zip("xs", "ys"))
    assert (name, dtype) == ("arrays_zip(xs, ys)", "array<struct<xs:int,ys:int>>")
    assert values == [
        [Row(xs=1, ys=2), Row(xs=2, ys=5), Row(xs=3, ys=None), Row(xs=2, ys=None)],
        [Row(xs=None, ys=4), Row(xs=4, ys=None), Row(xs=None, ys=None)], None, []]


def test_shuffle_is_a_permutation_fixed_by_its_seed(df):
    first = _one(df, F.shuffle("xs", 7))[2]
    assert first == _one(df, F.shuffle("xs", 7))[2]
    assert [sorted(v, key=str) if v is not None else None for v in first] == \
        [[1, 2, 2, 3], [4, None, None], None, []]
    assert _one(df, F.shuffle("xs"))[0] == "shuffle(xs)"


def test_array_insert_at_index_zero_fails(df):
    with pytest.raises(SparkRuntimeException, match=r"\[INVALID_INDEX_OF_ZERO\]"):
        df.select(F.array_insert("xs", 0, 9)).collect()


def test_element_at_outside_the_array_fails_under_ansi_but_try_element_at_is_null(df):
    with pytest.raises(SparkRuntimeException) as info:
        df.select(F.element_at("xs", 5)).collect()
    assert str(info.value).startswith(
        "[INVALID_ARRAY_INDEX_IN_ELEMENT_AT] The index 5 is out of bounds. The array has 4 "
        "elements. Use `try_element_at` to tolerate accessing element at invalid index and "
        "return NULL instead.")
    with pytest.raises(SparkRuntimeException, match=r"\[INVALID_INDEX_OF_ZERO\]"):
        df.select(F.element_at("xs", 0)).collect()


def test_sequence_needs_integral_bounds(df):
    with pytest.raises(AnalysisException, match="SEQUENCE_WRONG_INPUT_TYPES"):
        df.select(F.sequence(F.lit(1), F.col("y") / 10))


# ---- maps ------------------------------------------------------------------------------
@pytest.mark.parametrize(("column", "name", "dtype", "values"), [
    (F.map_concat("m", F.create_map(F.lit("q"), F.lit(5))), "map_concat(m, map(q, 5))",
     "map<string,int>", [{"a": 1, "q": 5, "b": 2}, {"x": None, "q": 5}, None]),
    (F.map_entries("m"), "map_entries(m)", "array<struct<key:string,value:int>>",
     [[Row(key="a", value=1), Row(key="b", value=2)], [Row(key="x", value=None)], None]),
    (F.map_from_arrays("ks", "vs"), "map_from_arrays(ks, vs)", "map<string,int>",
     [{"a": 1, "b": 2}, {"z": 9}, None]),
    (F.map_from_entries(F.arrays_zip("ks", "vs")), "map_from_entries(arrays_zip(ks, vs))",
     "map<string,int>", [{"a": 1, "b": 2}, {"z": 9}, None]),
    (F.map_contains_key("m", "a"), "map_contains_key(m, a)", "boolean", [True, False, None]),
    (F.str_to_map(F.lit("a:1,b:2")), "str_to_map(a:1,b:2, ,, :)", "map<string,string>",
     [{"a": "1", "b": "2"}] * 3),
    (F.str_to_map(F.lit("a=1;b=2"), F.lit(";"), F.lit("=")), "str_to_map(a=1;b=2, ;, =)",
     "map<string,string>", [{"a": "1", "b": "2"}] * 3),
    (F.named_struct(F.lit("x"), F.lit(1), F.lit("y"), "m"), "named_struct(x, 1, y, m)",
     "struct<x:int,y:map<string,int>>",
     [Row(x=1, y={"a": 1, "b": 2}), Row(x=1, y={"x": None}), Row(x=1, y=None)]),
    (F.map_keys("m"), "map_keys(m)", "array<string>", [["a", "b"], ["x"], None]),
])
def test_map_function_matches_pyspark(maps, column, name, dtype, values):
    assert _one(maps, column) == (name, dtype, values)


def test_map_concat_with_a_repeated_key_fails(maps):
    with pytest.raises(SparkRuntimeException,
                       match=r"^\[DUPLICATED_MAP_KEY\] Duplicate map key b was found"):
        maps.select(F.map_concat("m", "n")).collect()


# ---- the same functions from SQL strings ------------------------------------------------
def test_sql_strings_call_the_same_functions(df):
    out = df.selectExpr("array_distinct(xs)", "slice(xs, 1, 2)", "array_join(xs, '-', '?')",
                        "sort_array(xs, false)", "array_position(xs, 4)")
    assert out.columns == ["array_distinct(xs)", "slice(xs, 1, 2)", "array_join(xs, -, ?)",
                           "sort_array(xs, false)", "array_position(xs, 4)"]
    assert [tuple(r) for r in out.collect()] == [
        ([1, 2, 3], [1, 2], "1-2-3-2", [3, 2, 2, 1], 0),
        ([None, 4], [None, 4], "?-4-?", [4, None, None], 2),
        (None, None, None, None, None),
        ([], [], "", [], 0),
    ]
