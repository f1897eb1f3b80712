"""spark.sql over temporary views: every supported clause, with PySpark's rows and
column names, and clear errors for what is not supported."""

from __future__ import annotations

import datetime as dt

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import Row, SparkSession


@pytest.fixture
def views(spark: SparkSession) -> SparkSession:
    spark.createDataFrame([("a", 1, "x"), ("a", 2, "y"), ("b", 5, None)],
                          "k STRING, v INT, z STRING").createOrReplaceTempView("t")
    spark.createDataFrame([("a", "A"), ("c", "C")], "k STRING, name STRING") \
        .createOrReplaceTempView("u")
    return spark


def sql_rows(spark: SparkSession, query: str) -> tuple[list[str], list[tuple[object, ...]]]:
    df = spark.sql(query)
    return df.columns, [tuple(r) for r in df.collect()]


def test_where_projection_aliases_and_expressions(views: SparkSession) -> None:
    assert sql_rows(views, "SELECT k AS key, v * 10 AS tens, upper(k) FROM t WHERE v > 1") == (
        ["key", "tens", "upper(k)"], [("a", 20, "A"), ("b", 50, "B")])


def test_group_by_with_having_and_expressions_over_aggregates(views: SparkSession) -> None:
    query = ("SELECT k, count(*), sum(v) + 1 AS s1 FROM t GROUP BY k "
             "HAVING count(*) > 1")
    assert sql_rows(views, query) == (["k", "count(1)", "s1"], [("a", 2, 4)])


def test_having_names_a_select_alias_and_an_aggregate_not_selected(views: SparkSession) -> None:
    query = "SELECT k, sum(v) AS total FROM t GROUP BY k HAVING total > 2 AND max(v) < 5"
    assert sql_rows(views, query) == (["k", "total"], [("a", 3)])


def test_group_by_ordinal_and_alias_then_order_by_aggregate(views: SparkSession) -> None:
    assert sql_rows(views, "SELECT k AS key, max(v) FROM t GROUP BY key ORDER BY max(v) DESC") \
        == (["key", "max(v)"], [("b", 5), ("a", 2)])
    assert sql_rows(views, "SELECT k, min(v) FROM t GROUP BY 1 ORDER BY 2 DESC") == (
        ["k", "min(v)"], [("b", 5), ("a", 1)])


def test_global_aggregate_without_group_by(views: SparkSession) -> None:
    assert sql_rows(views, "SELECT count(*) AS n, avg(v) FROM t") == (
        ["n", "avg(v)"], [(3, 8 / 3)])


def test_column_neither_grouped_nor_aggregated_fails(views: SparkSession) -> None:
    with pytest.raises(AnalysisException, match="MISSING_AGGREGATION"):
        views.sql("SELECT k, v FROM t GROUP BY k")


def test_inner_join_with_qualified_columns(views: SparkSession) -> None:
    assert sql_rows(views, "SELECT t.k, t.v, u.name FROM t JOIN u ON t.k = u.k ORDER BY v") \
        == (["k", "v", "name"], [("a", 1, "A"), ("a", 2, "A")])


def test_outer_joins_keep_unmatched_rows_with_nulls(views: SparkSession) -> None:
    left = "SELECT * FROM t LEFT JOIN u USING (k) ORDER BY v"
    assert sql_rows(views, left) == (["k", "v", "z", "name"], [
        ("a", 1, "x", "A"), ("a", 2, "y", "A"), ("b", 5, None, None)])
    full = "SELECT t.*, name FROM t FULL OUTER JOIN u ON t.k = u.k ORDER BY v NULLS FIRST"
    assert sql_rows(views, full)[1] == [
        (None, None, None, "C"), ("a", 1, "x", "A"), ("a", 2, "y", "A"), ("b", 5, None, None)]
    right = "SELECT u.k, v FROM t RIGHT JOIN u ON t.k = u.k ORDER BY u.k, v"
    assert sql_rows(views, right)[1] == [("a", 1), ("a", 2), ("c", None)]


def test_semi_anti_and_cross_joins(views: SparkSession) -> None:
    assert sql_rows(views, "SELECT * FROM t LEFT SEMI JOIN u ON t.k = u.k")[1] == [
        ("a", 1, "x"), ("a", 2, "y")]
    assert sql_rows(views, "SELECT * FROM t LEFT ANTI JOIN u ON t.k = u.k")[1] == [
        ("b", 5, None)]
    assert sql_rows(views, "SELECT t.v, u.name FROM t CROSS JOIN u WHERE v = 1")[1] == [
        (1, "A"), (1, "C")]
    assert sql_rows(views, "SELECT count(*) FROM t, u")[1] == [(6,)]


