"""DataFrame methods PySpark code uses every day beyond select/filter/join: renaming,
missing values, set operations by row, summaries, sampling, local iteration. Expected
rows were read off PySpark 4.3 on the same input."""

from __future__ import annotations

import math

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import functions as F

NAN = "NaN"  # NaN != NaN: rows are compared with this marker in its place


@pytest.fixture
def df(spark):
    rows = [(1, 2.5, "a", True), (None, float("nan"), None, None), (3, None, "c", False),
            (3, None, "c", False)]
    return spark.createDataFrame(rows, "i int, d double, s string, b boolean")


@pytest.fixture
def other(spark):
    return spark.createDataFrame([(3, None, "c", False), (7, 1.0, "x", True)],
                                 "i int, d double, s string, b boolean")


def _rows(frame):
    def cell(v):
        return NAN if isinstance(v, float) and math.isnan(v) else v
    return sorted((tuple(cell(v) for v in r) for r in frame.collect()), key=repr)


def test_to_df_renames_every_column(df):
    renamed = df.toDF("w", "x", "y", "z")
    assert renamed.columns == ["w", "x", "y", "z"]
    assert _rows(renamed) == _rows(df)
    with pytest.raises(AnalysisException, match="one name per column"):
        df.toDF("only")


def test_fillna_by_kind_of_value(df):
    assert _rows(df.fillna(0)) == [(0, 0.0, None, None), (1, 2.5, "a", True),
                                   (3, 0.0, "c", False), (3, 0.0, "c", False)]
    assert _rows(df.fillna(1.7)) == [(1, 1.7, None, None), (1, 2.5, "a", True),
                                     (3, 1.7, "c", False), (3, 1.7, "c", False)]
    assert _rows(df.fillna("zz")) == [(1, 2.5, "a", True), (3, None, "c", False),
                                      (3, None, "c", False), (None, NAN, "zz", None)]
    assert _rows(df.fillna(True)) == [(1, 2.5, "a", True), (3, None, "c", False),
                                      (3, None, "c", False), (None, NAN, None, True)]
    assert _rows(df.na.fill({"i": 9, "s": "q", "d": 0.5})) == [
        (1, 2.5, "a", True), (3, 0.5, "c", False), (3, 0.5, "c", False), (9, 0.5, "q", None)]
    assert _rows(df.fillna(5, subset=["d"])) == [
        (1, 2.5, "a", True), (3, 5.0, "c", False), (3, 5.0, "c", False), (None, 5.0, None, None)]


def test_dropna_counts_null_and_nan_as_missing(df):
    assert _rows(df.dropna()) == [(1, 2.5, "a", True)]
    kept = [(1, 2.5, "a", True), (3, None, "c", False), (3, None, "c", False)]
    assert _rows(df.dropna(how="all")) == kept
    assert _rows(df.na.drop(thresh=2)) == kept
    assert _rows(df.dropna(subset=["d"])) == [(1, 2.5, "a", True)]


def test_replace_in_columns_of_the_same_kind(df):
    assert _rows(df.na.replace(3, 30)) == [(1, 2.5, "a", True), (30, None, "c", False),
                                           (30, None, "c", False), (None, NAN, None, None)]
    assert _rows(df.replace(["a", "c"], ["A", None])) == [
        (1, 2.5, "A", True), (3, None, None, False), (3, None, None, False),
        (None, NAN, None, None)]
    assert _rows(df.replace({2.5: 9.0})) == [(1, 9.0, "a", True), (3, None, "c", False),
                                             (3, None, "c", False), (None, NAN, None, None)]
    with pytest.raises(AnalysisException, match="MIXED_TYPE_REPLACEMENT"):
        df.replace([1, "a"], [2, "b"])


def test_set_operations_match_whole_rows_with_nulls_equal(df, other):
    assert _rows(df.intersect(other)) == [(3, None, "c", False)]
    assert _rows(df.subtract(other)) == [(1, 2.5, "a", True), (None, NAN, None, None)]
    assert _rows(df.exceptAll(other)) == [(1, 2.5, "a", True), (3, None, "c", False),
                                          (None, NAN, None, None)]
    assert _rows(df.intersectAll(other)) == [(3, None, "c", False)]
    with pytest.raises(AnalysisException, match="NUM_COLUMNS_MISMATCH"):
        df.intersect(other.select("i"))


def test_describe_and_summary_as_strings(df):
    assert [tuple(r) for r in df.describe("i", "s").collect()] == [
        ("count", "3", "3"), ("mean", "2.3333333333333335", None),
        ("stddev", "1.1547005383792517", None), ("min", "1", "a"), ("max", "3", "c")]
    assert [tuple(r) for r in df.select("i").summary().collect()] == [
        ("count", "3"), ("mean", "2.3333333333333335"), ("stddev", "1.1547005383792517"),
        ("min", "1"), ("25%", "1"), ("50%", "3"), ("75%", "3"), ("max", "3")]


def test_rows_to_the_driver(df):
    assert [tuple(r) for r in df.orderBy("i").tail(1)] == [(3, None, "c", False)]
    assert len(list(df.toLocalIterator())) == 4
    seen = []
    df.foreach(seen.append)
    assert len(seen) == 4
    assert df.filter("i = 1").toJSON() == ['{"i":1,"d":2.5,"s":"a","b":true}']


def test_sampling_is_seeded_and_splits_cover_every_row_once(spark):
    frame = spark.range(2000)
    first = sorted(r[0] for r in frame.sample(0.3, seed=7).collect())
    assert first == sorted(r[0] for r in frame.sample(fraction=0.3, seed=7).collect())
    assert 400 < len(first) < 800
    parts = frame.randomSplit([1.0, 3.0], seed=1)
    ids = [sorted(r[0] for r in p.collect()) for p in parts]
    assert sorted(ids[0] + ids[1]) == list(range(2000))
    assert 300 < len(ids[0]) < 700


def test_transform_cache_and_hints_keep_the_rows(df):
    def doubled(frame, factor):
        return frame.select((F.col("i") * factor).alias("i"))

    assert _rows(df.transform(doubled, 2).cache().hint("broadcast")) == [
        (2,), (6,), (6,), (None,)]
    assert df.persist().unpersist() is df
