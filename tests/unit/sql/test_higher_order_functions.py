"""Higher-order functions with lambdas, from Python (functions of Columns, as PySpark takes
them) and from SQL strings (``x -> x + 1``): column names, values and errors as PySpark
4.3 gives them (every expected value below was read off PySpark 4.3)."""

from __future__ import annotations

import pytest

from unbounded.errors import AnalysisException, ArithmeticException, SparkRuntimeException
from unbounded.plan.expressions import LambdaFunction, LambdaVariable
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

XS = "xs array<int>, ys array<int>, y int"
ROWS = [([1, 2, 3, 2], [2, 5], 10), ([None, 4, None], [4], 20), (None, [1], 30), ([], [], 40)]
V = "namedlambdavariable()"


@pytest.fixture
def df(spark):
    return spark.createDataFrame(ROWS, XS)


@pytest.fixture
def maps(spark):
    rows = [({"a": 1, "b": 2}, {"b": 20, "c": 30}), ({"x": None}, {}), (None, None)]
    return spark.createDataFrame(rows, "m map<string,int>, n map<string,int>")


def _one(frame, column):
    out = frame.select(column)
    return out.columns[0], out.schema.fields[0].dataType.simpleString(), \
        [r[0] for r in out.collect()]


@pytest.mark.parametrize(("column", "name", "dtype", "values"), [
    (F.transform("xs", lambda x: x + 1), f"transform(xs, lambdafunction(({V} + 1), {V}))",
     "array<int>", [[2, 3, 4, 3], [None, 5, None], None, []]),
    (F.transform("xs", lambda x, i: x * i),
     f"transform(xs, lambdafunction(({V} * {V}), {V}, {V}))", "array<int>",
     [[0, 2, 6, 6], [None, 4, None], None, []]),
    (F.transform("xs", lambda x: x + F.col("y")),
     f"transform(xs, lambdafunction(({V} + y), {V}))", "array<int>",
     [[11, 12, 13, 12], [None, 24, None], None, []]),
    (F.filter("xs", lambda x: x > 1), f"filter(xs, lambdafunction(({V} > 1), {V}))",
     "array<int>", [[2, 3, 2], [4], None, []]),
    (F.filter("xs", lambda x, i: i > 0), f"filter(xs, lambdafunction(({V} > 0), {V}, {V}))",
     "array<int>", [[2, 3, 2], [4, None], None, []]),
    (F.filter("xs", lambda x: x < F.col("y") / 5),
     f"filter(xs, lambdafunction(({V} < (y / 5)), {V}))", "array<int>", [[1], [], None, []]),
    (F.exists("xs", lambda x: x > 2), f"exists(xs, lambdafunction(({V} > 2), {V}))",
     "boolean", [True, True, None, False]),
    (F.forall("xs", lambda x: x > 0), f"forall(xs, lambdafunction(({V} > 0), {V}))",
     "boolean", [True, None, None, True]),
    (F.aggregate("xs", F.lit(0), lambda acc, x: acc + x),
     f"aggregate(xs, 0, lambdafunction(({V} + {V}), {V}, {V}), lambdafunction({V}, {V}))",
     "int", [8, None, None, 0]),
    (F.aggregate("xs", F.lit(0), lambda acc, x: acc + x, lambda acc: acc * 10),
     f"aggregate(xs, 0, lambdafunction(({V} + {V}), {V}, {V}), "
     f"lambdafunction(({V} * 10), {V}))", "int", [80, None, None, 0]),
    (F.reduce("xs", F.lit(0), lambda acc, x: acc + x),
     f"reduce(xs, 0, lambdafunction(({V} + {V}), {V}, {V}), lambdafunction({V}, {V}))",
     "int", [8, None, None, 0]),
    (F.aggregate("xs", F.lit(0.0), lambda acc, x: acc + x),
     f"aggregate(xs, 0.0, lambdafunction(({V} + {V}), {V}, {V}), lambdafunction({V}, {V}))",
     "double", [8.0, None, None, 0.0]),
    (F.aggregate("xs", "y", lambda acc, x: acc + x),
     f"aggregate(xs, y, lambdafunction(({V} + {V}), {V}, {V}), lambdafunction({V}, {V}))",
     "int", [18, None, None, 40]),
    (F.zip_with("xs", "ys", lambda a, b: a + b),
     f"zip_with(xs, ys, lambdafunction(({V} + {V}), {V}, {V}))", "array<int>",
     [[3, 7, None, None], [None, None, None], None, []]),
    (F.transform("xs", lambda x: F.transform("ys", lambda y: x + y)),
     f"transform(xs, lambdafunction(transform(ys, lambdafunction(({V} + {V}), {V})), {V}))",
     "array<array<int>>", [[[3, 6], [4, 7], [5, 8], [4, 7]], [[None], [8], [None]], None, []]),
    (F.array_sort("xs", lambda a, b: F.when(a < b, 1).when(a > b, -1).otherwise(0)),
     f"array_sort(xs, lambdafunction(CASE WHEN ({V} < {V}) THEN 1 WHEN ({V} > {V}) THEN -1 "
     f"ELSE 0 END, {V}, {V}))", "array<int>", [[3, 2, 2, 1], [None, 4, None], None, []]),
])
def test_array_lambda_matches_pyspark(df, column, name, dtype, values):
    assert _one(df, column) == (name, dtype, values)