def test_union_distinct_union_all_except_intersect(views: SparkSession) -> None:
    assert sql_rows(views, "SELECT k FROM t UNION SELECT k FROM u ORDER BY k")[1] == [
        ("a",), ("b",), ("c",)]
    assert sql_rows(views, "SELECT k FROM t UNION ALL SELECT k FROM u")[1] == [
        ("a",), ("a",), ("b",), ("a",), ("c",)]
    assert sql_rows(views, "SELECT k FROM t EXCEPT SELECT k FROM u")[1] == [("b",)]
    assert sql_rows(views, "SELECT k FROM t INTERSECT SELECT k FROM u")[1] == [("a",)]


def test_window_functions_over_partitions_and_frames(views: SparkSession) -> None:
    query = ("SELECT k, v, row_number() OVER (PARTITION BY k ORDER BY v DESC) AS rn, "
             "sum(v) OVER (PARTITION BY k ORDER BY v ROWS BETWEEN 1 PRECEDING AND "
             "CURRENT ROW) AS s, lag(v) OVER (PARTITION BY k ORDER BY v) AS prev "
             "FROM t ORDER BY k, v")
    assert sql_rows(views, query) == (["k", "v", "rn", "s", "prev"], [
        ("a", 1, 2, 1, None), ("a", 2, 1, 3, 1), ("b", 5, 1, 5, None)])
    top = ("SELECT k, v FROM (SELECT k, v, row_number() OVER (PARTITION BY k ORDER BY v "
           "DESC) AS rn FROM t) x WHERE rn = 1 ORDER BY k")
    assert sql_rows(views, top)[1] == [("a", 2), ("b", 5)]


def test_window_functions_over_grouped_rows_and_sorted_by(views: SparkSession) -> None:
    query = ("SELECT k, sum(v) AS s, rank() OVER (ORDER BY sum(v) DESC) AS r, "
             "sum(sum(v)) OVER () AS total FROM t GROUP BY k ORDER BY r")
    assert sql_rows(views, query) == (["k", "s", "r", "total"],
                                      [("b", 5, 1, 8), ("a", 3, 2, 8)])
    assert sql_rows(views, "SELECT k, count(*) OVER (PARTITION BY k) AS n FROM t "
                           "ORDER BY n DESC, k")[1] == [("a", 2), ("a", 2), ("b", 1)]


def test_window_functions_in_expression_strings(spark: SparkSession) -> None:
    df = spark.range(3).selectExpr("id", "rank() OVER (ORDER BY id DESC) AS r")
    assert [tuple(r) for r in df.orderBy("id").collect()] == [(0, 3), (1, 2), (2, 1)]
    with pytest.raises(AnalysisException, match="Named windows"):
        spark.range(3).selectExpr("rank() OVER w")


def test_natural_joins_use_the_common_columns(views: SparkSession) -> None:
    assert sql_rows(views, "SELECT * FROM t NATURAL LEFT JOIN u ORDER BY v") == (
        ["k", "v", "z", "name"],
        [("a", 1, "x", "A"), ("a", 2, "y", "A"), ("b", 5, None, None)])


def test_in_subquery_in_where_is_a_semi_join(views: SparkSession) -> None:
    query = ("SELECT k, v FROM t WHERE v > 1 AND k IN (SELECT k FROM u WHERE name = 'A') "
             "ORDER BY v")
    assert sql_rows(views, query) == (["k", "v"], [("a", 2)])
    with pytest.raises(AnalysisException, match="IN_SUBQUERY_LENGTH_MISMATCH"):
        views.sql("SELECT k FROM t WHERE k IN (SELECT k, name FROM u)")


def test_cte_and_subquery_in_from(views: SparkSession) -> None:
    cte = "WITH c AS (SELECT k, v * 2 AS w FROM t WHERE v > 1) SELECT * FROM c ORDER BY w"
    assert sql_rows(views, cte) == (["k", "w"], [("a", 4), ("b", 10)])
    sub = ("SELECT x.k, x.total FROM (SELECT k, sum(v) AS total FROM t GROUP BY k) x "
           "WHERE x.total > 4")
    assert sql_rows(views, sub) == (["k", "total"], [("b", 5)])


def test_case_order_by_limit_and_distinct(views: SparkSession) -> None:
    case = ("SELECT CASE WHEN v > 1 THEN 'big' ELSE 'small' END AS size, v FROM t "
            "ORDER BY v DESC LIMIT 2")
    assert sql_rows(views, case) == (["size", "v"], [("big", 5), ("big", 2)])
    assert sql_rows(views, "SELECT DISTINCT k FROM t ORDER BY k DESC")[1] == [("b",), ("a",)]


