"""Polars queries and state-file fsyncs per batch of the windowed small-batch query.

Each Polars query has a fixed cost (plan, optimise, a wake-up of its thread pool) that
dominates a batch of a few rows, so the count of queries per batch is the measure to
cut (issue 15). One-row Parquet files, one a batch, four seconds of event time apart:
each batch moves the watermark, and the last one is followed by a batch without data.

    python -m bench.batch_queries [FILES]
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["count_queries", "main"]

_START_MS = 1_767_225_600_000
Counts = collections.Counter[tuple[int, str]]


def _caller() -> str:
    """The innermost frame of unbounded that ran the query (file:line:function)."""
    frames = [f for f in traceback.extract_stack()[:-2] if "/unbounded/" in f.filename]
    if not frames:
        return "?"
    f = frames[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno}:{f.name}"


def _counted(counts: Counts, batch: list[int], kind: str, fn: Callable[..., Any]
             ) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        counts[(batch[0], f"{kind} {_caller()}")] += 1
        return fn(*args, **kwargs)
    return wrapper


def _write_inputs(folder: str, files: int) -> None:
    for i in range(files):
        ms = _START_MS + i * 4000
        table = pa.table({"event_time": pa.array([ms * 1000], pa.timestamp("us", tz="UTC")),
                          "key": pa.array([i], pa.int64()), "value": pa.array([1.0])})
        path = os.path.join(folder, f"part-{i:05d}.parquet")
        pq.write_table(table, path)
        os.utime(path, (1_000_000 + i, 1_000_000 + i))


def count_queries(files: int) -> tuple[Counts, dict[int, int]]:
    """Queries (eager and lazy) by batch and caller, and each batch's input rows."""
    from bench.small_batch_query import start_windowed_files
    from unbounded.runtime import microbatch
    from unbounded.sql import SparkSession

    counts: Counts = collections.Counter()
    batch = [-1]
    lazy, eager, together = pl.LazyFrame.collect, pl.LazyFrame._collect_eager, pl.collect_all
    trigger = microbatch.MicroBatchExecution._trigger

    def triggered(self: Any, rerun: Any) -> bool:
        batch[0] = self.batch_id
        return bool(trigger(self, rerun))

    pl.LazyFrame.collect = _counted(counts, batch, "collect", lazy)  # type: ignore[method-assign]
    pl.LazyFrame._collect_eager = _counted(counts, batch, "eager", eager)  # type: ignore[method-assign]
    pl.collect_all = _counted(counts, batch, "collect_all", together)
    microbatch.MicroBatchExecution._trigger = triggered  # type: ignore[method-assign]
    root = tempfile.mkdtemp()
    try:
        os.makedirs(os.path.join(root, "in"))
        _write_inputs(os.path.join(root, "in"), files)
        spark = SparkSession.builder.appName("bench-batch-queries").getOrCreate()
        query = start_windowed_files(spark, os.path.join(root, "in"),
                                     os.path.join(root, "out"), os.path.join(root, "ckpt"),
                                     availableNow=True)
        query.awaitTermination()
    finally:
        pl.LazyFrame.collect, pl.LazyFrame._collect_eager = lazy, eager  # type: ignore[method-assign]
        pl.collect_all = together
        microbatch.MicroBatchExecution._trigger = trigger  # type: ignore[method-assign]
    return counts, {p["batchId"]: p["numInputRows"] for p in query.recentProgress}


def main(argv: list[str]) -> int:
    """Print each batch's queries by caller (``collect_all``: several sibling queries
    over one scan, run as one)."""
    counts, rows = count_queries(int(argv[0]) if argv else 6)
    for b in sorted(rows):
        mine = {what: n for (bb, what), n in counts.items() if bb == b}
        print(f"batch {b}: {rows[b]} input rows, {sum(mine.values())} queries")
        for what, n in sorted(mine.items()):
            print(f"  {n:3d} {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
