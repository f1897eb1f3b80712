"""DataFrame.join, crossJoin and alias: rows, column order and name resolution as PySpark 4.

Expected rows follow Spark's documented join semantics (pyspark is not installed here):
``=`` never matches NULL keys, ``<=>`` does; an outer join's condition decides matches,
unmatched rows are padded with NULLs; USING joins keep one key column, placed first.
"""

from __future__ import annotations

import pickle
from datetime import datetime

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import functions as F


def rows(df):
    """Rows as tuples, sorted with NULLs last (Spark gives no row order for a join)."""
    return sorted((tuple(r) for r in df.collect()),
                  key=lambda t: tuple((v is None, str(v)) for v in t))


def srt(items):
    return sorted(items, key=lambda t: tuple((v is None, str(v)) for v in t))


@pytest.fixture
def emp(spark):
    return spark.createDataFrame(
        [(1, "alice", 10), (2, "bob", 20), (3, "carol", None), (4, "dan", 10)],
        "id LONG, name STRING, dept LONG")


@pytest.fixture
def dept(spark):
    return spark.createDataFrame(
        [(10, "eng"), (20, "ops"), (30, "hr"), (None, "nowhere"), (10, "eng2")],
        "dept LONG, dname STRING")


MATCHED_USING = [(10, 1, "alice", "eng"), (10, 1, "alice", "eng2"), (10, 4, "dan", "eng"),
                 (10, 4, "dan", "eng2"), (20, 2, "bob", "ops")]
MATCHED_EXPR = [(i, n, d, d, dn) for d, i, n, dn in MATCHED_USING]


# ---- USING joins ------------------------------------------------------------------------
@pytest.mark.parametrize(("how", "extra"), [
    ("inner", []),
    ("left", [(None, 3, "carol", None)]),
    ("right", [(30, None, None, "hr"), (None, None, None, "nowhere")]),
    ("full", [(None, 3, "carol", None), (30, None, None, "hr"),
              (None, None, None, "nowhere")]),
])
def test_using_join_keeps_one_key_column_first_for_every_outer_type(emp, dept, how, extra):
    out = emp.join(dept, "dept", how)
    assert out.columns == ["dept", "id", "name", "dname"]
    assert rows(out) == srt(MATCHED_USING + extra)


def test_using_semi_and_anti_joins_output_the_key_then_the_other_left_columns(emp, dept):
    semi = emp.join(dept, ["dept"], "left_semi")
    assert semi.columns == ["dept", "id", "name"]
    assert rows(semi) == [(10, 1, "alice"), (10, 4, "dan"), (20, 2, "bob")]
    anti = emp.join(dept, "dept", "anti")
    assert rows(anti) == [(None, 3, "carol")]


def test_using_join_on_two_names_and_a_full_join_coalesces_each_key(spark):
    a = spark.createDataFrame([(1, "x", 1.0), (1, "y", 2.0), (2, "x", 3.0)],
                              "k1 INT, k2 STRING, va DOUBLE")
    b = spark.createDataFrame([(1, "x", "p"), (2, "y", "q")], "k1 INT, k2 STRING, vb STRING")
    out = a.join(b, ["k1", "k2"], "full_outer")
    assert out.columns == ["k1", "k2", "va", "vb"]
    assert rows(out) == [(1, "x", 1.0, "p"), (1, "y", 2.0, None), (2, "x", 3.0, None),
                         (2, "y", None, "q")]


def test_using_column_missing_on_one_side_fails_naming_that_side(emp, dept):
    with pytest.raises(AnalysisException) as err:
        emp.join(dept, "id").collect()
    assert err.value.error_class == "UNRESOLVED_USING_COLUMN_FOR_JOIN"
    assert "USING column `id` cannot be resolved on the right side" in str(err.value)
    assert "[`dept`, `dname`]" in str(err.value)


# ---- condition joins ----------------------------------------------------------------------
@pytest.mark.parametrize(("how", "extra"), [
    ("inner", []),
    ("cross", []),
    ("leftouter", [(3, "carol", None, None, None)]),
    ("RIGHT_OUTER", [(None, None, None, 30, "hr"), (None, None, None, None, "nowhere")]),
    ("outer", [(3, "carol", None, None, None), (None, None, None, 30, "hr"),
               (None, None, None, None, "nowhere")]),
])
def test_expression_join_outputs_all_left_then_all_right_columns(emp, dept, how, extra):
    out = emp.join(dept, emp.dept == dept["dept"], how)
    assert out.columns == ["id", "name", "dept", "dept", "dname"]
    assert rows(out) == srt(MATCHED_EXPR + extra)