@pytest.mark.parametrize(("column", "name", "dtype", "values"), [
    (F.map_filter("m", lambda k, v: v > 1),
     f"map_filter(m, lambdafunction(({V} > 1), {V}, {V}))", "map<string,int>",
     [{"b": 2}, {}, None]),
    (F.transform_keys("m", lambda k, v: F.upper(k)),
     f"transform_keys(m, lambdafunction(upper({V}), {V}, {V}))", "map<string,int>",
     [{"A": 1, "B": 2}, {"X": None}, None]),
    (F.transform_values("m", lambda k, v: v * 10),
     f"transform_values(m, lambdafunction(({V} * 10), {V}, {V}))", "map<string,int>",
     [{"a": 10, "b": 20}, {"x": None}, None]),
    (F.map_zip_with("m", "n", lambda k, v1, v2: F.coalesce(v1, F.lit(0)) +
                    F.coalesce(v2, F.lit(0))),
     f"map_zip_with(m, n, lambdafunction((coalesce({V}, 0) + coalesce({V}, 0)), {V}, {V}, "
     f"{V}))", "map<string,int>", [{"a": 1, "b": 22, "c": 30}, {"x": 0}, None]),
])
def test_map_lambda_matches_pyspark(maps, column, name, dtype, values):
    assert _one(maps, column) == (name, dtype, values)


def test_a_python_lambda_becomes_a_lambda_node_over_its_own_variables():
    node = F.transform("xs", lambda x, i: x * i).expr.args[1]
    assert isinstance(node, LambdaFunction)
    assert node.params == ("x", "i")
    assert node.body.children() == (LambdaVariable("x"), LambdaVariable("i"))


def test_lambda_with_the_wrong_number_of_parameters_is_rejected():
    with pytest.raises(AnalysisException, match="NUM_ARGS_MISMATCH"):
        F.exists("xs", lambda x, i: x > i)


def test_overflow_inside_a_lambda_fails_under_ansi_and_wraps_without(spark, df):
    column = F.transform(F.array(F.lit(2147483647)), lambda x: x + 1)
    with pytest.raises(ArithmeticException, match=r"^\[ARITHMETIC_OVERFLOW\]"):
        df.select(column).collect()
    spark.conf.set("spark.sql.ansi.enabled", "false")
    assert [r[0] for r in df.select(column).collect()] == [[-2147483648]] * 4


def test_merge_must_keep_the_initial_value_type(df):
    with pytest.raises(AnalysisException, match="DATATYPE_MISMATCH"):
        df.select(F.aggregate(F.array(F.lit(1.5)), F.lit(0), lambda a, x: a + x))


