"""Window functions over ``Window.partitionBy().orderBy()``: PySpark 4's values, names and
types, the default frames (RANGE with ordering, whole partition without) and explicit ones."""

from __future__ import annotations

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import Window
from unbounded.sql import functions as F
from unbounded.sql.types import DoubleType, IntegerType, LongType
from unbounded.sql.window import Window as WindowFromModule


@pytest.fixture
def df(spark):
    # Two rows of "a" tie on t=2; "b" has a NULL value.
    return spark.createDataFrame(
        [("a", 1, 10), ("a", 2, 20), ("a", 2, 5), ("b", 1, None), ("b", 3, 7), ("a", 4, 1)],
        "k string, t int, v int")


W = Window.partitionBy("k").orderBy("t")


def rows(df, *cols):
    return sorted(tuple(r) for r in df.select("k", "t", "v", *cols).collect())


def test_window_is_importable_from_both_places():
    assert Window is WindowFromModule
    assert Window.unboundedPreceding == -(1 << 63)
    assert Window.unboundedFollowing == (1 << 63) - 1
    assert Window.currentRow == 0


def test_ranking_functions_share_ranks_on_ties(df):
    out = rows(df, F.rank().over(W), F.dense_rank().over(W))
    assert out == [("a", 1, 10, 1, 1), ("a", 2, 5, 2, 2), ("a", 2, 20, 2, 2),
                   ("a", 4, 1, 4, 3), ("b", 1, None, 1, 1), ("b", 3, 7, 2, 2)]


def test_row_number_numbers_rows_within_each_partition(df):
    w = Window.partitionBy("k").orderBy(F.col("t").desc(), "v")
    out = rows(df, F.row_number().over(w).alias("rn"))
    assert out == [("a", 1, 10, 4), ("a", 2, 5, 2), ("a", 2, 20, 3), ("a", 4, 1, 1),
                   ("b", 1, None, 2), ("b", 3, 7, 1)]


def test_running_sum_default_frame_gives_ties_the_same_value(df):
    out = rows(df, F.sum("v").over(W).alias("s"), F.count("*").over(W).alias("c"),
               F.sum(F.lit(1)).over(W).alias("ones"))
    assert out == [("a", 1, 10, 10, 1, 1), ("a", 2, 5, 35, 3, 3), ("a", 2, 20, 35, 3, 3),
                   ("a", 4, 1, 36, 4, 4), ("b", 1, None, None, 1, 1), ("b", 3, 7, 7, 2, 2)]


def test_rows_frame_running_sum_does_not_merge_ties(df):
    w = Window.partitionBy("k").orderBy("t", "v").rowsBetween(Window.unboundedPreceding,
                                                             Window.currentRow)
    out = rows(df, F.sum("v").over(w).alias("s"), F.min("v").over(w).alias("mn"),
               F.max("v").over(w).alias("mx"), F.avg("v").over(w).alias("a"))
    assert out == [("a", 1, 10, 10, 10, 10, 10.0), ("a", 2, 5, 15, 5, 10, 7.5),
                   ("a", 2, 20, 35, 5, 20, 35 / 3), ("a", 4, 1, 36, 1, 20, 9.0),
                   ("b", 1, None, None, None, None, None), ("b", 3, 7, 7, 7, 7, 7.0)]


def test_without_order_the_frame_is_the_whole_partition(df):
    w = Window.partitionBy("k")
    out = rows(df, F.sum("v").over(w).alias("s"), F.max("v").over(w).alias("mx"),
               F.count(F.lit(1)).over(w).alias("n"))
    assert {(r[0], r[3], r[4], r[5]) for r in out} == {("a", 36, 20, 4), ("b", 7, 7, 2)}


def test_sliding_rows_frame_and_unbounded_following(df):
    w = Window.partitionBy("k").orderBy("t", "v")
    out = rows(df, F.sum("v").over(w.rowsBetween(-1, 1)).alias("s3"),
               F.count("*").over(w.rowsBetween(-1, 1)).alias("c3"),
               F.sum("v").over(w.rowsBetween(0, Window.unboundedFollowing)).alias("rest"),
               F.sum("v").over(w.rangeBetween(Window.unboundedPreceding,
                                              Window.unboundedFollowing)).alias("all"))
    assert out == [("a", 1, 10, 15, 2, 36, 36), ("a", 2, 5, 35, 3, 26, 36),
                   ("a", 2, 20, 26, 3, 21, 36), ("a", 4, 1, 21, 2, 1, 36),
                   ("b", 1, None, 7, 2, 7, 7), ("b", 3, 7, 7, 2, 7, 7)]


def test_lag_and_lead_use_default_only_outside_the_partition(df):
    w = Window.partitionBy("k").orderBy("t", "v")
    out = rows(df, F.lag("v").over(w).alias("prev"), F.lead("v", 1, -1).over(w).alias("next"),
               F.lag("v", 2, 0).over(w).alias("prev2"))
    assert out == [("a", 1, 10, None, 5, 0), ("a", 2, 5, 10, 20, 0),
                   ("a", 2, 20, 5, 1, 10), ("a", 4, 1, 20, -1, 5),
                   ("b", 1, None, None, 7, 0), ("b", 3, 7, None, -1, 0)]


def test_percent_rank_and_cume_dist(df):
    out = rows(df.where("k = 'a'"), F.percent_rank().over(W).alias("pr"),
               F.cume_dist().over(W).alias("cd"))
    assert out == [("a", 1, 10, 0.0, 0.25), ("a", 2, 5, 1 / 3, 0.75),
                   ("a", 2, 20, 1 / 3, 0.75), ("a", 4, 1, 1.0, 1.0)]


