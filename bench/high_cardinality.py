"""High-cardinality state (issue 15): the windowed query with ~1M keys per 5 s window.

The query is the ``windowed`` workload's, unchanged (event time, 5 s tumbling windows, a
10 s watermark, count and sum per ``(window, key)``, 4 Parquet files per batch, a
Parquet sink, ``availableNow``, the full checkpoint on). Only the data differ: the
events of ``rows`` span ``WINDOWS`` windows of 5 s, so each window holds
``rows / WINDOWS`` rows (1.25M by default), and keys are drawn uniformly from
``rows / 4`` (2.5M by default), so each window holds about 1M distinct keys
(``K (1 - e^(-R/K))`` of ``R`` draws from ``K``) and the state about 3M. Baselines,
measured in the same run on the same files:

- the same aggregation as one Polars batch query (``windowed``'s);
- PySpark running the same streaming query (``local[2]``, 2 shuffle partitions) over
  the first files when ``rows`` exceeds ``PYSPARK_MAX_ROWS``, which the output states.

Also reported: the state's memory per key (the stores' ``memoryUsedBytes`` over their
``numRowsTotal``, at the batch holding the most keys) and the checkpoint's state files
on disk, per key at that batch and per changed row (the delta files).
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from bench import windowed
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

__all__ = ["WORKLOAD", "generate", "run", "state_footprint"]

FILES = 40
WINDOWS = 8  # of 5 s: the event-time span
ROWS_PER_KEY_RANGE = 4  # keys are drawn from rows / 4
TARGET_POLARS = 0.5
TARGET_PYSPARK = 20.0
REPEATS = 2  # runs of Polars and of unbounded, alternately; the best of each counts
PYSPARK_MAX_ROWS = 5_000_000
_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_SPAN_MS = WINDOWS * windowed.WINDOW_S * 1000


def _file_table(first: int, n: int, rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    position = np.arange(first, first + n, dtype=np.int64)
    event_ms = _START_MS + position * _SPAN_MS // max(rows, 1) \
        - rng.integers(0, windowed.MAX_DISORDER_MS, n)
    order = rng.permutation(n)
    return pa.table({
        "event_time": pa.array(event_ms[order] * 1_000, pa.timestamp("us", tz="UTC")),
        "key": rng.integers(0, max(rows // ROWS_PER_KEY_RANGE, 1), n, dtype=np.int64),
        "value": rng.integers(0, 8_000, n) / 8.0,
    })


def generate(folder: str, rows: int, files: int = FILES) -> None:
    """``files`` Parquet files, written in event-time order (file mtimes ascending)."""
    base, extra = divmod(rows, files)
    first = 0
    for i in range(files):
        n = base + (1 if i < extra else 0)
        pq.write_table(_file_table(first, n, rows, seed=i),
                       os.path.join(folder, f"events-{i:04d}.parquet"))
        first += n


def _folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _delta_bytes(state_dir: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(state_dir)
               for f in fs if f.endswith(".delta"))


def state_footprint(progress: list[dict[str, Any]], state_dir: str) -> dict[str, float]:
    """Memory and disk bytes per key of state, from the progress of every batch."""
    ops = [p["stateOperators"][0] for p in progress if p.get("stateOperators")]
    peak = max(ops, key=lambda o: o["numRowsTotal"], default=None)
    if peak is None or not peak["numRowsTotal"]:
        return {}
    changed = sum(o["numRowsUpdated"] + o.get("numRowsRemoved", 0) for o in ops)
    return {
        "peak_keys": peak["numRowsTotal"],
        "memory_bytes_per_key": peak["memoryUsedBytes"] / peak["numRowsTotal"],
        "checkpoint_bytes_per_key": _folder_bytes(state_dir) / peak["numRowsTotal"],
        "delta_bytes_per_changed_row": _delta_bytes(state_dir) / max(changed, 1),
    }


def _run_query(spark: Any, functions: Any, input_dir: str, run_dir: str,
               read_output: Any) -> dict[str, Any]:
    output_dir, checkpoint = os.path.join(run_dir, "out"), os.path.join(run_dir, "ckpt")
    with stopwatch() as elapsed:
        query = windowed._streaming_query(spark, functions, input_dir, output_dir, checkpoint)
        query.awaitTermination()
    if query.exception() is not None:
        raise RuntimeError(str(query.exception()))
    progress = [dict(p) for p in query.recentProgress]
    return {
        "seconds": elapsed[0],
        "batches": len(progress),
        "input_rows": sum(p["numInputRows"] for p in progress),
        "state": state_footprint(progress, os.path.join(checkpoint, "state")),
        "windows": read_output(output_dir),
    }


def _unbounded(input_dir: str, run_dir: str) -> dict[str, Any]:
    from unbounded.sql import SparkSession
    from unbounded.sql import functions as F

    spark = SparkSession.builder.appName("bench-high-cardinality").getOrCreate()

    def read(path: str) -> pl.DataFrame:
        return windowed._normalise(pl.from_arrow(spark.read.parquet(path).toArrow()))  # type: ignore[arg-type]

    return _run_query(spark, F, input_dir, run_dir, read)


def _pyspark(input_dir: str, run_dir: str) -> dict[str, Any]:
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = (SparkSession.builder.master("local[2]").appName("bench-high-cardinality")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "4g")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")

    def read(path: str) -> pl.DataFrame:
        frame = spark.read.parquet(path).select(
            F.col("window.start").alias("window_start"), F.col("window.end").alias("window_end"),
            "key", "count", "sum")
        return windowed._normalise(pl.from_arrow(frame.toArrow()))  # type: ignore[arg-type]

    try:
        return _run_query(spark, F, input_dir, run_dir, read)
    finally:
        spark.stop()


def _subset(input_dir: str, folder: str, files: int) -> str:
    """A folder with the first ``files`` event files (hard links)."""
    target = os.path.join(folder, f"input-first-{files}")
    if not os.path.isdir(target):
        os.makedirs(target + ".tmp", exist_ok=True)
        for name in sorted(os.listdir(input_dir))[:files]:
            if not os.path.exists(os.path.join(target + ".tmp", name)):
                os.link(os.path.join(input_dir, name), os.path.join(target + ".tmp", name))
        os.rename(target + ".tmp", target)
    return target


def _check(result: WorkloadResult, name: str, run: dict[str, Any], rows: int,
           expected: pl.DataFrame) -> None:
    result.checks[f"{name} closed windows == polars"] = windowed.compare_windows(
        run["windows"], expected)
    result.checks[f"{name} read all input"] = (
        "ok" if run["input_rows"] == rows else f"FAIL {run['input_rows']:,} of {rows:,}")


def _best_runs(input_dir: str, run_dir: str
               ) -> tuple[float, pl.DataFrame, dict[str, Any] | None, str]:
    """Polars and unbounded, alternately, ``REPEATS`` times each; the fastest of each."""
    best_batch: tuple[float, pl.DataFrame] | None = None
    best_stream: dict[str, Any] | None = None
    for i in range(REPEATS):
        batch = windowed._polars(input_dir, os.path.join(run_dir, f"polars-{i}.parquet"))
        if best_batch is None or batch[0] < best_batch[0]:
            best_batch = batch
        try:
            stream = _unbounded(input_dir, os.path.join(run_dir, f"unbounded-{i}"))
        except Exception as exc:
            traceback.print_exc()
            return best_batch[0], best_batch[1], None, failure_reason(exc)
        if best_stream is None or stream["seconds"] < best_stream["seconds"]:
            best_stream = stream
    assert best_batch is not None
    return best_batch[0], best_batch[1], best_stream, ""


def _state_note(state: dict[str, float]) -> str:
    if not state:
        return "no state reported"
    return (f"{state['memory_bytes_per_key']:.0f} B/key in memory at "
            f"{state['peak_keys']:,.0f} keys; checkpoint "
            f"{state['checkpoint_bytes_per_key']:.0f} B/key, deltas "
            f"{state['delta_bytes_per_changed_row']:.1f} B per changed row")


def _pyspark_rate(result: WorkloadResult, ctx: BenchContext, input_dir: str
                  ) -> float | None:
    """PySpark's rows/s over its share of the files, or None (noted)."""
    files = max(1, FILES * min(ctx.rows, PYSPARK_MAX_ROWS) // ctx.rows)
    folder = input_dir if files == FILES else _subset(input_dir, ctx.folder("high_cardinality"),
                                                      files)
    rows = sum(pq.ParquetFile(os.path.join(folder, f)).metadata.num_rows
               for f in os.listdir(folder))
    try:
        run_dir = ctx.fresh_run_dir("high_cardinality-pyspark")
        expected = windowed._polars(folder, os.path.join(run_dir, "polars.parquet"))[1]
        theirs = _pyspark(folder, run_dir)
    except Exception as exc:
        note = ("skipped: pyspark is not installed" if isinstance(exc, ImportError)
                else f"failed: {failure_reason(exc)}")
        result.measures.append(Measure("pyspark streaming", None, "rows/s", note=note))
        return None
    _check(result, "pyspark", theirs, rows, expected)
    rate = float(rows / theirs["seconds"])
    result.measures.append(Measure(
        "pyspark streaming local[2]", rate, "rows/s", note=(
            f"{theirs['seconds']:.2f} s, {theirs['batches']} batches, {rows:,} rows"
            + (f" (of {ctx.rows:,}: first files only)" if rows < ctx.rows else ""))))
    result.params["pyspark"] = {"rows": rows, **{k: v for k, v in theirs.items()
                                                 if k != "windows"}}
    return rate


def _report_unbounded(result: WorkloadResult, stream: dict[str, Any], rows: int,
                      batch_rate: float, expected: pl.DataFrame) -> float:
    rate = float(rows / stream["seconds"])
    ratio = rate / batch_rate
    result.measures.append(Measure(
        "unbounded availableNow", rate, "rows/s", ratio, f">= {TARGET_POLARS:.2f}x",
        ratio >= TARGET_POLARS, f"{stream['seconds']:.2f} s, {stream['batches']} batches"))
    result.measures.append(Measure("state per key", stream["state"].get(
        "memory_bytes_per_key"), "B", note=_state_note(stream["state"])))
    _check(result, "unbounded", stream, rows, expected)
    result.params["unbounded"] = {k: v for k, v in stream.items() if k != "windows"}
    return rate


def run(ctx: BenchContext) -> WorkloadResult:
    folder = ctx.folder("high_cardinality")
    input_dir, generated = cached_dataset(
        folder, {"rows": ctx.rows, "files": FILES, "windows": WINDOWS,
                 "key_range": ctx.rows // ROWS_PER_KEY_RANGE},
        lambda path: generate(path, ctx.rows))
    warm_page_cache(input_dir)
    batch_s, expected, stream, failure = _best_runs(
        input_dir, ctx.fresh_run_dir("high_cardinality"))
    batch_rate = ctx.rows / batch_s
    result = WorkloadResult("high_cardinality", params={
        "rows": ctx.rows, "files": FILES, "windows": WINDOWS,
        "key_range": ctx.rows // ROWS_PER_KEY_RANGE, "data_generated_now": generated,
        "polars": {"seconds": batch_s}, "closed_windows": expected.height,
        "repeats": REPEATS})
    result.measures.append(Measure("polars batch query (baseline)", batch_rate, "rows/s",
                                   1.0, note=f"{batch_s:.2f} s, best of {REPEATS}"))
    if stream is None:
        result.status, result.error = "failed", f"unbounded: {failure}"
        return result
    rate = _report_unbounded(result, stream, ctx.rows, batch_rate, expected)
    spark_rate = _pyspark_rate(result, ctx, input_dir)
    if spark_rate:
        ratio = rate / spark_rate
        result.measures.append(Measure("unbounded vs pyspark (baseline 2)", None, "", ratio,
                                       f">= {TARGET_PYSPARK:.0f}x", ratio >= TARGET_PYSPARK,
                                       "rate of unbounded / rate of pyspark"))
    return result


WORKLOAD = Workload("high_cardinality", "windowed query, ~1M keys per 5 s window "
                    "(keys from rows / 4, 8 windows), vs Polars and PySpark", 10_000_000, run)