def test_expression_semi_and_anti_joins_output_left_columns_once_per_row(emp, dept):
    semi = emp.join(dept, emp.dept == dept.dept, "semi")
    assert semi.columns == ["id", "name", "dept"]
    assert rows(semi) == [(1, "alice", 10), (2, "bob", 20), (4, "dan", 10)]
    assert rows(emp.join(dept, emp.dept == dept.dept, "leftanti")) == [(3, "carol", None)]


def test_null_keys_never_match_with_equals_but_match_with_eq_null_safe(emp, dept):
    strict = emp.join(dept, emp.dept == dept.dept)
    assert (3, "carol", None, None, "nowhere") not in rows(strict)
    assert rows(strict) == srt(MATCHED_EXPR)
    safe = emp.join(dept, emp.dept.eqNullSafe(dept.dept))
    assert rows(safe) == srt([*MATCHED_EXPR, (3, "carol", None, None, "nowhere")])
    in_sql = emp.alias("e").join(dept.alias("d"), F.expr("e.dept <=> d.dept"), "left_anti")
    assert rows(in_sql) == []


def test_rows_of_a_join_hold_both_columns_of_a_repeated_name(emp, dept):
    row = emp.join(dept, emp.dept == dept.dept).filter(emp.id == 2).collect()[0]
    assert tuple(row) == (2, "bob", 20, 20, "ops")
    assert row.dept == 20 and row["dname"] == "ops"
    assert [f.name for f in emp.join(dept, emp.dept == dept.dept).schema.fields] == \
        ["id", "name", "dept", "dept", "dname"]


# ---- residual conditions ------------------------------------------------------------------
def test_left_join_residual_is_part_of_the_match_not_a_filter(emp, dept):
    cond = (emp.dept == dept.dept) & (dept.dname == "ops")
    out = emp.join(dept, cond, "left").select(emp.name, dept.dname)
    assert rows(out) == [("alice", None), ("bob", "ops"), ("carol", None), ("dan", None)]


def test_full_join_residual_pads_both_sides_unmatched_rows(emp, dept):
    cond = [emp.dept == dept.dept, dept.dname == "ops"]
    out = emp.join(dept, cond, "full").select(emp.name, dept.dname)
    assert rows(out) == [("alice", None), ("bob", "ops"), ("carol", None), ("dan", None),
                         (None, "eng"), (None, "eng2"), (None, "hr"), (None, "nowhere")]


def test_right_join_residual_on_a_left_column(emp, dept):
    out = emp.join(dept, (emp.dept == dept.dept) & (emp.id > 1), "right")
    assert rows(out) == [(2, "bob", 20, 20, "ops"), (4, "dan", 10, 10, "eng"),
                         (4, "dan", 10, 10, "eng2"), (None, None, None, 30, "hr"),
                         (None, None, None, None, "nowhere")]


def test_semi_and_anti_joins_with_a_residual(emp, dept):
    cond = (emp.dept == dept.dept) & (dept.dname == "eng2")
    assert rows(emp.join(dept, cond, "semi").select("name")) == [("alice",), ("dan",)]
    assert rows(emp.join(dept, cond, "anti").select("name")) == [("bob",), ("carol",)]


def test_join_without_equality_is_a_theta_join_for_outer_types_too(emp, dept):
    out = emp.join(dept, emp.dept < dept.dept, "left").select("name", "dname")
    assert rows(out) == [("alice", "hr"), ("alice", "ops"), ("bob", "hr"), ("carol", None),
                         ("dan", "hr"), ("dan", "ops")]


def test_time_range_join_with_an_interval(spark):
    imp = spark.createDataFrame(
        [(1, datetime(2024, 1, 1, 10)), (2, datetime(2024, 1, 1, 10)),
         (3, datetime(2024, 1, 1, 12))], "ad LONG, it TIMESTAMP").alias("i")
    clk = spark.createDataFrame(
        [(1, datetime(2024, 1, 1, 10, 30)), (1, datetime(2024, 1, 1, 11, 30)),
         (2, datetime(2024, 1, 1, 9)), (3, datetime(2024, 1, 1, 12, 59)),
         (3, datetime(2024, 1, 1, 13, 1))], "ad LONG, ct TIMESTAMP").alias("c")
    cond = (F.col("i.ad") == F.col("c.ad")) & (F.col("c.ct") >= F.col("i.it")) & \
        (F.col("c.ct") <= F.col("i.it") + F.expr("INTERVAL 1 HOUR"))
    out = imp.join(clk, cond, "left").select("i.ad", "ct")
    assert rows(out) == [(1, datetime(2024, 1, 1, 10, 30)), (2, None),
                         (3, datetime(2024, 1, 1, 12, 59))]
    in_sql = imp.join(clk, F.expr(
        "i.ad = c.ad AND c.ct BETWEEN i.it AND i.it + INTERVAL 1 HOUR"))
    assert in_sql.count() == 2
    assert rows(in_sql.select("i.ad", "ct")) == [(1, datetime(2024, 1, 1, 10, 30)),
                                                 (3, datetime(2024, 1, 1, 12, 59))]


