"""What the Delta and PostgreSQL sink workloads share (issue 14).

Parquet files of ``(event_time, key, value)`` (10,000 keys, event times ascending across
files, up to 5 s of disorder) go through the windowed query of ``bench/windowed.py``
(10 s watermark, 5 s windows by key, count and sum, append mode, ``availableNow``, 2
files per trigger), flattened to ``(window_start, window_end, key, count, sum)`` so that
every sink can store it, into the sink under test.

The sink's time is measured inside it: ``add_batch`` of the sink's class is wrapped
for the run, so the figure is what the sink spends per batch (Arrow concatenation, the
write, the exactly-once bookkeeping, the commit) and not the aggregation that Spark's
``durationMs.addBatch`` also counts (that total is recorded beside it). Pipelining is off
for the run: batch N+1's read-ahead would share the two cores with batch N's sink, while
the direct writes run alone. The sink's rate, output rows over its summed time, is
compared with writing the same rows, once, with the library directly (``direct``, the
baseline); the same rows written directly batch by batch, without the exactly-once
bookkeeping, show what one write per batch costs by itself. Each contender runs
``REPEATS`` times, alternately (the one-shot write ``direct_tries`` times per repeat);
the fastest one-shot write counts, and for the batch-by-batch contenders the fastest
time of each batch (every run cuts the input into the same batches), so that one stall
of a loaded machine does not decide the figure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from bench.harness import (
    BenchContext,
    Measure,
    WorkloadResult,
    cached_dataset,
    stopwatch,
    warm_page_cache,
)
from bench.windowed import compare_windows

__all__ = ["SinkRun", "SinkTarget", "SupportsSecondBaseline", "expected_windows", "generate",
           "normalise", "run_workload"]

FILES = 20
FILES_PER_TRIGGER = 2
KEYS = 10_000
WINDOW_S = 5
WATERMARK_S = 10
MAX_DISORDER_MS = 5_000
TARGET_RATIO = 0.8
REPEATS = 3
SCHEMA_DDL = "event_time TIMESTAMP, key LONG, value DOUBLE"
COLUMNS = ["window_start", "window_end", "key", "count", "sum"]
_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _file_table(first: int, n: int, rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    position = np.arange(first, first + n, dtype=np.int64)
    span_ms = max(rows // 10, 300_000)  # 10k events/s, at least 5 minutes
    event_ms = _START_MS + position * span_ms // max(rows, 1) \
        - rng.integers(0, MAX_DISORDER_MS, n)
    return pa.table({
        "event_time": pa.array(event_ms * 1_000, pa.timestamp("us", tz="UTC")),
        "key": rng.integers(0, KEYS, n, dtype=np.int64),
        "value": rng.integers(0, 8_000, n) / 8.0,  # multiples of 1/8: exact sums
    })


def generate(folder: str, rows: int) -> None:
    """``FILES`` Parquet files, written in event-time order (file mtimes ascending)."""
    base, extra = divmod(rows, FILES)
    first = 0
    for i in range(FILES):
        n = base + (1 if i < extra else 0)
        pq.write_table(_file_table(first, n, rows, seed=i),
                       os.path.join(folder, f"events-{i:04d}.parquet"))
        first += n


def normalise(frame: pl.DataFrame) -> pl.DataFrame:
    """The columns ``compare_windows`` wants: times as epoch microseconds, sorted."""
    return frame.select(
        pl.col("window_start").dt.epoch("us"), pl.col("window_end").dt.epoch("us"),
        pl.col("key").cast(pl.Int64), pl.col("count").cast(pl.Int64),
        pl.col("sum").cast(pl.Float64)).sort("window_start", "key")


def expected_windows(input_dir: str) -> pl.DataFrame:
    """The windows the final watermark closes, by one Polars batch query."""
    return normalise(
        pl.scan_parquet(os.path.join(input_dir, "*.parquet"))
        .group_by(pl.col("event_time").dt.truncate(f"{WINDOW_S}s").alias("window_start"),
                  "key")
        .agg(pl.len().alias("count"), pl.col("value").sum().alias("sum"),
             pl.col("event_time").max().alias("latest"))
        .with_columns(window_end=pl.col("window_start") + pl.duration(seconds=WINDOW_S))
        .filter(pl.col("window_end")
                <= pl.col("latest").max() - pl.duration(seconds=WATERMARK_S))
        .collect())


class SinkTarget(Protocol):
    """One sink under test and the same library used directly. ``run`` numbers the
    repeats, so each writes into a table of its own."""

    name: str
    sink_class: type
    direct_tries: int  # one-shot writes per repeat (more where they take milliseconds)

    def start(self, writer: Any, run: int) -> Any:
        """Start the streaming query from a configured ``DataStreamWriter``."""

    def write_direct(self, rows: pa.Table, run: int) -> float:
        """Seconds to write ``rows`` at once with the library (the baseline)."""

    def write_direct_batches(self, batches: list[pa.Table], run: int) -> list[float]:
        """Seconds to write each of ``batches``, one write each, no exactly-once
        bookkeeping."""

    def read_back(self, run: int) -> pl.DataFrame:
        """What the query's table holds, in ``COLUMNS``."""


