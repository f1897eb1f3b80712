"""Type checks Spark's analyzer makes (DATATYPE_MISMATCH) and the common types it gives,
where Polars alone would answer otherwise. Every expected value, type and error class
below is PySpark 4.3's for the same SQL (local[1], spark.sql.ansi.enabled true and false,
run by hand); tests/streaming/test_spark_oracle_session_semantics.py reruns the SQL ones
against Spark."""

from __future__ import annotations

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