def test_keys_of_different_integer_types_match(spark):
    a = spark.createDataFrame([(1, "a"), (2, "b")], "k INT, va STRING")
    b = spark.createDataFrame([(1, "x"), (3, "y")], "k LONG, vb STRING")
    assert rows(a.join(b, a.k == b.k)) == [(1, "a", 1, "x")]
    assert rows(a.join(b, "k", "full")) == [(1, "a", "x"), (2, "b", None), (3, None, "y")]


# ---- cross joins and join types -------------------------------------------------------
def test_cross_join_and_join_without_condition_pair_every_row(spark):
    a = spark.createDataFrame([(1,), (2,)], "x INT")
    b = spark.createDataFrame([("p",), ("q",)], "y STRING")
    expected = [(1, "p"), (1, "q"), (2, "p"), (2, "q")]
    assert rows(a.crossJoin(b)) == expected
    assert rows(a.join(b)) == expected
    assert rows(a.join(b, how="left")) == expected
    assert rows(a.join(F.broadcast(b), a.x > 1)) == [(2, "p"), (2, "q")]


def test_unknown_join_type_fails_with_the_supported_spellings(emp, dept):
    with pytest.raises(AnalysisException) as err:
        emp.join(dept, "dept", "sideways")
    assert err.value.error_class == "UNSUPPORTED_JOIN_TYPE"
    assert str(err.value) == (
        "[UNSUPPORTED_JOIN_TYPE] Unsupported join type 'sideways'. Supported join types "
        "include: 'inner', 'outer', 'full', 'fullouter', 'full_outer', 'leftouter', 'left', "
        "'left_outer', 'rightouter', 'right', 'right_outer', 'leftsemi', 'left_semi', "
        "'semi', 'leftanti', 'left_anti', 'anti', 'cross'.")


# ---- name resolution ------------------------------------------------------------------------
def test_bare_reference_to_a_name_on_both_sides_is_ambiguous(emp, dept):
    joined = emp.join(dept, emp.dept == dept.dept)
    with pytest.raises(AnalysisException) as err:
        joined.select("dept").collect()
    assert err.value.error_class == "AMBIGUOUS_REFERENCE"
    assert str(err.value) == \
        "[AMBIGUOUS_REFERENCE] Reference `dept` is ambiguous, could be: [`dept`, `dept`]."
    with pytest.raises(AnalysisException, match="AMBIGUOUS_REFERENCE"):
        joined.filter("dept = 10").collect()
    with pytest.raises(AnalysisException, match=r"Reference `dept` is ambiguous"):
        joined.select("`dept`").collect()


def test_ambiguous_reference_names_the_aliased_candidates(emp, dept):
    e, d = emp.alias("e"), dept.alias("d")
    with pytest.raises(AnalysisException) as err:
        e.join(d, F.col("dept") == F.col("dept")).collect()
    assert err.value.error_class == "AMBIGUOUS_REFERENCE"
    assert "could be: [`e`.`dept`, `d`.`dept`]" in str(err.value)
    assert "#" not in str(err.value)


def test_unresolved_column_lists_the_qualified_inputs_without_internal_names(emp, dept):
    joined = emp.alias("e").join(dept.alias("d"), F.col("e.dept") == F.col("d.dept"))
    with pytest.raises(AnalysisException) as err:
        joined.select("nope").collect()
    assert err.value.error_class == "UNRESOLVED_COLUMN"
    assert ("[`e`.`id`, `e`.`name`, `e`.`dept`, `d`.`dept`, `d`.`dname`]"
            in str(err.value))


def test_dataframe_columns_resolve_to_their_side_after_the_join(emp, dept):
    joined = emp.join(dept, emp["dept"] == dept["dept"], "full")
    out = joined.select(emp["dept"], dept["dept"].alias("d2"), dept.dname)
    assert out.columns == ["dept", "d2", "dname"]
    assert rows(out.filter(F.col("d2").isNull())) == [(None, None, "nowhere"),
                                                      (None, None, None)]
    with pytest.raises(AnalysisException, match="UNRESOLVED_COLUMN"):
        out.select(emp.name).collect()  # not an input of `out`, even though joined has it
    assert rows(joined.filter(emp.dept.isNull()).select(emp.name, dept.dname)) == \
        [("carol", None), (None, "hr"), (None, "nowhere")]


def test_qualified_names_in_col_strings_and_sql(emp, dept):
    joined = emp.alias("e").join(dept.alias("d"), F.expr("e.dept = d.dept"))
    by_col = joined.select(F.col("e.name"), F.col("d.dname")).filter("d.dname = 'ops'")
    assert rows(by_col) == [("bob", "ops")]
    by_expr = joined.where(F.expr("e.id = 4")).selectExpr("e.name", "upper(d.dname) AS up")
    assert by_expr.columns == ["name", "up"]
    assert rows(by_expr) == [("dan", "ENG"), ("dan", "ENG2")]


