"""The per-task half of a stream-stream join: drop late rows, tag each row's state partition.

Run where a side's rows are read (in the partition tasks, during the previous batch's
fold when batches are pipelined), so the driver's part of a batch only numbers the rows
and splits them by the tag. Pickles for a process or Ray executor: it holds Polars
expressions and names, nothing of the operator.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from unbounded.runtime.stateful.base import MapSideOutput

__all__ = ["PARTITION_COLUMN", "JoinMapSide", "key_partition"]

PARTITION_COLUMN = "__join_partition"
_LATE = "__join_late"
_KEY = "__join_key"


def key_partition(keys: tuple[pl.Expr, ...], num_partitions: int) -> pl.Expr:
    """A row's state partition: the hash of its join keys (over the side's columns as
    the keys name them), modulo the partition count. The same expression as
    ``partition_ids`` over the key columns, so checkpoints keep their routing."""
    fields = [k.alias(f"{_KEY}{i}") for i, k in enumerate(keys)]
    return pl.struct(fields).hash(seed=0) % num_partitions


@dataclass(frozen=True)
class JoinMapSide:
    """One side's task stage.

    ``keys`` are over the side's columns renamed by ``renames`` (the right side's
    columns are renamed apart from the left's while the join condition is compiled);
    ``watermarked`` names the side's event-time columns, whose rows at or below the
    previous batch's watermark are late (a window's ``end`` decides for a window)."""

    columns: tuple[str, ...]
    keys: tuple[pl.Expr, ...]
    renames: tuple[tuple[str, str], ...]
    watermarked: tuple[str, ...]
    num_partitions: int

    @property
    def observed_watermark(self) -> str | None:
        return None  # the task computes the event-time statistics itself

    def run(self, rows: pl.LazyFrame, watermark_us: int, *,
            input_rows: int | None = None) -> MapSideOutput:
        frame = self._tagged(rows.select(self.columns))
        late = self._late(frame, watermark_us)
        if late is None:
            return MapSideOutput(frame.collect())
        flagged = frame.with_columns(late.alias(_LATE)).collect()
        kept = flagged.filter(~pl.col(_LATE)).drop(_LATE)
        return MapSideOutput(kept, flagged.height - kept.height)

    def _tagged(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """``frame`` with its rows' state partitions, the keys evaluated over the names
        they were compiled against."""
        partition = key_partition(self.keys, self.num_partitions).alias(PARTITION_COLUMN)
        if not self.renames:
            return frame.with_columns(partition)
        back = {new: old for old, new in self.renames}
        return frame.rename(dict(self.renames)).with_columns(partition).rename(back)

    def _late(self, frame: pl.LazyFrame, watermark_us: int) -> pl.Expr | None:
        if not self.watermarked or watermark_us <= 0:
            return None
        schema = frame.collect_schema()
        return pl.any_horizontal([_at_or_below(c, watermark_us, schema[c])
                                  for c in self.watermarked]).fill_null(False)


def _at_or_below(column: str, bound_us: int, dtype: pl.DataType) -> pl.Expr:
    expr = pl.col(column)
    if isinstance(dtype, pl.Struct):
        expr = expr.struct.field("end")
    return expr.dt.epoch("us") <= bound_us
