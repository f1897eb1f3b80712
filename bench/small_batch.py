"""Fixed per-batch cost, small-batch latency and start-up (issue 15).

Every figure is the wall time of whole triggers (``MicroBatchExecution._trigger``:
offsets, tasks, state, sink, commit, progress), timed here with ``perf_counter``
because Spark's ``durationMs`` are whole milliseconds. All queries write to a Parquet
sink with a checkpoint, so every durable write the guarantees need is paid.

- fixed cost: the windowed query (5 s windows, watermark 10 s, append) over
  ``FILES`` Parquet files of ``FILE_ROWS`` rows, one file per batch (availableNow);
  the median batch is the fixed cost, as reading 100 rows costs next to nothing.
- rate latency: the ``rate`` source at 1000 rows/s with back-to-back triggers
  (``processingTime='0 seconds'``) for ``RATE_SECONDS``; the windowed query and a
  stateless projection, median and p99 of the batches with data; the batches without
  data (the watermark moved, so closed windows are emitted) give the no-data cost.
- start-up: a fresh process (``python -m bench.small_batch_query``) from launch to
  ``commits/0``; then SIGKILL, one new file, a new process from launch to ``commits/1``.

Baselines are the figures issue 15 measured before this work (no PySpark here: it
needs minutes per run; the issue's PySpark figures are quoted in the notes).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.harness import REPO_ROOT, BenchContext, Measure, Workload, WorkloadResult
from bench.small_batch_query import start_windowed_files, windowed

__all__ = ["WORKLOAD", "run"]

FILES = 200
FILE_ROWS = 100
RATE_SECONDS = 12
STARTS = 3
_START_MS = 1_767_225_600_000


def _write_file(folder: str, index: int) -> None:
    """File ``index``: ``FILE_ROWS`` events in second ``index``, mtime ordered by index."""
    event_ms = _START_MS + index * 1000 + np.arange(FILE_ROWS) * (1000 // FILE_ROWS)
    table = pa.table({"event_time": pa.array(event_ms * 1000, pa.timestamp("us", tz="UTC")),
                      "key": np.arange(FILE_ROWS, dtype=np.int64) % 10,
                      "value": np.ones(FILE_ROWS)})
    path = os.path.join(folder, f"part-{index:05d}.parquet")
    pq.write_table(table, path)
    os.utime(path, (1_000_000 + index, 1_000_000 + index))


@contextmanager
def _timed_triggers() -> Iterator[dict[int, float]]:
    """Seconds of each trigger that ran a batch, by batch id, while the block runs."""
    from unbounded.runtime import microbatch

    times: dict[int, float] = {}
    original = microbatch.MicroBatchExecution._trigger

    def timed(self: Any, rerun: Any) -> bool:
        started, batch_id = time.perf_counter(), self.batch_id
        ran = original(self, rerun)
        if ran:
            times[batch_id] = time.perf_counter() - started
        return ran

    microbatch.MicroBatchExecution._trigger = timed  # type: ignore[method-assign]
    try:
        yield times
    finally:
        microbatch.MicroBatchExecution._trigger = original  # type: ignore[method-assign]


def _split(times: dict[int, float], query: Any) -> tuple[list[float], list[float]]:
    """Milliseconds of the batches with input rows, and of those without."""
    rows = {p["batchId"]: p["numInputRows"] for p in query.recentProgress}
    data = [t * 1000 for b, t in times.items() if rows.get(b)]
    empty = [t * 1000 for b, t in times.items() if b in rows and not rows[b]]
    return data, empty


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _fixed_cost(root: str) -> dict[str, Any]:
    from unbounded.sql import SparkSession

    input_dir = os.path.join(root, "files")
    os.makedirs(input_dir)
    for i in range(FILES):
        _write_file(input_dir, i)
    spark = SparkSession.builder.appName("bench-small-batch").getOrCreate()
    with _timed_triggers() as times:
        query = start_windowed_files(spark, input_dir, os.path.join(root, "files-out"),
                                     os.path.join(root, "files-ckpt"), availableNow=True)
        query.awaitTermination()
    data, _ = _split(times, query)
    return {"batches": len(data), "median_ms": statistics.median(data[5:])}


def _rate_latency(root: str, name: str, shape: Callable[[Any], Any]) -> dict[str, Any]:
    from unbounded.sql import SparkSession

    spark = SparkSession.builder.appName("bench-small-batch").getOrCreate()
    events = spark.readStream.format("rate").option("rowsPerSecond", 1000).load()
    with _timed_triggers() as times:
        query = (shape(events).writeStream.format("parquet").outputMode("append")
                 .option("checkpointLocation", os.path.join(root, f"{name}-ckpt"))
                 .trigger(processingTime="0 seconds").start(os.path.join(root, f"{name}-out")))
        time.sleep(RATE_SECONDS)
        query.stop()
    data, empty = _split(times, query)
    data = data[1:]  # the first batch compiles and opens everything
    return {"batches": len(data), "median_ms": statistics.median(data), "p99_ms": _p99(data),
            "no_data_batches": len(empty),
            "no_data_median_ms": statistics.median(empty) if empty else None}


def _stateless(events: Any) -> Any:
    from unbounded.sql import functions as F

    return events.select("timestamp", (F.col("value") * 2).alias("doubled"))


def _launch(input_dir: str, root: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bench.small_batch_query", input_dir,
           os.path.join(root, "out"), os.path.join(root, "ckpt")]
    return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _until_commit(proc: subprocess.Popen[bytes], commit: str, started: float) -> float:
    while not os.path.exists(commit):
        if proc.poll() is not None:
            raise RuntimeError(f"the query process exited ({proc.returncode}) before {commit}")
        if time.perf_counter() - started > 60:
            raise TimeoutError(f"no {commit} within 60 s")
        time.sleep(0.001)
    return time.perf_counter() - started


def _start_and_restart(root: str) -> tuple[float, float]:
    """Seconds from launch to ``commits/0`` (fresh), and after SIGKILL to ``commits/1``."""
    input_dir = os.path.join(root, "in")
    os.makedirs(input_dir)
    _write_file(input_dir, 0)
    started = time.perf_counter()
    proc = _launch(input_dir, root)
    try:
        fresh = _until_commit(proc, os.path.join(root, "ckpt", "commits", "0"), started)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _write_file(input_dir, 100)
    started = time.perf_counter()
    proc = _launch(input_dir, root)
    try:
        restart = _until_commit(proc, os.path.join(root, "ckpt", "commits", "1"), started)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return fresh, restart


def _start_figures(root: str) -> dict[str, Any]:
    runs = [_start_and_restart(os.path.join(root, f"start-{i}")) for i in range(STARTS)]
    return {"fresh_s": statistics.median(r[0] for r in runs),
            "restart_s": statistics.median(r[1] for r in runs),
            "runs": [[round(a, 3), round(b, 3)] for a, b in runs]}


def _measure(name: str, value: float | None, unit: str, before: float, aim: float,
             note: str = "") -> Measure:
    """A duration beside the issue's figure (``before``) and its aim (at most ``aim``)."""
    if value is None:
        return Measure(name, None, unit, note="not measured")
    ratio = before / value if value else None
    return Measure(name, round(value, 3), unit, None if ratio is None else round(ratio, 2),
                   f"<= {aim:g} {unit}", value <= aim, f"issue 15: {before:g} {unit}; {note}")


