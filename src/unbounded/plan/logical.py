"""Logical plan nodes: what a DataFrame computes, independent of how it runs.

A streaming query's plan has ``StreamingRelation`` leaves; the runtime binds each leaf to
one batch of its source's data. Plans are immutable and hold no live objects (sources are
described by a ``SourceSpec``), so a plan can be shipped to an executor.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

import pyarrow as pa

from unbounded.errors import AnalysisException
from unbounded.plan.expressions import Expression, PythonEvalType, PythonFunction, SortOrder
from unbounded.plan.types import StructType

__all__ = [
    "Aggregate",
    "BoundRelation",
    "DataRelation",
    "Deduplicate",
    "FileRelation",
    "Filter",
    "FlatMapCoGroupsInPandas",
    "FlatMapGroupsInPandas",
    "FlatMapGroupsInPandasWithState",
    "GroupStateTimeoutKind",
    "Join",
    "JoinType",
    "Limit",
    "LogicalPlan",
    "MapInBatches",
    "Project",
    "Sort",
    "SourceSpec",
    "StreamingRelation",
    "SubqueryAlias",
    "TimeMode",
    "TransformWithStateInPandas",
    "Union",
    "WithWatermark",
    "is_streaming",
    "replace_node",
    "streaming_relations",
    "walk_plan",
]

_relation_ids = itertools.count()
_plan_ids = itertools.count()


def _next_relation_id() -> str:
    return f"rel{next(_relation_ids)}"


def _next_plan_id() -> str:
    return f"plan{next(_plan_ids)}"


@dataclass(frozen=True, eq=False)
class LogicalPlan:
    """Base of every plan node.

    ``plan_id`` names the node for ``df["x"]`` references (Spark Connect's plan id): a
    column a DataFrame hands out resolves to that DataFrame's output, wherever it sits
    in a bigger plan. It survives ``dataclasses.replace``.
    """

    plan_id: str = field(default_factory=_next_plan_id, kw_only=True, repr=False,
                         compare=False)

    def children(self) -> tuple[LogicalPlan, ...]:
        return ()

    def describe(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class SourceSpec:
    """How to build a source: its format, options and (optional) user schema."""

    format: str
    options: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold secrets
    schema: StructType | None = None

    def option(self, key: str, default: str | None = None) -> str | None:
        lowered = key.lower()
        for k, v in self.options:
            if k.lower() == lowered:
                return v
        return default

    def options_dict(self) -> dict[str, str]:
        return dict(self.options)


@dataclass(frozen=True, eq=False)
class StreamingRelation(LogicalPlan):
    """A leaf read from a streaming source, one micro-batch at a time."""

    spec: SourceSpec
    schema: StructType
    relation_id: str = field(default_factory=_next_relation_id)

    def describe(self) -> str:
        return f"StreamingRelation {self.spec.format} [{', '.join(self.schema.names)}]"


@dataclass(frozen=True, eq=False)
class BoundRelation(LogicalPlan):
    """A leaf the runtime binds to data it computed (a stateful operator's output).

    ``stands_for`` is the node whose output this leaf carries, when that output's columns
    have more than names (a join's qualifiers and repeated names): references above the
    leaf then resolve exactly as they did against the node.
    """

    schema: StructType
    relation_id: str = field(default_factory=_next_relation_id)
    stands_for: LogicalPlan | None = None

    def describe(self) -> str:
        return f"StateOutput [{', '.join(self.schema.names)}]"


@dataclass(frozen=True, eq=False)
class DataRelation(LogicalPlan):
    """A leaf holding data already in memory (createDataFrame, a micro-batch)."""

    table: pa.Table

    def describe(self) -> str:
        return f"LocalRelation [{', '.join(self.table.column_names)}]"


@dataclass(frozen=True, eq=False)
class FileRelation(LogicalPlan):
    """A leaf that reads a set of files as one batch.

    ``paths`` are the files listed when the DataFrame was made; ``roots`` the paths the
    user gave, listed again for each micro-batch of a stream-static join.
    """

    format: str
    paths: tuple[str, ...]
    schema: StructType
    options: tuple[tuple[str, str], ...] = ()
    roots: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"FileScan {self.format} [{', '.join(self.schema.names)}]"


@dataclass(frozen=True, eq=False)
class Project(LogicalPlan):
    child: LogicalPlan
    exprs: tuple[Expression, ...]

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.child,)

    def describe(self) -> str:
        return "Project [" + ", ".join(e.display_name() for e in self.exprs) + "]"


@dataclass(frozen=True, eq=False)
class Filter(LogicalPlan):
    child: LogicalPlan
    condition: Expression

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.child,)

    def describe(self) -> str:
        return f"Filter {self.condition.display_name()}"


@dataclass(frozen=True, eq=False)
class WithWatermark(LogicalPlan):
    child: LogicalPlan
    column: str
    delay_ms: int
    node_id: str = field(default_factory=_next_relation_id)

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.child,)

    def describe(self) -> str:
        return f"EventTimeWatermark {self.column}, {self.delay_ms} ms"


@dataclass(frozen=True, eq=False)
class Union(LogicalPlan):
    inputs: tuple[LogicalPlan, ...]
    by_name: bool = False
    allow_missing: bool = False

    def children(self) -> tuple[LogicalPlan, ...]:
        return self.inputs


@dataclass(frozen=True, eq=False)
class Aggregate(LogicalPlan):
    child: LogicalPlan
    keys: tuple[Expression, ...]
    aggs: tuple[Expression, ...]

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.child,)

    def describe(self) -> str:
        keys = ", ".join(k.display_name() for k in self.keys)
        aggs = ", ".join(a.display_name() for a in self.aggs)
        return f"Aggregate [{keys}], [{aggs}]"


@dataclass(frozen=True, eq=False)
class Deduplicate(LogicalPlan):
    child: LogicalPlan
    keys: tuple[str, ...] | None
    within_watermark: bool = False

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.child,)

    def describe(self) -> str:
        kind = "DeduplicateWithinWatermark" if self.within_watermark else "Deduplicate"
        return f"{kind} [{', '.join(self.keys or ('*',))}]"


@dataclass(frozen=True, eq=False)
class Sort(LogicalPlan):
    child: LogicalPlan
    orders: tuple[SortOrder, ...]

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.child,)


@dataclass(frozen=True, eq=False)
class Limit(LogicalPlan):
    child: LogicalPlan
    n: int

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.child,)


class JoinType(Enum):
    """Spark's join types; ``parse`` accepts every spelling ``DataFrame.join`` does."""

    INNER = "inner"
    CROSS = "cross"
    LEFT_OUTER = "left_outer"
    RIGHT_OUTER = "right_outer"
    FULL_OUTER = "full_outer"
    LEFT_SEMI = "left_semi"
    LEFT_ANTI = "left_anti"

    @classmethod
    def parse(cls, how: str) -> JoinType:
        """The join type ``how`` names, case-insensitive, underscores ignored (as Spark).

        >>> JoinType.parse("Left_Outer"), JoinType.parse("full")
        (<JoinType.LEFT_OUTER: 'left_outer'>, <JoinType.FULL_OUTER: 'full_outer'>)
        """
        found = _JOIN_SPELLINGS.get(how.lower().replace("_", ""))
        if found is None:
            supported = ", ".join(f"'{s}'" for s in _SUPPORTED_SPELLINGS)
            raise AnalysisException(
                f"[UNSUPPORTED_JOIN_TYPE] Unsupported join type '{how}'. Supported join "
                f"types include: {supported}.", error_class="UNSUPPORTED_JOIN_TYPE")
        return found

    @property
    def keeps_right_columns(self) -> bool:
        """Whether the output holds the right side's columns (not for semi and anti)."""
        return self not in (JoinType.LEFT_SEMI, JoinType.LEFT_ANTI)


# Spark's JoinType.apply, in the order its error message lists them.
_SUPPORTED_SPELLINGS = (
    "inner", "outer", "full", "fullouter", "full_outer", "leftouter", "left", "left_outer",
    "rightouter", "right", "right_outer", "leftsemi", "left_semi", "semi", "leftanti",
    "left_anti", "anti", "cross",
)
_JOIN_SPELLINGS = {
    "inner": JoinType.INNER, "cross": JoinType.CROSS,
    "outer": JoinType.FULL_OUTER, "full": JoinType.FULL_OUTER,
    "fullouter": JoinType.FULL_OUTER,
    "left": JoinType.LEFT_OUTER, "leftouter": JoinType.LEFT_OUTER,
    "right": JoinType.RIGHT_OUTER, "rightouter": JoinType.RIGHT_OUTER,
    "semi": JoinType.LEFT_SEMI, "leftsemi": JoinType.LEFT_SEMI,
    "anti": JoinType.LEFT_ANTI, "leftanti": JoinType.LEFT_ANTI,
}


@dataclass(frozen=True, eq=False)
class Join(LogicalPlan):
    """Rows of ``left`` and ``right`` matched by ``condition`` or by the ``using`` names.

    With ``using`` (``df.join(other, "id")``) the output holds one column per name first,
    then the other left columns, then the other right columns; otherwise all left columns
    then all right columns (names may repeat). Semi and anti joins output left columns.
    """

    left: LogicalPlan
    right: LogicalPlan
    join_type: JoinType = JoinType.INNER
    condition: Expression | None = None
    using: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.using and self.condition is not None:
            raise ValueError("A join has either a condition or USING names, not both.")

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.left, self.right)

    def describe(self) -> str:
        kind = "".join(part.capitalize() for part in self.join_type.name.split("_"))
        if self.using:
            return f"Join UsingJoin({kind}, [{', '.join(self.using)}])"
        cond = f", {self.condition.display_name()}" if self.condition is not None else ""
        return f"Join {kind}{cond}"


@dataclass(frozen=True, eq=False)
class SubqueryAlias(LogicalPlan):
    """``df.alias(name)``: the same rows, with columns that ``name.col`` can reference."""

    child: LogicalPlan
    alias: str

    def __post_init__(self) -> None:
        if not self.alias:
            raise ValueError("An alias must not be empty.")

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.child,)

    def describe(self) -> str:
        return f"SubqueryAlias {self.alias}"


@dataclass(frozen=True, eq=False)
class MapInBatches(LogicalPlan):
    """``mapInPandas``/``mapInArrow``: ``function`` turns an iterator of the child's
    batches into batches of ``schema``. Row-local: a stream runs it inside its tasks."""

    child: LogicalPlan
    function: PythonFunction
    schema: StructType

    def __post_init__(self) -> None:
        kinds = (PythonEvalType.SQL_MAP_PANDAS_ITER_UDF, PythonEvalType.SQL_MAP_ARROW_ITER_UDF)
        if self.function.eval_type not in kinds:
            raise ValueError(f"MapInBatches needs a map function, not {self.function.eval_type}")

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.child,)

    def describe(self) -> str:
        kind = "MapInArrow" if self.function.eval_type is PythonEvalType.SQL_MAP_ARROW_ITER_UDF \
            else "MapInPandas"
        return f"{kind} {self.function.name} [{', '.join(self.schema.names)}]"


