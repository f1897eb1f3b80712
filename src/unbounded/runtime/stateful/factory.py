"""Builds the stateful operator a query's plan split calls for."""

from __future__ import annotations

import os

from unbounded.engine.dtypes import arrow_schema_to_polars
from unbounded.engine.plans import plan_schema
from unbounded.executors.base import Executor
from unbounded.plan.logical import Aggregate
from unbounded.runtime.spec import QuerySpec
from unbounded.runtime.stateful.aggregate import StreamingAggregation
from unbounded.runtime.stateful.base import OperatorContext, StatefulOperator, StatefulSplit
from unbounded.runtime.stateful.dedup import StreamingDeduplication
from unbounded.runtime.stateful.session import StreamingSessionAggregation, has_session_window
from unbounded.state.base import StateStoreConf

__all__ = ["create_operator"]


def create_operator(split: StatefulSplit | None, spec: QuerySpec, fixed_conf: dict[str, str],
                    executor: Executor) -> StatefulOperator | None:
    """The operator for ``split`` (None for a stateless query); opening it checks the
    recorded state schema and partitioning."""
    if split is None:
        return None
    ctx = OperatorContext(
        state_root=os.path.join(spec.checkpoint, "state"),
        num_partitions=int(fixed_conf["spark.sql.shuffle.partitions"]),
        store_conf=StateStoreConf.from_spark_conf(spec.conf),
        output_mode=spec.output_mode, executor=executor)
    below = arrow_schema_to_polars(plan_schema(split.below).to_arrow_schema())
    if isinstance(split.node, Aggregate):
        out = arrow_schema_to_polars(split.placeholder.schema.to_arrow_schema())
        if has_session_window(split.node):
            return StreamingSessionAggregation(split.node, below, ctx, out)
        return StreamingAggregation(split.node, below, ctx, out)
    return StreamingDeduplication(split.node, below, ctx)
