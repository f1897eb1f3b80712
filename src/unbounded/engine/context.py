"""What compiling an expression needs to know: the input columns and the batch clock.

The input columns are ``OutputColumn``s, not bare Polars names: a join's output may hold
two columns a user calls ``id``, so each column has a unique Polars (``physical``) name,
the name users see, the aliases that qualify it (``a.id``) and the plan nodes it came out
of (``df["id"]``). Resolution follows Spark: qualifier first, then a struct field; a bare
name that matches columns of two sides is ambiguous. See docs/design/joins.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import polars as pl
from polars.io.plugins import register_io_source

from unbounded.config import DEFAULTS
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import ColumnRef
from unbounded.plan.time_zones import parse_zone

if TYPE_CHECKING:
    from unbounded.plan.logical import LogicalPlan

__all__ = [
    "ANSI_CONF",
    "TIME_ZONE_CONF",
    "CompileContext",
    "EventTimeStats",
    "OutputColumn",
    "ansi_enabled",
    "fresh_columns",
    "schema_frame",
    "session_time_zone",
    "split_name",
    "unique_name",
]


ANSI_CONF = "spark.sql.ansi.enabled"
TIME_ZONE_CONF = "spark.sql.session.timeZone"


def ansi_enabled(conf: Mapping[str, str]) -> bool:
    """``spark.sql.ansi.enabled`` from a conf: on unless set to false, as in Spark 4."""
    return str(conf.get(ANSI_CONF, "true")).strip().lower() != "false"


def session_time_zone(conf: Mapping[str, str]) -> str:
    """``spark.sql.session.timeZone`` from a conf, checked (an unknown zone fails as
    Spark's does); unset, the machine's zone, as Spark's default is the JVM's."""
    zone = conf.get(TIME_ZONE_CONF) or DEFAULTS[TIME_ZONE_CONF]
    parse_zone(zone)
    return zone


@dataclass
class EventTimeStats:
    """Min/max/sum/count of an event-time column seen in one batch, in microseconds."""

    min_us: int | None = None
    max_us: int | None = None
    sum_us: int = 0
    count: int = 0

    def merge(self, other: EventTimeStats) -> None:
        if other.count == 0:
            return
        self.min_us = other.min_us if self.min_us is None else min(self.min_us, other.min_us or 0)
        self.max_us = other.max_us if self.max_us is None else max(self.max_us, other.max_us or 0)
        self.sum_us += other.sum_us
        self.count += other.count


@dataclass(frozen=True)
class OutputColumn:
    """One column of a compiled plan's output.

    Invariant: ``physical`` names are unique within one output and are what the Polars
    frame calls the column; ``name`` is what users see and may repeat (a join's ``id``).
    ``qualifiers`` are lower-cased aliases (``df.alias("a")``); ``lineage`` holds the
    ``plan_id`` of every node that passed this column through unchanged.

    >>> OutputColumn("id#1", "id", frozenset({"b"})).label
    '`b`.`id`'
    """

    physical: str
    name: str
    qualifiers: frozenset[str] = frozenset()
    lineage: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        """The column as Spark names it in messages: ```a`.`id``` or ```id```."""
        qualifier = min(self.qualifiers) if self.qualifiers else None
        return f"`{qualifier}`.`{self.name}`" if qualifier else f"`{self.name}`"

    def seen_by(self, plan_id: str) -> OutputColumn:
        # Built directly: this runs per column per plan node of every task's compile,
        # and dataclasses.replace costs twice as much.
        return OutputColumn(self.physical, self.name, self.qualifiers,
                            self.lineage | {plan_id})


def fresh_columns(
    names: Iterable[str], inherit_from: Iterable[OutputColumn] = ()
) -> tuple[OutputColumn, ...]:
    """One column per frame name: the ``inherit_from`` column of that physical name
    (keeping its display name, qualifiers and lineage), else one with none of them."""
    known = {c.physical: c for c in inherit_from}
    return tuple(known.get(n) or OutputColumn(n, n) for n in names)


def schema_frame(schema: pl.Schema) -> pl.LazyFrame:
    """An empty frame of ``schema`` for schema queries and for running expressions over
    no rows. ``pl.LazyFrame(schema=)`` builds a Series per column (milliseconds for a wide
    frame); this builds only the columns a query reads, when it is collected."""
    def no_rows(with_columns: list[str] | None, *_: object) -> Iterator[pl.DataFrame]:
        names = schema.names() if with_columns is None else with_columns
        yield pl.DataFrame(schema={n: schema[n] for n in names})

    return register_io_source(no_rows, schema=schema)


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name#k`` with the smallest k that is not ``taken``."""
    candidate, k = name, 0
    while candidate in taken:
        k += 1
        candidate = f"{name}#{k}"
    return candidate


def split_name(name: str) -> list[str]:
    """The parts of a dotted name; backquoted parts keep their dots.

    >>> split_name("a.b"), split_name("`x.y`.z"), split_name("`a.b`")
    (['a', 'b'], ['x.y', 'z'], ['a.b'])
    """
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in name:
        if ch == "`":
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


@dataclass
class CompileContext:
    """Per-batch compile state.

    ``batch_timestamp_us`` is the batch time recorded in the offset log, so
    ``current_timestamp()`` is the same when a batch is re-run after a crash.
    ``columns`` describes ``schema`` column by column (derived from it when not given);
    ``plan_columns`` maps each plan node compiled so far to its output columns, shared by
    every context derived from this one. ``ansi`` is ``spark.sql.ansi.enabled``;
    ``time_zone`` is ``spark.sql.session.timeZone`` (plan/time_zones.py), read when a
    batch action or a streaming query starts.
    """

    schema: pl.Schema
    batch_timestamp_us: int
    watermark_us: int = 0
    event_time: dict[str, EventTimeStats] = field(default_factory=dict)
    observe_event_time: bool = False
    columns: tuple[OutputColumn, ...] = ()
    plan_columns: dict[LogicalPlan, tuple[OutputColumn, ...]] = field(default_factory=dict)
    # A streaming batch reads the files of a static side anew (a changed folder shows in
    # the next batch); a batch DataFrame keeps the files listed when it was created.
    relist_files: bool = False
    # Spark 4's default (spark.sql.ansi.enabled): invalid casts, overflows and division
    # by zero raise Spark's errors; False gives NULL as Spark 3 did.
    ansi: bool = True
    # The task's source partition (its place in the batch's list, the same on a re-run)
    # and its file when it reads one: spark_partition_id(), rand(), input_file_name().
    partition_index: int = 0
    input_file: str = ""
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        if not self.columns and len(self.schema):
            self.columns = fresh_columns(self.schema.names())

    def with_schema(
        self, schema: pl.Schema, columns: Sequence[OutputColumn] | None = None
    ) -> CompileContext:
        """A context over ``schema``; columns it shares with this one keep their names
        and qualifiers unless ``columns`` says otherwise."""
        if columns is None:
            columns = fresh_columns(schema.names(), inherit_from=self.columns)
        return CompileContext(schema, self.batch_timestamp_us, self.watermark_us,
                              self.event_time, self.observe_event_time, tuple(columns),
                              self.plan_columns, self.relist_files, self.ansi,
                              self.partition_index, self.input_file, self.time_zone)

    def resolve(self, name: str) -> str:
        """The physical name of the input column called ``name`` (no struct fields)."""
        column, fields = self.resolve_column(ColumnRef(name))
        if fields:
            raise self._unresolved(name)
        return column.physical

    def resolve_column(self, ref: ColumnRef) -> tuple[OutputColumn, list[str]]:
        """The input column ``ref`` names, and the struct fields to read from it."""
        if ref.ordinal is not None:
            return self.columns[ref.ordinal], []
        scoped = self._by_plan.get(ref.plan_id, []) if ref.plan_id is not None else []
        # A DataFrame's column is looked up among that DataFrame's columns only; by name
        # when none of them is here (the runtime rebuilt the plan below, say).
        found = _match(ref.name, _index_by_name(scoped), scoped_to_plan=True) if scoped \
            else _match(ref.name, self._by_name, scoped_to_plan=False)
        if found is None:
            raise self._unresolved(ref.name)
        return found

    def _unresolved(self, name: str) -> AnalysisException:
        shown = ", ".join(c.label for c in self.columns)
        return AnalysisException(
            f"[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or function parameter with name "
            f"`{_unquoted(name)}` cannot be resolved. Did you mean one of the following? "
            f"[{shown}].",
            error_class="UNRESOLVED_COLUMN",
        )

    def columns_qualified(self, qualifier: str) -> list[OutputColumn]:
        """The input columns of the side aliased ``qualifier`` (for ``a.*``)."""
        return [c for c in self.columns if qualifier.lower() in c.qualifiers]

    def dtype_of(self, expr: pl.Expr) -> pl.DataType:
        """The dtype ``expr`` evaluates to over the input columns."""
        return self.empty_input.select(expr.alias("_t")).collect_schema()["_t"]

    @cached_property
    def empty_input(self) -> pl.LazyFrame:
        """An empty frame of the input columns, made once per context."""
        return schema_frame(self.schema)

    # Indexes of ``columns`` (fixed once the context is made): resolving a reference is
    # a lookup, so compiling a node costs its width, not its width squared.
    @cached_property
    def _by_name(self) -> dict[str, list[OutputColumn]]:
        return _index_by_name(self.columns)

    @cached_property
    def _by_plan(self) -> dict[str, list[OutputColumn]]:
        index: dict[str, list[OutputColumn]] = {}
        for c in self.columns:
            for plan_id in c.lineage:
                index.setdefault(plan_id, []).append(c)
        return index


def _unquoted(name: str) -> str:
    """A name as messages show it, inside one pair of backquotes: ``a.b`` for ```a.b```."""
    return ".".join(split_name(name))


def _index_by_name(columns: Iterable[OutputColumn]) -> dict[str, list[OutputColumn]]:
    """Columns by lower-cased name, each list in column order."""
    index: dict[str, list[OutputColumn]] = {}
    for c in columns:
        index.setdefault(c.name.lower(), []).append(c)
    return index


def _match(
    name: str, by_name: Mapping[str, list[OutputColumn]], *, scoped_to_plan: bool
) -> tuple[OutputColumn, list[str]] | None:
    """Spark's order: the whole name, then ``qualifier.column.fields``, then
    ``column.fields``; the first step that matches anything decides."""
    parts = split_name(name)
    lowered = [p.lower() for p in parts]
    steps: list[tuple[list[OutputColumn], list[str]]] = []
    if len(parts) > 1:
        steps.append((by_name.get(name.lower(), []), []))
        steps.append(([c for c in by_name.get(lowered[1], []) if lowered[0] in c.qualifiers],
                      parts[2:]))
    steps.append((by_name.get(lowered[0], []), parts[1:]))
    for candidates, fields in steps:
        if candidates:
            return _one(name, candidates, parts, scoped_to_plan), fields
    return None


def _one(name: str, candidates: list[OutputColumn], parts: list[str],
         scoped_to_plan: bool) -> OutputColumn:
    if len(candidates) > 1:
        exact = [c for c in candidates if c.name in parts]
        candidates = exact if len(exact) == 1 else candidates
    if len(candidates) == 1:
        return candidates[0]
    if scoped_to_plan:
        raise AnalysisException(
            f"[AMBIGUOUS_COLUMN_REFERENCE] Column `{_unquoted(name)}` is ambiguous. It's "
            "because you joined several DataFrame together, and some of these DataFrames "
            "are the same. "
            "This column points to one of the DataFrames but Spark is unable to figure out "
            "which one. Please alias the DataFrames with different names via "
            "`DataFrame.alias` before joining them, and specify the column using qualified "
            "name, e.g. `df.alias(\"a\").join(df.alias(\"b\"), col(\"a.id\") > col(\"b.id\"))`.",
            error_class="AMBIGUOUS_COLUMN_REFERENCE")
    shown = ", ".join(c.label for c in candidates)
    raise AnalysisException(
        f"[AMBIGUOUS_REFERENCE] Reference `{_unquoted(name)}` is ambiguous, could be: "
        f"[{shown}].",
        error_class="AMBIGUOUS_REFERENCE",
    )
