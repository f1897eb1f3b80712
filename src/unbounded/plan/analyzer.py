"""Spark's rules for what a streaming query may do, checked before it starts.

Each rejection says what is wrong and which change makes the query valid.
"""

from __future__ import annotations

from unbounded.errors import UnsupportedOperationException
from unbounded.plan.expressions import (
    Alias,
    ColumnRef,
    Expression,
    FunctionCall,
    PythonUDF,
    contains_node,
    walk,
)
from unbounded.plan.logical import (
    Aggregate,
    Filter,
    FlatMapCoGroupsInPandas,
    FlatMapGroupsInPandas,
    FlatMapGroupsInPandasWithState,
    GroupStateTimeoutKind,
    Join,
    JoinType,
    Limit,
    LogicalPlan,
    Project,
    Sort,
    WithWatermark,
    is_streaming,
    walk_plan,
)
from unbounded.plan.window import WindowExpression

__all__ = ["check_streaming_query", "event_time_columns", "watermarked_columns"]


def _fail(message: str) -> UnsupportedOperationException:
    # Spark 4's UnsupportedOperationChecker raises each of its rejections with this class.
    return UnsupportedOperationException(message, error_class="_LEGACY_ERROR_TEMP_3102")


def event_time_columns(plan: LogicalPlan) -> dict[str, int]:
    """Columns (lower-cased) of ``plan`` and below that carry event time, with their
    watermark delay in ms: the withWatermark columns, and the time-window key of an
    aggregation over one (Spark carries the watermark through it, so a chained
    ``window(window_time(window), ...)`` is event time too)."""
    delays: dict[str, int] = {}
    for node in reversed(list(walk_plan(plan))):  # children before their parents
        if isinstance(node, WithWatermark):
            delays[node.column.lower()] = node.delay_ms
        elif isinstance(node, Aggregate) and delays:
            for key in node.keys:
                if _key_is_event_time(key, set(delays)):
                    delays.setdefault(key.display_name().lower(), min(delays.values()))
    return delays


def watermarked_columns(plan: LogicalPlan) -> set[str]:
    return set(event_time_columns(plan))


def _key_is_event_time(key: Expression, columns: set[str]) -> bool:
    inner = key.child if isinstance(key, Alias) else key
    if isinstance(inner, ColumnRef):
        return inner.display_name().lower() in columns
    if isinstance(inner, FunctionCall) and inner.name in ("window", "session_window"):
        return any(isinstance(n, ColumnRef) and n.display_name().lower() in columns
                   for n in walk(inner))
    return False


def _is_session_window(key: Expression) -> bool:
    inner = key.child if isinstance(key, Alias) else key
    return isinstance(inner, FunctionCall) and inner.name == "session_window"


def check_streaming_query(plan: LogicalPlan, output_mode: str) -> None:
    if not is_streaming(plan):
        return
    aggregates = [n for n in walk_plan(plan) if isinstance(n, Aggregate) and is_streaming(n)]
    if len(aggregates) > 1 and output_mode != "append":
        raise _fail("Multiple streaming aggregations are not supported with streaming "
                    "DataFrames/Datasets. Compute one aggregation per query, or chain queries "
                    "through a sink.")
    if not aggregates and output_mode == "complete":
        raise _fail("Complete output mode not supported when there are no streaming "
                    "aggregations on streaming DataFrames/Datasets. Use outputMode('append').")
    for node in walk_plan(plan):
        if isinstance(node, Project) and is_streaming(node) and any(
                contains_node(e, WindowExpression) for e in node.exprs):
            raise _fail("Non-time-based windows are not supported on streaming "
                        "DataFrames/Datasets. Use window(...) on an event-time column in "
                        "groupBy, or apply the window function to each micro-batch inside "
                        "foreachBatch.")
        if isinstance(node, (Project, Filter)) and is_streaming(node) and _monotonic_id(node):
            raise _fail("Expression(s): monotonically_increasing_id() is not supported with "
                        "streaming DataFrames/Datasets. Number rows inside foreachBatch, or "
                        "use uuid() for unique ids.")
        if isinstance(node, Sort) and not (aggregates and output_mode == "complete"):
            raise _fail("Sorting is not supported on streaming DataFrames/Datasets, unless it "
                        "is on aggregated DataFrame/Dataset in Complete output mode.")
        if isinstance(node, Limit) and output_mode == "update":
            raise _fail("Limits are not supported on streaming DataFrames/Datasets in Update "
                        "output mode. Use append or complete.")
    for node in walk_plan(plan):
        _check_user_code(node)
    _check_group_state(plan, output_mode, aggregates)
    for node in walk_plan(plan):
        if isinstance(node, Join):
            _check_join(node, output_mode)
    for aggregate in aggregates:
        _check_aggregate(aggregate, output_mode)


def _monotonic_id(node: Project | Filter) -> bool:
    """Spark rejects monotonically_increasing_id() in a stream: each micro-batch would
    number its rows from zero again."""
    exprs = node.exprs if isinstance(node, Project) else (node.condition,)
    return any(isinstance(n, FunctionCall) and n.name == "monotonically_increasing_id"
               for e in exprs for n in walk(e))