def test_order_by_a_column_the_select_list_drops(views: SparkSession) -> None:
    assert sql_rows(views, "SELECT v FROM t ORDER BY z DESC NULLS LAST")[1] == [
        (2,), (1,), (5,)]


def test_star_and_qualified_star(views: SparkSession) -> None:
    assert sql_rows(views, "SELECT u.*, t.v FROM t JOIN u ON t.k = u.k WHERE v = 2") == (
        ["k", "name", "v"], [("a", "A", 2)])


def test_select_without_from(spark: SparkSession) -> None:
    assert sql_rows(spark, "SELECT 1 AS one, 'a' || 'b' AS s") == (["one", "s"],
                                                                   [(1, "ab")])


def test_window_group_by_over_a_batch_view(spark: SparkSession) -> None:
    spark.createDataFrame(
        [(dt.datetime(2024, 1, 1, 0, m), m) for m in (0, 1, 2, 5)], "ts TIMESTAMP, v INT",
    ).createOrReplaceTempView("ev")
    query = ("SELECT window.start, count(*) AS n, sum(v) AS total FROM ev "
             "GROUP BY window(ts, '2 minutes') ORDER BY start")
    assert spark.sql(query).collect() == [
        Row(start=dt.datetime(2024, 1, 1, 0, 0), n=2, total=1),
        Row(start=dt.datetime(2024, 1, 1, 0, 2), n=1, total=2),
        Row(start=dt.datetime(2024, 1, 1, 0, 4), n=1, total=5)]


def test_registered_udf_in_a_statement(spark: SparkSession) -> None:
    spark.udf.register("plus_one", lambda x: x + 1, "int")
    spark.range(2).createOrReplaceTempView("r")
    assert sql_rows(spark, "SELECT plus_one(CAST(id AS INT)) AS p FROM r")[1] == [(1,), (2,)]


def test_view_names_are_case_insensitive(views: SparkSession) -> None:
    assert sql_rows(views, "SELECT count(*) FROM T")[1] == [(3,)]


@pytest.mark.parametrize(("query", "construct"), [
    ("SELECT k FROM t WHERE v > (SELECT 1)", "Subqueries"),
    ("SELECT k FROM t OFFSET 1", "OFFSET"),
    ("SELECT k FROM t UNION ALL SELECT k FROM u EXCEPT ALL SELECT k FROM u", "EXCEPT ALL"),
    ("SELECT k FROM t TABLESAMPLE (50 PERCENT)", "TABLESAMPLE"),
    ("SELECT k, c FROM t LATERAL VIEW explode(array(1)) x AS c", "LATERAL VIEW"),
])
def test_unsupported_statements_name_the_construct(views: SparkSession, query: str,
                                                   construct: str) -> None:
    with pytest.raises(AnalysisException, match="UNSUPPORTED_SQL") as info:
        views.sql(query)
    assert construct in str(info.value)


def test_unknown_view_and_syntax_errors(views: SparkSession) -> None:
    with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
        views.sql("SELECT * FROM nope")
    with pytest.raises(AnalysisException, match="PARSE_SYNTAX_ERROR"):
        views.sql("SELECT FROM WHERE")


def test_kwargs_format_dataframes_columns_and_string_literals(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, "a"), (2, "o'k")], "id INT, s STRING")
    query = "SELECT {col} FROM {table} WHERE id > {low} AND s = {text}"
    assert spark.sql(query, table=df, col=df.s, low=1, text="o'k").collect() == [
        Row(s="o'k")]
    assert spark.catalog.listTables() == []  # the DataFrame's view is gone again
    with pytest.raises(AnalysisException, match="VALUE_NOT_PLAIN_COLUMN_REFERENCE"):
        spark.sql("SELECT {c} FROM {t}", t=df, c=df.id + 1)


def test_args_bind_named_and_positional_parameters(views: SparkSession) -> None:
    named = "SELECT k, v FROM t WHERE v >= :low AND k = :key ORDER BY v"
    with pytest.raises(AnalysisException, match="UNBOUND_SQL_PARAMETER"):
        views.sql(named)
    assert [tuple(r) for r in views.sql(named, args={"low": 2, "key": "a"}).collect()] == [
        ("a", 2)]
    assert views.sql("SELECT ? + ? AS x, ? AS y", args=[1, 2, "z"]).collect() == [
        Row(x=3, y="z")]
    when = views.sql("SELECT :d AS d", args={"d": dt.date(2024, 1, 2)}).collect()
    assert when == [Row(d=dt.date(2024, 1, 2))]
    with pytest.raises(AnalysisException, match="UNBOUND_SQL_PARAMETER"):
        views.sql("SELECT :missing", args={"other": 1})
