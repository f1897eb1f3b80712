"""spark.sql's ROLLUP, CUBE, GROUPING SETS (with grouping()/grouping_id()), PIVOT and
UNPIVOT: every expected row, column name and type below is PySpark 4.3's output for the
same query on the same views (tests/streaming/test_spark_oracle_grouping_sql.py runs
them against Spark)."""

from __future__ import annotations

from typing import Any

import pytest

from unbounded.errors import AnalysisException
from unbounded.testing import (
    AddData,
    CheckAnswer,
    MemoryStream,
    StartStream,
    StopStream,
    run_stream_test,
)

G = ([("x", "p", 1), ("x", "q", 2), ("y", "p", 3), ("y", None, 4), (None, "p", 5),
      ("x", "p", 6)], "a STRING, b STRING, c INT")
P = ([("r1", "x", 1, 1.5), ("r1", "y", 2, 2.5), ("r2", "x", 3, None), ("r2", "z", 4, 4.5),
      ("r1", "x", 5, 0.5)], "k STRING, cat STRING, v INT, w DOUBLE")
U = ([(1, 10, None, 30), (2, 20, 21, None), (3, None, None, None)],
     "id INT, q1 INT, q2 INT, q3 BIGINT")


@pytest.fixture
def views(spark: Any) -> Any:
    for name, (rows, schema) in {"g": G, "p": P, "u": U}.items():
        spark.createDataFrame(rows, schema).createOrReplaceTempView(name)
    return spark


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=repr)


def _check(spark: Any, query: str, columns: list[str], types: list[str],
           rows: list[tuple[Any, ...]], *, ordered: bool = False) -> None:
    df = spark.sql(query)
    assert df.columns == columns
    assert [f.dataType.simpleString() for f in df.schema.fields] == types
    actual = [tuple(r) for r in df.collect()]
    assert actual == rows if ordered else _sorted(actual) == _sorted(rows)


ROLLUP_AB = [("x", "p", 7), ("x", "q", 2), ("y", "p", 3), ("x", None, 9), (None, None, 21),
             ("y", None, 7), ("y", None, 4), (None, "p", 5), (None, None, 5)]
CUBE_AB_MAX = [("x", "p", 6), ("x", "q", 2), ("y", "p", 3), ("x", None, 6), (None, "p", 6),
               (None, None, 6), (None, "q", 2), ("y", None, 4), ("y", None, 4),
               (None, None, 4), (None, "p", 5), (None, None, 5)]
A_ROLLUP_B = [("x", "p", 7), ("x", "q", 2), ("y", "p", 3), ("x", None, 9), ("y", None, 7),
              ("y", None, 4), (None, "p", 5), (None, None, 5)]
BY_A = [("x", 9), ("y", 7), (None, 21), (None, 5)]


@pytest.mark.parametrize("group_by", ["ROLLUP(a, b)", "a, b WITH ROLLUP",
                                      "GROUPING SETS ((a, b), (a), ())"])
def test_rollup_forms_give_spark_s_rows(views: Any, group_by: str) -> None:
    _check(views, f"SELECT a, b, sum(c) AS s FROM g GROUP BY {group_by}",
           ["a", "b", "s"], ["string", "string", "bigint"], ROLLUP_AB)


@pytest.mark.parametrize("group_by", ["CUBE(a, b)", "a, b WITH CUBE", "CUBE(a), CUBE(b)"])
def test_cube_forms_give_spark_s_rows(views: Any, group_by: str) -> None:
    _check(views, f"SELECT a, b, max(c) AS m FROM g GROUP BY {group_by}",
           ["a", "b", "m"], ["string", "string", "int"], CUBE_AB_MAX)