@runtime_checkable
class SupportsSecondBaseline(Protocol):
    """A target with another direct way to write the rows at once, reported beside."""

    second_baseline: str

    def write_second(self, rows: pa.Table, run: int) -> float:
        """Seconds to write ``rows`` at once the other way."""


@dataclass
class SinkRun:
    """One streaming run: per-batch sink seconds and rows, and what the engine reported."""

    sink_seconds: list[float] = field(default_factory=list)
    batches: list[pa.Table] = field(default_factory=list)
    add_batch_ms: int = 0
    wall_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(b.num_rows for b in self.batches)


@contextmanager
def _timed_sink(sink_class: type, into: SinkRun) -> Iterator[None]:
    """Wrap ``sink_class.add_batch`` for the run: its time and the batch's rows."""
    original: Callable[..., None] = sink_class.add_batch  # type: ignore[attr-defined]

    def timed(self: Any, batch_id: int, batch: Any) -> None:
        started = time.perf_counter()
        original(self, batch_id, batch)
        into.sink_seconds.append(time.perf_counter() - started)
        into.batches.append(batch.table())

    sink_class.add_batch = timed  # type: ignore[attr-defined]
    try:
        yield
    finally:
        sink_class.add_batch = original  # type: ignore[attr-defined]


def _streaming(target: SinkTarget, input_dir: str, run_dir: str, run: int) -> SinkRun:
    from unbounded.sql import SparkSession
    from unbounded.sql import functions as F

    spark = SparkSession.builder.appName(f"bench-{target.name}-sink").getOrCreate()
    # batch N+1's read-ahead would share the two cores with batch N's sink: measure the
    # sink alone, as the direct writes run
    spark.conf.set("spark.unbounded.streaming.pipelineBatches", "false")
    events = (spark.readStream.schema(SCHEMA_DDL)
              .option("maxFilesPerTrigger", FILES_PER_TRIGGER).parquet(input_dir))
    windows = (events.withWatermark("event_time", f"{WATERMARK_S} seconds")
               .groupBy(F.window("event_time", f"{WINDOW_S} seconds"), "key")
               .agg(F.count("*").alias("count"), F.sum("value").alias("sum"))
               .select(F.col("window.start").alias("window_start"),
                       F.col("window.end").alias("window_end"), "key", "count", "sum"))
    writer = (windows.writeStream.outputMode("append").trigger(availableNow=True)
              .option("checkpointLocation", os.path.join(run_dir, f"ckpt-{run}")))
    result = SinkRun()
    with _timed_sink(target.sink_class, result), stopwatch() as wall:
        query = target.start(writer, run)
        query.awaitTermination()
    if query.exception() is not None:
        raise RuntimeError(str(query.exception()))
    result.wall_seconds = wall[0]
    result.add_batch_ms = sum(p["durationMs"].get("addBatch", 0)
                              for p in query.recentProgress)
    return result


@dataclass
class _Best:
    """The fastest time of each contender over the repeats; for the batch-by-batch ones
    the fastest of each batch (every run cuts the input into the same batches), so one
    stall of a loaded machine does not decide the figure."""

    streams: list[SinkRun] = field(default_factory=list)
    sink: list[float] = field(default_factory=list)
    direct: float = float("inf")
    second: float = float("inf")
    per_batch: list[float] = field(default_factory=list)


def _fastest(so_far: list[float], now: list[float]) -> list[float]:
    if so_far and len(so_far) != len(now):
        raise RuntimeError(f"two runs cut the input into {len(so_far)} and {len(now)} "
                           "batches; the batches must be the same to compare them")
    return [min(a, b) for a, b in zip(so_far, now, strict=True)] if so_far else list(now)


