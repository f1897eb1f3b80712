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
  stateless projection, median and p99 of the batches with data (the wall time of the
  trigger that ran them: offsets, tasks, state, sink, commit, progress; the rate source's
  offsets are whole seconds, so each is one batch of ~1000 rows a second); the batches
  without data (the watermark moved, so closed windows are emitted) give the no-data
  cost. Beside them, from the moment a batch's rows were all available (its last second
  ended) to its commit: the loop's wait for the rows, plus the batch.
- start-up: a fresh process (``python -m bench.small_batch_query``) from launch to
  ``commits/0``; then SIGKILL, one new file, a new process from launch to ``commits/1``.
  The processes find our modules' bytecode cached (``PYTHONPYCACHEPREFIX`` in the run
  folder, filled by one unmeasured launch), as an installed package has it; where the
  environment sets ``PYTHONDONTWRITEBYTECODE`` (this machine does) every launch would
  otherwise compile the whole package first, so that figure is reported beside it.
- CPU figures (process CPU time, all threads) beside the wall times: on a machine shared
  with other work the wall time of a batch is mostly waiting for a core and the disk,
  while its CPU time is what the batch itself costs.

Baselines are the figures issue 15 measured before this work (no PySpark here: it
needs minutes per run; the issue's PySpark figures are quoted in the notes).
"""

from __future__ import annotations

import json
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


class TriggerTimes(dict[int, float]):
    """Seconds of each trigger that ran a batch, by batch id; ``cpu`` holds the process's
    CPU time (all threads) when each trigger ended."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu: list[float] = []
        self.ended: dict[int, float] = {}  # wall clock (epoch s) when each trigger ended

    def cpu_ms_per_batch(self, skip: int = 10) -> float | None:
        """Process CPU per trigger between the ``skip``-th and the last (steady state)."""
        if len(self.cpu) < skip + 3:
            return None
        return 1000 * (self.cpu[-1] - self.cpu[skip]) / (len(self.cpu) - 1 - skip)


@contextmanager
def _timed_triggers() -> Iterator[TriggerTimes]:
    """The triggers' wall and CPU times, while the block runs."""
    from unbounded.runtime import microbatch

    times = TriggerTimes()
    original = microbatch.MicroBatchExecution._trigger

    def timed(self: Any, rerun: Any) -> bool:
        started, batch_id = time.perf_counter(), self.batch_id
        ran = original(self, rerun)
        if ran:
            times[batch_id] = time.perf_counter() - started
            times.cpu.append(time.process_time())
            times.ended[batch_id] = time.time()
        return ran

    microbatch.MicroBatchExecution._trigger = timed  # type: ignore[method-assign]
    try:
        yield times
    finally:
        microbatch.MicroBatchExecution._trigger = original  # type: ignore[method-assign]


class FsyncCount:
    """``os.fsync`` calls while the block runs, and the seconds they took."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0


@contextmanager
def _counted_fsyncs() -> Iterator[FsyncCount]:
    """Every durable write goes through ``os.fsync`` (files and folders alike)."""
    count, original = FsyncCount(), os.fsync

    def fsync(fd: int) -> None:
        started = time.perf_counter()
        original(fd)
        count.calls += 1
        count.seconds += time.perf_counter() - started

    os.fsync = fsync
    try:
        yield count
    finally:
        os.fsync = original


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
    with _timed_triggers() as times, _counted_fsyncs() as fsyncs:
        query = start_windowed_files(spark, input_dir, os.path.join(root, "files-out"),
                                     os.path.join(root, "files-ckpt"), availableNow=True)
        query.awaitTermination()
    data, _ = _split(times, query)
    return {"batches": len(data), "median_ms": statistics.median(data[5:]),
            "cpu_ms": times.cpu_ms_per_batch(), "fsyncs_per_batch": fsyncs.calls / len(times),
            "fsync_ms_per_batch": 1000 * fsyncs.seconds / len(times)}


def _due_to_commit(times: TriggerTimes, query: Any, checkpoint: str) -> list[float]:
    """Milliseconds from the moment a data batch's rows were all available (the end of
    the rate source's last second in it) to its commit: the wait for the trigger loop to
    notice them, plus the batch."""
    with open(os.path.join(checkpoint, "sources", "0", "0"), encoding="utf-8") as f:
        start_ms = json.loads(f.read().partition("\n")[2])["startTimeMs"]
    return [1000 * times.ended[p["batchId"]] - (start_ms + 1000 * int(p["sources"][0]["endOffset"]))
            for p in query.recentProgress[2:] if p["numInputRows"] and p["batchId"] in times.ended]


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
    due = _due_to_commit(times, query, os.path.join(root, f"{name}-ckpt"))
    return {"batches": len(data), "median_ms": statistics.median(data), "p99_ms": _p99(data),
            "no_data_batches": len(empty),
            "no_data_median_ms": statistics.median(empty) if empty else None,
            "due_to_commit_median_ms": statistics.median(due) if due else None}


def _stateless(events: Any) -> Any:
    from unbounded.sql import functions as F

    return events.select("timestamp", (F.col("value") * 2).alias("doubled"))


def _launch(input_dir: str, root: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bench.small_batch_query", input_dir,
           os.path.join(root, "out"), os.path.join(root, "ckpt")]
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _cpu_seconds(pid: int) -> float | None:
    """The process's CPU time so far (user + system), where ``/proc`` tells it."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _until_commit(proc: subprocess.Popen[bytes], commit: str, started: float
                  ) -> tuple[float, float | None]:
    """Wall seconds from ``started`` to ``commit``, and the process's CPU seconds then."""
    while not os.path.exists(commit):
        if proc.poll() is not None:
            raise RuntimeError(f"the query process exited ({proc.returncode}) before {commit}")
        if time.perf_counter() - started > 60:
            raise TimeoutError(f"no {commit} within 60 s")
        time.sleep(0.001)
    return time.perf_counter() - started, _cpu_seconds(proc.pid)


