"""What compiling an expression needs to know: the input columns and the batch clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from unbounded.errors import AnalysisException

__all__ = ["CompileContext", "EventTimeStats"]


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


@dataclass
class CompileContext:
    """Per-batch compile state.

    ``batch_timestamp_us`` is the batch time recorded in the offset log, so
    ``current_timestamp()`` is the same when a batch is re-run after a crash.
    """

    schema: pl.Schema
    batch_timestamp_us: int
    watermark_us: int = 0
    event_time: dict[str, EventTimeStats] = field(default_factory=dict)
    observe_event_time: bool = False

    def with_schema(self, schema: pl.Schema) -> CompileContext:
        return CompileContext(schema, self.batch_timestamp_us, self.watermark_us,
                              self.event_time, self.observe_event_time)

    def resolve(self, name: str) -> str:
        """The input column called ``name``, matched case-insensitively as Spark does."""
        if name in self.schema:
            return name
        matches = [c for c in self.schema if c.lower() == name.lower()]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise AnalysisException(
                f"[AMBIGUOUS_REFERENCE] Reference `{name}` is ambiguous, could be: {matches}.",
                error_class="AMBIGUOUS_REFERENCE",
            )
        raise AnalysisException(
            f"[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or function parameter with name "
            f"`{name}` cannot be resolved. Did you mean one of the following? "
            f"[{', '.join('`' + c + '`' for c in self.schema)}].",
            error_class="UNRESOLVED_COLUMN",
        )

    def dtype_of(self, expr: pl.Expr) -> pl.DataType:
        """The dtype ``expr`` evaluates to over the input columns."""
        return pl.LazyFrame(schema=self.schema).select(expr.alias("_t")).collect_schema()["_t"]