def test_cube_names_unaliased_aggregates_as_spark(views: Any) -> None:
    _check(views, "SELECT a, b, sum(c), count(*) AS n FROM g GROUP BY CUBE(a, b)",
           ["a", "b", "sum(c)", "n"], ["string", "string", "bigint", "bigint"],
           [("x", "p", 7, 2), ("x", "q", 2, 1), ("y", "p", 3, 1), ("x", None, 9, 3),
            (None, "p", 15, 4), (None, None, 21, 6), (None, "q", 2, 1), ("y", None, 7, 2),
            ("y", None, 4, 1), (None, None, 4, 1), (None, "p", 5, 1), (None, None, 5, 1)])


def test_grouping_and_grouping_id_in_the_select_list(views: Any) -> None:
    _check(views, "SELECT a, b, sum(c) AS s, grouping(a) AS ga, grouping(b), grouping_id() "
           "AS gid, grouping_id(a, b) FROM g GROUP BY GROUPING SETS ((a, b), (a), ())",
           ["a", "b", "s", "ga", "grouping(b)", "gid", "grouping_id(a, b)"],
           ["string", "string", "bigint", "tinyint", "tinyint", "bigint", "bigint"],
           [("x", "p", 7, 0, 0, 0, 0), ("x", "q", 2, 0, 0, 0, 0), ("y", "p", 3, 0, 0, 0, 0),
            ("x", None, 9, 0, 1, 1, 1), (None, None, 21, 1, 1, 3, 3),
            ("y", None, 7, 0, 1, 1, 1), ("y", None, 4, 0, 0, 0, 0),
            (None, "p", 5, 0, 0, 0, 0), (None, None, 5, 0, 1, 1, 1)])


def test_hive_grouping_id_virtual_column(views: Any) -> None:
    _check(views, "SELECT a, b, grouping__id FROM g GROUP BY CUBE(a, b)",
           ["a", "b", "grouping__id"], ["string", "string", "bigint"],
           [("x", "p", 0), ("x", "q", 0), ("y", "p", 0), ("x", None, 1), (None, "p", 2),
            (None, None, 3), (None, "q", 2), ("y", None, 1), ("y", None, 0),
            (None, None, 2), (None, "p", 0), (None, None, 1)])


def test_having_and_order_by_read_grouping_functions(views: Any) -> None:
    _check(views, "SELECT a, b, sum(c) AS s FROM g GROUP BY ROLLUP(a, b) "
           "HAVING grouping(b) = 1", ["a", "b", "s"], ["string", "string", "bigint"],
           [("x", None, 9), (None, None, 21), ("y", None, 7), (None, None, 5)])
    _check(views, "SELECT a, sum(c) AS s, grouping_id() AS gid FROM g GROUP BY CUBE(a) "
           "HAVING sum(c) > 5 ORDER BY gid, a", ["a", "s", "gid"],
           ["string", "bigint", "bigint"], [("x", 9, 0), ("y", 7, 0), (None, 21, 1)],
           ordered=True)
    _check(views, "SELECT a, sum(c) AS s FROM g GROUP BY ROLLUP(a) ORDER BY grouping(a), a",
           ["a", "s"], ["string", "bigint"], [(None, 5), ("x", 9), ("y", 7), (None, 21)],
           ordered=True)


@pytest.mark.parametrize("group_by", ["a, ROLLUP(b)", "a, b GROUPING SETS ((a, b), (a))"])
def test_plain_keys_multiply_with_grouping_sets(views: Any, group_by: str) -> None:
    _check(views, f"SELECT a, b, sum(c) AS s FROM g GROUP BY {group_by}",
           ["a", "b", "s"], ["string", "string", "bigint"], A_ROLLUP_B)


@pytest.mark.parametrize(("select", "group_by"), [
    ("a, sum(c)", "GROUPING SETS (a, ())"), ("a AS x, sum(c)", "ROLLUP(x)"),
    ("a, sum(c)", "ROLLUP(1)"), ("upper(a) AS ua, sum(c)", "ROLLUP(upper(a))")])
