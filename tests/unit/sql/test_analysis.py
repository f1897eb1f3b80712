"""Eager analysis: a bad column or type fails at the call that introduces it, with
Spark's error class, and never shows Polars' text."""

from __future__ import annotations

import time

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream


@pytest.fixture
def df(spark):
    return spark.createDataFrame([(1, "a")], "id LONG, s STRING")


UNRESOLVED = {
    "select": lambda df: df.select("nope"),
    "withColumn": lambda df: df.withColumn("x", F.col("nope") + 1),
    "filter": lambda df: df.filter(F.col("nope") > 1),
    "filter_sql": lambda df: df.filter("nope > 1"),
    "groupBy_agg": lambda df: df.groupBy("s").agg(F.sum("nope")),
    "groupBy": lambda df: df.groupBy("nope").count(),
    "join": lambda df: df.join(df.withColumnRenamed("id", "j"), F.col("nope") == F.col("j")),
    "orderBy": lambda df: df.orderBy("nope"),
}


@pytest.mark.parametrize("call", UNRESOLVED.values(), ids=UNRESOLVED.keys())
def test_an_unresolved_column_fails_at_the_call_with_suggestions(df, call):
    with pytest.raises(AnalysisException) as raised:
        call(df)
    assert raised.value.error_class == "UNRESOLVED_COLUMN"
    assert str(raised.value).startswith(
        "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or function parameter with name `nope` "
        "cannot be resolved. Did you mean one of the following? [`id`, `s`")


MISMATCHED = {
    "binary_op": (lambda df: df.select(F.col("s") - F.col("s")), '"(s - s)"',
                  '("string", "string")'),
    "function": (lambda df: df.withColumn("u", F.year("id") == 1), '"year(id)"',
                 '("bigint")'),
}


@pytest.mark.parametrize(("call", "name", "types"), MISMATCHED.values(), ids=MISMATCHED.keys())
def test_a_type_mismatch_fails_at_the_call_naming_the_expression(df, call, name, types):
    with pytest.raises(AnalysisException) as raised:
        call(df)
    assert raised.value.error_class == "DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE"
    message = str(raised.value)
    assert message.startswith(f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve {name}")
    assert f"its inputs have the types {types}" in message
    assert "polars" not in message.lower() and "dtype" not in message


def test_a_filter_on_a_non_boolean_fails_as_spark(df):
    with pytest.raises(AnalysisException) as raised:
        df.filter(F.col("id"))
    assert raised.value.error_class == "DATATYPE_MISMATCH.FILTER_NOT_BOOLEAN"
    assert str(raised.value) == (
        '[DATATYPE_MISMATCH.FILTER_NOT_BOOLEAN] Cannot resolve "id" due to data type '
        'mismatch: Filter expression "id" of type "bigint" is not a boolean.')


def test_a_streaming_dataframe_is_analysed_before_start(spark):
    stream = MemoryStream("id LONG, s STRING", spark).toDF()
    with pytest.raises(AnalysisException, match="UNRESOLVED_COLUMN"):
        stream.withColumn("x", F.col("nope"))
    with pytest.raises(AnalysisException, match="FILTER_NOT_BOOLEAN"):
        stream.where(F.col("s"))


def test_a_python_udf_is_not_called_at_analysis(df):
    calls: list[object] = []

    @F.udf("long")
    def record(v):
        calls.append(v)
        return v

    projected = df.select(record("id").alias("r"))
    assert calls == []
    assert [r["r"] for r in projected.collect()] == [1]


def test_a_valid_chain_stays_cheap(df):
    started = time.perf_counter()
    for i in range(40):
        df = df.withColumn(f"c{i}", F.col("id") + i)
    assert time.perf_counter() - started < 4.0
    assert df.columns[-1] == "c39"
