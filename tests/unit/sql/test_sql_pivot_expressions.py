"""PIVOT values written as expressions over aggregates (``sum(v) + 1 AS s``): every
expected row, column name and type is PySpark 4.3's for the same query (local[1], ANSI on
and off give the same answers)."""

from __future__ import annotations

from typing import Any

import pytest

from unbounded.errors import AnalysisException

ROWS = [(1, "a", 10), (1, "b", 20), (2, "a", 5), (2, None, 7)]


@pytest.fixture
def p(spark: Any) -> Any:
    spark.createDataFrame(ROWS, "k int, c string, v int").createOrReplaceTempView("p")
    return spark


def _answer(spark: Any, sql: str) -> tuple[str, list[tuple[Any, ...]]]:
    df = spark.sql(sql)
    return df.schema.simpleString(), [tuple(r) for r in df.collect()]


@pytest.mark.parametrize(("aggregates", "schema", "rows"), [
    ("sum(v) + 1 AS s FOR c IN ('a', 'b')", "struct<k:int,a:bigint,b:bigint>",
     [(1, 11, 21), (2, 6, None)]),
    ("sum(v) + 1 FOR c IN ('a', 'b')", "struct<k:int,a:bigint,b:bigint>",
     [(1, 11, 21), (2, 6, None)]),
    ("sum(v) + 1 FOR c IN ('a' AS x, 'b' AS y)", "struct<k:int,x:bigint,y:bigint>",
     [(1, 11, 21), (2, 6, None)]),
    ("sum(v) * count(v) FOR c IN ('a' AS x, 'b')", "struct<k:int,x:bigint,b:bigint>",
     [(1, 10, 20), (2, 5, None)]),
    ("sum(v) + 1 AS s, max(v) AS m FOR c IN ('a', 'b')",
     "struct<k:int,a_s:bigint,a_m:int,b_s:bigint,b_m:int>",
     [(1, 11, 10, 21, 20), (2, 6, 5, None, None)]),
    ("sum(v) + max(v) AS s, count(*) AS n FOR c IN ('a', 'b')",
     "struct<k:int,a_s:bigint,a_n:bigint,b_s:bigint,b_n:bigint>",
     [(1, 20, 1, 40, 1), (2, 10, 1, None, None)]),
    ("coalesce(sum(v), 0) AS z FOR c IN ('a', 'b')", "struct<k:int,a:bigint,b:bigint>",
     [(1, 10, 20), (2, 5, None)]),
])
@pytest.mark.parametrize("ansi", ["true", "false"])
def test_pivot_of_an_expression_over_aggregates_gives_spark_s_columns(
        p: Any, ansi: str, aggregates: str, schema: str, rows: list[Any]) -> None:
    p.conf.set("spark.sql.ansi.enabled", ansi)
    assert _answer(p, f"SELECT * FROM p PIVOT ({aggregates}) ORDER BY k") == (schema, rows)


@pytest.mark.parametrize(("aggregate", "column"), [("v + 1 AS z", "v"),
                                                   ("sum(v) + k AS z", "k")])
def test_pivot_reading_a_column_outside_any_aggregate_is_spark_s_error(
        p: Any, aggregate: str, column: str) -> None:
    with pytest.raises(AnalysisException, match=f"but '{column}' did not appear in any "
                       "aggregate function") as err:
        p.sql(f"SELECT * FROM p PIVOT ({aggregate} FOR c IN ('a', 'b'))").collect()
    assert err.value.error_class == "_LEGACY_ERROR_TEMP_1006"
