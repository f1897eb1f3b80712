"""PySpark's statistical, boolean and percentile aggregates, global aggregation through
``select``, and expressions over aggregates: names and values as PySpark 4.3 gives them
(expected values read off PySpark 4.3; floating-point ones compared to 1e-12)."""

from __future__ import annotations

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import functions as F
from unbounded.sql.window import Window


@pytest.fixture
def df(spark):
    rows = [("a", 1.0, 2.0, True), ("a", 2.0, 4.5, False), ("a", 4.0, 7.0, None),
            ("a", None, 1.0, True), ("b", 5.0, None, None), ("c", 3.0, 3.0, True),
            ("c", 3.0, 3.0, True)]
    return spark.createDataFrame(rows, "k string, x double, y double, b boolean")


def _close(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if isinstance(w, float):
            assert g == pytest.approx(w, rel=1e-12, abs=1e-12)
        else:
            assert g == w


def test_statistics_per_group(df):
    out = df.groupBy("k").agg(
        F.stddev_pop("x"), F.var_pop("x"), F.std("x"), F.corr("x", "y"), F.covar_pop("x", "y"),
        F.covar_samp("x", "y"), F.skewness("x"), F.kurtosis("x")).orderBy("k")
    assert out.columns == ["k", "stddev_pop(x)", "var_pop(x)", "std(x)", "corr(x, y)",
                           "covar_pop(x, y)", "covar_samp(x, y)", "skewness(x)", "kurtosis(x)"]
    rows = [tuple(r) for r in out.collect()]
    _close(rows[0], ("a", 1.247219128924647, 1.5555555555555554, 1.5275252316519465,
                     0.9819805060619657, 2.5, 3.75, 0.3818017741606068, -1.5000000000000009))
    assert rows[1] == ("b", 0.0, 0.0, None, None, None, None, None, None)
    assert rows[2] == ("c", 0.0, 0.0, 0.0, None, 0.0, 0.0, None, None)


def test_percentiles_counts_and_booleans_per_group(df):
    out = df.groupBy("k").agg(
        F.median("x"), F.percentile("x", 0.25), F.percentile("x", [0.1, 0.9]),
        F.count_if(F.col("x") > 1), F.bool_and("b"), F.bool_or("b"), F.every("b"),
        F.some("b"), F.product("x"), F.array_agg("x"), F.first_value("x"),
        F.last_value("x", F.lit(True))).orderBy("k")
    assert out.columns == [
        "k", "median(x)", "percentile(x, 0.25, 1)", "percentile(x, array(0.1, 0.9), 1)",
        "count_if((x > 1))", "bool_and(b)", "bool_or(b)", "every(b)", "some(b)",
        "product(x)", "collect_list(x)", "first_value(x)", "last_value(x)"]
    rows = [tuple(r) for r in out.collect()]
    _close(rows[0][:3], ("a", 2.0, 1.5))
    _close(rows[0][3], [1.2, 3.6])
    assert rows[0][4:] == (2, False, True, False, True, 8.0, [1.0, 2.0, 4.0], 1.0, 4.0)
    assert rows[1] == ("b", 5.0, 5.0, [5.0, 5.0], 1, None, None, None, None, 5.0, [5.0],
                       5.0, 5.0)
    assert rows[2] == ("c", 3.0, 3.0, [3.0, 3.0], 2, True, True, True, True, 9.0,
                       [3.0, 3.0], 3.0, 3.0)


def test_mode_takes_the_most_frequent_and_the_smallest_of_a_tie(spark):
    frame = spark.createDataFrame([(1, 7), (1, 3), (1, 3), (2, 9), (2, 4), (2, None)],
                                  "g int, v int")
    got = [tuple(r) for r in frame.groupBy("g").agg(F.mode("v")).orderBy("g").collect()]
    assert got == [(1, 3), (2, 4)]  # Spark picks any of a tie; we pick the smallest


def test_percentile_counts_each_value_frequency_times(df):
    assert df.select(F.percentile("x", 0.5, F.lit(2))).collect()[0][0] == 3.0
    with pytest.raises(AnalysisException, match=r"between 0\.0 and 1\.0"):
        df.select(F.percentile("x", 1.5)).collect()


def test_empty_input_gives_null_and_count_if_zero(spark):
    row = spark.range(0).agg(F.median("id"), F.bool_and(F.col("id") > 0), F.product("id"),
                             F.count_if(F.col("id") > 0), F.mode("id"),
                             F.skewness("id")).collect()[0]
    assert tuple(row) == (None, None, None, 0, None, None)


def test_select_of_aggregates_is_a_global_aggregation(df):
    row = df.select(F.sum("x"), (F.max("x") + 1).alias("m"), F.count_if("b")).collect()
    assert [tuple(r) for r in row] == [(18.0, 6.0, 4)]
    assert df.selectExpr("count(*) AS n", "max(y) - min(y) AS spread").collect()[0] \
        .asDict() == {"n": 7, "spread": 6.0}
    with pytest.raises(AnalysisException, match="MISSING_AGGREGATION"):
        df.select("k", F.sum("x")).collect()


def test_a_window_aggregate_in_select_stays_per_row(df):
    frame = df.select("k", F.count("x").over(Window.partitionBy("k")).alias("n"))
    assert sorted(tuple(r) for r in frame.collect()) == [
        ("a", 3), ("a", 3), ("a", 3), ("a", 3), ("b", 1), ("c", 2), ("c", 2)]


def test_expressions_over_aggregates_are_computed_after_the_aggregation(df, spark):
    out = df.groupBy("k").agg((F.sum("x") / F.count("x")).alias("mean"),
                              F.round(F.avg("y"), 1), F.sum("x") + F.sum("x")).orderBy("k")
    assert out.columns == ["k", "mean", "round(avg(y), 1)", "(sum(x) + sum(x))"]
    assert [tuple(r) for r in out.collect()] == [
        ("a", 7.0 / 3, 3.6, 14.0), ("b", 5.0, None, 10.0), ("c", 3.0, 3.0, 12.0)]
    df.createOrReplaceTempView("t")
    got = spark.sql("SELECT k, sum(x) * 2 AS d, count(*) FROM t GROUP BY k ORDER BY k")
    assert [tuple(r) for r in got.collect()] == [("a", 14.0, 4), ("b", 10.0, 1),
                                                 ("c", 12.0, 2)]


def test_max_of_doubles_orders_nan_above_every_number(spark):
    frame = spark.createDataFrame([("a", 1.0), ("a", float("nan")), ("b", 2.0), ("b", None)],
                                  "k string, x double")
    got = {r[0]: str(r[1]) for r in frame.groupBy("k").agg(F.max("x")).collect()}
    assert got == {"a": "nan", "b": "2.0"}  # PySpark 4.3: NaN and 2.0
    assert str(frame.select(F.max("x")).collect()[0][0]) == "nan"


def test_bitwise_joined_try_and_regression_aggregates(spark):
    frame = spark.createDataFrame(
        [("a", 1, 2.0, "x"), ("a", 6, 4.5, None), ("a", 3, 7.0, "y"), ("b", None, 1.0, "z"),
         ("c", 5, None, None)], "k string, i int, y double, s string")
    out = frame.groupBy("k").agg(
        F.bit_and("i"), F.bit_or("i"), F.bit_xor("i"), F.listagg("s"), F.listagg("s", ","),
        F.string_agg("s", "-"), F.listagg_distinct("s"), F.try_sum("i"), F.try_avg("i"),
        F.regr_count("y", "i"), F.regr_avgx("y", "i"), F.regr_avgy("y", "i"),
        F.regr_sxx("y", "i"), F.regr_syy("y", "i"), F.regr_sxy("y", "i"),
        F.regr_slope("y", "i"), F.regr_intercept("y", "i"), F.regr_r2("y", "i"),
        F.approx_percentile("i", 0.5), F.approxCountDistinct("i")).orderBy("k")
    assert out.columns == [
        "k", "bit_and(i)", "bit_or(i)", "bit_xor(i)", "listagg(s, NULL)", "listagg(s, ,)",
        "string_agg(s, -)", "listagg(DISTINCT s, NULL)", "try_sum(i)", "try_avg(i)",
        "regr_count(y, i)", "regr_avgx(y, i)", "regr_avgy(y, i)", "regr_sxx(y, i)",
        "regr_syy(y, i)", "regr_sxy(y, i)", "regr_slope(y, i)", "regr_intercept(y, i)",
        "regr_r2(y, i)", "approx_percentile(i, 0.5, 10000)", "approx_count_distinct(i)"]
    rows = [tuple(r) for r in out.collect()]
    _close(rows[0], ("a", 0, 7, 4, "xy", "x,y", "x-y", "xy", 10, 3.3333333333333335, 3,
                     3.3333333333333335, 4.5, 12.666666666666666, 12.5, 5.0,
                     0.39473684210526316, 3.1842105263157894, 0.1578947368421053, 3, 3))
    assert rows[1] == ("b", None, None, None, "z", "z", "z", "z", None, None, 0, None, None,
                       None, None, None, None, None, None, None, 0)
    assert rows[2] == ("c", 5, 5, 5, None, None, None, None, 5, 5.0, 0, None, None, None,
                       None, None, None, None, None, 5, 1)


def test_try_sum_is_null_where_sum_overflows(spark):
    big = spark.createDataFrame([(9223372036854775807,), (1,)], "v long")
    assert tuple(big.select(F.try_sum("v")).collect()[0]) == (None,)
    halves = spark.createDataFrame([(1.5,), (2.0,)], "v double")
    assert tuple(halves.select(F.try_sum("v")).collect()[0]) == (3.5,)


def test_corr_of_a_column_with_itself_is_exactly_one_as_spark(spark):
    """Spark divides the centred co-moment by sqrt(xMk * yMk); dividing by std_x * std_y
    rounds twice and gave 0.9999999999999998 for these values."""
    rows = [(1.0, 2.0), (2.5, 1.0), (3.7, 9.1), (None, 3.0), (11.3, 0.5)]
    df = spark.createDataFrame(rows, "c double, d double")
    assert df.agg(F.corr("c", "c"), F.corr("d", "d")).collect()[0] == (1.0, 1.0)
