"""Physical planning: a streaming plan cut into row-local stages and stateful operators.

Every stateful node of a streaming plan (a streaming aggregation or deduplication, a
stream-stream join, applyInPandasWithState) becomes an ``OperatorStage`` with one
``StageInput`` per child. A stage input is a row-local plan: when its leaves are
streaming sources it runs as partition tasks (one per source partition, exact because
the plan is row-local); when its leaf is an upstream operator's output it runs on the
driver after that operator.
What is left above the last operator is the query's ``final`` input, which feeds the
sink. A stateless query is only its final input, run as partition tasks.

Operators are numbered bottom-up, left to right, as Spark numbers its stateful
operators, so an operator keeps its id (and its state folder) across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

from unbounded.errors import UnsupportedOperationException
from unbounded.plan.logical import (
    Aggregate,
    BoundRelation,
    Deduplicate,
    FlatMapGroupsInPandasWithState,
    Join,
    LogicalPlan,
    StreamingRelation,
    TransformWithStateInPandas,
    is_streaming,
    replace_node,
    walk_plan,
)

__all__ = ["InputId", "OperatorStage", "PhysicalPlan", "StageInput", "is_stateful",
           "plan_stages"]


@dataclass(frozen=True)
class InputId:
    """Which input a task's rows belong to: input ``index`` of operator ``operator``,
    or the query's final input when ``operator`` is None."""

    operator: int | None
    index: int = 0


@dataclass(frozen=True)
class StageInput:
    """A row-local plan feeding an operator (or the sink).

    ``upstream`` is the operator whose output is this plan's leaf (run on the driver);
    None means the leaves are streaming sources (run as partition tasks).
    """

    id: InputId
    plan: LogicalPlan
    upstream: int | None

    @property
    def relations(self) -> list[StreamingRelation]:
        return [n for n in walk_plan(self.plan) if isinstance(n, StreamingRelation)]


@dataclass(frozen=True)
class OperatorStage:
    """A stateful node, its inputs, and the placeholder its output is bound to above."""

    operator_id: int
    node: LogicalPlan
    inputs: tuple[StageInput, ...]
    output: BoundRelation


@dataclass(frozen=True)
class PhysicalPlan:
    operators: tuple[OperatorStage, ...]  # upstream before downstream
    final: StageInput

    def task_inputs(self) -> list[StageInput]:
        """The inputs that read sources and so run as partition tasks."""
        candidates = [i for op in self.operators for i in op.inputs] + [self.final]
        return [i for i in candidates if i.upstream is None]

    def input_of(self, relation: StreamingRelation) -> StageInput:
        for candidate in self.task_inputs():
            if any(r is relation for r in candidate.relations):
                return candidate
        raise KeyError(relation.relation_id)


def is_stateful(node: LogicalPlan) -> bool:
    """Whether ``node`` keeps state across batches in a streaming query (a join with one
    static side keeps none: each batch joins the static rows anew)."""
    if isinstance(node, Join):
        return is_streaming(node.left) and is_streaming(node.right)
    return isinstance(node, (Aggregate, Deduplicate, FlatMapGroupsInPandasWithState,
                             TransformWithStateInPandas)) and is_streaming(node)


def plan_stages(plan: LogicalPlan) -> PhysicalPlan:
    operators: list[OperatorStage] = []
    final_plan = _cut(plan, operators)
    return PhysicalPlan(tuple(operators), _stage_input(InputId(None), final_plan, operators))


def _topmost_stateful(plan: LogicalPlan) -> list[LogicalPlan]:
    """The stateful nodes with no stateful node above them, left to right; a loop, not
    recursion, so a plan of a long DataFrame chain (thousands of nodes) is cut too."""
    found: list[LogicalPlan] = []
    pending = [plan]
    while pending:
        node = pending.pop()
        if is_stateful(node):
            found.append(node)
        else:
            pending.extend(reversed(node.children()))
    return found


def _cut(plan: LogicalPlan, operators: list[OperatorStage]) -> LogicalPlan:
    """``plan`` with each topmost stateful node replaced by its output placeholder; the
    nodes (and everything stateful below them) are appended to ``operators``."""
    from unbounded.engine.plans import plan_schema

    for node in _topmost_stateful(plan):
        children = [_cut(child, operators) for child in node.children()]
        operator_id = len(operators)
        inputs = tuple(_stage_input(InputId(operator_id, i), child, operators)
                       for i, child in enumerate(children))
        # A join's output columns carry qualifiers and may repeat names: the placeholder
        # stands for the node so references above it resolve as against the node.
        output = BoundRelation(plan_schema(node), stands_for=node if isinstance(node, Join)
                               else None)
        stage = OperatorStage(operator_id, node, inputs, output)
        operators.append(stage)
        plan = replace_node(plan, node, stage.output)
    return plan


def _stage_input(input_id: InputId, plan: LogicalPlan,
                 operators: list[OperatorStage]) -> StageInput:
    bound = {id(n) for n in walk_plan(plan) if isinstance(n, BoundRelation)}
    upstream = [op.operator_id for op in operators if id(op.output) in bound]
    if len(upstream) > 1 or (upstream and is_streaming(plan)):
        raise UnsupportedOperationException(
            "This query combines the output of a stateful operator with another stream "
            "(e.g. a union of an aggregation with a stream); it is not supported. Write "
            "each part to its own sink, or join the streams before aggregating.",
            error_class="UNSUPPORTED_STREAMING_OPERATION")
    return StageInput(input_id, plan, upstream[0] if upstream else None)
