"""nth_value over every frame Spark gives it, and window min/max over doubles holding
NaN: the expected rows and names are PySpark 4.3's output for the same queries on the
same data (tests/streaming/test_spark_oracle_grouping_sql.py runs them against Spark)."""

from __future__ import annotations

from typing import Any

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import Window
from unbounded.sql import functions as F

W = ([("a", 1, 10), ("a", 2, None), ("a", 3, 30), ("a", 3, 30), ("a", 4, 40), ("b", 1, None),
      ("b", 2, 7), ("b", 3, 8)], "k STRING, o INT, v INT")
NAN = float("nan")
N = ([("a", 1, 1.0), ("a", 2, NAN), ("a", 3, 3.0), ("b", 1, 2.0), ("b", 2, None),
      ("b", 3, -1.0), ("c", 1, NAN), ("c", 2, None)], "k STRING, o INT, d DOUBLE")


@pytest.fixture
def views(spark: Any) -> Any:
    spark.createDataFrame(*W).createOrReplaceTempView("w")
    spark.createDataFrame(*N).createOrReplaceTempView("n")
    return spark


def _column(spark: Any, query: str) -> list[Any]:
    return [r[-1] for r in spark.sql(query).collect()]


def _over(frame: str) -> str:
    return f"OVER (PARTITION BY k ORDER BY o{frame}) FROM w ORDER BY k, o"


@pytest.mark.parametrize(("call", "frame", "expected"), [
    ("nth_value(v, 2)", "", [None, None, None, None, None, None, 7, 7]),
    ("nth_value(v, 2, true)", "", [None, None, 30, 30, 30, None, None, 8]),
    ("nth_value(v, 3)", " ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING",
     [30, 30, 30, 30, 30, 8, 8, 8]),
    ("nth_value(v, 1)", " ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING",
     [10, 10, None, 30, 30, None, None, 7]),
    ("nth_value(v, 2)", " ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING",
     [None, 30, 30, 40, None, 7, 8, None]),
    ("nth_value(v, 2, true)", " ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING",
     [None, 30, 30, 30, 40, None, 8, 8]),
    ("nth_value(v, 2)", " RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING",
     [None, 30, 30, 30, None, 7, 8, None]),
])
def test_nth_value_reads_the_frame_as_spark(views: Any, call: str, frame: str,
                                            expected: list[Any]) -> None:
    assert _column(views, f"SELECT k, o, {call} {_over(frame)}") == expected


def test_nth_value_is_null_until_the_nth_row_of_the_default_frame(views: Any) -> None:
    """With ORDER BY the frame ends at the current row's last peer, so the tied o=3
    rows of partition a see three rows and the value of row 2 (NULL here)."""
    window = Window.partitionBy("k").orderBy("o")
    out = views.table("w").select("k", "o", F.nth_value("v", 2).over(window)) \
        .orderBy("k", "o")
    assert out.columns[-1] == ("nth_value(v, 2) OVER (PARTITION BY k ORDER BY o ASC NULLS "
                               "FIRST RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")
    assert [r[-1] for r in out.collect()] == [None, None, None, None, None, None, 7, 7]


def test_nth_value_ignore_nulls_names_its_column_as_spark(views: Any) -> None:
    window = Window.partitionBy("k").orderBy("o")
    out = views.table("w").select("k", "o", F.nth_value("v", 2, True).over(window))
    assert out.columns[-1].startswith("nth_value(v, 2) ignore nulls OVER (PARTITION BY k")
    assert sorted((r[0], r[1], r[2]) for r in out.collect()) == [
        ("a", 1, None), ("a", 2, None), ("a", 3, 30), ("a", 3, 30), ("a", 4, 30),
        ("b", 1, None), ("b", 2, None), ("b", 3, 8)]


def test_nth_value_ignore_nulls_in_sql_syntax_equals_the_flag(views: Any) -> None:
    """`nth_value(v, 2) IGNORE NULLS` is the SQL spelling of the third argument."""
    query = ("SELECT k, o, nth_value(v, 2) {} OVER (PARTITION BY k ORDER BY o) AS n FROM w "
             "ORDER BY k, o")
    assert _column(views, query.format("IGNORE NULLS")) == [None, None, 30, 30, 30, None,
                                                           None, 8]
    assert _column(views, query.format("IGNORE NULLS")) == _column(
        views, query.format("").replace("(v, 2)", "(v, 2, true)"))


@pytest.mark.parametrize(("column", "error_class"), [
    (F.nth_value("v", 0), "DATATYPE_MISMATCH.VALUE_OUT_OF_RANGE"),
    (F.nth_value("v", F.col("o")), "DATATYPE_MISMATCH.NON_FOLDABLE_INPUT"),
])
def test_nth_value_offset_must_be_a_positive_literal(views: Any, column: Any,
                                                     error_class: str) -> None:
    with pytest.raises(AnalysisException) as caught:
        views.table("w").select(column.over(Window.partitionBy("k").orderBy("o"))).collect()
    assert caught.value.error_class == error_class


def test_nth_value_without_over_is_spark_s_error(views: Any) -> None:
    with pytest.raises(AnalysisException) as caught:
        views.sql("SELECT nth_value(v, 2) FROM w").collect()
    assert caught.value.error_class == "WINDOW_FUNCTION_WITHOUT_OVER_CLAUSE"


def _same(actual: list[Any], expected: list[Any]) -> bool:
    """Equal, NaN equal to NaN."""
    return [repr(a) for a in actual] == [repr(e) for e in expected]


@pytest.mark.parametrize(("call", "frame", "expected"), [
    ("max(d)", "ORDER BY o", [1.0, NAN, NAN, 2.0, 2.0, 2.0, NAN, NAN]),
    ("min(d)", "ORDER BY o", [1.0, 1.0, 1.0, 2.0, 2.0, -1.0, NAN, NAN]),
    ("max(d)", "", [NAN, NAN, NAN, 2.0, 2.0, 2.0, NAN, NAN]),
    ("min(d)", "", [1.0, 1.0, 1.0, -1.0, -1.0, -1.0, NAN, NAN]),
    ("max(d)", "ORDER BY o ROWS BETWEEN 1 PRECEDING AND CURRENT ROW",
     [1.0, NAN, NAN, 2.0, 2.0, -1.0, NAN, NAN]),
    ("min(d)", "ORDER BY o ROWS BETWEEN 1 PRECEDING AND CURRENT ROW",
     [1.0, 1.0, 3.0, 2.0, 2.0, -1.0, NAN, NAN]),
    ("max(d)", "ORDER BY o ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING",
     [NAN, NAN, 3.0, 2.0, -1.0, -1.0, NAN, None]),
    ("min(d)", "ORDER BY o ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING",
     [1.0, 3.0, 3.0, -1.0, -1.0, -1.0, NAN, None]),
])
def test_window_min_max_order_nan_above_every_number(views: Any, call: str, frame: str,
                                                     expected: list[Any]) -> None:
    query = f"SELECT k, o, {call} OVER (PARTITION BY k {frame}) FROM n ORDER BY k, o"
    assert _same(_column(views, query), expected)
