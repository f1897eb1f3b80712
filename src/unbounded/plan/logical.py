"""Logical plan nodes: what a DataFrame computes, independent of how it runs.

A streaming query's plan has ``StreamingRelation`` leaves; the runtime binds each leaf to
one batch of its source's data. Plans are immutable and hold no live objects (sources are
described by a ``SourceSpec``), so a plan can be shipped to an executor.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from unbounded.plan.expressions import Expression, SortOrder
from unbounded.plan.types import StructType

__all__ = [
    "Aggregate",
    "BoundRelation",
    "DataRelation",
    "Deduplicate",
    "FileRelation",
    "Filter",
    "Limit",
    "LogicalPlan",
    "Project",
    "Sort",
    "SourceSpec",
    "StreamingRelation",
    "Union",
    "WithWatermark",
    "is_streaming",
    "replace_node",
    "streaming_relations",
    "walk_plan",
]

_relation_ids = itertools.count()


def _next_relation_id() -> str:
    return f"rel{next(_relation_ids)}"


class LogicalPlan:
    """Base of every plan node."""

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
    """A leaf the runtime binds to data it computed (a stateful operator's output)."""

    schema: StructType
    relation_id: str = field(default_factory=_next_relation_id)

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
    """A leaf that reads a set of files as one batch."""

    format: str
    paths: tuple[str, ...]
    schema: StructType
    options: tuple[tuple[str, str], ...] = ()

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


def walk_plan(plan: LogicalPlan) -> Iterator[LogicalPlan]:
    """Every node of ``plan``, parents before children, left to right."""
    yield plan
    for child in plan.children():
        yield from walk_plan(child)


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
    return dataclasses.replace(plan, **changes) if changes else plan  # type: ignore[type-var]
