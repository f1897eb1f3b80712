"""Builds the stateful operator an operator stage calls for."""

from __future__ import annotations

import polars as pl

from unbounded.engine.dtypes import arrow_schema_to_polars
from unbounded.engine.plans import plan_schema
from unbounded.engine.sessions import find_session_window
from unbounded.errors import AnalysisException
from unbounded.plan.logical import (
    Aggregate,
    Deduplicate,
    FlatMapGroupsInPandasWithState,
    Join,
    LogicalPlan,
    TransformWithStateInPandas,
)
from unbounded.plan.types import StructType
from unbounded.runtime.stateful.aggregate import StreamingAggregation
from unbounded.runtime.stateful.base import OperatorContext, StatefulOperator

__all__ = ["create_operator"]


def polars_schema(schema: StructType) -> pl.Schema:
    return arrow_schema_to_polars(schema.to_arrow_schema())


def create_operator(node: LogicalPlan, inputs: list[LogicalPlan], output: StructType,
                    ctx: OperatorContext) -> StatefulOperator:
    """The operator for ``node``, whose inputs are the row-local plans ``inputs``;
    opening it checks the recorded state schema and partitioning."""
    # Each operator but the aggregation is imported when used: start-up pays only for
    # the operators its query runs (a join pulls in its state keys and watermark rules,
    # a session window its merge of sessions).
    if isinstance(node, Join):
        from unbounded.runtime.stateful.join import StreamingJoin

        return StreamingJoin(node, inputs[0], inputs[1], ctx)
    schemas = [polars_schema(plan_schema(p)) for p in inputs]
    if isinstance(node, Aggregate):
        if find_session_window(node.keys) is not None:
            from unbounded.runtime.stateful.session import StreamingSessionAggregation

            return StreamingSessionAggregation(node, schemas[0], ctx, polars_schema(output))
        return StreamingAggregation(node, schemas[0], ctx, polars_schema(output))
    if isinstance(node, Deduplicate):
        from unbounded.runtime.stateful.dedup import StreamingDeduplication

        return StreamingDeduplication(node, schemas[0], ctx)
    if isinstance(node, FlatMapGroupsInPandasWithState):
        from unbounded.runtime.stateful.group_state import StreamingGroupsWithState

        return StreamingGroupsWithState(node, schemas[0], ctx)
    if isinstance(node, TransformWithStateInPandas):
        from unbounded.runtime.stateful.transform_state import StreamingTransformWithState

        return StreamingTransformWithState(node, schemas[0], ctx)
    raise AnalysisException(f"No streaming operator runs {type(node).__name__}.",
                            error_class="UNSUPPORTED_PLAN")