def _launch_until(input_dir: str, root: str, env: dict[str, str], commit: str
                  ) -> tuple[float, float | None]:
    started = time.perf_counter()
    proc = _launch(input_dir, root, env)
    try:
        return _until_commit(proc, os.path.join(root, "ckpt", "commits", commit), started)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _start_and_restart(root: str, env: dict[str, str]) -> list[tuple[float, float | None]]:
    """(wall, CPU) seconds from launch to ``commits/0`` (fresh), and after SIGKILL, one
    more file and a new launch, to ``commits/1``."""
    input_dir = os.path.join(root, "in")
    os.makedirs(input_dir)
    _write_file(input_dir, 0)
    fresh = _launch_until(input_dir, root, env, "0")
    _write_file(input_dir, 100)
    return [fresh, _launch_until(input_dir, root, env, "1")]


def _cached_bytecode_env(root: str) -> dict[str, str]:
    """This environment with bytecode caching on, into a cache under ``root``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(root, "pycache")
    return env


def _start_runs(root: str, env: dict[str, str]) -> dict[str, Any]:
    runs = [_start_and_restart(os.path.join(root, f"start-{i}"), env) for i in range(STARTS)]
    cpu = [c for c in (r[0][1] for r in runs) if c is not None]
    return {"fresh_s": statistics.median(r[0][0] for r in runs),
            "restart_s": statistics.median(r[1][0] for r in runs),
            "fresh_cpu_s": round(statistics.median(cpu), 3) if len(cpu) == len(runs) else None,
            "runs": [[round(w, 3) for w, _ in r] for r in runs]}


def _start_figures(root: str) -> dict[str, Any]:
    env = _cached_bytecode_env(root)
    _start_and_restart(os.path.join(root, "warm"), env)  # fills the bytecode cache
    figures = {"cached": _start_runs(os.path.join(root, "cached"), env)}
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        figures["uncached"] = _start_runs(os.path.join(root, "uncached"), dict(os.environ))
    return figures


def _measure(name: str, value: float | None, unit: str, before: float, aim: float,
             note: str = "") -> Measure:
    """A duration beside the issue's figure (``before``) and its aim (at most ``aim``)."""
    if value is None:
        return Measure(name, None, unit, note="not measured")
    ratio = before / value if value else None
    return Measure(name, round(value, 3), unit, None if ratio is None else round(ratio, 2),
                   f"<= {aim:g} {unit}", value <= aim, f"issue 15: {before:g} {unit}; {note}")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _start_measures(start: dict[str, Any]) -> list[Measure]:
    cached = start["cached"]
    measures = [
        _measure("fresh start to first commit", cached["fresh_s"], "s", 0.40, 0.25,
                 f"median of {STARTS}, bytecode cached; process CPU "
                 f"{cached['fresh_cpu_s']} s; PySpark 7.8 s"),
        _measure("SIGKILL-restart to next commit", cached["restart_s"], "s", 0.44, 0.25,
                 f"median of {STARTS}, bytecode cached; PySpark 8.3 s"),
    ]
    uncached = start.get("uncached")
    if uncached is not None:
        measures.append(_measure(
            "fresh start, no bytecode cache", uncached["fresh_s"], "s", 0.40, 0.25,
            f"PYTHONDONTWRITEBYTECODE is set here: every launch compiles the package; "
            f"process CPU {uncached['fresh_cpu_s']} s"))
    return measures


