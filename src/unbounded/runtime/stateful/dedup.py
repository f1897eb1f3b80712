"""Streaming deduplication: the first row per key passes, later ones are dropped.

``dropDuplicates(cols)`` keeps every key seen, forever without a watermark; with a
watermark on an event-time column among the keys, keys at or below the watermark are
evicted. ``dropDuplicatesWithinWatermark(cols)`` keeps a key until its event time plus
the watermark delay falls at or below the watermark. Rows at or below the watermark are
late and dropped in both.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import polars as pl

from unbounded.errors import AnalysisException
from unbounded.plan.logical import Deduplicate
from unbounded.runtime.stateful.base import (
    BatchInfo,
    InputBatch,
    MapSide,
    OperatorContext,
    OperatorOutput,
    frame_of,
    partition_ids,
    split_partitions,
    sum_metrics,
    watermark_delays,
)
from unbounded.runtime.stateful.hosted import StatePartitions
from unbounded.state.base import FOUND_COLUMN, StateSchema, StateStore

__all__ = ["DeduplicationFold", "StreamingDeduplication"]

_UTC_US = pl.Datetime("us", "UTC")
_EXPIRES = "__expires_at"


@dataclass(frozen=True)
class DeduplicationFold:
    """One state partition's half of a batch: its rows whose keys the store has not
    seen pass and are stored, keys the watermark expires are evicted, the version is
    committed. Names and Polars expressions only, so it pickles and runs where the
    partition's store lives (a driver thread or its Ray actor, ``hosted.py``)."""

    keys: tuple[str, ...]
    expiry: pl.Expr  # the stored value: when the key expires
    evict_column: str | None  # compared with the watermark; None: keys never expire
    watermark_us: int = 0

    def __call__(self, stores: Sequence[StateStore], rows: Sequence[pl.DataFrame]
                 ) -> tuple[pl.DataFrame, dict[str, int]]:
        store, part = stores[0], rows[0]
        try:
            fresh = self._fold(store, part)
            store.commit()
        except BaseException:
            store.abort()
            raise
        return fresh, store.metrics.to_dict()

    def _fold(self, store: StateStore, rows: pl.DataFrame) -> pl.DataFrame:
        keys = list(self.keys)
        found = frame_of(store.lookup(rows.select(keys).to_arrow()))
        fresh = rows.filter(~found[FOUND_COLUMN])
        if fresh.height:  # keys unique in the batch and absent from the store
            store.upsert(fresh.select([*keys, self.expiry.alias(_EXPIRES)]).to_arrow(),
                         distinct=True, new_keys=True)
        if self.evict_column is not None and self.watermark_us > 0:
            wm = pl.lit(self.watermark_us, dtype=pl.Int64).cast(_UTC_US)
            store.evict(pl.col(self.evict_column) <= wm)
        return fresh


class StreamingDeduplication:
    def __init__(self, node: Deduplicate, input_schema: pl.Schema, ctx: OperatorContext) -> None:
        self.ctx = ctx
        columns = list(input_schema)
        lowered = {c.lower(): c for c in columns}
        wanted = node.keys or tuple(columns)
        missing = [k for k in wanted if k.lower() not in lowered]
        if missing:
            raise AnalysisException(f"dropDuplicates: no columns named {missing}; columns are "
                                    f"{columns}.")
        self.keys = [lowered[k.lower()] for k in wanted]
        delays = watermark_delays(node.child)
        self.event_time = next((lowered[c] for c in delays if c in lowered), None)
        self.within = node.within_watermark
        if self.within and self.event_time is None:
            raise AnalysisException(
                "dropDuplicatesWithinWatermark needs a watermark: add withWatermark(...) on "
                "the event-time column before it.")
        self.delay_ms = delays.get(self.event_time.lower(), 0) if self.event_time else 0
        self.evicts = self.within or (self.event_time is not None and self.event_time in self.keys)
        key_schema = pl.DataFrame(schema=input_schema).select(self.keys).to_arrow().schema
        value = pl.DataFrame(schema={_EXPIRES: _UTC_US}).to_arrow().schema
        self.schema = StateSchema(key_schema, value)
        evict_column = (_EXPIRES if self.within else self.event_time) if self.evicts else None
        self.fold = DeduplicationFold(tuple(self.keys), self._expiry(), evict_column)
        self.state = StatePartitions(ctx, [("", self.schema)])

    map_sides: tuple[MapSide | None, ...] = (None,)  # the operator runs on the batch's rows

    def process(self, inputs: Sequence[InputBatch], batch: BatchInfo) -> OperatorOutput:
        started = time.perf_counter()
        rows, batch_id, watermark_us = inputs[0].rows, batch.batch_id, batch.watermark_us
        dropped = 0
        late = pl.lit(batch.late_watermark_us, dtype=pl.Int64).cast(_UTC_US)
        if self.event_time is not None and batch.late_watermark_us > 0:
            before = rows.height
            rows = rows.filter(~(pl.col(self.event_time) <= late).fill_null(False))
            dropped = before - rows.height
        firsts = rows.unique(subset=self.keys, keep="first", maintain_order=True)
        n = self.ctx.num_partitions
        parts = split_partitions(firsts, partition_ids(firsts, self.keys, n), n)
        fold = replace(self.fold, watermark_us=watermark_us)
        results = self.state.fold([(part,) for part in parts], fold, batch_id)
        out = pl.concat([r[0] for r in results]) if results else firsts.clear()
        metrics = sum_metrics([r[1] for r in results])
        metrics.update(operatorName="dedupe", numRowsDroppedByWatermark=dropped,
                       numShufflePartitions=self.ctx.num_partitions,
                       numStateStoreInstances=self.ctx.num_partitions,
                       allUpdatesTimeMs=int((time.perf_counter() - started) * 1000))
        return OperatorOutput(out, metrics)

    def _expiry(self) -> pl.Expr:
        if self.event_time is None:
            return pl.lit(None, dtype=_UTC_US)
        delay = self.delay_ms * 1000 if self.within else 0
        return (pl.col(self.event_time).dt.epoch("us") + delay).cast(_UTC_US)

    def output_watermark_us(self, input_watermark_us: int) -> int:
        return input_watermark_us

    def close(self) -> None:
        self.state.close()

    def maintenance(self, min_versions: int) -> None:
        self.state.maintenance(min_versions)
