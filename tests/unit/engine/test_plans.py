"""Compiling plans: a node's schema comes from its cached resolution only when the
compile binds inputs of the schemas its leaves were resolved with."""

from __future__ import annotations

import polars as pl
import pytest

from unbounded.engine import plans
from unbounded.engine.context import CompileContext
from unbounded.engine.plans import compile_output
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream


def _plus_one(df):
    return df.withColumn("x", F.col("id") + 1).filter(F.col("x") > 0)


@pytest.fixture
def streamed(spark):
    plan = _plus_one(MemoryStream("id LONG", spark).toDF())._plan
    return plan, plan.child.child.relation_id


def test_an_input_of_the_resolved_schema_compiles_without_schema_queries(streamed, monkeypatch):
    plan, leaf = streamed
    asked: list[pl.LazyFrame] = []
    original = pl.LazyFrame.collect_schema
    monkeypatch.setattr(pl.LazyFrame, "collect_schema",
                        lambda self: asked.append(self) or original(self))
    bound = pl.LazyFrame({"id": [41, -5]})
    frame, _ = compile_output(plan, {leaf: bound}, CompileContext(pl.Schema(), 0))
    assert frame.collect().rows() == [(41, 42)]
    # Only the bound input (the leaf) and the operator's operand types were asked for.
    assert asked and all(len(original(f)) <= 1 for f in asked)


def test_an_input_of_another_schema_compiles_against_its_own_types(spark, streamed):
    """The leaf says bigint; a frame of strings is bound: types come from the frame, as
    a batch over strings compiles (a cached schema would compile String + 1 unchecked)."""
    plan, leaf = streamed
    bound = pl.LazyFrame({"id": ["41", "-5"]})
    frame, _ = compile_output(plan, {leaf: bound}, CompileContext(pl.Schema(), 0))
    batch = _plus_one(spark.createDataFrame([("41",), ("-5",)], "id STRING"))
    assert frame.collect().rows() == [tuple(r) for r in batch.collect()]


def test_a_worker_compiles_an_unresolved_plan_by_asking_polars(streamed, monkeypatch):
    plan, leaf = streamed
    monkeypatch.setattr(plans, "_empty_outputs", type(plans._empty_outputs)())
    frame, _ = compile_output(plan, {leaf: pl.LazyFrame({"id": [1]})},
                              CompileContext(pl.Schema(), 0))
    assert frame.collect().rows() == [(1, 2)]
    assert len(plans._empty_outputs) == 0


def test_a_plan_deeper_than_the_recursion_limit_compiles(spark):
    """1,200 nodes: compiled from the leaves up, each node over its child's frame."""
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id LONG, s STRING")
    for i in range(400):
        df = df.withColumn("v", F.col("id") + i).filter(F.col("v") > 0).select("id", "s", "v")
    assert df.isStreaming is False
    assert [tuple(r) for r in df.collect()] == [(1, "a", 400), (2, "b", 401)]


def test_a_deep_plan_no_one_resolved_resolves_from_the_bottom_up():
    """A plan the runtime builds is resolved node by node without recursing through it."""
    import pyarrow as pa

    from unbounded.plan.expressions import Alias, BinaryOp, ColumnRef, Literal
    from unbounded.plan.logical import DataRelation, Filter, Project

    plan = DataRelation(pa.table({"id": pa.array([1, 2], pa.int64())}))
    for i in range(600):
        plan = Project(plan, (Alias(BinaryOp("add", ColumnRef("id"), Literal(1)), "id"),))
        plan = Filter(plan, BinaryOp("gt", ColumnRef("id"), Literal(i)))
    assert plans.plan_schema(plan).simpleString() == "struct<id:bigint>"
    frame, _ = compile_output(plan, {}, CompileContext(pl.Schema(), 0))
    assert frame.collect().rows() == [(601,), (602,)]