@dataclass(frozen=True, eq=False)
class FlatMapGroupsInPandas(LogicalPlan):
    """``groupBy(keys).applyInPandas``: ``function`` maps each group's rows (a pandas
    DataFrame, with the key values first when it takes two arguments) to rows of
    ``schema``."""

    child: LogicalPlan
    keys: tuple[Expression, ...]
    function: PythonFunction
    schema: StructType

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.child,)

    def describe(self) -> str:
        keys = ", ".join(k.display_name() for k in self.keys)
        return f"FlatMapGroupsInPandas [{keys}], {self.function.name}"


class GroupStateTimeoutKind(Enum):
    """``applyInPandasWithState``'s ``timeoutConf``, valued as PySpark's strings."""

    NONE = "NoTimeout"
    PROCESSING_TIME = "ProcessingTimeTimeout"
    EVENT_TIME = "EventTimeTimeout"


@dataclass(frozen=True, eq=False)
class FlatMapGroupsInPandasWithState(LogicalPlan):
    """``groupBy(keys).applyInPandasWithState``: ``function(key, frames, state)`` maps
    each group's rows and its ``GroupState`` (values of ``state_schema``) to rows of
    ``schema``; ``output_mode`` is the function's ("append" or "update")."""

    child: LogicalPlan
    keys: tuple[Expression, ...]
    function: PythonFunction
    schema: StructType
    state_schema: StructType
    output_mode: str
    timeout: GroupStateTimeoutKind

    def __post_init__(self) -> None:
        if self.output_mode not in ("append", "update"):
            raise ValueError("applyInPandasWithState's output mode is append or update")

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.child,)

    def describe(self) -> str:
        keys = ", ".join(k.display_name() for k in self.keys)
        return (f"FlatMapGroupsInPandasWithState [{keys}], {self.function.name}, "
                f"{self.output_mode.capitalize()}, {self.timeout.value}")


