"""Sessionization (issue 12): ``applyInPandasWithState`` with event-time timeouts over
Parquet event files, against PySpark's ``applyInPandasWithState`` on the same machine.

Input: ``rows`` events of ``rows / 10`` users (1M users and 10M events by default) in
``FILES`` Parquet files read one per batch; file ``f`` holds events of minutes
``[10 f, 10 f + 10)``, users drawn at random, so a batch touches most users again and
sessions close by timeout (15 minutes of event time after their last event, watermark
10 minutes) while later files are read. Two last files of one far-future event each close
every session still open (the second batch's watermark is the first's event, so no engine
needs a no-data batch), and the sessions' event counts must add up to the input.

The same function runs in both engines (``sessionize``: start, end, count and amount
total per session in the state; a closed session is one output row), with 2 shuffle
partitions in both and in one Python process per core in both: PySpark ``local[2]``'s two
Python workers, unbounded's state workers (``engine/state_workers.py``, one state
partition's calls per job). Under a loaded machine both share the same cores, so the
ratio mostly compares CPU per event. unbounded reads all
files; PySpark (``local[2]``) reads the first files only when ``--rows`` is large
(``PYSPARK_MAX_ROWS``), which the output states. The figure compared is input rows per
second of the whole availableNow run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.harness import (
    BenchContext,
    Measure,
    Workload,
    WorkloadResult,
    cached_dataset,
    failure_reason,
    stopwatch,
    warm_page_cache,
)

__all__ = ["WORKLOAD", "generate", "run", "sessionize"]

FILES = 10
USERS_PER_EVENT = 10  # rows / 10 users
FILE_SPAN_S = 600
GAP_MS = 15 * 60 * 1000
PYSPARK_MAX_ROWS = 200_000
TARGET_RATIO = 10.0
T0_S = 1_767_225_600  # 2026-01-01 00:00 UTC
OUTPUT = "user long, start long, end long, n long, total long"
STATE = "start long, end long, n long, total long"
TIMESTAMP = pa.timestamp("us", tz="UTC")
FLUSHES = ("zz-flush-0.parquet", "zz-flush-1.parquet")


def generate(folder: str, rows: int, files: int = FILES) -> None:
    """``files`` event files, then the far-future events that close every session."""
    users = max(1, rows // USERS_PER_EVENT)
    base, extra = divmod(rows, files)
    for f in range(files):
        n = base + (1 if f < extra else 0)
        rng = np.random.default_rng(f)
        seconds = T0_S + f * FILE_SPAN_S + rng.integers(0, FILE_SPAN_S, n)
        table = pa.table({"user": rng.integers(0, users, n, dtype=np.int64),
                          "amount": rng.integers(1, 100, n, dtype=np.int64),
                          "event_time": pa.array(seconds * 1_000_000, TIMESTAMP)})
        _write(table, os.path.join(folder, f"part-{f:04d}.parquet"), f)
    for i, name in enumerate(FLUSHES):
        at = (T0_S + 10**7 * (i + 1)) * 1_000_000
        flush = pa.table({"user": pa.array([-1], pa.int64()),
                          "amount": pa.array([0], pa.int64()),
                          "event_time": pa.array([at], TIMESTAMP)})
        _write(flush, os.path.join(folder, name), files + i)


def _write(table: pa.Table, path: str, order: int) -> None:
    """Files are read in modification-time order: make it the file order."""
    pq.write_table(table, path)
    os.utime(path, (1_700_000_000 + order, 1_700_000_000 + order))


def sessionize(key: tuple[Any, ...], frames: Iterator[pd.DataFrame],
               state: Any) -> Iterator[pd.DataFrame]:
    """A session per user: (start, end, count, total) until 15 minutes of event time pass
    after its last event; then one output row."""
    if state.hasTimedOut:
        start, end, n, total = state.get
        state.remove()
        yield pd.DataFrame({"user": [key[0]], "start": [start], "end": [end], "n": [n],
                            "total": [total]})
        return
    start, end, n, total = state.get if state.exists else (None, None, 0, 0)
    for pdf in frames:
        times = pdf.event_time.to_numpy(dtype="datetime64[ms]").astype(np.int64)
        first, last = int(times.min()), int(times.max())
        start = first if start is None else min(start, first)
        end = last if end is None else max(end, last)
        n, total = n + len(pdf), total + int(pdf.amount.sum())
    state.update((start, end, n, total))
    state.setTimeoutTimestamp(end + GAP_MS)


def _query(spark: Any, engine: tuple[Any, Any], input_dir: str, checkpoint: str,
           totals: list[tuple[int, int]]) -> Any:
    """The query, written once for both engines (``spark`` is either engine's session,
    ``engine`` its ``functions`` module and ``GroupStateTimeout``)."""
    F, timeout = engine
    from_files = (spark.readStream.schema("user LONG, amount LONG, event_time TIMESTAMP")
                  .option("maxFilesPerTrigger", 1).parquet(input_dir))
    sessions = (from_files.withWatermark("event_time", "10 minutes").groupBy("user")
                .applyInPandasWithState(sessionize, OUTPUT, STATE, "append",
                                        timeout.EventTimeTimeout))

    def collect(df: Any, _: int) -> None:
        row = df.agg(F.count("*").alias("sessions"), F.sum("n").alias("events")).collect()[0]
        totals.append((int(row["sessions"]), int(row["events"] or 0)))

    return (sessions.writeStream.outputMode("append").foreachBatch(collect)
            .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())


def _run_query(spark: Any, engine: tuple[Any, Any], input_dir: str, run_dir: str
               ) -> dict[str, Any]:
    totals: list[tuple[int, int]] = []
    with stopwatch() as elapsed:
        query = _query(spark, engine, input_dir, os.path.join(run_dir, "ckpt"), totals)
        query.awaitTermination()
    if query.exception() is not None:
        raise RuntimeError(str(query.exception()))
    return {"seconds": elapsed[0], "batches": len(query.recentProgress),
            "sessions": sum(s for s, _ in totals), "events": sum(e for _, e in totals)}


def _unbounded(input_dir: str, run_dir: str) -> dict[str, Any]:
    from unbounded.sql import SparkSession
    from unbounded.sql import functions as F
    from unbounded.sql.streaming_state import GroupStateTimeout

    spark = SparkSession.builder.appName("bench-sessionization").config(
        "spark.sql.shuffle.partitions", "2").getOrCreate()
    return _run_query(spark, (F, GroupStateTimeout), input_dir, run_dir)


def _pyspark(input_dir: str, run_dir: str) -> dict[str, Any]:
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.streaming.state import GroupStateTimeout

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # its workers need pandas
    spark = (SparkSession.builder.master("local[2]").appName("bench-sessionization")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "2g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        return _run_query(spark, (F, GroupStateTimeout), input_dir, run_dir)
    finally:
        spark.stop()


def _subset(input_dir: str, folder: str, files: int) -> str:
    """A folder with the first ``files`` event files and the flush files (hard links)."""
    target = os.path.join(folder, f"input-first-{files}")
    if not os.path.isdir(target):
        os.makedirs(target + ".tmp", exist_ok=True)
        for name in [*sorted(os.listdir(input_dir))[:files], *FLUSHES]:
            if not os.path.exists(os.path.join(target + ".tmp", name)):
                os.link(os.path.join(input_dir, name), os.path.join(target + ".tmp", name))
        os.rename(target + ".tmp", target)
    return target


def _input_rows(folder: str) -> int:
    return sum(pq.ParquetFile(os.path.join(folder, f)).metadata.num_rows
               for f in os.listdir(folder)) - len(FLUSHES)


def _check(result: WorkloadResult, engine: str, run: dict[str, Any], rows: int) -> None:
    result.checks[f"{engine} sessions hold every event once"] = (
        "ok" if run["events"] == rows else f"FAIL {run['events']:,} of {rows:,}")


def _pyspark_run(result: WorkloadResult, ctx: BenchContext, input_dir: str
                 ) -> tuple[int, dict[str, Any]] | None:
    """PySpark's run over its share of the files, or None (noted) when unavailable."""
    files = max(1, FILES * min(ctx.rows, PYSPARK_MAX_ROWS) // ctx.rows)
    folder = input_dir if files == FILES else _subset(input_dir, ctx.folder("sessionization"),
                                                      files)
    rows = _input_rows(folder)
    try:
        run = _pyspark(folder, ctx.fresh_run_dir("sessionization-pyspark"))
    except Exception as exc:
        note = ("skipped: pyspark is not installed" if isinstance(exc, ImportError)
                else f"failed: {failure_reason(exc)}")
        result.measures.append(Measure("pyspark applyInPandasWithState", None, "rows/s",
                                       note=note))
        return None
    _check(result, "pyspark", run, rows)
    return rows, run


def run(ctx: BenchContext) -> WorkloadResult:
    folder = ctx.folder("sessionization")
    input_dir, generated = cached_dataset(folder, {"rows": ctx.rows, "files": FILES},
                                          lambda path: generate(path, ctx.rows))
    warm_page_cache(input_dir)
    result = WorkloadResult("sessionization", params={
        "rows": ctx.rows, "users": ctx.rows // USERS_PER_EVENT, "files": FILES,
        "data_generated_now": generated})
    mine = _unbounded(input_dir, ctx.fresh_run_dir("sessionization"))
    _check(result, "unbounded", mine, ctx.rows)
    rate = ctx.rows / mine["seconds"]
    result.measures.append(Measure(
        "unbounded applyInPandasWithState", rate, "rows/s",
        note=f"{mine['seconds']:.2f} s, {mine['batches']} batches, "
             f"{mine['sessions']:,} sessions"))
    result.params["unbounded"] = mine
    spark = _pyspark_run(result, ctx, input_dir)
    if spark is not None:
        rows, theirs = spark
        spark_rate = rows / theirs["seconds"]
        result.measures.append(Measure(
            "pyspark applyInPandasWithState local[2]", spark_rate, "rows/s", note=(
                f"{theirs['seconds']:.2f} s, {theirs['batches']} batches, {rows:,} rows"
                + (f" (of {ctx.rows:,}: first files only)" if rows < ctx.rows else ""))))
        ratio = rate / spark_rate
        result.measures.append(Measure("unbounded vs pyspark", None, "", ratio,
                                       f">= {TARGET_RATIO:.0f}x", ratio >= TARGET_RATIO,
                                       "rate of unbounded / rate of pyspark"))
        result.params["pyspark"] = {"rows": rows, **theirs}
    return result


# The size is 10M events of 1M users (``--rows 10000000 --timeout 3600``); by
# default 1M events of 100k users, so that ``make bench`` stays within its time limit.
WORKLOAD = Workload("sessionization", "applyInPandasWithState sessions (event-time "
                    "timeouts), rows / 10 users, vs PySpark's", 1_000_000, run)
