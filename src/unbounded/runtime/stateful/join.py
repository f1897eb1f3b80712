"""Stream-stream joins: Spark's symmetric hash join over versioned state.

Each side's rows are kept in a state store per state partition (equi-key hash modulo
the partition count, so matching rows of both sides meet in one partition), store
``left`` and ``right`` of the operator's folder. A batch joins the new rows of each side
with the other side's stored and new rows (never stored with stored: those pairs were
emitted before), marks which rows ever matched, stores the new rows, then evicts the
rows the watermark says can no longer match. An evicted row of an outer side that
never matched is emitted padded with NULLs; a left semi join emits a left row once,
when it first matches.

Eviction follows Spark's ``StreamingSymmetricHashJoinHelper``: when a join key is an
event-time column with a watermark (or a window over one), rows whose key is at or
below the watermark go on both sides; otherwise a side with a watermark of its own is
evicted by the *state value watermark* that the join condition's time-range conjuncts
give when the other side's event time is replaced by the watermark (see
``runtime/stateful/join_watermark.py``).

State rows (Arrow IPC through the state store): key ``__join_row`` (int64, unique per
side: batch id << 32 | row number), values the side's columns by physical name and
``__join_matched`` (bool).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import polars as pl
import pyarrow as pa

from unbounded.engine.context import CompileContext, OutputColumn
from unbounded.engine.joins import (
    EquiKey,
    JoinInputs,
    equi_key_exprs,
    join_frames,
    join_inputs,
    split_join_condition,
)
from unbounded.engine.plans import compile_output, plan_columns
from unbounded.errors import UnsupportedOperationException
from unbounded.plan.expressions import ColumnRef
from unbounded.plan.logical import DataRelation, Join, JoinType, LogicalPlan
from unbounded.runtime.stateful.base import (
    BatchInfo,
    InputBatch,
    MapSide,
    OperatorContext,
    OperatorOutput,
    frame_of,
    split_partitions,
    sum_metrics,
)
from unbounded.runtime.stateful.hosted import StatePartitions
from unbounded.runtime.stateful.join_map_side import PARTITION_COLUMN, JoinMapSide
from unbounded.runtime.stateful.join_watermark import (
    SideEviction,
    side_evictions,
    watermarked_columns,
)
from unbounded.state.base import StateSchema, StateStore
from unbounded.state.join_keys import JoinKeysFile, JoinSideKeys

__all__ = ["JoinFold", "StreamingJoin"]

_ROW = "__join_row"
_MATCHED = "__join_matched"
_ROW_L = "__join_row_l"
_ROW_R = "__join_row_r"
_ROWS_PER_BATCH = 1 << 32


class _Side:
    """One input of the join: its columns, key expressions, state and eviction rule."""

    def __init__(self, name: str, plan: LogicalPlan, ctx: CompileContext) -> None:
        self.name = name
        frame, self.columns = compile_output(plan, {}, ctx)
        self.empty = frame.collect()
        self.physical = [c.physical for c in self.columns]
        self.watermarked = watermarked_columns(plan, self.columns)
        self.row_name = _ROW_L if name == "left" else _ROW_R
        self.keys: list[pl.Expr] = []  # over the side's columns renamed by ``renames``
        self.renames: dict[str, str] = {}

    def state_schema(self) -> StateSchema:
        value = self.empty.with_columns(pl.lit(False).alias(_MATCHED)).to_arrow().schema
        return StateSchema(pa.schema([pa.field(_ROW, pa.int64())]), value)

    def map_side(self, num_partitions: int) -> JoinMapSide:
        return JoinMapSide(tuple(self.physical), tuple(self.keys),
                           tuple(self.renames.items()), tuple(self.watermarked),
                           num_partitions)

    def split(self, rows: pl.DataFrame, batch_id: int,
              num_partitions: int) -> list[pl.DataFrame]:
        """The batch's rows (as the map side tagged them) numbered, per state partition."""
        parts = rows.get_column(PARTITION_COLUMN)
        return split_partitions(self.with_ids(rows, batch_id), parts, num_partitions)

    def with_ids(self, rows: pl.DataFrame, batch_id: int) -> pl.DataFrame:
        ids = pl.int_range(pl.len(), dtype=pl.Int64) + batch_id * _ROWS_PER_BATCH
        return rows.select(self.physical).with_columns(ids.alias(_ROW))

    def output_columns(self) -> tuple[OutputColumn, ...]:
        return (*self.columns, OutputColumn(self.row_name, self.row_name))

    def for_join(self, rows: pl.DataFrame) -> pl.LazyFrame:
        return rows.select([*self.physical, pl.col(_ROW).alias(self.row_name)]).lazy()


