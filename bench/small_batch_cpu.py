"""Process CPU of one small batch (issue 15), for A/B runs of two checkouts alternated.

    PYTHONPATH=<tree>/src .venv/bin/python -m bench.small_batch_cpu QUERY FSYNC [--tasks]
        [--files N]

QUERY is ``windowed`` (``bench/small_batch_query.py``'s windowed query) or ``stateless``
(``select(event_time, key * 2)``, ANSI-checked bigint arithmetic); the input is
``bench/small_batch.py``'s 100-row Parquet files, one a batch (availableNow), into a
Parquet sink with a checkpoint. ``FSYNC`` ``off`` replaces ``os.fsync`` with a no-op
(what the batch costs the CPU without the disk). Printed as JSON: process CPU per
batch in steady state (all threads) and the median batch. With ``--tasks``, the partition
tasks of a 20-file run are captured and run again 25 times each in a loop: process CPU
per task (read, row-local plan, map side), the part the read-ahead lane pays. With
``--files N``, N files (one batch each) instead of ``bench/small_batch.py``'s 200: what
a batch costs later in a query's life (a cost that grows with the batches run so far
shows as a higher figure per batch).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from bench import small_batch as sb
from bench.small_batch_query import file_stream, start_windowed_files

__all__ = ["main"]


def _start(spark: Any, query: str, root: str, input_dir: str) -> Any:
    if query == "windowed":
        return start_windowed_files(spark, input_dir, os.path.join(root, "out"),
                                    os.path.join(root, "ckpt"), availableNow=True)
    from unbounded.sql import functions as F

    return (file_stream(spark, input_dir)
            .select("event_time", (F.col("key") * 2).alias("doubled"))
            .writeStream.format("parquet").outputMode("append")
            .option("checkpointLocation", os.path.join(root, "ckpt"))
            .trigger(availableNow=True).start(os.path.join(root, "out")))


def _batches(query: str, root: str, input_dir: str) -> dict[str, Any]:
    from unbounded.sql import SparkSession

    spark = SparkSession.builder.appName("bench-small-batch-cpu").getOrCreate()
    with sb._timed_triggers() as times:
        running = _start(spark, query, root, input_dir)
        running.awaitTermination()
    data, _ = sb._split(times, running)
    spark.stop()
    return {"cpu_ms": times.cpu_ms_per_batch(), "median_ms": statistics.median(data[5:]),
            "batches": len(data)}


def _tasks(query: str, root: str, input_dir: str) -> dict[str, Any]:
    from unbounded.executors.base import ShippableTask
    from unbounded.runtime import microbatch, tasks
    from unbounded.sql import SparkSession

    seen: list[Any] = []

    def capture(task: Any) -> Any:
        seen.append(task)
        return tasks.run_partition(task)

    microbatch.run_task = ShippableTask(capture)  # type: ignore[assignment]
    spark = SparkSession.builder.appName("bench-small-batch-cpu").getOrCreate()
    _start(spark, query, root, input_dir).awaitTermination()
    spark.stop()
    for task in seen[:5]:
        tasks.run_partition(task)
    started = time.process_time()
    for _ in range(25):
        for task in seen:
            tasks.run_partition(task)
    return {"task_cpu_ms": 1000 * (time.process_time() - started) / (25 * len(seen)),
            "tasks": len(seen)}


def main(argv: list[str]) -> int:
    query, fsync = argv[0], argv[1]
    if fsync == "off":
        os.fsync = lambda fd: None
    root = tempfile.mkdtemp(prefix="small-batch-cpu-")
    try:
        input_dir = os.path.join(root, "files")
        os.makedirs(input_dir)
        files = int(argv[argv.index("--files") + 1]) if "--files" in argv else sb.FILES
        for i in range(20 if "--tasks" in argv else files):
            sb._write_file(input_dir, i)
        run = _tasks if "--tasks" in argv else _batches
        print(json.dumps(run(query, root, input_dir)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