def test_grouping_keys_by_alias_ordinal_and_expression(views: Any, select: str,
                                                       group_by: str) -> None:
    df = views.sql(f"SELECT {select} FROM g GROUP BY {group_by}")
    assert df.columns[1] == "sum(c)"
    rows = [tuple(r) for r in df.collect()]
    expected = [(k.upper() if k and "upper" in select else k, s) for k, s in BY_A]
    assert _sorted(rows) == _sorted(expected)


def test_a_grouping_set_listed_twice_gives_its_rows_twice(views: Any) -> None:
    _check(views, "SELECT a, sum(c) AS s FROM g GROUP BY ROLLUP(a, a)", ["a", "s"],
           ["string", "bigint"],
           [("x", 9), ("x", 9), ("y", 7), ("y", 7), (None, 21), (None, 5), (None, 5)])
    _check(views, "SELECT a, count(*) FROM g GROUP BY a, CUBE(a)", ["a", "count(1)"],
           ["string", "bigint"], [("x", 3), ("x", 3), ("y", 2), ("y", 2), (None, 1), (None, 1)])


def test_empty_grouping_set_alone_is_one_total(views: Any) -> None:
    assert [tuple(r) for r in views.sql(
        "SELECT sum(c) FROM g GROUP BY GROUPING SETS (())").collect()] == [(21,)]


@pytest.mark.parametrize(("query", "error_class"), [
    ("SELECT grouping(a) FROM g GROUP BY a", "UNSUPPORTED_GROUPING_EXPRESSION"),
    ("SELECT a, grouping(b) FROM g GROUP BY ROLLUP(a)", "GROUPING_COLUMN_MISMATCH"),
    ("SELECT a, b, grouping_id(a) FROM g GROUP BY CUBE(a, b)", "GROUPING_ID_COLUMN_MISMATCH"),
    ("SELECT a, grouping_id(b, a) FROM g GROUP BY CUBE(a, b)", "GROUPING_ID_COLUMN_MISMATCH"),
])
def test_misused_grouping_functions_raise_spark_s_error(views: Any, query: str,
                                                        error_class: str) -> None:
    with pytest.raises(AnalysisException) as caught:
        views.sql(query).collect()
    assert caught.value.error_class == error_class


def test_rollup_over_a_stream_keeps_its_totals_across_a_restart(spark: Any, tmp_path: Any,
                                                                ) -> None:
    stream = MemoryStream("a STRING, b STRING, c INT", spark)
    stream.toDF().createOrReplaceTempView("events")
    totals = spark.sql("SELECT a, b, sum(c) AS s, grouping_id() AS gid FROM events "
                       "GROUP BY ROLLUP(a, b)")
    latest: list[tuple[Any, ...]] = []

    def start() -> Any:
        def sink(batch: Any, batch_id: int) -> None:
            latest[:] = [tuple(r) for r in batch.collect()]

        return (totals.writeStream.outputMode("complete").foreachBatch(sink)
                .option("checkpointLocation", str(tmp_path / "cp")).start())

    run_stream_test(
        start, lambda: latest,
        AddData(stream, [("x", "p", 1), ("x", "q", 2)]),
        CheckAnswer([("x", "p", 1, 0), ("x", "q", 2, 0), ("x", None, 3, 1),
                     (None, None, 3, 3)]),
        StopStream(),
        AddData(stream, [("x", "p", 4), ("y", None, 5)]),
        StartStream(),
        CheckAnswer([("x", "p", 5, 0), ("x", "q", 2, 0), ("x", None, 7, 1),
                     ("y", None, 5, 0), ("y", None, 5, 1), (None, None, 12, 3)]),
    )