def _detached(node: Join, how: JoinType) -> Join:
    """``node`` as ``how`` without its inputs' plans (a fold is given their columns), so
    it pickles small and never carries a source's objects to a Ray actor."""
    leaf = DataRelation(pa.table({}))
    return replace(node, left=leaf, right=leaf, join_type=how)


@dataclass(frozen=True)
class JoinFold:
    """One state partition's half of a batch (stores ``left``, ``right``; rows: each
    side's new rows, numbered): the pairs the new rows make, the match flags and new
    rows stored, the rows the watermark expires evicted (an outer side's unmatched ones
    emitted padded), both versions committed. It holds the sides' columns and Polars
    expressions, so it pickles and runs where the partition's stores live: a driver
    thread or its Ray actor (``runtime/stateful/hosted.py``)."""

    left: _Side
    right: _Side
    pair_node: Join  # the inner join that finds the pairs
    node: Join  # the join itself, which pads an outer side's unmatched rows
    pair_output: tuple[pl.Expr, ...]
    output: tuple[str, ...]  # physical names of the join's output
    evictions: tuple[SideEviction | None, SideEviction | None]
    watermark_us: int = 0  # this batch's, which evicts
    ansi: bool = True  # the query's, as its condition's implicit casts read them
    time_zone: str = "UTC"

    def compile_context(self) -> CompileContext:
        """Where the condition compiles: a string compared with a timestamp names an
        instant in the query's zone, as Spark's analyzer bound it."""
        return CompileContext(pl.Schema(), 0, ansi=self.ansi, time_zone=self.time_zone)

    def __call__(self, stores: Sequence[StateStore], rows: Sequence[pl.DataFrame]
                 ) -> tuple[pl.DataFrame, dict[str, int]]:
        lstore, rstore = stores
        try:
            out = self._join_partition(lstore, rstore, rows[0], rows[1])
            lstore.commit()
            rstore.commit()
        except BaseException:
            lstore.abort()
            rstore.abort()
            raise
        return out, sum_metrics([lstore.metrics.to_dict(), rstore.metrics.to_dict()])

    def _join_partition(self, lstore: StateStore, rstore: StateStore, lnew: pl.DataFrame,
                        rnew: pl.DataFrame) -> pl.DataFrame:
        how = self.node.join_type
        lold, rold = frame_of(lstore.scan()), frame_of(rstore.scan())
        rall = pl.concat([rold.drop(_MATCHED), rnew], how="diagonal_relaxed")
        pairs = self.pairs((lnew, rall), (lold.drop(_MATCHED), rnew))
        tracks = how is not JoinType.INNER  # outer rows, semi: once
        lmatched = pairs.get_column(_ROW_L).unique() if tracks else None
        rmatched = pairs.get_column(_ROW_R).unique() if tracks else None
        emitted = [self._emit_semi(lnew, lold, lmatched) if lmatched is not None
                   and how is JoinType.LEFT_SEMI else pairs.select(self.pair_output)]
        _store(lstore, lnew, lold, lmatched)
        _store(rstore, rnew, rold, rmatched)
        emitted += self._evict(lstore, self.left, self.evictions[0],
                               how in (JoinType.LEFT_OUTER, JoinType.FULL_OUTER))
        emitted += self._evict(rstore, self.right, self.evictions[1],
                               how in (JoinType.RIGHT_OUTER, JoinType.FULL_OUTER))
        return pl.concat(emitted, how="vertical_relaxed")

    def pairs(self, *sides: tuple[pl.DataFrame, pl.DataFrame]) -> pl.DataFrame:
        """Every matching pair of each (left, right), with both rows' ids, from one
        Polars run of the inner joins."""
        frames = [join_frames(self.pair_node, self.left.for_join(left),
                              self.right.for_join(right), self.compile_context(),
                              left_columns=self.left.output_columns(),
                              right_columns=self.right.output_columns())
                  for left, right in sides]
        return pl.concat(pl.collect_all(frames), how="vertical_relaxed")

    def _emit_semi(self, lnew: pl.DataFrame, lold: pl.DataFrame,
                   matched: pl.Series) -> pl.DataFrame:
        """Left rows matched for the first time: new ones, and stored ones never matched."""
        fresh = lnew.filter(pl.col(_ROW).is_in(matched.implode()))
        waiting = lold.filter(~pl.col(_MATCHED) & pl.col(_ROW).is_in(matched.implode()))
        both = pl.concat([fresh, waiting.drop(_MATCHED)], how="diagonal_relaxed")
        return both.select(list(self.output))

    def _evict(self, store: StateStore, side: _Side, rule: SideEviction | None,
               pad: bool) -> list[pl.DataFrame]:
        if rule is None or self.watermark_us <= 0:
            return []
        gone = frame_of(store.evict(rule.predicate(rule.bound_us(self.watermark_us))))
        if not pad or gone.height == 0:
            return []
        return [self._padded(side, gone.filter(~pl.col(_MATCHED)))]

    def _padded(self, side: _Side, rows: pl.DataFrame) -> pl.DataFrame:
        """Rows of ``side`` that never matched, with the other side's columns NULL."""
        other = self.right if side is self.left else self.left
        empty = other.empty.with_columns(pl.lit(None, dtype=pl.Int64).alias(_ROW))
        left, right = (rows, empty) if side is self.left else (empty, rows)
        frame = join_frames(self.node, self.left.for_join(left), self.right.for_join(right),
                            self.compile_context(),
                            left_columns=self.left.output_columns(),
                            right_columns=self.right.output_columns())
        return frame.select(list(self.output)).collect()


