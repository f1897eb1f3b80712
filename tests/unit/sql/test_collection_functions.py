"""PySpark's array and map functions: column names, values and errors as PySpark 4.3 gives
them (every expected value below was read off PySpark 4.3, ANSI mode on unless said)."""

from __future__ import annotations

import datetime as dt

import pytest

from unbounded.errors import AnalysisException, IllegalArgumentException, SparkRuntimeException
from unbounded.sql import Row
from unbounded.sql import functions as F

D, T = dt.date, dt.datetime
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
    # one failing row only: which of several failing rows is reported is not defined
    # (Spark's tasks, Polars' morsels), so the message would name any of them
    with pytest.raises(SparkRuntimeException) as info:
        df.where(F.size("xs") >= 3).select(F.element_at("xs", 4)).collect()
    assert str(info.value).startswith(
        "[INVALID_ARRAY_INDEX_IN_ELEMENT_AT] The index 4 is out of bounds. The array has 3 "
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


@pytest.mark.parametrize("query", ["SELECT map(1, 2, 1, 3) AS m",
                                   "SELECT map(k, 1, 1, 2) AS m FROM VALUES (2), (1) AS t(k)"])
def test_map_with_a_repeated_key_fails(spark, query):
    # PySpark 4.3: spark.sql.mapKeyDedupPolicy=EXCEPTION (the map kept the last value here)
    with pytest.raises(SparkRuntimeException,
                       match=r"^\[DUPLICATED_MAP_KEY\] Duplicate map key 1 was found"):
        spark.sql(query).collect()


@pytest.mark.parametrize("query", ["SELECT map(NULL, 2) AS m",
                                   "SELECT map(k, 1) AS m FROM VALUES (1), (NULL) AS t(k)"])
def test_map_with_a_null_key_fails(spark, query):
    with pytest.raises(SparkRuntimeException,
                       match=r"^\[NULL_MAP_KEY\] Cannot use null as map key. SQLSTATE: 2200E$"):
        spark.sql(query).collect()


def test_create_map_of_distinct_keys(spark):
    df = spark.createDataFrame([(1,), (2,)], "k int")
    assert [r.m for r in df.select(F.create_map("k", F.lit(7), F.lit(9), "k").alias("m"))
            .collect()] == [{1: 7, 9: 1}, {2: 7, 9: 2}]


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


def test_sequence_of_dates_and_timestamps(spark):
    out = spark.sql(
        "SELECT sequence(DATE'2024-01-30', DATE'2024-02-02') AS a, "
        "sequence(DATE'2024-02-02', DATE'2024-01-31') AS b, "
        "sequence(DATE'2024-01-01', DATE'2024-01-10', INTERVAL 4 DAYS) AS c, "
        "sequence(TIMESTAMP'2024-01-01 00:00:00', TIMESTAMP'2024-01-01 02:30:00', "
        "INTERVAL 1 HOUR) AS d")
    assert out.schema.simpleString() == \
        "struct<a:array<date>,b:array<date>,c:array<date>,d:array<timestamp>>"
    assert [tuple(r) for r in out.collect()] == [(
        [D(2024, 1, 30), D(2024, 1, 31), D(2024, 2, 1), D(2024, 2, 2)],
        [D(2024, 2, 2), D(2024, 2, 1), D(2024, 1, 31)],
        [D(2024, 1, 1), D(2024, 1, 5), D(2024, 1, 9)],
        [T(2024, 1, 1, 0), T(2024, 1, 1, 1), T(2024, 1, 1, 2)])]


def test_sequence_with_a_step_away_from_stop_fails(spark):
    with pytest.raises(IllegalArgumentException,
                       match=r"^requirement failed: Illegal sequence boundaries: 1 to 5 by -1"):
        spark.range(1).select(F.sequence(F.lit(1), F.lit(5), F.lit(-1))).collect()
    out = spark.range(1).select(F.sequence(F.lit(5), F.lit(1)), F.sequence(F.lit(5), F.lit(5),
                                                                           F.lit(0)))
    assert [tuple(r) for r in out.collect()] == [([5, 4, 3, 2, 1], [5])]


def test_array_functions_without_ansi_mode(spark, df):
    spark.conf.set("spark.sql.ansi.enabled", "false")
    out = df.select(F.size("xs"), F.cardinality("xs"), F.element_at("xs", 5))
    assert [tuple(r) for r in out.collect()] == [
        (4, 4, None), (3, 3, None), (-1, -1, None), (0, 0, None)]
    with pytest.raises(SparkRuntimeException, match=r"^\[INVALID_PARAMETER_VALUE.START\]"):
        df.select(F.slice("xs", 0, 1)).collect()


@pytest.mark.parametrize(("column", "name", "dtype", "values"), [
    (F.slice("xs", -9, 2), "slice(xs, -9, 2)", "array<int>", [[], [], None, []]),
    (F.array_append("xs", F.lit(5).cast("bigint")), "array_append(xs, CAST(5 AS BIGINT))",
     "array<bigint>", [[1, 2, 3, 2, 5], [None, 4, None, 5], None, [5]]),
    (F.arrays_zip(F.array(F.lit(1)), "xs"), "arrays_zip(array(1), xs)",
     "array<struct<0:int,xs:int>>",
     [[Row(**{"0": 1, "xs": 1}), Row(**{"0": None, "xs": 2}), Row(**{"0": None, "xs": 3}),
       Row(**{"0": None, "xs": 2})],
      [Row(**{"0": 1, "xs": None}), Row(**{"0": None, "xs": 4}),
       Row(**{"0": None, "xs": None})], None, [Row(**{"0": 1, "xs": None})]]),
    (F.array_position("xs", F.lit(None).cast("int")), "array_position(xs, CAST(NULL AS INT))",
     "bigint", [None] * 4),
    (F.array_remove("xs", F.lit(None).cast("int")), "array_remove(xs, CAST(NULL AS INT))",
     "array<int>", [None] * 4),
    (F.array_repeat(F.lit("a"), -1), "array_repeat(a, -1)", "array<string>", [[]] * 4),
    (F.get("xs", -1), "get(xs, -1)", "int", [None] * 4),
    (F.try_element_at("xs", F.lit(-1)), "try_element_at(xs, -1)", "int", [2, None, None, None]),
    (F.array_join(F.array(F.lit(1), F.lit(None).cast("int")), "-", "?"),
     "array_join(array(1, CAST(NULL AS INT)), -, ?)", "string", ["1-?"] * 4),
])
def test_array_edge_cases_match_pyspark(df, column, name, dtype, values):
    assert _one(df, column) == (name, dtype, values)


def test_array_errors_match_pyspark(df):
    with pytest.raises(AnalysisException, match="ARRAY_FUNCTION_DIFF_TYPES"):
        df.select(F.array_append("xs", "a"))
    with pytest.raises(SparkRuntimeException,
                       match="The key array and value array of MapData must have the same"):
        df.select(F.map_from_arrays("xs", "ys")).collect()
    with pytest.raises(SparkRuntimeException, match=r"^\[NULL_MAP_KEY\]"):
        df.select(F.map_from_arrays(F.array(F.lit(None).cast("int")), F.array(F.lit(1)))) \
            .collect()
    with pytest.raises(SparkRuntimeException, match=r"^\[INVALID_INDEX_OF_ZERO\]"):
        df.select(F.try_element_at("xs", F.lit(0))).collect()
    with pytest.raises(SparkRuntimeException, match=r"^\[INVALID_ARRAY_INDEX_IN_ELEMENT_AT\]"
                                                    r" The index -9 is out of bounds"):
        df.select(F.element_at("xs", -9)).collect()


def test_str_to_map_of_a_column(spark):
    rows = [("a:1,b:2",), ("c",), (None,), ("",)]
    got = _one(spark.createDataFrame(rows, "s string"), F.str_to_map("s"))
    assert got == ("str_to_map(s, ,, :)", "map<string,string>",
                   [{"a": "1", "b": "2"}, {"c": None}, None, {"": None}])


# ---- generators ------------------------------------------------------------------------
@pytest.fixture
def structs(spark):
    rows = [(1, [(1, "a"), (2, None)]), (2, []), (3, None)]
    return spark.createDataFrame(rows, "id int, xs array<struct<a:int,b:string>>")


def _sorted_rows(frame):
    return frame.columns, sorted((tuple(r) for r in frame.collect()), key=str)


def test_inline_gives_a_row_per_struct_and_a_column_per_field(structs):
    assert _sorted_rows(structs.select("id", F.inline("xs"))) == (
        ["id", "a", "b"], [(1, 1, "a"), (1, 2, None)])
    assert _sorted_rows(structs.select("id", F.inline_outer("xs"))) == (
        ["id", "a", "b"], [(1, 1, "a"), (1, 2, None), (2, None, None), (3, None, None)])


def test_stack_spreads_values_over_rows(spark, structs):
    assert _sorted_rows(structs.select("id", F.stack(F.lit(2), F.lit(1), F.lit(2), F.lit(3)))) \
        == (["id", "col0", "col1"],
            [(1, 1, 2), (1, 3, None), (2, 1, 2), (2, 3, None), (3, 1, 2), (3, 3, None)])
    out = structs.select(F.stack(F.lit(2), "id", F.lit("x"), F.col("id") * 10, F.lit("y")))
    assert out.schema.simpleString() == "struct<col0:int,col1:string>"
    assert _sorted_rows(out)[1] == [(1, "x"), (10, "y"), (2, "x"), (20, "y"), (3, "x"),
                                    (30, "y")]
    sql = spark.sql("SELECT stack(2, 1, 'a', 2, 'b')")
    assert _sorted_rows(sql) == (["col0", "col1"], [(1, "a"), (2, "b")])
