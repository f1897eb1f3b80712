"""Observed metrics (``df.observe``) of one micro-batch, as Spark reports them.

Spark evaluates a ``CollectMetrics`` node's aggregates over the rows that pass it in a
batch, and puts one row per name in ``progress.observedMetrics``. Here the supported
place is the top of the query (``df.observe(...).writeStream``, the documented use):
the rows that pass it are the batch handed to the sink, so the aggregates run over that
batch on the driver after the sink took it. ``split_observed`` rejects other places.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from unbounded.engine.context import CompileContext
from unbounded.engine.plans import compile_output, to_display_arrow
from unbounded.errors import AnalysisException
from unbounded.plan.logical import Aggregate, DataRelation, LogicalPlan, walk_plan
from unbounded.plan.observe import CollectMetrics

__all__ = ["evaluate_observed", "split_observed"]


def split_observed(plan: LogicalPlan) -> tuple[LogicalPlan, tuple[CollectMetrics, ...]]:
    """The plan without its top ``CollectMetrics`` nodes, and those nodes (outermost
    first); a ``CollectMetrics`` anywhere else is refused with the reason."""
    found: list[CollectMetrics] = []
    while isinstance(plan, CollectMetrics):
        found.append(plan)
        plan = plan.child
    if any(isinstance(n, CollectMetrics) for n in walk_plan(plan)):
        raise AnalysisException(
            "observe() on a streaming DataFrame is supported as the last transformation "
            "before writeStream: its metrics are computed over each micro-batch the sink "
            "receives. Move observe(...) after the other transformations.",
            error_class="UNSUPPORTED_OBSERVE_POSITION")
    names = [m.name for m in found]
    if len(set(names)) != len(names):
        raise AnalysisException(
            f"Multiple observe() calls use the same name {names}; each needs its own name.",
            error_class="DUPLICATED_METRICS_NAME")
    return plan, tuple(found)


def evaluate_observed(observed: Sequence[CollectMetrics], tables: Sequence[pa.Table],
                      ) -> dict[str, dict[str, Any]]:
    """``{name: {metric: value}}`` over the rows of ``tables`` (one batch's output)."""
    if not observed:
        return {}
    batch = DataRelation(pa.concat_tables(tables, promote_options="default"))
    return {node.name: _one_row(Aggregate(batch, (), node.metrics)) for node in observed}


def _one_row(plan: Aggregate) -> dict[str, Any]:
    ctx = CompileContext(pl.Schema(), int(time.time() * 1_000_000))
    frame, columns = compile_output(plan, {}, ctx)
    rows = to_display_arrow(frame.collect(), columns).to_pylist()
    return dict(rows[0]) if rows else {}
