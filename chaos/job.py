"""The query the chaos suite runs as a child process (to SIGKILL, pause and restart it).

    python -m chaos.job SINK QUERY INPUT OUTPUT CHECKPOINT [BOOTSTRAP]

SINK is ``file`` (Parquet with ``_spark_metadata``), ``foreach`` (foreachBatch writing one
Parquet file per batch id, replaced when a batch is re-run: an idempotent writer) or
``kafka`` (transactional; OUTPUT is the topic). QUERY is ``stateless`` (filter and
projection) or ``windowed`` (10 s tumbling windows per key, 15 s watermark, append).
Every job uses ``availableNow`` with one input file per batch and exits 0 when done.

With ``CHAOS_CLOCK_SEED`` set, the engine's wall clock (``now_ms``, which stamps batches and
progress) jumps hours and days forward and back at random, the query runs with a 50 ms
processing-time trigger until all input is processed, and each batch's id, watermark and
input rows are written as JSON lines to ``$CHAOS_PROGRESS``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from typing import Any

__all__ = ["JumpingClock", "build_query", "foreach_writer", "main"]


class JumpingClock:
    """``now_ms`` whose offset from the real clock jumps at random: up to two days either
    way, sometimes back to none; never ``time.monotonic``, which the trigger waits use."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.offset_ms = 0
        self.jumps = 0

    def __call__(self) -> int:
        if self.rng.random() < 0.3:
            self.offset_ms = self.rng.choice([0, 1, -1]) * self.rng.randrange(3_600_000,
                                                                              172_800_000)
            self.jumps += 1
        return int(time.time() * 1000) + self.offset_ms


def _install_clock(seed: int) -> JumpingClock:
    from unbounded.runtime import execution, microbatch, progress

    clock = JumpingClock(seed)
    for module in (execution, microbatch, progress):
        module.now_ms = clock  # type: ignore[attr-defined]
    return clock


def _rows(spark: Any, query: str, input_dir: str) -> Any:
    from unbounded.sql import functions as F

    rows = (spark.readStream.schema("id LONG, key STRING, seq LONG, ts TIMESTAMP, ts_ms LONG")
            .option("maxFilesPerTrigger", 1).json(input_dir))
    if query == "stateless":
        return rows.where(F.col("seq") % 7 != 3).select("id", "key", "seq", "ts_ms")
    return (rows.withWatermark("ts", "15 seconds")
            .groupBy(F.window("ts", "10 seconds"), "key")
            .agg(F.count("id").alias("count"), F.sum("id").alias("ids"))
            .select(F.col("window.start").alias("ws"), "key", "count", "ids"))


def foreach_writer(output: str) -> Any:
    """A foreachBatch function that writes ``batch-<id>.parquet`` atomically: a re-run
    batch replaces its own file, so the writer is idempotent per batch id."""
    def write(df: Any, batch_id: int) -> None:
        import pyarrow.parquet as pq

        os.makedirs(output, exist_ok=True)
        final = os.path.join(output, f"batch-{batch_id:06d}.parquet")
        tmp = final + ".tmp"
        pq.write_table(df.toArrow(), tmp)
        os.replace(tmp, final)
    return write


def build_query(spark: Any, sink: str, query: str, args: list[str]) -> Any:
    """Start the query named by ``sink`` and ``query`` (see the module docstring)."""
    from unbounded.sql import functions as F

    input_dir, output, checkpoint = args[:3]
    rows = _rows(spark, query, input_dir)
    writer = rows.writeStream.option("checkpointLocation", checkpoint)
    if os.environ.get("CHAOS_CLOCK_SEED"):
        writer = writer.trigger(processingTime="50 milliseconds")
    else:
        writer = writer.trigger(availableNow=True)
    writer = writer.outputMode("append")
    if sink == "file":
        return writer.format("parquet").start(output)
    if sink == "foreach":
        return writer.foreachBatch(foreach_writer(output)).start()
    value = F.concat_ws("|", *(F.col(c).cast("string") for c in rows.columns))
    return (rows.select(value.alias("value")).writeStream
            .option("checkpointLocation", checkpoint).trigger(availableNow=True)
            .format("kafka").option("kafka.bootstrap.servers", args[3])
            .option("kafka.transaction.timeout.ms",
                    os.environ.get("CHAOS_TXN_TIMEOUT_MS", "60000"))
            .option("topic", output).start())


def main(argv: list[str]) -> int:
    from unbounded.sql import SparkSession

    sink, query, *rest = argv
    spark = (SparkSession.builder.appName(f"chaos-{sink}-{query}")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.sql.streaming.stateStore.minDeltasForSnapshot", "2")
             .config("spark.sql.streaming.minBatchesToRetain",
                     os.environ.get("CHAOS_RETAIN", "100"))
             .getOrCreate())
    seed = os.environ.get("CHAOS_CLOCK_SEED")
    if not seed:
        build_query(spark, sink, query, rest).awaitTermination()
        return 0
    clock = _install_clock(int(seed))
    running = build_query(spark, sink, query, rest)
    running.processAllAvailable()
    time.sleep(0.5)  # idle triggers under the jumping clock: they must not run batches
    running.stop()
    with open(os.environ["CHAOS_PROGRESS"], "w") as f:
        for p in running.recentProgress:
            f.write(json.dumps({"batchId": p["batchId"], "numInputRows": p["numInputRows"],
                                "watermark": p.get("eventTime", {}).get("watermark"),
                                "jumps": clock.jumps}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