# ---- PIVOT -------------------------------------------------------------------------
def test_pivot_groups_by_the_columns_it_does_not_read(views: Any) -> None:
    _check(views, "SELECT * FROM (SELECT k, cat, v FROM p) PIVOT (sum(v) FOR cat IN "
           "('x', 'y', 'z'))", ["k", "x", "y", "z"], ["string", "bigint", "bigint", "bigint"],
           [("r1", 6, 2, None), ("r2", 3, None, 4)])
    _check(views, "SELECT * FROM p PIVOT (sum(v) FOR cat IN ('x', 'y'))",
           ["k", "w", "x", "y"], ["string", "double", "bigint", "bigint"],
           [("r1", 1.5, 1, None), ("r1", 2.5, None, 2), ("r2", 4.5, None, None),
            ("r2", None, 3, None), ("r1", 0.5, 5, None)])


def test_pivot_of_an_aliased_table_reads_columns_through_the_alias(views: Any) -> None:
    _check(views, "SELECT * FROM p AS t PIVOT (sum(t.v) FOR cat IN ('x'))",
           ["k", "w", "x"], ["string", "double", "bigint"],
           [("r1", 1.5, 1), ("r1", 2.5, None), ("r2", None, 3), ("r2", 4.5, None),
            ("r1", 0.5, 5)])


def test_pivot_names_several_aggregates_value_underscore_alias_or_sql(views: Any) -> None:
    _check(views, "SELECT * FROM (SELECT k, cat, v, w FROM p) PIVOT (sum(v) AS s, avg(w) "
           "FOR cat IN ('x' AS ex, 'y'))", ["k", "ex_s", "ex_avg(w)", "y_s", "y_avg(w)"],
           ["string", "bigint", "double", "bigint", "double"],
           [("r1", 6, 1.0, 2, 2.5), ("r2", 3, None, None, None)])
    _check(views, "SELECT * FROM (SELECT k, cat, v FROM p) PIVOT (sum(v), max(v) FOR cat IN "
           "('x', 'y'))", ["k", "x_sum(v)", "x_max(v)", "y_sum(v)", "y_max(v)"],
           ["string", "bigint", "int", "bigint", "int"],
           [("r1", 6, 5, 2, 2), ("r2", 3, 3, None, None)])


def test_pivot_with_one_aggregate_names_columns_by_the_value_alias(views: Any) -> None:
    _check(views, "SELECT * FROM (SELECT k, cat, v FROM p) PIVOT (sum(v) AS total FOR cat "
           "IN ('x' AS ex, 'y' AS why))", ["k", "ex", "why"], ["string", "bigint", "bigint"],
           [("r1", 6, 2), ("r2", 3, None)])


def test_pivot_on_two_columns_matches_tuples_and_prints_unaliased_ones(views: Any) -> None:
    _check(views, "SELECT * FROM (SELECT k, cat, v, w > 1 AS big FROM p) PIVOT (sum(v) FOR "
           "(cat, big) IN (('x', true) AS xt, ('y', true)))", ["k", "xt", "{y, true}"],
           ["string", "bigint", "bigint"], [("r1", 1, 2), ("r2", None, None)])


def test_pivot_on_integers_with_an_alias_and_later_clauses(views: Any) -> None:
    _check(views, "SELECT * FROM (SELECT cat, v FROM p) PIVOT (count(*) FOR v IN (1, 2, 3))",
           ["cat", "1", "2", "3"], ["string", "bigint", "bigint", "bigint"],
           [("x", 1, None, 1), ("y", None, 1, None), ("z", None, None, None)])
    _check(views, "SELECT * FROM (SELECT k, cat, v FROM p) PIVOT (sum(v * 2) FOR cat IN "
           "('x', 'y')) AS pv ORDER BY pv.k", ["k", "x", "y"], ["string", "bigint", "bigint"],
           [("r1", 12, 4), ("r2", 6, None)], ordered=True)
    _check(views, "SELECT k, x FROM (SELECT k, cat, v FROM p) PIVOT (count(v) FOR cat IN "
           "('x', 'q')) ORDER BY k", ["k", "x"], ["string", "bigint"], [("r1", 2), ("r2", 1)],
           ordered=True)


