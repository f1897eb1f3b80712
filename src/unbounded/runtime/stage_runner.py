"""Runs one batch through a physical plan's stages.

Tasks read the sources' partitions and run the row-local input plans (plus the
consuming operator's map side); then, on the driver, each operator in order folds its
inputs into its state, and the input plans that sit on an operator's output run over
that output. The final input's rows go to the sink.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl
import pyarrow as pa

from unbounded.engine.context import CompileContext, EventTimeStats
from unbounded.engine.plans import compile_plan, plan_columns
from unbounded.plan.logical import BoundRelation, StreamingRelation
from unbounded.runtime.stages import InputId, OperatorStage, PhysicalPlan, StageInput
from unbounded.runtime.stateful.base import (
    BatchInfo,
    InputBatch,
    MapSide,
    StatefulOperator,
    frame_of,
)
from unbounded.runtime.tasks import PartitionTask, TaskResult, run_partition
from unbounded.sources.base import Offset, Source

__all__ = ["MIN_ROWS_PER_OUTPUT_PART", "PlannedTasks", "StageOutcome", "StageRunner",
           "merge_event_time"]

MIN_ROWS_PER_OUTPUT_PART = 65_536


@dataclass(frozen=True)
class PlannedTasks:
    tasks: list[PartitionTask]
    owners: list[int | None]  # the source index each task reads (None: an empty input)
    # The results of inputs without data in this batch, known without running a task.
    ready: tuple[TaskResult, ...] = ()

    def complete(self, ran: Sequence[TaskResult]) -> list[TaskResult]:
        """Every input's results: the tasks' (in task order), then the ready ones."""
        return [*ran, *(replace(r, event_time=dict(r.event_time)) for r in self.ready)]

    @property
    def result_owners(self) -> list[int | None]:
        """The source index of each of ``complete``'s results (None: an empty input)."""
        return [*self.owners, *([None] * len(self.ready))]


@dataclass
class StageOutcome:
    tables: list[pa.Table]
    state_metrics: list[dict[str, Any]] = field(default_factory=list)
    event_time: dict[str, EventTimeStats] = field(default_factory=dict)


def merge_event_time(parts: Iterable[Mapping[str, EventTimeStats]],
                     into: dict[str, EventTimeStats] | None = None
                     ) -> dict[str, EventTimeStats]:
    """Event-time statistics per watermark node, added up over ``parts``."""
    merged = {} if into is None else into
    for part in parts:
        for key, stats in part.items():
            merged.setdefault(key, EventTimeStats()).merge(stats)
    return merged


def _arrow(rows: pa.Table | pl.DataFrame) -> pa.Table:
    return rows if isinstance(rows, pa.Table) else rows.to_arrow()