def test_transform_keys_to_a_repeated_or_null_key_fails(spark):
    m = spark.range(1).select(F.create_map(F.lit("a"), F.lit(1), F.lit("b"), F.lit(2))
                              .alias("m"))
    with pytest.raises(SparkRuntimeException,
                       match=r"^\[DUPLICATED_MAP_KEY\] Duplicate map key z was found"):
        m.select(F.transform_keys("m", lambda k, v: F.lit("z"))).collect()
    with pytest.raises(SparkRuntimeException, match=r"^\[NULL_MAP_KEY\]"):
        m.select(F.transform_keys("m", lambda k, v: F.lit(None).cast("string"))).collect()


# ---- SQL strings ---------------------------------------------------------------------
def test_sql_lambdas_read_outer_columns(spark, df):
    df.createOrReplaceTempView("t")
    out = spark.sql("SELECT transform(xs, x -> x * y) AS a, filter(ys, v -> v > 1) AS b, "
                    "aggregate(xs, 0L, (acc, x) -> acc + x) AS c, exists(ys, v -> v = 4) AS d "
                    "FROM t")
    assert [tuple(r) for r in out.collect()] == [
        ([10, 20, 30, 20], [2, 5], 8, False), ([None, 80, None], [4], None, True),
        (None, [], None, False), ([], [], 0, False)]


def test_sql_lambda_names_match_pyspark(spark, df):
    df.createOrReplaceTempView("t")
    out = spark.sql("SELECT zip_with(xs, ys, (a, b) -> coalesce(a, 0) + coalesce(b, 0)), "
                    "forall(xs, x -> x IS NOT NULL) FROM t")
    assert out.columns == [
        f"zip_with(xs, ys, lambdafunction((coalesce({V}, 0) + coalesce({V}, 0)), {V}, {V}))",
        f"forall(xs, lambdafunction(({V} IS NOT NULL), {V}))"]
    assert [tuple(r) for r in out.collect()] == [
        ([3, 7, 3, 2], True), ([4, 4, 0], False), (None, None), ([], True)]


def test_sql_inner_lambda_parameter_shadows_the_outer_one(spark):
    out = spark.sql("SELECT transform(array(array(1, 2), array(3)), x -> transform(x, x -> x + 1))"
                    " AS r")
    assert [r[0] for r in out.collect()] == [[[2, 3], [4]]]


def test_sql_comparator_and_map_lambdas(spark):
    out = spark.sql("SELECT array_sort(array('bb', 'a', 'ccc'), (l, r) -> length(l) - length(r))"
                    " AS s, map_filter(map('a', 1, 'b', 2), (k, v) -> v > 1) AS f")
    assert [tuple(r) for r in out.collect()] == [(["a", "bb", "ccc"], {"b": 2})]


def test_expr_builds_the_same_node_as_the_python_function():
    assert F.expr("transform(xs, x -> x + 1)").expr == \
        F.transform("xs", lambda x: x + 1).expr


# ---- streaming ----------------------------------------------------------------------
def test_streaming_query_transforms_each_batch(spark):
    events = MemoryStream("xs ARRAY<INT>, y INT", spark)
    out = events.toDF().select(
        F.transform("xs", lambda x: x * F.col("y")).alias("scaled"),
        F.aggregate("xs", F.lit(0), lambda acc, x: acc + x).alias("total"),
        F.expr("filter(xs, x -> x > y)").alias("above"))
    query = out.writeStream.format("memory").queryName("hof").start()
    try:
        events.addData([([1, 2], 10), (None, 1)])
        query.processAllAvailable(30)
        events.addData([([3, None], 2), ([], 5)])
        query.processAllAvailable(30)
    finally:
        query.stop()
    got = sorted((tuple(r) for r in spark.sql("SELECT * FROM hof").collect()), key=str)
    assert got == sorted([([10, 20], 3, []), (None, None, None), ([6, None], None, [3]),
                          ([], 0, [])], key=str)


def test_an_unknown_name_in_a_lambda_is_reported_with_the_input_columns_only(df):
    with pytest.raises(AnalysisException) as info:
        df.selectExpr("transform(xs, x -> x + nope)")
    assert info.value.error_class == "UNRESOLVED_COLUMN"
    assert str(info.value).endswith(
        "name `nope` cannot be resolved. Did you mean one of the following? [`xs`, `ys`, `y`].")