def run(ctx: BenchContext) -> WorkloadResult:
    root = ctx.fresh_run_dir("small_batch")
    fixed = _fixed_cost(root)
    win = _rate_latency(root, "windowed", lambda e: windowed(e, "timestamp"))
    flat = _rate_latency(root, "stateless", _stateless)
    start = _start_figures(root)
    measures = [
        _measure("fixed cost, 1 small file per batch (median)", fixed["median_ms"], "ms", 21, 3,
                 f"{fixed['batches']} batches of {FILE_ROWS} rows"),
        Measure("fixed cost: process CPU per batch", _rounded(fixed["cpu_ms"]), "ms",
                note="all threads, steady state: what a batch costs with a core to itself"),
        Measure("fixed cost: fsyncs per batch", _rounded(fixed["fsyncs_per_batch"]), "calls",
                note=f"{fixed['fsync_ms_per_batch']:.1f} ms/batch inside fsync (files and "
                     "folders; the disk is shared, so this varies 0.3-5 ms per call)"),
        _measure("no-data batch (median)", win["no_data_median_ms"], "ms", 12, 3,
                 f"{win['no_data_batches']} batches"),
        _measure("windowed rate 1000/s: median", win["median_ms"], "ms", 13.5, 5,
                 f"{win['batches']} batches; PySpark 212 ms"),
        _measure("windowed rate 1000/s: p99", win["p99_ms"], "ms", 23, 10, "PySpark 310 ms"),
        _measure("stateless rate 1000/s: median", flat["median_ms"], "ms", 5, 2,
                 f"p99 {flat['p99_ms']:.1f} ms; PySpark 118 ms"),
        Measure("windowed rate: rows available -> commit (median)",
                _rounded(win["due_to_commit_median_ms"]), "ms",
                note="from the end of the rate source's second to commits/N: the trigger "
                     "loop's wait for the rows plus the batch (the figures above)"),
        *_start_measures(start),
    ]
    return WorkloadResult("small_batch", measures=measures,
                          params={"files": FILES, "file_rows": FILE_ROWS,
                                  "rate_seconds": RATE_SECONDS, "fixed": fixed,
                                  "windowed": win, "stateless": flat, "start": start})


WORKLOAD = Workload("small_batch", "per-batch fixed cost, small-batch latency, start-up",
                    FILES * FILE_ROWS, run)
