"""pivot, rollup, cube (with grouping/grouping_id), unpivot/melt and df.stat: output
names, types and rows as PySpark 4.3 gives them on the same input."""

from __future__ import annotations

import datetime

import pytest

from unbounded.errors import AnalysisException, UnsupportedOperationException
from unbounded.sql import functions as F
from unbounded.testing import (
    AddData,
    CheckAnswer,
    MemoryStream,
    StartStream,
    StopStream,
    run_stream_test,
)


@pytest.fixture
def df(spark):
    rows = [("a", 2024, 1, 10.0), ("a", 2025, 2, None), ("b", 2024, 3, 30.0),
            ("b", 2024, 4, 40.0), ("c", 2025, 5, 50.0)]
    return spark.createDataFrame(rows, "k string, y int, x int, d double")


def _rows(frame):
    return sorted((tuple(r) for r in frame.collect()), key=str)


def test_pivot_one_aggregate_names_columns_by_sorted_values_null_where_missing(df):
    out = df.groupBy("k").pivot("y").sum("x")
    assert out.schema.simpleString() == "struct<k:string,2024:bigint,2025:bigint>"
    assert _rows(out) == [("a", 1, 2), ("b", 7, None), ("c", None, 5)]


def test_pivot_several_aggregates_suffix_each_value_with_the_aggregate_or_alias(df):
    out = df.groupBy("k").pivot("y").agg(F.sum("x").alias("s"), F.max("d"))
    assert out.columns == ["k", "2024_s", "2024_max(d)", "2025_s", "2025_max(d)"]
    assert _rows(out) == [("a", 1, 10.0, 2, None), ("b", 7, 40.0, None, None),
                          ("c", None, None, 5, 50.0)]


def test_pivot_count_is_null_not_zero_for_a_missing_combination(df):
    assert _rows(df.groupBy("k").pivot("y").count()) == [
        ("a", 1, 1), ("b", 2, None), ("c", None, 1)]


def test_pivot_given_values_keeps_their_order_and_unseen_values(df):
    out = df.groupBy("k").pivot("y", [2025, 2030]).agg(F.sum("x"))
    assert out.columns == ["k", "2025", "2030"]
    assert _rows(out) == [("a", 2, None), ("b", None, None), ("c", 5, None)]


def test_pivot_on_strings_and_average_of_every_numeric_column(df):
    assert _rows(df.groupBy("y").pivot("k").agg(F.count("x"))) == [
        (2024, 1, 2, None), (2025, 1, None, 1)]
    out = df.groupBy("k").pivot("y").avg()
    assert out.columns == ["k", "2024_avg(y)", "2024_avg(x)", "2024_avg(d)",
                           "2025_avg(y)", "2025_avg(x)", "2025_avg(d)"]


def test_pivot_without_values_on_a_stream_is_spark_s_error(spark):
    stream = spark.readStream.format("rate").load()
    with pytest.raises(AnalysisException, match="pivot is not supported on a streaming"):
        stream.groupBy("value").pivot("timestamp")


def test_rollup_adds_subtotals_with_null_keys_and_grouping_flags(df):
    out = df.rollup("k", "y").agg(F.sum("x"), F.grouping("k"), F.grouping_id())
    assert out.schema.simpleString() == (
        "struct<k:string,y:int,sum(x):bigint,grouping(k):tinyint,grouping_id():bigint>")
    assert _rows(out) == [
        ("a", 2024, 1, 0, 0), ("a", 2025, 2, 0, 0), ("a", None, 3, 0, 1),
        ("b", 2024, 7, 0, 0), ("b", None, 7, 0, 1), ("c", 2025, 5, 0, 0),
        ("c", None, 5, 0, 1), (None, None, 15, 1, 3)]


def test_cube_groups_by_every_subset_of_the_keys(df):
    out = df.cube("k", "y").agg(F.count("*"), F.grouping_id("k", "y"))
    assert out.columns == ["k", "y", "count(1)", "grouping_id(k, y)"]
    assert _rows(out) == [
        ("a", 2024, 1, 0), ("a", 2025, 1, 0), ("a", None, 2, 1), ("b", 2024, 2, 0),
        ("b", None, 2, 1), ("c", 2025, 1, 0), ("c", None, 1, 1), (None, 2024, 3, 2),
        (None, 2025, 2, 2), (None, None, 5, 3)]


