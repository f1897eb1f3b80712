"""``explain()``: Spark's sections, for a batch DataFrame and a running streaming query."""

from __future__ import annotations

import pytest

from unbounded.sql import SparkSession
from unbounded.sql import functions as F

BATCH_TREE = "Filter (x > 0)\n+- LocalRelation [x, y]"


def _batch(spark: SparkSession):  # type: ignore[no-untyped-def]
    return spark.createDataFrame([(1, "a")], "x int, y string").where("x > 0")


def test_explain_default_prints_only_the_physical_plan(
        spark: SparkSession, capsys: pytest.CaptureFixture[str]) -> None:
    _batch(spark).explain()
    assert capsys.readouterr().out == f"== Physical Plan ==\n{BATCH_TREE}\n\n"


@pytest.mark.parametrize("call", [{"extended": True}, {"mode": "extended"},
                                  {"extended": "extended"}])
def test_explain_extended_prints_parsed_analyzed_optimized_and_physical_sections(
        spark: SparkSession, capsys: pytest.CaptureFixture[str], call: dict[str, object]) -> None:
    _batch(spark).explain(**call)  # type: ignore[arg-type]
    assert capsys.readouterr().out == (
        f"== Parsed Logical Plan ==\n{BATCH_TREE}\n\n"
        f"== Analyzed Logical Plan ==\nx: int, y: string\n{BATCH_TREE}\n\n"
        f"== Optimized Logical Plan ==\n{BATCH_TREE}\n\n"
        f"== Physical Plan ==\n{BATCH_TREE}\n\n")


def test_explain_rejects_an_unknown_mode(spark: SparkSession) -> None:
    with pytest.raises(ValueError, match="Unknown explain mode: 'fancy'"):
        _batch(spark).explain(mode="fancy")


def test_streaming_query_explain_extended_marks_the_stateful_operator(
        spark: SparkSession, capsys: pytest.CaptureFixture[str]) -> None:
    counts = spark.readStream.format("rate").load() \
        .groupBy(F.window("timestamp", "1 second")).count()
    query = counts.writeStream.format("memory").queryName("explained") \
        .outputMode("complete").start()
    try:
        query.explain(True)
    finally:
        query.stop()
    logical = "Aggregate [window], [count]\n+- StreamingRelation rate [timestamp, value]"
    assert capsys.readouterr().out == (
        f"== Parsed Logical Plan ==\n{logical}\n\n"
        "== Analyzed Logical Plan ==\n"
        f"window: struct<start:timestamp,end:timestamp>, count: bigint\n{logical}\n\n"
        f"== Optimized Logical Plan ==\n{logical}\n\n"
        f"== Physical Plan ==\nStateStore[operatorId=0] {logical}\n\n")