class StreamingJoin:
    """``left.join(right, on, how)`` with both sides streaming.

    Every check runs before a state store is opened, so a rejected join leaves no
    store (or RocksDB lock) behind.
    """

    def __init__(self, node: Join, left: LogicalPlan, right: LogicalPlan,
                 ctx: OperatorContext) -> None:
        self.node = node
        self.ctx = ctx
        self.how = node.join_type
        cctx = CompileContext(pl.Schema(), 0, ansi=ctx.ansi, time_zone=ctx.time_zone)
        self.left, self.right = _Side("left", left, cctx), _Side("right", right, cctx)
        inputs = join_inputs(self.left.columns, self.right.columns,
                             self.left.empty.schema, self.right.empty.schema, cctx)
        keys = _equi_keys(node, inputs)
        if not keys:
            raise UnsupportedOperationException(
                "Stream-stream join without equality predicate is not supported. Join the "
                "streams on at least one equal column (a = b).",
                error_class="_LEGACY_ERROR_TEMP_3102")  # Spark 4's class for it
        self.left.keys, self.right.keys = equi_key_exprs(keys, inputs.ctx)
        self.right.renames = inputs.right_renames
        self.evictions = side_evictions(node, keys, inputs, self.left.watermarked,
                                        self.right.watermarked)
        _check_evictable(node.join_type, self.evictions)
        self.output = plan_columns(node)
        # Pairs are found by an inner join: its output holds the node's columns in the
        # node's order (only a USING key of a right join is named after the right side).
        pair_output = [pl.col(a.physical).alias(b.physical)
                       for a, b in zip(plan_columns(replace(node, join_type=JoinType.INNER)),
                                       self.output, strict=False)]
        JoinKeysFile(ctx.state_root, ctx.operator_id).write_once(  # for the state reader
            {side.name: JoinSideKeys(tuple(side.keys), side.renames)
             for side in (self.left, self.right)})
        self.fold = JoinFold(self.left, self.right, _detached(node, JoinType.INNER),
                             _detached(node, node.join_type), tuple(pair_output),
                             tuple(c.physical for c in self.output), self.evictions,
                             ansi=ctx.ansi, time_zone=ctx.time_zone)
        self.state = StatePartitions(ctx, [(side.name, side.state_schema())
                                           for side in (self.left, self.right)])
        self.map_sides: tuple[MapSide | None, ...] = (
            self.left.map_side(ctx.num_partitions), self.right.map_side(ctx.num_partitions))

    # ---- one batch ---------------------------------------------------------------------
    def process(self, inputs: Sequence[InputBatch], batch: BatchInfo) -> OperatorOutput:
        started = time.perf_counter()
        lparts = self.left.split(inputs[0].rows, batch.batch_id, self.ctx.num_partitions)
        rparts = self.right.split(inputs[1].rows, batch.batch_id, self.ctx.num_partitions)
        fold = replace(self.fold, watermark_us=batch.watermark_us)
        results = self.state.fold(list(zip(lparts, rparts, strict=True)), fold, batch.batch_id)
        frames = [r[0] for r in results]
        out = pl.concat(frames, how="vertical_relaxed") if frames else self._empty_output()
        metrics: dict[str, Any] = sum_metrics([r[1] for r in results])
        metrics.update(operatorName="symmetricHashJoin",
                       numRowsDroppedByWatermark=sum(i.dropped_late for i in inputs),
                       numShufflePartitions=self.ctx.num_partitions,
                       numStateStoreInstances=2 * self.ctx.num_partitions,
                       allUpdatesTimeMs=int((time.perf_counter() - started) * 1000))
        return OperatorOutput(out, metrics)

    def _empty_output(self) -> pl.DataFrame:
        empty_l = self.left.empty.with_columns(pl.lit(None, dtype=pl.Int64).alias(_ROW))
        empty_r = self.right.empty.with_columns(pl.lit(None, dtype=pl.Int64).alias(_ROW))
        return self.fold.pairs((empty_l, empty_r)).select(self.fold.pair_output)

    def output_watermark_us(self, input_watermark_us: int) -> int:
        """The older of the two sides' state watermarks (rows at or below them were
        evicted, so no later output is older), as Spark's join propagates."""
        bounds = [rule.bound_us(input_watermark_us) for rule in self.evictions
                  if rule is not None]
        return min(bounds) if bounds and input_watermark_us > 0 else input_watermark_us

    def close(self) -> None:
        self.state.close()

    def maintenance(self, min_versions: int) -> None:
        self.state.maintenance(min_versions)