def test_column_names_and_types_follow_spark(df):
    out = df.select(F.row_number().over(W), F.rank().over(W), F.sum("v").over(W),
                    F.lag("v").over(W), F.avg("v").over(Window.partitionBy("k")))
    assert out.columns == [
        "row_number() OVER (PARTITION BY k ORDER BY t ASC NULLS FIRST ROWS BETWEEN "
        "UNBOUNDED PRECEDING AND CURRENT ROW)",
        "RANK() OVER (PARTITION BY k ORDER BY t ASC NULLS FIRST ROWS BETWEEN UNBOUNDED "
        "PRECEDING AND CURRENT ROW)",
        "sum(v) OVER (PARTITION BY k ORDER BY t ASC NULLS FIRST RANGE BETWEEN UNBOUNDED "
        "PRECEDING AND CURRENT ROW)",
        "lag(v, 1, NULL) OVER (PARTITION BY k ORDER BY t ASC NULLS FIRST ROWS BETWEEN -1 "
        "FOLLOWING AND -1 FOLLOWING)",
        "avg(v) OVER (PARTITION BY k ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED "
        "FOLLOWING)"]
    types = [f.dataType for f in out.schema.fields]
    assert types == [IntegerType(), IntegerType(), LongType(), IntegerType(), DoubleType()]


def test_window_column_with_star_and_with_column_keeps_row_order(df):
    out = df.withColumn("rn", F.row_number().over(W)).collect()
    assert [r.rn for r in out] == [1, 2, 3, 1, 2, 4]
    assert df.select("*", (F.sum("v").over(W) * 2).alias("d")).columns == ["k", "t", "v", "d"]


def test_ranking_function_without_order_is_rejected(df):
    with pytest.raises(AnalysisException, match="WINDOW_FUNCTION_WITHOUT_ORDER_BY"):
        F.row_number().over(Window.partitionBy("k"))


def test_window_functions_run_inside_foreach_batch(spark, tmp_path):
    from unbounded.testing import MemoryStream

    stream = MemoryStream("k string, v int", spark)
    seen = []

    def each(batch, batch_id):
        ranked = batch.select("k", "v", F.rank().over(Window.partitionBy("k").orderBy("v")))
        seen.extend(sorted(tuple(r) for r in ranked.collect()))

    query = stream.toDF().writeStream.foreachBatch(each) \
        .option("checkpointLocation", str(tmp_path / "cp")).start()
    stream.addData([("x", 3), ("x", 1), ("y", 2)])
    query.processAllAvailable()
    query.stop()
    assert seen == [("x", 1, 1), ("x", 3, 2), ("y", 2, 1)]


def test_window_function_in_a_streaming_query_is_rejected_before_start(spark, tmp_path):
    from unbounded.errors import UnsupportedOperationException
    from unbounded.testing import MemoryStream

    stream = MemoryStream("k string, v int", spark)
    ranked = stream.toDF().select("k", F.sum("v").over(Window.partitionBy("k")))
    with pytest.raises(UnsupportedOperationException,
                       match="Non-time-based windows are not supported on streaming"):
        ranked.writeStream.format("memory").queryName("w") \
            .option("checkpointLocation", str(tmp_path / "cp")).start()


def test_ranking_function_without_over_is_rejected(df):
    with pytest.raises(AnalysisException, match="WINDOW_FUNCTION_WITHOUT_OVER_CLAUSE"):
        df.select(F.row_number()).collect()


def test_running_and_reverse_running_frames_for_every_running_aggregate(spark):
    df = spark.createDataFrame([("a", 1, 10), ("a", 2, None), ("a", 3, 5), ("b", 1, 7)],
                               "k string, t int, v int")
    w = Window.partitionBy("k").orderBy("t")
    aggs = (F.count("*"), F.count("v"), F.min("v"), F.max("v"), F.first("v"), F.last("v"),
            F.first("v", True), F.last("v", True), F.avg("v"))
    to_now = [a.over(w.rowsBetween(Window.unboundedPreceding, 0)) for a in aggs]
    to_end = [a.over(w.rowsBetween(0, Window.unboundedFollowing)) for a in aggs]
    out = sorted(tuple(r) for r in df.select("k", "t", *to_now, *to_end).collect())
    assert out == [
        ("a", 1, 1, 1, 10, 10, 10, 10, 10, 10, 10.0, 3, 2, 5, 10, 10, 5, 10, 5, 7.5),
        ("a", 2, 2, 1, 10, 10, 10, None, 10, 10, 10.0, 2, 1, 5, 5, None, 5, 5, 5, 5.0),
        ("a", 3, 3, 2, 5, 10, 10, 5, 10, 5, 7.5, 1, 1, 5, 5, 5, 5, 5, 5, 5.0),
        ("b", 1, 1, 1, 7, 7, 7, 7, 7, 7, 7.0, 1, 1, 7, 7, 7, 7, 7, 7, 7.0)]


def test_star_with_a_window_column_after_a_join_with_repeated_names(spark):
    a = spark.createDataFrame([(1, "x"), (2, "y")], "id int, v string").alias("a")
    b = spark.createDataFrame([(1, "p"), (2, "q")], "id int, w string").alias("b")
    joined = a.join(b, F.col("a.id") == F.col("b.id"))
    out = joined.select("*", F.row_number().over(Window.orderBy(F.col("a.id").desc()))
                        .alias("rn"))
    assert out.columns == ["id", "v", "id", "w", "rn"]
    assert sorted(tuple(r) for r in out.collect()) == [(1, "x", 1, "p", 2), (2, "y", 2, "q", 1)]
    assert sorted(tuple(r) for r in out.select("b.w", "rn").collect()) == [("p", 2), ("q", 1)]