class StageRunner:
    """The stages of one query, with its operators (one per operator stage)."""

    def __init__(self, physical: PhysicalPlan, operators: Sequence[StatefulOperator],
                 relations: Sequence[StreamingRelation], *, ansi: bool = True,
                 time_zone: str = "UTC", output_partitions: int = 1) -> None:
        self.physical = physical
        self.ansi = ansi  # spark.sql.ansi.enabled, for every plan this runner compiles
        self.time_zone = time_zone  # spark.sql.session.timeZone when the query started
        # Output over an operator reaches the sink in up to this many parts (Spark's
        # shuffle partitions), which a sink writes in parallel.
        self.output_partitions = max(1, output_partitions)
        self.operators = list(operators)
        self.relations = list(relations)
        self.input_of = [physical.input_of(rel) for rel in relations]  # per source
        # What the sink sees: display names (a join may hold two ``id`` columns, which
        # the engine keeps apart under physical names).
        self.output_names = [c.name for c in plan_columns(physical.final.plan)]
        self._empty_results: dict[InputId, TaskResult] = {}

    def _map_side(self, input_id: InputId) -> MapSide | None:
        if input_id.operator is None:
            return None
        return self.operators[input_id.operator].map_sides[input_id.index]

    def plan_tasks(self, sources: Sequence[Source], starts: Sequence[Offset | None],
                   ends: Sequence[Offset | None], clock: BatchInfo) -> PlannedTasks:
        """One task per source partition of the batch; a task input that has no data
        gets the result of its plan over empty inputs (so every input has rows of its
        schema), ready in ``PlannedTasks.ready``."""
        tasks: list[PartitionTask] = []
        owners: list[int | None] = []
        ready: list[TaskResult] = []
        fed: set[InputId] = set()
        for i, (src, rel) in enumerate(zip(sources, self.relations, strict=True)):
            start, end = starts[i], ends[i]
            if end is None or end == start:
                continue
            target = self.input_of[i]
            for index, part in enumerate(src.partitions(start, end)):
                tasks.append(self._task(target, rel, part, clock, index))
                owners.append(i)
                fed.add(target.id)
        for target in self.physical.task_inputs():
            if target.id not in fed:
                ready.append(self._empty_result(target, clock))
        return PlannedTasks(tasks, owners, tuple(ready))

    def _empty_result(self, target: StageInput, clock: BatchInfo) -> TaskResult:
        """An input's result over empty inputs, computed once on the driver: it is the
        same empty rows in every batch, so a batch without data spares a task's thread
        hand-off and its Polars query."""
        cached = self._empty_results.get(target.id)
        if cached is None:
            cached = run_partition(self._task(target, None, None, clock))
            self._empty_results[target.id] = cached
        return cached

    def _task(self, target: StageInput, rel: StreamingRelation | None, part: Any,
              clock: BatchInfo, index: int = 0) -> PartitionTask:
        return PartitionTask(
            target.id, target.plan, None if rel is None else rel.relation_id, part,
            None if rel is None else rel.schema, clock.timestamp_us, clock.watermark_us,
            clock.late_watermark_us, self._map_side(target.id), self.ansi, index,
            self.time_zone)

    def run(self, results: Sequence[TaskResult], clock: BatchInfo) -> StageOutcome:
        """The stateful stages and the final plan over the tasks' results."""
        outcome = StageOutcome([])
        outputs: dict[int, pl.DataFrame] = {}
        # operator -> the (eviction, late-row) watermarks its output carries on
        marks: dict[int, tuple[int, int]] = {}
        for stage in self.physical.operators:
            # An operator sees the query's watermarks, or what its upstream operator
            # passes on (Spark 3.4+'s propagation through chains).
            ins = [(clock.watermark_us, clock.late_watermark_us) if i.upstream is None
                   else marks[i.upstream] for i in stage.inputs]
            watermark, late = min(w for w, _ in ins), min(w for _, w in ins)
            mine = replace(clock, watermark_us=watermark, late_watermark_us=late)
            inputs = [self._input_batch(i, results, outputs, mine, outcome)
                      for i in stage.inputs]
            operator = self.operators[stage.operator_id]
            out = operator.process(inputs, mine)
            outcome.state_metrics.append(out.metrics)
            outputs[stage.operator_id] = out.rows
            marks[stage.operator_id] = (operator.output_watermark_us(watermark),
                                        operator.output_watermark_us(late))
        final = self.physical.final
        if final.upstream is None:
            tables = [_arrow(r.rows) for r in results if r.input_id == final.id]
        else:
            tables = self._parts(self._on_driver(final, outputs, clock, outcome).to_arrow())
        outcome.tables = [self._displayed(t) for t in tables]
        return outcome

    def _parts(self, table: pa.Table) -> list[pa.Table]:
        """``table`` cut (zero-copy) into up to ``output_partitions`` slices of at least
        ``MIN_ROWS_PER_OUTPUT_PART`` rows: a sink writes a batch's parts in parallel, as
        Spark's tasks write one file per shuffle partition, and a part smaller than that
        costs more in per-file work (open, footer, fsync, manifest entry) than it saves."""
        parts = min(self.output_partitions, table.num_rows // MIN_ROWS_PER_OUTPUT_PART)
        if parts <= 1:
            return [table]
        bounds = [table.num_rows * i // parts for i in range(parts + 1)]
        return [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]

    def _displayed(self, table: pa.Table) -> pa.Table:
        if table.column_names == self.output_names:
            return table
        return table.rename_columns(self.output_names)

    def _input_batch(self, target: StageInput, results: Sequence[TaskResult],
                     outputs: dict[int, pl.DataFrame], clock: BatchInfo,
                     outcome: StageOutcome) -> InputBatch:
        if target.upstream is None:
            mine = [r for r in results if r.input_id == target.id]
            frames = [frame_of(r.rows) if isinstance(r.rows, pa.Table) else r.rows
                      for r in mine]
            rows = frames[0] if len(frames) == 1 else pl.concat(frames)
            return InputBatch(rows, sum(r.dropped_late for r in mine),
                              sum(r.input_rows for r in mine))
        rows = self._on_driver(target, outputs, clock, outcome)
        map_side = self._map_side(target.id)
        if map_side is None:
            return InputBatch(rows)
        mapped = map_side.run(rows.lazy(), clock.late_watermark_us, input_rows=rows.height)
        return InputBatch(mapped.rows, mapped.dropped_late, rows.height)

    def _on_driver(self, target: StageInput, outputs: dict[int, pl.DataFrame],
                   clock: BatchInfo, outcome: StageOutcome) -> pl.DataFrame:
        """An input plan over an upstream operator's output, run here."""
        assert target.upstream is not None
        stage: OperatorStage = self.physical.operators[target.upstream]
        if isinstance(target.plan, BoundRelation) and \
                target.plan.relation_id == stage.output.relation_id:
            return outputs[target.upstream]  # the operator's rows as they are: no query
        ctx = CompileContext(pl.Schema(), clock.timestamp_us, clock.watermark_us,
                             observe_event_time=True, relist_files=True, ansi=self.ansi,
                             time_zone=self.time_zone)
        bound = {stage.output.relation_id: outputs[target.upstream].lazy()}
        frame = compile_plan(target.plan, bound, ctx).collect()
        merge_event_time([ctx.event_time], into=outcome.event_time)
        return frame

    def maintenance(self, min_versions: int) -> None:
        for operator in self.operators:
            operator.maintenance(min_versions)

    def close(self) -> None:
        for operator in self.operators:
            operator.close()