def _race(target: SinkTarget, input_dir: str, run_dir: str) -> _Best:
    best = _Best()
    for run in range(REPEATS):
        stream = _streaming(target, input_dir, run_dir, run)
        best.streams.append(stream)
        best.sink = _fastest(best.sink, stream.sink_seconds)
        rows = pa.concat_tables(stream.batches)
        for attempt in range(target.direct_tries):
            best.direct = min(best.direct, target.write_direct(rows, run * 100 + attempt))
        if isinstance(target, SupportsSecondBaseline):
            best.second = min(best.second, target.write_second(rows, run))
        best.per_batch = _fastest(best.per_batch,
                                  target.write_direct_batches(stream.batches, run))
    return best


def _measures(target: SinkTarget, best: _Best) -> list[Measure]:
    stream = best.streams[-1]
    rows, batches = stream.rows, len(stream.batches)
    sink_s, per_batch_s = sum(best.sink), sum(best.per_batch)
    direct_rate, sink_rate = rows / best.direct, rows / sink_s
    ratio = sink_rate / direct_rate
    second = [] if not isinstance(target, SupportsSecondBaseline) else [
        Measure(target.second_baseline, rows / best.second, "rows/s", best.direct / best.second,
                note=f"{best.second * 1000:.0f} ms, best of {REPEATS}; the sink's rate is "
                     f"{best.second / sink_s:.2f}x this")]
    return [
        Measure(f"direct {target.name} write, one-shot (baseline)", direct_rate, "rows/s",
                1.0, note=f"{best.direct * 1000:.0f} ms for {rows:,} rows, best of "
                          f"{REPEATS * target.direct_tries}"),
        Measure(f"{target.name} sink, time inside add_batch", sink_rate, "rows/s", ratio,
                f">= {TARGET_RATIO:.2f}x", ratio >= TARGET_RATIO,
                f"{sink_s * 1000:.0f} ms over {batches} batches (each the best of "
                f"{REPEATS}); {per_batch_s / sink_s:.2f}x the rate of the direct writes "
                f"one per batch; durationMs.addBatch (with the aggregation) "
                f"{min(s.add_batch_ms for s in best.streams)} ms"),
        Measure(f"direct {target.name} write, one per batch (no txn)", rows / per_batch_s,
                "rows/s", (rows / per_batch_s) / direct_rate,
                note=f"{per_batch_s * 1000:.0f} ms over {batches} writes (each the best "
                     f"of {REPEATS})"),
        *second,
    ]


def _check_tables(target: SinkTarget, best: _Best, expected: pl.DataFrame) -> str:
    """Every run's table against Polars: the first difference, or ok."""
    for run, _ in enumerate(best.streams):
        outcome = compare_windows(normalise(target.read_back(run)), expected)
        if outcome.startswith("FAIL"):
            return f"{outcome} (run {run})"
    return f"{outcome} in each of {len(best.streams)} runs"


def run_workload(ctx: BenchContext, workload: str,
                 make_target: Callable[[str], SinkTarget]) -> WorkloadResult:
    """Generate (or reuse) the input, race the sink against the direct writes, check
    that the sink's table holds every closed window exactly once. ``make_target`` gets
    the run's folder."""
    input_dir, generated = cached_dataset(
        ctx.folder("table_sinks"), {"rows": ctx.rows, "files": FILES, "keys": KEYS},
        lambda path: generate(path, ctx.rows))
    warm_page_cache(input_dir)
    run_dir = ctx.fresh_run_dir(workload)
    target = make_target(run_dir)
    best = _race(target, input_dir, run_dir)
    stream = best.streams[-1]
    result = WorkloadResult(workload, params={
        "rows": ctx.rows, "files": FILES, "maxFilesPerTrigger": FILES_PER_TRIGGER,
        "keys": KEYS, "data_generated_now": generated, "repeats": REPEATS,
        "output_rows": stream.rows, "batches": len(stream.batches),
        "sink_ms_per_batch": [round(s * 1000, 1) for s in best.sink],
        "direct_ms_per_batch": [round(s * 1000, 1) for s in best.per_batch],
        "streaming_wall_seconds": round(stream.wall_seconds, 2)})
    result.measures.extend(_measures(target, best))
    result.checks[f"{target.name} table == polars closed windows"] = _check_tables(
        target, best, expected_windows(input_dir))
    return result