class TimeMode(Enum):
    """``transformWithStateInPandas``'s ``timeMode``: what timers and TTL count in."""

    NONE = "None"
    PROCESSING_TIME = "ProcessingTime"
    EVENT_TIME = "EventTime"


@dataclass(frozen=True, eq=False)
class TransformWithStateInPandas(LogicalPlan):
    """``groupBy(keys).transformWithStateInPandas``: ``processor`` (a pickled
    ``StatefulProcessor``) maps each group's rows, its state variables and timers to rows
    of ``schema``. ``initial_state`` (a batch plan grouped by ``initial_keys``) seeds the
    state in the first batch; it is not a child, so the stream's stages never run it."""

    child: LogicalPlan
    keys: tuple[Expression, ...]
    processor: PythonFunction
    schema: StructType
    output_mode: str
    time_mode: TimeMode
    initial_state: LogicalPlan | None = None
    initial_keys: tuple[Expression, ...] = ()
    event_time_column: str = ""

    def __post_init__(self) -> None:
        if self.output_mode not in ("append", "update"):
            raise ValueError("transformWithStateInPandas's output mode is append or update")
        if self.initial_state is not None and len(self.initial_keys) != len(self.keys):
            raise ValueError("the initial state needs as many grouping keys as the stream")

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.child,)

    def describe(self) -> str:
        keys = ", ".join(k.display_name() for k in self.keys)
        return (f"TransformWithStateInPandas [{keys}], {self.processor.name}, "
                f"{self.output_mode.capitalize()}, {self.time_mode.value}")