def run(ctx: BenchContext) -> WorkloadResult:
    root = ctx.fresh_run_dir("small_batch")
    fixed = _fixed_cost(root)
    win = _rate_latency(root, "windowed", lambda e: windowed(e, "timestamp"))
    flat = _rate_latency(root, "stateless", _stateless)
    start = _start_figures(root)
    measures = [
        _measure("fixed cost, 1 small file per batch (median)", fixed["median_ms"], "ms", 21, 3,
                 f"{fixed['batches']} batches of {FILE_ROWS} rows"),
        _measure("no-data batch (median)", win["no_data_median_ms"], "ms", 12, 3,
                 f"{win['no_data_batches']} batches"),
        _measure("windowed rate 1000/s: median", win["median_ms"], "ms", 13.5, 5,
                 f"{win['batches']} batches; PySpark 212 ms"),
        _measure("windowed rate 1000/s: p99", win["p99_ms"], "ms", 23, 10, "PySpark 310 ms"),
        _measure("stateless rate 1000/s: median", flat["median_ms"], "ms", 5, 2,
                 f"p99 {flat['p99_ms']:.1f} ms; PySpark 118 ms"),
        _measure("fresh start to first commit", start["fresh_s"], "s", 0.40, 0.25,
                 f"median of {STARTS}; PySpark 7.8 s"),
        _measure("SIGKILL-restart to next commit", start["restart_s"], "s", 0.44, 0.25,
                 f"median of {STARTS}; PySpark 8.3 s"),
    ]
    return WorkloadResult("small_batch", measures=measures,
                          params={"files": FILES, "file_rows": FILE_ROWS,
                                  "rate_seconds": RATE_SECONDS, "fixed": fixed,
                                  "windowed": win, "stateless": flat, "start": start})


WORKLOAD = Workload("small_batch", "per-batch fixed cost, small-batch latency, start-up",
                    FILES * FILE_ROWS, run)
