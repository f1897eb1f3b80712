"""Stateless throughput (issue 2): Parquet -> filter and projection -> Parquet sink.

The streaming query reads the files with ``maxFilesPerTrigger`` and
``trigger(availableNow=True)`` into a Parquet file sink with a checkpoint; the baseline
is the same transformation as one Polars batch query
(``scan_parquet -> filter -> select -> sink_parquet``) on the same files. Both rates are
input rows divided by wall time; the target is the streaming rate at >= 50% of the batch
rate. Both outputs must hold the same number of rows.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.harness import (
    BenchContext,
    Measure,
    Workload,
    WorkloadResult,
    cached_dataset,
    stopwatch,
    warm_page_cache,
)

__all__ = ["SCHEMA_DDL", "WORKLOAD", "generate", "run"]

FILES = 20
FILES_PER_TRIGGER = 4
TARGET_RATIO = 0.5
SCHEMA_DDL = "id LONG, kind STRING, amount DOUBLE, country STRING, event_time TIMESTAMP"
_KINDS = np.array(["click", "view", "buy", "noise"])
_KIND_WEIGHTS = [0.4, 0.3, 0.2, 0.1]
_COUNTRIES = np.array([f"C{i:02d}" for i in range(20)])
_START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def _file_rows(rows: int, files: int) -> list[int]:
    base, extra = divmod(rows, files)
    return [base + (1 if i < extra else 0) for i in range(files)]


def _table(first_id: int, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    return pa.table({
        "id": ids,
        "kind": pa.array(rng.choice(_KINDS, n, p=_KIND_WEIGHTS), pa.string()),
        "amount": np.round(rng.random(n) * 100, 2),
        "country": pa.array(rng.choice(_COUNTRIES, n), pa.string()),
        "event_time": pa.array(_START_US + ids * 1_000, pa.timestamp("us", tz="UTC")),
    })


def generate(folder: str, rows: int, files: int = FILES) -> None:
    """``files`` Parquet files holding ``rows`` rows in all, ids ascending across files."""
    first = 0
    for i, n in enumerate(_file_rows(rows, files)):
        pq.write_table(_table(first, n, seed=i), os.path.join(folder, f"part-{i:04d}.parquet"))
        first += n


def _unbounded(input_dir: str, output_dir: str, checkpoint: str) -> dict[str, Any]:
    from unbounded.sql import SparkSession
    from unbounded.sql import functions as F

    spark = SparkSession.builder.appName("bench-throughput").getOrCreate()
    with stopwatch() as elapsed:
        events = (spark.readStream.schema(SCHEMA_DDL)
                  .option("maxFilesPerTrigger", FILES_PER_TRIGGER).parquet(input_dir))
        query = (events.where((F.col("kind") != "noise") & (F.col("amount") >= 10))
                 .select("id", F.upper("kind").alias("kind"),
                         (F.col("amount") * 2).alias("double_amount"), "country", "event_time")
                 .writeStream.format("parquet").option("checkpointLocation", checkpoint)
                 .trigger(availableNow=True).start(output_dir))
        query.awaitTermination()
    if query.exception() is not None:
        raise query.exception()  # type: ignore[misc]
    progress = query.recentProgress
    return {
        "seconds": elapsed[0],
        "batches": len([p for p in progress if p["numInputRows"]]),
        "input_rows": sum(p["numInputRows"] for p in progress),
        "output_rows": spark.read.parquet(output_dir).count(),
    }


def _polars(input_dir: str, output_file: str) -> dict[str, Any]:
    import polars as pl

    with stopwatch() as elapsed:
        (pl.scan_parquet(os.path.join(input_dir, "*.parquet"))
         .filter((pl.col("kind") != "noise") & (pl.col("amount") >= 10))
         .select("id", pl.col("kind").str.to_uppercase(),
                 (pl.col("amount") * 2).alias("double_amount"), "country", "event_time")
         .sink_parquet(output_file))
    rows = pl.scan_parquet(output_file).select(pl.len()).collect().item()
    return {"seconds": elapsed[0], "output_rows": rows}


def run(ctx: BenchContext) -> WorkloadResult:
    folder = ctx.folder("throughput")
    input_dir, generated = cached_dataset(
        folder, {"rows": ctx.rows, "files": FILES},
        lambda path: generate(path, ctx.rows))
    warm_page_cache(input_dir)
    run_dir = ctx.fresh_run_dir("throughput")
    batch = _polars(input_dir, os.path.join(run_dir, "polars.parquet"))
    stream = _unbounded(input_dir, os.path.join(run_dir, "out"), os.path.join(run_dir, "ckpt"))
    batch_rate = ctx.rows / batch["seconds"]
    stream_rate = ctx.rows / stream["seconds"]
    ratio = stream_rate / batch_rate
    same = stream["output_rows"] == batch["output_rows"]
    return WorkloadResult(
        "throughput",
        measures=[
            Measure("polars batch query (baseline)", batch_rate, "rows/s", 1.0,
                    note=f"{batch['seconds']:.2f} s"),
            Measure("unbounded availableNow", stream_rate, "rows/s", ratio,
                    f">= {TARGET_RATIO:.2f}x", ratio >= TARGET_RATIO,
                    f"{stream['seconds']:.2f} s, {stream['batches']} batches"),
        ],
        checks={
            "same output rows": (f"ok ({stream['output_rows']:,})" if same else
                                 f"FAIL unbounded {stream['output_rows']:,} vs "
                                 f"polars {batch['output_rows']:,}"),
            "all input read": ("ok" if stream["input_rows"] == ctx.rows else
                               f"FAIL {stream['input_rows']:,} of {ctx.rows:,}"),
        },
        params={"rows": ctx.rows, "files": FILES, "maxFilesPerTrigger": FILES_PER_TRIGGER,
                "data_generated_now": generated, "unbounded": stream, "polars": batch},
    )


WORKLOAD = Workload("throughput", "Parquet -> filter/project -> Parquet, availableNow",
                    10_000_000, run)