@dataclass(frozen=True, eq=False)
class FlatMapCoGroupsInPandas(LogicalPlan):
    """``cogroup(...).applyInPandas``: ``function`` maps the rows of both sides that share
    a key (two pandas DataFrames, one possibly empty) to rows of ``schema``."""

    left: LogicalPlan
    right: LogicalPlan
    left_keys: tuple[Expression, ...]
    right_keys: tuple[Expression, ...]
    function: PythonFunction
    schema: StructType

    def __post_init__(self) -> None:
        if len(self.left_keys) != len(self.right_keys):
            raise ValueError("Both sides of a cogroup need the same number of keys.")

    def children(self) -> tuple[LogicalPlan, ...]:
        return (self.left, self.right)

    def describe(self) -> str:
        return f"FlatMapCoGroupsInPandas {self.function.name}"


def walk_plan(plan: LogicalPlan) -> Iterator[LogicalPlan]:
    """Every node of ``plan``, parents before children, left to right. A stack, not
    recursion: a chain of a thousand transformations is a plan that deep."""
    stack = [plan]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))


def streaming_relations(plan: LogicalPlan) -> list[StreamingRelation]:
    """The streaming leaves in Spark's order (depth first, left to right)."""
    return [n for n in walk_plan(plan) if isinstance(n, StreamingRelation)]


def is_streaming(plan: LogicalPlan) -> bool:
    return bool(streaming_relations(plan))


def tree_string(plan: LogicalPlan, indent: int = 0) -> str:
    """A readable tree of the plan, as ``explain()`` prints it."""
    prefix = "" if indent == 0 else "   " * (indent - 1) + "+- "
    lines = [prefix + plan.describe()]
    lines.extend(tree_string(child, indent + 1) for child in plan.children())
    return "\n".join(lines)


def replace_node(plan: LogicalPlan, target: LogicalPlan, replacement: LogicalPlan) -> LogicalPlan:
    """``plan`` with the node ``target`` (by identity) replaced by ``replacement``."""
    import dataclasses

    if plan is target:
        return replacement
    changes: dict[str, object] = {}
    for f in dataclasses.fields(plan):  # type: ignore[arg-type]
        value = getattr(plan, f.name)
        if isinstance(value, LogicalPlan):
            new = replace_node(value, target, replacement)
            if new is not value:
                changes[f.name] = new
        elif isinstance(value, tuple) and value and isinstance(value[0], LogicalPlan):
            items = tuple(replace_node(v, target, replacement) for v in value)
            if any(a is not b for a, b in zip(items, value, strict=True)):
                changes[f.name] = items
    return dataclasses.replace(plan, **changes) if changes else plan  # type: ignore[type-var,arg-type]