def test_rollup_count(df):
    assert _rows(df.rollup("k").count()) == [("a", 2), ("b", 2), ("c", 1), (None, 5)]


def test_unpivot_emits_each_row_s_values_in_order_cast_to_their_common_type(df):
    out = df.unpivot("k", ["x", "d"], "var", "val")
    assert out.schema.simpleString() == "struct<k:string,var:string,val:double>"
    assert [tuple(r) for r in out.collect()][:4] == [
        ("a", "x", 1.0), ("a", "d", 10.0), ("a", "x", 2.0), ("a", "d", None)]


def test_melt_with_no_values_takes_every_non_id_column(df):
    out = df.select("k", "x", "y").melt(["k"], None, "var", "val")
    assert out.schema.simpleString() == "struct<k:string,var:string,val:int>"
    assert _rows(out)[:4] == [("a", "x", 1), ("a", "x", 2), ("a", "y", 2024),
                              ("a", "y", 2025)]


def test_unpivot_errors_are_spark_s(df):
    with pytest.raises(AnalysisException, match="UNPIVOT_VALUE_DATA_TYPE_MISMATCH"):
        df.unpivot("k", ["x", "k"], "var", "val")
    with pytest.raises(AnalysisException, match="UNPIVOT_REQUIRES_VALUE_COLUMNS"):
        df.unpivot("k", [], "var", "val")


def test_corr_counts_null_as_zero_and_cov_is_the_sample_covariance(df):
    assert df.stat.corr("x", "d") == pytest.approx(0.914991421995628)
    assert df.corr("x", "y") == pytest.approx(0.2886751345947951)
    assert df.cov("x", "y") == pytest.approx(0.25)


def test_approx_quantile_of_one_and_of_several_columns(df):
    assert df.approxQuantile("x", [0.0, 0.5, 1.0], 0.0) == [1.0, 3.0, 5.0]
    assert df.stat.approxQuantile(["x", "d"], [0.25], 0.0) == [[2.0], [10.0]]


def test_crosstab_counts_pairs_with_zero_for_absent_ones(df):
    out = df.crosstab("k", "y")
    assert out.schema.simpleString() == "struct<k_y:string,2024:bigint,2025:bigint>"
    assert _rows(out) == [("a", 1, 1), ("b", 2, 0), ("c", 0, 1)]


def test_grouping_inside_an_expression_takes_each_set_s_value(df):
    out = df.rollup("k").agg((F.sum("x") * (1 - F.grouping("k"))).alias("m"),
                             F.sum("x") + F.grouping_id())
    assert out.columns == ["k", "m", "(sum(x) + grouping_id())"]
    assert _rows(out) == [("a", 3, 3), ("b", 7, 7), ("c", 5, 5), (None, 0, 16)]


def test_cube_of_three_keys_numbers_grouping_ids_first_key_highest(df):
    out = df.cube("k", "y", "x").agg(F.grouping_id()).filter("x = 1")
    assert _rows(out) == [("a", 2024, 1, 0), ("a", None, 1, 2), (None, 2024, 1, 4),
                          (None, None, 1, 6)]


def test_grouping_outside_a_rollup_or_of_another_column_is_spark_s_error(df):
    with pytest.raises(AnalysisException, match="UNSUPPORTED_GROUPING_EXPRESSION"):
        df.groupBy("k").agg(F.grouping("k"))
    with pytest.raises(AnalysisException, match="GROUPING_COLUMN_MISMATCH"):
        df.rollup("k").agg(F.grouping("y")).collect()


def test_pivot_and_crosstab_name_a_null_value_null(spark):
    frame = spark.createDataFrame([("a", "u", 1), ("a", None, 2), ("b", "v", 3)],
                                  "k string, p string, x int")
    pivoted = frame.groupBy("k").pivot("p").sum("x")
    assert pivoted.columns == ["k", "null", "u", "v"]
    assert _rows(pivoted) == [("a", 2, 1, None), ("b", None, None, 3)]
    assert _rows(frame.rollup("p").agg(F.sum("x"), F.grouping("p"))) == [
        ("u", 1, 0), ("v", 3, 0), (None, 2, 0), (None, 6, 1)]
    assert _rows(frame.crosstab("k", "p")) == [("a", 1, 1, 0), ("b", 0, 0, 1)]