def test_star_and_alias_star_after_a_join(emp, dept):
    joined = emp.alias("e").join(dept.alias("d"), F.col("e.dept") == F.col("d.dept"))
    assert joined.select("*").columns == ["id", "name", "dept", "dept", "dname"]
    assert joined.select("d.*").columns == ["dept", "dname"]
    assert rows(joined.select(F.col("e.*")).filter("id = 2")) == [(2, "bob", 20)]


def test_struct_fields_still_resolve_when_no_alias_matches(spark):
    df = spark.createDataFrame([(1, (5, "p"))], "id INT, s STRUCT<f: INT, g: STRING>")
    assert df.select("s.f", F.col("s.g")).collect()[0] == (5, "p")
    aliased = df.alias("t").select("t.s.f", "t.id")
    assert aliased.columns == ["f", "id"]
    assert aliased.collect()[0] == (5, 1)
    assert df.alias("s").select("s.id").collect()[0] == (1,)


def test_self_join_through_aliases(spark):
    tree = spark.createDataFrame(
        [(1, None, "root"), (2, 1, "a"), (3, 1, "b"), (4, 2, "c")],
        "id LONG, parent LONG, name STRING")
    pairs = tree.alias("p").join(tree.alias("c"), F.col("p.id") == F.col("c.parent"))
    out = pairs.select(F.col("p.name").alias("parent"), F.col("c.name").alias("child"))
    assert rows(out) == [("a", "c"), ("root", "a"), ("root", "b")]
    counts = tree.alias("p").join(tree.alias("c"), F.col("p.id") == F.col("c.parent"), "left") \
        .groupBy(F.col("p.name")).agg(F.count("c.id").alias("n"))
    assert rows(counts) == [("a", 1), ("b", 0), ("c", 0), ("root", 2)]


def test_self_join_without_aliases_cannot_tell_the_sides_apart(spark):
    df = spark.createDataFrame([(1,), (2,)], "id LONG")
    with pytest.raises(AnalysisException) as err:
        df.join(df, df["id"] == df["id"]).collect()
    assert err.value.error_class == "AMBIGUOUS_COLUMN_REFERENCE"


# ---- composition ----------------------------------------------------------------------------
def test_join_of_joins_then_group_by_and_order_by(spark, emp, dept):
    floors = spark.createDataFrame([("eng", 3), ("ops", 1)], "dname STRING, floor INT")
    three = emp.join(dept, "dept").join(floors, "dname", "left")
    assert three.columns == ["dname", "dept", "id", "name", "floor"]
    per_floor = three.groupBy("floor").agg(F.countDistinct("id").alias("people")) \
        .orderBy("floor")
    assert [tuple(r) for r in per_floor.collect()] == [(None, 2), (1, 1), (3, 2)]


def test_join_then_filter_select_union_and_with_column(emp, dept):
    joined = emp.join(dept, emp.dept == dept.dept)
    assert joined.withColumn("one", F.lit(1)).columns == \
        ["id", "name", "dept", "dept", "dname", "one"]
    assert rows(joined.withColumn("id", emp.id * 10).select("id", "dname")
                .filter("dname = 'ops'")) == [(20, "ops")]
    both = joined.select(emp.name, dept.dname).union(joined.select(emp.name, dept.dname))
    assert both.count() == 10
    assert joined.drop(dept.dept).columns == ["id", "name", "dept", "dname"]
    assert joined.drop("dept").columns == ["id", "name", "dname"]
    assert rows(joined.drop(dept.dept).filter("id = 2")) == [(2, "bob", 20, "ops")]


def test_show_and_to_pandas_show_display_names(emp, dept, capsys):
    joined = emp.join(dept, emp.dept == dept.dept).filter(emp.id == 2)
    joined.show()
    assert capsys.readouterr().out == (
        "+---+----+----+----+-----+\n"
        "| id|name|dept|dept|dname|\n"
        "+---+----+----+----+-----+\n"
        "|  2| bob|  20|  20|  ops|\n"
        "+---+----+----+----+-----+\n\n")
    frame = joined.toPandas()
    assert list(frame.columns) == ["id", "name", "dept", "dept", "dname"]
    assert frame.iloc[0].tolist() == [2, "bob", 20, 20, "ops"]


def test_join_plans_pickle_and_explain(emp, dept, capsys):
    joined = emp.alias("e").join(dept, emp.dept == dept.dept, "left")
    copy = pickle.loads(pickle.dumps(joined._plan))
    assert type(copy).__name__ == "Join"
    assert copy.describe() == "Join LeftOuter, (dept = dept)"
    joined.explain()
    assert "SubqueryAlias e" in capsys.readouterr().out
