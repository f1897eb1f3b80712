"""What the user-state operators (``applyInPandasWithState``,
``transformWithStateInPandas``) share about their input rows: the names the user's code
sees and Spark's rule for late rows."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from unbounded.plan.logical import LogicalPlan
from unbounded.runtime.stateful.base import watermark_delays

__all__ = ["UserInput"]


@dataclass(frozen=True)
class UserInput:
    """The input's column names, its watermarked event-time column (if any) and whether
    late rows are dropped: Spark drops them only when the operator runs in event time
    (an event-time timeout, or ``timeMode="EventTime"``).

    >>> user_input = UserInput(["k", "t"], "t", drops_late=True)
    >>> rows = pl.DataFrame({"a": [1, 2], "b": [0, 5]}).with_columns(
    ...     pl.col("b").cast(pl.Datetime("us", "UTC")))
    >>> kept, dropped = user_input.rows(rows, late_us=3)
    >>> kept.columns, kept["k"].to_list(), dropped
    (['k', 't'], [2], 1)
    """

    names: list[str]
    event_time: str | None
    drops_late: bool

    @classmethod
    def of(cls, child: LogicalPlan, input_schema: pl.Schema, *, event_time_mode: bool
           ) -> UserInput:
        names = list(input_schema)
        lowered = {c.lower(): c for c in names}
        event_time = next((lowered[c] for c in watermark_delays(child) if c in lowered), None)
        return cls(names, event_time, event_time_mode and event_time is not None)

    def rows(self, rows: pl.DataFrame, late_us: int) -> tuple[pl.DataFrame, int]:
        """The rows under the names the user's code sees (physical names may differ),
        without the late ones (at or below ``late_us``), and how many were dropped."""
        named = rows if rows.columns == self.names else rows.rename(
            dict(zip(rows.columns, self.names, strict=True)))
        if not self.drops_late or self.event_time is None or late_us <= 0:
            return named, 0
        late = pl.lit(late_us, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
        kept = named.filter(~(pl.col(self.event_time) <= late).fill_null(False))
        return kept, named.height - kept.height
