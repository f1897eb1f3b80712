"""A SQL window function that needs an ordered window (nth_value, row_number, lag...)
written without ORDER BY: PySpark 4.3's error class and message (local[1], both ANSI
modes)."""

from __future__ import annotations

from typing import Any

import pytest

from unbounded.errors import AnalysisException


@pytest.fixture
def p(spark: Any) -> Any:
    spark.createDataFrame([(1, 10), (2, 5)], "k int, v int").createOrReplaceTempView("p")
    return spark


@pytest.mark.parametrize(("call", "shown"), [("nth_value(v, 2)", "nth_value(v, 2)"),
                                             ("row_number()", "row_number()"),
                                             ("lag(v)", "lag(v, 1, NULL)")])
def test_a_sql_window_function_without_order_by_is_spark_s_error(p: Any, call: str,
                                                                 shown: str) -> None:
    with pytest.raises(AnalysisException) as err:
        p.sql(f"SELECT k, {call} OVER (PARTITION BY k) AS r FROM p")
    assert err.value.error_class == "WINDOW_FUNCTION_FRAME_NOT_ORDERED"
    assert str(err.value).startswith(
        f"[WINDOW_FUNCTION_FRAME_NOT_ORDERED] Window function {call.partition('(')[0]} requires "
        "the window to be ordered. You need to add an ORDER BY clause. For example: SELECT "
        f"{shown} OVER (PARTITION BY window_partition ORDER BY window_ordering) FROM table.")