_SPARK_JOIN_NAMES = {JoinType.LEFT_OUTER: "LeftOuter", JoinType.RIGHT_OUTER: "RightOuter",
                     JoinType.FULL_OUTER: "FullOuter", JoinType.LEFT_SEMI: "LeftSemi"}


def _check_evictable(how: JoinType,
                     evictions: tuple[SideEviction | None, SideEviction | None]) -> None:
    """An outer or semi join must be able to tell when a row can no longer match, or it
    could never emit its NULL-padded rows: Spark's rule, with Spark's message."""
    needed = {JoinType.LEFT_OUTER: (0,), JoinType.LEFT_SEMI: (0,),
              JoinType.RIGHT_OUTER: (1,), JoinType.FULL_OUTER: (0, 1)}.get(how, ())
    if all(evictions[i] is not None for i in needed):
        return
    raise UnsupportedOperationException(
        f"Stream-stream {_SPARK_JOIN_NAMES[how]} join between two streaming "
        "DataFrame/Datasets is not supported without a watermark in the join keys, or a "
        "watermark on the nullable side and an appropriate range condition. Add "
        "withWatermark(...) on both sides and a time-range condition such as "
        "rightTime BETWEEN leftTime AND leftTime + INTERVAL 1 HOUR.",
        error_class="_LEGACY_ERROR_TEMP_3102")  # Spark 4's class for it


def _store(store: Any, new: pl.DataFrame, old: pl.DataFrame,
           matched: pl.Series | None) -> None:
    """New rows in (under fresh ids, so nothing stored is looked at); when matches are
    tracked, whether each matched, and stored rows that matched now, flagged."""
    ids = None if matched is None else matched.implode()
    flag = pl.lit(False) if ids is None else pl.col(_ROW).is_in(ids)
    rows = new.with_columns(flag.alias(_MATCHED))
    order = [_ROW, *[c for c in rows.columns if c != _ROW]]
    if rows.height:
        store.upsert(rows.select(order).to_arrow(), distinct=True, new_keys=True)
    if ids is not None:
        newly = old.filter(~pl.col(_MATCHED) & pl.col(_ROW).is_in(ids))
        if newly.height:
            store.upsert(newly.with_columns(pl.lit(True).alias(_MATCHED)).select(order)
                         .to_arrow(), distinct=True)


def _equi_keys(node: Join, inputs: JoinInputs) -> tuple[EquiKey, ...]:
    if node.using:
        return tuple(EquiKey(ColumnRef(name, ordinal=_index(inputs.left, name)),
                             ColumnRef(name, ordinal=len(inputs.left)
                                       + _index(inputs.right, name)))
                     for name in node.using)
    return split_join_condition(node.condition, inputs).keys


def _index(columns: tuple[OutputColumn, ...], name: str) -> int:
    return next(i for i, c in enumerate(columns) if c.name.lower() == name.lower())
