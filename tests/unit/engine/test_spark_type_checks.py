"""Type checks Spark's analyzer makes (DATATYPE_MISMATCH) and the common types it gives,
where Polars alone would answer otherwise. Every expected value, type and error class
below is PySpark 4.3's for the same SQL (local[1], spark.sql.ansi.enabled true and false,
run by hand); tests/streaming/test_spark_oracle_session_semantics.py reruns the SQL ones
against Spark."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from unbounded.errors import AnalysisException

ROW = [(1, 3, "2", "2.5", 1.5, True, "true", "2024-03-05", "x", "2024-03-05 10:00:00", 7.0)]
SCHEMA = ("i int, l bigint, s string, t string, d double, b boolean, bs string, "
          "ds string, x string, tss string, d7 double")


@pytest.fixture
def v(spark: Any) -> Any:
    spark.createDataFrame(ROW, SCHEMA).selectExpr(
        "*", "CAST(tss AS TIMESTAMP) AS ts", "CAST(ds AS DATE) AS dt"
    ).createOrReplaceTempView("v")
    return spark


def _answer(spark: Any, expr: str, ansi: bool) -> tuple[str, Any]:
    spark.conf.set("spark.sql.ansi.enabled", str(ansi).lower())
    df = spark.sql(f"SELECT {expr} AS r FROM v")
    return df.schema["r"].dataType.simpleString(), df.collect()[0][0]


def _error(spark: Any, expr: str, ansi: bool) -> AnalysisException:
    with pytest.raises(AnalysisException) as err:
        _answer(spark, expr, ansi)
    return err.value


# ---- digests take BINARY: a string is cast, nothing else --------------------------
@pytest.mark.parametrize("ansi", [True, False])
@pytest.mark.parametrize(("expr", "shown", "type_name"), [
    ("md5(i)", "i", "INT"), ("sha1(b)", "b", "BOOLEAN"), ("sha(i)", "i", "INT"),
    ("sha2(i, 256)", "i", "INT"), ("crc32(d)", "d", "DOUBLE"), ("md5(dt)", "dt", "DATE"),
])
def test_digests_of_non_binary_values_are_datatype_mismatch(v: Any, ansi: bool, expr: str,
                                                            shown: str, type_name: str
                                                            ) -> None:
    err = _error(v, expr, ansi)
    assert err.error_class == "DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE"
    assert str(err) == (
        f'[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve "{expr}" due to data type '
        f'mismatch: The first parameter requires the "BINARY" type, however "{shown}" has '
        f'the type "{type_name}". SQLSTATE: 42K09')


@pytest.mark.parametrize(("expr", "expected"), [
    ("md5(s)", ("string", "c81e728d9d4c2f636f067f89cc14862c")),
    ("sha2(s, 256)", ("string",
                      "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35")),
    ("crc32(s)", ("bigint", 450215437)),
    ("crc32(CAST(s AS BINARY))", ("bigint", 450215437)),
    ("md5(NULL)", ("string", None)),
])
def test_digests_of_strings_and_binaries_answer(v: Any, expr: str, expected: Any) -> None:
    assert _answer(v, expr, True) == expected


# ---- div: Spark's IntegralDivide takes BIGINT or DECIMAL ---------------------------
_DIFF = "DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES"
_WRONG = "DATATYPE_MISMATCH.BINARY_OP_WRONG_TYPE"


@pytest.mark.parametrize(("expr", "ansi", "expected"), [
    ("s div i", True, 2), ("l div i", False, 3), ("l div i", True, 3),
    ("'7' div 2", True, 3), ("7.5 div 2", True, 3), ("7.5 div 2", False, 3),
    ("-7 div 2", True, -3), ("7 div -2", False, -3), ("-7 div -2", True, 3),
    ("7.9 div 0.5", True, 15), ("-7.9 div 2", False, -3), ("div(7, 2)", True, 3),
    ("NULL div i", True, None), ("i div NULL", False, None), ("i div 0", False, None),
    ("CAST(9223372036854775807 AS BIGINT) div 3", True, 3074457345618258602),
    ("CAST(-9223372036854775808 AS BIGINT) div -1", False, -9223372036854775808),
    ("CAST(7 AS DECIMAL(10,0)) div CAST(0 AS DECIMAL(3,1))", False, None),
])
def test_div_truncates_toward_zero_to_a_bigint(v: Any, expr: str, ansi: bool,
                                               expected: Any) -> None:
    assert _answer(v, expr, ansi) == ("bigint", expected)


def test_div_is_named_as_spark_names_it(v: Any) -> None:
    assert v.sql("SELECT l div i FROM v").columns == ["(l div i)"]


@pytest.mark.parametrize(("expr", "ansi", "error_class", "types"), [
    ("s div i", False, _DIFF, '("DOUBLE" and "BIGINT")'),
    ("'7' div 2", False, _DIFF, '("DOUBLE" and "BIGINT")'),
    ("d div i", True, _DIFF, '("DOUBLE" and "BIGINT")'),
    ("i div d", False, _DIFF, '("BIGINT" and "DOUBLE")'),
    ("CAST(7.5 AS FLOAT) div 2", True, _DIFF, '("FLOAT" and "BIGINT")'),
    ("b div i", True, _DIFF, '("BOOLEAN" and "BIGINT")'),
    ("d7 div d", False, _WRONG, 'not "DOUBLE"'), ("s div s", True, _WRONG, 'not "STRING"'),
    ("s div s", False, _WRONG, 'not "DOUBLE"'), ("s div d", True, _WRONG, 'not "DOUBLE"'),
    ("s div CAST(2 AS DECIMAL(3,1))", True, _WRONG, 'not "DOUBLE"'),
    ("NULL div s", True, _WRONG, 'not "STRING"'),
])
def test_div_of_doubles_or_non_ansi_strings_is_datatype_mismatch(
        v: Any, expr: str, ansi: bool, error_class: str, types: str) -> None:
    err = _error(v, expr, ansi)
    assert err.error_class == error_class
    assert types in str(err)


@pytest.mark.parametrize(("expr", "error_class"), [
    ("x div i", "CAST_INVALID_INPUT"), ("t div i", "CAST_INVALID_INPUT"),
    ("i div 0", "DIVIDE_BY_ZERO"),
    ("CAST(7 AS DECIMAL(10,0)) div CAST(0 AS DECIMAL(3,1))", "DIVIDE_BY_ZERO"),
    ("CAST(-9223372036854775808 AS BIGINT) div -1", "ARITHMETIC_OVERFLOW"),
])
def test_div_under_ansi_raises_spark_s_runtime_errors(v: Any, expr: str,
                                                      error_class: str) -> None:
    v.conf.set("spark.sql.ansi.enabled", "true")
    with pytest.raises(Exception, match=rf"^\[{error_class}\]") as err:
        v.sql(f"SELECT {expr} AS r FROM v").collect()
    assert getattr(err.value, "error_class", None) == error_class


# ---- structs compare by field position ---------------------------------------------
@pytest.mark.parametrize(("expr", "expected"), [
    ("named_struct('a', 1, 'b', 2) = named_struct('b', 1, 'a', 2)", True),
    ("named_struct('a', 1, 'b', 2) = named_struct('a', 2, 'b', 1)", False),
    ("named_struct('a', 1, 'b', 2) < named_struct('b', 2, 'a', 1)", True),
    ("named_struct('a', 1) <=> named_struct('b', 1)", True),
    ("named_struct('a', 1) IN (named_struct('b', 1))", True),
    ("named_struct('a', 1) IN (named_struct('b', 1), named_struct('a', 2))", True),
    ("named_struct('a', 1) = named_struct('a', CAST(1 AS BIGINT))", True),
    ("named_struct('a', 1) = named_struct('A', CAST(1 AS BIGINT))", True),
    ("named_struct('a', 1) >= named_struct('a', CAST(2 AS BIGINT))", False),
    ("named_struct('a', 1) = named_struct('a', CAST(1.5 AS DOUBLE))", False),
    ("named_struct('a', 1) = named_struct('a', NULL)", False),
    ("named_struct('a', CAST(NULL AS INT), 'b', 2) < named_struct('a', 1, 'b', 1)", True),
    ("named_struct('a', 1, 'b', CAST(NULL AS INT)) < named_struct('a', 1, 'b', 1)", True),
    ("named_struct('a', 1, 'b', 2) > named_struct('a', 1, 'b', CAST(NULL AS INT))", True),
    ("named_struct('a', 1, 'b', CAST(NULL AS INT)) = "
     "named_struct('a', 1, 'b', CAST(NULL AS INT))", True),
    ("named_struct('a', 1, 'b', CAST(NULL AS INT)) <=> "
     "named_struct('x', 1, 'y', CAST(NULL AS INT))", True),
    ("named_struct('a', CAST('NaN' AS DOUBLE)) > named_struct('a', 1.0D)", True),
    ("named_struct('a', 1, 'b', named_struct('c', 2)) > "
     "named_struct('x', 1, 'y', named_struct('z', 1))", True),
    # nested fields of other names compare by position too (not as NULL, not an error)
    ("named_struct('a', 1, 'b', named_struct('c', 2)) > "
     "named_struct('x', 1, 'y', named_struct('z', 3))", False),
    ("named_struct('a', 1, 'b', named_struct('c', 2)) = "
     "named_struct('x', 1, 'y', named_struct('z', 2))", True),
    ("named_struct('a', array(named_struct('c', 2))) = "
     "named_struct('x', array(named_struct('z', 3)))", False),
    ("named_struct('a', array(named_struct('c', 2))) = "
     "named_struct('x', array(named_struct('z', 2)))", True),
    ("named_struct('a', 'x', 'b', 1) < named_struct('a', 'y', 'b', 0)", True),
    ("named_struct('a', array(1)) = named_struct('b', array(1))", True),
    ("CAST(NULL AS STRUCT<a: INT>) < named_struct('a', 1)", None),
    ("named_struct('a', 1) <=> CAST(NULL AS STRUCT<b: INT>)", False),
])
@pytest.mark.parametrize("ansi", [True, False])
def test_structs_compare_by_position_with_null_fields_first(v: Any, ansi: bool, expr: str,
                                                            expected: Any) -> None:
    assert _answer(v, expr, ansi) == ("boolean", expected)


@pytest.mark.parametrize(("expr", "types"), [
    ("named_struct('a', 1) = named_struct('a', 'x')",
     '("STRUCT<a: INT>" and "STRUCT<a: STRING>")'),
    ("named_struct('a', 1) < named_struct('b', CAST(1 AS BIGINT))",
     '("STRUCT<a: INT>" and "STRUCT<b: BIGINT>")'),
    ("named_struct('a', 1) = named_struct('b', CAST(1.5 AS DOUBLE))", None),
    ("named_struct('a', NULL) = named_struct('b', 1)", None),
    ("named_struct('a', 1) = named_struct('a', 1, 'b', 2)", None),
    ("named_struct('a', i) = named_struct('a', s)", None),
])
def test_structs_whose_field_types_differ_do_not_compare(v: Any, expr: str,
                                                         types: str | None) -> None:
    err = _error(v, expr, True)
    assert err.error_class == _DIFF
    assert types is None or types in str(err)


@pytest.fixture
def p(spark: Any) -> Any:
    spark.createDataFrame([(1, "a", 10), (1, "b", 20), (2, "a", 5), (2, None, 7)],
                          "k int, c string, v int").createOrReplaceTempView("p")
    return spark


@pytest.mark.parametrize(("left", "right", "on", "expected"), [
    ("named_struct('a', k)", "named_struct('b', k)", "ON x.s = y.s", 8),
    ("named_struct('a', k)", "named_struct('a', CAST(k AS BIGINT))", "ON x.s = y.s", 8),
    ("named_struct('a', k, 'b', c)", "named_struct('b', k, 'a', c)", "ON x.s = y.s", 4),
    ("named_struct('a', k, 'b', c)", "named_struct('b', k, 'a', c)", "USING (s)", 4),
])
def test_struct_join_keys_match_by_field_position(p: Any, left: str, right: str, on: str,
                                                  expected: int) -> None:
    sql = (f"SELECT count(*) AS r FROM (SELECT {left} AS s FROM p) x "
           f"JOIN (SELECT {right} AS s FROM p) y {on}")
    assert p.sql(sql).collect()[0][0] == expected


def test_struct_join_keys_of_other_field_types_are_datatype_mismatch(p: Any) -> None:
    sql = ("SELECT count(*) AS r FROM (SELECT named_struct('a', k) AS s FROM p) x "
           "JOIN (SELECT named_struct('a', c) AS s FROM p) y ON x.s = y.s")
    with pytest.raises(AnalysisException) as err:
        p.sql(sql).collect()
    assert err.value.error_class == _DIFF


@pytest.mark.parametrize(("order", "expected"), [
    ("r", [None, (1, "a"), (1, "b"), (2, None), (2, "a")]),
    ("r DESC", [(2, "a"), (2, None), (1, "b"), (1, "a"), None]),
])
def test_order_by_a_struct_sorts_by_position_with_null_fields_first(
        p: Any, order: str, expected: list[Any]) -> None:
    rows = p.sql("SELECT r FROM (SELECT named_struct('a', k, 'b', c) AS r FROM p UNION ALL "
                 f"SELECT CAST(NULL AS STRUCT<a: INT, b: STRING>)) ORDER BY {order}").collect()
    assert [None if r[0] is None else tuple(r[0]) for r in rows] == expected


# ---- common types: ANSI casts a string to the other value's type --------------------
D = date(2024, 3, 5)
TS = datetime(2024, 3, 5, 10, 0)


@pytest.mark.parametrize(("expr", "expected"), [
    ("array(bs, b)", ("array<boolean>", [True, True])),
    ("array(ds, dt)", ("array<date>", [D, D])),
    ("array(tss, ts)", ("array<timestamp>", [TS, TS])),
    ("array(ds, ts)", ("array<timestamp>", [datetime(2024, 3, 5), TS])),
    ("array(ds, dt, ts)", ("array<timestamp>", [datetime(2024, 3, 5)] * 2 + [TS])),
    ("array(bs, NULL, b)", ("array<boolean>", [True, None, True])),
    ("array(CAST(NULL AS STRING), b)", ("array<boolean>", [None, True])),
    ("array(s, d)", ("array<double>", [2.0, 1.5])),
    ("array(s, CAST(1 AS DECIMAL(3,1)))", ("array<double>", [2.0, 1.0])),
    ("array(DATE '2024-01-01', '2024-01-02')", ("array<date>", [date(2024, 1, 1),
                                                               date(2024, 1, 2)])),
    ("coalesce(bs, b)", ("boolean", True)), ("coalesce(ds, dt)", ("date", D)),
    ("nvl(bs, b)", ("boolean", True)), ("ifnull(ds, dt)", ("date", D)),
    ("nvl2(x, b, bs)", ("boolean", True)), ("nvl2(x, ds, dt)", ("date", D)),
    ("CASE WHEN i = 1 THEN bs ELSE b END", ("boolean", True)),
    ("CASE WHEN i = 1 THEN ts ELSE tss END", ("timestamp", TS)),
    ("IF(i = 1, b, bs)", ("boolean", True)), ("IF(b, ds, dt)", ("date", D)),
    ("map(1, bs, 2, b)", ("map<int,boolean>", {1: True, 2: True})),
    ("map(1, ds, 2, dt)", ("map<int,date>", {1: D, 2: D})),
    ("map(1, s, 2, i)", ("map<int,bigint>", {1: 2, 2: 1})),
    ("b IN ('true')", ("boolean", True)), ("dt IN ('2024-03-05')", ("boolean", True)),
    ("bs IN (b)", ("boolean", True)),
])
def test_ansi_common_type_casts_the_string_to_the_other_type(v: Any, expr: str,
                                                             expected: Any) -> None:
    assert _answer(v, expr, True) == expected


@pytest.mark.parametrize(("expr", "expected"), [
    ("array(ds, dt)", ("array<string>", ["2024-03-05", "2024-03-05"])),
    ("array(s, d)", ("array<string>", ["2", "1.5"])),
    ("coalesce(ds, dt)", ("string", "2024-03-05")),
    ("ifnull(ds, dt)", ("string", "2024-03-05")),
    ("CASE WHEN i = 1 THEN ds ELSE dt END", ("string", "2024-03-05")),
    ("map(1, ds, 2, dt)", ("map<int,string>", {1: "2024-03-05", 2: "2024-03-05"})),
    ("map(1, s, 2, i)", ("map<int,string>", {1: "2", 2: "1"})),
    ("dt IN ('2024-03-05')", ("boolean", True)),
])
def test_non_ansi_common_type_of_strings_is_string(v: Any, expr: str, expected: Any) -> None:
    assert _answer(v, expr, False) == expected


_DATA_DIFF = "DATATYPE_MISMATCH.DATA_DIFF_TYPES"


@pytest.mark.parametrize(("expr", "ansi", "error_class", "shown"), [
    ("array(i, b)", True, _DATA_DIFF, 'Input to `array` should all be the same type, but '
     'it\'s ("INT" or "BOOLEAN")'),
    ("array(i, dt)", False, _DATA_DIFF, None),
    ("array(bs, b, i)", True, _DATA_DIFF, '("STRING" or "BOOLEAN" or "INT")'),
    ("array(s, i, b)", False, _DATA_DIFF, None),
    ("coalesce(i, b)", True, _DATA_DIFF, "Input to `coalesce`"),
    ("coalesce(named_struct('a', 1), named_struct('b', 2))", True, _DATA_DIFF, None),
    ("array(named_struct('a', 1), named_struct('b', 2))", False, _DATA_DIFF, None),
    ("array(s, b)", False, _DATA_DIFF, '("STRING" or "BOOLEAN")'),
    ("array(bs, b)", False, _DATA_DIFF, None),
    ("array(bs, NULL, b)", False, _DATA_DIFF, None),
    ("coalesce(bs, b)", False, _DATA_DIFF, None), ("nvl(bs, b)", False, _DATA_DIFF, None),
    ("nvl2(x, b, bs)", False, _DATA_DIFF, None),
    ("CASE WHEN i = 1 THEN x ELSE b END", False, _DATA_DIFF,
     'Input to `casewhen` should all be the same type, but it\'s ["STRING", "BOOLEAN"]'),
    ("IF(i = 1, b, bs)", False, _DATA_DIFF, None),
    ("b IN ('true')", False, _DATA_DIFF, 'Input to `in` should all be the same type'),
    ("b IN (bs, false)", False, _DATA_DIFF, None), ("bs IN (b)", False, _DATA_DIFF, None),
    ("map(1, bs, 2, b)", False, "DATATYPE_MISMATCH.CREATE_MAP_VALUE_DIFF_TYPES",
     'The given values of function `map` should all be the same type, but they are '
     '["STRING", "BOOLEAN"]'),
    ("map(bs, 1, b, 2)", False, "DATATYPE_MISMATCH.CREATE_MAP_KEY_DIFF_TYPES", None),
])
def test_values_without_a_common_type_are_spark_s_errors(v: Any, expr: str, ansi: bool,
                                                         error_class: str,
                                                         shown: str | None) -> None:
    err = _error(v, expr, ansi)
    assert err.error_class == error_class
    assert shown is None or shown in str(err)


@pytest.mark.parametrize("expr", ["array(s, b)", "array(x, b)", "array(s, bs, b)",
                                  "coalesce(x, b)", "array(dt, bs)",
                                  "CASE WHEN i = 1 THEN x ELSE b END", "b IN ('true', 'x')"])
def test_ansi_string_that_is_not_the_common_type_fails_at_run_time(v: Any, expr: str) -> None:
    v.conf.set("spark.sql.ansi.enabled", "true")
    with pytest.raises(Exception, match=r"^\[CAST_INVALID_INPUT\]"):
        v.sql(f"SELECT {expr} AS r FROM v").collect()


# ---- UNION columns: numbers widen, a boolean or date with a number is rejected ------
@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT i AS r FROM v UNION ALL SELECT d AS r FROM v", ("double", [1.0, 1.5])),
    ("SELECT i AS r FROM v UNION ALL SELECT l AS r FROM v", ("bigint", [1, 3])),
    ("SELECT i AS r FROM v UNION SELECT d AS r FROM v", ("double", [1.0, 1.5])),
    ("SELECT dt AS r FROM v UNION ALL SELECT ts AS r FROM v",
     ("timestamp", [datetime(2024, 3, 5), TS])),
    ("SELECT NULL AS r FROM v UNION ALL SELECT d AS r FROM v UNION ALL SELECT i AS r FROM v",
     ("double", [None, 1.5, 1.0])),
])
@pytest.mark.parametrize("ansi", [True, False])
def test_union_columns_take_their_common_type(v: Any, ansi: bool, sql: str,
                                              expected: Any) -> None:
    v.conf.set("spark.sql.ansi.enabled", str(ansi).lower())
    df = v.sql(f"SELECT r FROM ({sql})")
    assert (df.schema["r"].dataType.simpleString(), [r[0] for r in df.collect()]) == expected


# PySpark 4.3's answers for UNION columns mixing strings with other types
_UNION_STRINGS = [
    ("SELECT '1' AS r UNION ALL SELECT 2 AS r", ("bigint", [1, 2]), ("string", ["1", "2"])),
    ("SELECT 2 AS r UNION ALL SELECT '1' AS r", ("bigint", [2, 1]), ("string", ["2", "1"])),
    ("SELECT '1.5' AS r UNION ALL SELECT 2.5D AS r", ("double", [1.5, 2.5]),
     ("string", ["1.5", "2.5"])),
    ("SELECT 'true' AS r UNION ALL SELECT true AS r", ("boolean", [True, True]), None),
    ("SELECT '2024-03-05' AS r UNION ALL SELECT DATE'2024-03-06' AS r",
     ("date", [date(2024, 3, 5), date(2024, 3, 6)]), ("string", ["2024-03-05", "2024-03-06"])),
    ("SELECT DATE'2024-03-06' AS r UNION ALL SELECT '2024-03-05' AS r",
     ("date", [date(2024, 3, 6), date(2024, 3, 5)]), ("string", ["2024-03-06", "2024-03-05"])),
    ("SELECT '2024-03-05 10:00:00' AS r UNION ALL SELECT TIMESTAMP'2024-03-06 01:00:00' AS r",
     ("timestamp", [datetime(2024, 3, 5, 10), datetime(2024, 3, 6, 1)]),
     ("string", ["2024-03-05 10:00:00", "2024-03-06 01:00:00"])),
    ("SELECT 1.5D AS r UNION SELECT '1.5' AS r", ("double", [1.5]), ("string", ["1.5"])),
    ("SELECT NULL AS r UNION ALL SELECT '1' UNION ALL SELECT 2",
     ("bigint", [None, 1, 2]), ("string", [None, "1", "2"])),
]


@pytest.mark.parametrize(("sql", "ansi_answer", "legacy_answer"), _UNION_STRINGS)
@pytest.mark.parametrize("ansi", [True, False])
def test_union_of_strings_with_other_types(v: Any, sql: str, ansi_answer: Any,
                                           legacy_answer: Any, ansi: bool) -> None:
    v.conf.set("spark.sql.ansi.enabled", str(ansi).lower())
    expected = ansi_answer if ansi else legacy_answer
    df = v.sql(f"SELECT r FROM ({sql})")
    if expected is None:
        with pytest.raises(AnalysisException) as err:
            df.collect()
        assert str(err.value).startswith(
            "[INCOMPATIBLE_COLUMN_TYPE] UNION can only be performed on tables with compatible "
            'column types. The first column of the second table is "BOOLEAN" type which is not'
            ' compatible with "STRING" at the same column of the first table.')
        return
    rows = sorted(df.collect(), key=lambda r: (r[0] is not None, str(r[0])))
    assert (df.schema["r"].dataType.simpleString(),
            sorted((r[0] for r in rows), key=lambda x: (x is not None, str(x)))) == (
        expected[0], sorted(expected[1], key=lambda x: (x is not None, str(x))))


@pytest.mark.parametrize(("sql", "ansi", "expected"), [
    ("SELECT '1' AS r INTERSECT SELECT 1 AS r", True, ("bigint", [1])),
    ("SELECT '1' AS r INTERSECT SELECT 1 AS r", False, ("string", ["1"])),
    ("SELECT '1' AS r EXCEPT SELECT 1 AS r", True, ("bigint", [])),
    ("SELECT '1' AS r EXCEPT SELECT 1 AS r", False, ("string", [])),
    ("SELECT '2' AS r EXCEPT SELECT 1 AS r", True, ("bigint", [2])),
])
def test_intersect_and_except_take_the_union_column_type(v: Any, sql: str, ansi: bool,
                                                         expected: Any) -> None:
    # PySpark 4.3's answers
    v.conf.set("spark.sql.ansi.enabled", str(ansi).lower())
    df = v.sql(sql)
    assert (df.schema["r"].dataType.simpleString(), [r[0] for r in df.collect()]) == expected


@pytest.mark.parametrize("method", ["intersect", "subtract", "exceptAll", "intersectAll"])
def test_set_operation_methods_widen_their_inputs(spark: Any, method: str) -> None:
    left = spark.createDataFrame([(1,), (2,)], "r int")
    right = spark.createDataFrame([(1.0,)], "r double")
    out = getattr(left, method)(right)
    assert out.schema["r"].dataType.simpleString() == "double"
    assert sorted(r[0] for r in out.collect()) == (
        [1.0] if method.startswith("intersect") else [2.0])


def test_ansi_union_of_a_string_that_is_no_number_fails(v: Any) -> None:
    v.conf.set("spark.sql.ansi.enabled", "true")
    with pytest.raises(Exception, match=r"^\[CAST_INVALID_INPUT\] The value 'a' of the type "
                                        r'"STRING" cannot be cast to "BIGINT"'):
        v.sql("SELECT 'a' AS r UNION ALL SELECT 2 AS r").collect()


def test_union_of_a_date_into_a_timestamp_is_midnight_in_the_session_zone(v: Any) -> None:
    v.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    rows = v.sql("SELECT CAST(r AS STRING) FROM (SELECT DATE'2024-03-05' AS r UNION ALL "
                 "SELECT TIMESTAMP'2024-03-05 10:00:00' AS r)").collect()
    assert [r[0] for r in rows] == ["2024-03-05 00:00:00", "2024-03-05 10:00:00"]


def test_union_of_a_timestamp_into_a_string_column_prints_it_as_spark(v: Any) -> None:
    v.conf.set("spark.sql.ansi.enabled", "false")
    rows = v.sql("SELECT tss AS r FROM v UNION ALL SELECT ts AS r FROM v").collect()
    assert [r[0] for r in rows] == ["2024-03-05 10:00:00", "2024-03-05 10:00:00"]


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT i AS r FROM v UNION ALL SELECT b AS r FROM v",
     'The first column of the second table is "BOOLEAN" type which is not compatible with '
     '"INT" at the same column of the first table.'),
    ("SELECT dt AS r FROM v UNION ALL SELECT i AS r FROM v",
     'The first column of the second table is "INT" type which is not compatible with '
     '"DATE" at the same column of the first table.'),
    ("SELECT i AS r, i AS q FROM v UNION ALL SELECT d AS r, b AS q FROM v",
     'The second column of the second table is "BOOLEAN" type which is not compatible '
     'with "INT" at the same column of the first table.'),
])
@pytest.mark.parametrize("ansi", [True, False])
def test_union_of_a_number_with_a_boolean_or_date_is_incompatible(v: Any, ansi: bool,
                                                                  sql: str, message: str
                                                                  ) -> None:
    v.conf.set("spark.sql.ansi.enabled", str(ansi).lower())
    with pytest.raises(AnalysisException) as err:
        v.sql(sql).collect()
    assert err.value.error_class == "INCOMPATIBLE_COLUMN_TYPE"
    assert str(err.value) == (
        "[INCOMPATIBLE_COLUMN_TYPE] UNION can only be performed on tables with compatible "
        f"column types. {message}. SQLSTATE: 42825")


@pytest.mark.parametrize(("expr", "ansi", "expected"), [
    ("b = 'x'", False, None), ("'true' = b", True, True), ("'true' = b", False, True),
])
def test_a_string_compared_with_a_boolean_is_cast_to_boolean(v: Any, expr: str, ansi: bool,
                                                             expected: Any) -> None:
    assert _answer(v, expr, ansi) == ("boolean", expected)


def test_ansi_string_compared_with_a_boolean_must_convert(v: Any) -> None:
    v.conf.set("spark.sql.ansi.enabled", "true")
    with pytest.raises(Exception, match=r"^\[CAST_INVALID_INPUT\] The value 'x'"):
        v.sql("SELECT b = 'x' AS r FROM v").collect()


def test_struct_in_structs_of_other_field_types_names_in(v: Any) -> None:
    err = _error(v, "named_struct('a', i) IN (named_struct('b', CAST(1 AS BIGINT)))", True)
    assert err.error_class == _DATA_DIFF
    assert "Input to `in` should all be the same type" in str(err)