# (join type, streaming side) -> Spark's UnsupportedOperationChecker message for a
# stream-static join of that shape.
_STREAM_STATIC_REJECTED = {
    (JoinType.RIGHT_OUTER, "left"): "RightOuter join with a streaming DataFrame/Dataset on "
    "the left and a static DataFrame/Dataset on the right is not supported",
    (JoinType.LEFT_OUTER, "right"): "LeftOuter join with a streaming DataFrame/Dataset on "
    "the right and a static DataFrame/Dataset on the left is not supported",
    (JoinType.FULL_OUTER, "left"): "FullOuter joins with streaming DataFrames/Datasets on "
    "the left and a static DataFrame/Dataset on the right is not supported",
    (JoinType.FULL_OUTER, "right"): "FullOuter joins with streaming DataFrames/Datasets on "
    "the right and a static DataFrame/Dataset on the left is not supported",
    (JoinType.LEFT_SEMI, "right"): "LeftSemi join with a streaming DataFrame/Dataset on the "
    "right and a static DataFrame/Dataset on the left is not supported",
    (JoinType.LEFT_ANTI, "right"): "LeftAnti join with a streaming DataFrame/Dataset on the "
    "right and a static DataFrame/Dataset on the left is not supported",
}


def _check_join(join: Join, output_mode: str) -> None:
    """Spark's rules for joins with a stream (before start, with Spark's messages)."""
    left, right = is_streaming(join.left), is_streaming(join.right)
    if left and right:
        _check_stream_stream_join(join, output_mode)
        return
    side = "left" if left else "right"
    message = _STREAM_STATIC_REJECTED.get((join.join_type, side))
    if message is not None:
        raise _fail(message + ". Swap the sides, or use an inner join.")


def _check_stream_stream_join(join: Join, output_mode: str) -> None:
    if output_mode != "append":
        raise _fail(f"Join between two streaming DataFrames/Datasets is not supported in "
                    f"{output_mode.capitalize()} output mode, only in Append output mode.")
    if join.join_type is JoinType.LEFT_ANTI:
        raise _fail("LeftAnti joins with a streaming DataFrame/Dataset on the right are not "
                    "supported.")
    if join.join_type is JoinType.CROSS:
        raise _fail("Stream-stream join without equality predicate is not supported.")


def _check_user_code(node: LogicalPlan) -> None:
    """Grouped pandas code needs every row of a group at once, which a stream only has
    within one partition of one batch: rejected, as Spark rejects pandas aggregates."""
    if not is_streaming(node):
        return
    if isinstance(node, (FlatMapGroupsInPandas, FlatMapCoGroupsInPandas)):
        kind = "cogroup().applyInPandas" if isinstance(node, FlatMapCoGroupsInPandas) \
            else "applyInPandas"
        raise _fail(f"{kind} is not supported on streaming DataFrames/Datasets: its groups "
                    "would hold the rows of one partition of one micro-batch. Use it inside "
                    "foreachBatch, or a streaming groupBy(...).agg(...).")
    if isinstance(node, Aggregate) and any(
            isinstance(n, PythonUDF) and n.is_aggregate for a in node.aggs for n in walk(a)):
        raise _fail("Streaming aggregation doesn't support group aggregate pandas UDF. "
                    "Apply it inside foreachBatch, or use built-in aggregate functions.")


def _check_group_state(plan: LogicalPlan, output_mode: str,
                       aggregates: list[Aggregate]) -> None:
    """Spark's UnsupportedOperationChecker rules for applyInPandasWithState."""
    nodes = [n for n in walk_plan(plan)
             if isinstance(n, FlatMapGroupsInPandasWithState) and is_streaming(n)]
    if len(nodes) > 1:
        raise _fail("Multiple applyInPandasWithStates are not supported on a streaming "
                    "DataFrames/Datasets. Keep one per query, or chain queries through a sink.")
    for node in nodes:
        _check_group_state_mode(node, output_mode, aggregates)
        if node.timeout is GroupStateTimeoutKind.EVENT_TIME and not watermarked_columns(
                node.child):
            raise _fail("Watermark must be specified in the query using "
                        "'[Dataset/DataFrame].withWatermark()' for using event-time timeout "
                        "in a applyInPandasWithState. Event-time timeout not supported "
                        "without watermark.")


def _check_group_state_mode(node: FlatMapGroupsInPandasWithState, output_mode: str,
                            aggregates: list[Aggregate]) -> None:
    mode = node.output_mode
    if not aggregates:
        if mode != output_mode:
            raise _fail(f"applyInPandasWithState in {mode} mode is not supported with "
                        f"{output_mode.capitalize()} output mode on a streaming "
                        f"DataFrame/Dataset. Use outputMode('{mode}') for the query.")
        return
    if mode == "update":
        raise _fail("applyInPandasWithState in update mode is not supported with "
                    "aggregation on a streaming DataFrame/Dataset. Use 'append' as the "
                    "function's output mode.")
    if any(isinstance(n, Aggregate) and is_streaming(n) for n in walk_plan(node.child)):
        raise _fail("applyInPandasWithState in append mode is not supported after "
                    "aggregation on a streaming DataFrame/Dataset.")


def _check_aggregate(agg: Aggregate, output_mode: str) -> None:
    if output_mode == "update" and any(_is_session_window(k) for k in agg.keys):
        raise _fail("Update output mode is not supported with session windows (session "
                    "window aggregation). Use outputMode('append') with a watermark, or "
                    "'complete'.")
    if output_mode != "append":
        return
    columns = watermarked_columns(agg.child)
    if not columns or not any(_key_is_event_time(k, columns) for k in agg.keys):
        raise _fail(
            "Append output mode not supported when there are streaming aggregations on "
            "streaming DataFrames/DataSets without watermark. Add withWatermark(...) on the "
            "event-time column and group by it (or a window over it), or use "
            "outputMode('update') or outputMode('complete').")
