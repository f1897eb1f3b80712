"""Eager analysis: a bad column or type fails at the call that introduces it, with
Spark's error class, and never shows Polars' text."""

from __future__ import annotations

import polars as pl
import pytest

from unbounded.engine import plans
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


def test_arithmetic_between_two_strings_fails_at_the_call_as_spark(df):
    with pytest.raises(AnalysisException) as raised:
        df.select(F.col("s") - F.col("s"))
    assert raised.value.error_class == "DATATYPE_MISMATCH.BINARY_OP_WRONG_TYPE"
    assert str(raised.value) == (
        '[DATATYPE_MISMATCH.BINARY_OP_WRONG_TYPE] Cannot resolve "(s - s)" due to data type '
        'mismatch: the binary operator requires the input type ("NUMERIC" or "INTERVAL DAY TO '
        'SECOND" or "INTERVAL YEAR TO MONTH" or "INTERVAL"), not "STRING". SQLSTATE: 42K09')


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


def _counted(monkeypatch, owner, name):
    """Count the calls of ``owner.name`` for the rest of the test."""
    calls = [0]
    original = getattr(owner, name)

    def counting(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


STEPS = {
    "withColumn": lambda df, i: df.withColumn(f"c{i}", F.col("id") + i),
    "select": lambda df, i: df.select((F.col("id") + 1).alias("id"), "s"),
    "filter": lambda df, i: df.filter(F.col("id") > -i),
}
STEPS["mixed"] = lambda df, i: (
    STEPS["withColumn"], lambda df, i: df.select("*"), STEPS["filter"])[i % 3](df, i)


def _chain(df, step, n):
    for i in range(n):
        df = step(df, i)
    return df


@pytest.mark.parametrize("step", STEPS.values(), ids=STEPS.keys())
def test_a_chain_resolves_each_step_against_its_input_only(df, step, monkeypatch):
    """Twice the steps costs twice the schema queries (it was cubic: every step compiled
    the whole plan below it, each node asking Polars for its schema)."""
    queries = _counted(monkeypatch, pl.LazyFrame, "collect_schema")
    _chain(df, step, 50)
    fifty, queries[0] = queries[0], 0
    _chain(df, step, 100)
    assert queries[0] <= 2.2 * fifty


@pytest.mark.parametrize("step", STEPS.values(), ids=STEPS.keys())
def test_a_step_of_a_long_chain_compiles_one_plan_node(df, step, monkeypatch):
    long = _chain(df, step, 60)
    compiled = _counted(monkeypatch, plans, "compile_plan")
    step(long, 60)
    assert compiled[0] == 1


def _long_chain(df):
    """100 steps: a column per third step, a filter dropping ids 1, 4, ..., 97, a select."""
    for i in range(100):
        if i % 3 == 0:
            df = df.withColumn(f"c{i}", F.col("id") + i)
        elif i % 3 == 1:
            df = df.filter(F.col("id") != i)
        else:
            df = df.select(*df.columns)
    return df


def _long_chain_rows(ids):
    return [(i, s, *(i + k for k in range(0, 100, 3))) for i, s in ids]


def test_a_long_chain_runs_as_a_batch(spark):
    df = spark.createDataFrame([(1, "a"), (4, "b"), (5, "c"), (200, "d")], "id LONG, s STRING")
    out = _long_chain(df)
    assert out.columns == ["id", "s", *(f"c{k}" for k in range(0, 100, 3))]
    assert sorted(tuple(r) for r in out.collect()) == _long_chain_rows([(5, "c"), (200, "d")])


def test_a_long_chain_runs_in_a_streaming_query(spark):
    stream = MemoryStream("id LONG, s STRING", spark)
    query = _long_chain(stream.toDF()).writeStream.format("memory") \
        .queryName("long_chain").start()
    try:
        stream.addData([(1, "a"), (4, "b"), (5, "c"), (200, "d")])
        query.processAllAvailable()
    finally:
        query.stop()
    rows = sorted(tuple(r) for r in spark.table("long_chain").collect())
    assert rows == _long_chain_rows([(5, "c"), (200, "d")])


def test_a_windowed_aggregate_that_resolves_is_checked_in_one_polars_query(spark, monkeypatch):
    """Its outputs are aliased aggregate calls: checked together, not node by node (that
    took seven queries, a tenth of a streaming query's start)."""
    events = spark.createDataFrame([], "event_time TIMESTAMP, value DOUBLE")
    queries = _counted(monkeypatch, pl.LazyFrame, "collect")

    events.groupBy(F.window("event_time", "5 seconds")).agg(
        F.count("*").alias("count"), F.sum("value").alias("sum"))

    assert queries[0] == 1


def test_a_type_mismatch_inside_an_aliased_aggregate_names_the_expression(df):
    with pytest.raises(AnalysisException) as raised:
        df.groupBy("s").agg(F.count("*").alias("n"), F.max(F.year("id")).alias("y"))
    assert raised.value.error_class == "DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE"
    assert str(raised.value).startswith(
        '[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve "year(id)"')