def test_pivot_on_an_unknown_column_is_unresolved(views: Any) -> None:
    with pytest.raises(AnalysisException) as caught:
        views.sql("SELECT * FROM p PIVOT (sum(v) FOR nope IN ('x'))").collect()
    assert caught.value.error_class.startswith("UNRESOLVED_COLUMN")


# ---- UNPIVOT -----------------------------------------------------------------------
def test_unpivot_drops_null_values_and_widens_to_a_common_type(views: Any) -> None:
    _check(views, "SELECT * FROM u UNPIVOT (val FOR quarter IN (q1, q2, q3))",
           ["id", "quarter", "val"], ["int", "string", "bigint"],
           [(1, "q1", 10), (1, "q3", 30), (2, "q1", 20), (2, "q2", 21)])


def test_unpivot_include_nulls_with_an_aliased_column(views: Any) -> None:
    _check(views, "SELECT * FROM u UNPIVOT INCLUDE NULLS (val FOR quarter IN "
           "(q1 AS first, q2, q3))", ["id", "quarter", "val"], ["int", "string", "bigint"],
           [(1, "first", 10), (1, "q2", None), (1, "q3", 30), (2, "first", 20), (2, "q2", 21),
            (2, "q3", None), (3, "first", None), (3, "q2", None), (3, "q3", None)])


def test_unpivot_column_groups_name_unaliased_groups_by_joined_names(views: Any) -> None:
    _check(views, "SELECT * FROM u UNPIVOT ((a, b) FOR pair IN ((q1, q2) AS one, (q2, q3)))",
           ["id", "pair", "a", "b"], ["int", "string", "int", "bigint"],
           [(1, "one", 10, None), (1, "q2_q3", None, 30), (2, "one", 20, 21),
            (2, "q2_q3", 21, None)])


def test_unpivot_keeps_unlisted_columns_as_ids_under_its_alias(views: Any) -> None:
    _check(views, "SELECT * FROM u UNPIVOT (val FOR quarter IN (q1, q2)) AS up ORDER BY up.id",
           ["id", "q3", "quarter", "val"], ["int", "bigint", "string", "int"],
           [(1, 30, "q1", 10), (2, None, "q1", 20), (2, None, "q2", 21)], ordered=True)
    _check(views, "SELECT id, quarter, val FROM u UNPIVOT EXCLUDE NULLS (val FOR quarter IN "
           "(q1, q2)) WHERE val > 10 ORDER BY id, quarter", ["id", "quarter", "val"],
           ["int", "string", "int"], [(2, "q1", 20), (2, "q2", 21)], ordered=True)


@pytest.mark.parametrize(("query", "error_class"), [
    ("SELECT * FROM (SELECT id, q1, 'a' AS s FROM u) UNPIVOT (val FOR col IN (q1, s))",
     "UNPIVOT_VALUE_DATA_TYPE_MISMATCH"),
    ("SELECT * FROM u UNPIVOT ((a, b) FOR pair IN ((q1, q2), (q3)))",
     "UNPIVOT_VALUE_SIZE_MISMATCH"),
])
def test_unpivot_errors_are_spark_s(views: Any, query: str, error_class: str) -> None:
    with pytest.raises(AnalysisException) as caught:
        views.sql(query).collect()
    assert caught.value.error_class == error_class


def test_unpivot_over_a_stream_runs_per_batch(spark: Any) -> None:
    stream = MemoryStream("a STRING, b STRING, c INT", spark)
    stream.toDF().createOrReplaceTempView("events")
    df = spark.sql("SELECT * FROM events UNPIVOT (val FOR col IN (b, a))")
    assert df.isStreaming
    query = df.writeStream.format("memory").queryName("unpivoted").start()
    try:
        stream.addData([("x", "p", 1), (None, "q", 2)])
        query.processAllAvailable()
        assert _sorted([tuple(r) for r in spark.table("unpivoted").collect()]) == _sorted(
            [(1, "b", "p"), (1, "a", "x"), (2, "b", "q")])
    finally:
        query.stop()