def test_freq_items_keeps_the_items_spark_s_counter_keeps(df, spark):
    out = df.freqItems(["k", "y"], 0.4)
    assert out.schema.simpleString() == (
        "struct<k_freqItems:array<string>,y_freqItems:array<int>>")
    assert [sorted(v) for v in out.collect()[0]] == [["a", "b"], [2024, 2025]]
    mixed = spark.createDataFrame([(i % 3, str(i)) for i in range(10)], "a int, s string")
    row = mixed.stat.freqItems(["a", "s"], 0.3).collect()[0]
    assert (sorted(row[0]), sorted(row[1])) == ([0, 1, 2], ["8", "9"])
    empty = spark.createDataFrame([], "a int")
    assert [tuple(r) for r in empty.freqItems(["a"]).collect()] == [([],)]


def test_rollup_on_a_stream_is_one_aggregation_kept_across_batches(spark, tmp_path):
    stream = MemoryStream("k STRING, x LONG", spark)
    totals = stream.toDF().rollup("k").agg(F.sum("x"), F.grouping("k"))
    latest: list[tuple] = []

    def start():
        def sink(batch, batch_id):
            latest[:] = [tuple(r) for r in batch.collect()]

        return (totals.writeStream.outputMode("complete").foreachBatch(sink)
                .option("checkpointLocation", str(tmp_path / "cp")).start())

    run_stream_test(
        start, lambda: latest,
        AddData(stream, [("a", 1), ("b", 2)]),
        CheckAnswer([("a", 1, 0), ("b", 2, 0), (None, 3, 1)]),
        StopStream(),
        AddData(stream, [("a", 4), (None, 5)]),
        StartStream(),
        CheckAnswer([("a", 5, 0), ("b", 2, 0), (None, 5, 0), (None, 12, 1)]),
    )


def test_pivot_names_values_as_spark_casts_them_to_strings(spark):
    frame = spark.createDataFrame(
        [("a", 1.5, True, datetime.date(2024, 1, 2), 1),
         ("b", 1e20, False, datetime.date(2024, 1, 3), 2)],
        "k string, f double, b boolean, d date, x int")
    assert frame.groupBy("k").pivot("f").sum("x").columns == ["k", "1.5", "1.0E20"]
    assert frame.groupBy("k").pivot("b").sum("x").columns == ["k", "false", "true"]
    assert frame.groupBy("k").pivot("d").sum("x").columns == ["k", "2024-01-02", "2024-01-03"]
    given = frame.groupBy("k").pivot("x", ["1", "2"]).count()
    assert _rows(given) == [("a", 1, None), ("b", None, 1)]


def test_approx_quantile_skips_null_and_nan_and_is_empty_without_values(spark):
    frame = spark.createDataFrame([(1.0,), (float("nan"),), (None,), (3.0,), (2.0,)],
                                  "v double")
    assert frame.approxQuantile("v", [0.0, 0.5, 1.0], 0.0) == [1.0, 2.0, 3.0]
    assert spark.createDataFrame([], "v double").approxQuantile("v", [0.5], 0.1) == []


def test_pivot_without_values_stops_past_spark_sql_pivot_max_values(spark):
    spark.conf.set("spark.sql.pivotMaxValues", "2")
    frame = spark.createDataFrame([("a", 1), ("b", 2), ("c", 3)], "k string, x int")
    with pytest.raises(AnalysisException, match="The pivot column k has more than 2 distinct"):
        frame.groupBy("x").pivot("k")
    spark.conf.set("spark.sql.pivotMaxValues", "3")
    assert frame.groupBy("x").pivot("k").count().columns == ["x", "a", "b", "c"]


def test_pivot_sorts_nan_after_numbers_and_its_column_is_null_as_in_spark(spark):
    frame = spark.createDataFrame([("a", float("nan"), 1), ("a", 2.0, 2), ("b", -1.0, 3)],
                                  "k string, f double, x int")
    out = frame.groupBy("k").pivot("f").sum("x")
    assert out.columns == ["k", "-1.0", "2.0", "NaN"]
    assert _rows(out) == [("a", None, 2, None), ("b", 3, None, None)]


def test_pivot_twice_or_after_a_rollup_is_spark_s_error(df):
    with pytest.raises(UnsupportedOperationException, match="REPEATED_CLAUSE"):
        df.groupBy("k").pivot("y").pivot("y")
    with pytest.raises(UnsupportedOperationException, match="PIVOT_AFTER_GROUP_BY"):
        df.rollup("k").pivot("y")
